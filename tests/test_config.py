"""Bad input ends with one line naming the key and what was expected, exit code 2."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from metarobust.cli import main
from metarobust.config import Config, load_config
from metarobust.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["ppo.lr=-0.1"], "ppo.lr: input should be greater than 0 (got -0.1)"),
        (["ppo.minibatch_size=0"], "ppo.minibatch_size: input should be greater than 0"),
        (["ppo.lrr=0.1"], "ppo.lrr: unknown key (expected one of: lr, "),
        (["ppo.lr=fast"], "ppo.lr: input should be a valid number"),
        (["env.id=NoSuchEnv-v9"], "env.id: unknown env id 'NoSuchEnv-v9'"),
        (["sampler.backend=gpu"], "sampler.backend: input should be 'auto', 'local'"),
        (["policy.hidden_sizes=[64, -1]"], "policy.hidden_sizes.1: input should be greater than 0"),
        (["bogus=1"], "bogus: unknown key"),
        (["ppo.lr"], "--set 'ppo.lr': expected dotted.key=value"),
        (["ppo=1"], "ppo: a group of settings, not one value (got 1); set its keys, e.g. ppo.lr="),
    ],
)
def test_bad_override_is_one_line_exit_2(capsys, overrides, expected):
    argv = ["train"]
    for item in overrides:
        argv += ["--set", item]
    code, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1
    assert expected in err


MISTAKES = [
    # booleans and non-integers are not integers
    (["ppo.num_steps=true"], "ppo.num_steps: input should be a valid integer (got True)"),
    (["seed=false"], "seed: input should be a valid integer (got False)"),
    (["ppo.num_epochs=2.5"], "ppo.num_epochs: input should be a valid integer (got 2.5)"),
    (["policy.hidden_sizes=[64, true]"], "policy.hidden_sizes.1: input should be a valid int"),
    (["env.max_episode_steps=true"], "env.max_episode_steps: input should be a valid integer"),
    # nor are booleans, infinities or NaN numbers
    (["ppo.lr=true"], "ppo.lr: input should be a valid number, not a boolean (got True)"),
    (["ppo.lr=.inf"], "ppo.lr: input should be a finite number (got inf)"),
    (["ppo.max_grad_norm=.nan"], "ppo.max_grad_norm: input should be a finite number (got n"),
    (["ppo.ent_coef=.inf"], "ppo.ent_coef: input should be a finite number (got inf)"),
    (["policy.init_std=.nan"], "policy.init_std: input should be a finite number (got nan)"),
    (["trpo.cg_damping=.inf"], "trpo.cg_damping: input should be a finite number (got inf)"),
    (["maml.fast_lr=-.inf"], "maml.fast_lr: input should be a finite number (got -inf)"),
    # a minibatch larger than the batch it is drawn from
    (
        ["ppo.num_steps=16", "sampler.envs_per_worker=2", "ppo.minibatch_size=33"],
        "ppo.minibatch_size: expected at most the PPO batch, ppo.num_steps x sampler.workers x "
        "sampler.envs_per_worker = 16 x 1 x 2 = 32 transitions (got 33)",
    ),
    (
        ["train.algorithm=trpo", "trpo.num_steps=16", "sampler.workers=2"],
        "trpo.vf_minibatch_size: expected at most the TRPO batch, trpo.num_steps x "
        "sampler.workers x sampler.envs_per_worker = 16 x 2 x 1 = 32 transitions (got 64)",
    ),
    (
        ["train.algorithm=rarl", "adversarial.adversary=ppo", "ppo.num_steps=32"],
        "ppo.minibatch_size: expected at most the PPO batch",
    ),
    (
        ["train.algorithm=rarl", "adversarial.protagonist=ppo", "ppo.num_steps=32"],
        "ppo.minibatch_size: expected at most the PPO batch",
    ),
    (["train.algorithm=rarl", "trpo.num_steps=32"], "trpo.vf_minibatch_size: expected at"),
    # a run name that would leave logging.log_dir
    (["logging.run_name=../elsewhere"], "logging.run_name: expected a plain directory name"),
    (["logging.run_name=a/b"], "logging.run_name: expected a plain directory name"),
    (["logging.run_name=a\\b"], "logging.run_name: expected a plain directory name"),
    (["logging.run_name=/tmp/x"], "logging.run_name: expected a plain directory name"),
    (["logging.run_name=.."], "got '..'"),
    (["logging.run_name=."], "got '.'"),
    (["logging.run_name=''"], "got ''"),
]


@pytest.mark.parametrize(("overrides", "expected"), MISTAKES)
def test_surely_mistaken_values_are_refused(overrides, expected):
    """Values pydantic would coerce or accept, but that no one means, are one-line errors."""
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert "\n" not in str(err.value)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    "overrides",
    [["ppo.num_steps=true"], ["ppo.minibatch_size=33"], ["logging.run_name=../elsewhere"]],
)
def test_mistakes_stop_the_cli_before_training(capsys, tmp_path, overrides):
    # A tiny budget inside tmp_path, so that a value let through trains for a moment only.
    budget = ["train.total_steps=1", "ppo.num_steps=16", "sampler.envs_per_worker=2"]
    budget += ["logging.progress=false", f"logging.log_dir={tmp_path / 'logs'}"]
    code, err = run_cli(capsys, "train", *(a for o in budget + overrides for a in ("--set", o)))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("metarobust: error: ")
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(
    "overrides",
    [
        ["ppo.num_steps=16", "ppo.minibatch_size=16"],  # one minibatch: the whole batch
        ["train.algorithm=trpo", "trpo.num_steps=16", "trpo.baseline=linear"],  # no minibatches
        ["train.algorithm=trpo", "trpo.num_steps=16", "ppo.num_steps=16", "sampler.workers=4"],
        ["train.algorithm=maml", "maml.outer=ppo", "ppo.num_steps=8", "trpo.num_steps=8"],
        ["train.algorithm=rarl", "ppo.num_steps=8"],  # both players use TRPO
        [  # an attack: the protagonist is frozen, its update never runs
            "train.algorithm=rarl",
            "adversarial.protagonist=ppo",
            "adversarial.protagonist_updates=0",
            "adversarial.victim=some/run",
            "ppo.num_steps=8",
        ],
    ],
)
def test_minibatch_sizes_only_checked_where_used(overrides):
    assert isinstance(load_config(None, overrides), Config)


def test_numbers_from_yaml_keep_their_types(tmp_path):
    """Strict integers still take YAML integers; number fields take integers and exponents."""
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nppo:\n  num_steps: 128\n  lr: 1\n  max_grad_norm: 1.0e+1\n")
    cfg = load_config(path, ["ppo.ent_coef=0", "maml.fast_lr=5e-2", "logging.run_name=run-1.a"])
    assert cfg.seed == 3 and cfg.ppo.num_steps == 128
    assert cfg.ppo.lr == 1.0 and isinstance(cfg.ppo.lr, float)
    assert cfg.ppo.max_grad_norm == 10.0 and cfg.ppo.ent_coef == 0.0
    assert cfg.maml.fast_lr == pytest.approx(0.05)
    assert cfg.logging.run_name == "run-1.a"


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00"), "not a text file"),
        (
            lambda p: p.write_bytes(b"seed: 1\n\xc3\x28\n"),
            "not a text file (invalid UTF-8 at byte 8)",
        ),
        (lambda p: p.write_bytes(b"seed: 1\x00\n"), "invalid YAML (unacceptable character"),
        (lambda p: p.mkdir(), "is a directory, expected a YAML file"),
    ],
)
def test_config_that_is_not_a_yaml_text_file(capsys, tmp_path, write, expected):
    path = tmp_path / "c.yaml"
    write(path)
    code, err = run_cli(capsys, "train", "--config", str(path))
    assert code == 2
    assert err.count("\n") == 1
    assert f"c.yaml: {expected}" in err


def test_missing_file(capsys, tmp_path):
    code, err = run_cli(capsys, "train", "--config", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml: file not found" in err


def test_yaml_syntax_error_names_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nppo:\n  lr: [0.1\n")
    code, err = run_cli(capsys, "train", "--config", str(bad))
    assert code == 2
    assert "bad.yaml line" in err and "invalid YAML" in err


def test_unknown_key_in_file(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sampler:\n  workerz: 2\n")
    code, err = run_cli(capsys, "train", "--config", str(cfg))
    assert code == 2
    assert "sampler.workerz: unknown key (expected one of: backend, workers" in err


def test_resume_missing_run_dir(capsys, tmp_path):
    code, err = run_cli(capsys, "train", "--resume", str(tmp_path / "gone"))
    assert code == 2
    assert "run directory not found" in err


def test_overrides_are_typed():
    cfg = load_config(None, ["ppo.lr=1e-3", "policy.hidden_sizes=[32, 16]", "seed=7"])
    assert cfg.ppo.lr == pytest.approx(1e-3)
    assert cfg.policy.hidden_sizes == [32, 16]
    assert cfg.seed == 7


def test_shipped_configs_validate():
    """Every run config validates; the shipped level file loads as levels. The Meta-World
    configs need the metaworld extra (tests/test_meta_world.py validates them with it); without
    it they are refused with one line that says how to install it."""
    from metarobust.envs.levels import DEFAULT_LEVELS, load_levels

    files = sorted((ROOT / "configs").rglob("*.yaml"))
    assert files
    meta_world = ROOT / "configs" / "metaworld"
    for path in files:
        if path.parent == meta_world and importlib.util.find_spec("metaworld") is None:
            with pytest.raises(ConfigError, match=r"Meta-World is not installed: pip install"):
                load_config(path)
            continue
        assert isinstance(load_config(path), Config), path
    assert len(load_levels(DEFAULT_LEVELS)) == 8


def test_real_process_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "metarobust.cli", "train", "--set", "ppo.lr=-1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "metarobust: error: ppo.lr: input should be greater than 0 (got -1)"
    )
