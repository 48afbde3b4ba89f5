"""MAML: the batched inner loop against explicit per-task autograd loops; the outer step."""

from __future__ import annotations

import pytest
import torch

from metarobust.agents.policy import GaussianPolicy
from metarobust.agents.trpo import flatten_params, trpo_step, unflatten_params
from metarobust.maml.adapt import adapt, reinforce_advantages, reinforce_loss
from metarobust.maml.objective import ALPHA_PREFIX, MetaObjective
from metarobust.trajectories import Trajectories

TASKS, EPISODES, HORIZON, OBS, ACT = 3, 4, 6, 5, 2


def fake_trajectories(seed: int) -> Trajectories:
    """Random float64 episodes of uneven lengths, padded after each one ends."""
    g = torch.Generator().manual_seed(seed)
    shape = (TASKS, EPISODES, HORIZON)
    lengths = torch.randint(2, HORIZON + 1, shape[:2], generator=g)
    mask = (torch.arange(HORIZON) < lengths[..., None]).double()
    last = torch.arange(HORIZON) == (lengths[..., None] - 1)
    obs = torch.randn(*shape, OBS, generator=g, dtype=torch.float64) * mask[..., None]
    return Trajectories(
        obs=obs,
        actions=torch.randn(*shape, ACT, generator=g, dtype=torch.float64) * mask[..., None],
        rewards=torch.randn(*shape, generator=g, dtype=torch.float64) * mask,
        log_probs=torch.zeros(shape, dtype=torch.float64),
        next_obs=obs,
        terminated=torch.zeros(shape, dtype=torch.bool),
        truncated=last,
        mask=mask,
        episode_returns=torch.zeros(TASKS * EPISODES, dtype=torch.float64),
        episode_lengths=lengths.flatten(),
        episode_tasks=torch.arange(TASKS).repeat_interleave(EPISODES),
        episode_successes=torch.full((TASKS * EPISODES,), float("nan")),
    )


@pytest.fixture
def setup():
    torch.manual_seed(0)
    policy = GaussianPolicy(OBS, ACT, (8, 8), init_std=0.7).double()
    params = {k: v.detach().clone().requires_grad_(True) for k, v in policy.named_parameters()}
    train, valid = fake_trajectories(1), fake_trajectories(2)
    return policy, params, train, valid


def meta_loss(policy, adapted_per_task, valid, adv_valid) -> torch.Tensor:
    return sum(
        reinforce_loss(policy, fast, valid.obs[i], valid.actions[i], adv_valid[i], valid.mask[i])
        for i, fast in enumerate(adapted_per_task)
    )


def batched_meta_grad(policy, params, train, valid, alpha, first_order=False, num_steps=1):
    adv_train, adv_valid = reinforce_advantages(train, 0.99), reinforce_advantages(valid, 0.99)
    fast = adapt(
        policy,
        params,
        train,
        adv_train,
        step_size=alpha,
        num_steps=num_steps,
        first_order=first_order,
    )
    per_task = [{k: v[i] for k, v in fast.items()} for i in range(TASKS)]
    loss = meta_loss(policy, per_task, valid, adv_valid)
    leaves = list(params.values()) + (list(alpha.values()) if isinstance(alpha, dict) else [])
    return torch.autograd.grad(loss, leaves)


def looped_meta_grad(policy, params, train, valid, alpha, first_order=False, num_steps=1):
    adv_train, adv_valid = reinforce_advantages(train, 0.99), reinforce_advantages(valid, 0.99)
    per_task = []
    for i in range(TASKS):
        fast = dict(params)
        for _ in range(num_steps):
            loss = reinforce_loss(
                policy, fast, train.obs[i], train.actions[i], adv_train[i], train.mask[i]
            )
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=not first_order)
            step = alpha if isinstance(alpha, float) else None
            fast = {
                k: fast[k] - (step if step is not None else alpha[k]) * g
                for k, g in zip(fast, grads, strict=True)
            }
        per_task.append(fast)
    loss = meta_loss(policy, per_task, valid, adv_valid)
    leaves = list(params.values()) + (list(alpha.values()) if isinstance(alpha, dict) else [])
    return torch.autograd.grad(loss, leaves)


def assert_grads_close(a, b):
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)


def test_batched_second_order_meta_gradient_equals_per_task_autograd_loop(setup):
    policy, params, train, valid = setup
    assert_grads_close(
        batched_meta_grad(policy, params, train, valid, 0.5),
        looped_meta_grad(policy, params, train, valid, 0.5),
    )


def test_first_order_matches_detached_loop_and_differs_from_second_order(setup):
    policy, params, train, valid = setup
    first = batched_meta_grad(policy, params, train, valid, 0.5, first_order=True)
    assert_grads_close(first, looped_meta_grad(policy, params, train, valid, 0.5, True))
    second = batched_meta_grad(policy, params, train, valid, 0.5)
    gap = max((a - b).abs().max().item() for a, b in zip(first, second, strict=True))
    scale = max(b.abs().max().item() for b in second)
    assert gap > 1e-3 * scale  # the Hessian term is really there


