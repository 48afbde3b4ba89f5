"""Level generators: PLR's replay distribution, its buffer, ACCEL's edits, and ued runs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY

from metarobust.api import train
from metarobust.cli import main
from metarobust.config import load_config
from metarobust.envs.geometry import MAX_WALLS
from metarobust.envs.level_generation import RandomLevels, edit_level
from metarobust.envs.levels import level_row
from metarobust.envs.tasks import UniformGoal
from metarobust.generators.base import DomainRandomization, Proposal
from metarobust.generators.factory import make_generator
from metarobust.generators.plr import ACCEL, PLR
from metarobust.maml.algorithm import task_selection
from metarobust.runs.saved import SavedRun

TINY_UED = TINY["ued"][1]  # the tiny obstacle-world UED run of conftest


def plr_with(scores, last_scored, batches, **kwargs) -> PLR:
    plr = PLR(UniformGoal(), np.random.default_rng(0), **kwargs)
    plr.levels = [{"goal": [0.1 * i, 0.0]} for i in range(len(scores))]
    plr.scores, plr.last_scored, plr.batches = list(scores), list(last_scored), batches
    return plr


def test_plr_replay_probabilities_on_known_scores():
    """Ranks of scores [0.3, 0.1, 0.2] are [1, 3, 2]; with beta = 1: P_S ∝ [1, 1/3, 1/2] =
    [6, 2, 3] / 11. Staleness c - c_i with c = 10, c_i = [10, 6, 8]: [0, 4, 2] / 6."""
    plr = plr_with([0.3, 0.1, 0.2], [10, 6, 8], 10, temperature=1.0, staleness_coef=0.5)
    expected = 0.5 * np.array([6, 2, 3]) / 11 + 0.5 * np.array([0, 4, 2]) / 6
    np.testing.assert_allclose(plr.replay_probabilities(), expected)
    sharp = plr_with([0.3, 0.1, 0.2], [10, 10, 10], 10, temperature=0.5, staleness_coef=0.0)
    np.testing.assert_allclose(sharp.replay_probabilities(), np.array([36, 4, 9]) / 49)


def test_plr_scores_new_levels_for_the_buffer_and_trains_only_on_replays():
    plr = PLR(UniformGoal(), np.random.default_rng(1), buffer_size=4, replay_prob=1.0)
    first = plr.propose(3)
    assert not first.train and first.replayed is None  # nothing to replay yet
    plr.observe(first, np.array([0.5, 0.1, 0.9]))
    assert plr.levels == first.tasks and plr.last_scored == [1, 1, 1]
    replay = plr.propose(3)
    assert replay.train and replay.replayed is not None
    assert [plr.levels[i] for i in replay.replayed] == replay.tasks
    plr.observe(replay, np.array([2.0, 2.0, 2.0]))
    assert all(plr.scores[i] == 2.0 and plr.last_scored[i] == 2 for i in replay.replayed)
    # a full buffer keeps the highest-scored levels
    plr.scores = [0.5, 0.1, 0.9]
    plr._insert({"goal": [0.0, 0.3]}, 0.2, {"best_returns": 0.0})
    plr._insert({"goal": [0.0, 0.4]}, 0.3, {"best_returns": 0.0})  # evicts the 0.1 one
    plr._insert(
        {"goal": [0.0, 0.5]}, 0.01, {"best_returns": 0.0}
    )  # lower than every score: left out
    assert sorted(plr.scores) == [0.2, 0.3, 0.5, 0.9]
    assert {"goal": [0.0, 0.5]} not in plr.levels


def test_max_regret_keeps_the_best_return_seen_on_each_level():
    plr = PLR(UniformGoal(), np.random.default_rng(1), buffer_size=4, replay_prob=1.0)
    first = plr.propose(3)
    best = plr.combined(first, "best_returns", np.array([1.0, 5.0, 3.0]))  # new levels: their own
    np.testing.assert_array_equal(best, [1.0, 5.0, 3.0])
    plr.observe(first, best - 0.5, best_returns=best)
    assert plr.extras["best_returns"] == [1.0, 5.0, 3.0]
    replay = Proposal([plr.levels[i] for i in (1, 2, 1)], train=True, replayed=(1, 2, 1))
    best = plr.combined(replay, "best_returns", np.array([4.0, 4.0, 6.0]))
    np.testing.assert_array_equal(best, [5.0, 4.0, 6.0])  # the stored 5 beats a 4 now
    plr.observe(replay, best - 1.0, best_returns=best)
    assert plr.extras["best_returns"] == [1.0, 6.0, 4.0]  # level 1 drawn twice keeps its best, 6
    assert plr.scores == [0.5, 5.0, 3.0]


def test_plr_replays_often_the_levels_it_scored_high():
    plr = plr_with([5.0] + [0.1] * 9, [0] * 10, 1, temperature=0.3, staleness_coef=0.0)
    plr.replay_prob = 1.0
    draws = np.concatenate([plr.propose(10).replayed for _ in range(50)])
    assert (draws == 0).mean() > 0.8


def test_accel_edits_keep_levels_valid_and_close():
    rng = np.random.default_rng(2)
    levels = RandomLevels().sample(100, rng)
    kinds = set()
    for level in levels:
        edited = level
        for _ in range(5):
            edited = edit_level(edited, rng)
            level_row(edited)  # valid
            assert edited["start"] == level["start"]  # the start never moves
            assert len(edited["walls"]) <= MAX_WALLS
        kinds.add(len(edited["walls"]) - len(level["walls"]))
    assert len(kinds) > 2  # walls were added and removed


def test_accel_evaluates_the_edits_of_each_replay_next():
    distribution = RandomLevels()
    rng = np.random.default_rng(3)
    accel = ACCEL(distribution, rng, edit_level, buffer_size=8, replay_prob=1.0)
    batch = accel.propose(4)
    accel.observe(batch, np.ones(4))
    replay = accel.propose(4)
    assert replay.train
    accel.observe(replay, np.ones(4))
    edits = accel.propose(4)
    assert not edits.train and edits.replayed is None
    assert edits.tasks != replay.tasks and len(edits.tasks) == 4


def test_every_generators_proposals_are_valid_levels():
    for make in (
        lambda rng: DomainRandomization(RandomLevels(), rng),
        lambda rng: PLR(RandomLevels(), rng, buffer_size=16, replay_prob=0.5),
        lambda rng: ACCEL(RandomLevels(), rng, edit_level, buffer_size=16, replay_prob=0.5),
    ):
        generator = make(np.random.default_rng(4))
        for _ in range(20):
            proposal = generator.propose(8)
            assert isinstance(proposal, Proposal) and len(proposal.tasks) == 8
            for level in proposal.tasks:
                level_row(level)
            generator.observe(proposal, np.random.default_rng(5).random(8))


@pytest.mark.parametrize(
    "generator, score",
    [("dr", None), ("plr", None), ("accel", None), ("minimax", None), ("paired", None),
     ("plr", "max_regret"), ("accel", "max_regret")],
)  # fmt: skip
def test_ued_resume_equals_uninterrupted(tmp_path, generator, score, rows):
    base = [*TINY_UED, f"ued.generator={generator}", "logging.progress=false"]
    base += [f"ued.score={score}"] if score else []
    overrides = [*base, f"logging.log_dir={tmp_path}"]

    straight = train(load_config(None, [*overrides, "logging.run_name=straight"]))
    split = train(load_config(None, [*overrides, "logging.run_name=split", "ued.num_iterations=3"]))
    assert main(["train", "--resume", str(split), "--set", "ued.num_iterations=6"]) == 0
    assert rows(split) == rows(straight)
    trained = [r["generator/trained"] for r in rows(straight)]
    if generator in ("plr", "accel"):
        assert 0.0 in trained and 1.0 in trained  # evaluation-only and replay batches
    else:
        assert trained == [1.0] * 6
    if generator == "paired":
        assert all("antagonist/episodic_return" in r for r in rows(straight))


def test_accel_needs_the_obstacle_world(tiny_args, capsys):
    args = tiny_args("maml", "m", "train.algorithm=ued", "ued.generator=accel")
    assert main(args) == 2
    assert "ued.generator: accel edits obstacle levels" in capsys.readouterr().err


@pytest.mark.parametrize("generator", ["minimax", "paired"])
def test_designers_need_levels_or_a_box_of_task_parameters(tiny_args, capsys, generator):
    env = "env.id=metarobust/HalfCheetahDir-v0"  # forward or backward: no box
    args = tiny_args("maml", "m", "train.algorithm=ued", f"ued.generator={generator}", env)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"ued.generator: {generator} designs obstacle levels or tasks in a box" in err


def test_held_out_evaluation_and_the_curriculum_in_tensorboard(tmp_path, capsys, monkeypatch):
    """A ued run logs pictures of its levels and its buffer's scores; `metarobust evaluate`
    plays the named layouts and harder random levels: a CSV row and a picture per layout."""
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from metarobust.envs.levels import DEFAULT_LEVELS, load_levels

    overrides = [*TINY_UED, "ued.generator=accel", "ued.image_every=2", "logging.progress=false",
                 f"logging.log_dir={tmp_path}", "logging.run_name=run"]  # fmt: skip
    run = train(load_config(None, overrides))
    events = EventAccumulator(str(run))
    events.Reload()
    assert len(events.Images("generator/levels")) == 3  # iterations 0, 2, 4
    assert "generator/buffer_scores" in events.Tags()["histograms"]
    monkeypatch.chdir(tmp_path)  # the shipped layouts are found from any directory
    args = ["evaluate", str(run), "--episodes", "2", "--random-levels", "3"]
    assert main(args) == 0
    assert "named layouts solved" in capsys.readouterr().out
    with (run / "held_out.csv").open() as f:
        rows = list(csv.DictReader(f))
    named = list(load_levels(DEFAULT_LEVELS))
    assert [r["level"] for r in rows] == [*named, "random_0", "random_1", "random_2"]
    assert all(0.0 <= float(r["solved_rate"]) <= 1.0 for r in rows)
    assert {r["actions"] for r in rows} == {"mean"}
    assert {p.stem for p in (run / "held_out").glob("*.png")} == set(named)
    # --stochastic plays the levels with sampled actions: other paths, said in the CSV
    assert main([*args, "--stochastic"]) == 0
    assert "sampled actions" in capsys.readouterr().out
    with (run / "held_out.csv").open() as f:
        sampled = list(csv.DictReader(f))
    assert {r["actions"] for r in sampled} == {"sampled"}
    assert [r["return_mean"] for r in sampled] != [r["return_mean"] for r in rows]
    assert main([*args, "--random-levels", "-1"]) == 2


def linear_policy_run(tmp_path, name: str, gain: float):
    """A saved obstacle-world run whose policy's mean action is ``gain * (goal - position)``
    (one linear layer on the observation ``[position, goal, rays]``; 0 stands still)."""
    from metarobust.envs.obstacles import OBS_DIM
    from metarobust.utils.checkpoint import load_checkpoint, save_checkpoint

    overrides = ["env.id=metarobust/Navigation2DObstacles-v0", "policy.hidden_sizes=[]",
                 "ppo.num_steps=8", "ppo.minibatch_size=8", "ppo.num_epochs=1",
                 "train.total_steps=8", "logging.progress=false", f"logging.log_dir={tmp_path}",
                 f"logging.run_name={name}"]  # fmt: skip
    run = train(load_config(None, overrides))
    weight = torch.zeros(2, OBS_DIM)
    weight[[0, 1], [0, 1]], weight[[0, 1], [2, 3]] = -gain, gain
    checkpoint = load_checkpoint(run)
    params = checkpoint["policy"]["params"]
    params["mean_net.0.weight"], params["mean_net.0.bias"] = weight, torch.zeros(2)
    save_checkpoint(run, checkpoint)
    return run


def test_held_out_solved_rates_of_known_policies(tmp_path):
    """Heading straight for the goal (at full speed, 0.1 a step) solves the corridor in every
    episode, in 18 steps, and no layout whose straight line a wall crosses; standing still
    solves nothing, and is paid minus the start's distance to the goal at every step."""
    import csv

    def held_out(run) -> dict[str, dict]:
        args = ["evaluate", str(run), "--episodes", "2", "--random-levels", "2"]
        assert main(args) == 0
        with (run / "held_out.csv").open() as f:
            return {r["level"]: r for r in csv.DictReader(f)}

    straight = held_out(linear_policy_run(tmp_path, "straight", gain=10.0))
    corridor = straight["corridor"]
    assert float(corridor["solved_rate"]) == 1.0
    assert float(corridor["length_mean"]) == 18.0  # 1.8 from start to goal
    # minus the distance after each move (1.7, 1.6, ..., 0.1, 0), plus the arrival bonus 10
    assert float(corridor["return_mean"]) == pytest.approx(-15.3 + 10.0, abs=1e-3)
    for blocked in ("wall_gap", "u_trap"):  # a wall across the straight line: stuck at it
        assert float(straight[blocked]["solved_rate"]) == 0.0
    still = held_out(linear_policy_run(tmp_path, "still", gain=0.0))
    assert {float(r["solved_rate"]) for r in still.values()} == {0.0}
    assert float(still["corridor"]["length_mean"]) == 200.0  # the time limit
    assert float(still["corridor"]["return_mean"]) == pytest.approx(-1.8 * 200, abs=1e-3)


