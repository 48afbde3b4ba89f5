"""The side-by-side studies (``experiments/``), each run end to end on two seeds with tiny
budgets: every method's scores per task reach the interval estimates."""

from __future__ import annotations

import csv
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from metarobust.studies import last_step_scores

ROOT = Path(__file__).resolve().parents[1]
TINY_MAML = ("maml.meta_batch_size=2", "maml.episodes_per_task=2", "maml.num_iterations=1",
             "sampler.workers=1", "sampler.envs_per_worker=4",
             "logging.progress=false")  # fmt: skip
TINY_PPO = ("sampler.envs_per_worker=2", "ppo.num_steps=64", "ppo.minibatch_size=32",
            "ppo.num_epochs=1", "logging.progress=false")  # fmt: skip


def sets(*overrides: str) -> list[str]:
    """``--set K=V`` for each override."""
    return [f"--set={override}" for override in overrides]


STUDIES = {  # script: (its arguments, the methods its intervals name)
    "maml_task_selection.py": (
        ["--selections", "uniform", "cvar", "--tasks", "3", "--episodes", "1", *sets(*TINY_MAML)],
        ["uniform", "cvar"],
    ),
    "robust_maml_vs_maml.py": (
        ["--baselines", "maml", "--tasks", "3", "--episodes", "1", "--attack-steps", "64",
         "--attack-set", "ppo.num_steps=64", "--attack-set", "ppo.minibatch_size=32",
         "--attack-set", "logging.progress=false", "--attack-set", "adversarial.observes_task=true",
         *sets(*TINY_MAML)],
        ["robust_maml", "maml"],
    ),
    "ued_comparison.py": (
        ["--generators", "dr", "plr", "--episodes", "1", "--random-levels", "2",
         *sets("env.max_episode_steps=20", "ued.levels_per_iteration=4", "ued.total_steps=160",
               "ued.buffer_size=4", "sampler.envs_per_worker=4", "ppo.minibatch_size=32",
               "ppo.num_epochs=1", "logging.progress=false")],
        ["dr", "plr"],
    ),
    "maml_paper.py": (
        ["--tasks", "3", "--episodes", "1", "--steps", "1",
         *sets(*TINY_MAML, "env.max_episode_steps=20")],
        ["pretrained", "MAML", "random init"],
    ),
    "rarl_vs_baseline.py": (
        ["--grid-points", "2", "--episodes", "1", "--attack-steps", "64",
         *sets("train.total_steps=128", *TINY_PPO)],
        ["baseline", "rarl"],
    ),
}  # fmt: skip


def run_script(script: str, args: list[str], monkeypatch) -> int:
    """``experiments/script`` run as ``python experiments/script args`` would; its exit code."""
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(ROOT / "experiments" / script), run_name="__main__")
    return exited.value.code


@pytest.mark.parametrize("script", sorted(STUDIES))
def test_a_study_reports_intervals_over_seeds_and_tasks(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the default configs are named relative to the checkout
    args, methods = STUDIES[script]
    out = tmp_path / "study"
    code = run_script(script, [*args, "--seeds", "0", "1", "--out", str(out)], monkeypatch)
    assert code == 0, capsys.readouterr().err
    with (out / "intervals.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == methods
    assert all(r["runs"] == "2" and int(r["tasks"]) >= 2 for r in rows)
    for r in rows:
        assert float(r["iqm_low"]) <= float(r["iqm"]) <= float(r["iqm_high"])
    assert rows[0]["p_improvement"] == "" and 0 <= float(rows[1]["p_improvement"]) <= 1
    assert (out / "intervals.png").stat().st_size > 0
    assert "interquartile mean over 2 runs" in capsys.readouterr().out


def test_last_step_scores_are_the_matching_rows_of_the_last_step(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text(
        "method,gradient_steps,task,return\n"
        "MAML,0,0,-5\nMAML,0,1,-6\nMAML,1,0,-1\nMAML,1,1,-2\n"
        "random,0,0,-9\nrandom,1,0,-8\nrandom,2,0,-7\n"
    )
    np.testing.assert_array_equal(last_step_scores(path, "return", method="MAML"), [-1, -2])
    np.testing.assert_array_equal(last_step_scores(path, "return", method="random"), [-7])
    np.testing.assert_array_equal(last_step_scores(path, "task"), [0])


def test_the_traps_study_adapts_every_meta_policy_of_the_levels_study(
    tiny_config, tmp_path, monkeypatch
):
    from metarobust.api import train

    runs = tmp_path / "levels"
    train(tiny_config("maml_levels", "uniform_s0", f"logging.log_dir={runs}",
                      "maml.num_iterations=1"))  # fmt: skip
    out = tmp_path / "traps"
    args = ["--runs", str(runs), "--out", str(out), "--steps", "2", "--episodes", "2"]
    assert run_script("maml_levels_traps.py", args, monkeypatch) == 0
    with (out / "uniform_s0.csv").open() as f:
        played = {(r["level"], int(r["gradient_steps"])) for r in csv.DictReader(f)}
    assert played == {(t, k) for t in ("zigzag", "spiral", "labyrinth") for k in range(3)}
    rows = (out / "summary.md").read_text().splitlines()
    assert rows[-1].startswith("| uniform_s0 | ") and rows[-1].endswith(" % |")
    assert (
        run_script("maml_levels_traps.py", ["--runs", str(out), "--out", str(out)], monkeypatch)
        == 2
    )  # fmt: skip  (no MAML runs there)