def test_two_inner_steps_equal_two_manual_steps(setup):
    policy, params, train, valid = setup
    adv = reinforce_advantages(train, 0.99)
    twice = adapt(policy, params, train, adv, step_size=0.3, num_steps=2)
    once = adapt(policy, params, train, adv, step_size=0.3, num_steps=1)
    for i in range(TASKS):
        start = {k: v[i] for k, v in once.items()}
        again = adapt(policy, start, train, adv, step_size=0.3)  # task i's row is the one compared
        for k in params:
            torch.testing.assert_close(twice[k][i], again[k][i], rtol=1e-10, atol=1e-10)
    assert_grads_close(
        batched_meta_grad(policy, params, train, valid, 0.3, num_steps=2),
        looped_meta_grad(policy, params, train, valid, 0.3, num_steps=2),
    )


def test_meta_sgd_step_sizes_get_the_right_gradient(setup):
    policy, params, train, valid = setup
    alpha = {k: torch.full_like(v, 0.2).requires_grad_(True) for k, v in params.items()}
    batched = batched_meta_grad(policy, params, train, valid, alpha)
    assert_grads_close(batched, looped_meta_grad(policy, params, train, valid, alpha))
    alpha_grads = batched[len(params) :]
    assert all(g.abs().sum() > 0 for g in alpha_grads)


def test_advantages_are_standardised_per_task_and_zero_on_padding():
    traj = fake_trajectories(3)
    adv = reinforce_advantages(traj, 0.9)
    real = traj.mask.bool()
    assert (adv[~real] == 0).all()
    for i in range(TASKS):
        a = adv[i][real[i]]
        # std + 1e-8 in the denominator: residuals of a near-exact fit come out slightly under 1
        assert abs(a.mean().item()) < 1e-6 and abs(a.std(unbiased=False).item() - 1) < 1e-2


@pytest.mark.parametrize(
    ("meta_sgd", "fisher_subsample"), [(False, 1.0), (True, 1.0), (False, 0.5)]
)
def test_trpo_meta_step_respects_the_kl_limit_and_improves_the_surrogate(
    setup, meta_sgd, fisher_subsample
):
    policy, params, train, valid = setup
    meta = {k: v.detach() for k, v in params.items()}
    if meta_sgd:
        meta |= {ALPHA_PREFIX + k: torch.full_like(v, 0.1) for k, v in params.items()}
    objective = MetaObjective(policy, meta, train, valid, gamma=0.99, fast_lr=0.1)
    start = {k: v.clone().requires_grad_(True) for k, v in meta.items()}
    surrogate, kl = objective.surrogate_and_kl(start)
    assert kl.item() == pytest.approx(0.0, abs=1e-12)  # pi_old is the adapted policy at meta
    kl_grad = torch.autograd.grad(objective.kl(start), list(start.values()))
    assert max(g.abs().max().item() for g in kl_grad) < 1e-8  # KL is minimal there
    fisher = objective.subsample(fisher_subsample)  # KL for the Fisher products only
    assert fisher.valid.mask.shape[1] == EPISODES * fisher_subsample
    assert fisher.train.episode_tasks.tolist() == sorted(fisher.train.episode_tasks.tolist())
    assert fisher.train.episode_returns.numel() == TASKS * EPISODES * fisher_subsample
    assert fisher.kl(start).item() == pytest.approx(0.0, abs=1e-12)
    new, info = trpo_step(
        meta,
        objective.surrogate,
        fisher.fisher_product(),
        max_kl=1e-3,
        cg_iters=10,
        evaluate=objective.surrogate_and_kl,  # the line search checks the exact KL
    )
    assert info["accepted"] == 1.0
    assert objective.kl(new).item() <= 1e-3
    assert objective.surrogate(new).item() < surrogate.item()
    moved = [k for k in meta if not torch.equal(new[k], meta[k])]
    assert len(moved) == len(meta)  # Meta-SGD step sizes move with the policy


@pytest.mark.parametrize(
    ("meta_sgd", "num_inner_steps", "first_order"),
    [(False, 1, False), (True, 1, False), (False, 2, False), (False, 1, True)],
)
def test_meta_fisher_product_equals_the_hessian_of_the_kl_through_the_inner_loop(
    setup, meta_sgd, num_inner_steps, first_order
):
    policy, params, train, valid = setup
    meta = {k: v.detach() for k, v in params.items()}
    if meta_sgd:
        meta |= {ALPHA_PREFIX + k: torch.full_like(v, 0.1) for k, v in params.items()}
    objective = MetaObjective(
        policy,
        meta,
        train,
        valid,
        gamma=0.99,
        fast_lr=0.1,
        num_inner_steps=num_inner_steps,
        first_order=first_order,
    )
    flat = flatten_params(meta)
    hessian = torch.autograd.functional.hessian(
        lambda f: objective.kl(unflatten_params(f, meta)), flat
    )
    assert hessian.abs().max() > 1e-3  # a real curvature to match
    product = objective.fisher_product()
    for seed in range(3):
        v = torch.randn(flat.shape, generator=torch.Generator().manual_seed(seed)).double()
        torch.testing.assert_close(product(v), hessian @ v)
