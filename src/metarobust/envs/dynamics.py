"""Dynamics tasks for any Gymnasium MuJoCo env: scaled masses, friction and joint damping, and a
constant push.

A dynamics task is ``{"mass_scale": s_m, "friction_scale": s_f, "damping_scale": s_d,
"force_x": f_x, "force_y": f_y, "force_z": f_z}``, each key optional (a missing scale is 1.0,
a missing force 0.0), each scale relative to the model's values when the wrapper was built.
What each key touches:

- ``mass_scale``: ``model.body_mass`` and ``model.body_inertia`` of every body. Scaling the
  inertia with the mass keeps each body a rigid body of the same shape (a density change, as
  editing the mass in the XML would give); scaling mass alone would not.
- ``friction_scale``: the sliding column (0) of ``model.geom_friction``. The torsional and
  rolling columns stay nominal: they only act for contacts with ``condim`` >= 4, which none of
  Gymnasium's v5 models use.
- ``damping_scale``: ``model.dof_damping``.
- ``force_x/y/z``: a force in newtons, in the world frame, on the first body after the world
  (the torso of the locomotion models, the cart of the pendulum) at its centre of mass, held
  through the whole episode (``data.xfrc_applied``, set again after every reset, which clears
  it): a wind or a slope the policy cannot see but can adapt to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.registration import load_env_creator

from metarobust.envs.tasks import DYNAMICS_KEYS, FORCE_KEYS, check_task_keys, read_number
from metarobust.errors import ConfigError

PUSHED_BODY = 1  # the body a task's force acts on: the first after the world
BodyIndex = slice | np.ndarray  # bodies, geoms or dofs a scale touches: all, or these


def read_dynamics(
    task: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
    """A task's other keys, its scales (a missing one 1.0) and the forces it gives, each
    number checked (a one-line ConfigError names a bad one)."""
    own = DYNAMICS_KEYS + FORCE_KEYS
    rest = {k: v for k, v in task.items() if k not in own}
    scales = {k: read_number(task, k, positive=True) if k in task else 1.0 for k in DYNAMICS_KEYS}
    forces = {k: read_number(task, k) for k in FORCE_KEYS if k in task}
    return rest, scales, forces


class ModelDynamics:
    """A task's scales and push on one MuJoCo model: each scale multiplies the nominal values
    (recorded at construction) of the ``bodies`` (mass and inertia), the ``geoms`` (sliding
    friction) and the ``dofs`` (damping), all by default; the force acts on ``pushed_body``.
    Never scales in place: model edits persist across resets, so tasks must not compound."""

    def __init__(
        self,
        model: mujoco.MjModel,
        *,
        bodies: BodyIndex = slice(None),
        geoms: BodyIndex = slice(None),
        dofs: BodyIndex = slice(None),
        pushed_body: int = PUSHED_BODY,
    ) -> None:
        self.model, self.pushed_body = model, pushed_body
        self._bodies, self._geoms, self._dofs = bodies, geoms, dofs
        # mj_setConst needs an MjData to work in; a private one leaves the env's state alone.
        self._scratch = mujoco.MjData(model)
        self._nominal_mass = model.body_mass[bodies].copy()
        self._nominal_inertia = model.body_inertia[bodies].copy()
        self._nominal_friction = model.geom_friction[geoms, 0].copy()
        self._nominal_damping = model.dof_damping[dofs].copy()

    def apply(self, scales: Mapping[str, float]) -> None:
        """Set the model to ``scales`` (every key of ``DYNAMICS_KEYS``) times nominal."""
        model, mass = self.model, scales["mass_scale"]
        model.body_mass[self._bodies] = self._nominal_mass * mass
        model.body_inertia[self._bodies] = self._nominal_inertia * mass
        model.geom_friction[self._geoms, 0] = self._nominal_friction * scales["friction_scale"]
        model.dof_damping[self._dofs] = self._nominal_damping * scales["damping_scale"]
        # Recompute what the compiler derived from the masses (subtree masses, invweight0 used
        # by constraint softness, actuator acc0); at scale 1.0 this restores them to the bit.
        mujoco.mj_setConst(model, self._scratch)

    def push(self, data: mujoco.MjData, forces: Mapping[str, float]) -> None:
        """Hold ``forces`` (the force keys given; a missing one 0.0) on the pushed body; MuJoCo's
        reset clears it, so call this again after every reset."""
        data.xfrc_applied[self.pushed_body, :3] = [forces.get(k, 0.0) for k in FORCE_KEYS]


class DynamicsTask(gym.Wrapper):
    """Wrap a MuJoCo env so its task sets mass / friction / damping scales and a constant
    force (see module doc).

    Takes its task through ``reset(options={"task": task})`` or ``set_task``. Scales always
    apply to the nominal values recorded at construction, so tasks never compound, and persist
    across resets (MuJoCo keeps model edits) until the next task; so does the force. Other keys
    are forwarded to the wrapped env's own ``set_task`` if it has one (so a ``HalfCheetahVel``
    env can take ``{"velocity": 1.0, "mass_scale": 0.8, "force_x": -20.0}``).
    """

    def __init__(self, env: gym.Env, task: Mapping[str, Any] | None = None) -> None:
        super().__init__(env)
        model = getattr(env.unwrapped, "model", None)
        if not isinstance(model, mujoco.MjModel):
            raise ConfigError(f"DynamicsTask needs a MuJoCo env (with a .model), got {env}")
        self._dynamics = ModelDynamics(model)
        self._scales = dict.fromkeys(DYNAMICS_KEYS, 1.0)
        self._forces: dict[str, float] = {}  # the force keys the task gave
        self._forwards_tasks = env.has_wrapper_attr("set_task")
        self.set_task({} if task is None else task)

    @property
    def task(self) -> dict[str, Any]:
        """The current task: the three scales, the force keys it gave, plus the wrapped env's
        task if it has one."""
        inner = self.env.get_wrapper_attr("task") if self._forwards_tasks else {}
        return {**inner, **self._scales, **self._forces}

    def set_task(self, task: Mapping[str, Any]) -> None:
        """Switch to ``task`` (missing scales = 1.0, forces 0.0); it takes effect from the next
        step."""
        if not (self._forwards_tasks and isinstance(task, Mapping)):
            check_task_keys(task, self._name(), required=(), optional=DYNAMICS_KEYS + FORCE_KEYS)
        rest, scales, forces = read_dynamics(task)
        if rest:
            self.env.get_wrapper_attr("set_task")(rest)
        self._dynamics.apply(scales)
        self._scales, self._forces = scales, forces
        self._push()

    def _push(self) -> None:
        self._dynamics.push(self.env.unwrapped.data, self._forces)

    def _name(self) -> str:
        spec = self.env.unwrapped.spec
        return f"DynamicsTask({spec.id if spec else type(self.env.unwrapped).__name__})"

    def __getstate__(self) -> dict[str, Any]:
        # Unpickling rebuilds the MuJoCo env from its constructor (EzPickle), i.e. at nominal
        # dynamics with a new model: drop what points at the old one, re-apply on the new.
        state = self.__dict__.copy()
        del state["_dynamics"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._dynamics = ModelDynamics(self.env.unwrapped.model)
        self._dynamics.apply(self._scales)
        self._push()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the wrapped env; ``options={"task": task}`` switches task first."""
        if options is not None and "task" in options:
            self.set_task(options["task"])
            options = {k: v for k, v in options.items() if k != "task"}
        observation, info = self.env.reset(seed=seed, options=options)
        self._push()  # MuJoCo's reset cleared it
        return observation, info


def dynamics_entry_point(
    base_id: str, task: Mapping[str, Any] | None = None, **kwargs: Any
) -> DynamicsTask:
    """Entry point of ``metarobust/<Name>Dynamics-v0``: the bare ``base_id`` env, wrapped.

    Built from the base spec's entry point (not ``gym.make``) so the registered id's own time
    limit and checker wrappers are the only ones.
    """
    spec = gym.spec(base_id)
    creator = spec.entry_point
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    return DynamicsTask(creator(**{**spec.kwargs, **kwargs}), task)


def make_dynamics_env(
    env_id: str, task: Mapping[str, Any] | None = None, **kwargs: Any
) -> DynamicsTask:
    """``gym.make(env_id, **kwargs)`` (any MuJoCo env id) wrapped in :class:`DynamicsTask`."""
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise ConfigError(f"cannot make env id {env_id!r}: {e}") from e
    return DynamicsTask(env, task)
