"""Run directories: ``<log_dir>/<run_name>/`` holds the resolved config, run metadata,
metrics, TensorBoard events and the checkpoint of one run."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from metarobust.config import Config, dump_config, load_config
from metarobust.errors import ConfigError

CONFIG_NAME = "config.yaml"
META_NAME = "meta.json"
_PACKAGES = ("metarobust", "torch", "gymnasium", "mujoco", "numpy", "ray")


def new_run_dir(cfg: Config, default_name: str) -> Path:
    """Create the directory for a fresh run; refuse to reuse one, so no earlier run is lost."""
    name = cfg.logging.run_name or f"{default_name}_{cfg.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(cfg.logging.log_dir) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(
            f"logging.run_name: {run_dir} already holds a run; resume it with --resume {run_dir} "
            "or choose another name"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_run_info(run_dir: Path, cfg: Config) -> None:
    """Resolved config, seed, package versions, git commit and command line."""
    (run_dir / CONFIG_NAME).write_text(dump_config(cfg))
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


def load_run_config(run_dir: Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config a run was started with, plus ``--set`` overrides (e.g. a longer budget)."""
    if not Path(run_dir).is_dir():
        raise ConfigError(f"{run_dir}: run directory not found")
    return load_config(Path(run_dir) / CONFIG_NAME, overrides)


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
