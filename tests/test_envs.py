"""Task envs, the vectorized navigation env, dynamics tasks and task distributions."""

from __future__ import annotations

import importlib
import json
import math
import pickle
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from conftest import rollout, step_in_lockstep
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import metarobust.envs as envs
from metarobust.envs import (
    ADVERSARIAL_TASK_ENV_IDS,
    ENV_IDS,
    DiskGoal,
    DynamicsScales,
    DynamicsTask,
    Navigation2DVectorEnv,
    RandomDirection,
    UniformGoal,
    UniformVelocity,
    default_task_distribution,
    make_dynamics_env,
)
from metarobust.envs.dynamics import PUSHED_BODY
from metarobust.envs.tasks import DYNAMICS_KEYS
from metarobust.errors import ConfigError

# check_env's advice that is about Gymnasium's own v5 spaces or about checking a wrapper.
ADVISORY = (
    "observation space maximum value is infinity",
    "observation space minimum value is -infinity",
    "we recommend using a symmetric and normalized space",
    "is different from the unwrapped version",
)


def task_env(env: gym.Env) -> gym.Env:
    """The layer of a made env that owns its task: a DynamicsTask wrapper or the bare env."""
    while not isinstance(env, DynamicsTask) and env is not env.unwrapped:
        env = env.env
    return env


def random_actions(env: gym.Env, n: int, seed: int = 1) -> np.ndarray:
    space = env.action_space
    rng = np.random.default_rng(seed)
    return rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(np.float32)


# --------------------------------------------------------------------------- every id


def test_expected_ids_are_registered():
    assert len(ENV_IDS) == 19  # Navigation2D(Cliff, Obstacles), 5 locomotion tasks, 6+5 Dynamics
    for env_id in ENV_IDS:
        assert env_id in gym.registry
    assert gym.spec("metarobust/Navigation2D-v0").max_episode_steps == 100
    assert gym.spec("metarobust/AntGoal-v0").max_episode_steps == 200
    assert gym.spec("metarobust/HopperDynamics-v0").max_episode_steps == 1000


def test_registering_again_is_harmless():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        envs.register_envs()
        importlib.reload(envs)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_passes_and_task_survives(env_id):
    env = gym.make(env_id)
    target = task_env(env)
    task = default_task_distribution(env_id).sample(1, np.random.default_rng(0))[0]
    target.reset(options={"task": task})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(target, skip_render_check=True)
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in ADVISORY)]
    assert not unexpected
    # check_env resets many times without a task: the task must stay (a task env's Dynamics
    # variant adds the nominal scales the task leaves out).
    assert {k: target.task[k] for k in task} == task
    assert set(target.task) - set(task) <= ({*DYNAMICS_KEYS} if "Dynamics" in env_id else set())
    env.close()


@pytest.mark.parametrize("env_id", [*ENV_IDS, *ADVERSARIAL_TASK_ENV_IDS])
def test_sb3_env_checker_passes(env_id):
    """Stable-Baselines3's checker (its own rules beside Gymnasium's), on a task of the env's
    distribution; only its advice on action spaces other than [-1, 1] is allowed."""
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(env_id)
    task = default_task_distribution(env_id).sample(1, np.random.default_rng(0))[0]
    env.reset(options={"task": task})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env, warn=True, skip_render_check=True)
    advice = "symmetric and normalized Box action space"
    unexpected = [str(w.message) for w in caught if advice not in str(w.message)]
    assert not unexpected
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_task_api(env_id):
    tasks = default_task_distribution(env_id).sample(2, np.random.default_rng(3))
    env = gym.make(env_id, task=tasks[0])
    target = task_env(env)
    assert {**target.task, **tasks[0]} == target.task  # made with the task
    target.set_task(tasks[1])
    assert {**target.task, **tasks[1]} == target.task
    env.reset(seed=0)
    assert {**target.task, **tasks[1]} == target.task  # reset without a task keeps it
    env.reset(options={"task": tasks[0]})
    assert {**target.task, **tasks[0]} == target.task
    returned = target.task
    returned.clear()  # a copy: mutating it changes nothing
    assert target.task
    json.dumps(target.task)
    env.close()


