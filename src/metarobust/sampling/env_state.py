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

MuJoCo physics is kept as arrays: its integration state and every fixed-size field of
``MjData`` (``metarobust.envs.mujoco_state``).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

import gymnasium as gym
import mujoco

from metarobust.envs.mujoco_state import capture_mujoco, checked_mujoco, write_mujoco
from metarobust.envs.rng import generator_from_state
from metarobust.errors import ConfigError

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
    kind = "mujoco" if _is_mujoco(core) else "core"
    if kind not in state or ({"mujoco", "core"} - {kind}) & state.keys():
        raise ConfigError(f"{_WHAT}: expected {kind!r} physics for {type(core).__name__}")
    physics = (
        checked_mujoco(core.model, state["mujoco"], f"{_WHAT}: mujoco")
        if kind == "mujoco"
        else None
    )
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
    if physics is not None:
        write_mujoco(core.model, core.data, physics)
    else:
        core.set_state(state["core"])
    if rng is not None:
        core.np_random = rng


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
