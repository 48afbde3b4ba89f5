"""Plots (matplotlib, no display needed): learning curves from ``metrics.jsonl``, MAML
adaptation curves, adaptation under attack, robustness grids (heat maps and the RARL paper's
percentile plots), obstacle-world levels and a study's interval estimates.

Each plot is a ``*_figure`` builder that returns the Figure (constrained layout: titles
wrapped to the canvas, legends beside the axes, never over them) and a ``plot_*`` wrapper that
saves it as a PNG."""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Rectangle
from torch import Tensor

from metarobust.errors import ConfigError
from metarobust.runs.outputs import replacing
from metarobust.utils.logger import read_metrics

if TYPE_CHECKING:
    from metarobust.config import Config

# (point, low, high): an estimate and its confidence interval (metarobust.reporting.Interval)
Interval = tuple[float, float, float]
# (steps, values) of one learning curve
Curve = tuple[Sequence[float], Sequence[float]]
# runs[label][condition] = (means, cvars), one value per adaptation step
UnderAttack = dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]]


def _new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (no pyplot state to close), laid out by matplotlib's
    constrained layout, which makes room for titles and outside legends."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path, dpi: int = 120) -> Path:
    """``fig`` as a PNG at ``path``, replacing it atomically (``runs.outputs``)."""
    with replacing(Path(path)) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return Path(path)