BAD_TASKS = {
    "metarobust/Navigation2D-v0": [
        ({}, "goal"),
        ({"goal": [0.1]}, "goal"),
        ({"goal": [0.1, 0.2, 0.3]}, "goal"),
        ({"goal": "up"}, "goal"),
        ({"goal": [0.1, float("nan")]}, "goal"),
        ({"goal": [0.1, 0.2], "speed": 1}, "speed"),
        ([0.1, 0.2], "goal"),
    ],
    "metarobust/HalfCheetahVel-v0": [
        ({"direction": 1}, "direction"),
        ({"velocity": "fast"}, "velocity"),
        ({"velocity": True}, "velocity"),
        ({"velocity": [1.0]}, "velocity"),
        ({"velocity": float("inf")}, "velocity"),
    ],
    "metarobust/HalfCheetahDir-v0": [({"direction": 0}, "direction"), ({}, "direction")],
    "metarobust/AntDir-v0": [({"direction": 2}, "direction"), ({"velocity": 1.0}, "velocity")],
    "metarobust/AntVel-v0": [({"velocity": None}, "velocity")],
    "metarobust/AntGoal-v0": [({"goal": [[1.0, 2.0]]}, "goal"), ({"goal": 3.0}, "goal")],
    "metarobust/HopperDynamics-v0": [
        ({"mass_scale": 0.0}, "mass_scale"),
        ({"friction_scale": -1.0}, "friction_scale"),
        ({"damping": 2.0}, "damping"),
        ({"mass_scale": "heavy"}, "mass_scale"),
    ],
}


@pytest.mark.parametrize(
    ("env_id", "bad", "key"),
    [(env_id, bad, key) for env_id, cases in BAD_TASKS.items() for bad, key in cases],
)
def test_bad_task_raises_config_error(env_id, bad, key):
    env = gym.make(env_id)
    target = task_env(env)
    before = target.task
    for apply in (target.set_task, lambda t: env.reset(options={"task": t})):
        with pytest.raises(ConfigError) as excinfo:
            apply(bad)
        message = str(excinfo.value)
        assert key in message and "\n" not in message
    assert target.task == before  # a rejected task changes nothing
    with pytest.raises(ConfigError):
        gym.make(env_id, task=bad)


def test_pickled_envs_keep_their_task():
    env = gym.make("metarobust/HalfCheetahVel-v0", task={"velocity": 0.3}).unwrapped
    env.set_task({"velocity": 1.7})
    assert pickle.loads(pickle.dumps(env)).task == {"velocity": 1.7}
    wrapped = make_dynamics_env("Hopper-v5", task={"mass_scale": 1.5})
    copy = pickle.loads(pickle.dumps(wrapped))
    assert copy.task["mass_scale"] == 1.5
    np.testing.assert_array_equal(copy.unwrapped.model.body_mass, wrapped.unwrapped.model.body_mass)


# --------------------------------------------------------------------------- locomotion


def test_velocity_tasks_change_reward_not_dynamics():
    env = gym.make("metarobust/HalfCheetahVel-v0")
    actions = random_actions(env, 30)
    obs_slow, rew_slow, infos = rollout(env, actions, options={"task": {"velocity": 0.0}})
    obs_fast, rew_fast, _ = rollout(env, actions, options={"task": {"velocity": 2.0}})
    np.testing.assert_array_equal(obs_slow, obs_fast)
    assert not np.allclose(rew_slow, rew_fast)
    for action, reward, info in zip(actions, rew_fast, infos, strict=True):
        ctrl = 0.05 * float(np.sum(np.square(action.astype(np.float64))))
        assert reward == pytest.approx(-abs(info["x_velocity"] - 2.0) - ctrl)
        assert info["reward_ctrl"] == pytest.approx(-ctrl)


def test_direction_flips_the_forward_term():
    env = gym.make("metarobust/HalfCheetahDir-v0")
    actions = random_actions(env, 20)
    _, rew_fwd, infos = rollout(env, actions, options={"task": {"direction": 1}})
    _, rew_bwd, _ = rollout(env, actions, options={"task": {"direction": -1}})
    velocity = np.array([i["x_velocity"] for i in infos])
    ctrl = np.array([-i["reward_ctrl"] for i in infos])
    np.testing.assert_allclose(rew_fwd, velocity - ctrl)
    np.testing.assert_allclose(rew_bwd, -velocity - ctrl)


