"""Samplers: the same RolloutWorker in-process, in worker processes, or as Ray actors.

Every backend splits work the same way, so all of them give identical data for one seed:

- episodes: units (one episode of one task each) in task-major order are split contiguously
  across workers and reassembled as ``[task, episode, time, ...]``;
- steps: worker ``w``'s env ``i`` is global env ``w * envs_per_worker + i``, and the workers'
  envs are concatenated along the rollout axis, ``[1, workers * envs_per_worker, time, ...]``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import multiprocessing as mp
import pickle
import signal
import sys
import threading
import time
import traceback
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from metarobust.config import SamplerConfig
from metarobust.errors import ConfigError, TrainingError, WorkerError
from metarobust.sampling.acting import Acting
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.episodes import Unit, unit_seed
from metarobust.sampling.game import Game
from metarobust.sampling.worker import (
    GetStreams,
    Policies,
    Request,
    RolloutWorker,
    SampleEpisodes,
    SampleSteps,
    SetStreams,
)
from metarobust.trajectories import Trajectories

Task = Mapping[str, Any] | None
EVALUATION_BATCH = 16  # envs a saved policy's evaluation steps together


class Sampler(ABC):
    """Collects Trajectories with ``workers`` RolloutWorkers of ``envs_per_worker`` envs each."""

    def __init__(self, num_workers: int, envs_per_worker: int) -> None:
        self.num_workers, self.envs_per_worker = num_workers, envs_per_worker

    @property
    def num_envs(self) -> int:
        return self.num_workers * self.envs_per_worker

    @abstractmethod
    def _run(self, calls: Sequence[Request | None]) -> list[Any]:
        """Send ``calls[w]`` to worker ``w`` (all at once where the backend can); None skips."""

    @abstractmethod
    def close(self) -> None:
        """Release envs, processes or actors (idempotent)."""

    def sample_episodes(
        self,
        acting: Acting,
        tasks: Sequence[Task],
        episodes_per_task: int,
        seed: int,
        *,
        paired: bool = False,
    ) -> Trajectories:
        """``episodes_per_task`` episodes of every task: ``[task, episode, time, ...]``.

        A player's state stacked by task acts in task ``i`` with its set ``i``; ``seed`` fixes
        resets and action noise, per task and episode, or with ``paired`` per episode only:
        episode ``r`` of every task then starts from the same state with the same noise
        (common random numbers).
        """
        units = [
            Unit(t, r, task, unit_seed(seed, 0 if paired else t, r))
            for t, task in enumerate(tasks)
            for r in range(episodes_per_task)
        ]
        bounds = np.linspace(0, len(units), self.num_workers + 1).round().astype(int)
        calls: list[Request | None] = [
            SampleEpisodes(acting, tuple(units[a:b])) if b > a else None
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        rows = Trajectories.cat([r for r in self._run(calls) if r is not None], dim=1)
        return rows.split_rollouts(len(tasks), episodes_per_task)

    def sample_steps(self, acting: Acting, num_steps: int, task: Task = None) -> Trajectories:
        """``num_steps`` more steps of every env's stream: ``[1, num_envs, num_steps, ...]``."""
        calls = [SampleSteps(acting, num_steps, task)] * self.num_workers
        return Trajectories.cat(self._run(calls), dim=1)

    def state(self) -> dict[str, Any]:
        """The step-mode streams (envs mid-episode included), for an exact resume."""
        workers = self._run([GetStreams()] * self.num_workers)
        if any(w is None for w in workers):
            warnings.warn(
                "the env's simulator state cannot be saved: a resumed run restarts its "
                "episodes instead of continuing them exactly",
                stacklevel=2,
            )
            return {"workers": None}
        return {"workers": workers}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue the streams saved by ``state()`` (same workers and envs per worker)."""
        workers = state["workers"]
        if workers is None:
            return
        if len(workers) != self.num_workers:
            raise ConfigError(
                f"saved sampler state has {len(workers)} workers, this sampler has "
                f"{self.num_workers}; resume with the same sampler.workers"
            )
        self._run([SetStreams(w) for w in workers])

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalSampler(Sampler):
    """The workers in this process, one after the other (one worker is the usual case)."""

    def __init__(
        self,
        spec: EnvSpec,
        policy: Policies,
        seed: int,
        envs_per_worker: int = 1,
        num_workers: int = 1,
        game: Game | None = None,
    ) -> None:
        super().__init__(num_workers, envs_per_worker)
        policy = cpu_copy(policy)
        self._workers = []
        try:
            for w in range(num_workers):
                offset = w * envs_per_worker
                self._workers.append(
                    RolloutWorker(spec, envs_per_worker, policy, seed, offset, game)
                )
        except BaseException:
            self.close()
            raise

    def _run(self, calls: Sequence[Request | None]) -> list[Any]:
        return [
            None if call is None else call(worker)
            for worker, call in zip(self._workers, calls, strict=True)
        ]

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []


_START_UP = "start-up"  # what a worker is doing until its first reply
_CLOSE = pickle.dumps(("close", ()))
_CLOSE_GRACE_S = 2.0  # how long close() waits for workers to stop before it kills them


class SubprocessSampler(Sampler):
    """One RolloutWorker per process (forkserver, or spawn where there is none), over Pipes.

    Each call (start-up included) must be answered within ``timeout`` seconds. A worker that
    dies or is late is a WorkerError naming it; an exception a worker raises comes back as
    the same ConfigError or TrainingError, any other as a WorkerError with its traceback.
    """

    def __init__(
        self,
        spec: EnvSpec,
        policy: Policies,
        seed: int,
        envs_per_worker: int = 1,
        num_workers: int = 2,
        start_method: str | None = None,
        timeout: float = 600.0,
        game: Game | None = None,
    ) -> None:
        super().__init__(num_workers, envs_per_worker)
        if start_method is None:
            start_method = "forkserver" if sys.platform.startswith("linux") else "spawn"
        ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            ctx.set_forkserver_preload([__name__])  # import torch once, not once per worker
        self.timeout, self._start_method = timeout, start_method
        policy_bytes = pickle.dumps((cpu_copy(policy), game))
        self._conns: list[Connection] = []
        self._procs: list[mp.process.BaseProcess] = []
        # per worker: the call whose reply is not read yet (after an interrupt, say)
        self._pending: list[str | None] = [None] * num_workers
        self._senders: list[threading.Thread | None] = [None] * num_workers
        self._stuck: set[int] = set()  # workers that missed a deadline: killed by close()
        try:
            for w in range(num_workers):
                parent, child = ctx.Pipe()
                args = (child, spec, envs_per_worker, policy_bytes, seed, w * envs_per_worker)
                proc = ctx.Process(target=_subprocess_main, args=args, daemon=True)
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
                self._pending[w] = _START_UP  # its "ready" message
            self._run([None] * num_workers)
        except BaseException:
            self.close()
            raise

    def _run(self, calls: Sequence[Request | None]) -> list[Any]:
        deadline = time.monotonic() + self.timeout
        self._collect(deadline)  # replies left unread: "ready", or an interrupted call's
        for w, call in enumerate(calls):
            if call is not None:
                self._pending[w] = call.name
                message = pickle.dumps(("call", to_wire(call)), pickle.HIGHEST_PROTOCOL)
                self._send(w, message, deadline)
        replies = self._collect(deadline)
        return [None if call is None else from_wire(replies[w]) for w, call in enumerate(calls)]

    def _send(self, w: int, data: bytes, deadline: float) -> None:
        """Write ``data`` to worker ``w`` by ``deadline``. From a thread: a worker that does
        not read (a stopped process, its pipe full) must not block this one for ever."""

        def write() -> None:
            with contextlib.suppress(OSError):  # the worker is gone; _receive tells how
                self._conns[w].send_bytes(data)

        previous = self._senders[w]
        if previous is not None:  # a write cut short by Ctrl-C: keep messages whole
            previous.join(_remaining(deadline))
        if previous is None or not previous.is_alive():
            self._senders[w] = threading.Thread(target=write, daemon=True)
            self._senders[w].start()
            self._senders[w].join(_remaining(deadline))
        if self._senders[w].is_alive():
            self._stuck.add(w)
            raise self._late(w)

    def _collect(self, deadline: float) -> dict[int, Any]:
        """The reply to each pending call, read as it arrives, then the first error reported.

        A worker that dies is reported at once, not after the others have answered.
        """
        replies: dict[int, Any] = {}
        errors: dict[int, Exception] = {}
        waiting = {self._conns[w]: w for w, call in enumerate(self._pending) if call is not None}
        while waiting:
            ready = mp.connection.wait(list(waiting), _remaining(deadline))
            if not ready:
                self._stuck.update(waiting.values())
                raise self._late(min(waiting.values()))
            for conn in ready:
                w = waiting.pop(conn)
                call = self._pending[w]
                reply = self._receive(w)
                if reply[0] == "ok":
                    replies[w] = reply[1]
                elif reply[0] == "raise":  # the project's own error, as the worker raised it
                    errors[w] = reply[1]
                else:
                    errors[w] = WorkerError(
                        f"{self._name(w)} failed during {call}: {reply[1]}", reply[2]
                    )
        if errors:
            raise errors[min(errors)]
        return replies

    def _receive(self, w: int) -> tuple[Any, ...]:
        """Worker ``w``'s reply (there is something to read), or WorkerError if it is gone."""
        try:
            reply = pickle.loads(self._conns[w].recv_bytes())
        except (EOFError, OSError):
            raise self._died(w) from None
        self._pending[w] = None
        return reply

    def _name(self, w: int) -> str:
        return f"sampler worker {w} (pid {self._procs[w].pid})"

    def _died(self, w: int) -> WorkerError:
        proc, call = self._procs[w], self._pending[w]
        proc.join(timeout=1.0)  # its pipe closes as it exits: let it finish
        code = proc.exitcode
        if code is None:
            what = "closed its pipe"
        elif code < 0:
            what = f"died with signal {_signal_name(-code)}"
        else:
            what = f"exited with code {code}"
        message = f"{self._name(w)} {what} during {call}"
        if call == _START_UP and code is not None and code > 0 and self._start_method != "fork":
            # a fresh worker re-imports the main script; unguarded, that starts a sampler
            # inside the worker, which multiprocessing refuses
            message += (
                "; workers re-import the main script, so guard it with `if __name__ == '__main__':`"
            )
        return WorkerError(message)

    def _late(self, w: int) -> WorkerError:
        return WorkerError(
            f"{self._name(w)} did not finish {self._pending[w]} within {self.timeout:g} s "
            "(sampler.timeout)"
        )

    def close(self) -> None:
        # "close", a short grace, then SIGKILL, which also ends a stopped process (SIGTERM
        # waits for it to continue); workers that missed a deadline are killed at once
        grace = time.monotonic() + _CLOSE_GRACE_S
        for w in range(len(self._conns)):
            if w not in self._stuck:
                with contextlib.suppress(WorkerError):  # it does not read: killed below
                    self._send(w, _CLOSE, grace)
        for w, proc in enumerate(self._procs):
            if w not in self._stuck:
                proc.join(_remaining(grace))
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=1.0)
        for sender in self._senders:
            if sender is not None:  # its write fails now that the reader is gone
                sender.join(timeout=1.0)
        for conn in self._conns:
            conn.close()
        self._conns, self._procs, self._senders, self._stuck = [], [], [], set()


