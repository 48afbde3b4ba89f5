"""The obstacle world: ``metarobust/Navigation2DObstacles-v0``, single and natively vectorized.

A point moves in the walled arena ``[-1, 1]^2`` from a level's start towards its goal, by its
action clipped to ``ACTION_LIMIT`` per component each step. Walls are line segments; a move
that would cross one stops just before it and slides along it with what is left of the move
(a second wall met while sliding stops the point), so no step, however long, passes through a
wall: every move is tested as a segment against every wall, not sampled.

Observation (float32): position, goal, and the free distance along ``NUM_RAYS`` rays at fixed
world angles, each divided by ``RAY_RANGE`` and capped at 1 (a policy can read an unseen layout
from them). Reward: minus ``distance_weight`` (default 1) times the distance to the goal after
the move, plus ``ARRIVAL_BONUS`` on arrival (within ``GOAL_RADIUS``), which terminates the
episode; ``distance_weight=0`` leaves only the arrival bonus, as in dcd's mazes, where the
discount is what makes a shorter way pay.

A level is the task ``{"start": [x, y], "goal": [x, y], "walls": [[x1, y1, x2, y2], ...]}``
(at most ``MAX_WALLS`` segments; ``box_walls`` gives a box's four), set through
``reset(options={"task": level})``. The single env and the vector env share one step function,
so N single envs and a vector of N agree to the bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from metarobust.envs.tasks import (
    TaskDistribution,
    check_task_keys,
    is_nonnegative_number,
    read_goal,
)
from metarobust.envs.vector_base import TaskVectorEnv
from metarobust.errors import ConfigError

ARENA = 1.0  # the arena is [-ARENA, ARENA]^2, walled
ACTION_LIMIT = 0.1
MAX_WALLS = 16
NUM_RAYS = 16
RAY_RANGE = 1.0
GOAL_RADIUS = 0.05
ARRIVAL_BONUS = 10.0
MAX_EPISODE_STEPS = 200
MARGIN = 1e-4  # how far a stopped point stays from the wall it met
OBS_DIM = 4 + NUM_RAYS
DEFAULT_LEVEL: dict[str, Any] = {
    "start": [-0.8, -0.8],
    "goal": [0.8, 0.8],
    "walls": [[-0.6, 0.2, 0.6, -0.2]],
}

_NAME = "Navigation2DObstacles"
_LOW, _HIGH = np.float32(-ACTION_LIMIT), np.float32(ACTION_LIMIT)
_ANGLES = np.linspace(0.0, 2.0 * np.pi, NUM_RAYS, endpoint=False)
_RAYS32 = (RAY_RANGE * np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1)).astype(np.float32)
_A = ARENA
_BOUNDARY = np.array(
    [[-_A, -_A, _A, -_A], [_A, -_A, _A, _A], [_A, _A, -_A, _A], [-_A, _A, -_A, -_A]]
)
_ROW = 4 + 4 * MAX_WALLS  # one level as a row: start, goal, walls (NaN where there is none)


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
    row = np.full(_ROW, np.nan)
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


class RandomLevels(TaskDistribution):
    """Domain randomisation of levels: start and goal uniform in ``[-0.9, 0.9]^2`` at least
    ``min_distance`` apart, then ``num_walls`` (uniform in its range) segments of random centre,
    angle and ``wall_length``, each redrawn while it passes within ``clearance`` of the start
    or the goal. With probability ``trap_prob`` the level is built around a trap first (see
    ``trap_walls``: a barrier with one gap, or a cup around the start), and its random walls
    are cut to leave room for the trap's within ``num_walls``. Levels may be unsolvable (a
    wall can close a passage); generators that need solvable ones check them."""

    def __init__(
        self,
        num_walls: tuple[int, int] = (0, 8),
        wall_length: tuple[float, float] = (0.2, 0.8),
        min_distance: float = 0.5,
        clearance: float = 2 * GOAL_RADIUS,
        trap_prob: float = 0.0,
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
        self.trap_prob = float(trap_prob)

    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        return [self._one(rng) for _ in range(n)]

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


def observe(pos: np.ndarray, geometry: LevelGeometry) -> np.ndarray:
    """``[position, goal, ray readings]`` (float32, ``[n, OBS_DIM]``)."""
    readings = ray_readings(pos, geometry)
    return np.concatenate([pos, geometry.goals, readings], axis=1, dtype=np.float32)


def step_points(
    pos: np.ndarray, actions: np.ndarray, geometry: LevelGeometry, distance_weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of a batch: new positions, rewards (float64), arrived ``[n]``."""
    _, new_pos = move_point(pos, actions, geometry.walls)
    diff = new_pos - geometry.goals
    distance = np.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])
    arrived = distance < GOAL_RADIUS
    return new_pos, ARRIVAL_BONUS * arrived - distance_weight * distance, arrived


