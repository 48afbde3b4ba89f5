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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from metarobust.agents.factories import make_policy
from metarobust.agents.policy import Params
from metarobust.config import Config
from metarobust.errors import ConfigError
from metarobust.generators.antagonist import Antagonist
from metarobust.generators.base import DomainRandomization, Generator
from metarobust.generators.designer import regret
from metarobust.generators.factory import make_generator
from metarobust.maml.adapt import StepSize, adapt_to_episodes
from metarobust.maml.objective import ALPHA_PREFIX, MetaObjective, split_meta_params
from metarobust.maml.outer import MetaPPO, MetaTRPO
from metarobust.runs.algorithm import Algorithm, Iteration, Setup
from metarobust.runs.saved import SavedRun
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import env_dims, env_players
from metarobust.sampling.sampler import Sampler
from metarobust.sampling.worker import Policies
from metarobust.trajectories import Trajectories
from metarobust.utils.checkpoint import checkpoint_errors
from metarobust.utils.seeding import episode_seed

Stage = Literal["pre", "post"]  # the pre- or post-adaptation pass of a meta-update
# The episode-seed offsets a meta-update takes (offset + k for its k-th pass: pre, post), so
# that what samples more in one iteration (PAIRED's antagonist, robust MAML's adversaries;
# never both: PAIRED designs obstacle levels, robust MAML plays two-player envs) starts after.
SEED_OFFSETS_PER_META_UPDATE = 2
# What the sampler acts with when the meta-policy acts as a state in a stage: the policy
# alone, or facing what it meets there (robust MAML's adversaries).
ActsAgainst = Callable[[PolicyState, Stage], Acting]


def alone(state: PolicyState, stage: Stage) -> Acting:
    """The meta-policy acting by itself, in either stage."""
    return Acting.single(state)


def task_selection(cfg: Config, rng: np.random.Generator) -> Generator:
    """How the meta-batch's tasks are drawn (``maml.task_selection``): uniformly from the env's
    task distribution; by PLR (or ACCEL, which edits what it replays) scored by each task's
    post-adaptation shortfall (every batch trained on; the ued group's buffer_size,
    replay_prob, temperature, staleness_coef); by RoML's CVaR sampler of the worst
    ``ued.cvar_alpha`` of tasks; or by a learned level designer paid the shortfall (minimax)
    or the regret against an antagonist (PAIRED)."""
    name = {"uniform": "dr"}.get(cfg.maml.task_selection, cfg.maml.task_selection)
    return make_generator(
        cfg, name, rng, score="value_loss", robust=False, field="maml.task_selection"
    )


def initial_meta_params(cfg: Config, params: Params) -> Params:
    """The policy's parameters, plus Meta-SGD's per-parameter step sizes (starting at alpha)."""
    meta = dict(params)
    if cfg.maml.meta_sgd:
        meta |= {ALPHA_PREFIX + k: torch.full_like(v, cfg.maml.fast_lr) for k, v in params.items()}
    return meta


