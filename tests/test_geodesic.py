"""The walking distance of the obstacle world and the reward built on it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import metarobust  # noqa: F401  (registers the envs)
from metarobust.envs.geodesic import SPACING, UNREACHABLE, stacked_maps, walking_distance
from metarobust.envs.geometry import level_walls
from metarobust.envs.levels import DEFAULT_LEVELS, box_walls, level_row, load_levels
from metarobust.errors import ConfigError

ENV_ID = "metarobust/Navigation2DObstacles-v0"


def distance(level: dict, points) -> np.ndarray:
    """The walking distance from each of ``points`` to the level's goal."""
    points = np.atleast_2d(np.asarray(points, np.float64))
    rows = np.repeat(level_row(level)[None], len(points), axis=0)
    return walking_distance(points, rows[:, 2:4], stacked_maps(rows), level_walls(rows))


def test_in_plain_sight_it_is_the_straight_line():
    level = {"start": [-0.5, -0.5], "goal": [0.6, 0.3], "walls": [[-0.9, 0.8, -0.5, 0.9]]}
    points = np.random.default_rng(0).uniform(-0.95, 0.95, size=(50, 2))
    points = points[points[:, 1] < 0.7]  # the wall lies beyond
    straight = np.hypot(*(np.array([0.6, 0.3]) - points).T)
    np.testing.assert_allclose(distance(level, points), straight, rtol=1e-12)


# (layout, the shortest way from its start by hand, the wall ends it turns around)
WAYS = [
    ("corridor", 1.8, 0),
    ("wall_gap", 2 * np.hypot(0.7, 1.0), 1),  # through the gap's lower edge (0, 0.5)
    ("two_rooms", 2 * np.hypot(1.2, 0.6), 1),  # around the wall's end (0.6, 0)
    ("u_trap", np.hypot(0.3, 0.4) + 0.6 + np.hypot(0.4, 0.4), 2),  # out the back, over the top
]


@pytest.mark.parametrize("name, way, corners", WAYS)
def test_from_the_start_it_is_the_shortest_way_around_the_walls(name, way, corners):
    """Never shorter than the shortest way (every grid edge is a free straight segment), at
    most 2.7 % longer plus a grid spacing per wall end turned around."""
    level = load_levels(DEFAULT_LEVELS)[name]
    walked = distance(level, level["start"])[0]
    assert way - 1e-9 <= walked <= 1.027 * way + SPACING * corners


def test_a_wall_in_the_way_makes_it_longer_than_the_straight_line():
    level = {"start": [-0.4, 0.0], "goal": [0.4, 0.0], "walls": [[0.0, -1.0, 0.0, 0.5]]}
    way = 2 * np.hypot(0.4, 0.5)  # past the wall's top end
    assert way <= distance(level, [-0.4, 0.0])[0] <= 1.027 * way + SPACING
    for name, level in load_levels(DEFAULT_LEVELS).items():
        walked = distance(level, level["start"])[0]
        assert np.hypot(*np.subtract(level["goal"], level["start"])) <= walked < UNREACHABLE, name


def test_a_goal_walled_in_is_unreachable_and_finite():
    level = {"start": [-0.8, -0.8], "goal": [0.5, 0.5], "walls": box_walls(0.3, 0.3, 0.7, 0.7)}
    assert distance(level, [-0.8, -0.8])[0] == UNREACHABLE
    assert distance(level, [0.45, 0.5])[0] == pytest.approx(0.05)  # inside the box: in sight


def test_the_reward_pays_minus_the_walking_distance():
    level = {"start": [-0.4, 0.0], "goal": [0.4, 0.0], "walls": [[0.0, -1.0, 0.0, 0.5]]}
    walking = gym.make(ENV_ID, task=level, distance="walking")
    straight = gym.make(ENV_ID, task=level)
    vector = gym.make_vec(ENV_ID, num_envs=3, task=level, distance="walking", distance_weight=0.5)
    for env in (walking, straight):
        env.reset(seed=0)
    vector.reset(seed=0)
    action = np.array([0.0, 0.1], np.float32)
    for _ in range(3):
        _, r_walk, *_ = walking.step(action)
        _, r_straight, *_ = straight.step(action)
        _, r_vec, *_ = vector.step(np.tile(action, (3, 1)))
        pos = walking.unwrapped.get_state()["pos"][0]
        assert r_walk == pytest.approx(-distance(level, pos)[0])
        assert r_straight == pytest.approx(-np.hypot(0.4 - pos[0], pos[1]))
        assert r_walk < r_straight  # the wall is in the way
        np.testing.assert_allclose(r_vec, 0.5 * r_walk, rtol=1e-12)


def test_a_bad_distance_is_one_line():
    with pytest.raises(ConfigError, match="distance expected one of straight, walking, got 'x'"):
        gym.make(ENV_ID, distance="x")
