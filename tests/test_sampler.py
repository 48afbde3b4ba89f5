"""The shared sampler: shapes, episode boundaries, reproducibility and backend equivalence."""

from __future__ import annotations

import copy
import math
from dataclasses import fields

import gymnasium as gym
import numpy as np
import pytest
import torch

from metarobust.agents.policy import GaussianPolicy, distribution_params, gaussian_log_prob
from metarobust.cli import main
from metarobust.config import SamplerConfig, load_config
from metarobust.errors import ConfigError, WorkerError
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import EnvSpec, env_dims, make_env, make_vector_env
from metarobust.sampling.ray_backend import RaySampler
from metarobust.sampling.sampler import LocalSampler
from metarobust.sampling.sampler_factory import make_sampler
from metarobust.sampling.subprocess_backend import SubprocessSampler
from metarobust.sampling.worker import RolloutWorker
from metarobust.trajectories import Trajectories

PENDULUM = EnvSpec("InvertedPendulum-v5", {}, 40)  # terminates early under a random policy
NAV = EnvSpec("metarobust/Navigation2D-v0", {}, 20)  # natively vectorized


def policy_for(spec: EnvSpec, seed: int = 0, init_std: float = 1.0) -> GaussianPolicy:
    torch.manual_seed(seed)
    return GaussianPolicy(*env_dims(spec), hidden_sizes=(32, 32), init_std=init_std)


def state_of(policy: GaussianPolicy) -> Acting:
    return Acting.single(PolicyState.of(policy.init_params(), policy))


def assert_identical(a: Trajectories, b: Trajectories) -> None:
    for f in fields(Trajectories):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.shape == y.shape and x.dtype == y.dtype, f.name
        # bit for bit; NaN (an env without success) equals NaN
        torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True, msg=f.name)


def assert_same_up_to_rounding(a: Trajectories, b: Trajectories) -> None:
    """Same episodes, values equal up to float rounding (a different batch split)."""
    for f in fields(Trajectories):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.shape == y.shape and x.dtype == y.dtype, f.name
        if x.is_floating_point():
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, equal_nan=True, msg=f.name)
        else:
            assert torch.equal(x, y), f.name


def sample_both_modes(sampler, state) -> tuple[Trajectories, Trajectories, Trajectories]:
    episodes = sampler.sample_episodes(state, [None, None, None], 3, seed=11)
    return episodes, sampler.sample_steps(state, 30), sampler.sample_steps(state, 30)


class ResetSpy:
    """Records the seeds every env of a worker is reset with, in order."""

    def __init__(self, worker: RolloutWorker) -> None:
        env = worker.stepper.env
        self.seeds: list[list[int]] = [[] for _ in range(worker.stepper.num_envs)]
        self._reset = env.reset
        env.reset = self

    def __call__(self, *, seed, options):
        for i in np.flatnonzero(options["reset_mask"]):
            self.seeds[i].append(seed[i])
        return self._reset(seed=seed, options=options)


# ---------------------------------------------------------------------- env factory


def test_vector_env_kinds_have_autoreset_disabled():
    sync = make_vector_env(PENDULUM, 2)
    native = make_vector_env(NAV, 3)
    try:
        assert isinstance(sync, gym.vector.SyncVectorEnv)
        assert type(native).__name__ == "Navigation2DVectorEnv"
        for env in (sync, native):
            assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.DISABLED
        assert native.max_episode_steps == 20
        assert sync.envs[0].spec.max_episode_steps == 40
    finally:
        sync.close()
        native.close()
    with pytest.raises(ConfigError, match="unknown env id"):
        make_vector_env(EnvSpec("NoSuchEnv-v0"), 1)


