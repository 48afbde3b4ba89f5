"""Plots (matplotlib, no display needed): learning curves from ``metrics.jsonl`` and
MAML adaptation curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

from metarobust.errors import ConfigError  # noqa: E402
from metarobust.utils.logger import read_metrics  # noqa: E402


def plot_runs(run_dirs: list[Path], metric: str, out: Path | None = None) -> Path:
    """One curve of ``metric`` against env steps per run; returns the PNG path."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for run_dir in run_dirs:
        rows = [r for r in read_metrics(run_dir) if r.get(metric) is not None]
        if not rows:
            plt.close(fig)
            raise ConfigError(f"{run_dir}: no values of {metric!r} in metrics.jsonl")
        ax.plot([r["step"] for r in rows], [r[metric] for r in rows], label=Path(run_dir).name)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = out or Path(run_dirs[0]) / f"{metric.replace('/', '_')}.png"
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_adaptation(curves: dict[str, Tensor], out: Path, title: str) -> Path:
    """Average return (mean ± std over tasks) against inner gradient steps, one line per
    method; ``curves[name]`` is ``[steps + 1, task]``."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, returns in curves.items():
        steps = np.arange(returns.shape[0])
        ax.errorbar(steps, returns.mean(1), yerr=returns.std(1), marker="o", capsize=3, label=name)
    ax.set_xticks(np.arange(next(iter(curves.values())).shape[0]))
    ax.set_xlabel("number of gradient steps")
    ax.set_ylabel("average return (mean ± std over tasks)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
