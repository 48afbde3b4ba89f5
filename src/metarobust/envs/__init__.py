"""Task-settable Gymnasium envs and task distributions; importing this registers the ids.

Registered ids (``gymnasium.make(id, task={...})`` sets the initial task):

- ``metarobust/Navigation2D-v0`` (100 steps; also ``gymnasium.make_vec`` natively vectorized)
- ``metarobust/Navigation2DCliff-v0``: the same on a round platform of radius 0.55, each step
  off it costing 1 more, goals on the ring of radius 0.5 (``metarobust.envs.navigation``)
- ``metarobust/Navigation2DObstacles-v0`` (200 steps; natively vectorized too): the obstacle
  world, whose tasks are levels ``{"start", "goal", "walls"}`` (``metarobust.envs.obstacles``)
- ``metarobust/HalfCheetahVel-v0``, ``metarobust/HalfCheetahDir-v0`` (200 steps; also
  ``gymnasium.make_vec`` natively vectorized)
- ``metarobust/AntDir-v0``, ``metarobust/AntVel-v0``, ``metarobust/AntGoal-v0`` (200 steps)
- ``metarobust/<Name>Dynamics-v0`` for InvertedPendulum, HalfCheetah, Hopper, Walker2d, Swimmer
  and Ant (v5 models and time limits), and for the five task envs above, whose task then holds
  theirs and the scales in one dict (``{"velocity": 1.0, "mass_scale": 0.8}``)
- ``metarobust/MetaWorld-v0`` and ``metarobust/MetaWorldDynamics-v0`` (500 steps; made only
  with the metaworld extra, so not in ``ENV_IDS``): Meta-World's tasks as data, the second
  with the object's dynamics in the task too (``metarobust.envs.meta_world``)

Every env above takes its task through ``reset(options={"task": task})``; the bare env (or,
through wrappers, ``env.get_wrapper_attr("set_task")``) also has ``set_task`` and ``task``.

Two-player ids for RARL (``ADVERSARIAL_ENV_IDS``, see ``metarobust.envs.two_player.force``):

- ``metarobust/<Name>Adv-v0`` for InvertedPendulum, HalfCheetah, Swimmer, Hopper and Walker2d
  (v5 models and time limits): one action ``[protagonist, adversary forces]``, split by
  ``metadata["players"]``. They take no task of their own; ``gymnasium.make(id,
  base_id="metarobust/HopperDynamics-v0")`` builds one on a task-settable base instead.
- ``metarobust/<Name>DynamicsAdv-v0`` for the same five: the adversary picks the mass and
  friction scales at each episode's first step (``metarobust.envs.two_player.dynamics``).
- ``metarobust/<Name>ObsAdv-v0`` for the same five: the adversary shifts the protagonist's
  observation by at most ``epsilon`` per component (``metarobust.envs.two_player.observation``).

Two-player task envs (``ADVERSARIAL_TASK_ENV_IDS``, also in ``ADVERSARIAL_ENV_IDS``): they take
the task of the env they are built on, through the same ``reset(options={"task": task})``, with
its time limit and its default task distribution (robust MAML):

- ``metarobust/<Task>Adv-v0`` for HalfCheetahVel, HalfCheetahDir, AntDir, AntVel and AntGoal:
  the RARL force preset of the model (HalfCheetah's or Ant's) on the task env (200 steps).
- ``metarobust/<Task>DynamicsAdv-v0`` for the same five: the dynamics adversary on the task
  env; the task (velocity, direction, goal) stays, the adversary picks the scales.
- ``metarobust/Navigation2DAdv-v0`` (100 steps; also ``gymnasium.make_vec`` natively
  vectorized): the adversary blows a wind of at most ``wind`` (default 0.05, half the point's
  speed limit) per component (``metarobust.envs.two_player.wind``); and
  ``metarobust/Navigation2DCliffAdv-v0``, the same wind on the cliff platform.
"""

from __future__ import annotations

import gymnasium as gym

from metarobust.envs.dynamics import DynamicsTask, make_dynamics_env
from metarobust.envs.locomotion import (
    AntDirEnv,
    AntGoalEnv,
    AntVelEnv,
    HalfCheetahDirEnv,
    HalfCheetahVelEnv,
)
from metarobust.envs.locomotion_vector import (
    HalfCheetahDirVectorEnv,
    HalfCheetahVelVectorEnv,
)
from metarobust.envs.meta_world import HORIZON as META_WORLD_HORIZON
from metarobust.envs.mujoco_warnings import route_mujoco_warnings
from metarobust.envs.navigation import PLATFORM_RADIUS, Navigation2DEnv, Navigation2DVectorEnv
from metarobust.envs.task_defaults import default_task_distribution
from metarobust.envs.tasks import (
    DiskGoal,
    DynamicsScales,
    RandomDirection,
    RingGoal,
    TaskDistribution,
    UniformGoal,
    UniformVelocity,
)
from metarobust.errors import ConfigError

