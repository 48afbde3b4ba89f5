"""2D point navigation from the MAML paper (Finn et al. 2017), single and natively vectorized.

A point starts at the origin and moves by its (clipped) action each step; the reward is minus
the Euclidean distance to the task's goal after the move, and the episode terminates once that
distance is below 0.01. Both classes share one NumPy step function, so a vector of N envs gives
bit-for-bit the numbers of N single envs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from metarobust.envs.tasks import check_task_keys, read_goal

ACTION_LIMIT = 0.1
GOAL_RADIUS = 0.01
MAX_EPISODE_STEPS = 100
DEFAULT_TASK: dict[str, Any] = {"goal": [0.5, 0.5]}

_LOW = np.float32(-ACTION_LIMIT)
_HIGH = np.float32(ACTION_LIMIT)


def _parse_task(task: Any) -> list[float]:
    return read_goal(check_task_keys(task, "Navigation2D", required=("goal",)))


def _move(pos: np.ndarray, actions: np.ndarray, goals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step for a batch: ``pos [n, 2] float32``, ``goals [n, 2] float64`` -> new pos, distance.

    The single env calls this with n = 1, which is what makes both envs agree to the bit.
    """
    new_pos = pos + np.clip(actions, _LOW, _HIGH)  # float32, as the observation is
    diff = new_pos.astype(np.float64) - goals
    # Written out (no hypot / norm) so every batch size runs the same correctly rounded ops.
    distance = np.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])
    return new_pos, distance


def _is_mask(mask: Any, n: int) -> bool:
    return isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (n,)


class Navigation2DEnv(gym.Env[np.ndarray, np.ndarray]):
    """MAML 2D navigation: obs = position (float32, (2,)), task ``{"goal": [x, y]}``."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, task: Mapping[str, Any] | None = None) -> None:
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

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Back to the origin; ``options={"task": task}`` switches task first."""
        super().reset(seed=seed)
        if options is not None and "task" in options:
            self.set_task(options["task"])
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
        self._pos, distance = _move(self._pos, actions, self._goal)
        d = float(distance[0])
        return self._pos[0].copy(), -d, d < GOAL_RADIUS, False, {}


