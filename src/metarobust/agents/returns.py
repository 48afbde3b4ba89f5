"""Discounted returns and generalised advantage estimation (GAE, Schulman et al. 2016).

Time is the last axis of every tensor here; any leading dims (``[task, rollout]`` for
``Trajectories``) are carried along, so one call handles every env of every task. Padding
steps (``mask == 0``) come out as zeros. The recursions are plain out-of-place tensor code, so
they also run under autograd and ``torch.func`` transforms.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metarobust.trajectories import Trajectories


def discounted_returns(rewards: Tensor, dones: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """Reward-to-go ``G_t = r_t + gamma * (1 - done_t) * G_{t+1}``, restarting at every episode
    end (``dones`` = terminated or truncated); no bootstrapping; zeros on padding.

    Shapes: all ``[..., time]``; the result too.
    """
    rewards, dones, mask = _as_float(rewards, dones, mask)
    rewards = rewards * mask
    keep = gamma * (1.0 - dones) * mask  # what flows back from t+1 into t
    out: list[Tensor] = []
    running = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        running = rewards[..., t] + keep[..., t] * running
        out.append(running)
    return torch.stack(out[::-1], dim=-1) * mask


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    *,
    terminated: Tensor,
    dones: Tensor,
    mask: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """GAE(gamma, lambda) advantages and the matching value targets ``returns = A + V``.

    ``values[t] = V(obs_t)`` and ``next_values[t] = V(next_obs_t)`` (the true next observation,
    the final one at an episode end). A terminal step does not bootstrap; a truncated step and
    the last step of a segment bootstrap through ``next_values``, so they need no special case:

        delta_t = r_t + gamma * V(s'_t) * (1 - terminated_t) - V(s_t)
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},   A_T = 0

    Shapes: all ``[..., time]``; both results too, zero on padding.
    """
    rewards, values, next_values, terminated, dones, mask = _as_float(
        rewards, values, next_values, terminated, dones, mask
    )
    delta = (rewards + gamma * next_values * (1.0 - terminated) - values) * mask  # [..., T]
    keep = gamma * lam * (1.0 - dones) * mask
    out: list[Tensor] = []
    running = torch.zeros_like(delta[..., 0])
    for t in reversed(range(delta.shape[-1])):
        running = delta[..., t] + keep[..., t] * running
        out.append(running)
    advantages = torch.stack(out[::-1], dim=-1) * mask
    return advantages, (advantages + values) * mask


def trajectory_gae(
    traj: Trajectories, values: Tensor, next_values: Tensor, *, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """``gae`` over ``traj``'s rewards, episode ends and mask, ``values`` and ``next_values``
    being the values of its observations and next observations (``[task, rollout, time]``)."""
    return gae(
        traj.rewards,
        values,
        next_values,
        terminated=traj.terminated,
        dones=traj.dones,
        mask=traj.mask,
        gamma=gamma,
        lam=lam,
    )


def explained_variance(pred: Tensor, target: Tensor) -> float:
    """``1 - Var[target - pred] / Var[target]``; 0.0 when the target is constant (undefined
    there, and a NaN would stop training)."""
    var = target.var(unbiased=False)
    if var.item() == 0.0:
        return 0.0
    return (1.0 - (target - pred).var(unbiased=False) / var).item()


def _as_float(*tensors: Tensor) -> list[Tensor]:
    """Bool flags become the floating dtype of the first floating tensor (rewards)."""
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.get_default_dtype())
    return [t if t.is_floating_point() else t.to(dtype) for t in tensors]
