"""The two-player game of the adversarial envs, as the sampler plays it.

The env's action is ``[protagonist action, adversary action]`` (its ``metadata["players"]``
gives the two widths). Each step the adversary acts first, on the true observation; under an
observation attack (``metadata["observation_attack"] = epsilon``) the protagonist then sees
``obs + epsilon * clip(adversary action, -1, 1)``, otherwise the same observation. The game is
zero-sum: an adversary learner is paid minus the env's reward. An opponent given as a
population (``PolicyState.population``) acts with one member per episode, member
``episode seed % members``, so a draw depends on the episode alone, never on how work is split.
An adversary that observes the task (``task_features > 0``) sees ``[obs, features of its
episode's task]`` (from the env's default task distribution's ``features``); the protagonist
sees the observation alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from metarobust.envs.task_defaults import default_task_distribution
from metarobust.errors import ConfigError
from metarobust.sampling.batched_policy import BatchedPolicy
from metarobust.sampling.env_factory import EnvSpec, make_env
from metarobust.sampling.game import Game, Moves, StepInput, task_rows

PLAYERS = ("protagonist", "adversary")  # in the env's action order


class ZeroSumGame(Game):
    """Protagonist and adversary on one env, the adversary paid minus the reward."""

    players = PLAYERS

    def __init__(
        self,
        protagonist_dim: int,
        adversary_dim: int,
        observation_attack: float | None = None,
        task_features: int = 0,
    ) -> None:
        self.protagonist_dim, self.adversary_dim = protagonist_dim, adversary_dim
        self.epsilon = observation_attack
        self.task_features = task_features  # 0: the adversary sees only the observation
        self.columns = {
            "protagonist": slice(0, protagonist_dim),
            "adversary": slice(protagonist_dim, protagonist_dim + adversary_dim),
        }

    @classmethod
    def for_env(cls, spec: EnvSpec, observes_task: bool = False) -> ZeroSumGame:
        """The game of a two-player env (read from its metadata); ConfigError for another env.
        ``observes_task``: the adversary also sees the features of its episode's task."""
        env = make_env(spec)
        try:
            metadata = env.metadata
        finally:
            env.close()
        players = metadata.get("players")
        if players is None:
            raise ConfigError(
                f"env.id: {spec.id} is not a two-player env; rarl and robust_maml need one such "
                "as metarobust/HopperAdv-v0 or metarobust/Navigation2DAdv-v0"
            )
        features = 0
        if observes_task:
            try:
                features = default_task_distribution(spec.id, spec.task_distribution).feature_dim
            except ConfigError:
                raise ConfigError(
                    f"adversarial.observes_task: {spec.id} has no task distribution; the "
                    "adversary can observe the task only on a task env"
                ) from None
        attack = metadata.get("observation_attack")
        return cls(int(players[0]), int(players[1]), attack, features)

    def check_env(self, env_id: str, metadata: Mapping[str, Any], act_dim: int) -> None:
        players = metadata.get("players")
        if players is None:
            raise ConfigError(f"{env_id}: a one-player env takes one policy, not two players")
        if (int(players[0]), int(players[1])) != (self.protagonist_dim, self.adversary_dim):
            raise ConfigError(
                f"{env_id}: its players act with {tuple(players)} action dims, the game with "
                f"{(self.protagonist_dim, self.adversary_dim)}"
            )

    def learner_dim(self, learner: str, act_dim: int) -> int:
        return len(range(act_dim)[self.columns[learner]])

    def reward_sign(self, learner: str) -> float:
        return -1.0 if learner == "adversary" else 1.0

    def learner_obs_dim(self, learner: str, obs_dim: int) -> int:
        return obs_dim + (self.task_features if learner == "adversary" else 0)

    def learner_obs(
        self, learner: str, obs: np.ndarray, task_features: np.ndarray | None
    ) -> np.ndarray:
        if learner != "adversary" or self.task_features == 0:
            return obs
        if task_features is None or task_features.shape != (len(obs), self.task_features):
            raise ValueError(f"the adversary observes the task: {self.task_features} features")
        return np.concatenate([obs, task_features], axis=1, dtype=np.float32)

    def act(
        self,
        policies: Mapping[str, BatchedPolicy],
        learner: str,
        step: StepInput,
    ) -> Moves:
        obs = step.obs
        joint = np.empty((len(obs), self.protagonist_dim + self.adversary_dim), np.float32)
        seen = {
            "protagonist": obs,
            "adversary": self.learner_obs("adversary", obs, step.task_features),
        }
        for name in ("adversary", "protagonist"):  # the adversary first: it may move the input
            policy, columns = policies[name], self.columns[name]
            if policy.state.stack == "member":
                rows = step.episode_seeds % policy.state.num_stacked
            else:
                rows = task_rows(policy.state, step.tasks)
            actions, log_probs = policy.act(seen[name], step.noise[:, columns], rows)
            joint[:, columns] = actions
            if name == "adversary" and self.epsilon is not None:
                shift = self.epsilon * np.clip(actions, -1.0, 1.0)
                seen["protagonist"] = (obs + shift).astype(np.float32)
            if name == learner:
                record = seen[name], actions, log_probs
        return Moves(joint, *record)
