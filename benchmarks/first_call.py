"""First call of the W1 gradient in a fresh process: import, transform, compile and call.

Each run is ``python -c ...`` in a new process. Two variants:

- cold: ``S2S_AD_CACHE_DIR`` is a fresh, empty directory for every run;
- warm: one directory shared by all runs, primed by one run first.

The child reports the time of ``import s2s_ad`` and of building and calling
``GradOperation()(Net())`` (the seeds' MatMul network, gradient w.r.t. x); the parent
measures the whole process, interpreter start included.

    python benchmarks/first_call.py [--runs 7] [--json benchmarks/results/first_call.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import threads  # noqa: E402

DEFAULT_JSON = HERE / "results" / "first_call.json"

CHILD = f"""
import json, time
t0 = time.perf_counter()
import numpy as np
import s2s_ad
t1 = time.perf_counter()
import sys
sys.path.insert(0, {str(HERE)!r})
from workloads.w1_matmul import numpy_grad, s2s_ad_impl, X, Y, Z
t2 = time.perf_counter()
out = s2s_ad_impl("x").grad()
t3 = time.perf_counter()
ok = bool(np.allclose(np.asarray(out), numpy_grad("x", X, Y, Z), rtol=1e-5))
print(json.dumps({{"import_s": t1 - t0, "transform_compile_call_s": t3 - t2, "in_process_s": t3 - t0 - (t2 - t1),
                  "ok": ok}}))
"""


def bytecode_env(env: dict[str, str], root: str) -> dict[str, str]:
    """``env`` with Python's bytecode cache on (an installed package has its ``.pyc`` files;
    with ``PYTHONDONTWRITEBYTECODE`` every process would compile s2s_ad's source again, a
    quarter of a second): written under ``root`` (``PYTHONPYCACHEPREFIX``), primed once."""
    if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None and "PYTHONPYCACHEPREFIX" not in env:
        env["PYTHONPYCACHEPREFIX"] = str(Path(root) / "pycache")
    return env


def prime_bytecode(root: str) -> None:
    """Write the bytecode of s2s_ad, Numba, SymPy and JAX (where installed) once."""
    code = "import importlib.util as u\nfor m in ('s2s_ad', 'numba', 'sympy', 'jax'):\n    u.find_spec(m) and __import__(m)"
    env = bytecode_env(threads.single_threaded_env(), root)
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=False)


def run_once(cache_dir: str) -> dict[str, Any]:
    """One fresh process with ``S2S_AD_CACHE_DIR=cache_dir``; its timings and wall time."""
    env = bytecode_env(threads.single_threaded_env(), str(Path(cache_dir).parent))
    env["S2S_AD_CACHE_DIR"] = cache_dir
    env.pop("S2S_AD_DISK_CACHE", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child failed (exit {proc.returncode}):\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["ok"]:
        raise RuntimeError("the child's gradient disagrees with the hand-written one")
    return result | {"process_s": wall}


WORKLOAD_CHILD = f"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {str(HERE)!r})
import numpy as np
import workloads
key, system = sys.argv[1], sys.argv[2]
(variant,) = [v for v in workloads.variants([key.split()[0]]) if v.key == key]
impl = variant.builders[system]()
t1 = time.perf_counter()
out = impl.grad()
t2 = time.perf_counter()
ready = t2
if system == "s2s_ad":
    from s2s_ad import tiered
    tiered.wait()
    ready = time.perf_counter()
ref = workloads.as_arrays(variant.builders["numpy"]().grad())
ok, err = workloads.agree(workloads.as_arrays(out), ref, variant.rtol())
t3 = time.perf_counter()
impl.grad()
t4 = time.perf_counter()
print(json.dumps({{"setup_s": t1 - t0, "first_result_s": t2 - t1, "compiled_ready_s": ready - t1,
                  "second_call_s": t4 - t3, "ok": ok, "rel_error": err}}))
"""


def run_workload(key: str, system: str, cache_dir: str, compile_mode: str) -> dict[str, Any]:
    """One fresh process timing the first call of ``system``'s version of variant ``key``."""
    env = bytecode_env(threads.single_threaded_env(), str(Path(cache_dir).parent))
    env["S2S_AD_CACHE_DIR"] = cache_dir
    env["S2S_AD_COMPILE"] = compile_mode
    env.pop("S2S_AD_DISK_CACHE", None)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", WORKLOAD_CHILD, key, system], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child failed (exit {proc.returncode}):\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["ok"]:
        raise RuntimeError(f"{key} {system}: the first result disagrees with the hand-written one")
    return result | {"process_s": wall}


