"""MAML-TRPO on Meta-World, as its papers report it: ML1 reach, push and pick-place and ML10,
meta-train and meta-test success after adaptation, per seed, at a stated budget.

For each benchmark in ``--benchmarks`` and each seed, MAML is trained from
``configs/metaworld/<benchmark>.yaml`` (garage's MAML-TRPO settings; ``--set`` changes any of
them, e.g. ``--set maml.num_iterations=50`` for a smaller budget), then meta-tested on
``--tasks`` tasks drawn from the benchmark's test split (``metarobust evaluate``: ``--episodes``
fresh episodes per task and inner step, up to ``--steps`` steps; an episode succeeds if any of
its steps does), beside a randomly initialised policy adapted the same way. A row per benchmark
and seed:

- ``iterations`` and ``env_steps`` trained;
- ``train_pre_success`` and ``train_post_success``: the percentage of training episodes that
  succeeded before and after the inner step, averaged over the last 10 iterations (the
  meta-train success of the Meta-World papers, on the train split's tasks);
- ``test_success_<k>``: meta-test success after ``k`` inner steps, on the test split's tasks;
- ``random_success_<K>``: the randomly initialised policy's after the last step.

Writes ``summary.csv`` and ``summary.md`` (mean ± std over seeds) into ``--out``, and per
benchmark ``<benchmark>/intervals.{csv,md,png}``: the IQM of meta-test success per task after
the last step over seeds x tasks, with 95 % bootstrap intervals, for the meta-policy and the
random initialisation, and the probability that the meta-policy improves on it. Finished runs
are reused and cut-off runs resumed. Needs the ``[metaworld]`` extra.

    python experiments/metaworld_benchmark.py --seeds 0 1 2 --out runs/metaworld \\
        --set maml.num_iterations=50
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import numpy as np

from metarobust.maml.meta_test import SUCCESS_TASKS_CSV_NAME, evaluate_maml_run
from metarobust.reporting import write_intervals
from metarobust.runs.saved import SavedRun
from metarobust.studies import (
    last_step_scores,
    parse_meta_test_args,
    run_study,
    trained_run,
    up_to_date,
)
from metarobust.utils.logger import read_metrics

BENCHMARKS = ("ml1_reach", "ml1_push", "ml1_pick_place", "ml10")
TRAIN_WINDOW = 10  # last iterations averaged for meta-train success


def config_of(benchmark: str) -> Path:
    return Path("configs/metaworld") / f"{benchmark}.yaml"


def compare_seed(args: argparse.Namespace, seed: int) -> list[dict]:
    """Train and meta-test every benchmark for one seed; a row per benchmark."""
    rows = []
    for benchmark in args.benchmarks:
        run = trained_run(
            config_of(benchmark), [*args.overrides, f"seed={seed}"], out=args.out,
            name=f"{benchmark}_s{seed}", algorithm="maml",
        )  # fmt: skip
        if not up_to_date(run / SUCCESS_TASKS_CSV_NAME, run):
            print(
                evaluate_maml_run(
                    run, num_tasks=args.tasks, episodes_per_task=args.episodes,
                    num_steps=args.steps, seed=args.eval_seed,
                )
            )  # fmt: skip
        rows.append({"method": benchmark, "seed": seed, **training_row(run), **test_row(run)})
    return rows


def training_row(run: Path) -> dict[str, float]:
    """Iterations and env steps trained, and meta-train success over the last iterations."""
    saved = SavedRun.load(run)
    last = [row for row in read_metrics(run) if "meta/post_adapt_success" in row]
    last = last[-TRAIN_WINDOW:]
    return {
        "iterations": float(saved.checkpoint["iteration"]),
        "env_steps": float(saved.env_steps),
        "train_pre_success": 100 * statistics.fmean(r["meta/pre_adapt_success"] for r in last),
        "train_post_success": 100 * statistics.fmean(r["meta/post_adapt_success"] for r in last),
    }


def test_row(run: Path) -> dict[str, float]:
    """Meta-test success of the meta-policy after each inner step, and the random
    initialisation's after the last, over the test tasks."""
    with (run / SUCCESS_TASKS_CSV_NAME).open() as f:
        rows = list(csv.DictReader(f))
    steps = sorted({int(r["gradient_steps"]) for r in rows})

    def rate(method: str, k: int) -> float:
        key = (method, str(k))
        return 100 * statistics.fmean(
            float(r["success"]) for r in rows if (r["method"], r["gradient_steps"]) == key
        )

    return {
        **{f"test_success_{k}": rate("MAML", k) for k in steps},
        f"random_success_{steps[-1]}": rate("random init", steps[-1]),
    }


def write_benchmark_intervals(args: argparse.Namespace) -> None:
    """Per benchmark: the meta-policy's and the random initialisation's meta-test success per
    task after the last step, as interval estimates (``<out>/<benchmark>/intervals.*``)."""
    for benchmark in args.benchmarks:
        runs = [args.out / f"{benchmark}_s{seed}" / SUCCESS_TASKS_CSV_NAME for seed in args.seeds]
        scores = {
            method: np.stack([last_step_scores(path, "success", method=method) for path in runs])
            for method in ("random init", "MAML")
        }
        (args.out / benchmark).mkdir(exist_ok=True)
        print(write_intervals(args.out / benchmark, scores, baseline="random init",
                              metric=f"{benchmark}: meta-test success per task"))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    args = parse_meta_test_args(
        parser, tasks=(50, "test-split tasks"), episodes=(10, "per task and inner step"),
        steps=1,
    )  # fmt: skip
    title = (
        f"Meta-World MAML-TRPO, configs/metaworld/*.yaml {' '.join(args.overrides)}: seeds "
        f"{args.seeds}; meta-test on {args.tasks} test-split tasks x {args.episodes} episodes "
        f"per inner step, {args.steps} step(s); success in percent"
    )
    code = run_study(
        "metaworld_benchmark", args.out, args.seeds, lambda seed: compare_seed(args, seed),
        title=title, methods=args.benchmarks,
    )  # fmt: skip
    if code == 0:
        write_benchmark_intervals(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
