"""Learned level designers: minimax (Dennis et al. 2020's baseline) and PAIRED's generator.

A designer is a Gaussian policy over a fixed-size level vector (no observation: each proposal
is one draw), squashed into levels of the obstacle world by ``decode``: the start, the goal,
and ``DESIGN_WALLS`` candidate walls, each kept where its presence number is positive. It is
trained with REINFORCE (rewards standardised within the batch, Adam) on what it is paid per
level:

- minimax: minus the protagonist's mean return there;
- PAIRED: the regret, the antagonist's best return there minus the protagonist's mean one
  (an antagonist agent trained on the same levels; see ``metarobust.generators.curriculum``).

The original PAIRED designer builds a grid maze step by step with a recurrent policy; this one
draws a continuous level in one step, the same objective on a continuous world.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from metarobust.envs.geometry import GOAL_RADIUS, segment_distance
from metarobust.envs.levels import level_row
from metarobust.envs.tasks import TaskDistribution
from metarobust.generators.base import Generator, Proposal, Task

DESIGN_WALLS = 8
DESIGN_DIM = 4 + 5 * DESIGN_WALLS  # start, goal, then per wall: two ends and a presence
EXTENT = 0.95  # how far from the centre a designed point may lie (the arena is [-1, 1]^2)


def decode(vector: np.ndarray) -> Task:
    """A valid level from a design vector (any real numbers): points squashed into the arena,
    walls present where their presence number is > 0 and clear of the start and the goal."""
    x = EXTENT * np.tanh(np.asarray(vector, np.float64))
    start, goal = x[:2], x[2:4]
    if np.hypot(*(goal - start)) < 2 * GOAL_RADIUS:  # the goal may not sit on the start
        goal = np.where(start >= 0, start - 4 * GOAL_RADIUS, start + 4 * GOAL_RADIUS)
    walls = []
    ends = np.stack([start, goal])
    for k in range(DESIGN_WALLS):
        wall, present = x[4 + 5 * k : 8 + 5 * k], vector[8 + 5 * k]
        gaps = segment_distance(ends, np.broadcast_to(wall, (2, 1, 4)))
        if present > 0 and (gaps > 2 * GOAL_RADIUS).all():
            walls.append(wall.tolist())
    return {"start": start.tolist(), "goal": goal.tolist(), "walls": walls}


def regret(antagonist: np.ndarray, protagonist: np.ndarray) -> np.ndarray:
    """PAIRED's regret per level from ``[level, episode]`` returns: the antagonist's best
    episode minus the protagonist's mean."""
    return np.asarray(antagonist).max(axis=1) - np.asarray(protagonist).mean(axis=1)


class LevelDesigner(Generator):
    """A Gaussian design policy over level vectors, paid per level (module doc). ``score`` is
    what the caller pays it: ``"negative_return"`` (minimax) or ``"regret"`` (PAIRED)."""

    def __init__(
        self,
        distribution: TaskDistribution,
        rng: np.random.Generator,
        *,
        score: str,
        lr: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__(distribution, rng)
        self.score = score
        torch_gen = torch.Generator().manual_seed(seed)
        self.mean = (0.1 * torch.randn(DESIGN_DIM, generator=torch_gen)).requires_grad_(True)
        self.log_std = torch.zeros(DESIGN_DIM, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.mean, self.log_std], lr=lr)
        self._drawn: np.ndarray | None = None  # the last proposal's vectors, until observed

    def propose(self, n: int) -> Proposal:
        noise = self.rng.standard_normal((n, DESIGN_DIM))
        with torch.no_grad():
            vectors = self.mean.numpy() + np.exp(self.log_std.numpy()) * noise
        self._drawn = vectors
        levels = [decode(v) for v in vectors]
        for level in levels:
            level_row(level)  # decode makes valid levels only
        return Proposal(levels)

    def observe(self, proposal: Proposal, scores: np.ndarray) -> dict[str, float]:
        """One REINFORCE step towards the designs that scored higher."""
        if self._drawn is None or len(self._drawn) != len(scores):
            raise ValueError("observe the designer's own last proposal, once")
        scores = np.asarray(scores, np.float64)
        advantage = torch.as_tensor(
            (scores - scores.mean()) / (scores.std() + 1e-8), dtype=torch.float32
        )
        x = torch.as_tensor(self._drawn, dtype=torch.float32)
        std = self.log_std.exp()
        log_prob = (-0.5 * ((x - self.mean) / std) ** 2 - self.log_std).sum(-1)
        loss = -(advantage * log_prob).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self._drawn = None
        walls = np.mean([len(level["walls"]) for level in proposal.tasks])
        return {
            "generator/score": float(scores.mean()),
            "generator/walls": float(walls),
            "generator/design_std": float(std.mean().item()),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "mean": self.mean.detach().clone(),
            "log_std": self.log_std.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.mean.copy_(state["mean"])
            self.log_std.copy_(state["log_std"])
        self.optimizer.load_state_dict(state["optimizer"])
