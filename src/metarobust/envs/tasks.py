"""Task distributions (what MAML samples tasks from) and the checks every task dict goes through.

A task is a plain, JSON-serialisable dict: ``{"goal": [x, y]}``, ``{"velocity": 1.3}``,
``{"direction": -1}``, ``{"mass_scale": 0.8, "friction_scale": 1.2, "damping_scale": 1.0}``.
Which distribution each registered env id uses is ``metarobust.envs.task_defaults``'s.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Collection, Mapping
from numbers import Real
from typing import Any

import numpy as np

from metarobust.errors import ConfigError

DYNAMICS_KEYS = ("mass_scale", "friction_scale", "damping_scale")
FORCE_KEYS = ("force_x", "force_y", "force_z")  # a constant push, newtons (envs.dynamics)


# --------------------------------------------------------------------------- task checks


def check_task_keys(
    task: Any, env_name: str, required: Collection[str], optional: Collection[str] = ()
) -> Mapping[str, Any]:
    """Return ``task`` if it is a mapping holding all ``required`` keys and nothing unknown."""
    allowed = [*required, *optional]
    if not isinstance(task, Mapping):
        raise ConfigError(
            f"task for {env_name} must be a dict with keys {allowed}, got {type(task).__name__}"
        )
    for key in task:
        if key not in allowed:
            raise ConfigError(f"unknown task key {key!r} for {env_name}; expected keys {allowed}")
    for key in required:
        if key not in task:
            raise ConfigError(f"task for {env_name} is missing key {key!r}; got {sorted(task)}")
    return task


def _is_number(value: Any) -> bool:
    # bool is an int subclass; {"velocity": True} is a typo, not a velocity.
    return isinstance(value, Real) and not isinstance(value, bool)


def is_positive_number(value: Any) -> bool:
    """Whether ``value`` is a finite number above zero (a bool is not a number here)."""
    return _is_number(value) and math.isfinite(value) and value > 0


def is_nonnegative_number(value: Any) -> bool:
    """Whether ``value`` is a finite number at or above zero (a bool is not a number here)."""
    return _is_number(value) and math.isfinite(value) and value >= 0


def read_number(task: Mapping[str, Any], key: str, *, positive: bool = False) -> float:
    """The finite number (strictly positive if asked) under ``task[key]``, as a Python float."""
    value = task[key]
    ok = _is_number(value) and math.isfinite(value) and (not positive or value > 0)
    if not ok:
        kind = "a finite number > 0" if positive else "a finite number"
        raise ConfigError(f"task key {key!r} expected {kind}, got {value!r}")
    return float(value)


def read_direction(task: Mapping[str, Any], key: str = "direction") -> int:
    """The ``+1`` or ``-1`` under ``task[key]``, as a Python int."""
    value = task[key]
    if not (_is_number(value) and value in (1, -1)):
        raise ConfigError(f"task key {key!r} expected +1 or -1, got {value!r}")
    return int(value)


def read_goal(task: Mapping[str, Any], key: str = "goal") -> list[float]:
    """The finite ``[x, y]`` under ``task[key]``, as a list of two Python floats."""
    value = task[key]
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if isinstance(value, (str, bytes)) or arr is None or arr.shape != (2,):
        raise ConfigError(f"task key {key!r} expected a pair of numbers [x, y], got {value!r}")
    if not np.isfinite(arr).all():
        raise ConfigError(f"task key {key!r} expected finite numbers [x, y], got {value!r}")
    return [float(arr[0]), float(arr[1])]


# --------------------------------------------------------------------------- distributions


class TaskDistribution(abc.ABC):
    """A distribution over tasks; ``sample`` draws from the given generator only."""

    @abc.abstractmethod
    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        """Draw ``n`` independent tasks using ``rng`` (same generator state -> same tasks)."""

    @property
    @abc.abstractmethod
    def feature_dim(self) -> int:
        """The length of ``features``."""

    @abc.abstractmethod
    def _task_features(self, task: Mapping[str, Any]) -> list[float]:
        """The numbers that tell one task of this distribution from another."""

    def meta_test(self) -> TaskDistribution:
        """What a meta-test draws its held-out tasks from: this distribution (fresh draws,
        with a seed of their own), or a benchmark's own test split."""
        return self

    def box(self) -> tuple[np.ndarray, np.ndarray] | None:
        """For a distribution uniform over a box of task parameters (its ``features``): the
        box's ``(low, high)`` corners, so a sampler can reshape it (``task_at`` makes the
        task at a point); None for any other."""
        return None

    def task_at(self, point: np.ndarray) -> dict[str, Any]:
        """The task whose parameters (``features``) are ``point``, inside ``box()``."""
        raise NotImplementedError(f"{type(self).__name__} is not uniform over a box")

    def features(self, task: Mapping[str, Any] | None) -> np.ndarray:
        """``task`` as ``feature_dim`` float32 numbers (what an adversary that observes the
        task sees); no task (the env's own) -> zeros."""
        if task is None:
            return np.zeros(self.feature_dim, np.float32)
        return np.asarray(self._task_features(task), np.float32).reshape(self.feature_dim)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"number of tasks to sample expected an int >= 0, got {n!r}")
    return int(n)


