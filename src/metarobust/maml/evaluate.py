"""Meta-test evaluation: average return after 0, 1, 2, ... inner gradient steps on tasks drawn
with a seed other than training's, each step on fresh episodes (MAML paper, Figures 2-3).

The meta-learned initialisation is compared with a randomly initialised policy adapted the
same way (same step size, episodes and tasks) and, if given, with a "pretrained" policy: a
run of multi-task TRPO on the same task distribution (``maml.num_inner_steps: 0``), adapted
with its own ``maml.fast_lr``. Writes ``adaptation.csv`` and
``adaptation.png`` into the run directory.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from metarobust.agents.policy import Params
from metarobust.config import Config
from metarobust.envs import default_task_distribution
from metarobust.errors import ConfigError
from metarobust.maml.adapt import StepSize, adapt, reinforce_advantages
from metarobust.maml.objective import split_meta_params
from metarobust.maml.train import episode_seed
from metarobust.plotting import plot_adaptation
from metarobust.sampling.backends import Sampler, make_sampler
from metarobust.sampling.env_factory import EnvSpec
from metarobust.train import build_policy
from metarobust.utils.checkpoint import load_checkpoint
from metarobust.utils.run_dir import load_run_config

CSV_NAME, PNG_NAME = "adaptation.csv", "adaptation.png"


def adaptation_curve(
    policy: nn.Module,
    params: Params,
    step_size: StepSize,
    sampler: Sampler,
    tasks: list[dict],
    episodes_per_task: int,
    num_steps: int,
    gamma: float,
    seed: int,
    progress: tqdm | None = None,
    later_step_size: StepSize | None = None,
) -> Tensor:
    """Mean return of every task after 0..``num_steps`` inner steps: ``[num_steps + 1, task]``.

    Step ``k`` samples fresh episodes with the parameters after ``k`` steps, then adapts each
    task's parameters once more on them (first order: only values are needed here), with
    ``step_size`` the first time and ``later_step_size`` (if given) after that.
    """
    buffers = {k: v.detach().cpu() for k, v in policy.named_buffers()}
    returns = torch.zeros(num_steps + 1, len(tasks))
    per_task = False
    for k in range(num_steps + 1):
        state = {
            "params": {n: v.detach().cpu() for n, v in params.items()},
            "buffers": buffers,
            "per_task": per_task,
        }
        traj = sampler.sample_episodes(state, tasks, episodes_per_task, episode_seed(seed, k, 0))
        returns[k] = traj.episode_returns.view(len(tasks), episodes_per_task).mean(1)
        if progress is not None:
            progress.update(1)
        if k < num_steps:
            adv = reinforce_advantages(traj, gamma)
            alpha = step_size if k == 0 or later_step_size is None else later_step_size
            adapted = adapt(policy, params, traj, adv, alpha, 1, True, per_task)
            params = {n: v.detach() for n, v in adapted.items()}
            per_task = True
    return returns


def evaluate_maml_run(
    run_dir: Path,
    num_tasks: int,
    episodes_per_task: int,
    num_steps: int = 3,
    seed: int = 12345,
    progress: bool = True,
    pretrained: Path | None = None,
    later_lr: float | None = None,
) -> str:
    """Adaptation curves of the run's meta-policy, of a random initialisation and of the
    ``pretrained`` run's policy on ``num_tasks`` tasks drawn with ``seed``; writes CSV and
    PNG, returns a summary line. ``later_lr`` is every method's step size after the first
    step (the MAML paper's evaluation used 0.05 after a first step of 0.1)."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ckpt = load_checkpoint(run_dir)
    spec = EnvSpec(cfg.env.id, dict(cfg.env.kwargs), cfg.env.max_episode_steps)
    tasks = default_task_distribution(cfg.env.id).sample(num_tasks, np.random.default_rng(seed))
    policy = build_policy(cfg, spec)
    meta_params, meta_alpha = split_meta_params(ckpt["meta_params"], cfg.maml.fast_lr)
    torch.manual_seed(seed)
    random_params = build_policy(cfg, spec).init_params()
    methods = {
        "MAML": (meta_params, meta_alpha),
        "random init": (random_params, cfg.maml.fast_lr),
    }
    if pretrained is not None:
        methods["pretrained"] = _pretrained_start(Path(pretrained), cfg)
    sampler_cfg = cfg.sampler.model_copy(
        update={"envs_per_worker": min(cfg.sampler.envs_per_worker, num_tasks * episodes_per_task)}
    )
    curves: dict[str, Tensor] = {}
    bar = tqdm(
        total=len(methods) * (num_steps + 1), unit="phase", desc="adapt", disable=not progress
    )
    with make_sampler(sampler_cfg, spec, policy, seed) as sampler, bar:
        for name, (params, alpha) in methods.items():
            curves[name] = adaptation_curve(
                policy,
                params,
                alpha,
                sampler,
                tasks,
                episodes_per_task,
                num_steps,
                cfg.maml.gamma,
                seed,
                bar,
                later_lr,
            )
    _write_csv(run_dir / CSV_NAME, curves)
    plot_adaptation(curves, run_dir / PNG_NAME, cfg.env.id)
    maml = curves["MAML"].mean(1).tolist()
    steps = ", ".join(f"{k}: {r:.1f}" for k, r in enumerate(maml))
    return (
        f"{cfg.env.id}, {num_tasks} held-out tasks x {episodes_per_task} episodes: MAML return "
        f"after k steps {{{steps}}}; wrote {run_dir / CSV_NAME} and {run_dir / PNG_NAME}"
    )


def _write_csv(path: Path, curves: dict[str, Tensor]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "gradient_steps", "return_mean", "return_std", "tasks"])
        for name, returns in curves.items():
            for k, per_task in enumerate(returns):
                std = per_task.std().item() if per_task.numel() > 1 else 0.0
                mean = per_task.mean().item()
                writer.writerow([name, k, f"{mean:.4f}", f"{std:.4f}", per_task.numel()])


def _pretrained_start(run_dir: Path, cfg: Config) -> tuple[Params, StepSize]:
    """The parameters and step size of a multi-task baseline run, checked against ``cfg``."""
    base = load_run_config(run_dir)
    if base.train.algorithm != "maml" or base.maml.num_inner_steps != 0:
        raise ConfigError(
            f"--pretrained {run_dir}: expected a run with train.algorithm=maml and "
            "maml.num_inner_steps=0 (multi-task TRPO)"
        )
    if (base.env.id, base.policy) != (cfg.env.id, cfg.policy):
        raise ConfigError(f"--pretrained {run_dir}: another env or policy shape than the run's")
    params, _ = split_meta_params(load_checkpoint(run_dir)["meta_params"], base.maml.fast_lr)
    return params, base.maml.fast_lr
