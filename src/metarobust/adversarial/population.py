"""The adversary population RARL and robust MAML share: its members, the opponent the
protagonist meets, the adversary phase and its saved state.

With ``adversarial.population: K`` there are K adversaries (one is RARL's single adversary).
They share one module, so one observation normaliser fed by all of them, each with its own
parameters and update. The protagonist meets one member drawn per episode (uniform, RAP,
Vinitsky et al. 2020) or, with ``population_mode: worst``, the member that lowered its return
most in the last adversary phase. In the adversary phase each member takes N_nu updates
(``adversarial.adversary_updates``) on episodes against the frozen protagonist, paid -r; the
algorithm says how those episodes are sampled (RARL: steps of the running envs; robust MAML:
whole episodes of the meta-batch's tasks against each task's adapted policy).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch

from metarobust.adversarial.game import ZeroSumGame
from metarobust.agents.factories import make_policy
from metarobust.agents.policy import GaussianPolicy
from metarobust.config import Config
from metarobust.policy_gradient import Learner, make_learner
from metarobust.sampling.acting import PolicyState
from metarobust.trajectories import Trajectories


def make_player(
    cfg: Config,
    name: str,
    policy: GaussianPolicy,
    *,
    device: torch.device,
    generator: torch.Generator,
) -> Learner:
    """A player with ``policy`` and the update ``cfg`` gives it (``adversarial.<name>``)."""
    algorithm = getattr(cfg.adversarial, name)
    return make_learner(cfg, name, algorithm, policy, device=device, generator=generator)


class AdversaryPopulation:
    """``adversarial.population`` adversaries on ``device``, freshly initialised."""

    def __init__(
        self,
        cfg: Config,
        obs_dim: int,
        game: ZeroSumGame,
        *,
        device: torch.device,
        generator: torch.Generator,
    ) -> None:
        shared = make_policy(cfg, obs_dim, game.adversary_dim).to(device)
        self.members: list[Learner] = []
        for k in range(cfg.adversarial.population):
            member = make_player(cfg, "adversary", shared, device=device, generator=generator)
            if k > 0:  # every member from its own random initialisation
                fresh = make_policy(cfg, obs_dim, game.adversary_dim).init_params()
                with torch.no_grad():
                    for name, p in member.update_rule.params.items():
                        p.copy_(fresh[name])
            self.members.append(member)
        self.mode = cfg.adversarial.population_mode
        self.n_nu = cfg.adversarial.adversary_updates
        self.worst = 0  # the member with the highest adversary return in the last phase

    @property
    def policy(self) -> GaussianPolicy:
        """The module every member acts with (their parameters differ)."""
        return self.members[0].policy

    def opponent(self) -> PolicyState:
        """The frozen members as the protagonist meets them: one drawn per episode, or the
        worst."""
        if self.mode == "worst":
            return self.members[self.worst].state()
        return PolicyState.population([member.state() for member in self.members])

    def train(
        self,
        sample: Callable[[Learner], Trajectories],
        phase: Callable[[str, int, int], None],
    ) -> tuple[dict[str, float], int]:
        """N_nu updates of each member, each on the episodes ``sample(member)`` collects
        against the frozen protagonist (``phase`` reports the progress); returns the metrics
        and the env steps sampled."""
        metrics: dict[str, float] = {}
        member_returns: dict[int, float] = {}  # of the members' last updates
        steps = 0
        for k, member in enumerate(self.members):
            who = f"adversary {k}" if len(self.members) > 1 else "adversary"
            for j in range(self.n_nu):
                phase(f"sampling {who}", j, self.n_nu)
                traj = sample(member)
                steps += traj.num_steps
                phase(f"updating {who}", j, self.n_nu)
                losses = member.update(traj)
            metrics |= {f"adversary/{name}": v for name, v in losses.items()}  # the last's
            if traj.episode_returns.numel() > 0:
                member_returns[k] = traj.episode_returns.mean().item()
        if member_returns:
            self.worst = max(member_returns, key=member_returns.__getitem__)
            metrics["adversary/return"] = statistics.fmean(member_returns.values())
        return metrics, steps

    def state_dict(self) -> dict[str, Any]:
        return {
            "adversaries": [member.state_dict() for member in self.members],
            "worst": self.worst,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for member, saved in zip(self.members, state["adversaries"], strict=True):
            member.load_state_dict(saved)
        self.worst = int(state["worst"])
