"""Disturbances as adversary states: none (a zero mean action, deterministic) or random of a
given magnitude (zero mean, a Gaussian whose clipped magnitude matches), for attacks,
evaluations and the phases of robust MAML in which the adversary does not act."""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from metarobust.sampling.acting import PolicyState
from metarobust.trajectories import Trajectories


def mean_magnitude(traj: Trajectories) -> torch.Tensor:
    """The recorded adversary's mean clipped action magnitude per component, ``[act_dim]``,
    over the real steps of ``traj`` (sampled with the adversary as learner)."""
    return traj.actions.clamp(-1.0, 1.0).abs()[traj.mask.bool()].mean(0)


def zero_mean(adversary: PolicyState, magnitude: torch.Tensor | None) -> PolicyState:
    """The adversary's state with a zero mean action: no force (``magnitude`` None), or a
    random one with each component's mean clipped magnitude equal to ``magnitude``."""
    params = {
        k: torch.zeros_like(v) if k.startswith("mean_net.") else v
        for k, v in adversary.params.items()
    }
    if magnitude is None:
        return replace(adversary, params=params, deterministic=True)
    std = torch.tensor([clipped_gaussian_std(float(m)) for m in magnitude])
    params["log_std"] = std.log().to(params["log_std"].dtype)
    return replace(adversary, params=params, deterministic=False)


def clipped_gaussian_std(magnitude: float) -> float:
    """The sigma with E|clip(N(0, sigma^2), -1, 1)| = ``magnitude`` (bisection; in [1e-6, 1e3])."""

    def mean_clipped(sigma: float) -> float:
        inside = sigma * math.sqrt(2.0 / math.pi) * (1.0 - math.exp(-0.5 / sigma**2))
        return inside + math.erfc(1.0 / (sigma * math.sqrt(2.0)))  # + P(|X| > 1) * 1

    low, high = 1e-6, 1e3
    for _ in range(100):
        mid = math.sqrt(low * high)  # bisection in log space
        low, high = (mid, high) if mean_clipped(mid) < magnitude else (low, mid)
    return math.sqrt(low * high)
