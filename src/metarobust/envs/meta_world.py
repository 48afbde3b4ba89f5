"""Meta-World (Yu et al. 2019; v3, on Gymnasium and MuJoCo 3) as task envs whose tasks are data.

A task names one task of a Meta-World benchmark and nothing else:

    {"benchmark": "ML1", "env_name": "reach-v3", "seed": 0, "split": "train", "index": 7}

is the 8th ``reach-v3`` task of ``metaworld.ML1("reach-v3", seed=0).train_tasks`` (for ML10 and
ML45, of ``metaworld.ML10(seed=0)``'s tasks of that env). The env rebuilds the benchmark from
these fields (once per process and benchmark) and hands Meta-World the task it made itself, so
no bytes of Meta-World's pickled task ever enter a config, checkpoint or message; a task dict
that names anything else is refused with one line.

Meta-World builds every task of a benchmark when it is constructed (about 4 s for ML1 and 15-25
s for ML10 on one core); the benchmarks are kept, so that happens once per process.
``metarobust/MetaWorld-v0`` stops an episode at Meta-World's horizon, 500 steps, and reports
``info["success"]`` (1.0 on a step that solves the task) beside the reward. Its envs test
whether the gripper holds the object on arrays (``touching_object``) where Meta-World walks
the contact list in Python, a fifth of a push or pick-place step, and read the object's
orientation without SciPy's checks and projection (``QuickRotation``), a third of a reach
step; the answers are the same bit for bit.

``metarobust/MetaWorldDynamics-v0`` takes the dynamics keys of ``metarobust.envs.dynamics`` in
the same task dict (``{..., "index": 7, "mass_scale": 2.0, "friction_scale": 0.5, "force_x":
-3.0}``), applied to the task's object, not to the robot (whose arm Meta-World moves through
a mocap body, so its masses hardly matter):

- the object is every body outside the robot and the table in a tree that moves on a joint
  (the puck of reach/push/pick-place, a door and its handle, a drawer); ``mass_scale`` scales
  their masses and inertias, ``damping_scale`` their joints' damping (a door's hinge);
- ``friction_scale`` scales the sliding friction of the table's and the object's geoms: MuJoCo
  takes the larger of a contact pair's frictions, so scaling the table's alone would leave the
  object sliding on its own;
- ``force_x/y/z`` (newtons, world frame) act on the object's first body with a joint (the
  puck; the door's moving leaf) for the whole episode.

Meta-World is an optional extra: ``pip install -e ".[metaworld]"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from types import MethodType
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from metarobust.envs.dynamics import ModelDynamics, read_dynamics
from metarobust.envs.task_env import TaskEnv
from metarobust.envs.tasks import DYNAMICS_KEYS, TaskDistribution, _check_n, check_task_keys
from metarobust.errors import ConfigError

BENCHMARKS = ("ML1", "ML10", "ML45")
SPLITS = ("train", "test")
TASKS_PER_ENV = 50  # Meta-World's goals per env and split
HORIZON = 500  # Meta-World's max_path_length
DEFAULT_TASK: dict[str, Any] = {
    "benchmark": "ML1", "env_name": "reach-v3", "seed": 0, "split": "train", "index": 0,
}  # fmt: skip
_KEYS = tuple(DEFAULT_TASK)
_STATE_KEYS = ("physics", "steps", "previous_frame", "last_stable", "unstable")


def _metaworld() -> Any:
    try:
        import metaworld
    except ImportError:
        raise ConfigError(
            'Meta-World is not installed: pip install -e ".[metaworld]" (metaworld 3.1)'
        ) from None
    return metaworld


def benchmark(name: str, env_name: str, seed: int) -> Any:
    """The Meta-World benchmark ``name`` built with ``seed`` (ML1: of ``env_name``; the others
    hold every env and ignore it)."""
    return _built(name, env_name if name == "ML1" else "", seed)


@lru_cache(maxsize=4)
def _built(name: str, env_name: str, seed: int) -> Any:
    metaworld = _metaworld()
    if name == "ML1":
        return metaworld.ML1(env_name, seed=seed)
    return getattr(metaworld, name)(seed=seed)


def split_env_names(name: str, env_name: str, seed: int, split: str) -> list[str]:
    """The env names of a benchmark's split (ML1: ``env_name`` alone)."""
    if name == "ML1":
        return [env_name]
    bench = benchmark(name, env_name, seed)
    return list(bench.train_classes if split == "train" else bench.test_classes)


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"MetaWorld task: {key} expected one of {choices}, got {value!r}")
    return value