@pytest.mark.parametrize(
    ("env_id", "build"),
    [
        ("HalfCheetah-v5", make_env),
        ("HalfCheetah-v5", lambda spec: make_vector_env(spec, 2)),  # a SyncVectorEnv
        ("metarobust/HalfCheetahVel-v0", make_env),
        ("metarobust/HalfCheetahVel-v0", lambda spec: make_vector_env(spec, 2)),  # native
        ("metarobust/AntDynamics-v0", make_env),
        ("metarobust/HopperAdv-v0", make_env),
        ("metarobust/Navigation2D-v0", make_env),
    ],
)
def test_unknown_env_kwarg_is_a_config_error(env_id, build):
    with pytest.raises(ConfigError) as err:
        build(EnvSpec(env_id, {"bogus": 1}))
    assert str(err.value) == (
        f"env.kwargs: {env_id} takes no argument 'bogus' (got env.kwargs={{'bogus': 1}})"
    )


def test_env_kwarg_that_metarobust_sets_is_a_config_error():
    with pytest.raises(ConfigError, match="env.kwargs: 'max_episode_steps' of Hopper-v5 is set"):
        make_env(EnvSpec("Hopper-v5", {"max_episode_steps": 10}))


def _broken_env(**kwargs):
    raise TypeError("helper() got an unexpected keyword argument 'scale'")


def test_env_type_errors_not_about_its_kwargs_are_raised_as_they_are():
    """Only a keyword the user gave is their mistake; any other TypeError is the env's bug."""
    gym.register(id="test_sampler/Broken-v0", entry_point=_broken_env)
    try:
        with pytest.raises(TypeError, match="unexpected keyword argument 'scale'"):
            make_env(EnvSpec("test_sampler/Broken-v0", {"size": 2}))
    finally:
        del gym.registry["test_sampler/Broken-v0"]


def test_unknown_env_kwarg_stops_the_cli(capsys, tmp_path):
    overrides = ["env.id=HalfCheetah-v5", "env.kwargs={bogus: 1}", f"logging.log_dir={tmp_path}"]
    assert main(["train", *(a for o in overrides for a in ("--set", o))]) == 2
    err = capsys.readouterr().err
    assert err == (
        "metarobust: error: env.kwargs: HalfCheetah-v5 takes no argument 'bogus' "
        "(got env.kwargs={'bogus': 1})\n"
    )


def test_env_spec_from_config():
    cfg = load_config(None, ["env.id=metarobust/AntVel-v0", "env.kwargs={task: {velocity: 2}}"])
    spec = EnvSpec.from_config(cfg.env)
    assert spec == EnvSpec("metarobust/AntVel-v0", {"task": {"velocity": 2}}, None)
    spec.kwargs["task"] = "changed"
    assert cfg.env.kwargs == {"task": {"velocity": 2}}  # the spec has its own kwargs dict
    spec = EnvSpec.from_config(load_config(None, ["env.max_episode_steps=50"]).env)
    assert spec == EnvSpec("InvertedPendulum-v5", {}, 50)


# ---------------------------------------------------------------------- episode mode


def test_episode_shapes_masks_padding_and_returns():
    policy = policy_for(PENDULUM)
    with LocalSampler(PENDULUM, policy, seed=0, envs_per_worker=4) as sampler:
        traj = sampler.sample_episodes(state_of(policy), [None, None], 5, seed=3)
    assert traj.obs.shape == (2, 5, 40, 4) and traj.actions.shape == (2, 5, 40, 1)
    for name in ("rewards", "log_probs", "terminated", "truncated", "mask"):
        assert getattr(traj, name).shape == (2, 5, 40), name
    lengths = traj.mask.sum(-1).long()  # [task, episode]
    assert (lengths < 40).any(), "InvertedPendulum should terminate early under noise"
    t = torch.arange(40)
    assert torch.equal(traj.mask.bool(), t < lengths[..., None])  # a prefix of ones
    last = (lengths - 1)[..., None]
    ended = (traj.terminated | traj.truncated).gather(-1, last).squeeze(-1)
    assert ended.all()
    assert torch.equal((traj.terminated | traj.truncated).sum(-1), torch.ones(2, 5).long())
    assert traj.truncated.gather(-1, last).squeeze(-1).equal(lengths == 40)
    padding = ~traj.mask.bool()
    assert (traj.obs[padding] == 0).all() and (traj.rewards[padding] == 0).all()
    # inside an episode the next observation is the next step's observation: no fake resets
    inside = traj.mask[..., 1:].bool()
    assert torch.equal(traj.next_obs[..., :-1, :][inside], traj.obs[..., 1:, :][inside])
    # one finished-episode record per episode, in [task, episode] order
    assert torch.allclose(traj.episode_returns, (traj.rewards * traj.mask).sum(-1).flatten())
    assert torch.equal(traj.episode_lengths, lengths.flatten())
    assert torch.equal(traj.episode_tasks, torch.tensor([0] * 5 + [1] * 5))
    assert torch.isfinite(traj.log_probs[traj.mask.bool()]).all()


