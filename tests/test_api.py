"""The Python API as a script uses it: config, train, resume, act in Gymnasium, adapt."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY

import metarobust as mr
from metarobust.config import load_config
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


def test_a_study_trains_a_run_to_the_budget_it_asks_and_refuses_other_settings(tiny_config):
    from metarobust.studies import finished_run, up_to_date

    cfg = tiny_config("ppo", "study", "train.total_steps=256")
    run = finished_run(cfg.logging.log_dir / Path("study"), lambda: mr.train(cfg), cfg)
    (run / "evaluation.csv").write_text("score\n1\n")
    assert up_to_date(run / "evaluation.csv", run)
    longer = tiny_config("ppo", "study", "train.total_steps=384")
    assert finished_run(run, lambda: pytest.fail("started again"), longer) == run
    assert load_checkpoint(run)["env_steps"] == 384  # resumed to the larger budget ...
    assert not up_to_date(run / "evaluation.csv", run)  # ... so its evaluation is stale
    before = (run / "checkpoint.pt").read_bytes()
    other = tiny_config("ppo", "study", "train.total_steps=384", "ppo.num_epochs=3")
    with pytest.raises(ConfigError, match=r"study was trained with ppo.num_epochs=\d+, not the 3"):
        finished_run(run, lambda: pytest.fail("started again"), other)
    shorter = tiny_config("ppo", "study", "train.total_steps=256")
    with pytest.raises(ConfigError, match="has trained 384 steps .* more than the train.total"):
        finished_run(run, lambda: pytest.fail("started again"), shorter)
    assert (run / "checkpoint.pt").read_bytes() == before  # refusals leave the run as it was


def test_a_study_refuses_an_attack_on_an_earlier_checkpoint_of_its_victim(tmp_path):
    from metarobust.studies import attack_run

    victim, attacked = tmp_path / "victim", tmp_path / "victim_attack_s3"
    for run in (victim, attacked):
        run.mkdir()
        (run / "checkpoint.pt").write_bytes(b"")
    os.utime(attacked / "checkpoint.pt", (1000, 1000))  # the victim trained on after it
    with pytest.raises(ConfigError, match="victim_attack_s3 attacked an earlier checkpoint of"):
        attack_run(victim, 3, lambda: pytest.fail("started again"))
    assert attack_run(victim, 4, lambda: tmp_path / "fresh") == tmp_path / "fresh"  # no attack yet


# ---------------------------------------------------------------------- every run kind's agent

SMALL_MAML = (  # one meta-iteration of 2 tasks x 2 episodes, a cheap outer step
    "maml.num_iterations=1",
    "maml.meta_batch_size=2",
    "maml.episodes_per_task=2",
    "sampler.envs_per_worker=4",
    "trpo.cg_iters=2",
    "trpo.line_search_steps=2",
)
TINY_UED = (  # one batch of 4 obstacle levels
    *TINY["ued"][1],
    "ued.levels_per_iteration=4",
    "ued.num_iterations=1",
    "sampler.envs_per_worker=4",
    "ppo.num_epochs=1",
)
# kind -> (config file, overrides, the env its agent acts in)
AGENT_RUNS = {
    "ppo": (None, (*TINY["ppo"][1], "train.total_steps=128"), "InvertedPendulum-v5"),
    "rarl": (TINY["rarl"][0], (*TINY["rarl"][1], "train.total_steps=128"), "InvertedPendulum-v5"),
    "maml": (TINY["maml"][0], SMALL_MAML, "metarobust/Navigation2D-v0"),
    "robust_maml": (TINY["robust_maml"][0], SMALL_MAML, "metarobust/Navigation2D-v0"),
    "ued": (None, TINY_UED, "metarobust/Navigation2DObstacles-v0"),
}
GOAL = {"goal": [0.4, -0.3]}


@pytest.fixture(scope="module")
def agent_of(tmp_path_factory) -> Callable[[str], mr.Agent]:
    """``agent_of(kind)``: the agent of a tiny saved run of ``kind`` (trained once per module);
    ``maml_adapted``: the MAML run's agent adapted to ``GOAL``."""
    root = tmp_path_factory.mktemp("agents")
    agents: dict[str, mr.Agent] = {}

    def get(kind: str) -> mr.Agent:
        if kind == "maml_adapted" and kind not in agents:
            agents[kind] = get("maml").adapt(GOAL, episodes=4, seed=1)
        if kind not in agents:
            path, overrides, _ = AGENT_RUNS[kind]
            logging = ["logging.progress=false", f"logging.log_dir={root}"]
            cfg = load_config(path, [*overrides, *logging, f"logging.run_name={kind}"])
            agents[kind] = mr.load_policy(mr.train(cfg))
        return agents[kind]

    return get


