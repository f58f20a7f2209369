"""One thread per framework (the environment every benchmark sets before importing numpy),
and the allocator policy of the timing runner."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


def single_threaded_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: this process's environment) with :data:`THREAD_ENV` applied."""
    env = dict(os.environ if base is None else base)
    env.update(THREAD_ENV)
    return env


# glibc serves allocations above its mmap threshold (128 KiB at start, raised as large blocks
# are freed) with fresh pages from the kernel, zeroed on first touch. A 1024 x 32 float64
# temporary is 256 KiB, so whether each call pays those page faults depended on what the
# process had allocated before: W6 took 0.5 ms or 2.2 ms in numpy and in s2s_ad depending on
# the order of the workloads. A fixed threshold of 256 MiB keeps such arrays on the heap for
# every system alike, and a trim threshold of 1 GiB keeps freed memory in the process (else
# each free of a large block at the top of the heap returns it to the kernel, and the next
# allocation faults its pages in again).
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)


def fix_allocator() -> str:
    """Fix glibc's mmap and trim thresholds; a note of what was done."""
    if not sys.platform.startswith("linux"):
        return "allocator: platform default"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = (
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        )
    except (OSError, AttributeError):
        ok = False
    if not ok:
        return "allocator: platform default"
    return f"allocator: glibc mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold {TRIM_THRESHOLD >> 30} GiB"


def apply() -> None:
    """Set :data:`THREAD_ENV` in this process; call it before numpy, numba, JAX or torch loads."""
    os.environ.update(THREAD_ENV)