def workloads_main(ns: argparse.Namespace) -> int:
    """First calls of whole workloads (``--workloads W7,W8,W9``): s2s_ad (tiered, and with
    ``--blocking`` also compile-first) and JAX, interleaved, each run in a fresh process with
    an empty disk cache."""
    sys.path.insert(0, str(HERE))
    import workloads

    keys = [v.key for v in workloads.variants(ns.workloads.split(","))]
    configs = [("s2s_ad", "background"), ("jax", "background")]
    if ns.blocking:
        configs.insert(1, ("s2s_ad", "blocking"))
    if ns.warm:
        configs = [("s2s_ad", "background")]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {k: {} for k in keys}
    with tempfile.TemporaryDirectory(prefix="s2s_ad_first_call_", ignore_cleanup_errors=True) as root:
        prime_bytecode(root)
        if ns.warm:  # one disk cache per workload, filled by one run first (which waits for its compile)
            for key in keys:
                run_workload(key, "s2s_ad", str(Path(root) / f"warm_{keys.index(key)}"), "background")
        for i in range(ns.runs):
            for key in keys:
                for system, mode in configs:
                    name = system if system == "jax" else f"s2s_ad {mode}"
                    # a cold run's cache is its own: kernels are shared by content, so a
                    # directory shared between workloads would hold another's compiled loops
                    where = f"warm_{keys.index(key)}" if ns.warm else f"{keys.index(key)}_{i}_{name}"
                    r = run_workload(key, system, str(Path(root) / where), mode)
                    results[key].setdefault(name, []).append(r)
                    print(
                        f"  {key:30s} {name:18s} first result {fmt(r['first_result_s'])}, "
                        f"compiled in use {fmt(r['compiled_ready_s'])}, "
                        f"with imports and set-up {fmt(r['setup_s'] + r['first_result_s'])}",
                        flush=True,
                    )
    cache = "warm" if ns.warm else "cold"
    print(f"\nFirst call in a fresh process, {cache} disk cache, median of {ns.runs}:\n")
    print(
        "| workload | system | first result | compiled code in use | s2s_ad / JAX (first result) "
        "| imports + set-up + first result |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    medians: dict[str, dict[str, dict[str, float]]] = {}
    for key, by in results.items():
        medians[key] = {
            name: {k: statistics.median(r[k] for r in rs) for k in ("first_result_s", "compiled_ready_s", "setup_s")}
            | {"with_setup_s": statistics.median(r["setup_s"] + r["first_result_s"] for r in rs)}
            for name, rs in by.items()
        }
        jax = medians[key].get("jax", {}).get("first_result_s")
        for name, m in medians[key].items():
            ratio = f"{m['first_result_s'] / jax:.2f}" if jax and name != "jax" else "—"
            print(
                f"| {key} | {name} | {fmt(m['first_result_s'])} | {fmt(m['compiled_ready_s'])} | {ratio} "
                f"| {fmt(m['with_setup_s'])} |"
            )
    ns.json.parent.mkdir(parents=True, exist_ok=True)
    ns.json.write_text(
        json.dumps({"meta": {"runs": ns.runs, "python": sys.version}, "median": medians, "runs": results}, indent=1)
    )
    print(f"Saved {ns.json}")
    return 0


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("process_s", "import_s", "transform_compile_call_s", "in_process_s")
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7, help="processes per variant (default 7)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    p.add_argument("--workloads", help="first calls of these workloads (e.g. W7,W8,W9) instead of W1's")
    p.add_argument("--blocking", action="store_true", help="with --workloads: also s2s_ad compiling before answering")
    p.add_argument(
        "--warm", action="store_true", help="with --workloads: s2s_ad only, each workload's disk cache filled first"
    )
    ns = p.parse_args(argv)
    if ns.workloads:
        if ns.json == DEFAULT_JSON:
            ns.json = HERE / "results" / "first_call_workloads.json"
        return workloads_main(ns)

    results: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="s2s_ad_first_call_", ignore_cleanup_errors=True) as root:
        prime_bytecode(root)
        for i in range(ns.runs):
            results["cold"].append(run_once(str(Path(root) / f"cold{i}")))
            print(f"  cold run {i + 1}/{ns.runs}: {fmt(results['cold'][-1]['process_s'])}", flush=True)
        warm_dir = str(Path(root) / "warm")
        priming = run_once(warm_dir)
        print(f"  priming run: {fmt(priming['process_s'])}", flush=True)
        for i in range(ns.runs):
            results["warm"].append(run_once(warm_dir))
            print(f"  warm run {i + 1}/{ns.runs}: {fmt(results['warm'][-1]['process_s'])}", flush=True)

    medians = {k: summary(v) for k, v in results.items()}
    print(f"\nFirst call of W1 (GradOperation()(Net())(x, y)) in a fresh process, median of {ns.runs}:\n")
    print("| disk cache | whole process | import s2s_ad | transform + compile + call | import + first call |")
    print("| --- | --- | --- | --- | --- |")
    for k, m in medians.items():
        print(
            f"| {k} | {fmt(m['process_s'])} | {fmt(m['import_s'])} | {fmt(m['transform_compile_call_s'])} "
            f"| {fmt(m['in_process_s'])} |"
        )
    ratio = medians["warm"]["process_s"] / medians["cold"]["process_s"]
    print(f"\nwarm / cold (whole process): {ratio:.3f}")

    out = {
        "meta": {"runs": ns.runs, "python": sys.version, "threads": threads.THREAD_ENV},
        "median": medians,
        "warm_over_cold": ratio,
        "runs": results,
        "priming_run": priming,
    }
    ns.json.parent.mkdir(parents=True, exist_ok=True)
    ns.json.write_text(json.dumps(out, indent=1))
    print(f"Saved {ns.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
