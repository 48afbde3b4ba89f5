"""Meta-World tasks as data: ML1 and ML10 tasks round-trip and rebuild the same goal, the train
and test splits differ, bad task dicts get one line, and success is reported per step.

They need the metaworld extra, which pins mujoco 3.3.0: ``.ci/run`` installs it after the rest
of the suite has run and sets ``METAROBUST_REQUIRE_METAWORLD=1``, so there they cannot skip;
elsewhere they skip without it.
"""

from __future__ import annotations

import csv
import os
import runpy
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from scipy.spatial.transform import Rotation

from metarobust.agents.policy import GaussianPolicy
from metarobust.api import train
from metarobust.cli import main
from metarobust.config import load_config
from metarobust.envs import default_task_distribution
from metarobust.envs.meta_world import (
    MetaWorldTasks,
    QuickRotation,
    benchmark,
    object_parts,
    proper_rotation_quaternion,
    touching_object,
)
from metarobust.errors import ConfigError
from metarobust.runs.batch_memory import batch_estimate, machine_memory
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import EnvSpec, env_dims
from metarobust.sampling.env_state import capture_env_state, restore_env_state
from metarobust.sampling.sampler import LocalSampler
from metarobust.sampling.subprocess_backend import SubprocessSampler
from metarobust.utils.checkpoint import load_checkpoint

ENV_ID = "metarobust/MetaWorld-v0"
DYNAMICS_ID = "metarobust/MetaWorldDynamics-v0"
REACH = {"benchmark": "ML1", "env_name": "reach-v3", "seed": 0, "split": "train", "index": 3}

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