@pytest.mark.parametrize(
    ("env_id", "task"),
    [
        ("metarobust/AntDir-v0", {"direction": -1}),
        ("metarobust/AntVel-v0", {"velocity": 2.5}),
        ("metarobust/AntGoal-v0", {"goal": [1.0, -2.0]}),
    ],
)
def test_ant_rewards(env_id, task):
    env = gym.make(env_id)
    _, rewards, infos = rollout(env, random_actions(env, 15), options={"task": task})
    for reward, info in zip(rewards, infos, strict=True):
        if "direction" in task:
            term = -info["x_velocity"]
        elif "velocity" in task:
            term = -abs(info["x_velocity"] - 2.5)
        else:
            term = -(abs(info["x_position"] - 1.0) + abs(info["y_position"] + 2.0))
        key = "reward_goal" if "goal" in task else "reward_forward"
        assert info[key] == pytest.approx(term)
        costs = info["reward_ctrl"] + info["reward_contact"]
        assert reward == pytest.approx(term + info["reward_survive"] + costs)
        assert info["reward_survive"] in (0.0, 1.0) and info["reward_ctrl"] < 0


@pytest.mark.parametrize(
    ("env_id", "v5_id"),
    [("metarobust/HalfCheetahVel-v0", "HalfCheetah-v5"), ("metarobust/AntGoal-v0", "Ant-v5")],
)
def test_observations_are_exactly_v5(env_id, v5_id):
    ours, theirs = gym.make(env_id), gym.make(v5_id)
    actions = random_actions(ours, 60)
    obs_ours, _, infos_ours = rollout(ours, actions, seed=4)
    obs_v5, _, infos_v5 = rollout(theirs, actions, seed=4)
    np.testing.assert_array_equal(obs_ours, obs_v5)
    assert [i["x_velocity"] for i in infos_ours] == [i["x_velocity"] for i in infos_v5]


# --------------------------------------------------------------------------- dynamics


def test_dynamics_at_scale_one_equals_the_plain_env():
    plain = gym.make("Hopper-v5")
    scaled = gym.make("metarobust/HopperDynamics-v0")
    actions = random_actions(plain, 80)
    reference = rollout(plain, actions)
    # Visit another task first: going back to 1.0 must restore the model to the bit.
    task_env(scaled).set_task({"mass_scale": 1.7, "friction_scale": 0.3, "damping_scale": 2.0})
    for task in ({}, {"mass_scale": 1.0, "friction_scale": 1.0, "damping_scale": 1.0}):
        obs, rewards, _ = rollout(scaled, actions, options={"task": task})
        np.testing.assert_array_equal(obs, reference[0])
        np.testing.assert_array_equal(rewards, reference[1])


@pytest.mark.parametrize("key", ["mass_scale", "friction_scale", "damping_scale"])
def test_each_scale_changes_the_trajectory(key):
    env = gym.make("metarobust/HalfCheetahDynamics-v0")
    actions = random_actions(env, 60)
    nominal, _, _ = rollout(env, actions, options={"task": {}})
    changed, _, _ = rollout(env, actions, options={"task": {key: 1.5}})
    assert not np.allclose(nominal, changed)


def test_scales_are_relative_to_nominal_and_persist_across_reset():
    env = gym.make("metarobust/Walker2dDynamics-v0")
    model = env.unwrapped.model
    mass, friction = model.body_mass.copy(), model.geom_friction.copy()
    damping = model.dof_damping.copy()
    task_a = {"mass_scale": 0.6, "friction_scale": 1.4, "damping_scale": 0.8}
    task_b = {"mass_scale": 1.3}
    actions = random_actions(env, 60)
    first, _, _ = rollout(env, actions, options={"task": task_a})
    rollout(env, actions, options={"task": task_b})
    rollout(env, actions, options={"task": task_b})  # applying twice must not compound
    np.testing.assert_array_equal(model.body_mass, mass * 1.3)
    np.testing.assert_array_equal(model.geom_friction, friction)
    again, _, _ = rollout(env, actions, options={"task": task_a})
    np.testing.assert_array_equal(first, again)
    env.reset(seed=5)  # no task: the scales stay
    np.testing.assert_array_equal(model.body_mass, mass * 0.6)
    np.testing.assert_array_equal(model.geom_friction[:, 0], friction[:, 0] * 1.4)
    np.testing.assert_array_equal(model.geom_friction[:, 1:], friction[:, 1:])
    np.testing.assert_array_equal(model.dof_damping, damping * 0.8)


