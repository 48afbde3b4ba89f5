"""Conjugate gradient, the TRPO step, and the PPO/TRPO updates on hand-built trajectories."""

from __future__ import annotations

import io
import math

import pytest
import torch

from metarobust.agents.baselines import ValueFunction
from metarobust.agents.policy import (
    GaussianPolicy,
    distribution_params,
    gaussian_kl,
    gaussian_log_prob,
)
from metarobust.agents.ppo import PPO
from metarobust.agents.trpo import (
    TRPO,
    conjugate_gradient,
    flatten_params,
    gaussian_fisher_product,
    trpo_step,
    unflatten_params,
)
from metarobust.config import PPOConfig, TRPOConfig
from metarobust.trajectories import Trajectories

OBS_DIM, ACT_DIM = 3, 2


# ---------------------------------------------------------------- conjugate gradient / TRPO step


def test_conjugate_gradient_solves_spd_system():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(8, 8, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(8, dtype=torch.float64)
    b = torch.randn(8, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=30)
    torch.testing.assert_close(x, torch.linalg.solve(a, b))
    # a zero right-hand side is solved by zero, without dividing by zero
    assert torch.equal(conjugate_gradient(lambda v: a @ v, torch.zeros(8).double(), 5), 0 * b)


def _toy(seed: int = 0):
    """A 'policy' N(mu, exp(s)^2) over 3 dims: the surrogate prefers larger mu and s;
    the KL is the exact Gaussian KL from the starting point."""
    g = torch.Generator().manual_seed(seed)
    params = {
        "mu": torch.randn(3, generator=g, dtype=torch.float64),
        "s": 0.3 * torch.randn(3, generator=g, dtype=torch.float64),
    }
    old = {k: v.clone() for k, v in params.items()}
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)

    def surrogate(p):  # to minimise
        return -(c * p["mu"]).sum() - 0.3 * p["s"].sum() + 0.1 * p["mu"].square().sum()

    def kl(p):
        return gaussian_kl(old["mu"], old["s"], p["mu"], p["s"])

    return params, surrogate, kl


def trpo_step_on_kl(params, surrogate, kl, **kwargs):
    """``trpo_step`` for any KL function: its Hessian-vector products by forward over
    reverse, the line search on ``surrogate`` and ``kl``."""
    kl_grad = torch.func.grad(kl)

    def hessian_product(v):
        return flatten_params(torch.func.jvp(kl_grad, (params,), (unflatten_params(v, params),))[1])

    def evaluate(p):
        return surrogate(p), kl(p)

    return trpo_step(params, surrogate, hessian_product, evaluate=evaluate, **kwargs)


def test_trpo_step_improves_within_trust_region():
    params, surrogate, kl = _toy()
    before = surrogate(params).item()
    new, info = trpo_step_on_kl(params, surrogate, kl, max_kl=0.01, cg_iters=10, cg_damping=0.0)
    assert info["accepted"] == 1.0
    assert surrogate(new).item() < before
    assert info["surrogate_after"] == pytest.approx(surrogate(new).item())
    assert kl(new).item() <= 0.01
    assert info["kl"] == pytest.approx(kl(new).item())
    # the step uses the trust region (the quadratic KL model is close here), not a tiny one
    assert kl(new).item() > 0.3 * 0.01
    assert all(not v.requires_grad for v in new.values())
    # and the old parameters were not touched
    assert torch.equal(params["mu"], _toy()[0]["mu"])


def test_trpo_step_rejects_steps_that_violate_kl():
    params, surrogate, kl = _toy()
    old = {k: v.clone() for k, v in params.items()}

    def steep_kl(p):
        # same Hessian at the start (the quartic term is flat there), far larger KL anywhere
        # the line search looks
        d2 = sum((p[k] - old[k]).square().sum() for k in p)
        return kl(p) + 1e6 * d2**2

    new, info = trpo_step_on_kl(params, surrogate, steep_kl, max_kl=0.01, line_search_steps=10)
    assert info["accepted"] == 0.0 and info["line_search_steps"] == 10.0
    for k in params:
        assert torch.equal(new[k], old[k])
    assert info["surrogate_after"] == info["surrogate_before"]