class RaySampler(Sampler):
    """One RolloutWorker per Ray actor; ``ray.init(address=address)`` unless Ray is running.

    Errors as for SubprocessSampler: ``timeout`` seconds per call, start-up included.
    """

    def __init__(
        self,
        spec: EnvSpec,
        policy: Policies,
        seed: int,
        envs_per_worker: int = 1,
        num_workers: int = 2,
        address: str | None = None,
        timeout: float = 600.0,
        game: Game | None = None,
    ) -> None:
        super().__init__(num_workers, envs_per_worker)
        self.timeout = timeout
        self._ray = _import_ray()
        if not self._ray.is_initialized():
            self._ray.init(address=address)
        actor = self._ray.remote(num_cpus=1)(_RayWorker)
        policy_bytes = pickle.dumps((cpu_copy(policy), game))
        self._actors = [
            actor.remote(spec, envs_per_worker, policy_bytes, seed, w * envs_per_worker)
            for w in range(num_workers)
        ]
        try:
            self._get([a.ready.remote() for a in self._actors], [_START_UP] * num_workers)
        except BaseException:
            self.close()
            raise

    def _run(self, calls: Sequence[Request | None]) -> list[Any]:
        refs = [
            None if call is None else actor.call.remote(to_wire(call))
            for actor, call in zip(self._actors, calls, strict=True)
        ]
        results = self._get(refs, [None if call is None else call.name for call in calls])
        return [None if ref is None else from_wire(r) for ref, r in zip(refs, results, strict=True)]

    def _get(self, refs: Sequence[Any], calls: Sequence[str | None]) -> list[Any]:
        """The value of each ref (None for None), gathered as they arrive; a dead or late
        actor is reported at once, an exception a call raised once all have answered."""
        ray = self._ray
        deadline = time.monotonic() + self.timeout
        worker = {ref: w for w, ref in enumerate(refs) if ref is not None}
        results: list[Any] = [None] * len(refs)
        errors: dict[int, Exception] = {}
        waiting = list(worker)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=_remaining(deadline))
            if not ready:
                w = min(worker[ref] for ref in waiting)
                raise WorkerError(
                    f"sampler worker {w} (Ray actor) did not finish {calls[w]} within "
                    f"{self.timeout:g} s (sampler.timeout)"
                )
            w = worker[ready[0]]
            name = f"sampler worker {w} (Ray actor)"
            try:
                results[w] = ray.get(ready[0])
            except ray.exceptions.RayTaskError as err:  # the call raised err.cause
                if isinstance(err.cause, (ConfigError, TrainingError)):
                    errors[w] = err.cause
                else:
                    message = f"{name} failed during {calls[w]}: {_one_line(err.cause)}"
                    errors[w] = WorkerError(message, str(err))
            except ray.exceptions.RayError as err:  # the actor died, or its node
                message = f"{name} died during {calls[w]}: {_one_line(err)}"
                raise WorkerError(message, str(err)) from None
        if errors:
            raise errors[min(errors)]
        return results

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []


