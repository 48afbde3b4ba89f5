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

import itertools
import time
from pathlib import Path
from typing import Any

from metarobust.adversarial.disturbance import zero_mean
from metarobust.adversarial.game import ZeroSumGame
from metarobust.adversarial.population import AdversaryPopulation
from metarobust.errors import ConfigError
from metarobust.maml.algorithm import (
    MAML,
    SEED_OFFSETS_PER_META_UPDATE,
    Stage,
    saved_meta_policy,
)
from metarobust.policy_gradient import Learner
from metarobust.runs.algorithm import Iteration, Setup
from metarobust.runs.saved import SavedRun
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import env_dims
from metarobust.sampling.sampler import Sampler
from metarobust.sampling.worker import Policies
from metarobust.trajectories import Trajectories
from metarobust.utils.checkpoint import checkpoint_errors
from metarobust.utils.seeding import episode_seed


class RobustMAML(MAML):
    """``train.algorithm: robust_maml``: MAML's meta-policy (on the env's protagonist actions)
    plus an adversary population, trained in turn."""

    shown = {**MAML.shown, "adversary": "adversary/return"}

    def __init__(self, setup: Setup) -> None:
        adv = setup.cfg.adversarial
        game = ZeroSumGame.for_env(setup.spec, observes_task=adv.observes_task)
        super().__init__(setup, act_dim=game.protagonist_dim)
        self._game = game
        self.n_mu = adv.protagonist_updates
        if adv.victim is not None:  # an attack: N_mu = 0, the victim's meta-policy frozen
            self._load_victim(Path(adv.victim))
        adversary_obs_dim = game.learner_obs_dim("adversary", env_dims(self.spec)[0])
        self.population = AdversaryPopulation(
            self.cfg, adversary_obs_dim, game, device=self.device, generator=self.generator
        )
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

    @property
    def game(self) -> ZeroSumGame:
        return self._game

    def policies(self) -> Policies:
        return {"protagonist": self.policy, "adversary": self.population.policy}

    def against_population(self, state: PolicyState, stage: Stage) -> Acting:
        """The meta-policy (or each task's adapted policy) as ``state`` facing the frozen
        population in ``stage``: no force before the adversaries join or in a stage
        ``adversarial.acts_in`` leaves out."""
        opponent = self.population.opponent()
        if not (self.joined and stage in self.cfg.adversarial.acts_in):
            opponent = zero_mean(opponent, None)
        return Acting({"protagonist": state, "adversary": opponent}, learner="protagonist")

    def iteration(self, sampler: Sampler, index: int) -> Iteration:
        adv, new_steps = self.cfg.adversarial, 0
        self.joined = index >= adv.joins_at
        # N_mu meta-updates against the frozen adversaries (reward r); none in an attack,
        # where the frozen meta-policy only adapts
        for j in range(max(self.n_mu, 1)):
            batch = self.meta_update(
                sampler,
                index,
                seed_offset=SEED_OFFSETS_PER_META_UPDATE * j,
                against=self.against_population,
                update=self.n_mu > 0,
            )
            new_steps += batch.new_steps
        metrics = dict(batch.metrics)
        if not self.joined:
            return Iteration(metrics, new_steps=new_steps)
        # N_nu updates of each adversary against the frozen adapted protagonists (reward -r),
        # on the last meta-batch's tasks, each pass with the next episode-seed offset
        adapted = batch.adapted or self.acting_policy()  # 0 inner steps: the meta-policy
        episodes = adv.episodes_per_task or self.cfg.maml.episodes_per_task
        offsets = itertools.count(SEED_OFFSETS_PER_META_UPDATE * max(self.n_mu, 1))

        def sample(member: Learner) -> Trajectories:
            acting = Acting({"protagonist": adapted, "adversary": member.collecting()}, "adversary")
            seed = episode_seed(self.cfg.seed, index, next(offsets))
            return sampler.sample_episodes(acting, batch.tasks, episodes, seed).to(self.device)

        tic = time.perf_counter()
        adversary_metrics, adversary_steps = self.population.train(sample, self.phase)
        metrics |= adversary_metrics
        metrics["time/adversary"] = time.perf_counter() - tic  # its sampling and updates
        return Iteration(metrics, new_steps=new_steps + adversary_steps)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.population.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population.load_state_dict(state)