@pytest.mark.parametrize("env_id", [ENV_ID, DYNAMICS_ID])
def test_an_env_keeps_the_meta_world_envs_it_played_and_no_other(env_id):
    """Each holds its own model (some 20 MB): the one built for the spaces, reset into without
    a task as a sampler's first reset does, goes when the first step is in another env; every
    env stepped in stays, for the next task of its name."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    assert sorted(env._envs) == ["reach-v3"]  # the default task's, for the spaces
    push = {**REACH, "benchmark": "ML10", "env_name": "push-v3"}
    env.reset(seed=0, options={"task": push})
    assert sorted(env._envs) == ["push-v3"]
    env.step(env.action_space.sample())
    env.reset(seed=0, options={"task": {**push, "env_name": "reach-v3"}})
    env.step(env.action_space.sample())
    env.reset(seed=0, options={"task": push})
    assert sorted(env._envs) == ["push-v3", "reach-v3"]
    reach = gym.make(env_id).unwrapped
    reach.reset(seed=0, options={"task": REACH})
    assert sorted(reach._envs) == ["reach-v3"]


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


def test_the_grip_test_and_the_object_orientation_answer_as_meta_world_does():
    from metaworld.policies import SawyerPickPlaceV3Policy

    policy = SawyerPickPlaceV3Policy()
    env = gym.make(ENV_ID, task={**REACH, "env_name": "pick-place-v3"}).unwrapped
    observation, _ = env.reset(seed=0)
    world, rng, answers, turns = env.world(), np.random.default_rng(0), [], set()
    assert world.touching_object.__func__ is touching_object  # ours answers, theirs checks
    assert world._get_quat_objects.__globals__["Rotation"] is QuickRotation
    for _ in range(300):  # Meta-World's scripted policy with noise: grips, slips and lets go
        action = np.clip(policy.get_action(observation) + rng.normal(0, 0.3, 4), -1, 1)
        observation, *_ = env.step(action)
        theirs = type(world).touching_object(world, world._get_id_main_object())
        assert world.touching_object(world._get_id_main_object()) == theirs
        answers.append(theirs)
        scipy_quat = Rotation.from_matrix(world.data.geom("objGeom").xmat.reshape(3, 3)).as_quat()
        assert np.array_equal(world._get_quat_objects(), scipy_quat)
        turns.add(tuple(scipy_quat.round(3)))
    assert 0 < sum(answers) < len(answers) and len(turns) > 10  # the object turns


def test_quick_rotation_gives_scipys_quaternion_bit_for_bit():
    rng = np.random.default_rng(0)
    matrices = Rotation.random(20_000, random_state=0).as_matrix()
    matrices += rng.normal(0, 1e-16, matrices.shape)  # a simulator's rounding
    axes = [np.diag(d) for d in ([1.0, -1, -1], [-1.0, 1, -1], [-1.0, -1, 1], [1.0, 1, 1])]
    for matrix in [*matrices, *axes]:
        ours = QuickRotation.from_matrix(matrix).as_quat()
        assert np.array_equal(ours, Rotation.from_matrix(matrix).as_quat())
    stretched, mirrored = 1.001 * np.eye(3), np.diag([1.0, 1, -1])  # left to SciPy
    assert proper_rotation_quaternion(stretched) is None
    assert np.array_equal(
        QuickRotation.from_matrix(stretched).as_quat(), Rotation.from_matrix(stretched).as_quat()
    )
    assert proper_rotation_quaternion(mirrored) is None
    with pytest.raises(ValueError, match="determinant"):
        QuickRotation.from_matrix(mirrored)


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


def test_ppo_on_meta_world_logs_success_and_resumes_mid_episode_exactly(tiny_config, rows):
    """64-step segments of 150-step episodes: the checkpoint after two iterations falls
    mid-episode, and the resumed run continues those episodes as the straight run did."""
    short = (f"env.id={DYNAMICS_ID}", "env.max_episode_steps=150")
    straight = train(tiny_config("ppo", "straight", *short, "train.total_steps=384"))
    split = train(tiny_config("ppo", "split", *short, "train.total_steps=256"))
    (worker,) = load_checkpoint(split)["sampler"]["workers"]
    assert all(env["layers"][0]["elapsed_steps"] > 0 for env in worker["envs"])  # mid-episode
    assert main(["train", "--resume", str(split), "--set", "train.total_steps=384"]) == 0
    assert rows(split) == rows(straight)
    rates = [row["charts/success_rate"] for row in rows(straight) if "charts/success_rate" in row]
    assert rates and all(0.0 <= rate <= 1.0 for rate in rates)  # logged once episodes end


def test_an_episode_in_progress_is_data_and_continues_exactly(tmp_path):
    env, again = gym.make(DYNAMICS_ID), gym.make(DYNAMICS_ID)
    actions = np.random.default_rng(0).uniform(-1, 1, (30, 4)).astype(np.float32)
    env.reset(seed=0, options={"task": {**REACH, "force_y": 2.0, "mass_scale": 0.5}})
    for action in actions[:10]:
        env.step(action)
    state = capture_env_state(env)
    torch.save(state, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)  # data only: nothing unpickled
    again.reset(seed=1, options={"task": {**REACH, "index": 9}})  # another episode, replaced
    restore_env_state(again, state)
    assert again.unwrapped.task == env.unwrapped.task
    for action in actions[10:]:
        mine, theirs = env.step(action), again.step(action)
        np.testing.assert_array_equal(mine[0], theirs[0])
        assert mine[1:] == theirs[1:]
    bad = {**state, "core": {**state["core"], "steps": 501}}
    with pytest.raises(ConfigError, match="MetaWorld state") as err:
        restore_env_state(again, bad)
    assert "\n" not in str(err.value)


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
    with (run / "success_tasks.csv").open() as f:  # per task: the env's rate is their mean
        per_task = list(csv.DictReader(f))
    assert len(per_task) == 2 * 2 * 2  # methods x steps x tasks
    for r in rows:
        key = (r["method"], r["gradient_steps"])
        mine = [float(t["success"]) for t in per_task if (t["method"], t["gradient_steps"]) == key]
        assert sum(mine) / len(mine) == pytest.approx(float(r["success_rate"]), abs=1e-4)


def test_the_benchmark_study_reports_meta_train_and_meta_test_success(
    tmp_path, monkeypatch, capsys
):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # the configs are named relative to the checkout
    tiny = ["maml.meta_batch_size=2", "maml.episodes_per_task=2", "maml.num_iterations=2",
            "env.max_episode_steps=20", "sampler.workers=1", "sampler.envs_per_worker=4",
            "logging.progress=false"]  # fmt: skip
    out = tmp_path / "study"
    args = ["--benchmarks", "ml1_reach", "--seeds", "0", "1", "--tasks", "3", "--episodes", "2",
            "--out", str(out), *(f"--set={o}" for o in tiny)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["metaworld_benchmark.py", *args])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(root / "experiments" / "metaworld_benchmark.py"), run_name="__main__")
    assert exited.value.code == 0, capsys.readouterr().err
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["seed"]) for r in rows] == [("ml1_reach", "0"), ("ml1_reach", "1")]
    for r in rows:
        assert float(r["iterations"]) == 2 and float(r["env_steps"]) == 2 * 2 * 2 * 2 * 20
        columns = ("train_pre_success", "train_post_success", "test_success_0", "test_success_1",
                   "random_success_1")  # fmt: skip
        assert all(0 <= float(r[column]) <= 100 for column in columns)
    with (out / "ml1_reach" / "intervals.csv").open() as f:
        intervals = list(csv.DictReader(f))
    assert [(i["method"], i["runs"], i["tasks"]) for i in intervals] == [
        ("random init", "2", "3"), ("MAML", "2", "3")]  # fmt: skip


@pytest.mark.parametrize("path", sorted(Path("configs/metaworld").glob("*.yaml")), ids=str)
def test_the_meta_world_configs_validate_and_fit_in_memory(path):
    cfg = load_config(path)
    assert cfg.env.id in (ENV_ID, DYNAMICS_ID) and cfg.env.max_episode_steps == 500
    estimate = batch_estimate(cfg, EnvSpec.from_config(cfg.env))
    assert estimate is not None and 0 < estimate.num_bytes < min(machine_memory(), 4 * 2**30)


def puck_travel(env: gym.Env, task: dict, steps: int = 20) -> tuple[np.ndarray, float]:
    """How far the task's puck moves in ``steps`` steps of a still arm, and in what time."""
    env.reset(seed=0, options={"task": task})
    world = env.unwrapped._current
    start = world.data.body("obj").xpos.copy()
    for _ in range(steps):
        env.step(np.zeros(4, dtype=np.float32))
    return world.data.body("obj").xpos - start, world.dt * steps


