"""Freed host memory kept for the next tensor, instead of handed back to the system and faulted in again.

glibc's malloc serves every block over 32 MB with a fresh mmap and unmaps it when freed, so each such CPU tensor
(a guided forward at the reference size makes a 100 MB one per MLP) starts with ~25,000 page faults on zeroed pages:
a quarter of the non-matmul time of that forward went there. `keep_freed_memory()` makes malloc serve every block
from its heap and never shrink the heap: the pages of a freed tensor are reused as they are, and the process keeps
its peak host memory until it exits (as torch's CUDA caching allocator keeps GPU memory). Every command calls it
first (cli.app); `MOTIONDIFF_HOST_MEMORY=system` in the environment leaves the C library's own settings. Other
C libraries (macOS, musl) are left as they are.
"""

import ctypes
import ctypes.util
import os
import platform

from motiondiff.core.errors import UserError

ENVIRONMENT_KEY = "MOTIONDIFF_HOST_MEMORY"
SETTINGS = ("keep", "system")
# mallopt parameters (malloc.h) and glibc's values in a long-running process: its mmap threshold grows with the
# blocks freed up to 32 MB (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit), and the heap is trimmed beyond twice that.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -2, -3, -4
KEEP = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2**31 - 1, M_TOP_PAD: 64 << 20}
SYSTEM = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20, M_TOP_PAD: 128 << 10}


def glibc():
    """The C library as a ctypes handle when it is glibc (it has mallopt), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return libc if hasattr(libc, "mallopt") else None


def keep_freed_memory(keep: bool = True) -> bool:
    """keep=True: every block from malloc's heap, which never shrinks; False: glibc's steady-state settings for
    large blocks (each over 32 MB mapped afresh). Whether the settings were applied (False off glibc)."""
    libc = glibc()
    if libc is None:
        return False
    for parameter, value in (KEEP if keep else SYSTEM).items():
        assert libc.mallopt(parameter, value) == 1, f"mallopt({parameter}, {value}) was refused"
    return True


def configure_host_memory(environ=os.environ) -> str:
    """Apply MOTIONDIFF_HOST_MEMORY (keep, the default, or system) and return the setting; a UserError for any
    other value."""
    setting = environ.get(ENVIRONMENT_KEY, "keep")
    if setting not in SETTINGS:
        raise UserError(f"{ENVIRONMENT_KEY}={setting!r} must be one of {list(SETTINGS)}; unset it for 'keep'.")
    if setting == "keep":
        keep_freed_memory(True)
    return setting
