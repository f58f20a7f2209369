"""The public API's types: mypy checks the modules behind ``s2s_ad/__init__.py`` (the files of
``[tool.mypy]`` in pyproject.toml) and ``tests/typing/usage.py``, which uses the API as users
do and pins its result types with ``assert_type``; a mistyped call must be rejected."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import tomllib
from pathlib import Path

import s2s_ad
from s2s_ad import context

ROOT = Path(__file__).resolve().parents[1]
USAGE = ROOT / "tests" / "typing" / "usage.py"


def mypy(*files: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-error-summary",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            *map(str, files),
        ],
        cwd=ROOT,  # this checkout's s2s_ad, not an installed one
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )


def test_public_api_and_usage_type_check():
    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    assert "s2s_ad/__init__.py" in files and "s2s_ad/api.py" in files
    proc = mypy(*files, USAGE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mistyped_use_is_rejected(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import s2s_ad\n"
        "def f(x: s2s_ad.Tensor) -> s2s_ad.Tensor:\n"
        "    return x\n"
        "n: int = s2s_ad.jit(f)\n"
        "s2s_ad.grad(f, grad_position='0')\n"
        "s2s_ad.Tensor([1.0]).sum(keepdims='yes')\n"
    )
    proc = mypy(bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert [int(line.split(":")[1]) for line in errors] == [4, 5, 6], proc.stdout


def test_usage_file_runs(capsys):
    old = context.get_context("mode")
    try:
        runpy.run_path(str(USAGE), run_name="__main__")
    finally:
        context.set_context(mode=old)
    assert capsys.readouterr().out


def test_package_is_marked_typed():
    assert (Path(s2s_ad.__file__).parent / "py.typed").is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["s2s_ad"]
    assert "mypy" in " ".join(pyproject["project"]["optional-dependencies"]["test"])
