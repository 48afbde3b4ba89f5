"""Meta-learning in generated levels, side by side: MAML with each task selection against the
PPO agent of the best UED generator (Robust PLR) at equal env steps.

For each seed, MAML is trained from ``--config`` (default ``configs/maml/obstacles.yaml``) once
per ``maml.task_selection`` in ``--selections``; then Robust PLR trains a PPO agent
(``configs/ued/obstacles.yaml``) with the same reward, levels and env steps as the first
selection's run (``ued.total_steps``). Every policy then plays the eight named held-out layouts
and ``--random-levels`` harder random levels (``metarobust evaluate``: ``--episodes`` per level
and inner step, sampled actions unless ``--mean-action``), the meta-policies after 0..``--steps``
inner steps each on fresh episodes. A row per method and seed: the named layouts' solved rate
after each step (percent), each trap layout's after the last, the harder random levels' solved
rate and the CVaR 10 % of their returns before and after adapting, and the env steps trained
on. Writes ``summary.csv`` and ``summary.md`` into ``--out``; finished runs are reused and
cut-off runs resumed.

    python experiments/maml_levels.py --seeds 0 1 2 --out runs/maml_levels
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from metarobust.config import load_config
from metarobust.held_out import CSV_NAME, SUMMARY_NAME, evaluate_held_out
from metarobust.runs.saved import SavedRun
from metarobust.studies import last_step_scores, run_study, trained_run, up_to_date

SELECTIONS = ("uniform", "plr", "accel", "minimax", "paired")
PPO_CONFIG = Path("configs/ued/obstacles.yaml")
TRAPS = ("zigzag", "spiral", "labyrinth")
PPO = "PPO Robust PLR"


def run_name(method: str, seed: int) -> str:
    """The run directory's name of ``method`` ("MAML <selection>" or ``PPO``) for ``seed``."""
    return f"{'ppo_plr' if method == PPO else method.removeprefix('MAML ')}_s{seed}"


def compare_seed(args: argparse.Namespace, seed: int) -> list[dict]:
    """Train and evaluate every method for one seed; a row per method."""
    rows, steps = [], None
    for selection in args.selections:
        overrides = [*args.overrides, f"maml.task_selection={selection}", f"seed={seed}"]
        run = trained_run(
            args.config, overrides, out=args.out, name=run_name(f"MAML {selection}", seed),
            algorithm="maml",
        )  # fmt: skip
        steps = steps or SavedRun.load(run).env_steps
        rows.append({"method": f"MAML {selection}", "seed": seed, **evaluated(args, run)})
    if args.ppo:
        run = trained_run(
            PPO_CONFIG, ppo_overrides(args, seed, steps), out=args.out,
            name=run_name(PPO, seed), algorithm="ued",
        )  # fmt: skip
        rows.append({"method": PPO, "seed": seed, **evaluated(args, run)})
    return rows


def ppo_overrides(args: argparse.Namespace, seed: int, steps: int | None) -> list[str]:
    """Robust PLR's PPO agent on the MAML config's env (reward, levels) for ``steps``."""
    env = load_config(args.config, args.overrides).env
    return [
        f"env.kwargs={json.dumps(env.kwargs)}",
        f"env.task_distribution={json.dumps(env.task_distribution)}",
        f"ued.total_steps={steps}",
        f"seed={seed}",
    ]


def evaluated(args: argparse.Namespace, run: Path) -> dict[str, float]:
    """The held-out numbers of ``run`` (evaluated once, then read back); a policy that does
    not adapt (PPO) keeps its numbers of step 0 after every step."""
    if not up_to_date(run / SUMMARY_NAME, run):
        print(
            evaluate_held_out(
                run,
                episodes=args.episodes,
                random_levels=args.random_levels,
                steps=args.steps,
                seed=args.eval_seed,
                deterministic=args.mean_action,
            )
        )
    with (run / SUMMARY_NAME).open() as f:
        summary = {(r["levels"], int(r["gradient_steps"])): r for r in csv.DictReader(f)}
    with (run / CSV_NAME).open() as f:
        levels = list(csv.DictReader(f))
    played, last = max(k for _, k in summary), args.steps
    row = {
        f"named_solved_{k}": 100 * float(summary["named", min(k, played)]["solved_rate"])
        for k in range(last + 1)
    }
    for trap in TRAPS:
        (solved,) = (r["solved_rate"] for r in levels
                     if r["level"] == trap and int(r["gradient_steps"]) == played)  # fmt: skip
        row[f"{trap}_{last}"] = 100 * float(solved)
    if ("random", 0) in summary:
        row[f"random_solved_{last}"] = 100 * float(summary["random", played]["solved_rate"])
        row["random_cvar10_0"] = float(summary["random", 0]["return_cvar10"])
        row[f"random_cvar10_{last}"] = float(summary["random", played]["return_cvar10"])
    row["env_steps_M"] = SavedRun.load(run).env_steps / 1e6
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/maml/obstacles.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--selections", nargs="+", choices=SELECTIONS, default=list(SELECTIONS))
    parser.add_argument("--no-ppo", dest="ppo", action="store_false", help="skip the PPO agent")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=20, help="per level and inner step")
    parser.add_argument("--random-levels", type=int, default=200)
    parser.add_argument("--steps", type=int, default=3, help="inner steps at evaluation")
    parser.add_argument("--mean-action", action="store_true", help="report mean-action episodes")
    parser.add_argument("--eval-seed", type=int, default=12345)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if min(args.episodes, args.random_levels + 1, args.steps + 1) < 1:
        parser.error("--episodes: expected >= 1; --random-levels and --steps: >= 0")
    actions = "mean actions" if args.mean_action else "sampled actions"
    title = (
        f"{args.config} {' '.join(args.overrides)}: seeds {args.seeds}; 8 named layouts and "
        f"{args.random_levels} harder random levels x {args.episodes} episodes ({actions}), "
        f"solved rate in percent after 0..{args.steps} inner steps"
    )
    methods = [f"MAML {s}" for s in args.selections] + ([PPO] if args.ppo else [])
    return run_study(
        "maml_levels",
        args.out,
        args.seeds,
        lambda seed: compare_seed(args, seed),
        title=title,
        methods=methods,
        scores=lambda method, seed: last_step_scores(
            args.out / run_name(method, seed) / CSV_NAME, "solved_rate"
        ),
        metric=f"solved rate per held-out level after {args.steps} inner steps",
    )


if __name__ == "__main__":
    sys.exit(main())