def test_make_dynamics_env_for_any_mujoco_id():
    env = make_dynamics_env("InvertedDoublePendulum-v5", task={"mass_scale": 2.0})
    assert env.task == {"mass_scale": 2.0, "friction_scale": 1.0, "damping_scale": 1.0}
    env.reset(seed=0)
    env.step(env.action_space.sample())
    with pytest.raises(ConfigError, match="CartPole"):
        make_dynamics_env("CartPole-v1")
    with pytest.raises(ConfigError, match="NoSuchEnv"):
        make_dynamics_env("NoSuchEnv-v0")


def test_dynamics_wrapper_composes_with_a_task_env():
    env = make_dynamics_env("metarobust/HalfCheetahVel-v0")
    env.reset(options={"task": {"velocity": 2.0, "mass_scale": 0.5}})
    assert env.task == {
        "velocity": 2.0,
        "mass_scale": 0.5,
        "friction_scale": 1.0,
        "damping_scale": 1.0,
    }
    with pytest.raises(ConfigError, match="velocity"):
        env.set_task({"velocity": "fast"})


def _x_momentum(env: gym.Env) -> float:
    """The x momentum of everything below the pushed body (the cart and its pole)."""
    model, data = env.unwrapped.model, env.unwrapped.data
    mujoco.mj_subtreeVel(model, data)
    return float(model.body_subtreemass[PUSHED_BODY] * data.subtree_linvel[PUSHED_BODY, 0])


def test_a_constant_force_changes_momentum_by_force_times_time_every_episode():
    """On the pendulum's frictionless rail (joint damping scaled away) the only horizontal
    force on cart and pole is the task's: their x momentum grows by F t, in every episode (a
    reset clears MuJoCo's applied forces; the task sets it again)."""
    task = {"force_x": 2.0, "damping_scale": 1e-9}
    env = gym.make("metarobust/InvertedPendulumDynamics-v0", task=task)
    still = gym.make("metarobust/InvertedPendulumDynamics-v0", task={"damping_scale": 1e-9})
    for seed in (0, 1):
        gains = []
        for e in (env, still):
            e.reset(seed=seed)
            before = _x_momentum(e)
            for _ in range(5):
                e.step(np.zeros(1))
            gains.append(_x_momentum(e) - before)
        assert gains[0] - gains[1] == pytest.approx(2.0 * 5 * env.unwrapped.dt, rel=1e-4)
    assert task_env(env).task == {"mass_scale": 1.0, "friction_scale": 1.0, **task}


def test_a_force_round_trips_through_the_task_and_a_saved_state():
    env = make_dynamics_env("metarobust/HalfCheetahVel-v0")
    task = {"velocity": 1.0, "mass_scale": 0.8, "force_x": -30.0, "force_z": 5.0}
    env.reset(seed=0, options={"task": task})
    assert env.task == {**task, "friction_scale": 1.0, "damping_scale": 1.0}
    np.testing.assert_array_equal(
        env.unwrapped.data.xfrc_applied[PUSHED_BODY], [-30, 0, 5, 0, 0, 0]
    )
    env.set_task({"velocity": 1.0})  # a task without a force: none
    assert "force_x" not in env.task
    np.testing.assert_array_equal(env.unwrapped.data.xfrc_applied, 0.0)
    with pytest.raises(ConfigError, match="task key 'force_x' expected a finite number"):
        env.set_task({"force_x": float("nan")})


# --------------------------------------------------------------------------- navigation


def test_navigation_single_env():
    env = gym.make("metarobust/Navigation2D-v0", task={"goal": [0.3, -0.4]})
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    assert obs.dtype == np.float32
    obs, reward, terminated, truncated, _ = env.step(np.array([5.0, -5.0]))  # clipped to 0.1
    np.testing.assert_array_equal(obs, np.float32([0.1, -0.1]))
    assert reward == pytest.approx(-math.sqrt(0.2**2 + 0.3**2), abs=1e-6)
    assert not terminated and not truncated
    steps = 1
    while not (terminated or truncated):
        obs, reward, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
        steps += 1
    assert truncated and not terminated and steps == 100


