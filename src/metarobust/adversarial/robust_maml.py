"""Robust meta-learning: MAML on a two-player task env against adversaries trained on what
adaptation produces (MAML, Finn et al. 2017, with RARL's alternation, Pinto et al. 2017).

Each iteration:

    for N_mu meta-updates (adversaries frozen; acting in the phases adversarial.acts_in names):
        T_i ~ p(T);  D_i <- episodes of (pi_theta, nu) on T_i
        theta'_i = theta - alpha * grad L_i(theta; D_i)
        D'_i <- episodes of (pi_theta'_i, nu) on T_i;  theta <- outer step on D'    (as MAML)
    for each adversary nu_k, N_nu updates (theta'_i frozen; nu_k paid -r):
        E_i <- episodes of (pi_theta'_i, nu_k) on the last meta-batch's tasks
        nu_k <- PPO/TRPO step on E

Before iteration ``adversarial.joins_at`` the adversaries exert no force and do not train
(the meta-policy learns undisturbed first); each of their updates samples
``adversarial.episodes_per_task`` episodes per task (default MAML's).

The protagonist meets one population member per episode (uniform, RAP) or the one that
lowered the adapted policies' return most in the last adversary phase (worst). Every pass is
one batched sampler call: each task's adapted parameters and the adversary act together.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from metarobust.adversarial.disturbance import zero_mean
from metarobust.adversarial.game import ZeroSumGame
from metarobust.adversarial.rarl import make_adversaries
from metarobust.errors import ConfigError
from metarobust.maml.algorithm import (
    MAML,
    TRAIN_PHASE,
    VALID_PHASE,
    saved_meta_policy,
)
from metarobust.runs.algorithm import Iteration, Setup
from metarobust.runs.saved import SavedRun
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.backends import Sampler
from metarobust.sampling.env_factory import env_dims
from metarobust.sampling.worker import Policies
from metarobust.utils.checkpoint import checkpoint_errors
from metarobust.utils.seeding import episode_seed

PHASES_PER_META_UPDATE = 2  # the pre- and post-adaptation passes (TRAIN_PHASE, VALID_PHASE)
_PHASE_NAMES = {TRAIN_PHASE: "pre", VALID_PHASE: "post"}


class RobustMAML(MAML):
    """``train.algorithm: robust_maml``: a meta-policy and its adversaries, trained in turn."""

    shown = {**MAML.shown, "adversary": "adversary/return"}

    def __init__(self, setup: Setup) -> None:
        observes_task = setup.cfg.adversarial.observes_task
        self._game = ZeroSumGame.for_env(setup.spec, observes_task=observes_task)
        super().__init__(setup)
        adv = self.cfg.adversarial
        self.n_mu, self.n_nu = adv.protagonist_updates, adv.adversary_updates
        if adv.victim is not None:  # an attack: N_mu = 0, the victim's meta-policy frozen
            self._load_victim(Path(adv.victim))
        adversary_obs_dim = self._game.learner_obs_dim("adversary", env_dims(self.spec)[0])
        self.adversaries = make_adversaries(
            self.cfg, adversary_obs_dim, self._game, device=self.device, generator=self.generator
        )
        self.worst = 0  # the member that lowered the adapted policies' return most, last phase
        self.joined = adv.joins_at == 0  # whether the adversaries act and train this iteration

    def _load_victim(self, victim_dir: Path) -> None:
        victim = SavedRun.load(victim_dir)
        meta, _ = saved_meta_policy(victim)  # refuses a run that is not MAML-family
        if (victim.cfg.policy, victim.cfg.maml.meta_sgd) != (
            self.cfg.policy,
            self.cfg.maml.meta_sgd,
        ):
            raise ConfigError(
                f"adversarial.victim: {victim_dir} has another network (policy group) or "
                "Meta-SGD setting; attack it with its own settings (metarobust attack does)"
            )
        with checkpoint_errors(victim.path):
            saved = victim.state["outer"]["meta_params"]
            self.outer.load_state_dict({**self.outer.state_dict(), "meta_params": saved})

    def policy_dims(self) -> tuple[int, int]:
        return env_dims(self.spec)[0], self._game.protagonist_dim

    @property
    def game(self) -> ZeroSumGame:
        return self._game

    def policies(self) -> Policies:
        return {"protagonist": self.policy, "adversary": self.adversaries[0].policy}

    def opponent(self) -> PolicyState:
        """The frozen adversaries as the protagonist meets them."""
        if self.cfg.adversarial.population_mode == "worst":
            return self.adversaries[self.worst].state()
        return PolicyState.population([member.state() for member in self.adversaries])

    def acting(self, state: PolicyState, phase: int) -> Acting:
        opponent = self.opponent()
        phase_name = _PHASE_NAMES[phase % PHASES_PER_META_UPDATE]
        if not (self.joined and phase_name in self.cfg.adversarial.acts_in):
            opponent = zero_mean(opponent, None)  # no force in this phase
        return Acting({"protagonist": state, "adversary": opponent}, learner="protagonist")

    def iteration(self, sampler: Sampler, index: int) -> Iteration:
        adv, new_steps = self.cfg.adversarial, 0
        self.joined = index >= adv.joins_at
        # N_mu meta-updates against the frozen adversaries (reward r); none in an attack,
        # where the frozen meta-policy only adapts
        for j in range(max(self.n_mu, 1)):
            phase = PHASES_PER_META_UPDATE * j
            batch = self.meta_update(sampler, index, phase=phase, update=self.n_mu > 0)
            new_steps += batch.new_steps
        metrics = dict(batch.metrics)
        if not self.joined:
            return Iteration(metrics, new_steps=new_steps)
        adapted = batch.adapted or self.acting_policy()  # 0 inner steps: the meta-policy
        episodes = adv.episodes_per_task or self.cfg.maml.episodes_per_task
        # N_nu updates of each adversary against the frozen adapted protagonists (reward -r)
        member_returns: dict[int, float] = {}
        phase = PHASES_PER_META_UPDATE * max(self.n_mu, 1)
        tic = time.perf_counter()
        for k, member in enumerate(self.adversaries):
            who = f"adversary {k}" if len(self.adversaries) > 1 else "adversary"
            for j in range(self.n_nu):
                self.phase(f"sampling {who}", j, self.n_nu)
                acting = Acting(
                    {"protagonist": adapted, "adversary": member.collecting()}, "adversary"
                )
                seed = episode_seed(self.cfg.seed, index, phase)
                phase += 1
                traj = sampler.sample_episodes(acting, batch.tasks, episodes, seed)
                traj = traj.to(self.device)
                self.phase(f"updating {who}", j, self.n_nu)
                losses = member.update(traj)
                new_steps += traj.num_steps
            metrics |= {f"adversary/{name}": v for name, v in losses.items()}  # the last's
            member_returns[k] = traj.episode_returns.mean().item()
        self.worst = max(member_returns, key=member_returns.__getitem__)
        metrics["adversary/return"] = statistics.fmean(member_returns.values())
        metrics["time/adversary"] = time.perf_counter() - tic  # its sampling and updates
        return Iteration(metrics, new_steps=new_steps)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "adversaries": [member.state_dict() for member in self.adversaries],
            "worst": self.worst,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for member, saved in zip(self.adversaries, state["adversaries"], strict=True):
            member.load_state_dict(saved)
        self.worst = int(state["worst"])