def test_gaussian_fisher_product_equals_hessian_of_kl():
    torch.manual_seed(0)
    policy = GaussianPolicy(OBS_DIM, ACT_DIM, (5,)).double()
    params = {k: v + 0.1 * torch.randn_like(v) for k, v in policy.init_params().items()}
    obs = torch.randn(20, OBS_DIM, dtype=torch.float64)
    weights = torch.rand(20, dtype=torch.float64)  # any weighting of the states
    with torch.no_grad():
        old_mean, old_log_std = distribution_params(policy, params, obs)

    def kl(p):
        kl = gaussian_kl(old_mean, old_log_std, *distribution_params(policy, p, obs))
        return (weights * kl).sum()

    flat = flatten_params(params)
    hessian = torch.autograd.functional.hessian(lambda f: kl(unflatten_params(f, params)), flat)
    fvp = gaussian_fisher_product(lambda p: distribution_params(policy, p, obs), params, weights)
    for seed in range(3):
        v = torch.randn(flat.shape, generator=torch.Generator().manual_seed(seed)).double()
        torch.testing.assert_close(fvp(v), hessian @ v)


# ---------------------------------------------------------------------------- PPO / TRPO updates


def make_traj(policy, params, obs, actions, rewards, terminated, truncated, mask, next_obs):
    """Trajectories from step tensors ``[task, rollout, time, ...]``; log-probs from ``params``."""
    with torch.no_grad():
        log_probs = gaussian_log_prob(*distribution_params(policy, params, obs), actions)
    empty = torch.zeros(0)
    return Trajectories(
        obs=obs,
        actions=actions,
        rewards=rewards,
        log_probs=log_probs,
        next_obs=next_obs,
        terminated=terminated,
        truncated=truncated,
        mask=mask,
        episode_returns=empty,
        episode_lengths=empty.long(),
        episode_tasks=empty.long(),
        episode_successes=empty,
    )


def synthetic_batch(policy, params, seed=0, junk=0.0):
    """1 task x 4 envs x 20 steps with terminations, a truncation and a padded tail; ``junk``
    fills the padding (which must not matter)."""
    g = torch.Generator().manual_seed(seed)
    shape = (1, 4, 20)
    obs = torch.randn(*shape, OBS_DIM, generator=g)
    actions = torch.randn(*shape, ACT_DIM, generator=g)
    rewards = obs[..., 0] - actions[..., 0].square()
    next_obs = torch.cat([obs[:, :, 1:], obs[:, :, -1:] + 0.1], dim=2)
    terminated = torch.zeros(shape, dtype=torch.bool)
    truncated = torch.zeros(shape, dtype=torch.bool)
    terminated[0, 0, 7] = terminated[0, 2, 12] = True
    truncated[0, 1, 9] = True
    mask = torch.ones(shape)
    mask[0, 3, 16:] = 0
    for x in (obs, actions, rewards, next_obs):
        x[0, 3, 16:] = junk
    return make_traj(policy, params, obs, actions, rewards, terminated, truncated, mask, next_obs)


def make_ppo(seed=0, **cfg):
    torch.manual_seed(seed)
    policy = GaussianPolicy(OBS_DIM, ACT_DIM, (16,))
    value_fn = ValueFunction(OBS_DIM, (16,))
    defaults = dict(num_epochs=4, minibatch_size=16)
    ppo = PPO(policy, value_fn, PPOConfig(**{**defaults, **cfg}), "cpu", torch.Generator())
    ppo.generator.manual_seed(seed)
    return ppo


PPO_TERMS = {
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "explained_variance",
    "epochs_run",
}


def test_ppo_update_returns_terms_and_ignores_padding():
    ppo = make_ppo(clip_value=0.2, ent_coef=0.01)
    start = {k: v.detach().clone() for k, v in ppo.params.items()}
    out = ppo.update(synthetic_batch(ppo.policy, ppo.params))
    assert set(out) == PPO_TERMS
    assert all(math.isfinite(v) for v in out.values())
    assert out["epochs_run"] == 4 and out["approx_kl"] > 0
    assert any(not torch.equal(start[k], v) for k, v in ppo.params.items())
    # padded steps carry no weight: junk there changes nothing
    a, b = make_ppo(), make_ppo()
    out_a = a.update(synthetic_batch(a.policy, a.params, junk=0.0))
    out_b = b.update(synthetic_batch(b.policy, b.params, junk=1e3))
    assert out_a == out_b
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k])


