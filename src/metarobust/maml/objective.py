"""MAML's outer objective: the post-adaptation policies' surrogate and KL as functions of the
meta-parameters, for a TRPO (or PPO) outer step through the inner loop.

The meta-parameters are one dict: the policy's parameters and, for Meta-SGD, one learned
inner step size per parameter under ``ALPHA_PREFIX + name``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from metarobust.agents.policy import (
    Params,
    batched_distribution_params,
    gaussian_kl,
    gaussian_log_prob,
)
from metarobust.agents.trpo import gaussian_fisher_product
from metarobust.maml.adapt import StepSize, adapt, reinforce_advantages
from metarobust.trajectories import Trajectories

ALPHA_PREFIX = "meta_sgd."


def split_meta_params(meta: Params, fast_lr: float) -> tuple[Params, StepSize]:
    """``(policy params, inner step size)``: Meta-SGD's learned dict if present, else fast_lr."""
    params = {k: v for k, v in meta.items() if not k.startswith(ALPHA_PREFIX)}
    alpha = {k[len(ALPHA_PREFIX) :]: v for k, v in meta.items() if k.startswith(ALPHA_PREFIX)}
    return params, (alpha if alpha else fast_lr)


def masked_task_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over each task's real steps, then over tasks: ``[task, ...] -> []``."""
    dims = tuple(range(1, x.dim()))
    return ((x * mask).sum(dims) / mask.sum(dims).clamp_min(1.0)).mean()


class MetaObjective:
    """Surrogate and KL of one meta-batch: ``train`` episodes (pre-adaptation, sampled with the
    meta-parameters ``meta``) and ``valid`` episodes (sampled with each task's adapted policy).

    ``surrogate(theta)`` is the loss to minimise, ``-mean_tasks E[ratio_i * A_i]`` with
    ``ratio_i = pi_{theta'_i}(a|s) / pi_{old'_i}(a|s)``, where ``theta'_i = adapt(theta)``;
    ``kl(theta)`` is ``mean_tasks E[KL(pi_{old'_i} || pi_{theta'_i})]`` on the valid states.
    """

    def __init__(
        self,
        policy: nn.Module,
        meta: Params,
        train: Trajectories,
        valid: Trajectories,
        *,
        gamma: float,
        fast_lr: float,
        num_inner_steps: int = 1,
        first_order: bool = False,
        adv_train: Tensor | None = None,
        adapted: Params | None = None,
    ) -> None:
        """``adv_train`` and ``adapted`` (the inner loop's advantages and its result at
        ``meta``), when the caller has them already, are not computed again."""
        self.policy, self.meta, self.train, self.valid = policy, meta, train, valid
        self.gamma, self.fast_lr = gamma, fast_lr
        self.num_inner_steps, self.first_order = num_inner_steps, first_order
        self.adv_train = reinforce_advantages(train, gamma) if adv_train is None else adv_train
        self.adv_valid = reinforce_advantages(valid, gamma)
        with torch.no_grad():
            if adapted is None:
                adapted = self.adapted(meta)
            # pi_{old'_i}: each task's adapted policy on its own post-adaptation states
            old = batched_distribution_params(policy, adapted, valid.obs)
            self.old_mean, self.old_log_std = old
            self.old_log_prob = gaussian_log_prob(self.old_mean, self.old_log_std, valid.actions)

    def subsample(self, fraction: float) -> MetaObjective:
        """The same objective on the first ``ceil(fraction * episodes)`` episodes of every task
        (train and valid): a cheaper KL whose Hessian approximates this one's (rllab's
        subsampled Fisher), still zero with zero gradient at the meta-parameters."""
        if fraction >= 1.0:
            return self
        n = max(1, math.ceil(fraction * self.train.mask.shape[1]))
        return MetaObjective(
            self.policy,
            self.meta,
            self.train.first_episodes(n),
            self.valid.first_episodes(n),
            gamma=self.gamma,
            fast_lr=self.fast_lr,
            num_inner_steps=self.num_inner_steps,
            first_order=self.first_order,
        )

    def adapted(self, meta: Params) -> Params:
        """Every task's adapted parameters ``{name: [task, ...]}`` from meta-parameters."""
        params, alpha = split_meta_params(meta, self.fast_lr)
        return adapt(
            self.policy,
            params,
            self.train,
            self.adv_train,
            step_size=alpha,
            num_steps=self.num_inner_steps,
            first_order=self.first_order,
        )

    def _distribution(self, meta: Params) -> tuple[Tensor, Tensor]:
        # valid.obs [task, episode, time, obs_dim] -> each task's adapted policy on its states
        return batched_distribution_params(self.policy, self.adapted(meta), self.valid.obs)

    def fisher_product(self) -> Callable[[Tensor], Tensor]:
        """``v -> F v``, ``F`` the Hessian of ``kl`` at ``self.meta``, through the inner loop:
        in Gauss-Newton form (``gaussian_fisher_product``), exact there."""
        mask = self.valid.mask
        weights = mask / mask.sum((1, 2), keepdim=True).clamp_min(1.0) / mask.shape[0]
        return gaussian_fisher_product(self._distribution, self.meta, weights)

    def surrogate_and_kl(self, meta: Params) -> tuple[Tensor, Tensor]:
        """Both at once (one adaptation): ``(surrogate, kl)``."""
        mean, log_std = self._distribution(meta)
        log_prob = gaussian_log_prob(mean, log_std, self.valid.actions)
        ratio = torch.exp(log_prob - self.old_log_prob)
        mask = self.valid.mask
        surrogate = -masked_task_mean(ratio * self.adv_valid, mask)
        kl = masked_task_mean(gaussian_kl(self.old_mean, self.old_log_std, mean, log_std), mask)
        return surrogate, kl

    def clipped_surrogate(self, meta: Params, clip: float) -> tuple[Tensor, float]:
        """PPO's clipped loss of the post-adaptation policies, and the share of clipped ratios:
        ``-mean_tasks E[min(r A, clip(r, 1 - clip, 1 + clip) A)]``."""
        mean, log_std = self._distribution(meta)
        ratio = torch.exp(gaussian_log_prob(mean, log_std, self.valid.actions) - self.old_log_prob)
        adv, mask = self.adv_valid, self.valid.mask
        objective = torch.min(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv)
        clipped = masked_task_mean(((ratio - 1.0).abs() > clip).to(mask.dtype), mask)
        return -masked_task_mean(objective, mask), clipped.item()

    def surrogate(self, meta: Params) -> Tensor:
        return self.surrogate_and_kl(meta)[0]

    def kl(self, meta: Params) -> Tensor:
        return self.surrogate_and_kl(meta)[1]
