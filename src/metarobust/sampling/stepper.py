"""The step kernel under both sampling modes: a vector env, its per-env state, one step.

``EnvStepper.transition`` is the only place where policies act and envs step: the game turns
the policies' outputs into the env's action, the stepped envs' results land in per-env rows,
and the learner's record of the step comes back. Episode and step runners (``worker.py``)
decide which envs step and what is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.vector import SyncVectorEnv

from metarobust.envs.task_defaults import default_task_distribution
from metarobust.errors import EnvError
from metarobust.sampling.acting import Acting
from metarobust.sampling.batched_policy import BatchedPolicy
from metarobust.sampling.env_factory import EnvSpec, make_vector_env
from metarobust.sampling.game import Game, StepInput


@dataclass(frozen=True)
class Transition:
    """What one step of the rows ``envs`` recorded, from the learner's view."""

    obs: np.ndarray  # [n, learner obs_dim] what the learner saw
    actions: np.ndarray  # [n, learner act_dim]
    log_probs: np.ndarray  # [n]
    next_obs: np.ndarray  # [n, learner obs_dim] the true next observation, as the learner sees it
    env_rewards: np.ndarray  # [n] float64, the env's own (the protagonist's) rewards
    terminated: np.ndarray  # [n] bool
    truncated: np.ndarray  # [n] bool
    success: np.ndarray  # [n] bool: the env reported ``info["success"] > 0`` for this step


