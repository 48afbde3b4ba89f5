"""Meta-learning over dynamics, side by side: which meta-batch makes a meta-policy that adapts
and holds up over a wide range of masses, frictions and pushes.

For each seed, on HalfCheetahVel whose tasks also fix their dynamics (``--config``, default
``configs/maml/halfcheetah_vel_dynamics.yaml``: mass and friction 0.5-2x, a push of up to 20 N):

- ``maml_nominal``: plain MAML on HalfCheetahVel at nominal dynamics;
- ``dr_maml``: MAML on the dynamics tasks drawn uniformly (domain randomisation);
- ``cvar``: RoML's CVaR sampler of the worst tenth (``maml.task_selection: cvar``);
- ``plr``: replay of the tasks adaptation left furthest behind;
- ``minimax``: a learned designer of (velocity, mass, friction, push), paid minus the
  post-adaptation return (AdMRL's adversary over task parameters);
- ``paired``: the same designer paid the regret against an antagonist PPO agent;
- ``robust_maml_population``: robust MAML against a population of three force adversaries
  (``configs/robust_maml/halfcheetah_vel.yaml``, ``adversarial.population=3``, the study
  config's policy), nominal dynamics;
- ``multitask_dr``: multi-task TRPO (0 inner steps) on the uniform dynamics tasks.

Every policy is then evaluated on ``--tasks`` held-out velocities x a grid wider than training's
(``metarobust evaluate --dynamics-grid``: mass and friction 0.25-3.25x in 5 steps, pushes of
-40, 0 and 40 N), the meta-policies after 0..``--steps`` inner steps on each (task, cell). A row
per method and seed: the nominal cell's mean return before and after adapting, the grid's mean,
CVaR 5 % and 10 % and worst after the last step, the mean outside the training ranges before
and after one step, the env steps trained on, and each cell's mean after the last step
against the best of the study's methods in that cell (``cell_gap``: its mean over the cells
and its CVaR 10 %, the mean of the worst tenth; 0 where the method is the best). Writes
``summary.csv``, ``summary.md`` and ``dynamics_grid_s<seed>.png`` (every method's heat map at
no push after the last step, side by side) into ``--out``; finished runs are reused and
cut-off runs resumed.

    python experiments/maml_dynamics.py --seeds 0 1 2 --out runs/maml_dynamics
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

from metarobust.config import load_config
from metarobust.maml.dynamics_grid import CSV_NAME, SUMMARY_NAME, evaluate_dynamics_grid
from metarobust.plotting import plot_robustness_heatmaps
from metarobust.risk import cvar
from metarobust.runs.saved import SavedRun
from metarobust.studies import (
    last_step_scores,
    parse_meta_test_args,
    run_study,
    trained_run,
    up_to_date,
)

METHODS = ("maml_nominal", "dr_maml", "cvar", "plr", "minimax", "paired",
           "robust_maml_population", "multitask_dr")  # fmt: skip
ROBUST_CONFIG = Path("configs/robust_maml/halfcheetah_vel.yaml")
SCALES = [0.25, 1.0, 1.75, 2.5, 3.25]  # 0.25-3.25 in 5 steps, nominal among them
FORCES = [-40.0, 0.0, 40.0]


def run_name(method: str, seed: int) -> str:
    """The run directory's name of ``method`` for ``seed``."""
    return f"{method}_s{seed}"


def method_run(args: argparse.Namespace, method: str, seed: int) -> Path:
    """The finished run of ``method`` for ``seed``."""
    config, overrides, algorithm = args.config, [*args.overrides, f"seed={seed}"], "maml"
    if method == "maml_nominal":
        distribution = load_config(args.config, args.overrides).env.task_distribution or {}
        task_only = {k: v for k, v in distribution.items() if k != "dynamics"}
        overrides += ["env.id=metarobust/HalfCheetahVel-v0",
                      f"env.task_distribution={json.dumps(task_only)}"]  # fmt: skip
    elif method == "robust_maml_population":  # with the study config's policy
        policy = load_config(args.config, args.overrides).policy
        config, algorithm = ROBUST_CONFIG, "robust_maml"
        overrides = [f"seed={seed}", "adversarial.population=3",
                     f"policy.hidden_sizes={json.dumps(list(policy.hidden_sizes))}",
                     f"policy.activation={policy.activation}"]  # fmt: skip
    elif method == "multitask_dr":
        overrides += ["maml.num_inner_steps=0"]
    else:
        selection = {"dr_maml": "uniform"}.get(method, method)
        overrides += [f"maml.task_selection={selection}"]
    return trained_run(config, overrides, out=args.out, name=run_name(method, seed),
                       algorithm=algorithm)  # fmt: skip


