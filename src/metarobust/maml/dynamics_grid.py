"""Adaptation over a wide grid of dynamics: held-out tasks on every cell of a mass x friction x
force grid wider than training's, the return after 0..K inner steps on each (task, cell).

A meta-policy adapts on each pair by the meta-test protocol (``adaptation_curve``: fresh
episodes with sampled actions each step); a policy that does not meta-learn (PPO/TRPO, RARL's
protagonist) plays its sampled actions without adapting (K = 0). Cells run on the ``Dynamics``
variant of the run's env: ``{**task, "mass_scale": m, "friction_scale": f, "force_x": F}``,
held-out tasks drawn from the task part of the run's distribution (its dynamics ranges left
out: the grid sets them). The robustness measures over tasks x cells are RoML's and EPOpt's:
the mean, the CVaR at 5 % and 10 % (the mean of the worst 5 % / 10 % of (task, cell) returns)
and the worst, for the whole grid and for the cells outside the run's training ranges (where
it drew its dynamics from a range; every cell off nominal where it trained at nominal).

Where the env reports success (Meta-World), the share of episodes that succeeded is written
beside the return (``success_rate``) and is what the map shows: the measure its benchmark is
read by.

Writes ``dynamics_grid.csv`` (per cell and step, over tasks), ``dynamics_grid_summary.csv``
(per region and step) and ``dynamics_grid.png`` (mean return, or success rate, per mass x
friction cell after the last step, one map per force).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor
from tqdm.auto import tqdm

from metarobust.envs import default_task_distribution
from metarobust.envs.tasks import DynamicsScales, WithDynamics
from metarobust.errors import ConfigError
from metarobust.maml.algorithm import saved_meta_policy
from metarobust.maml.meta_test import adaptation_curve
from metarobust.plotting import plot_robustness_heatmaps
from metarobust.risk import cvar
from metarobust.runs.outputs import write_csv
from metarobust.runs.saved import SavedRun
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.sampler_factory import EVALUATION_ENVS, make_sampler
from metarobust.utils.wording import count

CSV_NAME, SUMMARY_NAME, PNG_NAME = (
    "dynamics_grid.csv",
    "dynamics_grid_summary.csv",
    "dynamics_grid.png",
)
DEFAULT_SCALES = (0.25, 3.0, 5)  # LOW, HIGH, POINTS of mass and friction: wider than RoML's 0.5-2
ALPHAS = (0.05, 0.1)  # the CVaR levels reported
AXES = ("mass_scale", "friction_scale", "force_x")


def evaluate_dynamics_grid(
    run_dir: Path,
    *,
    masses: Sequence[float],
    frictions: Sequence[float],
    forces: Sequence[float] = (0.0,),
    num_tasks: int = 10,
    episodes_per_task: int = 5,
    num_steps: int = 3,
    seed: int = 12345,
    later_lr: float | None = None,
    envs: int | None = None,
    out: Path | None = None,
    progress: bool = True,
) -> str:
    """The run's returns on every held-out task x cell after 0..``num_steps`` inner steps
    (module doc; ``later_lr`` the step size after the first), into ``out`` (default the run
    directory); returns a summary. ``envs`` caps the envs of the one sampling process (default
    ``EVALUATION_ENVS``; fewer use less memory: about 50 MB an env on Meta-World)."""
    run = SavedRun.load(run_dir)
    out = run.path if out is None else Path(out)
    spec = EnvSpec.dynamics(run.cfg.env)
    meta = run.cfg.train.meta_learns
    policy, state = run.policy()
    params, step_size = saved_meta_policy(run) if meta else (state.params, 0.0)
    steps = num_steps if meta else 0
    tasks, trained_ranges = _tasks_and_ranges(run, num_tasks, seed)
    grid = [(m, f, x) for x in forces for m in masses for f in frictions]  # force-major
    cells = [
        {**task, "mass_scale": m, "friction_scale": f, "force_x": x}
        for task in tasks
        for m, f, x in grid
    ]
    envs = min(EVALUATION_ENVS if envs is None else envs, len(cells) * episodes_per_task)
    sampler_cfg = run.cfg.sampler.model_copy(update={"envs_per_worker": envs, "workers": 1})
    bar = tqdm(total=steps + 1, unit="step", desc="dynamics grid", disable=not progress)
    with make_sampler(sampler_cfg, spec, policy, seed) as sampler, bar:
        curve = adaptation_curve(
            policy, params, sampler, cells, step_size=step_size,
            episodes_per_task=episodes_per_task, num_steps=steps, gamma=run.cfg.maml.gamma,
            seed=seed, later_step_size=later_lr, progress=bar,
        )  # fmt: skip

    def cell_major(values: Tensor) -> Tensor:  # [step, task x cell] -> [step, cell, task]
        return values.view(steps + 1, len(tasks), len(grid)).permute(0, 2, 1)

    per_cell = cell_major(curve.returns)
    success = None if curve.successes.isnan().all() else cell_major(curve.successes)
    outside = np.array([_outside(cell, trained_ranges) for cell in grid])
    _write_cells(out / CSV_NAME, grid, per_cell, success)
    regions = {"all": np.ones(len(grid), bool), "outside training": outside}
    summary = _write_summary(out / SUMMARY_NAME, regions, per_cell, success)
    shown = per_cell if success is None else 100 * success
    last = shown[-1].view(len(forces), len(masses), len(frictions), len(tasks))
    labels = [f"force_x {x:g} N" for x in forces]
    measure = "mean return" if success is None else "success rate (%)"
    note = f"{measure} over {count(len(tasks), 'held-out task')} after {count(steps, 'inner step')}"
    plot_robustness_heatmaps(
        out / PNG_NAME, labels, masses, frictions, list(last), spec.id, note, f"{measure} per cell"
    )
    return (
        f"{spec.id}, {count(len(tasks), 'held-out task')} x {count(len(grid), 'cell')} x "
        f"{count(episodes_per_task, 'episode')}: {summary}; wrote {out / CSV_NAME}, "
        f"{out / SUMMARY_NAME} and {out / PNG_NAME}"
    )


def _tasks_and_ranges(
    run: SavedRun, num_tasks: int, seed: int
) -> tuple[list[dict], dict[str, tuple[float, float]]]:
    """Held-out tasks of the task part of the run's distribution (its meta-test tasks: a
    benchmark's test split; the run's one task where it has none), and the ranges its dynamics
    were drawn from in training."""
    try:
        distribution = default_task_distribution(run.cfg.env.id, run.cfg.env.task_distribution)
    except ConfigError:
        return [dict(run.cfg.env.task or {})], {}
    ranges: dict[str, tuple[float, float]] = {}
    if isinstance(distribution, WithDynamics):
        distribution, ranges = distribution.task, distribution.dynamics.ranges
    elif isinstance(distribution, DynamicsScales):  # a Dynamics env's own: no task keys
        return [{}], distribution.ranges
    tasks = distribution.meta_test().sample(num_tasks, np.random.default_rng(seed))
    return tasks, ranges


def _outside(cell: tuple[float, float, float], ranges: dict[str, tuple[float, float]]) -> bool:
    """Whether a (mass, friction, force) cell lies outside what training drew (nominal for
    a key without a range)."""
    nominal = {"mass_scale": 1.0, "friction_scale": 1.0, "force_x": 0.0}
    for key, value in zip(AXES, cell, strict=True):
        low, high = ranges.get(key, (nominal[key], nominal[key]))
        if not low - 1e-9 <= value <= high + 1e-9:
            return True
    return False


def _measures(values: Tensor) -> list[float]:
    return [values.mean().item(), *(cvar(values, a) for a in ALPHAS), values.min().item()]


def _measure_names() -> list[str]:
    return ["return_mean", *(f"return_cvar{round(100 * a)}" for a in ALPHAS), "return_worst"]


def _success_columns(success: Tensor | None) -> list[str]:
    return [] if success is None else ["success_rate"]


def _write_cells(
    path: Path,
    grid: list[tuple[float, float, float]],
    per_cell: Tensor,
    success: Tensor | None,
) -> None:
    """A row per cell and step (``per_cell`` and ``success``: ``[step, cell, task]``)."""
    header = [*AXES, "gradient_steps", *_measure_names(), *_success_columns(success), "tasks"]
    rows = []
    for k, step in enumerate(per_cell):
        for i, cell in enumerate(grid):
            rate = [] if success is None else [f"{success[k, i].mean().item():.4f}"]
            rows.append([*cell, k, *(f"{v:.4f}" for v in _measures(step[i])), *rate, len(step[i])])
    write_csv(path, header, rows)


def _write_summary(
    path: Path, regions: dict[str, np.ndarray], per_cell: Tensor, success: Tensor | None
) -> str:
    """A row per region of the grid and step over its tasks x cells; returns its words."""
    rows, words = [], []
    for region, mask in regions.items():
        if not mask.any():
            continue
        rates = [] if success is None else [s[mask].mean().item() for s in success]  # per step
        for k, step in enumerate(per_cell):
            values = step[mask].flatten()
            rate = [f"{rates[k]:.4f}"] if rates else []
            rows.append(
                [region, k, *(f"{v:.4f}" for v in _measures(values)), *rate, values.numel()]
            )
        mean = [step[mask].mean().item() for step in per_cell]
        tail = [cvar(step[mask].flatten(), ALPHAS[1]) for step in per_cell]
        said = f", success {' / '.join(f'{r:.0%}' for r in rates)}" if rates else ""
        words.append(
            f"{region}: mean {' / '.join(f'{m:.1f}' for m in mean)}, CVaR 10 % "
            f"{' / '.join(f'{t:.1f}' for t in tail)}{said}"
        )
    header = ["region", "gradient_steps", *_measure_names(), *_success_columns(success), "pairs"]
    write_csv(path, header, rows)
    return "; ".join(words) + f" after 0..{len(per_cell) - 1} steps"
