"""MuJoCo warnings as Python warnings, instead of stderr lines and a MUJOCO_LOG.TXT file.

MuJoCo's default handler prints every warning and appends it to ``MUJOCO_LOG.TXT`` in the
working directory. Gymnasium's own HalfCheetah model triggers a deprecation warning
('settotalmass') on every load, in every worker process; that one is dropped (it concerns the
XML asset shipped with Gymnasium, not anything a user can act on). Every other MuJoCo warning
becomes a ``RuntimeWarning``, which Python's warning filters control as usual.
"""

from __future__ import annotations

import warnings

import mujoco

_IGNORED = ("compiler attribute 'settotalmass' is deprecated",)


def _forward(message: str) -> None:
    if not any(text in message for text in _IGNORED):
        warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


def route_mujoco_warnings() -> None:
    """Install the handler (idempotent)."""
    mujoco.set_mju_user_warning(_forward)
