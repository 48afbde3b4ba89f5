"""A batch that cannot fit in memory is refused at start, before any sampling, naming its
setting; the shipped configs are not."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import metarobust.runs.training
from metarobust.cli import main
from metarobust.config import load_config
from metarobust.errors import ConfigError
from metarobust.runs.batch_memory import batch_estimate, check_batch_fits, machine_memory
from metarobust.sampling.env_factory import EnvSpec

HUGE = 10**12  # of anything, too many for any machine: 10^12 steps of tens of bytes each


@pytest.fixture
def no_sampling(monkeypatch):
    """Building a sampler fails the test: the refusal must come before any sampling."""

    def refuse(*args, **kwargs):
        raise AssertionError("a sampler was built before the batch was checked")

    monkeypatch.setattr(metarobust.runs.training, "make_sampler", refuse)


def train_cli(capsys, tmp_path: Path, config: str | None, *overrides: str) -> tuple[int, str]:
    args = ["train", *(["--config", config] if config else [])]
    for item in (*overrides, f"logging.log_dir={tmp_path}", "logging.progress=false"):
        args += ["--set", item]
    code = main(args)
    return code, capsys.readouterr().err


def test_a_meta_batch_too_large_for_the_machine_is_refused_at_start(capsys, tmp_path, no_sampling):
    code, err = train_cli(
        capsys, tmp_path, "configs/maml_config.yaml", "maml.meta_batch_size=100000000"
    )
    assert code == 2
    assert err.startswith(
        "metarobust: error: maml.meta_batch_size: 100000000 tasks x 20 episodes x 100 steps "
        "x 2 phases need about "
    )
    assert "for one batch; this machine has " in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # no run directory left behind


@pytest.mark.parametrize(
    ("config", "overrides", "message"),
    [
        (None, [f"ppo.num_steps={HUGE}"], f"ppo.num_steps: 1 env x {HUGE} steps"),
        (
            None,
            ["train.algorithm=trpo", f"trpo.num_steps={HUGE}"],
            f"trpo.num_steps: 1 env x {HUGE} steps",
        ),
        (
            None,
            ["sampler.workers=2", f"sampler.envs_per_worker={HUGE}"],
            f"sampler.envs_per_worker: {2 * HUGE} envs x 2048 steps",
        ),
        (
            "configs/adversarial_config.yaml",
            ["adversarial.adversary=trpo", f"trpo.num_steps={HUGE}"],
            f"trpo.num_steps: 1 env x {HUGE} steps",
        ),
        (
            "configs/maml_config.yaml",
            [f"env.max_episode_steps={HUGE}"],
            f"env.max_episode_steps: 20 tasks x 20 episodes x {HUGE} steps x 2 phases",
        ),
        (
            "configs/maml_config.yaml",
            ["maml.num_inner_steps=0", f"maml.episodes_per_task={HUGE}"],
            f"maml.episodes_per_task: 20 tasks x {HUGE} episodes x 100 steps need",
        ),
        (
            "configs/robust_maml/navigation.yaml",
            [f"adversarial.episodes_per_task={HUGE}"],
            f"adversarial.episodes_per_task: 20 tasks x {HUGE} episodes x 100 steps need",
        ),
        (
            "configs/ued/obstacles.yaml",
            [f"ued.levels_per_iteration={HUGE}"],
            f"ued.levels_per_iteration: {HUGE} levels x 1 episode x 200 steps need",
        ),
        (
            "configs/ued/obstacles.yaml",
            ["ued.generator=paired", f"ued.episodes_per_level={HUGE}"],
            f"ued.episodes_per_level: 64 levels x {HUGE} episodes x 200 steps x 2 learners",
        ),
    ],
)
def test_every_algorithms_batch_is_checked(
    capsys, tmp_path, no_sampling, config, overrides, message
):
    code, err = train_cli(capsys, tmp_path, config, *overrides)
    assert code == 2, err
    assert err.startswith(f"metarobust: error: {message}"), err
    assert err.count("\n") == 1


def test_the_estimate_counts_every_array_of_the_batch():
    cfg = load_config("configs/maml_config.yaml")
    estimate = batch_estimate(cfg, EnvSpec.from_config(cfg.env))
    # per step: obs and next_obs (2 floats each), the action (2), reward, log-prob and mask
    # as float32; terminated and truncated as one byte each
    step = 4 * (2 * 2 + 2 + 3) + 2
    assert estimate is not None and estimate.num_bytes == 20 * 20 * 100 * 2 * step
    spec = EnvSpec.from_config(cfg.env)
    check_batch_fits(cfg, spec, memory=estimate.num_bytes)  # just fits
    with pytest.raises(ConfigError, match=r"this machine has 2\.9 MiB$"):
        check_batch_fits(cfg, spec, memory=estimate.num_bytes - 1)


def test_the_shipped_configs_are_not_refused():
    memory = machine_memory()
    assert memory is not None and memory > 2**30
    for path in sorted(Path("configs").rglob("*.yaml")):
        if path.parent.name == "metaworld" and importlib.util.find_spec("metaworld") is None:
            continue  # checked with the metaworld extra, in tests/test_meta_world.py
        cfg = load_config(path)
        estimate = batch_estimate(cfg, EnvSpec.from_config(cfg.env))
        assert estimate is not None and 0 < estimate.num_bytes < min(memory, 4 * 2**30), path


def test_a_normal_run_starts(tiny_args):
    assert main(tiny_args("ppo", "normal", "train.total_steps=128")) == 0