def test_episode_data_does_not_depend_on_envs_or_workers():
    """Units carry their own seeds: any split gives the same episodes (up to rounding)."""
    policy = policy_for(PENDULUM)
    state = state_of(policy)
    runs = []
    for workers, envs in ((1, 1), (1, 6), (3, 2), (2, 8)):
        with LocalSampler(PENDULUM, policy, 0, envs_per_worker=envs, num_workers=workers) as s:
            runs.append(s.sample_episodes(state, [None, None, None], 2, seed=5))
    for other in runs[1:]:
        assert_same_up_to_rounding(runs[0], other)
    with LocalSampler(PENDULUM, policy, 0, envs_per_worker=3) as sampler:
        assert_identical(sampler.sample_episodes(state, [None, None, None], 2, seed=5), runs[0])
        different = sampler.sample_episodes(state, [None, None, None], 2, seed=6)
    assert not torch.equal(different.actions, runs[0].actions)


def test_paired_episodes_share_starts_and_noise_across_tasks():
    """``paired``: episode r of every task starts alike (common random numbers); unpaired, not."""
    policy = policy_for(NAV)
    goals = [{"goal": [0.3, 0.3]}, {"goal": [-0.4, 0.1]}, {"goal": [0.0, -0.2]}]
    with LocalSampler(NAV, policy, 0, envs_per_worker=4) as sampler:
        paired = sampler.sample_episodes(state_of(policy), goals, 2, seed=5, paired=True)
        unpaired = sampler.sample_episodes(state_of(policy), goals, 2, seed=5)
    first_actions = paired.actions[:, :, 0]  # [task, episode, act_dim]: same obs, same noise
    assert torch.equal(first_actions[0], first_actions[1])
    assert torch.equal(first_actions[0], first_actions[2])
    assert not torch.equal(first_actions[0, 0], first_actions[0, 1])  # episodes still differ
    assert not torch.equal(paired.rewards[0], paired.rewards[1])  # the goals differ
    assert not torch.equal(unpaired.actions[0, :, 0], unpaired.actions[1, :, 0])
    torch.testing.assert_close(paired.actions[0], unpaired.actions[0])  # task 0: same seeds


def test_per_task_params_give_per_task_actions_on_native_vector_env():
    """Two tasks, two parameter sets: task 0 walks onto its goal (and terminates), task 1 away."""
    policy = policy_for(NAV)
    params = policy.init_params()
    bias = "mean_net.4.bias"
    per_task = {k: torch.stack([v, v]) for k, v in params.items()}
    for k in per_task:
        if k.startswith("mean_net") and k.endswith("weight"):
            per_task[k].zero_()
    per_task[bias][0] = torch.tensor([0.05, 0.0])
    per_task[bias][1] = torch.tensor([-0.05, 0.0])
    tasks = [{"goal": [0.2, 0.0]}, {"goal": [0.5, 0.5]}]
    state = Acting.single(PolicyState(per_task, deterministic=True, stack="task"))
    with LocalSampler(NAV, policy, seed=0, envs_per_worker=3, num_workers=2) as sampler:
        traj = sampler.sample_episodes(state, tasks, 3, seed=0)
    assert traj.obs.shape == (2, 3, 20, 2)
    valid = traj.mask.bool()
    assert torch.allclose(traj.actions[0][valid[0]], torch.tensor([0.05, 0.0]))
    assert torch.allclose(traj.actions[1][valid[1]], torch.tensor([-0.05, 0.0]))
    # task 0 reaches its goal after 4 steps and terminates; task 1 runs into its time limit
    assert traj.episode_lengths.tolist() == [4, 4, 4, 20, 20, 20]
    assert traj.terminated[0, :, 3].all() and not traj.terminated[0, :, 4:].any()
    assert traj.truncated[1, :, 19].all()
    assert torch.allclose(traj.next_obs[0, :, 3], torch.tensor([0.2, 0.0]))

    # the same as sampling each task alone with shared parameters
    for task in (0, 1):
        shared = Acting.single(
            PolicyState({k: v[task] for k, v in per_task.items()}, deterministic=True)
        )
        with LocalSampler(NAV, policy, seed=0, envs_per_worker=2) as sampler:
            alone = sampler.sample_episodes(shared, [tasks[task]], 3, seed=0)
        assert torch.allclose(alone.actions[0], traj.actions[task])
        assert torch.equal(alone.mask[0], traj.mask[task])


