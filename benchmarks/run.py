"""Time s2s_ad's derivatives against JAX, PyTorch, tangent, autograd and hand-written code.

Every (workload, system) case is first checked against the hand-written numpy gradient;
a system that disagrees is reported and left out. Then R rounds: in each round the cases
run in a shuffled (seeded) order, and each case contributes one sample, the median of a few
batches of calls, each batch long enough to time reliably. Ratios s2s_ad/peer are taken
within a round and their median over rounds is reported.

    python benchmarks/run.py [--workloads W1,W2] [--systems s2s_ad,jax] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import math
import os
import platform
import random
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import threads  # noqa: E402

threads.apply()  # before numpy, numba, JAX and torch are imported
ALLOCATOR = threads.fix_allocator()

import workloads  # noqa: E402
from workloads import REFERENCE, SYSTEMS, Impl, Skip, Variant, agree, as_arrays  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
PACKAGES = ("s2s_ad", "numpy", "numba", "sympy", "scipy", "jax", "jaxlib", "torch", "autograd", "tangent-ad")


@dataclass
class Case:
    """One timed callable: a system's gradient (or forward) of one variant."""

    variant: Variant
    system: str
    kind: str  # "grad" or "forward"
    fn: Callable[[], Any]
    first_call_s: float
    number: int = 1
    samples: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.samples)


def fmt_time(seconds: float) -> str:
    """Seconds with three significant digits in ns, µs, ms or s."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            v = seconds / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    raise AssertionError


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "—"
    return f"{r:.3g}" if r < 100 else f"{r:.0f}"


def batch_time(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call over ``number`` back-to-back calls, with the garbage collector off."""
    gc_on = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - t0) / number
    finally:
        if gc_on:
            gc.enable()


def calibrate(fn: Callable[[], Any], min_time: float, warmup: int) -> int:
    """Warm ``fn`` up and return how many calls make one batch last at least ``min_time``."""
    per_call = min(batch_time(fn, 1) for _ in range(max(warmup, 1)))
    number = max(1, math.ceil(min_time / max(per_call, 1e-9)))
    per_call = batch_time(fn, number)
    return max(1, math.ceil(min_time / max(per_call, 1e-9)))


def build(variant: Variant, system: str, notes: list[dict]) -> Impl | None:
    """Set a system's implementation up, or record why it is skipped."""
    try:
        return variant.builders[system]()
    except Skip as err:
        notes.append({"workload": variant.workload, "variant": variant.name, "system": system, "skipped": str(err)})
    except Exception as err:  # a failure of one case must not stop the others
        msg = f"{type(err).__name__}: {err}".strip()
        notes.append({"workload": variant.workload, "variant": variant.name, "system": system, "error": msg})
        traceback.print_exc()
    return None


