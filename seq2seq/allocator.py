"""Keep freed CPU memory in the process, so that a training step does not fault its pages back in.

glibc's malloc serves blocks over its mmap threshold (at most 32 MB however it adapts) with
`mmap` and gives them back with `munmap` when freed. A CPU training step allocates and frees
several such blocks, the logits and their gradients ([tokens, vocabulary] floats: 1,600 x
5,000 is 32 MB), so every step faulted about 24,000 fresh pages in: 18 of 129 CPU seconds
went to the kernel in a one-minute run of the preset. Raising the mmap and trim thresholds
keeps those blocks on the heap for reuse, which made the same run take 1.25x the steps.

Other allocators (musl, jemalloc via LD_PRELOAD) are left alone: `keep_freed_memory` only
acts where glibc's `mallopt` is there to call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
"""mallopt parameter: free heap top kept before it is returned to the system."""
M_MMAP_THRESHOLD = -3
"""mallopt parameter: requests from this size up are served by mmap."""
KEEP_BYTES = 1 << 30
"""Both thresholds: blocks under 1 GiB come from the heap, and up to 1 GiB of freed heap stays."""


def keep_freed_memory(keep_bytes: int = KEEP_BYTES) -> bool:
    """Tell glibc to reuse freed blocks under `keep_bytes` instead of unmapping them; returns
    whether it took the setting (False on other C libraries and systems)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, keep_bytes)) and bool(
        mallopt(M_TRIM_THRESHOLD, keep_bytes)
    )
