"""Evaluation over a wide grid of dynamics: held-out tasks x mass x friction x force cells."""

from __future__ import annotations

import csv
import math

import pytest

from metarobust.api import train
from metarobust.cli import main
from metarobust.maml.dynamics_grid import _outside
from metarobust.sampling.sampler_factory import make_sampler

RANGES = (
    '{"dynamics": {"mass_scale": [0.5, 2.0], "friction_scale": [0.5, 2.0], "force_x": [-20, 20]}}'
)
CHEETAH = ("env.id=metarobust/HalfCheetahVelDynamics-v0", "env.max_episode_steps=10",
           f"env.task_distribution={RANGES}", "maml.meta_batch_size=2",
           "maml.episodes_per_task=2", "maml.num_iterations=1")  # fmt: skip
AXES_AND_STEP = ("mass_scale", "friction_scale", "force_x", "gradient_steps")


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
    assert main(["evaluate", str(run), "--envs", "4"]) == 2
    assert "--envs: a setting of --dynamics-grid" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--dynamics-grid", "--envs", "0"]) == 2
    assert "--envs: expected a positive integer, got 0" in capsys.readouterr().err


def test_fewer_envs_play_the_same_episodes(tiny_config, tmp_path, monkeypatch):
    """--envs caps the grid's sampler (memory) and leaves its episodes alone but for the float
    rounding of a policy batched over fewer envs: before adapting, the same returns."""
    import metarobust.maml.dynamics_grid as dynamics_grid

    used = []

    def recording(cfg, *args, **kwargs):
        used.append(cfg.envs_per_worker)
        return make_sampler(cfg, *args, **kwargs)

    monkeypatch.setattr(dynamics_grid, "make_sampler", recording)
    run = train(tiny_config("maml", "run", *CHEETAH))
    grid = ["--dynamics-grid", "--tasks", "2", "--episodes", "2", "--steps", "1", "--mass",
            "0.5", "2", "2", "--friction", "1", "1", "1", "--force-x", "0", "10"]  # fmt: skip
    for name, envs in (("all", []), ("three", ["--envs", "3"])):
        assert main(["evaluate", str(run), *grid, *envs, "--out", str(tmp_path / name)]) == 0
    assert used == [2 * 4 * 2, 3]  # tasks x cells x episodes, then the cap
    rows = {name: read(tmp_path / name / "dynamics_grid.csv") for name in ("all", "three")}
    for mine, theirs in zip(rows["three"], rows["all"], strict=True):
        assert [mine[k] for k in AXES_AND_STEP] == [theirs[k] for k in AXES_AND_STEP]
        if mine["gradient_steps"] == "0":
            assert float(mine["return_mean"]) == pytest.approx(
                float(theirs["return_mean"]), abs=1e-3
            )