def first_call(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def prepare(variants: list[Variant], systems: list[str], notes: list[dict], checks: list[dict]) -> list[Case]:
    """Build every case, run it once (compiling it) and check it against the reference."""
    cases: list[Case] = []
    for v in variants:
        ref_impl = v.builders[REFERENCE]()
        ref_grad = as_arrays(ref_impl.grad())
        ref_fwd = as_arrays(ref_impl.forward()) if ref_impl.forward else None
        for system in systems:
            if system not in v.builders:
                continue
            print(f"  {v.key:44s} {system:9s}", end=" ", flush=True)
            t_build = time.perf_counter()
            impl = build(v, system, notes)
            t_build = time.perf_counter() - t_build
            if impl is None:
                print("skipped:", notes[-1].get("skipped") or notes[-1].get("error"))
                continue
            try:
                out, t_first = first_call(impl.grad)
                if system == "s2s_ad":  # time the compiled code, not the numpy tier of a first call
                    from s2s_ad import tiered

                    tiered.wait()
                ok, err = agree(as_arrays(out), ref_grad, v.rtol())
            except Exception as exc:
                traceback.print_exc()
                notes.append({"workload": v.workload, "variant": v.name, "system": system, "error": repr(exc)})
                print("failed:", repr(exc))
                continue
            check = {"workload": v.workload, "variant": v.name, "system": system, "kind": "grad"}
            checks.append(
                {**check, "ok": ok, "rel_error": err, "rtol": v.rtol(), "setup_s": t_build, "first_call_s": t_first}
            )
            if not ok:
                print(f"DISAGREES with {REFERENCE} (relative error {err:.2e} > {v.rtol():g}): excluded")
                continue
            print(f"ok (rel. error {err:.1e}; setup {fmt_time(t_build)}, first call {fmt_time(t_first)})")
            cases.append(Case(v, system, "grad", impl.grad, t_first))
            if impl.forward is None or ref_fwd is None:
                continue
            try:
                out, t_first = first_call(impl.forward)
                if system == "s2s_ad":
                    from s2s_ad import tiered

                    tiered.wait()
                ok, err = agree(as_arrays(out), ref_fwd, v.rtol())
            except Exception as exc:
                notes.append(
                    {"workload": v.workload, "variant": v.name, "system": system, "error": f"forward: {exc!r}"}
                )
                print(f"  {'':44s} {system:9s} forward failed: {exc!r}")
                continue
            checks.append({**check, "kind": "forward", "ok": ok, "rel_error": err, "rtol": v.rtol()})
            if ok:
                cases.append(Case(v, system, "forward", impl.forward, t_first))
            else:
                print(f"  {'':44s} {system:9s} forward disagrees (relative error {err:.2e}): excluded")
    return cases


def measure(cases: list[Case], rounds: int, repeat: int, min_time: float, warmup: int, seed: int) -> None:
    """Calibrate every case, then take one sample per case per round, in shuffled order."""
    for c in cases:
        c.number = calibrate(c.fn, min_time, warmup)
    rng = random.Random(seed)
    order = list(range(len(cases)))
    for r in range(rounds):
        rng.shuffle(order)
        gc.collect()
        t0 = time.perf_counter()
        for i in order:
            c = cases[i]
            c.samples.append(statistics.median(batch_time(c.fn, c.number) for _ in range(repeat)))
        print(f"  round {r + 1}/{rounds}: {time.perf_counter() - t0:.1f} s", flush=True)


def paired_median(a: list[float], b: list[float]) -> tuple[float, list[float]]:
    per_round = [x / y for x, y in zip(a, b)]
    return statistics.median(per_round), per_round


def summarise(cases: list[Case]) -> tuple[list[dict], list[dict], list[dict]]:
    """Rows of the timing table, the s2s_ad/peer ratios and the gradient/forward ratios."""
    by_key = {(c.variant.key, c.system, c.kind): c for c in cases}
    rows, ratios, gf = [], [], []
    for c in cases:
        if c.kind != "grad":
            continue
        ours = by_key.get((c.variant.key, "s2s_ad", "grad"))
        ratio = None
        if ours is not None and c.system != "s2s_ad":
            ratio, per_round = paired_median(ours.samples, c.samples)
            ratios.append(
                {"workload": c.variant.workload, "variant": c.variant.name, "peer": c.system}
                | {"median": ratio, "per_round": per_round}
            )
        rows.append(
            {"workload": c.variant.workload, "variant": c.variant.name, "system": c.system}
            | {"median_s": c.median(), "ratio_s2s_ad_over_peer": ratio, "note": c.variant.notes.get(c.system, "")}
        )
        fwd = by_key.get((c.variant.key, c.system, "forward"))
        if fwd is not None:
            r, per_round = paired_median(c.samples, fwd.samples)
            gf.append(
                {"workload": c.variant.workload, "variant": c.variant.name, "system": c.system}
                | {"forward_median_s": fwd.median(), "grad_median_s": c.median(), "median": r, "per_round": per_round}
            )
    return rows, ratios, gf


def print_tables(rows: list[dict], gf: list[dict], notes: list[dict], excluded: list[dict]) -> None:
    print("\n| workload | variant | system | median time | s2s_ad / peer |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        system = r["system"] + (f" ({r['note']})" if r["note"] else "")
        ratio = "1 (itself)" if r["system"] == "s2s_ad" else fmt_ratio(r["ratio_s2s_ad_over_peer"])
        print(f"| {r['workload']} | {r['variant']} | {system} | {fmt_time(r['median_s'])} | {ratio} |")
    if gf:
        print("\nGradient cost relative to the forward pass (median of per-round ratios):\n")
        print("| workload | variant | system | forward | gradient | gradient / forward |")
        print("| --- | --- | --- | --- | --- | --- |")
        for r in gf:
            print(
                f"| {r['workload']} | {r['variant']} | {r['system']} | {fmt_time(r['forward_median_s'])} "
                f"| {fmt_time(r['grad_median_s'])} | {fmt_ratio(r['median'])} |"
            )
    if notes or excluded:
        print("\nNot timed:\n")
        for n in notes:
            why = n.get("skipped") or n.get("error")
            print(f"- {n['workload']} {n['variant']}, {n['system']}: {why}")
        for e in excluded:
            print(
                f"- {e['workload']} {e['variant']}, {e['system']} ({e['kind']}): disagrees with {REFERENCE}, ", end=""
            )
            print(f"relative error {e['rel_error']:.2e} > {e['rtol']:g}")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def parse_list(text: str | None, known: tuple[str, ...] | list[str], what: str) -> list[str]:
    if not text:
        return list(known)
    items = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in items if t not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return items


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", help=f"comma-separated subset of {','.join(workloads.WORKLOADS)}")
    p.add_argument("--systems", help=f"comma-separated subset of {','.join(SYSTEMS)}")
    p.add_argument("--rounds", type=int, help="timing rounds (default 5; 2 with --quick)")
    p.add_argument("--quick", action="store_true", help="small sizes, 2 rounds: a smoke run")
    p.add_argument("--repeat", type=int, default=3, help="batches per sample; the sample is their median")
    p.add_argument("--min-time", type=float, help="seconds one batch lasts at least (default 2e-3; 1e-3 quick)")
    p.add_argument("--warmup", type=int, default=3, help="calls before calibration")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffled order")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    ns = p.parse_args(argv)
    rounds = ns.rounds if ns.rounds is not None else (2 if ns.quick else 5)
    min_time = ns.min_time if ns.min_time is not None else (1e-3 if ns.quick else 2e-3)
    names = parse_list(ns.workloads, list(workloads.WORKLOADS), "workloads")
    systems = parse_list(ns.systems, SYSTEMS, "systems")
    warnings.filterwarnings("ignore", category=SyntaxWarning)  # tangent's generated code

    vers = versions()
    print("Versions:", ", ".join(f"{k} {v}" for k, v in vers.items() if v))
    missing = [k for k in ("jax", "torch", "autograd", "tangent-ad") if vers[k] is None]
    for m in missing:
        print(f"Note: {m} is not installed; its cases are skipped (pip install -e '.[bench]').")
    print(f"Threads: {threads.THREAD_ENV}")
    print(f"Memory: {ALLOCATOR}\n")

    variants = workloads.variants(names, ns.quick)
    notes: list[dict] = []
    checks: list[dict] = []
    print("Checking every system against the hand-written numpy gradient (first call compiles):")
    t0 = time.perf_counter()
    cases = prepare(variants, systems, notes, checks)
    print(f"  done in {time.perf_counter() - t0:.1f} s\n")
    excluded = [c for c in checks if not c["ok"]]

    print(f"Timing {len(cases)} cases, {rounds} rounds, {ns.repeat} batches of >= {fmt_time(min_time)} each:")
    measure(cases, rounds, ns.repeat, min_time, ns.warmup, ns.seed)
    rows, ratios, gf = summarise(cases)
    print_tables(rows, gf, notes, excluded)

    result = {
        "meta": {
            "argv": sys.argv[1:] if argv is None else argv,
            "rounds": rounds,
            "repeat": ns.repeat,
            "min_time_s": min_time,
            "quick": ns.quick,
            "seed": ns.seed,
            "python": sys.version,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "versions": vers,
            "threads": threads.THREAD_ENV,
            "allocator": ALLOCATOR,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "workloads": {k: d for k, (d, _) in workloads.WORKLOADS.items() if k in names},
        "cases": [
            {"workload": c.variant.workload, "variant": c.variant.name, "system": c.system, "kind": c.kind}
            | {"number": c.number, "first_call_s": c.first_call_s, "median_s": c.median(), "samples_s": c.samples}
            for c in cases
        ],
        "table": rows,
        "ratios": ratios,
        "grad_over_forward": gf,
        "checks": checks,
        "not_timed": notes,
    }
    ns.json.parent.mkdir(parents=True, exist_ok=True)
    ns.json.write_text(json.dumps(result, indent=1, default=float))
    print(f"\nSaved {ns.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
