"""Plot the benchmark results for the performance page (``docs/performance.md``).

Reads the JSON files the benchmark scripts write (``benchmarks/results/latest.json`` from
``run.py``, ``first_call.json`` from ``first_call.py``) and writes SVG plots into
``docs/img/``. It only reads results: rerun the benchmarks first to plot new numbers.

    python benchmarks/plot.py [--results benchmarks/results] [--out docs/img]

Needs matplotlib (``pip install ".[bench]"``). The SVG files are reproducible: the same
results give byte-identical files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# display names and markers, in the order of the tables on the performance page
SYSTEMS = {
    "s2s_ad": ("s2s_ad", "o"),
    "jax": ("JAX", "s"),
    "torch": ("PyTorch", "^"),
    "tangent": ("tangent", "v"),
    "autograd": ("autograd", "D"),
    "numpy": ("numpy (hand)", "P"),
    "numba": ("Numba (hand)", "X"),
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "s2s_ad", "svg.fonttype": "none", "font.size": 9})
    return plt


def _cases(table: list[dict[str, Any]]) -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for row in table:
        key = (row["workload"], row["variant"])
        if key not in cases:
            cases.append(key)
    return cases


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, format="svg", metadata={"Date": None, "Creator": "benchmarks/plot.py"}, bbox_inches="tight")


def plot_times(latest: dict[str, Any], path: Path) -> None:
    """Median time per call of every case in every system (log scale), one row per case."""
    plt = _pyplot()
    table = latest["table"]
    cases = _cases(table)
    fig, ax = plt.subplots(figsize=(8, 0.36 * len(cases) + 1.2))
    for system, (label, marker) in SYSTEMS.items():
        ys, xs = [], []
        for k, case in enumerate(cases):
            for row in table:
                if (row["workload"], row["variant"]) == case and row["system"] == system and row.get("median_s"):
                    ys.append(k)
                    xs.append(row["median_s"])
        if xs:
            big = system == "s2s_ad"
            ax.scatter(
                xs,
                ys,
                label=label,
                marker=marker,
                s=46 if big else 24,
                zorder=3 if big else 2,
                color="black" if big else None,
                alpha=1.0 if big else 0.8,
            )
    _finish_case_plot(
        plt,
        fig,
        ax,
        cases,
        "median time per call (s, log scale; left is faster)",
        "Time per derivative call (benchmarks/run.py)",
        path,
    )


def _finish_case_plot(plt: Any, fig: Any, ax: Any, cases: list, xlabel: str, title: str, path: Path) -> None:
    """The shared layout of the per-case plots (a log x axis, one row per workload and
    variant, the legend outside), then the file."""
    ax.set_xscale("log")
    ax.set_yticks(range(len(cases)), [f"{w} {v}" for w, v in cases])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", which="major", alpha=0.4)
    ax.grid(axis="y", alpha=0.15)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title)
    _save(fig, path)
    plt.close(fig)


def plot_ratios(latest: dict[str, Any], path: Path) -> None:
    """s2s_ad's time over each peer's (median of per-round ratios; below 1: s2s_ad is faster)."""
    plt = _pyplot()
    ratios = latest["ratios"]
    cases = _cases(latest["table"])
    fig, ax = plt.subplots(figsize=(8, 0.36 * len(cases) + 1.2))
    for system, (label, marker) in SYSTEMS.items():
        pts = [
            (r["median"], k)
            for k, case in enumerate(cases)
            for r in ratios
            if (r["workload"], r["variant"]) == case and r["peer"] == system and r.get("median")
        ]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=label, marker=marker, s=24, alpha=0.85)
    ax.axvline(1.0, color="black", linewidth=1)
    _finish_case_plot(
        plt,
        fig,
        ax,
        cases,
        "s2s_ad time / peer time (log scale; left of 1: s2s_ad is faster)",
        "s2s_ad against each peer (per-round ratios, median)",
        path,
    )


def plot_first_call(first: dict[str, Any], path: Path) -> None:
    """The first call in a fresh process, cold and warm disk cache: import, then transform +
    compile + call, then the rest of the process (interpreter start and exit)."""
    plt = _pyplot()
    med = first["median"]
    kinds = [k for k in ("cold", "warm") if k in med]
    parts = [
        ("import_s", "import s2s_ad"),
        ("transform_compile_call_s", "transform + compile + call"),
    ]
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.5 * len(kinds)))
    left = [0.0] * len(kinds)
    for key, label in parts:
        widths = [med[k][key] for k in kinds]
        ax.barh(kinds, widths, left=left, label=label, height=0.55)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    rest = [med[k]["process_s"] - lft for k, lft in zip(kinds, left, strict=True)]
    ax.barh(kinds, rest, left=left, label="interpreter start and exit", height=0.55, color="lightgrey")
    for y, k in enumerate(kinds):
        ax.text(med[k]["process_s"] + 0.02, y, f"{med[k]['process_s']:.2f} s", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("seconds (median of fresh processes)")
    ax.set_ylabel("disk cache")
    ax.set_xlim(0, max(med[k]["process_s"] for k in kinds) * 1.18)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("First call in a fresh process, W1 (benchmarks/first_call.py)")
    _save(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results", help="folder of the JSON results")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder the SVG plots are written to")
    ns = p.parse_args(argv)
    ns.out.mkdir(parents=True, exist_ok=True)
    written = []
    latest = ns.results / "latest.json"
    if latest.is_file():
        data = json.loads(latest.read_text(encoding="utf-8"))
        for name, fn in (("bench_times.svg", plot_times), ("bench_ratios.svg", plot_ratios)):
            fn(data, ns.out / name)
            written.append(ns.out / name)
    first = ns.results / "first_call.json"
    if first.is_file():
        plot_first_call(json.loads(first.read_text(encoding="utf-8")), ns.out / "bench_first_call.svg")
        written.append(ns.out / "bench_first_call.svg")
    if not written:
        raise SystemExit(f"plot.py: no results in {ns.results} (run benchmarks/run.py and first_call.py first)")
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
