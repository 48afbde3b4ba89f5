"""``metarobust`` command line: train | evaluate | attack | robustness | plot | config.

User errors (bad config, missing run directory, unknown env id) print one line and exit 2;
a diverged run or a failed sampler worker prints one line and exits 1 (METAROBUST_DEBUG=1 adds
the worker's traceback); Ctrl-C or SIGTERM saves a checkpoint and exits 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from metarobust.errors import ConfigError, TrainingError, WorkerError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ConfigError as err:
        print(f"metarobust: error: {err}", file=sys.stderr)
        return 2
    except WorkerError as err:
        print(f"metarobust: sampling failed: {err.message}", file=sys.stderr)
        if os.environ.get("METAROBUST_DEBUG") and err.worker_traceback:
            print(err.worker_traceback, end="", file=sys.stderr)
        return 1
    except TrainingError as err:
        print(f"metarobust: training stopped: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metarobust", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train", help="train from a YAML config (PPO, TRPO, MAML or RARL: train.algorithm)"
    )
    train.add_argument("--config", type=Path, help="YAML config file (default: all defaults)")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set ppo.lr=1e-3 (repeatable)",
    )
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a saved run")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser(
        "evaluate",
        help="evaluate a run: episodes of its policy (evaluation.csv); for a RARL run the "
        "robustness grid of its protagonist, 11 x 11 mass x friction scales from 0.5 to 1.5 "
        "(robustness/; see the robustness command); for a MAML run the return after "
        "0..--steps adaptation steps on held-out tasks (adaptation.csv/.png)",
    )
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("--episodes", type=int, default=10, help="episodes (per task: MAML)")
    evaluate.add_argument("--seed", type=int, default=12345, help="evaluation seed (and tasks)")
    evaluate.add_argument(
        "--stochastic", action="store_true", help="sample actions (default: the mean; not MAML)"
    )
    evaluate.add_argument("--tasks", type=int, default=40, help="MAML: held-out tasks")
    evaluate.add_argument("--steps", type=int, default=3, help="MAML: adaptation steps")
    evaluate.add_argument(
        "--pretrained",
        type=Path,
        metavar="RUN_DIR",
        help="MAML: also adapt this multi-task run's policy (maml.num_inner_steps=0)",
    )
    evaluate.add_argument(
        "--later-lr",
        type=float,
        metavar="ALPHA",
        help="MAML: inner step size after the first step (default: the first step's; the "
        "MAML paper evaluated with 0.05)",
    )
    evaluate.add_argument(
        "--under-attack",
        action="store_true",
        help="the return after 0..--steps adaptation steps (0 for non-meta policies) with no, "
        "the run's own, --attacker's and equally strong random disturbance: mean, CVaR 10%% "
        "and worst task (under_attack.csv/.png)",
    )
    evaluate.add_argument(
        "--attacker",
        type=Path,
        metavar="ATTACK_RUN",
        help="with --under-attack: an attack run of this run (metarobust attack RUN_DIR)",
    )
    evaluate.add_argument(
        "--shared",
        type=Path,
        metavar="RUN",
        help="with --under-attack: also against the adversary of this robust-MAML or RARL run "
        "(the same trained disturbance for several policies)",
    )
    evaluate.add_argument(
        "--grid",
        type=float,
        nargs=3,
        metavar=("LOW", "HIGH", "POINTS"),
        help="with --under-attack: the mass and friction scales of the grid condition, each "
        "held-out task on every cell (default: 0.5 1.5 3; MuJoCo envs only)",
    )
    evaluate.add_argument(
        "--no-grid", action="store_true", help="with --under-attack: leave the grid out"
    )
    evaluate.add_argument(
        "--levels",
        type=Path,
        metavar="FILE",
        help="obstacle world: the named held-out layouts (default: the eight metarobust ships)",
    )
    evaluate.add_argument(
        "--random-levels",
        type=int,
        default=200,
        metavar="N",
        help="obstacle world: also N solvable random levels harder than training's (default 200)",
    )
    evaluate.set_defaults(func=_evaluate)

    robust = sub.add_parser(
        "robustness",
        help="returns of runs' policies (PPO/TRPO, RARL protagonist; mean action) on a grid of "
        "mass x friction scales of their env (RARL paper, section 5): CSV, heat maps, "
        "percentile plot",
    )
    robust.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    for axis in ("mass", "friction"):
        robust.add_argument(
            f"--{axis}",
            type=float,
            nargs=3,
            metavar=("LOW", "HIGH", "POINTS"),
            help=f"{axis} scales of nominal, POINTS evenly spaced (default: 0.5 1.5 11)",
        )
    robust.add_argument("--episodes", type=int, default=5, help="episodes per cell")
    robust.add_argument("--seed", type=int, default=12345, help="evaluation seed (all policies)")
    robust.add_argument(
        "--out", type=Path, help="output directory (default: <first RUN_DIR>/robustness)"
    )
    robust.set_defaults(func=_robustness)

    attack = sub.add_parser(
        "attack",
        help="train a fresh force adversary against a saved policy (PPO/TRPO run or RARL "
        "protagonist, frozen, mean action) and compare the policy's return with no, random and "
        "trained disturbance (attack.csv in the attack's run directory); against a MAML or "
        "robust MAML run's meta-policy and its adaptation, then its adaptation curves under "
        "attack (under_attack.csv in the victim's directory)",
    )
    attack.add_argument("run_dir", type=Path, metavar="VICTIM_RUN")
    attack.add_argument("--steps", type=int, default=200_000, help="adversary env steps")
    attack.add_argument("--episodes", type=int, default=20, help="episodes per condition")
    attack.add_argument("--seed", type=int, default=0, help="attack seed (training and report)")
    attack.add_argument(
        "--epsilon",
        type=float,
        help="attack the observations instead: shift each component by at most this much "
        "(raw observation units; the ObsAdv env)",
    )
    attack.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the attack's config (the victim's, run as RARL with no protagonist "
        "updates), e.g. --set adversarial.adversary=trpo",
    )
    attack.set_defaults(func=_attack)

    plot = sub.add_parser("plot", help="plot a run's learning curves to PNG")
    plot.add_argument("run_dirs", type=Path, nargs="+")
    plot.add_argument("--metric", default="charts/episodic_return", help="metrics.jsonl key")
    plot.add_argument("--out", type=Path, help="PNG path (default: <first run>/<metric>.png)")
    plot.set_defaults(func=_plot)

    show = sub.add_parser("config", help="list every config field with its default and meaning")
    show.add_argument("--config", type=Path, help="show this file's resolved values instead")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    show.set_defaults(func=_show_config)
    return parser


def _train(args: argparse.Namespace) -> None:
    from metarobust.config import load_config

    if args.resume is not None and args.config is not None:
        raise ConfigError("--config: not allowed with --resume (the run keeps its config)")
    cfg = None if args.resume is not None else load_config(args.config, args.overrides)
    from metarobust import api  # after validation: bad input fails fast, before heavy imports

    run_dir = api.resume(args.resume, args.overrides) if cfg is None else api.train(cfg)
    print(f"run saved in {run_dir}")


def _evaluate(args: argparse.Namespace) -> None:
    for name in ("episodes", "tasks", "steps"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name}: expected a positive integer, got {getattr(args, name)}")
    if args.later_lr is not None and not args.later_lr > 0:
        raise ConfigError(f"--later-lr: expected a positive number, got {args.later_lr}")
    if args.random_levels < 0:
        raise ConfigError(f"--random-levels: expected an integer >= 0, got {args.random_levels}")
    if (args.grid or args.no_grid) and not (args.under_attack or args.attacker):
        raise ConfigError("--grid / --no-grid: the grid is a condition of --under-attack")
    if args.grid and args.no_grid:
        raise ConfigError("--grid: given together with --no-grid")
    from metarobust.adversarial.under_attack import DEFAULT_GRID
    from metarobust.evaluate import evaluate

    summary = evaluate(
        args.run_dir,
        episodes=args.episodes,
        seed=args.seed,
        deterministic=not args.stochastic,
        tasks=args.tasks,
        steps=args.steps,
        pretrained=args.pretrained,
        later_lr=args.later_lr,
        under_attack=args.under_attack,
        attacker=args.attacker,
        grid=None if args.no_grid else tuple(args.grid or DEFAULT_GRID),
        shared=args.shared,
        levels=args.levels,
        random_levels=args.random_levels,
    )
    print(summary)


def _attack(args: argparse.Namespace) -> None:
    from metarobust.adversarial.attack import attack

    for name in ("steps", "episodes"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name}: expected a positive integer, got {getattr(args, name)}")
    if args.epsilon is not None and not args.epsilon > 0:
        raise ConfigError(f"--epsilon: expected a positive number, got {args.epsilon}")
    from metarobust.evaluate import evaluate

    run_dir = attack(args.run_dir, args.steps, args.seed, args.overrides, args.epsilon)
    print(evaluate(run_dir, episodes=args.episodes, seed=args.seed))


def _robustness(args: argparse.Namespace) -> None:
    from metarobust.adversarial.robustness import DEFAULT_GRID, robustness_grid, scale_grid

    masses = scale_grid(*(args.mass or DEFAULT_GRID), flag="--mass")
    frictions = scale_grid(*(args.friction or DEFAULT_GRID), flag="--friction")
    out = args.out or Path(args.run_dirs[0]) / "robustness"
    print(robustness_grid(args.run_dirs, masses, frictions, args.episodes, args.seed, out))


def _plot(args: argparse.Namespace) -> None:
    from metarobust.plotting import plot_runs

    out = plot_runs(args.run_dirs, args.metric, args.out)
    print(f"wrote {out}")


def _show_config(args: argparse.Namespace) -> None:
    from metarobust.config import Config, describe_fields, dump_config, load_config

    if args.config is None and not args.overrides:
        print(describe_fields(Config))
    else:
        print(dump_config(load_config(args.config, args.overrides)), end="")


if __name__ == "__main__":
    sys.exit(main())
