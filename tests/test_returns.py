"""Discounted returns, GAE and the linear feature baseline against hand-computed answers."""

from __future__ import annotations

import torch

from metarobust.agents.baselines import (
    LinearFeatureBaseline,
    episode_steps,
    fit_linear_baseline,
    predict_linear_baseline,
)
from metarobust.agents.returns import discounted_returns, explained_variance, gae


def t(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_discounted_returns_hand_computed():
    rewards = t([1, 2, 3, 4, 5], [1, 2, 3, 9, 9], [1, 2, 7, 7, 7])
    dones = t([0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0])
    mask = t([1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0])
    got = discounted_returns(rewards, dones, mask, gamma=0.5)
    expected = t(
        [2.0, 2.0, 6.25, 6.5, 5.0],  # reset after the done at t=1; segment end: no bootstrap
        [2.75, 3.5, 3.0, 0.0, 0.0],  # episode then padding (whose rewards must not leak)
        [2.0, 2.0, 0.0, 0.0, 0.0],  # padding straight after a step without a done
    )
    torch.testing.assert_close(got, expected)
    # any leading dims: the same rows inside a [2, 3, T] batch
    batched = discounted_returns(*(x.expand(2, 3, 5) for x in (rewards, dones, mask)), 0.5)
    torch.testing.assert_close(batched, expected.expand(2, 3, 5))


def test_gae_hand_computed():
    gamma, lam = 0.5, 0.5
    rewards = t([1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 5, 5])
    values = t([1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 7, 7])
    next_values = t([2, 10, 4, 5], [2, 10, 4, 5], [2, 3, 7, 7])
    terminated = torch.tensor([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    truncated = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]], dtype=torch.bool)
    dones = (terminated | truncated).double()
    mask = t([1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0])
    adv, ret = gae(
        rewards,
        values,
        next_values,
        terminated=terminated,
        dones=dones,
        mask=mask,
        gamma=gamma,
        lam=lam,
    )
    expected_adv = t(
        # termination at t=1 (V of the final obs, 10, ignored); the segment end at t=3
        # bootstraps through next_values: delta = [1, -1, 0, -0.5]
        [0.75, -1.0, -0.125, -0.5],
        # truncation at t=1 bootstraps: delta_1 = 1 + 0.5 * 10 - 2 = 4
        [2.0, 4.0, -0.125, -0.5],
        # truncated episode followed by padding (junk rewards/values ignored)
        [1.125, 0.5, 0.0, 0.0],
    )
    torch.testing.assert_close(adv, expected_adv)
    torch.testing.assert_close(ret, (expected_adv + values) * mask)


def _random_episodes(shape=(3, 4, 12), seed=0):
    """Random rewards/values over episodes that end in termination, with consistent
    ``next_values`` (the next step's value inside an episode, junk at terminations)."""
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(shape, generator=g, dtype=torch.float64)
    values = torch.randn(shape, generator=g, dtype=torch.float64)
    terminated = torch.rand(shape, generator=g) < 0.25
    terminated[..., -1] = True
    junk = 100 * torch.randn(shape, generator=g, dtype=torch.float64)
    next_values = torch.where(terminated, junk, values.roll(-1, dims=-1))
    mask = torch.ones(shape, dtype=torch.float64)
    return rewards, values, next_values, terminated, terminated.double(), mask


def test_gae_lambda_one_is_returns_minus_values():
    rewards, values, next_values, terminated, dones, mask = _random_episodes()
    adv, ret = gae(
        rewards,
        values,
        next_values,
        terminated=terminated,
        dones=dones,
        mask=mask,
        gamma=0.9,
        lam=1.0,
    )
    returns = discounted_returns(rewards, dones, mask, 0.9)
    torch.testing.assert_close(adv, returns - values)
    torch.testing.assert_close(ret, returns)


def test_gae_lambda_zero_is_td_error():
    rewards, values, next_values, terminated, dones, mask = _random_episodes(seed=1)
    adv, _ = gae(
        rewards,
        values,
        next_values,
        terminated=terminated,
        dones=dones,
        mask=mask,
        gamma=0.9,
        lam=0.0,
    )
    td = rewards + 0.9 * next_values * (~terminated) - values
    torch.testing.assert_close(adv, td)


def test_explained_variance():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(y, y) == 1.0
    assert abs(explained_variance(torch.full_like(y, y.mean().item()), y)) < 1e-6
    assert explained_variance(y, torch.ones(4)) == 0.0  # constant target: defined as 0


def test_episode_steps_reset_at_dones_and_padding():
    dones = t([0, 0, 1, 0, 1, 0], [0, 0, 0, 1, 0, 0])
    mask = t([1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0])
    expected = torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 0]])
    assert torch.equal(episode_steps(dones, mask), expected)


def _linear_target(obs: torch.Tensor, steps: torch.Tensor, sign: float) -> torch.Tensor:
    """Exactly linear in the rllab features (no clipping: |obs| < 10)."""
    a = steps.double() / 100
    return sign * (2 * obs[..., 0] - obs[..., 1] ** 2 + 0.5 * a - 3 * a**3) + 1.5


def test_linear_baseline_recovers_linear_target_per_task():
    g = torch.Generator().manual_seed(0)
    obs = 3 * torch.rand(2, 5, 40, 3, generator=g, dtype=torch.float64) - 1.5
    dones = (torch.rand(2, 5, 40, generator=g) < 0.05).double()
    mask = torch.ones(2, 5, 40, dtype=torch.float64)
    mask[:, 0, 30:] = 0  # one padded rollout per task
    steps = episode_steps(dones, mask)
    target = torch.stack(
        [_linear_target(obs[0], steps[0], 1.0), _linear_target(obs[1], steps[1], -1.0)]
    )
    target = target * mask
    weights = fit_linear_baseline(obs, target, mask, dones)
    assert weights.shape == (2, 2 * 3 + 4)
    pred = predict_linear_baseline(weights, obs, mask, dones)
    # rllab's ridge term (1e-5) biases the nearly collinear time features slightly ...
    torch.testing.assert_close(pred, target, atol=5e-3, rtol=0)
    # ... and without it the fit is exact
    exact = fit_linear_baseline(obs, target, mask, dones, reg_coeff=1e-12)
    torch.testing.assert_close(predict_linear_baseline(exact, obs, mask, dones), target)
    assert (pred[:, 0, 30:] == 0).all()
    # each task is its own fit: task 1 alone gives the batched task-1 weights
    alone = fit_linear_baseline(obs[1:], target[1:], mask[1:], dones[1:])
    torch.testing.assert_close(alone[0], weights[1])
    assert not torch.allclose(weights[0], weights[1], atol=0.1)


def test_linear_baseline_empty_task_and_wrapper():
    obs = torch.randn(2, 3, 8, 2)
    returns = torch.randn(2, 3, 8)
    mask = torch.ones(2, 3, 8)
    mask[1] = 0  # task 1 has no real steps: its regularised solve gives zero weights
    dones = torch.zeros(2, 3, 8)
    baseline = LinearFeatureBaseline()
    assert (baseline.predict(obs, mask, dones) == 0).all()  # before any fit
    weights = baseline.fit(obs, returns, mask, dones)
    assert torch.isfinite(weights).all() and (weights[1] == 0).all()
    assert weights.dtype == obs.dtype
    # next_obs is one step further into its episode
    shifted = predict_linear_baseline(weights, obs, mask, dones, step_offset=1)
    assert not torch.allclose(shifted[0], baseline.predict(obs, mask, dones)[0])
