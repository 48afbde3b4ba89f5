"""NumPy generators rebuilt from saved ``bit_generator.state`` dicts, safely.

A saved state names its bit generator; only NumPy's own are accepted, so a name read from a
checkpoint never selects an arbitrary ``numpy.random`` attribute to call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from metarobust.errors import ConfigError

BIT_GENERATORS: dict[str, type[np.random.BitGenerator]] = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "MT19937": np.random.MT19937,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
}


def generator_from_state(state: Any, what: str = "np_random") -> np.random.Generator:
    """A ``Generator`` in ``state`` (a ``bit_generator.state`` dict); ConfigError naming
    ``what`` if it is not the state of one of ``BIT_GENERATORS``."""
    expected = f"expected the state of a NumPy bit generator ({', '.join(BIT_GENERATORS)})"
    if not isinstance(state, Mapping):
        raise ConfigError(f"{what}: {expected}, got {type(state).__name__}")
    name = state.get("bit_generator")
    if not isinstance(name, str) or name not in BIT_GENERATORS:
        raise ConfigError(f"{what}: {expected}, got bit_generator {name!r}")
    bit_generator = BIT_GENERATORS[name]()
    try:
        bit_generator.state = dict(state)
    except Exception as err:  # numpy's setter raises many kinds on malformed input
        problem = f"{type(err).__name__}: {err}".splitlines()[0]
        raise ConfigError(f"{what}: not a valid {name} state ({problem})") from None
    return np.random.Generator(bit_generator)
