"""Evaluation over a wide grid of dynamics: held-out tasks x mass x friction x force cells."""

from __future__ import annotations

import csv
import math

import pytest

from metarobust.api import train
from metarobust.cli import main
from metarobust.maml.dynamics_grid import _outside

RANGES = (
    '{"dynamics": {"mass_scale": [0.5, 2.0], "friction_scale": [0.5, 2.0], "force_x": [-20, 20]}}'
)
CHEETAH = ("env.id=metarobust/HalfCheetahVelDynamics-v0", "env.max_episode_steps=10",
           f"env.task_distribution={RANGES}", "maml.meta_batch_size=2",
           "maml.episodes_per_task=2", "maml.num_iterations=1")  # fmt: skip


def read(path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def cvar(values: list[float], alpha: float) -> float:
    worst = sorted(values)[: max(1, math.ceil(alpha * len(values)))]
    return sum(worst) / len(worst)


def test_cells_outside_the_training_ranges():
    ranges = {"mass_scale": (0.5, 2.0), "force_x": (-20.0, 20.0)}
    assert not _outside((0.5, 1.0, 20.0), ranges)
    assert _outside((0.25, 1.0, 0.0), ranges)  # lighter than trained
    assert _outside((1.0, 1.5, 0.0), ranges)  # friction: trained at nominal only
    assert _outside((1.0, 1.0, -40.0), ranges)  # a push beyond the budget


def test_the_grid_summary_is_the_cells_measures(tiny_config, capsys):
    """One held-out task: each cell's row is one (task, cell) return, so the summary's mean,
    CVaR 5 / 10 % and worst are those of the cells' rows, overall and outside training."""
    run = train(tiny_config("maml", "run", *CHEETAH))
    args = ["evaluate", str(run), "--dynamics-grid", "--tasks", "1", "--episodes", "2",
            "--steps", "1", "--mass", "0.25", "2", "3", "--friction", "1", "1", "1",
            "--force-x", "-40", "0", "20"]  # fmt: skip
    assert main(args) == 0
    assert "outside training" in capsys.readouterr().out
    cells = read(run / "dynamics_grid.csv")
    assert len(cells) == 2 * 3 * 3  # steps x masses x forces
    assert "success_rate" not in cells[0]  # HalfCheetah reports no success
    summary = {
        (r["region"], r["gradient_steps"]): r for r in read(run / "dynamics_grid_summary.csv")
    }
    for k in ("0", "1"):
        mine = [r for r in cells if r["gradient_steps"] == k]
        outside = [r for r in mine if float(r["mass_scale"]) < 0.5 or float(r["force_x"]) < -20]
        for region, rows in (("all", mine), ("outside training", outside)):
            values = [float(r["return_mean"]) for r in rows]
            got = summary[region, k]
            assert int(got["pairs"]) == len(values)
            assert float(got["return_mean"]) == pytest.approx(sum(values) / len(values), abs=1e-3)
            assert float(got["return_cvar5"]) == pytest.approx(cvar(values, 0.05), abs=1e-3)
            assert float(got["return_cvar10"]) == pytest.approx(cvar(values, 0.1), abs=1e-3)
            assert float(got["return_worst"]) == pytest.approx(min(values), abs=1e-3)
    assert (run / "dynamics_grid.png").stat().st_size > 0


def test_grid_axes_need_the_grid(tiny_config, capsys):
    run = train(tiny_config("maml", "run", *CHEETAH))
    assert main(["evaluate", str(run), "--force-x", "10"]) == 2
    assert "--force-x: an axis of --dynamics-grid" in capsys.readouterr().err