__all__ = [
    "ADVERSARIAL_ENV_IDS",
    "ADVERSARIAL_TASK_ENV_IDS",
    "ENV_IDS",
    "base_env_id",
    "variant_env_id",
    "AntDirEnv",
    "AntGoalEnv",
    "AntVelEnv",
    "DiskGoal",
    "DynamicsScales",
    "DynamicsTask",
    "HalfCheetahDirEnv",
    "HalfCheetahDirVectorEnv",
    "HalfCheetahVelEnv",
    "HalfCheetahVelVectorEnv",
    "Navigation2DEnv",
    "Navigation2DVectorEnv",
    "RandomDirection",
    "RingGoal",
    "TaskDistribution",
    "UniformGoal",
    "UniformVelocity",
    "default_task_distribution",
    "make_dynamics_env",
    "register_envs",
]

_MAML_HORIZON = 200  # MuJoCo task episodes in the MAML paper
_LOCOMOTION = ("HalfCheetahVel", "HalfCheetahDir", "AntDir", "AntVel", "AntGoal")
_NATIVELY_VECTORIZED = ("HalfCheetahVel", "HalfCheetahDir")  # in envs/locomotion_vector.py
_DYNAMICS_BASES = ("InvertedPendulum", "HalfCheetah", "Hopper", "Walker2d", "Swimmer", "Ant")
_ADVERSARIAL_BASES = ("InvertedPendulum", "HalfCheetah", "Swimmer", "Hopper", "Walker2d")

ENV_IDS: tuple[str, ...] = (
    "metarobust/Navigation2D-v0",
    "metarobust/Navigation2DCliff-v0",
    "metarobust/Navigation2DObstacles-v0",
    *(f"metarobust/{name}-v0" for name in _LOCOMOTION),
    *(f"metarobust/{base}Dynamics-v0" for base in _DYNAMICS_BASES),
    *(f"metarobust/{name}Dynamics-v0" for name in _LOCOMOTION),
)
# The two-player ids that take a task (and have a default task distribution: their base's).
ADVERSARIAL_TASK_ENV_IDS: tuple[str, ...] = (
    "metarobust/Navigation2DAdv-v0",
    "metarobust/Navigation2DCliffAdv-v0",
    *(f"metarobust/{name}{kind}-v0" for kind in ("Adv", "DynamicsAdv") for name in _LOCOMOTION),
)
# Every two-player id. Kept apart from ENV_IDS, the one-player task envs.
ADVERSARIAL_ENV_IDS: tuple[str, ...] = (
    *(
        f"metarobust/{base}{kind}-v0"
        for kind in ("Adv", "DynamicsAdv", "ObsAdv")
        for base in _ADVERSARIAL_BASES
    ),
    *ADVERSARIAL_TASK_ENV_IDS,
)
# Variants built into their env rather than wrapped around a ``base_id``.
_BUILT_IN_BASES = {
    "metarobust/Navigation2DAdv-v0": "metarobust/Navigation2D-v0",
    "metarobust/Navigation2DCliffAdv-v0": "metarobust/Navigation2DCliff-v0",
    "metarobust/MetaWorldDynamics-v0": "metarobust/MetaWorld-v0",
}


def _register(env_id: str, **spec: object) -> None:
    # Importing twice (or reloading) must not re-register and trigger Gymnasium's warning.
    if env_id not in gym.registry:
        gym.register(id=env_id, **spec)


def base_env_id(env_id: str) -> str:
    """The Gymnasium id a ``metarobust/<Base>Dynamics-v0`` or ``<Base>Adv-v0`` id is built on
    (its ``base_id``; ``metarobust/Navigation2D-v0`` for ``Navigation2DAdv``); any other id is
    its own base."""
    if env_id in _BUILT_IN_BASES:
        return _BUILT_IN_BASES[env_id]
    return gym.spec(env_id).kwargs.get("base_id", env_id)


