"""Held-out evaluation in the obstacle world: named layouts and harder random levels.

A policy trained on ``metarobust/Navigation2DObstacles-v0`` (by any generator, or by PPO on
one level) plays ``episodes`` episodes of every named layout of a level file (by default
``DEFAULT_LEVELS``, shipped with the package) and of ``random_levels`` solvable levels drawn
from ``HARDER`` (more and longer walls than training's default), with its mean action or, with
``deterministic=False``, sampled actions (as dcd's evaluation plays). Per level: the solved
rate (episodes that reach the goal) and the mean return. Writes ``held_out.csv`` (one row per
level, with the actions it was played with) and ``held_out/<layout>.png`` (the layout with the
policy's paths) into the run directory.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from metarobust.config import SamplerConfig
from metarobust.envs.level_generation import RandomLevels
from metarobust.envs.levels import DEFAULT_LEVELS, load_levels, shortest_path
from metarobust.errors import ConfigError
from metarobust.plotting import plot_level
from metarobust.runs.outputs import write_csv
from metarobust.runs.saved import SavedRun
from metarobust.sampling.acting import Acting
from metarobust.sampling.sampler_factory import make_sampler
from metarobust.utils.wording import count

ENV_ID = "metarobust/Navigation2DObstacles-v0"
CSV_NAME, FIGURES = "held_out.csv", "held_out"
HARDER = RandomLevels(num_walls=(8, 16), wall_length=(0.4, 1.0))


def harder_levels(n: int, seed: int) -> list[dict]:
    """``n`` levels of ``HARDER`` that a planner can solve, drawn with ``seed``."""
    rng, levels = np.random.default_rng(seed), []
    while len(levels) < n:
        level = HARDER.sample(1, rng)[0]
        if shortest_path(level) is not None:
            levels.append(level)
    return levels


def evaluate_held_out(
    run_dir: Path,
    *,
    levels_path: Path = DEFAULT_LEVELS,
    episodes: int = 10,
    random_levels: int = 200,
    seed: int = 12345,
    deterministic: bool = True,
    out: Path | None = None,
    progress: bool = True,
) -> str:
    """Solved rate and return of the run's policy on every held-out level (module doc), into
    ``out`` (default the run directory)."""
    run = SavedRun.load(run_dir)
    out = run.path if out is None else Path(out)
    if run.cfg.env.id != ENV_ID:
        raise ConfigError(
            f"{run_dir}: held-out layouts are for {ENV_ID} runs, not {run.cfg.env.id}"
        )
    named = load_levels(Path(levels_path))
    harder = harder_levels(random_levels, seed)
    levels = {**named, **{f"random_{i}": level for i, level in enumerate(harder)}}
    policy, state = run.policy()
    acting = Acting.single(replace(state, deterministic=deterministic))
    actions = "mean" if deterministic else "sampled"
    names, tasks = list(levels), list(levels.values())
    sampler_cfg = SamplerConfig(envs_per_worker=min(256, len(tasks) * episodes))
    with make_sampler(sampler_cfg, run.spec, policy, seed) as sampler:
        bar = tqdm(total=len(tasks), unit="level", desc="held out", disable=not progress)
        with bar:
            traj = sampler.sample_episodes(acting, tasks, episodes, seed, paired=True)
            bar.update(len(tasks))
    lengths = traj.episode_lengths.view(len(tasks), episodes)
    returns = traj.episode_returns.view(len(tasks), episodes).double()
    solved = traj.terminated.any(dim=2)  # [level, episode]: the goal ends an episode
    figures = out / FIGURES
    figures.mkdir(exist_ok=True)
    write_csv(
        out / CSV_NAME,
        ["level", "solved_rate", "return_mean", "length_mean", "episodes", "actions"],
        (
            [name, f"{solved[i].double().mean().item():.4f}", f"{returns[i].mean().item():.4f}",
             f"{lengths[i].double().mean().item():.1f}", episodes, actions]
            for i, name in enumerate(names)
        ),
    )  # fmt: skip
    for i, name in enumerate(named):
        paths = []
        for r in range(episodes):
            end = int(lengths[i, r])  # the start, then the position after every step
            paths.append(np.concatenate([traj.obs[i, r, :1, :2], traj.next_obs[i, r, :end, :2]]))
        rate = solved[i].double().mean().item()
        plot_level(levels[name], paths, figures / f"{name}.png", f"{name}: solved {rate:.0%}")
    k = len(named)
    parts = [
        f"named layouts solved {solved[:k].double().mean().item():.0%} (return "
        f"{returns[:k].mean().item():.1f})"
    ]
    if random_levels:
        parts.append(
            f"{random_levels} harder random levels solved {solved[k:].double().mean().item():.0%}"
        )
    return (
        f"{ENV_ID}, {actions} actions, {count(episodes, 'episode')} per level: "
        f"{', '.join(parts)}; wrote "
        f"{out / CSV_NAME} and {figures}/"
    )
