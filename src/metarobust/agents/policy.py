"""Diagonal Gaussian MLP policy evaluated functionally on a parameter dict.

Parameters live outside the module (``dict[str, Tensor]``), so MAML can adapt them with
``torch.func``, the sampler can evaluate one parameter set per task, and the learner can
update them with any optimiser. Observation normalisation statistics are module buffers:
they travel with the module but are not parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import vmap

Params = dict[str, Tensor]
ArrayT = TypeVar("ArrayT", Tensor, np.ndarray)

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
_LOG_2PI = math.log(2.0 * math.pi)


def mlp(
    in_dim: int,
    out_dim: int,
    hidden_sizes: tuple[int, ...],
    activation: str,
    output_gain: float = 1.0,
) -> nn.Sequential:
    """An MLP with a linear output layer, initialised orthogonally as in SB3/CleanRL PPO
    (hidden gain sqrt(2), the given ``output_gain`` on the last layer, zero biases)."""
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [_orthogonal(nn.Linear(in_dim, size), math.sqrt(2)), ACTIVATIONS[activation]()]
        in_dim = size
    layers.append(_orthogonal(nn.Linear(in_dim, out_dim), output_gain))
    return nn.Sequential(*layers)


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


Chain = tuple[tuple[str, str] | Callable[[Tensor], Tensor], ...]


def linear_chain(net: nn.Sequential, prefix: str) -> Chain:
    """``net``'s layers as ``run_chain`` steps: a linear layer as the names of its weight and
    bias (under ``prefix``), an activation as its forward function."""
    return tuple(
        (f"{prefix}{i}.weight", f"{prefix}{i}.bias")
        if isinstance(layer, nn.Linear)
        else layer.forward
        for i, layer in enumerate(net)
    )


def run_chain(chain: Chain, params: Params, x: Tensor) -> Tensor:
    """The network of ``chain`` on ``x`` under ``params``, op for op what its modules
    compute, without module calls or ``functional_call``'s parameter swapping (which cost
    more than the network itself at these sizes)."""
    for step in chain:
        x = F.linear(x, params[step[0]], params[step[1]]) if isinstance(step, tuple) else step(x)
    return x


def merged_moments(
    mean: ArrayT, var: ArrayT, count: ArrayT, batch: ArrayT
) -> tuple[ArrayT, ArrayT, ArrayT]:
    """Running ``(mean, var, count)`` with ``batch [n, dim]`` merged in (Chan et al.'s
    parallel update of the moments). Tensors or NumPy arrays."""
    n = batch.shape[0]
    b_mean = batch.sum(0) / n  # sums: NumPy's mean costs several times more on small arrays
    b_var = ((batch - b_mean) ** 2).sum(0) / n
    total = count + n
    delta = b_mean - mean
    m2 = var * count + b_var * n + delta * delta * count * n / total
    return mean + delta * n / total, m2 / total, total


def normalizing_affine(mean: ArrayT, var: ArrayT) -> tuple[ArrayT, ArrayT]:
    """``(shift, scale)`` with ``shift + obs * scale = (obs - mean) / std``."""
    scale = (var + 1e-8) ** -0.5
    return -mean * scale, scale


class ObsNormalizer(nn.Module):
    """Running mean/variance of observations (float64 buffers), applied as
    ``clip((obs - mean) / std)``.

    The float32 ``shift = -mean / std`` and ``scale = 1 / std`` are buffers too, refreshed by
    ``update``: the forward pass (once per env step in the sampler) is then two ops.
    """

    def __init__(self, obs_dim: int, clip: float = 10.0, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.clip = clip
        self.register_buffer("mean", torch.zeros(obs_dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(obs_dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        self.register_buffer("shift", torch.zeros(obs_dim))
        self.register_buffer("scale", torch.ones(obs_dim))
        self._refresh()

    def forward(self, obs: Tensor) -> Tensor:
        if not self.enabled:
            return obs
        return torch.addcmul(self.shift, obs, self.scale).clamp(-self.clip, self.clip)

    @torch.no_grad()
    def update(self, obs: Tensor) -> None:
        """Merge a batch of observations ``[..., obs_dim]`` into the running statistics."""
        if not self.enabled or obs.numel() == 0:
            return
        batch = obs.reshape(-1, obs.shape[-1]).to(torch.float64)
        for buffer, value in zip(
            (self.mean, self.var, self.count),
            merged_moments(self.mean, self.var, self.count, batch),
            strict=True,
        ):
            buffer.copy_(value)
        self._refresh()

    @torch.no_grad()
    def load_from(self, source: ObsNormalizer) -> None:
        """Use ``source``'s normalisation (on/off, clip and statistics) from now on."""
        self.enabled, self.clip = source.enabled, source.clip
        for name, buffer in source.named_buffers():
            getattr(self, name).copy_(buffer)

    def _refresh(self) -> None:
        shift, scale = normalizing_affine(self.mean, self.var)
        self.shift.copy_(shift)
        self.scale.copy_(scale)