class Navigation2DVectorEnv(VectorEnv):
    """``num_envs`` 2D navigation envs stepped in one NumPy operation, with their own time limit.

    ``autoreset_mode`` is any :class:`gymnasium.vector.AutoresetMode` and behaves as in
    :class:`gymnasium.vector.SyncVectorEnv` (``final_obs``/``final_info`` in SAME_STEP infos;
    in DISABLED mode stepping a finished env without resetting it is an error).
    ``reset(options={"reset_mask": mask, "task": task})`` resets (and re-tasks) only the masked
    envs. Reset is deterministic (the origin), so seeds only seed ``np_random``.
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        task: Mapping[str, Any] | None = None,
    ) -> None:
        if num_envs < 1 or max_episode_steps < 1:
            raise ValueError(
                f"need num_envs >= 1 and max_episode_steps >= 1, got {num_envs}, "
                f"{max_episode_steps}"
            )
        self.num_envs = int(num_envs)
        self.max_episode_steps = int(max_episode_steps)
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}

        self.single_observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.single_action_space = spaces.Box(
            -ACTION_LIMIT, ACTION_LIMIT, shape=(2,), dtype=np.float32
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        n = self.num_envs
        self._pos = np.zeros((n, 2), dtype=np.float32)
        self._goals = np.zeros((n, 2), dtype=np.float64)
        self._steps = np.zeros(n, dtype=np.int64)
        # Envs whose episode ended on the previous step (what NEXT_STEP resets, DISABLED refuses).
        self._ended = np.zeros(n, dtype=np.bool_)
        self._was_reset = False
        self.set_task(DEFAULT_TASK if task is None else task)

    @property
    def tasks(self) -> list[dict[str, Any]]:
        """The current task of every env, in env order (fresh dicts)."""
        return [{"goal": g} for g in self._goals.tolist()]

    def set_task(self, task: Mapping[str, Any], mask: np.ndarray | None = None) -> None:
        """Give ``task`` to every env (or to those where ``mask`` is True)."""
        goal = _parse_task(task)
        if mask is None:
            self._goals[:] = goal
        else:
            self._goals[mask] = goal

    def set_tasks(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        """Give env ``i`` the task ``tasks[i]`` (one task per env)."""
        if len(tasks) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} tasks (one per env), got {len(tasks)}")
        self._goals[:] = [_parse_task(t) for t in tasks]

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all envs, or only ``options["reset_mask"]``; ``options["task"]`` re-tasks them."""
        if seed is not None and not isinstance(seed, (int, np.integer)):
            if len(seed) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds, got {len(seed)}")
            seed = seed[0]
        super().reset(seed=seed)

        options = options or {}
        mask = options.get("reset_mask")
        if mask is None:
            mask = slice(None)
        elif not _is_mask(mask, self.num_envs):
            raise ValueError(
                f"options['reset_mask'] must be a np.bool_ array of shape "
                f"({self.num_envs},), got {mask!r}"
            )
        if "task" in options:
            self.set_task(options["task"], mask)
        self._pos[mask] = 0.0
        self._steps[mask] = 0
        self._ended[mask] = False
        self._was_reset = True
        return self._pos.copy(), {}

    def get_state(self) -> dict[str, Any]:
        """Every env's position, goal, step count and RNG, checkpoint-safe."""
        return {
            "pos": self._pos.tolist(),
            "goals": self._goals.tolist(),
            "steps": self._steps.tolist(),
            "ended": self._ended.tolist(),
            "was_reset": self._was_reset,
            "np_random": self.np_random.bit_generator.state,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``get_state``."""
        self._pos = np.asarray(state["pos"], dtype=np.float32)
        self._goals = np.asarray(state["goals"], dtype=np.float64)
        self._steps = np.asarray(state["steps"], dtype=np.int64)
        self._ended = np.asarray(state["ended"], dtype=np.bool_)
        self._was_reset = bool(state["was_reset"])
        self.np_random.bit_generator.state = state["np_random"]

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env: obs ``[n, 2]``, rewards (float64), terminated, truncated ``[n]``."""
        if not self._was_reset:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != (self.num_envs, 2):
            raise ValueError(f"expected actions of shape ({self.num_envs}, 2), got {actions.shape}")
        ended = self._ended
        if self.autoreset_mode is AutoresetMode.DISABLED and ended.any():
            raise RuntimeError(
                f"envs {np.flatnonzero(ended).tolist()} finished their episode; with autoreset "
                "DISABLED reset them (options={'reset_mask': ...}) before stepping again"
            )

        pos, distance = _move(self._pos, actions, self._goals)
        steps = self._steps + 1
        rewards = -distance
        terminated = distance < GOAL_RADIUS
        truncated = steps >= self.max_episode_steps
        infos: dict[str, Any] = {}

        if self.autoreset_mode is AutoresetMode.NEXT_STEP and ended.any():
            # This step only resets the envs that ended last step: their action is ignored.
            pos[ended] = 0.0
            steps[ended] = 0
            rewards[ended] = 0.0
            terminated[ended] = False
            truncated[ended] = False

        done = terminated | truncated
        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            if done.any():
                infos = self._final_infos(pos, done)
                pos[done] = 0.0
                steps[done] = 0
            self._ended = np.zeros(self.num_envs, dtype=np.bool_)
        else:
            self._ended = done

        self._pos, self._steps = pos, steps
        return pos.copy(), rewards, terminated, truncated, infos

    def _final_infos(self, pos: np.ndarray, done: np.ndarray) -> dict[str, Any]:
        # The layout SyncVectorEnv builds: an object array of per-env final observations.
        final_obs = np.full(self.num_envs, None, dtype=object)
        index = np.flatnonzero(done)
        # Plain-Python iteration: a per-element loop is unavoidable for an object array.
        for i, row in zip(index.tolist(), list(pos[index]), strict=True):
            final_obs[i] = row
        return {
            "final_obs": final_obs,
            "_final_obs": done.copy(),
            "final_info": {},
            "_final_info": done.copy(),
        }
