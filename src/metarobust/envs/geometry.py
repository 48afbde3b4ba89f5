"""The obstacle world's geometry: the arena's measures, and moving points and casting rays among
walls, for a batch of envs at once.

Walls are line segments ``[x1, y1, x2, y2]``, ``[n, w, 4]`` for ``n`` envs (NaN rows where an
env has fewer; ``level_walls`` adds the arena's boundary to a batch of level rows). A move that
would cross a wall stops just before it and slides along it with what is left of the move (a
second wall met while sliding stops the point), so no step, however long, passes through a
wall: every move is tested as a segment against every wall, not sampled (``move_point``). The
range readings are the free distance along ``NUM_RAYS`` rays at fixed world angles
(``ray_readings``, with ``LevelGeometry`` holding what a batch of levels fixes). The env that
steps on these is ``metarobust.envs.obstacles``.
"""

from __future__ import annotations

import numpy as np

ARENA = 1.0  # the arena is [-ARENA, ARENA]^2, walled
ACTION_LIMIT = 0.1
MAX_WALLS = 16
NUM_RAYS = 16
RAY_RANGE = 1.0
GOAL_RADIUS = 0.05
MARGIN = 1e-4  # how far a stopped point stays from the wall it met

_LOW, _HIGH = np.float32(-ACTION_LIMIT), np.float32(ACTION_LIMIT)
_ANGLES = np.linspace(0.0, 2.0 * np.pi, NUM_RAYS, endpoint=False)
_RAYS32 = (RAY_RANGE * np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1)).astype(np.float32)
_A = ARENA
_BOUNDARY = np.array(
    [[-_A, -_A, _A, -_A], [_A, -_A, _A, _A], [_A, _A, -_A, _A], [-_A, _A, -_A, -_A]]
)


def first_hit(
    pos: np.ndarray, move: np.ndarray, walls: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where the segments ``pos -> pos + move`` (``[n, 2]``) first meet the envs' ``walls
    [n, w, 4]`` (NaN rows meet nothing): the fraction of the move in ``[0, 1]`` (inf where none
    is met) and the wall's index.

    With ``A = a - p`` a wall's start seen from the point, ``e`` its direction and ``d`` the
    move, they meet at ``t = (A x e) / (d x e)`` along the move and ``u = (A x d) / (d x e)``
    along the wall; parallel moves (``d x e = 0``) meet nothing. Wall columns no env uses are
    left out."""
    n = len(pos)
    used = np.flatnonzero(~np.isnan(walls[..., 0]).all(axis=0))
    if used.size == 0:
        return np.full(n, np.inf), np.zeros(n, np.int64)
    walls = walls[:, used]
    ax, ay = walls[..., 0] - pos[:, :1], walls[..., 1] - pos[:, 1:]  # [n, w]
    ex, ey = walls[..., 2] - walls[..., 0], walls[..., 3] - walls[..., 1]
    dx, dy = move[:, :1], move[:, 1:]
    den = dx * ey - dy * ex
    with np.errstate(divide="ignore", invalid="ignore"):
        t, u = (ax * ey - ay * ex) / den, (ax * dy - ay * dx) / den
    t = np.where((t >= 0) & (t <= 1) & (u >= 0) & (u <= 1), t, np.inf)
    nearest = t.argmin(axis=1)
    return t[np.arange(n), nearest], used[nearest]


def segment_distance(points: np.ndarray, walls: np.ndarray) -> np.ndarray:
    """Distance from ``points [n, 2]`` to each of the segments ``walls [n, w, 4]``: ``[n, w]``."""
    a, b = walls[..., :2], walls[..., 2:]
    e, ap = b - a, points[:, None, :] - a
    length2 = (e * e).sum(-1)
    s = np.clip(np.divide((ap * e).sum(-1), length2, out=np.zeros_like(length2),
                          where=length2 > 0), 0.0, 1.0)  # fmt: skip
    closest = a + s[..., None] * e
    return np.sqrt(((points[:, None, :] - closest) ** 2).sum(-1))


def level_walls(rows: np.ndarray) -> np.ndarray:
    """The arena's boundary and the walls of each level row: ``[n, 4 + MAX_WALLS, 4]`` (NaN
    rows where a level has fewer walls)."""
    n = len(rows)
    boundary = np.broadcast_to(_BOUNDARY, (n, 4, 4))
    return np.concatenate([boundary, rows[:, 4:].reshape(n, MAX_WALLS, 4)], axis=1)


RAY_CHUNK = 256  # envs per block of the ray test, so its [walls, block, rays] arrays stay in cache


class LevelGeometry:
    """What stepping and observing a batch of levels (rows, as ``level_row`` makes them) needs,
    computed once per batch of levels rather than every step.

    ``walls`` holds the boundary and the level walls any env uses (float64, NaN rows where an
    env has fewer). For the rays, with ``D`` a ray's direction and a level wall from ``a`` along
    ``e``, a ray from ``p`` meets it at ``t = (a x e - p x e) / (D x e)`` along the ray and
    ``u = (a x D - p x D) / (D x e)`` along the wall (``x`` the 2D cross product): everything
    but the ``p`` terms is fixed by the level and kept here (float32). The arena's boundary
    is met at ``min((±ARENA - p) / D)`` per axis, without a wall test."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.goals = rows[:, 2:4]
        walls = level_walls(rows)
        self.walls = walls[:, ~np.isnan(walls[..., 0]).all(axis=0)]  # the boundary is never NaN
        # the ray terms of the level walls wall-major, [w, n, 1] or [w, n, r]: the nearest wall is
        # then an elementwise minimum over whole [n, r] planes, not a reduction over a short axis
        level = self.walls[:, 4:].astype(np.float32).transpose(1, 0, 2)[..., None, :]
        ax, ay, bx, by = level[..., 0], level[..., 1], level[..., 2], level[..., 3]
        self.ex, self.ey = bx - ax, by - ay
        self.a_cross_e = ax * self.ey - ay * self.ex
        dx, dy = _RAYS32[:, 0], _RAYS32[:, 1]  # [r]
        with np.errstate(divide="ignore", invalid="ignore"):  # parallel: inf, meets nothing
            self.inv_den = 1 / (dx * self.ey - dy * self.ex)
        self.a_cross_d = ax * dy - ay * dx


