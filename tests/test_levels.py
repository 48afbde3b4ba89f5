"""Level files and the planner: the named held-out layouts are data, valid and solvable."""

from __future__ import annotations

import numpy as np
import pytest

from metarobust.envs.geometry import ACTION_LIMIT
from metarobust.envs.levels import DEFAULT_LEVELS, load_levels, shortest_path
from metarobust.envs.obstacles import MAX_EPISODE_STEPS, Navigation2DObstaclesEnv
from metarobust.errors import ConfigError

NAMED = ("corridor", "wall_gap", "u_trap", "two_rooms", "four_rooms", "zigzag", "spiral",
         "labyrinth")  # fmt: skip


def drive(level: dict, waypoints: np.ndarray) -> tuple[bool, int]:
    """Follow the waypoints at the speed limit in the env: (arrived, steps taken)."""
    env = Navigation2DObstaclesEnv(level)
    obs, _ = env.reset()
    for step in range(1, MAX_EPISODE_STEPS + 1):
        pos = obs[:2].astype(np.float64)
        while len(waypoints) > 1 and np.abs(waypoints[0] - pos).max() < 1e-6:
            waypoints = waypoints[1:]
        delta = waypoints[0] - pos
        action = delta * min(1.0, ACTION_LIMIT / max(np.abs(delta).max(), 1e-12))
        obs, _, terminated, _, _ = env.step(action.astype(np.float32))
        if terminated:
            return True, step
        if np.abs(obs[:2] - (pos + action)).max() > 1e-5:
            raise AssertionError(f"a wall stopped the planned path at {pos} -> {pos + action}")
    return False, MAX_EPISODE_STEPS


def test_the_named_layouts_are_solvable_by_a_planner_in_one_episode():
    levels = load_levels(DEFAULT_LEVELS)
    assert tuple(levels) == NAMED
    for name, level in levels.items():
        path = shortest_path(level)
        assert path is not None, name
        arrived, steps = drive(level, path)
        assert arrived, (name, steps)
        # not solvable in a straight line: the walls are in the way (but in the corridor)
        straight = np.array([level["start"], level["goal"]])
        if name != "corridor":
            assert len(path) > 2, name
        else:
            np.testing.assert_allclose(path, straight)


def test_no_path_through_a_closed_wall():
    sealed = {"start": [-0.5, 0.0], "goal": [0.5, 0.0], "walls": [[0.0, -1.0, 0.0, 1.0]]}
    assert shortest_path(sealed) is None


def test_a_bad_level_file_is_a_one_line_error(tmp_path):
    cases = {
        "not_yaml.yaml": "corridor: [unclosed",
        "a_list.yaml": "- {start: [0, 0], goal: [0.5, 0]}",
        "bad_level.yaml": "ok: {start: [0, 0], goal: [0.5, 0]}\nbroken: {start: [0, 0]}",
        "code.yaml": "x: !!python/object/apply:os.system ['echo hacked']",
    }
    expected = {
        "not_yaml.yaml": "not a readable YAML level file",
        "a_list.yaml": "expected a mapping of level names to levels",
        "bad_level.yaml": "level 'broken': task for Navigation2DObstacles is missing key 'goal'",
        "code.yaml": "not a readable YAML level file",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_levels(path)
        assert expected[name] in str(err.value) and "\n" not in str(err.value), err.value
    with pytest.raises(ConfigError, match="not a readable YAML level file"):
        load_levels(tmp_path / "missing.yaml")
