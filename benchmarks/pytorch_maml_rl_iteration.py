"""Seconds per meta-iteration of pytorch-maml-rl's own training loop, timed iteration by
iteration; run by ``benchmarks/maml_iteration.py --pytorch-maml-rl CHECKOUT`` with an
interpreter that has that project's requirements (gym 0.17, numpy < 2, torch).

It builds what pytorch-maml-rl's ``train.py`` builds, from its config, and runs the same loop
(``sample_async``, ``MAMLTRPO.step``, ``sample_wait``); the clock of an iteration starts when
its tasks are drawn, after the policy, baseline and sampler workers exist. The one change to
that project is at run time: ``torch.lstsq``, which its linear baseline calls and torch 2
removed, is supplied as ``torch.linalg.lstsq``. Prints one JSON line: the seconds and env
steps of every iteration. With ``--stream``, also one JSON line per iteration as it ends, with
the mean return of its post-adaptation (valid) episodes, for ``benchmarks/time_to_result.py``.

    python benchmarks/pytorch_maml_rl_iteration.py --checkout ../pytorch-maml-rl \
        --config configs/maml/2d-navigation.yaml --iterations 4 --workers 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def lstsq(b, a):
    """torch 1.x's ``torch.lstsq(B, A)``: the solution first, as that API returned it."""
    import torch

    return torch.linalg.lstsq(a, b).solution, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, required=True, help="pytorch-maml-rl checkout")
    parser.add_argument("--config", default="configs/maml/2d-navigation.yaml",
                        help="its config, relative to the checkout")  # fmt: skip
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="its sampler processes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stream", action="store_true", help="a JSON line per iteration")
    args = parser.parse_args()

    sys.path.insert(0, str(args.checkout.resolve()))
    import gym
    import torch
    import yaml

    torch.lstsq = lstsq
    import maml_rl.envs  # noqa: F401  (registers its envs with gym)
    from maml_rl.baseline import LinearFeatureBaseline
    from maml_rl.metalearners import MAMLTRPO
    from maml_rl.samplers import MultiTaskSampler
    from maml_rl.utils.helpers import get_input_size, get_policy_for_env

    config = yaml.safe_load((args.checkout / args.config).read_text())
    torch.manual_seed(args.seed)
    env = gym.make(config["env-name"], **config.get("env-kwargs", {}))
    env.close()
    policy = get_policy_for_env(
        env, hidden_sizes=config["hidden-sizes"], nonlinearity=config["nonlinearity"]
    )
    policy.share_memory()
    sampler = MultiTaskSampler(
        config["env-name"],
        env_kwargs=config.get("env-kwargs", {}),
        batch_size=config["fast-batch-size"],
        policy=policy,
        baseline=LinearFeatureBaseline(get_input_size(env)),
        env=env,
        seed=args.seed,
        num_workers=args.workers,
    )
    learner = MAMLTRPO(policy, fast_lr=config["fast-lr"], first_order=config["first-order"])
    seconds, steps = [], []
    for _ in range(args.iterations):
        tic = time.perf_counter()
        tasks = sampler.sample_tasks(num_tasks=config["meta-batch-size"])
        futures = sampler.sample_async(
            tasks,
            num_steps=config["num-steps"],
            fast_lr=config["fast-lr"],
            gamma=config["gamma"],
            gae_lambda=config["gae-lambda"],
            device="cpu",
        )
        learner.step(
            *futures,
            max_kl=config["max-kl"],
            cg_iters=config["cg-iters"],
            cg_damping=config["cg-damping"],
            ls_max_steps=config["ls-max-steps"],
            ls_backtrack_ratio=config["ls-backtrack-ratio"],
        )
        train, valid = sampler.sample_wait(futures)
        seconds.append(time.perf_counter() - tic)
        steps.append(sum(sum(e.lengths) for e in train[0]) + sum(sum(e.lengths) for e in valid))
        if args.stream:  # as its train.py logs valid_returns: episode returns, then the mean
            valid_return = torch.stack([e.rewards.sum(dim=0) for e in valid]).mean().item()
            line = {"iteration": len(seconds), "seconds": seconds[-1], "valid_return": valid_return}
            print(json.dumps(line), flush=True)
    sampler.close()
    print(json.dumps({"seconds": seconds, "env_steps": steps}), flush=True)


if __name__ == "__main__":
    main()