def test_a_constant_push_moves_the_object_as_a_force_of_that_size_should():
    env = gym.make(DYNAMICS_ID)
    mass = env.unwrapped._envs["reach-v3"].model.body("obj").mass[0]  # 0.75 kg
    slippery = {**REACH, "friction_scale": 1e-3}
    travel, seconds = puck_travel(env, {**slippery, "force_x": 3.0})
    assert travel[0] == pytest.approx(0.5 * 3.0 / mass * seconds**2, rel=0.05)  # x = F t^2 / 2m
    assert abs(travel[1]) < 1e-3
    heavy, _ = puck_travel(env, {**slippery, "force_x": 3.0, "mass_scale": 2.0})
    assert heavy[0] == pytest.approx(travel[0] / 2, rel=0.05)
    held, _ = puck_travel(env, {**REACH, "force_x": 3.0})  # friction 1.0 holds 7.4 N back
    assert np.abs(held).max() < 1e-3
    still, _ = puck_travel(env, slippery)
    assert np.abs(still[:2]).max() < 1e-3


def test_dynamics_round_trip_through_the_task_and_never_compound():
    env = gym.make(DYNAMICS_ID)
    model = env.unwrapped._envs["reach-v3"].model
    nominal = (model.body_mass.copy(), model.geom_friction.copy())
    robot = model.body("hand").id
    env.reset(seed=0, options={"task": {**REACH, "mass_scale": 2.0, "friction_scale": 0.5,
                                        "force_y": -1.5}})  # fmt: skip
    assert env.unwrapped.task == {**REACH, "mass_scale": 2.0, "friction_scale": 0.5,
                                  "damping_scale": 1.0, "force_y": -1.5}  # fmt: skip
    obj, table = model.body("obj").id, model.body("tablelink").id
    assert (
        model.body_mass[obj] == 2 * nominal[0][obj] and model.body_mass[robot] == nominal[0][robot]
    )
    table_geoms = model.geom_bodyid == table
    np.testing.assert_array_equal(
        model.geom_friction[table_geoms, 0], 0.5 * nominal[1][table_geoms, 0]
    )
    np.testing.assert_array_equal(env.unwrapped._current.data.xfrc_applied[obj, :3], [0, -1.5, 0])
    env.reset(seed=0, options={"task": {**REACH, "mass_scale": 2.0}})
    env.reset(seed=0, options={"task": REACH})  # back to nominal, to the bit
    np.testing.assert_array_equal(model.body_mass, nominal[0])
    np.testing.assert_array_equal(model.geom_friction, nominal[1])
    assert not env.unwrapped._current.data.xfrc_applied.any()
    with pytest.raises(ConfigError, match="mass_scale") as err:
        env.reset(seed=0, options={"task": {**REACH, "mass_scale": -1.0}})
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown task key 'mass_scale'"):
        gym.make(ENV_ID).reset(seed=0, options={"task": {**REACH, "mass_scale": 2.0}})


