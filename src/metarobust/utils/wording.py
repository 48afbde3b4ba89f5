"""Words for the one-line summaries the commands print."""

from __future__ import annotations


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, in the plural unless ``n`` is 1: ``count(1, "episode")`` is
    ``"1 episode"``, ``count(3, "mass")`` is ``"3 masses"``."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {noun}es" if noun.endswith(("s", "x", "sh", "ch")) else f"{n} {noun}s"
