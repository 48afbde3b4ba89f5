"""Episode mode: a list of units, each one full episode of one task, run through the envs as a
work queue. A unit's reset seed and action noise come from its own seed alone, so the data do
not depend on how units are split among workers or envs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from metarobust.sampling.buffer import TransitionBuffer
from metarobust.sampling.stepper import EnvStepper
from metarobust.trajectories import Trajectories

EPISODE_TAG = 0  # keeps unit seeds apart from step-mode streams (tag 1)


@dataclass(frozen=True)
class Unit:
    """One episode of one task: ``task_index`` in the call's task list, the episode's place
    ``rollout_index`` among that task's episodes, the task itself, and its seed."""

    task_index: int
    rollout_index: int
    task: Mapping[str, Any] | None
    seed: int


def unit_seed(seed: int, task_index: int, rollout_index: int) -> int:
    """The seed of one episode unit, from the call's seed and the unit's place alone."""
    entropy = [seed, EPISODE_TAG, task_index, rollout_index]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def run_episodes(stepper: EnvStepper, units: Sequence[Unit], horizon: int) -> Trajectories:
    """Every unit to the end of its episode: ``[1, len(units), horizon, ...]`` in unit order,
    padded with mask 0, one finished-episode record per unit."""
    n, n_units = stepper.num_envs, len(units)
    sign = stepper.reward_sign
    buffer = TransitionBuffer.zeros(n_units, horizon, stepper.learner_obs_dim, stepper.learner_dim)
    returns = np.zeros(n_units, np.float64)
    lengths = np.zeros(n_units, np.int64)
    succeeded = np.zeros(n_units, np.bool_)
    task_of_unit = np.array([u.task_index for u in units], np.int64)

    noise = np.zeros((n, horizon, stepper.act_dim), np.float32)  # each env's unit's noise
    unit_of = np.full(n, -1, np.int64)  # the unit each env runs, -1 = free
    t_of = np.zeros(n, np.int64)
    running = np.zeros(n, np.float64)
    hit = np.zeros(n, np.bool_)  # each env's unit has succeeded at some step
    next_unit = 0
    while True:
        free = np.flatnonzero(unit_of < 0)[: n_units - next_unit]
        if free.size:
            unit_of[free] = np.arange(next_unit, next_unit + free.size)
            _start_units(stepper, free, [units[k] for k in unit_of[free]], noise, horizon)
            t_of[free], running[free], hit[free] = 0, 0.0, False
            next_unit += free.size
        active = np.flatnonzero(unit_of >= 0)
        if active.size == 0:
            break
        u, t = unit_of[active], t_of[active]
        step = stepper.transition(active, noise[active, t], task_of_unit[u])
        horizon_hit = (t + 1 >= horizon) & ~step.terminated  # the time limit, as a guard
        step = replace(step, truncated=step.truncated | horizon_hit)
        buffer.record(u, t, step, sign)
        running[active] += step.env_rewards
        hit[active] |= step.success
        t_of[active] += 1
        done = active[step.terminated | step.truncated]
        if done.size:
            stepper.ended[done] = True
            returns[unit_of[done]], lengths[unit_of[done]] = sign * running[done], t_of[done]
            succeeded[unit_of[done]] = hit[done]
            unit_of[done] = -1

    mask = (np.arange(horizon) < lengths[:, None]).astype(np.float32)
    return buffer.trajectories(
        mask,
        episode_returns=returns,
        episode_lengths=lengths,
        episode_tasks=task_of_unit,
        episode_successes=np.where(stepper.reports_success, succeeded, np.nan),
    )


def _start_units(
    stepper: EnvStepper, envs: np.ndarray, units: list[Unit], noise: np.ndarray, horizon: int
) -> None:
    """Reset ``envs`` into their units' tasks with the units' seeds; draw their noise."""
    seeds: list[int | None] = [None] * stepper.num_envs
    for env, unit in zip(envs.tolist(), units, strict=True):
        reset_seq, noise_seq = np.random.SeedSequence([unit.seed]).spawn(2)
        seeds[env] = int(reset_seq.generate_state(1)[0])
        noise[env] = np.random.default_rng(noise_seq).standard_normal(
            (horizon, stepper.act_dim), dtype=np.float32
        )
    # One masked reset per task: reset options carry a single task for every masked env.
    task_index = np.array([u.task_index for u in units])
    for index in np.unique(task_index):
        mask = np.zeros(stepper.num_envs, np.bool_)
        mask[envs[task_index == index]] = True
        stepper.reset(mask, seeds, units[int(np.argmax(task_index == index))].task)
