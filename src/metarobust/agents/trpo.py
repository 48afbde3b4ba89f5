"""Trust Region Policy Optimisation (Schulman et al. 2015), as in rllab / MAML-TRPO.

``trpo_step`` is the reusable core: a natural-gradient step on any surrogate loss of a
parameter dict, constrained by any mean-KL function of it. It knows nothing of trajectories,
so MAML-TRPO calls it with a surrogate and KL computed through adapted policies. ``TRPO`` is
the plain single-policy update built on it, with a linear or MLP value baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from metarobust.agents.baselines import LinearFeatureBaseline, ValueFunction
from metarobust.agents.policy import (
    GaussianPolicy,
    Params,
    distribution_params,
    gaussian_entropy,
    gaussian_kl,
    gaussian_log_prob,
)
from metarobust.agents.returns import explained_variance, trajectory_gae
from metarobust.config import TRPOConfig
from metarobust.trajectories import Trajectories


def flatten_params(params: Params) -> Tensor:
    """All tensors of ``params`` as one flat vector (dict order)."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten_params(flat: Tensor, like: Params) -> Params:
    """Inverse of ``flatten_params``: ``flat`` cut into tensors shaped as in ``like``."""
    out, start = {}, 0
    for name, p in like.items():
        out[name] = flat[start : start + p.numel()].view_as(p)
        start += p.numel()
    return out


