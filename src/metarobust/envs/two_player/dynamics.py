"""A dynamics adversary: the model's mass and friction scales, chosen per episode.

The two-player action is ``[protagonist action, adversary action]`` as for the force envs, the
adversary's part one component per scale in [-1, 1] (clipped), mapped linearly onto its range
(default: 0.5 to 1.5 of nominal, the RARL code's robustness grid). The adversary chooses at an
episode's first step: those scales hold for the whole episode, and its actions at later steps
are ignored. ``reset`` restores the nominal model, so no episode inherits another's dynamics.
Whether the choice is still to come (``first_step``) is part of the env's saved state
(``metarobust.sampling.env_state``), so a stream resumed mid-episode keeps its scales.
Zero-sum like the force envs: ``info["adversary_reward"]`` is minus the reward, and
``info["dynamics"]`` holds the scales in effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from metarobust.envs.dynamics import DynamicsTask
from metarobust.envs.tasks import DYNAMICS_KEYS
from metarobust.envs.two_player.force import make_bare
from metarobust.errors import ConfigError

# The RARL code's grid: 0.5 to 1.5 of nominal mass and friction.
DEFAULT_RANGES = {"mass_scale": (0.5, 1.5), "friction_scale": (0.5, 1.5)}


class AdversarialDynamicsEnv(gym.Wrapper):
    """A MuJoCo env whose adversary picks dynamics scales at the start of every episode.

    ``ranges`` maps each scale the adversary controls (``mass_scale``, ``friction_scale``,
    ``damping_scale``) to its ``(low, high)``, in action order.
    """

    def __init__(
        self, env: gym.Env, ranges: Mapping[str, tuple[float, float]], name: str = "env"
    ) -> None:
        self._check_ranges(name, ranges)
        self._task_env = DynamicsTask(env)
        super().__init__(self._task_env)
        self._keys = list(ranges)
        self._low = np.array([ranges[k][0] for k in self._keys], np.float64)
        self._high = np.array([ranges[k][1] for k in self._keys], np.float64)
        protagonist = env.action_space
        if not isinstance(protagonist, gym.spaces.Box) or len(protagonist.shape) != 1:
            raise ConfigError(f"{name}: expected a flat Box action space, got {protagonist}")
        self.protagonist_action_space = protagonist
        self.adversary_action_space = gym.spaces.Box(-1.0, 1.0, (len(self._keys),), np.float32)
        self.action_space = gym.spaces.Box(
            np.concatenate([protagonist.low, self.adversary_action_space.low]),
            np.concatenate([protagonist.high, self.adversary_action_space.high]),
            dtype=np.float32,
        )
        self.metadata = {**env.metadata, "players": (protagonist.shape[0], len(self._keys))}
        self.first_step = True  # the adversary's choice is still to come this episode

    @staticmethod
    def _check_ranges(name: str, ranges: Mapping[str, tuple[float, float]]) -> None:
        if not ranges:
            raise ConfigError(f"{name}: ranges must name at least one of {list(DYNAMICS_KEYS)}")
        for key, bounds in ranges.items():
            if key not in DYNAMICS_KEYS:
                raise ConfigError(f"{name}: ranges.{key}: unknown scale; expected {DYNAMICS_KEYS}")
            if not (len(bounds) == 2 and 0 < float(bounds[0]) <= float(bounds[1])):
                expected = "expected [low, high] with 0 < low <= high"
                raise ConfigError(f"{name}: ranges.{key}: {expected}, got {list(bounds)}")

    def scales(self, adversary_action: np.ndarray) -> dict[str, float]:
        """The scales an adversary action in [-1, 1] (clipped) stands for."""
        a = np.clip(np.asarray(adversary_action, np.float64), -1.0, 1.0)
        values = self._low + (a + 1.0) / 2.0 * (self._high - self._low)
        return {k: float(v) for k, v in zip(self._keys, values, strict=True)}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """On an episode's first step, set the adversary's scales; then step the protagonist."""
        action = np.asarray(action)
        n = self.protagonist_action_space.shape[0]
        if self.first_step:
            self._task_env.set_task(self.scales(action[n:]))
            self.first_step = False
        obs, reward, terminated, truncated, info = self.env.step(action[:n])
        dynamics = {k: self._task_env.task[k] for k in self._keys}
        info = {**info, "adversary_reward": -reward, "dynamics": dynamics}
        return obs, reward, terminated, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Back to the nominal model; the adversary chooses again at the first step."""
        self._task_env.set_task({})
        self.first_step = True
        return self.env.reset(seed=seed, options=options)


def dynamics_adversary_entry_point(
    base_id: str, ranges: Mapping[str, tuple[float, float]] | None = None, **base_kwargs: Any
) -> AdversarialDynamicsEnv:
    """Entry point of ``metarobust/<Name>DynamicsAdv-v0``: ``base_id`` with a dynamics
    adversary over ``ranges`` (default: mass and friction, 0.5 to 1.5 of nominal)."""
    bare = make_bare(base_id, base_kwargs)
    return AdversarialDynamicsEnv(bare, DEFAULT_RANGES if ranges is None else ranges, base_id)
