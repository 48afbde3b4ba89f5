"""Plots (matplotlib, no display needed): learning curves from ``metrics.jsonl``, MAML
adaptation curves, and robustness grids (heat maps and the RARL paper's percentile plots)."""

from __future__ import annotations

import math
from collections.abc import Sequence
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


def _ticks(scales: Sequence[float]) -> tuple[np.ndarray, list[str]]:
    # At most about a dozen labelled ticks, so dense grids stay legible.
    step = max(1, math.ceil(len(scales) / 12))
    where = np.arange(0, len(scales), step)
    return where, [f"{scales[i]:g}" for i in where]


def plot_robustness_heatmaps(
    path: Path,
    labels: list[str],
    masses: Sequence[float],
    frictions: Sequence[float],
    returns: list[Tensor],
    env_id: str,
    note: str = "mean action, no adversary",
) -> None:
    """Mean return per cell (``returns[i]``: ``[mass, friction, episode or task]``), x =
    friction scale, y = mass scale, one colour scale for all."""
    means = [r.double().mean(-1).numpy() for r in returns]  # [mass, friction] each
    low, high = min(m.min() for m in means), max(m.max() for m in means)
    fig, axes = plt.subplots(
        1, len(means), figsize=(1.5 + 3.6 * len(means), 3.8), squeeze=False, layout="constrained"
    )
    for ax, label, mean in zip(axes[0], labels, means, strict=True):
        image = ax.imshow(mean, origin="lower", aspect="auto", vmin=low, vmax=high, cmap="viridis")
        ax.set_xticks(*_ticks(frictions))
        ax.set_yticks(*_ticks(masses))
        ax.set_xlabel("friction scale")
        ax.set_ylabel("mass scale")
        ax.set_title(f"{label}\ngrid mean {mean.mean():.1f}", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), label="mean return per cell")
    fig.suptitle(f"{env_id}: {note}", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_robustness_percentiles(
    path: Path, labels: list[str], returns: list[Tensor], env_id: str
) -> None:
    """Each policy's episode returns over the whole grid, sorted: return against percentile."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, ret in zip(labels, returns, strict=True):
        values = np.sort(ret.double().flatten().numpy())
        ax.plot(np.linspace(0, 100, len(values)), values, label=label)
    ax.set_xlim(0, 100)
    ax.set_xlabel("percentile of episodes over the grid")
    ax.set_ylabel("return")
    ax.set_title(f"{env_id}\nepisodes of every mass x friction cell, sorted", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_under_attack(
    runs: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]],
    out: Path,
    title: str,
    alpha: float,
) -> Path:
    """One panel per condition: each run's mean return (solid) and CVaR at ``alpha`` over
    tasks (dashed) after 0..K adaptation steps; ``runs[label][condition]`` is ``(means,
    cvars)``, one value per step."""
    conditions = list(dict.fromkeys(c for curves in runs.values() for c in curves))
    fig, axes = plt.subplots(1, len(conditions), figsize=(3.6 * len(conditions), 3.4),
                             squeeze=False, sharey=True)  # fmt: skip
    for ax, condition in zip(axes[0], conditions, strict=True):
        for i, (label, curves) in enumerate(runs.items()):
            if condition not in curves:
                continue
            (means, cvars), color = curves[condition], f"C{i}"
            steps = np.arange(len(means))
            ax.plot(steps, means, "-o", color=color, label=label)
            ax.plot(steps, cvars, "--", color=color)
        ax.set_title(condition)
        ax.set_xlabel("gradient steps")
        ax.set_xticks(np.arange(max(len(m) for r in runs.values() for m, _ in r.values())))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"return (dashed: CVaR {alpha:.0%} over tasks)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def draw_level(ax: plt.Axes, level: dict, paths: Sequence[np.ndarray] = ()) -> None:
    """An obstacle-world level on ``ax``: arena, walls, start (circle), goal (star, with its
    radius) and ``paths`` (``[steps, 2]`` positions each)."""
    from metarobust.envs.obstacles import ARENA, GOAL_RADIUS

    ax.add_patch(plt.Rectangle((-ARENA, -ARENA), 2 * ARENA, 2 * ARENA, fill=False, lw=2))
    for x1, y1, x2, y2 in level.get("walls", []):
        ax.plot([x1, x2], [y1, y2], color="black", lw=2.5, solid_capstyle="round")
    for path in paths:
        ax.plot(path[:, 0], path[:, 1], color="C0", alpha=0.5, lw=1)
    ax.plot(*level["start"], "o", color="C2", ms=7)
    ax.plot(*level["goal"], "*", color="C3", ms=12)
    ax.add_patch(plt.Circle(level["goal"], GOAL_RADIUS, color="C3", alpha=0.3))
    ax.set_xlim(-ARENA * 1.02, ARENA * 1.02)
    ax.set_ylim(-ARENA * 1.02, ARENA * 1.02)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_level(level: dict, paths: Sequence[np.ndarray], out: Path, title: str) -> Path:
    """One level with the paths a policy took in it."""
    fig, ax = plt.subplots(figsize=(4, 4))
    draw_level(ax, level, paths)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def levels_image(levels: Sequence[dict], scores: Sequence[float] | None = None) -> np.ndarray:
    """A row of small level drawings (titled with their scores) as an ``[H, W, 3]`` uint8
    image, for TensorBoard."""
    fig, axes = plt.subplots(1, len(levels), figsize=(2 * len(levels), 2.2), squeeze=False)
    for k, (ax, level) in enumerate(zip(axes[0], levels, strict=True)):
        draw_level(ax, level)
        if scores is not None:
            ax.set_title(f"{scores[k]:.3g}", fontsize=8)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image
