"""MuJoCo locomotion task envs of the MAML paper, on Gymnasium's v5 models.

Each class subclasses the v5 env, keeps its observation exactly, and replaces the reward by the
task's. Forward velocity (``x_velocity``) and every reward term are reported in ``info``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from metarobust.envs.tasks import check_task_keys, read_direction, read_goal, read_number


def _checked_action(action: Any, nu: int) -> np.ndarray:
    # What MujocoEnv.do_simulation checks, minus its extra copy; float64 so the control cost
    # is not summed in float32 (MuJoCo stores ctrl as float64 either way).
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (nu,):
        raise ValueError(f"Action dimension mismatch. Expected {(nu,)}, found {action.shape}")
    return action


class _TaskMixin:
    """``set_task`` / ``task`` / ``reset(options={"task": ...})`` on top of a v5 env."""

    _ezpickle_kwargs: dict[str, Any]

    def _parse_task(self, task: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _apply_task(self, task: dict[str, Any]) -> None:
        raise NotImplementedError

    @property
    def task(self) -> dict[str, Any]:
        """The current task (a fresh dict)."""
        return {k: list(v) if isinstance(v, list) else v for k, v in self._task.items()}

    def set_task(self, task: Mapping[str, Any]) -> None:
        """Switch to ``task``; it takes effect from the next step."""
        self._task = self._parse_task(task)
        self._apply_task(self._task)
        # EzPickle rebuilds from constructor kwargs: keep them on the current task.
        if hasattr(self, "_ezpickle_kwargs"):
            self._ezpickle_kwargs["task"] = self.task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """v5 reset; ``options={"task": task}`` switches task first."""
        if options is not None and "task" in options:
            self.set_task(options["task"])
        return super().reset(seed=seed, options=options)  # type: ignore[misc]


# --------------------------------------------------------------------------- HalfCheetah


class _HalfCheetahTaskEnv(_TaskMixin, HalfCheetahEnv):
    """HalfCheetah-v5 with reward ``task_term(forward_velocity) - 0.05 * |a|^2`` (MAML paper)."""

    DEFAULT_TASK: dict[str, Any] = {}

    def __init__(
        self, task: Mapping[str, Any] | None = None, ctrl_cost_weight: float = 0.05, **kwargs: Any
    ) -> None:
        super().__init__(ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        utils.EzPickle.__init__(self, task=task, ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        self._dt = self.dt  # a property reading the model through pybind; read it once
        self.set_task(self.DEFAULT_TASK if task is None else task)

    def _task_reward(self, velocity: float) -> float:
        raise NotImplementedError

    def _step_mujoco_simulation(self, ctrl: np.ndarray, n_frames: int) -> None:
        # v5 follows every step with mj_rnePostConstraint to fill cfrc_ext & co; HalfCheetah's
        # observation and reward never read them, so skip that extra pass over the model.
        self.data.ctrl[:] = ctrl
        mujoco.mj_step(self.model, self.data, nstep=n_frames)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = _checked_action(action, self.model.nu)
        qpos = self.data.qpos
        x_before = float(qpos[0])
        self._step_mujoco_simulation(action, self.frame_skip)
        x_after = float(qpos[0])
        velocity = (x_after - x_before) / self._dt
        task_reward = self._task_reward(velocity)
        ctrl_cost = self._ctrl_cost_weight * float(np.dot(action, action))
        info = {
            "x_position": x_after,
            "x_velocity": velocity,
            "reward_forward": task_reward,
            "reward_ctrl": -ctrl_cost,
        }
        if self.render_mode == "human":
            self.render()
        skip = 1 if self._exclude_current_positions_from_observation else 0
        obs = np.concatenate((qpos[skip:], self.data.qvel))  # = HalfCheetahEnv._get_obs()
        return obs, task_reward - ctrl_cost, False, False, info


class HalfCheetahVelEnv(_HalfCheetahTaskEnv):
    """Run at a target speed: task ``{"velocity": v}``, reward ``-|vel - v| - 0.05 |a|^2``."""

    DEFAULT_TASK = {"velocity": 1.0}

    def _parse_task(self, task: Any) -> dict[str, Any]:
        check_task_keys(task, "HalfCheetahVel", required=("velocity",))
        return {"velocity": read_number(task, "velocity")}

    def _apply_task(self, task: dict[str, Any]) -> None:
        self._target_velocity = task["velocity"]

    def _task_reward(self, velocity: float) -> float:
        return -abs(velocity - self._target_velocity)


class HalfCheetahDirEnv(_HalfCheetahTaskEnv):
    """Run forward or backward: task ``{"direction": +1 or -1}``, reward ``dir*vel - 0.05|a|^2``."""

    DEFAULT_TASK = {"direction": 1}

    def _parse_task(self, task: Any) -> dict[str, Any]:
        check_task_keys(task, "HalfCheetahDir", required=("direction",))
        return {"direction": read_direction(task)}

    def _apply_task(self, task: dict[str, Any]) -> None:
        self._direction = task["direction"]

    def _task_reward(self, velocity: float) -> float:
        return self._direction * velocity


# --------------------------------------------------------------------------- Ant


class _AntTaskEnv(_TaskMixin, AntEnv):
    """Ant-v5 with reward ``task_term + healthy - ctrl cost - contact cost`` (v5's weights)."""

    DEFAULT_TASK: dict[str, Any] = {}
    _TASK_TERM = "reward_forward"  # the info key of the task's reward term

    def __init__(self, task: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        utils.EzPickle.__init__(self, task=task, **kwargs)
        self._main_body_id = self.model.body(self._main_body).id
        self._dt = self.dt  # a property reading the model through pybind; read it once
        self.set_task(self.DEFAULT_TASK if task is None else task)

    def _task_reward(self, xy: np.ndarray, xy_velocity: np.ndarray) -> float:
        raise NotImplementedError

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = _checked_action(action, self.model.nu)
        xy_before = self.data.xpos[self._main_body_id, :2].copy()
        self._step_mujoco_simulation(action, self.frame_skip)
        xy_after = self.data.xpos[self._main_body_id, :2].copy()
        xy_velocity = (xy_after - xy_before) / self._dt

        qpos, qvel = self.data.qpos, self.data.qvel
        min_z, max_z = self._healthy_z_range
        healthy = bool(
            np.isfinite(qpos).all() and np.isfinite(qvel).all() and min_z <= qpos[2] <= max_z
        )
        # One clip serves both the contact cost and the observation (v5 computes it twice).
        low, high = self._contact_force_range
        contact = np.minimum(np.maximum(self.data.cfrc_ext, low), high)  # np.clip, minus overhead

        task_reward = self._task_reward(xy_after, xy_velocity)
        healthy_reward = self._healthy_reward if healthy else 0.0
        ctrl_cost = self._ctrl_cost_weight * float(np.dot(action, action))
        flat = contact.ravel()
        contact_cost = self._contact_cost_weight * float(np.dot(flat, flat))
        reward = task_reward + healthy_reward - ctrl_cost - contact_cost
        terminated = (not healthy) and self._terminate_when_unhealthy

        info = {
            "x_position": float(xy_after[0]),
            "y_position": float(xy_after[1]),
            "x_velocity": float(xy_velocity[0]),
            "y_velocity": float(xy_velocity[1]),
            self._TASK_TERM: task_reward,
            "reward_ctrl": -ctrl_cost,
            "reward_contact": -contact_cost,
            "reward_survive": healthy_reward,
        }
        if self.render_mode == "human":
            self.render()
        return self._obs(contact), reward, terminated, False, info

    def _obs(self, contact: np.ndarray) -> np.ndarray:
        # Same layout and values as AntEnv._get_obs, reusing the clipped contact forces.
        skip = 2 if self._exclude_current_positions_from_observation else 0
        parts = [self.data.qpos[skip:], self.data.qvel]
        if self._include_cfrc_ext_in_observation:
            parts.append(contact[1:].ravel())
        return np.concatenate(parts)


class AntDirEnv(_AntTaskEnv):
    """Walk forward or backward along x: task ``{"direction": +1 or -1}``, term ``dir * vel_x``."""

    DEFAULT_TASK = {"direction": 1}

    def _parse_task(self, task: Any) -> dict[str, Any]:
        check_task_keys(task, "AntDir", required=("direction",))
        return {"direction": read_direction(task)}

    def _apply_task(self, task: dict[str, Any]) -> None:
        self._direction = task["direction"]

    def _task_reward(self, xy: np.ndarray, xy_velocity: np.ndarray) -> float:
        return self._direction * float(xy_velocity[0])


class AntVelEnv(_AntTaskEnv):
    """Walk along x at a target speed: task ``{"velocity": v}``, term ``-|vel_x - v|``."""

    DEFAULT_TASK = {"velocity": 1.0}

    def _parse_task(self, task: Any) -> dict[str, Any]:
        check_task_keys(task, "AntVel", required=("velocity",))
        return {"velocity": read_number(task, "velocity")}

    def _apply_task(self, task: dict[str, Any]) -> None:
        self._target_velocity = task["velocity"]

    def _task_reward(self, xy: np.ndarray, xy_velocity: np.ndarray) -> float:
        return -abs(float(xy_velocity[0]) - self._target_velocity)


class AntGoalEnv(_AntTaskEnv):
    """Reach a point: task ``{"goal": [x, y]}``, term ``-L1(torso xy - goal)`` (``reward_goal``)."""

    DEFAULT_TASK = {"goal": [2.0, 0.0]}
    _TASK_TERM = "reward_goal"

    def _parse_task(self, task: Any) -> dict[str, Any]:
        check_task_keys(task, "AntGoal", required=("goal",))
        return {"goal": read_goal(task)}

    def _apply_task(self, task: dict[str, Any]) -> None:
        self._goal = np.array(task["goal"], dtype=np.float64)

    def _task_reward(self, xy: np.ndarray, xy_velocity: np.ndarray) -> float:
        return -float(np.abs(xy - self._goal).sum())