def variant_env_id(env_id: str, kind: str) -> str:
    """The ``metarobust/<Base><kind>-v0`` id (kind ``Dynamics``, ``Adv``, ``DynamicsAdv`` or
    ``ObsAdv``) on ``env_id``'s base, or a ConfigError naming what exists."""
    base = base_env_id(env_id)
    name = base.removeprefix("metarobust/").split("-v")[0]
    variant = f"metarobust/{name}{kind}-v0"
    if variant not in gym.registry or base_env_id(variant) != base:
        have = [i for i in (*ENV_IDS, *ADVERSARIAL_ENV_IDS) if i.endswith(f"{kind}-v0")]
        raise ConfigError(f"{env_id}: no {kind} variant of {base}; available: {have}")
    return variant


def register_envs() -> None:
    """Register the ``ENV_IDS`` and ``ADVERSARIAL_ENV_IDS`` ids (on import; again is harmless)."""
    _register(
        "metarobust/Navigation2D-v0",
        entry_point="metarobust.envs.navigation:Navigation2DEnv",
        vector_entry_point="metarobust.envs.navigation:Navigation2DVectorEnv",
        max_episode_steps=100,
    )
    cliff = {"platform_radius": PLATFORM_RADIUS}
    _register(
        "metarobust/Navigation2DCliff-v0",
        entry_point="metarobust.envs.navigation:Navigation2DEnv",
        vector_entry_point="metarobust.envs.navigation:Navigation2DVectorEnv",
        max_episode_steps=100,
        kwargs=cliff,
    )
    _register(
        "metarobust/Navigation2DObstacles-v0",
        entry_point="metarobust.envs.obstacles:Navigation2DObstaclesEnv",
        vector_entry_point="metarobust.envs.obstacles:Navigation2DObstaclesVectorEnv",
        max_episode_steps=200,
    )
    _register(
        "metarobust/Navigation2DAdv-v0",
        entry_point="metarobust.envs.two_player.wind:Navigation2DWindEnv",
        vector_entry_point="metarobust.envs.two_player.wind:Navigation2DWindVectorEnv",
        max_episode_steps=100,
    )
    _register(
        "metarobust/Navigation2DCliffAdv-v0",
        entry_point="metarobust.envs.two_player.wind:Navigation2DWindEnv",
        vector_entry_point="metarobust.envs.two_player.wind:Navigation2DWindVectorEnv",
        max_episode_steps=100,
        kwargs=cliff,
    )
    for name in _LOCOMOTION:
        vector_entry_point = None
        if name in _NATIVELY_VECTORIZED:
            vector_entry_point = f"metarobust.envs.locomotion_vector:{name}VectorEnv"
        _register(
            f"metarobust/{name}-v0",
            entry_point=f"metarobust.envs.locomotion:{name}Env",
            vector_entry_point=vector_entry_point,
            max_episode_steps=_MAML_HORIZON,
        )
    for name, dynamics in (("MetaWorld", False), ("MetaWorldDynamics", True)):
        _register(  # Meta-World (the metaworld extra) is imported when an env is first made
            f"metarobust/{name}-v0",
            entry_point="metarobust.envs.meta_world:MetaWorldEnv",
            max_episode_steps=META_WORLD_HORIZON,
            kwargs={"dynamics": dynamics},
        )
    # A task env's Dynamics variant takes its task and the scales in one dict.
    dynamics = [(base, f"{base}-v5") for base in _DYNAMICS_BASES]
    dynamics += [(name, f"metarobust/{name}-v0") for name in _LOCOMOTION]
    for name, base_id in dynamics:
        _register(
            f"metarobust/{name}Dynamics-v0",
            entry_point="metarobust.envs.dynamics:dynamics_entry_point",
            max_episode_steps=gym.spec(base_id).max_episode_steps,
            kwargs={"base_id": base_id},
        )
    # String entry points: a two-player module is imported when one of its ids is first made.
    adversary = {
        "Adv": "metarobust.envs.two_player.force:adversarial_entry_point",
        "DynamicsAdv": "metarobust.envs.two_player.dynamics:dynamics_adversary_entry_point",
        "ObsAdv": "metarobust.envs.two_player.observation:observation_adversary_entry_point",
    }
    bases = [(base, f"{base}-v5", ("Adv", "DynamicsAdv", "ObsAdv")) for base in _ADVERSARIAL_BASES]
    # On a task env the force preset is its v5 model's (found by adversarial_entry_point).
    bases += [(name, f"metarobust/{name}-v0", ("Adv", "DynamicsAdv")) for name in _LOCOMOTION]
    for name, base_id, kinds in bases:
        for kind in kinds:
            _register(
                f"metarobust/{name}{kind}-v0",
                entry_point=adversary[kind],
                max_episode_steps=gym.spec(base_id).max_episode_steps,
                kwargs={"base_id": base_id},
            )


route_mujoco_warnings()
register_envs()
