"""Helpers of side-by-side studies (``experiments/``): runs that are reused when finished,
resumed when cut off or given a larger budget, and evaluated again once trained further;
and summaries: per seed, mean ± std over seeds, and (given each run's scores per task) the
interquartile mean with bootstrap intervals (``metarobust.reporting``)."""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from metarobust.adversarial.attack import attack_dir
from metarobust.api import algorithm_class, train
from metarobust.config import Config, load_config
from metarobust.errors import ConfigError
from metarobust.runs.outputs import write_csv
from metarobust.runs.resume import BUDGETS, changed_settings, shaping_change
from metarobust.runs.saved import SavedRun
from metarobust.runs.training import run_algorithm
from metarobust.utils.checkpoint import CHECKPOINT_NAME


def trained_run(
    config: Path | None, overrides: Sequence[str], *, out: Path, name: str, algorithm: str
) -> Path:
    """The finished run ``out/name`` of ``config`` with ``overrides`` (``finished_run``); a
    ConfigError unless that config trains ``algorithm``."""
    cfg = load_config(config, [*overrides, f"logging.log_dir={out}", f"logging.run_name={name}"])
    if cfg.train.algorithm != algorithm:
        raise ConfigError(f"{config}: expected train.algorithm: {algorithm}")
    return finished_run(out / name, lambda: train(cfg), cfg)


def finished_run(run_dir: Path, start: Callable[[], Path], cfg: Config | None = None) -> Path:
    """The finished run in ``run_dir`` under ``cfg`` (default: its saved config): started with
    ``start()`` if absent, resumed from its last checkpoint if cut off or if ``cfg`` raises its
    budget. ConfigError if ``cfg`` differs from the saved run in a setting that shapes it
    (``resume.CHANGEABLE`` are the others), or lowers a budget the run has trained past."""
    if not (run_dir / CHECKPOINT_NAME).exists():
        return start()
    saved = SavedRun.load(run_dir)
    asked = saved.cfg if cfg is None else _placed_as(cfg, saved.cfg)
    changes = changed_settings(saved.cfg, asked)
    key = shaping_change(changes)
    if key is not None:
        old, new = changes[key]
        raise ConfigError(
            f"{run_dir} was trained with {key}={old!r}, not the {new!r} asked: move it away "
            "or train into another directory"
        )
    done = {"iterations": int(saved.checkpoint["iteration"]), "steps": saved.env_steps}
    for key, unit in BUDGETS.items():
        old, new = changes.get(key, (None, None))
        if old is not None and new is not None and new < old and done[unit] > new:
            raise ConfigError(
                f"{run_dir} has trained {done[unit]} {unit} (of {key}={old}), more than the "
                f"{key}={new} asked: train into another directory"
            )
    if replace(saved, cfg=asked).finished:
        return run_dir
    return run_algorithm(asked, algorithm_class(asked), run_dir)


def attack_run(victim: Path, seed: int, start: Callable[[], Path]) -> Path:
    """The finished attack of ``seed`` on the run ``victim`` (in ``attack_dir``;
    ``finished_run``). ConfigError if it attacked an earlier checkpoint of the victim than its
    last: an attacker of the run as it was is no test of the run as it is."""
    run_dir = attack_dir(victim, seed)
    if (run_dir / CHECKPOINT_NAME).exists() and not up_to_date(run_dir / CHECKPOINT_NAME, victim):
        raise ConfigError(
            f"{run_dir} attacked an earlier checkpoint of {victim}: move it away to attack the "
            "run as it is now"
        )
    return finished_run(run_dir, start)


def _placed_as(cfg: Config, saved: Config) -> Config:
    """``cfg`` with ``saved``'s run directory: where a run lies does not shape it."""
    where = {"log_dir": saved.logging.log_dir, "run_name": saved.logging.run_name}
    return cfg.model_copy(update={"logging": cfg.logging.model_copy(update=where)})


def up_to_date(output: Path, *runs: Path) -> bool:
    """Whether ``output`` (an evaluation of ``runs``) exists and was written after each run's
    last checkpoint: a run trained further since is evaluated again."""
    return output.exists() and all(
        output.stat().st_mtime >= (run / CHECKPOINT_NAME).stat().st_mtime for run in runs
    )


def last_step_scores(path: Path, column: str, **match: str) -> np.ndarray:
    """``column`` of the rows of the CSV ``path`` whose fields equal ``match``, at their last
    ``gradient_steps``: a run's score per task (level, grid cell, held-out task) after
    adaptation, the tasks of the interval estimates."""
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if all(r[k] == v for k, v in match.items())]
    last = max(int(r["gradient_steps"]) for r in rows)
    return np.array([float(r[column]) for r in rows if int(r["gradient_steps"]) == last])


def parse_meta_test_args(
    parser: argparse.ArgumentParser,
    *,
    tasks: tuple[int, str],
    episodes: tuple[int, str],
    steps: int,
) -> argparse.Namespace:
    """A study's arguments, with the ones every meta-testing study shares added to
    ``parser``: ``--seeds``, ``--tasks``, ``--episodes`` and ``--steps`` (each ``(default,
    help)``, or the default), ``--eval-seed`` and ``--out``; refuses counts below 1."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", type=int, default=tasks[0], help=tasks[1])
    parser.add_argument("--episodes", type=int, default=episodes[0], help=episodes[1])
    parser.add_argument("--steps", type=int, default=steps, help="inner steps at meta-test")
    parser.add_argument("--eval-seed", type=int, default=12345)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if min(args.tasks, args.episodes, args.steps) < 1:
        parser.error("--tasks, --episodes and --steps: expected positive integers")
    return args


def run_study(
    name: str,
    out: Path,
    seeds: Sequence[int],
    compare_seed: Callable[[int], list[dict]],
    *,
    title: str,
    methods: Sequence[str],
    scores: Callable[[str, int], np.ndarray] | None = None,
    metric: str = "",
) -> int:
    """Every seed's rows of the study ``name`` (``compare_seed(seed)``), then its summary in
    ``out``, printed (``write_summary``; with ``scores(method, seed)``, a run's ``metric`` per
    task, also its interval estimates); the exit code: 0, or 2 with one line on a
    ConfigError."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        rows = [row for seed in seeds for row in compare_seed(seed)]
        per_task = None
        if scores is not None:
            ran = [m for m in methods if any(r["method"] == m for r in rows)]
            per_task = {m: np.stack([scores(m, seed) for seed in seeds]) for m in ran}
        print(write_summary(out, rows, title, methods, scores=per_task, metric=metric))
    except ConfigError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
    return 0


def write_summary(
    out: Path,
    rows: list[dict],
    title: str,
    methods: Sequence[str],
    *,
    scores: Mapping[str, np.ndarray] | None = None,
    metric: str = "",
) -> str:
    """``summary.csv`` (a row per method and seed) and ``summary.md`` (mean ± std over seeds
    per method, in ``methods``' order) in ``out``; given ``scores`` (per method, ``[seeds,
    tasks]`` of ``metric``), also the interval estimates against the first method
    (``metarobust.reporting.write_intervals``). Returns the tables."""
    write_csv(out / "summary.csv", list(rows[0]), ([r[k] for k in rows[0]] for r in rows))
    columns = [k for k in rows[0] if k not in ("method", "seed")]
    lines = [
        title,
        "",
        "| method | " + " | ".join(columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        cells = []
        for column in columns:
            values = [r[column] for r in mine]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.1f} ± {std:.1f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(table)
    if scores:
        from metarobust.reporting import write_intervals

        table += "\n" + write_intervals(out, scores, baseline=next(iter(scores)), metric=metric)
    return table
