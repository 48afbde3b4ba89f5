"""MAML-PPO's outer step: Adam on the clipped post-adaptation surrogate (as in ProMP and
garage's MAML-PPO), each epoch differentiating through the inner loop again."""

from __future__ import annotations

from typing import Any

import torch

from metarobust.agents.policy import Params
from metarobust.config import PPOConfig
from metarobust.maml.objective import MetaObjective


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
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
