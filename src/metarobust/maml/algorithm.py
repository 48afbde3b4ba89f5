"""MAML for RL (Finn et al. 2017, Algorithm 3) on the shared sampler; the outer step is TRPO
(MAML-TRPO, the paper's) or PPO's clipped objective (MAML-PPO).

Each meta-iteration:

    sample tasks T_i ~ p(T)                                        (meta_batch_size of them)
    D_i  <- episodes of pi_theta on T_i                            (one sampler pass, all tasks)
    theta'_i = theta - alpha * grad L_i(theta; D_i)                (one vmap over tasks)
    D'_i <- episodes of pi_theta'_i on T_i                         (one pass, per-task params)
    theta <- TRPO (or PPO) step on sum_i L_i(theta'_i(theta); D'_i) through the inner loop

With zero inner steps the same loop is multi-task TRPO, the paper's "pretrained" baseline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metarobust.agents.factories import make_policy
from metarobust.agents.policy import Params
from metarobust.config import Config
from metarobust.envs import default_task_distribution
from metarobust.errors import ConfigError
from metarobust.generators.base import DomainRandomization, Generator
from metarobust.generators.cvar import CVaRSampler
from metarobust.generators.plr import PLR
from metarobust.maml.adapt import StepSize, adapt, reinforce_advantages
from metarobust.maml.objective import ALPHA_PREFIX, MetaObjective, split_meta_params
from metarobust.maml.outer import MetaPPO, MetaTRPO
from metarobust.runs.algorithm import Algorithm, Iteration, Setup
from metarobust.runs.saved import SavedRun
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.backends import Sampler
from metarobust.sampling.env_factory import env_dims, env_players
from metarobust.sampling.worker import Policies
from metarobust.trajectories import Trajectories
from metarobust.utils.checkpoint import checkpoint_errors
from metarobust.utils.seeding import episode_seed

TRAIN_PHASE, VALID_PHASE = 0, 1


def task_selection(cfg: Config, rng: np.random.Generator) -> Generator:
    """How the meta-batch's tasks are drawn (``maml.task_selection``): uniformly from the env's
    task distribution; by PLR scored by each task's post-adaptation shortfall (every batch
    trained on; the ued group's buffer_size, replay_prob, temperature, staleness_coef); or by
    RoML's CVaR sampler of the worst ``ued.cvar_alpha`` of tasks."""
    distribution = default_task_distribution(cfg.env.id, cfg.env.task_distribution)
    u = cfg.ued
    if cfg.maml.task_selection == "uniform":
        return DomainRandomization(distribution, rng)
    if cfg.maml.task_selection == "cvar":
        return CVaRSampler(distribution, rng, alpha=u.cvar_alpha)
    return PLR(
        distribution,
        rng,
        buffer_size=u.buffer_size,
        replay_prob=u.replay_prob,
        temperature=u.temperature,
        staleness_coef=u.staleness_coef,
        robust=False,
    )


def initial_meta_params(cfg: Config, params: Params) -> Params:
    """The policy's parameters, plus Meta-SGD's per-parameter step sizes (starting at alpha)."""
    meta = dict(params)
    if cfg.maml.meta_sgd:
        meta |= {ALPHA_PREFIX + k: torch.full_like(v, cfg.maml.fast_lr) for k, v in params.items()}
    return meta


def saved_meta_policy(run: SavedRun) -> tuple[Params, StepSize]:
    """A saved MAML run's policy parameters and inner step size (Meta-SGD's, or fast_lr)."""
    if run.algorithm not in ("maml", "robust_maml"):
        raise ConfigError(f"{run.path}: a {run.algorithm} run, not a MAML run")
    with checkpoint_errors(run.path):
        return split_meta_params(run.state["outer"]["meta_params"], run.cfg.maml.fast_lr)


@dataclass(frozen=True)
class MetaBatch:
    """What one meta-update sampled and reported."""

    tasks: list
    adapted: PolicyState | None  # each task's adapted policy (None with 0 inner steps)
    metrics: dict[str, float]
    new_steps: int


class Stopwatch:
    """Seconds spent per phase, summed over the phase's ``with`` blocks (0 if none ran)."""

    def __init__(self, *phases: str) -> None:
        self.totals: dict[str, float] = dict.fromkeys(phases, 0.0)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        tic = time.perf_counter()
        try:
            yield
        finally:
            self.totals[phase] = self.totals.get(phase, 0.0) + time.perf_counter() - tic