def test_maml_task_selection_by_plr_replays_and_resumes(tiny_config, rows):
    """maml.task_selection=plr: some meta-batches are replayed tasks (their adapted policies
    did worst), every batch is trained on, and a resumed run equals an uninterrupted one."""
    extra = ("maml.task_selection=plr", "ued.buffer_size=16", "ued.replay_prob=1.0")
    straight = train(tiny_config("maml", "straight", *extra))
    split = train(tiny_config("maml", "split", *extra, "maml.num_iterations=2"))
    assert main(["train", "--resume", str(split), "--set", "maml.num_iterations=4"]) == 0
    assert rows(split) == rows(straight)
    # the first batch fills the buffer; once it holds a batch's worth, every batch replays
    assert [r["generator/replayed"] for r in rows(straight)] == [0.0, 1.0, 1.0, 1.0]
    assert all("meta/post_adapt_return" in r for r in rows(straight))  # always trained
    assert rows(straight)[-1]["generator/buffer_size"] == 8.0


def test_designed_levels_are_valid_whatever_the_vector():
    from metarobust.generators.designer import DESIGN_DIM, decode

    rng = np.random.default_rng(6)
    for scale in (0.1, 1.0, 10.0, 1e6):
        for vector in scale * rng.standard_normal((50, DESIGN_DIM)):
            level = decode(vector)
            level_row(level)
            start, goal = np.array(level["start"]), np.array(level["goal"])
            assert np.abs(start).max() < 1 and np.abs(goal).max() < 1
            assert np.hypot(*(goal - start)) >= 0.1
    none = decode(-np.ones(DESIGN_DIM))  # every presence number negative: no walls
    assert none["walls"] == []


