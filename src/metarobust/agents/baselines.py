"""Value baselines: rllab's linear feature baseline (as used by MAML) and an MLP value function.

The linear baseline is functional: ``fit_linear_baseline`` returns per-task weights from one
batched solve and ``predict_linear_baseline`` evaluates them, with no data-dependent Python
control flow, so MAML can call both per task or under ``torch.func`` transforms.
``LinearFeatureBaseline`` is a thin stateful wrapper around the two.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metarobust.agents.policy import ObsNormalizer, linear_chain, mlp, run_chain

# rllab: ridge coefficient 1e-5, multiplied by 10 (up to 5 tries) until the solve is finite.
_REG_TRIES = 5


def episode_steps(dones: Tensor, mask: Tensor) -> Tensor:
    """Index of each step within its episode ``[..., time]``: counts from 0 at the start of
    the segment and again after every ``done``. Zero on padding.

    In a step-mode segment that starts mid-episode the count starts at 0 too: the true episode
    step is not recorded in ``Trajectories``.
    """
    time = dones.shape[-1]
    t = torch.arange(time, device=dones.device).expand_as(dones)
    # the step after a done starts a new episode: remember its index, carry the latest forward
    starts = torch.where(dones[..., :-1].bool(), t[..., 1:], 0)
    starts = torch.cat([torch.zeros_like(t[..., :1]), starts], dim=-1)
    return (t - starts.cummax(dim=-1).values) * mask.to(t.dtype)


def linear_features(obs: Tensor, mask: Tensor, dones: Tensor, step_offset: int = 0) -> Tensor:
    """rllab features ``[o, o^2, t/100, (t/100)^2, (t/100)^3, 1]`` with ``o = clip(obs, -10, 10)``
    and ``t`` the step within the episode (plus ``step_offset``, e.g. 1 for ``next_obs``).

    ``obs [..., time, obs_dim]`` -> ``[..., time, 2 * obs_dim + 4]``, zero rows on padding.
    """
    o = obs.clamp(-10.0, 10.0)
    al = ((episode_steps(dones, mask) + step_offset).to(obs.dtype) / 100.0).unsqueeze(-1)
    feats = torch.cat([o, o.square(), al, al.square(), al.pow(3), torch.ones_like(al)], dim=-1)
    return feats * mask.unsqueeze(-1).to(obs.dtype)


def fit_linear_baseline(
    obs: Tensor, returns: Tensor, mask: Tensor, dones: Tensor, reg_coeff: float = 1e-5
) -> Tensor:
    """Ridge regression of ``returns`` on ``linear_features``, separately per task.

    ``obs [task, ..., time, obs_dim]``, ``returns``/``mask``/``dones`` ``[task, ..., time]``
    -> weights ``[task, F]``. Each task keeps the first finite solution of the regularisation
    strengths ``reg_coeff * 10^k`` (k < 5), or zeros if none is. Solved in float64 (as
    rllab's NumPy does); returned in ``obs.dtype``.

    The systems are solved one at a time: torch 2.13's batched CPU solve of these
    near-singular systems fails from about 200 features (Ant's) with more than one thread
    (MKL: "Parameter 6 was incorrect on entry to DLASWP"); below that it gives the same bits.
    """
    feats = linear_features(obs, mask, dones).to(torch.float64)
    x = feats.reshape(feats.shape[0], -1, feats.shape[-1])  # [task, N, F]
    y = (returns * mask).to(torch.float64).reshape(feats.shape[0], -1, 1)  # [task, N, 1]
    gram = x.transpose(1, 2) @ x  # [task, F, F]
    rhs = x.transpose(1, 2) @ y  # [task, F, 1]
    regs = reg_coeff * 10.0 ** torch.arange(_REG_TRIES, dtype=torch.float64, device=obs.device)
    eye = torch.eye(gram.shape[-1], dtype=torch.float64, device=obs.device)
    weights = []
    for task_gram, task_rhs in zip(gram, rhs, strict=True):
        for reg in regs:
            w, info = torch.linalg.solve_ex(task_gram + reg * eye, task_rhs)
            if info.item() == 0 and torch.isfinite(w).all().item():
                break
        else:
            w = torch.zeros_like(task_rhs)
        weights.append(w.squeeze(-1))
    return torch.stack(weights).to(obs.dtype)


def predict_linear_baseline(
    weights: Tensor, obs: Tensor, mask: Tensor, dones: Tensor, step_offset: int = 0
) -> Tensor:
    """Baseline values ``[task, ..., time]`` of per-task ``weights [task, F]`` on
    ``obs [task, ..., time, obs_dim]``; zero on padding."""
    feats = linear_features(obs, mask, dones, step_offset)
    w = weights.reshape(weights.shape[0], *([1] * (feats.dim() - 2)), weights.shape[-1])
    return (feats * w).sum(-1)


class LinearFeatureBaseline:
    """Stateful wrapper: remembers the weights of the last ``fit``."""

    def __init__(self, reg_coeff: float = 1e-5) -> None:
        self.reg_coeff = reg_coeff
        self.weights: Tensor | None = None  # [task, F]

    def fit(self, obs: Tensor, returns: Tensor, mask: Tensor, dones: Tensor) -> Tensor:
        """Fit to ``returns`` (see ``fit_linear_baseline``), keep and return the weights."""
        self.weights = fit_linear_baseline(obs, returns, mask, dones, self.reg_coeff)
        return self.weights

    def predict(self, obs: Tensor, mask: Tensor, dones: Tensor, step_offset: int = 0) -> Tensor:
        """Values of the last fit; zeros (no baseline) before the first one."""
        if self.weights is None:
            return torch.zeros_like(mask, dtype=obs.dtype)
        return predict_linear_baseline(self.weights, obs, mask, dones, step_offset)

    def state_dict(self) -> dict[str, Tensor | None]:
        return {"weights": self.weights}

    def load_state_dict(self, state: dict[str, Tensor | None]) -> None:
        self.weights = state["weights"]


class ValueFunction(nn.Module):
    """MLP state-value function ``obs [..., obs_dim] -> V(obs) [...]``.

    It has its own ``ObsNormalizer`` (off until synced) rather than a reference to the
    policy's: ``sync_normalizer`` copies the policy's statistics before each update, so the
    value net sees exactly the inputs the policy saw, while its ``state_dict`` stays
    self-contained and no buffer is registered in two modules.
    """

    def __init__(
        self, obs_dim: int, hidden_sizes: tuple[int, ...] = (64, 64), activation: str = "tanh"
    ) -> None:
        super().__init__()
        self.obs_normalizer = ObsNormalizer(obs_dim, enabled=False)
        self.net = mlp(obs_dim, 1, tuple(hidden_sizes), activation, output_gain=1.0)
        self._chain = linear_chain(self.net, "")

    def forward(self, obs: Tensor) -> Tensor:
        return self.forward_normalized(self.obs_normalizer(obs))

    def forward_normalized(self, normalized: Tensor) -> Tensor:
        """``V`` of observations already through ``obs_normalizer``."""
        params = dict(self.net.named_parameters())
        return run_chain(self._chain, params, normalized).squeeze(-1)

    def sync_normalizer(self, source: ObsNormalizer) -> None:
        """Use ``source``'s normalisation (on/off, clip and running statistics) from now on."""
        self.obs_normalizer.load_from(source)
