"""Packaging: ``s2s-ad --version``, the licence declared and shipped, the sdist's contents."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import s2s_ad
from s2s_ad import cli

ROOT = Path(__file__).resolve().parents[1]


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"s2s-ad {s2s_ad.__version__}"


def test_version_flag_as_module():
    proc = subprocess.run(
        [sys.executable, "-m", "s2s_ad.cli", "--version"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["s2s-ad", s2s_ad.__version__]


def test_version_is_read_from_version_module():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "s2s_ad.version.__version__"}
    assert s2s_ad.__version__ in (ROOT / "CHANGELOG.md").read_text()


def test_license_declared_and_shipped():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_sdist_manifest_takes_the_sources():
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()
    for folder in ("tests", "docs", "examples", "benchmarks"):
        assert f"graft {folder}" in manifest
        assert (ROOT / folder).is_dir()
    for name in ("LICENSE", "README.md", "CHANGELOG.md", "CONTRIBUTING.md"):
        assert any(line.startswith("include ") and name in line.split() for line in manifest), name
        assert (ROOT / name).is_file(), name
    assert "prune benchmarks/results" in manifest
