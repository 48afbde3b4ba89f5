"""Seconds per MAML-TRPO meta-iteration, split into sampling / adaptation / outer step; and
robust MAML's iteration against plain MAML's on the same batch (``--robust``); and ours against
pytorch-maml-rl's loop (``--pytorch-maml-rl``).

Runs a few meta-iterations of each config (pytorch-maml-rl's batch sizes: 2D navigation 20
tasks x 20 episodes x 100 steps, HalfCheetahVel 40 tasks x 20 episodes x 100 steps; two
sampling phases each; 10 CG iterations) and averages the time split the training loop logs,
after one warm-up iteration.

    python benchmarks/maml_iteration.py
    python benchmarks/maml_iteration.py --robust   # robust / plain, alternated, 2D navigation

``--robust`` runs plain MAML (configs/maml_config.yaml) and robust MAML
(configs/robust_maml/navigation.yaml: the same batch, policy and outer step, plus the wind
adversary acting in both phases and its TRPO update on a third pass, with its Fisher products on
a fifth of that pass's transitions) alternately, twice each,
and prints the ratio of their mean seconds per iteration (the sum of the logged time parts:
sampling, adaptation, outer step and, for robust MAML, the adversary's pass and update).

``--pytorch-maml-rl CHECKOUT --their-python PYTHON`` times pytorch-maml-rl's own loop on its
2D-navigation config (``configs/maml/2d-navigation.yaml``: 20 tasks x 20 episodes x 100 steps,
2x64 tanh, fast lr 0.1, one inner step, GAE lambda 1 with its linear baseline, max KL 0.01,
10 CG iterations with damping 1e-5, 15 line-search steps backtracking by 0.8, exact Fisher)
beside ours on the same settings (``configs/maml_config.yaml`` with ``maml.fisher_subsample``
1, and as shipped, 0.2), alternated round by round in this process's cores and thread
settings; PYTHON is an interpreter with that project's requirements (gym 0.17, numpy < 2,
torch), running ``benchmarks/pytorch_maml_rl_iteration.py``. Both report wall-clock seconds
per iteration, everything included, after one warm-up iteration; pytorch-maml-rl samples
with as many worker processes as its default (the cores available, less one, at least one):

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/maml_iteration.py \
        --pytorch-maml-rl ../pytorch-maml-rl --their-python ../pmrl-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from metarobust.api import train
from metarobust.config import load_config

CONFIGS = {
    "2D navigation": "configs/maml_config.yaml",
    "HalfCheetahVel": "configs/maml/halfcheetah_vel_pytorch_maml_rl.yaml",
}
PARTS = ("time/sampling", "time/adaptation", "time/outer_step")
ROBUST = {"plain": "configs/maml_config.yaml", "robust": "configs/robust_maml/navigation.yaml"}


def seconds_per_iteration(config: str, fisher_subsample: float, iterations: int) -> dict:
    """Mean of each logged time part (and their sum) over ``iterations`` after a warm-up."""
    with tempfile.TemporaryDirectory() as logs:
        cfg = load_config(
            config,
            [
                f"maml.num_iterations={iterations + 1}",
                f"maml.fisher_subsample={fisher_subsample}",
                "logging.progress=false",
                "logging.tensorboard=false",
                f"logging.log_dir={logs}",
                "checkpoint.every=1000",
            ],
        )
        run = train(cfg)
        logged = [json.loads(line) for line in (Path(run) / "metrics.jsonl").open()]
    rows = logged[1:]  # after the warm-up
    parts = [p for p in rows[0] if p.startswith("time/")]
    out = {p: sum(r[p] for r in rows) / len(rows) for p in parts}
    out["total"] = sum(out[p] for p in parts)
    out["env_steps"] = (rows[-1]["step"] - rows[0]["step"]) / max(len(rows) - 1, 1)
    # wall-clock seconds of each: charts/SPS is an iteration's new env steps per second
    pairs = zip(logged[:-1], rows, strict=True)
    out["wall"] = [(r["step"] - q["step"]) / r["charts/SPS"] for q, r in pairs]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--fisher-subsample", nargs="+", type=float, default=[1.0, 0.2])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--robust", action="store_true", help="robust / plain MAML iteration")
    parser.add_argument("--pytorch-maml-rl", type=Path, metavar="CHECKOUT",
                        help="time that project's 2D-navigation loop beside ours")  # fmt: skip
    parser.add_argument("--their-python", default=sys.executable,
                        help="interpreter with pytorch-maml-rl's requirements")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternated rounds (--robust, --pytorch-maml-rl)")  # fmt: skip
    args = parser.parse_args()
    if args.robust:
        compare_robust(args.iterations, args.rounds)
        return
    if args.pytorch_maml_rl:
        compare_pytorch_maml_rl(args)
        return
    print("| env | Fisher subsample | env steps / iter | sampling s | adaptation s | outer step s "
          "| total s |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.envs:
        for fraction in args.fisher_subsample:
            t = seconds_per_iteration(CONFIGS[name], fraction, args.iterations)
            print(
                f"| {name} | {fraction:g} | {t['env_steps']:,.0f} | {t['time/sampling']:.2f} | "
                f"{t['time/adaptation']:.2f} | {t['time/outer_step']:.2f} | {t['total']:.2f} |",
                flush=True,
            )


def compare_robust(iterations: int, rounds: int) -> None:
    """Robust and plain MAML alternated (plain, robust, plain, robust, ...) on one batch."""
    totals: dict[str, list[float]] = {name: [] for name in ROBUST}
    for _ in range(rounds):
        for name, config in ROBUST.items():
            t = seconds_per_iteration(config, 0.2, iterations)
            totals[name].append(t["total"])
            parts = ", ".join(f"{k.removeprefix('time/')} {v:.2f}" for k, v in t.items()
                              if k.startswith("time/"))  # fmt: skip
            print(f"{name}: {t['total']:.2f} s per iteration ({parts})", flush=True)
    plain, robust = (sum(totals[n]) / rounds for n in ROBUST)
    print(f"robust / plain seconds per iteration: {robust / plain:.2f} "
          f"({robust:.2f} s / {plain:.2f} s, {rounds} alternated runs each)")  # fmt: skip


def their_seconds_per_iteration(checkout: Path, python: str, iterations: int) -> list[float]:
    """pytorch-maml-rl's wall-clock seconds of each iteration after a warm-up one."""
    workers = max(len(os.sched_getaffinity(0)) - 1, 1)  # its own default
    driver = Path(__file__).with_name("pytorch_maml_rl_iteration.py")
    command = [python, str(driver), "--checkout", str(checkout), "--workers", str(workers),
               "--iterations", str(iterations + 1)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        sys.exit(f"pytorch-maml-rl failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])["seconds"][1:]


def compare_pytorch_maml_rl(args: argparse.Namespace) -> None:
    """Ours (exact and shipped Fisher) and pytorch-maml-rl's loop, alternated per round."""
    runs: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for fraction in args.fisher_subsample:
            name = f"metarobust, Fisher subsample {fraction:g}"
            t = seconds_per_iteration(CONFIGS["2D navigation"], fraction, args.iterations)
            wall = t["wall"]
            runs.setdefault(name, []).extend(wall)
            print(f"round {r}: {name}: " + " ".join(f"{w:.2f}" for w in wall), flush=True)
        wall = their_seconds_per_iteration(args.pytorch_maml_rl, args.their_python, args.iterations)
        runs.setdefault("pytorch-maml-rl (exact)", []).extend(wall)
        print(f"round {r}: pytorch-maml-rl: " + " ".join(f"{w:.2f}" for w in wall), flush=True)
    theirs = statistics.median(runs["pytorch-maml-rl (exact)"])
    print(f"\n{len(os.sched_getaffinity(0))} core(s), OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, {args.rounds} alternated rounds of "
          f"{args.iterations} timed iterations; median seconds per iteration\n")  # fmt: skip
    print("| loop | s / iteration (median) | min - max | pytorch-maml-rl / this |")
    print("| --- | --- | --- | --- |")
    for name, wall in runs.items():
        median = statistics.median(wall)
        print(f"| {name} | {median:.2f} | {min(wall):.2f} - {max(wall):.2f} | "
              f"{theirs / median:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
