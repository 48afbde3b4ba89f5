"""Meta-World tasks as data: ML1 and ML10 tasks round-trip and rebuild the same goal, the train
and test splits differ, bad task dicts get one line, and success is reported per step.

They need the metaworld extra, which pins mujoco 3.3.0: ``.ci/run`` installs it after the rest
of the suite has run and sets ``METAROBUST_REQUIRE_METAWORLD=1``, so there they cannot skip;
elsewhere they skip without it.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarobust.api import train
from metarobust.cli import main
from metarobust.config import load_config
from metarobust.envs import default_task_distribution
from metarobust.envs.meta_world import MetaWorldTasks, benchmark
from metarobust.errors import ConfigError
from metarobust.runs.batch_memory import batch_estimate, machine_memory
from metarobust.sampling.env_factory import EnvSpec

ENV_ID = "metarobust/MetaWorld-v0"

try:
    import metaworld  # noqa: F401
except ImportError:
    if os.environ.get("METAROBUST_REQUIRE_METAWORLD"):
        raise
    pytest.skip('needs the metaworld extra: pip install -e ".[metaworld]"', allow_module_level=True)


def goal_of(env: gym.Env) -> np.ndarray:
    """The goal Meta-World placed for the env's current task."""
    return np.array(env.unwrapped._current._target_pos)


def test_ml1_tasks_round_trip_as_data_and_rebuild_the_same_goal():
    tasks = default_task_distribution(ENV_ID).sample(3, np.random.default_rng(0))
    assert all(set(t) == {"benchmark", "env_name", "seed", "split", "index"} for t in tasks)
    env = gym.make(ENV_ID)
    goals = []
    for task in tasks:
        env.reset(seed=0, options={"task": task})
        goals.append(goal_of(env))
        assert env.unwrapped.task == task
    # the same dicts, in a fresh env, give the same goals as Meta-World's own tasks
    again = gym.make(ENV_ID)
    ml1 = benchmark("ML1", "reach-v3", 0)
    for task, goal in zip(tasks, goals, strict=True):
        again.reset(seed=1, options={"task": dict(task)})
        np.testing.assert_array_equal(goal_of(again), goal)
        theirs = ml1.train_classes["reach-v3"]()
        theirs.set_task(ml1.train_tasks[task["index"]])
        theirs.reset(seed=0)
        np.testing.assert_array_equal(theirs._target_pos, goal)
    assert len({tuple(g) for g in goals}) == len({t["index"] for t in tasks})


def test_train_and_test_splits_hold_different_goals():
    """ML1's test split is its own (built with seed + 1): no goal of one is in the other, so a
    registration that hands out the test split for training cannot come back unseen."""
    env = gym.make(ENV_ID)
    goals = {}
    for split in ("train", "test"):
        tasks = MetaWorldTasks("ML1", "reach-v3", seed=0, split=split).sample(
            5, np.random.default_rng(1)
        )
        goals[split] = set()
        for task in tasks:
            env.reset(seed=0, options={"task": task})
            goals[split].add(tuple(goal_of(env)))
    assert not goals["train"] & goals["test"]


def test_ml10_tasks_come_from_their_split_and_rebuild():
    train = MetaWorldTasks("ML10", seed=0)
    test = train.with_split("test")
    assert len(train.env_names) == 10 and len(test.env_names) == 5
    assert not set(train.env_names) & set(test.env_names)
    tasks = test.sample(4, np.random.default_rng(2))
    assert {t["env_name"] for t in tasks} <= set(test.env_names)
    env = gym.make(ENV_ID)
    for task in tasks:
        obs, _ = env.reset(seed=0, options={"task": task})
        assert obs.shape == (39,)
        theirs = benchmark("ML10", "", 0)
        mine = [t for t in theirs.test_tasks if t.env_name == task["env_name"]][task["index"]]
        cls = theirs.test_classes[task["env_name"]]()
        cls.set_task(mine)
        cls.reset(seed=0)
        np.testing.assert_array_equal(cls._target_pos, goal_of(env))


