"""Level generators side by side in the obstacle world, per seed, on held-out layouts.

For each seed, a PPO agent is trained with each generator (``--generators``; default the five:
domain randomization, minimax, PAIRED, Robust PLR, ACCEL) for the same number of iterations,
i.e. the same number of episodes of its own (PAIRED's antagonist plays as many again), from
the config given (default ``configs/ued/obstacles.yaml``). Each trained policy then plays the
named held-out layouts and ``--random-levels`` harder random levels with its mean action, or
with sampled actions (``--stochastic``; a run evaluated the other way is evaluated again)
(``metarobust evaluate``). Writes ``summary.csv`` (a row per generator and seed: solved rate in
percent per named layout, over the named layouts, over the random levels, the mean return on
the named layouts, and the millions of env steps of the batches the agent updated on: Robust
PLR and ACCEL only score new and edited levels; PAIRED's count its antagonist's),
``summary.md`` (mean ± std over seeds) and ``intervals.{csv,md,png}`` (the IQM of the solved
rate per held-out level over seeds x levels, with 95 % bootstrap intervals, and each
generator's probability of improving on the first) into ``--out``; finished runs are reused
and cut-off runs resumed.

    python experiments/ued_comparison.py --seeds 0 1 2 --out runs/ued_obstacles
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from metarobust.envs.levels import DEFAULT_LEVELS, load_levels
from metarobust.held_out import CSV_NAME, evaluate_held_out
from metarobust.studies import last_step_scores, run_study, trained_run, up_to_date

GENERATORS = ("dr", "minimax", "paired", "plr", "accel")


def compare_seed(args: argparse.Namespace, seed: int) -> list[dict]:
    """Train and evaluate every generator's agent for one seed; one row per generator."""
    named = list(load_levels(args.levels))
    rows = []
    for generator in args.generators:
        overrides = [*args.overrides, f"ued.generator={generator}", f"seed={seed}"]
        run = trained_run(
            args.config, overrides, out=args.out, name=f"{generator}_s{seed}", algorithm="ued"
        )
        played = played_with(run / CSV_NAME) if up_to_date(run / CSV_NAME, run) else None
        if played != ("sampled" if args.stochastic else "mean"):
            print(
                evaluate_held_out(
                    run,
                    levels_path=args.levels,
                    episodes=args.episodes,
                    random_levels=args.random_levels,
                    seed=args.eval_seed,
                    deterministic=not args.stochastic,
                )
            )
        held_out = read_held_out(run / CSV_NAME, named)
        rows.append({"method": generator, "seed": seed, **held_out, **trained_steps(run)})
    return rows


def trained_steps(run: Path) -> dict[str, float]:
    """Millions of env steps in the iterations whose batch the agent updated on."""
    steps, previous = 0, 0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "generator/trained" in row:
            steps += (row["step"] - previous) * int(row["generator/trained"])
            previous = row["step"]
    return {"trained_steps_M": steps / 1e6}


def played_with(path: Path) -> str | None:
    """The actions (mean or sampled) of a held-out CSV; None if there is none."""
    if not path.exists():
        return None
    with path.open() as f:
        first = next(csv.DictReader(f), None)
    return None if first is None else first.get("actions", "mean")


def read_held_out(path: Path, named: list[str]) -> dict[str, float]:
    """Solved rates (percent) per named layout and over each group; named layouts' return."""
    with path.open() as f:
        levels = {r["level"]: r for r in csv.DictReader(f)}
    solved = {name: 100 * float(levels[name]["solved_rate"]) for name in named}
    others = [100 * float(r["solved_rate"]) for k, r in levels.items() if k not in solved]
    returns = [float(levels[name]["return_mean"]) for name in named]
    return {
        **solved,
        "named_solved": sum(solved.values()) / len(solved),
        "random_solved": sum(others) / len(others) if others else float("nan"),
        "named_return": sum(returns) / len(returns),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/ued/obstacles.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--generators", nargs="+", choices=GENERATORS, default=list(GENERATORS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--levels", type=Path, default=DEFAULT_LEVELS)
    parser.add_argument("--episodes", type=int, default=10, help="per held-out level")
    parser.add_argument(
        "--stochastic", action="store_true", help="play the held-out levels with sampled actions"
    )
    parser.add_argument("--random-levels", type=int, default=200)
    parser.add_argument("--eval-seed", type=int, default=12345)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    title = (
        f"{args.config} {' '.join(args.overrides)}: seeds {args.seeds}; "
        f"{'sampled actions' if args.stochastic else 'mean action'}, "
        f"{args.episodes} episodes per held-out level, {args.random_levels} harder random "
        "levels; solved rates in percent"
    )
    return run_study(
        "ued_comparison",
        args.out,
        args.seeds,
        lambda seed: compare_seed(args, seed),
        title=title,
        methods=args.generators,
        scores=lambda generator, seed: last_step_scores(
            args.out / f"{generator}_s{seed}" / CSV_NAME, "solved_rate"
        ),
        metric="solved rate per held-out level",
    )


if __name__ == "__main__":
    sys.exit(main())
