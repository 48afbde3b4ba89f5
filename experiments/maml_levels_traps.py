"""Whether more inner steps open the trap layouts: every meta-policy of the levels study adapts
to zigzag, spiral and labyrinth for up to ``--steps`` inner steps.

Each MAML run in ``--runs`` (``experiments/maml_levels.py``'s ``--out``) plays the three trap
layouts of the shipped held-out levels as that study does (``metarobust evaluate``: sampled
actions, ``--episodes`` fresh episodes per layout and inner step, evaluation seed
``--eval-seed``), for 0..``--steps`` steps at the run's own step size. Writes into ``--out``:
``traps.yaml`` (the layouts played), ``<run>.csv`` per run (its held-out CSV of those layouts)
and ``summary.md``: per run, each layout's best solved rate over the steps, the step it came
at, and spiral's rate after 0, 3 and ``--steps`` steps.

    python experiments/maml_levels_traps.py --runs runs/maml_levels \\
        --out benchmarks/results/maml_levels/traps_10_steps
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from metarobust.envs.levels import DEFAULT_LEVELS, load_levels
from metarobust.held_out import CSV_NAME, evaluate_held_out
from metarobust.runs.run_dir import load_run_config
from metarobust.utils.checkpoint import CHECKPOINT_NAME

TRAPS = ("zigzag", "spiral", "labyrinth")


def solved_rates(path: Path) -> dict[str, list[float]]:
    """Per level of a held-out CSV, its solved rate (percent) after each inner step."""
    rates: dict[str, list[float]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            rates.setdefault(row["level"], []).append(100 * float(row["solved_rate"]))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="the levels study's --out")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=10, help="inner steps at evaluation")
    parser.add_argument("--episodes", type=int, default=20, help="per layout and inner step")
    parser.add_argument("--eval-seed", type=int, default=12345)
    args = parser.parse_args()
    runs = sorted(
        run
        for run in args.runs.glob("*_s*")
        if (run / CHECKPOINT_NAME).exists() and load_run_config(run).train.meta_learns
    )
    if not runs:
        print(f"{args.runs}: no MAML runs of the levels study", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    traps = args.out / "traps.yaml"
    shipped = load_levels(DEFAULT_LEVELS)
    traps.write_text(yaml.safe_dump({name: shipped[name] for name in TRAPS}, sort_keys=False))
    lines = [
        f"python experiments/maml_levels_traps.py --runs {args.runs} --out {args.out} "
        f"--steps {args.steps} --episodes {args.episodes} --eval-seed {args.eval_seed}",
        "",
        f"| run | {' | '.join(f'{t}: best (step)' for t in TRAPS)} | spiral after 0 / 3 / "
        f"{args.steps} steps |",
        "| --- |" + " --- |" * (len(TRAPS) + 1),
    ]
    for run in runs:
        with tempfile.TemporaryDirectory() as scratch:
            evaluate_held_out(
                run, levels_path=traps, episodes=args.episodes, random_levels=0,
                steps=args.steps, seed=args.eval_seed, deterministic=False,
                out=Path(scratch), progress=False,
            )  # fmt: skip
            shutil.copy(Path(scratch) / CSV_NAME, args.out / f"{run.name}.csv")
        rates = solved_rates(args.out / f"{run.name}.csv")
        cells = []
        for trap in TRAPS:
            best = max(range(len(rates[trap])), key=rates[trap].__getitem__)
            cells.append(f"{rates[trap][best]:.0f} % ({best})")
        shown = " / ".join(f"{rates['spiral'][k]:.0f}" for k in (0, min(3, args.steps), args.steps))
        lines.append(f"| {run.name} | {' | '.join(cells)} | {shown} % |")
        print(lines[-1], flush=True)
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
