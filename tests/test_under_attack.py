"""Adaptation under attack: CVaR, attacks on a meta-policy and its adaptation, conditions."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from metarobust.api import train
from metarobust.cli import main
from metarobust.risk import cvar


def read_rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def means(rows: list[dict], condition: str) -> list[float]:
    return [float(r["return_mean"]) for r in rows if r["condition"] == condition]


def test_cvar_is_the_mean_of_the_worst_share():
    values = torch.arange(1.0, 11.0)[torch.randperm(10)]  # 1..10 in any order
    assert cvar(values, 0.1) == 1.0
    assert cvar(values, 0.25) == 2.0  # ceil(2.5) = 3 values: 1, 2, 3
    assert cvar(values, 1.0) == 5.5
    assert cvar(torch.tensor([-3.0]), 0.1) == -3.0
    with pytest.raises(ValueError, match="alpha"):
        cvar(values, 0.0)


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory) -> Path:
    from conftest import TINY, tiny_overrides

    from metarobust.config import load_config

    log_dir = tmp_path_factory.mktemp("under_attack")
    path, _ = TINY["maml"]
    return train(
        load_config(path, tiny_overrides("maml", log_dir, "meta", "maml.num_iterations=3"))
    )


def test_a_fresh_attack_on_the_adaptation_beats_random_wind_of_its_strength(meta_run, capsys):
    """The adversary trained against the frozen meta-policy and its adapted policies lowers
    their return well below random wind of the same mean magnitude, at every step."""
    args = ["attack", str(meta_run), "--steps", "30000", "--episodes", "4",
            "--set", "logging.progress=false"]  # fmt: skip
    assert main(args) == 0
    assert "return after 3 steps: none" in capsys.readouterr().out
    rows = read_rows(meta_run / "under_attack.csv")
    assert {r["condition"] for r in rows} == {"none", "random", "fresh"}
    assert [int(r["gradient_steps"]) for r in rows if r["condition"] == "none"] == [0, 1, 2, 3]
    fresh, random, none = means(rows, "fresh"), means(rows, "random"), means(rows, "none")
    for k in (0, 1):
        assert fresh[k] < random[k] - 4.0, (k, fresh, random)
        assert abs(random[k] - none[k]) < abs(fresh[k] - none[k])
    for r in rows:  # CVaR over tasks lies between the worst task and the mean
        assert float(r["worst"]) <= float(r["return_cvar10"]) <= float(r["return_mean"])
    assert (meta_run / "under_attack.png").stat().st_size > 0


def test_under_attack_on_policies_that_do_not_meta_learn(tiny_config, tmp_path):
    ppo = train(tiny_config("ppo", "ppo", "train.total_steps=128"))
    assert main(["evaluate", str(ppo), "--under-attack", "--episodes", "2"]) == 0
    assert {int(r["gradient_steps"]) for r in read_rows(ppo / "under_attack.csv")} == {0}
    rarl = train(tiny_config("rarl", "rarl", "train.total_steps=128"))
    assert main(["evaluate", str(rarl), "--under-attack", "--episodes", "2"]) == 0
    conditions = {r["condition"] for r in read_rows(rarl / "under_attack.csv")}
    assert conditions == {"none", "own", "random"}  # its own adversary, and random of its size


def test_robust_maml_runs_are_evaluated_against_their_own_adversary(tiny_config, capsys):
    run = train(tiny_config("robust_maml", "robust", "maml.num_iterations=1"))
    args = ["evaluate", str(run), "--under-attack", "--tasks", "4", "--episodes", "2"]
    assert main([*args, "--steps", "1"]) == 0
    rows = read_rows(run / "under_attack.csv")
    assert {r["condition"] for r in rows} == {"none", "own", "random"}
    assert len(rows) == 3 * 2
    assert main([*args, "--attacker", str(run)]) == 2  # not an attack run of itself
    assert "not an attack run" in capsys.readouterr().err