def _floats(state: Mapping[str, Any], key: str, size: int) -> np.ndarray:
    """``state[key]``, a list of ``size`` numbers, as float64."""
    value = state[key]
    if not (isinstance(value, list) and len(value) == size):
        raise ConfigError(f"MetaWorld state: {key} expected a list of {size} numbers")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        raise ConfigError(f"MetaWorld state: {key} expected numbers only")
    return np.array(value, dtype=np.float64)


def _check_count(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"MetaWorld task: {key} expected an int >= 0, got {value!r}")
    return int(value)


def parse_task(task: Any) -> dict[str, Any]:
    """``task`` checked field by field (a one-line ``ConfigError`` names the first bad one)."""
    task = check_task_keys(task, "MetaWorld", required=_KEYS)
    name = _check_choice("benchmark", task["benchmark"], BENCHMARKS)
    split = _check_choice("split", task["split"], SPLITS)
    seed, index = _check_count("seed", task["seed"]), _check_count("index", task["index"])
    env_name = task["env_name"]
    if index >= TASKS_PER_ENV:
        raise ConfigError(f"MetaWorld task: index expected < {TASKS_PER_ENV}, got {index}")
    if not isinstance(env_name, str) or env_name not in _metaworld().ML1.ENV_NAMES:
        raise ConfigError(
            f"MetaWorld task: env_name expected a Meta-World v3 env, got {env_name!r}"
        )
    names = split_env_names(name, env_name, seed, split)
    if env_name not in names:
        raise ConfigError(
            f"MetaWorld task: {env_name!r} is not in {name}'s {split} split, "
            f"expected one of {names}"
        )
    return {"benchmark": name, "env_name": env_name, "seed": seed, "split": split, "index": index}


def benchmark_task(task: Mapping[str, Any]) -> tuple[Any, Any]:
    """Meta-World's own env class and ``Task`` for a parsed ``task``."""
    bench = benchmark(task["benchmark"], task["env_name"], task["seed"])
    train = task["split"] == "train"
    classes, tasks = (
        (bench.train_classes, bench.train_tasks)
        if train
        else (bench.test_classes, bench.test_tasks)
    )
    of_env = [t for t in tasks if t.env_name == task["env_name"]]
    return classes[task["env_name"]], of_env[task["index"]]


def object_parts(model: Any) -> dict[str, Any]:
    """What a Meta-World model's dynamics keys touch (module doc), as ``ModelDynamics`` takes
    it: the object's bodies and joints' dofs, the table's and the object's geoms, and the
    object's first body with a joint, which is pushed."""
    robot = model.body_rootid[model.body("hand").id]
    moving = {int(model.body_rootid[model.jnt_bodyid[j]]) for j in range(model.njnt)}
    bodies = [b for b in range(1, model.nbody) if model.body_rootid[b] in moving - {robot}]
    surfaces = {*bodies, model.body("tablelink").id}
    return {
        "bodies": np.array(bodies),
        "geoms": np.flatnonzero(np.isin(model.geom_bodyid, list(surfaces))),
        "dofs": np.flatnonzero(np.isin(model.dof_bodyid, bodies)),
        "pushed_body": next(b for b in bodies if model.body_jntnum[b] > 0),
    }


def touching_object(world: Any, object_geom_id: int) -> bool:
    """Meta-World's ``touching_object`` (both finger pads press on the object: the normal
    forces of their contacts with it sum above zero) on the contact arrays, summed in the same
    order, so the answer is the same bit for bit."""
    contact, force = world.data.contact, world.data.efc_force
    pairs = contact.geom  # [contacts, 2]
    with_object = (pairs == object_geom_id).any(axis=1)

    def pressed(pad: str) -> bool:
        rows = with_object & (pairs == world.data.geom(pad).id).any(axis=1)
        return sum(force[address] for address in contact.efc_address[rows]) > 0

    return pressed("leftpad_geom") and pressed("rightpad_geom")


