"""Step mode: every env runs one stream of experience that each call continues where the last
one stopped. Env ``i``'s reset seeds and action noise come from ``(seed, global env index)``
alone, so any split of envs over workers gives the same data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from metarobust.sampling.buffer import TransitionBuffer
from metarobust.sampling.env_state import (
    StateNotCapturable,
    capture_env_state,
    restore_env_state,
)
from metarobust.sampling.stepper import EnvStepper
from metarobust.trajectories import Trajectories

STEP_TAG = 1  # keeps step-mode streams apart from episode units (tag 0)


class StepStreams:
    """The streams of one worker's envs: reset-seed and noise generators, running returns."""

    def __init__(self, stepper: EnvStepper, seed: int, env_offset: int) -> None:
        self.stepper = stepper
        n = stepper.num_envs
        streams = [
            np.random.SeedSequence([seed, STEP_TAG, env_offset + i]).spawn(2) for i in range(n)
        ]
        self._seed_rngs = [np.random.default_rng(s) for s, _ in streams]
        self._noise_rngs = [np.random.default_rng(s) for _, s in streams]
        self.live = False  # a stream is in progress (episode mode reuses the envs: it stops)
        self._return = np.zeros(n, np.float64)  # running return of each stream's episode
        self._length = np.zeros(n, np.int64)
        self._success = np.zeros(n, np.bool_)  # the stream's episode has succeeded so far
        # Every sub-env gets an observation now: SyncVectorEnv's masked reset re-stacks all.
        stepper.env.reset(seed=[int(s.generate_state(1)[0]) for _, s in streams])

    def run(self, num_steps: int, task: Mapping[str, Any] | None) -> Trajectories:
        """``num_steps`` more steps of every stream: ``[1, num_envs, num_steps, ...]``.

        An env whose episode ends resets itself (next seed of its stream, ``task`` if given);
        records of episodes that ended in this call carry returns summed across calls.
        """
        stepper = self.stepper
        n, sign = stepper.num_envs, stepper.reward_sign
        everyone = np.ones(n, np.bool_)
        if not self.live:
            stepper.reset(everyone, self._stream_seeds(everyone), task)
            self._return[:], self._length[:], self._success[:] = 0.0, 0, False
            self.live = True
        noise = np.stack(
            [
                g.standard_normal((num_steps, stepper.act_dim), dtype=np.float32)
                for g in self._noise_rngs
            ]
        )  # fmt: skip  [env, time, act_dim]
        buffer = TransitionBuffer.zeros(n, num_steps, stepper.learner_obs_dim, stepper.learner_dim)
        ep_envs: list[np.ndarray] = [np.zeros(0, np.int64)]
        ep_returns: list[np.ndarray] = [np.zeros(0, np.float64)]
        ep_lengths: list[np.ndarray] = [np.zeros(0, np.int64)]
        ep_successes: list[np.ndarray] = [np.zeros(0, np.bool_)]
        all_envs = np.arange(n)
        for t in range(num_steps):
            step = stepper.transition(all_envs, noise[:, t])
            buffer.record(all_envs, t, step, sign)
            self._return += step.env_rewards
            self._length += 1
            self._success |= step.success
            done = step.terminated | step.truncated
            if done.any():
                ep_envs.append(np.flatnonzero(done))
                ep_returns.append(sign * self._return[done])  # the stream keeps env rewards
                ep_lengths.append(self._length[done])
                ep_successes.append(self._success[done])
                self._return[done], self._length[done], self._success[done] = 0.0, 0, False
                stepper.ended |= done
                stepper.reset(done, self._stream_seeds(done), task)

        # Records by env, then by end time: the order any split of envs over workers gives.
        order = np.argsort(np.concatenate(ep_envs), kind="stable")
        returns = np.concatenate(ep_returns)[order]
        return buffer.trajectories(
            np.ones((n, num_steps), np.float32),
            episode_returns=returns,
            episode_lengths=np.concatenate(ep_lengths)[order],
            episode_tasks=np.zeros(len(returns), np.int64),
            episode_successes=np.where(
                stepper.reports_success, np.concatenate(ep_successes)[order], np.nan
            ),
        )

    def _stream_seeds(self, mask: np.ndarray) -> list[int | None]:
        return [
            int(rng.integers(2**32)) if m else None
            for rng, m in zip(self._seed_rngs, mask.tolist(), strict=True)
        ]

    def state(self) -> dict[str, Any]:
        """The streams (envs mid-episode included) as checkpoint-safe values;
        ``StateNotCapturable`` for envs whose simulator state cannot be saved."""
        stepper = self.stepper
        state: dict[str, Any] = {
            "live": self.live,
            "seed_rngs": [g.bit_generator.state for g in self._seed_rngs],
            "noise_rngs": [g.bit_generator.state for g in self._noise_rngs],
        }
        if self.live:
            state["obs"] = torch.from_numpy(stepper.obs.copy())
            state["return"] = torch.from_numpy(self._return.copy())
            state["length"] = torch.from_numpy(self._length.copy())
            if stepper.reports_success:  # an env without success keeps the state it had
                state["success"] = torch.from_numpy(self._success.copy())
            state["episode_seed"] = torch.from_numpy(stepper.episode_seed.copy())
            if stepper.task_features is not None:
                state["task_features"] = torch.from_numpy(stepper.task_features.copy())
            if stepper.is_sync:
                state["envs"] = [capture_env_state(e) for e in stepper.env.envs]
            elif hasattr(stepper.env, "get_state"):
                state["envs"] = stepper.env.get_state()
            else:
                raise StateNotCapturable(f"{type(stepper.env).__name__} has no get_state")
        return state

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``state`` (on a worker built with the same arguments)."""
        stepper = self.stepper
        for rng, s in zip(self._seed_rngs, state["seed_rngs"], strict=True):
            rng.bit_generator.state = s
        for rng, s in zip(self._noise_rngs, state["noise_rngs"], strict=True):
            rng.bit_generator.state = s
        self.live = bool(state["live"])
        if not self.live:
            return
        stepper.obs[:] = np.asarray(state["obs"])
        self._return[:] = np.asarray(state["return"])
        self._length[:] = np.asarray(state["length"])
        if "success" in state:
            self._success[:] = np.asarray(state["success"])
            stepper.reports_success = True
        stepper.episode_seed[:] = np.asarray(state["episode_seed"])
        if stepper.task_features is not None:
            stepper.task_features[:] = np.asarray(state["task_features"])
        if stepper.is_sync:
            for env, env_state in zip(stepper.env.envs, state["envs"], strict=True):
                restore_env_state(env, env_state)
        else:
            stepper.env.set_state(state["envs"])
        stepper.ended[:] = False
