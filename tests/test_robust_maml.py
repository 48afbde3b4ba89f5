"""Robust MAML: who learns when, the zero-sum record of adapted episodes, phases, resume."""

from __future__ import annotations

import pytest
import torch

from metarobust.adversarial import robust_maml
from metarobust.adversarial.attack import attack
from metarobust.adversarial.game import ZeroSumGame
from metarobust.agents.policy import GaussianPolicy
from metarobust.api import train
from metarobust.cli import main
from metarobust.maml.outer import MetaTRPO
from metarobust.policy_gradient import Learner
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.sampler import LocalSampler
from metarobust.utils.checkpoint import load_checkpoint

META = ("meta/",)


def snapshot(algo: robust_maml.RobustMAML) -> dict[str, dict[str, torch.Tensor]]:
    players = {"meta": algo.outer.params}
    players |= {
        f"adversary{k}": m.update_rule.params for k, m in enumerate(algo.population.members)
    }
    return {n: {k: v.detach().clone() for k, v in p.items()} for n, p in players.items()}


def test_the_adversary_is_frozen_in_the_meta_update_and_the_meta_policy_in_its(
    tiny_config, monkeypatch
):
    log = []  # (who moved, snapshot before, snapshot after)
    algos: list[robust_maml.RobustMAML] = []
    original_init = robust_maml.RobustMAML.__init__

    def init(self, setup):
        original_init(self, setup)
        algos.append(self)

    def spy(name, original):
        def call(self, *args):
            before = snapshot(algos[0])
            out = original(self, *args)
            log.append((name, before, snapshot(algos[0])))
            return out

        return call

    monkeypatch.setattr(robust_maml.RobustMAML, "__init__", init)
    monkeypatch.setattr(MetaTRPO, "step", spy("meta", MetaTRPO.step))
    monkeypatch.setattr(Learner, "update", spy("adversary0", Learner.update))
    train(tiny_config("robust_maml", "frozen", "maml.num_iterations=2",
                      "adversarial.adversary_updates=2"))  # fmt: skip
    assert [name for name, _, _ in log] == ["meta", "adversary0", "adversary0"] * 2
    for name, before, after in log:
        for player in before:
            same = all(torch.equal(before[player][k], after[player][k]) for k in before[player])
            assert same == (player != name), (name, player)  # only the learner moves


def test_adapted_episodes_pay_the_adversary_exactly_minus_the_protagonists_reward():
    spec = EnvSpec("metarobust/Navigation2DAdv-v0")
    game = ZeroSumGame.for_env(spec)
    torch.manual_seed(0)
    policies = {"protagonist": GaussianPolicy(2, 2), "adversary": GaussianPolicy(2, 2)}
    pro, adv = policies["protagonist"], policies["adversary"]
    adapted = [pro.init_params(), GaussianPolicy(2, 2).init_params()]
    stacked = {k: torch.stack([p[k] for p in adapted]) for k in adapted[0]}
    players = {
        "protagonist": PolicyState.of(stacked, pro, stack="task"),
        "adversary": PolicyState.of(adv.init_params(), adv),
    }
    tasks = [{"goal": [0.3, 0.2]}, {"goal": [-0.4, 0.1]}]
    views = {}
    for learner in ("protagonist", "adversary"):
        with LocalSampler(spec, policies, seed=0, envs_per_worker=8, game=game) as sampler:
            views[learner] = sampler.sample_episodes(Acting(players, learner), tasks, 4, seed=2)
    p, a = views["protagonist"], views["adversary"]
    assert torch.equal(a.rewards, -p.rewards) and torch.equal(a.obs, p.obs)
    assert torch.equal(a.episode_returns, -p.episode_returns)
    assert p.actions.shape[-1] == a.actions.shape[-1] == 2
    assert not torch.equal(a.actions, p.actions)  # each view holds its own learner's actions


def test_the_adversary_acts_only_in_the_phases_it_is_given(tiny_config, rows):
    """With no phase, the meta-update ignores what the adversary learned; with both it does."""

    def meta_rows(name: str, *overrides: str) -> list[dict]:
        ppo = ("adversarial.adversary=ppo", "ppo.num_epochs=2", "ppo.minibatch_size=512")
        run = train(tiny_config("robust_maml", name, "maml.num_iterations=3", *ppo, *overrides))
        return [{k: v for k, v in r.items() if k.startswith(META)} for r in rows(run)]

    idle = meta_rows("idle_a", "adversarial.acts_in=[]")
    assert idle == meta_rows("idle_b", "adversarial.acts_in=[]", "ppo.lr=0.01")
    acting = meta_rows("acting_a", "adversarial.acts_in=[pre,post]")
    assert acting != meta_rows("acting_b", "adversarial.acts_in=[pre,post]", "ppo.lr=0.01")
    assert acting[0]["meta/pre_adapt_return"] != idle[0]["meta/pre_adapt_return"]


