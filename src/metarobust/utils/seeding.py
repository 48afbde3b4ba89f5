"""One run seed for Python, NumPy and torch; RNG states in and out of checkpoints."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed ``random``, NumPy's legacy global RNG and torch; return a torch Generator for the
    learner's own randomness (minibatch shuffling) so library code never draws from globals."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def episode_seed(seed: int, iteration: int, phase: int) -> int:
    """The sampler seed of one phase (sampling pass) of one iteration, from the run seed alone
    (so a resumed run needs no state for it)."""
    return int(np.random.SeedSequence([seed, iteration, phase]).generate_state(1)[0])


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state a run depends on, as checkpoint-safe values."""
    return {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
    }


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Inverse of ``rng_state``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {**numpy_state["state"], "key": np.asarray(numpy_state["state"]["key"])}
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])


def _numpy_state() -> dict[str, Any]:
    state = np.random.get_state(legacy=False)
    state["state"] = {**state["state"], "key": state["state"]["key"].tolist()}
    return state
