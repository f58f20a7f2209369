"""examples/dask_sweep.py on a two-worker LocalCluster: the gradient function travels to worker
processes as an object, they compile through the shared disk cache, and their numbers agree
with a run in this process. Skipped only where dask.distributed is not installed (it is in the
``test`` extra, so CI runs it)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")  # a dependency of distributed

from distributed import Client  # noqa: E402

import s2s_ad  # noqa: E402
from s2s_ad import context, diskcache  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMEOUT = 120  # seconds for any one stage on the cluster; the whole module takes about 20


@pytest.fixture(scope="module")
def dask_sweep():
    sys.path.insert(0, str(EXAMPLES))  # the worker processes inherit sys.path and import it too
    try:
        yield importlib.import_module("dask_sweep")
    finally:
        sys.path.remove(str(EXAMPLES))
        sys.modules.pop("dask_sweep", None)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A disk cache of this module's own, for this process and the workers."""
    directory = tmp_path_factory.mktemp("shared_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("S2S_AD_CACHE_DIR", str(directory))
        mp.setenv("S2S_AD_DISK_CACHE", "1")  # the worker processes inherit both
        yield directory


@pytest.fixture(scope="module")
def client(dask_sweep, cache):
    """Two worker processes, one thread each, that use ``cache``; every process they started
    is gone after the module."""
    cluster = dask_sweep.local_cluster(2, cache)
    pids = []
    try:
        with Client(cluster, timeout=TIMEOUT) as c:
            c.wait_for_workers(2, timeout=TIMEOUT)
            pids = list(c.run(os.getpid).values())
            yield c
    finally:
        cluster.close(timeout=TIMEOUT)
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, (
            f"worker process {pid} outlived its cluster"
        )


def entries(directory: Path) -> set[str]:
    return {p.name for p in directory.rglob("*.py")}


def test_sweep_and_batches_on_two_workers(dask_sweep, cache, client, mode):
    d = dask_sweep
    settings = {"mode": context.get_context("mode"), "device_target": "CPU"}
    workers = d.prepare_workers(client, **settings)
    assert len(workers) == 2
    assert {c for _, c in workers.values()} == {diskcache.info()["entries_dir"]} == {str(cache)}

    vg = s2s_ad.value_and_grad(d.sse)
    t, y = d.measurements(200)
    p0s = d.starts(4)
    tb, yb = d.measurements(800, seed=1)  # 4 batches of 200 points: the sweep's signature, one compilation
    # This process first: it compiles (GRAPH_MODE) into the shared cache.
    here = d.run_sweep(vg, p0s, t, y, steps=40, lr=0.01)
    loss_here, grad_here = d.run_batches(vg, d.TRUE_PARAMS, tb, yb, 4)
    compiled = entries(cache)
    if mode == "numba":
        # one program: one entry, or its loop kernels when it is long enough to be split
        assert len([name for name in compiled if name.startswith("grad_sse_")]) == 1 or any(
            name.startswith("loop_") for name in compiled
        )

    # The same transformed function, already called here, goes to the workers.
    there = d.run_sweep(vg, p0s, t, y, steps=40, lr=0.01, client=client, timeout=TIMEOUT)
    loss, grad = d.run_batches(vg, d.TRUE_PARAMS, tb, yb, 4, client=client, timeout=TIMEOUT)

    assert {f.pid for f in there} <= {pid for pid, _ in workers.values()}  # ran in the workers
    for a, b in zip(there, here):
        np.testing.assert_allclose(a.params, b.params, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-9)
    np.testing.assert_allclose(loss, loss_here, rtol=1e-9)
    np.testing.assert_allclose(grad, grad_here, rtol=1e-9, atol=1e-15)
    # The batches add up to the mean squared residual over all points.
    np.testing.assert_allclose(loss, np.mean((d.model(d.TRUE_PARAMS, tb) - yb) ** 2), rtol=1e-9)
    # The workers loaded what this process compiled: the same source, so no new cache entries.
    assert entries(cache) == compiled


def test_script_runs(client, cache):
    """``python examples/dask_sweep.py --scheduler ADDRESS`` end to end, on the module's cluster
    (its functions live in ``__main__`` there, so they travel by value), in PYNATIVE mode to skip
    compiling: exit status 0 and its own single-process check passed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = ["--scheduler", client.scheduler.address, "--mode", "pynative", "--starts", "2", "--steps", "20"]
    args += ["--points", "100", "--batch-points", "400", "--batches", "2", "--timeout", str(TIMEOUT)]
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "dask_sweep.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=3 * TIMEOUT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"scheduler {client.scheduler.address}, 2 worker processes, mode pynative" in r.stdout
    assert f"disk cache {cache}" in r.stdout
    assert "OK: the cluster's results agree with this process's" in r.stdout
