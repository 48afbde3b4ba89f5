"""A MuJoCo simulation's state as data, so an episode in progress can be saved and continued
exactly (``metarobust.sampling.env_state``; Meta-World's ``get_state``).

The state has two parts. ``integration`` is ``mj_getState`` with ``mjSTATE_INTEGRATION``
(time, qpos, qvel, act, the solver warm start, controls, applied forces, mocap, userdata,
plugin state): all ``mj_step`` reads. It is not all a reward reads: after ``mj_step``, derived
quantities such as ``xpos`` lag one substep behind ``qpos`` (Ant's reward differences the
torso's ``xpos``), so ``fields`` also keeps a copy of every fixed-size array of ``MjData``
(those whose shape the model fixes; the per-step contact and constraint arrays are recomputed
by the next step before anything reads them). Both are CPU tensors, which
``torch.load(weights_only=True)`` reads without running code; a state being restored is
checked array by array against the model first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import mujoco
import numpy as np
import torch

from metarobust.errors import ConfigError

INTEGRATION = mujoco.mjtState.mjSTATE_INTEGRATION
# Raw pointers into plugin memory: process-specific, never restored (plugin state is part of
# the integration state).
_NOT_RESTORED = frozenset({"plugin_data"})


class Physics(NamedTuple):
    """A checked MuJoCo state, ready to write."""

    integration: np.ndarray
    fields: dict[str, np.ndarray]


def capture_mujoco(model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, Any]:
    """``{"integration": [size], "fields": {name: array}}`` of ``data``, as CPU tensors."""
    integration = np.empty(mujoco.mj_stateSize(model, INTEGRATION))
    mujoco.mj_getState(model, data, integration, INTEGRATION)
    return {
        "integration": torch.from_numpy(integration),
        "fields": {
            name: torch.from_numpy(getattr(data, name).copy()) for name in fixed_fields(model)
        },
    }


def fixed_fields(model: mujoco.MjModel) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{name: (shape, dtype)}`` of every non-empty ``MjData`` array whose shape ``model``
    fixes: those a fresh ``MjData`` already has at full size (the arena arrays, sized by the
    contacts and constraints of a step, are empty in a fresh one)."""
    fresh = mujoco.MjData(model)
    fields = {}
    for name in dir(fresh):
        if name.startswith("_") or name in _NOT_RESTORED:
            continue
        value = getattr(fresh, name)
        if isinstance(value, np.ndarray) and value.size > 0:
            fields[name] = (value.shape, value.dtype)
    return fields


def checked_mujoco(model: mujoco.MjModel, saved: Any, what: str) -> Physics:
    """The arrays of a ``capture_mujoco`` state, checked against ``model`` (a one-line
    ConfigError starting with ``what`` on the first that does not fit)."""
    if not isinstance(saved, Mapping):
        raise ConfigError(
            f"{what}: expected a mapping of arrays, got {type(saved).__name__} (states written "
            "as a pickle by older versions are not loaded)"
        )
    _check_exact_keys(saved, what, {"integration", "fields"})
    integration = _checked_array(
        saved["integration"],
        f"{what}.integration",
        (mujoco.mj_stateSize(model, INTEGRATION),),
        np.dtype(np.float64),
    )
    expected = fixed_fields(model)
    _check_exact_keys(saved["fields"], f"{what}.fields", set(expected))
    fields = {
        name: _checked_array(saved["fields"][name], f"{what}.fields.{name}", shape, dtype)
        for name, (shape, dtype) in expected.items()
    }
    return Physics(integration, fields)


def write_mujoco(model: mujoco.MjModel, data: mujoco.MjData, physics: Physics) -> None:
    """Put ``data`` into the state ``physics`` (from ``checked_mujoco``)."""
    for name, value in physics.fields.items():
        getattr(data, name)[...] = value
    mujoco.mj_setState(model, data, physics.integration, INTEGRATION)


def _check_exact_keys(value: Any, what: str, keys: set[str]) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what}: expected a mapping, got {type(value).__name__}")
    missing, unknown = sorted(keys - value.keys()), sorted(map(repr, value.keys() - keys))
    if missing:
        raise ConfigError(f"{what}: missing {', '.join(missing)}")
    if unknown:
        raise ConfigError(f"{what}: unexpected {', '.join(unknown)}")


def _checked_array(value: Any, what: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``value`` (a tensor) as a NumPy array of exactly ``shape`` and ``dtype``."""
    want = torch.from_numpy(np.empty(0, dtype)).dtype
    if not isinstance(value, torch.Tensor) or value.layout != torch.strided:
        got = type(value).__name__ if not isinstance(value, torch.Tensor) else value.layout
        raise ConfigError(f"{what}: expected a dense {want} tensor, got {got}")
    if value.dtype != want or tuple(value.shape) != shape:
        raise ConfigError(
            f"{what}: expected a {want} tensor of shape {list(shape)}, "
            f"got {value.dtype} of shape {list(value.shape)}"
        )
    return np.ascontiguousarray(value.detach().cpu().numpy())
