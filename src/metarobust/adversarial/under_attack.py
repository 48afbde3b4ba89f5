"""Adaptation under attack: the return after 0..K inner steps on held-out tasks, each step
sampled (and adapted on) with an adversary acting, for MAML, robust-MAML, RARL and PPO/TRPO
runs (K = 0 for a policy that does not meta-learn). Every policy samples its actions, as in
meta-testing.

Conditions, on the two-player variant of the run's env (the same episodes in each):

- ``none``: no disturbance;
- ``own``: the run's own adversary, where it has one (robust MAML, RARL), mean action;
- ``fresh``: the adversary of an attack run (``metarobust attack RUN``), trained against this
  policy, and for meta-policies against its adaptation too, mean action; an attack with a
  population (``--set adversarial.population=K``) gives ``fresh 0`` .. ``fresh K-1`` and
  ``fresh (worst of K)``, the member that left the lowest mean return after the last step
  (RAP's lesson: one trained adversary is weaker than the worst of several);
- ``shared``: the adversary of another run (a robust-MAML or RARL run, or an attack run), so
  several policies meet the same trained disturbance, mean action;
- ``random``: zero-mean random disturbance whose mean clipped magnitude per component equals
  the strongest trained adversary's here (``fresh``, else ``own``, else ``shared``) on the
  unadapted episodes;
- ``grid``: model mismatch instead of an adversary: every held-out task on every cell of a
  mass x friction grid (the ``Dynamics`` variant of the run's env), the policy adapting on
  each (task, cell) pair; for envs with masses and frictions (MuJoCo), not Navigation2D.

Per condition and step: the mean over tasks (tasks x cells for the grid), CVaR at 10 % over
them (the mean of the worst tenth, RoML's measure) and the worst. Writes ``under_attack.csv``,
``under_attack_tasks.csv`` (per condition, step and task, or task x cell for the grid: the
return) and ``under_attack.png``; with the grid also ``under_attack_grid.csv`` (per cell and step,
over tasks) and ``under_attack_grid.png`` (a heat map of the cells after adaptation).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
from torch import Tensor
from tqdm.auto import tqdm

from metarobust.adversarial.disturbance import mean_magnitude, zero_mean
from metarobust.adversarial.game import ZeroSumGame
from metarobust.adversarial.rarl import saved_adversary
from metarobust.agents.factories import make_policy
from metarobust.envs import default_task_distribution, variant_env_id
from metarobust.errors import ConfigError
from metarobust.maml.algorithm import saved_meta_policy
from metarobust.maml.meta_test import adaptation_curve
from metarobust.plotting import plot_robustness_heatmaps, plot_under_attack, short_label
from metarobust.risk import CVAR_ALPHA, cvar
from metarobust.runs.outputs import write_csv, write_task_scores
from metarobust.runs.saved import SavedRun
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import EnvSpec, env_dims, env_players
from metarobust.sampling.sampler import Sampler
from metarobust.sampling.sampler_factory import EVALUATION_ENVS, make_sampler
from metarobust.utils.wording import count

CSV_NAME, PNG_NAME = "under_attack.csv", "under_attack.png"
TASKS_CSV_NAME = "under_attack_tasks.csv"
GRID_CSV_NAME, GRID_PNG_NAME = "under_attack_grid.csv", "under_attack_grid.png"
# Mass and friction scales of the grid condition: coarser than the robustness command's
# 11 x 11, since every cell adapts on every task.
DEFAULT_GRID = (0.5, 1.5, 3)


def attack_spec(run: SavedRun) -> EnvSpec:
    """The two-player env a run is attacked on: its own, or its env's ``Adv`` variant."""
    if env_players(run.spec) is not None:
        return run.spec
    return EnvSpec.variant(run.cfg.env, variant_env_id(run.cfg.env.id, "Adv"))


def grid_spec(run: SavedRun) -> EnvSpec | None:
    """The one-player env of the grid condition, the ``Dynamics`` variant of the run's env;
    None for an env without masses and frictions to scale (Navigation2D)."""
    try:
        return EnvSpec.dynamics(run.cfg.env)
    except ConfigError:
        return None


