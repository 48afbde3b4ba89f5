"""Stepping the obstacle world (``metarobust/Navigation2DObstacles-v0``), beside raw NumPy.

For 1 and 2 processes (each pinned to its own core), every process steps one
``Navigation2DObstaclesVectorEnv`` of ``--envs`` envs with random actions for ``--seconds``
(autoreset included, rays observed every step) and the summed env-steps/s is printed, for
levels from the env's default distribution (0-8 walls) and for cluttered ones (8-16 walls).
The ceiling beside it: raw NumPy moving as many points by clipped actions and paying minus
the distance to their goals, with no walls and no rays.

    python benchmarks/obstacle_world.py
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np

from metarobust.envs.geometry import ACTION_LIMIT, MAX_WALLS
from metarobust.envs.level_generation import RandomLevels
from metarobust.envs.obstacles import Navigation2DObstaclesVectorEnv

LEVELS = {"default (0-8 walls)": (0, 8), "cluttered (8-16 walls)": (MAX_WALLS // 2, MAX_WALLS)}
BLOCK = 50  # steps between clock reads


def _obstacle_steps(num_walls: tuple[int, int] | None, n: int, seconds: float) -> float:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-ACTION_LIMIT, ACTION_LIMIT, (BLOCK, n, 2)).astype(np.float32)
    if num_walls is None:  # raw NumPy: the same points, no walls, no rays
        pos, goals = np.zeros((n, 2)), rng.uniform(-0.9, 0.9, (n, 2))

        def step(action: np.ndarray) -> None:
            nonlocal pos
            pos = np.clip(pos + np.clip(action, -ACTION_LIMIT, ACTION_LIMIT), -1, 1)
            diff = pos - goals
            _ = -np.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])
    else:
        env = Navigation2DObstaclesVectorEnv(n)
        env.set_tasks(RandomLevels(num_walls=num_walls).sample(n, rng))
        env.reset(seed=0)
        step = env.step
    for action in actions:  # warm-up
        step(action)
    steps, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        for action in actions:
            step(action)
        steps += BLOCK * n
    return steps / (time.perf_counter() - tic)


def _worker(core: int, args: tuple, start: mp.Event, out: mp.Queue) -> None:
    os.sched_setaffinity(0, {core})
    start.wait()
    out.put(_obstacle_steps(*args))


def steps_per_second(
    num_walls: tuple[int, int] | None, n: int, processes: int, seconds: float
) -> float:
    """Summed env-steps/s of ``processes`` pinned processes stepping at once."""
    ctx = mp.get_context("forkserver")
    start, out = ctx.Event(), ctx.Queue()
    cores = sorted(os.sched_getaffinity(0))
    procs = [
        ctx.Process(
            target=_worker, args=(cores[i % len(cores)], (num_walls, n, seconds), start, out)
        )
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    time.sleep(2.0)  # let every process build its env before the clocks start
    start.set()
    total = sum(out.get() for _ in procs)
    for proc in procs:
        proc.join()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", type=int, default=4096, help="envs per process")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rows = {"raw NumPy (no walls, no rays)": None, **LEVELS}
    print(f"env-steps/s, {args.envs} envs per process, {args.seconds:g} s per measurement")
    print("| levels | 1 process | 2 processes |")
    print("| --- | ---: | ---: |")
    for name, num_walls in rows.items():
        rates = [steps_per_second(num_walls, args.envs, p, args.seconds) for p in (1, 2)]
        print(f"| {name} | {rates[0]:,.0f} | {rates[1]:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
