"""The base of the single (not vectorized) task envs built here: one task at a time."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np


class TaskEnv(gym.Env[np.ndarray, np.ndarray], abc.ABC):
    """An env with a current ``task``: ``set_task`` switches it, and so does
    ``reset(options={"task": task})`` before the episode starts (``start_episode``)."""

    @property
    @abc.abstractmethod
    def task(self) -> dict[str, Any]:
        """The current task (a fresh dict)."""

    @abc.abstractmethod
    def set_task(self, task: Mapping[str, Any]) -> None:
        """Switch to ``task``; a one-line ConfigError names what is wrong with a bad one."""

    @abc.abstractmethod
    def start_episode(self, seed: int | None) -> tuple[np.ndarray, dict[str, Any]]:
        """A new episode of the current task: its first observation and info."""

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A new episode; ``options={"task": task}`` switches task first."""
        super().reset(seed=seed)
        if options is not None and "task" in options:
            self.set_task(options["task"])
        return self.start_episode(seed)
