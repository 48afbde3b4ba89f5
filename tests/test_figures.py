"""Every figure the CLI writes, built from small synthetic inputs and checked for layout:
titles inside the canvas, legends beside (not over) the axes, short run labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text

from metarobust import plotting
from metarobust.cli import main
from metarobust.config import load_config
from metarobust.envs.levels import DEFAULT_LEVELS, load_levels
from metarobust.errors import ConfigError
from metarobust.runs.run_dir import write_config

GRID_ENV = "metarobust/HalfCheetahVelDynamics-v0"  # a long id, as the grid's titles carry


def texts(fig: Figure) -> list[Text]:
    """The figure's titles and axis labels that show something."""
    found = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        found += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
    return [t for t in found if t.get_visible() and t.get_text()]


def legends(fig: Figure) -> list:
    return [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]


def legend_entries(fig: Figure) -> list[str]:
    return [t.get_text() for legend in legends(fig) for t in legend.get_texts()]


def assert_laid_out(fig: Figure) -> None:
    """Every title and axis label, and every legend, lies inside the canvas; no legend
    overlaps any axes (a panel or a colour bar)."""
    fig.canvas.draw()  # runs the layout engine
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox.padded(1.0)  # a pixel of rounding
    for text in texts(fig):
        box = text.get_window_extent(renderer)
        assert canvas.contains(box.x0, box.y0) and canvas.contains(box.x1, box.y1), (
            f"{text.get_text()!r} at {box.extents} leaves the canvas {fig.bbox.extents}"
        )
    for legend in legends(fig):
        box = legend.get_window_extent(renderer)
        assert canvas.contains(box.x0, box.y0) and canvas.contains(box.x1, box.y1)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), (
                f"legend {[t.get_text() for t in legend.get_texts()]} covers axes "
                f"{ax.get_title()!r}"
            )


