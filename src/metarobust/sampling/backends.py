"""Samplers: the same RolloutWorker in-process, in worker processes, or as Ray actors.

Every backend splits work the same way, so all of them give identical data for one seed:

- episodes: units ``(task_index, rollout_index, task, unit_seed)`` in task-major order are
  split contiguously across workers and reassembled as ``[task, episode, time, ...]``;
- steps: worker ``w``'s env ``i`` is global env ``w * envs_per_worker + i``, and the workers'
  envs are concatenated along the rollout axis, ``[1, workers * envs_per_worker, time, ...]``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import pickle
import signal
import sys
import traceback
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from metarobust.config import SamplerConfig
from metarobust.errors import ConfigError, WorkerError
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.trajectories import _STEP_FIELDS, Trajectories
from metarobust.sampling.worker import Policies, RolloutWorker, Unit, unit_seed

Task = Mapping[str, Any] | None
Call = tuple[str, tuple[Any, ...]]  # (RolloutWorker method, arguments)


class Sampler(ABC):
    """Collects Trajectories with ``workers`` RolloutWorkers of ``envs_per_worker`` envs each."""

    def __init__(self, num_workers: int, envs_per_worker: int) -> None:
        self.num_workers, self.envs_per_worker = num_workers, envs_per_worker

    @property
    def num_envs(self) -> int:
        return self.num_workers * self.envs_per_worker

    @abstractmethod
    def _run(self, calls: Sequence[Call | None]) -> list[Any]:
        """Make ``calls[w]`` on worker ``w`` (all at once where the backend can); None skips."""

    @abstractmethod
    def close(self) -> None:
        """Release envs, processes or actors (idempotent)."""

    def sample_episodes(
        self,
        state: Mapping[str, Any],
        tasks: Sequence[Task],
        episodes_per_task: int,
        seed: int,
        paired: bool = False,
    ) -> Trajectories:
        """``episodes_per_task`` episodes of every task: ``[task, episode, time, ...]``.

        ``state`` is ``{"params", "buffers", "per_task"}`` (per-task params are indexed by
        the position of the task in ``tasks``); ``seed`` fixes resets and action noise, per
        task and episode, or with ``paired`` per episode only: episode ``r`` of every task
        then starts from the same state with the same noise (common random numbers).
        """
        units: list[Unit] = [
            (t, r, task, unit_seed(seed, 0 if paired else t, r))
            for t, task in enumerate(tasks)
            for r in range(episodes_per_task)
        ]
        bounds = np.linspace(0, len(units), self.num_workers + 1).round().astype(int)
        calls: list[Call | None] = [
            ("sample_episodes", (state, units[a:b])) if b > a else None
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        rows = Trajectories.cat([r for r in self._run(calls) if r is not None], dim=1)
        shape = (len(tasks), episodes_per_task)  # [1, unit, ...] -> [task, episode, ...]
        return replace(
            rows, **{f: getattr(rows, f).reshape(*shape, *getattr(rows, f).shape[2:])
                     for f in _STEP_FIELDS}
        )  # fmt: skip

    def sample_steps(
        self, state: Mapping[str, Any], num_steps: int, task: Task = None
    ) -> Trajectories:
        """``num_steps`` more steps of every env's stream: ``[1, num_envs, num_steps, ...]``."""
        calls = [("sample_steps", (state, num_steps, task))] * self.num_workers
        return Trajectories.cat(self._run(calls), dim=1)

    def state(self) -> dict[str, Any]:
        """The step-mode streams (envs mid-episode included), for an exact resume."""
        workers = self._run([("stream_state", (False,))] * self.num_workers)
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
        self._run([("load_stream_state", (w,)) for w in workers])

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
    ) -> None:
        super().__init__(num_workers, envs_per_worker)
        self._workers = [
            RolloutWorker(spec, envs_per_worker, policy, seed, w * envs_per_worker)
            for w in range(num_workers)
        ]

    def _run(self, calls: Sequence[Call | None]) -> list[Any]:
        return [
            None if call is None else getattr(worker, call[0])(*call[1])
            for worker, call in zip(self._workers, calls, strict=True)
        ]

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []


class SubprocessSampler(Sampler):
    """One RolloutWorker per process (forkserver, or spawn where there is none), over Pipes."""

    def __init__(
        self,
        spec: EnvSpec,
        policy: Policies,
        seed: int,
        envs_per_worker: int = 1,
        num_workers: int = 2,
        start_method: str | None = None,
    ) -> None:
        super().__init__(num_workers, envs_per_worker)
        if start_method is None:
            start_method = "forkserver" if sys.platform.startswith("linux") else "spawn"
        ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            ctx.set_forkserver_preload([__name__])  # import torch once, not once per worker
        policy_bytes = pickle.dumps(policy)
        self._conns: list[Connection] = []
        self._procs: list[mp.process.BaseProcess] = []
        self._pending = [False] * num_workers  # a reply not yet read (after an interrupt)
        try:
            for w in range(num_workers):
                parent, child = ctx.Pipe()
                args = (child, spec, envs_per_worker, policy_bytes, seed, w * envs_per_worker)
                proc = ctx.Process(target=_subprocess_main, args=args, daemon=True)
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
                self._pending[w] = True  # its "ready" message
            self._run([None] * num_workers)
        except BaseException:
            self.close()
            raise

    def _run(self, calls: Sequence[Call | None]) -> list[Any]:
        for w, pending in enumerate(self._pending):
            if pending:
                reply = self._receive(w)
                if reply[0] == "error":
                    raise WorkerError(f"sampler worker {w} failed:\n{reply[1]}")
        for w, call in enumerate(calls):
            if call is not None:
                self._conns[w].send_bytes(pickle.dumps(to_wire(call), pickle.HIGHEST_PROTOCOL))
                self._pending[w] = True
        replies = [self._receive(w) if call is not None else None for w, call in enumerate(calls)]
        for w, reply in enumerate(replies):
            if reply is not None and reply[0] == "error":
                raise WorkerError(f"sampler worker {w} failed:\n{reply[1]}")
        return [None if r is None else from_wire(r[1]) for r in replies]

    def _receive(self, w: int) -> tuple[str, Any]:
        try:
            reply = pickle.loads(self._conns[w].recv_bytes())
        except (EOFError, ConnectionError):
            self._procs[w].join(timeout=1.0)
            raise WorkerError(
                f"sampler worker {w} died (exit code {self._procs[w].exitcode}); workers "
                "re-import the main script, so guard it with `if __name__ == '__main__':`"
            ) from None
        self._pending[w] = False
        return reply

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):  # already gone
                conn.send_bytes(pickle.dumps(("close", ())))
        for proc in self._procs:
            proc.join(timeout=5.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5.0)
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []


