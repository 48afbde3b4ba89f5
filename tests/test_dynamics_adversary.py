"""The dynamics adversary: per-episode mass and friction scales chosen by the adversary."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch

from metarobust.api import train
from metarobust.cli import main
from metarobust.errors import ConfigError
from metarobust.sampling.env_state import capture_env_state, restore_env_state
from metarobust.utils.checkpoint import load_checkpoint


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


def saved_and_read_back(state):
    """``state`` as a resumed run reads it: torch.save, then torch.load(weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_a_restored_env_keeps_the_episodes_scales_and_whether_they_are_chosen():
    make = "metarobust/HopperDynamicsAdv-v0"
    protagonist = np.zeros(3, np.float32)

    def step(env, adversary):
        return env.step(np.r_[protagonist, adversary].astype(np.float32))

    # mid-episode: the scales are chosen; a restored env keeps them whatever the adversary does
    env, clone = gym.make(make), gym.make(make)
    env.reset(seed=0)
    for _ in range(3):
        step(env, [1.0, -1.0])
    clone.reset(seed=5)  # a fresh episode, its choice still to come
    restore_env_state(clone, saved_and_read_back(capture_env_state(env)))
    chosen = {"mass_scale": 1.5, "friction_scale": 0.5}
    for _ in range(5):
        want, got = step(env, [-1.0, 1.0]), step(clone, [-1.0, 1.0])
        assert got[4]["dynamics"] == want[4]["dynamics"] == chosen
        np.testing.assert_array_equal(got[0], want[0])

    # just reset: the choice is still to come, also in an env restored mid-episode
    env.reset(seed=1)
    restore_env_state(clone, saved_and_read_back(capture_env_state(env)))
    want, got = step(env, [0.0, 0.5]), step(clone, [0.0, 0.5])
    assert got[4]["dynamics"] == want[4]["dynamics"] == {"mass_scale": 1.0, "friction_scale": 1.25}
    np.testing.assert_array_equal(got[0], want[0])

    # a saved flag that is not a boolean is refused before the env is touched
    state = capture_env_state(env)
    (layer,) = [layer for layer in state["layers"] if "first_step" in layer]
    layer["first_step"] = 1
    with pytest.raises(ConfigError, match=r"first_step: expected true or false, got 1"):
        restore_env_state(clone, state)


def test_rarl_on_a_dynamics_adversary_resumes_mid_episode_exactly(tiny_config, rows):
    """The checkpoint falls mid-episode (64-step segments of 1000-step episodes at most): the
    resumed streams continue those episodes with the scales chosen before it."""
    dyn = "env.id=metarobust/InvertedPendulumDynamicsAdv-v0"
    straight = train(tiny_config("rarl", "straight", dyn, "train.total_steps=384"))
    split = train(tiny_config("rarl", "split", dyn, "train.total_steps=256"))
    (worker,) = load_checkpoint(split)["sampler"]["workers"]
    assert any(env["layers"][0]["elapsed_steps"] > 0 for env in worker["envs"])  # mid-episode
    assert main(["train", "--resume", str(split), "--set", "train.total_steps=384"]) == 0
    assert rows(split) == rows(straight)
    a, b = load_checkpoint(split)["state"], load_checkpoint(straight)["state"]
    players_a, players_b = (
        [a["protagonist"], *a["adversaries"]],
        [b["protagonist"], *b["adversaries"]],
    )
    for pa, pb in zip(players_a, players_b, strict=True):
        pa, pb = pa["update"]["params"], pb["update"]["params"]
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
