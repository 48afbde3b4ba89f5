"""Meta-test evaluation: average return after 0, 1, 2, ... inner gradient steps on tasks drawn
with a seed other than training's, each step on fresh episodes (MAML paper, Figures 2-3).

The meta-learned initialisation is compared with a randomly initialised policy adapted the
same way (same step size, episodes and tasks) and, if given, with a "pretrained" policy: a
run of multi-task TRPO on the same task distribution (``maml.num_inner_steps: 0``), adapted
with its own ``maml.fast_lr``. Writes ``adaptation.csv`` (per method and step: the mean, std,
CVaR 10 % and worst of the tasks' returns), ``adaptation_tasks.csv`` (per method, step and
task: the task's return) and ``adaptation.png`` into the run directory, and for an env that
reports success (Meta-World) ``success.csv``: per method, env and step, the share of episodes
that succeeded at some step, and ``success_tasks.csv``: that share per method, step and task.
The tasks come from the task distribution's ``meta_test()``: fresh draws, or a benchmark's
test split (Meta-World's meta-test protocol).

    for k = 0 .. K:
        D_k  <- fresh episodes of every task with theta_k (theta_0 = the start, shared)
        R[k] <- mean return of D_k per task
        theta_{k+1} = theta_k - alpha_k * grad L(theta_k; D_k)      (per task, first order)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from metarobust.agents.factories import make_policy
from metarobust.agents.policy import Params
from metarobust.envs import default_task_distribution
from metarobust.errors import ConfigError
from metarobust.maml.adapt import StepSize, adapt_to_episodes
from metarobust.maml.algorithm import saved_meta_policy
from metarobust.plotting import plot_adaptation
from metarobust.risk import CVAR_ALPHA, cvar
from metarobust.runs.outputs import write_csv, write_task_scores
from metarobust.runs.saved import SavedRun
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import env_dims
from metarobust.sampling.sampler import Sampler
from metarobust.sampling.sampler_factory import make_sampler
from metarobust.utils.seeding import episode_seed
from metarobust.utils.wording import count

CSV_NAME, PNG_NAME = "adaptation.csv", "adaptation.png"
TASKS_CSV_NAME, SUCCESS_CSV_NAME = "adaptation_tasks.csv", "success.csv"
SUCCESS_TASKS_CSV_NAME = "success_tasks.csv"


@dataclass(frozen=True)
class AdaptationCurve:
    """Per inner step and task (``[num_steps + 1, task]``): the mean return of the step's
    episodes, and the share of them that succeeded (NaN where the env reports no success)."""

    returns: Tensor
    successes: Tensor


def adaptation_curve(
    policy: nn.Module,
    params: Params,
    sampler: Sampler,
    tasks: list[dict],
    *,
    step_size: StepSize,
    episodes_per_task: int,
    num_steps: int,
    gamma: float,
    seed: int,
    later_step_size: StepSize | None = None,
    opponent: PolicyState | None = None,
    progress: tqdm | None = None,
) -> AdaptationCurve:
    """Mean return (and success) of every task after 0..``num_steps`` inner steps.

    Step ``k`` samples fresh episodes with the parameters after ``k`` steps, then adapts each
    task's parameters once more on them (first order: only values are needed here), with
    ``step_size`` the first time and ``later_step_size`` (if given) after that. With an
    ``opponent`` (a two-player sampler) the policy samples, and adapts, under its attack.
    """
    returns = torch.zeros(num_steps + 1, len(tasks))
    successes = torch.zeros(num_steps + 1, len(tasks))
    state = PolicyState.of(params, policy)
    for k in range(num_steps + 1):
        acting = Acting.single(state)
        if opponent is not None:
            acting = Acting({"protagonist": state, "adversary": opponent}, "protagonist")
        traj = sampler.sample_episodes(acting, tasks, episodes_per_task, episode_seed(seed, k, 0))
        returns[k] = traj.episode_returns.view(len(tasks), episodes_per_task).mean(1)
        successes[k] = traj.episode_successes.view(len(tasks), episodes_per_task).mean(1)
        if progress is not None:
            progress.update(1)
        if k < num_steps:
            alpha = step_size if k == 0 or later_step_size is None else later_step_size
            adapted, _ = adapt_to_episodes(
                policy,
                state.params,
                traj,
                gamma=gamma,
                step_size=alpha,
                per_task_params=state.stack == "task",
            )
            state = PolicyState.of(adapted, policy, stack="task")
    return AdaptationCurve(returns, successes)


def adapt_on_task(
    saved: SavedRun,
    policy: nn.Module,
    sampler: Sampler,
    task: Mapping[str, Any],
    *,
    episodes: int,
    steps: int,
    seed: int,
    step_size: float | None = None,
) -> Params:
    """A MAML run's meta-policy adapted to one ``task``: ``steps`` inner steps, each on
    ``episodes`` fresh episodes (the meta-test protocol); the adapted parameters."""
    params, alpha = saved_meta_policy(saved)
    if step_size is not None:
        alpha = step_size
    for k in range(steps):
        acting = Acting.single(PolicyState.of(params, policy))
        traj = sampler.sample_episodes(acting, [task], episodes, episode_seed(seed, k, 0))
        adapted, _ = adapt_to_episodes(
            policy, params, traj, gamma=saved.cfg.maml.gamma, step_size=alpha
        )
        params = {k: v[0] for k, v in adapted.items()}
    return params


def evaluate_maml_run(
    run_dir: Path,
    *,
    num_tasks: int,
    episodes_per_task: int,
    num_steps: int = 3,
    seed: int = 12345,
    pretrained: Path | None = None,
    later_lr: float | None = None,
    out: Path | None = None,
    progress: bool = True,
) -> str:
    """Adaptation curves of the run's meta-policy, of a random initialisation and of the
    ``pretrained`` run's policy on ``num_tasks`` tasks drawn with ``seed``; writes CSV and
    PNG into ``out`` (default the run directory), returns a summary line. ``later_lr`` is
    every method's step size after the first step (the MAML paper's evaluation used 0.05
    after a first step of 0.1)."""
    saved = SavedRun.load(run_dir)
    cfg, spec = saved.cfg, saved.nominal_spec  # no disturbance
    distribution = default_task_distribution(cfg.env.id, cfg.env.task_distribution).meta_test()
    tasks = distribution.sample(num_tasks, np.random.default_rng(seed))
    policy = make_policy(cfg, *env_dims(spec))
    meta_params, meta_alpha = saved_meta_policy(saved)
    torch.manual_seed(seed)
    random_params = make_policy(cfg, *env_dims(spec)).init_params()
    methods = {
        "MAML": (meta_params, meta_alpha),
        "random init": (random_params, cfg.maml.fast_lr),
    }
    if pretrained is not None:
        methods["pretrained"] = _pretrained_start(Path(pretrained), saved)
    envs = min(cfg.sampler.envs_per_worker, num_tasks * episodes_per_task)
    sampler_cfg = cfg.sampler.model_copy(update={"envs_per_worker": envs})
    curves: dict[str, AdaptationCurve] = {}
    bar = tqdm(
        total=len(methods) * (num_steps + 1), unit="phase", desc="adapt", disable=not progress
    )
    with make_sampler(sampler_cfg, spec, policy, seed) as sampler, bar:
        for name, (params, alpha) in methods.items():
            curves[name] = adaptation_curve(
                policy,
                params,
                sampler,
                tasks,
                step_size=alpha,
                episodes_per_task=episodes_per_task,
                num_steps=num_steps,
                gamma=cfg.maml.gamma,
                seed=seed,
                later_step_size=later_lr,
                progress=bar,
            )
    out = saved.path if out is None else Path(out)
    returns = {name: curve.returns for name, curve in curves.items()}
    _write_csv(out / CSV_NAME, returns)
    write_task_scores(out / TASKS_CSV_NAME, "method", returns)
    plot_adaptation(returns, out / PNG_NAME, cfg.env.id)
    maml = returns["MAML"].mean(1).tolist()
    steps = ", ".join(f"{k}: {r:.1f}" for k, r in enumerate(maml))
    wrote = [out / CSV_NAME, out / TASKS_CSV_NAME, out / PNG_NAME]
    if not curves["MAML"].successes.isnan().all():
        envs = [task.get("env_name", cfg.env.id) for task in tasks]
        _write_success_csv(out / SUCCESS_CSV_NAME, curves, envs)
        successes = {name: curve.successes for name, curve in curves.items()}
        write_task_scores(out / SUCCESS_TASKS_CSV_NAME, "method", successes, score="success")
        rates = curves["MAML"].successes.mean(1).tolist()
        steps += "; success " + ", ".join(f"{k}: {r:.0%}" for k, r in enumerate(rates))
        wrote[2:2] = [out / SUCCESS_CSV_NAME, out / SUCCESS_TASKS_CSV_NAME]
    return (
        f"{cfg.env.id}, {count(num_tasks, 'held-out task')} x "
        f"{count(episodes_per_task, 'episode')}: MAML return "
        f"after k steps {{{steps}}}; wrote {', '.join(map(str, wrote))}"
    )


def _write_success_csv(path: Path, curves: Mapping[str, AdaptationCurve], envs: list[str]) -> None:
    """Per method, env (a Meta-World task's ``env_name``) and inner step: the share of the
    episodes that succeeded at some step, over that env's held-out tasks."""
    names = sorted(set(envs))
    rows = []
    for method, curve in curves.items():
        for env in names:
            mine = torch.tensor([e == env for e in envs])
            for k, per_task in enumerate(curve.successes):
                rows.append([method, env, k, f"{per_task[mine].mean().item():.4f}",
                             int(mine.sum())])  # fmt: skip
    write_csv(path, ["method", "env", "gradient_steps", "success_rate", "tasks"], rows)


def _write_csv(path: Path, curves: dict[str, Tensor]) -> None:
    tail = f"return_cvar{round(100 * CVAR_ALPHA)}"
    header = ["method", "gradient_steps", "return_mean", "return_std", tail, "return_worst",
              "tasks"]  # fmt: skip

    def row(name: str, k: int, per_task: Tensor) -> list:
        std = per_task.std().item() if per_task.numel() > 1 else 0.0
        numbers = (per_task.mean().item(), std, cvar(per_task), per_task.min().item())
        return [name, k, *(f"{x:.4f}" for x in numbers), per_task.numel()]

    rows = (
        row(name, k, per_task) for name, curve in curves.items() for k, per_task in enumerate(curve)
    )
    write_csv(path, header, rows)


def _pretrained_start(run_dir: Path, run: SavedRun) -> tuple[Params, StepSize]:
    """The parameters and step size of a multi-task baseline run, checked against ``run``."""
    base = SavedRun.load(run_dir)
    if base.algorithm != "maml" or base.cfg.maml.num_inner_steps != 0:
        raise ConfigError(
            f"--pretrained {run_dir}: expected a run with train.algorithm=maml and "
            "maml.num_inner_steps=0 (multi-task TRPO)"
        )
    if (base.cfg.env.id, base.cfg.policy) != (run.cfg.env.id, run.cfg.policy):
        raise ConfigError(f"--pretrained {run_dir}: another env or policy shape than the run's")
    params, _ = saved_meta_policy(base)
    return params, base.cfg.maml.fast_lr
