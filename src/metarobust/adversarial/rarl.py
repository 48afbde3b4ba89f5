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
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metarobust.agents.policy import GaussianPolicy
from metarobust.agents.ppo import PPO
from metarobust.agents.trpo import TRPO
from metarobust.config import Config
from metarobust.errors import ConfigError
from metarobust.sampling.backends import Sampler, make_sampler
from metarobust.sampling.env_factory import EnvSpec, env_dims, env_players
from metarobust.sampling.trajectories import Trajectories
from metarobust.sampling.worker import PLAYERS
from metarobust.train import make_policy, make_update, policy_state, resolve_device
from metarobust.utils.checkpoint import detached_copy, load_checkpoint
from metarobust.utils.run_dir import new_run_dir, write_run_info
from metarobust.utils.seeding import rng_state, seed_everything, set_rng_state
from metarobust.utils.training_run import TrainingRun


@dataclass
class Player:
    """One side of the game: its policy, its update, and its batch (steps per env)."""

    name: str  # "protagonist" or "adversary"
    policy: GaussianPolicy
    update_rule: PPO | TRPO
    num_steps: int
    frozen: bool = False  # an attack's victim: never updated, acts with its mean action

    def sampler_state(self) -> dict[str, Any]:
        return {
            **policy_state(self.update_rule.params, self.policy),
            "deterministic": self.frozen,
        }

    def update(self, traj: Trajectories) -> dict[str, float]:
        """One PPO/TRPO update on the learner's view of ``traj``; then the normaliser."""
        losses = self.update_rule.update(traj)
        self.policy.obs_normalizer.update(traj.obs[traj.mask.bool()])
        return losses

    def state_dict(self) -> dict[str, Any]:
        return detached_copy(
            {"update": self.update_rule.state_dict(), "policy": self.sampler_state()}
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.update_rule.load_state_dict(state["update"])
        self.policy.load_state_dict(state["policy"]["buffers"], strict=False)


def two_player_dims(spec: EnvSpec) -> tuple[int, int, int]:
    """``(obs_dim, protagonist_dim, adversary_dim)``; ConfigError for a one-player env."""
    players = env_players(spec)
    if players is None:
        raise ConfigError(
            f"env.id: {spec.id} is not a two-player env; RARL needs one such as "
            "metarobust/HopperAdv-v0"
        )
    return env_dims(spec)[0], *players


def make_players(
    cfg: Config, spec: EnvSpec, device: torch.device, generator: torch.Generator
) -> tuple[Player, list[Player]]:
    """The protagonist and the ``adversarial.population`` adversaries of ``cfg`` on
    ``device``: freshly initialised, except an attack's protagonist, which is the victim run's
    saved policy. The adversaries share one module, so one observation normaliser (fed by all
    of them), each with its own parameters and update."""
    obs_dim, protagonist_dim, adversary_dim = two_player_dims(spec)
    policy = make_policy(cfg, obs_dim, protagonist_dim).to(device)
    protagonist = make_player(cfg, "protagonist", policy, device, generator)
    shared = make_policy(cfg, obs_dim, adversary_dim).to(device)
    adversaries = []
    for k in range(cfg.adversarial.population):
        member = make_player(cfg, "adversary", shared, device, generator)
        if k > 0:  # every member from its own random initialisation
            fresh = make_policy(cfg, obs_dim, adversary_dim).init_params()
            with torch.no_grad():
                for name, p in member.update_rule.params.items():
                    p.copy_(fresh[name])
        adversaries.append(member)
    if cfg.adversarial.victim is not None:
        load_victim(protagonist, Path(cfg.adversarial.victim), cfg)
    return protagonist, adversaries


def make_player(
    cfg: Config,
    name: str,
    policy: GaussianPolicy,
    device: torch.device,
    generator: torch.Generator,
) -> Player:
    """A player with ``policy`` and the update ``cfg`` gives it (``adversarial.<name>``)."""
    algorithm = getattr(cfg.adversarial, name)
    hp = cfg.ppo if algorithm == "ppo" else cfg.trpo
    rule = make_update(cfg, algorithm, policy, device, generator)
    return Player(name, policy, rule, hp.num_steps)


def population_state(members: list[Player]) -> dict[str, Any]:
    """The adversaries as the sampler takes an opponent: one policy, or with several one
    per-member state (``[member, ...]`` params; the worker draws a member per episode)."""
    states = [m.sampler_state() for m in members]
    if len(states) == 1:
        return states[0]
    params = {k: torch.stack([s["params"][k] for s in states]) for k in states[0]["params"]}
    return {**states[0], "params": params, "per_task": True}


def load_victim(player: Player, victim_dir: Path, cfg: Config) -> None:
    """Make ``player`` the frozen policy saved in ``victim_dir`` (same network as ``cfg``'s)."""
    from metarobust.evaluate import saved_policy  # evaluate imports this module for RARL runs

    victim_cfg, module, state = saved_policy(victim_dir)
    dims, want = (module.obs_dim, module.act_dim), (player.policy.obs_dim, player.policy.act_dim)
    if dims != want:
        raise ConfigError(
            f"adversarial.victim: {victim_dir} maps {dims[0]} observations to {dims[1]} "
            f"actions; this env's protagonist needs {want[0]} to {want[1]}"
        )
    network = ("hidden_sizes", "activation", "normalize_obs")
    if any(getattr(victim_cfg.policy, k) != getattr(cfg.policy, k) for k in network):
        raise ConfigError(
            f"adversarial.victim: {victim_dir} has another network (policy group); attack it "
            "with its own policy settings (metarobust attack does)"
        )
    with torch.no_grad():
        for name, value in state["params"].items():
            player.update_rule.params[name].copy_(value)
    player.policy.load_state_dict(state["buffers"], strict=False)
    player.frozen = True


def collect(sampler: Sampler, learner: Player, opponent: dict[str, Any], task: Any) -> Trajectories:
    """``learner.num_steps`` steps of every env with the learner and the ``opponent`` (its
    sampler state), from the learner's view."""
    (other,) = set(PLAYERS) - {learner.name}
    state = {
        "learner": learner.name,
        "players": {learner.name: learner.sampler_state(), other: opponent},
    }
    return sampler.sample_steps(state, learner.num_steps, task)


def train_rarl(cfg: Config, run_dir: Path | None = None) -> Path:
    """Train (or resume the run in ``run_dir``) a protagonist against an adversary."""
    resumed = run_dir is not None
    device = resolve_device(cfg.device)
    spec = EnvSpec(cfg.env.id, dict(cfg.env.kwargs), cfg.env.max_episode_steps)
    generator = seed_everything(cfg.seed)
    protagonist, adversaries = make_players(cfg, spec, device, generator)
    if run_dir is None:
        run_dir = new_run_dir(cfg, f"{cfg.env.id.replace('/', '-')}_rarl")
        write_run_info(run_dir, cfg)
    n_mu, n_nu = cfg.adversarial.protagonist_updates, cfg.adversarial.adversary_updates
    num_envs = cfg.sampler.workers * cfg.sampler.envs_per_worker
    protagonist_steps = n_mu * protagonist.num_steps * num_envs  # per iteration
    adversary_steps = len(adversaries) * n_nu * adversaries[0].num_steps * num_envs
    # The step axis counts the trained protagonist's steps (an attack's: the adversary's).
    axis_steps = protagonist_steps or adversary_steps
    num_iterations = math.ceil(cfg.train.total_steps / axis_steps)
    worst = 0  # the member with the highest adversary return in the last adversary phase

    modules = {"protagonist": protagonist.policy.cpu(), "adversary": adversaries[0].policy.cpu()}
    with make_sampler(cfg.sampler, spec, modules, cfg.seed) as sampler:
        for module in modules.values():
            module.to(device)
        iteration, env_steps = 0, 0
        if resumed:
            ckpt = load_checkpoint(run_dir)
            iteration, env_steps, worst = ckpt["iteration"], ckpt["env_steps"], ckpt["worst"]
            protagonist.load_state_dict(ckpt["protagonist"])
            for member, state in zip(adversaries, ckpt["adversaries"], strict=True):
                member.load_state_dict(state)
            sampler.load_state(ckpt["sampler"])
            set_rng_state(ckpt["rng"], generator)

        def snapshot() -> dict[str, Any]:
            return {
                "iteration": iteration,
                "env_steps": env_steps,
                "config": cfg.model_dump(mode="json"),
                "protagonist": protagonist.state_dict(),
                "adversaries": [member.state_dict() for member in adversaries],
                "worst": worst,
                "sampler": sampler.state(),
                "rng": rng_state(generator),
            }

        total = num_iterations * axis_steps
        with TrainingRun(cfg, run_dir, total, env_steps, env_steps, resumed) as run:
            while iteration < num_iterations:
                metrics: dict[str, float] = {}
                # N_mu protagonist updates against the frozen adversaries (reward r): one drawn
                # per episode (RAP; one adversary = RARL), or the worst of them
                opponent = population_state(adversaries)
                if cfg.adversarial.population_mode == "worst":
                    opponent = adversaries[worst].sampler_state()
                for _ in range(n_mu):
                    traj = collect(sampler, protagonist, opponent, cfg.env.task).to(device)
                    losses = protagonist.update(traj)
                    metrics |= {f"losses/{k}": v for k, v in losses.items()}
                    metrics |= _returns(traj, "charts/episodic_return")
                # N_nu updates of each adversary against the frozen protagonist (reward -r)
                member_returns: dict[int, float] = {}  # of the members' last updates
                for k, member in enumerate(adversaries):
                    for _ in range(n_nu):
                        traj = collect(
                            sampler, member, protagonist.sampler_state(), cfg.env.task
                        ).to(device)
                        losses = member.update(traj)
                    metrics |= {f"adversary/{k}": v for k, v in losses.items()}  # the last's
                    if traj.episode_returns.numel() > 0:
                        member_returns[k] = traj.episode_returns.mean().item()
                if member_returns:
                    worst = max(member_returns, key=member_returns.__getitem__)
                    metrics["adversary/return"] = statistics.fmean(member_returns.values())
                iteration += 1
                env_steps += axis_steps
                run.end_iteration(
                    iteration,
                    env_steps,
                    axis_steps,
                    metrics,
                    snapshot,
                    final=iteration == num_iterations,
                    sampled_steps=protagonist_steps + adversary_steps,
                )
    return run_dir


def _returns(traj: Trajectories, key: str) -> dict[str, float]:
    """Mean return of the episodes that ended in ``traj`` (none ended: nothing to log)."""
    if traj.episode_returns.numel() == 0:
        return {}
    return {key: traj.episode_returns.mean().item()}
