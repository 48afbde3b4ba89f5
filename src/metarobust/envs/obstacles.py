"""The obstacle world: ``metarobust/Navigation2DObstacles-v0``, single and natively vectorized.

A point moves in the walled arena ``[-1, 1]^2`` from a level's start towards its goal, by its
action clipped to ``ACTION_LIMIT`` per component each step. Walls are line segments that no
step, however long, passes through: a move that meets one stops just before it and slides
along it (``metarobust.envs.geometry`` holds the moves and the rays).

Observation (float32): position, goal, and the free distance along ``NUM_RAYS`` rays at fixed
world angles, each divided by ``RAY_RANGE`` and capped at 1 (a policy can read an unseen layout
from them). Reward: minus ``distance_weight`` (default 1) times the distance to the goal after
the move, plus ``ARRIVAL_BONUS`` on arrival (within ``GOAL_RADIUS``), which terminates the
episode; ``distance_weight=0`` leaves only the arrival bonus, as in dcd's mazes, where the
discount is what makes a shorter way pay. The distance is the straight line (``distance=
"straight"``, the default), which pays a policy for waiting at a wall between it and the goal,
or the walking distance around the walls (``distance="walking"``,
``metarobust.envs.geodesic``), which falls along every way to the goal and nowhere else.

A level is the task ``{"start": [x, y], "goal": [x, y], "walls": [[x1, y1, x2, y2], ...]}``
(``metarobust.envs.levels``; random levels and ACCEL's edits in
``metarobust.envs.level_generation``), set through ``reset(options={"task": level})``. The
single env and the vector env share one step function, so N single envs and a vector of N agree
to the bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from metarobust.envs.geodesic import WalkingGeometry, walking_distance
from metarobust.envs.geometry import (
    ACTION_LIMIT,
    ARENA,
    GOAL_RADIUS,
    NUM_RAYS,
    LevelGeometry,
    move_point,
    ray_readings,
)
from metarobust.envs.levels import ROW_LENGTH, level_dict, level_row
from metarobust.envs.task_env import TaskEnv
from metarobust.envs.tasks import is_nonnegative_number
from metarobust.envs.vector_base import TaskVectorEnv
from metarobust.errors import ConfigError

ARRIVAL_BONUS = 10.0
MAX_EPISODE_STEPS = 200
OBS_DIM = 4 + NUM_RAYS
DEFAULT_LEVEL: dict[str, Any] = {
    "start": [-0.8, -0.8],
    "goal": [0.8, 0.8],
    "walls": [[-0.6, 0.2, 0.6, -0.2]],
}


def observe(pos: np.ndarray, geometry: LevelGeometry) -> np.ndarray:
    """``[position, goal, ray readings]`` (float32, ``[n, OBS_DIM]``)."""
    readings = ray_readings(pos, geometry)
    return np.concatenate([pos, geometry.goals, readings], axis=1, dtype=np.float32)


@dataclass(frozen=True)
class Reward:
    """What a step pays (module doc): the arrival bonus, minus ``distance_weight`` times the
    ``distance`` (``"straight"`` or ``"walking"``) to the goal."""

    distance_weight: float = 1.0
    distance: str = "straight"

    @classmethod
    def checked(cls, distance_weight: Any, distance: Any) -> Reward:
        """The reward of the env's keyword arguments, or a one-line ConfigError."""
        if not is_nonnegative_number(distance_weight):
            raise ConfigError(
                f"distance_weight expected a finite number >= 0, got {distance_weight!r}"
            )
        if distance not in DISTANCES:
            raise ConfigError(f"distance expected one of {', '.join(DISTANCES)}, got {distance!r}")
        return cls(float(distance_weight), distance)


DISTANCES = ("straight", "walking")