def first_obs(kind: str) -> tuple[np.ndarray, gym.spaces.Box]:
    """An observation of the env the agent of ``kind`` acts in, and its action space."""
    _, _, env_id = AGENT_RUNS[kind.removesuffix("_adapted")]
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    env.close()
    return obs, env.action_space


KINDS = ["ppo", "rarl", "maml", "maml_adapted", "robust_maml", "ued"]


@pytest.mark.parametrize("kind", KINDS)
def test_sampled_actions_are_reproducible_and_spread_by_the_policys_std(agent_of, kind):
    agent, (obs, space) = agent_of(kind), first_obs(kind)
    low, high = space.low, space.high
    mean = agent.act(obs)
    one = agent.act(obs, deterministic=False, rng=np.random.default_rng(0))
    assert one.shape == mean.shape and one.dtype == np.float32
    np.testing.assert_array_equal(
        agent.act(obs, deterministic=False, rng=np.random.default_rng(0)), one
    )  # same seed, same action
    n = 4000
    batch = np.repeat(obs[None], n, axis=0)
    samples = agent.act(batch, deterministic=False, rng=np.random.default_rng(1))
    assert samples.shape == (n, *mean.shape)
    assert ((samples >= low) & (samples <= high)).all()  # inside the action space
    assert not np.array_equal(samples, agent.act(batch, deterministic=False))  # seeded by rng
    assert (samples != mean).any(axis=1).mean() > 0.99  # not the mean
    assert_spread_by_std(agent, obs, samples, low, high)
    # the same policy with another std, a tenth of the box: the CDF inside it is steep
    log_std = torch.from_numpy(np.log(0.1 * (high - low)))
    params = {**agent.state.params, "log_std": log_std}
    narrow = mr.Agent(agent.saved, agent.module, agent.state.with_params(params))
    samples = narrow.act(batch, deterministic=False, rng=np.random.default_rng(2))
    assert_spread_by_std(narrow, obs, samples, low, high)


def assert_spread_by_std(agent, obs, samples, low, high) -> None:
    """``samples`` of ``agent`` at ``obs`` follow its clipped Gaussian: at points q inside the
    box, P(a <= q) = Phi((q - mean) / exp(log_std))."""
    std = np.exp(agent.state.params["log_std"].double().numpy())
    with torch.no_grad():
        mean, _ = agent.module(torch.from_numpy(np.float32(obs))[None])
    for d in range(samples.shape[1]):
        for q in low[d] + (high[d] - low[d]) * np.linspace(0.05, 0.95, 19):
            z = (q - float(mean[0, d])) / std[d]
            expected = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
            assert abs((samples[:, d] <= q).mean() - expected) < 0.03, (d, q)


@pytest.mark.parametrize("kind", KINDS)
def test_an_observation_of_the_wrong_size_is_a_config_error(agent_of, kind):
    agent = agent_of(kind)
    size = agent.module.obs_dim
    wrong = np.zeros(size + 1, np.float32)
    message = f"Agent.act: obs has {size + 1} values per observation; .* expects {size}"
    with pytest.raises(ConfigError, match=message):
        agent.act(wrong)
    with pytest.raises(ConfigError, match=message):
        agent.act(np.stack([wrong, wrong]), deterministic=False)
    with pytest.raises(ConfigError, match=r"obs must be \[obs_dim\] or \[n, obs_dim\]"):
        agent.act(np.zeros((2, 2, size), np.float32))


@pytest.mark.parametrize("kind", KINDS)
def test_an_agent_shows_its_run_algorithm_and_spaces(agent_of, kind):
    agent = agent_of(kind)
    text = repr(agent)
    algorithm = kind.removesuffix("_adapted")
    assert text.startswith("Agent(") and "object at 0x" not in text
    assert str(agent.saved.path) in text and f"algorithm={algorithm!r}" in text
    assert f"observation_space={agent.observation_space}" in text
    assert f"action_space={agent.action_space}" in text
    assert agent.observation_space.shape == (agent.module.obs_dim,)
    assert agent.action_space.shape == (agent.module.act_dim,)
    if kind == "maml_adapted":
        assert f"adapted_to={GOAL!r}" in text
    else:
        assert "adapted" not in text
