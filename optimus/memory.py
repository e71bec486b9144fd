"""`tune_memory()`: keep freed activation memory in the process between training steps (glibc).

A training step allocates and frees the same few large buffers (activations, their gradients)
every call. With glibc's default malloc settings, freeing them can shrink the heap, and the
next step faults every page of it back in: measured on the seed-004 ConvNet (2-core CPU), a
step then spends 4,000-9,000 minor page faults and a third of its time refilling memory, for
a hand-written PyTorch loop as much as for optimus, depending on the order of past frees.
A buffer larger than glibc's mapping threshold (at most 32 MiB) is worse off: it gets pages of
its own from the system at every allocation and gives them back at every free, so a step of
an MLP 784-4096-10 at batch 4096 (64 MiB activations) faulted in 49,000 fresh pages.
A caching allocator avoids this; on CPU, PyTorch uses plain malloc, so `tune_memory` sets
glibc's options instead: every buffer, whatever its size, comes from the heap (none is mapped
on its own), and the heap keeps up to 256 MiB of free memory rather than returning it to the
system. The resident size stays at its peak, and memory freed before training (a dataset's
temporary copies, say) may stay in the process for later buffers to reuse instead of going
back to the system: call ``tune_memory()`` after loading the data where that matters.

This changes the whole process's allocator, so the library never calls it on its own: call
``optimus.tune_memory()`` once at the start of a training script (the CLI, the examples and
the benchmarks do). It does nothing, and returns False, where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_MAX = -4
MMAP_MAX = 0  # no buffer mapped on its own: all come from the heap
TRIM_THRESHOLD = 256 * 2**20

_done = False  # a process-wide setting, applied once


def tune_memory() -> bool:
    """Set glibc's malloc options so that freed buffers stay in the process (see the module
    doc); idempotent. Returns True if the settings are in effect, False where they cannot be
    applied (not Linux, or a C library other than glibc)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_MAX, MMAP_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