def test_paired_regret_on_known_returns():
    from metarobust.generators.designer import regret

    antagonist = np.array([[-5.0, -1.0], [-3.0, -3.0]])
    protagonist = np.array([[-4.0, -6.0], [-1.0, -2.0]])
    np.testing.assert_allclose(regret(antagonist, protagonist), [-1.0 + 5.0, -3.0 + 1.5])


def test_a_designer_moves_towards_the_levels_it_is_paid_for():
    """Paid the goal's x coordinate, the designer's goals move right."""
    from metarobust.generators.designer import LevelDesigner

    designer = LevelDesigner(RandomLevels(), np.random.default_rng(7), score="regret", lr=0.05)
    first = np.mean([level["goal"][0] for level in designer.propose(64).tasks])
    for _ in range(60):
        proposal = designer.propose(64)
        designer.observe(proposal, np.array([level["goal"][0] for level in proposal.tasks]))
    proposal = designer.propose(64)
    last = np.mean([level["goal"][0] for level in proposal.tasks])
    assert last > first + 0.5, (first, last)
    designer.observe(proposal, np.zeros(64))
    with pytest.raises(ValueError, match="once"):
        designer.observe(proposal, np.zeros(64))


def test_a_box_designer_stays_in_the_box_and_moves_to_the_tasks_it_is_paid_for():
    """Over velocities x mass scales x forces, paid the force: every proposal inside the
    box, and the forces move up while nothing pays for the rest."""
    from metarobust.envs.tasks import DynamicsScales, UniformVelocity, WithDynamics
    from metarobust.generators.designer import BoxDesigner

    ranges = {"mass_scale": (0.5, 2.0), "friction_scale": None, "damping_scale": None,
              "force_x": (-30.0, 30.0)}  # fmt: skip
    box = WithDynamics(UniformVelocity(0.0, 2.0), DynamicsScales(**ranges))
    designer = BoxDesigner(box, np.random.default_rng(3), score="negative_return", lr=0.05)
    forces = []
    for _ in range(80):
        proposal = designer.propose(32)
        for task in proposal.tasks:
            assert set(task) == {"velocity", "mass_scale", "force_x"}
            assert 0 <= task["velocity"] <= 2 and 0.5 <= task["mass_scale"] <= 2
            assert -30 <= task["force_x"] <= 30
        forces.append(np.mean([task["force_x"] for task in proposal.tasks]))
        metrics = designer.observe(proposal, np.array([t["force_x"] for t in proposal.tasks]))
    assert abs(forces[0]) < 5 and forces[-1] > 20, forces
    assert metrics["generator/mean_2"] == pytest.approx(forces[-1])