_BOX_SIDE = np.where(_RAYS32 >= 0, np.float32(ARENA), np.float32(-ARENA))  # [r, 2]
with np.errstate(divide="ignore"):
    _INV_RAYS = 1 / _RAYS32


def ray_readings(pos: np.ndarray, geometry: LevelGeometry) -> np.ndarray:
    """The free distance along every ray from ``pos [n, 2]`` to the walls of ``geometry``, as
    a fraction of ``RAY_RANGE`` capped at 1: ``[n, NUM_RAYS]`` float32."""
    p = pos.astype(np.float32)
    px, py = p[:, :1], p[:, 1:]
    # A point a grazing stop left within float32 rounding of the boundary reads as on it:
    # 0 x inf (a ray along that side) is NaN there, and fmin takes the other axis instead.
    with np.errstate(invalid="ignore"):
        to_x = (_BOX_SIDE[:, 0] - px) * _INV_RAYS[:, 0]  # [n, r]
        to_y = (_BOX_SIDE[:, 1] - py) * _INV_RAYS[:, 1]
    readings = np.fmin(np.fmin(to_x, to_y), np.float32(1))
    if len(geometry.ex) == 0:
        return readings
    p_cross_e = px * geometry.ey - py * geometry.ex  # [w, n, 1]
    p_cross_d = px * _RAYS32[:, 1] - py * _RAYS32[:, 0]  # [n, r]
    for lo in range(0, len(p), RAY_CHUNK):
        block = slice(lo, lo + RAY_CHUNK)
        inv_den = geometry.inv_den[:, block]
        with np.errstate(invalid="ignore"):  # 0 x inf on a parallel wall: NaN, not a hit
            t = (geometry.a_cross_e[:, block] - p_cross_e[:, block]) * inv_den
            u = (geometry.a_cross_d[:, block] - p_cross_d[block]) * inv_den
        hit = t >= 0
        hit &= u >= 0
        hit &= u <= 1
        nearest = np.where(hit, t, np.float32(1)).min(axis=0)
        np.minimum(readings[block], nearest, out=readings[block])
    return readings


def _advance(pos: np.ndarray, move: np.ndarray, walls: np.ndarray) -> tuple[np.ndarray, ...]:
    """Move as far as the first wall allows (stopping ``MARGIN`` short of it): new positions,
    whether a wall was met, the fraction of the move made, and the wall met."""
    t, index = first_hit(pos, move, walls)
    blocked = np.isfinite(t)
    length = np.sqrt((move * move).sum(-1))
    safe = np.divide(MARGIN, length, out=np.zeros_like(length), where=length > 0)
    fraction = np.where(blocked, np.maximum(t - safe, 0.0), 1.0)
    return pos + fraction[:, None] * move, blocked, fraction, index


def move_point(
    pos: np.ndarray, actions: np.ndarray, walls: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The path of points ``pos [n, 2]`` (float64) moved by the clipped ``actions`` among
    ``walls [n, w, 4]`` (NaN rows meet nothing): they stop at the first wall met (the path's
    corner), slide along it with the rest of the move and stop at the next wall (the end).
    Returns ``(corner, end)``; the corner is the end where no wall was met."""
    move = np.clip(actions, _LOW, _HIGH).astype(np.float64)
    corner, blocked, fraction, index = _advance(pos, move, walls)
    end = corner.copy()
    if blocked.any():
        wall = np.take_along_axis(walls, index[:, None, None], axis=1)[:, 0]  # [n, 4]
        e = wall[:, 2:] - wall[:, :2]
        e /= np.sqrt((e * e).sum(-1, keepdims=True))
        rest = (1.0 - fraction)[:, None] * move
        slide = (rest * e).sum(-1, keepdims=True) * e
        end[blocked], *_ = _advance(corner[blocked], slide[blocked], walls[blocked])
    return corner, end
