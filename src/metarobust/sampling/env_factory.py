"""Build the vector env a rollout worker steps, from a small picklable description.

Every vector env is built with ``autoreset_mode=DISABLED``: a finished env is never stepped
again until the worker resets it itself with ``reset(seed=[...], options={"reset_mask": mask,
"task": task})``, so no fake "reset" transitions ever reach the data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

import metarobust.envs  # noqa: F401  (registers the metarobust/* ids before any gym.make)
from metarobust.envs import variant_env_id
from metarobust.errors import ConfigError

if TYPE_CHECKING:
    from metarobust.config import EnvConfig

_Built = TypeVar("_Built")
# Python's wording for a call given a keyword its signature lacks, or one it already sets.
_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")
_TWICE = re.compile(r"got multiple values for keyword argument '([^']+)'")


@dataclass(frozen=True)
class EnvSpec:
    """What a worker needs to build its envs: a registered id, make kwargs, a time limit."""

    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None  # None = the registered time limit
    task_distribution: dict[str, Any] = field(default_factory=dict)  # its settings

    @classmethod
    def from_config(cls, env: EnvConfig) -> EnvSpec:
        """The spec of a config's ``env`` group (its kwargs and settings copied)."""
        return cls(env.id, dict(env.kwargs), env.max_episode_steps, dict(env.task_distribution))

    @classmethod
    def variant(cls, env: EnvConfig, env_id: str) -> EnvSpec:
        """Another id for a config's ``env`` group (a variant of its env): its time limit and
        task-distribution settings, none of its make kwargs."""
        return cls(env_id, {}, env.max_episode_steps, dict(env.task_distribution))

    @classmethod
    def dynamics(cls, env: EnvConfig) -> EnvSpec:
        """The ``Dynamics`` variant of a config's env (an ``Adv`` id's included), where a
        policy is tested on other masses, frictions and pushes; a ConfigError if it has
        none."""
        return cls.variant(env, variant_env_id(env.id, "Dynamics"))


def registered_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """Gymnasium's spec of ``env_id``, or a ConfigError naming the id."""
    try:
        return gym.spec(env_id)
    except gym.error.Error as err:
        raise ConfigError(f"unknown env id {env_id!r}: {err}") from None


def has_vector_entry_point(spec: EnvSpec) -> bool:
    """Whether ``spec.id`` registers a natively vectorized env."""
    return registered_spec(spec.id).vector_entry_point is not None


def make_env(spec: EnvSpec) -> gym.Env:
    """One env (time limit applied, passive checker off: it costs time on every step)."""
    registered_spec(spec.id)
    return _with_checked_kwargs(
        spec,
        lambda: gym.make(
            spec.id,
            max_episode_steps=spec.max_episode_steps,
            disable_env_checker=True,
            **spec.kwargs,
        ),
    )


def make_vector_env(spec: EnvSpec, num_envs: int) -> VectorEnv:
    """``num_envs`` envs of ``spec`` with autoreset disabled.

    A natively vectorized id (one with a ``vector_entry_point``) is built with
    ``gymnasium.make_vec``; any other id becomes a ``SyncVectorEnv`` of ``gymnasium.make`` envs.
    """
    if has_vector_entry_point(spec):
        kwargs = dict(spec.kwargs)
        if spec.max_episode_steps is not None:
            kwargs["max_episode_steps"] = spec.max_episode_steps
        # make_vec hands every keyword to the vector env's constructor, autoreset mode included.
        env = _with_checked_kwargs(
            spec,
            lambda: gym.make_vec(
                spec.id,
                num_envs,
                vectorization_mode="vector_entry_point",
                autoreset_mode=AutoresetMode.DISABLED,
                **kwargs,
            ),
        )
    else:
        env = SyncVectorEnv(
            [partial(make_env, spec) for _ in range(num_envs)],
            copy=False,  # the worker copies what it keeps into its own buffers
            autoreset_mode=AutoresetMode.DISABLED,
        )
    if env.metadata.get("autoreset_mode") != AutoresetMode.DISABLED:
        env.close()
        raise ConfigError(f"{spec.id}: its vector env ignores autoreset_mode=DISABLED")
    _check_spaces(spec, env.single_observation_space, env.single_action_space)
    return env


def env_dims(spec: EnvSpec) -> tuple[int, int]:
    """``(obs_dim, act_dim)`` of ``spec``'s flat Box observation and action spaces."""
    env = make_env(spec)
    try:
        _check_spaces(spec, env.observation_space, env.action_space)
        return env.observation_space.shape[0], env.action_space.shape[0]
    finally:
        env.close()


def env_players(spec: EnvSpec) -> tuple[int, int] | None:
    """``(protagonist_dim, adversary_dim)`` of a two-player env (its ``metadata["players"]``),
    or None for an ordinary env."""
    env = make_env(spec)
    try:
        players = env.metadata.get("players")
        return None if players is None else (int(players[0]), int(players[1]))
    finally:
        env.close()


def episode_horizon(spec: EnvSpec) -> int:
    """The time limit of ``spec``: its own, else the registered one; ConfigError if neither."""
    horizon = spec.max_episode_steps or registered_spec(spec.id).max_episode_steps
    if horizon is None:
        raise ConfigError(
            f"{spec.id}: episode sampling needs a time limit; set env.max_episode_steps"
        )
    return int(horizon)


def _with_checked_kwargs(spec: EnvSpec, build: Callable[[], _Built]) -> _Built:
    """``build()``; a ConfigError naming ``env.kwargs`` if it fails on one of ``spec.kwargs``'s
    keys (any other TypeError is the env's own and is raised as it is)."""
    try:
        return build()
    except TypeError as err:
        unexpected, twice = _UNEXPECTED.search(str(err)), _TWICE.search(str(err))
        if unexpected is not None and unexpected[1] in spec.kwargs:
            raise ConfigError(
                f"env.kwargs: {spec.id} takes no argument {unexpected[1]!r} "
                f"(got env.kwargs={spec.kwargs!r})"
            ) from None
        if twice is not None and twice[1] in spec.kwargs:
            hint = " (set env.max_episode_steps)" if twice[1] == "max_episode_steps" else ""
            raise ConfigError(
                f"env.kwargs: {twice[1]!r} of {spec.id} is set by metarobust itself{hint}"
            ) from None
        raise


def _check_spaces(spec: EnvSpec, obs_space: gym.Space, act_space: gym.Space) -> None:
    for name, space in (("observation", obs_space), ("action", act_space)):
        if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
            raise ConfigError(f"{spec.id}: needs a flat Box {name} space, got {space}")
        if name == "action" and not np.issubdtype(space.dtype, np.floating):
            raise ConfigError(f"{spec.id}: needs continuous actions, got {space}")
