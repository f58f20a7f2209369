"""Memory of one gradient function called with many input shapes.

Each new shape compiles a new program. The in-memory caches keep at most
``S2S_AD_MAX_PROGRAMS`` of them per function (default 64; least recently used evicted), so the
resident memory levels off instead of growing with every shape. Prints the resident set size
(``VmRSS``) before and after, the programs the function keeps, the generated modules still
imported (``s2s_ad_cache.*``) and the entries in the disk cache (a fresh temporary directory
unless ``S2S_AD_CACHE_DIR`` is set).

With ``--passes 2`` the shapes are run again: shapes whose programs were evicted are loaded
from the disk cache again.

    python benchmarks/many_shapes.py [--shapes 300] [--passes 1]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time


def rss_mib() -> float:
    """The resident set size of this process (``VmRSS``), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def loss(x):
    return (ops.tanh(x) * ops.sin(x)).sum()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", type=int, default=300)
    p.add_argument("--passes", type=int, default=1)
    p.add_argument("--pynative", action="store_true", help="PYNATIVE_MODE (numpy) instead of GRAPH_MODE")
    ns = p.parse_args()
    os.environ.setdefault("S2S_AD_CACHE_DIR", tempfile.mkdtemp(prefix="s2s_ad_many_shapes_"))
    global ops
    import numpy as np

    import s2s_ad
    from s2s_ad import Tensor, ops

    if ns.pynative:
        s2s_ad.set_context(mode=s2s_ad.PYNATIVE_MODE)
    g = s2s_ad.grad(loss)
    g(Tensor(np.ones(1, np.float32)))  # warm-up: imports, Numba's start-up
    gc.collect()
    before, t0 = rss_mib(), time.perf_counter()
    after = []
    for _ in range(ns.passes):
        for n in range(2, ns.shapes + 2):
            x = np.linspace(-1, 1, n, dtype=np.float32)
            got = g(Tensor(x)).asnumpy()
            want = np.tanh(x) * np.cos(x) + np.sin(x) / np.cosh(x) ** 2
            assert np.allclose(got, want, rtol=1e-5, atol=1e-6), n
        gc.collect()
        after.append(rss_mib())
    seconds = time.perf_counter() - t0
    kept = len(getattr(g, "_s2s_calls", ()))
    modules = sum(name.startswith("s2s_ad_cache.") for name in sys.modules)
    from s2s_ad import diskcache

    disk = diskcache.info()
    limit = os.environ.get("S2S_AD_MAX_PROGRAMS", "")
    mode = "PYNATIVE_MODE" if ns.pynative else "GRAPH_MODE"
    print(f"{mode}, shapes: {ns.shapes} x {ns.passes} passes in {seconds:.1f} s; S2S_AD_MAX_PROGRAMS={limit}")
    passes = ", ".join(f"{a:.0f} MiB ({a - before:+.0f})" for a in after)
    print(f"RSS: {before:.0f} MiB before; after each pass: {passes}")
    print(f"programs kept by the function: {kept}; s2s_ad_cache modules imported: {modules}")
    print(f"disk cache: {disk.get('entries')} entries, {disk.get('bytes', 0) / 2**20:.1f} MiB in {disk['directory']}")


if __name__ == "__main__":
    main()
