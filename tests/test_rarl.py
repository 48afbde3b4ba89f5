"""RARL: two-player sampling, alternating updates, resume, config errors."""

from __future__ import annotations

import pytest
import torch

from metarobust.adversarial import rarl
from metarobust.adversarial.game import ZeroSumGame
from metarobust.agents.policy import GaussianPolicy, distribution_params, gaussian_log_prob
from metarobust.api import train
from metarobust.cli import main
from metarobust.errors import ConfigError
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import EnvSpec, env_dims
from metarobust.sampling.sampler import LocalSampler
from metarobust.utils.checkpoint import load_checkpoint


def two_player_dims(spec: EnvSpec) -> tuple[int, int, int]:
    game = ZeroSumGame.for_env(spec)
    return env_dims(spec)[0], game.protagonist_dim, game.adversary_dim


def two_player_state(learner: str, policies: dict[str, GaussianPolicy]) -> Acting:
    states = {name: PolicyState.of(p.init_params(), p) for name, p in policies.items()}
    return Acting(states, learner=learner)


def test_two_player_sampling_records_the_learners_view():
    spec = EnvSpec("metarobust/HopperAdv-v0")
    obs_dim, protagonist_dim, adversary_dim = two_player_dims(spec)
    assert (obs_dim, protagonist_dim, adversary_dim) == (11, 3, 2)
    torch.manual_seed(0)
    policies = {
        "protagonist": GaussianPolicy(obs_dim, protagonist_dim),
        "adversary": GaussianPolicy(obs_dim, adversary_dim),
    }
    views = {}
    for learner in ("protagonist", "adversary"):
        game = ZeroSumGame.for_env(spec)
        with LocalSampler(spec, policies, seed=3, envs_per_worker=2, game=game) as sampler:
            steps = sampler.sample_steps(two_player_state(learner, policies), 120)
            episodes = sampler.sample_episodes(two_player_state(learner, policies), [None], 2, 5)
        views[learner] = steps, episodes
    (pro, pro_eps), (adv, adv_eps) = views["protagonist"], views["adversary"]
    # the same joint actions in both calls: the same states, rewards of opposite sign
    assert torch.equal(pro.obs, adv.obs) and torch.equal(pro.next_obs, adv.next_obs)
    assert torch.equal(adv.rewards, -pro.rewards)
    assert pro.episode_returns.numel() > 0
    assert torch.equal(adv.episode_returns, -pro.episode_returns)
    assert torch.equal(adv_eps.episode_returns, -pro_eps.episode_returns)
    # each view holds its learner's own actions and log-probs
    assert pro.actions.shape[-1] == protagonist_dim and adv.actions.shape[-1] == adversary_dim
    for traj, name in ((pro, "protagonist"), (adv, "adversary")):
        policy = policies[name]
        mean, log_std = distribution_params(policy, policy.init_params(), traj.obs)
        expected = gaussian_log_prob(mean, log_std, traj.actions)
        torch.testing.assert_close(traj.log_probs, expected, atol=1e-4, rtol=1e-4)


def test_a_population_opponent_plays_one_member_per_episode():
    spec = EnvSpec("metarobust/HopperAdv-v0")
    obs_dim, protagonist_dim, adversary_dim = two_player_dims(spec)
    torch.manual_seed(0)
    policies = {
        "protagonist": GaussianPolicy(obs_dim, protagonist_dim),
        "adversary": GaussianPolicy(obs_dim, adversary_dim),
    }
    members = []
    for bias in (0.0, 5.0):  # no force, and full force along +x and +z
        params = {
            k: torch.zeros_like(v) if k.startswith("mean_net.") else v
            for k, v in policies["adversary"].init_params().items()
        }
        params[[k for k in params if k.endswith("bias")][-1]] += bias
        members.append(params)
    protagonist = PolicyState.of(policies["protagonist"].init_params(), policies["protagonist"])

    def returns(adversary: PolicyState):
        acting = Acting({"protagonist": protagonist, "adversary": adversary}, learner="protagonist")
        game = ZeroSumGame.for_env(spec)
        with LocalSampler(spec, policies, seed=0, envs_per_worker=4, game=game) as sampler:
            return sampler.sample_episodes(acting, [None], 12, seed=9).episode_returns

    alone = [returns(PolicyState.of(m, policies["adversary"])) for m in members]
    population = PolicyState.population([PolicyState.of(m, policies["adversary"]) for m in members])
    mixed = returns(population)
    assert not torch.equal(alone[0], alone[1])
    met = [0 if torch.equal(r, alone[0][i]) else 1 for i, r in enumerate(mixed)]
    for i, m in enumerate(met):  # every episode is exactly one member's episode
        torch.testing.assert_close(mixed[i], alone[m][i], rtol=0, atol=0)
    assert set(met) == {0, 1}


