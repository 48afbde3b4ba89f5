"""SubprocessSampler: one RolloutWorker per process, over Pipes, each call under a deadline.

The parent's side (sending, collecting replies, naming a worker that died or is late, closing)
and the worker's (the process's main loop and its error replies).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from metarobust.errors import ConfigError, TrainingError, WorkerError
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.game import Game
from metarobust.sampling.sampler import Sampler, cpu_copy
from metarobust.sampling.wire import (
    START_UP,
    Deadline,
    RemoteWorker,
    from_wire,
    one_line,
    to_wire,
)
from metarobust.sampling.worker import Policies, Request

_CLOSE = pickle.dumps(("close", ()))
_CLOSE_GRACE_S = 2.0  # how long close() waits for workers to stop before it kills them


class SubprocessSampler(Sampler):
    """One RolloutWorker per process (forkserver, or spawn where there is none), over Pipes.

    Each call (start-up included) must be answered within ``timeout`` seconds, not counting
    time the parent spent stopped (``wire.Deadline``: a suspended job resumes). A worker that
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
                self._pending[w] = START_UP  # its "ready" message
            self._run([None] * num_workers)
        except BaseException:
            self.close()
            raise

    def _run(self, calls: Sequence[Request | None]) -> list[Any]:
        deadline = Deadline(self.timeout)
        self._collect(deadline)  # replies left unread: "ready", or an interrupted call's
        for w, call in enumerate(calls):
            if call is not None:
                self._pending[w] = call.name
                message = pickle.dumps(("call", to_wire(call)), pickle.HIGHEST_PROTOCOL)
                self._send(w, message, deadline)
        replies = self._collect(deadline)
        return [None if call is None else from_wire(replies[w]) for w, call in enumerate(calls)]

    def _send(self, w: int, data: bytes, deadline: Deadline) -> None:
        """Write ``data`` to worker ``w`` by ``deadline``. From a thread: a worker that does
        not read (a stopped process, its pipe full) must not block this one for ever."""

        def write() -> None:
            with contextlib.suppress(OSError):  # the worker is gone; _receive tells how
                self._conns[w].send_bytes(data)

        previous = self._senders[w]
        if previous is not None:  # a write cut short by Ctrl-C: keep messages whole
            deadline.join(previous)
        if previous is None or not previous.is_alive():
            self._senders[w] = threading.Thread(target=write, daemon=True)
            self._senders[w].start()
            deadline.join(self._senders[w])
        if self._senders[w].is_alive():
            self._stuck.add(w)
            raise self._late(w)

    def _collect(self, deadline: Deadline) -> dict[int, Any]:
        """The reply to each pending call, read as it arrives, then the first error reported.

        A worker that dies is reported at once, not after the others have answered.
        """
        replies: dict[int, Any] = {}
        errors: dict[int, Exception] = {}
        waiting = {self._conns[w]: w for w, call in enumerate(self._pending) if call is not None}
        while waiting:
            ready = mp.connection.wait(list(waiting), deadline.next_wait())
            if not ready and deadline.passed():
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
        if call == START_UP and code is not None and code > 0 and self._start_method != "fork":
            # its traceback went to stderr; the commonest cause: a fresh worker re-imports the
            # main script, and unguarded, that starts a sampler inside the worker, which
            # multiprocessing refuses ("... before the current process has finished its
            # bootstrapping phase")
            message += (
                " (its stderr above says why); if it is about bootstrapping, guard the "
                "main script with `if __name__ == '__main__':`, which workers re-import"
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
        grace = Deadline(_CLOSE_GRACE_S)
        for w in range(len(self._conns)):
            if w not in self._stuck:
                with contextlib.suppress(WorkerError):  # it does not read: killed below
                    self._send(w, _CLOSE, grace)
        for w, proc in enumerate(self._procs):
            if w not in self._stuck:
                grace.join(proc)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=1.0)
        for sender in self._senders:
            if sender is not None:  # its write fails now that the reader is gone
                sender.join(timeout=1.0)
        for conn in self._conns:
            conn.close()
        self._conns, self._procs, self._senders, self._stuck = [], [], [], set()


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"{signum}"


# ---------------------------------------------------------------------- worker side


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
    return pickle.dumps(("error", one_line(exc), "".join(traceback.format_exception(exc))))
