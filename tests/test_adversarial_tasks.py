"""Two-player task envs for robust MAML: force and dynamics adversaries on the locomotion tasks."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import rollout
from gymnasium.utils.env_checker import check_env

from metarobust.envs import (
    ADVERSARIAL_ENV_IDS,
    ADVERSARIAL_TASK_ENV_IDS,
    ENV_IDS,
    base_env_id,
    default_task_distribution,
    variant_env_id,
)
from metarobust.envs.two_player.force import FORCE_PRESETS, AdversarialForceEnv
from metarobust.errors import ConfigError

# check_env's advice about Gymnasium's own v5 spaces or about checking a wrapper.
ADVISORY = (
    "observation space maximum value is infinity",
    "observation space minimum value is -infinity",
    "we recommend using a symmetric and normalized space",
    "is different from the unwrapped version",
)

LOCOMOTION = ("HalfCheetahVel", "HalfCheetahDir", "AntDir", "AntVel", "AntGoal")
# (protagonist, adversary) dims: HalfCheetah's preset pushes 3 bodies in x and z, Ant's the
# torso in x, y and z; the dynamics adversary picks 2 scales.
PLAYERS = {
    **{f"metarobust/{n}Adv-v0": (6, 6) for n in LOCOMOTION if n.startswith("HalfCheetah")},
    **{f"metarobust/{n}Adv-v0": (8, 3) for n in LOCOMOTION if n.startswith("Ant")},
    **{f"metarobust/{n}DynamicsAdv-v0": (6, 2) for n in LOCOMOTION if n.startswith("Half")},
    **{f"metarobust/{n}DynamicsAdv-v0": (8, 2) for n in LOCOMOTION if n.startswith("Ant")},
    "metarobust/Navigation2DAdv-v0": (2, 2),
    "metarobust/Navigation2DCliffAdv-v0": (2, 2),
}


def joint(protagonist: np.ndarray, adversary: np.ndarray | float, dims: int) -> np.ndarray:
    """``[n, protagonist | adversary]`` float32 actions, the adversary's broadcast to ``dims``."""
    adversary = np.broadcast_to(adversary, (len(protagonist), dims))
    return np.concatenate([protagonist, adversary], axis=1).astype(np.float32)


def protagonist_actions(n: int, dims: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (n, dims)).astype(np.float32)


# --------------------------------------------------------------------------- registration


def test_ids_time_limits_players_and_bases():
    assert sorted(ADVERSARIAL_TASK_ENV_IDS) == sorted(PLAYERS)
    assert set(ADVERSARIAL_TASK_ENV_IDS) <= set(ADVERSARIAL_ENV_IDS)
    assert not set(ADVERSARIAL_TASK_ENV_IDS) & set(ENV_IDS)
    for env_id, players in PLAYERS.items():
        base = base_env_id(env_id)
        assert base in ENV_IDS and env_id.startswith(base.removesuffix("-v0"))
        assert gym.spec(env_id).max_episode_steps == gym.spec(base).max_episode_steps
        env = gym.make(env_id)
        assert env.metadata["players"] == players
        assert env.action_space.shape == (sum(players),)
        assert env.observation_space == gym.make(base).observation_space
    assert gym.spec("metarobust/AntGoalAdv-v0").max_episode_steps == 200
    assert gym.spec("metarobust/Navigation2DAdv-v0").max_episode_steps == 100


def test_default_task_distribution_is_the_base_task_envs():
    for env_id in ADVERSARIAL_TASK_ENV_IDS:
        mine, base = (
            default_task_distribution(env_id),
            default_task_distribution(base_env_id(env_id)),
        )
        assert type(mine) is type(base) and vars(mine) == vars(base)
        rng, base_rng = np.random.default_rng(5), np.random.default_rng(5)
        assert mine.sample(4, rng) == base.sample(4, base_rng)


