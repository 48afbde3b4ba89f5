"""Learned task designers: minimax (Dennis et al. 2020's baseline) and PAIRED's generator, over
obstacle levels or a box of task parameters.

A designer is a Gaussian policy over a fixed-size design vector (no observation: each proposal
is one draw), made into a task by its decoder:

- ``LevelDesigner``: levels of the obstacle world (``decode``): the start, the goal, and
  ``DESIGN_WALLS`` candidate walls, each kept where its presence number is positive;
- ``BoxDesigner``: a task uniform over a box of parameters (goals, velocities, dynamics
  scales, forces; ``TaskDistribution.box``), each number squashed into its range by a
  sigmoid: AdMRL's adversary over task parameters (Lin et al. 2020), as a design policy.

It is trained with REINFORCE (rewards standardised within the batch, Adam) on what it is paid
per task:

- minimax: minus the protagonist's mean return there (for MAML, after adapting);
- PAIRED: the regret, the antagonist's best return there minus the protagonist's mean one
  (an antagonist agent trained on the same tasks; ``metarobust.generators.antagonist``).

The original PAIRED designer builds a grid maze step by step with a recurrent policy; this one
draws a continuous level in one step, the same objective on a continuous world.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch

from metarobust.envs.geometry import GOAL_RADIUS, segment_distance
from metarobust.envs.levels import level_row
from metarobust.envs.tasks import TaskDistribution
from metarobust.errors import ConfigError
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


class Designer(Generator):
    """A Gaussian design policy over ``dim`` numbers, paid per task (module doc); subclasses
    decode a design vector into a task. ``score`` is what the caller pays it:
    ``"negative_return"`` (minimax) or ``"regret"`` (PAIRED)."""

    def __init__(
        self,
        distribution: TaskDistribution,
        rng: np.random.Generator,
        *,
        dim: int,
        score: str,
        lr: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__(distribution, rng)
        self.score = score
        torch_gen = torch.Generator().manual_seed(seed)
        self.mean = (0.1 * torch.randn(dim, generator=torch_gen)).requires_grad_(True)
        self.log_std = torch.zeros(dim, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.mean, self.log_std], lr=lr)
        self._drawn: np.ndarray | None = None  # the last proposal's vectors, until observed

    @abc.abstractmethod
    def decode(self, vector: np.ndarray) -> Task:
        """The task of a design vector (any real numbers)."""

    def propose(self, n: int) -> Proposal:
        noise = self.rng.standard_normal((n, len(self.mean)))
        with torch.no_grad():
            vectors = self.mean.numpy() + np.exp(self.log_std.numpy()) * noise
        self._drawn = vectors
        return Proposal([self.decode(v) for v in vectors])

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
        return {
            "generator/score": float(scores.mean()),
            **self._described(proposal.tasks),
            "generator/design_std": float(std.mean().item()),
        }

    def _described(self, tasks: list[Task]) -> dict[str, float]:
        """Metrics that say what the designer proposed."""
        return {}

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


class LevelDesigner(Designer):
    """A designer of obstacle levels (``decode``)."""

    def __init__(
        self, distribution: TaskDistribution, rng: np.random.Generator, **kwargs: Any
    ) -> None:
        super().__init__(distribution, rng, dim=DESIGN_DIM, **kwargs)

    def decode(self, vector: np.ndarray) -> Task:
        level = decode(vector)
        level_row(level)  # decode makes valid levels only
        return level

    def _described(self, tasks: list[Task]) -> dict[str, float]:
        return {"generator/walls": float(np.mean([len(level["walls"]) for level in tasks]))}


class BoxDesigner(Designer):
    """A designer of tasks in the box of a distribution uniform over one: each design number
    through a sigmoid into its parameter's range (at first about the box's centre)."""

    def __init__(
        self, distribution: TaskDistribution, rng: np.random.Generator, **kwargs: Any
    ) -> None:
        box = distribution.box()
        if box is None:
            raise ConfigError(
                "a designer of task parameters needs a distribution uniform over a box "
                f"(goals in a square, velocities, dynamics scales, forces), not {distribution!r}"
            )
        self.low, self.high = box
        super().__init__(distribution, rng, dim=len(self.low), **kwargs)

    def decode(self, vector: np.ndarray) -> Task:
        unit = 1.0 / (1.0 + np.exp(-np.asarray(vector, np.float64)))
        return self.distribution.task_at(self.low + unit * (self.high - self.low))

    def _described(self, tasks: list[Task]) -> dict[str, float]:
        features = np.stack([self.distribution.features(t) for t in tasks]).mean(0)
        return {f"generator/mean_{k}": float(v) for k, v in enumerate(features)}
