"""The Sampler, its split of work over workers, and LocalSampler, its in-process backend.

Every backend splits work the same way, so all of them give identical data for one seed:

- episodes: units (one episode of one task each) in task-major order are split contiguously
  across workers and reassembled as ``[task, episode, time, ...]``;
- steps: worker ``w``'s env ``i`` is global env ``w * envs_per_worker + i``, and the workers'
  envs are concatenated along the rollout axis, ``[1, workers * envs_per_worker, time, ...]``.

The other backends are ``subprocess_backend.py`` and ``ray_backend.py``; ``make_sampler``
(``sampler_factory.py``) builds the one a config names.
"""

from __future__ import annotations

import copy
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from metarobust.errors import ConfigError
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


def cpu_copy(policy: Policies) -> Policies:
    """The policy modules as workers take them: CPU copies of any on another device (the
    learner's stay where they are)."""
    if isinstance(policy, Mapping):
        return {name: cpu_copy(module) for name, module in policy.items()}
    on_cpu = not isinstance(policy, torch.nn.Module) or all(
        t.device.type == "cpu" for t in (*policy.parameters(), *policy.buffers())
    )
    return policy if on_cpu else copy.deepcopy(policy).cpu()
