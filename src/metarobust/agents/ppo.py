"""Proximal Policy Optimisation with the clipped objective (Schulman et al. 2017).

Conventions follow Stable-Baselines3 (which match CleanRL's MuJoCo settings), so runs compare
with SB3 one to one: Adam with eps 1e-5 over policy and value parameters together, GAE,
advantages standardised per minibatch, value loss as a plain mean squared error weighted by
``vf_coef``, one global gradient-norm clip, and SB3's KL early stop: before each minibatch's
gradient step, if the approximate KL exceeds ``1.5 * target_kl``, the step is skipped and the
epoch loop ends.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metarobust.agents.baselines import ValueFunction
from metarobust.agents.policy import (
    GaussianPolicy,
    Params,
    gaussian_entropy,
    gaussian_log_prob,
)
from metarobust.agents.returns import explained_variance, trajectory_gae
from metarobust.config import PPOConfig
from metarobust.trajectories import Trajectories

# SB3 stops at 1.5 x target_kl (CleanRL at 1 x, checked once per epoch).
KL_STOP_FACTOR = 1.5


class PPO:
    """PPO-Clip update of a ``GaussianPolicy`` (its parameters in ``self.params``) and a
    ``ValueFunction``. Observation-normaliser statistics belong to the caller: PPO reads the
    policy's and copies them into the value function, never updates them. With a normaliser,
    the old policy's log-probs are those of its parameters under the statistics in force (the
    caller may have moved them since the batch was sampled), so every ratio starts at 1."""

    def __init__(
        self,
        policy: GaussianPolicy,
        value_fn: ValueFunction,
        cfg: PPOConfig,
        device: torch.device | str,
        generator: torch.Generator,
    ) -> None:
        self.policy, self.value_fn, self.cfg, self.generator = policy, value_fn, cfg, generator
        self.device = torch.device(device)
        self.params: Params = {
            k: v.to(self.device).requires_grad_(True) for k, v in policy.init_params().items()
        }
        self._trainable = [*self.params.values(), *value_fn.parameters()]
        self.optimizer = torch.optim.Adam(self._trainable, lr=cfg.lr, eps=1e-5, fused=True)

    def set_lr_fraction(self, frac: float) -> None:
        """Set the learning rate to ``frac * cfg.lr`` (linear annealing: frac 1 -> 0)."""
        for group in self.optimizer.param_groups:
            group["lr"] = frac * self.cfg.lr

    def update(self, traj: Trajectories) -> dict[str, float]:
        """``num_epochs`` passes of minibatch PPO on the real (masked) steps of ``traj``.

        Returns means over the minibatches evaluated: ``policy_loss``, ``value_loss``,
        ``entropy``, ``approx_kl``, ``clip_fraction``; plus ``explained_variance`` of the
        pre-update values and ``epochs_run`` (fewer than ``num_epochs`` after a KL stop).
        """
        cfg = self.cfg
        self.value_fn.sync_normalizer(self.policy.obs_normalizer)
        with torch.no_grad():
            values = self.value_fn(traj.obs)  # [task, rollout, time]
            next_values = self.value_fn(traj.next_obs)
            adv, returns = trajectory_gae(
                traj, values, next_values, gamma=cfg.gamma, lam=cfg.gae_lambda
            )
            real = traj.mask.bool()
            actions, old_log_prob = traj.actions[real], traj.log_probs[real]
            # normalised once for every epoch; the value function's statistics are the same
            obs = self.policy.obs_normalizer(traj.obs[real])
            if self.policy.obs_normalizer.enabled:  # pi_old under the statistics in force
                mean, log_std = self.policy.distribution_normalized(self.params, obs)
                old_log_prob = gaussian_log_prob(mean, log_std, actions)
        batch = {  # each [N, ...], N = real steps
            "obs": obs,  # normalised
            "actions": actions,
            "old_log_prob": old_log_prob,
            "old_value": values[real],
            "advantage": adv[real],
            "return": returns[real],
        }
        n = batch["obs"].shape[0]
        stats: dict[str, list[Tensor]] = {}
        epochs_run = 0
        for _ in range(cfg.num_epochs):
            epochs_run += 1
            perm = torch.randperm(n, generator=self.generator, device=self.generator.device)
            perm = perm.to(self.device)
            shuffled = {k: v[perm] for k, v in batch.items()}  # one gather per epoch
            stop = False
            for start in range(0, n, cfg.minibatch_size):
                mb = {k: v[start : start + cfg.minibatch_size] for k, v in shuffled.items()}
                loss, terms = self._loss(mb)
                for k, v in terms.items():
                    stats.setdefault(k, []).append(v)
                if cfg.target_kl is not None and (
                    terms["approx_kl"].item() > KL_STOP_FACTOR * cfg.target_kl
                ):
                    stop = True
                    break
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self._trainable, cfg.max_grad_norm, foreach=True)
                self.optimizer.step()
            if stop:
                break
        out = {k: torch.stack(v).mean().item() for k, v in stats.items()}
        out["explained_variance"] = explained_variance(batch["old_value"], batch["return"])
        out["epochs_run"] = float(epochs_run)
        return out

    def _loss(self, mb: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss of one minibatch and its detached named terms."""
        cfg = self.cfg
        mean, log_std = self.policy.distribution_normalized(self.params, mb["obs"])
        log_ratio = gaussian_log_prob(mean, log_std, mb["actions"]) - mb["old_log_prob"]
        ratio = log_ratio.exp()  # r_t(theta) = pi_theta(a|s) / pi_old(a|s)
        adv = mb["advantage"]
        if cfg.normalize_advantages and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        # L^CLIP = E[min(r A, clip(r, 1 - eps, 1 + eps) A)], as a loss to minimise
        clipped = ratio.clamp(1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef)
        policy_loss = torch.max(-adv * ratio, -adv * clipped).mean()

        value = self.value_fn.forward_normalized(mb["obs"])
        value_err = (value - mb["return"]).square()
        if cfg.clip_value is not None:  # pessimistic clipped value loss (OpenAI baselines)
            v_clip = mb["old_value"] + (value - mb["old_value"]).clamp(
                -cfg.clip_value, cfg.clip_value
            )
            value_err = torch.max(value_err, (v_clip - mb["return"]).square())
        value_loss = value_err.mean()

        entropy = gaussian_entropy(log_std).mean()
        loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
        with torch.no_grad():
            terms = {
                "policy_loss": policy_loss.detach(),
                "value_loss": value_loss.detach(),
                "entropy": entropy.detach(),
                # k3 estimator of KL(old || new): E[(r - 1) - log r] (Schulman's blog, SB3)
                "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
                "clip_fraction": ((ratio - 1.0).abs() > cfg.clip_coef).float().mean(),
            }
        return loss, terms

    def state_dict(self) -> dict[str, Any]:
        """Policy params, value function and optimiser state, as plain tensors and dicts."""
        return {
            "params": {k: v.detach() for k, v in self.params.items()},
            "value_fn": self.value_fn.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():  # in place, so the optimiser keeps pointing at the same tensors
            for name, p in self.params.items():
                p.copy_(state["params"][name])
        self.value_fn.load_state_dict(state["value_fn"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.set_lr_fraction(1.0)  # the config in force sets the rate (a resume may change it)
