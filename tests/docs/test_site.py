"""The documentation site (``mkdocs.yml`` over ``docs/``) builds with warnings as errors:
no broken relative links or anchors, every page in the navigation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_site_builds_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    site = tmp_path / "site"
    for page in ("index.html", "user_guide/index.html", "api/index.html", "performance/index.html"):
        assert (site / page).is_file(), page
    # the plots the performance page shows are part of the site
    assert list((site / "img").glob("*.svg"))


def test_every_page_is_in_the_navigation() -> None:
    """A page added to docs/ must be added to mkdocs.yml's nav (mkdocs --strict reports it too,
    this names the file)."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    missing = [p for p in pages if f" {p}" not in text]
    assert not missing, f"pages missing from mkdocs.yml's nav: {missing}"
