"""Metrics to TensorBoard and ``metrics.jsonl``, with the tags CleanRL/SB3 users know."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

METRICS_NAME = "metrics.jsonl"


class Logger:
    """Writes one JSON line per ``log`` call and the same scalars to TensorBoard.

    On resume, rows past the checkpoint's step are dropped (and TensorBoard events purged),
    so a resumed run's records read like an uninterrupted one's.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS_NAME
        if resume_step is not None:
            _truncate_after(self.path, resume_step)
        self._file = self.path.open("a")
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(run_dir), purge_step=resume_step)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record ``metrics`` (tag -> value) at env step ``step``."""
        row = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._writer is not None:
            for tag, value in metrics.items():
                if value is not None and math.isfinite(value):
                    self._writer.add_scalar(tag, value, step)

    def log_media(
        self, step: int, images: dict[str, np.ndarray], histograms: dict[str, np.ndarray]
    ) -> None:
        """TensorBoard images (``[H, W, 3]`` uint8) and histograms at env step ``step``."""
        if self._writer is None:
            return
        for tag, image in images.items():
            self._writer.add_image(tag, image, step, dataformats="HWC")
        for tag, values in histograms.items():
            if len(values):
                self._writer.add_histogram(tag, values, step)

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """All rows of a run's ``metrics.jsonl``."""
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _plain(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _truncate_after(path: Path, step: int) -> None:
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)
