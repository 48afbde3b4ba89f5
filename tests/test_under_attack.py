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
    attack_run = meta_run.parent / f"{meta_run.name}_attack_s0"  # the report goes there
    rows = read_rows(attack_run / "under_attack.csv")
    assert {r["condition"] for r in rows} == {"none", "random", "fresh"}
    assert [int(r["gradient_steps"]) for r in rows if r["condition"] == "none"] == [0, 1, 2, 3]
    fresh, random, none = means(rows, "fresh"), means(rows, "random"), means(rows, "none")
    for k in (0, 1):
        assert fresh[k] < random[k] - 4.0, (k, fresh, random)
        assert abs(random[k] - none[k]) < abs(fresh[k] - none[k])
    for r in rows:  # CVaR over tasks lies between the worst task and the mean
        assert float(r["worst"]) <= float(r["return_cvar10"]) <= float(r["return_mean"])
    assert (attack_run / "under_attack.png").stat().st_size > 0


def test_a_population_attack_reports_each_member_and_the_worst(meta_run, capsys):
    """K fresh attackers (RAP): each is a condition, and "fresh (worst of K)" is the member
    that left the lowest mean return after the last step, curve for curve."""
    args = ["attack", str(meta_run), "--steps", "4000", "--episodes", "2",
            "--set", "logging.progress=false", "--set", "adversarial.population=2",
            "--set", "logging.run_name=population"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    rows = read_rows(meta_run.parent / "population" / "under_attack.csv")
    members = {name: means(rows, name) for name in ("fresh 0", "fresh 1")}
    assert {r["condition"] for r in rows} == {"none", "random", *members, "fresh (worst of 2)"}
    worst = min(members.values(), key=lambda curve: curve[-1])
    assert means(rows, "fresh (worst of 2)") == worst


def nominal_returns(run: Path, num_tasks: int, episodes: int, seed: int = 12345) -> torch.Tensor:
    """Mean return per task of the run's policy, sampling its actions, on its own (nominal)
    env, on the episodes the under-attack evaluation gives task ``i`` of ``num_tasks`` before
    adapting: ``[task]``."""
    from metarobust.runs.saved import SavedRun
    from metarobust.sampling.acting import Acting
    from metarobust.sampling.sampler_factory import make_sampler
    from metarobust.utils.seeding import episode_seed

    saved = SavedRun.load(run)
    policy, state = saved.policy()
    sampler_cfg = saved.cfg.sampler.model_copy(update={"envs_per_worker": episodes})
    with make_sampler(sampler_cfg, saved.spec, policy, seed) as sampler:
        step_0 = episode_seed(seed, 0, 0)
        traj = sampler.sample_episodes(Acting.single(state), [None] * num_tasks, episodes, step_0)
    return traj.episode_returns.view(num_tasks, episodes).mean(1)


def test_under_attack_on_policies_that_do_not_meta_learn(tiny_config, tmp_path):
    ppo = train(tiny_config("ppo", "ppo", "train.total_steps=128"))
    assert main(["evaluate", str(ppo), "--under-attack", "--episodes", "4"]) == 0
    rows = read_rows(ppo / "under_attack.csv")
    assert {int(r["gradient_steps"]) for r in rows} == {0}
    assert {r["condition"] for r in rows} == {"none", "grid"}  # InvertedPendulum has masses
    assert [int(r["tasks"]) for r in rows if r["condition"] == "grid"] == [9]  # 3 x 3 cells
    # The grid's 1.0 x 1.0 cell is the nominal model: its return is the policy's on the plain
    # env, on that cell's episodes. (Not the none condition's episodes: a cell's episodes are
    # seeded by its place in the grid, and the none condition samples the two-player env.)
    cells = read_rows(ppo / "under_attack_grid.csv")
    assert [(c["mass_scale"], c["friction_scale"]) for c in cells][4] == ("1.0", "1.0")
    nominal = nominal_returns(ppo, num_tasks=len(cells), episodes=4)
    returns = [float(c["return_mean"]) for c in cells]
    assert returns[4] == pytest.approx(nominal[4].item(), abs=1e-3)
    assert returns[0] != pytest.approx(nominal[0].item(), abs=1e-3)  # half the mass and friction
    rarl = train(tiny_config("rarl", "rarl", "train.total_steps=128"))
    assert main(["evaluate", str(rarl), "--under-attack", "--episodes", "2", "--no-grid"]) == 0
    conditions = {r["condition"] for r in read_rows(rarl / "under_attack.csv")}
    assert conditions == {"none", "own", "random"}  # its own adversary, and random of its size


def test_robust_maml_runs_are_evaluated_against_their_own_adversary(tiny_config, capsys):
    run = train(tiny_config("robust_maml", "robust", "maml.num_iterations=1"))
    args = ["evaluate", str(run), "--under-attack", "--tasks", "4", "--episodes", "2"]
    assert main([*args, "--steps", "1"]) == 0
    assert "no grid (metarobust/Navigation2DAdv-v0 has no masses" in capsys.readouterr().out
    rows = read_rows(run / "under_attack.csv")
    assert {r["condition"] for r in rows} == {"none", "own", "random"}
    assert len(rows) == 3 * 2
    # even one adversary step learns a wind that costs the policy, before and after adapting
    # (seeds 0-4: 5 to 15 below no wind)
    own, none = means(rows, "own"), means(rows, "none")
    assert all(o < n - 3.0 for o, n in zip(own, none, strict=True)), (own, none)
    assert main([*args, "--attacker", str(run)]) == 2  # not an attack run of itself
    assert "not an attack run" in capsys.readouterr().err


def test_the_grid_condition_adapts_on_every_task_and_cell(tiny_config, capsys):
    """On a MuJoCo task env every held-out task meets every mass x friction cell (the task
    env's Dynamics variant) and adapts there; the cells' dynamics change the returns."""
    run = train(
        tiny_config(
            "maml", "cheetah", "env.id=metarobust/HalfCheetahVel-v0", "env.max_episode_steps=20",
            "maml.meta_batch_size=2", "maml.episodes_per_task=2", "maml.num_iterations=1",
        )
    )  # fmt: skip
    args = ["evaluate", str(run), "--under-attack", "--tasks", "3", "--episodes", "2",
            "--steps", "1", "--grid", "0.5", "1.5", "2"]  # fmt: skip
    assert main(args) == 0
    assert "grid" in capsys.readouterr().out
    rows = read_rows(run / "under_attack.csv")
    grid = [r for r in rows if r["condition"] == "grid"]
    assert [(int(r["gradient_steps"]), int(r["tasks"])) for r in grid] == [(0, 12), (1, 12)]
    cells = read_rows(run / "under_attack_grid.csv")
    assert len(cells) == 2 * 2 * 2 and {int(r["tasks"]) for r in cells} == {3}
    for k, row in enumerate(grid):  # the grid's mean is the mean of its cells' means
        cell_means = [float(c["return_mean"]) for c in cells if int(c["gradient_steps"]) == k]
        assert float(row["return_mean"]) == pytest.approx(sum(cell_means) / 4, abs=1e-3)
    for row in rows:  # each condition's tasks (the grid's: task x cell) one by one
        key = (row["condition"], row["gradient_steps"])
        per_task = [float(t["return"]) for t in read_rows(run / "under_attack_tasks.csv")
                    if (t["condition"], t["gradient_steps"]) == key]  # fmt: skip
        assert len(per_task) == int(row["tasks"])
        assert sum(per_task) / len(per_task) == pytest.approx(float(row["return_mean"]), abs=1e-3)
    by_mass = {
        m: [float(c["return_mean"]) for c in cells if c["mass_scale"] == m] for m in ("0.5", "1.5")
    }
    assert by_mass["0.5"] != by_mass["1.5"]
    assert (run / "under_attack_grid.png").stat().st_size > 0
    assert main(["evaluate", str(run), "--grid", "0.5", "1.5", "2"]) == 2
    assert "--grid / --no-grid: the grid is a condition of" in capsys.readouterr().err


def test_an_attack_spends_its_steps_with_the_attacks_own_adversary_updates(meta_run):
    """With N_nu = 3 an attack iteration is one pre-adaptation pass and three adversary
    passes of 8 tasks x 8 episodes x 100 steps: 4 x 6400 steps buy one iteration, not two."""
    from metarobust.adversarial.attack import attack
    from metarobust.runs.saved import SavedRun

    run = attack(meta_run, 4 * 6400, seed=1, overrides=["adversarial.adversary_updates=3"])
    saved = SavedRun.load(run)
    assert (saved.cfg.adversarial.adversary_updates, saved.cfg.maml.num_iterations) == (3, 1)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_several_policies_meet_one_shared_adversary(meta_run, tiny_config, capsys):
    """--shared: a plain MAML run meets a robust-MAML run's adversary (the same trained
    wind); a run without an adversary, or with another network, is refused in one line."""
    robust = train(tiny_config("robust_maml", "robust", "maml.num_iterations=1",
                               "adversarial.observes_task=false"))  # fmt: skip
    args = ["evaluate", str(meta_run), "--under-attack", "--tasks", "4", "--episodes", "2",
            "--steps", "1"]  # fmt: skip
    assert main([*args, "--shared", str(robust)]) == 0
    rows = read_rows(meta_run / "under_attack.csv")
    assert {r["condition"] for r in rows} == {"none", "shared", "random"}
    capsys.readouterr()
    assert main([*args, "--shared", str(meta_run)]) == 2
    assert "a maml run has none" in capsys.readouterr().err
    narrow = ("maml.num_iterations=1", "adversarial.observes_task=false", "policy.hidden_sizes=[8]")
    wide = train(tiny_config("robust_maml", "wide", *narrow))
    assert main([*args, "--shared", str(wide)]) == 2
    assert "does not fit this run's policy settings" in capsys.readouterr().err