def test_the_cvar_sampler_moves_to_the_worst_tasks_of_a_toy_distribution():
    """Velocities uniform in [0, 2], the agent worse the faster: the worst tenth is [1.8, 2],
    whose mean is 1.9. The sampler starts uniform (likelihood ratio 1), then concentrates
    there while a fifth of each batch stays uniform; its tail estimate is the true one."""
    from metarobust.envs.tasks import UniformVelocity
    from metarobust.generators.cvar import CVaRSampler

    sampler = CVaRSampler(UniformVelocity(0.0, 2.0), np.random.default_rng(8), alpha=0.1)
    np.testing.assert_allclose(sampler.likelihood_ratio(np.random.rand(5, 1)), 1.0)
    tails = []
    for _ in range(20):
        proposal = sampler.propose(200)
        velocities = np.array([task["velocity"] for task in proposal.tasks])
        metrics = sampler.observe(proposal, velocities)
        tails.append(metrics["generator/tail_score"])
    assert metrics["generator/mean_0"] > 1.8
    assert np.mean(velocities < 1.0) > 0.05  # the uniform share
    assert abs(np.mean(tails[5:]) - 1.9) < 0.03


def test_cvar_needs_a_box_of_task_parameters(tiny_args, capsys):
    args = tiny_args("maml", "m", "env.id=metarobust/HalfCheetahDir-v0", "maml.task_selection=cvar")
    assert main(args) == 2
    assert "cvar task selection needs a distribution uniform over a box" in capsys.readouterr().err


