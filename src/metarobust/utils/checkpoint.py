"""Atomic checkpoints: written to a temporary file in the same directory, then renamed, so a
crash or Ctrl-C mid-write never leaves a truncated checkpoint behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from metarobust.errors import ConfigError

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # 2: one layout for every algorithm ("state", "policy", "sampler", ...)


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``run_dir/checkpoint.pt`` atomically and return its path."""
    path = run_dir / CHECKPOINT_NAME
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=run_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(run_dir: Path, algorithm: str | None = None) -> dict[str, Any]:
    """The state saved in ``run_dir`` (by a run of ``algorithm``, if given); a ConfigError
    naming the file if there is none, it is damaged, or another kind of run wrote it."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {CHECKPOINT_NAME} to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a truncated or foreign file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{path}: damaged or not a checkpoint ({reason[:120]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format", 1) if isinstance(state, dict) else "none"
        raise ConfigError(
            f"{path}: not a checkpoint of this metarobust version (format {found}, "
            f"expected {CHECKPOINT_FORMAT})"
        )
    if algorithm is not None and state.get("algorithm") != algorithm:
        raise ConfigError(
            f"{path}: saved by a {state.get('algorithm')!s} run, but this run's "
            f"train.algorithm is {algorithm}"
        )
    return state


@contextmanager
def checkpoint_errors(run_dir: Path) -> Iterator[None]:
    """Turn a checkpoint whose contents do not fit the run (a missing key, a wrong shape or
    type) into one ConfigError naming the file."""
    try:
        yield
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
        if isinstance(err, ConfigError):
            raise
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"{Path(run_dir) / CHECKPOINT_NAME}: does not fit this run's config ({detail[:160]})"
        ) from None


def remove_temporaries(run_dir: Path) -> None:
    """Delete what a save killed mid-write left behind (only the owner of a run calls this)."""
    for tmp in Path(run_dir).glob(".checkpoint-*.tmp"):
        tmp.unlink(missing_ok=True)


def detached_copy(tree: Any) -> Any:
    """Deep copy of nested dicts/lists of tensors (on the CPU), so that later in-place
    updates do not leak into a kept snapshot."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone().cpu()
    if isinstance(tree, dict):
        return {k: detached_copy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(detached_copy(v) for v in tree)
    return tree