def saved_meta_policy(run: SavedRun) -> tuple[Params, StepSize]:
    """A saved MAML run's policy parameters and inner step size (Meta-SGD's, or fast_lr)."""
    if not run.cfg.train.meta_learns:
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

    def __init__(self, setup: Setup, *, act_dim: int | None = None) -> None:
        """``act_dim``: the meta-policy's action size on a two-player env (its protagonist's
        part; robust MAML); None: a one-player env's."""
        super().__init__(setup)
        cfg, m = self.cfg, self.cfg.maml
        if cfg.policy.normalize_obs:
            raise ConfigError("policy.normalize_obs: not supported with train.algorithm=maml")
        obs_dim, env_act_dim = env_dims(self.spec)
        if act_dim is None and env_players(self.spec) is not None:
            raise ConfigError(
                f"env.id: {self.cfg.env.id} is a two-player env; use train.algorithm=robust_maml"
            )
        self.task_rng = np.random.default_rng(cfg.seed)
        self.task_selection = task_selection(cfg, self.task_rng)
        self.antagonist: Antagonist | None = None  # PAIRED's reference for the regret
        if m.task_selection == "paired":
            self.antagonist = Antagonist(
                cfg, cfg.ued.learner, self.spec, self.device, self.generator
            )
        self.policy = make_policy(cfg, obs_dim, env_act_dim if act_dim is None else act_dim)
        meta = initial_meta_params(cfg, self.policy.init_params())
        meta = {k: v.to(self.device) for k, v in meta.items()}
        self.policy.to(self.device)
        self.outer = MetaPPO(meta, cfg.ppo) if m.outer == "ppo" else MetaTRPO(meta, cfg)

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
        self,
        sampler: Sampler,
        index: int,
        *,
        seed_offset: int = 0,
        against: ActsAgainst = alone,
        update: bool = True,
    ) -> MetaBatch:
        """One meta-batch and outer step, the meta-policy acting as ``against`` makes it in
        each stage; episode seeds from ``index`` and ``seed_offset`` (+0 pre-adaptation, +1
        post-adaptation). Without ``update`` only the pre-adaptation episodes and the
        adaptation (a frozen meta-policy)."""
        m, clock = self.cfg.maml, Stopwatch("sampling", "adaptation", "outer_step")
        self.phase("sampling pre-adaptation")
        with clock("sampling"):
            proposal = self.task_selection.propose(m.meta_batch_size)
            tasks = proposal.tasks
            # D_i: pre-adaptation episodes of every task with the meta-parameters
            acting = against(self.acting_policy(), "pre")
            train = self._episodes(sampler, acting, tasks, index, seed_offset)
        valid, inner, per_task = train, {}, None  # 0 inner steps: multi-task TRPO
        if m.num_inner_steps > 0:
            self.phase("adapting")
            with clock("adaptation"):  # theta'_i, values only: no graph through the inner loop
                inner = self._adapt(train)
                per_task = PolicyState.of(inner["adapted"], self.policy, stack="task")
        if not update:
            metrics = {"meta/pre_adapt_return": train.episode_returns.mean().item()}
            metrics |= train.success_metric("meta/pre_adapt_success")
            return MetaBatch(tasks, per_task, metrics, train.num_steps)
        if m.num_inner_steps > 0:
            self.phase("sampling post-adaptation")
            with clock("sampling"):  # D'_i: each task with its own adapted parameters
                acting = against(per_task, "post")
                valid = self._episodes(sampler, acting, tasks, index, seed_offset + 1)
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

        # each task's score for the task selection: what adaptation left undone, minus the
        # adapted policy's return or (PAIRED) the regret against the antagonist's best
        # (one finished-episode record per rollout, task-major, as the sampler returns them)
        returns = valid.episode_returns.view(len(tasks), -1).cpu()
        metrics, new_steps = {}, train.num_steps
        if self.antagonist is None:
            scores = -returns.mean(1).numpy()
        else:  # it plays the tasks next, with the episode seeds after this meta-update's
            seed = episode_seed(self.cfg.seed, index, seed_offset + SEED_OFFSETS_PER_META_UPDATE)
            best, metrics, steps = self.antagonist.plays(
                sampler, tasks, m.episodes_per_task, seed, self.phase
            )
            scores, new_steps = regret(best, returns.double().numpy()), new_steps + steps
        metrics |= {
            "meta/pre_adapt_return": train.episode_returns.mean().item(),
            **train.success_metric("meta/pre_adapt_success"),
            **{f"meta/{k}": v for k, v in info.items()},
            **self.task_selection.observe(proposal, scores),
            **{f"time/{k}": v for k, v in clock.totals.items()},
        }
        if m.num_inner_steps > 0:
            metrics["meta/post_adapt_return"] = valid.episode_returns.mean().item()
            metrics |= valid.success_metric("meta/post_adapt_success")
            new_steps += valid.num_steps
        return MetaBatch(tasks, per_task, metrics, new_steps)

    def _adapt(self, train: Trajectories) -> dict[str, Any]:
        """Every task's adapted parameters from its pre-adaptation episodes, for sampling,
        and their advantages (the outer step reuses both)."""
        m = self.cfg.maml
        params, alpha = split_meta_params(self.outer.params, m.fast_lr)
        adapted, adv_train = adapt_to_episodes(
            self.policy, params, train, gamma=m.gamma, step_size=alpha, num_steps=m.num_inner_steps
        )
        return {"adv_train": adv_train, "adapted": adapted}

    def _episodes(
        self, sampler: Sampler, acting: Acting, tasks: list, index: int, seed_offset: int
    ) -> Trajectories:
        """``maml.episodes_per_task`` episodes of every task with ``acting``."""
        seed = episode_seed(self.cfg.seed, index, seed_offset)
        episodes = sampler.sample_episodes(acting, tasks, self.cfg.maml.episodes_per_task, seed)
        return episodes.to(self.device)

    def state_dict(self) -> dict[str, Any]:
        state = {"outer": self.outer.state_dict(), "task_rng": self.task_rng.bit_generator.state}
        if not isinstance(self.task_selection, DomainRandomization):
            state["task_selection"] = self.task_selection.state_dict()
        if self.antagonist is not None:
            state["antagonist"] = self.antagonist.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.outer.load_state_dict(state["outer"])
        self.task_rng.bit_generator.state = state["task_rng"]
        if not isinstance(self.task_selection, DomainRandomization):
            self.task_selection.load_state_dict(state["task_selection"])
        if self.antagonist is not None:
            self.antagonist.load_state_dict(state["antagonist"])