def test_navigation_terminates_within_radius():
    env = gym.make("metarobust/Navigation2D-v0", task={"goal": [0.05, 0.0]})
    env.reset()
    _, reward, terminated, _, _ = env.step(np.array([0.045, 0.0], np.float32))
    assert terminated and -reward < 0.01
    env.reset(options={"task": {"goal": [0.05, 0.05]}})
    # 0.008 off on both axes: each axis within 0.01, but 0.0113 away.
    _, reward, terminated, _, _ = env.step(np.array([0.042, 0.042], np.float32))
    assert not terminated and -reward > 0.01


def _vector_tasks(n: int) -> list[dict]:
    goals = UniformGoal(-0.5, 0.5).sample(n, np.random.default_rng(7))
    goals[0] = {"goal": [0.05, 0.0]}  # reached in a handful of steps
    return goals


def _vector_actions(obs: np.ndarray, goals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Half the envs head for their goal (so they terminate), the rest wander (and truncate).
    toward = np.clip(goals - obs, -0.1, 0.1)
    wander = rng.uniform(-0.15, 0.15, size=obs.shape)
    half = np.arange(len(obs)) % 2 == 0
    return np.where(half[:, None], toward, wander).astype(np.float32)


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_navigation_vector_env_matches_single_envs(mode):
    n = 8
    tasks = _vector_tasks(n)
    goals = np.array([t["goal"] for t in tasks])
    vec = gym.make_vec("metarobust/Navigation2D-v0", num_envs=n, autoreset_mode=mode)
    ref = gym.make_vec(
        "metarobust/Navigation2D-v0",
        num_envs=n,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode},
    )
    assert isinstance(vec.unwrapped, Navigation2DVectorEnv)
    assert vec.metadata["autoreset_mode"] is mode
    vec.unwrapped.set_tasks(tasks)
    for i, task in enumerate(tasks):
        ref.envs[i].unwrapped.set_task(task)
    assert vec.unwrapped.tasks == tasks

    rng = np.random.default_rng(0)

    def same_info_keys(info: dict, ref_info: dict, rewards: np.ndarray) -> None:
        assert info.keys() == ref_info.keys()

    seen_terminated, seen_truncated = step_in_lockstep(
        vec,
        ref,
        lambda obs: _vector_actions(obs, goals, rng),
        steps=230,
        reset_by_mask=mode is AutoresetMode.DISABLED,
        check=same_info_keys,
    )
    assert seen_terminated >= 4 and seen_truncated >= n // 2 * 2  # both kinds of ending


def test_navigation_vector_env_from_make_vec_defaults():
    vec = gym.make_vec("metarobust/Navigation2D-v0", num_envs=3)
    env = vec.unwrapped
    assert isinstance(env, Navigation2DVectorEnv)
    assert env.autoreset_mode is AutoresetMode.NEXT_STEP and env.max_episode_steps == 100
    assert vec.observation_space.shape == (3, 2) and vec.action_space.shape == (3, 2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((3, 2), np.float32))


def test_navigation_vector_reset_mask_and_task():
    env = Navigation2DVectorEnv(num_envs=4, task={"goal": [0.2, 0.2]})
    env.reset(seed=[1, 2, 3, 4])
    obs, *_ = env.step(np.full((4, 2), 0.05, np.float32))
    mask = np.array([True, False, True, False])
    obs, _ = env.reset(options={"reset_mask": mask, "task": {"goal": [-0.3, 0.1]}})
    np.testing.assert_array_equal(obs[mask], 0.0)
    np.testing.assert_array_equal(obs[~mask], np.float32(0.05))
    goals = [t["goal"] for t in env.tasks]
    assert goals == [[-0.3, 0.1], [0.2, 0.2], [-0.3, 0.1], [0.2, 0.2]]
    env.reset(options={"task": {"goal": [0.0, 0.4]}})  # no mask: every env
    assert all(t == {"goal": [0.0, 0.4]} for t in env.tasks)
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": [True, False, True, False]})
    with pytest.raises(ValueError, match="seeds"):
        env.reset(seed=[1, 2])
    with pytest.raises(ConfigError, match="goal"):
        env.reset(options={"task": {"goal": [1.0]}})


