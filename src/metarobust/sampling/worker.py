"""RolloutWorker: one vector env, one batched policy forward per player and step, two modes.

Episode mode (MAML, evaluation; ``episodes.py``) runs a list of units, each one full episode
of one task, through the envs as a work queue. Step mode (PPO/TRPO; ``streams.py``) continues
every env's stream of experience where the previous call stopped. Both step the envs through
one kernel (``stepper.py``) and return :class:`Trajectories` from the learner's view; who
acts how is the call's ``Acting`` and the worker's ``Game``.

Randomness does not depend on how work is split among workers or envs: a unit's env reset
seed and action noise come from its own seed alone, a step-mode env's from ``(worker seed,
global env index)`` alone. The policy runs one forward over the envs that are stepping, so a
different split changes only float rounding (BLAS picks kernels by batch size); the same split
gives bit-identical data on every backend.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from metarobust.errors import ConfigError
from metarobust.sampling.acting import SOLE, Acting
from metarobust.sampling.env_factory import EnvSpec, episode_horizon
from metarobust.sampling.env_state import StateNotCapturable
from metarobust.sampling.episodes import Unit, run_episodes
from metarobust.sampling.game import Game, SinglePlayer
from metarobust.sampling.stepper import EnvStepper
from metarobust.sampling.streams import StepStreams
from metarobust.trajectories import Trajectories

Policies = nn.Module | Mapping[str, nn.Module]  # one policy, or one per player of the game


@contextmanager
def single_thread() -> Iterator[None]:
    """torch on one thread (as in every worker process) while the local worker samples."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def player_modules(policies: Policies, game: Game, env_id: str) -> Mapping[str, nn.Module]:
    """``{player: module}`` for ``game``; ConfigError if the policies do not fit its players."""
    if not isinstance(policies, Mapping):
        policies = {SOLE: policies}
    if sorted(policies) != sorted(game.players):
        if game.players == (SOLE,):
            names = sorted(policies)
            raise ConfigError(f"{env_id}: a one-player env takes one policy, not {names}")
        raise ConfigError(f"{env_id}: the game needs policies for {' and '.join(game.players)}")
    return policies


class RolloutWorker:
    """Steps ``num_envs`` envs of ``spec`` together with ``policy`` (one module, or one per
    player of ``game``). ``env_offset`` is the global index of this worker's first env."""

    def __init__(
        self,
        spec: EnvSpec,
        num_envs: int,
        policy: Policies,
        seed: int,
        env_offset: int = 0,
        game: Game | None = None,
    ) -> None:
        game = SinglePlayer() if game is None else game
        modules = player_modules(policy, game, spec.id)
        self.spec = spec
        self.stepper = EnvStepper(spec, num_envs, modules, game)
        self.streams = StepStreams(self.stepper, seed, env_offset)

    def sample_episodes(self, acting: Acting, units: Sequence[Unit]) -> Trajectories:
        """Run every unit to the end of its episode (``[1, len(units), horizon, ...]``)."""
        with single_thread():
            self.stepper.load(acting)
            self.streams.live = False  # the envs are reused here: a stream starts over
            return run_episodes(self.stepper, units, episode_horizon(self.spec))

    def sample_steps(
        self, acting: Acting, num_steps: int, task: Mapping[str, Any] | None = None
    ) -> Trajectories:
        """``num_steps`` more steps of every env's stream: ``[1, num_envs, num_steps, ...]``."""
        if any(state.stack == "task" for state in acting.players.values()):
            raise ValueError("step mode runs one task: per-task params are for episodes")
        with single_thread():
            self.stepper.load(acting)
            return self.streams.run(num_steps, task)

    def stream_state(self, strict: bool = True) -> dict[str, Any] | None:
        """The step-mode streams as checkpoint-safe values; for an env whose simulator state
        cannot be saved, ``StateNotCapturable``, or None when not ``strict``."""
        try:
            return self.streams.state()
        except StateNotCapturable:
            if strict:
                raise
            return None

    def load_stream_state(self, state: Mapping[str, Any]) -> None:
        """Continue the streams saved by ``stream_state``."""
        self.streams.load_state(state)

    def close(self) -> None:
        self.stepper.close()


# Requests a sampler sends its workers (in process, over a pipe, or to a Ray actor); ``name``
# says in error messages what a worker was doing.


@dataclass(frozen=True)
class SampleEpisodes:
    acting: Acting
    units: tuple[Unit, ...]
    name = "sample_episodes"

    def __call__(self, worker: RolloutWorker) -> Trajectories:
        return worker.sample_episodes(self.acting, self.units)


@dataclass(frozen=True)
class SampleSteps:
    acting: Acting
    num_steps: int
    task: Mapping[str, Any] | None
    name = "sample_steps"

    def __call__(self, worker: RolloutWorker) -> Trajectories:
        return worker.sample_steps(self.acting, self.num_steps, self.task)


@dataclass(frozen=True)
class GetStreams:
    name = "stream_state"

    def __call__(self, worker: RolloutWorker) -> dict[str, Any] | None:
        return worker.stream_state(strict=False)


@dataclass(frozen=True)
class SetStreams:
    state: Mapping[str, Any]
    name = "load_stream_state"

    def __call__(self, worker: RolloutWorker) -> None:
        worker.load_stream_state(self.state)


Request = SampleEpisodes | SampleSteps | GetStreams | SetStreams
