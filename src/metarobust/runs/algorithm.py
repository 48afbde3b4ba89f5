"""What an algorithm gives the run layer: its state and its iteration body, nothing else.

The run layer (``training.py``) resolves the device, claims the run directory, seeds, builds
the sampler, restores a checkpoint, logs, saves and handles interrupts; an ``Algorithm``
builds its networks from a ``Setup``, runs one iteration on the sampler it is handed, and
saves and loads its own state as tensors, numbers and strings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from metarobust.config import Config
from metarobust.sampling.acting import PolicyState
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.game import Game
from metarobust.sampling.sampler import Sampler
from metarobust.sampling.worker import Policies


@dataclass(frozen=True)
class Setup:
    """What every algorithm is built from (after the run's seeding)."""

    cfg: Config
    spec: EnvSpec
    device: torch.device
    generator: torch.Generator  # the learner's own randomness (minibatch shuffling)


@dataclass(frozen=True)
class Iteration:
    """What one iteration did: its metrics and the env steps it adds to the run."""

    metrics: dict[str, float]
    new_steps: int  # advance the run's step axis (the x axis of every curve)
    sampled_steps: int | None = None  # env steps actually simulated, for charts/SPS
    # TensorBoard only (metrics.jsonl keeps numbers): [H, W, 3] uint8 images, value arrays
    images: dict[str, np.ndarray] = field(default_factory=dict)
    histograms: dict[str, np.ndarray] = field(default_factory=dict)


class Algorithm(ABC):
    """One training algorithm: state plus iteration body."""

    unit: Literal["step", "iteration"] = "step"  # what the progress bar counts
    # the metrics shown beside the bar, by short name
    shown: ClassVar[dict[str, str]] = {"return": "charts/episodic_return"}

    def __init__(self, setup: Setup) -> None:
        self.cfg, self.spec = setup.cfg, setup.spec
        self.device, self.generator = setup.device, setup.generator
        self.on_phase: Callable[[str], None] = _ignore  # the run layer's: shown beside the bar

    def phase(self, name: str, index: int = 0, count: int = 1) -> None:
        """Say what the iteration does next ("sampling", "updating adversary"; pass
        ``index`` of ``count`` where it repeats): one phase of a large iteration can take
        minutes."""
        self.on_phase(name if count == 1 else f"{name} {index + 1}/{count}")

    @property
    def game(self) -> Game | None:
        """How the sampler's players act together (None: one policy)."""
        return None

    @property
    @abstractmethod
    def num_iterations(self) -> int:
        """Iterations the config asks for."""

    @property
    @abstractmethod
    def progress_total(self) -> int:
        """The progress bar's length, in ``unit``s."""

    def finished(self, iteration: int, env_steps: int) -> bool:
        """Whether the budget is spent after ``iteration`` iterations and ``env_steps`` steps."""
        return iteration >= self.num_iterations

    @classmethod
    def headline(cls, cfg: Config) -> str:
        """The metric that says how training goes under ``cfg`` (``metarobust plot``'s
        default): the first one shown beside the bar."""
        return next(iter(cls.shown.values()))

    @property
    def budget(self) -> str:
        """The config setting whose value ends the run (raised to continue a finished one)."""
        return "train.total_steps"

    @abstractmethod
    def policies(self) -> Policies:
        """The modules the sampler's workers act with (copied once, at its start)."""

    @abstractmethod
    def iteration(self, sampler: Sampler, index: int) -> Iteration:
        """Run iteration ``index`` (from 0): collect, update, and report."""

    @abstractmethod
    def acting_policy(self) -> PolicyState:
        """The policy a saved run acts with (a RARL run's protagonist, MAML's meta-policy)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly, as tensors, numbers and strings."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of ``state_dict``; settings come from the config in force, so a resume may
        change learning rates and budgets (``resume.CHANGEABLE``)."""


def _ignore(phase: str) -> None:
    pass
