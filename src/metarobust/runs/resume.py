"""Which settings a resumed run may change, and a clear refusal for the others.

A resumed run continues the saved state under the config in force: budgets, learning rates,
logging, checkpoint cadence, device and sampler backend are applied for real; anything that
shapes the saved state or the data (networks, env, algorithm, envs per worker, seeds, ...) is
refused with one line naming the key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from metarobust.config import Config
from metarobust.errors import ConfigError

BUDGETS = {  # the settings that end a run, and what they count
    "train.total_steps": "steps",
    "maml.num_iterations": "iterations",
    "ued.num_iterations": "iterations",
    "ued.total_steps": "steps",
}
CHANGEABLE = frozenset(
    {
        *BUDGETS,
        "ppo.lr",
        "trpo.vf_lr",
        "logging.tensorboard",
        "logging.progress",
        "checkpoint.every",
        "device",
        "sampler.backend",
        "sampler.ray_address",
        "sampler.timeout",
    }
)


def flat_settings(cfg: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Every leaf setting as ``{"group.key": value}`` (dict-valued settings stay whole)."""
    out: dict[str, Any] = {}
    for name in type(cfg).model_fields:
        value = getattr(cfg, name)
        if isinstance(value, BaseModel):
            out |= flat_settings(value, f"{prefix}{name}.")
        else:
            out[f"{prefix}{name}"] = value
    return out


def changed_settings(saved: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, new value)}`` of every setting that differs."""
    before, after = flat_settings(saved), flat_settings(new)
    return {k: (before[k], after[k]) for k in before if before[k] != after[k]}


def shaping_change(changes: dict[str, tuple[Any, Any]]) -> str | None:
    """The first key of ``changes`` that shapes a saved run (one not ``CHANGEABLE``), or None."""
    return next((key for key in changes if key not in CHANGEABLE), None)


def resume_changes(saved: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, new value)}`` of the settings a resume changes; ConfigError for
    the first one that cannot change."""
    changes = changed_settings(saved, new)
    key = shaping_change(changes)
    if key is not None:
        old, value = changes[key]
        raise ConfigError(
            f"{key}: cannot change when resuming ({old!r} -> {value!r}: it shapes the saved "
            f"run); changeable: {', '.join(sorted(CHANGEABLE))}"
        )
    return changes
