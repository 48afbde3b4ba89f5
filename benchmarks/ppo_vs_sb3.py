"""PPO: metarobust against Stable-Baselines3 with the same hyperparameters, side by side.

For each env and seed, trains both in one process (metarobust, then SB3, then the next seed:
alternated, same budget, same number of envs, ``--threads`` torch threads for both, each
clock started before its library builds anything), then evaluates each final policy for
``--eval-episodes`` episodes with the mean action. Prints final return (mean ± std over
seeds), env-steps/s (updates included) and the speed ratio, and writes every run to ``--out``
(CSV). Pin the process to one core and set the OpenMP threads to match, so both libraries
run on the same core with the same thread settings. SB3 is in the dev extras.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/ppo_vs_sb3.py --envs Hopper-v5 \
        HalfCheetah-v5 --seeds 0 1 2 3 4 --steps 1000000
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

# The shared hyperparameters: SB3's PPO defaults (= CleanRL's MuJoCo settings without its
# learning-rate annealing), a 64x64 tanh network, observation normalisation, std 1 at start.
BATCH = 2048
HP = dict(
    minibatch_size=64, num_epochs=10, lr=3e-4, gamma=0.99, gae_lambda=0.95, clip_coef=0.2,
    ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
)  # fmt: skip


def run_ours(env_id: str, seed: int, steps: int, num_envs: int, episodes: int, logs: Path) -> dict:
    from metarobust.api import train
    from metarobust.config import load_config
    from metarobust.evaluate import EVALUATION_NAME, evaluate

    overrides = [f"ppo.{k}={v}" for k, v in HP.items()] + [
        f"ppo.num_steps={BATCH // num_envs}",
        "ppo.anneal_lr=false",
        f"env.id={env_id}",
        f"seed={seed}",
        f"train.total_steps={steps}",
        f"sampler.envs_per_worker={num_envs}",
        "policy.hidden_sizes=[64, 64]",
        "policy.activation=tanh",
        "policy.normalize_obs=true",
        "logging.progress=false",
        "logging.tensorboard=false",
        f"logging.log_dir={logs}",
        f"logging.run_name=ours_{env_id}_{seed}",
        "checkpoint.every=1000000",
    ]
    tic = time.perf_counter()  # both clocks start before anything is built
    run_dir = train(load_config(None, overrides))
    seconds = time.perf_counter() - tic
    evaluate(run_dir, episodes=episodes, seed=seed + 10_000, progress=False)
    with (run_dir / EVALUATION_NAME).open() as f:
        returns = [float(row["return"]) for row in csv.DictReader(f)]
    return {"return": float(np.mean(returns)), "seconds": seconds}


def run_sb3(env_id: str, seed: int, steps: int, num_envs: int, episodes: int) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
    from torch import nn

    tic = time.perf_counter()  # both clocks start before anything is built
    env = VecNormalize(
        DummyVecEnv([lambda: gym.make(env_id)] * num_envs), norm_obs=True, norm_reward=False
    )
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=BATCH // num_envs,
        batch_size=HP["minibatch_size"],
        n_epochs=HP["num_epochs"],
        learning_rate=HP["lr"],
        gamma=HP["gamma"],
        gae_lambda=HP["gae_lambda"],
        clip_range=HP["clip_coef"],
        ent_coef=HP["ent_coef"],
        vf_coef=HP["vf_coef"],
        max_grad_norm=HP["max_grad_norm"],
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=nn.Tanh),
        seed=seed,
        device="cpu",
    )
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - tic
    env.training = False
    env.seed(seed + 10_000)
    returns, _ = evaluate_policy(
        model, env, n_eval_episodes=episodes, deterministic=True, return_episode_rewards=True
    )
    return {"return": float(np.mean(returns)), "seconds": seconds}


def summary(rows: list[dict], envs: list[str], seeds: int) -> str:
    lines = [
        f"returns: mean ± std over {seeds} seeds, mean action, fresh seeds",
        "| env | metarobust return | SB3 return | metarobust steps/s | SB3 steps/s | speed-up |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for env_id in envs:
        cells = {}
        for lib in ("metarobust", "sb3"):
            mine = [r for r in rows if r["env"] == env_id and r["library"] == lib]
            if not mine:
                return "\n".join(lines)
            rets = [r["return"] for r in mine]
            std = statistics.stdev(rets) if len(rets) > 1 else 0.0
            cells[lib] = (
                statistics.mean(rets),
                std,
                statistics.mean(r["steps_per_s"] for r in mine),
            )
        (ro, so, vo), (rs, ss, vs) = cells["metarobust"], cells["sb3"]
        lines.append(
            f"| {env_id} | {ro:.0f} ± {so:.0f} | {rs:.0f} ± {ss:.0f} | {vo:,.0f} | {vs:,.0f} | "
            f"{vo / vs:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "HalfCheetah-v5"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--num-envs", type=int, default=1, help="envs per run (both libraries)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both libraries)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ppo_vs_sb3.csv"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as logs:
        for env_id in args.envs:
            for seed in args.seeds:
                common = (env_id, seed, args.steps, args.num_envs)
                for lib in ("metarobust", "sb3"):
                    if lib == "metarobust":
                        result = run_ours(*common, args.eval_episodes, Path(logs))
                    else:
                        result = run_sb3(*common, args.eval_episodes)
                    row = {
                        "env": env_id,
                        "seed": seed,
                        "library": lib,
                        "steps": args.steps,
                        "num_envs": args.num_envs,
                        "return": round(result["return"], 1),
                        "steps_per_s": round(args.steps / result["seconds"], 1),
                    }
                    print(row, flush=True)
                    rows.append(row)
                    with args.out.open("w", newline="") as f:
                        writer = csv.DictWriter(f, fieldnames=list(row))
                        writer.writeheader()
                        writer.writerows(rows)
    print(summary(rows, args.envs, len(args.seeds)))


if __name__ == "__main__":
    main()
