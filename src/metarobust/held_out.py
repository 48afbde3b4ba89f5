"""Held-out evaluation in the obstacle world: named layouts and harder random levels.

A policy trained on ``metarobust/Navigation2DObstacles-v0`` (by any generator, or by PPO on
one level) plays ``episodes`` episodes of every named layout of a level file (by default
``DEFAULT_LEVELS``, shipped with the package) and of ``random_levels`` solvable levels drawn
from ``HARDER`` (more and longer walls than training's default), with its mean action or, with
``deterministic=False``, sampled actions (as dcd's evaluation plays). Per level: the solved
rate (episodes that reach the goal) and the mean return.

A MAML run's meta-policy adapts to each level first, by the meta-test protocol: after ``k``
inner steps (``k = 0 .. steps``), ``episodes`` fresh episodes with sampled actions, on which it
takes step ``k + 1``; the row of step ``k`` reports those episodes, or with the mean action
another ``episodes`` played with the same parameters.

Writes into the run directory: ``held_out.csv`` (one row per level and inner step, with the
actions it was played with), ``held_out_summary.csv`` (per group of levels and step: the
solved rate, the mean return and the CVaR 10 % of the levels' returns) and
``held_out/<layout>.png`` (the layout with the policy's paths, before and after adapting).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from torch import Tensor
from tqdm.auto import tqdm

from metarobust.config import SamplerConfig
from metarobust.envs.level_generation import RandomLevels
from metarobust.envs.levels import DEFAULT_LEVELS, load_levels, shortest_path
from metarobust.errors import ConfigError
from metarobust.maml.adapt import adapt_to_episodes
from metarobust.maml.algorithm import saved_meta_policy
from metarobust.plotting import plot_level
from metarobust.risk import CVAR_ALPHA, cvar
from metarobust.runs.outputs import write_csv
from metarobust.runs.saved import SavedRun
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.sampler_factory import EVALUATION_ENVS, make_sampler
from metarobust.trajectories import Trajectories
from metarobust.utils.seeding import episode_seed
from metarobust.utils.wording import count

ENV_ID = "metarobust/Navigation2DObstacles-v0"
CSV_NAME, SUMMARY_NAME, FIGURES = "held_out.csv", "held_out_summary.csv", "held_out"
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
    steps: int = 3,
    seed: int = 12345,
    deterministic: bool = True,
    later_lr: float | None = None,
    out: Path | None = None,
    progress: bool = True,
) -> str:
    """Solved rate and return of the run's policy on every held-out level (module doc), a MAML
    run's after 0..``steps`` inner steps (the run's step size first, ``later_lr`` after that
    if given), into ``out`` (default the run directory)."""
    run = SavedRun.load(run_dir)
    out = run.path if out is None else Path(out)
    if run.cfg.env.id != ENV_ID:
        raise ConfigError(
            f"{run_dir}: held-out layouts are for {ENV_ID} runs, not {run.cfg.env.id}"
        )
    named = load_levels(Path(levels_path))
    harder = harder_levels(random_levels, seed)
    levels = {**named, **{f"random_{i}": level for i, level in enumerate(harder)}}
    names, tasks = list(levels), list(levels.values())
    policy, state = run.policy()
    meta = run.cfg.train.meta_learns
    steps = steps if meta else 0
    step_size = saved_meta_policy(run)[1] if meta else 0.0
    actions = "mean" if deterministic else "sampled"
    sampler_cfg = SamplerConfig(envs_per_worker=min(EVALUATION_ENVS, len(tasks) * episodes))
    played: list[Trajectories] = []  # per inner step, the episodes reported
    bar = tqdm(total=steps + 1, unit="step", desc="held out", disable=not progress)
    with make_sampler(sampler_cfg, run.spec, policy, seed) as sampler, bar:
        for k in range(steps + 1):
            # a run that does not adapt plays the reported episodes alone, with ``seed``
            report_seed = episode_seed(seed, k, 1) if meta else seed
            report = Acting.single(replace(state, deterministic=deterministic))
            traj = sampler.sample_episodes(report, tasks, episodes, report_seed, paired=True)
            played.append(traj)
            if k < steps:  # adapt on fresh episodes with sampled actions
                if deterministic:
                    sampled = Acting.single(replace(state, deterministic=False))
                    traj = sampler.sample_episodes(
                        sampled, tasks, episodes, episode_seed(seed, k, 0)
                    )
                adapted, _ = adapt_to_episodes(
                    policy,
                    state.params,
                    traj,
                    gamma=run.cfg.maml.gamma,
                    step_size=step_size if k == 0 or later_lr is None else later_lr,
                    per_task_params=state.stack == "task",
                )
                state = PolicyState.of(adapted, policy, stack="task")
            bar.update(1)
    results = [LevelResults.of(traj, len(tasks), episodes) for traj in played]
    _write_levels(out / CSV_NAME, names, results, episodes, actions)
    groups = {"named": slice(0, len(named)), "random": slice(len(named), len(names))}
    groups = {g: rows for g, rows in groups.items() if rows.stop > rows.start}
    words = {"named": "named layouts", "random": f"{random_levels} harder random levels"}
    summary = _write_summary(out / SUMMARY_NAME, groups, words, results)
    figures = out / FIGURES
    figures.mkdir(exist_ok=True)
    for i, name in enumerate(named):
        panels = {"before adapting" if meta else "": results[0].paths(played[0], i)}
        if meta and steps:
            panels[f"after {count(steps, 'inner step')}"] = results[-1].paths(played[-1], i)
        rates = ", ".join(f"{r.solved[i].double().mean().item():.0%}" for r in results)
        title = f"{name}: solved {rates}" + (f" after 0..{steps} steps" if meta and steps else "")
        plot_level(levels[name], panels, figures / f"{name}.png", title)
    adapting = f" after 0..{steps} inner steps" if meta and steps else ""
    return (
        f"{ENV_ID}, {actions} actions, {count(episodes, 'episode')} per level{adapting}: "
        f"{summary}; wrote {out / CSV_NAME}, {out / SUMMARY_NAME} and {figures}/"
    )


@dataclass(frozen=True)
class LevelResults:
    """One inner step's episodes per level: returns and lengths ``[level, episode]``, solved
    ``[level, episode]`` (the goal ends an episode)."""

    returns: Tensor
    lengths: Tensor
    solved: Tensor

    @classmethod
    def of(cls, traj: Trajectories, num_levels: int, episodes: int) -> LevelResults:
        return cls(
            traj.episode_returns.view(num_levels, episodes).double(),
            traj.episode_lengths.view(num_levels, episodes),
            traj.terminated.any(dim=2),
        )

    def paths(self, traj: Trajectories, level: int) -> list[np.ndarray]:
        """The positions of every episode on ``level``: the start, then after every step."""
        return [
            np.concatenate([traj.obs[level, r, :1, :2], traj.next_obs[level, r, :end, :2]])
            for r, end in enumerate(self.lengths[level].tolist())
        ]


def _write_levels(
    path: Path, names: list[str], results: list[LevelResults], episodes: int, actions: str
) -> None:
    header = ["level", "gradient_steps", "solved_rate", "return_mean", "length_mean", "episodes",
              "actions"]  # fmt: skip
    write_csv(
        path,
        header,
        (
            [
                name,
                k,
                f"{r.solved[i].double().mean().item():.4f}",
                f"{r.returns[i].mean().item():.4f}",
                f"{r.lengths[i].double().mean().item():.1f}",
                episodes,
                actions,
            ]
            for k, r in enumerate(results)
            for i, name in enumerate(names)
        ),  # fmt: skip
    )


def _write_summary(
    path: Path, groups: dict[str, slice], words: dict[str, str], results: list[LevelResults]
) -> str:
    """Per group of levels and step, the solved rate and the mean and CVaR of the levels' mean
    returns; returns the solved rates in ``words``."""
    tail = f"return_cvar{round(100 * CVAR_ALPHA)}"
    rows, said = [], []
    for group, rows_of in groups.items():
        for k, r in enumerate(results):
            solved = r.solved[rows_of].double().mean().item()
            per_level = r.returns[rows_of].mean(1)
            rows.append([group, k, f"{solved:.4f}", f"{per_level.mean().item():.4f}",
                         f"{cvar(per_level):.4f}", per_level.numel()])  # fmt: skip
        rates = "/".join(f"{x.solved[rows_of].double().mean().item():.0%}" for x in results)
        said.append(f"{words[group]} solved {rates}")
    write_csv(path, ["levels", "gradient_steps", "solved_rate", "return_mean", tail, "count"], rows)
    return ", ".join(said)