def evaluate_under_attack(
    run_dir: Path,
    *,
    attacker: Path | None = None,
    num_tasks: int = 40,
    episodes_per_task: int = 10,
    num_steps: int = 3,
    seed: int = 12345,
    grid: tuple[Sequence[float], Sequence[float]] | None = None,
    shared: Path | None = None,
    later_lr: float | None = None,
    out: Path | None = None,
    progress: bool = True,
) -> str:
    """The run's adaptation curves under every condition (``attacker``: an attack run of this
    run, for ``fresh``; ``shared``: a run whose adversary every policy may meet; ``grid``: the
    ``(masses, frictions)`` of the grid condition, skipped for an env without them; the step
    size after the first step ``later_lr`` if given); writes CSVs and PNGs into ``out``
    (default the run directory), returns a summary."""
    run = SavedRun.load(run_dir)
    out = run.path if out is None else Path(out)
    meta = run.cfg.train.meta_learns
    spec = attack_spec(run)
    policy, state = run.policy()
    params, step_size = saved_meta_policy(run) if meta else (state.params, 0.0)
    steps = num_steps if meta else 0
    trained: dict[str, PolicyState] = {}
    observes: dict[str, bool] = {}  # whether each trained adversary sees the task
    if run.cfg.train.has_adversaries:
        trained["own"] = saved_adversary(run)
        observes["own"] = run.cfg.adversarial.observes_task
    if attacker is not None:
        attack = SavedRun.load(attacker)
        victim = attack.cfg.adversarial.victim
        if victim is None or Path(victim).resolve() != run.path.resolve():
            raise ConfigError(f"--attacker {attacker}: not an attack run of {run.path}")
        members = attack.cfg.adversarial.population
        names = ["fresh"] if members == 1 else [f"fresh {i}" for i in range(members)]
        for i, name in enumerate(names):
            trained[name] = saved_adversary(attack, i)
            observes[name] = attack.cfg.adversarial.observes_task
    if shared is not None:
        other = SavedRun.load(shared)
        if not other.cfg.train.has_adversaries:
            raise ConfigError(f"shared adversary {shared}: a {other.algorithm} run has none")
        if other.cfg.env.id != spec.id:
            raise ConfigError(
                f"shared adversary {shared}: trained on {other.cfg.env.id}, this run is "
                f"attacked on {spec.id}"
            )
        trained["shared"] = saved_adversary(other)
        observes["shared"] = other.cfg.adversarial.observes_task
    if len(set(observes.values())) > 1:
        raise ConfigError(
            "the adversaries (own, --attacker's, shared) differ in adversarial.observes_task; "
            "evaluate them in separate calls"
        )
    game = ZeroSumGame.for_env(spec, observes_task=any(observes.values()))
    obs_dim = env_dims(spec)[0]
    adversary = make_policy(run.cfg, game.learner_obs_dim("adversary", obs_dim), game.adversary_dim)
    shapes = {k: tuple(v.shape) for k, v in adversary.named_parameters()}
    for name, opponent in trained.items():
        if {k: tuple(v.shape) for k, v in opponent.params.items()} != shapes:
            raise ConfigError(
                f"the {name} adversary's network does not fit this run's policy settings "
                "(the policy group); evaluate it against a run with the same network"
            )
    idle = zero_mean(PolicyState.of(adversary.init_params(), adversary, deterministic=True), None)
    tasks, named = _tasks(run, num_tasks, seed)
    envs = min(EVALUATION_ENVS, len(tasks) * episodes_per_task)
    sampler_cfg = run.cfg.sampler.model_copy(update={"envs_per_worker": envs, "workers": 1})
    modules = {"protagonist": policy, "adversary": adversary}
    conditions = {"none": idle, **trained}
    grid_env = grid_spec(run) if grid is not None else None
    phases = len(conditions) + bool(trained) + (grid_env is not None)
    bar = tqdm(total=phases * (steps + 1), unit="phase", desc="under attack",
               disable=not progress)  # fmt: skip
    curves: dict[str, Tensor] = {}
    with make_sampler(sampler_cfg, spec, modules, seed, game=game) as sampler, bar:
        if trained:  # random disturbance as strong as the strongest trained adversary
            order = ("fresh", "fresh 0", "own", "shared")
            strongest = next(trained[name] for name in order if name in trained)
            magnitude = _magnitude(sampler, state, strongest, tasks, seed)
            conditions["random"] = zero_mean(strongest, magnitude)
        curve = partial(adaptation_curve, policy, params, step_size=step_size,
                        episodes_per_task=episodes_per_task, num_steps=steps,
                        gamma=run.cfg.maml.gamma, seed=seed, later_step_size=later_lr,
                        progress=bar)  # fmt: skip
        for name, opponent in conditions.items():
            curves[name] = curve(sampler, tasks, opponent=opponent).returns
        members = [name for name in curves if name.startswith("fresh ")]
        if members:  # a population attack: its worst member on the adapted policy
            worst = min(members, key=lambda name: curves[name][-1].mean().item())
            curves[f"fresh (worst of {len(members)})"] = curves[worst]
        if grid_env is not None:
            assert grid is not None
            masses, frictions = grid
            cells = [
                {**(task or {}), "mass_scale": mass, "friction_scale": friction}
                for task in tasks
                for mass in masses
                for friction in frictions
            ]
            with make_sampler(sampler_cfg, grid_env, policy, seed) as one_player:
                curves["grid"] = curve(one_player, cells).returns
    _write_csv(out / CSV_NAME, run.path.name, curves)
    write_task_scores(out / TASKS_CSV_NAME, "condition", curves)
    summary = {
        name: (curve.mean(1).tolist(), [cvar(row) for row in curve])
        for name, curve in curves.items()
    }
    plot_under_attack({short_label(run.cfg): summary}, out / PNG_NAME, spec.id, CVAR_ALPHA)
    wrote = [out / CSV_NAME, out / TASKS_CSV_NAME, out / PNG_NAME]
    if "grid" in curves:
        assert grid_env is not None and grid is not None
        # [step, task x mass x friction] -> [step, mass, friction, task]
        per_cell = curves["grid"].view(steps + 1, len(tasks), len(grid[0]), len(grid[1]))
        per_cell = per_cell.permute(0, 2, 3, 1)
        _write_grid_csv(out / GRID_CSV_NAME, run.path.name, *grid, per_cell)
        note = f"mean over {named} after {count(steps, 'adaptation step')}"
        plot_robustness_heatmaps(out / GRID_PNG_NAME, [short_label(run.cfg)], *grid,
                                 [per_cell[-1]], grid_env.id, note)  # fmt: skip
        wrote += [out / GRID_CSV_NAME, out / GRID_PNG_NAME]
    parts = [
        f"{name} {curve[-1].mean().item():.1f} (CVaR {cvar(curve[-1]):.1f})"
        for name, curve in curves.items()
    ]
    if grid is not None and grid_env is None:
        parts.append(f"no grid ({run.cfg.env.id} has no masses or frictions to scale)")
    return (
        f"{spec.id}, {named} x {count(episodes_per_task, 'episode')}, return after "
        f"{count(steps, 'step')}: " + ", ".join(parts) + f"; wrote {', '.join(map(str, wrote))}"
    )


