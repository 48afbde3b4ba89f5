"""The Python API as a script uses it: config, train, resume, act in Gymnasium, adapt."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import metarobust as mr
from metarobust.errors import ConfigError
from metarobust.utils.checkpoint import load_checkpoint


def test_train_resume_and_act_in_a_plain_gymnasium_loop(tiny_config):
    run = mr.train(tiny_config("ppo", "api", "train.total_steps=256"))
    assert load_checkpoint(run)["env_steps"] == 256
    assert mr.resume(run, ["train.total_steps=384"]) == run
    assert load_checkpoint(run)["env_steps"] == 384
    agent = mr.load_policy(run)
    saved = load_checkpoint(run)["policy"]["params"]
    env = gym.make("InvertedPendulum-v5")
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        action = agent.act(obs)
        assert action.shape == env.action_space.shape and env.action_space.contains(action)
        obs, *_ = env.step(action)
    with torch.no_grad():  # the mean action of the saved parameters, clipped to the box
        mean, _ = torch.func.functional_call(
            agent.module, saved, (torch.from_numpy(obs.astype(np.float32))[None],)
        )
    expected = np.clip(mean[0].numpy(), env.action_space.low, env.action_space.high)
    np.testing.assert_allclose(agent.act(obs), expected, rtol=1e-6)
    batch = agent.act(np.stack([obs, obs]))
    assert batch.shape == (2, 1)
    with pytest.raises(ConfigError, match="only MAML runs adapt"):
        agent.adapt({"goal": [0.0, 0.0]})


def test_a_maml_policy_adapts_to_a_new_task_from_its_episodes(tiny_config):
    run = mr.train(tiny_config("maml", "meta", "maml.num_iterations=2"))
    agent = mr.load_policy(run)
    goal = {"goal": [0.4, -0.3]}
    adapted = agent.adapt(goal, episodes=8, seed=1)
    twice = agent.adapt(goal, episodes=8, seed=1)
    moved = [k for k in agent.state.params if not torch.equal(adapted.state.params[k],
                                                              agent.state.params[k])]  # fmt: skip
    assert moved  # one inner step changed the policy ...
    for k in adapted.state.params:  # ... the same way for the same seed
        assert torch.equal(adapted.state.params[k], twice.state.params[k])
    for k, v in load_checkpoint(run)["policy"]["params"].items():  # the meta-policy is kept
        assert torch.equal(agent.state.params[k], v)

    env = gym.make("metarobust/Navigation2D-v0")
    obs, _ = env.reset(seed=0, options={"task": goal})
    assert not np.array_equal(adapted.act(obs), agent.act(obs))  # it acts differently there


def test_a_study_reuses_finished_runs_and_resumes_cut_off_ones(tiny_config):
    from metarobust.studies import finished_run

    cfg = tiny_config("ppo", "study", "train.total_steps=256")
    started = []

    def start():
        started.append(1)
        return mr.train(cfg)

    run = finished_run(cfg.logging.log_dir / Path("study"), start)
    assert started == [1] and load_checkpoint(run)["env_steps"] == 256
    before = (run / "checkpoint.pt").read_bytes()
    assert finished_run(run, start) == run and started == [1]  # finished: reused as it is
    assert (run / "checkpoint.pt").read_bytes() == before
    assert mr.resume(run, ["train.total_steps=384"]) == run  # a longer budget ...
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("384", "512"))
    assert finished_run(run, start) == run and started == [1]  # ... cut off: resumed
    assert load_checkpoint(run)["env_steps"] == 512
