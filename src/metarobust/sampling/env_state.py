"""Save and restore a running env's state, so a resumed run continues mid-episode exactly.

Gymnasium envs pickle by re-construction (``EzPickle``), which loses the simulator state, so
this module captures what an episode in progress depends on, layer by layer:
``TimeLimit``'s step counter, the env's RNG, a task (anything with ``task``/``set_task``) and
the physics: MuJoCo's whole ``MjData`` (its own pickle format; ``mj_getState`` is not enough,
because after ``mj_step`` derived quantities such as ``xpos`` lag one substep behind ``qpos``
and rewards read them), or an env's own ``get_state``/``set_state`` if it has them. An env
with none of these cannot be captured.
"""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np


class StateNotCapturable(TypeError):
    """The env keeps state this module does not know how to save."""


def capture_env_state(env: gym.Env) -> dict[str, Any]:
    """Checkpoint-safe (bytes, ints, floats, dicts) state of ``env`` and its wrappers."""
    state: dict[str, Any] = {"layers": []}
    layer: Any = env
    while True:
        layer_state: dict[str, Any] = {}
        if hasattr(layer, "_elapsed_steps"):
            layer_state["elapsed_steps"] = layer._elapsed_steps
        if hasattr(layer, "task") and hasattr(layer, "set_task"):  # wrappers do not forward
            layer_state["task"] = layer.task
        state["layers"].append(layer_state)
        if not isinstance(layer, gym.Wrapper):
            break
        layer = layer.env
    core = layer
    if hasattr(core, "get_state") and hasattr(core, "set_state") and not _is_mujoco(core):
        state["core"] = core.get_state()
    elif _is_mujoco(core):
        state["mujoco"] = pickle.dumps(core.data)
    else:
        raise StateNotCapturable(f"{type(core).__name__}: no way to capture its simulator state")
    if getattr(core, "_np_random", None) is not None:
        state["np_random"] = core.np_random.bit_generator.state
    return state


def restore_env_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Put ``env`` (built from the same spec) back into a state from ``capture_env_state``."""
    layer: Any = env
    for layer_state in state["layers"]:
        if "elapsed_steps" in layer_state:
            layer._elapsed_steps = layer_state["elapsed_steps"]
        if "task" in layer_state:
            layer.set_task(layer_state["task"])
        if not isinstance(layer, gym.Wrapper):
            break
        layer = layer.env
    core = layer
    if "core" in state:
        core.set_state(state["core"])
    if "mujoco" in state:
        mujoco.mj_copyData(core.data, core.model, pickle.loads(state["mujoco"]))
    if "np_random" in state:
        rng = np.random.Generator(getattr(np.random, state["np_random"]["bit_generator"])())
        rng.bit_generator.state = state["np_random"]
        core.np_random = rng


def _is_mujoco(env: Any) -> bool:
    return hasattr(env, "model") and isinstance(getattr(env, "data", None), mujoco.MjData)
