"""``benchmarks/plot.py`` draws the performance page's plots from the benchmark results, and
the committed plots show the committed results."""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

RESULTS = ROOT / "benchmarks" / "results"
IMG = ROOT / "docs" / "img"


def _labels(latest: dict) -> list[str]:
    return sorted({f"{r['workload']} {r['variant']}" for r in latest["table"]})


def test_plot_writes_every_plot_from_the_results(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import plot

    written = plot.main(["--results", str(RESULTS), "--out", str(tmp_path)])
    assert sorted(p.name for p in written) == ["bench_first_call.svg", "bench_ratios.svg", "bench_times.svg"]
    latest = json.loads((RESULTS / "latest.json").read_text(encoding="utf-8"))
    times = (tmp_path / "bench_times.svg").read_text(encoding="utf-8")
    for label in _labels(latest):
        assert escape(label) in times, label
    # the same results give the same file (no dates, fixed ids)
    again = plot.main(["--results", str(RESULTS), "--out", str(tmp_path / "again")])
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]


def test_plot_without_results_is_a_clean_error(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import plot

    with pytest.raises(SystemExit, match="no results"):
        plot.main(["--results", str(tmp_path), "--out", str(tmp_path / "img")])


def test_committed_plots_show_the_committed_results() -> None:
    """The plots in docs/img/ were drawn from benchmarks/results/ as committed (rerun
    ``python benchmarks/plot.py`` after new results), and the performance page shows them."""
    latest = json.loads((RESULTS / "latest.json").read_text(encoding="utf-8"))
    times = (IMG / "bench_times.svg").read_text(encoding="utf-8")
    for label in _labels(latest):
        assert escape(label) in times, f"docs/img/bench_times.svg lacks {label!r}: rerun benchmarks/plot.py"
    first = json.loads((RESULTS / "first_call.json").read_text(encoding="utf-8"))
    shown = (IMG / "bench_first_call.svg").read_text(encoding="utf-8")
    for kind in ("cold", "warm"):
        assert f"{first['median'][kind]['process_s']:.2f} s" in shown
    page = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    for name in ("bench_times.svg", "bench_ratios.svg", "bench_first_call.svg"):
        assert f"(img/{name})" in page
