"""Dense ``[rows, time]`` arrays of the learner's transitions, filled step by step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metarobust.sampling.stepper import Transition
from metarobust.trajectories import Trajectories


@dataclass
class TransitionBuffer:
    """One row per episode (episode mode) or per env (step mode), ``time`` steps each."""

    obs: np.ndarray  # [rows, time, obs_dim]
    actions: np.ndarray  # [rows, time, learner act_dim]
    rewards: np.ndarray  # [rows, time] the learner's
    log_probs: np.ndarray  # [rows, time]
    next_obs: np.ndarray  # [rows, time, obs_dim]
    terminated: np.ndarray  # [rows, time]
    truncated: np.ndarray  # [rows, time]

    @classmethod
    def zeros(cls, rows: int, time: int, obs_dim: int, act_dim: int) -> TransitionBuffer:
        return cls(
            obs=np.zeros((rows, time, obs_dim), np.float32),
            actions=np.zeros((rows, time, act_dim), np.float32),
            rewards=np.zeros((rows, time), np.float32),
            log_probs=np.zeros((rows, time), np.float32),
            next_obs=np.zeros((rows, time, obs_dim), np.float32),
            terminated=np.zeros((rows, time), np.bool_),
            truncated=np.zeros((rows, time), np.bool_),
        )

    def record(
        self, rows: np.ndarray, t: np.ndarray | int, step: Transition, reward_sign: float
    ) -> None:
        """Store ``step`` at ``(rows, t)``; the learner is paid ``reward_sign * env reward``."""
        self.obs[rows, t], self.actions[rows, t] = step.obs, step.actions
        self.log_probs[rows, t], self.next_obs[rows, t] = step.log_probs, step.next_obs
        self.rewards[rows, t] = reward_sign * step.env_rewards
        self.terminated[rows, t], self.truncated[rows, t] = step.terminated, step.truncated

    def trajectories(
        self,
        mask: np.ndarray,
        *,
        episode_returns: np.ndarray,
        episode_lengths: np.ndarray,
        episode_tasks: np.ndarray,
        episode_successes: np.ndarray,
    ) -> Trajectories:
        """The buffer as one task's ``[1, rows, time, ...]`` Trajectories."""
        arrays = (
            self.obs,
            self.actions,
            self.rewards,
            self.log_probs,
            self.next_obs,
            self.terminated,
            self.truncated,
            mask,
        )
        return Trajectories(
            *(torch.from_numpy(a[None]) for a in arrays),
            episode_returns=torch.from_numpy(episode_returns.astype(np.float32)),
            episode_lengths=torch.from_numpy(episode_lengths),
            episode_tasks=torch.from_numpy(episode_tasks),
            episode_successes=torch.from_numpy(episode_successes.astype(np.float32)),
        )
