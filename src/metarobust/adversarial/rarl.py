"""Robust Adversarial RL (Pinto et al. 2017, Algorithm 1) on the shared sampler.

On a two-player env (the adversary's action is a bounded force on the model, and it is paid
the negative of the protagonist's reward), each iteration:

    for N_mu updates:  rollouts of (pi_mu, pi_nu frozen); update pi_mu on r      (protagonist)
    for N_nu updates:  rollouts of (pi_mu frozen, pi_nu); update pi_nu on -r     (adversary)

Either player's update is PPO or TRPO. Both phases step the same sampler streams (episodes
run on across phases); a phase's trajectories hold only its learner's actions, log-probs and
rewards, so each update is the ordinary single-agent one.

With ``adversarial.population: K > 1`` there are K adversaries, each updated on its own
rollouts in the adversary phase; the protagonist meets one drawn per episode (RAP, Vinitsky
et al. 2020) or, with ``population_mode: worst``, the one that lowered its return most in the
last adversary phase.

With N_mu = 0 and ``adversarial.victim`` set, the same loop is an *attack*: a fresh adversary
trained against a saved policy that stays frozen and acts with its mean action.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from metarobust.adversarial.game import ZeroSumGame
from metarobust.adversarial.population import AdversaryPopulation, make_player
from metarobust.agents.factories import make_policy
from metarobust.config import Config
from metarobust.errors import ConfigError
from metarobust.policy_gradient import Learner
from metarobust.runs.algorithm import Algorithm, Iteration, Setup
from metarobust.runs.saved import SavedRun
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import env_dims
from metarobust.sampling.sampler import Sampler
from metarobust.sampling.worker import Policies
from metarobust.trajectories import Trajectories
from metarobust.utils.checkpoint import checkpoint_errors


def make_protagonist(
    cfg: Config,
    obs_dim: int,
    game: ZeroSumGame,
    *,
    device: torch.device,
    generator: torch.Generator,
) -> Learner:
    """The protagonist of ``cfg`` on ``device``: freshly initialised, or in an attack the
    victim run's saved policy, frozen."""
    policy = make_policy(cfg, obs_dim, game.protagonist_dim).to(device)
    protagonist = make_player(cfg, "protagonist", policy, device=device, generator=generator)
    if cfg.adversarial.victim is not None:
        load_victim(protagonist, Path(cfg.adversarial.victim), cfg)
    return protagonist


def load_victim(player: Learner, victim_dir: Path, cfg: Config) -> None:
    """Make ``player`` the frozen policy saved in ``victim_dir`` (same network as ``cfg``'s)."""
    victim = SavedRun.load(victim_dir)
    module, state = victim.policy()
    dims, want = (module.obs_dim, module.act_dim), (player.policy.obs_dim, player.policy.act_dim)
    if dims != want:
        raise ConfigError(
            f"adversarial.victim: {victim_dir} maps {dims[0]} observations to {dims[1]} "
            f"actions; this env's protagonist needs {want[0]} to {want[1]}"
        )
    network = ("hidden_sizes", "activation", "normalize_obs")
    if any(getattr(victim.cfg.policy, k) != getattr(cfg.policy, k) for k in network):
        raise ConfigError(
            f"adversarial.victim: {victim_dir} has another network (policy group); attack it "
            "with its own policy settings (metarobust attack does)"
        )
    with torch.no_grad():
        for name, value in state.params.items():
            player.update_rule.params[name].copy_(value)
    player.policy.load_state_dict(state.buffers, strict=False)
    player.frozen = True


def saved_adversary(run: SavedRun, member: int = 0) -> PolicyState:
    """Adversary ``member`` of a saved RARL, robust MAML or attack run, acting with its mean."""
    with checkpoint_errors(run.path):
        saved = run.state["adversaries"][member]
        return PolicyState(
            dict(saved["update"]["params"]), dict(saved["buffers"]), deterministic=True
        )


def collect(sampler: Sampler, learner: Learner, opponent: PolicyState, task: Any) -> Trajectories:
    """``learner.num_steps`` steps of every env with the learner and the ``opponent``, from
    the learner's view."""
    (other,) = set(ZeroSumGame.players) - {learner.name}
    acting = Acting({learner.name: learner.collecting(), other: opponent}, learner=learner.name)
    return sampler.sample_steps(acting, learner.num_steps, task)


class RARL(Algorithm):
    """``train.algorithm: rarl``: a protagonist and its adversaries, trained in turn."""

    shown = {"return": "charts/episodic_return", "adversary": "adversary/return"}

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        cfg = self.cfg
        self._game = ZeroSumGame.for_env(self.spec)
        obs_dim, device, generator = env_dims(self.spec)[0], self.device, self.generator
        self.protagonist = make_protagonist(
            cfg, obs_dim, self._game, device=device, generator=generator
        )
        self.population = AdversaryPopulation(
            cfg, obs_dim, self._game, device=device, generator=generator
        )
        self.n_mu, self.n_nu = (
            cfg.adversarial.protagonist_updates,
            cfg.adversarial.adversary_updates,
        )
        num_envs = cfg.sampler.workers * cfg.sampler.envs_per_worker
        self.protagonist_steps = self.n_mu * self.protagonist.num_steps * num_envs
        members = self.population.members
        self.adversary_steps = len(members) * self.n_nu * members[0].num_steps * num_envs
        # The step axis counts the trained protagonist's steps (an attack's: the adversary's).
        self.axis_steps = self.protagonist_steps or self.adversary_steps
        self._num_iterations = math.ceil(cfg.train.total_steps / self.axis_steps)

    @property
    def game(self) -> ZeroSumGame:
        return self._game

    @property
    def num_iterations(self) -> int:
        return self._num_iterations

    @property
    def progress_total(self) -> int:
        return self.num_iterations * self.axis_steps

    def policies(self) -> Policies:
        return {"protagonist": self.protagonist.policy, "adversary": self.population.policy}

    def acting_policy(self) -> PolicyState:
        return self.protagonist.state()

    def iteration(self, sampler: Sampler, index: int) -> Iteration:
        task, metrics = self.cfg.env.task, {}
        # N_mu protagonist updates against the frozen adversaries (reward r): one drawn per
        # episode (RAP; one adversary = RARL), or the worst of them
        opponent = self.population.opponent()
        for j in range(self.n_mu):
            self.phase("sampling protagonist", j, self.n_mu)
            traj = collect(sampler, self.protagonist, opponent, task).to(self.device)
            self.phase("updating protagonist", j, self.n_mu)
            metrics |= {f"losses/{k}": v for k, v in self.protagonist.update(traj).items()}
            metrics |= _returns(traj, "charts/episodic_return")
        # N_nu updates of each adversary against the frozen protagonist (reward -r)
        protagonist = self.protagonist.state()
        adversary_metrics, _ = self.population.train(
            lambda member: collect(sampler, member, protagonist, task).to(self.device), self.phase
        )
        metrics |= adversary_metrics
        sampled = self.protagonist_steps + self.adversary_steps
        return Iteration(metrics, new_steps=self.axis_steps, sampled_steps=sampled)

    def state_dict(self) -> dict[str, Any]:
        return {"protagonist": self.protagonist.state_dict(), **self.population.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.protagonist.load_state_dict(state["protagonist"])
        self.population.load_state_dict(state)


def _returns(traj: Trajectories, key: str) -> dict[str, float]:
    """Mean return of the episodes that ended in ``traj`` (none ended: nothing to log)."""
    if traj.episode_returns.numel() == 0:
        return {}
    return {key: traj.episode_returns.mean().item()}
