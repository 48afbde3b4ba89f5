"""MAML in the obstacle world: levels as tasks, proposed by any generator, and the held-out
evaluation that adapts to each layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from metarobust.api import train
from metarobust.cli import main
from metarobust.config import load_config
from metarobust.envs.levels import DEFAULT_LEVELS, level_row, load_levels
from metarobust.maml.algorithm import task_selection

SELECTIONS = ["uniform", "plr", "accel", "minimax", "paired"]


@pytest.mark.parametrize("selection", SELECTIONS)
def test_every_selection_proposes_valid_levels(selection):
    cfg = load_config("configs/maml/obstacles.yaml", [f"maml.task_selection={selection}",
                                                      "ued.buffer_size=8"])  # fmt: skip
    generator, rng = task_selection(cfg, np.random.default_rng(0)), np.random.default_rng(1)
    for _ in range(12):
        proposal = generator.propose(4)
        assert len(proposal.tasks) == 4 and proposal.train  # MAML trains on every batch
        for level in proposal.tasks:
            level_row(level)  # inside the arena, at most MAX_WALLS walls, start off the walls
        generator.observe(proposal, rng.normal(size=4))


@pytest.mark.parametrize("selection", SELECTIONS)
def test_maml_on_levels_resumes_exactly(tiny_config, rows, selection):
    extra = f"maml.task_selection={selection}"
    straight = train(tiny_config("maml_levels", "straight", extra))
    split = train(tiny_config("maml_levels", "split", extra, "maml.num_iterations=2"))
    assert main(["train", "--resume", str(split), "--set", "maml.num_iterations=4"]) == 0
    assert rows(split) == rows(straight)
    assert all("meta/post_adapt_return" in r for r in rows(straight))
    if selection == "paired":  # the antagonist plays the same levels; its steps count
        assert all("antagonist/episodic_return" in r for r in rows(straight))


def test_paired_counts_the_antagonists_steps(tiny_config, rows):
    """PAIRED's antagonist plays each level as many episodes as the meta-policy does after
    adapting, so an iteration's env steps grow by about half (episodes end at the goal)."""
    uniform = rows(train(tiny_config("maml_levels", "uniform", "maml.num_iterations=1")))
    paired = rows(train(tiny_config("maml_levels", "paired", "maml.task_selection=paired",
                                    "maml.num_iterations=1")))  # fmt: skip
    assert paired[0]["step"] > 1.25 * uniform[0]["step"]


def test_accel_needs_levels_for_maml_too(tiny_args, capsys):
    assert main(tiny_args("maml", "m", "maml.task_selection=accel")) == 2
    assert "maml.task_selection: accel edits obstacle levels" in capsys.readouterr().err


def test_held_out_evaluation_adapts_a_meta_policy(tiny_config, capsys):
    """``evaluate`` on a MAML obstacle run: a row per level and inner step 0..K, a summary
    per group of levels with the CVaR of the levels' returns, and a picture of each layout
    before and after adapting."""
    run = train(tiny_config("maml_levels", "run", "maml.num_iterations=1"))
    args = ["evaluate", str(run), "--episodes", "2", "--random-levels", "3", "--steps", "2"]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "after 0..2 inner steps" in said and "named layouts solved" in said
    named = list(load_levels(DEFAULT_LEVELS))
    with (run / "held_out.csv").open() as f:
        levels = list(csv.DictReader(f))
    names = [*named, "random_0", "random_1", "random_2"]
    assert [(r["level"], r["gradient_steps"]) for r in levels] == [
        (name, str(k)) for k in range(3) for name in names
    ]
    # the mean action is deterministic, and so is the level: both episodes alike
    assert {r["actions"] for r in levels} == {"mean"}
    with (run / "held_out_summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    assert [(r["levels"], r["gradient_steps"], r["count"]) for r in summary] == [
        ("named", "0", "8"), ("named", "1", "8"), ("named", "2", "8"),
        ("random", "0", "3"), ("random", "1", "3"), ("random", "2", "3"),
    ]  # fmt: skip
    for row in summary:
        k, group = int(row["gradient_steps"]), row["levels"]
        in_group = [r for r in levels if (r["level"] in named) == (group == "named")]
        per_level = [float(r["return_mean"]) for r in in_group if int(r["gradient_steps"]) == k]
        assert float(row["return_mean"]) == pytest.approx(np.mean(per_level), abs=1e-3)
        assert float(row["return_cvar10"]) == pytest.approx(min(per_level), abs=1e-3)  # 1 level
    assert {p.stem for p in (run / "held_out").glob("*.png")} == set(named)


def test_later_lr_sets_the_step_size_after_the_first_step(tiny_config, tmp_path):
    """``--later-lr`` on held-out levels: steps 0 and 1 as without it, step 2 otherwise."""
    run = train(tiny_config("maml_levels", "run", "maml.num_iterations=1"))

    def returns(out: Path, *later: str) -> dict[str, list[float]]:
        args = ["evaluate", str(run), "--episodes", "2", "--random-levels", "0", "--steps", "2"]
        assert main([*args, "--out", str(out), *later]) == 0
        with (out / "held_out.csv").open() as f:
            levels = list(csv.DictReader(f))
        return {k: [float(r["return_mean"]) for r in levels if r["gradient_steps"] == k]
                for k in ("0", "1", "2")}  # fmt: skip

    base, slow = returns(tmp_path / "base"), returns(tmp_path / "slow", "--later-lr", "1e-6")
    assert base["0"] == slow["0"] and base["1"] == slow["1"]
    assert base["2"] != slow["2"]


# Meta-training on trap levels only (a barrier across the arena with one gap, or a cup around
# the start), short episodes, a small policy, in-process sampling: about 30 s on one core.
TRAPS = {"trap_prob": 1.0, "num_walls": [3, 3], "solvable": True}
TRAP_RUN = (f"env.task_distribution={json.dumps(TRAPS)}", "env.max_episode_steps=80",
            "maml.meta_batch_size=10", "maml.episodes_per_task=10", "maml.num_iterations=40",
            "sampler.envs_per_worker=100", "sampler.backend=local", "policy.hidden_sizes=[32,32]",
            "checkpoint.every=40", "logging.progress=false")  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1])
def test_adapting_solves_held_out_traps(tmp_path, seed):
    """20 trap levels the meta-policy never trained on (drawn with another seed): three inner
    steps on its own episodes there solve at least 20 points more of them than it did before
    adapting (measured, seeds 0-2: 24 -> 52, 12 -> 46, 20 -> 57 %)."""
    from metarobust.envs.level_generation import RandomLevels
    from metarobust.held_out import evaluate_held_out

    cfg = load_config("configs/maml/obstacles.yaml",
                      [*TRAP_RUN, f"seed={seed}", f"logging.log_dir={tmp_path}"])  # fmt: skip
    run = train(cfg)
    held_out = RandomLevels(**TRAPS).sample(20, np.random.default_rng(999))
    levels = tmp_path / "traps.yaml"
    levels.write_text(json.dumps({f"trap_{i}": level for i, level in enumerate(held_out)}))
    evaluate_held_out(run, levels_path=levels, episodes=10, random_levels=0, steps=3,
                      deterministic=False, progress=False)  # fmt: skip
    with (run / "held_out_summary.csv").open() as f:
        solved = [float(r["solved_rate"]) for r in csv.DictReader(f)]
    assert solved[3] >= solved[0] + 0.2, solved
