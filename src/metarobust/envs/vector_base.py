"""What every natively vectorized metarobust env shares: seeds, reset masks, tasks, autoreset.

:class:`TaskVectorEnv` implements ``reset``/``step`` once, with Gymnasium's three autoreset
modes, its own time limit and masked resets; a subclass only holds the per-env simulator state
and fills in the hooks: ``_reset_envs``, ``_step_envs``, ``_observe``, and ``_parse_task`` /
``_task_dict`` for its tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

Seeds = int | Sequence[int | None] | None


class TaskVectorEnv(VectorEnv):
    """``num_envs`` task envs stepped together, with their own time limit.

    ``autoreset_mode`` is any :class:`gymnasium.vector.AutoresetMode` and behaves as in
    :class:`gymnasium.vector.SyncVectorEnv`: NEXT_STEP resets an env on the step after its
    episode ended (that step's action is ignored, reward 0), SAME_STEP resets it at once and puts
    ``final_obs``/``final_info`` in the infos, DISABLED refuses to step a finished env until
    ``reset(options={"reset_mask": mask})`` resets it. Seeds follow SyncVectorEnv too: an int
    ``s`` gives env ``i`` the seed ``s + i``, a list gives one seed (or None) per env.

    Subclasses set the spaces, ``_task_values`` (one row per env) and ``_action_dtype``.
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}
    _task_values: np.ndarray  # [num_envs, ...] the parsed task of every env
    _action_dtype: type = np.float32

    def __init__(
        self,
        num_envs: int,
        max_episode_steps: int,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
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

        n = self.num_envs
        self._steps = np.zeros(n, dtype=np.int64)
        # Envs whose episode ended on the previous step (what NEXT_STEP resets, DISABLED refuses).
        self._ended = np.zeros(n, dtype=np.bool_)
        self._was_reset = False

    # ------------------------------------------------------------------ hooks

    def _parse_task(self, task: Any) -> Any:
        """The checked task, in the form one row of ``_task_values`` holds."""
        raise NotImplementedError

    def _task_dict(self, value: Any) -> dict[str, Any]:
        """The task dict of one ``_task_values.tolist()`` entry."""
        raise NotImplementedError

    def _reset_envs(self, mask: np.ndarray, seeds: Sequence[int | None]) -> None:
        """Start a new episode in the envs where ``mask`` is True (``seeds[i]`` None: no reseed)."""
        raise NotImplementedError

    def _step_envs(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance every env by its row of ``actions``: rewards (float64), terminated ``[n]``."""
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        """A fresh ``[n, *obs_shape]`` array of the current observations."""
        raise NotImplementedError

    # ------------------------------------------------------------------ tasks

    @property
    def tasks(self) -> list[dict[str, Any]]:
        """The current task of every env, in env order (fresh dicts)."""
        return [self._task_dict(v) for v in self._task_values.tolist()]

    def set_task(self, task: Mapping[str, Any], mask: np.ndarray | None = None) -> None:
        """Give ``task`` to every env (or to those where ``mask`` is True)."""
        value = self._parse_task(task)
        if mask is None:
            self._task_values[:] = value
        else:
            self._task_values[mask] = value
        self._tasks_changed()

    def set_tasks(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        """Give env ``i`` the task ``tasks[i]`` (one task per env)."""
        if len(tasks) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} tasks (one per env), got {len(tasks)}")
        self._task_values[:] = [self._parse_task(t) for t in tasks]
        self._tasks_changed()

    def _tasks_changed(self) -> None:
        """Called after ``_task_values`` changed, for subclasses that derive from them."""

    # ------------------------------------------------------------------ reset / step

    def reset(
        self, *, seed: Seeds = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all envs, or only ``options["reset_mask"]``; ``options["task"]`` re-tasks them."""
        seeds = self._seed_list(seed)
        super().reset(seed=seeds[0])  # the vector env's own np_random

        options = options or {}
        mask = options.get("reset_mask")
        if mask is None:
            mask = np.ones(self.num_envs, dtype=np.bool_)
        elif not _is_mask(mask, self.num_envs):
            raise ValueError(
                f"options['reset_mask'] must be a np.bool_ array of shape "
                f"({self.num_envs},), got {mask!r}"
            )
        if "task" in options:
            self.set_task(options["task"], mask)
        self._reset_envs(mask, seeds)
        self._steps[mask] = 0
        self._ended[mask] = False
        self._was_reset = True
        return self._observe(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env: observations, rewards (float64), terminated, truncated ``[n]``, infos.

        Infos are empty apart from SAME_STEP's ``final_obs``/``final_info``.
        """
        if not self._was_reset:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, dtype=self._action_dtype)
        expected = (self.num_envs, *self.single_action_space.shape)
        if actions.shape != expected:
            raise ValueError(f"expected actions of shape {expected}, got {actions.shape}")
        ended = self._ended
        if self.autoreset_mode is AutoresetMode.DISABLED and ended.any():
            raise RuntimeError(
                f"envs {np.flatnonzero(ended).tolist()} finished their episode; with autoreset "
                "DISABLED reset them (options={'reset_mask': ...}) before stepping again"
            )

        rewards, terminated = self._step_envs(actions)
        steps = self._steps + 1
        truncated = steps >= self.max_episode_steps
        infos: dict[str, Any] = {}

        if self.autoreset_mode is AutoresetMode.NEXT_STEP and ended.any():
            # This step only resets the envs that ended last step: their action is ignored.
            self._reset_envs(ended, self._no_seeds())
            steps[ended] = 0
            rewards[ended] = 0.0
            terminated[ended] = False
            truncated[ended] = False

        obs = self._observe()
        done = terminated | truncated
        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            if done.any():
                infos = _final_infos(obs, done)
                self._reset_envs(done, self._no_seeds())
                steps[done] = 0
                obs = self._observe()
            self._ended = np.zeros(self.num_envs, dtype=np.bool_)
        else:
            self._ended = done

        self._steps = steps
        return obs, rewards, terminated, truncated, infos

    # ------------------------------------------------------------------ state

    def _counter_state(self) -> dict[str, Any]:
        """Step counters, episode ends and the vector env's RNG, checkpoint-safe."""
        return {
            "steps": self._steps.tolist(),
            "ended": self._ended.tolist(),
            "was_reset": self._was_reset,
            "np_random": self.np_random.bit_generator.state,
        }

    def _set_counter_state(self, state: Mapping[str, Any]) -> None:
        self._steps = np.asarray(state["steps"], dtype=np.int64)
        self._ended = np.asarray(state["ended"], dtype=np.bool_)
        self._was_reset = bool(state["was_reset"])
        self.np_random.bit_generator.state = state["np_random"]

    # ------------------------------------------------------------------ helpers

    def _seed_list(self, seed: Seeds) -> list[int | None]:
        if seed is None:
            return self._no_seeds()
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds, got {len(seed)}")
        return [None if s is None else int(s) for s in seed]

    def _no_seeds(self) -> list[int | None]:
        return [None] * self.num_envs


def _is_mask(mask: Any, n: int) -> bool:
    return isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (n,)


def _final_infos(obs: np.ndarray, done: np.ndarray) -> dict[str, Any]:
    # The layout SyncVectorEnv builds: an object array of per-env final observations.
    final_obs = np.full(len(done), None, dtype=object)
    index = np.flatnonzero(done)
    # Plain-Python iteration: a per-element loop is unavoidable for an object array.
    for i, row in zip(index.tolist(), list(obs[index]), strict=True):
        final_obs[i] = row
    return {
        "final_obs": final_obs,
        "_final_obs": done.copy(),
        "final_info": {},
        "_final_info": done.copy(),
    }