def test_ppo_kl_early_stop():
    ppo = make_ppo(num_epochs=10, target_kl=1e-9)
    out = ppo.update(synthetic_batch(ppo.policy, ppo.params))
    assert out["epochs_run"] == 1.0  # one minibatch step, then the next one's KL is too large
    ppo = make_ppo(num_epochs=10, target_kl=None)
    assert ppo.update(synthetic_batch(ppo.policy, ppo.params))["epochs_run"] == 10.0


def test_ppo_ratios_start_at_one_under_moved_normaliser_statistics():
    """The batch was sampled under older statistics than the update's (the learner merges
    the batch into them first): pi_old is re-read under the statistics in force."""
    torch.manual_seed(0)
    policy = GaussianPolicy(OBS_DIM, ACT_DIM, (16,), normalize_obs=True)
    ppo = PPO(
        policy,
        ValueFunction(OBS_DIM, (16,)),
        PPOConfig(num_epochs=1, minibatch_size=80, lr=1e-3),
        "cpu",
        torch.Generator().manual_seed(0),
    )
    traj = synthetic_batch(policy, ppo.params)  # log-probs under the initial statistics
    policy.obs_normalizer.update(traj.obs[traj.mask.bool()] * 3 + 1)
    terms = ppo.update(traj)  # one full-batch step: its ratios are those before it
    assert terms["approx_kl"] == pytest.approx(0.0, abs=1e-7)
    assert terms["clip_fraction"] == 0.0
    with torch.no_grad():  # the recorded ones were far from the policy in force
        mean, log_std = distribution_params(policy, ppo.params, traj.obs)
        log_ratio = gaussian_log_prob(mean, log_std, traj.actions) - traj.log_probs
        log_ratio = log_ratio[traj.mask.bool()]
    assert ((log_ratio.exp() - 1) - log_ratio).mean() > 100 * 1e-7  # their approx_kl


