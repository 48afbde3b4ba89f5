"""How MAML draws its meta-batch, side by side: uniform, CVaR (RoML) and PLR task selection.

For each seed, MAML is trained from the config given (default ``configs/maml_config.yaml``,
2D navigation) three times, with ``maml.task_selection`` uniform, cvar and plr (the same
iterations and env steps: every selection trains on every batch), then each meta-policy is
adapted on the same ``--tasks`` held-out tasks (``metarobust evaluate``, its own seed): the
return after one inner step, averaged over the tasks, its CVaR 10 % over the tasks and the
worst task. Writes ``summary.csv`` (a row per selection and seed), ``summary.md`` (mean ±
std over seeds) and ``intervals.{csv,md,png}`` (the IQM of the return per held-out task after
one step over seeds x tasks, with 95 % bootstrap intervals, and each selection's probability
of improving on uniform) into ``--out``; finished runs are reused and cut-off runs resumed.

    python experiments/maml_task_selection.py --seeds 0 1 2 --out runs/maml_task_selection
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from metarobust.maml.meta_test import CSV_NAME, TASKS_CSV_NAME, evaluate_maml_run
from metarobust.studies import last_step_scores, run_study, trained_run, up_to_date

SELECTIONS = ("uniform", "cvar", "plr")


def compare_seed(args: argparse.Namespace, seed: int) -> list[dict]:
    """Train and evaluate MAML with every task selection for one seed; a row per selection."""
    rows = []
    for selection in args.selections:
        overrides = [*args.overrides, f"maml.task_selection={selection}", f"seed={seed}"]
        run = trained_run(
            args.config, overrides, out=args.out, name=f"{selection}_s{seed}", algorithm="maml"
        )
        if not up_to_date(run / TASKS_CSV_NAME, run):
            print(
                evaluate_maml_run(
                    run,
                    num_tasks=args.tasks,
                    episodes_per_task=args.episodes,
                    num_steps=1,
                    seed=args.eval_seed,
                )
            )
        rows.append({"method": selection, "seed": seed, **read_one_step(run / CSV_NAME)})
    return rows


def read_one_step(path: Path) -> dict[str, float]:
    """The meta-policy's returns before and after one inner step (mean, CVaR 10 %, worst)."""
    with path.open() as f:
        table = {r["gradient_steps"]: r for r in csv.DictReader(f) if r["method"] == "MAML"}
    return {
        "pre_mean": float(table["0"]["return_mean"]),
        "post_mean": float(table["1"]["return_mean"]),
        "post_cvar10": float(table["1"]["return_cvar10"]),
        "post_worst": float(table["1"]["return_worst"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/maml_config.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--selections", nargs="+", choices=SELECTIONS, default=list(SELECTIONS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", type=int, default=100, help="held-out tasks")
    parser.add_argument("--episodes", type=int, default=20, help="per task and step")
    parser.add_argument("--eval-seed", type=int, default=12345)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.tasks < 1 or args.episodes < 1:
        parser.error("--tasks and --episodes: expected positive integers")
    title = (
        f"{args.config} {' '.join(args.overrides)}: seeds {args.seeds}; {args.tasks} held-out "
        f"tasks x {args.episodes} episodes, return before and after one inner step"
    )
    return run_study(
        "maml_task_selection",
        args.out,
        args.seeds,
        lambda seed: compare_seed(args, seed),
        title=title,
        methods=args.selections,
        scores=lambda selection, seed: last_step_scores(
            args.out / f"{selection}_s{seed}" / TASKS_CSV_NAME, "return", method="MAML"
        ),
        metric="return per held-out task after one inner step",
    )


if __name__ == "__main__":
    sys.exit(main())
