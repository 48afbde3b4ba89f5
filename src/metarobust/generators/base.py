"""The generator interface: propose a batch of tasks, observe a score for each."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np

from metarobust.envs.tasks import TaskDistribution

Task = dict[str, Any]


@dataclass(frozen=True)
class Proposal:
    """A batch of tasks and what the agent does with it.

    ``train``: the agent updates on these tasks' episodes (Robust PLR's new and edited levels
    are only evaluated, to score them). ``replayed``: for tasks drawn from a generator's
    buffer, their places in it.
    """

    tasks: list[Task]
    train: bool = True
    replayed: tuple[int, ...] | None = None


class Generator(abc.ABC):
    """Proposes tasks from ``distribution`` (and what it learned), drawing from ``rng`` only.

    ``score`` says what an RL agent's trainer pays it per task: ``"value_loss"`` (positive
    value loss, PLR's), ``"negative_return"`` (minimax) or ``"regret"`` (PAIRED)."""

    score: str = "value_loss"

    def __init__(self, distribution: TaskDistribution, rng: np.random.Generator) -> None:
        self.distribution, self.rng = distribution, rng

    @abc.abstractmethod
    def propose(self, n: int) -> Proposal:
        """``n`` tasks to play next."""

    def observe(self, proposal: Proposal, scores: np.ndarray) -> dict[str, float]:
        """Learn from one score per proposed task (higher: more worth replaying); returns
        metrics to log."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs (numbers, strings and lists only)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class DomainRandomization(Generator):
    """Tasks drawn uniformly from the distribution, every batch trained on."""

    def propose(self, n: int) -> Proposal:
        return Proposal(self.distribution.sample(n, self.rng))
