"""MAML training loop (Finn et al. 2017, Algorithm 3), on the shared sampler; the outer step
is TRPO (MAML-TRPO, the paper's) or PPO's clipped objective (MAML-PPO).

Each meta-iteration:

    sample tasks T_i ~ p(T)                                        (meta_batch_size of them)
    D_i  <- episodes of pi_theta on T_i                            (one sampler pass, all tasks)
    theta'_i = theta - alpha * grad L_i(theta; D_i)                (one vmap over tasks)
    D'_i <- episodes of pi_theta'_i on T_i                         (one pass, per-task params)
    theta <- TRPO (or PPO) step on sum_i L_i(theta'_i(theta); D'_i) through the inner loop
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarobust.agents.policy import Params
from metarobust.agents.trpo import trpo_step
from metarobust.config import Config
from metarobust.envs import default_task_distribution
from metarobust.errors import ConfigError
from metarobust.maml.adapt import adapt, reinforce_advantages
from metarobust.maml.meta_ppo import MetaPPO
from metarobust.maml.objective import ALPHA_PREFIX, MetaObjective, split_meta_params
from metarobust.sampling.backends import make_sampler
from metarobust.sampling.env_factory import EnvSpec
from metarobust.train import build_policy, resolve_device
from metarobust.utils.checkpoint import load_checkpoint
from metarobust.utils.run_dir import new_run_dir, write_run_info
from metarobust.utils.seeding import rng_state, seed_everything, set_rng_state
from metarobust.utils.training_run import TrainingRun

_TRAIN_PHASE, _VALID_PHASE = 0, 1


def episode_seed(seed: int, iteration: int, phase: int) -> int:
    """The sampler seed of one phase of one meta-iteration (so a resumed run needs no state)."""
    return int(np.random.SeedSequence([seed, iteration, phase]).generate_state(1)[0])


def initial_meta_params(cfg: Config, params: Params) -> Params:
    """The policy's parameters, plus Meta-SGD's per-parameter step sizes (starting at alpha)."""
    meta = dict(params)
    if cfg.maml.meta_sgd:
        meta |= {ALPHA_PREFIX + k: torch.full_like(v, cfg.maml.fast_lr) for k, v in params.items()}
    return meta


def train_maml(cfg: Config, run_dir: Path | None = None) -> Path:
    """Meta-train (or resume the run in ``run_dir``); returns the run directory."""
    if cfg.policy.normalize_obs:
        raise ConfigError("policy.normalize_obs: not supported with train.algorithm=maml")
    task_distribution = default_task_distribution(cfg.env.id)
    resumed = run_dir is not None
    device = resolve_device(cfg.device)
    if run_dir is None:
        run_dir = new_run_dir(cfg, f"{cfg.env.id.replace('/', '-')}_maml")
        write_run_info(run_dir, cfg)
    generator = seed_everything(cfg.seed)
    task_rng = np.random.default_rng(cfg.seed)
    spec = EnvSpec(cfg.env.id, dict(cfg.env.kwargs), cfg.env.max_episode_steps)
    policy = build_policy(cfg, spec)
    meta = {k: v.to(device) for k, v in initial_meta_params(cfg, policy.init_params()).items()}
    m = cfg.maml
    meta_ppo = MetaPPO(meta, cfg.ppo) if m.outer == "ppo" else None
    if meta_ppo is not None:
        meta = meta_ppo.params

    with make_sampler(cfg.sampler, spec, policy, cfg.seed) as sampler:
        policy.to(device)
        iteration, env_steps = 0, 0
        if resumed:
            ckpt = load_checkpoint(run_dir)
            iteration, env_steps = ckpt["iteration"], ckpt["env_steps"]
            if meta_ppo is not None:
                with torch.no_grad():  # in place: Adam keeps pointing at the same tensors
                    for k, v in meta.items():
                        v.copy_(ckpt["meta_params"][k])
                meta_ppo.load_state_dict(ckpt["outer"])
            else:
                meta = {k: v.to(device) for k, v in ckpt["meta_params"].items()}
            task_rng.bit_generator.state = ckpt["task_rng"]
            set_rng_state(ckpt["rng"], generator)

        def snapshot() -> dict[str, Any]:
            return {
                "iteration": iteration,
                "env_steps": env_steps,
                "config": cfg.model_dump(mode="json"),
                "meta_params": {k: v.detach().cpu().clone() for k, v in meta.items()},
                "policy": _sampler_state(meta, policy),
                "outer": meta_ppo.state_dict() if meta_ppo is not None else {},
                "task_rng": task_rng.bit_generator.state,
                "rng": rng_state(generator),
            }

        with TrainingRun(
            cfg,
            run_dir,
            m.num_iterations,
            iteration,
            env_steps,
            resumed,
            unit="iteration",
            headline="meta/post_adapt_return" if m.num_inner_steps else "meta/pre_adapt_return",
        ) as run:
            while iteration < m.num_iterations:
                tic = time.perf_counter()
                tasks = task_distribution.sample(m.meta_batch_size, task_rng)
                # D_i: pre-adaptation episodes of every task with the meta-parameters
                train = sampler.sample_episodes(
                    _sampler_state(meta, policy),
                    tasks,
                    m.episodes_per_task,
                    episode_seed(cfg.seed, iteration, _TRAIN_PHASE),
                ).to(device)
                t_sample = time.perf_counter() - tic

                adapted_phase = m.num_inner_steps > 0  # 0 inner steps: multi-task TRPO
                t_adapt, valid = 0.0, train
                if adapted_phase:
                    # theta'_i for sampling: values only, so no graph through the inner loop
                    tic = time.perf_counter()
                    params, alpha = split_meta_params(meta, m.fast_lr)
                    with torch.no_grad():  # torch.func.grad inside still differentiates
                        adv = reinforce_advantages(train, m.gamma)
                        adapted = adapt(policy, params, train, adv, alpha, m.num_inner_steps, True)
                    t_adapt = time.perf_counter() - tic

                    # D'_i: post-adaptation episodes, each task with its own adapted parameters
                    tic = time.perf_counter()
                    valid = sampler.sample_episodes(
                        {
                            "params": {k: v.detach().cpu() for k, v in adapted.items()},
                            "buffers": {k: v.cpu() for k, v in policy.named_buffers()},
                            "per_task": True,
                        },
                        tasks,
                        m.episodes_per_task,
                        episode_seed(cfg.seed, iteration, _VALID_PHASE),
                    ).to(device)
                    t_sample += time.perf_counter() - tic

                # outer step on the post-adaptation surrogate, through the inner loop
                tic = time.perf_counter()
                objective = MetaObjective(
                    policy,
                    meta,
                    train,
                    valid,
                    m.gamma,
                    m.fast_lr,
                    m.num_inner_steps,
                    m.first_order,
                )
                meta, info = outer_step(objective, meta, cfg, meta_ppo)
                t_outer = time.perf_counter() - tic

                iteration += 1
                new_steps = train.num_steps + (valid.num_steps if adapted_phase else 0)
                env_steps += new_steps
                metrics = {
                    "meta/pre_adapt_return": train.episode_returns.mean().item(),
                    **{f"meta/{k}": v for k, v in info.items()},
                    "time/sampling": t_sample,
                    "time/adaptation": t_adapt,
                    "time/outer_step": t_outer,
                }
                if adapted_phase:
                    metrics["meta/post_adapt_return"] = valid.episode_returns.mean().item()
                run.end_iteration(
                    iteration,
                    env_steps,
                    new_steps,
                    metrics,
                    snapshot,
                    final=iteration == m.num_iterations,
                )
    return run_dir


def outer_step(
    objective: MetaObjective, meta: Params, cfg: Config, meta_ppo: MetaPPO | None
) -> tuple[Params, dict[str, float]]:
    """New meta-parameters and the step's statistics: a TRPO step (exact KL in the line
    search, optionally subsampled Fisher products) or MAML-PPO's epochs."""
    if meta_ppo is not None:
        return meta_ppo.params, meta_ppo.step(objective)
    trpo = cfg.trpo
    return trpo_step(
        meta,
        objective.surrogate,
        objective.subsample(cfg.maml.fisher_subsample).kl,  # for the Fisher products
        trpo.max_kl,
        trpo.cg_iters,
        trpo.cg_damping,
        trpo.line_search_steps,
        trpo.backtrack_ratio,
        objective.surrogate_and_kl,  # line search: the exact KL, one adaptation per candidate
    )


def _sampler_state(meta: Params, policy: torch.nn.Module) -> dict[str, Any]:
    """The meta-policy as the sampler takes it (Meta-SGD step sizes are not policy params)."""
    return {
        "params": {k: v.detach().cpu() for k, v in meta.items() if not k.startswith(ALPHA_PREFIX)},
        "buffers": {k: v.detach().cpu() for k, v in policy.named_buffers()},
        "per_task": False,
    }
