"""MAML's inner loop as pure functions of a parameter dict (``torch.func``).

The inner update is the paper's: vanilla policy gradient (REINFORCE) with rllab's linear
feature baseline fitted per task on that task's pre-adaptation episodes,

    theta'_i = theta - alpha * grad_theta L_i(theta),
    L_i(theta) = -E_{tau ~ pi_theta, task i}[ sum_t log pi_theta(a_t|s_t) * A_t ],

repeated ``num_steps`` times. All tasks of a meta-batch are adapted in one ``vmap`` call.
The outer backward pass through ``adapt`` gives the second-order meta-gradient; with
``first_order=True`` the inner gradients are detached (first-order MAML). Meta-SGD
(Li et al. 2017) passes a learned per-parameter ``alpha`` dict instead of a float.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from metarobust.agents.baselines import fit_linear_baseline, predict_linear_baseline
from metarobust.agents.policy import Params, distribution_params, gaussian_log_prob
from metarobust.agents.returns import discounted_returns
from metarobust.trajectories import Trajectories

StepSize = float | Mapping[str, Tensor]  # alpha: one float, or one tensor per parameter


def reinforce_advantages(traj: Trajectories, gamma: float, normalize: bool = True) -> Tensor:
    """``A_t = G_t - b(s_t)`` with a linear feature baseline fitted per task on ``traj``
    itself (as in the MAML paper and rllab), standardised per task over its real steps.

    ``traj`` is ``[task, episode, time, ...]``; the result ``[task, episode, time]``, zero on
    padding, and carries no gradient.
    """
    with torch.no_grad():
        dones, mask = traj.dones, traj.mask
        returns = discounted_returns(traj.rewards, dones, mask, gamma)
        weights = fit_linear_baseline(traj.obs, returns, mask, dones)
        adv = (returns - predict_linear_baseline(weights, traj.obs, mask, dones)) * mask
        if normalize:
            dims = (1, 2)
            n = mask.sum(dims, keepdim=True).clamp_min(1.0)
            mean = adv.sum(dims, keepdim=True) / n
            var = ((adv - mean).square() * mask).sum(dims, keepdim=True) / n
            adv = (adv - mean) / (var.sqrt() + 1e-8) * mask
    return adv


def reinforce_loss(
    policy: nn.Module, params: Params, obs: Tensor, actions: Tensor, adv: Tensor, mask: Tensor
) -> Tensor:
    """One task's surrogate ``-sum(log pi(a|s) * A * mask) / sum(mask)`` (any leading dims)."""
    mean, log_std = distribution_params(policy, params, obs)
    log_prob = gaussian_log_prob(mean, log_std, actions)
    return -(log_prob * adv * mask).sum() / mask.sum().clamp_min(1.0)


def adapt(
    policy: nn.Module,
    params: Params,
    traj: Trajectories,
    adv: Tensor,
    *,
    step_size: StepSize,
    num_steps: int = 1,
    first_order: bool = False,
    per_task_params: bool = False,
) -> Params:
    """Every task's adapted parameters, ``{name: [task, ...]}``, after ``num_steps`` inner
    policy-gradient steps on its own episodes in ``traj`` with advantages ``adv`` (0 steps:
    the given parameters, one copy per task).

    ``params`` are shared by all tasks, or (``per_task_params``) already one set per task,
    ``{name: [task, ...]}``, as when adapting again from adapted parameters. Differentiable
    with respect to ``params`` (and a Meta-SGD ``step_size`` dict) unless ``first_order``,
    in which case each inner gradient is treated as a constant.
    """
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    if num_steps == 0:  # no adaptation: every task keeps the given parameters
        tasks = traj.obs.shape[0]
        return dict(params) if per_task_params else {
            k: v.expand(tasks, *v.shape) for k, v in params.items()
        }  # fmt: skip
    loss_grad = grad(lambda p, *batch: reinforce_loss(policy, p, *batch))

    def adapt_one(
        start: Params, obs: Tensor, actions: Tensor, task_adv: Tensor, mask: Tensor
    ) -> Params:
        fast = dict(start)
        for _ in range(num_steps):
            g = loss_grad(fast, obs, actions, task_adv, mask)
            if first_order:
                g = {k: v.detach() for k, v in g.items()}
            fast = {k: fast[k] - _alpha(step_size, k) * g[k] for k in fast}
        return fast

    in_dims = (0 if per_task_params else None, 0, 0, 0, 0)
    return vmap(adapt_one, in_dims=in_dims)(params, traj.obs, traj.actions, adv, traj.mask)


def adapt_to_episodes(
    policy: nn.Module,
    params: Params,
    traj: Trajectories,
    *,
    gamma: float,
    step_size: StepSize,
    num_steps: int = 1,
    per_task_params: bool = False,
) -> tuple[Params, Tensor]:
    """Every task's parameters after ``num_steps`` inner steps on its episodes in ``traj``
    (``reinforce_advantages``, first order), as values to sample with, and the advantages
    used: what training's pre-adaptation pass and meta-testing's every step do."""
    with torch.no_grad():  # torch.func.grad inside still differentiates
        adv = reinforce_advantages(traj, gamma)
        adapted = adapt(
            policy,
            params,
            traj,
            adv,
            step_size=step_size,
            num_steps=num_steps,
            first_order=True,
            per_task_params=per_task_params,
        )
    return adapted, adv


def _alpha(step_size: StepSize, name: str) -> float | Tensor:
    return step_size if isinstance(step_size, float | int) else step_size[name]
