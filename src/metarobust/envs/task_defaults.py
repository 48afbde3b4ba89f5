"""Per registered env id, the task distribution it is meant to be used with.

Apart from ``metarobust.envs.tasks`` because the envs with distributions of their own (the
cliff's goal ring, the obstacle world's levels) are built on that module: this one imports
them and ``tasks`` alike, and nothing below it imports this one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from metarobust.envs.level_generation import RandomLevels
from metarobust.envs.meta_world import MetaWorldTasks
from metarobust.envs.navigation import GOAL_RING_RADIUS
from metarobust.envs.tasks import (
    DYNAMICS_KEYS,
    FORCE_KEYS,
    DiskGoal,
    DynamicsScales,
    RandomDirection,
    RingGoal,
    TaskDistribution,
    UniformGoal,
    UniformVelocity,
    WithDynamics,
)
from metarobust.errors import ConfigError

_DYNAMICS_BASES = ("InvertedPendulum", "HalfCheetah", "Hopper", "Walker2d", "Swimmer", "Ant")


def _defaults() -> dict[str, Callable[..., TaskDistribution]]:
    """Per env id, what builds its distribution (keyword settings override the defaults)."""
    table: dict[str, Callable[..., TaskDistribution]] = {
        # MAML (Finn et al. 2017): goals in [-0.5, 0.5]^2, velocities in [0, 2] (cheetah) and
        # [0, 3] (ant), forward/backward with equal probability. The ant goal disk (radius 3,
        # uniform in area) is the setting of later meta-RL work such as PEARL.
        "metarobust/Navigation2D-v0": partial(UniformGoal, low=-0.5, high=0.5),
        "metarobust/HalfCheetahVel-v0": partial(UniformVelocity, low=0.0, high=2.0),
        "metarobust/HalfCheetahDir-v0": RandomDirection,
        "metarobust/AntVel-v0": partial(UniformVelocity, low=0.0, high=3.0),
        "metarobust/AntDir-v0": RandomDirection,
        "metarobust/AntGoal-v0": partial(DiskGoal, radius=3.0),
        # ours: the goal at the cliff's edge (metarobust.envs.navigation)
        "metarobust/Navigation2DCliff-v0": partial(RingGoal, radius=GOAL_RING_RADIUS),
    }
    for base in _DYNAMICS_BASES:
        table[f"metarobust/{base}Dynamics-v0"] = DynamicsScales
    table["metarobust/Navigation2DObstacles-v0"] = partial(RandomLevels, trap_prob=0.5)
    table["metarobust/MetaWorld-v0"] = MetaWorldTasks  # ML1 reach-v3's train tasks by default
    table["metarobust/MetaWorldDynamics-v0"] = partial(_with_dynamics, MetaWorldTasks)
    # A two-player task env (robust MAML) draws the tasks of the task env it is built on, and
    # so does a task env's Dynamics variant: at nominal dynamics, or with the ``dynamics``
    # setting (DynamicsScales' ranges) each task with its own (WithDynamics).
    for name in (
        "Navigation2D",
        "Navigation2DCliff",
        "HalfCheetahVel",
        "HalfCheetahDir",
        "AntVel",
        "AntDir",
        "AntGoal",
    ):
        kinds = ("Adv",) if name.startswith("Navigation2D") else ("Adv", "DynamicsAdv", "Dynamics")
        for kind in kinds:
            task = table[f"metarobust/{name}-v0"]
            table[f"metarobust/{name}{kind}-v0"] = (
                partial(_with_dynamics, task) if kind == "Dynamics" else task
            )
    return table


def _with_dynamics(
    make_task: Callable[..., TaskDistribution],
    dynamics: Mapping[str, Any] | None = None,
    **settings: Any,
) -> TaskDistribution:
    """The task distribution of ``settings``, each task with dynamics drawn from the ranges
    in ``dynamics`` (only the keys it names) if given."""
    task = make_task(**settings)
    if dynamics is None:
        return task
    if not isinstance(dynamics, Mapping):
        raise ConfigError(f"dynamics expected a mapping of ranges, got {dynamics!r}")
    keys = DYNAMICS_KEYS + FORCE_KEYS
    unknown = sorted(set(dynamics) - set(keys))
    if unknown:
        raise ConfigError(f"dynamics: unknown keys {unknown}; expected some of {list(keys)}")
    return WithDynamics(task, DynamicsScales(**(dict.fromkeys(keys) | dict(dynamics))))


def default_task_distribution(
    env_id: str, settings: Mapping[str, Any] | None = None
) -> TaskDistribution:
    """The task distribution a registered metarobust env id is meant to be used with, its
    constructor's keyword ``settings`` (``env.task_distribution``) replacing the defaults."""
    table = _defaults()
    if env_id not in table:
        raise ConfigError(
            f"no default task distribution for env id {env_id!r}; known ids: {sorted(table)}"
        )
    try:
        return table[env_id](**(settings or {}))
    except ConfigError as err:
        raise ConfigError(f"task_distribution for {env_id}: {err}") from None
    except (TypeError, ValueError) as err:  # a setting it does not take, a value of a bad shape
        raise ConfigError(
            f"task_distribution for {env_id}: {err} (settings given: {dict(settings or {})})"
        ) from None
