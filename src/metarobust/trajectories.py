"""Trajectories: every sampled transition as dense tensors with a validity mask.

Layout ``[task, rollout, time, ...]``. In episode mode (MAML, evaluation) each rollout is
one episode starting at its reset, padded after it ends. In step mode (PPO on a stream of
experience) each rollout is one env's contiguous segment of ``time`` steps, which may hold
several episodes; ``terminated``/``truncated`` mark where each one ends.

``next_obs[t]`` is the true observation after step ``t`` — the final observation when the
episode ended there, never the first observation of the next episode — so value
bootstrapping on time-limit truncation and at the end of a segment needs no special case.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class Trajectories:
    obs: Tensor  # [task, rollout, time, obs_dim]
    actions: Tensor  # [task, rollout, time, act_dim]  (unclipped samples of the policy)
    rewards: Tensor  # [task, rollout, time]
    log_probs: Tensor  # [task, rollout, time]  log pi_behaviour(a|s)
    next_obs: Tensor  # [task, rollout, time, obs_dim]
    terminated: Tensor  # [task, rollout, time] bool: the episode reached a terminal state
    truncated: Tensor  # [task, rollout, time] bool: the episode hit its time limit
    mask: Tensor  # [task, rollout, time] float: 1 for real transitions, 0 for padding
    episode_returns: Tensor  # [n_finished] undiscounted returns of episodes that ended
    episode_lengths: Tensor  # [n_finished]
    episode_tasks: Tensor  # [n_finished] long: task index of each finished episode
    # [n_finished] float: 1 if the env reported ``info["success"]`` on any step of the
    # episode, else 0; NaN for an env that does not report success
    episode_successes: Tensor

    @property
    def num_tasks(self) -> int:
        return self.obs.shape[0]

    @property
    def num_steps(self) -> int:
        """Number of real (unpadded) transitions."""
        return int(self.mask.sum().item())

    @property
    def dones(self) -> Tensor:
        """``terminated | truncated`` as float, [task, rollout, time]."""
        return (self.terminated | self.truncated).to(self.rewards.dtype)

    def success_metric(self, key: str) -> dict[str, float]:
        """``{key: fraction of finished episodes that succeeded}``, or nothing for an env
        that does not report success (or no finished episode)."""
        known = self.episode_successes[~self.episode_successes.isnan()]
        return {key: known.mean().item()} if known.numel() else {}

    def to(self, device: torch.device | str) -> Trajectories:
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def split_rollouts(self, tasks: int, episodes: int) -> Trajectories:
        """``[1, tasks * episodes, ...]``, units in task-major order, as
        ``[tasks, episodes, ...]``."""
        return replace(
            self,
            **{f: getattr(self, f).reshape(tasks, episodes, *getattr(self, f).shape[2:])
               for f in _STEP_FIELDS},
        )  # fmt: skip

    def first_episodes(self, n: int) -> Trajectories:
        """Episode-mode trajectories cut to the first ``n`` episodes of every task."""
        tasks, rollouts = self.mask.shape[:2]
        if self.episode_returns.numel() != tasks * rollouts:
            raise ValueError("first_episodes needs episode-mode data (one record per rollout)")
        keep = (torch.arange(tasks * rollouts, device=self.mask.device) % rollouts) < n
        return replace(
            self,
            **{f: getattr(self, f)[:, :n] for f in _STEP_FIELDS},
            episode_returns=self.episode_returns[keep],
            episode_lengths=self.episode_lengths[keep],
            episode_tasks=self.episode_tasks[keep],
            episode_successes=self.episode_successes[keep],
        )

    @staticmethod
    def cat(parts: list[Trajectories], dim: int) -> Trajectories:
        """Join parts along the task (``dim=0``) or rollout (``dim=1``) axis, padding time.

        Finished-episode records are concatenated; along the task axis their task indices are
        shifted so they keep pointing at the right task.
        """
        horizon = max(p.obs.shape[2] for p in parts)
        parts = [_pad_time(p, horizon) for p in parts]
        out = {f: torch.cat([getattr(p, f) for p in parts], dim=dim) for f in _STEP_FIELDS}
        offsets = [0]
        for p in parts[:-1]:
            offsets.append(offsets[-1] + (p.num_tasks if dim == 0 else 0))
        return Trajectories(
            **out,
            episode_returns=torch.cat([p.episode_returns for p in parts]),
            episode_lengths=torch.cat([p.episode_lengths for p in parts]),
            episode_tasks=torch.cat(
                [p.episode_tasks + o for p, o in zip(parts, offsets, strict=True)]
            ),
            episode_successes=torch.cat([p.episode_successes for p in parts]),
        )


_STEP_FIELDS = (
    "obs",
    "actions",
    "rewards",
    "log_probs",
    "next_obs",
    "terminated",
    "truncated",
    "mask",
)


def _pad_time(traj: Trajectories, horizon: int) -> Trajectories:
    extra = horizon - traj.obs.shape[2]
    if extra == 0:
        return traj

    def pad(x: Tensor) -> Tensor:
        shape = list(x.shape)
        shape[2] = extra
        return torch.cat([x, x.new_zeros(shape)], dim=2)

    return replace(traj, **{f: pad(getattr(traj, f)) for f in _STEP_FIELDS})