def conjugate_gradient(
    Avp: Callable[[Tensor], Tensor], b: Tensor, iters: int, residual_tol: float = 1e-10
) -> Tensor:
    """Approximate solution ``x`` of ``A x = b`` for symmetric positive-definite ``A`` given only
    as the product ``Avp(v) = A v``; stops after ``iters`` products or when ``|r|^2`` is below
    ``residual_tol``."""
    x = torch.zeros_like(b)
    r = b.clone()  # residual b - A x
    p = b.clone()  # search direction
    rr = r @ r
    for _ in range(iters):
        if rr < residual_tol:
            break
        Ap = Avp(p)
        alpha = rr / (p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def _grads(output: Tensor, params: Params) -> list[Tensor]:
    """d output / d params, zeros for parameters the output does not depend on."""
    grads = torch.autograd.grad(output, list(params.values()), allow_unused=True)
    pairs = zip(grads, params.values(), strict=True)
    return [torch.zeros_like(p) if g is None else g for g, p in pairs]


def gaussian_fisher_product(
    distribution: Callable[[Params], tuple[Tensor, Tensor]], params: Params, weights: Tensor
) -> Callable[[Tensor], Tensor]:
    """``v -> F v`` with ``F`` the Hessian, at ``params``, of the weighted KL
    ``theta -> sum(weights * KL(pi_params || pi_theta))`` of a diagonal Gaussian policy whose
    ``distribution(theta)`` is ``(mean, log_std)``, each ``[..., act_dim]`` (``weights``
    ``[...]``: e.g. a mask over its counts, for a mean).

    In Gauss-Newton form ``F = J^T M J``: ``J`` the Jacobian of ``(mean, log_std)`` in
    ``theta`` and ``M`` the KL's curvature in them, ``1 / var`` for the mean and ``2`` for the
    log-std. This is the Hessian itself, not an approximation, where the KL is zero: its
    gradient in the distribution's outputs vanishes there, and with it every term through
    the second derivatives of ``distribution`` (MAML's inner loop included). Each product is
    one forward-mode and one reverse-mode pass through ``distribution`` instead of a
    backward pass through a backward graph.
    """
    at = {k: v.detach() for k, v in params.items()}
    (_, log_std), pullback = torch.func.vjp(distribution, at)
    w = weights.unsqueeze(-1)
    curvature = (w * torch.exp(-2.0 * log_std), 2.0 * w)

    def product(v: Tensor) -> Tensor:
        _, (d_mean, d_log_std) = torch.func.jvp(distribution, (at,), (unflatten_params(v, at),))
        (back,) = pullback((curvature[0] * d_mean, curvature[1] * d_log_std))
        return flatten_params(back)

    return product


def trpo_step(
    params: Params,
    surrogate: Callable[[Params], Tensor],
    fisher_product: Callable[[Tensor], Tensor],
    *,
    evaluate: Callable[[Params], tuple[Tensor, Tensor]],
    max_kl: float,
    cg_iters: int = 10,
    cg_damping: float = 0.1,
    line_search_steps: int = 10,
    backtrack_ratio: float = 0.8,
) -> tuple[Params, dict[str, float]]:
    """One TRPO step: ``min_theta surrogate(theta)  s.t.  kl(theta) <= max_kl``.

    ``surrogate`` is a loss to MINIMISE (e.g. ``-mean(ratio * A)``), differentiated at
    ``params``. ``fisher_product`` is ``v -> F v`` (flat vectors), ``F`` the Hessian at
    ``params`` of the mean ``KL(pi_old || pi_theta)`` (e.g. ``gaussian_fisher_product``);
    the KL itself is zero there. Line-search candidates are only evaluated, under
    ``no_grad``, by ``evaluate(theta) -> (surrogate, kl)``, so closures that differentiate
    inside (MAML's inner loop) must use ``torch.func`` transforms, which ``no_grad`` does not
    switch off.

    Natural gradient ``s = (F + cg_damping I)^-1 (-g)`` by conjugate gradient, full step
    ``beta * s`` with ``beta = sqrt(2 max_kl / s^T (F + cg_damping I) s)``, then backtracking by
    ``backtrack_ratio`` until the surrogate decreases AND the KL is within ``max_kl``. If no
    step qualifies, the old parameters come back and ``info["accepted"]`` is 0.

    Returns detached new parameters and ``info``: ``surrogate_before``, ``surrogate_after``,
    ``kl`` (of the returned parameters), ``line_search_steps`` (candidates tried),
    ``accepted``, ``expected_improvement`` (first-order, of the full step).
    """

    def fvp(v: Tensor) -> Tensor:
        return fisher_product(v) + cg_damping * v

    theta = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    loss = surrogate(theta)
    loss_before = loss.item()
    g = torch.cat([x.reshape(-1) for x in _grads(loss, theta)])  # [P]
    step_dir = conjugate_gradient(fvp, -g, cg_iters)  # s ~ F^-1 (-g): descent direction
    sFs = (step_dir @ fvp(step_dir)).item()
    info = {
        "surrogate_before": loss_before,
        "surrogate_after": loss_before,
        "kl": 0.0,
        "line_search_steps": 0.0,
        "accepted": 0.0,
        "expected_improvement": 0.0,
    }
    old = {k: v.detach() for k, v in params.items()}
    if not (math.isfinite(sFs) and sFs > 0.0):  # zero gradient or a broken Fisher: no step
        return old, info
    full_step = math.sqrt(2.0 * max_kl / sFs) * step_dir  # quadratic KL model hits max_kl
    info["expected_improvement"] = -(g @ full_step).item()
    flat_old = flatten_params(old)
    for i in range(line_search_steps):
        flat = flat_old + backtrack_ratio**i * full_step
        candidate = unflatten_params(flat, old)
        with torch.no_grad():
            new_loss, new_kl = (x.item() for x in evaluate(candidate))
        info["line_search_steps"] = float(i + 1)
        if math.isfinite(new_loss) and new_loss < loss_before and new_kl <= max_kl:
            info.update(surrogate_after=new_loss, kl=new_kl, accepted=1.0)
            return {k: v.detach() for k, v in candidate.items()}, info
    return old, info


class TRPO:
    """TRPO update of a ``GaussianPolicy`` on ``Trajectories``, with GAE advantages from a
    linear feature baseline (refitted before the advantages, as in MAML's code) or an MLP
    value function (trained with Adam after the policy step, on the GAE returns)."""

    def __init__(
        self,
        policy: GaussianPolicy,
        cfg: TRPOConfig,
        device: torch.device | str,
        generator: torch.Generator,
        value_fn: ValueFunction | None = None,
    ) -> None:
        if cfg.baseline == "mlp" and value_fn is None:
            raise ValueError("TRPO with baseline='mlp' needs a value_fn")
        self.policy, self.cfg, self.generator = policy, cfg, generator
        self.device = torch.device(device)
        self.params: Params = {k: v.to(self.device) for k, v in policy.init_params().items()}
        self.linear = LinearFeatureBaseline() if cfg.baseline == "linear" else None
        self.value_fn = value_fn if cfg.baseline == "mlp" else None
        self.vf_optimizer = (
            torch.optim.Adam(self.value_fn.parameters(), lr=cfg.vf_lr)
            if self.value_fn is not None
            else None
        )

    def update(self, traj: Trajectories) -> dict[str, float]:
        """One policy step (and baseline fit) on ``traj``; only real (masked) steps count.

        Returns ``policy_loss`` (surrogate after the step), ``surrogate_improvement``, ``kl``,
        ``line_search_steps``, ``accepted``, ``entropy``, ``value_loss``,
        ``explained_variance``.
        """
        cfg = self.cfg
        values, next_values, linear_loss = self._baseline_values(traj)  # [task, rollout, time]
        with torch.no_grad():
            adv, returns = trajectory_gae(
                traj, values, next_values, gamma=cfg.gamma, lam=cfg.gae_lambda
            )
        real = traj.mask.bool()
        obs, actions, adv, returns = traj.obs[real], traj.actions[real], adv[real], returns[real]
        ev = explained_variance(values[real], returns)
        if cfg.normalize_advantages and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)

        with torch.no_grad():
            # clones: log_std is a view of the params (even under no_grad), updated in place
            old_mean, old_log_std = (
                x.detach().clone() for x in distribution_params(self.policy, self.params, obs)
            )
            old_log_prob = gaussian_log_prob(old_mean, old_log_std, actions)  # [N]
            entropy = gaussian_entropy(old_log_std).mean().item()

        def surrogate(p: Params) -> Tensor:  # L(theta) = -E[pi_theta / pi_old * A]
            mean, log_std = distribution_params(self.policy, p, obs)
            ratio = torch.exp(gaussian_log_prob(mean, log_std, actions) - old_log_prob)
            return -(ratio * adv).mean()

        def mean_kl(p: Params) -> Tensor:  # E[KL(old || p)]
            mean, log_std = distribution_params(self.policy, p, obs)
            return gaussian_kl(old_mean, old_log_std, mean, log_std).mean()

        # the Fisher-vector products on evenly spaced transitions (rllab's subsampled Fisher);
        # the line search checks the KL on the whole batch
        fisher_obs = obs
        if cfg.fisher_subsample < 1.0:
            n = len(obs)
            rows = torch.linspace(0, n - 1, math.ceil(cfg.fisher_subsample * n))
            fisher_obs = obs[rows.round().long().to(obs.device)]
        fisher_product = gaussian_fisher_product(
            lambda p: distribution_params(self.policy, p, fisher_obs),
            self.params,
            torch.full(fisher_obs.shape[:1], 1.0 / len(fisher_obs), device=obs.device),
        )
        new_params, info = trpo_step(
            self.params,
            surrogate,
            fisher_product,
            evaluate=lambda p: (surrogate(p), mean_kl(p)),
            max_kl=cfg.max_kl,
            cg_iters=cfg.cg_iters,
            cg_damping=cfg.cg_damping,
            line_search_steps=cfg.line_search_steps,
            backtrack_ratio=cfg.backtrack_ratio,
        )
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(new_params[name])

        value_loss = linear_loss if self.value_fn is None else self._fit_value_fn(obs, returns)
        return {
            "policy_loss": info["surrogate_after"],
            "surrogate_improvement": info["surrogate_before"] - info["surrogate_after"],
            "kl": info["kl"],
            "line_search_steps": info["line_search_steps"],
            "accepted": info["accepted"],
            "entropy": entropy,
            "value_loss": value_loss,
            "explained_variance": ev,
        }

    @torch.no_grad()
    def _baseline_values(self, traj: Trajectories) -> tuple[Tensor, Tensor, float]:
        """``V(obs)``, ``V(next_obs)`` from the baseline, the linear one refitted first (then
        also its squared error to its fit targets; NaN for the MLP, trained later)."""
        if self.value_fn is not None:
            self.value_fn.sync_normalizer(self.policy.obs_normalizer)
            return self.value_fn(traj.obs), self.value_fn(traj.next_obs), math.nan
        assert self.linear is not None
        dones, mask = traj.dones, traj.mask
        # Fit targets: discounted returns, bootstrapped at truncations and segment ends with
        # the previous fit (none on the first iteration, as in rllab), i.e. GAE(lambda=1).
        prev = self.linear.weights
        if prev is None or prev.shape[0] != traj.num_tasks:
            prev_v = prev_next = torch.zeros_like(traj.rewards)
        else:
            prev_v = self.linear.predict(traj.obs, mask, dones)
            prev_next = self.linear.predict(traj.next_obs, mask, dones, step_offset=1)
        _, targets = trajectory_gae(traj, prev_v, prev_next, gamma=self.cfg.gamma, lam=1.0)
        self.linear.fit(traj.obs, targets, mask, dones)
        values = self.linear.predict(traj.obs, mask, dones)
        real = mask.bool()
        loss = (values[real] - targets[real]).square().mean().item()
        return values, self.linear.predict(traj.next_obs, mask, dones, step_offset=1), loss

    def _fit_value_fn(self, obs: Tensor, returns: Tensor) -> float:
        """``vf_epochs`` of minibatch Adam on the squared error to the GAE returns."""
        assert self.value_fn is not None and self.vf_optimizer is not None
        n, size = obs.shape[0], self.cfg.vf_minibatch_size
        losses = []
        for _ in range(self.cfg.vf_epochs):
            perm = torch.randperm(n, generator=self.generator, device=self.generator.device)
            perm = perm.to(obs.device)
            for start in range(0, n, size):
                idx = perm[start : start + size]
                loss = (self.value_fn(obs[idx]) - returns[idx]).square().mean()
                self.vf_optimizer.zero_grad()
                loss.backward()
                self.vf_optimizer.step()
                losses.append(loss.detach())
        return torch.stack(losses).mean().item()

    def state_dict(self) -> dict[str, Any]:
        """Policy params, the baseline and its optimiser, as plain tensors and dicts."""
        state: dict[str, Any] = {"params": {k: v.detach() for k, v in self.params.items()}}
        if self.linear is not None:
            state["linear_baseline"] = self.linear.state_dict()
        if self.value_fn is not None and self.vf_optimizer is not None:
            state["value_fn"] = self.value_fn.state_dict()
            state["vf_optimizer"] = self.vf_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(state["params"][name])
        if self.linear is not None:
            weights = state["linear_baseline"]["weights"]
            self.linear.load_state_dict(
                {"weights": None if weights is None else weights.to(self.device)}
            )
        if self.value_fn is not None and self.vf_optimizer is not None:
            self.value_fn.load_state_dict(state["value_fn"])
            self.vf_optimizer.load_state_dict(state["vf_optimizer"])
            for group in self.vf_optimizer.param_groups:  # the config in force sets the rate
                group["lr"] = self.cfg.vf_lr