def check_distance_weight(weight: Any) -> float:
    """``weight`` as a float >= 0, or a one-line ConfigError."""
    if not is_nonnegative_number(weight):
        raise ConfigError(f"distance_weight expected a finite number >= 0, got {weight!r}")
    return float(weight)


def _spaces() -> tuple[spaces.Box, spaces.Box]:
    low = np.concatenate([[-ARENA] * 4, np.zeros(NUM_RAYS)]).astype(np.float32)
    high = np.concatenate([[ARENA] * 4, np.ones(NUM_RAYS)]).astype(np.float32)
    observation = spaces.Box(low, high, dtype=np.float32)
    action = spaces.Box(-ACTION_LIMIT, ACTION_LIMIT, shape=(2,), dtype=np.float32)
    return observation, action


class Navigation2DObstaclesEnv(gym.Env[np.ndarray, np.ndarray]):
    """The obstacle world (see the module doc); the task is a level."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, task: Mapping[str, Any] | None = None, distance_weight: float = 1.0) -> None:
        self.observation_space, self.action_space = _spaces()
        self.distance_weight = check_distance_weight(distance_weight)
        self._pos = np.zeros((1, 2))
        self.set_task(DEFAULT_LEVEL if task is None else task)

    @property
    def task(self) -> dict[str, Any]:
        """The current level (a fresh dict)."""
        return level_dict(self._row[0].tolist())

    def set_task(self, task: Mapping[str, Any]) -> None:
        """Switch to the level ``task``; it takes effect from the next reset."""
        self._set_row(level_row(task)[None])

    def _set_row(self, row: np.ndarray) -> None:
        self._row, self._geometry = row, LevelGeometry(row)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Back to the level's start; ``options={"task": level}`` switches level first."""
        super().reset(seed=seed)
        if options is not None and "task" in options:
            self.set_task(options["task"])
        self._pos = self._row[:, :2].copy()
        return observe(self._pos, self._geometry)[0], {}

    def get_state(self) -> dict[str, Any]:
        """Position and level, checkpoint-safe."""
        return {"pos": self._pos.tolist(), "level": self._row.tolist()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``get_state``."""
        self._pos = np.asarray(state["pos"], dtype=np.float64).reshape(1, 2)
        self._set_row(np.asarray(state["level"], dtype=np.float64).reshape(1, _ROW))

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        actions = np.asarray(action, dtype=np.float32).reshape(1, 2)
        self._pos, reward, arrived = step_points(
            self._pos, actions, self._geometry, self.distance_weight
        )
        return observe(self._pos, self._geometry)[0], float(reward[0]), bool(arrived[0]), False, {}


class Navigation2DObstaclesVectorEnv(TaskVectorEnv):
    """``num_envs`` obstacle worlds stepped in one NumPy operation, each with its own level and
    time limit; autoreset modes and masked resets as in ``TaskVectorEnv``."""

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        task: Mapping[str, Any] | None = None,
        distance_weight: float = 1.0,
    ) -> None:
        super().__init__(num_envs, max_episode_steps, autoreset_mode)
        self.distance_weight = check_distance_weight(distance_weight)
        self.single_observation_space, self.single_action_space = _spaces()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._pos = np.zeros((self.num_envs, 2))
        self._task_values = np.zeros((self.num_envs, _ROW))  # levels, one row each
        self._geometry: LevelGeometry | None = None  # of _task_values, made when first needed
        self.set_task(DEFAULT_LEVEL if task is None else task)

    def _tasks_changed(self) -> None:
        self._geometry = None  # a batch of resets into many levels builds it once, not per level

    @property
    def geometry(self) -> LevelGeometry:
        """The current levels' geometry."""
        if self._geometry is None:
            self._geometry = LevelGeometry(self._task_values)
        return self._geometry

    def _parse_task(self, task: Any) -> np.ndarray:
        return level_row(task)

    def _task_dict(self, value: list[float]) -> dict[str, Any]:
        return level_dict(value)

    def _reset_envs(self, mask: np.ndarray, seeds: Sequence[int | None]) -> None:
        self._pos[mask] = self._task_values[mask, :2]

    def _step_envs(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._pos, rewards, arrived = step_points(
            self._pos, actions, self.geometry, self.distance_weight
        )
        return rewards, arrived

    def _observe(self) -> np.ndarray:
        return observe(self._pos, self.geometry)

    def get_state(self) -> dict[str, Any]:
        """Every env's position, level, step count and RNG, checkpoint-safe."""
        return {
            "pos": self._pos.tolist(),
            "levels": self._task_values.tolist(),
            **self._counter_state(),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``get_state``."""
        self._pos = np.asarray(state["pos"], dtype=np.float64).reshape(self.num_envs, 2)
        self._task_values = np.asarray(state["levels"], dtype=np.float64).reshape(
            self.num_envs, _ROW
        )
        self._tasks_changed()
        self._set_counter_state(state)
