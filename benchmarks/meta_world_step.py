"""Meta-World's step with its own grip test and object orientation against ours, alternated in
one process on the same env: Meta-World's ``touching_object`` walks the contact list in Python
where ours reads the contact arrays (``metarobust.envs.meta_world.touching_object``), and its
``Rotation.from_matrix(...).as_quat()`` goes through SciPy's checks where ours computes the
same quaternion directly (``QuickRotation``).

For each env name, one ``metarobust/MetaWorld-v0`` env of its ML1 train task 0 steps with
Meta-World's scripted policy plus noise (so the gripper grips, slips and lets go), resetting
every 500 steps; each round times ``--steps`` steps with theirs, then as many with ours (that
both answer the same is ``tests/test_meta_world.py``'s).

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/meta_world_step.py   # the metaworld extra
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import MethodType

import gymnasium as gym
import numpy as np
from metaworld.policies import SawyerPickPlaceV3Policy, SawyerPushV3Policy, SawyerReachV3Policy
from scipy.spatial.transform import Rotation

import metarobust.envs  # noqa: F401  (registers the task envs)
from metarobust.envs.meta_world import QuickRotation, touching_object

POLICIES = {
    "reach-v3": SawyerReachV3Policy,
    "push-v3": SawyerPushV3Policy,
    "pick-place-v3": SawyerPickPlaceV3Policy,
}
TASK = {"benchmark": "ML1", "seed": 0, "split": "train", "index": 0}


def steps_per_second(env, policy, rng: np.random.Generator, steps: int) -> float:
    """Env-steps/s of ``steps`` steps of ``env`` under ``policy`` with noise."""
    observation, _ = env.reset(seed=int(rng.integers(1 << 31)))
    tic = time.perf_counter()
    for step in range(steps):
        action = np.clip(policy.get_action(observation) + rng.normal(0, 0.3, 4), -1, 1)
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated or step % 500 == 499:
            observation, _ = env.reset()
    return steps / (time.perf_counter() - tic)


def use(world, *, ours: bool) -> None:
    """Make ``world`` answer with our grip test and orientation, or with Meta-World's own."""
    if ours:
        world.touching_object = MethodType(touching_object, world)
    else:
        del world.touching_object  # the class's method again
    type(world)._get_quat_objects.__globals__["Rotation"] = QuickRotation if ours else Rotation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="steps per timing")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of theirs and ours")
    args = parser.parse_args()
    print("| env | theirs steps/s | ours steps/s | speed-up | rounds |")
    print("| --- | --- | --- | --- | --- |")
    for name, policy_class in POLICIES.items():
        env = gym.make("metarobust/MetaWorld-v0", task={**TASK, "env_name": name}).unwrapped
        env.reset(seed=0)
        world, policy, rng = env.world(), policy_class(), np.random.default_rng(0)
        theirs, ours = [], []
        for _ in range(args.rounds):
            use(world, ours=False)
            theirs.append(steps_per_second(env, policy, rng, args.steps))
            use(world, ours=True)
            ours.append(steps_per_second(env, policy, rng, args.steps))
        ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
        print(f"| {name} | {statistics.median(theirs):,.0f} | {statistics.median(ours):,.0f} | "
              f"{min(ratios):.2f}-{max(ratios):.2f}x | {args.rounds} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