def _tasks(run: SavedRun, num_tasks: int, seed: int) -> tuple[list, str]:
    """Held-out tasks of the run's task distribution, or the run's one task, and what the
    summary calls them."""
    try:
        distribution = default_task_distribution(run.cfg.env.id, run.cfg.env.task_distribution)
    except ConfigError:
        why = f"{run.cfg.env.id} has no task distribution to draw --tasks from"
        return [run.cfg.env.task], f"the run's one task ({why})"
    tasks = distribution.sample(num_tasks, np.random.default_rng(seed))
    return tasks, count(num_tasks, "held-out task")


def _magnitude(
    sampler: Sampler, victim: PolicyState, adversary: PolicyState, tasks: list, seed: int
) -> Tensor:
    """The adversary's mean clipped action magnitude per component against ``victim``."""
    acting = Acting({"protagonist": victim, "adversary": adversary}, learner="adversary")
    traj = sampler.sample_episodes(acting, tasks, 1, seed)
    return mean_magnitude(traj)


def _write_grid_csv(
    path: Path,
    label: str,
    masses: Sequence[float],
    frictions: Sequence[float],
    per_cell: Tensor,
) -> None:
    """One row per cell and step (``per_cell``: ``[step, mass, friction, task]``)."""
    header = ["run", "mass_scale", "friction_scale", "gradient_steps", "return_mean",
              "return_cvar10", "worst", "tasks"]  # fmt: skip
    rows = (
        [label, mass, friction, k, f"{cell.mean().item():.4f}", f"{cvar(cell):.4f}",
         f"{cell.min().item():.4f}", cell.numel()]
        for k, step in enumerate(per_cell)
        for i, mass in enumerate(masses)
        for j, friction in enumerate(frictions)
        for cell in [step[i, j]]
    )  # fmt: skip
    write_csv(path, header, rows)


def _write_csv(path: Path, label: str, curves: dict[str, Tensor]) -> None:
    header = ["run", "condition", "gradient_steps", "return_mean", "return_cvar10", "worst",
              "tasks"]  # fmt: skip
    rows = (
        [label, name, k, f"{per_task.mean().item():.4f}", f"{cvar(per_task):.4f}",
         f"{per_task.min().item():.4f}", per_task.numel()]
        for name, curve in curves.items()
        for k, per_task in enumerate(curve)
    )  # fmt: skip
    write_csv(path, header, rows)