class EnvStepper:
    """``num_envs`` envs of ``spec`` stepped together by ``game`` with ``policies``."""

    def __init__(
        self, spec: EnvSpec, num_envs: int, policies: Mapping[str, Any], game: Game
    ) -> None:
        self.spec, self.num_envs, self.game = spec, num_envs, game
        self.env = make_vector_env(spec, num_envs)
        self._sync = isinstance(self.env, SyncVectorEnv)
        self.obs_dim = self.env.single_observation_space.shape[0]
        self.act_dim = self.env.single_action_space.shape[0]  # joint, for two players
        self._low = self.env.single_action_space.low.astype(np.float32)
        self._high = self.env.single_action_space.high.astype(np.float32)
        try:
            game.check_env(spec.id, self.env.metadata, self.act_dim)
        except BaseException:
            self.env.close()
            raise
        self.policies = {name: BatchedPolicy(policies[name]) for name in game.players}
        self.learner = game.players[0]
        n = num_envs
        # What the last step returned, per env (rows of envs that were not stepped are stale).
        self.next_obs = np.zeros((n, self.obs_dim), np.float32)
        self.rewards = np.zeros(n, np.float64)
        self.terminated = np.zeros(n, np.bool_)
        self.truncated = np.zeros(n, np.bool_)
        self.success = np.zeros(n, np.bool_)
        self.reports_success = False  # the env has put "success" in a step's info
        self.obs = np.zeros((n, self.obs_dim), np.float32)  # each env's current observation
        self.ended = np.zeros(n, np.bool_)  # finished and not reset since
        self.episode_seed = np.zeros(n, np.int64)  # each env's episode: its reset seed
        # The features of each env's task, for a game whose players see them (set on reset).
        self.task_features: np.ndarray | None = None
        if game.task_features:
            distribution = default_task_distribution(spec.id, spec.task_distribution)
            if distribution.feature_dim != game.task_features:
                self.env.close()
                raise ValueError(
                    f"{spec.id}: its tasks have {distribution.feature_dim} features, the game "
                    f"observes {game.task_features}"
                )
            self._features = distribution.features
            self.task_features = np.zeros((n, game.task_features), np.float32)

    @property
    def learner_dim(self) -> int:
        return self.game.learner_dim(self.learner, self.act_dim)

    @property
    def learner_obs_dim(self) -> int:
        """The width of the learner's recorded observations."""
        return self.game.learner_obs_dim(self.learner, self.obs_dim)

    @property
    def reward_sign(self) -> float:
        return self.game.reward_sign(self.learner)

    @property
    def is_sync(self) -> bool:
        """Sub-envs stepped one by one (any Gymnasium env) rather than a native vector env."""
        return self._sync

    def load(self, acting: Acting) -> None:
        """Act with ``acting`` from the next step on."""
        if sorted(acting.players) != sorted(self.game.players):
            raise ValueError(
                f"this sampler's players are {list(self.game.players)}, got states for "
                f"{sorted(acting.players)}"
            )
        for name, policy in self.policies.items():
            policy.load(acting.players[name])
        self.learner = acting.learner

    def transition(
        self, envs: np.ndarray, noise: np.ndarray, tasks: np.ndarray | None = None
    ) -> Transition:
        """Act and step the rows ``envs`` (``noise [n, act_dim]``; ``tasks [n]`` in episode
        mode); their results also land in the per-env rows, their ``obs`` moves on."""
        features = None if self.task_features is None else self.task_features[envs]
        step = StepInput(self.obs[envs], noise, tasks, self.episode_seed[envs], features)
        moves = self.game.act(self.policies, self.learner, step)
        self._step(envs, np.clip(moves.joint, self._low, self._high))
        next_obs = self.next_obs[envs]
        out = Transition(
            moves.obs,
            moves.actions,
            moves.log_probs,
            self.game.learner_obs(self.learner, next_obs, features),
            self.rewards[envs],
            self.terminated[envs],
            self.truncated[envs],
            self.success[envs],
        )
        if not (np.isfinite(next_obs).all() and np.isfinite(out.env_rewards).all()):
            what = "observation" if not np.isfinite(next_obs).all() else "reward"
            raise EnvError(
                f"{self.spec.id} returned a non-finite {what} (the env, not the learner, "
                "produced it; check its settings, e.g. env.kwargs)"
            )
        self.obs[envs] = next_obs
        return out

    def reset(
        self, mask: np.ndarray, seeds: list[int | None], task: Mapping[str, Any] | None
    ) -> None:
        """Reset the envs in ``mask`` (their rows of ``seeds``), optionally into ``task``."""
        options: dict[str, Any] = {"reset_mask": mask}  # a fresh dict: reset pops the mask
        if task is not None:
            options["task"] = task
        obs, _ = self.env.reset(seed=seeds, options=options)
        self.obs[mask] = obs[mask]
        self.ended[mask] = False
        if self.task_features is not None:
            self.task_features[mask] = self._features(task)
        for i in np.flatnonzero(mask):
            if seeds[i] is not None:
                self.episode_seed[i] = seeds[i]

    def _step(self, envs: np.ndarray, actions: np.ndarray) -> None:
        """Step ``envs`` with ``actions [len(envs), act_dim]``; results land in their rows."""
        if self._sync:
            # The sub-envs directly: SyncVectorEnv.step would step all envs (and with autoreset
            # DISABLED refuse finished ones); this steps only the active ones, copy-free.
            subenvs = self.env.envs
            for i, action in zip(envs.tolist(), actions, strict=True):
                obs, reward, term, trunc, info = subenvs[i].step(action)
                self.next_obs[i], self.rewards[i] = obs, reward
                self.terminated[i], self.truncated[i] = term, trunc
                if "success" in info:
                    self.success[i], self.reports_success = info["success"] > 0, True
            return
        # A native vector env steps everyone: idle envs get a fresh episode and zero actions.
        idle_ended = self.ended.copy()
        idle_ended[envs] = False
        if idle_ended.any():
            self.reset(idle_ended, [None] * self.num_envs, None)
        full = np.zeros((self.num_envs, self.act_dim), np.float32)
        full[envs] = actions
        obs, rewards, terminated, truncated, infos = self.env.step(full)
        self.next_obs[:], self.rewards[:] = obs, rewards
        self.terminated[:], self.truncated[:] = terminated, truncated
        if "success" in infos:
            self.success[:], self.reports_success = np.asarray(infos["success"]) > 0, True
        self.ended |= terminated | truncated

    def close(self) -> None:
        self.env.close()
