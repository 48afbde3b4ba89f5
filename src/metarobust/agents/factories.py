"""The ``policy``, ``ppo`` and ``trpo`` config groups turned into modules and update rules."""

from __future__ import annotations

import torch

from metarobust.agents.baselines import ValueFunction
from metarobust.agents.policy import GaussianPolicy
from metarobust.agents.ppo import PPO
from metarobust.agents.trpo import TRPO
from metarobust.config import Config


def make_policy(cfg: Config, obs_dim: int, act_dim: int) -> GaussianPolicy:
    """The ``policy`` group's network for ``obs_dim`` inputs and ``act_dim`` actions."""
    return GaussianPolicy(
        obs_dim,
        act_dim,
        hidden_sizes=tuple(cfg.policy.hidden_sizes),
        activation=cfg.policy.activation,
        init_std=cfg.policy.init_std,
        normalize_obs=cfg.policy.normalize_obs,
    )


def make_update(
    cfg: Config,
    algorithm: str,
    policy: GaussianPolicy,
    *,
    device: torch.device,
    generator: torch.Generator,
) -> PPO | TRPO:
    """A PPO or TRPO update of ``policy`` (with an MLP value function shaped like it)."""
    value_fn = ValueFunction(
        policy.obs_dim, tuple(cfg.policy.hidden_sizes), cfg.policy.activation
    ).to(device)
    if algorithm == "ppo":
        return PPO(policy, value_fn, cfg.ppo, device, generator)
    return TRPO(
        policy, cfg.trpo, device, generator, value_fn if cfg.trpo.baseline == "mlp" else None
    )


def update_steps(cfg: Config, algorithm: str) -> int:
    """Steps per env that one PPO or TRPO update samples (``ppo.num_steps``/``trpo.num_steps``)."""
    return cfg.ppo.num_steps if algorithm == "ppo" else cfg.trpo.num_steps
