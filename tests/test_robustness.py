"""Robustness grid: the cells it writes, their dynamics, paired policies, the CLI."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY, tiny_overrides

from metarobust.adversarial.robustness import (
    grid_returns,
    robustness_grid,
    scale_grid,
)
from metarobust.api import train
from metarobust.cli import main
from metarobust.config import SamplerConfig, load_config
from metarobust.errors import ConfigError
from metarobust.runs.saved import SavedRun
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.sampler_factory import make_sampler

SEED = 7
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_run(log_dir: Path, name: str, seed: int) -> Path:
    """Two envs x 64 steps, two iterations on InvertedPendulum: an almost untrained policy,
    whose episodes end within a few dozen steps (so cells of other masses differ)."""
    path, _ = TINY["ppo"]
    overrides = tiny_overrides("ppo", log_dir, name, "train.total_steps=256", f"seed={seed}")
    cfg = load_config(path, overrides)
    return train(cfg)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """Two runs that share a directory name, in different log dirs."""
    root = tmp_path_factory.mktemp("runs")
    return tiny_run(root / "x", "pend", 0), tiny_run(root / "y", "pend", 1)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_scale_grid():
    assert scale_grid(0.5, 1.5, 11) == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    assert scale_grid(1, 1, 1) == [1.0]
    assert scale_grid(0.1, 0.2, 4) == [0.1, 0.133333, 0.166667, 0.2]
    for bad in ((1.5, 0.5, 3), (1, 1, 3), (0.5, 1.5, 1), (0.5, 1.5, 0), (0.5, 1.5, 2.5)):
        with pytest.raises(ConfigError, match="--mass"):
            scale_grid(*bad, flag="--mass")


def test_grid_writes_every_cell_for_paired_policies(runs, tmp_path):
    masses, frictions = [0.5, 1.0, 2.0], [0.8, 1.2]
    summary = robustness_grid(runs, masses, frictions, 2, SEED, tmp_path / "both", progress=False)
    rows = read_rows(tmp_path / "both" / "robustness.csv")
    assert list(rows[0]) == ["policy", "mass_scale", "friction_scale", "episode", "return"]
    assert [r["policy"] for r in rows] == ["x/pend"] * 12 + ["y/pend"] * 12  # same names
    for label in ("x/pend", "y/pend"):
        mine = [r for r in rows if r["policy"] == label]
        cells = [(float(r["mass_scale"]), float(r["friction_scale"]), r["episode"]) for r in mine]
        assert sorted(cells) == sorted(
            (m, f, str(e)) for m in masses for f in frictions for e in range(2)
        )
        assert label in summary
    for name in ("robustness_heatmap.png", "robustness_percentiles.png"):
        assert (tmp_path / "both" / name).read_bytes()[:8] == PNG_MAGIC
    # Paired: a policy's returns are the same whichever policies it is shown beside.
    robustness_grid(runs[1:], masses, frictions, 2, SEED, tmp_path / "one", progress=False)
    alone = read_rows(tmp_path / "one" / "robustness.csv")
    assert [r["policy"] for r in alone] == ["pend"] * 12
    strip = [{k: v for k, v in r.items() if k != "policy"} for r in alone]
    assert strip == [{k: v for k, v in r.items() if k != "policy"} for r in rows[12:]]


def test_cells_run_their_own_dynamics(runs):
    run = SavedRun.load(runs[0])
    cfg, (policy, saved) = run.cfg, run.policy()
    state = replace(saved, deterministic=True)
    with make_sampler(
        SamplerConfig(envs_per_worker=3), EnvSpec.dynamics(cfg.env), policy, SEED
    ) as sampler:
        before = grid_returns(sampler, state, [1.0], [1.0], 3, SEED)  # [1, 1, episode]
        # Scales whose product is not 1, so masses compounding cell after cell would show.
        grid = grid_returns(sampler, state, [0.5, 1.0, 2.5], [0.8, 1.0], 3, SEED)
        after = grid_returns(sampler, state, [1.0], [1.0], 3, SEED)  # on the envs just used
    assert grid.shape == (3, 2, 3)
    assert torch.equal(grid[1, 1], before[0, 0])
    assert torch.equal(after, before)  # the last cells' masses did not stay in the models
    assert not torch.equal(grid[0], grid[2])  # the pole's mass changes how fast it falls


def test_cli_replaces_its_own_grid_and_refuses_bad_flags(runs, tmp_path, capsys):
    run, out = str(runs[0]), tmp_path / "grid"
    grid = ["--mass", "0.5", "1.5", "3", "--friction", "1", "1", "1", "--episodes", "1"]
    assert main(["robustness", run, *grid, "--out", str(out)]) == 0
    assert "pend: grid mean" in capsys.readouterr().out
    first = (out / "robustness.csv").read_bytes()
    assert len(first.decode().splitlines()) == 1 + 3

    def fails(*argv: str) -> str:
        assert main(["robustness", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        return err[0]

    smaller = ["--mass", "0.5", "1.5", "2", *grid[4:]]
    assert main(["robustness", run, *smaller, "--out", str(out)]) == 0  # a rerun replaces
    capsys.readouterr()
    assert len((out / "robustness.csv").read_text().splitlines()) == 1 + 2
    assert sorted(p.name for p in out.iterdir()) == [
        ".outputs.lock", "robustness.csv", "robustness_heatmap.png", "robustness_percentiles.png"
    ]  # fmt: skip
    assert "--episodes" in fails(run, "--episodes", "0", "--out", str(out))
    assert len((out / "robustness.csv").read_text().splitlines()) == 1 + 2  # kept
    assert "--episodes" in fails(run, "--episodes", "0", "--out", str(tmp_path / "e"))
    assert "--mass" in fails(run, "--mass", "0", "1", "3", "--out", str(tmp_path / "m"))
    assert "--friction" in fails(run, "--friction", "1", "2", "2.5", "--out", str(tmp_path / "f"))
    assert "missing" in fails(str(tmp_path / "missing"), "--out", str(tmp_path / "n"))


def test_evaluate_runs_the_grid_on_a_rarl_run(tmp_path, capsys):
    path, _ = TINY["rarl"]
    cfg = load_config(path, tiny_overrides("rarl", tmp_path, "rarl", "train.total_steps=128"))
    run = train(cfg)
    assert main(["evaluate", str(run), "--episodes", "1"]) == 0
    assert "InvertedPendulumDynamics-v0: 11 masses x 11 frictions" in capsys.readouterr().out
    rows = read_rows(run / "robustness.csv")  # into the run directory, beside its records
    assert len(rows) == 121 and {r["policy"] for r in rows} == {"rarl"}
    assert (run / "robustness_heatmap.png").read_bytes()[:8] == PNG_MAGIC
    assert main(["evaluate", str(run), "--stochastic"]) == 2  # the grid uses the mean action