def test_maml_task_selection_by_cvar_resumes(tiny_config, rows):
    straight = train(tiny_config("maml", "straight", "maml.task_selection=cvar"))
    split = train(tiny_config("maml", "split", "maml.task_selection=cvar", "maml.num_iterations=2"))
    assert main(["train", "--resume", str(split), "--set", "maml.num_iterations=4"]) == 0
    assert rows(split) == rows(straight)
    assert "generator/tail_score" in rows(straight)[-1]


@pytest.mark.parametrize("selection", ["minimax", "paired", "cvar", "plr"])
def test_maml_selects_tasks_with_their_dynamics_and_resumes(tiny_config, rows, selection):
    """HalfCheetahVel with each task's mass, friction and constant push drawn with it
    (env.task_distribution's dynamics ranges): every selection proposes tasks inside the box
    and a resumed run equals an uninterrupted one."""
    ranges = '{"dynamics": {"mass_scale": [0.5, 2.0], "friction_scale": [0.5, 2.0], ' \
        '"force_x": [-20.0, 20.0]}}'  # fmt: skip
    extra = ("env.id=metarobust/HalfCheetahVelDynamics-v0", "env.max_episode_steps=10",
             f"env.task_distribution={ranges}", f"maml.task_selection={selection}",
             "maml.meta_batch_size=4", "maml.episodes_per_task=2", "ued.buffer_size=4")  # fmt: skip
    straight = train(tiny_config("maml", "straight", *extra))
    split = train(tiny_config("maml", "split", *extra, "maml.num_iterations=2"))
    assert main(["train", "--resume", str(split), "--set", "maml.num_iterations=4"]) == 0
    assert rows(split) == rows(straight)
    tasks = SavedRun.load(straight).state.get("task_selection", {}).get("levels", [])
    for task in tasks:  # PLR's buffer: whole tasks, dynamics included
        assert set(task) == {"velocity", "mass_scale", "friction_scale", "force_x"}
    if selection in ("minimax", "paired"):  # the designer's mean task, inside the box
        means = [rows(straight)[-1][f"generator/mean_{k}"] for k in range(4)]
        assert 0 <= means[0] <= 2 and 0.5 <= means[1] <= 2 and 0.5 <= means[2] <= 2
        assert -20 <= means[3] <= 20


