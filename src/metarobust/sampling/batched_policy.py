"""A worker's copy of one policy module: one forward per step for all the envs it acts in."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from metarobust.agents.policy import (
    Params,
    batched_distribution_params,
    gaussian_log_prob_of_noise,
    merged_moments,
    normalizing_affine,
)
from metarobust.sampling.acting import PolicyState


class BatchedPolicy:
    """Samples actions for a batch of envs from a policy module, one forward per call."""

    def __init__(self, policy: nn.Module) -> None:
        self.module = copy.deepcopy(policy).cpu()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._params = dict(self.module.named_parameters())
        self._buffers = dict(self.module.named_buffers())
        # NumPy views of this copy's normaliser buffers, which tracking moves on in place
        normalizer = getattr(self.module, "obs_normalizer", None)
        self._normalizer = None
        if normalizer is not None and normalizer.enabled:
            names = ("mean", "var", "count", "shift", "scale")
            self._normalizer = tuple(getattr(normalizer, name).numpy() for name in names)
        self.state = PolicyState({})
        self._stacked: Params = {}

    def load(self, state: PolicyState) -> None:
        """Act with ``state`` from now on (a stacked state's sets are picked per row)."""
        with torch.no_grad():
            for name, value in state.buffers.items():
                self._buffers[name].copy_(torch.as_tensor(value))
            unknown = state.params.keys() - self._params.keys()
            if unknown:
                raise KeyError(f"params not in the policy module: {sorted(unknown)}")
            if state.stack is not None:
                self._stacked = {k: torch.as_tensor(v) for k, v in state.params.items()}
            else:
                for name, value in state.params.items():
                    self._params[name].copy_(torch.as_tensor(value))
        self.state = state

    def act(
        self, obs: np.ndarray, noise: np.ndarray, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Unclipped actions ``mean + std * noise`` and their log-probs for ``obs [n, obs_dim]``.

        ``rows [n]`` picks each row's parameter set when the state is stacked. Only the
        network runs in torch; sampling the Gaussian is a few NumPy ops on small arrays.
        """
        if self.state.deterministic:
            noise = np.zeros_like(noise)
        with torch.no_grad():
            if self.state.track_obs:
                self._track(obs)
            if self.state.stack is not None:
                assert rows is not None, "a stacked state needs each row's parameter set"
                mean, log_std = self._stacked_distribution(torch.from_numpy(obs), rows)
            else:
                mean, log_std = self.module.distribution(self._params, torch.from_numpy(obs))
        log_std = log_std.numpy()
        actions = mean.numpy() + np.exp(log_std) * noise
        return actions, gaussian_log_prob_of_noise(log_std, noise)

    def _track(self, obs: np.ndarray) -> None:
        """``ObsNormalizer.update`` with one step's observations, in NumPy (a few
        microseconds per step, where the torch ops take a few hundred)."""
        if self._normalizer is None:
            return
        mean, var, count, shift, scale = self._normalizer
        mean[...], var[...], count[...] = merged_moments(mean, var, count, obs.astype(np.float64))
        shift[...], scale[...] = normalizing_affine(mean, var)

    def _stacked_distribution(self, obs: Tensor, rows: np.ndarray) -> tuple[Tensor, Tensor]:
        # Rows regrouped as [set, slot, ...] (slots padded to the busiest set) for one vmap.
        present, group = np.unique(rows, return_inverse=True)
        counts = np.bincount(group, minlength=len(present))
        order = np.argsort(group, kind="stable")
        slot = np.empty(len(rows), np.int64)
        slot[order] = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        index = (torch.from_numpy(group), torch.from_numpy(slot))
        shape = (len(present), int(counts.max()))
        grouped_obs = obs.new_zeros(*shape, obs.shape[-1]).index_put_(index, obs)
        which = torch.from_numpy(present)
        params = {k: v.index_select(0, which) for k, v in self._stacked.items()}
        mean, log_std = batched_distribution_params(self.module, params, grouped_obs)
        return mean[index], log_std[index]
