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
    "maml_levels": (  # MAML in the obstacle world: 4 levels x 4 episodes of 30 steps per phase
        "configs/maml/obstacles.yaml",
        (
            "maml.meta_batch_size=4",
            "maml.episodes_per_task=4",
            "maml.num_iterations=4",
            "env.max_episode_steps=30",
            "sampler.envs_per_worker=16",
            "ued.buffer_size=8",
            "checkpoint.every=2",
        ),
    ),
    "maml_metaworld": (  # ML1 reach: 2 tasks x 2 episodes of 20 steps per phase
        "configs/metaworld/ml1_reach.yaml",
        (
            "maml.meta_batch_size=2",
            "maml.episodes_per_task=2",
            "maml.num_iterations=4",
            "env.max_episode_steps=20",
            "sampler.workers=1",
            "sampler.envs_per_worker=4",
            "policy.hidden_sizes=[16,16]",
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
    "ued": (  # the obstacle world: 6 iterations of 8 levels of 30 steps, PPO on them
        None,
        (
            "train.algorithm=ued",
            "env.id=metarobust/Navigation2DObstacles-v0",
            "env.max_episode_steps=30",
            "ued.levels_per_iteration=8",
            "ued.num_iterations=6",
            "ued.buffer_size=8",
            "ued.replay_prob=0.6",
            "sampler.envs_per_worker=8",
            "ppo.minibatch_size=64",
            "ppo.num_epochs=2",
            "checkpoint.every=3",
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


def assert_same_step(got: tuple, want: tuple, *, reward_atol: float = 0.0) -> None:
    """Two vector envs' ``step`` results agree: observations (and dtypes) to the bit, rewards
    within ``reward_atol`` (0: to the bit), ending flags, and the final observations of the
    envs that ended."""
    obs, rew, term, trunc, info = got
    ref_obs, ref_rew, ref_term, ref_trunc, ref_info = want
    assert obs.dtype == ref_obs.dtype and rew.dtype == ref_rew.dtype
    np.testing.assert_array_equal(obs, ref_obs)
    np.testing.assert_allclose(rew, ref_rew, rtol=0, atol=reward_atol)
    np.testing.assert_array_equal(term, ref_term)
    np.testing.assert_array_equal(trunc, ref_trunc)
    if "final_obs" in ref_info:
        np.testing.assert_array_equal(info["_final_obs"], ref_info["_final_obs"])
        for i in np.flatnonzero(ref_info["_final_obs"]):
            np.testing.assert_array_equal(info["final_obs"][i], ref_info["final_obs"][i])
    else:
        assert "final_obs" not in info


def step_in_lockstep(
    vec: gym.vector.VectorEnv,
    ref: gym.vector.VectorEnv,
    act: Callable[[np.ndarray], np.ndarray],
    *,
    steps: int,
    reset_by_mask: bool,
    check: Callable[[dict, dict, np.ndarray], None] | None = None,
) -> tuple[int, int]:
    """Step a native vector env ``vec`` and its reference ``ref`` (Gymnasium's sync vector env
    over the single envs) with the same actions ``act(obs)`` for ``steps`` steps, resetting
    finished envs by mask if ``reset_by_mask`` (autoreset disabled), and assert that they agree
    to the bit: observations, rewards, ending flags and final observations; ``check(info,
    ref_info, rewards)`` adds an env's own checks. Returns the terminations and truncations
    seen."""
    obs, _ = vec.reset(seed=0)
    ref_obs, _ = ref.reset(seed=0)
    np.testing.assert_array_equal(obs, ref_obs)
    seen_terminated = seen_truncated = 0
    for _ in range(steps):
        actions = act(obs)
        got, want = vec.step(actions), ref.step(actions)
        assert_same_step(got, want)
        obs, rew, term, trunc, info = got
        ref_info = want[4]
        if check is not None:
            check(info, ref_info, rew)
        seen_terminated += term.sum()
        seen_truncated += trunc.sum()
        done = term | trunc
        if reset_by_mask and done.any():
            obs, _ = vec.reset(options={"reset_mask": done})
            ref_obs, _ = ref.reset(options={"reset_mask": done.copy()})
            np.testing.assert_array_equal(obs, ref_obs)
    return seen_terminated, seen_truncated
