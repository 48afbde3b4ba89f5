"""Freed memory kept for reuse: a large tensor stops page-faulting its memory in afresh each
time it is allocated once the thresholds are up."""

import platform
import resource

import pytest
import torch

from metarobust.utils.allocator import keep_freed_memory

GLIBC = platform.libc_ver()[0] == "glibc"
ELEMENTS = 12 << 20  # 48 MB of float32: above the 32 MiB glibc's mmap threshold stops at
PAGES = ELEMENTS * 4 // resource.getpagesize()


def minor_faults_of_cycles(cycles: int) -> int:
    """Minor page faults while allocating, writing and freeing a large tensor ``cycles`` times."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        torch.ones(ELEMENTS)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not GLIBC, reason="mallopt's thresholds are glibc's")
def test_a_large_tensor_reuses_its_memory_after_keep_freed_memory() -> None:
    # glibc's default maps a block this large afresh every time: PAGES faults per cycle
    assert keep_freed_memory()
    minor_faults_of_cycles(15)  # the heap settles (at once alone, over a few cycles in CI)
    assert minor_faults_of_cycles(5) < PAGES  # then the same pages serve every allocation


def test_keep_freed_memory_says_whether_it_applied() -> None:
    assert keep_freed_memory() is GLIBC
