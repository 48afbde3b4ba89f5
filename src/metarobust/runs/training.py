"""The run layer: one place that turns a ``Config`` into a ready run and drives an algorithm.

    device, env spec         from the config
    batch size               refused if one batch cannot fit in the machine's memory
    allocator                freed memory kept for reuse (``utils.allocator``)
    run directory            claimed (locked) for this process; fresh: config + run info
    seeding                  random, NumPy and torch from the run seed
    algorithm                built from a Setup, then (resuming) its saved state
    sampler                  the algorithm's policies and game on the configured backend
    loop                     iteration -> log -> snapshot (saved every N, at the end, on
                             Ctrl-C / SIGTERM), until the config's budget is reached

A checkpoint has one layout for every algorithm (``CHECKPOINT_FORMAT``): the counters, the
config it was trained under, the algorithm's state, the policy a saved run acts with, the
sampler's streams and every RNG state.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from metarobust.config import Config, validate
from metarobust.errors import ConfigError
from metarobust.runs.algorithm import Algorithm, Setup
from metarobust.runs.batch_memory import check_batch_fits
from metarobust.runs.records import TrainingRun
from metarobust.runs.resume import resume_changes
from metarobust.runs.run_dir import claim_run_dir, write_config
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.sampler_factory import make_sampler
from metarobust.utils.allocator import keep_freed_memory
from metarobust.utils.checkpoint import CHECKPOINT_FORMAT, checkpoint_errors, detached_copy
from metarobust.utils.seeding import rng_state, seed_everything, set_rng_state


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda``; asking for CUDA on a machine without it is a config error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is available (use cpu)")
    return torch.device(name)


def finished_message(
    run_dir: Path, cfg: Config, algo: Algorithm, iteration: int, env_steps: int
) -> str:
    """Why resuming a finished run does nothing, and the setting to raise."""
    value = functools.reduce(getattr, algo.budget.split("."), cfg)
    return (
        f"{run_dir}: finished at iteration {iteration} ({env_steps:,} env steps) of "
        f"{algo.budget}={value}; to continue, raise it: metarobust train --resume {run_dir} "
        f"--set {algo.budget}=N"
    )


def run_algorithm(cfg: Config, algorithm: type[Algorithm], run_dir: Path | None = None) -> Path:
    """Train ``algorithm`` under ``cfg`` in a fresh run directory, or continue the run in
    ``run_dir`` under ``cfg`` (its saved config plus any changeable settings); returns the
    run directory. Same config and seed give the same numbers; a resumed run continues
    exactly where its checkpoint left off."""
    device = resolve_device(cfg.device)
    spec = EnvSpec.from_config(cfg.env)
    check_batch_fits(cfg, spec)  # before any run directory or sampling
    keep_freed_memory()
    default_name = f"{cfg.env.id.replace('/', '-')}_{cfg.train.algorithm}"
    with claim_run_dir(cfg, run_dir, default_name=default_name) as claim:
        ckpt, changes = claim.checkpoint, {}
        if ckpt is not None:
            with checkpoint_errors(claim.path):
                saved_cfg = validate(ckpt["config"])
            changes = resume_changes(saved_cfg, cfg)
        generator = seed_everything(cfg.seed)
        algo = algorithm(Setup(cfg=cfg, spec=spec, device=device, generator=generator))
        with make_sampler(cfg.sampler, spec, algo.policies(), cfg.seed, game=algo.game) as sampler:
            iteration, env_steps = 0, 0
            if ckpt is not None:
                with checkpoint_errors(claim.path):
                    iteration, env_steps = int(ckpt["iteration"]), int(ckpt["env_steps"])
                    algo.load_state_dict(ckpt["state"])
                    sampler.load_state(ckpt["sampler"])
                    set_rng_state(ckpt["rng"], generator)
                if algo.finished(iteration, env_steps):
                    raise ConfigError(finished_message(claim.path, cfg, algo, iteration, env_steps))
            if changes:
                write_config(claim.path, cfg)  # the settings in force from here on

            def snapshot() -> dict[str, Any]:
                acting = algo.acting_policy()
                return {
                    "format": CHECKPOINT_FORMAT,
                    "algorithm": cfg.train.algorithm,
                    "iteration": iteration,
                    "env_steps": env_steps,
                    "config": cfg.model_dump(mode="json"),
                    "state": detached_copy(algo.state_dict()),
                    "policy": {"params": acting.params, "buffers": acting.buffers},
                    "sampler": sampler.state(),
                    "rng": rng_state(generator),
                }

            records = TrainingRun(
                cfg,
                claim.path,
                total=algo.progress_total,
                done=env_steps if algo.unit == "step" else iteration,
                start_step=env_steps,
                resumed=ckpt is not None,
                unit=algo.unit,
                shown=algo.shown,
            )
            algo.on_phase = records.set_phase
            with records:
                while not algo.finished(iteration, env_steps):
                    result = algo.iteration(sampler, iteration)
                    iteration += 1
                    env_steps += result.new_steps
                    records.end_iteration(
                        iteration=iteration,
                        env_steps=env_steps,
                        new_steps=result.new_steps,
                        metrics=result.metrics,
                        snapshot=snapshot,
                        final=algo.finished(iteration, env_steps),
                        sampled_steps=result.sampled_steps,
                        images=result.images,
                        histograms=result.histograms,
                    )
    return claim.path
