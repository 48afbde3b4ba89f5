"""An observation adversary (state-adversarial attacks, Zhang et al. 2020): it sees the true
observation and shifts what the protagonist sees by at most ``epsilon`` per component.

The env carries the action channel: its action is ``[protagonist action, adversary action]``,
the adversary's part one component per observation dimension in [-1, 1]; the physics use the
protagonist's part only. The perturbation itself happens where the policies run: the
``RolloutWorker`` reads ``metadata["observation_attack"] = epsilon``, evaluates the adversary
on the true observation first, and gives the protagonist ``obs + epsilon * clip(action, -1,
1)``. Zero-sum like the force envs: ``info["adversary_reward"]`` is minus the reward.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from metarobust.envs.tasks import is_positive_number
from metarobust.envs.two_player.force import make_bare
from metarobust.errors import ConfigError

DEFAULT_EPSILON = 0.05  # in raw observation units


class ObservationAdversaryEnv(gym.Wrapper):
    """``env`` with an adversary action channel that perturbs the protagonist's observation
    by at most ``epsilon`` (raw observation units) per component."""

    def __init__(self, env: gym.Env, epsilon: float, name: str = "env") -> None:
        if not is_positive_number(epsilon):
            raise ConfigError(f"{name}: epsilon must be a positive number, got {epsilon!r}")
        super().__init__(env)
        protagonist, observation = env.action_space, env.observation_space
        for space in (protagonist, observation):
            if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
                raise ConfigError(f"{name}: expected flat Box spaces, got {space}")
        self.epsilon = float(epsilon)
        self.protagonist_action_space = protagonist
        self.adversary_action_space = gym.spaces.Box(-1.0, 1.0, observation.shape, np.float32)
        self.action_space = gym.spaces.Box(
            np.concatenate([protagonist.low, self.adversary_action_space.low]),
            np.concatenate([protagonist.high, self.adversary_action_space.high]),
            dtype=np.float32,
        )
        self.metadata = {
            **env.metadata,
            "players": (protagonist.shape[0], observation.shape[0]),
            "observation_attack": self.epsilon,
        }

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the base env with the protagonist's part (the adversary's acted on its input)."""
        n = self.protagonist_action_space.shape[0]
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(action)[:n])
        return obs, reward, terminated, truncated, {**info, "adversary_reward": -reward}


def observation_adversary_entry_point(
    base_id: str, epsilon: float = DEFAULT_EPSILON, **base_kwargs: Any
) -> ObservationAdversaryEnv:
    """Entry point of ``metarobust/<Name>ObsAdv-v0``: ``base_id`` with an observation
    adversary of budget ``epsilon``."""
    return ObservationAdversaryEnv(make_bare(base_id, base_kwargs), epsilon, base_id)
