"""glibc's malloc told to keep freed memory for the next tensor instead of handing it back to the kernel.

By default glibc maps a block over its (moving) mmap threshold afresh and trims the top of the heap once more than
twice that threshold is free, so a CPU process that frees and allocates tensors of tens of MB at every step pays for
the same pages again each time: each 4 KB page faults in zeroed. A guided transformer forward at the reference size
made 150,000-200,000 such faults (600-800 MB) a step and took 1.06x the time it takes with the heap kept
(docs/fast-sampling.md, "The heap kept"). keep_freed_memory() fixes the mmap threshold at glibc's largest (32 MB:
larger blocks are still mapped and given back when freed) and raises the trim threshold to 1 GB, which is what
`GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824` would set at start.
Every command calls it (cli.app); a malloc setting of the user's own in the environment is left alone.
"""

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 2**30


def users_own_malloc_settings() -> bool:
    """Whether the environment sets glibc malloc's parameters (MALLOC_*_, glibc.malloc tunables) or preloads a library
    (jemalloc, tcmalloc)."""
    if any(key.startswith("MALLOC_") for key in os.environ):
        return True
    return "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "") or bool(os.environ.get("LD_PRELOAD"))


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (module docstring); True when set, False on another C library or
    platform, or where the environment has malloc settings of its own."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or users_own_malloc_settings():
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
