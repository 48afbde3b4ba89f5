"""PPO or TRPO on one policy and any Gymnasium env: collect -> update -> log.

Each iteration:

    D <- num_steps more steps of every env's stream with pi_theta     (one sampler call)
    normaliser statistics <- D's observations
    theta, phi <- PPO epochs (or a TRPO step and value fit) on D with GAE advantages
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from metarobust.agents.factories import make_policy, make_update, update_steps
from metarobust.agents.policy import GaussianPolicy
from metarobust.agents.ppo import PPO
from metarobust.agents.trpo import TRPO
from metarobust.config import Config
from metarobust.errors import ConfigError
from metarobust.runs.algorithm import Algorithm, Iteration, Setup
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import env_dims, env_players
from metarobust.sampling.sampler import Sampler
from metarobust.sampling.worker import Policies
from metarobust.trajectories import Trajectories


@dataclass
class Learner:
    """A policy with its PPO or TRPO update and its batch (steps per env and update); one side
    of a two-player game is one (``name``: "protagonist" or "adversary")."""

    name: str
    policy: GaussianPolicy
    update_rule: PPO | TRPO
    num_steps: int
    frozen: bool = False  # an attack's victim: never updated, acts with its mean action

    def state(self) -> PolicyState:
        """The policy as the sampler runs it."""
        return PolicyState.of(self.update_rule.params, self.policy, deterministic=self.frozen)

    def collecting(self) -> PolicyState:
        """The policy as it collects its own batch: its normaliser's statistics (if it has
        one) take in each observation as it acts, as SB3's ``VecNormalize`` does in training;
        ``update`` then merges the batch into the learner's own."""
        return replace(self.state(), track_obs=not self.frozen)

    def update(self, traj: Trajectories) -> dict[str, float]:
        """The normaliser's statistics take in ``traj`` (the learner's view), then one
        PPO/TRPO update on it: the networks learn on the inputs they will act on next."""
        self.policy.obs_normalizer.update(traj.obs[traj.mask.bool()])
        return self.update_rule.update(traj)

    def state_dict(self) -> dict[str, Any]:
        return {
            "update": self.update_rule.state_dict(),
            "buffers": dict(self.policy.named_buffers()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.update_rule.load_state_dict(state["update"])
        self.policy.load_state_dict(state["buffers"], strict=False)


def make_learner(
    cfg: Config,
    name: str,
    algorithm: str,
    policy: GaussianPolicy,
    *,
    device: torch.device,
    generator: torch.Generator,
) -> Learner:
    """A learner of ``policy`` with ``algorithm``'s update (ppo or trpo, its config group)."""
    rule = make_update(cfg, algorithm, policy, device=device, generator=generator)
    return Learner(name, policy, rule, update_steps(cfg, algorithm))


class PolicyGradient(Algorithm):
    """``train.algorithm: ppo`` or ``trpo``: one policy on its env's stream of experience."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        cfg = self.cfg
        if env_players(self.spec) is not None:
            raise ConfigError(f"env.id: {cfg.env.id} is a two-player env; use train.algorithm=rarl")
        policy = make_policy(cfg, *env_dims(self.spec)).to(self.device)
        self.learner = make_learner(
            cfg,
            "policy",
            cfg.train.algorithm,
            policy,
            device=self.device,
            generator=self.generator,
        )
        num_envs = cfg.sampler.workers * cfg.sampler.envs_per_worker
        self.steps_per_iteration = self.learner.num_steps * num_envs
        self._num_iterations = math.ceil(cfg.train.total_steps / self.steps_per_iteration)

    @property
    def num_iterations(self) -> int:
        return self._num_iterations

    @property
    def progress_total(self) -> int:
        return self.num_iterations * self.steps_per_iteration

    def policies(self) -> Policies:
        return self.learner.policy

    def acting_policy(self) -> PolicyState:
        return self.learner.state()

    def iteration(self, sampler: Sampler, index: int) -> Iteration:
        cfg, learner = self.cfg, self.learner
        if cfg.train.algorithm == "ppo" and cfg.ppo.anneal_lr:
            learner.update_rule.set_lr_fraction(1.0 - index / self.num_iterations)
        # collect: one segment of num_steps per env with the current policy
        self.phase("sampling")
        acting = Acting.single(learner.collecting())
        traj = sampler.sample_steps(acting, learner.num_steps, cfg.env.task).to(self.device)
        # update: the normaliser's statistics, then advantages and the PPO or TRPO step
        self.phase("updating")
        metrics = {f"losses/{k}": float(v) for k, v in learner.update(traj).items()}
        if traj.episode_returns.numel() > 0:
            metrics["charts/episodic_return"] = traj.episode_returns.mean().item()
            metrics["charts/episodic_length"] = traj.episode_lengths.float().mean().item()
            metrics |= traj.success_metric("charts/success_rate")
        return Iteration(metrics, new_steps=self.steps_per_iteration)

    def state_dict(self) -> dict[str, Any]:
        return self.learner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state)
