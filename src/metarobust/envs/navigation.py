"""2D point navigation from the MAML paper (Finn et al. 2017), single and natively vectorized.

A point starts at the origin and moves by its (clipped) action each step; the reward is minus
the Euclidean distance to the task's goal after the move, and the episode terminates once that
distance is below 0.01. Both classes share one NumPy step function, so a vector of N envs gives
bit-for-bit the numbers of N single envs.

``platform_radius`` (``metarobust/Navigation2DCliff-v0``) puts the point on a round platform:
every step that ends farther than that from the origin costs ``fall_cost`` more. Its goals lie
on a ring just inside the edge, so a nominal policy heads straight for the rim, and a push
past the goal takes it over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from metarobust.envs.task_env import TaskEnv
from metarobust.envs.tasks import (
    check_task_keys,
    is_nonnegative_number,
    is_positive_number,
    read_goal,
)
from metarobust.envs.vector_base import TaskVectorEnv
from metarobust.errors import ConfigError

ACTION_LIMIT = 0.1
GOAL_RADIUS = 0.01
MAX_EPISODE_STEPS = 100
DEFAULT_TASK: dict[str, Any] = {"goal": [0.5, 0.5]}
# Navigation2DCliff: goals on the ring of GOAL_RING_RADIUS, the edge half a step beyond it.
GOAL_RING_RADIUS = 0.5
PLATFORM_RADIUS = 0.55
FALL_COST = 1.0

_LOW = np.float32(-ACTION_LIMIT)
_HIGH = np.float32(ACTION_LIMIT)


def _parse_task(task: Any) -> list[float]:
    return read_goal(check_task_keys(task, "Navigation2D", required=("goal",)))


def move(
    pos: np.ndarray, actions: np.ndarray, goals: np.ndarray, wind: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One step for a batch: ``pos [n, 2] float32``, ``goals [n, 2] float64`` -> new pos, distance.

    ``wind [n, 2] float32``, if given, is added to the point's (clipped) move. The single envs
    call this with n = 1, which is what makes single and vector envs agree to the bit.
    """
    new_pos = pos + np.clip(actions, _LOW, _HIGH)  # float32, as the observation is
    if wind is not None:
        new_pos += wind
    diff = new_pos.astype(np.float64) - goals
    # Written out (no hypot / norm) so every batch size runs the same correctly rounded ops.
    distance = np.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])
    return new_pos, distance


class Platform:
    """The round platform of ``radius`` (None: no edge) and the extra cost of a step off it."""

    def __init__(self, radius: float | None, fall_cost: float) -> None:
        if radius is not None and not is_positive_number(radius):
            raise ConfigError(
                f"Navigation2D: platform_radius expected a finite number > 0 or null (no edge), "
                f"got {radius!r}"
            )
        if not is_nonnegative_number(fall_cost):
            raise ConfigError(
                f"Navigation2D: fall_cost expected a finite number >= 0, got {fall_cost!r}"
            )
        self.radius = None if radius is None else float(radius)
        self.fall_cost = float(fall_cost)

    def reward(self, pos: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """Minus ``distance``, and minus ``fall_cost`` more where ``pos [n, 2]`` is off."""
        if self.radius is None:
            return -distance
        p = pos.astype(np.float64)
        off = p[:, 0] * p[:, 0] + p[:, 1] * p[:, 1] > self.radius * self.radius
        return -distance - self.fall_cost * off


class Navigation2DEnv(TaskEnv):
    """MAML 2D navigation: obs = position (float32, (2,)), task ``{"goal": [x, y]}``."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        task: Mapping[str, Any] | None = None,
        platform_radius: float | None = None,
        fall_cost: float = FALL_COST,
    ) -> None:
        self.platform = Platform(platform_radius, fall_cost)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-ACTION_LIMIT, ACTION_LIMIT, shape=(2,), dtype=np.float32)
        self._pos = np.zeros((1, 2), dtype=np.float32)
        self._goal = np.zeros((1, 2), dtype=np.float64)
        self.set_task(DEFAULT_TASK if task is None else task)

    @property
    def task(self) -> dict[str, Any]:
        """The current task (a fresh dict)."""
        return {"goal": self._goal[0].tolist()}

    def set_task(self, task: Mapping[str, Any]) -> None:
        """Switch to ``task``; it takes effect from the next step."""
        self._goal[0] = _parse_task(task)

    def start_episode(self, seed: int | None) -> tuple[np.ndarray, dict[str, Any]]:
        """Back to the origin."""
        self._pos = np.zeros((1, 2), dtype=np.float32)
        return self._pos[0].copy(), {}

    def get_state(self) -> dict[str, Any]:
        """Position and goal, checkpoint-safe (resumed runs continue mid-episode)."""
        return {"pos": self._pos.tolist(), "goal": self._goal.tolist()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``get_state``."""
        self._pos = np.asarray(state["pos"], dtype=np.float32)
        self._goal = np.asarray(state["goal"], dtype=np.float64)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        actions = np.asarray(action, dtype=np.float32).reshape(1, 2)
        self._pos, distance = move(self._pos, actions, self._goal)
        reward = float(self.platform.reward(self._pos, distance)[0])
        return self._pos[0].copy(), reward, bool(distance[0] < GOAL_RADIUS), False, {}


class Navigation2DVectorEnv(TaskVectorEnv):
    """``num_envs`` 2D navigation envs stepped in one NumPy operation, with their own time limit.

    ``autoreset_mode`` is any :class:`gymnasium.vector.AutoresetMode` and behaves as in
    :class:`gymnasium.vector.SyncVectorEnv` (``final_obs``/``final_info`` in SAME_STEP infos;
    in DISABLED mode stepping a finished env without resetting it is an error).
    ``reset(options={"reset_mask": mask, "task": task})`` resets (and re-tasks) only the masked
    envs. Reset is deterministic (the origin), so seeds only seed ``np_random``.
    """

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        task: Mapping[str, Any] | None = None,
        platform_radius: float | None = None,
        fall_cost: float = FALL_COST,
    ) -> None:
        self.platform = Platform(platform_radius, fall_cost)
        super().__init__(num_envs, max_episode_steps, autoreset_mode)
        self.single_observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.single_action_space = spaces.Box(
            -ACTION_LIMIT, ACTION_LIMIT, shape=(2,), dtype=np.float32
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        self._pos = np.zeros((self.num_envs, 2), dtype=np.float32)
        self._task_values = np.zeros((self.num_envs, 2), dtype=np.float64)  # goals
        self.set_task(DEFAULT_TASK if task is None else task)

    def _parse_task(self, task: Any) -> list[float]:
        return _parse_task(task)

    def _task_dict(self, value: list[float]) -> dict[str, Any]:
        return {"goal": value}

    def _reset_envs(self, mask: np.ndarray, seeds: Sequence[int | None]) -> None:
        self._pos[mask] = 0.0

    def _step_envs(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._pos, distance = move(self._pos, actions, self._task_values)
        return self.platform.reward(self._pos, distance), distance < GOAL_RADIUS

    def _observe(self) -> np.ndarray:
        return self._pos.copy()

    def get_state(self) -> dict[str, Any]:
        """Every env's position, goal, step count and RNG, checkpoint-safe."""
        return {
            "pos": self._pos.tolist(),
            "goals": self._task_values.tolist(),
            **self._counter_state(),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``get_state``."""
        self._pos = np.asarray(state["pos"], dtype=np.float32)
        self._task_values = np.asarray(state["goals"], dtype=np.float64)
        self._set_counter_state(state)
