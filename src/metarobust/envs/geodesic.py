"""The walking distance to the goal in the obstacle world: the length of the shortest way around
the walls, not the straight line through them.

Per level, a distance field on a grid of ``FIELD_SIZE`` x ``FIELD_SIZE`` cell centres (spacing
``2 * ARENA / FIELD_SIZE``; walls at round coordinates fall between centres): Dijkstra from the
goal over the free centres, each joined to its 8 neighbours by an edge no wall crosses, and to
the goal where the goal is in plain sight within two cells (``scipy.sparse.csgraph``); the
knight's moves join the neighbours too, so a way across open ground is at most 2.7 % longer
than the straight line. A point's distance is the straight line to a goal in plain sight, or
else the shortest ``|point - centre| + field[centre]`` over the centres of its cell's corners
that it sees (the ring around them if it sees none). Where the goal cannot be reached it is
``UNREACHABLE`` (longer than any way in the arena), so a reward built on it stays finite.

Fields depend on the level only and are cached per level (``FIELD_CACHE`` of them), so the many
episodes of one task compute it once.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import NamedTuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from metarobust.envs.geometry import (
    ARENA,
    MARGIN,
    LevelGeometry,
    first_hit,
    level_walls,
    segment_distance,
)

FIELD_SIZE = 40
SPACING = 2 * ARENA / FIELD_SIZE
UNREACHABLE = 8.0 * ARENA  # longer than any way through the arena's free grid
FIELD_CACHE = 4096
_AXIS = -ARENA + SPACING / 2 + SPACING * np.arange(FIELD_SIZE)
_CENTRES = np.stack(np.meshgrid(_AXIS, _AXIS, indexing="ij"), axis=-1).reshape(-1, 2)
# each undirected edge once: the 8 neighbours and the knight's moves, so that a way across
# open ground is at most 2.7 % longer than the straight line (8 neighbours alone: 8.2 %)
_NEIGHBOURS = [(1, -1), (1, 0), (1, 1), (0, 1), (1, -2), (1, 2), (2, -1), (2, 1)]
# a point's cell's corners, from the lower left one, and the twelve centres around them
_CORNERS = np.array([(0, 0), (0, 1), (1, 0), (1, 1)])
_RING = np.array(
    [(i, j) for i in range(-1, 3) for j in range(-1, 3) if min(i, j) < 0 or max(i, j) > 1]
)


def _crosses_nothing(starts: np.ndarray, ends: np.ndarray, walls: np.ndarray) -> np.ndarray:
    """Whether each segment ``starts -> ends`` (``[m, 2]``) meets none of its walls: ``walls
    [m, w, 4]`` per segment (NaN rows meet nothing) or ``[w, 4]`` shared."""
    if walls.ndim == 2:
        walls = np.broadcast_to(walls, (len(starts), *walls.shape))
    t, _ = first_hit(starts, ends - starts, walls)
    return ~np.isfinite(t)


class LevelMap(NamedTuple):
    """What the walking distance on one level needs: ``field [FIELD_SIZE, FIELD_SIZE]``, the
    distance from each grid centre to the goal (``UNREACHABLE`` where there is no way), and
    ``open_cells [FIELD_SIZE - 1, FIELD_SIZE - 1]``, the cells no wall comes near."""

    field: np.ndarray
    open_cells: np.ndarray


def level_map(row: np.ndarray) -> LevelMap:
    """The ``LevelMap`` of the level ``row`` (as ``level_row`` makes it), cached per level."""
    return _cached_map(np.asarray(row, np.float64).tobytes())


def reachable(row: np.ndarray) -> bool:
    """Whether the goal of the level ``row`` can be walked to from its start."""
    start = row[None, :2]
    walls = level_walls(row[None])
    return bool(
        walking_distance(start, row[None, 2:4], stacked_maps(row[None]), walls)[0] < UNREACHABLE
    )


class WalkingGeometry(LevelGeometry):
    """A batch of levels' geometry and, made when first asked for, their walking-distance
    ``maps``."""

    @cached_property
    def maps(self) -> LevelMap:
        return stacked_maps(self.rows)


def stacked_maps(rows: np.ndarray) -> LevelMap:
    """The maps of the levels ``rows [n, ...]``, each part stacked ``[n, ...]``."""
    maps = [level_map(row) for row in rows]
    return LevelMap(*(np.stack(parts) for parts in zip(*maps, strict=True)))


@lru_cache(maxsize=FIELD_CACHE)
def _cached_map(key: bytes) -> LevelMap:
    row = np.frombuffer(key, np.float64)
    walls = level_walls(row[None])[0]
    walls = walls[~np.isnan(walls).any(axis=1)]
    n, goal = len(_CENTRES), row[2:4]
    gap = segment_distance(_CENTRES, np.broadcast_to(walls, (n, *walls.shape))).min(1)
    clear = gap > MARGIN
    ij = np.arange(n)
    i, j = np.divmod(ij, FIELD_SIZE)
    heads, tails = [], []
    for di, dj in _NEIGHBOURS:
        ni, nj = i + di, j + dj
        inside = (ni >= 0) & (ni < FIELD_SIZE) & (nj >= 0) & (nj < FIELD_SIZE)
        a = ij[inside & clear]
        b = (i[a] + di) * FIELD_SIZE + (j[a] + dj)
        a, b = a[clear[b]], b[clear[b]]
        # an edge from a centre further from every wall than the edge is long meets none
        free = gap[a] > SPACING * np.hypot(di, dj)
        near = np.flatnonzero(~free)
        free[near] = _crosses_nothing(_CENTRES[a[near]], _CENTRES[b[near]], walls)
        heads.append(a[free])
        tails.append(b[free])
    # the goal is node n, joined to the clear centres it sees within two cells
    near = ij[clear & (np.abs(_CENTRES - goal).max(1) <= 2 * SPACING)]
    near = near[_crosses_nothing(np.broadcast_to(goal, (len(near), 2)), _CENTRES[near], walls)]
    heads.append(np.full(len(near), n))
    tails.append(near)
    heads, tails = np.concatenate(heads), np.concatenate(tails)
    ends = np.concatenate([_CENTRES, goal[None]])
    lengths = np.sqrt(((ends[heads] - ends[tails]) ** 2).sum(1))
    graph = coo_matrix((lengths, (heads, tails)), shape=(n + 1, n + 1)).tocsr()
    field = dijkstra(graph, directed=False, indices=n)[:n]
    field = np.minimum(field, UNREACHABLE).reshape(FIELD_SIZE, FIELD_SIZE)
    # a cell (the square between four neighbouring centres) no wall comes near: its points see
    # all four corners, without a test
    middles = _AXIS[:-1] + SPACING / 2
    middles = np.stack(np.meshgrid(middles, middles, indexing="ij"), axis=-1).reshape(-1, 2)
    gaps = segment_distance(middles, np.broadcast_to(walls, (len(middles), *walls.shape)))
    open_cells = (gaps.min(1) > SPACING).reshape(FIELD_SIZE - 1, FIELD_SIZE - 1)
    for array in (field, open_cells):
        array.setflags(write=False)
    return LevelMap(field, open_cells)


def _via(
    pos: np.ndarray, fields: np.ndarray, walls: np.ndarray, offsets: np.ndarray, base: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The shortest way through the centres at ``base + offsets`` that each point sees
    (``[n]``, inf where it sees none) and whether it saw any."""
    n, k = len(pos), len(offsets)
    cells = np.clip(base[:, None, :] + offsets[None], 0, FIELD_SIZE - 1)  # [n, k, 2]
    centres = _AXIS[cells]
    starts = np.repeat(pos, k, axis=0)
    seen = _crosses_nothing(starts, centres.reshape(-1, 2), np.repeat(walls, k, axis=0))
    seen = seen.reshape(n, k)
    rows = np.arange(n)[:, None]
    to_centre = np.sqrt(((centres - pos[:, None]) ** 2).sum(-1))
    way = np.where(seen, to_centre + fields[rows, cells[..., 0], cells[..., 1]], np.inf).min(1)
    return way, seen.any(1)