def test_success_is_reported_every_step():
    env = gym.make(ENV_ID)
    check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and info["success"] in (0.0, 1.0)
    assert env.spec.max_episode_steps == 500


@pytest.mark.parametrize(
    ("task", "said"),
    [
        ({"benchmark": "ML2", "env_name": "reach-v3", "seed": 0, "split": "train", "index": 0},
         "benchmark expected one of"),
        ({"benchmark": "ML1", "env_name": "reach-v3", "seed": 0, "split": "valid", "index": 0},
         "split expected one of"),
        ({"benchmark": "ML1", "env_name": "reach-v3", "seed": 0, "split": "train", "index": 50},
         "index expected < 50"),
        ({"benchmark": "ML1", "env_name": "fly-v3", "seed": 0, "split": "train", "index": 0},
         "env_name expected a Meta-World v3 env"),
        ({"benchmark": "ML1", "env_name": "reach-v3", "seed": -1, "split": "train", "index": 0},
         "seed expected an int >= 0"),
        ({"benchmark": "ML1", "env_name": "reach-v3", "seed": 0, "split": "train"},
         "index"),
        ({"benchmark": "ML1", "env_name": "reach-v3", "seed": 0, "split": "train", "index": 0,
          "data": "gASV"}, "data"),
    ],
)  # fmt: skip
def test_a_bad_task_gets_one_line(task, said):
    env = gym.make(ENV_ID)
    with pytest.raises(ConfigError, match=said) as err:
        env.reset(seed=0, options={"task": task})
    assert "\n" not in str(err.value)


def test_maml_on_ml1_logs_success_and_resumes_exactly(tiny_config, rows):
    straight = train(tiny_config("maml_metaworld", "straight"))
    split = train(tiny_config("maml_metaworld", "split", "maml.num_iterations=2"))
    assert main(["train", "--resume", str(split), "--set", "maml.num_iterations=4"]) == 0
    assert rows(split) == rows(straight)
    for row in rows(straight):
        assert 0.0 <= row["meta/pre_adapt_success"] <= 1.0
        assert 0.0 <= row["meta/post_adapt_success"] <= 1.0


def test_an_env_without_success_logs_no_success(tiny_config, rows):
    run = train(tiny_config("maml", "run", "maml.num_iterations=1"))
    assert not any("success" in key for row in rows(run) for key in row)


def test_ppo_on_meta_world_logs_the_success_rate(tiny_config, rows):
    run = train(tiny_config("ppo", "run", f"env.id={ENV_ID}", "env.max_episode_steps=20",
                            "checkpoint.every=100"))  # fmt: skip
    assert all(0.0 <= row["charts/success_rate"] <= 1.0 for row in rows(run))


def test_meta_test_draws_the_test_split_and_writes_success_per_env(tiny_config, capsys):
    assert default_task_distribution(ENV_ID).meta_test().split == "test"
    navigation = default_task_distribution("metarobust/Navigation2D-v0")
    assert navigation.meta_test() is navigation
    run = train(tiny_config("maml_metaworld", "run", "maml.num_iterations=1"))
    assert main(["evaluate", str(run), "--tasks", "2", "--episodes", "2", "--steps", "1"]) == 0
    assert "success 0:" in capsys.readouterr().out
    with (run / "success.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["env"], r["gradient_steps"], r["tasks"]) for r in rows] == [
        (method, "reach-v3", str(k), "2") for method in ("MAML", "random init") for k in (0, 1)
    ]
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 for r in rows)


@pytest.mark.parametrize("path", sorted(Path("configs/metaworld").glob("*.yaml")), ids=str)
def test_the_meta_world_configs_validate_and_fit_in_memory(path):
    cfg = load_config(path)
    assert cfg.env.id == ENV_ID and cfg.env.max_episode_steps == 500
    estimate = batch_estimate(cfg, EnvSpec.from_config(cfg.env))
    assert estimate is not None and 0 < estimate.num_bytes < min(machine_memory(), 4 * 2**30)
