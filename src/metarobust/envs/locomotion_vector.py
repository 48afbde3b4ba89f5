"""HalfCheetah velocity and direction tasks (MAML paper), natively vectorized on MuJoCo.

``num_envs`` ``MjData`` share one ``MjModel``, loaded as Gymnasium's HalfCheetah-v5 loads it.
A step is one ``mj_step(model, data, nstep=frame_skip)`` per env in a tight loop; observations
and rewards of all envs are then computed with NumPy. Env ``i`` reset with seed ``s`` gives
exactly the numbers of ``gymnasium.make("metarobust/HalfCheetahVel-v0")`` (or ``Dir``) reset
with seed ``s`` and stepped with the same actions: it draws its reset noise from its own
generator in the same order, and does the same float64 arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from metarobust.envs.rng import generator_from_state
from metarobust.envs.tasks import check_task_keys, read_direction, read_number
from metarobust.envs.vector_base import TaskVectorEnv

MAX_EPISODE_STEPS = 200  # MuJoCo task episodes in the MAML paper

# State specs as plain ints: the bindings convert an mjtState argument slowly (~1 us a call).
# qpos then qvel, written by one mj_getState call: the observation and the x position.
_QSTATE = int(mujoco.mjtState.mjSTATE_QPOS | mujoco.mjtState.mjSTATE_QVEL)
# Everything mj_step reads (solver warm start included), so a restored env continues exactly.
_PHYSICS = int(mujoco.mjtState.mjSTATE_INTEGRATION)


class HalfCheetahTaskVectorEnv(TaskVectorEnv):
    """``num_envs`` HalfCheetah-v5 envs with reward ``task_term(forward_velocity) - 0.05 |a|^2``.

    Observations (``qpos[1:]``, ``qvel``; float64), spaces, reset noise and time limit are the
    single env's; actions are not clipped (MuJoCo clamps ``ctrl`` to its range, as in the single
    env). Per-env infos are not reported, to keep the step loop tight: ``step`` returns ``{}``
    (SAME_STEP adds ``final_obs`` and an empty ``final_info``). Autoreset, reset masks, seeds and
    tasks behave as described in :class:`~metarobust.envs.vector_base.TaskVectorEnv`.
    """

    DEFAULT_TASK: dict[str, Any] = {}
    _action_dtype = np.float64  # as the single env: ctrl and the control cost are float64

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        task: Mapping[str, Any] | None = None,
        ctrl_cost_weight: float = 0.05,
        reset_noise_scale: float = 0.1,
        xml_file: str = "half_cheetah.xml",
        frame_skip: int = 5,
    ) -> None:
        super().__init__(num_envs, max_episode_steps, autoreset_mode)
        # One v5 env, built once, gives the model, initial state and spaces the single env has.
        template = HalfCheetahEnv(
            xml_file=xml_file, frame_skip=frame_skip, reset_noise_scale=reset_noise_scale
        )
        self.model = template.model
        self.frame_skip = template.frame_skip
        self.dt = template.dt
        self._init_qpos = template.init_qpos.copy()
        self._init_qvel = template.init_qvel.copy()
        self.single_observation_space = template.observation_space
        self.single_action_space = template.action_space
        template.close()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._ctrl_cost_weight = float(ctrl_cost_weight)
        self._reset_noise_scale = float(reset_noise_scale)

        n, model = self.num_envs, self.model
        self._datas = [mujoco.MjData(model) for _ in range(n)]
        self._ctrls = [d.ctrl for d in self._datas]  # cached views: each attribute access costs
        # qpos and qvel of every env, kept equal to the MjData's: [n, nq + nv].
        self._qstate = np.zeros((n, model.nq + model.nv))
        self._qstate_rows = list(self._qstate)  # row views, one per env
        for data, row in zip(self._datas, self._qstate_rows, strict=True):
            mujoco.mj_getState(model, data, row, _QSTATE)
        # One reset-noise generator per env, as each single env has its own np_random.
        self._rngs = [seeding.np_random()[0] for _ in range(n)]
        self._task_values = np.zeros(n, dtype=np.float64)
        self.set_task(self.DEFAULT_TASK if task is None else task)

    def _task_reward(self, velocity: np.ndarray) -> np.ndarray:
        """The task term of every env, from its forward velocity ``[n]``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ TaskVectorEnv hooks

    def _reset_envs(self, mask: np.ndarray, seeds: Sequence[int | None]) -> None:
        # HalfCheetahEnv.reset: mj_resetData, qpos noise U(-s, s), qvel noise s * N(0, 1),
        # then mj_forward (MujocoEnv.set_state); one env at a time, each with its own generator.
        model, scale = self.model, self._reset_noise_scale
        for i in np.flatnonzero(mask).tolist():
            if seeds[i] is not None:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
            rng, data = self._rngs[i], self._datas[i]
            mujoco.mj_resetData(model, data)
            data.qpos[:] = self._init_qpos + rng.uniform(low=-scale, high=scale, size=model.nq)
            data.qvel[:] = self._init_qvel + scale * rng.standard_normal(model.nv)
            mujoco.mj_forward(model, data)
            mujoco.mj_getState(model, data, self._qstate_rows[i], _QSTATE)

    def _step_envs(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model, nstep = self.model, self.frame_skip
        step, get_state = mujoco.mj_step, mujoco.mj_getState
        x_before = self._qstate[:, 0].copy()
        # The hot loop: no mj_rnePostConstraint (as in the single env: nothing reads cfrc_ext).
        for data, ctrl, row, action in zip(
            self._datas, self._ctrls, self._qstate_rows, actions, strict=True
        ):
            ctrl[:] = action
            step(model, data, nstep)
            get_state(model, data, row, _QSTATE)
        velocity = (self._qstate[:, 0] - x_before) / self.dt
        # Summed left to right over the 6 actuators, as the single env's np.dot sums them.
        ctrl_cost = self._ctrl_cost_weight * (actions * actions).sum(axis=1)
        rewards = self._task_reward(velocity) - ctrl_cost
        return rewards, np.zeros(self.num_envs, dtype=np.bool_)

    def _observe(self) -> np.ndarray:
        return self._qstate[:, 1:].copy()  # [n, 17]: qpos without x, then qvel

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict[str, Any]:
        """Physics (MuJoCo's integration state), tasks, counters and RNGs; checkpoint-safe."""
        size = mujoco.mj_stateSize(self.model, _PHYSICS)
        physics = np.empty((self.num_envs, size))  # [n, state size]
        for data, row in zip(self._datas, physics, strict=True):
            mujoco.mj_getState(self.model, data, row, _PHYSICS)
        return {
            "physics": physics.tolist(),
            "tasks": self._task_values.tolist(),
            "env_rngs": [g.bit_generator.state for g in self._rngs],
            **self._counter_state(),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``get_state`` (on an env built with the same arguments)."""
        physics = np.asarray(state["physics"], dtype=np.float64)
        expected = (self.num_envs, mujoco.mj_stateSize(self.model, _PHYSICS))
        if physics.shape != expected:
            raise ValueError(f"expected physics state of shape {expected}, got {physics.shape}")
        rngs = [generator_from_state(s, f"env_rngs.{i}") for i, s in enumerate(state["env_rngs"])]
        if len(rngs) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} env_rngs, got {len(rngs)}")
        for data, row, qrow in zip(self._datas, physics, self._qstate_rows, strict=True):
            mujoco.mj_setState(self.model, data, row, _PHYSICS)
            mujoco.mj_getState(self.model, data, qrow, _QSTATE)
        self._task_values = np.asarray(state["tasks"], dtype=np.float64)
        self._rngs = rngs
        self._set_counter_state(state)


class HalfCheetahVelVectorEnv(HalfCheetahTaskVectorEnv):
    """Run at a target speed: task ``{"velocity": v}``, reward ``-|vel - v| - 0.05 |a|^2``."""

    DEFAULT_TASK = {"velocity": 1.0}

    def _parse_task(self, task: Any) -> float:
        check_task_keys(task, "HalfCheetahVel", required=("velocity",))
        return read_number(task, "velocity")

    def _task_dict(self, value: float) -> dict[str, Any]:
        return {"velocity": value}

    def _task_reward(self, velocity: np.ndarray) -> np.ndarray:
        return -np.abs(velocity - self._task_values)


class HalfCheetahDirVectorEnv(HalfCheetahTaskVectorEnv):
    """Run forward or backward: task ``{"direction": +1 or -1}``, reward ``dir*vel - 0.05|a|^2``."""

    DEFAULT_TASK = {"direction": 1}

    def _parse_task(self, task: Any) -> int:
        check_task_keys(task, "HalfCheetahDir", required=("direction",))
        return read_direction(task)

    def _task_dict(self, value: float) -> dict[str, Any]:
        return {"direction": int(value)}

    def _task_reward(self, velocity: np.ndarray) -> np.ndarray:
        return self._task_values * velocity
