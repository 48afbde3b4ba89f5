"""Risk measures over returns (higher is better)."""

from __future__ import annotations

import math

from torch import Tensor

CVAR_ALPHA = 0.1  # RoML's (Greenberg et al. 2023) tail share


def cvar(values: Tensor, alpha: float = CVAR_ALPHA) -> float:
    """Conditional value at risk: the mean of the lowest ``ceil(alpha * n)`` of ``values``."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    n = max(1, math.ceil(alpha * values.numel()))
    return values.flatten().sort().values[:n].double().mean().item()
