"""Wall-clock time to a result: MAML-TRPO until its post-adaptation return reaches one or more
thresholds, ours alone or beside pytorch-maml-rl's own loop on the same cores, alternated seed
by seed.

Each side is a fresh process, timed from its launch (imports, env and sampler set-up
included): ours is ``metarobust train`` on ``--config`` (``configs/maml_config.yaml`` by
default, as shipped or with ``--set`` overrides), read from its ``metrics.jsonl`` as each
iteration is logged; theirs (given ``--pytorch-maml-rl``; 2D navigation only) is
``benchmarks/pytorch_maml_rl_iteration.py --stream`` on its ``configs/maml/2d-navigation.yaml``.
An iteration's result is the mean return of its post-adaptation episodes (``meta/
post_adapt_return``; pytorch-maml-rl's ``valid_returns``), and a run reaches a threshold at
the first iteration where the mean of the last ``--window`` of them is at or above it; the
process is stopped once it has reached every threshold. A threshold not reached within
``--max-iterations`` reports the last running mean instead.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/time_to_result.py \\
        --pytorch-maml-rl ../pytorch-maml-rl --their-python ../pmrl-venv/bin/python --seeds 0 1
    python benchmarks/time_to_result.py --config configs/maml/halfcheetah_vel_paper.yaml \\
        --threshold -120 -100 -90 -80 --seeds 0 --max-iterations 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def our_returns(process: subprocess.Popen, metrics: Path) -> Iterator[float]:
    """Post-adaptation returns as our run logs them, until the process ends."""
    seen = 0
    while True:
        done = process.poll() is not None
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        for line in lines[seen:]:
            yield json.loads(line)["meta/post_adapt_return"]
        seen = len(lines)
        if done:
            return
        time.sleep(0.05)


def their_returns(process: subprocess.Popen) -> Iterator[float]:
    """Post-adaptation returns as pytorch-maml-rl's loop prints them, until it ends."""
    for line in process.stdout:
        row = json.loads(line)
        if "valid_return" in row:
            yield row["valid_return"]


def time_to(
    command: list[str], returns, thresholds: list[float], window: int
) -> list[tuple[float, float, int, float, bool]]:
    """``(threshold, seconds, iterations, running mean, reached)`` per threshold for one run of
    ``command``, stopped once the running mean of ``window`` post-adaptation returns has
    reached every threshold."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, cwd=ROOT)  # fmt: skip
    seen: list[float] = []
    reached: dict[float, tuple[float, int, float]] = {}
    try:
        for value in returns(process):
            seen.append(value)
            mean = statistics.fmean(seen[-window:])
            for threshold in thresholds:
                if len(seen) >= window and mean >= threshold and threshold not in reached:
                    reached[threshold] = (time.perf_counter() - start, len(seen), mean)
            if len(reached) == len(thresholds):
                break
    finally:
        process.kill()
        process.wait()
    if not seen:
        sys.exit(f"no iteration finished: {' '.join(command)}")
    last = (time.perf_counter() - start, len(seen), statistics.fmean(seen[-window:]))
    return [(t, *reached[t], True) if t in reached else (t, *last, False) for t in thresholds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/maml_config.yaml", help="our MAML config")
    parser.add_argument("--pytorch-maml-rl", type=Path, metavar="CHECKOUT",
                        help="also time pytorch-maml-rl's 2D navigation")  # fmt: skip
    parser.add_argument("--their-python", help="the Python to run pytorch-maml-rl with")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threshold", type=float, nargs="+", default=[-16.0])
    parser.add_argument("--window", type=int, default=5, help="iterations in the running mean")
    parser.add_argument("--max-iterations", type=int, default=300)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    args = parser.parse_args()
    if args.pytorch_maml_rl and not args.their_python:
        parser.error("--pytorch-maml-rl needs --their-python")
    workers = max(len(os.sched_getaffinity(0)) - 1, 1)  # pytorch-maml-rl's own default
    rows = []
    for seed in args.seeds:
        if args.pytorch_maml_rl:
            theirs = [args.their_python, str(ROOT / "benchmarks" / "pytorch_maml_rl_iteration.py"),
                      "--checkout", str(args.pytorch_maml_rl.resolve()), "--stream",
                      "--iterations", str(args.max_iterations), "--workers", str(workers),
                      "--seed", str(seed)]  # fmt: skip
            for row in time_to(theirs, their_returns, args.threshold, args.window):
                rows.append(("pytorch-maml-rl", seed, *row))
                print(rows[-1], flush=True)
        with tempfile.TemporaryDirectory() as logs:
            sets = [f"seed={seed}", f"maml.num_iterations={args.max_iterations}",
                    f"logging.log_dir={logs}", "logging.run_name=run", "logging.progress=false",
                    "logging.tensorboard=false", "checkpoint.every=1000",
                    *args.overrides]  # fmt: skip
            ours = [sys.executable, "-m", "metarobust.cli", "train", "--config", args.config,
                    *(f"--set={s}" for s in sets)]  # fmt: skip
            logged = partial(our_returns, metrics=Path(logs) / "run" / "metrics.jsonl")
            for row in time_to(ours, logged, args.threshold, args.window):
                rows.append(("metarobust", seed, *row))
                print(rows[-1], flush=True)
    print(f"\n{len(os.sched_getaffinity(0))} core(s), OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; running mean of {args.window} "
          f"post-adaptation returns, at most {args.max_iterations} iterations; ours "
          f"{args.config} {' '.join(args.overrides) or 'as shipped'}\n")  # fmt: skip
    print("| loop | seed | threshold | seconds | iterations | running mean | reached |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for loop, seed, threshold, seconds, iterations, mean, reached in rows:
        print(f"| {loop} | {seed} | {threshold:g} | {seconds:.1f} | {iterations} | {mean:.1f} | "
              f"{'yes' if reached else 'no'} |")  # fmt: skip
    for loop in dict.fromkeys(r[0] for r in rows):
        for threshold in args.threshold:
            mine = [r[3] for r in rows if r[0] == loop and r[2] == threshold and r[6]]
            if mine:
                print(f"{loop} to {threshold:g}: median {statistics.median(mine):.1f} s over "
                      f"{len(mine)} seed(s) that reached it")  # fmt: skip


if __name__ == "__main__":
    main()
