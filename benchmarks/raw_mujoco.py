"""Raw MuJoCo stepping: the ceiling every sampler is measured against.

``raw_steps_per_second(env_id, processes)`` steps the env's own ``MjModel`` with
``mj_step(model, data, nstep=frame_skip)`` (one env step of physics, no Python env, no policy)
in ``processes`` processes at once and returns their summed env-steps/s. For Meta-World
(``metarobust/MetaWorld-v0``, the metaworld extra) the model is its default task's.

    python benchmarks/raw_mujoco.py
"""

from __future__ import annotations

import multiprocessing as mp
import time

import gymnasium as gym
import mujoco
import numpy as np


def simulator(env_id: str) -> tuple[mujoco.MjModel, mujoco.MjData, int]:
    """The model, data and frame skip an env id steps, after a reset (Meta-World's: the
    simulator of its current task)."""
    env = gym.make(env_id, disable_env_checker=True).unwrapped
    env.reset(seed=0)
    sim = env.world() if hasattr(env, "world") else env
    return sim.model, sim.data, sim.frame_skip


def _stepper(env_id: str, seconds: float, start: mp.Event, out: mp.Queue) -> None:
    if env_id.startswith("metarobust/"):
        import metarobust.envs  # noqa: F401  (registers the ids in this process)
    model, data, frame_skip = simulator(env_id)
    ctrl = np.random.default_rng(0).uniform(-1, 1, size=(4096, model.nu))
    start.wait()
    steps, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        for i in range(256):
            data.ctrl[:] = ctrl[(steps + i) % 4096]
            mujoco.mj_step(model, data, nstep=frame_skip)
        steps += 256
    out.put(steps / (time.perf_counter() - tic))


def raw_steps_per_second(env_id: str, processes: int, seconds: float = 3.0) -> float:
    """Summed env-steps/s of ``processes`` processes each stepping raw MuJoCo."""
    ctx = mp.get_context("forkserver")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_stepper, args=(env_id, seconds, start, out)) for _ in range(processes)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every process build its model before the clock starts
    start.set()
    rates = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return float(sum(rates))


if __name__ == "__main__":
    for n in (1, 2):
        rate = raw_steps_per_second("HalfCheetah-v5", n)
        print(f"raw HalfCheetah-v5 mj_step, {n} process(es): {rate:,.0f} steps/s")
