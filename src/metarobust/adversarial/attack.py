"""Attack a frozen policy: train a fresh force adversary against it, then compare its return
with no disturbance, random disturbance of equal magnitude, and the trained adversary.

The attack is RARL with no protagonist updates (``adversarial.protagonist_updates: 0``) and
the victim's saved policy as the protagonist, so it trains, logs, checkpoints and resumes like
any run. The force budget is the env's (for a Hopper-v5 victim, ``metarobust/HopperAdv-v0``:
the RARL preset); the victim acts with its mean action throughout.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from metarobust.adversarial.disturbance import mean_magnitude, zero_mean
from metarobust.adversarial.game import ZeroSumGame
from metarobust.adversarial.rarl import RARL, saved_adversary
from metarobust.adversarial.robust_maml import RobustMAML
from metarobust.agents.factories import make_policy
from metarobust.config import Config, SamplerConfig
from metarobust.envs import variant_env_id
from metarobust.errors import ConfigError
from metarobust.runs.outputs import write_csv
from metarobust.runs.run_dir import load_run_config
from metarobust.runs.saved import SavedRun
from metarobust.runs.training import run_algorithm
from metarobust.sampling.acting import Acting, PolicyState
from metarobust.sampling.env_factory import EnvSpec, env_dims, env_players, episode_horizon
from metarobust.sampling.sampler_factory import EVALUATION_BATCH, make_sampler
from metarobust.utils.wording import count

ATTACK_NAME = "attack.csv"
CONDITIONS = ("none", "random", "trained")


def attack_dir(victim_dir: Path, seed: int, *, observations: bool = False) -> Path:
    """Where the attack of ``seed`` on the run in ``victim_dir`` trains: beside it."""
    kind = "obs_attack" if observations else "attack"
    return victim_dir.parent / f"{victim_dir.name}_{kind}_s{seed}"


def attack(
    victim_dir: Path,
    steps: int,
    seed: int,
    overrides: list[str] | tuple[str, ...] = (),
    epsilon: float | None = None,
) -> Path:
    """Train an adversary for ``steps`` env steps against the policy saved in ``victim_dir``
    (a PPO/TRPO run or a RARL run's protagonist); returns the attack's run directory, next to
    the victim's. The adversary pushes with forces (the ``Adv`` env's budget; a RARL victim's
    own env), or with ``epsilon`` shifts the victim's observations by at most that much per
    component (the ``ObsAdv`` env). ``overrides`` (``key=value``) change the attack's config,
    which is otherwise the victim's (the adversary uses the victim's update rule)."""
    victim_dir = Path(victim_dir).resolve()
    victim = load_run_config(victim_dir)
    if victim.train.meta_learns:
        if epsilon is not None:
            raise ConfigError("--epsilon: observation attacks take PPO/TRPO/RARL victims")
        return attack_meta_policy(victim_dir, victim, steps, seed, overrides)
    rarl = victim.train.has_adversaries  # meta-learners (robust MAML too) went above
    env_id, kwargs = victim.env.id, dict(victim.env.kwargs)
    if epsilon is not None:
        # a RARL victim's env kwargs describe its force adversary, not the base env
        env_id = variant_env_id(env_id, "ObsAdv")
        kwargs = {**({} if rarl else kwargs), "epsilon": epsilon}
    elif not rarl:
        env_id = variant_env_id(env_id, "Adv")
    update = (
        victim.train.algorithm if victim.train.algorithm != "rarl" else victim.adversarial.adversary
    )
    cfg = load_run_config(
        victim_dir,
        [
            "train.algorithm=rarl",
            f"env.id={env_id}",
            f"env.kwargs={json.dumps(kwargs)}",
            f"train.total_steps={steps}",
            f"seed={seed}",
            f"adversarial.adversary={update}",
            "adversarial.protagonist_updates=0",
            "adversarial.population=1",
            f"adversarial.victim={victim_dir}",
            f"logging.log_dir={victim_dir.parent}",
            f"logging.run_name={attack_dir(victim_dir, seed, observations=bool(epsilon)).name}",
            *overrides,
        ],
    )
    return run_algorithm(cfg, RARL)


def attack_meta_policy(
    victim_dir: Path, victim: Config, steps: int, seed: int, overrides: Sequence[str] = ()
) -> Path:
    """A fresh adversary against a frozen meta-policy *and its adaptation*: robust MAML with
    no meta-updates, so each iteration the victim adapts to a meta-batch of tasks under attack
    and the adversary trains on episodes against the adapted policies. ``steps`` env steps in
    all (pre-adaptation and adversary episodes), on the victim's two-player env or the ``Adv``
    variant of its task env."""
    two_player = env_players(EnvSpec.from_config(victim.env)) is not None
    env_id = victim.env.id if two_player else variant_env_id(victim.env.id, "Adv")
    kwargs = dict(victim.env.kwargs)
    cfg = load_run_config(
        victim_dir,
        [
            "train.algorithm=robust_maml",
            f"env.id={env_id}",
            f"env.kwargs={json.dumps(kwargs)}",
            f"seed={seed}",
            "adversarial.protagonist_updates=0",
            "adversarial.population=1",
            f"adversarial.victim={victim_dir}",
            # the attacker trains from its first iteration, on as many episodes as the victim
            # adapts on, whatever schedule the victim's own adversary had
            "adversarial.joins_at=0",
            "adversarial.episodes_per_task=null",
            # a MAML victim's trpo group is its outer step's; the adversary fits rllab's
            # linear baseline, as the inner loop does
            *([] if two_player else ["trpo.baseline=linear"]),
            f"logging.log_dir={victim_dir.parent}",
            f"logging.run_name={attack_dir(victim_dir, seed).name}",
            *overrides,
        ],
    )
    # each iteration: one pre-adaptation pass, then N_nu adversary passes (the attack's N_nu)
    m, adv = cfg.maml, cfg.adversarial
    horizon = episode_horizon(EnvSpec(env_id, kwargs, cfg.env.max_episode_steps))
    episodes = m.episodes_per_task + adv.adversary_updates * (
        adv.episodes_per_task or m.episodes_per_task
    )
    per_iteration = m.meta_batch_size * episodes * horizon
    iterations = math.ceil(steps / per_iteration)
    cfg = cfg.model_copy(update={"maml": m.model_copy(update={"num_iterations": iterations})})
    return run_algorithm(cfg, RobustMAML)


def attack_report(
    run_dir: Path, episodes: int, seed: int, *, out: Path | None = None, progress: bool = True
) -> str:
    """The victim's return under each condition (``attack.csv`` in ``out``, default
    ``run_dir``), one line.

    Every condition runs the same ``episodes`` (same seeds). "random" is a zero-mean Gaussian
    disturbance, clipped to the budget like any action, whose mean magnitude per component
    equals the trained adversary's (measured on these episodes)."""
    run = SavedRun.load(run_dir)
    cfg, spec = run.cfg, run.spec
    if cfg.adversarial.victim is None:
        raise ConfigError(f"{run_dir}: not an attack run (adversarial.victim is not set)")
    game = ZeroSumGame.for_env(spec, observes_task=cfg.adversarial.observes_task)
    obs_dim = env_dims(spec)[0]
    modules = {
        "protagonist": make_policy(cfg, obs_dim, game.protagonist_dim),
        "adversary": make_policy(
            cfg, game.learner_obs_dim("adversary", obs_dim), game.adversary_dim
        ),
    }
    _, victim = run.policy()
    victim = replace(victim, deterministic=True)
    trained = saved_adversary(run)
    batch = min(episodes, EVALUATION_BATCH)
    sampler_cfg = SamplerConfig(envs_per_worker=batch)
    returns: dict[str, list[float]] = {}
    with make_sampler(sampler_cfg, spec, modules, seed, game=game) as sampler:

        def victim_returns(adversary: PolicyState) -> tuple[list[float], torch.Tensor]:
            acting = Acting({"protagonist": victim, "adversary": adversary}, learner="adversary")
            traj = sampler.sample_episodes(acting, [cfg.env.task], episodes, seed)
            # zero-sum: the victim's returns are minus the adversary's
            return (-traj.episode_returns).tolist(), mean_magnitude(traj)

        returns["trained"], magnitude = victim_returns(trained)
        returns["none"], _ = victim_returns(zero_mean(trained, None))
        returns["random"], _ = victim_returns(zero_mean(trained, magnitude))

    path = write_csv(
        (run.path if out is None else Path(out)) / ATTACK_NAME,
        ["condition", "episode", "return"],
        ([c, i, f"{ret:.4f}"] for c in CONDITIONS for i, ret in enumerate(returns[c])),
    )
    parts = [f"{c} {np.mean(returns[c]):.1f} ± {np.std(returns[c]):.1f}" for c in CONDITIONS]
    overall = float(magnitude.mean())
    return (
        f"victim return over {count(episodes, 'episode')}: "
        + ", ".join(parts)
        + f" (mean |adversary action| {overall:.2f} of the budget); wrote {path}"
    )
