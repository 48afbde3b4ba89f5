"""2D navigation against a wind adversary: ``metarobust/Navigation2DAdv-v0``.

Navigation2D (``metarobust.envs.navigation``) as a zero-sum two-player game. The action is
``[protagonist move (2), adversary wind (2)]``: the protagonist's move is clipped to the
navigation env's speed limit (``ACTION_LIMIT`` per component) as before, the adversary's part
is clipped to [-1, 1] per component and scaled by the ``wind`` budget, and the point moves by
the sum. The default budget is half the speed limit, so the agent can always make headway. The
reward is the protagonist's (minus the distance to the goal, and the fall cost off a platform),
``info["adversary_reward"]`` its negation; tasks, termination, time limit, state and the
platform option are Navigation2D's (``metarobust/Navigation2DCliffAdv-v0`` is the wind on
``metarobust/Navigation2DCliff-v0``). The single env and the
vector env share one step function, so they agree to the bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from metarobust.envs.navigation import (
    ACTION_LIMIT,
    FALL_COST,
    GOAL_RADIUS,
    MAX_EPISODE_STEPS,
    Navigation2DEnv,
    Navigation2DVectorEnv,
    move,
)
from metarobust.envs.tasks import is_positive_number
from metarobust.errors import ConfigError

ENV_ID = "metarobust/Navigation2DAdv-v0"
DEFAULT_WIND = ACTION_LIMIT / 2  # half the agent's per-step speed limit, per component


def check_wind(wind: Any) -> float:
    """The wind budget as a float, or a one-line ConfigError."""
    if not is_positive_number(wind):
        raise ConfigError(
            f"{ENV_ID}: wind must be a positive finite number (the bound on each wind "
            f"component, in distance per step), got {wind!r}"
        )
    return float(wind)


def _action_space() -> spaces.Box:
    # [protagonist move x, y (within the speed limit), adversary wind x, y (in [-1, 1])]
    high = np.array([ACTION_LIMIT, ACTION_LIMIT, 1.0, 1.0], dtype=np.float32)
    return spaces.Box(-high, high, dtype=np.float32)


def _split(actions: np.ndarray, wind: float) -> tuple[np.ndarray, np.ndarray]:
    """``actions [n, 4] float32`` -> protagonist moves ``[n, 2]``, wind ``[n, 2] float32``."""
    gust = np.clip(actions[:, 2:].astype(np.float64), -1.0, 1.0)
    return actions[:, :2], (wind * gust).astype(np.float32)


class Navigation2DWindEnv(Navigation2DEnv):
    """Navigation2D whose adversary adds a wind of at most ``wind`` per component each step."""

    metadata: dict[str, Any] = {"render_modes": [], "players": (2, 2)}

    def __init__(
        self,
        task: Mapping[str, Any] | None = None,
        wind: float = DEFAULT_WIND,
        platform_radius: float | None = None,
        fall_cost: float = FALL_COST,
    ) -> None:
        self.wind = check_wind(wind)
        super().__init__(task, platform_radius, fall_cost)
        self.protagonist_action_space = self.action_space
        self.adversary_action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = _action_space()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move by the protagonist's clipped move plus the adversary's wind."""
        actions = np.asarray(action, dtype=np.float32).reshape(1, 4)
        moves, wind = _split(actions, self.wind)
        self._pos, distance = move(self._pos, moves, self._goal, wind)
        reward = float(self.platform.reward(self._pos, distance)[0])
        info = {"adversary_reward": -reward, "wind": wind[0]}
        return self._pos[0].copy(), reward, bool(distance[0] < GOAL_RADIUS), False, info


class Navigation2DWindVectorEnv(Navigation2DVectorEnv):
    """``num_envs`` :class:`Navigation2DWindEnv` in one NumPy step; otherwise exactly
    :class:`~metarobust.envs.navigation.Navigation2DVectorEnv` (autoreset modes, masked
    resets, tasks, ``get_state``/``set_state``). Infos add ``adversary_reward [n]``."""

    metadata: dict[str, Any] = {**Navigation2DVectorEnv.metadata, "players": (2, 2)}

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        task: Mapping[str, Any] | None = None,
        wind: float = DEFAULT_WIND,
        platform_radius: float | None = None,
        fall_cost: float = FALL_COST,
    ) -> None:
        self.wind = check_wind(wind)
        super().__init__(
            num_envs, max_episode_steps, autoreset_mode, task, platform_radius, fall_cost
        )
        self.single_action_space = _action_space()
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def _step_envs(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        moves, wind = _split(actions, self.wind)
        self._pos, distance = move(self._pos, moves, self._task_values, wind)
        return self.platform.reward(self._pos, distance), distance < GOAL_RADIUS

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env (see :class:`~metarobust.envs.vector_base.TaskVectorEnv`)."""
        obs, rewards, terminated, truncated, infos = super().step(actions)
        infos = {
            **infos,
            "adversary_reward": -rewards,
            "_adversary_reward": np.ones(self.num_envs, dtype=np.bool_),
        }
        return obs, rewards, terminated, truncated, infos
