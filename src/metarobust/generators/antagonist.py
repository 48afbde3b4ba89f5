"""PAIRED's antagonist (Dennis et al. 2020): an agent of its own, trained on the levels the
protagonist plays; its best return on a level is what the protagonist's regret is measured
from (``metarobust.generators.designer.regret``). UED's curriculum and MAML's
``maml.task_selection: paired`` both keep one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from metarobust.agents.factories import make_policy
from metarobust.config import Config
from metarobust.policy_gradient import make_learner
from metarobust.sampling.acting import Acting
from metarobust.sampling.env_factory import EnvSpec, env_dims
from metarobust.sampling.sampler import Sampler


class Antagonist:
    """A ``kind`` (``ppo`` or ``trpo``) learner with a policy shaped for ``spec``; it plays
    levels and learns from them (``plays``)."""

    def __init__(
        self,
        cfg: Config,
        kind: str,
        spec: EnvSpec,
        device: torch.device,
        generator: torch.Generator,
    ) -> None:
        module = make_policy(cfg, *env_dims(spec)).to(device)
        self.device = device
        self.learner = make_learner(
            cfg, "antagonist", kind, module, device=device, generator=generator
        )

    def plays(
        self,
        sampler: Sampler,
        levels: list,
        episodes: int,
        seed: int,
        phase: Callable[[str], None],
    ) -> tuple[np.ndarray, dict[str, float], int]:
        """``episodes`` episodes of every level with episode seed ``seed``, then one update on
        them: the returns ``[level, episode]``, the metrics and the env steps. ``phase`` is
        told what it is doing."""
        phase("sampling antagonist")
        acting = Acting.single(self.learner.collecting())
        traj = sampler.sample_episodes(acting, levels, episodes, seed).to(self.device)
        returns = traj.episode_returns.view(len(levels), episodes).double().cpu().numpy()
        phase("updating antagonist")
        losses = self.learner.update(traj)
        metrics = {f"antagonist/{k}": float(v) for k, v in losses.items()}
        metrics["antagonist/episodic_return"] = traj.episode_returns.mean().item()
        return returns, metrics, traj.num_steps

    def state_dict(self) -> dict[str, Any]:
        return self.learner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state)
