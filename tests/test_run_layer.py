"""The run layer's reliability: one process per run, explicit resume changes, damaged or
foreign files as one line, no stub directories, a named cause for a broken env."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

from metarobust.api import train
from metarobust.cli import main
from metarobust.runs.run_dir import LOCK_NAME
from metarobust.utils.checkpoint import CHECKPOINT_NAME, load_checkpoint


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def finished(tiny_config):
    """A finished tiny PPO run (4 iterations, checkpoint at 2 and 4)."""
    return train(tiny_config("ppo", "done"))


def test_a_second_process_cannot_train_a_run_that_is_in_use(finished, capsys):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys, time
                from filelock import FileLock
                lock = FileLock({str(finished / LOCK_NAME)!r})
                lock.acquire()
                print("held", flush=True)
                time.sleep(60)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = (finished / CHECKPOINT_NAME).read_bytes()
        metrics = (finished / "metrics.jsonl").read_text()
        code = main(["train", "--resume", str(finished), "--set", "train.total_steps=768"])
        assert code == 2
        assert "another process is training this run" in one_error_line(capsys)
        assert (finished / CHECKPOINT_NAME).read_bytes() == before  # nothing written
        assert (finished / "metrics.jsonl").read_text() == metrics
    finally:
        holder.kill()
        holder.wait()
    # once the other process is gone the run continues
    assert main(["train", "--resume", str(finished), "--set", "train.total_steps=768"]) == 0
    assert load_checkpoint(finished)["iteration"] == 6


def test_resume_applies_a_new_learning_rate_and_budget(finished):
    assert main(["train", "--resume", str(finished), "--set", "ppo.lr=0.01",
                 "--set", "train.total_steps=768"]) == 0  # fmt: skip
    ckpt = load_checkpoint(finished)
    assert ckpt["iteration"] == 6
    assert ckpt["config"]["ppo"]["lr"] == 0.01
    groups = ckpt["state"]["update"]["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == [0.01]  # Adam really runs at the new rate
    assert "lr: 0.01" in (finished / "config.yaml").read_text()


@pytest.mark.parametrize(
    "override",
    ["policy.hidden_sizes=[8]", "env.id=Hopper-v5", "train.algorithm=trpo", "seed=3",
     "sampler.envs_per_worker=4", "ppo.num_steps=32"],
)  # fmt: skip
def test_resume_refuses_settings_that_shape_the_run(finished, capsys, override):
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    assert main(["train", "--resume", str(finished), "--set", override]) == 2
    err = one_error_line(capsys)
    key = override.split("=")[0]
    if key == "train.algorithm":  # found first: the checkpoint is another algorithm's
        assert err.endswith("saved by a ppo run, but this run's train.algorithm is trpo")
    else:
        assert err.startswith(f"metarobust: error: {key}: cannot change when resuming")
    after = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    assert after == before


def test_a_truncated_checkpoint_is_one_line(finished, capsys):
    path = finished / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[:300])
    assert main(["train", "--resume", str(finished)]) == 2
    assert "damaged or not a checkpoint" in one_error_line(capsys)
    assert main(["evaluate", str(finished), "--episodes", "1"]) == 2
    assert "damaged or not a checkpoint" in one_error_line(capsys)


def test_a_checkpoint_of_another_algorithm_is_one_line(tiny_config, finished, capsys):
    maml = train(tiny_config("maml", "maml", "maml.num_iterations=1"))
    shutil.copy(maml / CHECKPOINT_NAME, finished / CHECKPOINT_NAME)
    assert main(["train", "--resume", str(finished)]) == 2
    assert "saved by a maml run" in one_error_line(capsys)
    assert main(["evaluate", str(finished), "--episodes", "1"]) == 2
    assert "saved by a maml run" in one_error_line(capsys)


def test_a_checkpoint_with_missing_state_is_one_line(finished, capsys):
    import torch

    ckpt = load_checkpoint(finished)
    del ckpt["state"]["update"]["optimizer"]
    torch.save(ckpt, finished / CHECKPOINT_NAME)
    assert main(["train", "--resume", str(finished)]) == 2
    assert "does not fit this run's config" in one_error_line(capsys)


def test_a_failed_start_leaves_no_run_directory(tiny_args, tmp_path, capsys):
    args = tiny_args("ppo", "stub", "env.id=metarobust/InvertedPendulumAdv-v0")
    assert main(args) == 2  # a two-player env for PPO: refused after the run dir was made
    assert "two-player env" in one_error_line(capsys)
    assert not (tmp_path / "stub").exists()
    assert main(tiny_args("ppo", "stub", "train.total_steps=128")) == 0  # the name is free


def test_a_killed_saves_temporary_file_is_removed_on_resume(finished):
    stale = finished / ".checkpoint-killed.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert main(["train", "--resume", str(finished), "--set", "train.total_steps=640"]) == 0
    assert not stale.exists()


class NaNAfterThreeSteps(gym.Env):
    """An env whose observation turns NaN on its fourth step."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.full(2, np.nan if self.t > 3 else 0.1, np.float32)
        return obs, 0.0, False, False, {}


def test_an_env_that_returns_nan_is_named_as_the_cause(tiny_args, tmp_path, capsys):
    gym.register("metarobust-test/NaNAfterThreeSteps-v0", NaNAfterThreeSteps, max_episode_steps=50)
    try:
        code = main(tiny_args("ppo", "nan", "env.id=metarobust-test/NaNAfterThreeSteps-v0"))
    finally:
        gym.registry.pop("metarobust-test/NaNAfterThreeSteps-v0")
    assert code == 1
    err = one_error_line(capsys)
    assert "metarobust-test/NaNAfterThreeSteps-v0 returned a non-finite observation" in err
    assert "losses" not in err
    assert not (tmp_path / "nan").exists()  # stopped before any record: no stub left


def test_resuming_a_finished_run_names_the_budget_to_raise(finished, capsys):
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    assert main(["train", "--resume", str(finished)]) == 2
    assert one_error_line(capsys) == (
        f"metarobust: error: {finished}: finished at iteration 4 (512 env steps) of "
        f"train.total_steps=512; to continue, raise it: metarobust train --resume {finished} "
        "--set train.total_steps=N"
    )
    after = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    assert after == before  # no TensorBoard file, no config rewrite


def test_a_maml_runs_budget_is_its_iterations(tiny_config, capsys):
    run = train(tiny_config("maml", "meta", "maml.num_iterations=1"))
    assert main(["train", "--resume", str(run)]) == 2
    assert "of maml.num_iterations=1; to continue" in one_error_line(capsys)
    assert main(["train", "--resume", str(run), "--set", "maml.num_iterations=2"]) == 0
    assert load_checkpoint(run)["iteration"] == 2


def test_a_folder_of_runs_is_not_a_run(finished, tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    assert main(["evaluate", str(tmp_path)]) == 2
    assert one_error_line(capsys) == (
        f"metarobust: error: {tmp_path} is not a run directory (it has no config.yaml); "
        "the runs in it: done"
    )
    assert main(["train", "--resume", str(tmp_path / "notes")]) == 2
    assert one_error_line(capsys).endswith("notes is not a run directory (it has no config.yaml)")