class RaySampler(Sampler):
    """One RolloutWorker per Ray actor; ``ray.init(address=address)`` unless Ray is running."""

    def __init__(
        self,
        spec: EnvSpec,
        policy: Policies,
        seed: int,
        envs_per_worker: int = 1,
        num_workers: int = 2,
        address: str | None = None,
    ) -> None:
        super().__init__(num_workers, envs_per_worker)
        self._ray = _import_ray()
        if not self._ray.is_initialized():
            self._ray.init(address=address)
        actor = self._ray.remote(num_cpus=1)(RemoteWorker)
        policy_bytes = pickle.dumps(policy)
        self._actors = [
            actor.remote(spec, envs_per_worker, policy_bytes, seed, w * envs_per_worker)
            for w in range(num_workers)
        ]
        try:
            self._get([a.ready.remote() for a in self._actors])
        except BaseException:
            self.close()
            raise

    def _run(self, calls: Sequence[Call | None]) -> list[Any]:
        refs = [
            None if call is None else actor.call.remote(*to_wire(call))
            for actor, call in zip(self._actors, calls, strict=True)
        ]
        results = self._get([r for r in refs if r is not None])
        out = iter(results)
        return [None if r is None else from_wire(next(out)) for r in refs]

    def _get(self, refs: list[Any]) -> list[Any]:
        try:
            return self._ray.get(refs)
        except self._ray.exceptions.RayError as err:
            raise WorkerError(f"sampler actor failed:\n{err}") from None

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []


def make_sampler(cfg: SamplerConfig, spec: EnvSpec, policy: Policies, seed: int) -> Sampler:
    """The backend ``cfg`` names ("auto": local for one worker, subprocesses for more).

    ``policy``: one module, or ``{"protagonist": ..., "adversary": ...}`` for a two-player env.
    """
    backend = cfg.backend
    if backend == "auto":
        backend = "local" if cfg.workers == 1 else "subprocess"
    kwargs = dict(envs_per_worker=cfg.envs_per_worker, num_workers=cfg.workers)
    if backend == "local":
        return LocalSampler(spec, policy, seed, **kwargs)
    if backend == "subprocess":
        return SubprocessSampler(spec, policy, seed, **kwargs)
    return RaySampler(spec, policy, seed, address=cfg.ray_address, **kwargs)


# ---------------------------------------------------------------------- worker side


class RemoteWorker:
    """A RolloutWorker behind a message interface (the body of a process or a Ray actor)."""

    def __init__(
        self, spec: EnvSpec, num_envs: int, policy_bytes: bytes, seed: int, env_offset: int
    ) -> None:
        torch.set_num_threads(1)  # workers run side by side; one thread each
        self.worker = RolloutWorker(spec, num_envs, pickle.loads(policy_bytes), seed, env_offset)

    def ready(self) -> bool:
        return True

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        return to_wire(getattr(self.worker, method)(*from_wire(args)))

    def close(self) -> None:
        self.worker.close()


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
    except Exception:
        conn.send_bytes(pickle.dumps(("error", traceback.format_exc())))
        return
    conn.send_bytes(pickle.dumps(("ok", None)))
    try:
        while True:
            try:
                method, args = pickle.loads(conn.recv_bytes())
            except EOFError:
                break
            if method == "close":
                break
            try:
                reply = pickle.dumps(("ok", remote.call(method, args)), pickle.HIGHEST_PROTOCOL)
            except Exception:
                reply = pickle.dumps(("error", traceback.format_exc()))
            conn.send_bytes(reply)
    finally:
        remote.close()
        conn.close()


# Tensors cross process boundaries as NumPy arrays (plain pickle, no shared-memory handles),
# tagged so that NumPy arrays the caller sent (in a task, say) come back as NumPy arrays.
class _Tensor:
    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Tensor, (self.array,))


_TRAJECTORIES = "__trajectories__"


def to_wire(obj: Any) -> Any:
    """``obj`` with every tensor (Trajectories included) turned into a tagged NumPy array."""
    if isinstance(obj, torch.Tensor):
        return _Tensor(obj.detach().cpu().numpy())
    if isinstance(obj, Trajectories):
        return {_TRAJECTORIES: {f.name: to_wire(getattr(obj, f.name)) for f in fields(obj)}}
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
    if isinstance(obj, dict):
        if _TRAJECTORIES in obj:
            return Trajectories(**{k: from_wire(v) for k, v in obj[_TRAJECTORIES].items()})
        return {k: from_wire(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(from_wire(v) for v in obj)
    return obj


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("sampler.backend=ray needs Ray: pip install 'metarobust[ray]'") from None
    return ray