def compare_seed(args: argparse.Namespace, seed: int) -> list[dict]:
    """Train and evaluate every method for one seed; a row per method."""
    rows, cells = [], {}
    for method in args.methods:
        run = method_run(args, method, seed)
        if not up_to_date(run / SUMMARY_NAME, run):
            print(
                evaluate_dynamics_grid(
                    run, masses=SCALES, frictions=SCALES, forces=FORCES,
                    num_tasks=args.tasks, episodes_per_task=args.episodes,
                    num_steps=args.steps, seed=args.eval_seed,
                )
            )  # fmt: skip
        row, cells[method] = read_grid(run, args.steps)
        rows.append({"method": method, "seed": seed, **row})
    best = torch.stack(list(cells.values())).amax(0)
    for row, per_cell in zip(rows, cells.values(), strict=True):
        gap = per_cell - best
        row[f"cell_gap_mean_{args.steps}"] = round(gap.mean().item(), 4)
        row[f"cell_gap_cvar10_{args.steps}"] = round(cvar(gap), 4)
    no_push = [per_cell[..., FORCES.index(0.0), None] for per_cell in cells.values()]
    plot_robustness_heatmaps(
        args.out / f"dynamics_grid_s{seed}.png", list(cells), SCALES, SCALES, no_push,
        "metarobust/HalfCheetahVelDynamics-v0",
        f"seed {seed}: mean over held-out velocities, no push, after the last step",
    )  # fmt: skip
    return rows


def read_grid(run: Path, steps: int) -> tuple[dict[str, float], torch.Tensor]:
    """A run's row (a policy that does not adapt keeps its step-0 numbers) and its cell means
    after the last step, ``[mass, friction, push]``."""
    with (run / SUMMARY_NAME).open() as f:
        summary = {(r["region"], int(r["gradient_steps"])): r for r in csv.DictReader(f)}
    with (run / CSV_NAME).open() as f:
        cells = list(csv.DictReader(f))
    played = max(k for _, k in summary)
    last, one = min(steps, played), min(1, played)

    def cell(mass: float, friction: float, force: float, k: int) -> float:
        (value,) = (float(r["return_mean"]) for r in cells
                    if (float(r["mass_scale"]), float(r["friction_scale"]), float(r["force_x"]),
                        int(r["gradient_steps"])) == (mass, friction, force, k))  # fmt: skip
        return value

    grid = summary["all", last]
    row = {
        "nominal_0": cell(1.0, 1.0, 0.0, 0),
        f"nominal_{steps}": cell(1.0, 1.0, 0.0, last),
        f"grid_mean_{steps}": float(grid["return_mean"]),
        f"grid_cvar5_{steps}": float(grid["return_cvar5"]),
        f"grid_cvar10_{steps}": float(grid["return_cvar10"]),
        f"grid_worst_{steps}": float(grid["return_worst"]),
        "outside_mean_0": float(summary["outside training", 0]["return_mean"]),
        "outside_mean_1": float(summary["outside training", one]["return_mean"]),
        "env_steps_M": SavedRun.load(run).env_steps / 1e6,
    }
    per_cell = [[[cell(m, f, x, last) for x in FORCES] for f in SCALES] for m in SCALES]
    return row, torch.tensor(per_cell)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, default=Path("configs/maml/halfcheetah_vel_dynamics.yaml")
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    args = parse_meta_test_args(
        parser, tasks=(10, "held-out velocities"), episodes=(5, "per task, cell and step"),
        steps=3,
    )  # fmt: skip
    title = (
        f"{args.config} {' '.join(args.overrides)}: seeds {args.seeds}; {args.tasks} held-out "
        f"velocities x mass and friction {SCALES} x push {FORCES} N x {args.episodes} "
        f"episodes, return after 0..{args.steps} inner steps"
    )
    return run_study(
        "maml_dynamics",
        args.out,
        args.seeds,
        lambda seed: compare_seed(args, seed),
        title=title,
        methods=args.methods,
        scores=lambda method, seed: last_step_scores(
            args.out / run_name(method, seed) / CSV_NAME, "return_mean"
        ),
        metric=f"mean return per grid cell after {args.steps} inner steps",
    )


if __name__ == "__main__":
    sys.exit(main())
