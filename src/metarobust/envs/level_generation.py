"""Level generation for the obstacle world: domain randomisation of levels (``RandomLevels``,
some of them built around a trap, ``trap_walls``) and ACCEL's edit of a level (``edit_level``).
Levels are task dicts as ``metarobust.envs.levels`` describes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from metarobust.envs.geodesic import reachable
from metarobust.envs.geometry import ARENA, GOAL_RADIUS, MAX_WALLS, level_walls, segment_distance
from metarobust.envs.levels import level_row
from metarobust.envs.tasks import TaskDistribution, read_goal
from metarobust.errors import ConfigError


class RandomLevels(TaskDistribution):
    """Domain randomisation of levels: start and goal uniform in ``[-0.9, 0.9]^2`` at least
    ``min_distance`` apart, then ``num_walls`` (uniform in its range) segments of random centre,
    angle and ``wall_length``, each redrawn while it passes within ``clearance`` of the start
    or the goal. With probability ``trap_prob`` the level is built around a trap first (see
    ``trap_walls``: a barrier with one gap, or a cup around the start), and its random walls
    are cut to leave room for the trap's within ``num_walls``. Levels may be unsolvable (a
    wall can close a passage) unless ``solvable``: then a level whose goal cannot be walked to
    from its start (``metarobust.envs.geodesic``) is drawn again."""

    def __init__(
        self,
        num_walls: tuple[int, int] = (0, 8),
        wall_length: tuple[float, float] = (0.2, 0.8),
        min_distance: float = 0.5,
        clearance: float = 2 * GOAL_RADIUS,
        trap_prob: float = 0.0,
        solvable: bool = False,
    ) -> None:
        low, high = num_walls
        if not (0 <= low <= high <= MAX_WALLS):
            raise ConfigError(
                f"num_walls expected 0 <= low <= high <= {MAX_WALLS}, got {num_walls}"
            )
        if not 0 <= trap_prob <= 1 or (trap_prob and (high < TRAP_WALLS or min_distance < 0.5)):
            raise ConfigError(
                f"trap_prob expected a probability; above 0 it needs num_walls room for "
                f"{TRAP_WALLS} walls and min_distance >= 0.5, got trap_prob {trap_prob} with "
                f"num_walls {num_walls} and min_distance {min_distance}"
            )
        self.num_walls = (int(low), int(high))
        self.wall_length = (float(wall_length[0]), float(wall_length[1]))
        self.min_distance, self.clearance = float(min_distance), float(clearance)
        self.trap_prob, self.solvable = float(trap_prob), bool(solvable)

    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        return [self._solvable(rng) if self.solvable else self._one(rng) for _ in range(n)]

    def _solvable(self, rng: np.random.Generator) -> dict[str, Any]:
        while True:
            level = self._one(rng)
            if reachable(level_row(level)):
                return level

    def _one(self, rng: np.random.Generator) -> dict[str, Any]:
        while True:
            start, goal = rng.uniform(-0.9, 0.9, size=(2, 2))
            if np.hypot(*(goal - start)) >= self.min_distance:
                break
        walls = self.sample_walls(start, goal, rng)
        if self.trap_prob and rng.random() < self.trap_prob:
            walls = trap_walls(start, goal, rng) + walls[: self.num_walls[1] - TRAP_WALLS]
        return {"start": start.tolist(), "goal": goal.tolist(), "walls": walls}

    def sample_walls(
        self, start: np.ndarray, goal: np.ndarray, rng: np.random.Generator
    ) -> list[list[float]]:
        """``num_walls`` random walls, each clear of ``start`` and ``goal``."""
        ends = np.stack([start, goal])
        walls: list[list[float]] = []
        for _ in range(rng.integers(self.num_walls[0], self.num_walls[1] + 1)):
            while True:
                centre = rng.uniform(-0.9, 0.9, size=2)
                angle, length = rng.uniform(0.0, np.pi), rng.uniform(*self.wall_length)
                half = 0.5 * length * np.array([np.cos(angle), np.sin(angle)])
                wall = np.concatenate([centre - half, centre + half])
                gaps = segment_distance(ends, np.broadcast_to(wall, (2, 1, 4)))
                if (gaps > self.clearance).all():
                    walls.append(wall.tolist())
                    break
        return walls

    feature_dim = 4

    def _task_features(self, task: Mapping[str, Any]) -> list[float]:
        return [*read_goal(task, "start"), *read_goal(task, "goal")]


TRAP_WALLS = 3  # the most walls a trap takes


def trap_walls(start: np.ndarray, goal: np.ndarray, rng: np.random.Generator) -> list[list[float]]:
    """The walls of a trap between ``start`` and ``goal`` (at least 0.5 apart), one of, equally
    likely:

    - a barrier across the whole arena, perpendicular to the axis along which start and goal
      lie further apart and at least 0.15 from each along it, with one gap of width 0.15-0.3
      anywhere along it (the wall with a gap, two rooms);
    - a cup around the start: its base 0.2 in front of the start towards the goal, 0.3-0.7
      wide, its sides 0.3-0.6 long reaching back past the start, open away from the goal
      (the U-trap), clipped to the arena: heading straight for the goal meets its base."""
    d = goal - start
    if rng.random() < 0.5:
        axis = int(abs(d[1]) > abs(d[0]))
        low, high = sorted([start[axis], goal[axis]])
        at = rng.uniform(low + 0.15, high - 0.15)
        width = rng.uniform(0.15, 0.3)
        gap = rng.uniform(-0.9, 0.9 - width)
        pieces = [[-ARENA, gap], [gap + width, ARENA]]
        if axis == 0:
            return [[at, a, at, b] for a, b in pieces]
        return [[a, at, b, at] for a, b in pieces]
    ahead = d / np.hypot(*d)
    side = np.array([-ahead[1], ahead[0]])
    half, depth = rng.uniform(0.15, 0.35), rng.uniform(0.3, 0.6)
    left, right = start + 0.2 * ahead + half * side, start + 0.2 * ahead - half * side
    corners = np.clip([left, right, left - depth * ahead, right - depth * ahead], -0.99, 0.99)
    left, right, left_back, right_back = corners.tolist()
    return [[*left, *right], [*left, *left_back], [*right, *right_back]]


EDIT_SCALE = 0.1  # the spread of a moved wall end or goal


def edit_level(level: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A small change to a level (ACCEL's edit), one of: move a wall's ends, add a random
    wall, remove a wall, move the goal; redrawn until the level is valid with its start and
    goal clear of every wall (the level itself after 10 tries)."""
    level_row(level)  # refuse a bad one here, not after the edits
    start, goal = np.asarray(level["start"], np.float64), np.asarray(level["goal"], np.float64)
    walls = [list(map(float, w)) for w in level.get("walls", [])]
    for _ in range(10):
        new_walls, new_goal = [w.copy() for w in walls], goal.copy()
        kind = rng.integers(4)
        if kind == 0 and new_walls:
            i = rng.integers(len(new_walls))
            new_walls[i] = (np.asarray(new_walls[i]) + rng.normal(0, EDIT_SCALE, 4)).tolist()
        elif kind == 1 and len(new_walls) < MAX_WALLS:
            new_walls += RandomLevels(num_walls=(1, 1)).sample_walls(start, new_goal, rng)
        elif kind == 2 and new_walls:
            new_walls.pop(rng.integers(len(new_walls)))
        else:
            new_goal = new_goal + rng.normal(0, EDIT_SCALE, 2)
        edited = {"start": start.tolist(), "goal": new_goal.tolist(), "walls": new_walls}
        try:
            row = level_row(edited)
        except ConfigError:
            continue
        ends = np.stack([start, new_goal])
        segments = level_walls(row[None])[0][4:]
        gaps = segment_distance(ends, np.broadcast_to(segments, (2, *segments.shape)))
        if not (np.nan_to_num(gaps, nan=np.inf) <= 2 * GOAL_RADIUS).any():
            return edited
    return {"start": start.tolist(), "goal": goal.tolist(), "walls": walls}