def test_an_observation_adversary_shifts_only_the_protagonists_input():
    spec = EnvSpec("metarobust/HopperObsAdv-v0", {"epsilon": 0.1})
    obs_dim, protagonist_dim, adversary_dim = two_player_dims(spec)
    assert adversary_dim == obs_dim
    torch.manual_seed(0)
    policies = {
        "protagonist": GaussianPolicy(obs_dim, protagonist_dim),
        "adversary": GaussianPolicy(obs_dim, adversary_dim),
    }
    push = {  # the adversary's mean action saturates at +1 in every component
        k: torch.zeros_like(v) if k.startswith("mean_net.") else v
        for k, v in policies["adversary"].init_params().items()
    }
    push[[k for k in push if k.endswith("bias")][-1]] += 5.0
    views = {}
    for learner in ("protagonist", "adversary"):
        protagonist = policies["protagonist"]
        players = {
            "protagonist": PolicyState.of(protagonist.init_params(), protagonist),
            "adversary": PolicyState.of(push, policies["adversary"], deterministic=True),
        }
        state = Acting(players, learner=learner)
        game = ZeroSumGame.for_env(spec)
        with LocalSampler(spec, policies, seed=1, envs_per_worker=2, game=game) as sampler:
            views[learner] = sampler.sample_steps(state, 40)
    pro, adv = views["protagonist"], views["adversary"]
    torch.testing.assert_close(pro.obs, adv.obs + 0.1)  # the protagonist saw obs + epsilon
    same_episode = ~(adv.terminated | adv.truncated)[..., :-1]  # steps t -> t+1 in one episode
    true_next = adv.next_obs[..., :-1, :][same_episode]
    torch.testing.assert_close(adv.obs[..., 1:, :][same_episode], true_next)  # true states
    assert torch.equal(pro.next_obs, adv.next_obs)  # the physics are the same


def test_policies_must_match_the_number_of_players():
    module = GaussianPolicy(4, 1)
    with pytest.raises(ConfigError, match="two-player env needs policies"):
        LocalSampler(EnvSpec("metarobust/InvertedPendulumAdv-v0"), module, seed=0)
    with pytest.raises(ConfigError, match="one-player env takes one policy"):
        LocalSampler(EnvSpec("InvertedPendulum-v5"), {"protagonist": module}, seed=0)
    with pytest.raises(ConfigError, match="one-player env takes one policy"):
        policies = {"protagonist": module, "adversary": module}
        LocalSampler(EnvSpec("InvertedPendulum-v5"), policies, seed=0, game=ZeroSumGame(1, 1))


def test_each_phase_updates_only_its_learner(tiny_config, monkeypatch):
    log = []  # (learner, params of both players before, after)
    original = rarl.Learner.update
    players: dict[str, rarl.Learner] = {}

    def spy(self, traj):
        players[self.name] = self
        before = {
            n: {k: v.clone() for k, v in p.update_rule.params.items()} for n, p in players.items()
        }
        out = original(self, traj)
        after = {
            n: {k: v.clone() for k, v in p.update_rule.params.items()} for n, p in players.items()
        }
        log.append((self.name, before, after))
        return out

    monkeypatch.setattr(rarl.Learner, "update", spy)
    train(tiny_config("rarl", "alt", "adversarial.adversary_updates=2"))
    names = [name for name, _, _ in log]
    assert names == ["protagonist", "adversary", "adversary"] * 4  # N_mu = 1, N_nu = 2
    for name, before, after in log:
        for player in before:
            same = all(torch.equal(before[player][k], after[player][k]) for k in before[player])
            assert same == (player != name), (name, player)  # only the learner moves


def test_the_protagonist_learns_against_its_adversary(tiny_config, rows):
    """While its adversary trains against it, the protagonist's return rises well above its
    first iteration's: 2D navigation to a fixed goal in 20-step episodes, with a wind of at
    most half the point's speed, 20 iterations of 640 steps for each player."""
    run = train(
        tiny_config(
            "rarl", "learn", "env.id=metarobust/Navigation2DAdv-v0", "env.max_episode_steps=20",
            "env.task={goal: [0.4, 0.4]}", "policy.normalize_obs=false",
            "sampler.envs_per_worker=16", "ppo.num_steps=40", "ppo.minibatch_size=160",
            "ppo.num_epochs=4", "ppo.lr=0.001", "train.total_steps=12800", "checkpoint.every=100",
        )
    )  # fmt: skip
    returns = [r["charts/episodic_return"] for r in rows(run)]
    assert len(returns) == 20
    first, last = returns[0], sum(returns[-3:]) / 3
    # seeds 0-2: -12.9 to -14.3 in the first iteration, -3.3 to -4.1 in the last three
    assert last > first + 6.0, returns


