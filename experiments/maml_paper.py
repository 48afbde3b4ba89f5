"""The MAML paper's locomotion results (Finn et al. 2017, figure 5), per seed: a meta-policy and
the pretrained baseline trained at the same env steps, then adapted on held-out tasks beside a
random initialisation.

For each seed, MAML trains from ``--config`` (default ``configs/maml/ant_dir_paper.yaml``; any
of ``configs/maml/*_paper.yaml``), and the pretrained baseline from the same config with no
inner step (``maml.num_inner_steps=0``: multi-task TRPO on the task distribution) and twice the
episodes per task, so that each of its iterations samples as many env steps as MAML's two
phases. ``--set`` changes both runs (``--set maml.num_iterations=100`` states a smaller budget
than the paper's 500). Each policy is then adapted on ``--tasks`` held-out tasks, ``--episodes``
fresh episodes per task and inner step, for 0..``--steps`` steps (``metarobust evaluate
--pretrained``). A row per method (MAML, pretrained, random init) and seed: the mean return
over the held-out tasks after each inner step, and the env steps trained.

Writes ``summary.csv`` and ``summary.md`` (mean ± std over seeds) into ``--out``, and
``intervals.{csv,md,png}``: the IQM of the return per held-out task after the last step over
seeds x tasks, with 95 % bootstrap intervals, and each method's probability of improving on
the pretrained baseline. Finished runs are reused and cut-off runs resumed.

    python experiments/maml_paper.py --config configs/maml/ant_dir_paper.yaml --seeds 0 1 2 \\
        --out runs/ant_dir --set maml.num_iterations=100
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from metarobust.config import load_config
from metarobust.maml.meta_test import CSV_NAME, TASKS_CSV_NAME, evaluate_maml_run
from metarobust.runs.saved import SavedRun
from metarobust.studies import (
    last_step_scores,
    parse_meta_test_args,
    run_study,
    trained_run,
    up_to_date,
)

METHODS = ("pretrained", "MAML", "random init")


def compare_seed(args: argparse.Namespace, seed: int) -> list[dict]:
    """Train MAML and the pretrained baseline for one seed and adapt all three starts; a row
    per method."""
    overrides = [*args.overrides, f"seed={seed}"]
    episodes = load_config(args.config, overrides).maml.episodes_per_task
    maml = trained_run(args.config, overrides, out=args.out, name=f"maml_s{seed}",
                       algorithm="maml")  # fmt: skip
    pretrained = trained_run(
        args.config,
        [*overrides, "maml.num_inner_steps=0", f"maml.episodes_per_task={2 * episodes}"],
        out=args.out, name=f"pretrained_s{seed}", algorithm="maml",
    )  # fmt: skip
    if not up_to_date(maml / TASKS_CSV_NAME, maml, pretrained):
        print(
            evaluate_maml_run(
                maml, num_tasks=args.tasks, episodes_per_task=args.episodes,
                num_steps=args.steps, seed=args.eval_seed, pretrained=pretrained,
            )
        )  # fmt: skip
    with (maml / CSV_NAME).open() as f:
        table = list(csv.DictReader(f))
    trained = {"MAML": SavedRun.load(maml).env_steps,
               "pretrained": SavedRun.load(pretrained).env_steps, "random init": 0}  # fmt: skip
    return [
        {
            "method": method,
            "seed": seed,
            **{
                f"return_{r['gradient_steps']}": float(r["return_mean"])
                for r in table
                if r["method"] == method
            },  # fmt: skip
            "env_steps": float(trained[method]),
        }
        for method in METHODS
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/maml/ant_dir_paper.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    args = parse_meta_test_args(
        parser, tasks=(40, "held-out tasks"), episodes=(20, "per task and inner step"),
        steps=3,
    )  # fmt: skip
    title = (
        f"{args.config} {' '.join(args.overrides)}: seeds {args.seeds}; {args.tasks} held-out "
        f"tasks x {args.episodes} episodes per inner step, mean return after k steps"
    )
    return run_study(
        "maml_paper", args.out, args.seeds, lambda seed: compare_seed(args, seed),
        title=title, methods=METHODS,
        scores=lambda method, seed: last_step_scores(
            args.out / f"maml_s{seed}" / TASKS_CSV_NAME, "return", method=method
        ),
        metric=f"return per held-out task after {args.steps} inner steps",
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
