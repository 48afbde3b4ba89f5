"""The generators by name, over the env's task distribution with the ued group's settings:
what ``ued.generator`` names for UED and ``maml.task_selection`` for MAML's meta-batch."""

from __future__ import annotations

import numpy as np

from metarobust.config import Config
from metarobust.envs import default_task_distribution
from metarobust.envs.level_generation import RandomLevels, edit_level
from metarobust.errors import ConfigError
from metarobust.generators.base import DomainRandomization, Generator
from metarobust.generators.cvar import CVaRSampler
from metarobust.generators.designer import BoxDesigner, LevelDesigner
from metarobust.generators.plr import ACCEL, PLR


def make_generator(
    cfg: Config,
    name: str,
    rng: np.random.Generator,
    *,
    score: str,
    robust: bool,
    field: str = "ued.generator",
) -> Generator:
    """The generator ``name`` (``dr``, ``cvar``, ``plr``, ``accel``, ``minimax``, ``paired``)
    drawing with ``rng``; PLR and ACCEL keep their buffer by ``score`` and, ``robust``, train
    only on replayed levels. ``field``: the config key that named it, for errors."""
    u = cfg.ued
    distribution = default_task_distribution(cfg.env.id, cfg.env.task_distribution)
    if name == "dr":
        return DomainRandomization(distribution, rng)
    if name == "cvar":
        return CVaRSampler(distribution, rng, alpha=u.cvar_alpha)
    plr = {
        "buffer_size": u.buffer_size,
        "replay_prob": u.replay_prob,
        "temperature": u.temperature,
        "staleness_coef": u.staleness_coef,
        "robust": robust,
        "score": score,
    }
    if name == "plr":
        return PLR(distribution, rng, **plr)
    levels = isinstance(distribution, RandomLevels)
    if name == "accel" and not levels:
        raise ConfigError(
            f"{field}: accel edits obstacle levels; {cfg.env.id} has none "
            "(use metarobust/Navigation2DObstacles-v0)"
        )
    if name == "accel":
        return ACCEL(distribution, rng, edit_level, **plr)
    if not (levels or distribution.box() is not None):
        raise ConfigError(
            f"{field}: {name} designs obstacle levels or tasks in a box of parameters; "
            f"{cfg.env.id}'s distribution is neither ({distribution!r})"
        )
    designer = LevelDesigner if levels else BoxDesigner
    score = "negative_return" if name == "minimax" else "regret"
    return designer(distribution, rng, score=score, lr=u.designer_lr, seed=cfg.seed)
