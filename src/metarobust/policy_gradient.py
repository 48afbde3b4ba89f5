"""PPO or TRPO on one policy and any Gymnasium env: collect -> update -> log.

Each iteration:

    D <- num_steps more steps of every env's stream with pi_theta     (one sampler call)
    theta, phi <- PPO epochs (or a TRPO step and value fit) on D with GAE advantages
    normaliser statistics <- D's observations (used from the next iteration on)
"""

from __future__ import annotations

import math
from typing import Any

from metarobust.agents.factories import make_policy, make_update, update_steps
from metarobust.errors import ConfigError
from metarobust.runs.algorithm import Algorithm, Iteration, Setup
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.backends import Sampler
from metarobust.sampling.env_factory import env_dims, env_players
from metarobust.sampling.worker import Policies


class PolicyGradient(Algorithm):
    """``train.algorithm: ppo`` or ``trpo``: one policy on its env's stream of experience."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        cfg = self.cfg
        if env_players(self.spec) is not None:
            raise ConfigError(f"env.id: {cfg.env.id} is a two-player env; use train.algorithm=rarl")
        self.policy = make_policy(cfg, *env_dims(self.spec)).to(self.device)
        self.update_rule = make_update(
            cfg, cfg.train.algorithm, self.policy, device=self.device, generator=self.generator
        )
        num_envs = cfg.sampler.workers * cfg.sampler.envs_per_worker
        self.num_steps = update_steps(cfg, cfg.train.algorithm)
        self.steps_per_iteration = self.num_steps * num_envs
        self._num_iterations = math.ceil(cfg.train.total_steps / self.steps_per_iteration)

    @property
    def num_iterations(self) -> int:
        return self._num_iterations

    @property
    def progress_total(self) -> int:
        return self.num_iterations * self.steps_per_iteration

    def policies(self) -> Policies:
        return self.policy

    def acting_policy(self) -> PolicyState:
        return PolicyState.of(self.update_rule.params, self.policy)

    def iteration(self, sampler: Sampler, index: int) -> Iteration:
        cfg = self.cfg
        if cfg.train.algorithm == "ppo" and cfg.ppo.anneal_lr:
            self.update_rule.set_lr_fraction(1.0 - index / self.num_iterations)
        # collect: one segment of num_steps per env with the current policy
        acting = Acting.single(self.acting_policy())
        traj = sampler.sample_steps(acting, self.num_steps, cfg.env.task).to(self.device)
        # update: advantages and the policy/value step (PPO or TRPO)
        losses = self.update_rule.update(traj)
        # normalise later observations with statistics that include this batch
        self.policy.obs_normalizer.update(traj.obs[traj.mask.bool()])
        metrics = {f"losses/{k}": float(v) for k, v in losses.items()}
        if traj.episode_returns.numel() > 0:
            metrics["charts/episodic_return"] = traj.episode_returns.mean().item()
            metrics["charts/episodic_length"] = traj.episode_lengths.float().mean().item()
        return Iteration(metrics, new_steps=self.steps_per_iteration)

    def state_dict(self) -> dict[str, Any]:
        return {
            "update": self.update_rule.state_dict(),
            "buffers": dict(self.policy.named_buffers()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.update_rule.load_state_dict(state["update"])
        self.policy.load_state_dict(state["buffers"], strict=False)
