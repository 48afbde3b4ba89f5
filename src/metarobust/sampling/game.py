"""The rules that turn a call's policies into an env's action: the sampler's one extension point.

A worker steps its envs with a ``Game``: once per step the game runs every player's policy
on the observations (one batched forward each), joins their actions into the env's action,
and says what the learner saw and did. ``SinglePlayer`` is the ordinary case; two-player
rules (the zero-sum sign, population draws, observation attacks) live with the adversarial
code, in ``metarobust.adversarial.game``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from metarobust.errors import ConfigError
from metarobust.sampling.acting import SOLE, PolicyState
from metarobust.sampling.batched_policy import BatchedPolicy


@dataclass(frozen=True)
class StepInput:
    """What the stepped envs give the players for one step."""

    obs: np.ndarray  # [n, obs_dim]
    noise: np.ndarray  # [n, env act_dim] standard normal, one column per action component
    tasks: np.ndarray | None  # [n] each row's task index in the call (episode mode)
    episode_seeds: np.ndarray  # [n] each row's episode: its reset seed
    task_features: np.ndarray | None = None  # [n, game.task_features] each row's task's


@dataclass(frozen=True)
class Moves:
    """One step of the stepped envs: the env's joint action and the learner's record."""

    joint: np.ndarray  # [n, env act_dim]
    obs: np.ndarray  # [n, obs_dim] what the learner saw
    actions: np.ndarray  # [n, learner act_dim] the learner's unclipped actions
    log_probs: np.ndarray  # [n]


class Game(ABC):
    """How the players of an env act together, and how the learner is paid."""

    players: tuple[str, ...]
    task_features: int = 0  # numbers per task some player sees besides the observation

    @abstractmethod
    def check_env(self, env_id: str, metadata: Mapping[str, Any], act_dim: int) -> None:
        """ConfigError unless this game can play an env with this metadata and action size."""

    @abstractmethod
    def learner_dim(self, learner: str, act_dim: int) -> int:
        """The width of ``learner``'s actions in an env with ``act_dim`` joint actions."""

    def learner_obs_dim(self, learner: str, obs_dim: int) -> int:
        """The width of what ``learner`` sees in an env with ``obs_dim`` observations."""
        return obs_dim

    def learner_obs(
        self, learner: str, obs: np.ndarray, task_features: np.ndarray | None
    ) -> np.ndarray:
        """What ``learner`` sees of the observations ``obs`` (``[n, obs_dim]``) of envs whose
        tasks have ``task_features``; for next observations (``act`` says what it saw)."""
        return obs

    @abstractmethod
    def act(
        self,
        policies: Mapping[str, BatchedPolicy],
        learner: str,
        step: StepInput,
    ) -> Moves:
        """``policies`` act on ``step``'s observations with its noise; the learner's record."""

    def reward_sign(self, learner: str) -> float:
        """+1 if the learner is paid the env's reward, -1 if its negative."""
        return 1.0


def task_rows(state: PolicyState, tasks: np.ndarray | None) -> np.ndarray | None:
    """The parameter set of every row for a state stacked by task (else None)."""
    if state.stack != "task":
        return None
    if tasks is None:
        raise ValueError("per-task parameters need episode sampling (one task per episode)")
    return tasks


class SinglePlayer(Game):
    """One policy acts; its action is the env's action."""

    players = (SOLE,)

    def check_env(self, env_id: str, metadata: Mapping[str, Any], act_dim: int) -> None:
        if metadata.get("players") is not None:
            raise ConfigError(
                f"{env_id}: a two-player env needs policies for protagonist and adversary "
                "(and their game, metarobust.adversarial.game.ZeroSumGame)"
            )

    def learner_dim(self, learner: str, act_dim: int) -> int:
        return act_dim

    def act(
        self,
        policies: Mapping[str, BatchedPolicy],
        learner: str,
        step: StepInput,
    ) -> Moves:
        policy = policies[SOLE]
        if policy.state.stack == "member":
            raise ValueError("a population acts only as an opponent in a two-player game")
        rows = task_rows(policy.state, step.tasks)
        actions, log_probs = policy.act(step.obs, step.noise, rows)
        return Moves(actions, step.obs, actions, log_probs)