@pytest.mark.parametrize(
    ("updates", "population", "mode"),
    [("ppo", 1, "uniform"), ("trpo", 1, "uniform"), ("ppo", 3, "uniform"), ("ppo", 2, "worst")],
)
def test_resume_equals_uninterrupted(tiny_config, rows, updates, population, mode):
    overrides = (
        f"adversarial.protagonist={updates}",
        f"adversarial.adversary={updates}",
        f"adversarial.population={population}",
        f"adversarial.population_mode={mode}",
    )
    straight = train(tiny_config("rarl", "straight", *overrides))
    split = train(tiny_config("rarl", "split", *overrides, "train.total_steps=256"))
    assert main(["train", "--resume", str(split), "--set", "train.total_steps=512"]) == 0
    assert rows(split) == rows(straight)
    assert [r["step"] for r in rows(straight)] == [128, 256, 384, 512]
    assert {
        "charts/episodic_return",
        "adversary/return",
        "losses/policy_loss",
        "adversary/policy_loss",
    } <= rows(straight)[-1].keys()
    a, b = load_checkpoint(split)["state"], load_checkpoint(straight)["state"]
    players_a, players_b = (
        [a["protagonist"], *a["adversaries"]],
        [b["protagonist"], *b["adversaries"]],
    )
    assert len(players_a) == len(players_b) == 1 + population
    for pa, pb in zip(players_a, players_b, strict=True):
        pa, pb = pa["update"]["params"], pb["update"]["params"]
        assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_rarl_config_errors(tmp_path, capsys):
    base = ["train", "--set", f"logging.log_dir={tmp_path}", "--set", "logging.progress=false"]
    assert main([*base, "--set", "train.algorithm=rarl", "--set", "env.id=Hopper-v5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("metarobust: error: env.id:") and "not a two-player env" in err
    assert len(err.splitlines()) == 1
    cfg = ["--config", "configs/adversarial_config.yaml", "--set", "train.algorithm=ppo"]
    assert main([*base, *cfg]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a two-player env; use train.algorithm=rarl" in err
    assert main([*base, "--set", "adversarial.protagonist=sac"]) == 2
    assert "adversarial.protagonist" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written for bad input


@pytest.mark.parametrize("learner", ["protagonist", "adversary"])
def test_per_task_protagonists_and_an_adversary_share_one_pass(learner):
    """Robust meta-learning's pass: each task's protagonist acts with its own (adapted)
    parameters beside an adversary (a population when the protagonist learns, one learning
    adversary otherwise); the same as each task sampled alone."""
    spec = EnvSpec("metarobust/InvertedPendulumAdv-v0")
    obs_dim, protagonist_dim, adversary_dim = two_player_dims(spec)
    torch.manual_seed(0)
    policies = {
        "protagonist": GaussianPolicy(obs_dim, protagonist_dim),
        "adversary": GaussianPolicy(obs_dim, adversary_dim),
    }
    pro, adv = policies["protagonist"], policies["adversary"]
    per_task = [pro.init_params(), GaussianPolicy(obs_dim, protagonist_dim).init_params()]
    members = [adv.init_params(), GaussianPolicy(obs_dim, adversary_dim).init_params()]
    adversary = PolicyState.population([PolicyState.of(m, adv) for m in members])
    if learner == "adversary":
        adversary = PolicyState.of(members[1], adv)
    stacked = {k: torch.stack([p[k] for p in per_task]) for k in per_task[0]}
    game = ZeroSumGame.for_env(spec)

    def sample(protagonist: PolicyState, tasks: int):
        acting = Acting({"protagonist": protagonist, "adversary": adversary}, learner=learner)
        with LocalSampler(spec, policies, seed=0, envs_per_worker=6, game=game) as sampler:
            return sampler.sample_episodes(acting, [None] * tasks, 6, seed=4, paired=True)

    both = sample(PolicyState.of(stacked, pro, stack="task"), tasks=2)
    width = protagonist_dim if learner == "protagonist" else adversary_dim
    assert both.actions.shape[-1] == width  # the learner's view
    for i, params in enumerate(per_task):
        alone = sample(PolicyState.of(params, pro), tasks=1)
        torch.testing.assert_close(both.obs[i], alone.obs[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(both.actions[i], alone.actions[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(both.rewards[i], alone.rewards[0])
        assert torch.equal(both.mask[i], alone.mask[0])
    assert not torch.allclose(both.obs[0], both.obs[1])  # the two protagonists really differ