def test_navigation_vector_disabled_refuses_finished_envs():
    env = Navigation2DVectorEnv(num_envs=2, max_episode_steps=3, autoreset_mode="Disabled")
    env.reset()
    for _ in range(3):
        *_, truncated, _ = env.step(np.zeros((2, 2), np.float32))
    assert truncated.all()
    with pytest.raises(RuntimeError, match="reset_mask"):
        env.step(np.zeros((2, 2), np.float32))
    env.reset(options={"reset_mask": np.array([True, True])})
    env.step(np.zeros((2, 2), np.float32))


def test_navigation_vector_env_scales_to_thousands():
    n = 5000
    env = Navigation2DVectorEnv(num_envs=n, autoreset_mode=AutoresetMode.SAME_STEP)
    env.set_tasks(UniformGoal().sample(n, np.random.default_rng(0)))
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(100):
        obs, rew, term, trunc, info = env.step(rng.uniform(-0.1, 0.1, (n, 2)))
    assert obs.shape == (n, 2) and rew.shape == (n,) and trunc.sum() > n // 2
    np.testing.assert_array_equal(info["_final_obs"], term | trunc)
    np.testing.assert_array_equal(obs[trunc], 0.0)  # SAME_STEP: already reset


# --------------------------------------------------------------------------- distributions

DISTRIBUTIONS = [
    UniformGoal(-0.5, 0.5),
    DiskGoal(3.0),
    UniformVelocity(0.0, 3.0),
    RandomDirection(),
    DynamicsScales(),
    DynamicsScales(mass_scale=(0.8, 1.2), friction_scale=None, damping_scale=None),
]


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
def test_distributions_are_seeded_and_plain(dist):
    a = dist.sample(50, np.random.default_rng(11))
    b = dist.sample(50, np.random.default_rng(11))
    c = dist.sample(50, np.random.default_rng(12))
    assert a == b and a != c
    assert json.loads(json.dumps(a)) == a
    assert dist.sample(0, np.random.default_rng(0)) == []
    for task in a:
        for value in task.values():
            assert type(value) in (float, int, list)


def test_distribution_ranges():
    rng = np.random.default_rng(0)
    goals = np.array([t["goal"] for t in UniformGoal(-0.5, 0.5).sample(2000, rng)])
    assert goals.min() >= -0.5 and goals.max() <= 0.5 and goals.min() < -0.45
    velocities = [t["velocity"] for t in UniformVelocity(0.0, 2.0).sample(2000, rng)]
    assert 0.0 <= min(velocities) < 0.05 and 1.95 < max(velocities) <= 2.0
    directions = [t["direction"] for t in RandomDirection().sample(2000, rng)]
    assert set(directions) == {-1, 1} and 900 < directions.count(1) < 1100
    disk = np.array([t["goal"] for t in DiskGoal(3.0).sample(8000, rng)])
    radius = np.linalg.norm(disk, axis=1)
    assert radius.max() <= 3.0
    # Uniform over the area: a quarter of the goals lie within half the radius.
    assert abs(np.mean(radius < 1.5) - 0.25) < 0.02
    scales = DynamicsScales(mass_scale=(0.5, 0.7), friction_scale=(1.0, 2.0), damping_scale=None)
    for task in scales.sample(500, rng):
        assert set(task) == {"mass_scale", "friction_scale"}
        assert 0.5 <= task["mass_scale"] <= 0.7 and 1.0 <= task["friction_scale"] <= 2.0


def test_default_distributions():
    assert isinstance(default_task_distribution("metarobust/HalfCheetahVel-v0"), UniformVelocity)
    assert default_task_distribution("metarobust/AntVel-v0").high == 3.0
    assert default_task_distribution("metarobust/AntGoal-v0").radius == 3.0
    with pytest.raises(ConfigError, match="CartPole-v1"):
        default_task_distribution("CartPole-v1")