def test_every_ml10_env_has_an_object_to_weigh_and_push():
    """The dynamics keys find the task's object in each env: outside the robot and the table,
    its pushed body on a joint (the puck, a door's leaf, a drawer)."""
    ml10 = benchmark("ML10", "", 0)
    for name, cls in {**ml10.train_classes, **ml10.test_classes}.items():
        model = cls().model
        parts = object_parts(model)
        robot = model.body_rootid[model.body("hand").id]
        assert (
            len(parts["bodies"]) and not np.isin(model.body_rootid[parts["bodies"]], robot).any()
        ), name
        assert model.body_jntnum[parts["pushed_body"]] > 0, name
        assert np.isin(model.geom_bodyid[parts["geoms"]], model.body("tablelink").id).any(), name


def test_the_dynamics_grid_plays_the_test_split_on_every_cell(tiny_config, capsys):
    run = train(tiny_config("maml_metaworld", "run", "maml.num_iterations=1",
                            "env.max_episode_steps=10"))  # fmt: skip
    args = ["evaluate", str(run), "--dynamics-grid", "--tasks", "2", "--episodes", "1",
            "--steps", "1", "--mass", "0.5", "2", "2", "--friction", "1", "1", "1",
            "--force-x", "0", "5"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    with (run / "dynamics_grid.csv").open() as f:
        cells = list(csv.DictReader(f))
    cells_named = {(r["mass_scale"], r["force_x"], r["gradient_steps"], r["tasks"]) for r in cells}
    assert cells_named == {(m, x, k, "2") for m in ("0.5", "2.0") for x in ("0.0", "5.0")
                           for k in ("0", "1")}  # fmt: skip
    # success beside the return, a share of the 2 tasks x 1 episode, over the whole grid too
    assert all(float(r["success_rate"]) in (0.0, 0.5, 1.0) for r in cells)
    with (run / "dynamics_grid_summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    adapted = [float(r["success_rate"]) for r in cells if r["gradient_steps"] == "1"]
    mean = sum(adapted) / len(adapted)
    overall = next(r for r in summary if r["region"] == "all" and r["gradient_steps"] == "1")
    assert float(overall["success_rate"]) == pytest.approx(mean)


def test_worker_processes_sample_what_the_local_sampler_does():
    """Tasks cross to worker processes as data (no Meta-World bytes) and, with their dynamics,
    give the same episodes to the bit."""
    spec = EnvSpec(DYNAMICS_ID, max_episode_steps=15)
    torch.manual_seed(0)
    policy = GaussianPolicy(*env_dims(spec), hidden_sizes=(32, 32))
    acting = Acting.single(PolicyState.of(policy.init_params(), policy))
    tasks = [{**REACH, "mass_scale": 2.0, "force_x": 1.0}, {**REACH, "index": 5}]
    batches = []
    for backend in (LocalSampler, SubprocessSampler):
        with backend(spec, policy, seed=3, envs_per_worker=2, num_workers=2) as sampler:
            batches.append(sampler.sample_episodes(acting, tasks, 2, seed=4))
    for name in ("obs", "actions", "rewards", "episode_returns", "episode_successes"):
        torch.testing.assert_close(getattr(batches[0], name), getattr(batches[1], name),
                                   rtol=0, atol=0, msg=name)  # fmt: skip
