"""The dynamics adversary: per-episode mass and friction scales chosen by the adversary."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from metarobust.api import train
from metarobust.errors import ConfigError


def model_of(env: gym.Env):
    return env.unwrapped.model


def test_scales_are_chosen_at_the_first_step_and_restored_at_reset():
    env = gym.make("metarobust/HopperDynamicsAdv-v0")
    model = model_of(env)
    mass, friction = model.body_mass.copy(), model.geom_friction[:, 0].copy()
    env.reset(seed=0)
    protagonist = np.zeros(3, np.float32)
    _, reward, _, _, info = env.step(np.r_[protagonist, 1.0, -1.0].astype(np.float32))
    assert info["dynamics"] == {"mass_scale": 1.5, "friction_scale": 0.5}
    assert info["adversary_reward"] == -reward
    np.testing.assert_allclose(model.body_mass, 1.5 * mass)
    np.testing.assert_allclose(model.geom_friction[:, 0], 0.5 * friction)
    # later adversary actions do not change the episode's dynamics
    _, _, _, _, info = env.step(np.r_[protagonist, -1.0, 1.0].astype(np.float32))
    assert info["dynamics"] == {"mass_scale": 1.5, "friction_scale": 0.5}
    env.reset(seed=1)
    np.testing.assert_array_equal(model.body_mass, mass)  # nominal again, to the bit
    np.testing.assert_array_equal(model.geom_friction[:, 0], friction)
    _, _, _, _, info = env.step(np.r_[protagonist, 0.0, 0.5].astype(np.float32))
    assert info["dynamics"] == {"mass_scale": 1.0, "friction_scale": 1.25}


def test_nominal_choice_is_the_base_env_and_another_choice_differs():
    actions = np.random.default_rng(0).uniform(-1, 1, (60, 3)).astype(np.float32)

    def run(env, adversary):
        obs = [env.reset(seed=4)[0]]
        for a in actions:
            full = a if adversary is None else np.r_[a, adversary].astype(np.float32)
            o, _, term, trunc, _ = env.step(full)
            obs.append(o)
            if term or trunc:
                break
        return np.array(obs)

    base = run(gym.make("Hopper-v5"), None)
    nominal = run(gym.make("metarobust/HopperDynamicsAdv-v0"), [0.0, 0.0])
    heavy = run(gym.make("metarobust/HopperDynamicsAdv-v0"), [1.0, 0.0])
    np.testing.assert_array_equal(nominal, base)
    n = min(len(heavy), len(base))
    assert not np.allclose(heavy[:n], base[:n])


def test_ranges_are_checked():
    make = "metarobust/HopperDynamicsAdv-v0"
    for ranges, message in (
        ({}, "at least one"),
        ({"size_scale": (0.5, 1.5)}, "unknown scale"),
        ({"mass_scale": (0.0, 1.5)}, "0 < low <= high"),
        ({"mass_scale": (1.5, 0.5)}, "0 < low <= high"),
    ):
        with pytest.raises(ConfigError, match=message):
            gym.make(make, ranges=ranges)
    env = gym.make(make, ranges={"damping_scale": (0.2, 2.0)})
    assert env.metadata["players"] == (3, 1)


def test_rarl_trains_against_a_dynamics_adversary(tiny_config, rows):
    cfg = tiny_config("rarl", "dyn", "env.id=metarobust/InvertedPendulumDynamicsAdv-v0")
    history = rows(train(cfg))
    assert len(history) == 4 and "adversary/return" in history[-1]