def test_sampled_actions_follow_the_policy_distribution():
    policy = policy_for(NAV, init_std=0.5)
    with LocalSampler(NAV, policy, seed=0, envs_per_worker=16) as sampler:
        traj = sampler.sample_episodes(state_of(policy), [{"goal": [9.0, 9.0]}], 64, seed=1)
    valid = traj.mask.bool()
    with torch.no_grad():
        mean, log_std = policy(traj.obs[valid])
    z = (traj.actions[valid] - mean) / log_std.exp()  # the unclipped draws, standardised
    assert abs(z.mean().item()) < 0.08 and abs(z.std().item() - 1.0) < 0.06  # 2560 draws
    expected = (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    assert torch.allclose(traj.log_probs[valid], expected, atol=1e-5)
    # the env got the clipped action: positions move by at most 0.1 per axis
    step = traj.next_obs[valid] - traj.obs[valid]
    assert step.abs().max() <= 0.1 + 1e-6 and traj.actions[valid].abs().max() > 0.1


# ---------------------------------------------------------------------- step mode


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "InvertedPendulum-v5"])
def test_step_mode_matches_a_plain_env_replay(env_id):
    """Across two calls and many episode ends, each env's segment is exactly what a plain
    Gymnasium env gives for the same reset seeds and actions; next_obs at a boundary is the
    final observation, and the next step starts from the reset observation."""
    spec = EnvSpec(env_id, {}, 7)
    policy = policy_for(spec)
    worker = RolloutWorker(spec, 3, policy, seed=4)
    spy = ResetSpy(worker)
    first = worker.sample_steps(state_of(policy), 12)
    second = worker.sample_steps(state_of(policy), 12)
    traj = Trajectories.cat([first, second], dim=2)  # [1, env, 24]: one stream per env
    worker.close()
    low, high = worker.stepper._low, worker.stepper._high
    records = []
    for i in range(3):
        env = gym.make(env_id, max_episode_steps=7)
        obs, _ = env.reset(seed=spy.seeds[i][0])
        episode, running, length = 0, 0.0, 0
        for t in range(24):
            assert np.array_equal(traj.obs[0, i, t].numpy(), obs.astype(np.float32)), (i, t)
            action = np.clip(traj.actions[0, i, t].numpy(), low, high)
            obs, reward, term, trunc, _ = env.step(action)
            assert np.array_equal(traj.next_obs[0, i, t].numpy(), obs.astype(np.float32))
            assert traj.rewards[0, i, t].item() == np.float32(reward)
            assert (traj.terminated[0, i, t].item(), traj.truncated[0, i, t].item()) == (
                term,
                trunc,
            )
            running, length = running + reward, length + 1
            if term or trunc:
                records.append((t >= 12, running, length))  # (which call, return, length)
                episode += 1
                obs, _ = env.reset(seed=spy.seeds[i][episode])
                running, length = 0.0, 0
        assert len(spy.seeds[i]) == episode + 1
        env.close()
    assert traj.dones.sum() >= 9  # a time limit of 7: at least three episode ends per env
    # finished-episode records: per call, ordered by env then end time; returns span calls
    for call, part in ((False, first), (True, second)):
        expected = [(ret, length) for c, ret, length in records if c == call]
        assert part.episode_lengths.tolist() == [e[1] for e in expected]
        assert np.allclose(part.episode_returns.numpy(), [e[0] for e in expected], rtol=1e-5)


def test_step_mode_split_invariance_and_no_fake_transitions():
    for spec in (PENDULUM, NAV):
        policy = policy_for(spec, init_std=0.3)
        state = state_of(policy)
        with LocalSampler(spec, policy, seed=2, envs_per_worker=4) as one:
            a = [one.sample_steps(state, 25) for _ in range(2)]
        with LocalSampler(spec, policy, seed=2, envs_per_worker=2, num_workers=2) as two:
            b = [two.sample_steps(state, 25) for _ in range(2)]
        for x, y in zip(a, b, strict=True):
            assert_same_up_to_rounding(x, y)
        traj = a[0]
        assert traj.obs.shape == (1, 4, 25, policy.obs_dim) and traj.mask.all()
        within = traj.dones[..., :-1] == 0
        assert torch.equal(traj.obs[..., 1:, :][within], traj.next_obs[..., :-1, :][within])
        # the second call continues each env's episode where the first stopped
        going = a[0].dones[0, :, -1] == 0
        assert going.any()
        assert torch.equal(a[1].obs[0, going, 0], a[0].next_obs[0, going, -1])


def test_stream_state_resumes_exactly():
    for spec in (PENDULUM, NAV):
        policy = policy_for(spec)
        state = state_of(policy)
        with LocalSampler(spec, policy, seed=1, envs_per_worker=3) as sampler:
            sampler.sample_steps(state, 17)
            saved = sampler.state()
            expected = sampler.sample_steps(state, 17)
        with LocalSampler(spec, policy, seed=1, envs_per_worker=3) as fresh:
            fresh.load_state(saved)
            assert_identical(fresh.sample_steps(state, 17), expected)


def test_stream_state_keeps_each_envs_task():
    spec = EnvSpec("metarobust/AntVel-v0", {}, 30)  # a SyncVectorEnv of task envs
    task = {"velocity": 2.5}  # not the default task
    policy = policy_for(spec)
    state = state_of(policy)
    with LocalSampler(spec, policy, seed=1, envs_per_worker=2) as sampler:
        sampler.sample_steps(state, 7, task)
        saved = sampler.state()
        expected = sampler.sample_steps(state, 7, task)
    with LocalSampler(spec, policy, seed=1, envs_per_worker=2) as fresh:
        fresh.load_state(saved)
        assert_identical(fresh.sample_steps(state, 7, task), expected)


def test_episode_call_restarts_the_step_stream():
    policy = policy_for(PENDULUM)
    state = state_of(policy)
    with LocalSampler(PENDULUM, policy, seed=1, envs_per_worker=2) as sampler:
        sampler.sample_steps(state, 5)
        sampler.sample_episodes(state, [None], 3, seed=0)
        after = sampler.sample_steps(state, 5)
    assert after.obs.shape == (1, 2, 5, 4)
    assert (after.obs[0, :, 0].abs() < 0.011).all()  # a fresh reset observation


# ---------------------------------------------------------------------- backends


@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_local_and_subprocess_backends_give_identical_data():
    """Runs without Ray: the in-process and worker-process backends agree to the bit."""
    policy = policy_for(PENDULUM)
    state = state_of(policy)
    with LocalSampler(PENDULUM, policy, seed=9, envs_per_worker=2, num_workers=2) as local:
        expected = sample_both_modes(local, state)
        local_stream = local.state()
    with SubprocessSampler(PENDULUM, policy, seed=9, envs_per_worker=2, num_workers=2) as sub:
        for got, want in zip(sample_both_modes(sub, state), expected, strict=True):
            assert_identical(got, want)
        sub_stream = sub.state()
        procs = list(sub._procs)
    assert not any(p.is_alive() for p in procs)  # closed cleanly, reaped
    # a stream saved in worker processes continues in-process exactly as it would have there
    with LocalSampler(PENDULUM, policy, seed=9, envs_per_worker=2, num_workers=2) as resumed:
        resumed.load_state(sub_stream)
        with LocalSampler(PENDULUM, policy, seed=9, envs_per_worker=2, num_workers=2) as local:
            local.load_state(local_stream)
            assert_identical(resumed.sample_steps(state, 10), local.sample_steps(state, 10))