def proper_rotation_quaternion(matrix: np.ndarray) -> np.ndarray | None:
    """SciPy's ``Rotation.from_matrix(matrix).as_quat()`` for a rotation matrix that is
    orthogonal to 1e-13 with a positive determinant, the same quaternion bit for bit: SciPy's
    own method (Markley's: built around the largest of the diagonal and the trace), with the
    same sums in the same order. None for any other matrix, which SciPy projects first."""
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = np.asarray(matrix, dtype=float).ravel().tolist()
    rows = ((m00, m01, m02), (m10, m11, m12), (m20, m21, m22))
    for i, a in enumerate(rows):
        for j, b in enumerate(rows[i:], start=i):
            if not abs(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] - (i == j)) <= 1e-13:
                return None  # (NaN fails too)
    det = (
        m00 * (m11 * m22 - m12 * m21)
        - m01 * (m10 * m22 - m12 * m20)
        + m02 * (m10 * m21 - m11 * m20)
    )
    if not det > 0:
        return None
    trace = m00 + m11 + m22
    decision = (m00, m11, m22, trace)
    largest = max(range(4), key=decision.__getitem__)  # the first of equals, as numpy.argmax
    if largest == 0:
        q = (1 - trace + 2 * m00, m10 + m01, m20 + m02, m21 - m12)
    elif largest == 1:
        q = (m10 + m01, 1 - trace + 2 * m11, m21 + m12, m02 - m20)
    elif largest == 2:
        q = (m20 + m02, m21 + m12, 1 - trace + 2 * m22, m10 - m01)
    else:
        q = (m21 - m12, m02 - m20, m10 - m01, 1 + trace)
    norm = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    return np.array([x / norm for x in q])


class QuickRotation:
    """``Rotation`` as Meta-World's envs call it for the object's orientation in every
    observation, ``Rotation.from_matrix(m).as_quat()``: ``proper_rotation_quaternion`` where it
    answers (every matrix MuJoCo computes), SciPy for anything else. SciPy's call takes about
    a third of a reach step; this one about a fifteenth of SciPy's."""

    def __init__(self, quat: np.ndarray) -> None:
        self._quat = quat

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> Any:
        quat = proper_rotation_quaternion(matrix)
        return Rotation.from_matrix(matrix) if quat is None else cls(quat)

    def as_quat(self) -> np.ndarray:
        return self._quat.copy()


