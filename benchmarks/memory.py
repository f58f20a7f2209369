"""Peak memory of one W3 gradient (tanh MLP 784-256-10, batch 64, float32) per system.

Each system runs in its own process. After warm-up calls (which compile), for each
repetition the kernel's peak-RSS counter is reset (``echo 5 > /proc/self/clear_refs``),
``VmRSS`` is read, the gradient runs once, and ``VmHWM`` is read: the peak is
``VmHWM - VmRSS``, the memory the call made resident beyond what the process already held.
glibc's malloc is given a fixed mmap threshold (``MALLOC_MMAP_THRESHOLD_``) so that large
arrays are mapped and unmapped per call rather than recycled from a heap that grew during
warm-up; allocators that keep pools of their own (JAX, PyTorch) may still reuse memory and
report less. The kernel keeps RSS in per-CPU counters that it folds in batches, so a peak
may read low by up to a few hundred KiB (about 200 KiB here); numpy's peak is therefore also
measured exactly with ``tracemalloc`` (numpy reports its buffers to it), for scale. When
``clear_refs`` cannot be written, only that numpy figure is measured.

    python benchmarks/memory.py [--systems s2s_ad,numpy,...] [--reps 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import threads  # noqa: E402

DEFAULT_JSON = HERE / "results" / "memory.json"
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "16384", "MALLOC_TRIM_THRESHOLD_": "16384"}
SYSTEMS = ("s2s_ad", "numpy", "numba", "jax", "torch", "autograd", "tangent")


def status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), in KiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def clear_refs_writable() -> bool:
    try:
        reset_peak()
        status_kib("VmHWM")
    except OSError:
        return False
    return True


def child(system: str, reps: int, warmup: int, method: str) -> dict[str, Any]:
    """Run inside the measuring process: build the case, warm up, measure ``reps`` calls."""
    threads.apply()
    import numpy as np
    from workloads import Skip, as_arrays, w3_mlp

    try:
        impl = w3_mlp.BUILDERS[system](w3_mlp.FULL)
    except Skip as err:
        return {"system": system, "skipped": str(err)}
    out = None
    for _ in range(warmup):
        out = impl.grad()
    grad_bytes = sum(a.nbytes for a in as_arrays(out))
    ref = w3_mlp.numpy_grad(*(w3_mlp.inputs(*w3_mlp.FULL)[k] for k in (*w3_mlp.WEIGHTS, "x", "labels")))
    ok = all(np.allclose(a, r, rtol=1e-3, atol=1e-3 * np.abs(r).max()) for a, r in zip(as_arrays(out), ref))
    del out
    peaks = []
    for _ in range(reps):
        gc.collect()
        if method == "rss":
            reset_peak()
            before = status_kib("VmRSS")
            out = impl.grad()
            peaks.append((status_kib("VmHWM") - before) * 1024)
        else:
            import tracemalloc

            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            out = impl.grad()
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
            tracemalloc.stop()
        del out
    return {"system": system, "method": method, "peaks_bytes": peaks, "grad_bytes": grad_bytes, "agrees": ok}


def measure(system: str, reps: int, warmup: int, method: str) -> dict[str, Any]:
    env = threads.single_threaded_env()
    env.update(MALLOC_ENV)
    cmd = [sys.executable, __file__, "--child", system, "--reps", str(reps), "--warmup", str(warmup)]
    cmd += ["--method", method]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"system": system, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_bytes(n: float) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    p.add_argument("--reps", type=int, default=5, help="measured calls per system (default 5)")
    p.add_argument("--warmup", type=int, default=3, help="calls before measuring (default 3)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--method", default="rss", help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.child:
        print(json.dumps(child(ns.child, ns.reps, ns.warmup, ns.method)))
        return 0

    systems = [s.strip() for s in ns.systems.split(",") if s.strip()]
    method = "rss" if clear_refs_writable() else "tracemalloc"
    if method == "tracemalloc":
        print("Note: /proc/self/clear_refs is not writable; measuring numpy with tracemalloc, others skipped.")
        systems = [s for s in systems if s == "numpy"]
    from workloads import w3_mlp

    batch, n_in, hidden, n_out = w3_mlp.FULL
    print(f"Peak memory of one W3 gradient ({n_in}-{hidden}-{n_out}, batch {batch}, float32), {method}:\n")

    results = []
    for s in systems:
        r = measure(s, ns.reps, ns.warmup, method)
        results.append(r)
        if "peaks_bytes" in r:
            r["median_bytes"] = statistics.median(r["peaks_bytes"])

    by = {r["system"]: r for r in results}
    base = by.get("numpy", {}).get("median_bytes")
    print("| system | peak (median) | min .. max | gradient outputs | peak / outputs | s2s_ad / system |")
    print("| --- | --- | --- | --- | --- | --- |")
    ours = by.get("s2s_ad", {}).get("median_bytes")
    for r in results:
        if "median_bytes" not in r:
            print(f"| {r['system']} | {r.get('skipped') or r.get('error')} | | | | |")
            continue
        m, g = r["median_bytes"], r["grad_bytes"]
        ratio = f"{ours / m:.2f}" if ours is not None and m > 0 and r["system"] != "s2s_ad" else "—"
        flag = "" if r["agrees"] else " (gradient disagrees!)"
        print(
            f"| {r['system']}{flag} | {fmt_bytes(m)} | {fmt_bytes(min(r['peaks_bytes']))} .. "
            f"{fmt_bytes(max(r['peaks_bytes']))} | {fmt_bytes(g)} | {m / g:.2f} | {ratio} |"
        )
    if ours is not None and base:
        print(f"\ns2s_ad / numpy peak: {ours / base:.2f}")
    exact = None
    if method == "rss" and "numpy" in systems:
        exact = measure("numpy", ns.reps, ns.warmup, "tracemalloc")
        if "peaks_bytes" in exact:
            exact["median_bytes"] = statistics.median(exact["peaks_bytes"])
            print(f"numpy's own buffers by tracemalloc (exact, for scale): {fmt_bytes(exact['median_bytes'])}")
    out = {
        "meta": {"method": method, "reps": ns.reps, "warmup": ns.warmup, "malloc_env": MALLOC_ENV},
        "results": results,
        "s2s_ad_over_numpy": (ours / base) if ours is not None and base else None,
        "numpy_tracemalloc": exact,
    }
    ns.json.parent.mkdir(parents=True, exist_ok=True)
    ns.json.write_text(json.dumps(out, indent=1))
    print(f"Saved {ns.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
