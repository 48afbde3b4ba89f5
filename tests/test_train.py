"""End-to-end PPO/TRPO runs: learning, determinism, resume, Ctrl-C, NaN, outputs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from metarobust.api import train
from metarobust.cli import main
from metarobust.config import load_config
from metarobust.errors import ConfigError
from metarobust.utils.checkpoint import load_checkpoint


def final_params(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir)["policy"]["params"]


def assert_same_params(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("algorithm", ["ppo", "trpo"])
def test_same_seed_same_numbers(tiny_config, rows, algorithm):
    a = train(tiny_config("ppo", "a", f"train.algorithm={algorithm}"))
    b = train(tiny_config("ppo", "b", f"train.algorithm={algorithm}"))
    c = train(tiny_config("ppo", "c", f"train.algorithm={algorithm}", "seed=1"))
    assert rows(a) == rows(b)
    assert_same_params(final_params(a), final_params(b))
    assert rows(a) != rows(c)


def test_run_dir_records(tiny_config, rows):
    run = train(tiny_config("ppo", "rec", "policy.normalize_obs=true"))
    meta = json.loads((run / "meta.json").read_text())
    assert meta["seed"] == 0 and meta["versions"]["torch"].startswith("2.13")
    assert "git_commit" in meta
    resolved = load_config(run / "config.yaml")
    assert resolved.policy.normalize_obs is True
    history = rows(run)
    assert [r["step"] for r in history] == [128, 256, 384, 512]
    assert {"losses/policy_loss", "losses/value_loss", "losses/approx_kl"} <= history[-1].keys()
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    ckpt = load_checkpoint(run)
    assert ckpt["iteration"] == 4 and ckpt["env_steps"] == 512
    # normaliser statistics are saved with the policy
    assert ckpt["policy"]["buffers"]["obs_normalizer.count"] > 500


def on_third_sample(monkeypatch, act: Callable[[], None]) -> None:
    """Patch the local sampler to call ``act()`` before its third ``sample_steps``."""
    from metarobust.sampling import sampler

    calls = {"n": 0}
    original = sampler.LocalSampler.sample_steps

    def patched(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            act()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sampler.LocalSampler, "sample_steps", patched)


def test_ctrl_c_then_resume_equals_uninterrupted(tiny_config, rows, tmp_path, monkeypatch):
    straight = train(tiny_config("ppo", "straight", "checkpoint.every=1"))

    def ctrl_c():
        raise KeyboardInterrupt

    on_third_sample(monkeypatch, ctrl_c)
    cfg = tiny_config("ppo", "split", "checkpoint.every=100")
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    run_dir = tmp_path / "split"
    assert load_checkpoint(run_dir)["iteration"] == 2  # saved on Ctrl-C, not mid-update
    monkeypatch.undo()  # the sampler as it was

    assert main(["train", "--resume", str(run_dir)]) == 0
    assert rows(run_dir) == rows(straight)
    assert_same_params(final_params(run_dir), final_params(straight))


def test_sigterm_saves_a_checkpoint_like_ctrl_c(tiny_args, tmp_path, monkeypatch, capsys):
    on_third_sample(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGTERM))
    handler = signal.getsignal(signal.SIGTERM)
    assert main(tiny_args("ppo", "term", "checkpoint.every=100")) == 130
    assert load_checkpoint(tmp_path / "term")["iteration"] == 2
    assert "interrupted: saved" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is handler  # restored when the run ends


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from metarobust.agents import ppo

    original = ppo.PPO.update
    calls = {"n": 0}

    def nan_on_third(self, traj):
        calls["n"] += 1
        out = original(self, traj)
        if calls["n"] == 3:
            out["policy_loss"] = float("nan")
        return out

    monkeypatch.setattr(ppo.PPO, "update", nan_on_third)
    overrides = ["env.id=InvertedPendulum-v5", "ppo.num_steps=64", "train.total_steps=512",
                 "checkpoint.every=1", "logging.progress=false", f"logging.log_dir={tmp_path}",
                 "logging.run_name=nan"]  # fmt: skip
    code = main(["train", *(arg for o in overrides for arg in ("--set", o))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "non-finite losses/policy_loss" in err[0], err
    assert "iteration 2" in err[0]  # names the last good checkpoint
    assert load_checkpoint(tmp_path / "nan")["iteration"] == 2


def test_existing_run_is_not_overwritten(tiny_config, capsys):
    run = train(tiny_config("ppo", "keep", "train.total_steps=128"))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_config("ppo", "keep"))
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert before == after


def mean_action_episodes(run: Path, reset_seeds: list[int]) -> list[tuple[float, int]]:
    """``(return, length)`` of the saved policy's mean action (``metarobust.load_policy``) on
    a plain ``gymnasium.make`` of the run's env, one episode per reset seed."""
    import gymnasium as gym

    import metarobust

    agent = metarobust.load_policy(run)
    env = gym.make(agent.saved.cfg.env.id)
    episodes = []
    for seed in reset_seeds:
        obs, _ = env.reset(seed=seed)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
            total, length, done = total + float(reward), length + 1, terminated or truncated
        episodes.append((total, length))
    env.close()
    return episodes


