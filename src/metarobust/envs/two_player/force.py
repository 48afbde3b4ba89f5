"""Two-player MuJoCo envs for RARL (Pinto et al. 2017): a protagonist and a force adversary.

Both players see the base env's observation. One flat action holds both moves:
``[protagonist action, adversary action]``. The adversary's part, in [-1, 1] per component
(clipped), scales ``max_force`` newtons into a world-frame force on each listed body
(body-major, then axis in the given order: ``torso_x, torso_z, bfoot_x, ...``), written to
``data.xfrc_applied`` for the whole step. Normalised units give both players the same action
scale, as rllab's ``normalize`` wrapper did in the released RARL code. The game is zero-sum:
the reward is the protagonist's, ``info["adversary_reward"]`` is its negation.
``metadata["players"] = (protagonist_dim, adversary_dim)`` tells a sampler where to split the
action.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.registration import load_env_creator

from metarobust.envs.tasks import is_positive_number
from metarobust.errors import ConfigError

_AXES = "xyz"
# A Jacobian entry below this (metres per unit of generalized velocity) counts as zero.
_JACOBIAN_TOL = 1e-9


@dataclass(frozen=True)
class ForcePreset:
    """Where the adversary pushes: world-frame force axes on MuJoCo bodies, bounded per axis."""

    bodies: tuple[str, ...]
    """MuJoCo body names, each pushed at its centre of mass."""
    axes: str
    """World force axes applied on every body: a subset of ``"xyz"``, in action order."""
    max_force: float
    """Bound on each force component, in newtons."""


# The released RARL code caps each axis at 5 N x adv_fraction; the paper's runs use the cap.
RARL_MAX_FORCE = 5.0

# RARL §4.1 on Gymnasium's v5 models (Ant: the released code); keyed by base Gymnasium id.
FORCE_PRESETS: dict[str, ForcePreset] = {
    "InvertedPendulum-v5": ForcePreset(("pole",), "xz", RARL_MAX_FORCE),
    "HalfCheetah-v5": ForcePreset(("torso", "bfoot", "ffoot"), "xz", RARL_MAX_FORCE),
    # The paper pushes the swimmer's torso in 3D, but the v5 swimmer is planar in x-y (slider
    # x, slider y, hinge about z): a z force would move nothing, so only x and y are kept.
    "Swimmer-v5": ForcePreset(("torso",), "xy", RARL_MAX_FORCE),
    "Hopper-v5": ForcePreset(("foot",), "xz", RARL_MAX_FORCE),
    "Walker2d-v5": ForcePreset(("foot", "foot_left"), "xz", RARL_MAX_FORCE),
    # Not in the paper: the released code's AntAdv-v1 (gym-adv's
    # gym/envs/adversarial/mujoco/ant.py; its registration later commented out as needing
    # work) pushes the torso along x, y and z, 5 N per axis. Ant-v5's observation and contact
    # cost read cfrc_ext, which includes this force (clipped to 1 N): the protagonist sees it.
    "Ant-v5": ForcePreset(("torso",), "xyz", RARL_MAX_FORCE),
}


class AdversarialForceEnv(gym.Wrapper):
    """A MuJoCo env as a zero-sum two-player game: the adversary applies bounded body forces.

    ``env`` is a MuJoCo env or a Gymnasium id, built bare (no time limit) from its spec with
    ``base_kwargs``; ``name`` (default: the id) starts each ``ConfigError`` message. Tasks and
    seeds pass through ``reset`` to the wrapped env unchanged.
    """

    def __init__(
        self,
        env: gym.Env | str,
        bodies: Sequence[str],
        axes: str,
        max_force: float,
        *,
        name: str | None = None,
        **base_kwargs: Any,
    ) -> None:
        if isinstance(env, str):
            name, env = name or env, make_bare(env, base_kwargs)
        elif base_kwargs:
            raise TypeError("base_kwargs are only for an env given by id")
        name = name or _env_name(env)
        super().__init__(env)
        model = getattr(env.unwrapped, "model", None)
        if not isinstance(model, mujoco.MjModel):
            raise ConfigError(f"{name}: an adversarial force env needs a MuJoCo env")
        self.bodies, body_ids = _check_bodies(name, model, bodies)
        self.axes = _check_axes(name, axes)
        self.max_force = _check_max_force(name, max_force)
        _check_movable(name, model, self.bodies, body_ids, self.axes)

        # Component k of the adversary action is force xfrc_applied[_rows[k], _cols[k]].
        axis_cols = [_AXES.index(a) for a in self.axes]
        self._rows = np.repeat(body_ids, len(axis_cols))
        self._cols = np.tile(axis_cols, len(body_ids))

        protagonist = env.action_space
        if not isinstance(protagonist, gym.spaces.Box) or len(protagonist.shape) != 1:
            raise ConfigError(f"{name}: expected a flat Box action space, got {protagonist}")
        n_force = len(self._rows)
        self.protagonist_action_space = protagonist
        self.adversary_action_space = gym.spaces.Box(-1.0, 1.0, (n_force,), np.float32)
        self.action_space = gym.spaces.Box(
            np.concatenate([protagonist.low, self.adversary_action_space.low]),
            np.concatenate([protagonist.high, self.adversary_action_space.high]),
            dtype=np.float32,
        )
        self.metadata = {**env.metadata, "players": (protagonist.shape[0], n_force)}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Apply the adversary's clipped forces, then step the base env with the protagonist's."""
        action = np.asarray(action)
        if action.shape != self.action_space.shape:
            raise ValueError(f"expected an action of shape {self.action_space.shape}, got {action}")
        n_protagonist = self.protagonist_action_space.shape[0]
        force = self.max_force * np.clip(action[n_protagonist:].astype(np.float64), -1.0, 1.0)
        xfrc = self.unwrapped.data.xfrc_applied
        # Rewritten whole every step: torques and unlisted bodies stay exactly zero.
        xfrc[:] = 0.0
        xfrc[self._rows, self._cols] = force
        obs, reward, terminated, truncated, info = self.env.step(action[:n_protagonist])
        info = {**info, "adversary_reward": -reward, "adversary_force": force}
        return obs, reward, terminated, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Clear the forces (none leaks into the new episode) and reset the wrapped env."""
        self.unwrapped.data.xfrc_applied[:] = 0.0
        return self.env.reset(seed=seed, options=options)


def adversarial_entry_point(
    base_id: str,
    bodies: Sequence[str] | None = None,
    axes: str | None = None,
    max_force: float | None = None,
    **base_kwargs: Any,
) -> AdversarialForceEnv:
    """Entry point of ``metarobust/<Name>Adv-v0``: ``base_id`` with the adversary's forces.

    Missing ``bodies`` / ``axes`` / ``max_force`` come from the preset of ``base_id``, or, for
    an id without one (say ``metarobust/HopperDynamics-v0``), of the v5 env it is built on.
    """
    env = make_bare(base_id, base_kwargs)
    if bodies is None or axes is None or max_force is None:
        preset = _find_preset(base_id, env)
        if preset is None:
            if bodies is None or axes is None:
                raise ConfigError(
                    f"{base_id}: no force preset (presets: {sorted(FORCE_PRESETS)}); "
                    "give bodies and axes"
                )
            preset = ForcePreset(tuple(bodies), axes, RARL_MAX_FORCE)
        bodies = preset.bodies if bodies is None else bodies
        axes = preset.axes if axes is None else axes
        max_force = preset.max_force if max_force is None else max_force
    return AdversarialForceEnv(env, bodies, axes, max_force, name=base_id)


def make_bare(base_id: str, kwargs: dict[str, Any]) -> gym.Env:
    # From the spec's entry point, not gym.make: the registered id's TimeLimit stays the only one.
    try:
        spec = gym.spec(base_id)
    except gym.error.Error as e:
        raise ConfigError(f"cannot make env id {base_id!r}: {e}") from e
    creator = spec.entry_point
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    return creator(**{**spec.kwargs, **kwargs})


def _find_preset(base_id: str, env: gym.Env) -> ForcePreset | None:
    if base_id in FORCE_PRESETS:
        return FORCE_PRESETS[base_id]
    # A wrapped or derived base (a dynamics-task or a task env) uses its v5 model's preset.
    for preset_id, preset in FORCE_PRESETS.items():
        entry = gym.spec(preset_id).entry_point
        cls = load_env_creator(entry) if isinstance(entry, str) else entry
        if isinstance(cls, type) and isinstance(env.unwrapped, cls):
            return preset
    return None


def _env_name(env: gym.Env) -> str:
    spec = env.spec or env.unwrapped.spec
    return spec.id if spec is not None else type(env.unwrapped).__name__


def _body_names(model: mujoco.MjModel) -> list[str]:
    return [model.body(i).name for i in range(model.nbody)]


def _check_bodies(
    name: str, model: mujoco.MjModel, bodies: Sequence[str]
) -> tuple[tuple[str, ...], list[int]]:
    """The body names as a tuple, and their ids."""
    if isinstance(bodies, str) or not bodies:
        raise ConfigError(f"{name}: bodies must be a non-empty list of body names, got {bodies!r}")
    bodies = tuple(bodies)
    ids = []
    for body in bodies:
        body_id = (
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
            if isinstance(body, str)
            else -1
        )
        if body_id < 0:
            raise ConfigError(
                f"{name}: no body named {body!r}; the model's bodies: {_body_names(model)}"
            )
        ids.append(body_id)
    if len(set(bodies)) != len(bodies):
        raise ConfigError(f"{name}: each body may be listed once, got {list(bodies)}")
    return bodies, ids


def _check_axes(name: str, axes: str) -> str:
    valid = isinstance(axes, str) and axes != ""
    if not (valid and set(axes) <= set(_AXES) and len(set(axes)) == len(axes)):
        raise ConfigError(
            f"{name}: axes must be a non-empty subset of 'xyz' without repeats, got {axes!r}"
        )
    return axes


def _check_max_force(name: str, max_force: float) -> float:
    if not is_positive_number(max_force):
        raise ConfigError(
            f"{name}: max_force must be a positive number of newtons, got {max_force!r}"
        )
    return float(max_force)


def _check_movable(
    name: str, model: mujoco.MjModel, bodies: Sequence[str], body_ids: Sequence[int], axes: str
) -> None:
    """Refuse a force axis that produces no generalized force on any dof (it would move nothing).

    The body's translational Jacobian has an all-zero row for such an axis. It is taken at the
    initial pose and at a fixed generic one, because a symmetric initial pose can zero a row
    the model does move along (a pole hinged exactly below its centre of mass cannot rise when
    upright, a tilted one can).
    """
    scratch = mujoco.MjData(model)  # leaves the env's own state alone
    generic = model.qpos0 + np.random.default_rng(0).uniform(-0.5, 0.5, model.nq)
    jacp = np.zeros((3, model.nv))
    moves = np.zeros((len(body_ids), 3), dtype=bool)  # [body, world axis]
    for qpos in (model.qpos0, generic):
        scratch.qpos[:] = qpos
        mujoco.mj_forward(model, scratch)
        for i, body_id in enumerate(body_ids):
            mujoco.mj_jacBodyCom(model, scratch, jacp, None, body_id)
            moves[i] |= np.any(np.abs(jacp) > _JACOBIAN_TOL, axis=1)
    for i, body in enumerate(bodies):
        movable = "".join(a for col, a in enumerate(_AXES) if moves[i, col])
        if not movable:
            raise ConfigError(f"{name}: body {body!r} is fixed (no dof moves it); pick another")
        for axis in axes:
            if axis not in movable:
                raise ConfigError(
                    f"{name}: a force along {axis} on body {body!r} moves nothing (the model "
                    f"cannot move along {axis}); use axes from {movable!r}"
                )
