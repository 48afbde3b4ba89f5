"""RARL two-player MuJoCo envs: force bounds, zero-sum rewards, presets and validation."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from conftest import rollout
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import TimeLimit

from metarobust.envs import ADVERSARIAL_ENV_IDS
from metarobust.envs.two_player.force import (
    FORCE_PRESETS,
    AdversarialForceEnv,
    adversarial_entry_point,
)
from metarobust.errors import ConfigError

# check_env's advice about Gymnasium's own v5 spaces or about checking a wrapper.
ADVISORY = (
    "observation space maximum value is infinity",
    "observation space minimum value is -infinity",
    "we recommend using a symmetric and normalized space",
    "is different from the unwrapped version",
)

PLAYERS = {
    "metarobust/InvertedPendulumAdv-v0": (1, 2),
    "metarobust/HalfCheetahAdv-v0": (6, 6),
    "metarobust/SwimmerAdv-v0": (2, 2),
    "metarobust/HopperAdv-v0": (3, 2),
    "metarobust/Walker2dAdv-v0": (6, 4),
}


def adversary_layer(env: gym.Env) -> AdversarialForceEnv:
    while not isinstance(env, AdversarialForceEnv):
        env = env.env
    return env


def hopper_actions(n: int, force: np.ndarray | float, seed: int = 1) -> np.ndarray:
    """``n`` random Hopper protagonist actions, each followed by the adversary's ``force``."""
    protagonist = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, 3))
    adversary = np.broadcast_to(force, (n, 2))
    return np.concatenate([protagonist, adversary], axis=1).astype(np.float32)


@pytest.mark.parametrize("env_id", ADVERSARIAL_ENV_IDS)
def test_check_env_passes(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in ADVISORY)]
    assert not unexpected
    env.close()


@pytest.mark.parametrize("env_id", list(PLAYERS))
def test_players_metadata_and_spaces(env_id):
    env = gym.make(env_id)
    players = PLAYERS[env_id]
    assert env.metadata["players"] == players
    layer = adversary_layer(env)
    assert layer.protagonist_action_space == env.unwrapped.action_space
    assert layer.adversary_action_space.shape == (players[1],)
    np.testing.assert_array_equal(layer.adversary_action_space.high, 1.0)  # x max_force
    assert env.action_space.shape == (sum(players),) and env.action_space.dtype == np.float32
    # The sampler reads the split from the vector env, which copies envs[0].metadata.
    vec = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)] * 2)
    assert vec.metadata["players"] == players
    vec.close()
    # Exactly one time limit: the base's.
    limits = []
    while env is not env.unwrapped:
        limits += [env] if isinstance(env, TimeLimit) else []
        env = env.env
    assert len(limits) == 1
    assert (
        limits[0]._max_episode_steps
        == gym.spec(gym.spec(env_id).kwargs["base_id"]).max_episode_steps
    )


def test_presets_name_real_bodies():
    for base_id, preset in FORCE_PRESETS.items():
        model = gym.make(base_id).unwrapped.model
        for body in preset.bodies:
            assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body) > 0
        assert preset.max_force == 5.0


def test_zero_force_is_the_base_env_and_a_force_changes_it():
    env = gym.make("metarobust/HopperAdv-v0")
    base = gym.make("Hopper-v5")
    actions = hopper_actions(80, 0.0)
    obs, rewards, infos = rollout(env, actions)
    ref_obs, ref_rewards, _ = rollout(base, actions[:, :3])
    np.testing.assert_array_equal(obs, ref_obs)
    np.testing.assert_array_equal(rewards, ref_rewards)
    assert all(not info["adversary_force"].any() for info in infos)
    pushed, _, _ = rollout(env, hopper_actions(80, [0.6, -0.4]))
    n = min(len(pushed), len(obs))
    assert not np.allclose(pushed[:n], obs[:n])


def test_forces_are_clipped_to_the_bound():
    env = gym.make("metarobust/HalfCheetahAdv-v0")
    data = env.unwrapped.data
    rng = np.random.default_rng(0)
    protagonist = rng.uniform(-1.0, 1.0, (40, 6))
    signs = rng.choice([-1.0, 1.0], (40, 6))
    at_bound = np.concatenate([protagonist, signs], axis=1).astype(np.float32)
    beyond = np.concatenate([protagonist, 100.0 * signs], axis=1).astype(np.float32)
    obs_at, rew_at, infos_at = rollout(env, at_bound)
    env.reset(seed=0)
    for i, action in enumerate(beyond):
        obs, reward, _, _, info = env.step(action)
        np.testing.assert_array_equal(obs, obs_at[i + 1])
        assert reward == rew_at[i]
        np.testing.assert_array_equal(info["adversary_force"], infos_at[i]["adversary_force"])
        np.testing.assert_array_equal(info["adversary_force"], 5.0 * signs[i])
        assert np.abs(data.xfrc_applied).max() <= 5.0
    # The forces sit where the action order says, and nothing else is pushed.
    model = env.unwrapped.model
    expected = np.zeros_like(data.xfrc_applied)
    for k, (body, axis) in enumerate((b, a) for b in ("torso", "bfoot", "ffoot") for a in "xz"):
        expected[model.body(body).id, "xyz".index(axis)] = 5.0 * signs[-1, k]
    np.testing.assert_array_equal(data.xfrc_applied, expected)


