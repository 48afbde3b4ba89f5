"""Atomic checkpoints: written to a temporary file in the same directory, then renamed, so a
crash or Ctrl-C mid-write never leaves a truncated checkpoint behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from metarobust.errors import ConfigError

CHECKPOINT_NAME = "checkpoint.pt"


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


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The state saved in ``run_dir``, or a ConfigError if there is none."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {CHECKPOINT_NAME} to resume from")
    return torch.load(path, map_location="cpu", weights_only=True)


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
