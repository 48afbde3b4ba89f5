"""The memory one batch of trajectories needs, from the config's shapes, checked at start.

A run samples batches of ``[task, rollout, time, ...]`` trajectories (``Trajectories``); the
config fixes their shapes. A batch that needs more memory than the machine has is refused
before anything is sampled, with one line naming the setting that makes it large, instead of
a run that swaps until it is killed. The estimate counts only the batch's own arrays, so it
is a lower bound on what the run needs: it refuses what certainly cannot fit.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import gymnasium as gym

from metarobust.agents.factories import update_steps
from metarobust.config import Config
from metarobust.errors import ConfigError
from metarobust.sampling.env_factory import EnvSpec, make_env, registered_spec
from metarobust.utils.wording import count

_FLOAT, _BOOL = 4, 1  # bytes of a float32 and a bool


@dataclass(frozen=True)
class Factor:
    """One dimension of a batch: ``count`` ``unit``s, set by config key ``key`` (None: by
    the algorithm or the env itself)."""

    count: int
    unit: str
    key: str | None = None

    def __str__(self) -> str:
        return count(self.count, self.unit)


@dataclass(frozen=True)
class BatchEstimate:
    """One batch's shape (its transitions: the product of ``factors``) and bytes per step."""

    factors: tuple[Factor, ...]
    step_bytes: int

    @property
    def num_bytes(self) -> int:
        return math.prod(f.count for f in self.factors) * self.step_bytes

    @property
    def key(self) -> str | None:
        """The setting that makes the batch large: the largest factor a config key sets."""
        keyed = [f for f in self.factors if f.key is not None]
        return max(keyed, key=lambda f: f.count).key if keyed else None

    def describe(self) -> str:
        return " x ".join(str(f) for f in self.factors)


def step_bytes(obs_dim: int, act_dim: int) -> int:
    """One transition of ``Trajectories``: obs and next_obs, the action, reward, log-prob and
    mask as float32; terminated and truncated as bools."""
    return _FLOAT * (2 * obs_dim + act_dim + 3) + 2 * _BOOL


def batch_estimate(cfg: Config, spec: EnvSpec) -> BatchEstimate | None:
    """The largest batch ``cfg``'s algorithm holds at once, or None if the env's spaces or
    time limit leave it unknown (the algorithm then refuses the env itself)."""
    env = make_env(spec)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        players = env.metadata.get("players")
    finally:
        env.close()
    if not all(isinstance(s, gym.spaces.Box) and len(s.shape) == 1 for s in (obs_space, act_space)):
        return None
    obs_dim, act_dim = obs_space.shape[0], act_space.shape[0]
    protagonist_dim, adversary_dim = players if players is not None else (act_dim, act_dim)
    algorithm = cfg.train.algorithm
    if algorithm in ("ppo", "trpo"):
        return _steps(cfg, algorithm, step_bytes(obs_dim, act_dim))
    if algorithm == "rarl":
        adv = cfg.adversarial
        sides = [(adv.adversary, adversary_dim)]
        if adv.protagonist_updates > 0:
            sides.append((adv.protagonist, protagonist_dim))
        batches = [_steps(cfg, group, step_bytes(obs_dim, dim)) for group, dim in sides]
        return max(batches, key=lambda b: b.num_bytes)
    horizon = _horizon(spec)
    if horizon is None:
        return None
    if algorithm == "ued":
        u = cfg.ued
        factors = [
            Factor(u.levels_per_iteration, "level", "ued.levels_per_iteration"),
            Factor(u.episodes_per_level, "episode", "ued.episodes_per_level"),
            horizon,
        ]
        if u.generator == "paired":  # the antagonist's batch is held beside the agent's
            factors.append(Factor(2, "learner"))
        return BatchEstimate(tuple(factors), step_bytes(obs_dim, act_dim))
    # maml, robust_maml: the pre- and post-adaptation episodes meet in the outer step
    m = cfg.maml
    tasks = Factor(m.meta_batch_size, "task", "maml.meta_batch_size")
    factors = [tasks, Factor(m.episodes_per_task, "episode", "maml.episodes_per_task"), horizon]
    if m.num_inner_steps > 0:
        factors.append(Factor(2, "phase"))
    meta = BatchEstimate(tuple(factors), step_bytes(obs_dim, protagonist_dim))
    if algorithm != "robust_maml":
        return meta
    adv = cfg.adversarial
    episodes = Factor(m.episodes_per_task, "episode", "maml.episodes_per_task")
    if adv.episodes_per_task is not None:
        episodes = Factor(adv.episodes_per_task, "episode", "adversarial.episodes_per_task")
    adversary = BatchEstimate((tasks, episodes, horizon), step_bytes(obs_dim, adversary_dim))
    return max(meta, adversary, key=lambda b: b.num_bytes)


def check_batch_fits(cfg: Config, spec: EnvSpec, *, memory: int | None = None) -> None:
    """A ConfigError naming the setting if one batch of ``cfg`` needs more than ``memory``
    bytes (default: the machine's memory; unknown: no check)."""
    memory = machine_memory() if memory is None else memory
    estimate = batch_estimate(cfg, spec)
    if memory is None or estimate is None or estimate.num_bytes <= memory:
        return
    raise ConfigError(
        f"{estimate.key}: {estimate.describe()} need about {format_bytes(estimate.num_bytes)} "
        f"for one batch; this machine has {format_bytes(memory)}"
    )


def machine_memory() -> int | None:
    """The machine's physical memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: int) -> str:
    """``3040000`` -> ``"2.9 MiB"``."""
    value, units = float(n), ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    while value >= 1024 and len(units) > 1:
        value /= 1024
        units.pop(0)
    return f"{value:.1f} {units[0]}" if value < 100 else f"{value:,.0f} {units[0]}"


def _steps(cfg: Config, group: str, step: int) -> BatchEstimate:
    """A step-mode batch of ``group``'s update (ppo or trpo): every env, ``num_steps`` each."""
    s = cfg.sampler
    envs_key = "sampler.envs_per_worker" if s.envs_per_worker >= s.workers else "sampler.workers"
    envs = Factor(s.workers * s.envs_per_worker, "env", envs_key)
    steps = Factor(update_steps(cfg, group), "step", f"{group}.num_steps")
    return BatchEstimate((envs, steps), step)


def _horizon(spec: EnvSpec) -> Factor | None:
    """An episode's steps at most: ``env.max_episode_steps``, else the registered limit."""
    if spec.max_episode_steps is not None:
        return Factor(spec.max_episode_steps, "step", "env.max_episode_steps")
    registered = registered_spec(spec.id).max_episode_steps
    return None if registered is None else Factor(registered, "step")