def _check_range(name: str, low: float, high: float) -> tuple[float, float]:
    if not (_is_number(low) and _is_number(high) and math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{name} range expected finite numbers, got ({low!r}, {high!r})")
    if low > high:
        raise ConfigError(f"{name} range expected low <= high, got ({low!r}, {high!r})")
    return float(low), float(high)


class UniformGoal(TaskDistribution):
    """Goals ``{"goal": [x, y]}`` uniform in the square ``[low, high]^2`` (MAML 2D navigation)."""

    def __init__(self, low: float = -0.5, high: float = 0.5) -> None:
        self.low, self.high = _check_range("goal", low, high)

    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        goals = rng.uniform(self.low, self.high, size=(_check_n(n), 2))
        return [{"goal": g} for g in goals.tolist()]

    feature_dim = 2

    def _task_features(self, task: Mapping[str, Any]) -> list[float]:
        return read_goal(task)

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        return np.full(2, self.low), np.full(2, self.high)

    def task_at(self, point: np.ndarray) -> dict[str, Any]:
        return {"goal": [float(point[0]), float(point[1])]}


class DiskGoal(TaskDistribution):
    """Goals ``{"goal": [x, y]}`` uniform over the area of a disk of ``radius`` at the origin."""

    def __init__(self, radius: float = 3.0) -> None:
        if not (_is_number(radius) and math.isfinite(radius) and radius > 0):
            raise ConfigError(f"goal radius expected a finite number > 0, got {radius!r}")
        self.radius = float(radius)

    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        u = rng.uniform(0.0, 1.0, size=(_check_n(n), 2))
        # sqrt makes the density uniform in area rather than in radius.
        r = self.radius * np.sqrt(u[:, 0])
        theta = 2.0 * np.pi * u[:, 1]
        goals = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
        return [{"goal": g} for g in goals.tolist()]

    feature_dim = 2

    def _task_features(self, task: Mapping[str, Any]) -> list[float]:
        return read_goal(task)


class RingGoal(TaskDistribution):
    """Goals ``{"goal": [x, y]}`` on the circle of ``radius`` at the origin, uniform in angle."""

    def __init__(self, radius: float = 0.5) -> None:
        if not is_positive_number(radius):
            raise ConfigError(f"goal radius expected a finite number > 0, got {radius!r}")
        self.radius = float(radius)

    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        theta = rng.uniform(0.0, 2.0 * np.pi, size=_check_n(n))
        goals = self.radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        return [{"goal": g} for g in goals.tolist()]

    feature_dim = 2

    def _task_features(self, task: Mapping[str, Any]) -> list[float]:
        return read_goal(task)


class UniformVelocity(TaskDistribution):
    """Target velocities ``{"velocity": v}`` uniform in ``[low, high]``."""

    def __init__(self, low: float = 0.0, high: float = 2.0) -> None:
        self.low, self.high = _check_range("velocity", low, high)

    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        velocities = rng.uniform(self.low, self.high, size=_check_n(n))
        return [{"velocity": v} for v in velocities.tolist()]

    feature_dim = 1

    def _task_features(self, task: Mapping[str, Any]) -> list[float]:
        return [read_number(task, "velocity")]

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([self.low]), np.array([self.high])

    def task_at(self, point: np.ndarray) -> dict[str, Any]:
        return {"velocity": float(point[0])}


class RandomDirection(TaskDistribution):
    """Directions ``{"direction": +1 or -1}``, each with probability 1/2."""

    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        signs = rng.integers(0, 2, size=_check_n(n)) * 2 - 1
        return [{"direction": s} for s in signs.tolist()]

    feature_dim = 1

    def _task_features(self, task: Mapping[str, Any]) -> list[float]:
        return [float(read_direction(task))]


class DynamicsScales(TaskDistribution):
    """Dynamics tasks with each scale, and each force given a range, uniform in its own
    ``(low, high)`` range.

    A scale given as ``None`` is left out of the tasks (it then stays at its nominal 1.0); so
    is a force (0.0), the default. The scales' defaults (0.5 to 1.5 times nominal for mass,
    friction and damping) are this project's choice, not a published setting. Forces are in
    newtons on the env's first body (``metarobust.envs.dynamics``).
    """

    def __init__(
        self,
        mass_scale: tuple[float, float] | None = (0.5, 1.5),
        friction_scale: tuple[float, float] | None = (0.5, 1.5),
        damping_scale: tuple[float, float] | None = (0.5, 1.5),
        force_x: tuple[float, float] | None = None,
        force_y: tuple[float, float] | None = None,
        force_z: tuple[float, float] | None = None,
    ) -> None:
        given = {"mass_scale": mass_scale, "friction_scale": friction_scale}
        given |= {"damping_scale": damping_scale, "force_x": force_x, "force_y": force_y}
        given["force_z"] = force_z
        self.ranges: dict[str, tuple[float, float]] = {}
        for key, bounds in given.items():
            if bounds is None:
                continue
            if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
                raise ConfigError(f"{key} range expected (low, high), got {bounds!r}")
            low, high = _check_range(key, *bounds)
            if key in DYNAMICS_KEYS and low <= 0:
                raise ConfigError(f"{key} range expected low > 0, got ({low!r}, {high!r})")
            self.ranges[key] = (low, high)

    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        n = _check_n(n)
        # One draw per key in a fixed order, so the stream does not depend on dict internals.
        columns = {k: rng.uniform(lo, hi, size=n).tolist() for k, (lo, hi) in self.ranges.items()}
        return [{k: col[i] for k, col in columns.items()} for i in range(n)]

    @property
    def feature_dim(self) -> int:
        return len(self.ranges)

    def _task_features(self, task: Mapping[str, Any]) -> list[float]:
        # a scale the task leaves out is nominal, a force zero
        return [
            read_number(task, k, positive=k in DYNAMICS_KEYS) if k in task else _NOMINAL[k]
            for k in self.ranges
        ]

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        bounds = np.array(list(self.ranges.values()), dtype=np.float64).reshape(-1, 2)
        return bounds[:, 0], bounds[:, 1]

    def task_at(self, point: np.ndarray) -> dict[str, Any]:
        return {k: float(v) for k, v in zip(self.ranges, point, strict=True)}


_NOMINAL = dict.fromkeys(DYNAMICS_KEYS, 1.0) | dict.fromkeys(FORCE_KEYS, 0.0)


class WithDynamics(TaskDistribution):
    """A task env's tasks, each with its own dynamics: ``task`` and ``dynamics`` drawn
    independently and merged into one dict (``{"velocity": 1.3, "mass_scale": 0.7,
    "force_x": -20.0}``), as a ``<Task>Dynamics-v0`` env takes them. Uniform over a box when
    both parts are (their boxes side by side)."""

    def __init__(self, task: TaskDistribution, dynamics: DynamicsScales) -> None:
        self.task, self.dynamics = task, dynamics

    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        tasks, dynamics = self.task.sample(n, rng), self.dynamics.sample(n, rng)
        return [{**t, **d} for t, d in zip(tasks, dynamics, strict=True)]

    def meta_test(self) -> WithDynamics:
        """The task part's meta-test tasks, each with its own dynamics drawn the same way."""
        return WithDynamics(self.task.meta_test(), self.dynamics)

    @property
    def feature_dim(self) -> int:
        return self.task.feature_dim + self.dynamics.feature_dim

    def _task_features(self, task: Mapping[str, Any]) -> list[float]:
        return [*self.task.features(task), *self.dynamics.features(task)]

    def box(self) -> tuple[np.ndarray, np.ndarray] | None:
        boxes = self.task.box(), self.dynamics.box()
        if boxes[0] is None:
            return None
        return np.concatenate([boxes[0][0], boxes[1][0]]), np.concatenate(
            [boxes[0][1], boxes[1][1]]
        )

    def task_at(self, point: np.ndarray) -> dict[str, Any]:
        k = self.task.feature_dim
        return {**self.task.task_at(point[:k]), **self.dynamics.task_at(point[k:])}