def make_sampler(
    cfg: SamplerConfig, spec: EnvSpec, policy: Policies, seed: int, *, game: Game | None = None
) -> Sampler:
    """The backend ``cfg`` names ("auto": local for one worker, subprocesses for more).

    ``policy``: one module (on any device; workers keep CPU copies), or one per player of
    ``game`` (default: one player), e.g. ``{"protagonist": ..., "adversary": ...}`` with
    ``metarobust.adversarial.game.ZeroSumGame``.
    """
    backend = cfg.backend
    if backend == "auto":
        backend = "local" if cfg.workers == 1 else "subprocess"
    kwargs = dict(envs_per_worker=cfg.envs_per_worker, num_workers=cfg.workers, game=game)
    if backend == "local":
        return LocalSampler(spec, policy, seed, **kwargs)
    if backend == "subprocess":
        return SubprocessSampler(spec, policy, seed, timeout=cfg.timeout, **kwargs)
    return RaySampler(spec, policy, seed, address=cfg.ray_address, timeout=cfg.timeout, **kwargs)


def _remaining(deadline: float) -> float | None:
    """Seconds left until ``deadline`` (None: no deadline), as a timeout to wait with."""
    return None if math.isinf(deadline) else max(deadline - time.monotonic(), 0.0)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"{signum}"


