"""How close an iteration runs to what this machine can do: a measured floor per phase.

For each case (a config and its overrides), one iteration runs under a dispatch mode that
records every aten operation it executes, by phase (the phases the training loop names:
sampling, adapting, outer step; sampling, updating):

- matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``) by shape and dtype, with their
  floating-point operations (2 m k n per product);
- every other operation that is not a view, by the elements it writes (the elementwise chain:
  activations, their derivatives, the losses' arithmetic, reductions, copies), grouped by size:
  the next power of two of each output's elements.

The floor of a phase is the time the kernels alone need on this machine: each recorded product
shape timed on its own (the best of several runs of that exact call) times its count, plus the
elements written at the measured rate of an elementwise kernel at that size (``torch.mul`` of
two float32 tensors into a preallocated output of the group's size: in cache for small
outputs, bound by memory bandwidth for large ones). Whatever an
iteration spends above it is framework overhead (Python, dispatch, autograd bookkeeping,
allocation) or work a better algorithm would not do; the floor assumes the same operations, so
an algorithm that skips some (a cached forward, a fused kernel) can go below it. Sampling
phases also step the env; for a MuJoCo env the table adds the raw ``mj_step`` time of those
env steps (``raw_mujoco.py``, same model and process count), so sampling's floor is the
policy's kernels plus the physics.

Timed: the median wall-clock seconds of each phase over ``--iterations`` iterations after a
warm-up one, in this process's cores and thread settings (pin them, as the speed results do):

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/roofline.py
    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/roofline.py --cases maml-nav-exact \\
        --pytorch-maml-rl ../pytorch-maml-rl --their-python ../pmrl-venv/bin/python

``--pytorch-maml-rl`` adds that project's seconds per iteration on the same 2D-navigation
setting (``maml_iteration.py``'s driver), alternated with ours, for the exact-Fisher case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from maml_iteration import their_seconds_per_iteration
from raw_mujoco import raw_steps_per_second
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from metarobust.api import algorithm_class
from metarobust.config import load_config
from metarobust.runs.algorithm import Setup
from metarobust.sampling.env_factory import EnvSpec
from metarobust.sampling.sampler_factory import make_sampler
from metarobust.utils.allocator import keep_freed_memory

CASES = {  # name: (config, overrides); one worker, so every kernel runs in this process
    "maml-nav-exact": ("configs/maml_config.yaml", ["maml.fisher_subsample=1"]),
    "maml-nav": ("configs/maml_config.yaml", []),
    "ppo-hopper": ("configs/ppo/hopper.yaml", []),
}
GEMMS = {"mm", "addmm", "bmm", "baddbmm"}


def gemm_flops(name: str, shapes: tuple[tuple[int, ...], ...]) -> int:
    """Floating-point operations of one product: 2 m k n (times the batch for bmm)."""
    *_, a, b = shapes  # addmm / baddbmm lead with the added term
    batch = a[0] if len(a) == 3 else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


class KernelTally(TorchDispatchMode):
    """Every aten op run under it, by phase: products by (op, shapes, dtype), and the elements
    every other op that is not a view writes, by size group (``size_group``)."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = "start"
        self.gemms: dict[str, Counter] = defaultdict(Counter)
        self.elements: dict[str, Counter] = defaultdict(Counter)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in GEMMS:
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            key = (name, tuple(tuple(t.shape) for t in tensors), tensors[-1].dtype)
            self.gemms[self.phase][key] += 1
        elif not func.is_view:
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.numel():
                    self.elements[self.phase][size_group(t.numel())] += t.numel()
        return out


def size_group(elements: int) -> int:
    """The power of two at or above ``elements``: outputs are timed by this size."""
    return 1 << (elements - 1).bit_length()


def best_seconds(call: Callable[[], object], repeats: int = 7, inner: int = 20) -> float:
    """The fastest mean seconds of ``inner`` back-to-back calls, over ``repeats`` tries."""
    for _ in range(3):
        call()
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        for _ in range(inner):
            call()
        best = min(best, (time.perf_counter() - tic) / inner)
    return best


def gemm_seconds(key: tuple) -> float:
    """Seconds of one product of this op, shapes and dtype, on its own."""
    name, shapes, dtype = key
    tensors = [torch.randn(shape, dtype=dtype) for shape in shapes]
    op = getattr(torch, name)
    return best_seconds(lambda: op(*tensors))


