"""The disk cache: entries survive the process, corruption is rebuilt with a warning,
concurrent compiles both succeed, and ``s2s-ad cache info|clear`` work."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from s2s_ad import cli, diskcache

PROGRAM = textwrap.dedent(
    """
    import warnings
    import numpy as np
    from s2s_ad import Parameter, Tensor, nn, ops
    from s2s_ad.backend import _CACHE

    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.z = Parameter(Tensor(np.array([2.0], np.float32)), name="z")

        def construct(self, x, y):
            return ops.matmul(ops.sin(x) * self.z, y)

    x = Tensor(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
    y = Tensor(np.linspace(0, 2, 9, dtype=np.float32).reshape(3, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = Net()  # alive while the hits are counted below
        g = ops.GradOperation()(net)(x, y).asnumpy()
    expected = 2 * np.cos(x.asnumpy()) * y.asnumpy().sum(axis=1)
    assert np.allclose(g, expected, rtol=1e-6), (g, expected)
    hits = sum(sum(f.dispatcher.stats.cache_hits.values()) for f in _CACHE.values() if hasattr(f, "dispatcher"))
    print("hits", hits)
    for w in caught:
        print("warning", w.message)
    """
)


SCRIPT = Path(__file__).with_name("_diskcache_program.py")


@pytest.fixture(scope="module", autouse=True)
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("program") / "program.py"
    path.write_text(PROGRAM)
    global SCRIPT
    SCRIPT = path


def environment(cache: Path, **env: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "S2S_AD_DISK_CACHE"}
    return {**e, "S2S_AD_CACHE_DIR": str(cache), **env}


def run(cache: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=environment(cache, **env), capture_output=True, text=True, timeout=300
    )


def check(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_entry_is_reused_by_a_new_process(tmp_path):
    first = check(run(tmp_path))
    assert "hits 0" in first and "warning" not in first
    modules = list(tmp_path.glob("grad_Net_*.py"))
    assert len(modules) == 1
    assert list((tmp_path / "__pycache__").glob(f"{modules[0].stem}.*.nbi"))
    second = check(run(tmp_path))
    assert "hits 1" in second and "warning" not in second


@pytest.mark.parametrize("damage", ["module", "machine_code"])
def test_corrupt_entry_is_rebuilt_with_one_warning(tmp_path, damage):
    check(run(tmp_path))
    if damage == "module":
        (module,) = tmp_path.glob("*.py")
        module.write_text(module.read_text()[:40])
    else:
        for f in (tmp_path / "__pycache__").glob("*.nb*"):
            f.write_bytes(f.read_bytes()[:16])
    out = check(run(tmp_path))
    assert out.count("warning s2s_ad disk cache") == 1, out
    assert "rebuilt" in out or "recompiled" in out
    assert "warning" not in check(run(tmp_path))  # repaired: the next process is silent


def test_two_processes_compiling_at_once_both_succeed(tmp_path):
    env = environment(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "warning" not in out
    assert len(list(tmp_path.glob("*.py"))) == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_off_and_unwritable(tmp_path):
    assert "hits 0" in check(run(tmp_path, S2S_AD_DISK_CACHE="0"))
    assert not list(tmp_path.iterdir())
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = check(run(blocker / "cache"))
    assert "cannot use" in out and "compiling in memory" in out


def test_cli_info_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("S2S_AD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("S2S_AD_DISK_CACHE", raising=False)
    assert "programs:   0" in cli.cache_command("info")
    check(run(tmp_path))
    info = diskcache.info()
    assert info["entries"] == 1 and info["bytes"] > 0
    text = cli.cache_command("info")
    assert str(tmp_path) in text and "programs:   1" in text
    assert cli.cache_command("clear").startswith("removed ")
    assert diskcache.info()["entries"] == 0
    monkeypatch.setenv("S2S_AD_DISK_CACHE", "0")
    assert "off" in cli.cache_command("info")
    assert diskcache.cache_dir() is None


def test_entry_name_is_stable_and_depends_on_the_source():
    a = diskcache.entry_name("def f(x):\n    return (x,)\n", "f")
    assert a == diskcache.entry_name("def f(x):\n    return (x,)\n", "f")
    assert a != diskcache.entry_name("def f(x):\n    return (x + 1,)\n", "f")
    assert a.startswith("f_") and len(a) == 22


# A read-only file system, simulated (as root, chmod does not stop writes): creating a file in
# a directory, which is how Numba and s2s_ad find out whether they can write there, fails.
READ_ONLY = textwrap.dedent(
    """
    import os, tempfile

    def _refuse(*args, **kwargs):
        raise PermissionError(13, "Read-only file system (simulated)")

    tempfile.TemporaryFile = tempfile.mkstemp = os.utime = _refuse
    """
)


def test_read_only_cache_holding_entries_warns_once_and_works(tmp_path):
    check(run(tmp_path))  # fill the cache
    before = sorted(p.name for p in tmp_path.rglob("*"))
    run_read_only = READ_ONLY + f"import runpy\nrunpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    p = subprocess.run(
        [sys.executable, "-c", run_read_only], env=environment(tmp_path), capture_output=True, text=True, timeout=300
    )
    out = check(p)
    assert out.count("warning s2s_ad disk cache") == 1, out
    assert "not writable" in out and "compiling in memory" in out
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