def _one_line(exc: BaseException) -> str:
    """``Type: message``, the message cut to its first line."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0].removesuffix(":")


# ---------------------------------------------------------------------- worker side


class RemoteWorker:
    """A RolloutWorker behind a message interface (the body of a process or a Ray actor)."""

    def __init__(
        self, spec: EnvSpec, num_envs: int, policy_bytes: bytes, seed: int, env_offset: int
    ) -> None:
        torch.set_num_threads(1)  # workers run side by side; one thread each
        policy, game = pickle.loads(policy_bytes)
        self.worker = RolloutWorker(spec, num_envs, policy, seed, env_offset, game)

    def ready(self) -> bool:
        return True

    def call(self, request: Request) -> Any:
        return to_wire(from_wire(request)(self.worker))

    def close(self) -> None:
        self.worker.close()


class _RayWorker(RemoteWorker):
    """A RemoteWorker that Ray builds in its first call, ``ready()``: Ray reports an
    exception raised in a method as itself, one raised in ``__init__`` only as text."""

    def __init__(self, *args: Any) -> None:
        self._args = args

    def ready(self) -> bool:
        super().__init__(*self._args)
        return True


def _subprocess_main(
    conn: Connection,
    spec: EnvSpec,
    num_envs: int,
    policy_bytes: bytes,
    seed: int,
    env_offset: int,
) -> None:
    # Ctrl-C goes to the whole process group: let the parent handle it and close us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        remote = RemoteWorker(spec, num_envs, policy_bytes, seed, env_offset)
    except Exception as exc:
        conn.send_bytes(_error_reply(exc))
        return
    conn.send_bytes(pickle.dumps(("ok", None)))
    try:
        while True:
            try:
                kind, request = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):  # the parent is gone
                break
            if kind == "close":
                break
            try:
                reply = pickle.dumps(("ok", remote.call(request)), pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                reply = _error_reply(exc)
            try:
                conn.send_bytes(reply)
            except OSError:  # the parent is gone
                break
    finally:
        remote.close()
        conn.close()


def _error_reply(exc: Exception) -> bytes:
    """A worker's report of ``exc``: the project's own errors as themselves, others as text."""
    if isinstance(exc, (ConfigError, TrainingError)):
        with contextlib.suppress(Exception):  # one that does not survive pickling goes as text
            reply = pickle.dumps(("raise", exc))
            pickle.loads(reply)
            return reply
    return pickle.dumps(("error", _one_line(exc), "".join(traceback.format_exception(exc))))


# Tensors cross process boundaries as NumPy arrays (plain pickle, no shared-memory handles),
# tagged so that NumPy arrays the caller sent (in a task, say) come back as NumPy arrays.
class _Tensor:
    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Tensor, (self.array,))


def to_wire(obj: Any) -> Any:
    """``obj`` with every tensor (in dataclasses, dicts, lists and tuples too) turned into a
    tagged NumPy array."""
    if isinstance(obj, torch.Tensor):
        return _Tensor(obj.detach().cpu().numpy())
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{f.name: to_wire(getattr(obj, f.name)) for f in fields(obj)})
    if isinstance(obj, dict):
        return {k: to_wire(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_wire(v) for v in obj)
    return obj


def from_wire(obj: Any) -> Any:
    """Inverse of ``to_wire``."""
    if isinstance(obj, _Tensor):
        array = obj.array
        # Ray hands back read-only arrays; torch wants to own writable memory.
        return torch.from_numpy(array if array.flags.writeable else array.copy())
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{f.name: from_wire(getattr(obj, f.name)) for f in fields(obj)})
    if isinstance(obj, dict):
        return {k: from_wire(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(from_wire(v) for v in obj)
    return obj


def cpu_copy(policy: Policies) -> Policies:
    """The policy modules as workers take them: CPU copies of any on another device (the
    learner's stay where they are)."""
    if isinstance(policy, Mapping):
        return {name: cpu_copy(module) for name, module in policy.items()}
    on_cpu = not isinstance(policy, torch.nn.Module) or all(
        t.device.type == "cpu" for t in (*policy.parameters(), *policy.buffers())
    )
    return policy if on_cpu else copy.deepcopy(policy).cpu()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("sampler.backend=ray needs Ray: pip install 'metarobust[ray]'") from None
    return ray