@pytest.mark.parametrize(
    "build",
    [
        lambda: UniformGoal(1.0, -1.0),
        lambda: UniformVelocity(0.0, float("nan")),
        lambda: DiskGoal(-1.0),
        lambda: DynamicsScales(mass_scale=(0.0, 1.0)),
        lambda: DynamicsScales(friction_scale=(1.0,)),
        lambda: RandomDirection().sample(-1, np.random.default_rng(0)),
        lambda: UniformGoal().sample(2.5, np.random.default_rng(0)),
    ],
)
def test_bad_distribution_arguments(build):
    with pytest.raises(ConfigError):
        build()


def test_navigation_state_round_trip():
    """A navigation env restored from ``get_state`` continues exactly (single and vector)."""
    from metarobust.envs.navigation import Navigation2DEnv, Navigation2DVectorEnv
    from metarobust.sampling.env_state import capture_env_state, restore_env_state

    env = gym.make("metarobust/Navigation2D-v0")
    env.reset(seed=0, options={"task": {"goal": [0.3, -0.2]}})
    for _ in range(7):
        env.step(np.array([0.05, -0.02], dtype=np.float32))
    clone = gym.make("metarobust/Navigation2D-v0")
    clone.reset(seed=5)
    restore_env_state(clone, capture_env_state(env))
    for _ in range(100):
        a, b = env.step(np.array([0.01, 0.0])), clone.step(np.array([0.01, 0.0]))
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
        if a[2] or a[3]:
            break
    assert isinstance(env.unwrapped, Navigation2DEnv)

    vec = Navigation2DVectorEnv(3, autoreset_mode="Disabled")
    vec.reset(seed=1, options={"task": {"goal": [0.1, 0.1]}})
    vec.step(np.full((3, 2), 0.02, dtype=np.float32))
    copy = Navigation2DVectorEnv(3, autoreset_mode="Disabled")
    copy.reset(seed=9)
    copy.set_state(vec.get_state())
    actions = np.full((3, 2), -0.03, dtype=np.float32)
    for x, y in zip(vec.step(actions)[:4], copy.step(actions)[:4], strict=True):
        assert np.array_equal(x, y)


