"""Keep freed memory in the process for reuse, instead of glibc handing large blocks back to
the kernel on every free and faulting them in again on the next allocation.

glibc's ``malloc`` serves a request above its mmap threshold (128 KiB at start, raised
adaptively up to 32 MiB) with fresh pages from the kernel, and returns the free top of its
heap above its trim threshold. A MAML outer step with exact Fisher products allocates and
frees tensors of about 10 MB thousands of times per iteration, so its memory is page-faulted
in again each time: over half a million minor faults and about a second of system time per
iteration on 2D navigation. With blocks up to 1 GiB served from the heap and up to 1 GiB of
free heap kept, the same blocks are reused; peak memory stays the same. Nothing computed
changes, only where its memory comes from. Measured in ``docs/results/speed.md`` (a quarter
off the exact outer step; 64 MiB / 256 MiB kept the larger HalfCheetahVel tensors mapped).
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers, <malloc.h>
HEAP_BLOCKS_UP_TO = 1 << 30  # bytes: larger blocks are still mapped and unmapped each time
KEEP_FREE = 1 << 30  # bytes of free heap top kept before any is handed back


def keep_freed_memory() -> bool:
    """Set glibc's mmap threshold to ``HEAP_BLOCKS_UP_TO`` and its trim threshold to
    ``KEEP_FREE`` for this process; returns whether it applied (not on other C libraries or
    operating systems, where it does nothing)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    settings = ((_M_MMAP_THRESHOLD, HEAP_BLOCKS_UP_TO), (_M_TRIM_THRESHOLD, KEEP_FREE))
    return all(mallopt(param, value) == 1 for param, value in settings)
