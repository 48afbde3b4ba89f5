"""Navigation2DAdv: 2D navigation against a bounded wind, single and natively vectorized."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import step_in_lockstep
from gymnasium.vector import AutoresetMode

from metarobust.envs import UniformGoal
from metarobust.envs.navigation import ACTION_LIMIT
from metarobust.envs.two_player.wind import (
    DEFAULT_WIND,
    Navigation2DWindEnv,
    Navigation2DWindVectorEnv,
)
from metarobust.errors import ConfigError
from metarobust.sampling.env_factory import EnvSpec, make_vector_env

ENV_ID = "metarobust/Navigation2DAdv-v0"


def episode(env: gym.Env, actions: np.ndarray, task: dict) -> tuple[np.ndarray, ...]:
    """Observations, rewards and terminations of ``actions`` from a reset into ``task``."""
    obs, _ = env.reset(seed=0, options={"task": task})
    observations, rewards, ends = [obs], [], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        ends.append((terminated, truncated))
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards), np.array(ends)


def test_default_budget_is_half_the_speed_limit():
    assert DEFAULT_WIND == ACTION_LIMIT / 2 == 0.05
    env = gym.make(ENV_ID)
    assert env.unwrapped.wind == 0.05
    assert env.metadata["players"] == (2, 2)
    np.testing.assert_array_equal(env.action_space.high, np.float32([0.1, 0.1, 1.0, 1.0]))
    assert gym.make(ENV_ID, wind=0.2).unwrapped.wind == 0.2
    vec = gym.make_vec(ENV_ID, num_envs=2)
    assert vec.unwrapped.wind == 0.05 and vec.metadata["players"] == (2, 2)


@pytest.mark.parametrize("wind", [0.05, 0.3])
def test_the_wind_moves_the_point_by_action_times_budget(wind):
    env = gym.make(ENV_ID, wind=wind, task={"goal": [0.4, 0.4]})
    env.reset(seed=0)
    # from the origin with the protagonist still, the point lands exactly on the wind
    action = np.float32([0.0, 0.0, 0.6, -0.2])
    obs, reward, _, _, info = env.step(action)
    expected = (wind * action[2:].astype(np.float64)).astype(np.float32)  # action x budget
    np.testing.assert_array_equal(obs, expected)
    np.testing.assert_array_equal(info["wind"], expected)
    assert info["adversary_reward"] == -reward
    assert reward == pytest.approx(-np.hypot(*(expected.astype(np.float64) - 0.4)), abs=1e-15)
    # beyond [-1, 1] the wind is clipped to the budget; the protagonist to its speed limit
    obs, _, _, _, info = env.step(np.float32([0.3, -0.03, 7.0, -3.0]))
    np.testing.assert_array_equal(info["wind"], np.float32([wind, -wind]))
    move = np.float32([ACTION_LIMIT, -0.03])
    np.testing.assert_array_equal(obs, (expected + move) + np.float32([wind, -wind]))


def test_zero_wind_is_navigation2d_to_the_bit():
    env, base = gym.make(ENV_ID), gym.make("metarobust/Navigation2D-v0")
    rng = np.random.default_rng(0)
    for task in UniformGoal().sample(3, rng) + [{"goal": [0.05, 0.0]}]:
        moves = rng.uniform(-0.15, 0.15, (120, 2)).astype(np.float32)
        if task["goal"] == [0.05, 0.0]:
            moves[:] = [0.05, 0.0]  # reaches the goal: a terminated episode too
        still = np.concatenate([moves, np.zeros_like(moves)], axis=1)
        got, want = episode(env, still, task), episode(base, moves, task)
        for x, y in zip(got, want, strict=True):
            np.testing.assert_array_equal(x, y)
    assert want[2][-1].tolist() == [True, False]


def test_a_wind_changes_the_path_and_the_task_comes_through_reset():
    env = gym.make(ENV_ID)
    moves = np.full((10, 2), 0.02, np.float32)
    calm = np.concatenate([moves, np.zeros_like(moves)], axis=1)
    windy = np.concatenate([moves, np.full_like(moves, -1.0)], axis=1)
    calm_obs, calm_rewards, _ = episode(env, calm, {"goal": [0.3, 0.3]})
    windy_obs, _, _ = episode(env, windy, {"goal": [0.3, 0.3]})
    np.testing.assert_allclose(windy_obs[-1], calm_obs[-1] - 10 * 0.05, atol=1e-6)
    assert env.unwrapped.task == {"goal": [0.3, 0.3]}
    _, other_rewards, _ = episode(env, calm, {"goal": [-0.2, 0.1]})
    assert env.unwrapped.task == {"goal": [-0.2, 0.1]}
    assert not np.array_equal(calm_rewards, other_rewards)


def _actions(obs: np.ndarray, goals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Even envs head for their goal against a light wind (they terminate), odd envs wander in
    # a strong one (they truncate); beyond the bounds on purpose, so clipping is exercised.
    n = len(obs)
    toward = np.clip(goals - obs, -0.1, 0.1)
    wander = rng.uniform(-0.15, 0.15, size=(n, 2))
    half = (np.arange(n) % 2 == 0)[:, None]
    moves = np.where(half, toward, wander)
    wind = np.where(half, rng.uniform(-0.3, 0.3, (n, 2)), rng.uniform(-1.5, 1.5, (n, 2)))
    return np.concatenate([moves, wind], axis=1).astype(np.float32)


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_vector_env_matches_single_envs(mode):
    n = 8
    tasks = UniformGoal(-0.5, 0.5).sample(n, np.random.default_rng(7))
    tasks[0] = {"goal": [0.05, 0.0]}  # reached in a handful of steps
    goals = np.array([t["goal"] for t in tasks])
    vec = gym.make_vec(ENV_ID, num_envs=n, autoreset_mode=mode, wind=0.04)
    ref = gym.make_vec(
        ENV_ID,
        num_envs=n,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode},
        wind=0.04,
    )
    assert isinstance(vec.unwrapped, Navigation2DWindVectorEnv)
    assert vec.metadata["autoreset_mode"] is mode and vec.metadata["players"] == (2, 2)
    vec.unwrapped.set_tasks(tasks)
    for i, task in enumerate(tasks):
        ref.envs[i].unwrapped.set_task(task)
    assert {e.unwrapped.wind for e in ref.envs} == {vec.unwrapped.wind} == {0.04}

    rng = np.random.default_rng(0)

    def zero_sum(info: dict, ref_info: dict, rewards: np.ndarray) -> None:
        np.testing.assert_array_equal(info["adversary_reward"], -rewards)

    seen_terminated, seen_truncated = step_in_lockstep(
        vec,
        ref,
        lambda obs: _actions(obs, goals, rng),
        steps=230,
        reset_by_mask=mode is AutoresetMode.DISABLED,
        check=zero_sum,
    )
    assert seen_terminated >= 4 and seen_truncated >= n // 2 * 2  # both kinds of ending


def test_vector_reset_mask_task_and_disabled_mode():
    env = Navigation2DWindVectorEnv(
        num_envs=4, max_episode_steps=3, autoreset_mode="Disabled", task={"goal": [0.2, 0.2]}
    )
    env.reset(seed=[1, 2, 3, 4])
    obs, *_ = env.step(np.tile(np.float32([0.05, 0.05, 1.0, 0.0]), (4, 1)))
    np.testing.assert_array_equal(obs, np.tile(np.float32([0.05 + 0.05, 0.05]), (4, 1)))
    mask = np.array([True, False, True, False])
    obs, _ = env.reset(options={"reset_mask": mask, "task": {"goal": [-0.3, 0.1]}})
    np.testing.assert_array_equal(obs[mask], 0.0)
    assert [t["goal"] for t in env.tasks] == [[-0.3, 0.1], [0.2, 0.2], [-0.3, 0.1], [0.2, 0.2]]
    for _ in range(2):
        *_, truncated, _ = env.step(np.zeros((4, 4), np.float32))
    np.testing.assert_array_equal(truncated, ~mask)
    with pytest.raises(RuntimeError, match="reset_mask"):
        env.step(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        env.step(np.zeros((4, 2), np.float32))


def test_vector_state_round_trip_continues_exactly():
    env = Navigation2DWindVectorEnv(num_envs=3, max_episode_steps=20)
    env.set_tasks(UniformGoal().sample(3, np.random.default_rng(1)))
    env.reset(seed=[1, 2, 3])
    rng = np.random.default_rng(2)
    for _ in range(7):
        env.step(rng.uniform(-1, 1, (3, 4)))
    buffer = io.BytesIO()
    torch.save(env.get_state(), buffer)
    buffer.seek(0)
    copy = Navigation2DWindVectorEnv(num_envs=3, max_episode_steps=20)
    copy.reset(seed=9)
    copy.set_state(torch.load(buffer, weights_only=True))
    assert copy.tasks == env.tasks
    for _ in range(30):  # through NEXT_STEP autoresets
        actions = rng.uniform(-1, 1, (3, 4))
        for got, want in zip(copy.step(actions)[:4], env.step(actions)[:4], strict=True):
            np.testing.assert_array_equal(got, want)


def test_the_sampler_builds_the_native_vector_env():
    spec = EnvSpec(ENV_ID, {"wind": 0.02, "task": {"goal": [0.1, 0.2]}}, 30)
    env = make_vector_env(spec, 3)
    assert isinstance(env, Navigation2DWindVectorEnv)
    assert env.metadata["players"] == (2, 2)
    assert env.metadata["autoreset_mode"] is AutoresetMode.DISABLED
    assert env.wind == 0.02 and env.max_episode_steps == 30
    assert env.tasks == [{"goal": [0.1, 0.2]}] * 3


def test_vector_env_scales_to_thousands():
    n = 5000
    env = Navigation2DWindVectorEnv(num_envs=n, autoreset_mode=AutoresetMode.SAME_STEP)
    env.set_tasks(UniformGoal().sample(n, np.random.default_rng(0)))
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(100):
        obs, rew, term, trunc, info = env.step(rng.uniform(-1, 1, (n, 4)))
    assert obs.shape == (n, 2) and rew.shape == (n,) and trunc.sum() > n // 2
    np.testing.assert_array_equal(info["_final_obs"], term | trunc)


@pytest.mark.parametrize("wind", [0, 0.0, -0.05, float("nan"), float("inf"), "0.05", True, None])
def test_bad_wind_is_a_one_line_config_error(wind):
    for make in (
        lambda: gym.make(ENV_ID, wind=wind),
        lambda: gym.make_vec(ENV_ID, num_envs=2, wind=wind),
        lambda: Navigation2DWindEnv(wind=wind),
    ):
        with pytest.raises(ConfigError) as excinfo:
            make()
        message = str(excinfo.value)
        assert "\n" not in message
        assert message.startswith(f"{ENV_ID}: wind must be a positive finite number")
        assert repr(wind) in message