class MAML(Algorithm):
    """``train.algorithm: maml``: meta-parameters theta (and Meta-SGD's alpha), outer step."""

    unit = "iteration"
    shown = {"pre": "meta/pre_adapt_return", "post": "meta/post_adapt_return"}

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        cfg, m = self.cfg, self.cfg.maml
        if cfg.policy.normalize_obs:
            raise ConfigError("policy.normalize_obs: not supported with train.algorithm=maml")
        self.task_rng = np.random.default_rng(cfg.seed)
        self.task_selection = task_selection(cfg, self.task_rng)
        self.policy = make_policy(cfg, *self.policy_dims())
        meta = initial_meta_params(cfg, self.policy.init_params())
        meta = {k: v.to(self.device) for k, v in meta.items()}
        self.policy.to(self.device)
        self.outer = MetaPPO(meta, cfg.ppo) if m.outer == "ppo" else MetaTRPO(meta, cfg)

    def policy_dims(self) -> tuple[int, int]:
        """``(obs_dim, act_dim)`` of the meta-policy."""
        if env_players(self.spec) is not None:
            raise ConfigError(
                f"env.id: {self.cfg.env.id} is a two-player env; use train.algorithm=robust_maml"
            )
        return env_dims(self.spec)

    @property
    def num_iterations(self) -> int:
        return self.cfg.maml.num_iterations

    @property
    def budget(self) -> str:
        return "maml.num_iterations"

    @classmethod
    def headline(cls, cfg: Config) -> str:
        # without inner steps (multi-task training) there is no post-adaptation return
        return "meta/post_adapt_return" if cfg.maml.num_inner_steps else "meta/pre_adapt_return"

    @property
    def progress_total(self) -> int:
        return self.num_iterations

    def policies(self) -> Policies:
        return self.policy

    def acting_policy(self) -> PolicyState:
        """The meta-policy (Meta-SGD's step sizes are not policy parameters)."""
        params, _ = split_meta_params(self.outer.params, self.cfg.maml.fast_lr)
        return PolicyState.of(params, self.policy)

    def iteration(self, sampler: Sampler, index: int) -> Iteration:
        batch = self.meta_update(sampler, index)
        return Iteration(batch.metrics, new_steps=batch.new_steps)

    def meta_update(
        self, sampler: Sampler, index: int, phase: int = 0, *, update: bool = True
    ) -> MetaBatch:
        """One meta-batch and outer step (episode seeds from ``index`` and ``phase``); without
        ``update`` only the pre-adaptation episodes and the adaptation (a frozen meta-policy)."""
        m, clock = self.cfg.maml, Stopwatch("sampling", "adaptation", "outer_step")
        self.phase("sampling pre-adaptation")
        with clock("sampling"):
            proposal = self.task_selection.propose(m.meta_batch_size)
            tasks = proposal.tasks
            # D_i: pre-adaptation episodes of every task with the meta-parameters
            train = self._episodes(sampler, self.acting_policy(), tasks, index, phase + TRAIN_PHASE)
        valid, inner, per_task = train, {}, None  # 0 inner steps: multi-task TRPO
        if m.num_inner_steps > 0:
            self.phase("adapting")
            with clock("adaptation"):  # theta'_i, values only: no graph through the inner loop
                inner = self._adapt(train)
                per_task = PolicyState.of(inner["adapted"], self.policy, stack="task")
        if not update:
            metrics = {"meta/pre_adapt_return": train.episode_returns.mean().item()}
            return MetaBatch(tasks, per_task, metrics, train.num_steps)
        if m.num_inner_steps > 0:
            self.phase("sampling post-adaptation")
            with clock("sampling"):  # D'_i: each task with its own adapted parameters
                valid = self._episodes(sampler, per_task, tasks, index, phase + VALID_PHASE)
        self.phase("outer step")
        with clock("outer_step"):  # theta <- step on the post-adaptation surrogate
            objective = MetaObjective(
                self.policy,
                self.outer.params,
                train,
                valid,
                gamma=m.gamma,
                fast_lr=m.fast_lr,
                num_inner_steps=m.num_inner_steps,
                first_order=m.first_order,
                **inner,  # the inner loop's advantages and result, not computed again
            )
            info = self.outer.step(objective)

        # each task's score for the task selection: minus its adapted policy's return
        # (one finished-episode record per rollout, task-major, as the sampler returns them)
        shortfall = -valid.episode_returns.view(len(tasks), -1).mean(1).cpu()
        metrics = {
            "meta/pre_adapt_return": train.episode_returns.mean().item(),
            **{f"meta/{k}": v for k, v in info.items()},
            **self.task_selection.observe(proposal, shortfall.numpy()),
            **{f"time/{k}": v for k, v in clock.totals.items()},
        }
        new_steps = train.num_steps
        if m.num_inner_steps > 0:
            metrics["meta/post_adapt_return"] = valid.episode_returns.mean().item()
            new_steps += valid.num_steps
        return MetaBatch(tasks, per_task, metrics, new_steps)

    def _adapt(self, train: Trajectories) -> dict[str, Any]:
        """Every task's adapted parameters from its pre-adaptation episodes, for sampling
        (``torch.func.grad`` inside still differentiates under ``no_grad``)."""
        m = self.cfg.maml
        params, alpha = split_meta_params(self.outer.params, m.fast_lr)
        with torch.no_grad():
            adv_train = reinforce_advantages(train, m.gamma)
            adapted = adapt(
                self.policy,
                params,
                train,
                adv_train,
                step_size=alpha,
                num_steps=m.num_inner_steps,
                first_order=True,
            )
        return {"adv_train": adv_train, "adapted": adapted}

    def _episodes(
        self, sampler: Sampler, state: PolicyState, tasks: list, index: int, phase: int
    ) -> Trajectories:
        """``maml.episodes_per_task`` episodes of every task with the meta-policy's ``state``."""
        seed = episode_seed(self.cfg.seed, index, phase)
        acting = self.acting(state, phase)
        return sampler.sample_episodes(acting, tasks, self.cfg.maml.episodes_per_task, seed).to(
            self.device
        )

    def acting(self, state: PolicyState, phase: int) -> Acting:
        """What the sampler acts with when the meta-policy acts as ``state``."""
        return Acting.single(state)

    def state_dict(self) -> dict[str, Any]:
        state = {"outer": self.outer.state_dict(), "task_rng": self.task_rng.bit_generator.state}
        if not isinstance(self.task_selection, DomainRandomization):
            state["task_selection"] = self.task_selection.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.outer.load_state_dict(state["outer"])
        self.task_rng.bit_generator.state = state["task_rng"]
        if not isinstance(self.task_selection, DomainRandomization):
            self.task_selection.load_state_dict(state["task_selection"])
