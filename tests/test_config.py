"""Bad input ends with one line naming the key and what was expected, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metarobust.cli import main
from metarobust.config import Config, load_config

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
    files = sorted((ROOT / "configs").rglob("*.yaml"))
    assert files
    for path in files:
        assert isinstance(load_config(path), Config), path


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


def test_readme_config_reference_is_current():
    """The README's reference is `metarobust config`'s output: regenerate it when fields change."""
    from metarobust.config import Config, describe_fields

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("Printed by `metarobust config`")
    block = readme[readme.index("```\n", start) + 4 :]
    assert block[: block.index("```")].rstrip("\n") == describe_fields(Config)