class MetaWorldEnv(TaskEnv):
    """One Meta-World task at a time; ``reset(options={"task": task})`` switches task (module
    doc). Keeps one Meta-World env per env name it has played (each holds its own model, some
    20 MB of meshes): the one built for the spaces, and reset into by a sampler's first reset,
    is let go if its first step is taken in another env. With ``dynamics`` (the
    ``MetaWorldDynamics-v0`` id) a task may also scale the object's dynamics and push it."""

    metadata = {"render_modes": []}

    def __init__(self, task: Mapping[str, Any] | None = None, *, dynamics: bool = False) -> None:
        self._envs: dict[str, Any] = {}
        self._dynamics: dict[str, ModelDynamics] | None = {} if dynamics else None
        self.set_task(DEFAULT_TASK if task is None else task)
        env = self._env()
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self._unplayed: str | None = self._task["env_name"]  # not stepped in yet

    @property
    def task(self) -> dict[str, Any]:
        """The current task (a fresh dict; with dynamics, its three scales and the forces it
        gave too)."""
        if self._dynamics is None:
            return dict(self._task)
        return {**self._task, **self._scales, **self._forces}

    def set_task(self, task: Mapping[str, Any]) -> None:
        """Switch to ``task`` from the next reset."""
        scales, forces = dict.fromkeys(DYNAMICS_KEYS, 1.0), {}
        if self._dynamics is not None and isinstance(task, Mapping):
            task, scales, forces = read_dynamics(task)
        self._task = parse_task(task)
        self._scales, self._forces = scales, forces

    def world(self) -> Any:
        """Meta-World's env of the task's env name, built when first met: the simulator
        (``.model``, ``.data``, ``.frame_skip``) the current task runs in."""
        name = self._task["env_name"]
        if name not in self._envs:
            cls, _ = benchmark_task(self._task)
            env = self._envs[name] = cls()
            env.touching_object = MethodType(touching_object, env)
            observe = type(env)._get_quat_objects.__globals__  # the module that defines it
            if observe.get("Rotation") is Rotation:
                observe["Rotation"] = QuickRotation
            if self._dynamics is not None:  # the nominal values: of a model just built
                self._dynamics[name] = ModelDynamics(env.model, **object_parts(env.model))
        return self._envs[name]

    def _env(self) -> Any:
        """``world()`` set to the current task."""
        env = self.world()
        env.set_task(benchmark_task(self._task)[1])
        if self._dynamics is not None:
            self._dynamics[self._task["env_name"]].apply(self._scales)
        return env

    def start_episode(self, seed: int | None) -> tuple[np.ndarray, dict[str, Any]]:
        """Meta-World's reset of the current task (and its push, with dynamics)."""
        if self._unplayed not in (None, self._task["env_name"]):
            self._envs.pop(self._unplayed).close()
            if self._dynamics is not None:
                del self._dynamics[self._unplayed]
            self._unplayed = None
        self._current = self._env()
        observation, info = self._current.reset(seed=seed)
        if self._dynamics is not None:  # after Meta-World's reset, which clears applied forces
            self._dynamics[self._task["env_name"]].push(self._current.data, self._forces)
        return observation, info

    def get_state(self) -> dict[str, Any]:
        """The episode in progress, checkpoint-safe: the physics (``capture_mujoco``) and what
        Meta-World keeps beside it: its step count, the previous frame it stacks into each
        observation, and the last stable observation it falls back on after a simulator
        error. The task is the env's ``task``, saved apart."""
        from metarobust.envs.mujoco_state import capture_mujoco  # torch: only to save a state

        world = self._current
        stable = world._last_stable_obs
        return {
            "physics": capture_mujoco(world.model, world.data),
            "steps": int(world.curr_path_length),
            "previous_frame": world._prev_obs.tolist(),
            "last_stable": None if stable is None else stable.tolist(),
            "unstable": bool(world._did_see_sim_exception),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``get_state``, for the current task: its episode starts afresh (Meta-World
        derives the goal and the object's start from the task alone), then takes the saved
        physics and counters. Checked first: a state that does not fit is a one-line
        ConfigError and changes nothing."""
        from metarobust.envs.mujoco_state import checked_mujoco, write_mujoco

        world = self.world()
        if not isinstance(state, Mapping) or set(state) != set(_STATE_KEYS):
            raise ConfigError(f"MetaWorld state: expected a mapping of {list(_STATE_KEYS)}")
        physics = checked_mujoco(world.model, state["physics"], "MetaWorld state: physics")
        frame = _floats(state, "previous_frame", len(world._prev_obs))
        stable = None
        if state["last_stable"] is not None:
            stable = _floats(state, "last_stable", self.observation_space.shape[0])
        steps, unstable = state["steps"], state["unstable"]
        if type(steps) is not int or not 0 <= steps <= HORIZON or type(unstable) is not bool:
            raise ConfigError(
                f"MetaWorld state: expected steps in [0, {HORIZON}] and unstable true or false"
            )
        self.start_episode(None)
        write_mujoco(world.model, world.data, physics)
        world.curr_path_length, world._prev_obs = steps, frame
        world._last_stable_obs, world._did_see_sim_exception = stable, unstable

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._unplayed = None
        obs, reward, terminated, truncated, info = self._current.step(action)
        return obs, float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


class MetaWorldTasks(TaskDistribution):
    """A benchmark split's tasks, each env of the split equally likely, then one of its 50
    tasks uniformly: ``MetaWorldTasks("ML1", "reach-v3")``, ``MetaWorldTasks("ML10",
    split="test")``. A task's features are its env's place in the split and its index."""

    feature_dim = 2

    def __init__(
        self, benchmark: str = "ML1", env_name: str = "reach-v3", seed: int = 0,
        split: str = "train",
    ) -> None:  # fmt: skip
        _check_choice("benchmark", benchmark, BENCHMARKS)
        _check_choice("split", split, SPLITS)
        self.env_names = split_env_names(benchmark, env_name, _check_count("seed", seed), split)
        parse_task({"benchmark": benchmark, "env_name": self.env_names[0], "seed": seed,
                    "split": split, "index": 0})  # fmt: skip
        self.benchmark, self.env_name, self.seed, self.split = benchmark, env_name, seed, split

    def with_split(self, split: str) -> MetaWorldTasks:
        """The same benchmark's ``split``."""
        return MetaWorldTasks(self.benchmark, self.env_name, self.seed, split)

    def meta_test(self) -> MetaWorldTasks:
        """The benchmark's test split: Meta-World's meta-test protocol."""
        return self.with_split("test")

    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        n = _check_n(n)
        envs = rng.integers(len(self.env_names), size=n)
        indices = rng.integers(TASKS_PER_ENV, size=n)
        return [
            {"benchmark": self.benchmark, "env_name": self.env_names[e], "seed": self.seed,
             "split": self.split, "index": int(i)}
            for e, i in zip(envs.tolist(), indices.tolist(), strict=True)
        ]  # fmt: skip

    def _task_features(self, task: Mapping[str, Any]) -> list[float]:
        task = parse_task(task)
        return [float(self.env_names.index(task["env_name"])), float(task["index"])]
