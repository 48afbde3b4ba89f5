"""The obstacle world: walls that hold at any speed, levels as tasks, rays, vector = single."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from metarobust.envs import default_task_distribution
from metarobust.envs.geometry import (
    ACTION_LIMIT,
    ARENA,
    GOAL_RADIUS,
    MAX_WALLS,
    NUM_RAYS,
    RAY_RANGE,
    LevelGeometry,
    first_hit,
    move_point,
    ray_readings,
    segment_distance,
)
from metarobust.envs.level_generation import RandomLevels
from metarobust.envs.levels import box_walls, level_row
from metarobust.envs.obstacles import (
    ARRIVAL_BONUS,
    Navigation2DObstaclesEnv,
    Navigation2DObstaclesVectorEnv,
)
from metarobust.errors import ConfigError
from metarobust.sampling.env_factory import EnvSpec, make_vector_env

ENV_ID = "metarobust/Navigation2DObstacles-v0"
ARENA_WALLS = [[-1, -1, 1, -1], [1, -1, 1, 1], [1, 1, -1, 1], [-1, 1, -1, -1]]


def orientation(p, q, r):
    """Sign of the turn p -> q -> r (+1 left, -1 right, 0 collinear), per row."""
    value = (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (
        r[..., 0] - p[..., 0]
    )
    return np.sign(value)


def crosses(old, new, wall):
    """Whether the moves old -> new touch or cross the segment ``wall`` (per row), by the
    orientation test: an independent check of the env's parametric one."""
    a, b = wall[..., :2], wall[..., 2:]
    o1, o2 = orientation(old, new, a), orientation(old, new, b)
    o3, o4 = orientation(a, b, old), orientation(a, b, new)
    return (o1 != o2) & (o3 != o4)


def walls_of(level):  # the arena's and the level's
    return np.array([*ARENA_WALLS, *level["walls"]], dtype=np.float64)


def test_no_step_passes_through_a_wall_at_the_largest_speed():
    """Random cluttered levels, actions at the speed limit (corners of the action box, and
    ten times beyond, clipped): neither leg of any move (up to the wall met, then sliding)
    touches or crosses a wall, and the point stays in the arena."""
    n = 256
    levels = RandomLevels(num_walls=(MAX_WALLS // 2, MAX_WALLS), wall_length=(0.3, 1.5)).sample(
        n, np.random.default_rng(0)
    )
    rows = np.stack([level_row(level) for level in levels])
    walls = [walls_of(level) for level in levels]
    pos = rows[:, :2].copy()
    geometry = LevelGeometry(rows)
    rng = np.random.default_rng(1)
    corners = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], np.float32) * ACTION_LIMIT
    slid = 0
    for t in range(150):
        actions = corners[rng.integers(0, 4, n)] * (1 + 9 * (t % 2))
        corner, end = move_point(pos, actions, geometry.walls)
        for i in range(n):
            for leg in ((pos[i], corner[i]), (corner[i], end[i])):
                hit = crosses(*leg, walls[i])
                assert not hit.any(), (i, t, leg, walls[i][hit])
        assert (np.abs(end) < ARENA).all()
        slid += int((np.abs(end - corner) > 1e-9).any(axis=1).sum())
        pos = end
    assert slid > n  # walls were met and slid along often, not avoided by luck


def test_a_grazing_stop_at_the_arena_side_still_reads_finite_rays():
    """A move almost along the top side stops on it within float32 rounding (as a policy
    pushing into a corner does); the ray along that side then reads the far wall, not NaN."""
    env = Navigation2DObstaclesEnv({"start": [0.9999, 0.99998], "goal": [0.0, 0.0], "walls": []})
    env.reset(seed=0)
    obs, reward, *_ = env.step(np.array([-0.1, 2.5e-5], np.float32))
    assert obs[1] == np.float32(ARENA)  # on the side, as float32 sees it
    assert np.isfinite(obs).all() and np.isfinite(reward)
    assert obs[4] == pytest.approx((ARENA - obs[0]) / RAY_RANGE)  # ray 0, along +x