def fake_run(root: Path, name: str, *overrides: str, steps: int = 5) -> Path:
    """A run directory with a config and a few rows of metrics."""
    run = root / name
    run.mkdir(parents=True)
    write_config(run, load_config(None, list(overrides)))
    rows = [{"step": 100 * i, "charts/episodic_return": float(i)} for i in range(steps)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_run_labels_name_algorithm_and_seed_and_stay_distinct(tmp_path):
    runs = [
        fake_run(tmp_path, "HalfCheetahVel_maml_0_20260101-120000", "train.algorithm=maml"),
        fake_run(tmp_path, "x_ppo_3_20260101-120000", "train.algorithm=ppo", "seed=3"),
        fake_run(tmp_path, "a", "train.algorithm=ued", "ued.generator=plr"),
        fake_run(tmp_path, "b", "train.algorithm=ued", "ued.generator=plr"),
    ]
    assert plotting.run_labels(runs) == [
        "maml seed 0",
        "ppo seed 3",
        "ued plr seed 0 [1]",
        "ued plr seed 0 [2]",
    ]


def test_learning_curves(tmp_path):
    runs = [
        fake_run(tmp_path, "Navigation2D_maml_0_20260101-120000", "train.algorithm=maml"),
        fake_run(tmp_path, "Navigation2D_maml_1_20260101-130000", "train.algorithm=maml", "seed=1"),
    ]
    metric = "charts/episodic_return"
    fig = plotting.runs_figure(plotting.run_curves(runs, metric), metric)
    assert_laid_out(fig)
    assert legend_entries(fig) == ["maml seed 0", "maml seed 1"]
    fig = plotting.runs_figure(plotting.run_curves(runs, metric, ["MAML", "RoML"]), metric)
    assert legend_entries(fig) == ["MAML", "RoML"]


def test_plot_cli_takes_one_label_per_run(tmp_path, capsys):
    runs = [str(fake_run(tmp_path, name, f"seed={i}")) for i, name in enumerate("ab")]
    out = tmp_path / "curves"
    assert main(["plot", *runs, "--labels", "first", "second", "--out", str(out)]) == 0
    assert (out / "charts_episodic_return.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", *runs, "--labels", "first", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--labels" in err and len(err.splitlines()) == 1
    with pytest.raises(ConfigError, match="labels"):
        plotting.run_curves([Path(r) for r in runs], "charts/episodic_return", ["one"])


def test_adaptation():
    gen = torch.Generator().manual_seed(0)
    curves = {name: torch.randn(4, 20, generator=gen) for name in ("MAML", "random init", "pre")}
    fig = plotting.adaptation_figure(curves, "metarobust/HalfCheetahVel-v0")
    assert_laid_out(fig)
    assert legend_entries(fig) == list(curves)


def under_attack_runs(steps: int, conditions: tuple[str, ...]) -> dict:
    rng = np.random.default_rng(0)
    runs: dict = {}
    for label in ("maml seed 0", "robust_maml seed 0"):
        runs[label] = {c: (rng.normal(size=steps), rng.normal(size=steps)) for c in conditions}
    return runs


def test_under_attack_of_meta_policies():
    runs = under_attack_runs(4, ("none", "own", "fresh", "random", "grid"))
    fig = plotting.under_attack_figure(runs, "metarobust/HalfCheetahVelAdv-v0", 0.1)
    assert_laid_out(fig)
    entries = legend_entries(fig)
    assert {"maml seed 0", "robust_maml seed 0"} <= set(entries)
    assert any("CVaR 10 %" in e for e in entries)  # the dashed lines are keyed
    assert any("mean" in e for e in entries)


def test_under_attack_of_a_policy_that_does_not_meta_learn():
    """Step 0 only: the conditions on the x axis, not single dots over 'gradient steps'."""
    runs = under_attack_runs(1, ("none", "own", "random", "grid"))
    fig = plotting.under_attack_figure(runs, "metarobust/InvertedPendulumAdv-v0", 0.1)
    assert_laid_out(fig)
    assert all(ax.get_xlabel() != "gradient steps" for ax in fig.axes)
    ticks = {t.get_text() for ax in fig.axes for t in ax.get_xticklabels()}
    assert {"none", "own", "random", "grid"} <= ticks
    assert any("CVaR 10 %" in e for e in legend_entries(fig))


def grid_returns(policies: int, masses: int = 3, frictions: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(masses, frictions, 8, generator=gen) for _ in range(policies)]


def test_under_attack_grid():
    note = "mean over 20 held-out tasks after 3 adaptation steps"  # as under_attack writes it
    fig = plotting.heatmaps_figure(
        ["maml seed 0"], (0.5, 1.0, 1.5), (0.5, 1.0, 1.5), grid_returns(1), GRID_ENV, note
    )
    assert_laid_out(fig)


def test_robustness_heatmaps_and_percentiles():
    labels = ["ppo seed 0", "rarl seed 0", "robust_maml seed 12"]
    scales = tuple(np.linspace(0.5, 1.5, 11))
    fig = plotting.heatmaps_figure(labels, scales, scales, grid_returns(3, 11, 11), GRID_ENV)
    assert_laid_out(fig)
    fig = plotting.percentiles_figure(labels, grid_returns(3), GRID_ENV)
    assert_laid_out(fig)
    assert legend_entries(fig) == labels


def test_many_heatmaps_wrap_into_rows_of_four():
    labels = [f"method {i}" for i in range(6)]
    fig = plotting.heatmaps_figure(
        labels, (0.5, 1.0, 1.5), (0.5, 1.0, 1.5), grid_returns(6), GRID_ENV
    )
    assert_laid_out(fig)
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert [ax.get_title().split("\n")[0] for ax in shown] == labels
    rows = sorted({round(ax.get_position().y0, 3) for ax in shown}, reverse=True)
    assert len(rows) == 2
    assert sum(round(ax.get_position().y0, 3) == rows[0] for ax in shown) == 4


def test_held_out_level_has_a_key():
    level = load_levels(DEFAULT_LEVELS)["four_rooms"]
    rng = np.random.default_rng(0)
    paths = [np.cumsum(rng.normal(scale=0.05, size=(30, 2)), axis=0) for _ in range(3)]
    fig = plotting.level_figure(level, {"": paths}, "four_rooms: solved 67%")
    assert_laid_out(fig)
    assert legend_entries(fig) == ["start", "goal", "paths"]


def test_level_before_and_after_adapting_side_by_side():
    level = load_levels(DEFAULT_LEVELS)["spiral"]
    rng = np.random.default_rng(0)
    paths = [np.cumsum(rng.normal(scale=0.05, size=(30, 2)), axis=0) for _ in range(3)]
    panels = {"before adapting": paths, "after 3 inner steps": paths[:1]}
    fig = plotting.level_figure(level, panels, "spiral: solved 0%, 10%, 40%, 60% after 0..3 steps")
    assert_laid_out(fig)
    assert [ax.get_title() for ax in fig.axes] == list(panels)
    assert legend_entries(fig) == ["start", "goal", "paths"]


def test_figures_are_written(tmp_path):
    runs = under_attack_runs(1, ("none", "grid"))
    out = plotting.plot_under_attack(runs, tmp_path / "u.png", "metarobust/HopperAdv-v0", 0.1)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    level = load_levels(DEFAULT_LEVELS)["corridor"]
    out = plotting.plot_level(level, {"": []}, tmp_path / "level.png", "corridor: solved 0%")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_under_attack_labels_its_figures_by_algorithm_and_seed(tiny_config, monkeypatch):
    """Through the CLI: a PPO run's under_attack.png (step 0 only) and grid heat map."""
    from metarobust.api import train

    saved: dict[str, Figure] = {}
    save = plotting._save

    def keep(fig: Figure, path: Path, dpi: int = 120) -> Path:
        saved[Path(path).name] = fig
        return save(fig, path, dpi)

    monkeypatch.setattr(plotting, "_save", keep)
    run = train(tiny_config("ppo", "Pendulum_ppo_0_20260101-120000", "train.total_steps=128"))
    assert main(["evaluate", str(run), "--under-attack", "--episodes", "1"]) == 0
    attacked, grid = saved["under_attack.png"], saved["under_attack_grid.png"]
    for fig in (attacked, grid):
        assert_laid_out(fig)
    assert "ppo seed 0" in legend_entries(attacked)
    assert {t.get_text() for t in attacked.axes[0].get_xticklabels()} == {"none", "grid"}
    assert grid.axes[0].get_title().startswith("ppo seed 0")


def test_plot_follows_the_runs_algorithm_and_names_what_was_logged(tiny_config, capsys):
    from metarobust.api import train

    meta = train(tiny_config("maml", "meta", "maml.num_iterations=1"))
    assert main(["plot", str(meta)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {meta / 'meta_post_adapt_return.png'}"
    multi_task = train(
        tiny_config("maml", "multi", "maml.num_iterations=1", "maml.num_inner_steps=0")
    )
    assert main(["plot", str(multi_task)]) == 0
    assert (multi_task / "meta_pre_adapt_return.png").is_file()
    assert main(["plot", str(meta), "--metric", "charts/episodic_return"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"metarobust: error: {meta}: no values of 'charts/episodic_return' in ")
    assert (
        "its keys: " in err and "meta/post_adapt_return" in err and "meta/pre_adapt_return" in err
    )
    assert len(err.splitlines()) == 1
