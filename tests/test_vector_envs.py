"""The natively vectorized HalfCheetah task envs against the single envs they replace."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import assert_same_step
from gymnasium.vector import AutoresetMode

import metarobust.envs  # noqa: F401  (registers the ids)
from metarobust.envs import HalfCheetahDirVectorEnv, HalfCheetahVelVectorEnv
from metarobust.errors import ConfigError
from metarobust.sampling.env_factory import EnvSpec, make_vector_env

CHEETAH_TASKS = {
    "metarobust/HalfCheetahVel-v0": [{"velocity": v} for v in (0.0, 0.7, 1.3, 2.0)],
    "metarobust/HalfCheetahDir-v0": [{"direction": d} for d in (1, -1, -1, 1)],
}
HORIZON = 15  # short episodes: a few of them in a fast test


def _actions(rng: np.random.Generator, n: int) -> np.ndarray:
    # float32, as a policy gives them, and beyond the ctrl range (MuJoCo clamps, nobody clips).
    return rng.uniform(-1.2, 1.2, size=(n, 6)).astype(np.float32)


def _assert_same_step(got: tuple, want: tuple) -> None:
    obs, rew = got[:2]
    assert obs.dtype == np.float64 and rew.dtype == np.float64
    # Equal to the bit on this machine; the single env's control cost is BLAS's np.dot, so
    # allow for a summation order that differs elsewhere.
    assert_same_step(got, want, reward_atol=1e-12)


@pytest.mark.parametrize("mode", list(AutoresetMode))
@pytest.mark.parametrize("env_id", sorted(CHEETAH_TASKS))
def test_cheetah_vector_env_matches_single_envs(env_id, mode):
    tasks = CHEETAH_TASKS[env_id]
    n = len(tasks)
    vec = gym.make_vec(env_id, n, autoreset_mode=mode, max_episode_steps=HORIZON)
    ref = gym.make_vec(
        env_id,
        n,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode},
        max_episode_steps=HORIZON,
    )
    assert vec.single_observation_space == ref.single_observation_space
    assert vec.single_action_space == ref.single_action_space
    vec.unwrapped.set_tasks(tasks)
    for env, task in zip(ref.envs, tasks, strict=True):
        env.unwrapped.set_task(task)
    assert vec.unwrapped.tasks == tasks

    seeds = [11, 23, 5, 42]
    obs, _ = vec.reset(seed=seeds)
    ref_obs, _ = ref.reset(seed=seeds)
    np.testing.assert_array_equal(obs, ref_obs)
    rng = np.random.default_rng(0)
    for t in range(3 * HORIZON + 2):
        if t == 4:  # stagger env 1's episodes: a masked reset into a new task and seed
            mask = np.array([False, True, False, False])
            options = {"reset_mask": mask, "task": tasks[0]}
            obs, _ = vec.reset(seed=[None, 7, None, None], options=options)
            ref_obs, _ = ref.reset(seed=[None, 7, None, None], options=dict(options))
            np.testing.assert_array_equal(obs, ref_obs)
        actions = _actions(rng, n)
        result = vec.step(actions)
        _assert_same_step(result, ref.step(actions))
        done = result[2] | result[3]
        if mode is AutoresetMode.DISABLED and done.any():
            # Fresh seeds: env i's generator is reseeded exactly as the single env's.
            reset_seeds = [100 + t + i if d else None for i, d in enumerate(done.tolist())]
            obs, _ = vec.reset(seed=reset_seeds, options={"reset_mask": done})
            ref_obs, _ = ref.reset(seed=reset_seeds, options={"reset_mask": done.copy()})
            np.testing.assert_array_equal(obs, ref_obs)
    assert vec.unwrapped.tasks == [tasks[0], tasks[0], *tasks[2:]]


def test_masked_reset_touches_only_masked_envs():
    env = HalfCheetahVelVectorEnv(num_envs=4, task={"velocity": 0.5})
    env.reset(seed=0)
    for _ in range(3):
        before, *_ = env.step(_actions(np.random.default_rng(1), 4))
    physics_before = np.array(env.get_state()["physics"])
    mask = np.array([True, False, True, False])
    obs, _ = env.reset(seed=[9, 9, 9, 9], options={"reset_mask": mask, "task": {"velocity": 2.0}})
    np.testing.assert_array_equal(obs[~mask], before[~mask])
    physics_after = np.array(env.get_state()["physics"])
    np.testing.assert_array_equal(physics_after[~mask], physics_before[~mask])
    np.testing.assert_array_equal(obs[0], obs[2])  # same seed, same initial state
    assert not np.array_equal(obs[0], before[0])
    assert env.tasks == [{"velocity": v} for v in (2.0, 0.5, 2.0, 0.5)]
    assert env.get_state()["steps"] == [0, 3, 0, 3]
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": [True, False, True, False]})
    with pytest.raises(ValueError, match="seeds"):
        env.reset(seed=[1, 2])


def test_disabled_refuses_to_step_finished_envs():
    env = HalfCheetahDirVectorEnv(num_envs=2, max_episode_steps=2, autoreset_mode="Disabled")
    zeros = np.zeros((2, 6), np.float32)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(zeros)
    env.reset(seed=0)
    env.step(zeros)
    *_, truncated, _ = env.step(zeros)
    assert truncated.all()
    with pytest.raises(RuntimeError, match="reset_mask"):
        env.step(zeros)
    env.reset(options={"reset_mask": np.array([True, True])})
    env.step(zeros)


def test_state_round_trip_continues_exactly():
    """Restored mid-episode (through a weights-only checkpoint), an env continues to the bit."""
    env = HalfCheetahVelVectorEnv(num_envs=3, max_episode_steps=10)
    env.set_tasks([{"velocity": v} for v in (0.2, 1.0, 1.8)])
    env.reset(seed=[1, 2, 3])
    rng = np.random.default_rng(2)
    for _ in range(7):
        env.step(_actions(rng, 3))
    buffer = io.BytesIO()
    torch.save(env.get_state(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    copy = HalfCheetahVelVectorEnv(num_envs=3, max_episode_steps=10)
    copy.reset(seed=99)
    copy.step(_actions(rng, 3))  # some other history, all of it to be overwritten
    copy.set_state(state)
    assert copy.tasks == env.tasks
    # 25 more steps: through NEXT_STEP autoresets, which draw from the restored generators.
    for _ in range(25):
        actions = _actions(rng, 3)
        for got, want in zip(copy.step(actions)[:4], env.step(actions)[:4], strict=True):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="physics"):
        HalfCheetahVelVectorEnv(num_envs=2).set_state(state)


def test_make_vec_and_the_sampler_build_it():
    vec = gym.make_vec("metarobust/HalfCheetahVel-v0", num_envs=3)
    env = vec.unwrapped
    assert isinstance(env, HalfCheetahVelVectorEnv)
    assert env.autoreset_mode is AutoresetMode.NEXT_STEP and env.max_episode_steps == 200
    assert vec.observation_space.shape == (3, 17) and vec.action_space.shape == (3, 6)
    assert env.tasks == [{"velocity": 1.0}] * 3

    spec = EnvSpec("metarobust/HalfCheetahDir-v0", {"task": {"direction": -1}}, 50)
    env = make_vector_env(spec, 2)
    assert isinstance(env, HalfCheetahDirVectorEnv)
    assert env.metadata["autoreset_mode"] is AutoresetMode.DISABLED
    assert env.max_episode_steps == 50 and env.tasks == [{"direction": -1}] * 2


def test_task_changes_the_reward_not_the_dynamics():
    actions = np.tile(np.linspace(-0.9, 0.9, 6, dtype=np.float32), (2, 1))
    vel = HalfCheetahVelVectorEnv(num_envs=2)
    vel.set_tasks([{"velocity": 0.0}, {"velocity": 2.0}])
    dirs = HalfCheetahDirVectorEnv(num_envs=2)
    dirs.set_tasks([{"direction": 1}, {"direction": -1}])
    assert dirs.tasks == [{"direction": 1}, {"direction": -1}]
    vel.reset(seed=[3, 3])
    dirs.reset(seed=[3, 3])
    ctrl_cost = 0.05 * float(np.dot(actions[0].astype(np.float64), actions[0]))
    for _ in range(5):
        obs, rew, *_ = vel.step(actions)
        dir_obs, dir_rew, *_ = dirs.step(actions)
        np.testing.assert_array_equal(obs[0], obs[1])
        np.testing.assert_array_equal(obs, dir_obs)
        velocity = dir_rew[0] + ctrl_cost  # direction +1: the task term is the velocity
        assert dir_rew[1] == pytest.approx(-velocity - ctrl_cost, abs=1e-12)
        assert rew[0] == pytest.approx(-abs(velocity) - ctrl_cost, abs=1e-12)
        assert rew[1] == pytest.approx(-abs(velocity - 2.0) - ctrl_cost, abs=1e-12)
        assert rew[0] != rew[1]


def test_bad_actions_and_tasks():
    env = HalfCheetahVelVectorEnv(num_envs=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(2, 6\)"):
        env.step(np.zeros((2, 5)))
    with pytest.raises(ConfigError, match="velocity"):
        env.set_task({"velocity": "fast"})
    with pytest.raises(ConfigError, match="direction"):
        HalfCheetahDirVectorEnv(num_envs=1, task={"direction": 0})
    with pytest.raises(ValueError, match="one per env"):
        env.set_tasks([{"velocity": 1.0}])


def test_set_state_accepts_only_numpy_bit_generators():
    """A saved RNG names its bit generator; a name that is not one of NumPy's is refused (it
    used to be looked up on ``numpy.random`` and called) and nothing is restored."""
    env = HalfCheetahVelVectorEnv(num_envs=2)
    env.reset(seed=0)
    env.step(_actions(np.random.default_rng(0), 2))
    state = env.get_state()
    state["env_rngs"][1] = {**state["env_rngs"][1], "bit_generator": "seed"}
    fresh = HalfCheetahVelVectorEnv(num_envs=2)
    fresh.reset(seed=5)
    physics = fresh.get_state()["physics"]
    with pytest.raises(ConfigError, match="env_rngs.1: expected the state of a NumPy bit gen"):
        fresh.set_state(state)
    assert fresh.get_state()["physics"] == physics
