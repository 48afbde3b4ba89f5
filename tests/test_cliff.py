"""Navigation2DCliff(Adv): 2D navigation on a round platform, every step off it costing more."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from metarobust.envs import (
    ADVERSARIAL_TASK_ENV_IDS,
    ENV_IDS,
    RingGoal,
    base_env_id,
    default_task_distribution,
)
from metarobust.envs.navigation import (
    FALL_COST,
    GOAL_RING_RADIUS,
    PLATFORM_RADIUS,
    Navigation2DEnv,
    Navigation2DVectorEnv,
)
from metarobust.errors import ConfigError

CLIFF, CLIFF_ADV = "metarobust/Navigation2DCliff-v0", "metarobust/Navigation2DCliffAdv-v0"


def rewards(env: gym.Env, actions: np.ndarray, task: dict) -> tuple[np.ndarray, np.ndarray]:
    """Positions and rewards of ``actions`` from a reset into ``task``, up to the episode's end."""
    env.reset(seed=0, options={"task": task})
    positions, got = [], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        positions.append(obs)
        got.append(reward)
        if terminated or truncated:
            break
    return np.array(positions), np.array(got)


def test_registered_with_the_ring_of_goals_and_the_wind():
    assert CLIFF in ENV_IDS and CLIFF_ADV in ADVERSARIAL_TASK_ENV_IDS
    assert base_env_id(CLIFF_ADV) == CLIFF
    for env_id in (CLIFF, CLIFF_ADV):
        env = gym.make(env_id)
        assert env.unwrapped.platform.radius == PLATFORM_RADIUS == 0.55
        assert env.unwrapped.platform.fall_cost == FALL_COST == 1.0
        assert env.spec.max_episode_steps == 100
        distribution = default_task_distribution(env_id)
        assert isinstance(distribution, RingGoal) and distribution.radius == GOAL_RING_RADIUS
    assert gym.make(CLIFF_ADV).unwrapped.wind == 0.05
    assert gym.make_vec(CLIFF, num_envs=2).unwrapped.platform.radius == PLATFORM_RADIUS


def test_on_the_platform_the_rewards_are_navigation2d_s():
    cliff, plain = gym.make(CLIFF), gym.make("metarobust/Navigation2D-v0")
    rng = np.random.default_rng(0)
    task = {"goal": [0.2, -0.1]}
    moves = rng.uniform(-0.03, 0.03, (100, 2)).astype(np.float32)  # stays within 0.55 of 0
    pos, got = rewards(cliff, moves, task)
    want = rewards(plain, moves, task)
    assert np.hypot(*pos.T).max() < PLATFORM_RADIUS
    np.testing.assert_array_equal(got, want[1])


def test_every_step_off_the_platform_pays_the_fall_cost():
    env = gym.make(CLIFF)
    east = np.tile(np.float32([0.1, 0.0]), (9, 1))
    # the goal at 0.8 lies off the platform: steps to 0.5 are on it, 0.6 to the goal off it
    pos, got = rewards(env, east, {"goal": [0.8, 0.0]})
    distance = np.abs(0.8 - pos[:, 0].astype(np.float64))
    off = pos[:, 0] > PLATFORM_RADIUS
    assert off.tolist() == [False] * 5 + [True] * 3  # ends on the goal
    np.testing.assert_allclose(got, -distance - 1.0 * off, atol=1e-12)
    # a costlier fall and no edge at all, through the make kwargs
    steeper = gym.make(CLIFF, fall_cost=3.0)
    np.testing.assert_allclose(rewards(steeper, east, {"goal": [0.8, 0.0]})[1], -distance - 3 * off)
    no_edge = gym.make(CLIFF, platform_radius=None)
    np.testing.assert_allclose(rewards(no_edge, east, {"goal": [0.8, 0.0]})[1], -distance)


def test_the_wind_blows_the_point_over_the_edge():
    env = gym.make(CLIFF_ADV)
    # the protagonist heads for its goal on the ring at full speed; the wind pushes the same way
    toward = np.tile(np.float32([0.1, 0.0, 1.0, 0.0]), (4, 1))
    pos, got = rewards(env, toward, {"goal": [GOAL_RING_RADIUS, 0.0]})
    np.testing.assert_allclose(pos[:, 0], [0.15, 0.3, 0.45, 0.6], atol=1e-6)
    assert got[-1] == pytest.approx(-0.1 - FALL_COST, abs=1e-6)
    calm = np.tile(np.float32([0.1, 0.0, 0.0, 0.0]), (5, 1))
    _, calm_rewards = rewards(env, calm, {"goal": [GOAL_RING_RADIUS, 0.0]})
    assert len(calm_rewards) == 5 and calm_rewards.min() > -0.5  # arrives, never off


@pytest.mark.parametrize("wind", [False, True])
def test_vector_env_matches_single_envs_across_the_edge(wind):
    n = 6
    env_id = CLIFF_ADV if wind else CLIFF
    tasks = RingGoal().sample(n, np.random.default_rng(3))
    vec = gym.make_vec(env_id, num_envs=n, autoreset_mode="SameStep")
    ref = gym.make_vec(
        env_id, num_envs=n, vectorization_mode="sync", vector_kwargs={"autoreset_mode": "SameStep"}
    )
    vec.unwrapped.set_tasks(tasks)
    for i, task in enumerate(tasks):
        ref.envs[i].unwrapped.set_task(task)
    np.testing.assert_array_equal(vec.reset(seed=0)[0], ref.reset(seed=0)[0])
    rng = np.random.default_rng(0)
    fell = 0
    for _ in range(150):
        actions = rng.uniform(-0.15, 0.15, (n, 4 if wind else 2)).astype(np.float32)
        actions[:, :2] += np.float32(0.04)  # drift north-east, off the platform in time
        got, want = vec.step(actions), ref.step(actions)
        for x, y in zip(got[:4], want[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        fell += int((got[1] < -FALL_COST).sum())
    assert fell > 100  # the comparison crossed the edge many times


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("platform_radius", 0),
        ("platform_radius", -0.5),
        ("platform_radius", float("nan")),
        ("platform_radius", "0.55"),
        ("platform_radius", True),
        ("fall_cost", -1.0),
        ("fall_cost", float("inf")),
        ("fall_cost", False),
        ("fall_cost", None),
    ],
)
def test_bad_platform_is_a_one_line_config_error(field, value):
    for make in (
        lambda: gym.make(CLIFF, **{field: value}),
        lambda: gym.make_vec(CLIFF_ADV, num_envs=2, **{field: value}),
        lambda: Navigation2DEnv(**{field: value}),
        lambda: Navigation2DVectorEnv(num_envs=2, **{field: value}),
    ):
        with pytest.raises(ConfigError) as excinfo:
            make()
        message = str(excinfo.value)
        assert "\n" not in message and message.startswith(f"Navigation2D: {field} expected")
        assert repr(value) in message


def test_ring_goals_lie_on_the_circle_all_around():
    goals = np.array([t["goal"] for t in RingGoal(0.5).sample(400, np.random.default_rng(0))])
    np.testing.assert_allclose(np.hypot(*goals.T), 0.5, atol=1e-12)
    quadrants = np.bincount((goals[:, 0] > 0) * 2 + (goals[:, 1] > 0), minlength=4)
    assert quadrants.min() > 70  # uniform in angle: about 100 each
    for bad in (0, -1.0, float("inf"), "0.5", True):
        with pytest.raises(ConfigError, match="goal radius expected a finite number > 0"):
            RingGoal(bad)