def test_mujoco_warnings_become_python_warnings(tmp_path, monkeypatch):
    import mujoco

    monkeypatch.chdir(tmp_path)
    gym.make("metarobust/HalfCheetahVel-v0").close()  # its XML's known deprecation: dropped
    with pytest.warns(RuntimeWarning, match="MuJoCo: .*nan"):
        mujoco.get_mju_user_warning()("simulation is unstable: nan in qacc")
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def _checkpoint_round_trip(state):
    """``state`` as a resumed run reads it: torch.save, then torch.load(weights_only=True)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _leaves(tree):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _leaves(value)
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            yield from _leaves(value)
    else:
        yield tree


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Ant-v5", "metarobust/AntVel-v0"])
def test_mujoco_state_is_data_and_resumes_exactly(env_id):
    """A MuJoCo env captured mid-episode is plain numbers and tensors (no bytes to unpickle),
    and a clone restored from it steps to the same obs, rewards and infos bit for bit."""
    import torch

    from metarobust.sampling.env_state import capture_env_state, restore_env_state

    env = gym.make(env_id, disable_env_checker=True)
    env.reset(seed=3)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(60, *env.action_space.shape))
    for action in actions[:25]:
        env.step(action)
    state = capture_env_state(env)
    for leaf in _leaves(state):
        assert isinstance(leaf, (torch.Tensor, bool, int, float, str, type(None))), type(leaf)

    clone = gym.make(env_id, disable_env_checker=True)
    clone.reset(seed=11)
    for action in actions[:4]:  # another history, all of it to be overwritten
        clone.step(action)
    restore_env_state(clone, _checkpoint_round_trip(state))
    for action in actions[25:]:
        want, got = env.step(action), clone.step(action)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1:4] == want[1:4]
        assert got[4].keys() == want[4].keys()
        for key, value in want[4].items():
            np.testing.assert_array_equal(got[4][key], value)
    # the restored np_random draws the next reset's noise as the original's does
    np.testing.assert_array_equal(clone.reset()[0], env.reset()[0])


def test_restore_never_unpickles(tmp_path):
    """A state carrying a pickle payload (a checkpoint crafted to run code on resume) is
    refused with a ConfigError, and the payload never runs."""
    from pathlib import Path

    from metarobust.sampling.env_state import capture_env_state, restore_env_state

    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    env = gym.make("HalfCheetah-v5", disable_env_checker=True)
    env.reset(seed=0)
    state = capture_env_state(env)
    qpos = env.unwrapped.data.qpos.copy()
    for crafted in (
        {**state, "mujoco": pickle.dumps(Payload())},
        {**state, "mujoco": {"integration": pickle.dumps(Payload()), "fields": {}}},
        {"layers": state["layers"], "core": pickle.dumps(Payload())},
    ):
        with pytest.raises(ConfigError, match="saved env state: "):
            restore_env_state(env, _checkpoint_round_trip(crafted))
    assert not marker.exists()
    np.testing.assert_array_equal(env.unwrapped.data.qpos, qpos)  # left as it was


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s["mujoco"]["fields"].update(qpos=s["mujoco"]["fields"]["qpos"][:-1]),
            r"mujoco.fields.qpos: expected a torch.float64 tensor of shape \[9\], got "
            r"torch.float64 of shape \[8\]",
        ),
        (
            lambda s: s["mujoco"]["fields"].update(qvel=s["mujoco"]["fields"]["qvel"].float()),
            r"mujoco.fields.qvel: expected a torch.float64 tensor of shape \[9\], got "
            r"torch.float32",
        ),
        (
            lambda s: s["mujoco"]["fields"].update(xpos=s["mujoco"]["fields"]["xpos"].tolist()),
            "mujoco.fields.xpos: expected a dense torch.float64 tensor, got list",
        ),
        (lambda s: s["mujoco"]["fields"].pop("xpos"), "mujoco.fields: missing xpos"),
        (lambda s: s["mujoco"]["fields"].update(model=1), "mujoco.fields: unexpected 'model'"),
        (lambda s: s["layers"].pop(), "layers: expected 3 wrapper layers, got 2"),
        (
            lambda s: s["layers"][0].update(elapsed_steps=True),
            r"layers.0.elapsed_steps: expected an int >= 0, got True",
        ),
        (
            lambda s: s["np_random"].update(bit_generator="seed"),
            r"np_random: expected the state of a NumPy bit generator \(PCG64, PCG64DXSM, "
            r"MT19937, Philox, SFC64\), got bit_generator 'seed'",
        ),
        (
            lambda s: s["np_random"].update(state="x"),
            "np_random: not a valid PCG64 state",
        ),
    ],
)
def test_restore_checks_every_array(edit, message):
    """Shapes, dtypes, keys and the bit generator's name are checked before anything is
    written: a mismatch is one line naming the key, and the env is left as it was."""
    from metarobust.sampling.env_state import capture_env_state, restore_env_state

    env = gym.make("HalfCheetah-v5", disable_env_checker=True)  # TimeLimit, OrderEnforcing
    env.reset(seed=0)
    state = capture_env_state(env)
    edit(state)
    other = gym.make("HalfCheetah-v5", disable_env_checker=True)
    other.reset(seed=1)
    qpos = other.unwrapped.data.qpos.copy()
    with pytest.raises(ConfigError, match="saved env state: " + message) as err:
        restore_env_state(other, state)
    assert "\n" not in str(err.value)
    np.testing.assert_array_equal(other.unwrapped.data.qpos, qpos)


def test_restore_refuses_another_models_state():
    from metarobust.sampling.env_state import capture_env_state, restore_env_state

    ant = gym.make("Ant-v5", disable_env_checker=True)
    ant.reset(seed=0)
    cheetah = gym.make("HalfCheetah-v5", disable_env_checker=True)
    cheetah.reset(seed=0)
    with pytest.raises(ConfigError, match=r"mujoco.integration: expected .* of shape \[\d+\]"):
        restore_env_state(cheetah, capture_env_state(ant))


def test_importing_the_package_registers_the_ids(tmp_path):
    """A user's own script (SB3, CleanRL) only imports metarobust, then makes the env; the
    import stays light (no torch)."""
    import subprocess
    import sys

    import metarobust

    script = (
        "import sys, gymnasium, metarobust\n"
        "gymnasium.make('metarobust/Navigation2D-v0').reset(seed=0)\n"
        "gymnasium.make('metarobust/HalfCheetahVel-v0').reset(seed=0)\n"
        "print('torch' in sys.modules, metarobust.__version__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", metarobust.__version__]