def test_variant_ids_on_task_envs():
    assert (
        variant_env_id("metarobust/HalfCheetahVel-v0", "Adv") == "metarobust/HalfCheetahVelAdv-v0"
    )
    assert variant_env_id("metarobust/AntGoal-v0", "DynamicsAdv") == (
        "metarobust/AntGoalDynamicsAdv-v0"
    )
    assert variant_env_id("metarobust/AntDirAdv-v0", "DynamicsAdv") == (
        "metarobust/AntDirDynamicsAdv-v0"
    )
    assert variant_env_id("metarobust/Navigation2D-v0", "Adv") == "metarobust/Navigation2DAdv-v0"
    # the ids that worked before still do
    assert variant_env_id("metarobust/HopperDynamics-v0", "Adv") == "metarobust/HopperAdv-v0"
    assert variant_env_id("Hopper-v5", "ObsAdv") == "metarobust/HopperObsAdv-v0"
    assert variant_env_id("metarobust/HalfCheetahVelAdv-v0", "Dynamics") == (
        "metarobust/HalfCheetahVelDynamics-v0"
    )
    with pytest.raises(ConfigError, match="no Dynamics variant of metarobust/Navigation2D-v0"):
        variant_env_id("metarobust/Navigation2DAdv-v0", "Dynamics")
    with pytest.raises(ConfigError, match="no ObsAdv variant of metarobust/Navigation2D-v0"):
        variant_env_id("metarobust/Navigation2DAdv-v0", "ObsAdv")


@pytest.mark.parametrize("env_id", ADVERSARIAL_TASK_ENV_IDS)
def test_check_env_passes_and_the_task_survives(env_id):
    env = gym.make(env_id)
    task = default_task_distribution(env_id).sample(1, np.random.default_rng(0))[0]
    env.reset(options={"task": task})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in ADVISORY)]
    assert not unexpected
    # check_env resets and steps many times without a task: the task must stay.
    assert {**env.get_wrapper_attr("task"), **task} == env.get_wrapper_attr("task")
    made = gym.make(env_id, task=task)  # make's task kwarg reaches the base too
    assert {**made.get_wrapper_attr("task"), **task} == made.get_wrapper_attr("task")
    env.close()


# --------------------------------------------------------------------------- force adversary


def test_ant_preset():
    preset = FORCE_PRESETS["Ant-v5"]
    assert (preset.bodies, preset.axes, preset.max_force) == (("torso",), "xyz", 5.0)
    env = gym.make("metarobust/AntDirAdv-v0")
    env.reset(seed=0)
    env.step(joint(np.zeros((1, 8)), [1.0, -0.5, 9.0], 3)[0])
    xfrc = env.unwrapped.data.xfrc_applied
    expected = np.zeros_like(xfrc)
    expected[env.unwrapped.model.body("torso").id, :3] = [5.0, -2.5, 5.0]
    np.testing.assert_array_equal(xfrc, expected)


@pytest.mark.parametrize(
    ("name", "tasks"),
    [
        ("HalfCheetahVel", [{"velocity": 0.4}, {"velocity": 1.7}]),
        ("HalfCheetahDir", [{"direction": 1}, {"direction": -1}]),
        ("AntDir", [{"direction": -1}]),
        ("AntVel", [{"velocity": 2.5}]),
        ("AntGoal", [{"goal": [-1.0, 2.0]}]),
    ],
)
def test_zero_force_is_the_task_env_and_a_force_changes_it(name, tasks):
    """With the adversary still, the Adv env is its task env to the bit, whatever the task
    (set through reset options); a push changes the trajectory."""
    env, base = gym.make(f"metarobust/{name}Adv-v0"), gym.make(f"metarobust/{name}-v0")
    n_pro, n_adv = env.metadata["players"]
    protagonist = protagonist_actions(60, n_pro)
    for task in tasks:
        options = {"task": task}
        obs, rewards, infos = rollout(env, joint(protagonist, 0.0, n_adv), options=options)
        ref_obs, ref_rewards, ref_infos = rollout(base, protagonist, options=options)
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(rewards, ref_rewards)
        for reward, info, ref in zip(rewards, infos, ref_infos, strict=True):
            assert {k: info[k] for k in ref} == ref
            assert info["adversary_reward"] == -reward
        assert env.get_wrapper_attr("task") == task
        pushed, _, _ = rollout(env, joint(protagonist, 0.8, n_adv), options=options)
        n = min(len(pushed), len(obs))
        assert not np.allclose(pushed[:n], obs[:n])


