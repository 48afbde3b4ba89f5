"""Bookkeeping shared by every training loop: logging, progress bar, checkpoints of the last
good iteration, Ctrl-C / SIGTERM and NaN handling. The loops themselves stay pseudocode-shaped."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from metarobust.config import Config
from metarobust.errors import TrainingError
from metarobust.utils.checkpoint import save_checkpoint
from metarobust.utils.logger import Logger


class TrainingRun:
    """One run's records. ``end_iteration`` logs, advances the progress bar and keeps a
    snapshot of the state; the snapshot is written every ``checkpoint.every`` iterations, at
    the end, and on Ctrl-C or SIGTERM (a scheduler's preemption, which inside the ``with``
    block raises KeyboardInterrupt too) as ``with TrainingRun(...)`` exits, never mid-update."""

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        *,
        total: int,
        done: int = 0,
        start_step: int = 0,
        resumed: bool = False,
        unit: Literal["step", "iteration"] = "step",
        shown: dict[str, str],
    ) -> None:
        """The progress bar counts ``unit``s (``done`` of ``total`` already); the logger
        continues from env step ``start_step`` when ``resumed``; beside the bar stand the
        last values of the metrics ``shown`` maps short names to (``Algorithm.shown``), then
        the phase the iteration is in (``set_phase``)."""
        self.cfg, self.run_dir, self.unit = cfg, Path(run_dir), unit
        self.shown = shown
        self._values: dict[str, str] = {}  # the shown metrics' last values
        self._phase: str | None = None
        self.logger = Logger(self.run_dir, cfg.logging.tensorboard, start_step if resumed else None)
        self.progress = tqdm(
            total=total,
            initial=done,
            unit=unit,
            unit_scale=unit == "step",
            dynamic_ncols=True,
            disable=not cfg.logging.progress,
        )
        self._snapshot: dict[str, Any] | None = None
        self._saved_iteration: int | None = None
        self._tic = time.perf_counter()

    def __enter__(self) -> TrainingRun:
        self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        signal.signal(signal.SIGTERM, self._previous_sigterm)
        if exc_type is KeyboardInterrupt and self._snapshot is not None:
            path = self._write()
            self.progress.write(
                f"interrupted: saved {path} — continue with --resume {self.run_dir}"
            )
        self.progress.close()
        self.logger.close()

    def end_iteration(
        self,
        *,
        iteration: int,
        env_steps: int,
        new_steps: int,
        metrics: dict[str, float],
        snapshot: Callable[[], dict[str, Any]],
        final: bool = False,
        sampled_steps: int | None = None,
        images: dict[str, np.ndarray] | None = None,
        histograms: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Record a finished iteration (``iteration`` counts from 1). ``new_steps`` advance
        the step axis; ``charts/SPS`` counts ``sampled_steps`` (default: the same) per second."""
        bad = [k for k, v in metrics.items() if v is not None and not math.isfinite(v)]
        if bad:
            kept = f"last good checkpoint: iteration {self._saved_iteration}"
            if self._saved_iteration is None:
                kept = "no checkpoint was written yet"
            raise TrainingError(f"iteration {iteration}: non-finite {', '.join(bad)}; {kept}")
        now = time.perf_counter()
        sampled = new_steps if sampled_steps is None else sampled_steps
        metrics = {**metrics, "charts/SPS": sampled / max(now - self._tic, 1e-9)}
        self._tic = now
        self.logger.log(env_steps, metrics)
        self.logger.log_media(env_steps, images or {}, histograms or {})
        # a run that stops at the first iteration past a step budget (UED) ends at 100 %
        room = max(0, self.progress.total - self.progress.n)
        self.progress.update(min(new_steps if self.unit == "step" else 1, room))
        for name, key in self.shown.items():
            value = metrics.get(key)
            if value is not None and math.isfinite(value):
                self._values[name] = f"{value:.1f}"
        self.progress.set_postfix(self._postfix(), refresh=False)
        self._snapshot = snapshot()
        if final or iteration % self.cfg.checkpoint.every == 0:
            self._write()

    def set_phase(self, phase: str) -> None:
        """Show what the iteration is doing now (``phase=sampling``, ...) beside the bar, at
        once: one phase of a large iteration can take minutes."""
        self._phase = phase
        self.progress.set_postfix(self._postfix())

    def _postfix(self) -> dict[str, str]:
        return self._values if self._phase is None else {**self._values, "phase": self._phase}

    def _write(self) -> Path:
        assert self._snapshot is not None
        path = save_checkpoint(self.run_dir, self._snapshot)
        self._saved_iteration = self._snapshot["iteration"]
        return path


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)
