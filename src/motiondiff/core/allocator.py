"""glibc's malloc told to keep freed memory for the next tensor instead of handing it back to the kernel.

By default glibc maps a block over its (moving) mmap threshold afresh and trims the top of the heap once more than
twice that threshold is free, so a CPU process that frees and allocates tensors of tens of MB at every step pays for
the same pages again each time: each 4 KB page faults in zeroed. A guided transformer forward at the reference size,
in a process that only samples, made 150,000-200,000 such faults (600-800 MB) a step; with the heap kept none, and
the step took 1-7% less time (docs/fast-sampling.md, "Sub-batches and the heap kept when sampling").
keep_freed_memory() fixes the mmap threshold at glibc's largest (32 MB: larger blocks are still mapped and given back
when freed) and raises the trim threshold to 1 GB, which is what
`GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824` would set at start.
Every command calls it (cli.app), in its own process and in each sweep job's; thresholds of the user's own in the
environment, or another malloc preloaded, are left alone.
"""

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 2**30
THRESHOLDS = ("mmap_threshold", "trim_threshold", "top_pad", "mmap_max")  # a user's setting of any: left alone
OTHER_MALLOCS = ("jemalloc", "tcmalloc", "mimalloc")


def users_own_malloc_settings() -> bool:
    """Whether the environment sets the thresholds this module sets (MALLOC_*_ variables, glibc.malloc tunables) or
    preloads another malloc (jemalloc, tcmalloc, mimalloc)."""
    if any(os.environ.get(f"MALLOC_{name.upper()}_") is not None for name in THRESHOLDS):
        return True
    if any(f"glibc.malloc.{name}" in os.environ.get("GLIBC_TUNABLES", "") for name in THRESHOLDS):
        return True
    return any(name in os.environ.get("LD_PRELOAD", "") for name in OTHER_MALLOCS)


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (module docstring); True when both are set, False on another C library or
    platform, or where the environment sets malloc's thresholds itself. Calling it again changes nothing."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or users_own_malloc_settings():
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mmap_set = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    trim_set = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(mmap_set and trim_set)