def test_half_cheetah_vel_reward_follows_the_task_under_zero_force():
    env = gym.make("metarobust/HalfCheetahVelAdv-v0")
    actions = joint(protagonist_actions(30, 6, seed=3), 0.0, 6)
    obs, rewards = {}, {}
    for v in (0.0, 1.3):
        obs[v], rewards[v], infos = rollout(env, actions, options={"task": {"velocity": v}})
        for reward, info in zip(rewards[v], infos, strict=True):
            assert info["reward_forward"] == -abs(info["x_velocity"] - v)
            assert reward == info["reward_forward"] + info["reward_ctrl"]
    np.testing.assert_array_equal(obs[0.0], obs[1.3])  # the task changes the reward only
    assert not np.array_equal(rewards[0.0], rewards[1.3])
    env.reset()  # no task: the last one stays
    assert env.get_wrapper_attr("task") == {"velocity": 1.3}


def test_force_adversary_layer_sits_on_the_task_env():
    env = gym.make("metarobust/HalfCheetahDirAdv-v0", max_force=2.0)
    layer = env
    while not isinstance(layer, AdversarialForceEnv):
        layer = layer.env
    assert layer.bodies == ("torso", "bfoot", "ffoot") and layer.max_force == 2.0
    assert type(layer.env).__name__ == "HalfCheetahDirEnv"


# --------------------------------------------------------------------------- dynamics adversary


@pytest.mark.parametrize(
    ("name", "task", "dims"),
    [("HalfCheetahVel", {"velocity": 0.6}, 6), ("AntGoal", {"goal": [1.0, -1.0]}, 8)],
)
def test_dynamics_adversary_keeps_the_task(name, task, dims):
    """The adversary's scales change the dynamics, never the task; nominal scales are the
    task env to the bit."""
    env, base = gym.make(f"metarobust/{name}DynamicsAdv-v0"), gym.make(f"metarobust/{name}-v0")
    protagonist = protagonist_actions(40, dims, seed=2)
    options = {"task": task}
    nominal, rewards, infos = rollout(env, joint(protagonist, 0.0, 2), options=options)
    ref, ref_rewards, _ = rollout(base, protagonist, options=options)
    np.testing.assert_array_equal(nominal, ref)
    np.testing.assert_array_equal(rewards, ref_rewards)
    assert infos[0]["dynamics"] == {"mass_scale": 1.0, "friction_scale": 1.0}

    heavy, _, infos = rollout(env, joint(protagonist, [1.0, -1.0], 2), options=options)
    assert infos[-1]["dynamics"] == {"mass_scale": 1.5, "friction_scale": 0.5}
    assert {**env.get_wrapper_attr("task"), **task} == env.get_wrapper_attr("task")
    n = min(len(heavy), len(nominal))
    assert not np.allclose(heavy[:n], nominal[:n])
    # a new episode without a task: nominal model, same task
    again, _, _ = rollout(env, joint(protagonist, 0.0, 2))
    np.testing.assert_array_equal(again, ref)
    assert env.get_wrapper_attr("task")["mass_scale"] == 1.0


def test_dynamics_adversary_on_a_task_env_pays_the_task_reward():
    env = gym.make("metarobust/HalfCheetahDirDynamicsAdv-v0", task={"direction": -1})
    env.reset(seed=0)
    action = joint(protagonist_actions(1, 6), [0.5, 0.5], 2)[0]
    _, reward, _, _, info = env.step(action)
    assert info["reward_forward"] == -info["x_velocity"]
    assert info["adversary_reward"] == -reward
