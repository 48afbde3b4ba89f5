"""The Python API: what the ``metarobust`` command does, for scripts and notebooks.

import gymnasium as gym
import metarobust as mr

cfg = mr.load_config("configs/maml_config.yaml", ["maml.num_iterations=50"])
run = mr.train(cfg)                 # later: mr.resume(run, ["maml.num_iterations=80"])
agent = mr.load_policy(run)         # the meta-policy
adapted = agent.adapt({"goal": [0.3, -0.2]}, episodes=20)  # one inner step on that task
env = gym.make("metarobust/Navigation2D-v0")
obs, _ = env.reset(seed=0, options={"task": {"goal": [0.3, -0.2]}})
obs, reward, terminated, truncated, _ = env.step(adapted.act(obs))
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarobust.agents.policy import GaussianPolicy
from metarobust.config import Config, SamplerConfig
from metarobust.errors import ConfigError
from metarobust.runs.algorithm import Algorithm
from metarobust.runs.run_dir import load_run_config
from metarobust.runs.saved import SavedRun
from metarobust.runs.training import run_algorithm
from metarobust.sampling.acting import PolicyState
from metarobust.sampling.env_factory import make_env
from metarobust.sampling.sampler_factory import make_sampler

__all__ = ["Agent", "load_policy", "resume", "train"]


def algorithm_class(cfg: Config) -> type[Algorithm]:
    """The training algorithm ``train.algorithm`` names."""
    name = cfg.train.algorithm
    if name == "maml":
        from metarobust.maml.algorithm import MAML

        return MAML
    if name == "rarl":
        from metarobust.adversarial.rarl import RARL

        return RARL
    if name == "robust_maml":
        from metarobust.adversarial.robust_maml import RobustMAML

        return RobustMAML
    if name == "ued":
        from metarobust.generators.curriculum import UED

        return UED
    from metarobust.policy_gradient import PolicyGradient

    return PolicyGradient


def train(cfg: Config) -> Path:
    """Train ``cfg``'s algorithm in a fresh run directory; returns it."""
    return run_algorithm(cfg, algorithm_class(cfg))


def resume(run_dir: Path | str, overrides: Sequence[str] = ()) -> Path:
    """Continue the run in ``run_dir`` exactly where its checkpoint left off, with
    ``key=value`` overrides of the settings a resume may change (budgets, learning rates,
    logging; ``metarobust.runs.resume.CHANGEABLE``); returns the run directory."""
    cfg = load_run_config(Path(run_dir), tuple(overrides))
    return run_algorithm(cfg, algorithm_class(cfg), Path(run_dir))


def load_policy(run_dir: Path | str) -> Agent:
    """The policy a saved run acts with: PPO/TRPO's policy, a RARL run's protagonist (on the
    env's protagonist action), MAML's meta-policy (``Agent.adapt`` adapts it to a task)."""
    saved = SavedRun.load(run_dir)
    module, state = saved.policy()
    return Agent(saved, module, state)


class Agent:
    """A saved policy acting on plain observations, mean action by default."""

    def __init__(
        self,
        saved: SavedRun,
        module: GaussianPolicy,
        state: PolicyState,
        *,
        adapted_to: Mapping[str, Any] | None = None,
    ) -> None:
        """``adapted_to``: the task an adapted MAML policy was adapted to (None: as saved)."""
        self.saved, self.state, self.adapted_to = saved, state, adapted_to
        self.module = copy.deepcopy(module)  # its parameters are this agent's own
        with torch.no_grad():
            for name, p in self.module.named_parameters():
                p.copy_(state.params[name])
        env = make_env(saved.nominal_spec)  # a two-player env's base: the protagonist's actions
        try:
            self.observation_space, self.action_space = env.observation_space, env.action_space
        finally:
            env.close()
        self.low = self.action_space.low.astype(np.float32)
        self.high = self.action_space.high.astype(np.float32)

    def __repr__(self) -> str:
        adapted = "" if self.adapted_to is None else f", adapted_to={dict(self.adapted_to)!r}"
        return (
            f"Agent(run={str(self.saved.path)!r}, algorithm={self.saved.algorithm!r}, "
            f"observation_space={self.observation_space}, action_space={self.action_space}"
            f"{adapted})"
        )

    def act(
        self, obs: np.ndarray, *, deterministic: bool = True, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """The action for ``obs`` (``[obs_dim]`` or ``[n, obs_dim]``), clipped to the action
        space: the mean, or (not ``deterministic``) a sample drawn with ``rng``."""
        batch = np.asarray(obs, np.float32)
        self._check_obs(batch)
        with torch.no_grad():
            mean, log_std = self.module(torch.from_numpy(np.atleast_2d(batch)))
        # log_std is the state-independent parameter itself (no_grad does not detach it)
        action, log_std = mean.numpy(), log_std.detach().numpy()
        if not deterministic:
            rng = np.random.default_rng() if rng is None else rng
            action = action + np.exp(log_std) * rng.standard_normal(action.shape)
        action = np.clip(action, self.low, self.high).astype(np.float32)
        return action if batch.ndim > 1 else action[0]

    def _check_obs(self, batch: np.ndarray) -> None:
        """A ConfigError naming the sizes if ``batch`` is not ``[obs_dim]`` or ``[n, obs_dim]``."""
        expected = self.module.obs_dim
        if batch.ndim not in (1, 2):
            raise ConfigError(
                f"Agent.act: obs must be [obs_dim] or [n, obs_dim] with obs_dim {expected}, "
                f"got shape {list(batch.shape)}"
            )
        if batch.shape[-1] != expected:
            raise ConfigError(
                f"Agent.act: obs has {batch.shape[-1]} values per observation; the policy of "
                f"{self.saved.path} expects {expected}"
            )

    def adapt(
        self,
        task: Mapping[str, Any],
        *,
        episodes: int = 20,
        steps: int = 1,
        seed: int = 0,
        step_size: float | None = None,
    ) -> Agent:
        """A MAML run's policy after ``steps`` inner policy-gradient steps on ``task``, each
        on ``episodes`` fresh episodes of the run's env (as in meta-testing); ``step_size``
        defaults to the run's (``maml.fast_lr``, or Meta-SGD's learned one)."""
        from metarobust.maml.meta_test import adapt_on_task

        saved = self.saved
        if not saved.cfg.train.meta_learns:
            raise ConfigError(f"{saved.path}: a {saved.algorithm} run; only MAML runs adapt")
        if episodes < 1 or steps < 1:
            raise ConfigError(f"adapt: episodes and steps must be >= 1, got {episodes}, {steps}")
        sampler_cfg = SamplerConfig(envs_per_worker=min(episodes, 16))
        with make_sampler(sampler_cfg, saved.nominal_spec, self.module, seed) as sampler:
            params = adapt_on_task(
                saved,
                self.module,
                sampler,
                task,
                episodes=episodes,
                steps=steps,
                seed=seed,
                step_size=step_size,
            )
        return Agent(saved, self.module, self.state.with_params(params), adapted_to=task)
