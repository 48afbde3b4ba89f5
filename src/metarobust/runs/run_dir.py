"""Run directories: ``<log_dir>/<run_name>/`` holds the resolved config, run metadata,
metrics, TensorBoard events and the checkpoint of one run, and is owned by one process at a
time (a lock held while it trains)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from metarobust.config import Config, dump_config, load_config
from metarobust.errors import ConfigError
from metarobust.utils.checkpoint import CHECKPOINT_NAME, load_checkpoint, remove_temporaries
from metarobust.utils.logger import METRICS_NAME

CONFIG_NAME = "config.yaml"
META_NAME = "meta.json"
LOCK_NAME = ".lock"
_PACKAGES = ("metarobust", "torch", "gymnasium", "mujoco", "numpy", "ray")


@dataclass(frozen=True)
class ClaimedRun:
    """A run directory this process owns, and (resuming) the checkpoint found in it."""

    path: Path
    checkpoint: dict[str, Any] | None


@contextmanager
def claim_run_dir(cfg: Config, run_dir: Path | None, *, default_name: str) -> Iterator[ClaimedRun]:
    """Own a fresh run directory (``run_dir`` None) or an existing one to resume, for the
    ``with`` block. A second process claiming the same directory is refused. A fresh run that
    ends without a checkpoint (a failed start, an interrupt in its first iteration) leaves no
    directory behind; one with a checkpoint or logged iterations keeps them."""
    fresh = run_dir is None
    path = Path(cfg.logging.log_dir) / (cfg.logging.run_name or _timestamped(cfg, default_name))
    if not fresh:
        path = Path(run_dir)
        if not path.is_dir():
            raise ConfigError(f"{path}: run directory not found")
    elif path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(
            f"logging.run_name: {path} already holds a run; resume it with --resume {path} "
            "or choose another name"
        )
    created = fresh and not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock = acquire_now(
        path / LOCK_NAME,
        busy=f"{path}: another process is training this run; wait for it to end or stop it",
    )
    discard = False
    try:
        if fresh:
            write_run_info(path, cfg)
            checkpoint = None
        else:
            remove_temporaries(path)  # of a save that was killed mid-write
            checkpoint = load_checkpoint(path, cfg.train.algorithm)
        yield ClaimedRun(path, checkpoint)
    except BaseException:
        discard = fresh and not _holds_records(path)
        raise
    finally:
        lock.release()
        if discard:
            _discard(path, created)


def acquire_now(path: Path, *, busy: str) -> FileLock:
    """The lock file ``path``, acquired without waiting: a ConfigError saying ``busy`` if
    another process holds it (released, with the process, if that one dies)."""
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(busy) from None
    return lock


def write_run_info(run_dir: Path, cfg: Config) -> None:
    """Resolved config, seed, package versions, git commit and command line."""
    write_config(run_dir, cfg)
    meta = {
        "seed": cfg.seed,
        "command": sys.argv,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in _PACKAGES},
        "git_commit": _git_commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (run_dir / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")


def write_config(run_dir: Path, cfg: Config) -> None:
    """``config.yaml`` of the run, replaced atomically (a resume may change settings)."""
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=run_dir)
    with os.fdopen(fd, "w") as f:
        f.write(dump_config(cfg))
    os.replace(tmp, run_dir / CONFIG_NAME)


def load_run_config(run_dir: Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config a run was started with, plus ``--set`` overrides (e.g. a longer budget)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: run directory not found")
    if not (run_dir / CONFIG_NAME).is_file():
        runs = sorted(d.name for d in run_dir.iterdir() if (d / CONFIG_NAME).is_file())
        shown = ", ".join(runs[:10]) + (f" and {len(runs) - 10} more" if len(runs) > 10 else "")
        inside = f"; the runs in it: {shown}" if runs else ""
        raise ConfigError(f"{run_dir} is not a run directory (it has no {CONFIG_NAME}){inside}")
    return load_config(run_dir / CONFIG_NAME, overrides)


def _timestamped(cfg: Config, default_name: str) -> str:
    return f"{default_name}_{cfg.seed}_{time.strftime('%Y%m%d-%H%M%S')}"


def _holds_records(path: Path) -> bool:
    """Whether a run wrote anything worth keeping: a checkpoint or a logged iteration."""
    metrics = path / METRICS_NAME
    return (path / CHECKPOINT_NAME).exists() or (metrics.exists() and metrics.stat().st_size > 0)


def _discard(path: Path, created: bool) -> None:
    """Remove what a failed start wrote (the directory itself if this run made it)."""
    if created:
        shutil.rmtree(path, ignore_errors=True)
        return
    for entry in path.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")
