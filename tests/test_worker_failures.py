"""A sampler worker that dies, hangs or raises is reported in one line: no traceback, no hang.

No test here bounds how long anything takes (a busy machine makes such bounds fail): each waits
for the event itself, with ``HANG_GUARD`` seconds only to turn a hang into a failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from metarobust.agents.policy import GaussianPolicy
from metarobust.cli import main
from metarobust.errors import ConfigError, WorkerError
from metarobust.sampling import subprocess_backend, wire
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import EnvSpec, env_dims
from metarobust.sampling.ray_backend import RaySampler
from metarobust.sampling.subprocess_backend import SubprocessSampler
from metarobust.utils.checkpoint import load_checkpoint

PENDULUM = EnvSpec("InvertedPendulum-v5", {}, 40)
NAV = EnvSpec("metarobust/Navigation2D-v0", {}, 20)
KILLED = r"sampler worker 1 \(pid \d+\) died with signal SIGKILL during sample_steps"
HANG_GUARD = 60.0  # seconds: far beyond any wait tested here, only so a hang fails


def policy_for(spec: EnvSpec) -> GaussianPolicy:
    torch.manual_seed(0)
    return GaussianPolicy(*env_dims(spec), hidden_sizes=(32, 32))


def state_of(policy: GaussianPolicy) -> Acting:
    return Acting.single(PolicyState.of(policy.init_params(), policy))


@pytest.fixture
def pendulum_workers() -> Iterator[tuple[SubprocessSampler, dict]]:
    """Two subprocess workers of one InvertedPendulum env each, and a state to sample with."""
    policy = policy_for(PENDULUM)
    sampler = SubprocessSampler(PENDULUM, policy, seed=0, num_workers=2)
    pids = [proc.pid for proc in sampler._procs]
    try:
        yield sampler, state_of(policy)
    finally:
        for pid in pids:  # a stopped worker left behind would hang the interpreter's exit
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        sampler.close()


@contextlib.contextmanager
def fails_after(seconds: float) -> Iterator[None]:
    """Turn a hang into a test failure (SIGALRM interrupts a blocking read)."""

    def hung(signum: int, frame: object) -> None:
        raise AssertionError(f"still waiting after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_closes_without_its_grace(sampler: SubprocessSampler, monkeypatch) -> None:
    """``close()`` ends every worker without waiting out its grace for any of them: the grace
    is made longer than the hang guard, so a close that waited for a dead or stopped worker
    fails instead of passing slowly."""
    monkeypatch.setattr(subprocess_backend, "_CLOSE_GRACE_S", 10 * HANG_GUARD)
    procs = list(sampler._procs)
    with fails_after(HANG_GUARD):
        sampler.close()
    assert not any(proc.is_alive() for proc in procs)


def test_worker_killed_between_calls(pendulum_workers, monkeypatch):
    sampler, state = pendulum_workers
    sampler.sample_steps(state, 4)
    os.kill(sampler._procs[1].pid, signal.SIGKILL)
    with fails_after(HANG_GUARD), pytest.raises(WorkerError) as err:
        sampler.sample_steps(state, 4)
    # one line; not the hint about guarding __main__, which is for deaths at start-up
    assert re.fullmatch(KILLED, str(err.value)), str(err.value)
    assert_closes_without_its_grace(sampler, monkeypatch)


def test_worker_killed_during_a_call_is_reported_at_once(pendulum_workers):
    """Worker 0 never answers (it is stopped), so the call can only end by reporting worker
    1's death as it happens, not once every worker has answered."""
    sampler, state = pendulum_workers
    sampler.sample_steps(state, 4)
    busy = sampler._procs[0]
    os.kill(busy.pid, signal.SIGSTOP)
    kill = threading.Timer(0.5, os.kill, (sampler._procs[1].pid, signal.SIGKILL))
    kill.start()
    try:
        with fails_after(HANG_GUARD), pytest.raises(WorkerError, match=f"^{KILLED}$"):
            sampler.sample_steps(state, 100_000)  # seconds of work for worker 1
    finally:
        kill.cancel()
    assert busy.is_alive() and sampler._pending[0] == "sample_steps"  # still owes its reply
    # worker 0 does not read "close" (it missed no deadline): killed after the grace
    with fails_after(HANG_GUARD):
        sampler.close()
    assert busy.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("padding", [0, 4_000_000], ids=["small-request", "request-over-pipe"])