def test_ray_backend_gives_the_local_backends_data(ray_runtime):
    policy = policy_for(PENDULUM)
    state = state_of(policy)
    with LocalSampler(PENDULUM, policy, seed=9, envs_per_worker=2, num_workers=2) as local:
        expected = sample_both_modes(local, state)
    with RaySampler(PENDULUM, policy, seed=9, envs_per_worker=2, num_workers=2) as ray_sampler:
        for got, want in zip(sample_both_modes(ray_sampler, state), expected, strict=True):
            assert_identical(got, want)


def test_worker_error_surfaces_in_parent_with_its_traceback():
    policy = policy_for(PENDULUM)
    params = {**policy.init_params(), "no_such_param": torch.zeros(1)}
    bad = Acting.single(PolicyState.of(params, policy))
    with SubprocessSampler(PENDULUM, policy, seed=0, envs_per_worker=1, num_workers=2) as sampler:
        with pytest.raises(WorkerError, match="(?s)Traceback.*KeyError.*no_such_param"):
            sampler.sample_steps(bad, 4)
        assert sampler.sample_steps(state_of(policy), 4).obs.shape == (1, 2, 4, 4)  # still usable
    # the project's own errors cross as themselves: a bad env id is the usual ConfigError
    with pytest.raises(ConfigError, match="^unknown env id 'NoSuchEnv-v0'"):
        SubprocessSampler(EnvSpec("NoSuchEnv-v0"), policy, seed=0, num_workers=1)


def test_make_sampler_backends(monkeypatch):
    policy = policy_for(PENDULUM)
    with make_sampler(SamplerConfig(envs_per_worker=2), PENDULUM, policy, 0) as sampler:
        assert isinstance(sampler, LocalSampler) and sampler.num_envs == 2
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(ConfigError, match="pip install 'metarobust\\[ray\\]'"):
        make_sampler(SamplerConfig(backend="ray", workers=2), PENDULUM, policy, 0)


def test_a_tracking_learner_normalises_each_step_with_statistics_that_include_it():
    """As SB3's VecNormalize in training: every observation joins the normaliser's statistics
    before the policy acts on it, in the worker's copy only; a state that does not track
    acts with the statistics it came with all through the call."""
    spec = EnvSpec("Pendulum-v1", {}, 7)
    torch.manual_seed(0)
    policy = GaussianPolicy(*env_dims(spec), hidden_sizes=(8,), normalize_obs=True)
    params = policy.init_params()
    policy.obs_normalizer.update(torch.randn(5, 3) * 2 + 1)  # some statistics to start from
    before = {k: v.clone() for k, v in policy.named_buffers()}
    worker = RolloutWorker(spec, 2, policy, seed=3)
    tracked = worker.sample_steps(Acting.single(PolicyState.of(params, policy, track_obs=True)), 9)
    assert all(torch.equal(v, before[k]) for k, v in policy.named_buffers())  # learner's: as was
    reference = copy.deepcopy(policy)
    for t in range(9):
        obs = tracked.obs[0, :, t]
        reference.obs_normalizer.update(obs)  # both envs' observations of this step
        mean, log_std = distribution_params(reference, params, obs)
        expected = gaussian_log_prob(mean, log_std, tracked.actions[0, :, t])
        torch.testing.assert_close(tracked.log_probs[0, :, t], expected)
    fixed = worker.sample_steps(Acting.single(PolicyState.of(params, policy)), 9)
    worker.close()
    mean, log_std = distribution_params(policy, params, fixed.obs)
    torch.testing.assert_close(fixed.log_probs, gaussian_log_prob(mean, log_std, fixed.actions))
    # and tracking made a difference the check above could see
    mean, log_std = distribution_params(policy, params, tracked.obs)
    assert not torch.allclose(tracked.log_probs, gaussian_log_prob(mean, log_std, tracked.actions))
