"""The wire between the parent and a worker in another process or a Ray actor.

Requests and replies cross as plain pickles, every tensor in them a tagged NumPy array
(``to_wire`` / ``from_wire``); ``RemoteWorker`` answers them on the far side. Also what the
subprocess and Ray backends share to report a call: ``START_UP``, a ``Deadline`` that does not
count time the parent spent stopped, and an exception in ``one_line``.
"""

from __future__ import annotations

import math
import pickle
import threading
import time
from dataclasses import fields, is_dataclass, replace
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
import torch

from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.worker import Request, RolloutWorker

START_UP = "start-up"  # what a worker is doing until its first reply


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


class Deadline:
    """``seconds`` from now (``inf``: never), not counting time this process spent stopped.

    Waits are cut into slices of at most ``SLICE`` seconds (``next_wait``); a slice that ends
    over ``STOPPED_AFTER`` seconds later than asked means the process was not running (a job
    suspended with Ctrl-Z or SIGSTOP, then continued), and moves the deadline on by as much.
    A worker that hangs while the parent runs still misses it on time.
    """

    SLICE = 1.0
    STOPPED_AFTER = 5.0

    def __init__(self, seconds: float) -> None:
        self._asked_at = time.monotonic()
        self._asked = 0.0
        self._end = self._asked_at + seconds

    def _now(self) -> float:
        now = time.monotonic()
        late = now - self._asked_at - self._asked
        if late > self.STOPPED_AFTER:
            self._end += late
        self._asked_at, self._asked = now, 0.0
        return now

    def next_wait(self) -> float | None:
        """How long to wait before looking again: a slice, none past the deadline (None: no
        deadline, wait as long as it takes)."""
        if math.isinf(self._end):
            return None
        self._asked = min(self.SLICE, max(self._end - self._now(), 0.0))
        return self._asked

    def passed(self) -> bool:
        return self._now() >= self._end

    def join(self, task: threading.Thread | BaseProcess) -> None:
        """Wait for a thread or process to end, or for the deadline."""
        while task.is_alive() and not self.passed():
            task.join(self.next_wait())


def one_line(exc: BaseException) -> str:
    """``Type: message``, the message cut to its first line."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0].removesuffix(":")
