"""Evaluate any saved run the way its algorithm is judged (``metarobust evaluate``):

- PPO/TRPO: episodes of its policy, returns to ``evaluation.csv``;
- RARL: the robustness grid of its protagonist (``robustness.csv`` and its two plots);
- an attack run: the victim's return with no, random and trained disturbance (``attack.csv``);
- MAML: the return after 0..K adaptation steps on held-out tasks (``adaptation.csv/.png``);
- a run in the obstacle world: the solved rate on held-out layouts (``held_out.csv``), a MAML
  run's after 0..K adaptation steps;
- with a dynamics grid, any run on held-out tasks x mass x friction x force cells, a MAML
  run after 0..K adaptation steps on each (``dynamics_grid.csv``).

The files go into the run directory, or ``out``, by the rule of ``metarobust.runs.outputs``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from metarobust.config import SamplerConfig
from metarobust.errors import ConfigError
from metarobust.runs.outputs import write_csv
from metarobust.runs.saved import SavedRun
from metarobust.sampling.acting import Acting
from metarobust.sampling.sampler_factory import EVALUATION_BATCH, make_sampler
from metarobust.utils.wording import count

EVALUATION_NAME = "evaluation.csv"


def evaluate(
    run_dir: Path,
    *,
    episodes: int = 10,
    seed: int = 12345,
    deterministic: bool = True,
    tasks: int = 40,
    steps: int = 3,
    pretrained: Path | None = None,
    later_lr: float | None = None,
    under_attack: bool = False,
    attacker: Path | None = None,
    grid: tuple[float, float, float] | None = None,
    shared: Path | None = None,
    levels: Path | None = None,
    random_levels: int = 200,
    dynamics_grid: tuple[list[float], list[float], list[float]] | None = None,
    grid_envs: int | None = None,
    out: Path | None = None,
    progress: bool = True,
) -> str:
    """Evaluate the run in ``run_dir`` by its algorithm; returns a summary. ``episodes`` per
    condition (MAML: per task); ``tasks``, ``steps``, ``pretrained`` and ``later_lr`` are
    MAML's meta-test settings (see ``metarobust.maml.meta_test``); ``under_attack`` (or an
    ``attacker`` run) gives the adaptation curves under attack instead
    (``metarobust.adversarial.under_attack``), with ``grid`` (``LOW, HIGH, POINTS`` of mass
    and friction scales) as its model-mismatch condition. A run in the obstacle world plays
    the held-out ``levels`` (a level file; default the shipped ``DEFAULT_LEVELS``) and
    ``random_levels`` harder random levels (``metarobust.held_out``), a MAML run
    after 0..``steps`` inner steps on each. ``dynamics_grid`` (masses, frictions, forces)
    evaluates any run on held-out tasks x that grid instead, a MAML run adapting on each
    (``metarobust.maml.dynamics_grid``), with at most ``grid_envs`` envs. The outputs go
    into ``out`` (default ``run_dir``)."""
    run = SavedRun.load(run_dir)
    meta = run.cfg.train.meta_learns
    if later_lr is not None and not meta:
        raise ConfigError(f"--later-lr: only for MAML runs ({run_dir} is {run.algorithm})")
    out = Path(run_dir if out is None else out)
    out.mkdir(parents=True, exist_ok=True)
    victim = run.cfg.adversarial.victim
    if run.algorithm == "robust_maml" and victim is not None:  # an attack on a meta-policy
        under_attack, attacker, run = True, run.path, SavedRun.load(victim)
    if dynamics_grid is not None:
        from metarobust.maml.dynamics_grid import evaluate_dynamics_grid

        masses, frictions, forces = dynamics_grid
        return evaluate_dynamics_grid(
            run.path,
            masses=masses,
            frictions=frictions,
            forces=forces,
            num_tasks=tasks,
            episodes_per_task=episodes,
            num_steps=steps,
            seed=seed,
            later_lr=later_lr,
            envs=grid_envs,
            out=out,
            progress=progress,
        )
    if under_attack or attacker is not None or shared is not None:
        from metarobust.adversarial.robustness import scale_grid
        from metarobust.adversarial.under_attack import evaluate_under_attack

        scales = None if grid is None else scale_grid(*grid, flag="--grid")
        return evaluate_under_attack(
            run.path,
            attacker=attacker,
            num_tasks=tasks,
            episodes_per_task=episodes,
            num_steps=steps,
            seed=seed,
            grid=None if scales is None else (scales, scales),
            shared=shared,
            later_lr=later_lr,
            out=out,
            progress=progress,
        )
    if run.cfg.env.id == "metarobust/Navigation2DObstacles-v0":
        from metarobust.envs.levels import DEFAULT_LEVELS
        from metarobust.held_out import evaluate_held_out

        return evaluate_held_out(
            run.path,
            levels_path=DEFAULT_LEVELS if levels is None else levels,
            episodes=episodes,
            random_levels=random_levels,
            steps=steps,
            seed=seed,
            deterministic=deterministic,
            later_lr=later_lr,
            out=out,
            progress=progress,
        )
    if run.algorithm == "rarl" and victim is not None:
        from metarobust.adversarial.attack import attack_report

        return attack_report(run.path, episodes, seed, out=out, progress=progress)
    if run.algorithm == "rarl":
        from metarobust.adversarial.robustness import DEFAULT_GRID, robustness_grid, scale_grid

        if not deterministic:
            raise ConfigError("--stochastic: a RARL run's robustness grid uses the mean action")
        grid = scale_grid(*DEFAULT_GRID)
        return robustness_grid([run.path], grid, grid, episodes, seed, out, progress=progress)
    if meta:
        from metarobust.maml.meta_test import evaluate_maml_run

        return evaluate_maml_run(
            run.path,
            num_tasks=tasks,
            episodes_per_task=episodes,
            num_steps=steps,
            seed=seed,
            pretrained=pretrained,
            later_lr=later_lr,
            out=out,
            progress=progress,
        )
    return evaluate_episodes(
        run, episodes, seed, out=out, deterministic=deterministic, progress=progress
    )


def evaluate_episodes(
    run: SavedRun,
    episodes: int,
    seed: int,
    *,
    out: Path,
    deterministic: bool = True,
    progress: bool = True,
) -> str:
    """Run ``episodes`` episodes of the run's policy, write ``evaluation.csv`` into ``out``
    and return a one-line summary."""
    policy, state = run.policy()
    acting = Acting.single(replace(state, deterministic=deterministic))
    batch = min(episodes, EVALUATION_BATCH)  # batch k of episodes uses seed + k
    returns, lengths = [], []
    bar = tqdm(total=episodes, unit="episode", desc="evaluate", disable=not progress)
    sampler_cfg = SamplerConfig(envs_per_worker=batch)
    with make_sampler(sampler_cfg, run.spec, policy, seed) as sampler, bar:
        for k, start in enumerate(range(0, episodes, batch)):
            n = min(batch, episodes - start)
            traj = sampler.sample_episodes(acting, [run.cfg.env.task], n, seed + k)
            returns.append(traj.episode_returns)
            lengths.append(traj.episode_lengths)
            bar.update(n)
    returns, lengths = torch.cat(returns).double(), torch.cat(lengths).double()
    rows = zip(returns.tolist(), lengths.tolist(), strict=True)
    path = write_csv(
        out / EVALUATION_NAME,
        ["episode", "return", "length"],
        ([i, f"{ret:.4f}", int(length)] for i, (ret, length) in enumerate(rows)),
    )
    mode = "mean action" if deterministic else "sampled actions"
    std = returns.std().item() if episodes > 1 else 0.0
    return (
        f"{run.cfg.env.id}: return {returns.mean().item():.2f} ± {std:.2f} over "
        f"{count(episodes, 'episode')} ({mode}, mean length {lengths.mean().item():.0f}, "
        f"step {run.env_steps}); wrote {path}"
    )
