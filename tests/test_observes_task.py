"""adversarial.observes_task: the adversary's input is the observation plus its task's features."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from metarobust.adversarial.game import ZeroSumGame
from metarobust.agents.policy import GaussianPolicy
from metarobust.api import train
from metarobust.cli import main
from metarobust.envs.task_defaults import default_task_distribution
from metarobust.envs.tasks import (
    DiskGoal,
    DynamicsScales,
    RandomDirection,
    UniformGoal,
    UniformVelocity,
)
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.sampler import LocalSampler
from metarobust.sampling.subprocess_backend import SubprocessSampler
from metarobust.utils.checkpoint import load_checkpoint

NAV = EnvSpec("metarobust/Navigation2DAdv-v0")
TASKS = [{"goal": [0.3, 0.2]}, {"goal": [-0.4, 0.1]}, {"goal": [0.05, -0.45]}]


def test_the_features_of_each_task_distribution():
    cases = [
        (UniformGoal(), {"goal": [0.3, -0.2]}, [0.3, -0.2]),
        (DiskGoal(), {"goal": (1.5, 2)}, [1.5, 2.0]),
        (UniformVelocity(), {"velocity": 1.25}, [1.25]),
        (RandomDirection(), {"direction": -1}, [-1.0]),
        (DynamicsScales(), {"mass_scale": 0.8, "friction_scale": 1.2, "damping_scale": 1.0},
         [0.8, 1.2, 1.0]),
        (DynamicsScales(friction_scale=None), {"mass_scale": 0.7}, [0.7, 1.0]),  # damping nominal
    ]  # fmt: skip
    for distribution, task, want in cases:
        got = distribution.features(task)
        assert got.dtype == np.float32 and got.shape == (distribution.feature_dim,)
        np.testing.assert_array_equal(got, np.asarray(want, np.float32))
        assert not distribution.features(None).any()  # no task: zeros
        assert distribution.features(None).shape == (distribution.feature_dim,)
    drawn = UniformVelocity(0.0, 3.0).sample(4, np.random.default_rng(0))
    features = [UniformVelocity().features(t)[0] for t in drawn]
    assert features == pytest.approx([t["velocity"] for t in drawn])
    assert default_task_distribution("metarobust/HalfCheetahVelAdv-v0").feature_dim == 1


def _per_task_players(adversary_obs_dim: int):
    torch.manual_seed(0)
    pro, adv = GaussianPolicy(2, 2), GaussianPolicy(adversary_obs_dim, 2)
    adapted = [GaussianPolicy(2, 2).init_params() for _ in TASKS]
    stacked = {k: torch.stack([p[k] for p in adapted]) for k in adapted[0]}
    players = {
        "protagonist": PolicyState.of(stacked, pro, stack="task"),
        "adversary": PolicyState.of(adv.init_params(), adv),
    }
    return {"protagonist": pro, "adversary": adv}, players


@pytest.mark.parametrize("backend", ["local", "subprocess"])
def test_the_adversary_records_the_observation_and_its_episodes_task(backend):
    game = ZeroSumGame.for_env(NAV, observes_task=True)
    assert game.task_features == 2 and game.learner_obs_dim("adversary", 2) == 4
    assert game.learner_obs_dim("protagonist", 2) == 2
    policies, players = _per_task_players(4)
    views = {}
    for learner in ("protagonist", "adversary"):
        if backend == "local":
            sampler = LocalSampler(NAV, policies, seed=0, envs_per_worker=5, game=game)
        else:
            sampler = SubprocessSampler(NAV, policies, 0, envs_per_worker=3, game=game)
        with sampler:
            views[learner] = sampler.sample_episodes(Acting(players, learner), TASKS, 3, seed=2)
    p, a = views["protagonist"], views["adversary"]
    assert p.obs.shape[-1] == p.next_obs.shape[-1] == 2
    assert a.obs.shape[-1] == a.next_obs.shape[-1] == 4
    assert torch.equal(a.obs[..., :2], p.obs) and torch.equal(a.next_obs[..., :2], p.next_obs)
    assert torch.equal(a.rewards, -p.rewards)
    mask = a.mask.bool()  # [task, episode, time]
    for i, task in enumerate(TASKS):
        goal = torch.tensor(task["goal"], dtype=torch.float32)
        for obs in (a.obs, a.next_obs):
            seen = obs[i][mask[i]][:, 2:]
            assert seen.shape[0] > 0 and torch.equal(seen, goal.expand_as(seen))


def test_without_observes_task_the_adversary_sees_the_observation_alone():
    game = ZeroSumGame.for_env(NAV)
    assert game.task_features == 0 and game.learner_obs_dim("adversary", 2) == 2
    policies, players = _per_task_players(2)
    with LocalSampler(NAV, policies, seed=0, envs_per_worker=5, game=game) as sampler:
        a = sampler.sample_episodes(Acting(players, "adversary"), TASKS, 2, seed=2)
    assert a.obs.shape[-1] == 2


def test_an_adversary_that_sees_the_goal_acts_on_it():
    """Same positions, other goals: other actions (the goal is part of its input)."""
    game = ZeroSumGame.for_env(NAV, observes_task=True)
    policies, players = _per_task_players(4)
    actions = []
    for goal in ([0.4, 0.4], [-0.4, -0.4]):
        tasks = [{"goal": goal}] * len(TASKS)
        with LocalSampler(NAV, policies, seed=0, envs_per_worker=6, game=game) as sampler:
            actions.append(sampler.sample_episodes(Acting(players, "adversary"), tasks, 2, 2))
    first, second = actions
    assert torch.equal(first.obs[:, :, 0, :2], second.obs[:, :, 0, :2])  # same start
    assert not torch.equal(first.actions[:, :, 0], second.actions[:, :, 0])


def test_robust_maml_observing_the_task_trains_and_resumes(tiny_config, rows):
    extra = ("adversarial.observes_task=true",)
    straight = train(tiny_config("robust_maml", "straight", *extra))
    split = train(tiny_config("robust_maml", "split", *extra, "maml.num_iterations=2"))
    assert main(["train", "--resume", str(split), "--set", "maml.num_iterations=4"]) == 0
    assert rows(split) == rows(straight)
    assert "adversary/return" in rows(split)[-1]
    a, b = load_checkpoint(split)["state"], load_checkpoint(straight)["state"]
    for pa, pb in zip(a["adversaries"], b["adversaries"], strict=True):
        pa, pb = pa["update"]["params"], pb["update"]["params"]
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    inputs = {v.shape[1] for k, v in a["adversaries"][0]["update"]["params"].items() if v.ndim == 2}
    assert 4 in inputs  # the first layer takes position and goal
    protagonist = {v.shape[1] for v in a["outer"]["meta_params"].values() if v.ndim == 2}
    assert 4 not in protagonist


def test_observes_task_is_for_robust_maml_only(tiny_args, capsys):
    assert main(tiny_args("maml", "m", "adversarial.observes_task=true")) == 2
    err = capsys.readouterr().err.strip()
    assert "adversarial.observes_task: only train.algorithm robust_maml" in err
    assert len(err.splitlines()) == 1


def test_under_attack_with_adversaries_that_see_the_task(tiny_config, capsys):
    """A robust-MAML run whose adversary sees the goal is evaluated against it and against a
    fresh attacker that sees the goal too; an attacker that does not is refused beside it."""
    from metarobust.adversarial.attack import attack

    run = train(
        tiny_config(
            "robust_maml", "seer", "adversarial.observes_task=true", "maml.num_iterations=1"
        )
    )
    seeing = attack(run, 2 * 6400, seed=0, overrides=["adversarial.observes_task=true"])
    blind = attack(run, 2 * 6400, seed=1, overrides=["adversarial.observes_task=false"])
    args = [
        "evaluate",
        str(run),
        "--under-attack",
        "--tasks",
        "4",
        "--episodes",
        "2",
        "--steps",
        "1",
    ]
    assert main([*args, "--attacker", str(seeing)]) == 0
    with (run / "under_attack.csv").open() as f:
        conditions = {row["condition"] for row in csv.DictReader(f)}
    assert conditions == {"none", "own", "fresh", "random"}
    capsys.readouterr()
    assert main([*args, "--attacker", str(blind)]) == 2
    assert "differ in adversarial.observes_task" in capsys.readouterr().err