def test_before_joining_the_adversaries_neither_act_nor_train(tiny_config, rows, monkeypatch):
    """Iterations before adversarial.joins_at are those of an adversary acting in no phase,
    with no adversary pass; from joins_at on it acts (untrained) and trains."""
    updates = []
    original = Learner.update

    def update(self, traj):
        updates.append(len(traj.episode_returns))
        return original(self, traj)

    monkeypatch.setattr(Learner, "update", update)

    def meta_rows(name: str, *overrides: str) -> list[dict]:
        run = train(tiny_config("robust_maml", name, "maml.num_iterations=3", *overrides))
        return rows(run)

    late = meta_rows("late", "adversarial.joins_at=2", "adversarial.episodes_per_task=3")
    assert updates == [8 * 3]  # one update, in the last iteration, of 3 episodes per task
    idle = meta_rows("idle", "adversarial.acts_in=[]")
    assert len(updates) == 1 + 3

    def meta(row: dict) -> dict:
        return {k: v for k, v in row.items() if k.startswith(META)}

    assert [meta(r) for r in late[:2]] == [meta(r) for r in idle[:2]]
    assert not any(k.startswith("adversary/") for r in late[:2] for k in r)
    assert meta(late[2]) != meta(idle[2]) and "adversary/return" in late[2]


def test_an_attack_trains_from_its_first_iteration_whatever_the_victims_schedule(tiny_config, rows):
    schedule = ("adversarial.joins_at=5", "adversarial.episodes_per_task=2")
    victim = train(tiny_config("robust_maml", "late", "maml.num_iterations=1", *schedule))
    run = attack(victim, 2 * 8 * 8 * 100, seed=0)  # two passes of the victim's meta-batch
    first = rows(run)[0]
    assert "adversary/return" in first
    # one pre-adaptation and one adversary pass of 8 tasks x 8 episodes of at most 100 steps
    # (a few end at the goal); with the victim's 2 adversary episodes it would be 8,000 at most
    assert 1.5 * 8 * 8 * 100 < first["step"] <= 2 * 8 * 8 * 100


@pytest.mark.parametrize(
    "extra",
    [
        ("adversarial.population=1",),
        ("adversarial.population=2",),
        ("adversarial.joins_at=3", "adversarial.episodes_per_task=2"),  # joins after the cut
    ],
)
def test_resume_equals_uninterrupted(tiny_config, rows, extra):
    straight = train(tiny_config("robust_maml", "straight", *extra))
    split = train(tiny_config("robust_maml", "split", *extra, "maml.num_iterations=2"))
    assert main(["train", "--resume", str(split), "--set", "maml.num_iterations=4"]) == 0
    assert rows(split) == rows(straight)
    assert {"meta/post_adapt_return", "adversary/return", "adversary/kl"} <= rows(split)[-1].keys()
    a, b = load_checkpoint(split)["state"], load_checkpoint(straight)["state"]
    for pa, pb in zip(a["adversaries"], b["adversaries"], strict=True):
        pa, pb = pa["update"]["params"], pb["update"]["params"]
        assert all(torch.equal(pa[k], pb[k]) for k in pa)


@pytest.mark.parametrize("setting", ["joins_at=2", "episodes_per_task=4"])
def test_the_adversary_schedule_is_for_robust_maml_only(tiny_args, capsys, setting):
    assert main(tiny_args("rarl", "r", f"adversarial.{setting}")) == 2
    err = capsys.readouterr().err
    assert f"adversarial.{setting.split('=')[0]}: only train.algorithm robust_maml" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_robust_maml_needs_a_two_player_task_env(tiny_args, capsys):
    assert main(tiny_args("robust_maml", "one", "env.id=metarobust/Navigation2D-v0")) == 2
    assert "not a two-player env" in capsys.readouterr().err
    assert main(tiny_args("maml", "two", "env.id=metarobust/Navigation2DAdv-v0")) == 2
    assert "use train.algorithm=robust_maml" in capsys.readouterr().err
