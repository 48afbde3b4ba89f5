"""Helpers of side-by-side studies (``experiments/``): runs that are reused when finished and
resumed when cut off, and summaries: per seed, mean ± std over seeds, and (given each run's
scores per task) the interquartile mean with bootstrap intervals (``metarobust.reporting``)."""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from metarobust.api import resume, train
from metarobust.config import load_config
from metarobust.errors import ConfigError
from metarobust.runs.outputs import write_csv
from metarobust.runs.saved import SavedRun
from metarobust.utils.checkpoint import CHECKPOINT_NAME


def trained_run(
    config: Path | None, overrides: Sequence[str], *, out: Path, name: str, algorithm: str
) -> Path:
    """The finished run ``out/name`` of ``config`` with ``overrides`` (``finished_run``); a
    ConfigError unless that config trains ``algorithm``."""
    cfg = load_config(config, [*overrides, f"logging.log_dir={out}", f"logging.run_name={name}"])
    if cfg.train.algorithm != algorithm:
        raise ConfigError(f"{config}: expected train.algorithm: {algorithm}")
    return finished_run(out / name, lambda: train(cfg))


def finished_run(run_dir: Path, start: Callable[[], Path]) -> Path:
    """The finished run in ``run_dir``: started with ``start()`` if absent, resumed from its
    last checkpoint if cut off."""
    if not (run_dir / CHECKPOINT_NAME).exists():
        return start()
    return run_dir if SavedRun.load(run_dir).finished else resume(run_dir)


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
