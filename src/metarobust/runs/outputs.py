"""Where the reporting commands write (evaluate, robustness, attack, plot): one rule for all.

Each command writes into one output folder (``--out DIR``; by default the run directory it
was given, or ``<first run>/robustness`` for a robustness grid of several runs). Running it
again replaces the files it wrote there before, each one atomically (written beside its name,
then renamed), so a reader never sees half a file. While a command writes, it holds the
folder's output lock: a second command writing into the same folder at the same time stops
with one line instead of mixing its files with the first's. Training holds the run's own lock
(``run_dir.LOCK_NAME``), not this one, so a run can be evaluated while it trains.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metarobust.errors import ConfigError
from metarobust.runs.run_dir import acquire_now

if TYPE_CHECKING:
    from torch import Tensor

OUTPUT_LOCK_NAME = ".outputs.lock"


@contextmanager
def output_dir(path: Path | str) -> Iterator[Path]:
    """``path`` created if needed and held for writing for the ``with`` block; a ConfigError
    if it is a file or another command is writing there."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out: {path} is a file, not a folder for the outputs")
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock = acquire_now(
        path / OUTPUT_LOCK_NAME,
        busy=f"{path}: another metarobust command is writing its outputs here; wait for it to "
        "finish or write elsewhere with --out DIR",
    )
    try:
        yield path
    finally:
        lock.release()
        if created and [p.name for p in path.iterdir()] == [OUTPUT_LOCK_NAME]:
            shutil.rmtree(path)  # a command that failed before writing leaves no folder


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers that infer the format from
    it still can) to write to; it replaces ``path`` when the block ends without an error and
    is removed otherwise."""
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """``header`` then ``rows`` to the CSV file ``path``, replacing it atomically."""
    with replacing(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_task_scores(
    path: Path, column: str, curves: Mapping[str, Tensor], score: str = "return"
) -> Path:
    """One row per curve (named in ``column``), inner step and task of ``curves`` (each
    ``[step, task]``): the task's ``score`` (its mean return, or its success rate). The
    scores per task of a study's interval estimates (``metarobust.studies.last_step_scores``)."""
    rows = (
        [name, k, task, f"{value:.4f}"]
        for name, curve in curves.items()
        for k, per_task in enumerate(curve)
        for task, value in enumerate(per_task.tolist())
    )
    return write_csv(path, [column, "gradient_steps", "task", score], rows)
