"""Robustness to model mismatch (RARL paper, Pinto et al. 2017, §5): the returns of saved
policies on a grid of mass and friction scales, without adversary.

Every policy runs its mean action on the ``metarobust/<Base>Dynamics-v0`` variant of its env,
one task ``{"mass_scale": m, "friction_scale": f}`` per cell. Episode ``r`` starts from the same
state in every cell and for every policy, so cells and policies are compared on paired
episodes. Writes ``robustness.csv`` (one row per episode), ``robustness_heatmap.png`` (mean
return per cell, one map per policy) and ``robustness_percentiles.png`` (the paper's sorted
returns over the whole grid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from metarobust.config import SamplerConfig
from metarobust.errors import ConfigError
from metarobust.plotting import (
    distinct,
    plot_robustness_heatmaps,
    plot_robustness_percentiles,
    short_label,
)
from metarobust.runs.outputs import write_csv
from metarobust.runs.saved import SavedRun
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import EnvSpec, env_dims
from metarobust.sampling.sampler import Sampler
from metarobust.sampling.sampler_factory import make_sampler
from metarobust.utils.wording import count

CSV_NAME = "robustness.csv"
HEATMAP_NAME = "robustness_heatmap.png"
PERCENTILES_NAME = "robustness_percentiles.png"
DEFAULT_GRID = (0.5, 1.5, 11)  # LOW, HIGH, POINTS of nominal: the RARL code's mass/friction grid
MAX_ENVS = 64  # at most this many episodes of a mass row are stepped together


def scale_grid(low: float, high: float, points: int, flag: str = "scale grid") -> list[float]:
    """``points`` evenly spaced scales from ``low`` to ``high`` (rounded to 6 decimals)."""
    if not float(points).is_integer() or points < 1:
        raise ConfigError(f"{flag}: POINTS must be a whole number >= 1, got {points}")
    if low > high or (low == high) != (points == 1):
        raise ConfigError(
            f"{flag}: expected LOW < HIGH with POINTS > 1, or LOW = HIGH with POINTS = 1; "
            f"got {low} {high} {points:g}"
        )
    return [round(float(s), 6) for s in np.linspace(low, high, int(points))]


def grid_returns(
    sampler: Sampler,
    state: PolicyState,
    masses: Sequence[float],
    frictions: Sequence[float],
    episodes: int,
    seed: int,
    bar: tqdm | None = None,
) -> Tensor:
    """Episode returns of every cell: ``[mass, friction, episode]``.

    Episode ``r`` of every cell starts from the same state (common random numbers): cells
    differ by their dynamics alone, and a cell's returns do not depend on the rest of the grid.
    One sampler call per mass row (the progress bar moves per row).
    """
    returns = torch.zeros(len(masses), len(frictions), episodes)
    for i, mass in enumerate(masses):
        tasks = [{"mass_scale": mass, "friction_scale": friction} for friction in frictions]
        traj = sampler.sample_episodes(Acting.single(state), tasks, episodes, seed, paired=True)
        returns[i] = traj.episode_returns.view(len(frictions), episodes)
        if bar is not None:
            bar.update(len(frictions))
    return returns


def robustness_grid(
    run_dirs: Sequence[Path],
    masses: Sequence[float],
    frictions: Sequence[float],
    episodes: int,
    seed: int,
    out_dir: Path,
    progress: bool = True,
) -> str:
    """Evaluate each run's policy (PPO/TRPO, or a RARL run's protagonist) with its mean action
    on every mass x friction cell; write the CSV and both plots into ``out_dir`` (replacing
    what a grid wrote there before) and return a summary."""
    run_dirs = [Path(d) for d in run_dirs]
    _check_grid(run_dirs, masses, frictions, episodes)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out: {out_dir} is a file, not a folder for the grid's outputs")
    paths = [out_dir / name for name in (CSV_NAME, HEATMAP_NAME, PERCENTILES_NAME)]
    runs = [SavedRun.load(d) for d in run_dirs]  # fails fast on a bad run dir
    policies = [(run.cfg, *run.policy()) for run in runs]
    spec = EnvSpec.dynamics(policies[0][0].env)
    for run_dir, (cfg, _, _) in zip(run_dirs, policies, strict=True):
        if EnvSpec.dynamics(cfg.env) != spec:
            raise ConfigError(
                f"{run_dir}: tested on {EnvSpec.dynamics(cfg.env).id}, the first run on {spec.id} "
                f"(time limits {cfg.env.max_episode_steps} vs {spec.max_episode_steps})"
            )
    obs_dim, act_dim = env_dims(spec)
    for run_dir, (_, policy, _) in zip(run_dirs, policies, strict=True):
        if (policy.obs_dim, policy.act_dim) != (obs_dim, act_dim):
            raise ConfigError(
                f"{run_dir}: its policy maps {policy.obs_dim} observations to {policy.act_dim} "
                f"actions, {spec.id} has {obs_dim} and {act_dim} (its env.kwargs are not used)"
            )

    labels = _labels(run_dirs)
    sampler_cfg = SamplerConfig(envs_per_worker=min(episodes * len(frictions), MAX_ENVS))
    cells = len(masses) * len(frictions)
    returns = []  # per policy, [mass, friction, episode]
    bar = tqdm(total=len(run_dirs) * cells, unit="cell", desc="robustness", disable=not progress)
    with bar:
        for _, policy, saved in policies:
            state = replace(saved, deterministic=True)
            with make_sampler(sampler_cfg, spec, policy, seed) as sampler:
                returns.append(grid_returns(sampler, state, masses, frictions, episodes, seed, bar))

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(paths[0], labels, masses, frictions, returns)
    shown = distinct([short_label(run.cfg) for run in runs])  # the CSV keeps the directories
    plot_robustness_heatmaps(paths[1], shown, masses, frictions, returns, spec.id)
    plot_robustness_percentiles(paths[2], shown, returns, spec.id)
    lines = [
        f"{spec.id}: {count(len(masses), 'mass')} x {count(len(frictions), 'friction')} x "
        f"{count(episodes, 'episode')}, "
        f"mean action, seed {seed}"
    ]
    for label, ret in zip(labels, returns, strict=True):
        cell_means = ret.double().mean(-1)  # [mass, friction]
        worst = int(cell_means.argmin())
        m, f = divmod(worst, len(frictions))
        std = cell_means.std().item() if cells > 1 else 0.0
        lines.append(
            f"  {label}: grid mean {cell_means.mean().item():.2f} ± {std:.2f} (std of cell "
            f"means); worst cell mass {masses[m]:g} x friction {frictions[f]:g}: "
            f"{cell_means.flatten()[worst].item():.2f}"
        )
    lines.append(f"wrote {', '.join(str(p) for p in paths)}")
    return "\n".join(lines)


def _check_grid(
    run_dirs: list[Path], masses: Sequence[float], frictions: Sequence[float], episodes: int
) -> None:
    if not run_dirs:
        raise ConfigError("RUN_DIR: give at least one run directory")
    if len({d.resolve() for d in run_dirs}) < len(run_dirs):
        raise ConfigError("RUN_DIR: a run directory is given twice")
    if episodes < 1:
        raise ConfigError(f"--episodes: expected a positive integer, got {episodes}")
    for flag, scales in (("--mass", masses), ("--friction", frictions)):
        if len(scales) == 0:
            raise ConfigError(f"{flag}: expected at least one scale")
        bad = [s for s in scales if not (math.isfinite(s) and s > 0)]
        if bad:
            raise ConfigError(f"{flag}: every scale must be > 0 (of nominal), got {bad[0]}")
        if len(set(scales)) < len(scales):
            raise ConfigError(f"{flag}: a scale is repeated in {list(scales)}")


def _labels(run_dirs: list[Path]) -> list[str]:
    """Each run's directory name, or as many trailing path parts as tell same-named runs apart."""
    parts = [d.resolve().parts for d in run_dirs]
    for k in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-k:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    raise AssertionError("distinct resolved paths always have distinct suffixes")


def _write_csv(
    path: Path,
    labels: list[str],
    masses: Sequence[float],
    frictions: Sequence[float],
    returns: list[Tensor],
) -> None:
    rows = (
        [label, mass, friction, r, f"{value:.4f}"]
        for label, ret in zip(labels, returns, strict=True)
        for i, mass in enumerate(masses)
        for j, friction in enumerate(frictions)
        for r, value in enumerate(ret[i, j].tolist())
    )
    write_csv(path, ["policy", "mass_scale", "friction_scale", "episode", "return"], rows)
