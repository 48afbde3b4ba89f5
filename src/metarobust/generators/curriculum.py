"""``train.algorithm: ued``: a PPO or TRPO agent on the levels (tasks) a generator proposes.

Each iteration:

    proposal <- generator.propose(ued.levels_per_iteration)
    D <- ued.episodes_per_level episodes of pi_theta on every proposed level  (one sampler pass)
    (PAIRED: D_A <- the same of the antagonist pi_A; pi_A <- PPO/TRPO update on D_A)
    score_l <- what the generator learns from, per level l (before any update):
        dr, plr, accel: positive value loss, the mean over l's steps of max(GAE advantage, 0)
        minimax, cvar: minus the protagonist's mean return on l
        paired: the regret, pi_A's best return on l minus the protagonist's mean return
    if proposal.train:  theta, phi <- PPO/TRPO update on D
    generator.observe(proposal, scores)

Every proposed level is played, trained on or not, so methods compare at equal episodes (the
antagonist's episodes come on top for PAIRED) after ``ued.num_iterations``; with
``ued.total_steps`` they compare at equal env steps instead (the antagonist's included), the
run ending with the first iteration that reaches them.
TensorBoard shows the curriculum: every ``ued.image_every`` iterations a picture of the first
``IMAGE_LEVELS`` proposed levels of the obstacle world with their scores, and each iteration a
histogram of the replay buffer's scores (PLR, ACCEL).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarobust.agents.baselines import ValueFunction
from metarobust.agents.factories import make_policy
from metarobust.agents.returns import trajectory_gae
from metarobust.envs.level_generation import RandomLevels
from metarobust.errors import ConfigError
from metarobust.generators.antagonist import Antagonist
from metarobust.generators.base import Proposal
from metarobust.generators.designer import regret
from metarobust.generators.factory import make_generator
from metarobust.generators.plr import PLR
from metarobust.policy_gradient import Learner, make_learner
from metarobust.runs.algorithm import Algorithm, Iteration, Setup
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import env_dims, env_players
from metarobust.sampling.sampler import Sampler
from metarobust.sampling.worker import Policies
from metarobust.trajectories import Trajectories
from metarobust.utils.seeding import episode_seed

IMAGE_LEVELS = 8


def _value_fn(learner: Learner) -> ValueFunction:
    """The learner's value function, its normaliser synced with the policy's."""
    value_fn = learner.update_rule.value_fn
    if value_fn is None:
        raise ConfigError("ued: level scores need a value function (trpo.baseline: mlp)")
    value_fn.sync_normalizer(learner.policy.obs_normalizer)
    return value_fn


def positive_value_loss(traj: Trajectories, learner: Learner, gamma: float, lam: float) -> Tensor:
    """Each level's (task's) mean over its real steps of ``max(GAE advantage, 0)``: ``[task]``."""
    value_fn = _value_fn(learner)
    with torch.no_grad():
        adv, _ = trajectory_gae(
            traj, value_fn(traj.obs), value_fn(traj.next_obs), gamma=gamma, lam=lam
        )
    positive = adv.clamp(min=0.0) * traj.mask
    return positive.sum(dim=(1, 2)) / traj.mask.sum(dim=(1, 2)).clamp(min=1.0)


def mean_value(traj: Trajectories, learner: Learner) -> Tensor:
    """Each level's (task's) mean over its real steps of the value estimate: ``[task]``."""
    value_fn = _value_fn(learner)
    with torch.no_grad():
        values = value_fn(traj.obs) * traj.mask
    return values.sum(dim=(1, 2)) / traj.mask.sum(dim=(1, 2)).clamp(min=1.0)


class UED(Algorithm):
    """``train.algorithm: ued``: one agent, its levels proposed by ``ued.generator``."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        cfg = self.cfg
        if env_players(self.spec) is not None:
            raise ConfigError(f"env.id: {cfg.env.id} is a two-player env; ued trains one agent")
        policy = make_policy(cfg, *env_dims(self.spec)).to(self.device)
        self.learner = make_learner(
            cfg, "policy", cfg.ued.learner, policy, device=self.device, generator=self.generator
        )
        rng = np.random.default_rng([cfg.seed, 1])  # the generator's own stream
        self.level_generator = make_generator(
            cfg, cfg.ued.generator, rng, score=cfg.ued.score, robust=True
        )
        self.antagonist: Antagonist | None = None  # PAIRED's
        if self.level_generator.score == "regret":
            self.antagonist = Antagonist(
                cfg, cfg.ued.learner, self.spec, self.device, self.generator
            )
        self.unit = "iteration" if cfg.ued.total_steps is None else "step"
        group = cfg.ppo if cfg.ued.learner == "ppo" else cfg.trpo
        self._gamma, self._lam = group.gamma, group.gae_lambda
        distribution = self.level_generator.distribution
        self._draws_levels = cfg.logging.tensorboard and isinstance(distribution, RandomLevels)

    @property
    def num_iterations(self) -> int:
        return self.cfg.ued.num_iterations

    @property
    def progress_total(self) -> int:
        return self.num_iterations if self.cfg.ued.total_steps is None else self.cfg.ued.total_steps

    def finished(self, iteration: int, env_steps: int) -> bool:
        return self.cfg.ued.budget_spent(iteration, env_steps)

    @property
    def budget(self) -> str:
        return "ued.num_iterations" if self.cfg.ued.total_steps is None else "ued.total_steps"

    def policies(self) -> Policies:
        return self.learner.policy

    def acting_policy(self) -> PolicyState:
        return self.learner.state()

    def iteration(self, sampler: Sampler, index: int) -> Iteration:
        u, learner = self.cfg.ued, self.learner
        self.phase("sampling")
        proposal = self.level_generator.propose(u.levels_per_iteration)
        seed = episode_seed(self.cfg.seed, index, 0)
        acting = Acting.single(learner.collecting())
        traj = sampler.sample_episodes(acting, proposal.tasks, u.episodes_per_level, seed)
        traj = traj.to(self.device)
        shape = (len(proposal.tasks), u.episodes_per_level)
        returns = traj.episode_returns.view(shape).double().cpu().numpy()
        new_steps, metrics = traj.num_steps, {}
        antagonist_returns = None
        if self.antagonist is not None:  # PAIRED: the antagonist plays the same levels first
            antagonist_returns, antagonist_metrics, antagonist_steps = self.antagonist.plays(
                sampler,
                proposal.tasks,
                u.episodes_per_level,
                episode_seed(self.cfg.seed, index, 1),
                self.phase,
            )
            metrics |= antagonist_metrics
            new_steps += antagonist_steps
        scores, observed = self._scores(proposal, traj, returns, antagonist_returns)
        metrics |= {
            "charts/episodic_return": traj.episode_returns.mean().item(),
            "charts/episodic_length": traj.episode_lengths.float().mean().item(),
            "generator/mean_score": float(scores.mean()),
            "generator/trained": float(proposal.train),
        }
        if proposal.train:
            self.phase("updating")
            metrics |= {f"losses/{k}": float(v) for k, v in learner.update(traj).items()}
        metrics |= self.level_generator.observe(proposal, scores, **observed)
        images, histograms = {}, {}
        if isinstance(self.level_generator, PLR) and self.level_generator.scores:
            histograms["generator/buffer_scores"] = np.asarray(self.level_generator.scores)
        if self._draws_levels and index % u.image_every == 0:
            from metarobust.plotting import levels_image

            shown = proposal.tasks[:IMAGE_LEVELS]
            images["generator/levels"] = levels_image(shown, scores[:IMAGE_LEVELS].tolist())
        return Iteration(metrics, new_steps, images=images, histograms=histograms)

    def _scores(
        self,
        proposal: Proposal,
        traj: Trajectories,
        returns: np.ndarray,
        antagonist_returns: np.ndarray | None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Each proposed level's score by the generator's kind (``returns``: the agent's,
        ``[level, episode]``), and what the generator keeps beside it."""
        kind, learner = self.level_generator.score, self.learner
        if kind == "value_loss":
            return positive_value_loss(traj, learner, self._gamma, self._lam).cpu().numpy(), {}
        if kind == "max_regret":  # MaxMC: the best return seen on a level minus the mean value
            assert isinstance(self.level_generator, PLR)
            best = self.level_generator.combined(proposal, "best_returns", returns.mean(axis=1))
            return best - mean_value(traj, learner).double().cpu().numpy(), {"best_returns": best}
        if kind == "negative_return":  # minimax
            return -returns.mean(axis=1), {}
        assert antagonist_returns is not None  # PAIRED's regret
        return regret(antagonist_returns, returns), {}

    def state_dict(self) -> dict[str, Any]:
        state = {
            "learner": self.learner.state_dict(),
            "generator": self.level_generator.state_dict(),
        }
        if self.antagonist is not None:
            state["antagonist"] = self.antagonist.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.level_generator.load_state_dict(state["generator"])
        if self.antagonist is not None:
            self.antagonist.load_state_dict(state["antagonist"])