def test_plr_drives_a_dynamics_env(tmp_path, rows):
    """Levels are tasks: Robust PLR replays mass / friction / damping scales of a MuJoCo env."""

    cfg = load_config(None, [
        "train.algorithm=ued", "env.id=metarobust/InvertedPendulumDynamics-v0",
        "ued.generator=plr", "ued.num_iterations=3", "ued.levels_per_iteration=4",
        "ued.replay_prob=1.0", "sampler.envs_per_worker=4", "ppo.minibatch_size=32",
        "logging.progress=false", f"logging.log_dir={tmp_path}",
    ])  # fmt: skip
    run = train(cfg)
    assert [r["generator/replayed"] for r in rows(run)] == [0.0, 1.0, 1.0]
    assert [r["generator/trained"] for r in rows(run)] == [0.0, 1.0, 1.0]


def test_cvar_generator_drives_a_dynamics_env_and_resumes(tmp_path, rows):
    """ued.generator=cvar: RoML's sampler reshapes a Dynamics env's scales from the returns,
    stays inside their box, and a resumed run equals an uninterrupted one."""

    overrides = [
        "train.algorithm=ued", "env.id=metarobust/InvertedPendulumDynamics-v0",
        "ued.generator=cvar", "ued.num_iterations=4", "ued.levels_per_iteration=8",
        "sampler.envs_per_worker=8", "ppo.minibatch_size=32", "checkpoint.every=2",
        "logging.progress=false", f"logging.log_dir={tmp_path}",
    ]  # fmt: skip
    straight = train(load_config(None, [*overrides, "logging.run_name=straight"]))
    split = train(load_config(None, [*overrides, "logging.run_name=split", "ued.num_iterations=2"]))
    assert main(["train", "--resume", str(split), "--set", "ued.num_iterations=4"]) == 0
    assert rows(split) == rows(straight)
    from metarobust.envs import default_task_distribution

    low, high = default_task_distribution("metarobust/InvertedPendulumDynamics-v0").box()
    for row in rows(straight):
        means = [row[f"generator/mean_{k}"] for k in range(len(low))]
        assert np.all(low <= means) and np.all(means <= high)
        assert row["generator/trained"] == 1.0 and "generator/tail_score" in row


