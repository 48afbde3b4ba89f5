"""RARL against a baseline trained without adversary, per seed: robustness grid and attack.

For each seed: trains the RARL config and a baseline with the protagonist's update rule and
settings on the base env (``train.total_steps`` protagonist env steps each), evaluates both
on the same mass x friction grid (paired episodes), attacks both with a fresh adversary under
the same force budget, and writes ``summary.csv``, ``summary.md`` (mean ± std over seeds)
and ``intervals.{csv,md,png}`` (the IQM of the mean return per grid cell over seeds x cells,
with 95 % bootstrap intervals, and RARL's probability of improving on the baseline) into
``--out``. Finished runs are reused, so an interrupted comparison continues where it
stopped (a run cut off mid-training is resumed from its last checkpoint).

    python experiments/rarl_vs_baseline.py --config configs/adversarial_config.yaml \\
        --set env.id=metarobust/InvertedPendulumAdv-v0 --set train.total_steps=100000 \\
        --seeds 0 1 2 --attack-steps 50000 --out runs/rarl_inverted_pendulum
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import numpy as np

from metarobust.adversarial.attack import attack, attack_report
from metarobust.adversarial.robustness import CSV_NAME, DEFAULT_GRID, robustness_grid, scale_grid
from metarobust.api import train
from metarobust.config import load_config
from metarobust.envs import base_env_id
from metarobust.errors import ConfigError
from metarobust.studies import attack_run, finished_run, run_study, up_to_date

METHODS = ("baseline", "rarl")


def compare_seed(args: argparse.Namespace, seed: int) -> list[dict]:
    """Train, attack and grid-evaluate both methods for one seed; one row per method."""
    common = [*args.overrides, f"seed={seed}", f"logging.log_dir={args.out}"]
    rarl_cfg = load_config(args.config, [*common, f"logging.run_name=rarl_s{seed}"])
    if rarl_cfg.train.algorithm != "rarl":
        raise ConfigError(f"{args.config}: expected train.algorithm: rarl")
    baseline_cfg = load_config(
        args.config,
        [
            *common,
            f"logging.run_name=baseline_s{seed}",
            f"train.algorithm={rarl_cfg.adversarial.protagonist}",
            f"env.id={base_env_id(rarl_cfg.env.id)}",
        ],
    )
    runs = {
        "rarl": finished_run(args.out / f"rarl_s{seed}", lambda: train(rarl_cfg), rarl_cfg),
        "baseline": finished_run(
            args.out / f"baseline_s{seed}", lambda: train(baseline_cfg), baseline_cfg
        ),
    }
    grid = scale_grid(*DEFAULT_GRID[:2], args.grid_points)
    grid_dir = args.out / f"robustness_s{seed}"
    if not up_to_date(grid_dir / CSV_NAME, *runs.values()):
        print(robustness_grid(list(runs.values()), grid, grid, args.episodes, seed, grid_dir))
    cell_means = read_grid_means(grid_dir / CSV_NAME)
    rows = []
    for method, run_dir in runs.items():
        attack_dir = attack_run(run_dir, seed, lambda r=run_dir: attack(r, args.attack_steps, seed))
        if not up_to_date(attack_dir / "attack.csv", attack_dir):
            print(attack_report(attack_dir, args.episodes * 4, seed))
        returns = read_attack(attack_dir / "attack.csv")
        rows.append(
            {
                "method": method,
                "seed": seed,
                "grid_mean": statistics.fmean(cell_means[run_dir.name]),
                "grid_worst": min(cell_means[run_dir.name]),
                "no_disturbance": returns["none"],
                "random_disturbance": returns["random"],
                "trained_adversary": returns["trained"],
                "attack_drop": returns["none"] - returns["trained"],
            }
        )
    return rows


def read_grid_means(path: Path) -> dict[str, list[float]]:
    """Each policy's mean return per cell, from ``robustness.csv``."""
    cells: dict[tuple[str, str, str], list[float]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            key = (row["policy"], row["mass_scale"], row["friction_scale"])
            cells.setdefault(key, []).append(float(row["return"]))
    means: dict[str, list[float]] = {}
    for (policy, _, _), returns in cells.items():
        means.setdefault(policy, []).append(statistics.fmean(returns))
    return means


def read_attack(path: Path) -> dict[str, float]:
    """Mean return per condition, from ``attack.csv``."""
    returns: dict[str, list[float]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            returns.setdefault(row["condition"], []).append(float(row["return"]))
    return {condition: statistics.fmean(r) for condition, r in returns.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/adversarial_config.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--attack-steps", type=int, default=200_000)
    parser.add_argument("--episodes", type=int, default=5, help="per grid cell (attack: 4x)")
    parser.add_argument("--grid-points", type=int, default=DEFAULT_GRID[2])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    title = (
        f"{args.config} {' '.join(args.overrides)}: seeds {args.seeds}, "
        f"{args.grid_points}x{args.grid_points} grid x {args.episodes} episodes, attacks of "
        f"{args.attack_steps} steps"
    )
    return run_study(
        "rarl_vs_baseline",
        args.out,
        args.seeds,
        lambda seed: compare_seed(args, seed),
        title=title,
        methods=METHODS,
        scores=lambda method, seed: np.array(
            read_grid_means(args.out / f"robustness_s{seed}" / CSV_NAME)[f"{method}_s{seed}"]
        ),
        metric="mean return per mass x friction cell",
    )


if __name__ == "__main__":
    sys.exit(main())