def _wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` points."""
    chars = max(10, int(width_in * 72 / (0.6 * fontsize)))  # a generous average glyph width
    return "\n".join(textwrap.fill(line, chars) for line in text.splitlines())


def _legend_below(fig: Figure, handles: list, labels: list[str], columns: int = 3) -> None:
    """The figure's legend under its panels, outside every axes."""
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=max(1, min(columns, len(labels))),
        fontsize=8,
        frameon=False,
    )


def short_label(cfg: Config) -> str:
    """A run's legend label: its algorithm (a UED run's generator too) and seed."""
    algorithm = cfg.train.algorithm
    if algorithm == "ued":
        algorithm = f"ued {cfg.ued.generator}"
    return f"{algorithm} seed {cfg.seed}"


def distinct(labels: Sequence[str]) -> list[str]:
    """``labels``, those that occur more than once numbered ``[1]``, ``[2]``, ... in order."""
    counts, seen = Counter(labels), Counter()
    out = []
    for label in labels:
        seen[label] += 1
        out.append(f"{label} [{seen[label]}]" if counts[label] > 1 else label)
    return out


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Each run's ``short_label`` from its saved config (its directory's name where it has
    none), numbered where two runs share one."""
    from metarobust.runs.run_dir import CONFIG_NAME, load_run_config

    labels = [
        short_label(load_run_config(Path(d))) if (Path(d) / CONFIG_NAME).is_file() else Path(d).name
        for d in run_dirs
    ]
    return distinct(labels)


def run_curves(
    run_dirs: Sequence[Path], metric: str, labels: Sequence[str] | None = None
) -> dict[str, Curve]:
    """``metric`` against env steps of every run, by label (``labels``, one per run, or
    ``run_labels``)."""
    if labels is not None and len(labels) != len(run_dirs):
        raise ConfigError(f"labels: {len(labels)} given for {len(run_dirs)} runs; give one per run")
    names = distinct(labels) if labels is not None else run_labels(run_dirs)
    curves = {}
    for name, run_dir in zip(names, run_dirs, strict=True):
        rows = [r for r in read_metrics(run_dir) if r.get(metric) is not None]
        if not rows:
            logged = sorted({k for r in read_metrics(run_dir) for k in r} - {"step"})
            raise ConfigError(
                f"{run_dir}: no values of {metric!r} in metrics.jsonl; its keys: "
                + (", ".join(logged) or "none yet")
            )
        curves[name] = ([r["step"] for r in rows], [r[metric] for r in rows])
    return curves


def runs_figure(curves: dict[str, Curve], metric: str) -> Figure:
    """One curve of ``metric`` against env steps per label."""
    fig = _new_figure(6, 4.4)
    ax = fig.subplots()
    for label, (steps, values) in curves.items():
        ax.plot(steps, values, label=label)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    _legend_below(fig, *ax.get_legend_handles_labels())
    return fig


def plot_runs(
    run_dirs: list[Path],
    metric: str,
    out: Path | None = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """One curve of ``metric`` against env steps per run, labelled ``labels`` (default: each
    run's algorithm and seed); returns the PNG path."""
    fig = runs_figure(run_curves(run_dirs, metric, labels), metric)
    return _save(fig, out or Path(run_dirs[0]) / f"{metric.replace('/', '_')}.png")


def adaptation_figure(curves: dict[str, Tensor], title: str) -> Figure:
    """Average return (mean ± std over tasks) against inner gradient steps, one line per
    method; ``curves[name]`` is ``[steps + 1, task]``."""
    fig = _new_figure(5, 4.4)
    ax = fig.subplots()
    for name, returns in curves.items():
        steps = np.arange(returns.shape[0])
        ax.errorbar(steps, returns.mean(1), yerr=returns.std(1), marker="o", capsize=3, label=name)
    ax.set_xticks(np.arange(next(iter(curves.values())).shape[0]))
    ax.set_xlabel("number of gradient steps")
    ax.set_ylabel("average return (mean ± std over tasks)")
    ax.set_title(_wrap(title, 4.2, 9), fontsize=9)
    ax.grid(alpha=0.3)
    _legend_below(fig, *ax.get_legend_handles_labels())
    return fig


def plot_adaptation(curves: dict[str, Tensor], out: Path, title: str) -> Path:
    """``adaptation_figure`` as a PNG at ``out``."""
    return _save(adaptation_figure(curves, title), out)


def _ticks(scales: Sequence[float]) -> tuple[np.ndarray, list[str]]:
    # At most about a dozen labelled ticks, so dense grids stay legible.
    step = max(1, math.ceil(len(scales) / 12))
    where = np.arange(0, len(scales), step)
    return where, [f"{scales[i]:g}" for i in where]


def heatmaps_figure(
    labels: list[str],
    masses: Sequence[float],
    frictions: Sequence[float],
    returns: list[Tensor],
    env_id: str,
    note: str = "mean action, no adversary",
    measure: str = "mean return per cell",
) -> Figure:
    """Mean return (or the ``measure`` given) per cell (``returns[i]``: ``[mass, friction,
    episode or task]``), x = friction scale, y = mass scale, one colour scale for all; at most
    four panels a row."""
    means = [r.double().mean(-1).numpy() for r in returns]  # [mass, friction] each
    low, high = min(m.min() for m in means), max(m.max() for m in means)
    columns = min(len(means), 4)
    rows = math.ceil(len(means) / columns)
    width = 1.5 + 3.6 * columns
    fig = _new_figure(width, 0.4 + 3.6 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(means) :]:
        ax.set_visible(False)
    for ax, label, mean in zip(axes, labels, means, strict=False):
        image = ax.imshow(mean, origin="lower", aspect="auto", vmin=low, vmax=high, cmap="viridis")
        ax.set_xticks(*_ticks(frictions))
        ax.set_yticks(*_ticks(masses))
        ax.set_xlabel("friction scale")
        ax.set_ylabel("mass scale")
        ax.set_title(f"{_wrap(label, 3.0, 9)}\ngrid mean {mean.mean():.1f}", fontsize=9)
    fig.colorbar(image, ax=axes.tolist(), label=measure)
    fig.suptitle(_wrap(f"{env_id}: {note}", width - 0.3, 9), fontsize=9)
    return fig


def plot_robustness_heatmaps(
    path: Path,
    labels: list[str],
    masses: Sequence[float],
    frictions: Sequence[float],
    returns: list[Tensor],
    env_id: str,
    note: str = "mean action, no adversary",
    measure: str = "mean return per cell",
) -> Path:
    """``heatmaps_figure`` as a PNG at ``path``."""
    return _save(heatmaps_figure(labels, masses, frictions, returns, env_id, note, measure), path)


def percentiles_figure(labels: list[str], returns: list[Tensor], env_id: str) -> Figure:
    """Each policy's episode returns over the whole grid, sorted: return against percentile."""
    fig = _new_figure(5, 4.4)
    ax = fig.subplots()
    for label, ret in zip(labels, returns, strict=True):
        values = np.sort(ret.double().flatten().numpy())
        ax.plot(np.linspace(0, 100, len(values)), values, label=label)
    ax.set_xlim(0, 100)
    ax.set_xlabel("percentile of episodes over the grid")
    ax.set_ylabel("return")
    ax.set_title(
        f"{_wrap(env_id, 4.2, 9)}\nepisodes of every mass x friction cell, sorted", fontsize=9
    )
    ax.grid(alpha=0.3)
    _legend_below(fig, *ax.get_legend_handles_labels(), columns=2)
    return fig


def plot_robustness_percentiles(
    path: Path, labels: list[str], returns: list[Tensor], env_id: str
) -> Path:
    """``percentiles_figure`` as a PNG at ``path``."""
    return _save(percentiles_figure(labels, returns, env_id), path)


def under_attack_figure(runs: UnderAttack, title: str, alpha: float) -> Figure:
    """Each run's mean return and CVaR at ``alpha`` over tasks per condition
    (``runs[label][condition]`` is ``(means, cvars)``, one value per adaptation step): one
    panel per condition against 0..K steps (solid: mean, dashed: CVaR); where every run has
    step 0 only (PPO, RARL), one panel with the conditions on the x axis (dot: mean, triangle:
    CVaR)."""
    conditions = list(dict.fromkeys(c for curves in runs.values() for c in curves))
    steps = max(len(means) for curves in runs.values() for means, _ in curves.values())
    colors = {label: f"C{i}" for i, label in enumerate(runs)}
    if steps == 1:
        fig = _conditions_panel(runs, conditions, colors)
        key = [
            Line2D([], [], color="black", marker="o", linestyle="none", ms=5),
            Line2D([], [], color="black", marker="v", linestyle="none", mfc="none", ms=5),
        ]
    else:
        fig = _adaptation_panels(runs, conditions, colors, steps)
        key = [Line2D([], [], color="black"), Line2D([], [], color="black", linestyle="--")]
    width = fig.get_figwidth()
    style = "none" if steps == 1 else "-"
    handles = [Line2D([], [], color=c, marker="o", ls=style, ms=4) for c in colors.values()]
    handles += key
    names = [*runs, "mean over tasks", f"CVaR {alpha * 100:g} % over tasks"]
    _legend_below(fig, handles, names, columns=2 if width < 6 else 4)
    fig.suptitle(_wrap(title, width - 0.3, 12), fontsize=12)
    return fig


def _adaptation_panels(
    runs: UnderAttack, conditions: list[str], colors: dict[str, str], steps: int
) -> Figure:
    """One panel per condition: every run's mean (solid) and CVaR (dashed) against steps."""
    fig = _new_figure(3.6 * len(conditions), 4.0)
    axes = fig.subplots(1, len(conditions), squeeze=False, sharey=True)[0]
    for ax, condition in zip(axes, conditions, strict=True):
        for label, curves in runs.items():
            if condition in curves:
                means, cvars = curves[condition]
                ax.plot(np.arange(len(means)), means, "-o", color=colors[label], ms=4)
                ax.plot(np.arange(len(cvars)), cvars, "--", color=colors[label])
        ax.set_title(condition)
        ax.set_xlabel("gradient steps")
        ax.set_xticks(np.arange(steps))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("return")
    return fig


def _conditions_panel(runs: UnderAttack, conditions: list[str], colors: dict[str, str]) -> Figure:
    """Step 0 of every run: one panel, the conditions side by side, the runs beside each other
    within a condition."""
    fig = _new_figure(max(4.5, 1.1 * len(conditions) + 2.0), 4.0)
    ax = fig.subplots()
    where = np.arange(len(conditions))
    spread = 0.6 / len(runs)
    for i, (label, curves) in enumerate(runs.items()):
        x = where + (i - (len(runs) - 1) / 2) * spread
        means = [curves[c][0][0] if c in curves else np.nan for c in conditions]
        cvars = [curves[c][1][0] if c in curves else np.nan for c in conditions]
        ax.plot(x, means, "o", color=colors[label], ms=6)
        ax.plot(x, cvars, "v", color=colors[label], mfc="none", ms=6)
    ax.set_xticks(where, conditions)
    ax.set_xlim(-0.6, len(conditions) - 0.4)
    ax.set_xlabel("condition (no adaptation)")
    ax.set_ylabel("return")
    ax.grid(alpha=0.3, axis="y")
    return fig


def plot_under_attack(runs: UnderAttack, out: Path, title: str, alpha: float) -> Path:
    """``under_attack_figure`` as a PNG at ``out``."""
    return _save(under_attack_figure(runs, title, alpha), out)


def draw_level(ax: Axes, level: dict, paths: Sequence[np.ndarray] = ()) -> None:
    """An obstacle-world level on ``ax``: arena, walls, start (circle), goal (star, with its
    radius) and ``paths`` (``[steps, 2]`` positions each)."""
    from metarobust.envs.geometry import ARENA, GOAL_RADIUS

    ax.add_patch(Rectangle((-ARENA, -ARENA), 2 * ARENA, 2 * ARENA, fill=False, lw=2))
    for x1, y1, x2, y2 in level.get("walls", []):
        ax.plot([x1, x2], [y1, y2], color="black", lw=2.5, solid_capstyle="round")
    for path in paths:
        ax.plot(path[:, 0], path[:, 1], color="C0", alpha=0.5, lw=1)
    ax.plot(*level["start"], "o", color="C2", ms=7)
    ax.plot(*level["goal"], "*", color="C3", ms=12)
    ax.add_patch(Circle(level["goal"], GOAL_RADIUS, color="C3", alpha=0.3))
    ax.set_xlim(-ARENA * 1.02, ARENA * 1.02)
    ax.set_ylim(-ARENA * 1.02, ARENA * 1.02)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def level_figure(level: dict, panels: Mapping[str, Sequence[np.ndarray]], title: str) -> Figure:
    """One level per panel, each with the paths a policy took in it (e.g. before and after
    adapting; a panel's name is its title), and a key to the markers below."""
    fig = _new_figure(4 * len(panels), 4.5)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, paths) in zip(axes, panels.items(), strict=True):
        draw_level(ax, level, paths)
        if name:
            ax.set_title(name, fontsize=9)
    fig.suptitle(_wrap(title, 3.6 * len(panels), 9), fontsize=9)
    handles = [
        Line2D([], [], color="C2", marker="o", linestyle="none", ms=7),
        Line2D([], [], color="C3", marker="*", linestyle="none", ms=12),
    ]
    names = ["start", "goal"]
    if any(len(paths) for paths in panels.values()):
        handles.append(Line2D([], [], color="C0", alpha=0.5, lw=1))
        names.append("paths")
    _legend_below(fig, handles, names)
    return fig


def plot_level(
    level: dict, panels: Mapping[str, Sequence[np.ndarray]], out: Path, title: str
) -> Path:
    """``level_figure`` as a PNG at ``out``."""
    return _save(level_figure(level, panels, title), out, dpi=100)


def levels_image(levels: Sequence[dict], scores: Sequence[float] | None = None) -> np.ndarray:
    """A row of small level drawings (titled with their scores) as an ``[H, W, 3]`` uint8
    image, for TensorBoard."""
    fig = _new_figure(2 * len(levels), 2.2)
    axes = fig.subplots(1, len(levels), squeeze=False)
    for k, (ax, level) in enumerate(zip(axes[0], levels, strict=True)):
        draw_level(ax, level)
        if scores is not None:
            ax.set_title(f"{scores[k]:.3g}", fontsize=8)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def intervals_figure(
    iqm: Mapping[str, Interval], better: Mapping[str, Interval], *, metric: str, baseline: str
) -> Figure:
    """Each method's IQM with its interval (left) and its probability of improving on the
    baseline (right, where there is one), a row per method."""
    methods = list(iqm)
    panels = [("IQM of " + metric, iqm)] + ([(f"P({baseline} < method)", better)] if better else [])
    fig = _new_figure(4.2 * len(panels), 0.45 * len(methods) + 1.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    rows = np.arange(len(methods))[::-1]
    for ax, (title, intervals) in zip(axes, panels, strict=True):
        for row, method in zip(rows, methods, strict=True):
            if method not in intervals:
                continue
            point, low, high = intervals[method]
            ax.plot([low, high], [row, row], color="C0", lw=6, alpha=0.35)
            ax.plot([point], [row], "o", color="C0")
        ax.set_yticks(rows, methods if ax is axes[0] else [""] * len(methods))
        ax.set_title(_wrap(title, 4.0, 9), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    if better:
        axes[1].axvline(0.5, color="grey", lw=1, ls="--")
    return fig


def plot_intervals(
    path: Path,
    iqm: Mapping[str, Interval],
    better: Mapping[str, Interval],
    *,
    metric: str,
    baseline: str,
) -> Path:
    """``intervals_figure`` as a PNG at ``path``."""
    return _save(intervals_figure(iqm, better, metric=metric, baseline=baseline), path)
