"""One thread per framework: the environment every benchmark sets before importing numpy."""

from __future__ import annotations

import os

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


def apply() -> None:
    """Set :data:`THREAD_ENV` in this process; call it before numpy, numba, JAX or torch loads."""
    os.environ.update(THREAD_ENV)