def walking_distance(
    pos: np.ndarray, goals: np.ndarray, maps: LevelMap, walls: np.ndarray
) -> np.ndarray:
    """The walking distance from ``pos [n, 2]`` to ``goals [n, 2]`` on levels with ``maps``
    (their fields and open cells stacked, ``[n, ...]``) and ``walls [n, w, 4]`` (NaN rows meet
    nothing), ``[n]`` float64 (module doc)."""
    fields, open_cells = maps
    base = np.clip(np.floor((pos - _AXIS[0]) / SPACING).astype(np.int64), 0, FIELD_SIZE - 2)
    rows = np.arange(len(pos))
    cells = base[:, None, :] + _CORNERS[None]  # [n, 4, 2]
    to_corner = np.sqrt(((_AXIS[cells] - pos[:, None]) ** 2).sum(-1))
    way = (to_corner + fields[rows[:, None], cells[..., 0], cells[..., 1]]).min(1)
    tested = ~open_cells[rows, base[:, 0], base[:, 1]]  # a wall near: test what the point sees
    if tested.any():
        t = tested
        way[t], seen = _via(pos[t], fields[t], walls[t], _CORNERS, base[t])
        lost = np.flatnonzero(t)[~seen]  # squeezed against a wall: one ring further out
        if len(lost):
            way[lost], _ = _via(pos[lost], fields[lost], walls[lost], _RING, base[lost])
    straight = np.sqrt(((goals - pos) ** 2).sum(1))
    way = np.where(_crosses_nothing(pos, goals, walls), straight, way)
    return np.minimum(way, UNREACHABLE)
