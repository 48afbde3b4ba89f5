"""Save and restore a running env's state, so a resumed run continues mid-episode exactly.

Gymnasium envs pickle by re-construction (``EzPickle``), which loses the simulator state, so
this module captures what an episode in progress depends on, layer by layer:
``TimeLimit``'s step counter, the env's RNG, a task (anything with ``task``/``set_task``), a
per-episode choice still to come (a dynamics adversary's ``first_step`` flag) and the physics,
or an env's own ``get_state``/``set_state`` if it has them. An env with none of these cannot
be captured.

A captured state is data only: ints, floats, strings, dicts, lists and tensors, which
``torch.load(weights_only=True)`` reads without running code; nothing here unpickles. A state
being restored is treated as untrusted: every key, type, dtype and shape is checked before the
env is touched, and a mismatch is a one-line ``ConfigError``.

MuJoCo physics is stored as two parts. ``integration`` is ``mj_getState`` with
``mjSTATE_INTEGRATION`` (time, qpos, qvel, act, the solver warm start, controls, applied
forces, mocap, userdata, plugin state): all ``mj_step`` reads. It is not all a reward reads:
after ``mj_step``, derived quantities such as ``xpos`` lag one substep behind ``qpos`` (Ant's
reward differences the torso's ``xpos``), so ``fields`` also keeps a copy of every fixed-size
array of ``MjData`` (those whose shape the model fixes; the per-step contact and constraint
arrays are recomputed by the next step before anything reads them).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch

from metarobust.envs.rng import generator_from_state
from metarobust.errors import ConfigError

_INTEGRATION = mujoco.mjtState.mjSTATE_INTEGRATION
# Raw pointers into plugin memory: process-specific, never restored (plugin state is part of
# the integration state).
_NOT_RESTORED = frozenset({"plugin_data"})
_WHAT = "saved env state"


class StateNotCapturable(TypeError):
    """The env keeps state this module does not know how to save."""


def capture_env_state(env: gym.Env) -> dict[str, Any]:
    """Checkpoint-safe (tensors, ints, floats, strings, dicts, lists) state of ``env`` and its
    wrappers."""
    state: dict[str, Any] = {"layers": []}
    layer: Any = env
    while True:
        layer_state: dict[str, Any] = {}
        if hasattr(layer, "_elapsed_steps"):
            layer_state["elapsed_steps"] = layer._elapsed_steps
        if hasattr(layer, "task") and hasattr(layer, "set_task"):  # wrappers do not forward
            layer_state["task"] = layer.task
        if hasattr(layer, "first_step"):
            layer_state["first_step"] = bool(layer.first_step)
        state["layers"].append(layer_state)
        if not isinstance(layer, gym.Wrapper):
            break
        layer = layer.env
    core = layer
    if _is_mujoco(core):
        state["mujoco"] = capture_mujoco(core.model, core.data)
    elif hasattr(core, "get_state") and hasattr(core, "set_state"):
        state["core"] = core.get_state()
    else:
        raise StateNotCapturable(f"{type(core).__name__}: no way to capture its simulator state")
    if getattr(core, "_np_random", None) is not None:
        state["np_random"] = core.np_random.bit_generator.state
    return state


def restore_env_state(env: gym.Env, state: Any) -> None:
    """Put ``env`` (built from the same spec) back into a state from ``capture_env_state``.

    Everything is checked first, so a state that does not fit ``env`` raises a ConfigError
    and leaves ``env`` as it was.
    """
    layers = _wrapper_layers(env)
    core = layers[-1]
    _check_keys(state, _WHAT, required={"layers"}, optional={"mujoco", "core", "np_random"})
    saved_layers = state["layers"]
    if not isinstance(saved_layers, list) or len(saved_layers) != len(layers):
        got = len(saved_layers) if isinstance(saved_layers, list) else type(saved_layers).__name__
        raise ConfigError(f"{_WHAT}: layers: expected {len(layers)} wrapper layers, got {got}")
    for i, (layer, layer_state) in enumerate(zip(layers, saved_layers, strict=True)):
        _check_layer(layer, layer_state, f"{_WHAT}: layers.{i}")
    physics = "mujoco" if _is_mujoco(core) else "core"
    if physics not in state or ({"mujoco", "core"} - {physics}) & state.keys():
        raise ConfigError(f"{_WHAT}: expected {physics!r} physics for {type(core).__name__}")
    if physics == "mujoco":
        integration, fields = _checked_mujoco(core.model, state["mujoco"])
    rng = None
    if "np_random" in state:
        rng = generator_from_state(state["np_random"], f"{_WHAT}: np_random")

    for layer, layer_state in zip(layers, saved_layers, strict=True):
        if "elapsed_steps" in layer_state:
            layer._elapsed_steps = layer_state["elapsed_steps"]
        if "task" in layer_state:
            layer.set_task(layer_state["task"])
        if "first_step" in layer_state:
            layer.first_step = layer_state["first_step"]
    if physics == "mujoco":
        _write_mujoco(core.model, core.data, integration, fields)
    else:
        core.set_state(state["core"])
    if rng is not None:
        core.np_random = rng


def capture_mujoco(model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, Any]:
    """``{"integration": [size], "fields": {name: array}}`` of ``data``, as CPU tensors."""
    integration = np.empty(mujoco.mj_stateSize(model, _INTEGRATION))
    mujoco.mj_getState(model, data, integration, _INTEGRATION)
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


def _checked_mujoco(model: mujoco.MjModel, saved: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The arrays of a ``capture_mujoco`` state, checked against ``model``."""
    what = f"{_WHAT}: mujoco"
    if not isinstance(saved, Mapping):
        raise ConfigError(
            f"{what}: expected a mapping of arrays, got {type(saved).__name__} (states written "
            "as a pickle by older versions are not loaded)"
        )
    _check_keys(saved, what, required={"integration", "fields"})
    integration = _checked_array(
        saved["integration"],
        f"{what}.integration",
        (mujoco.mj_stateSize(model, _INTEGRATION),),
        np.dtype(np.float64),
    )
    expected = fixed_fields(model)
    _check_keys(saved["fields"], f"{what}.fields", required=set(expected))
    fields = {
        name: _checked_array(saved["fields"][name], f"{what}.fields.{name}", shape, dtype)
        for name, (shape, dtype) in expected.items()
    }
    return integration, fields


