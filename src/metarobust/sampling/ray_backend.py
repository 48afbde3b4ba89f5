"""RaySampler: one RolloutWorker per Ray actor.

Ray is imported when a RaySampler is made, not with this module: the package works without
the ``[ray]`` extra.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
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
            self._get([a.ready.remote() for a in self._actors], [START_UP] * num_workers)
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
        deadline = Deadline(self.timeout)
        worker = {ref: w for w, ref in enumerate(refs) if ref is not None}
        results: list[Any] = [None] * len(refs)
        errors: dict[int, Exception] = {}
        waiting = list(worker)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=deadline.next_wait())
            if not ready:
                if not deadline.passed():
                    continue
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
                    message = f"{name} failed during {calls[w]}: {one_line(err.cause)}"
                    errors[w] = WorkerError(message, str(err))
            except ray.exceptions.RayError as err:  # the actor died, or its node
                message = f"{name} died during {calls[w]}: {one_line(err)}"
                raise WorkerError(message, str(err)) from None
        if errors:
            raise errors[min(errors)]
        return results

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []


class _RayWorker(RemoteWorker):
    """A RemoteWorker that Ray builds in its first call, ``ready()``: Ray reports an
    exception raised in a method as itself, one raised in ``__init__`` only as text."""

    def __init__(self, *args: Any) -> None:
        self._args = args

    def ready(self) -> bool:
        super().__init__(*self._args)
        return True


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("sampler.backend=ray needs Ray: pip install 'metarobust[ray]'") from None
    return ray
