"""Levels of the obstacle world: their format, as files, and a planner that finds a way through one.

A level is the task ``{"start": [x, y], "goal": [x, y], "walls": [[x1, y1, x2, y2], ...]}``
(at most ``MAX_WALLS`` segments; ``box_walls`` gives a box's four); ``level_row`` checks one and
makes it the row the envs step on, ``level_dict`` makes the task back. Random levels and
ACCEL's edits are ``metarobust.envs.level_generation``'s.

A level file is YAML: a mapping from names to levels, e.g. ``DEFAULT_LEVELS``, the named
held-out layouts shipped with the package. A file is data: it is read with a safe loader, and
every level is checked before use; a bad one is a one-line ConfigError naming the file and the
level.

``shortest_path`` plans on a grid of free points (8 neighbours, every edge tested against
the walls like a move) and straightens the result, so a point that follows its waypoints at
the speed limit reaches the goal without meeting a wall.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from metarobust.envs.geometry import (
    ARENA,
    MARGIN,
    MAX_WALLS,
    first_hit,
    level_walls,
    segment_distance,
)
from metarobust.envs.tasks import check_task_keys, read_goal
from metarobust.errors import ConfigError

_NAME = "Navigation2DObstacles"
ROW_LENGTH = 4 + 4 * MAX_WALLS  # one level as a row: start, goal, walls (NaN where there is none)
DEFAULT_LEVELS = Path(__file__).with_name("held_out_levels.yaml")  # shipped with the package


def box_walls(x_min: float, y_min: float, x_max: float, y_max: float) -> list[list[float]]:
    """The four segments of an axis-aligned box."""
    return [
        [x_min, y_min, x_max, y_min],
        [x_max, y_min, x_max, y_max],
        [x_max, y_max, x_min, y_max],
        [x_min, y_max, x_min, y_min],
    ]


def _read_point(level: Mapping[str, Any], key: str) -> list[float]:
    point = read_goal(level, key)
    if max(abs(point[0]), abs(point[1])) >= ARENA:
        raise ConfigError(f"level key {key!r} must lie inside the arena (-1, 1)^2, got {point}")
    return point


def level_row(level: Any) -> np.ndarray:
    """A checked level as one row ``[start, goal, walls...]`` (float64, NaN padding), or a
    one-line ConfigError naming what is wrong."""
    level = check_task_keys(level, _NAME, required=("start", "goal"), optional=("walls",))
    row = np.full(ROW_LENGTH, np.nan)
    row[:2], row[2:4] = _read_point(level, "start"), _read_point(level, "goal")
    walls = level.get("walls", [])
    try:
        segments = np.asarray(walls, dtype=np.float64).reshape(-1, 4)
    except (TypeError, ValueError):
        segments = None
    if (
        isinstance(walls, (str, bytes, Mapping))
        or segments is None
        or (len(walls) and np.ndim(walls) != 2)
    ):
        raise ConfigError(f"level key 'walls' expected a list of [x1, y1, x2, y2], got {walls!r}")
    if len(segments) > MAX_WALLS or not np.isfinite(segments).all():
        raise ConfigError(
            f"level key 'walls' expected at most {MAX_WALLS} segments of finite numbers, got "
            f"{len(segments)}"
        )
    row[4 : 4 + segments.size] = segments.ravel()
    start = row[None, :2]
    if (segment_distance(start, segments[None]) <= MARGIN).any():
        raise ConfigError(f"level: the start {row[:2].tolist()} lies on a wall")
    return row


def level_dict(row: Sequence[float]) -> dict[str, Any]:
    """The level of a row (as ``level_row`` makes it), as a task dict."""
    walls = np.asarray(row[4:], dtype=np.float64).reshape(-1, 4)
    walls = walls[~np.isnan(walls).any(axis=1)]
    return {"start": list(row[:2]), "goal": list(row[2:4]), "walls": walls.tolist()}


def load_levels(path: Path) -> dict[str, dict[str, Any]]:
    """The named levels of a level file, each checked (``ConfigError`` names what is wrong)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise ConfigError(f"{path}: not a readable YAML level file ({reason})") from None
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{path}: expected a mapping of level names to levels")
    levels = {}
    for name, level in data.items():
        try:
            level_row(level)
        except ConfigError as err:
            raise ConfigError(f"{path}: level {name!r}: {err}") from None
        levels[str(name)] = dict(level)
    return levels


