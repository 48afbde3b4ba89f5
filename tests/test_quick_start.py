"""The README's Quick start block, run top to bottom as written, with tiny budgets added."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from metarobust.cli import main
from metarobust.config import load_config

ROOT = Path(__file__).resolve().parents[1]
# Appended to each command (a later --set or flag wins): seconds instead of hours.
TINY_TRAIN = (
    "sampler.envs_per_worker=2", "ppo.num_steps=64", "ppo.minibatch_size=32", "ppo.num_epochs=2",
    "train.total_steps=256", "logging.progress=false",
)  # fmt: skip
TINY = {
    "attack": ["--steps", "256", "--episodes", "2", "--set", "ppo.num_steps=64",
               "--set", "ppo.minibatch_size=32", "--set", "logging.progress=false"],
    "robustness": ["--mass", "0.5", "1.5", "2", "--friction", "0.5", "1.5", "2", "--episodes", "1"],
    "evaluate": ["--episodes", "2"],
}  # fmt: skip


def quick_start() -> list[str]:
    """The commands of the README's Quick start block, comments dropped."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```bash\n(.*?)```", text, re.S)
    assert block, "the README has a Quick start block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def latest_run(log_dir: Path, *algorithms: str) -> Path:
    """The newest run of ``algorithms`` in ``log_dir`` that is not an attack on another."""
    configs = {d: load_config(d / "config.yaml") for d in log_dir.glob("*/") if d.is_dir()}
    runs = [
        d
        for d, cfg in configs.items()
        if cfg.train.algorithm in algorithms and cfg.adversarial.victim is None
    ]
    return max(runs, key=lambda d: d.stat().st_mtime_ns)


def test_the_quick_start_runs_top_to_bottom(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the block names configs/ relative to the checkout
    log_dir = tmp_path / "logs"
    ran = []
    for line in quick_start():
        argv = shlex.split(line)
        if argv[0] == "tensorboard":
            continue  # a server; the runs' event files are checked elsewhere
        argv = [
            re.sub(
                r"logs/<(\w+)_run>",
                lambda m: str(latest_run(log_dir, *{"ppo": ("ppo", "trpo")}.get(m[1], (m[1],)))),
                arg,
            )
            for arg in argv
        ]
        if argv[:2] == ["python", "experiments/adversarial_train.py"]:
            argv = ["metarobust", "train", *argv[2:]]  # the script is this, checked below
        assert argv[0] == "metarobust", line
        command = argv[1]
        extra = list(TINY.get(command, []))
        if command == "train":
            extra = [arg for o in TINY_TRAIN for arg in ("--set", o)]
            if "--resume" in argv:
                extra = ["--set", "train.total_steps=512"]
            else:
                extra += ["--set", f"logging.log_dir={log_dir}"]
        code = main(argv[1:] + extra)
        out = capsys.readouterr()
        assert code == 0, (line, out.err)
        ran.append(command)
    assert ran.count("train") == 5 and {"attack", "robustness", "evaluate", "plot"} <= set(ran)
    ppo, rarl = latest_run(log_dir, "ppo"), latest_run(log_dir, "rarl")
    assert (ppo / "evaluation.csv").is_file() and (rarl / "robustness.csv").is_file()
    assert (rarl / "robustness" / "robustness.csv").is_file()  # the grid of both, kept


@pytest.mark.parametrize("script", ["maml_train.py", "adversarial_train.py"])
def test_the_experiment_scripts_are_the_train_command(script):
    result = subprocess.run(
        [sys.executable, f"experiments/{script}", "--set", "ppo.lr=-1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "metarobust: error: ppo.lr: input should be greater than 0 (got -1)"
    ]
