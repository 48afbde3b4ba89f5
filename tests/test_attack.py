"""Attacks on a frozen policy: a trained adversary beats random disturbance; bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from metarobust.adversarial.disturbance import clipped_gaussian_std
from metarobust.api import train
from metarobust.cli import main
from metarobust.config import load_config
from metarobust.utils.checkpoint import CHECKPOINT_NAME, load_checkpoint


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The learners' updates on one thread, as in the runs these budgets were chosen with:
    the thread count changes float rounding, and with it the seeded runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def victim(tmp_path_factory, one_torch_thread) -> Path:
    """PPO on InvertedPendulum-v5, trained until it balances for the whole episode."""
    logs = tmp_path_factory.mktemp("logs")
    cfg = load_config(
        None,
        [
            "env.id=InvertedPendulum-v5",
            "sampler.envs_per_worker=4",
            "ppo.num_steps=256",
            "ppo.minibatch_size=128",
            "ppo.num_epochs=10",
            "train.total_steps=40960",
            "checkpoint.every=100",
            "logging.progress=false",
            f"logging.log_dir={logs}",
            "logging.run_name=victim",
        ],
    )
    return train(cfg)


def read_attack(run_dir: Path) -> dict[str, list[float]]:
    returns: dict[str, list[float]] = {}
    with (run_dir / "attack.csv").open() as f:
        for row in csv.DictReader(f):
            returns.setdefault(row["condition"], []).append(float(row["return"]))
    return returns


def test_trained_adversary_lowers_the_return_far_more_than_random_pushes(victim, capsys):
    """At twice the preset's 5 N (``--set env.kwargs=...``): with 5 N a 16k-step adversary
    finds how to topple this victim on some seeds and machines only; with 10 N it does on
    every seed tried (0-2: 25-29 against 495-543 for random pushes)."""
    saved = (victim / CHECKPOINT_NAME).read_bytes()
    args = ["attack", str(victim), "--steps", "16384", "--episodes", "16", "--seed", "0"]
    force = ["--set", 'env.kwargs={"max_force": 10.0}']
    assert main([*args, *force, "--set", "logging.progress=false"]) == 0
    assert "victim return over 16 episodes" in capsys.readouterr().out
    run = victim.parent / "victim_attack_s0"
    returns = {c: float(np.mean(r)) for c, r in read_attack(run).items()}
    assert returns["none"] > 900, returns  # the victim balances undisturbed
    # random forces of the trained adversary's mean magnitude hurt much less than its pushes
    assert returns["trained"] < 0.5 * returns["random"] and returns["trained"] < 300, returns
    # the victim stayed frozen: the attack's protagonist is the saved policy, untouched on disk
    victim_params = load_checkpoint(victim)["policy"]["params"]
    attacked = load_checkpoint(run)["policy"]["params"]  # the frozen protagonist
    assert all(torch.equal(victim_params[k], attacked[k]) for k in victim_params)
    assert (victim / CHECKPOINT_NAME).read_bytes() == saved
    cfg = load_config(run / "config.yaml")
    assert cfg.env.id == "metarobust/InvertedPendulumAdv-v0"
    assert cfg.env.kwargs == {"max_force": 10.0}
    assert cfg.adversarial.protagonist_updates == 0 and cfg.adversarial.adversary == "ppo"


def test_observation_attack_beats_random_perturbations(victim):
    """An adversary shifting the observations by at most 0.2 per component (ObsAdv env)."""
    args = ["attack", str(victim), "--steps", "16384", "--episodes", "16", "--epsilon", "0.2"]
    assert main([*args, "--set", "logging.progress=false"]) == 0
    run = victim.parent / "victim_obs_attack_s0"
    returns = {c: float(np.mean(r)) for c, r in read_attack(run).items()}
    assert returns["none"] > 900, returns
    assert returns["trained"] < 0.5 * returns["random"] and returns["trained"] < 300, returns
    cfg = load_config(run / "config.yaml")
    assert cfg.env.id == "metarobust/InvertedPendulumObsAdv-v0"
    assert cfg.env.kwargs == {"epsilon": 0.2}


def test_attack_input_errors(victim, tmp_path, capsys):
    cases = [
        (["attack", str(tmp_path / "missing")], "run directory not found"),
        (["attack", str(victim), "--steps", "0"], "--steps"),
        (["attack", str(victim), "--episodes", "0"], "--episodes"),
        (["attack", str(victim), "--epsilon", "-1"], "--epsilon"),
        (["attack", str(victim), "--set", "adversarial.adversary=sac"], "adversarial.adversary"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    # an attack needs its victim, and a victim needs an attack
    base = ["train", "--config", "configs/adversarial_config.yaml", "--set"]
    assert main([*base, "adversarial.protagonist_updates=0"]) == 2
    assert "go together" in capsys.readouterr().err


def test_random_disturbance_matches_a_mean_magnitude():
    rng = np.random.default_rng(0)
    for magnitude in (0.05, 0.5, 0.9):
        sigma = clipped_gaussian_std(magnitude)
        draws = np.clip(rng.normal(0.0, sigma, 400_000), -1.0, 1.0)
        assert abs(np.abs(draws).mean() - magnitude) < 0.005