def step_points(
    pos: np.ndarray, actions: np.ndarray, geometry: WalkingGeometry, reward: Reward
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of a batch: new positions, rewards (float64), arrived ``[n]``."""
    _, new_pos = move_point(pos, actions, geometry.walls)
    diff = new_pos - geometry.goals
    distance = np.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])
    arrived = distance < GOAL_RADIUS
    if reward.distance == "walking" and reward.distance_weight:
        distance = walking_distance(new_pos, geometry.goals, geometry.maps, geometry.walls)
    return new_pos, ARRIVAL_BONUS * arrived - reward.distance_weight * distance, arrived


def _spaces() -> tuple[spaces.Box, spaces.Box]:
    low = np.concatenate([[-ARENA] * 4, np.zeros(NUM_RAYS)]).astype(np.float32)
    high = np.concatenate([[ARENA] * 4, np.ones(NUM_RAYS)]).astype(np.float32)
    observation = spaces.Box(low, high, dtype=np.float32)
    action = spaces.Box(-ACTION_LIMIT, ACTION_LIMIT, shape=(2,), dtype=np.float32)
    return observation, action


class Navigation2DObstaclesEnv(TaskEnv):
    """The obstacle world (see the module doc); the task is a level."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        task: Mapping[str, Any] | None = None,
        distance_weight: float = 1.0,
        distance: str = "straight",
    ) -> None:
        self.observation_space, self.action_space = _spaces()
        self.reward = Reward.checked(distance_weight, distance)
        self._pos = np.zeros((1, 2))
        self.set_task(DEFAULT_LEVEL if task is None else task)

    @property
    def task(self) -> dict[str, Any]:
        """The current level (a fresh dict)."""
        return level_dict(self._row[0].tolist())

    def set_task(self, task: Mapping[str, Any]) -> None:
        """Switch to the level ``task``; it takes effect from the next reset."""
        self._set_row(level_row(task)[None])

    def _set_row(self, row: np.ndarray) -> None:
        self._row, self._geometry = row, WalkingGeometry(row)

    def start_episode(self, seed: int | None) -> tuple[np.ndarray, dict[str, Any]]:
        """Back to the level's start."""
        self._pos = self._row[:, :2].copy()
        return observe(self._pos, self._geometry)[0], {}

    def get_state(self) -> dict[str, Any]:
        """Position and level, checkpoint-safe."""
        return {"pos": self._pos.tolist(), "level": self._row.tolist()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``get_state``."""
        self._pos = np.asarray(state["pos"], dtype=np.float64).reshape(1, 2)
        self._set_row(np.asarray(state["level"], dtype=np.float64).reshape(1, ROW_LENGTH))

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        actions = np.asarray(action, dtype=np.float32).reshape(1, 2)
        self._pos, reward, arrived = step_points(self._pos, actions, self._geometry, self.reward)
        return observe(self._pos, self._geometry)[0], float(reward[0]), bool(arrived[0]), False, {}


class Navigation2DObstaclesVectorEnv(TaskVectorEnv):
    """``num_envs`` obstacle worlds stepped in one NumPy operation, each with its own level and
    time limit; autoreset modes and masked resets as in ``TaskVectorEnv``."""

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        task: Mapping[str, Any] | None = None,
        distance_weight: float = 1.0,
        distance: str = "straight",
    ) -> None:
        super().__init__(num_envs, max_episode_steps, autoreset_mode)
        self.reward = Reward.checked(distance_weight, distance)
        self.single_observation_space, self.single_action_space = _spaces()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._pos = np.zeros((self.num_envs, 2))
        self._task_values = np.zeros((self.num_envs, ROW_LENGTH))  # levels, one row each
        self._geometry: WalkingGeometry | None = None  # of _task_values, made when first needed
        self.set_task(DEFAULT_LEVEL if task is None else task)

    def _tasks_changed(self) -> None:
        self._geometry = None  # a batch of resets into many levels builds it once, not per level

    @property
    def geometry(self) -> WalkingGeometry:
        """The current levels' geometry."""
        if self._geometry is None:
            self._geometry = WalkingGeometry(self._task_values)
        return self._geometry

    def _parse_task(self, task: Any) -> np.ndarray:
        return level_row(task)

    def _task_dict(self, value: list[float]) -> dict[str, Any]:
        return level_dict(value)

    def _reset_envs(self, mask: np.ndarray, seeds: Sequence[int | None]) -> None:
        self._pos[mask] = self._task_values[mask, :2]

    def _step_envs(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._pos, rewards, arrived = step_points(self._pos, actions, self.geometry, self.reward)
        return rewards, arrived

    def _observe(self) -> np.ndarray:
        return observe(self._pos, self.geometry)

    def get_state(self) -> dict[str, Any]:
        """Every env's position, level, step count and RNG, checkpoint-safe."""
        return {
            "pos": self._pos.tolist(),
            "levels": self._task_values.tolist(),
            **self._counter_state(),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``get_state``."""
        self._pos = np.asarray(state["pos"], dtype=np.float64).reshape(self.num_envs, 2)
        self._task_values = np.asarray(state["levels"], dtype=np.float64).reshape(
            self.num_envs, ROW_LENGTH
        )
        self._tasks_changed()
        self._set_counter_state(state)
