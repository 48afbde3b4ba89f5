"""Train a policy on any Gymnasium env with PPO or TRPO: collect -> update -> log -> save."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from metarobust.agents.baselines import ValueFunction
from metarobust.agents.policy import GaussianPolicy
from metarobust.agents.ppo import PPO
from metarobust.agents.trpo import TRPO
from metarobust.config import Config
from metarobust.errors import ConfigError
from metarobust.sampling.backends import make_sampler
from metarobust.sampling.env_factory import EnvSpec, env_dims, env_players
from metarobust.utils.checkpoint import detached_copy, load_checkpoint
from metarobust.utils.run_dir import new_run_dir, write_run_info
from metarobust.utils.seeding import rng_state, seed_everything, set_rng_state
from metarobust.utils.training_run import TrainingRun


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda``; asking for CUDA on a machine without it is a config error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is available (use cpu)")
    return torch.device(name)


def build_policy(cfg: Config, spec: EnvSpec) -> GaussianPolicy:
    """The ``policy`` group's network for ``spec``'s observation and action spaces."""
    return make_policy(cfg, *env_dims(spec))


def make_policy(cfg: Config, obs_dim: int, act_dim: int) -> GaussianPolicy:
    """The ``policy`` group's network for ``obs_dim`` inputs and ``act_dim`` actions."""
    return GaussianPolicy(
        obs_dim,
        act_dim,
        tuple(cfg.policy.hidden_sizes),
        cfg.policy.activation,
        cfg.policy.init_std,
        cfg.policy.normalize_obs,
    )


def train(cfg: Config, run_dir: Path | None = None) -> Path:
    """Run (or, given the ``run_dir`` of an earlier run, resume) PPO/TRPO training.

    Returns the run directory. Same config and seed give the same numbers; a resumed run
    continues exactly where its checkpoint left off.
    """
    resumed = run_dir is not None
    device = resolve_device(cfg.device)
    spec = EnvSpec(cfg.env.id, dict(cfg.env.kwargs), cfg.env.max_episode_steps)
    if env_players(spec) is not None:
        raise ConfigError(f"env.id: {cfg.env.id} is a two-player env; use train.algorithm=rarl")
    if run_dir is None:
        run_dir = new_run_dir(cfg, f"{cfg.env.id.replace('/', '-')}_{cfg.train.algorithm}")
        write_run_info(run_dir, cfg)
    generator = seed_everything(cfg.seed)
    policy = build_policy(cfg, spec).to(device)
    algo = make_update(cfg, cfg.train.algorithm, policy, device, generator)
    hp = cfg.ppo if cfg.train.algorithm == "ppo" else cfg.trpo
    num_envs = cfg.sampler.workers * cfg.sampler.envs_per_worker
    steps_per_iteration = hp.num_steps * num_envs
    num_iterations = math.ceil(cfg.train.total_steps / steps_per_iteration)

    with make_sampler(cfg.sampler, spec, policy.cpu(), cfg.seed) as sampler:
        policy.to(device)
        iteration, env_steps = 0, 0
        if resumed:
            ckpt = load_checkpoint(run_dir)
            iteration, env_steps = ckpt["iteration"], ckpt["env_steps"]
            algo.load_state_dict(ckpt["algorithm"])
            policy.load_state_dict(ckpt["policy"]["buffers"], strict=False)
            sampler.load_state(ckpt["sampler"])
            set_rng_state(ckpt["rng"], generator)

        def snapshot() -> dict[str, Any]:
            return {
                "iteration": iteration,
                "env_steps": env_steps,
                "config": cfg.model_dump(mode="json"),
                "algorithm": detached_copy(algo.state_dict()),
                "policy": detached_copy(policy_state(algo.params, policy)),
                "sampler": sampler.state(),
                "rng": rng_state(generator),
            }

        total = num_iterations * steps_per_iteration
        with TrainingRun(cfg, run_dir, total, env_steps, env_steps, resumed) as run:
            while iteration < num_iterations:
                if cfg.train.algorithm == "ppo" and cfg.ppo.anneal_lr:
                    algo.set_lr_fraction(1.0 - iteration / num_iterations)
                # collect: one segment of num_steps per env with the current policy
                traj = sampler.sample_steps(
                    policy_state(algo.params, policy), hp.num_steps, cfg.env.task
                )
                traj = traj.to(device)
                # update: advantages and the policy/value step (PPO or TRPO)
                losses = algo.update(traj)
                # normalise later observations with statistics that include this batch
                policy.obs_normalizer.update(traj.obs[traj.mask.bool()])
                iteration += 1
                env_steps += steps_per_iteration
                metrics = {f"losses/{k}": float(v) for k, v in losses.items()}
                if traj.episode_returns.numel() > 0:
                    metrics["charts/episodic_return"] = traj.episode_returns.mean().item()
                    metrics["charts/episodic_length"] = traj.episode_lengths.float().mean().item()
                run.end_iteration(
                    iteration,
                    env_steps,
                    steps_per_iteration,
                    metrics,
                    snapshot,
                    final=iteration == num_iterations,
                )
    return run_dir


def make_update(
    cfg: Config,
    algorithm: str,
    policy: GaussianPolicy,
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


def policy_state(params: dict[str, torch.Tensor], policy: GaussianPolicy) -> dict[str, Any]:
    """What workers need each call: CPU copies of the parameters and normaliser buffers."""
    return {
        "params": {k: v.detach().cpu() for k, v in params.items()},
        "buffers": {k: v.detach().cpu() for k, v in policy.named_buffers()},
        "per_task": False,
    }