def evaluation_reset_seeds(episodes: int, seed: int = 12345) -> list[int]:
    """The reset seed of each episode ``metarobust evaluate`` plays: episode ``i`` is episode
    ``i % 16`` of batch ``i // 16``, sampled with seed ``seed + i // 16``; an episode's reset
    seed is the first of the two seeds its own (unit) seed spawns."""
    import numpy as np

    from metarobust.sampling.episodes import unit_seed
    from metarobust.sampling.sampler_factory import EVALUATION_BATCH

    batch = min(episodes, EVALUATION_BATCH)
    units = [unit_seed(seed + i // batch, 0, i % batch) for i in range(episodes)]
    return [int(np.random.SeedSequence([u]).spawn(2)[0].generate_state(1)[0]) for u in units]


def test_evaluate_and_plot_write_files(tiny_config, tmp_path, capsys):
    run = train(tiny_config("ppo", "ev"))
    assert main(["evaluate", str(run), "--episodes", "20"]) == 0  # two batches of episodes
    lines = (run / "evaluation.csv").read_text().splitlines()
    assert lines[0] == "episode,return,length" and len(lines) == 21
    assert len({line.split(",")[1] for line in lines[1:]}) > 1  # distinct episodes
    # the same seed gives the same file again
    first = (run / "evaluation.csv").read_bytes()
    assert main(["evaluate", str(run), "--episodes", "20"]) == 0
    assert (run / "evaluation.csv").read_bytes() == first
    # each row is the saved policy's mean action on the plain env from that episode's reset
    rows = [(float(r), int(n)) for _, r, n in (line.split(",") for line in lines[1:])]
    expected = mean_action_episodes(run, evaluation_reset_seeds(20))
    assert [n for _, n in rows] == [n for _, n in expected]
    assert [r for r, _ in rows] == pytest.approx([r for r, _ in expected], abs=1e-3)
    assert main(["plot", str(run)]) == 0
    png = run / "charts_episodic_return.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["evaluate", str(tmp_path / "missing")]) == 2


def test_ppo_learns_inverted_pendulum(tiny_config, rows):
    """A small seeded budget lifts the return far above the untrained policy's."""
    cfg = tiny_config(
        "ppo",
        "learn",
        "sampler.envs_per_worker=4",
        "ppo.num_steps=256",
        "ppo.minibatch_size=128",
        "ppo.num_epochs=10",
        "train.total_steps=40960",
        "checkpoint.every=100",
    )
    run = train(cfg)
    returns = [r["charts/episodic_return"] for r in rows(run) if "charts/episodic_return" in r]
    first, last = returns[0], sum(returns[-3:]) / 3  # late iterations may end no episode
    assert first < 30
    assert last > 10 * first and last > 200, (first, last)


def test_fixed_task_reaches_the_envs(tiny_config, rows):
    """``env.task`` is the task every training episode runs: another goal, other rewards."""
    runs = [
        train(tiny_config("ppo", f"goal{i}", "env.id=metarobust/Navigation2D-v0",
                          "env.max_episode_steps=16", f"env.task={{goal: [{x}, {x}]}}",
                          "train.total_steps=256"))
        for i, x in enumerate((0.4, -0.4, 0.4))
    ]  # fmt: skip
    returns = [[r.get("charts/episodic_return") for r in rows(run)] for run in runs]
    assert returns[0] == returns[2] and returns[0] != returns[1]