def test_cvar_generator_needs_a_box_of_task_parameters(tmp_path, capsys):
    args = ["train", "--set", "train.algorithm=ued", "--set", "ued.generator=cvar",
            "--set", "env.id=metarobust/Navigation2DObstacles-v0",
            "--set", f"logging.log_dir={tmp_path}"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "needs a distribution uniform over a box" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_a_ued_runs_budget_is_its_iterations(tmp_path):
    """A ued run is finished at ued.num_iterations, whatever its env steps: train.total_steps
    is PPO's budget, so a cut-off ued run past it is still resumed by the studies."""

    from metarobust.runs.saved import SavedRun

    overrides = [*TINY_UED, "ued.num_iterations=3", "train.total_steps=10",
                 "logging.progress=false", f"logging.log_dir={tmp_path}"]  # fmt: skip
    saved = SavedRun.load(train(load_config(None, overrides)))
    assert saved.env_steps > 10 and saved.finished
    cfg = saved.cfg.model_copy(
        update={"ued": saved.cfg.ued.model_copy(update={"num_iterations": 6})}
    )
    assert not replace(saved, cfg=cfg).finished


@pytest.mark.parametrize("generator", ["plr", "paired"])
def test_ued_step_budget_ends_at_equal_env_steps_and_resumes(tmp_path, generator, rows):
    """ued.total_steps: the run ends with the first iteration whose env steps (the antagonist's
    included) reach the budget; a run stopped at half the budget and resumed to the whole one
    equals an uninterrupted run; its saved run says when it is finished."""
    from metarobust.runs.saved import SavedRun

    base = [*TINY_UED, f"ued.generator={generator}", "ued.num_iterations=1",
            "logging.progress=false", f"logging.log_dir={tmp_path}"]  # fmt: skip
    straight = train(load_config(None, [*base, "ued.total_steps=1200", "logging.run_name=s"]))
    steps = [r["step"] for r in rows(straight)]
    assert len(steps) > 1 and steps[-2] < 1200 <= steps[-1]  # iterations past num_iterations
    split = train(load_config(None, [*base, "ued.total_steps=600", "logging.run_name=p"]))
    assert SavedRun.load(split).finished
    assert main(["train", "--resume", str(split), "--set", "ued.total_steps=1200"]) == 0
    assert rows(split) == rows(straight) and SavedRun.load(split).finished


def test_env_task_distribution_settings_reach_the_generators(tiny_args, capsys):
    """env.task_distribution replaces the distribution's defaults for a ued run's generator
    and for MAML's meta-batch; a setting it does not take is one line, exit code 2."""
    cfg = load_config(
        None, [*TINY_UED, 'env.task_distribution={"num_walls": [0, 0], "trap_prob": 0}']
    )

    def ued_generator(cfg):
        u = cfg.ued
        return make_generator(
            cfg, u.generator, np.random.default_rng(0), score=u.score, robust=True
        )

    levels = ued_generator(cfg).propose(16).tasks
    assert all(level["walls"] == [] for level in levels)
    default = ued_generator(load_config(None, TINY_UED))
    assert any(level["walls"] for level in default.propose(16).tasks)

    nav = ["env.id=metarobust/Navigation2D-v0", 'env.task_distribution={"low": 0.4}']
    goals = task_selection(load_config(None, nav), np.random.default_rng(0)).propose(32).tasks
    assert all(0.4 <= g <= 0.5 for task in goals for g in task["goal"])

    args = tiny_args(
        "maml", "m", "env.id=metarobust/Navigation2D-v0", 'env.task_distribution={"radius": 1}'
    )
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("unexpected keyword argument 'radius' (settings given: {'radius': 1})")
    assert len(err.splitlines()) == 1