def elementwise_rate(size: int) -> float:
    """Elements per second of ``torch.mul`` of ``size`` float32 elements into a preallocated
    output."""
    a, b, out = (torch.randn(size) for _ in range(3))
    inner = max(3, min(200, 2**24 // size))  # about the same work per try at every size
    return size / best_seconds(lambda: torch.mul(a, b, out=out), inner=inner)


def elementwise_rate_at(size: int, rates: dict[int, float]) -> float:
    """``elementwise_rate(size)``, measured on first use and kept in ``rates``."""
    if size not in rates:
        rates[size] = elementwise_rate(size)
    return rates[size]


class PhaseClock:
    """Wall-clock seconds per phase, from the algorithm's phase announcements."""

    def __init__(self, tally: KernelTally | None = None) -> None:
        self.tally, self.seconds = tally, Counter()
        self._phase, self._since = "start", time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[self._phase] += now - self._since
        self._phase, self._since = phase, now
        if self.tally is not None:
            self.tally.phase = phase

    def stop(self) -> Counter:
        self("start")
        return self.seconds


def measure(config: str, overrides: list[str], iterations: int) -> dict:
    """One case: its phases' median seconds, recorded kernels and env steps per iteration."""
    cfg = load_config(config, [*overrides, "sampler.workers=1", "logging.progress=false"])
    spec = EnvSpec.from_config(cfg.env)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    algo = algorithm_class(cfg)(Setup(cfg=cfg, spec=spec, device=torch.device("cpu"),
                                      generator=generator))  # fmt: skip
    times: dict[str, list[float]] = defaultdict(list)
    with make_sampler(cfg.sampler, spec, algo.policies(), cfg.seed) as sampler:
        tally = KernelTally()
        algo.on_phase = clock = PhaseClock(tally)
        with tally:
            done = algo.iteration(sampler, 0)  # the counted one, also the warm-up
        clock.stop()
        env_steps = done.sampled_steps or done.new_steps
        for index in range(1, iterations + 1):
            algo.on_phase = clock = PhaseClock()
            algo.iteration(sampler, index)
            for phase, seconds in clock.stop().items():
                times[phase].append(seconds)
    phases = [p for p in tally.gemms.keys() | tally.elements.keys() if p != "start"]
    return {
        "cfg": cfg,
        "phases": sorted(phases, key=list(times).index),
        "seconds": {p: statistics.median(times[p]) for p in phases},
        "gemms": tally.gemms,
        "elements": tally.elements,
        "env_steps": env_steps,
    }


def report(name: str, case: dict, rates: dict[int, float], their: list[float] | None) -> None:
    """The case's table: per phase our seconds, the floor's parts and the ratio."""
    cfg = case["cfg"]
    physics = None
    if cfg.env.id.endswith("-v5"):  # a MuJoCo env: its raw stepping, same process count
        physics = case["env_steps"] / raw_steps_per_second(cfg.env.id, cfg.sampler.workers)
    shapes = {key for counts in case["gemms"].values() for key in counts}
    per_call = {key: gemm_seconds(key) for key in shapes}
    print(f"\n{name}: {cfg.env.id}, {case['env_steps']:,} env steps per iteration")
    print("| phase | ours s | GEMM GFLOP | GEMM floor s | elements M | elementwise floor s "
          "| physics s | floor s | ours / floor |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    total_ours = total_floor = 0.0
    for phase in case["phases"]:
        counts = case["gemms"][phase]
        flops = sum(n * gemm_flops(key[0], key[1]) for key, n in counts.items())
        gemm = sum(n * per_call[key] for key, n in counts.items())
        groups = case["elements"][phase]
        elementwise = sum(n / elementwise_rate_at(size, rates) for size, n in groups.items())
        sim = physics if physics is not None and phase.startswith("sampling") else 0.0
        floor, ours = gemm + elementwise + sim, case["seconds"][phase]
        total_ours, total_floor = total_ours + ours, total_floor + floor
        print(f"| {phase} | {ours:.3f} | {flops / 1e9:.2f} | {gemm:.3f} | "
              f"{sum(groups.values()) / 1e6:.0f} | {elementwise:.3f} | {sim:.3f} | "
              f"{floor:.3f} | {ours / floor:.1f}x |")  # fmt: skip
    print(f"| all | {total_ours:.3f} | | | | | | {total_floor:.3f} | "
          f"{total_ours / total_floor:.1f}x |")  # fmt: skip
    if their:
        median = statistics.median(their)
        print(f"pytorch-maml-rl, same setting: {median:.3f} s per iteration (median of "
              f"{len(their)}), {median / total_floor:.1f}x the floor; ours is "
              f"{median / total_ours:.2f}x faster")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--iterations", type=int, default=3, help="timed, after the counted one")
    parser.add_argument("--pytorch-maml-rl", type=Path, metavar="CHECKOUT")
    parser.add_argument("--their-python", default="python")
    args = parser.parse_args()
    keep_freed_memory()  # as a training run does
    print(
        f"{len(os.sched_getaffinity(0))} core(s), OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    rates: dict[int, float] = {}  # elementwise rate by size group, measured once per size
    for name in args.cases:
        config, overrides = CASES[name]
        their = None
        if args.pytorch_maml_rl and name == "maml-nav-exact":  # alternated: theirs, then ours
            their = their_seconds_per_iteration(
                args.pytorch_maml_rl, args.their_python, args.iterations
            )
        report(name, measure(config, overrides, args.iterations), rates, their)


if __name__ == "__main__":
    main()
