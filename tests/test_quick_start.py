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
TINY_PPO = ("sampler.envs_per_worker=2", "ppo.num_steps=64", "ppo.minibatch_size=32",
            "ppo.num_epochs=2", "train.total_steps=256")  # fmt: skip
TINY_MAML = ("maml.meta_batch_size=2", "maml.episodes_per_task=2", "maml.num_iterations=1",
             "sampler.workers=1", "sampler.envs_per_worker=4")  # fmt: skip
TINY_TRAIN = {  # by the config a train command names
    "configs/maml_config.yaml": TINY_MAML,
    "configs/ppo/hopper.yaml": TINY_PPO,
    "configs/adversarial_config.yaml": TINY_PPO,
    "configs/robust_maml/halfcheetah_vel.yaml": (*TINY_MAML, "env.max_episode_steps=10"),
    "configs/maml/obstacles.yaml": (*TINY_MAML, "env.max_episode_steps=20", "ued.buffer_size=4"),
    "configs/maml/halfcheetah_vel_dynamics.yaml": (*TINY_MAML, "env.max_episode_steps=10"),
    "configs/ued/obstacles.yaml": ("env.max_episode_steps=20", "ued.levels_per_iteration=4",
                                   "ued.total_steps=160", "ued.buffer_size=4",
                                   "sampler.envs_per_worker=4", "ppo.minibatch_size=32",
                                   "ppo.num_epochs=1"),
}  # fmt: skip
TINY = {
    "attack": ["--steps", "256", "--episodes", "2", "--set", "ppo.num_steps=64",
               "--set", "ppo.minibatch_size=32", "--set", "logging.progress=false"],
    "robustness": ["--mass", "0.5", "1.5", "2", "--friction", "0.5", "1.5", "2", "--episodes", "1"],
}  # fmt: skip
TINY_EVALUATE = {  # by the run an evaluate command names
    "ppo": ["--episodes", "2"],
    "rarl": ["--episodes", "2"],
    "maml": ["--tasks", "2", "--episodes", "2", "--steps", "1"],
    "robust_maml": ["--tasks", "2", "--episodes", "1", "--steps", "1", "--no-grid"],
    "levels": ["--episodes", "1", "--random-levels", "2", "--steps", "1"],
    "dynamics": ["--tasks", "1", "--episodes", "1", "--steps", "1",
                 "--mass", "0.5", "2", "2", "--friction", "1", "1", "1"],
}  # fmt: skip
RUNS = {
    "ppo": ("ppo", "trpo"),
    "levels": ("maml",),
    "dynamics": ("maml",),
}  # placeholder: algorithms


def quick_start() -> list[str]:
    """The commands of the README's Quick start block, comments dropped."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```bash\n(.*?)```", text, re.S)
    assert block, "the README has a Quick start block"
    lines = (line.split("  #")[0].strip() for line in block.group(1).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


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
        placeholders = [m[1] for arg in argv for m in [re.fullmatch(r"logs/<(\w+)_run>", arg)] if m]
        argv = [
            re.sub(
                r"logs/<(\w+)_run>",
                lambda m: str(latest_run(log_dir, *RUNS.get(m[1], (m[1],)))),
                arg,
            )
            for arg in argv
        ]
        if argv[:2] == ["python", "experiments/adversarial_train.py"]:
            argv = ["metarobust", "train", *argv[2:]]  # the script is this, checked below
        assert argv[0] == "metarobust", line
        command = argv[1]
        extra = list(TINY.get(command, []))
        if command == "evaluate":
            extra = TINY_EVALUATE[placeholders[0]]
        if command == "train":
            if "--resume" in argv:
                extra = ["--set", "train.total_steps=512"]
            else:
                config = argv[argv.index("--config") + 1]
                sets = (*TINY_TRAIN[config], "logging.progress=false", f"logging.log_dir={log_dir}")
                extra = [arg for o in sets for arg in ("--set", o)]
        code = main(argv[1:] + extra)
        out = capsys.readouterr()
        assert code == 0, (line, out.err)
        ran.append(command)
    assert ran.count("train") == 8 and ran.count("evaluate") == 6
    assert {"attack", "robustness", "plot", "config"} <= set(ran)
    ppo, rarl = latest_run(log_dir, "ppo"), latest_run(log_dir, "rarl")
    assert (ppo / "evaluation.csv").is_file() and (rarl / "robustness.csv").is_file()
    assert (rarl / "robustness" / "robustness.csv").is_file()  # the grid of both, kept
    written = {path.name for path in log_dir.rglob("*.csv")}
    assert {"adaptation.csv", "under_attack.csv", "held_out.csv", "dynamics_grid.csv"} <= written


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
