"""RoML's CVaR task sampler (Greenberg et al. 2023): the cross-entropy method over a task
distribution's parameters, over-sampling the tasks where the agent does worst.

For a distribution uniform over a box of task parameters (goals, velocities, dynamics scales;
``TaskDistribution.box``), the sampler draws each parameter from its own Beta distribution
over its range, starting at Beta(1, 1), i.e. the original distribution; a share
``original_share`` of every batch still comes from the original distribution, which keeps the
sampler from collapsing and bounds the likelihood ratios. After each batch it takes the tasks
in the worst ``alpha`` share of scores (the scores say how badly the agent did: for MAML minus
the post-adaptation return), the share measured with each task's likelihood ratio ``p / q``
(original over sampling density, the mixture's), so the tail is that of the original tasks,
and moves each Beta towards them: the weighted moments' Beta, mixed with the current one by
``smoothing``. The agent then trains on what the sampler proposes, so the tail of the
original distribution is seen more often: a CVaR objective rather than a mean.
"""

from __future__ import annotations

from math import lgamma
from typing import Any

import numpy as np

from metarobust.envs.tasks import TaskDistribution
from metarobust.errors import ConfigError
from metarobust.generators.base import Generator, Proposal

MIN_CONCENTRATION = 0.5  # Beta parameters stay at or above this (no collapse onto a point)


class CVaRSampler(Generator):
    """Cross-entropy-method task sampler for the worst ``alpha`` of tasks (module doc); an
    RL agent's trainer pays it minus the return per task."""

    score = "negative_return"

    def __init__(
        self,
        distribution: TaskDistribution,
        rng: np.random.Generator,
        *,
        alpha: float = 0.1,
        smoothing: float = 0.5,
        original_share: float = 0.2,
    ) -> None:
        super().__init__(distribution, rng)
        box = distribution.box()
        if box is None:
            raise ConfigError(
                f"cvar task selection needs a distribution uniform over a box of parameters "
                f"(goals in a square, velocities, dynamics scales), not {distribution!r}"
            )
        self.low, self.high = box
        self.alpha, self.smoothing, self.original_share = alpha, smoothing, original_share
        dims = len(self.low)
        self.a, self.b = np.ones(dims), np.ones(dims)
        self._drawn: np.ndarray | None = None  # the last proposal's unit-box points

    def propose(self, n: int) -> Proposal:
        dims, original = len(self.a), round(self.original_share * n)
        u = np.concatenate([
            self.rng.uniform(size=(original, dims)),
            self.rng.beta(self.a, self.b, size=(n - original, dims)),
        ])  # fmt: skip
        self._drawn = u
        points = self.low + u * (self.high - self.low)
        return Proposal([self.distribution.task_at(p) for p in points])

    def likelihood_ratio(self, u: np.ndarray) -> np.ndarray:
        """``p / q`` of unit-box points ``u [n, dims]``: the original (uniform, density 1)
        over the sampling mixture, ``original_share`` of it uniform, the rest the Betas'."""
        pairs = zip(self.a, self.b, strict=True)
        log_norm = np.array([lgamma(a) + lgamma(b) - lgamma(a + b) for a, b in pairs])
        u = np.clip(u, 1e-12, 1 - 1e-12)
        log_beta = ((self.a - 1) * np.log(u) + (self.b - 1) * np.log1p(-u) - log_norm).sum(-1)
        nu = self.original_share
        return 1.0 / (nu + (1 - nu) * np.exp(log_beta))

    def observe(self, proposal: Proposal, scores: np.ndarray) -> dict[str, float]:
        if self._drawn is None or len(self._drawn) != len(scores):
            raise ValueError("observe the sampler's own last proposal, once")
        u, self._drawn = self._drawn, None
        scores = np.asarray(scores, np.float64)
        weights = self.likelihood_ratio(u)
        # the worst alpha (by the original distribution's measure): highest scores first
        order = np.argsort(-scores, kind="stable")
        share = np.cumsum(weights[order]) / weights.sum()
        tail = order[: max(1, int(np.searchsorted(share, self.alpha)) + 1)]
        w, x = weights[tail] / weights[tail].sum(), u[tail]
        mean = (w[:, None] * x).sum(axis=0)
        var = (w[:, None] * (x - mean) ** 2).sum(axis=0)
        mean = np.clip(mean, 1e-3, 1 - 1e-3)
        common = mean * (1 - mean) / np.maximum(var, 1e-6) - 1.0
        new_a = np.maximum(mean * common, MIN_CONCENTRATION)
        new_b = np.maximum((1 - mean) * common, MIN_CONCENTRATION)
        keep = self.smoothing
        self.a, self.b = keep * self.a + (1 - keep) * new_a, keep * self.b + (1 - keep) * new_b
        sampler_mean = self.low + self.a / (self.a + self.b) * (self.high - self.low)
        return {
            "generator/tail_score": float(scores[tail].mean()),
            **{f"generator/mean_{k}": float(v) for k, v in enumerate(sampler_mean)},
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "a": self.a.tolist(), "b": self.b.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.a = np.asarray(state["a"], np.float64)
        self.b = np.asarray(state["b"], np.float64)
