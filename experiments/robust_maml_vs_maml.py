"""Robust MAML against plain MAML and the multi-task baselines, per seed, under attack.

For each seed, four methods on the same task distribution with the same nominal env steps
(each method gets the fewest iterations whose episodes per task, pre- and post-adaptation and
the adversary's, reach robust MAML's; meta-batch and horizon are the same):

- ``robust_maml``: the config as given (train.algorithm: robust_maml on a two-player task env);
- ``maml``: plain MAML on the env's base (no adversary);
- ``multitask_rarl``: robust MAML with 0 inner steps (one policy for all tasks, adversary);
- ``multitask_trpo``: MAML with 0 inner steps on the base (the MAML paper's "pretrained").

Each trained policy is then attacked by a fresh adversary trained against it and (for the
meta-policies) its adaptation (``metarobust attack``; ``--attack-set`` changes the attack's
config, e.g. ``adversarial.observes_task=true``), and evaluated under attack on the same
held-out tasks (``metarobust evaluate --under-attack``): the return after one inner step (the
multi-task policies adapted the same way, as the MAML paper's "pretrained" baseline) with no
disturbance, against its fresh adversary, against random disturbance of that adversary's
strength and against robust MAML's own final adversary of the same seed (``shared``: one
trained disturbance for all four), with CVaR 10 % over tasks of the attacked return; on
MuJoCo envs also on every held-out task x mass x friction cell (``--grid``), with CVaR 10 %
over tasks x cells. Writes
``summary.csv`` (per seed), ``summary.md`` (mean ± std), ``intervals.{csv,md,png}`` (the IQM
of the return per held-out task against the fresh adversary, over seeds x tasks, with 95 %
bootstrap intervals, and each baseline's probability of improving on robust MAML) and per
seed ``under_attack_s<seed>.png`` (the methods' adaptation curves side by side, per condition)
into ``--out``; finished runs are reused and cut-off runs resumed. ``--baselines`` runs a
subset of the three.

    python experiments/robust_maml_vs_maml.py --config configs/robust_maml/navigation.yaml \\
        --seeds 0 1 2 --attack-steps 2000000 --out runs/robust_maml_navigation \\
        --attack-set adversarial.observes_task=true --attack-set adversarial.adversary_updates=5
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from metarobust.adversarial.attack import attack
from metarobust.adversarial.robustness import scale_grid
from metarobust.adversarial.under_attack import (
    CSV_NAME,
    DEFAULT_GRID,
    TASKS_CSV_NAME,
    evaluate_under_attack,
)
from metarobust.api import train
from metarobust.config import Config, load_config
from metarobust.envs import base_env_id
from metarobust.errors import ConfigError
from metarobust.plotting import plot_under_attack
from metarobust.risk import CVAR_ALPHA
from metarobust.studies import attack_run, finished_run, last_step_scores, run_study, up_to_date

METHODS = ("robust_maml", "maml", "multitask_rarl", "multitask_trpo")
CONDITIONS = ("none", "fresh", "shared", "random", "grid")  # what the summary reports


def episodes_per_task(cfg: Config, iterations: int) -> int:
    """Episodes sampled per meta-batch task in ``iterations`` iterations of ``cfg`` (pre- and
    post-adaptation passes, and the adversary's once it has joined)."""
    m, adv = cfg.maml, cfg.adversarial
    meta = m.episodes_per_task * (2 if m.num_inner_steps > 0 else 1)
    if cfg.train.algorithm != "robust_maml":
        return iterations * meta
    adversary = (
        adv.population * adv.adversary_updates * (adv.episodes_per_task or m.episodes_per_task)
    )
    return (
        iterations * adv.protagonist_updates * meta + max(iterations - adv.joins_at, 0) * adversary
    )


def method_configs(args: argparse.Namespace, seed: int) -> dict[str, Config]:
    """Robust MAML's and the baselines' configs for ``seed``, at robust MAML's env steps."""
    common = [*args.overrides, f"seed={seed}", f"logging.log_dir={args.out}"]
    robust = load_config(args.config, [*common, f"logging.run_name=robust_maml_s{seed}"])
    if robust.train.algorithm != "robust_maml":
        raise ConfigError(f"{args.config}: expected train.algorithm: robust_maml")
    # plain MAML on the one-player base env: no adversary, nothing for one to observe
    plain = ["train.algorithm=maml", f"env.id={base_env_id(robust.env.id)}",
             "adversarial.observes_task=false", "adversarial.joins_at=0",
             "adversarial.episodes_per_task=null"]  # fmt: skip
    variants = {
        "robust_maml": [],
        "maml": plain,
        "multitask_rarl": ["maml.num_inner_steps=0"],
        "multitask_trpo": [*plain, "maml.num_inner_steps=0"],
    }
    budget = episodes_per_task(robust, robust.maml.num_iterations)
    configs = {}
    for method in ("robust_maml", *args.baselines):
        extra = variants[method]
        cfg = load_config(args.config, [*common, *extra, f"logging.run_name={method}_s{seed}"])
        iterations = 1
        while episodes_per_task(cfg, iterations) < budget:  # the fewest reaching the budget
            iterations += 1
        configs[method] = cfg.model_copy(
            update={"maml": cfg.maml.model_copy(update={"num_iterations": iterations})}
        )
    return configs


def compare_seed(args: argparse.Namespace, seed: int) -> list[dict]:
    """Train, attack and evaluate the four methods for one seed; one row per method."""
    rows, curves = [], {}
    scales = scale_grid(*args.grid, flag="--grid")
    configs = method_configs(args, seed)
    shared = args.out / configs["robust_maml"].logging.run_name  # robust MAML's own adversary
    for method, cfg in configs.items():
        run = finished_run(args.out / cfg.logging.run_name, lambda c=cfg: train(c), cfg)
        attacker = attack_run(
            run, seed, lambda r=run: attack(r, args.attack_steps, seed, args.attack_overrides)
        )
        if not up_to_date(run / TASKS_CSV_NAME, run, attacker):
            print(
                evaluate_under_attack(
                    run,
                    attacker=attacker,
                    num_tasks=args.tasks,
                    episodes_per_task=args.episodes,
                    num_steps=1,
                    seed=args.eval_seed,
                    grid=(scales, scales),
                    shared=shared,
                )
            )
        rows.append({"method": method, "seed": seed, **read_last_step(run / CSV_NAME)})
        curves[method] = {
            name: curve for name, curve in read_curves(run / CSV_NAME).items() if name != "own"
        }
    title = " ".join([str(args.config), *args.overrides]) + f", seed {seed}"
    plot_under_attack(curves, args.out / f"under_attack_s{seed}.png", title, CVAR_ALPHA)
    return rows


def read_last_step(path: Path) -> dict[str, float]:
    """Mean (and, attacked or on the grid, CVaR 10 %) return per condition after the last
    adaptation step."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    last = max(int(r["gradient_steps"]) for r in rows)
    out = {}
    for r in rows:
        if int(r["gradient_steps"]) == last and r["condition"] in CONDITIONS:
            out[r["condition"]] = float(r["return_mean"])
            if r["condition"] in ("fresh", "shared", "grid"):
                out[f"{r['condition']}_cvar10"] = float(r["return_cvar10"])
    return out


def read_curves(path: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Per condition, the mean and CVaR 10 % return per step, from an ``under_attack.csv``."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for r in sorted(rows, key=lambda r: int(r["gradient_steps"])):
        means, cvars = curves.setdefault(r["condition"], ([], []))
        means.append(float(r["return_mean"]))
        cvars.append(float(r["return_cvar10"]))
    return curves


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/robust_maml/navigation.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--baselines", nargs="+", choices=METHODS[1:], default=list(METHODS[1:]),
        help="the methods robust MAML is compared with (default: all three)",
    )  # fmt: skip
    parser.add_argument("--attack-steps", type=int, default=2_000_000)
    parser.add_argument(
        "--attack-set", dest="attack_overrides", action="append", default=[], metavar="K=V",
        help="override the attacks' config (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--grid", type=float, nargs=3, default=DEFAULT_GRID, metavar=("LOW", "HIGH", "POINTS"),
        help="mass and friction scales of the grid condition (MuJoCo envs)",
    )  # fmt: skip
    parser.add_argument("--tasks", type=int, default=40, help="held-out tasks")
    parser.add_argument("--episodes", type=int, default=20, help="per task and step")
    parser.add_argument("--eval-seed", type=int, default=12345, help="held-out tasks' seed")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    title = (
        f"{args.config} {' '.join(args.overrides)}: seeds {args.seeds}, attacks of "
        f"{args.attack_steps} steps {' '.join(args.attack_overrides)}, {args.tasks} held-out "
        f"tasks x {args.episodes} episodes; return after one inner step"
    )
    return run_study(
        "robust_maml_vs_maml",
        args.out,
        args.seeds,
        lambda seed: compare_seed(args, seed),
        title=title,
        methods=("robust_maml", *args.baselines),
        scores=lambda method, seed: last_step_scores(
            args.out / f"{method}_s{seed}" / TASKS_CSV_NAME, "return", condition="fresh"
        ),
        metric="return per held-out task after one inner step against a fresh adversary",
    )


if __name__ == "__main__":
    sys.exit(main())