def _write_mujoco(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    integration: np.ndarray,
    fields: Mapping[str, np.ndarray],
) -> None:
    for name, value in fields.items():
        getattr(data, name)[...] = value
    mujoco.mj_setState(model, data, integration, _INTEGRATION)


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


def _check_layer(layer: Any, layer_state: Any, what: str) -> None:
    _check_keys(layer_state, what, optional={"elapsed_steps", "task", "first_step"})
    if "elapsed_steps" in layer_state:
        steps = layer_state["elapsed_steps"]
        if not hasattr(layer, "_elapsed_steps"):
            raise ConfigError(f"{what}: {type(layer).__name__} counts no steps")
        if type(steps) is not int or steps < 0:
            raise ConfigError(f"{what}.elapsed_steps: expected an int >= 0, got {steps!r}")
    if "task" in layer_state:
        if not (hasattr(layer, "task") and hasattr(layer, "set_task")):
            raise ConfigError(f"{what}: {type(layer).__name__} takes no task")
        if not isinstance(layer_state["task"], Mapping):
            got = type(layer_state["task"]).__name__
            raise ConfigError(f"{what}.task: expected a mapping, got {got}")
    if "first_step" in layer_state:
        if not hasattr(layer, "first_step"):
            raise ConfigError(f"{what}: {type(layer).__name__} has no first-step flag")
        if type(layer_state["first_step"]) is not bool:
            raise ConfigError(
                f"{what}.first_step: expected true or false, got {layer_state['first_step']!r}"
            )


def _check_keys(
    value: Any, what: str, required: Set[str] = frozenset(), optional: Set[str] = frozenset()
) -> None:
    """``value`` is a mapping with every ``required`` key and no key outside both sets."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what}: expected a mapping, got {type(value).__name__}")
    missing = sorted(required - value.keys())
    unknown = sorted(repr(k) for k in value.keys() - required - optional)
    if missing:
        raise ConfigError(f"{what}: missing {', '.join(missing)}")
    if unknown:
        raise ConfigError(f"{what}: unexpected {', '.join(unknown)}")


def _wrapper_layers(env: gym.Env) -> list[Any]:
    layers: list[Any] = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _is_mujoco(env: Any) -> bool:
    return hasattr(env, "model") and isinstance(getattr(env, "data", None), mujoco.MjData)