def test_ppo_same_seed_same_params_and_state_round_trip():
    runs = []
    for seed in (0, 0, 1):
        ppo = make_ppo()
        ppo.generator.manual_seed(seed)  # only the shuffling differs between seeds
        ppo.update(synthetic_batch(ppo.policy, ppo.params))
        runs.append(ppo)
    for k in runs[0].params:
        assert torch.equal(runs[0].params[k], runs[1].params[k])
    assert any(not torch.equal(runs[0].params[k], runs[2].params[k]) for k in runs[0].params)

    # state_dict survives a weights-only save/load, and a restored learner continues identically
    buf = io.BytesIO()
    torch.save(runs[0].state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    restored = make_ppo(seed=5)
    restored.load_state_dict(state)
    restored.generator.set_state(runs[0].generator.get_state())
    batch = synthetic_batch(runs[0].policy, runs[0].params, seed=1)
    assert runs[0].update(batch) == restored.update(batch)
    for k in runs[0].params:
        assert torch.equal(runs[0].params[k], restored.params[k])


def test_value_function_uses_the_policy_normaliser():
    ppo = make_ppo()
    policy = GaussianPolicy(OBS_DIM, ACT_DIM, (16,), normalize_obs=True)
    ppo.policy = policy
    policy.obs_normalizer.update(5 + 3 * torch.randn(100, OBS_DIM))
    obs = torch.randn(7, OBS_DIM)
    assert ppo.value_fn(obs).shape == (7,)
    before = ppo.value_fn(obs)
    ppo.update(synthetic_batch(policy, ppo.params))
    vf_norm = ppo.value_fn.obs_normalizer
    assert vf_norm.enabled and torch.equal(vf_norm.mean, policy.obs_normalizer.mean)
    assert torch.equal(vf_norm.var, policy.obs_normalizer.var)
    assert not torch.allclose(ppo.value_fn.net(policy.obs_normalizer(obs)).squeeze(-1), before)
    torch.testing.assert_close(
        ppo.value_fn(obs), ppo.value_fn.net(policy.obs_normalizer(obs)).squeeze(-1)
    )


def bandit_batch(policy, params, generator, n=256):
    """One-step episodes with reward -(a - 1)^2: the best action is 1."""
    obs = torch.randn(1, n, 1, OBS_DIM, generator=generator)
    with torch.no_grad():
        mean, log_std = (x.detach() for x in distribution_params(policy, params, obs))
    actions = mean + log_std.exp() * torch.randn(mean.shape, generator=generator)
    rewards = -(actions - 1.0).square().sum(-1)
    done = torch.ones(1, n, 1, dtype=torch.bool)
    return make_traj(policy, params, obs, actions, rewards, done, ~done, done.float(), obs)


def mean_action(algo) -> torch.Tensor:
    with torch.no_grad():
        return distribution_params(algo.policy, algo.params, torch.zeros(OBS_DIM))[0]


def test_ppo_improves_a_bandit():
    ppo = make_ppo(lr=3e-3, num_epochs=5, minibatch_size=64)
    g = torch.Generator().manual_seed(0)
    assert mean_action(ppo).abs().max() < 0.1
    for _ in range(15):
        ppo.update(bandit_batch(ppo.policy, ppo.params, g))
    assert ((mean_action(ppo) - 1.0).abs() < 0.25).all(), mean_action(ppo)


@pytest.mark.parametrize("baseline", ["linear", "mlp"])
def test_trpo_update_and_bandit(baseline):
    torch.manual_seed(0)
    policy = GaussianPolicy(OBS_DIM, ACT_DIM, (16,))
    cfg = TRPOConfig(baseline=baseline, max_kl=0.05, vf_epochs=2)
    value_fn = ValueFunction(OBS_DIM, (16,)) if baseline == "mlp" else None
    trpo = TRPO(policy, cfg, "cpu", torch.Generator().manual_seed(0), value_fn)
    out = trpo.update(synthetic_batch(policy, trpo.params))
    expected = {"policy_loss", "surrogate_improvement", "kl", "value_loss", "line_search_steps"}
    assert expected | {"explained_variance", "accepted", "entropy"} == set(out)
    assert all(math.isfinite(v) for v in out.values())
    assert out["accepted"] == 1.0 and 0 < out["kl"] <= 0.05 and out["surrogate_improvement"] > 0

    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        trpo.update(bandit_batch(policy, trpo.params, g))
    assert (mean_action(trpo) > 0.6).all(), mean_action(trpo)

    state = trpo.state_dict()
    other = TRPO(policy, cfg, "cpu", torch.Generator(), ValueFunction(OBS_DIM, (16,)))
    other.load_state_dict(state)
    for k in state["params"]:
        assert torch.equal(other.params[k], trpo.params[k])


def test_trpo_subsampled_fisher_keeps_the_trust_region_on_the_whole_batch():
    """trpo.fisher_subsample: the natural direction from a fifth of the batch's transitions;
    the step still improves the surrogate and its KL, checked on every transition, stays in
    max_kl. Its direction is close to the exact one, not equal to it."""
    torch.manual_seed(0)
    policy = GaussianPolicy(OBS_DIM, ACT_DIM, (16,))
    start = {k: v.clone() for k, v in policy.init_params().items()}
    steps = {}
    for fraction in (1.0, 0.2):
        cfg = TRPOConfig(baseline="linear", max_kl=0.02, fisher_subsample=fraction)
        trpo = TRPO(policy, cfg, "cpu", torch.Generator().manual_seed(0))
        trpo.load_state_dict({"params": start, "linear_baseline": {"weights": None}})
        before = flatten_params(trpo.params).clone()
        out = trpo.update(synthetic_batch(policy, trpo.params))
        assert out["accepted"] == 1.0 and 0 < out["kl"] <= 0.02, out
        assert out["surrogate_improvement"] > 0
        steps[fraction] = flatten_params(trpo.params) - before
    exact, sub = steps[1.0], steps[0.2]
    cosine = (exact @ sub) / (exact.norm() * sub.norm())
    assert 0.8 < cosine < 1.0 - 1e-6, cosine
