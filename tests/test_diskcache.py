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
from s2s_ad.errors import CacheError

PROGRAM = textwrap.dedent(
    """
    import warnings
    import numpy as np
    from s2s_ad import Parameter, Tensor, nn, ops
    from s2s_ad.runtime import cache_for

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
    # the compiled calls of net's programs (a warm start loads them without the backend's cache)
    fns = [c.fn for calls in cache_for(net).values() for c in calls.values()]
    hits = sum(sum(f.stats.cache_hits.values()) for f in fns if hasattr(f, "stats"))
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


def test_off_and_unwritable(tmp_path, monkeypatch):
    assert "hits 0" in check(run(tmp_path, S2S_AD_DISK_CACHE="0"))
    assert not list(tmp_path.iterdir())
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = check(run(blocker / "cache"))
    assert "cannot use" in out and "compiling in memory" in out
    monkeypatch.setenv("S2S_AD_CACHE_DIR", str(blocker))
    monkeypatch.delenv("S2S_AD_DISK_CACHE", raising=False)
    assert "not a directory" in cli.cache_command("info")
    with pytest.raises(CacheError, match="cannot clear"):
        diskcache.clear()
    assert blocker.read_text() == "not a directory"


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


# ---------------------------------------------------------------------- whose files
USER_FILE = "import torch  # the user's own training script\n"


def cli_main(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(["cache", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_user_files_in_the_cache_folder_are_never_counted_or_deleted(tmp_path, monkeypatch, capsys):
    project = tmp_path / "my_project"
    project.mkdir()
    (project / "train.py").write_text(USER_FILE)
    monkeypatch.setenv("S2S_AD_CACHE_DIR", str(project))
    monkeypatch.delenv("S2S_AD_DISK_CACHE", raising=False)
    check(run(project))
    # the folder holds the user's files: s2s_ad keeps its entries in a marked subfolder
    store = project / diskcache.SUBFOLDER
    assert (store / diskcache.MARKER).is_file() and (store / "CACHEDIR.TAG").is_file()
    assert len(list(store.glob("grad_Net_*.py"))) == 1
    assert sorted(p.name for p in project.iterdir()) == [diskcache.SUBFOLDER, "train.py"]
    rc, out, _ = cli_main(capsys, "info")
    assert rc == 0 and "programs:   1" in out and str(store) in out
    rc, out, _ = cli_main(capsys, "clear")
    assert rc == 0 and out.startswith("removed ") and str(store) in out
    assert (project / "train.py").read_text() == USER_FILE
    assert diskcache.info()["entries"] == 0
    # a user file placed in a marked cache directory is not counted or deleted either
    (store / "train.py").write_text(USER_FILE)
    (store / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0" * 100)
    check(run(project))
    assert diskcache.info()["entries"] == 1
    cli_main(capsys, "clear")
    assert (store / "train.py").read_text() == USER_FILE
    assert (store / "__pycache__" / "train.cpython-311.pyc").exists()
    assert diskcache.info() | {"bytes": 0} == diskcache.info() | {"bytes": 0, "entries": 0}


def test_clear_refuses_a_folder_that_is_not_a_cache(tmp_path, monkeypatch, capsys):
    project = tmp_path / "my_project"
    project.mkdir()
    (project / "train.py").write_text(USER_FILE)
    (project / "data_0123456789abcdef0123.py").write_text(USER_FILE)  # named like an entry
    monkeypatch.setenv("S2S_AD_CACHE_DIR", str(project))
    monkeypatch.delenv("S2S_AD_DISK_CACHE", raising=False)
    rc, out, err = cli_main(capsys, "clear")
    assert rc == 1 and out == ""
    assert "is not an s2s_ad cache" in err and "nothing was removed" in err and str(project) in err
    with pytest.raises(CacheError, match="is not an s2s_ad cache"):
        diskcache.clear()
    assert sorted(p.name for p in project.iterdir()) == ["data_0123456789abcdef0123.py", "train.py"]
    rc, out, _ = cli_main(capsys, "info")
    assert rc == 0 and "programs:   0" in out and "holds files s2s_ad did not write" in out


def test_a_cache_written_before_the_marker_is_adopted(tmp_path, monkeypatch):
    """A directory holding nothing but entries (an older s2s_ad's cache) stays the cache."""
    monkeypatch.setenv("S2S_AD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("S2S_AD_DISK_CACHE", raising=False)
    (tmp_path / "f_0123456789abcdef0123.py").write_text("def f(x):\n    return (x,)\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "f_0123456789abcdef0123.f-1.py311.nbi").write_bytes(b"\0" * 10)
    assert diskcache.info()["entries"] == 1 and not diskcache.info()["marked"]
    fn = diskcache.compile_cached("def g(x):\n    return (x + 1.0,)\n", "g")
    assert fn is not None and fn(1.0) == (2.0,)
    assert diskcache.entries_dir() == tmp_path and (tmp_path / diskcache.MARKER).is_file()
    assert diskcache.info()["entries"] == 2
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in (diskcache.MARKER, diskcache.TAG)]
    assert len(files) >= 3 and diskcache.clear() == len(files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CACHEDIR.TAG", diskcache.MARKER, "__pycache__"]


# ---------------------------------------------------------------------- size limit
def fake_entries(directory: Path, n: int, size: int) -> list[str]:
    """``n`` entries of ``size`` bytes (module and machine code), used in order: the first is
    the least recently used."""
    (directory / "__pycache__").mkdir(parents=True, exist_ok=True)
    stems = [f"f{i}_{i:020x}" for i in range(n)]
    for i, stem in enumerate(stems):
        module = directory / f"{stem}.py"
        module.write_bytes(b"#" * (size // 2))
        (directory / "__pycache__" / f"{stem}.f{i}-1.py311.nbi").write_bytes(b"\0" * (size - size // 2))
        t = 1_700_000_000 + 60 * i
        os.utime(module, (t, t - 3600))
    return stems


def test_max_bytes_setting(monkeypatch):
    monkeypatch.delenv("S2S_AD_CACHE_MAX_BYTES", raising=False)
    assert diskcache.max_bytes() == diskcache.DEFAULT_MAX_BYTES == 2**30
    for text, value in [("1000", 1000), ("500M", 500 * 2**20), ("2 GiB", 2 * 2**30), ("1.5k", 1536), ("0", None)]:
        monkeypatch.setenv("S2S_AD_CACHE_MAX_BYTES", text)
        assert diskcache.max_bytes() == value, text
    monkeypatch.setenv("S2S_AD_CACHE_MAX_BYTES", "lots")
    monkeypatch.setattr(diskcache, "_warned", set())
    with pytest.warns(RuntimeWarning, match="not a size"):
        assert diskcache.max_bytes() == 2**30


def test_eviction_removes_least_recently_used_entries_and_keeps_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("S2S_AD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("S2S_AD_DISK_CACHE", raising=False)
    (tmp_path / diskcache.MARKER).write_text("s2s_ad")
    stems = fake_entries(tmp_path, 10, 1000)
    (tmp_path / "notes.txt").write_bytes(b"user data" * 1000)  # not an entry: not counted, kept
    # the newest use of entry 2 (its access time) makes it the most recently used
    os.utime(tmp_path / f"{stems[2]}.py", (1_800_000_000, 1_700_000_000))
    # an entry the running process has loaded is kept, however old
    monkeypatch.setitem(diskcache._MODULES.count, f"s2s_ad_cache.{stems[0]}", 1)
    assert diskcache.info()["bytes"] == 10_000
    assert diskcache.evict(limit=4500) == 6
    left = sorted(p.stem for p in tmp_path.glob("*.py"))
    assert left == sorted([stems[0], stems[2], stems[8], stems[9]])
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "__pycache__").iterdir()) == left
    assert diskcache.info()["bytes"] == 4000 and (tmp_path / "notes.txt").exists()
    assert diskcache.evict(limit=4500) == 0


def test_writing_entries_evicts_now_and_then(tmp_path, monkeypatch):
    monkeypatch.setenv("S2S_AD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("S2S_AD_DISK_CACHE", raising=False)
    monkeypatch.setenv("S2S_AD_CACHE_MAX_BYTES", "3000")
    monkeypatch.setattr(diskcache, "_writes", 0)
    assert diskcache.compile_cached("def first(x):\n    return (x,)\n", "first") is not None
    stems = fake_entries(tmp_path, 6, 1000)
    calls = []
    real = diskcache.evict
    monkeypatch.setattr(diskcache, "evict", lambda **kw: calls.append(1) or real(**kw))
    # the second and later new entries of this process do not measure the directory ...
    fns = [diskcache.compile_cached(f"def h{i}(x):\n    return (x * {i}.0,)\n", f"h{i}") for i in range(3)]
    assert not calls and len(list(tmp_path.glob("f[0-9]_*.py"))) == 6
    # ... until EVICT_EVERY new entries were written: then the oldest go, the loaded ones stay
    monkeypatch.setattr(diskcache, "_writes", diskcache.EVICT_EVERY)
    fns.append(diskcache.compile_cached("def k(x):\n    return (x - 1.0,)\n", "k"))
    assert calls == [1]
    assert diskcache.info()["bytes"] <= 3000
    assert [f(2.0) for f in fns] == [(0.0,), (2.0,), (4.0,), (1.0,)]
    assert not any((tmp_path / f"{s}.py").exists() for s in stems[:3])
