"""Evaluate a saved policy: episodes through the shared sampler, returns to CSV."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from metarobust.agents.policy import GaussianPolicy
from metarobust.config import Config, SamplerConfig
from metarobust.errors import ConfigError
from metarobust.sampling.backends import make_sampler
from metarobust.sampling.env_factory import EnvSpec
from metarobust.train import build_policy, make_policy
from metarobust.utils.checkpoint import load_checkpoint
from metarobust.utils.run_dir import load_run_config

EVALUATION_NAME = "evaluation.csv"
EPISODES_PER_BATCH = 16  # envs stepped together; batch k of episodes uses seed + k


def saved_policy(run_dir: Path) -> tuple[Config, GaussianPolicy, dict[str, Any]]:
    """The latest policy of a PPO/TRPO run, or a RARL run's protagonist: the run's config,
    a policy module shaped for it, and its sampler state (params and normaliser buffers)."""
    cfg = load_run_config(run_dir)
    if cfg.train.algorithm == "maml":
        raise ConfigError(f"{run_dir}: a MAML run; see metarobust.maml.evaluate")
    ckpt = load_checkpoint(run_dir)
    spec = EnvSpec(cfg.env.id, dict(cfg.env.kwargs), cfg.env.max_episode_steps)
    if cfg.train.algorithm == "rarl":
        from metarobust.adversarial.rarl import two_player_dims

        obs_dim, protagonist_dim, _ = two_player_dims(spec)
        return cfg, make_policy(cfg, obs_dim, protagonist_dim), ckpt["protagonist"]["policy"]
    return cfg, build_policy(cfg, spec), ckpt["policy"]


def evaluate_run(
    run_dir: Path, episodes: int, seed: int, deterministic: bool = True, progress: bool = True
) -> str:
    """Run ``episodes`` episodes of the run's latest policy, write ``evaluation.csv`` into the
    run directory and return a one-line summary."""
    cfg = load_run_config(run_dir)
    if cfg.train.algorithm not in ("ppo", "trpo"):
        raise ConfigError(f"{run_dir}: a {cfg.train.algorithm} run; evaluate takes PPO/TRPO runs")
    _, policy, saved = saved_policy(run_dir)
    ckpt = load_checkpoint(run_dir)
    spec = EnvSpec(cfg.env.id, dict(cfg.env.kwargs), cfg.env.max_episode_steps)
    state = {**saved, "per_task": False, "deterministic": deterministic}
    batch = min(episodes, EPISODES_PER_BATCH)
    sampler_cfg = SamplerConfig(envs_per_worker=batch)
    returns, lengths = [], []
    bar = tqdm(total=episodes, unit="episode", desc="evaluate", disable=not progress)
    with make_sampler(sampler_cfg, spec, policy, seed) as sampler, bar:
        for k, start in enumerate(range(0, episodes, batch)):
            n = min(batch, episodes - start)
            traj = sampler.sample_episodes(state, [cfg.env.task], n, seed + k)
            returns.append(traj.episode_returns)
            lengths.append(traj.episode_lengths)
            bar.update(n)
    returns, lengths = torch.cat(returns).double(), torch.cat(lengths).double()
    with (Path(run_dir) / EVALUATION_NAME).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["episode", "return", "length"])
        for i, (ret, length) in enumerate(zip(returns.tolist(), lengths.tolist(), strict=True)):
            writer.writerow([i, f"{ret:.4f}", int(length)])
    mode = "mean action" if deterministic else "sampled actions"
    std = returns.std().item() if episodes > 1 else 0.0
    return (
        f"{cfg.env.id}: return {returns.mean().item():.2f} ± {std:.2f} over {episodes} episodes "
        f"({mode}, mean length {lengths.mean().item():.0f}, step {ckpt['env_steps']}); "
        f"wrote {Path(run_dir) / EVALUATION_NAME}"
    )
