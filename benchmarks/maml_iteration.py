"""Seconds per MAML-TRPO meta-iteration, split into sampling / adaptation / outer step; and
robust MAML's iteration against plain MAML's on the same batch (``--robust``).

Runs a few meta-iterations of each config (pytorch-maml-rl's batch sizes: 2D navigation 20
tasks x 20 episodes x 100 steps, HalfCheetahVel 40 tasks x 20 episodes x 100 steps; two
sampling phases each; 10 CG iterations) and averages the time split the training loop logs,
after one warm-up iteration. For orientation: pytorch-maml-rl takes about 13.8 s per
2D-navigation meta-iteration with 2 workers on the machine the targets were set on.

    python benchmarks/maml_iteration.py
    python benchmarks/maml_iteration.py --robust   # robust / plain, alternated, 2D navigation

``--robust`` runs plain MAML (configs/maml_config.yaml) and robust MAML
(configs/robust_maml/navigation.yaml: the same batch, policy and outer step, plus the wind
adversary acting in both phases and its TRPO update on a third pass, with its Fisher products on
a fifth of that pass's transitions) alternately, twice each,
and prints the ratio of their mean seconds per iteration (the sum of the logged time parts:
sampling, adaptation, outer step and, for robust MAML, the adversary's pass and update).
"""

from __future__ import annotations

import argparse
import json
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
        rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").open()][1:]
    parts = [p for p in rows[0] if p.startswith("time/")]
    out = {p: sum(r[p] for r in rows) / len(rows) for p in parts}
    out["total"] = sum(out[p] for p in parts)
    out["env_steps"] = (rows[-1]["step"] - rows[0]["step"]) / max(len(rows) - 1, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--fisher-subsample", nargs="+", type=float, default=[1.0, 0.2])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--robust", action="store_true", help="robust / plain MAML iteration")
    args = parser.parse_args()
    if args.robust:
        compare_robust(args.iterations)
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


def compare_robust(iterations: int, rounds: int = 2) -> None:
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


if __name__ == "__main__":
    main()