class GaussianPolicy(nn.Module):
    """``obs -> (mean, log_std)`` with a state-independent log standard deviation."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: str = "tanh",
        init_std: float = 1.0,
        normalize_obs: bool = False,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.obs_normalizer = ObsNormalizer(obs_dim, enabled=normalize_obs)
        # A small output gain starts every action mean near zero (SB3/CleanRL use 0.01).
        self.mean_net = mlp(obs_dim, act_dim, tuple(hidden_sizes), activation, output_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self._chain = linear_chain(self.mean_net, "mean_net.")

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        return self.distribution(dict(self.named_parameters()), obs)

    def distribution(self, params: Params, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)`` under ``params`` (named as the module's) for ``obs [..., dim]``."""
        return self.distribution_normalized(params, self.obs_normalizer(obs))

    def distribution_normalized(self, params: Params, normalized: Tensor) -> tuple[Tensor, Tensor]:
        """``distribution`` of observations already through ``obs_normalizer``: a learner that
        evaluates the same batch many times normalises it once."""
        mean = run_chain(self._chain, params, normalized)
        return mean, params["log_std"].expand_as(mean)

    def init_params(self) -> Params:
        """A detached copy of the module's initial parameters, as a dict the learner owns."""
        return {name: p.detach().clone() for name, p in self.named_parameters()}


def distribution_params(
    policy: GaussianPolicy, params: Params, obs: Tensor
) -> tuple[Tensor, Tensor]:
    """``(mean, log_std)`` of ``policy`` under ``params`` for ``obs [..., obs_dim]``."""
    return policy.distribution(params, obs)


def batched_distribution_params(
    policy: GaussianPolicy, params: Params, obs: Tensor
) -> tuple[Tensor, Tensor]:
    """Per-group parameters: every tensor in ``params`` has a leading ``[group]`` dim and
    ``obs`` is ``[group, ..., obs_dim]``; each group is evaluated with its own parameters."""
    return vmap(policy.distribution)(params, obs)


def gaussian_log_prob(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """Log-density of a diagonal Gaussian, summed over the action dim."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.square() - log_std - 0.5 * _LOG_2PI).sum(-1)


def gaussian_log_prob_of_noise(log_std: ArrayT, noise: ArrayT) -> ArrayT:
    """Log-density of ``mean + exp(log_std) * noise``: the standardised action is the noise
    itself, so sampling needs neither the mean nor the action. Tensors or NumPy arrays."""
    return -(0.5 * noise * noise + log_std).sum(-1) - 0.5 * _LOG_2PI * noise.shape[-1]


def gaussian_entropy(log_std: Tensor) -> Tensor:
    """Entropy of a diagonal Gaussian, summed over the action dim."""
    return (log_std + 0.5 * (1.0 + _LOG_2PI)).sum(-1)


def gaussian_kl(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    """KL(p || q) of two diagonal Gaussians, summed over the action dim."""
    var_p, var_q = torch.exp(2 * log_std_p), torch.exp(2 * log_std_q)
    kl = log_std_q - log_std_p + (var_p + (mean_p - mean_q).square()) / (2 * var_q) - 0.5
    return kl.sum(-1)
