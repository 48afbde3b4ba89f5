"""Gaussian policy maths against torch.distributions; functional evaluation; normaliser."""

from __future__ import annotations

import torch
from torch.distributions import Independent, Normal, kl_divergence

from metarobust.agents.policy import (
    GaussianPolicy,
    ObsNormalizer,
    batched_distribution_params,
    distribution_params,
    gaussian_entropy,
    gaussian_kl,
    gaussian_log_prob,
    gaussian_log_prob_of_noise,
)


def diag_normal(mean: torch.Tensor, log_std: torch.Tensor) -> Independent:
    return Independent(Normal(mean, log_std.exp()), 1)


def test_log_prob_entropy_kl_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean_p, mean_q = torch.randn(2, 7, 3, generator=g, dtype=torch.float64)
    log_std_p, log_std_q = 0.5 * torch.randn(2, 7, 3, generator=g, dtype=torch.float64)
    actions = torch.randn(7, 3, generator=g, dtype=torch.float64)
    p, q = diag_normal(mean_p, log_std_p), diag_normal(mean_q, log_std_q)
    torch.testing.assert_close(gaussian_log_prob(mean_p, log_std_p, actions), p.log_prob(actions))
    torch.testing.assert_close(gaussian_entropy(log_std_p), p.entropy())
    torch.testing.assert_close(
        gaussian_kl(mean_p, log_std_p, mean_q, log_std_q), kl_divergence(p, q)
    )
    assert (gaussian_kl(mean_p, log_std_p, mean_p, log_std_p).abs() < 1e-12).all()


def _perturbed(params: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.3 * torch.randn(v.shape, generator=g) for k, v in params.items()}


def test_log_prob_of_noise_matches_torch_distributions_for_tensors_and_arrays():
    g = torch.Generator().manual_seed(1)
    mean, log_std = torch.randn(7, 3, generator=g), 0.5 * torch.randn(7, 3, generator=g)
    noise = torch.randn(7, 3, generator=g)
    actions = mean + log_std.exp() * noise
    expected = Independent(Normal(mean, log_std.exp()), 1).log_prob(actions)
    torch.testing.assert_close(gaussian_log_prob_of_noise(log_std, noise), expected)
    from_numpy = gaussian_log_prob_of_noise(log_std.numpy(), noise.numpy())
    torch.testing.assert_close(torch.from_numpy(from_numpy), expected)


def test_functional_call_matches_module_forward():
    torch.manual_seed(0)
    policy = GaussianPolicy(4, 2, (8, 8), init_std=0.5)
    obs = torch.randn(5, 6, 4)
    mean, log_std = distribution_params(policy, policy.init_params(), obs)
    ref_mean, ref_log_std = policy(obs)
    torch.testing.assert_close(mean, ref_mean)
    torch.testing.assert_close(log_std, ref_log_std)
    assert mean.shape == log_std.shape == (5, 6, 2)
    # other parameters: same as a module holding them
    params = _perturbed(policy.init_params(), 1)
    other = GaussianPolicy(4, 2, (8, 8))
    other.load_state_dict({**params, **dict(policy.named_buffers())})
    for got, ref in zip(distribution_params(policy, params, obs), other(obs), strict=True):
        torch.testing.assert_close(got, ref)
    # gradients reach the dict, not the module's own parameters
    params = {k: v.requires_grad_(True) for k, v in params.items()}
    mean, log_std = distribution_params(policy, params, obs)
    gaussian_log_prob(mean, log_std, torch.zeros_like(mean)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())
    assert all(p.grad is None for p in policy.parameters())


def test_batched_distribution_params_equals_loop():
    torch.manual_seed(0)
    policy = GaussianPolicy(3, 2, (8,), normalize_obs=True)
    policy.obs_normalizer.update(torch.randn(50, 3) * 2 + 1)
    groups = [_perturbed(policy.init_params(), seed) for seed in range(3)]
    stacked = {k: torch.stack([g[k] for g in groups]) for k in groups[0]}
    obs = torch.randn(3, 4, 5, 3)  # [group, rollout, time, obs_dim]
    mean, log_std = batched_distribution_params(policy, stacked, obs)
    for i, params in enumerate(groups):
        ref_mean, ref_log_std = distribution_params(policy, params, obs[i])
        torch.testing.assert_close(mean[i], ref_mean)
        torch.testing.assert_close(log_std[i], ref_log_std)
    assert not torch.allclose(mean[0], mean[1])


def test_obs_normalizer_running_stats_equal_concatenated_stats():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, 3, generator=g, dtype=torch.float64) * 3 + 2 for n in (5, 17, 40)]
    norm = ObsNormalizer(3)
    for batch in batches:
        norm.update(batch.view(-1, 1, 3))  # any leading dims
    data = torch.cat(batches)
    torch.testing.assert_close(norm.mean, data.mean(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(norm.var, data.var(0, unbiased=False), rtol=1e-4, atol=1e-4)
    # exactly: the data plus the prior pseudo-sample (mean 0, var 1, count 1e-4)
    c0, n = 1e-4, data.shape[0]
    mean = data.sum(0) / (n + c0)
    var = (c0 * (1 + mean**2) + (data - mean).square().sum(0)) / (n + c0)
    torch.testing.assert_close(norm.mean, mean)
    torch.testing.assert_close(norm.var, var)
    assert norm.count.item() == n + c0
    # applied as (obs - mean) / std, clipped
    x = torch.tensor([[2.0, 2.0, 1e6]])
    expected = ((x.double() - norm.mean) / (norm.var + 1e-8).sqrt()).clamp(-10, 10).float()
    torch.testing.assert_close(norm(x), expected)
    assert norm(x)[0, 2] == 10.0
    off = ObsNormalizer(3, enabled=False)
    off.update(data)
    assert torch.equal(off(x), x) and off.count.item() == c0
