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
``info["success"]`` (1.0 on a step that solves the task) beside the reward.

Meta-World is an optional extra: ``pip install -e ".[metaworld]"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np

from metarobust.envs.tasks import TaskDistribution, _check_n, check_task_keys
from metarobust.errors import ConfigError

BENCHMARKS = ("ML1", "ML10", "ML45")
SPLITS = ("train", "test")
TASKS_PER_ENV = 50  # Meta-World's goals per env and split
HORIZON = 500  # Meta-World's max_path_length
DEFAULT_TASK: dict[str, Any] = {
    "benchmark": "ML1", "env_name": "reach-v3", "seed": 0, "split": "train", "index": 0,
}  # fmt: skip
_KEYS = tuple(DEFAULT_TASK)


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


class MetaWorldEnv(gym.Env):
    """One Meta-World task at a time; ``reset(options={"task": task})`` switches task (module
    doc). Keeps one Meta-World env per env name it has met."""

    metadata = {"render_modes": []}

    def __init__(self, task: Mapping[str, Any] | None = None) -> None:
        self._envs: dict[str, Any] = {}
        self._task = parse_task(DEFAULT_TASK if task is None else task)
        env = self._env()
        self.observation_space = env.observation_space
        self.action_space = env.action_space

    @property
    def task(self) -> dict[str, Any]:
        """The current task (a fresh dict)."""
        return dict(self._task)

    def set_task(self, task: Mapping[str, Any]) -> None:
        """Switch to ``task`` from the next reset."""
        self._task = parse_task(task)

    def _env(self) -> Any:
        cls, mw_task = benchmark_task(self._task)
        env = self._envs.get(self._task["env_name"])
        if env is None:
            env = self._envs[self._task["env_name"]] = cls()
        env.set_task(mw_task)
        return env

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options is not None and "task" in options:
            self.set_task(options["task"])
        self._current = self._env()
        return self._current.reset(seed=seed)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
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