def _free(segments: np.ndarray, walls: np.ndarray) -> np.ndarray:
    """Whether each segment ``[m, 4]`` meets none of ``walls [w, 4]``."""
    starts, moves = segments[:, :2], segments[:, 2:] - segments[:, :2]
    t, _ = first_hit(starts, moves, np.broadcast_to(walls, (len(segments), *walls.shape)))
    return ~np.isfinite(t)


def shortest_path(
    level: Mapping[str, Any], resolution: float = 0.05, clearance: float = 0.03
) -> np.ndarray | None:
    """Waypoints ``[k, 2]`` from the level's start to its goal (None if there is no way at this
    resolution): every leg is a straight segment that stays ``clearance`` from the walls."""
    row = level_row(level)
    walls = level_walls(row[None])[0]
    walls = walls[~np.isnan(walls).any(axis=1)]
    start, goal = row[:2], row[2:4]
    axis = np.arange(-ARENA + resolution, ARENA - resolution / 2, resolution)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    size = len(axis)
    gap = segment_distance(grid, np.broadcast_to(walls, (len(grid), *walls.shape))).min(axis=1)
    ok = gap > clearance
    steps = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]
    # each node's reachable neighbours, with every edge tested against the walls
    neighbours: list[list[int]] = [[] for _ in grid]
    for di, dj in steps:
        i, j = np.divmod(np.arange(len(grid)), size)
        ni, nj = i + di, j + dj
        inside = (ni >= 0) & (ni < size) & (nj >= 0) & (nj < size)
        a = np.flatnonzero(inside & ok)
        b = ni[a] * size + nj[a]
        keep = ok[b]
        a, b = a[keep], b[keep]
        free = _free(np.concatenate([grid[a], grid[b]], axis=1), walls)
        for u, v in zip(a[free].tolist(), b[free].tolist(), strict=True):
            neighbours[u].append(v)

    def entries(point: np.ndarray) -> np.ndarray:
        """The free grid points a straight segment from ``point`` reaches."""
        near = np.flatnonzero(ok & (np.abs(grid - point).max(axis=1) <= 2 * resolution))
        segments = np.concatenate([np.broadcast_to(point, (len(near), 2)), grid[near]], axis=1)
        return near[_free(segments, walls)]

    sources, targets = entries(start), set(entries(goal).tolist())
    previous = dict.fromkeys(sources.tolist(), -1)
    queue = deque(sources.tolist())
    end = None
    while queue:
        node = queue.popleft()
        if node in targets:
            end = node
            break
        for nxt in neighbours[node]:
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    if end is None:
        return None
    nodes = [end]
    while previous[nodes[-1]] >= 0:
        nodes.append(previous[nodes[-1]])
    path = np.concatenate([start[None], grid[nodes[::-1]], goal[None]])
    return _straighten(path, walls, clearance)


def _clear(leg: np.ndarray, walls: np.ndarray, clearance: float) -> bool:
    """Whether the segment ``leg [4]`` crosses no wall and stays ``clearance`` from each (two
    segments that do not cross are closest at an end of one of them)."""
    if not _free(leg[None], walls)[0]:
        return False
    ends = segment_distance(leg.reshape(2, 2), np.broadcast_to(walls, (2, *walls.shape)))
    wall_ends = walls.reshape(-1, 2)
    to_leg = segment_distance(wall_ends, np.broadcast_to(leg, (len(wall_ends), 1, 4)))
    return bool(min(ends.min(), to_leg.min()) > clearance)


def _straighten(path: np.ndarray, walls: np.ndarray, clearance: float) -> np.ndarray:
    """Skip waypoints while the straight segment to a later one stays clear of the walls."""
    out, i = [path[0]], 0
    while i < len(path) - 1:
        j = len(path) - 1
        while j > i + 1 and not _clear(np.concatenate([path[i], path[j]]), walls, clearance):
            j -= 1
        out.append(path[j])
        i = j
    return np.stack(out)
