"""Keep the C allocator from returning freed memory to the system during CPU training.

On Linux, glibc's ``malloc`` serves large blocks (above a threshold that
starts at 128 KiB) with fresh ``mmap`` calls and releases them with
``munmap`` when freed, and it returns free memory at the top of its heap to
the system. A CPU training step allocates and frees activations and
gradients of several MiB each, so every step faults in and zeroes the same
pages again. On the MultiDigitMNIST CNN this page-fault work was about a
quarter of the step time (see ``benchmarks/cpu_allocator.py``).

:func:`keep_freed_memory` raises the mmap threshold and the trim threshold
with ``mallopt``, so that freed blocks stay in the heap and are reused in the
next step. The process keeps the memory of its largest step, which a training
process would need again anyway. Numbers do not change, only where the bytes
come from. Set ``MTBENCH_CPU_ALLOCATOR=default`` (or off, 0, false, no) to
leave glibc's settings as they are.
"""

import ctypes
import ctypes.util
import os
import sys

# mallopt parameter numbers from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

# mallopt(3) gives 32 MiB as the largest mmap threshold on 64-bit systems, but glibc 2.36 accepts 1 GiB.
# The larger value is tried first, so that blocks of up to 1 GiB come from the heap where glibc allows it.
MMAP_THRESHOLDS = (1 << 30, 32 << 20)
TRIM_THRESHOLD = (1 << 31) - 1
TOP_PAD = 64 << 20

ENVIRONMENT_VARIABLE = "MTBENCH_CPU_ALLOCATOR"
# Values of the variable that leave glibc's settings alone; any other value, or none, tunes them.
UNTUNED_VALUES = ("default", "off", "0", "false", "no")


def keep_freed_memory() -> bool:
    """Tune glibc's malloc to reuse freed blocks instead of unmapping them; return whether it was tuned.

    Does nothing, and returns False, outside Linux, with a C library without
    ``mallopt``, or when ``MTBENCH_CPU_ALLOCATOR`` is one of ``UNTUNED_VALUES``
    in any case.
    """
    if os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower() in UNTUNED_VALUES or not sys.platform.startswith("linux"):
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    if not any(mallopt(M_MMAP_THRESHOLD, threshold) for threshold in MMAP_THRESHOLDS):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_TOP_PAD, TOP_PAD))


def _glibc_mallopt():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
    except OSError:
        return None
    mallopt = getattr(library, "mallopt", None)
    if mallopt is None:
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt
