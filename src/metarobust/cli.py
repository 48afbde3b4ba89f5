"""The ``metarobust`` command line: train | evaluate | attack | robustness | plot | config.

Reports (evaluate, robustness, attack, plot) go into one output folder each, ``--out DIR``,
by the rule of ``metarobust.runs.outputs``: a rerun replaces what the command wrote there
before, and two commands never write into one folder at once.

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

DESCRIPTION = (
    "Train and evaluate agents that adapt in a few gradient steps (MAML) and hold up against "
    "adversaries (RARL), and both at once. Each command's --help says more."
)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command that was mistyped, with its own usage
        getattr(args, "command_parser", parser).error(
            f"unrecognized arguments: {' '.join(unknown)}"
        )
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


class _Formatter(argparse.HelpFormatter):
    """Help that ends each option's line with its default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, [], argparse.SUPPRESS) and action.default is not False
        if shown and action.option_strings and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _command(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line ``text`` is both its entry in the list and its description."""
    command = sub.add_parser(name, help=text, description=text, formatter_class=_Formatter)
    command.set_defaults(command_parser=command)
    return command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metarobust", description=DESCRIPTION)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    train = _command(
        sub,
        "train",
        "train from a YAML config: PPO, TRPO, MAML, RARL, robust MAML or UED (train.algorithm)",
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

    evaluate = _command(
        sub,
        "evaluate",
        "evaluate a run: episodes of its policy (evaluation.csv); for a RARL run the "
        "robustness grid of its protagonist, 11 x 11 mass x friction scales from 0.5 to 1.5 "
        "(robustness.csv and plots; see the robustness command); for a MAML run the return "
        "after 0..--steps adaptation steps on held-out tasks (adaptation.csv/.png)",
    )
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument("--episodes", type=int, default=10, help="episodes (per task: MAML)")
    evaluate.add_argument("--seed", type=int, default=12345, help="evaluation seed (and tasks)")
    evaluate.add_argument(
        "--stochastic",
        action="store_true",
        help="sample actions (default: the mean); MAML's adaptation curves always sample, "
        "except the reported episodes on held-out levels",
    )
    evaluate.add_argument(
        "--tasks", type=int, default=40, help="held-out tasks of a task env (MAML, under attack)"
    )
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
        "--dynamics-grid",
        action="store_true",
        help="held-out tasks (--tasks) on every cell of a mass x friction x force grid, a MAML "
        "run adapting on each: mean, CVaR 5%% and 10%%, worst, overall and outside the "
        "training ranges (dynamics_grid.csv/.png; MuJoCo envs and Meta-World)",
    )
    _scale_axes(evaluate, "with --dynamics-grid: {axis} scales of nominal (default: 0.25 3 5)")
    evaluate.add_argument(
        "--force-x",
        type=float,
        nargs="+",
        metavar="F",
        help="with --dynamics-grid: constant pushes along x in newtons, on the torso (Meta-World: "
        "on the object) (default: 0)",
    )
    evaluate.add_argument(
        "--envs",
        type=int,
        metavar="N",
        help="with --dynamics-grid: envs of its one sampling process (default: 256, or fewer "
        "where fewer episodes are asked for); fewer use less memory, about 50 MB an env on "
        "Meta-World",
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
        help="obstacle world: also N solvable random levels harder than training's",
    )
    evaluate.add_argument(
        "--out", type=Path, metavar="DIR", help="folder for the outputs (default: RUN_DIR)"
    )
    evaluate.set_defaults(func=_evaluate)

    robust = _command(
        sub,
        "robustness",
        "returns of runs' policies (PPO/TRPO, RARL protagonist; mean action) on a grid of "
        "mass x friction scales of their env (RARL paper, section 5): CSV, heat maps, "
        "percentile plot",
    )
    robust.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    _scale_axes(robust, "{axis} scales of nominal, POINTS evenly spaced (default: 0.5 1.5 11)")
    robust.add_argument("--episodes", type=int, default=5, help="episodes per cell")
    robust.add_argument("--seed", type=int, default=12345, help="evaluation seed (all policies)")
    robust.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder for the outputs (default: <first RUN_DIR>/robustness)",
    )
    robust.set_defaults(func=_robustness)

    attack = _command(
        sub,
        "attack",
        "train a fresh force adversary against a saved policy (PPO/TRPO run or RARL "
        "protagonist, frozen, mean action) and compare the policy's return with no, random and "
        "trained disturbance (attack.csv); against a MAML or robust MAML run's meta-policy "
        "and its adaptation, then its adaptation curves under attack (under_attack.csv), both "
        "in the attack's run directory",
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
    attack.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder for the report (default: the attack's run directory)",
    )
    attack.set_defaults(func=_attack)

    plot = _command(
        sub, "plot", "plot runs' learning curves, one metric against env steps, to one PNG"
    )
    plot.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    plot.add_argument(
        "--metric",
        help="a metrics.jsonl key (default: the first run's headline, charts/episodic_return, "
        "or for MAML runs meta/post_adapt_return)",
    )
    plot.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder for <metric>.png (default: the first RUN_DIR)",
    )
    plot.add_argument(
        "--labels",
        nargs="+",
        metavar="LABEL",
        help="legend labels, one per run (default: each run's algorithm and seed)",
    )
    plot.set_defaults(func=_plot)

    show = _command(sub, "config", "list every config field with its default and meaning")
    show.add_argument("--config", type=Path, help="show this file's resolved values instead")
    show.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="show the resolved values with this override, e.g. --set maml.fast_lr=0.05 "
        "(repeatable)",
    )
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


def _scale_axes(parser: argparse.ArgumentParser, help_of: str) -> None:
    """``--mass`` and ``--friction``, each ``LOW HIGH POINTS`` of nominal; ``help_of`` is
    their help with ``{axis}`` for the axis."""
    for axis in ("mass", "friction"):
        parser.add_argument(
            f"--{axis}",
            type=float,
            nargs=3,
            metavar=("LOW", "HIGH", "POINTS"),
            help=help_of.format(axis=axis),
        )


def _evaluate(args: argparse.Namespace) -> None:
    for name in ("episodes", "tasks", "steps", "envs"):  # --envs: None when not given
        if (value := getattr(args, name)) is not None and value <= 0:
            raise ConfigError(f"--{name}: expected a positive integer, got {value}")
    if args.later_lr is not None and not args.later_lr > 0:
        raise ConfigError(f"--later-lr: expected a positive number, got {args.later_lr}")
    if args.random_levels < 0:
        raise ConfigError(f"--random-levels: expected an integer >= 0, got {args.random_levels}")
    if (args.grid or args.no_grid) and not (args.under_attack or args.attacker):
        raise ConfigError("--grid / --no-grid: the grid is a condition of --under-attack")
    if args.grid and args.no_grid:
        raise ConfigError("--grid: given together with --no-grid")
    if args.envs is not None and not args.dynamics_grid:
        raise ConfigError("--envs: a setting of --dynamics-grid")
    axes = {"--mass": args.mass, "--friction": args.friction, "--force-x": args.force_x}
    given = [flag for flag, value in axes.items() if value is not None]
    if given and not args.dynamics_grid:
        raise ConfigError(f"{given[0]}: an axis of --dynamics-grid")
    from metarobust.adversarial.robustness import scale_grid
    from metarobust.adversarial.under_attack import DEFAULT_GRID
    from metarobust.evaluate import evaluate
    from metarobust.maml.dynamics_grid import DEFAULT_SCALES
    from metarobust.runs.outputs import output_dir
    from metarobust.runs.run_dir import load_run_config

    load_run_config(args.run_dir)  # a bad RUN_DIR fails before any folder is claimed
    with output_dir(args.out or args.run_dir) as out:
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
            dynamics_grid=(
                scale_grid(*(args.mass or DEFAULT_SCALES), flag="--mass"),
                scale_grid(*(args.friction or DEFAULT_SCALES), flag="--friction"),
                list(args.force_x or [0.0]),
            )
            if args.dynamics_grid
            else None,
            grid_envs=args.envs,
            out=out,
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
    from metarobust.runs.outputs import output_dir

    run_dir = attack(args.run_dir, args.steps, args.seed, args.overrides, args.epsilon)
    with output_dir(args.out or run_dir) as out:
        print(evaluate(run_dir, episodes=args.episodes, seed=args.seed, out=out))


def _robustness(args: argparse.Namespace) -> None:
    from metarobust.adversarial.robustness import DEFAULT_GRID, robustness_grid, scale_grid
    from metarobust.runs.outputs import output_dir
    from metarobust.runs.run_dir import load_run_config

    masses = scale_grid(*(args.mass or DEFAULT_GRID), flag="--mass")
    frictions = scale_grid(*(args.friction or DEFAULT_GRID), flag="--friction")
    for run_dir in args.run_dirs:
        load_run_config(run_dir)  # a bad RUN_DIR fails before any folder is claimed
    with output_dir(args.out or Path(args.run_dirs[0]) / "robustness") as out:
        grid = robustness_grid(args.run_dirs, masses, frictions, args.episodes, args.seed, out)
    print(grid)


def _plot(args: argparse.Namespace) -> None:
    if args.labels is not None and len(args.labels) != len(args.run_dirs):
        raise ConfigError(
            f"--labels: {len(args.labels)} given for {len(args.run_dirs)} runs; give one per run"
        )
    from metarobust.api import algorithm_class
    from metarobust.plotting import plot_runs
    from metarobust.runs.outputs import output_dir
    from metarobust.runs.run_dir import load_run_config

    # every RUN_DIR is checked before any folder is claimed
    first, *_ = [load_run_config(run_dir) for run_dir in args.run_dirs]
    metric = args.metric or algorithm_class(first).headline(first)
    with output_dir(args.out or args.run_dirs[0]) as out:
        path = out / f"{metric.replace('/', '_')}.png"
        print(f"wrote {plot_runs(args.run_dirs, metric, path, labels=args.labels)}")


def _show_config(args: argparse.Namespace) -> None:
    from metarobust.config import Config, describe_fields, dump_config, load_config

    if args.config is None and not args.overrides:
        print(describe_fields(Config))
    else:
        print(dump_config(load_config(args.config, args.overrides)), end="")


if __name__ == "__main__":
    sys.exit(main())