def test_a_wall_stops_the_point_and_it_slides_along():
    level = {"start": [0.0, -0.05], "goal": [0.5, 0.5], "walls": [[-0.5, 0.0, 0.5, 0.0]]}
    env = Navigation2DObstaclesEnv(level)
    env.reset()
    obs, *_ = env.step(np.array([0.0, 0.1], np.float32))  # straight up into the wall
    assert obs[0] == pytest.approx(0.0) and -1e-3 < obs[1] < 0.0
    x_before = obs[0]
    obs, *_ = env.step(np.array([0.1, 0.1], np.float32))  # diagonal: slides along x
    assert obs[0] - x_before == pytest.approx(0.1, abs=1e-3) and obs[1] < 0.0
    for _ in range(10):  # past the wall's end it climbs freely
        obs, *_ = env.step(np.array([0.1, 0.1], np.float32))
    assert obs[0] > 0.5 and obs[1] > 0.0


def test_rays_read_the_free_distance():
    level = {"start": [0.0, 0.0], "goal": [0.5, 0.5], "walls": [[0.3, -0.5, 0.3, 0.5]]}
    env = Navigation2DObstaclesEnv(level)
    obs, _ = env.reset()
    assert obs.shape == (4 + NUM_RAYS,)
    np.testing.assert_allclose(obs[:4], [0.0, 0.0, 0.5, 0.5])
    rays = obs[4:]
    assert rays[0] == pytest.approx(0.3)  # angle 0: the wall at x = 0.3
    assert rays[NUM_RAYS // 4] == pytest.approx(1.0)  # straight up: the arena wall at y = 1
    assert rays[NUM_RAYS // 2] == pytest.approx(1.0)  # left: the arena wall at x = -1
    assert rays[NUM_RAYS // 8] == pytest.approx(0.3 * np.sqrt(2), rel=1e-6)  # 45 degrees
    assert env.observation_space.contains(obs)


def test_arrival_pays_the_bonus_and_ends_the_episode():
    env = gym.make(ENV_ID, task={"start": [0.0, 0.0], "goal": [0.2, 0.0], "walls": []})
    env.reset(seed=0)
    _, reward, terminated, _, _ = env.step(np.array([0.1, 0.0], np.float32))
    assert reward == pytest.approx(-0.1) and not terminated
    _, reward, terminated, _, _ = env.step(np.array([0.1, 0.0], np.float32))
    assert terminated and reward == pytest.approx(ARRIVAL_BONUS, abs=1e-6)
    assert env.spec.max_episode_steps == 200


def test_distance_weight_scales_the_distance_term_only():
    level = {"start": [0.0, 0.0], "goal": [0.2, 0.0], "walls": []}
    sparse = gym.make_vec(ENV_ID, num_envs=2, task=level, distance_weight=0)
    sparse.reset(seed=0)
    _, rewards, terminated, _, _ = sparse.step(np.array([[0.1, 0.0], [0.0, 0.0]], np.float32))
    np.testing.assert_array_equal(rewards, [0.0, 0.0])
    _, rewards, terminated, _, _ = sparse.step(np.array([[0.1, 0.0], [0.0, 0.0]], np.float32))
    np.testing.assert_array_equal(rewards, [ARRIVAL_BONUS, 0.0])
    assert terminated.tolist() == [True, False]
    halved = gym.make(ENV_ID, task=level, distance_weight=0.5)
    halved.reset(seed=0)
    assert halved.step(np.array([0.1, 0.0], np.float32))[1] == pytest.approx(-0.05)
    for bad in (-1, float("inf"), True):
        with pytest.raises(
            ConfigError, match=f"distance_weight expected a finite number >= 0, got {bad}"
        ):
            gym.make(ENV_ID, distance_weight=bad)


def test_rays_match_a_reference_on_cluttered_levels():
    """Every ray of random points in random cluttered levels reads what an independent float64
    solve of each ray-wall pair gives (nearest crossing within range, else 1)."""
    n = 48
    rng = np.random.default_rng(11)
    levels = RandomLevels(num_walls=(0, MAX_WALLS)).sample(n, rng)
    rows = np.stack([level_row(level) for level in levels])
    pos = rng.uniform(-0.95, 0.95, (n, 2))
    got = ray_readings(pos, LevelGeometry(rows))
    angles = np.linspace(0.0, 2.0 * np.pi, NUM_RAYS, endpoint=False)
    for i, level in enumerate(levels):
        for k, angle in enumerate(angles):
            ray = np.array([np.cos(angle), np.sin(angle)])
            want = 1.0
            for wall in walls_of(level):
                a, e = wall[:2], wall[2:] - wall[:2]
                matrix = np.column_stack([ray, -e])
                if abs(np.linalg.det(matrix)) < 1e-12:
                    continue
                t, u = np.linalg.solve(matrix, a - pos[i])
                if 0 <= t <= 1 and 0 <= u <= 1:
                    want = min(want, t)
            assert got[i, k] == pytest.approx(want, abs=1e-5), (i, k)


def test_a_level_round_trips_through_the_task_dict():
    level = {
        "start": [-0.7, 0.1],
        "goal": [0.6, -0.4],
        "walls": [[0.0, -0.9, 0.0, 0.4], *box_walls(0.3, 0.3, 0.6, 0.6)],
    }
    env = gym.make(ENV_ID)
    env.reset(options={"task": level})
    assert env.unwrapped.task == level
    obs, _ = env.reset()  # a reset without a task keeps the level
    np.testing.assert_allclose(obs[:4], [-0.7, 0.1, 0.6, -0.4], rtol=1e-6)
    vector = Navigation2DObstaclesVectorEnv(3)
    vector.set_tasks([level, {"start": [0, 0], "goal": [0.5, 0.5]}, level])
    assert vector.tasks[0] == level and vector.tasks[1]["walls"] == []


@pytest.mark.parametrize(
    ("level", "message"),
    [
        ({"start": [0, 0]}, "missing key 'goal'"),
        ({"start": [0, 0], "goal": [1.2, 0]}, "'goal' must lie inside the arena"),
        ({"start": [0, 0], "goal": [0.5, 0], "walls": [1, 2, 3, 4]}, "'walls' expected a list"),
        ({"start": [0, 0], "goal": [0.5, 0], "walls": [[1, 2, 3]]}, "'walls' expected a list"),
        ({"start": [0, 0], "goal": [0.5, 0], "walls": "x"}, "'walls' expected a list"),
        (
            {"start": [0, 0], "goal": [0.5, 0], "walls": [[0, 0, 0.1, 0.1]] * (MAX_WALLS + 1)},
            f"at most {MAX_WALLS} segments",
        ),
        ({"start": [0, 0], "goal": [0.5, 0], "walls": [[0, 0, float("nan"), 1]]}, "finite"),
        ({"start": [0, 0], "goal": [0.5, 0], "walls": [[-1, 0, 1, 0]]}, "start [0.0, 0.0] lies"),
        ({"start": [0, 0], "goal": [0.5, 0], "doors": []}, "unknown task key 'doors'"),
    ],
)
def test_a_bad_level_is_a_one_line_config_error(level, message):
    with pytest.raises(ConfigError, match=None) as err:
        Navigation2DObstaclesEnv(level)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_vector_env_matches_single_envs_to_the_bit():
    levels = RandomLevels().sample(5, np.random.default_rng(3))
    singles = [Navigation2DObstaclesEnv(level) for level in levels]
    vector = Navigation2DObstaclesVectorEnv(5, autoreset_mode=AutoresetMode.DISABLED)
    vector.set_tasks(levels)
    obs, _ = vector.reset(seed=0)
    np.testing.assert_array_equal(obs, [env.reset(seed=0)[0] for env in singles])
    rng = np.random.default_rng(4)
    for _ in range(40):
        actions = rng.uniform(-0.15, 0.15, (5, 2)).astype(np.float32)
        got = vector.step(actions)
        want = [env.step(a) for env, a in zip(singles, actions, strict=True)]
        for k in range(4):
            np.testing.assert_array_equal(got[k], [w[k] for w in want])
        if (got[2] | got[3]).any():
            break


def test_state_round_trip_and_the_sampler_builds_the_vector_env():
    levels = RandomLevels().sample(4, np.random.default_rng(5))
    env = Navigation2DObstaclesVectorEnv(4)
    env.set_tasks(levels)
    env.reset(seed=0)
    rng = np.random.default_rng(6)
    for _ in range(5):
        env.step(rng.uniform(-0.1, 0.1, (4, 2)))
    copy = Navigation2DObstaclesVectorEnv(4)
    copy.set_state(env.get_state())
    assert copy.tasks == env.tasks
    for _ in range(10):
        actions = rng.uniform(-0.1, 0.1, (4, 2))
        for got, want in zip(copy.step(actions)[:4], env.step(actions)[:4], strict=True):
            np.testing.assert_array_equal(got, want)
    made = make_vector_env(EnvSpec(ENV_ID, {"task": levels[0]}, 50), 3)
    assert isinstance(made, Navigation2DObstaclesVectorEnv) and made.max_episode_steps == 50
    assert made.tasks == [levels[0]] * 3


def test_random_levels_keep_start_and_goal_clear():
    distribution = default_task_distribution(ENV_ID)
    assert isinstance(distribution, RandomLevels)
    levels = distribution.sample(200, np.random.default_rng(7))
    assert levels == distribution.sample(200, np.random.default_rng(7))
    for level in levels:
        Navigation2DObstaclesEnv(level)  # valid
        start, goal = np.array(level["start"]), np.array(level["goal"])
        assert np.hypot(*(goal - start)) >= 0.5 and 0 <= len(level["walls"]) <= 8
    assert distribution.features(levels[0]).shape == (4,)
    with pytest.raises(ConfigError, match="num_walls"):
        RandomLevels(num_walls=(0, MAX_WALLS + 1))


def test_trap_levels_put_a_barrier_or_a_cup_between_start_and_goal():
    levels = RandomLevels(trap_prob=1.0).sample(300, np.random.default_rng(5))
    kinds = {"barrier": 0, "cup": 0}
    for level in levels:
        level_row(level)  # valid, the start off every wall
        start, goal = np.array(level["start"]), np.array(level["goal"])
        walls = np.array(level["walls"])
        assert len(walls) <= 8
        assert (segment_distance(goal[None], walls[None]) > 2 * GOAL_RADIUS).all(), level
        if len(walls) >= 2 and _is_barrier(walls[:2]):
            kinds["barrier"] += 1
            # the two pieces span the arena's side to side but for one gap of 0.15-0.3
            length = np.hypot(*(walls[:2, 2:] - walls[:2, :2]).T).sum()
            assert 2 * ARENA - 0.3 <= length <= 2 * ARENA - 0.15
        else:
            kinds["cup"] += 1
            # the cup's base (its first wall) crosses the straight way to the goal
            t, index = first_hit(start[None], (goal - start)[None], walls[None, :3])
            assert np.isfinite(t[0]) and index[0] == 0, level
    assert min(kinds.values()) > 100  # both kinds, about equally often
    with pytest.raises(ConfigError, match="trap_prob"):
        RandomLevels(trap_prob=0.5, num_walls=(0, 2))
    with pytest.raises(ConfigError, match="trap_prob"):
        RandomLevels(trap_prob=1.5)


def _is_barrier(pieces: np.ndarray) -> bool:
    """Whether two walls lie on one line across the arena from side to side."""
    vertical = (pieces[:, 0] == pieces[:, 2]).all() and pieces[0, 0] == pieces[1, 0]
    horizontal = (pieces[:, 1] == pieces[:, 3]).all() and pieces[0, 1] == pieces[1, 1]
    return bool(vertical or horizontal)