def test_a_smaller_bound_is_enforced():
    env = gym.make("metarobust/Walker2dAdv-v0", max_force=1.5)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.full(10, 4.0, np.float32))
    np.testing.assert_array_equal(info["adversary_force"], 1.5)
    np.testing.assert_array_equal(env.metadata["players"], (6, 4))
    assert np.abs(env.unwrapped.data.xfrc_applied).max() == 1.5
    _, _, _, _, info = env.step(np.full(10, -0.5, np.float32))
    np.testing.assert_array_equal(info["adversary_force"], -0.75)  # action x max_force


@pytest.mark.parametrize("env_id", ["metarobust/HopperAdv-v0", "metarobust/InvertedPendulumAdv-v0"])
def test_zero_sum_reward_and_no_force_after_reset(env_id):
    env = gym.make(env_id)
    space = env.action_space
    actions = np.random.default_rng(2).uniform(space.low, space.high, (60, *space.shape))
    _, rewards, infos = rollout(env, actions.astype(np.float32))
    assert len(infos) > 1
    for reward, info in zip(rewards, infos, strict=True):
        assert info["adversary_reward"] == -reward
    assert np.abs(env.unwrapped.data.xfrc_applied).max() > 0
    env.reset(seed=3)
    assert not env.unwrapped.data.xfrc_applied.any()


def test_a_task_reaches_a_dynamics_base():
    env = gym.make("metarobust/HopperAdv-v0", base_id="metarobust/HopperDynamics-v0")
    assert env.metadata["players"] == (3, 2)  # the Hopper preset, found through the wrapper
    actions = hopper_actions(60, [1.0, 1.0])
    nominal, _, _ = rollout(env, actions, options={"task": {"mass_scale": 1.0}})
    heavy, _, _ = rollout(env, actions, options={"task": {"mass_scale": 2.0}})
    n = min(len(nominal), len(heavy))
    assert not np.allclose(nominal[:n], heavy[:n])
    assert env.get_wrapper_attr("task")["mass_scale"] == 2.0


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"axes": "xyz"}, ["HalfCheetah-v5", "along y", "'torso'", "'xz'"]),
        ({"axes": "y"}, ["along y", "'torso'"]),
        ({"bodies": ["bfoot", "ffoot"], "axes": "zy"}, ["along y", "'bfoot'"]),
        ({"bodies": ["nose"]}, ["'nose'", "'bfoot'"]),
        ({"bodies": ["world"]}, ["'world'", "fixed"]),
        ({"bodies": ["torso", "torso"]}, ["once"]),
        ({"bodies": []}, ["bodies"]),
        ({"axes": "xq"}, ["'xq'"]),
        ({"axes": "xx"}, ["'xx'"]),
        ({"axes": ""}, ["axes"]),
        ({"max_force": 0.0}, ["max_force"]),
        ({"max_force": -5.0}, ["max_force"]),
        ({"max_force": float("nan")}, ["max_force"]),
        ({"max_force": "5"}, ["max_force"]),
    ],
)
def test_bad_settings_raise_config_error(kwargs, words):
    with pytest.raises(ConfigError) as excinfo:
        gym.make("metarobust/HalfCheetahAdv-v0", **kwargs)
    message = str(excinfo.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_out_of_plane_axes_for_the_other_planar_models():
    with pytest.raises(ConfigError, match="along z on body 'torso'.*'xy'"):
        adversarial_entry_point("Swimmer-v5", axes="xyz")
    with pytest.raises(ConfigError, match="along y on body 'foot_left'"):
        adversarial_entry_point("Walker2d-v5", bodies=["foot_left"], axes="y")


def test_bases_without_a_preset():
    with pytest.raises(ConfigError, match="InvertedDoublePendulum-v5.*bodies and axes"):
        adversarial_entry_point("InvertedDoublePendulum-v5")
    env = adversarial_entry_point("InvertedDoublePendulum-v5", bodies=["pole2"], axes="xz")
    assert env.metadata["players"] == (1, 2) and env.max_force == 5.0
    with pytest.raises(ConfigError, match="CartPole-v1"):
        adversarial_entry_point("CartPole-v1", bodies=["pole"], axes="x")
    with pytest.raises(ConfigError, match="NoSuchEnv"):
        adversarial_entry_point("NoSuchEnv-v0")


def test_the_wrapper_takes_an_env_or_an_id():
    by_id = AdversarialForceEnv("Hopper-v5", ["torso"], "x", 2.0)
    by_env = AdversarialForceEnv(gym.make("Hopper-v5"), ["torso"], "x", 2.0)
    assert by_id.metadata["players"] == by_env.metadata["players"] == (3, 1)
    action = np.array([0.1, -0.2, 0.3, 9.0], np.float32)
    by_id.reset(seed=4)
    by_env.reset(seed=4)
    np.testing.assert_array_equal(by_id.step(action)[0], by_env.step(action)[0])


def test_pickles_and_runs_in_a_vector_env():
    env = gym.make("metarobust/HopperAdv-v0")
    copy = pickle.loads(pickle.dumps(env))
    assert copy.metadata["players"] == (3, 2)
    actions = hopper_actions(20, [2.0, -1.0])
    np.testing.assert_array_equal(rollout(copy, actions)[0], rollout(env, actions)[0])
    vec = gym.vector.SyncVectorEnv([lambda: gym.make("metarobust/HopperAdv-v0")] * 2)
    vec.reset(seed=0)
    _, reward, _, _, info = vec.step(np.stack([actions[0], actions[1]]))
    np.testing.assert_array_equal(info["adversary_reward"], -reward)
    vec.close()


def test_importing_envs_does_not_import_the_adversarial_package():
    code = "import sys, metarobust.envs; print('metarobust.adversarial' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False"
