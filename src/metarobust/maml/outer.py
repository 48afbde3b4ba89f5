"""MAML's outer step, owning the meta-parameters: a TRPO step (MAML-TRPO, the paper's) or
Adam on the clipped post-adaptation surrogate (MAML-PPO, as in ProMP and garage), each
differentiating through the inner loop."""

from __future__ import annotations

from typing import Any

import torch

from metarobust.agents.policy import Params
from metarobust.agents.trpo import trpo_step
from metarobust.config import Config, PPOConfig
from metarobust.maml.objective import MetaObjective


class MetaTRPO:
    """A TRPO step on the post-adaptation surrogate: exact KL in the line search, optionally
    subsampled Fisher-vector products (``maml.fisher_subsample``)."""

    def __init__(self, meta: Params, cfg: Config) -> None:
        self.cfg = cfg
        self.params: Params = dict(meta)

    def step(self, objective: MetaObjective) -> dict[str, float]:
        """One step on one meta-batch; returns trpo_step's statistics."""
        trpo = self.cfg.trpo
        self.params, info = trpo_step(
            self.params,
            objective.surrogate,
            objective.subsample(self.cfg.maml.fisher_subsample).fisher_product(),
            max_kl=trpo.max_kl,
            cg_iters=trpo.cg_iters,
            cg_damping=trpo.cg_damping,
            line_search_steps=trpo.line_search_steps,
            backtrack_ratio=trpo.backtrack_ratio,
            evaluate=objective.surrogate_and_kl,  # line search: one adaptation per candidate
        )
        return info

    def state_dict(self) -> dict[str, Any]:
        return {"meta_params": dict(self.params)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["meta_params"]
        if saved.keys() != self.params.keys():
            raise KeyError("meta_params do not match this run's policy")
        self.params = {k: v.to(self.params[k].device) for k, v in saved.items()}


class MetaPPO:
    """Owns the meta-parameters (leaf tensors) and their Adam state.

    ``step`` runs ``num_epochs`` full-batch gradient steps on
    ``-mean_tasks E[min(r A, clip(r, 1 - eps, 1 + eps) A)]``, with
    ``r = pi_{theta'_i}(a|s) / pi_{old'_i}(a|s)`` recomputed through the inner loop each time.
    """

    def __init__(self, meta: Params, cfg: PPOConfig) -> None:
        self.cfg = cfg
        self.params: Params = {k: v.detach().clone().requires_grad_(True) for k, v in meta.items()}
        self.optimizer = torch.optim.Adam(self.params.values(), lr=cfg.lr, eps=1e-5)

    def step(self, objective: MetaObjective) -> dict[str, float]:
        """The epochs on one meta-batch; returns the clipped surrogate before and after, the
        exact KL of the result and the mean clip fraction."""
        losses, clipped = [], []
        for _ in range(self.cfg.num_epochs):
            loss, clip_fraction = objective.clipped_surrogate(self.params, self.cfg.clip_coef)
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params.values(), self.cfg.max_grad_norm)
            self.optimizer.step()
            losses.append(loss.item())
            clipped.append(clip_fraction)
        with torch.no_grad():
            after, _ = objective.clipped_surrogate(self.params, self.cfg.clip_coef)
            kl = objective.kl(self.params)
        return {
            "surrogate_before": losses[0],
            "surrogate_after": after.item(),
            "kl": kl.item(),
            "clip_fraction": sum(clipped) / len(clipped),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"meta_params": dict(self.params), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():  # in place: Adam keeps pointing at the same tensors
            for k, v in self.params.items():
                v.copy_(state["meta_params"][k])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the config in force sets the rate
            group["lr"] = self.cfg.lr
