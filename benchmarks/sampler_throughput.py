"""Sampler throughput on a task env, as a fraction of raw MuJoCo stepping of the same model.

For 1 and 2 workers, samples MAML-style batches (by default pytorch-maml-rl's HalfCheetahVel
batch of 40 tasks x 20 episodes, here of 200 steps, a 64x64 policy in the loop) and divides
the env-steps/s by raw ``mj_step`` throughput measured in the same run with the same number
of processes. A plain Gymnasium loop (one env, random actions) is printed for orientation:
for Meta-World it is what its own Python step (observation and reward) allows any sampler.

    python benchmarks/sampler_throughput.py
    python benchmarks/sampler_throughput.py --env metarobust/MetaWorld-v0 --tasks 10 \
        --episodes 2 --envs-per-worker 10    # the metaworld extra: ML1 reach-v3, 500 steps
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from raw_mujoco import raw_steps_per_second

import metarobust.envs  # noqa: F401  (registers the task envs)
from metarobust.agents.policy import GaussianPolicy
from metarobust.config import SamplerConfig
from metarobust.envs import default_task_distribution
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import EnvSpec, env_dims
from metarobust.sampling.sampler_factory import make_sampler

RAW_MODEL = {"metarobust/HalfCheetahVel-v0": "HalfCheetah-v5"}  # else the env id's own


def gymnasium_loop_steps_per_second(env_id: str, steps: int = 5000) -> float:
    """One plain Gymnasium env stepped with random actions, resets included."""
    env = gym.make(env_id, disable_env_checker=True)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, *env.action_space.shape))
    tic = time.perf_counter()
    for action in actions.astype(np.float32):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - tic)
    env.close()
    return rate


def sampler_steps_per_second(
    env_id: str, workers: int, envs_per_worker: int, tasks: int, episodes: int, repeats: int
) -> float:
    """Env-steps/s of ``sample_episodes`` over ``tasks`` x ``episodes`` episodes of ``env_id``
    (best of ``repeats`` calls, after one warm-up call)."""
    spec = EnvSpec(env_id)
    torch.manual_seed(0)
    policy = GaussianPolicy(*env_dims(spec), hidden_sizes=(64, 64))
    state = Acting.single(PolicyState.of(policy.init_params(), policy))
    task_list = default_task_distribution(env_id).sample(tasks, np.random.default_rng(0))
    cfg = SamplerConfig(workers=workers, envs_per_worker=envs_per_worker)
    best = 0.0
    with make_sampler(cfg, spec, policy, seed=0) as sampler:
        for call in range(repeats + 1):
            tic = time.perf_counter()
            traj = sampler.sample_episodes(state, task_list, episodes, seed=call)
            rate = traj.mask.sum().item() / (time.perf_counter() - tic)
            if call > 0:
                best = max(best, rate)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="metarobust/HalfCheetahVel-v0", help="a task env id")
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task")
    parser.add_argument("--envs-per-worker", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    raw_id = RAW_MODEL.get(args.env, args.env)
    plain = gymnasium_loop_steps_per_second(args.env)
    print(f"{args.env}, raw model of {raw_id}")
    print(f"plain Gymnasium loop, 1 env, 1 process: {plain:,.0f} steps/s")
    print("\n| workers | sampler steps/s | raw mj_step steps/s | ratio |")
    print("| --- | --- | --- | --- |")
    for workers in (1, 2):
        ours = sampler_steps_per_second(
            args.env, workers, args.envs_per_worker, args.tasks, args.episodes, args.repeats
        )
        raw = raw_steps_per_second(raw_id, workers)
        print(f"| {workers} | {ours:,.0f} | {raw:,.0f} | {ours / raw:.2f} |", flush=True)


if __name__ == "__main__":
    main()