def test_stopped_worker_times_out(pendulum_workers, padding, monkeypatch):
    sampler, state = pendulum_workers
    sampler.timeout = 2.0  # start-up had the default
    # more than the pipe holds (a task the worker never reads): the write itself blocks
    task = {"padding": torch.zeros(padding)} if padding else None
    os.kill(sampler._procs[0].pid, signal.SIGSTOP)
    tic = time.monotonic()
    with fails_after(HANG_GUARD), pytest.raises(WorkerError) as err:
        sampler.sample_steps(state, 4, task)
    assert time.monotonic() - tic >= 2.0  # not before the timeout
    assert re.fullmatch(
        r"sampler worker 0 \(pid \d+\) did not finish sample_steps within 2 s \(sampler.timeout\)",
        str(err.value),
    ), str(err.value)
    # SIGKILL at once, with no grace: a stopped process ignores "close" and SIGTERM
    assert_closes_without_its_grace(sampler, monkeypatch)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_deadline_does_not_count_time_the_process_spent_stopped(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(wire.time, "monotonic", clock)
    deadline = wire.Deadline(3.0)
    assert deadline.next_wait() == 1.0  # waits come in slices
    clock.now += 1.0  # a slice waited as asked: running time
    assert not deadline.passed()
    deadline.next_wait()
    clock.now += 600.0  # suspended (Ctrl-Z) in this wait, then continued: it counts its slice
    assert not deadline.passed()
    waited = 0.0
    while not deadline.passed():  # a worker that never answers: the rest of the 3 s
        slice_ = deadline.next_wait()
        clock.now += slice_
        waited += slice_
    assert waited == pytest.approx(1.0)
    assert wire.Deadline(float("inf")).next_wait() is None


def test_config_error_in_a_worker_arrives_as_config_error():
    policy = policy_for(NAV)
    with SubprocessSampler(NAV, policy, seed=0, num_workers=2) as sampler:
        bad_task = [{"no_such_key": 1.0}]
        with pytest.raises(ConfigError) as err:
            sampler.sample_episodes(state_of(policy), bad_task, 2, seed=0)
        assert not isinstance(err.value, WorkerError)
        assert (
            str(err.value)
            == "unknown task key 'no_such_key' for Navigation2D; expected keys ['goal']"
        )
        good_task = [{"goal": [0.1, 0.2]}]
        assert sampler.sample_episodes(state_of(policy), good_task, 2, seed=0).obs.shape[:2] == (
            1,
            2,
        )
    with pytest.raises(ConfigError, match="^unknown env id 'NoSuchEnv-v0'"):  # at start-up
        SubprocessSampler(EnvSpec("NoSuchEnv-v0"), policy, seed=0, num_workers=1)


def test_ray_actor_failures():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    policy = policy_for(NAV)
    pids: list[int] = []
    try:
        with pytest.raises(ConfigError, match="^unknown env id 'NoSuchEnv-v0'"):  # at start-up
            RaySampler(EnvSpec("NoSuchEnv-v0"), policy, seed=0, num_workers=1)
        with RaySampler(NAV, policy, seed=0, num_workers=2) as sampler:
            with pytest.raises(ConfigError, match="^unknown task key 'no_such_key'"):
                sampler.sample_episodes(state_of(policy), [{"no_such_key": 1.0}], 2, seed=0)
            params = {**policy.init_params(), "no_such_param": torch.zeros(1)}
            bad = Acting.single(PolicyState.of(params, policy))
            with pytest.raises(WorkerError) as err:
                sampler.sample_steps(bad, 4)
            assert err.value.message.startswith(
                "sampler worker 0 (Ray actor) failed during sample_steps: KeyError: "
            )
            assert "sampling/worker.py" in err.value.worker_traceback  # Ray's remote traceback
            pids = [
                ray.get(a.__ray_call__.remote(lambda actor: os.getpid())) for a in sampler._actors
            ]
            sampler.timeout = 2.0
            os.kill(pids[0], signal.SIGSTOP)
            with fails_after(HANG_GUARD), pytest.raises(WorkerError) as err:
                sampler.sample_steps(state_of(policy), 4)
            assert str(err.value) == (
                "sampler worker 0 (Ray actor) did not finish sample_steps within 2 s "
                "(sampler.timeout)"
            )
            os.kill(pids[1], signal.SIGKILL)
            with fails_after(HANG_GUARD), pytest.raises(WorkerError) as err:
                sampler.sample_steps(state_of(policy), 4)
            assert err.value.message.startswith(
                "sampler worker 1 (Ray actor) died during sample_steps: ActorDiedError: "
            )
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        ray.shutdown()


class ExitsWhenUnpickled:
    """A policy whose worker exits with code 1 while it starts, as one running an unguarded
    main script does (the script starts a sampler inside the worker, which is refused)."""

    def __reduce__(self) -> tuple:
        return sys.exit, (1,)


def test_death_at_start_up_gets_the_main_guard_hint():
    with pytest.raises(WorkerError) as err:
        SubprocessSampler(PENDULUM, ExitsWhenUnpickled(), seed=0, num_workers=1)
    assert re.fullmatch(
        r"sampler worker 0 \(pid \d+\) exited with code 1 during start-up \(its stderr above says "
        r"why\); if it is about bootstrapping, guard the main script with "
        r"`if __name__ == '__main__':`, which workers re-import",
        str(err.value),
    ), str(err.value)


def test_cli_prints_one_line_and_the_traceback_only_when_asked(monkeypatch, capsys):
    import metarobust.api

    error = WorkerError(
        "sampler worker 1 (pid 7) failed during sample_steps: KeyError: 'x'",
        "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n",
    )

    def fails(cfg):
        raise error

    monkeypatch.setattr(metarobust.api, "train", fails)
    monkeypatch.delenv("METAROBUST_DEBUG", raising=False)
    assert main(["train"]) == 1
    one_line = "metarobust: sampling failed: " + error.message
    assert capsys.readouterr().err == one_line + "\n"
    monkeypatch.setenv("METAROBUST_DEBUG", "1")
    assert main(["train"]) == 1
    assert capsys.readouterr().err == one_line + "\n" + error.worker_traceback


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc/*/stat)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            state_and_ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            if int(state_and_ppid[1]) == pid:
                found.append(int(stat.parent.name))
    return sorted(found)


def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up after {seconds} s"
        time.sleep(0.02)


def test_cli_run_whose_worker_is_killed_exits_1_and_keeps_its_checkpoint(tmp_path):
    overrides = [
        "env.id=InvertedPendulum-v5",
        "sampler.backend=subprocess",
        "sampler.workers=2",
        "ppo.num_steps=32",
        "ppo.minibatch_size=64",
        "ppo.num_epochs=1",
        "train.total_steps=10000000",  # far longer than the test lets it run
        "checkpoint.every=10",  # the kill comes well before the second checkpoint
        "logging.progress=false",
        f"logging.log_dir={tmp_path}",
        "logging.run_name=killed",
    ]
    cmd = [sys.executable, "-m", "metarobust.cli", "train", *(f"--set={o}" for o in overrides)]
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    with (tmp_path / "stderr.txt").open("w") as stderr:
        cli = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path)
        try:
            wait_for(checkpoint.exists, 120)
            saved = checkpoint.read_bytes()
            # the workers are the forkserver's children; the CLI's other child, Python's
            # resource tracker, has none
            workers = [w for child in children(cli.pid) for w in children(child)]
            assert len(workers) == 2
            os.kill(workers[1], signal.SIGKILL)
            code = cli.wait(timeout=60)
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
    lines = (tmp_path / "stderr.txt").read_text().splitlines()
    assert code == 1
    assert len(lines) == 1, lines
    assert re.fullmatch(
        rf"metarobust: sampling failed: sampler worker [01] \(pid {workers[1]}\) died with "
        r"signal SIGKILL during (sample_steps|stream_state)",
        lines[0],
    ), lines
    assert checkpoint.read_bytes() == saved  # nothing written after the failure
    assert load_checkpoint(tmp_path / "killed")["iteration"] == 10
