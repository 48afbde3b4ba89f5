"""Shared fixtures: tiny seeded configs of every algorithm and readers of a run's records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from metarobust.config import Config, load_config

# A few seconds per run on one core; each learning test adds its own budget on top.
TINY: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "ppo": (
        None,
        (
            "env.id=InvertedPendulum-v5",
            "sampler.envs_per_worker=2",
            "ppo.num_steps=64",
            "ppo.minibatch_size=32",
            "ppo.num_epochs=2",
            "trpo.num_steps=64",
            "train.total_steps=512",  # 4 iterations
            "checkpoint.every=2",
        ),
    ),
    "maml": (
        "configs/maml_config.yaml",
        (
            "maml.meta_batch_size=8",
            "maml.episodes_per_task=8",
            "maml.num_iterations=4",
            "sampler.envs_per_worker=64",
            "checkpoint.every=2",
        ),
    ),
    "rarl": (  # InvertedPendulum with a force on the pole: 2 envs x 64 steps per update
        "configs/adversarial_config.yaml",
        (
            "env.id=metarobust/InvertedPendulumAdv-v0",
            "sampler.envs_per_worker=2",
            "ppo.num_steps=64",
            "ppo.minibatch_size=32",
            "ppo.num_epochs=2",
            "trpo.num_steps=64",
            "train.total_steps=512",  # 4 iterations of 128 protagonist steps
            "checkpoint.every=2",
        ),
    ),
    "robust_maml": (  # 2D navigation with wind: 8 tasks x 8 episodes per phase
        "configs/robust_maml/navigation.yaml",
        (
            "maml.meta_batch_size=8",
            "maml.episodes_per_task=8",
            "maml.num_iterations=4",
            "sampler.envs_per_worker=64",
            "checkpoint.every=2",
        ),
    ),
}

TinyConfig = Callable[..., Config]


def tiny_overrides(kind: str, log_dir: Path, name: str, *overrides: str) -> list[str]:
    """The ``--set`` overrides of a tiny ``kind`` run named ``name`` in ``log_dir``."""
    _, base = TINY[kind]
    logging = ("logging.progress=false", f"logging.log_dir={log_dir}", f"logging.run_name={name}")
    return [*base, *logging, *overrides]


@pytest.fixture
def tiny_config(tmp_path: Path) -> TinyConfig:
    """``tiny_config(kind, name, *overrides)``: a tiny run of ``kind`` (a ``TINY`` key) in
    ``tmp_path``."""

    def make(kind: str, name: str, *overrides: str) -> Config:
        path, _ = TINY[kind]
        return load_config(path, tiny_overrides(kind, tmp_path, name, *overrides))

    return make


@pytest.fixture
def tiny_args(tmp_path: Path) -> Callable[..., list[str]]:
    """``tiny_args(kind, name, *overrides)``: the same run as ``metarobust train`` arguments."""

    def make(kind: str, name: str, *overrides: str) -> list[str]:
        path, _ = TINY[kind]
        config = ["--config", path] if path else []
        sets = tiny_overrides(kind, tmp_path, name, *overrides)
        return ["train", *config, *(arg for o in sets for arg in ("--set", o))]

    return make


def metric_rows(run_dir: Path) -> list[dict]:
    """``metrics.jsonl`` without the wall-clock entries (``charts/SPS``, ``time/*``)."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith(("time/", "charts/SPS"))}
        for line in lines
    ]


@pytest.fixture
def rows() -> Callable[[Path], list[dict]]:
    """``rows(run_dir)``: the run's metrics rows without wall-clock entries."""
    return metric_rows


def rollout(env: gym.Env, actions: np.ndarray, seed: int = 0, options: dict | None = None):
    """Observations, rewards and infos for ``actions`` from ``reset(seed)``, stopping on done."""
    obs, _ = env.reset(seed=seed, options=options)
    observations, rewards, infos = [obs], [], []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards), infos
