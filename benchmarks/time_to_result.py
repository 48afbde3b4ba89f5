"""Wall-clock time to a result: MAML-TRPO on 2D navigation until the post-adaptation return
reaches a threshold (the MAML paper's figure: about -16 after one step), ours beside
pytorch-maml-rl's own loop, on the same cores, alternated seed by seed.

Each side is a fresh process, timed from its launch (imports, env and sampler set-up
included): ours is ``metarobust train`` on ``configs/maml_config.yaml`` (as shipped, or with
``--set`` overrides), read from its ``metrics.jsonl`` as each iteration is logged; theirs is
``benchmarks/pytorch_maml_rl_iteration.py --stream`` on its ``configs/maml/2d-navigation.yaml``.
An iteration's result is the mean return of its post-adaptation episodes (``meta/
post_adapt_return``; pytorch-maml-rl's ``valid_returns``), and a run reaches the threshold at
the first iteration where the mean of the last ``--window`` of them is at or above it; the
process is stopped there. A run that does not reach it within ``--max-iterations`` reports
its last running mean instead.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/time_to_result.py \\
        --pytorch-maml-rl ../pytorch-maml-rl --their-python ../pmrl-venv/bin/python --seeds 0 1
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
    command: list[str], returns, threshold: float, window: int
) -> tuple[float, int, float, bool]:
    """``(seconds, iterations, running mean, reached)`` of one run of ``command``, stopped
    when the running mean of ``window`` post-adaptation returns reaches ``threshold``."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, cwd=ROOT)  # fmt: skip
    seen: list[float] = []
    try:
        for value in returns(process):
            seen.append(value)
            mean = statistics.fmean(seen[-window:])
            if len(seen) >= window and mean >= threshold:
                return time.perf_counter() - start, len(seen), mean, True
    finally:
        process.kill()
        process.wait()
    if not seen:
        sys.exit(f"no iteration finished: {' '.join(command)}")
    return time.perf_counter() - start, len(seen), statistics.fmean(seen[-window:]), False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pytorch-maml-rl", type=Path, metavar="CHECKOUT", required=True)
    parser.add_argument("--their-python", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threshold", type=float, default=-16.0)
    parser.add_argument("--window", type=int, default=5, help="iterations in the running mean")
    parser.add_argument("--max-iterations", type=int, default=300)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    args = parser.parse_args()
    workers = max(len(os.sched_getaffinity(0)) - 1, 1)  # pytorch-maml-rl's own default
    rows = []
    for seed in args.seeds:
        theirs = [args.their_python, str(ROOT / "benchmarks" / "pytorch_maml_rl_iteration.py"),
                  "--checkout", str(args.pytorch_maml_rl.resolve()), "--stream",
                  "--iterations", str(args.max_iterations), "--workers", str(workers),
                  "--seed", str(seed)]  # fmt: skip
        rows.append(("pytorch-maml-rl", seed, *time_to(theirs, their_returns, args.threshold,
                                                        args.window)))  # fmt: skip
        print(rows[-1], flush=True)
        with tempfile.TemporaryDirectory() as logs:
            sets = [f"seed={seed}", f"maml.num_iterations={args.max_iterations}",
                    f"logging.log_dir={logs}", "logging.run_name=run", "logging.progress=false",
                    "logging.tensorboard=false", "checkpoint.every=1000",
                    *args.overrides]  # fmt: skip
            ours = [sys.executable, "-m", "metarobust.cli", "train", "--config",
                    "configs/maml_config.yaml", *(f"--set={s}" for s in sets)]  # fmt: skip
            logged = partial(our_returns, metrics=Path(logs) / "run" / "metrics.jsonl")
            rows.append(("metarobust", seed, *time_to(ours, logged, args.threshold, args.window)))
        print(rows[-1], flush=True)
    print(f"\n{len(os.sched_getaffinity(0))} core(s), OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; running mean of {args.window} "
          f"post-adaptation returns >= {args.threshold:g}, at most {args.max_iterations} "
          f"iterations; ours {' '.join(args.overrides) or 'as shipped'}\n")  # fmt: skip
    print("| loop | seed | seconds | iterations | running mean | reached |")
    print("| --- | --- | --- | --- | --- | --- |")
    for loop, seed, seconds, iterations, mean, reached in rows:
        print(f"| {loop} | {seed} | {seconds:.1f} | {iterations} | {mean:.1f} | "
              f"{'yes' if reached else 'no'} |")  # fmt: skip
    for loop in ("pytorch-maml-rl", "metarobust"):
        mine = [r[2] for r in rows if r[0] == loop]
        print(f"{loop}: median {statistics.median(mine):.1f} s over {len(mine)} seed(s)")


if __name__ == "__main__":
    main()
