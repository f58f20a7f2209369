"""Multi-start least-squares fits and batched gradients on a Dask cluster.

Measurements of a damped oscillation ``y = A exp(-gamma t) sin(omega t + phi)`` plus noise
are fitted by gradient descent (Adam) on the sum of squared residuals ``sse``. The loss is
multimodal in the frequency ``omega``: a fit converges to the measured frequency only from
a start close enough to it, so the fit is started from many frequencies at once, one Dask
task each, and the best fit is kept. Then the gradient of the loss over a large set of
points is computed in equal batches, one task each, and summed.

What travels to the workers is the gradient function itself, ``s2s_ad.value_and_grad(sse)``:
it pickles as ``sse`` (by value, with its source, when this file runs as a script; by name
when it is imported) and the transform's options, never as compiled code. Each worker
process compiles it once per argument signature, through s2s_ad's disk cache: workers
that share a cache directory (``--cache-dir``, passed to the LocalCluster's workers as
``S2S_AD_CACHE_DIR``) load the machine code that another process compiled. The "first call"
column shows it: seconds on a cold cache, a fraction of that when the program was compiled
before. At the end the same work runs in this process and the results are compared.

    python examples/dask_sweep.py                          # a LocalCluster of 2 worker processes
    python examples/dask_sweep.py --workers 4 --starts 32 --points 2000
    python examples/dask_sweep.py --scheduler tcp://10.0.0.5:8786
    python examples/dask_sweep.py --mode pynative          # numpy, no compilation
    python examples/dask_sweep.py --device GPU             # CUDA programs in every worker

The sizes are chosen to finish in seconds; the work per task grows with ``--steps`` and
``--points``. See docs/guide/cluster.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from distributed import Client, LocalCluster, wait
from distributed.diagnostics.plugin import WorkerPlugin

import s2s_ad
from s2s_ad import context, diskcache

TRUE_PARAMS = np.array([1.5, 0.1, 2.0, 0.5])
NAMES = ("A", "gamma", "omega", "phi")


# ----------------------------------------------------------------------- the model and its loss
def model(p, t):
    """A damped oscillation with amplitude p[0], damping p[1], frequency p[2], phase p[3]."""
    return p[0] * np.exp(-p[1] * t) * np.sin(p[2] * t + p[3])


def sse(p, t, y):
    """The sum of squared residuals of the model at parameters p against measurements y(t)."""
    r = model(p, t) - y
    return np.sum(r * r)


def measurements(n: int, noise: float = 0.05, t_max: float = 20.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy measurements ``(t, y)`` of the model at :data:`TRUE_PARAMS`."""
    t = np.linspace(0.0, t_max, n)
    rng = np.random.default_rng(seed)
    return t, model(TRUE_PARAMS, t) + noise * rng.standard_normal(n)


def starts(n: int) -> list[np.ndarray]:
    """``n`` starting points: frequencies spread over [0.5, 6], the other parameters alike."""
    return [np.array([1.0, 0.1, w, 0.0]) for w in np.linspace(0.5, 6.0, n)]


# ------------------------------------------------------------------------------ the worker tasks
@dataclass
class Fit:
    start: np.ndarray
    params: np.ndarray
    loss: float  # mean squared residual at params
    pid: int  # the process that ran the fit
    first_call: float  # seconds of the first gradient call: compiling or loading it, once per process


def fit(value_and_grad_sse: Any, p0: np.ndarray, t: np.ndarray, y: np.ndarray, steps: int, lr: float) -> Fit:
    """Adam on the mean squared residual, ``steps`` steps from ``p0``."""
    p, m, v = np.array(p0, dtype=np.float64), np.zeros(4), np.zeros(4)
    b1, b2 = 0.9, 0.999
    tic = time.perf_counter()
    first_call = 0.0
    for k in range(1, steps + 1):
        _, g = value_and_grad_sse(p, t, y)
        if k == 1:
            first_call = time.perf_counter() - tic
        g = g.asnumpy() / len(t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**k)) / (np.sqrt(v / (1 - b2**k)) + 1e-12)
    value, _ = value_and_grad_sse(p, t, y)
    return Fit(np.asarray(p0), p, float(value.asnumpy()) / len(t), os.getpid(), first_call)


def batch_gradient(value_and_grad_sse: Any, p: np.ndarray, t: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """``sse`` and its gradient over one batch of points."""
    value, g = value_and_grad_sse(p, t, y)
    return float(value.asnumpy()), g.asnumpy()


class S2SContext(WorkerPlugin):
    """Sets s2s_ad's context (``mode``, ``device_target``) in every worker process, also in
    workers that join later: the context belongs to a process and is not shipped with tasks.
    Registering it again replaces the settings."""

    name = "s2s_ad-context"

    def __init__(self, **settings: Any):
        self.settings = settings

    def setup(self, worker: Any) -> None:
        s2s_ad.set_context(**self.settings)


# --------------------------------------------------------------- the sweep, on a cluster or here
def run_sweep(
    vg: Any,
    p0s: list[np.ndarray],
    t: np.ndarray,
    y: np.ndarray,
    *,
    steps: int,
    lr: float,
    client: Client | None = None,
    timeout: float | None = None,
) -> list[Fit]:
    """One :func:`fit` per start: a task each on ``client``'s cluster, or here without one.
    ``vg`` is the gradient function, shipped to the workers as it is."""
    if client is None:
        return [fit(vg, p0, t, y, steps, lr) for p0 in p0s]
    # The gradient function and the data go to each worker once: every task on a worker then
    # calls the same unpickled function, which compiles (or loads) its program once.
    vg_, t_, y_ = client.scatter([vg, t, y], broadcast=True, hash=False)
    futures = [client.submit(fit, vg_, p0, t_, y_, steps, lr, pure=False) for p0 in p0s]
    wait(futures, timeout=timeout)
    return client.gather(futures)


def run_batches(
    vg: Any,
    p: np.ndarray,
    t: np.ndarray,
    y: np.ndarray,
    n_batches: int,
    *,
    client: Client | None = None,
    timeout: float | None = None,
) -> tuple[float, np.ndarray]:
    """The mean squared residual over all points and its gradient, summed from ``n_batches``
    equal batches (one argument signature, so one compilation per process)."""
    if len(t) % n_batches:
        raise ValueError(f"{len(t)} points do not split into {n_batches} equal batches")
    batches = list(zip(np.split(t, n_batches), np.split(y, n_batches)))
    if client is None:
        parts = [batch_gradient(vg, p, tb, yb) for tb, yb in batches]
    else:
        (vg_,) = client.scatter([vg], broadcast=True, hash=False)
        futures = [client.submit(batch_gradient, vg_, p, tb, yb, pure=False) for tb, yb in batches]
        wait(futures, timeout=timeout)
        parts = client.gather(futures)
    return sum(v for v, _ in parts) / len(t), sum(g for _, g in parts) / len(t)


# ----------------------------------------------------------------------------------- the program
def local_cluster(n_workers: int, cache_dir: Path | None) -> LocalCluster:
    """A cluster of ``n_workers`` worker processes on this machine, one thread each, that
    compile through the disk cache in ``cache_dir`` (s2s_ad's configured one when None)."""
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
        env={"S2S_AD_CACHE_DIR": str(cache_dir)} if cache_dir is not None else {},
    )


def connect(args: argparse.Namespace) -> tuple[Client, LocalCluster | None]:
    """A client of the scheduler at ``--scheduler``, or of a new LocalCluster whose worker
    processes use the cache directory ``--cache-dir``."""
    if args.scheduler:
        return Client(args.scheduler, timeout=args.timeout), None
    cluster = local_cluster(args.workers, args.cache_dir)
    return Client(cluster, timeout=args.timeout), cluster


def prepare_workers(client: Client, **settings: Any) -> dict[str, tuple[int, str | None]]:
    """Set s2s_ad's context in the workers (see :class:`S2SContext`); returns each worker's
    process id and disk cache directory, by address."""
    client.register_plugin(S2SContext(**settings))
    return client.run(lambda: (os.getpid(), diskcache.info()["entries_dir"]))


def print_fits(fits: list[Fit]) -> None:
    print(f"{'omega0':>7} {'A':>7} {'gamma':>7} {'omega':>7} {'phi':>7} {'mse':>9} {'pid':>7} {'first call':>10}")
    for f in fits:
        a, g, w, phi = f.params
        print(f"{f.start[2]:7.2f} {a:7.3f} {g:7.3f} {w:7.3f} {phi:7.3f} {f.loss:9.2e} {f.pid:7d} {f.first_call:9.2f}s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scheduler", help="address of a running Dask scheduler (default: start a LocalCluster)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the LocalCluster (default 2)")
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=diskcache.cache_dir(),
        help="s2s_ad's disk cache for this process and the LocalCluster's workers "
        "(default: S2S_AD_CACHE_DIR or s2s_ad's default directory)",
    )
    ap.add_argument("--mode", choices=("graph", "pynative"), default="graph", help="Numba (graph) or numpy (pynative)")
    ap.add_argument(
        "--device",
        choices=("CPU", "GPU"),
        default="CPU",
        help="device_target of the workers (a LocalCluster's workers share the first GPU; one GPU per worker: "
        "docs/guide/cluster.md)",
    )
    ap.add_argument("--starts", type=int, default=8, help="starting frequencies of the sweep (default 8)")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps per fit (default 300)")
    ap.add_argument("--lr", type=float, default=0.005, help="Adam's learning rate (default 0.005)")
    ap.add_argument("--points", type=int, default=400, help="measurements fitted (default 400)")
    ap.add_argument("--batch-points", type=int, default=100_000, help="points of the batched gradient")
    ap.add_argument("--batches", type=int, default=8, help="batches of the batched gradient (default 8)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the cluster and each stage")
    args = ap.parse_args(argv)

    if args.cache_dir is not None:
        os.environ["S2S_AD_CACHE_DIR"] = str(args.cache_dir)  # this process checks through the same cache
    settings = {
        "mode": context.GRAPH_MODE if args.mode == "graph" else context.PYNATIVE_MODE,
        "device_target": args.device,
    }
    s2s_ad.set_context(**settings)
    vg = s2s_ad.value_and_grad(sse)  # shipped to the workers as it is
    t, y = measurements(args.points)
    p0s = starts(args.starts)

    client, cluster = connect(args)
    try:
        workers = prepare_workers(client, **settings)
        print(
            f"Dask cluster: {'scheduler ' + args.scheduler if args.scheduler else 'LocalCluster'}, "
            f"{len(workers)} worker processes, mode {args.mode}, device {args.device}"
        )
        for address, (pid, cache) in sorted(workers.items()):
            print(f"  worker {address} (pid {pid}): disk cache {cache}")

        print(f"\nmulti-start fit of y = A exp(-gamma t) sin(omega t + phi) to {args.points} measurements:")
        print(f"{args.starts} starts x {args.steps} Adam steps, one task each")
        fits = run_sweep(vg, p0s, t, y, steps=args.steps, lr=args.lr, client=client, timeout=args.timeout)
        print_fits(fits)
        best = min(fits, key=lambda f: f.loss)
        print("best fit:", "  ".join(f"{n}={v:.4f}" for n, v in zip(NAMES, best.params)), f" mse {best.loss:.3e}")
        print("true:    ", "  ".join(f"{n}={v:.4f}" for n, v in zip(NAMES, TRUE_PARAMS)))

        tb, yb = measurements(args.batch_points, seed=1)
        print(f"\nmean squared residual and its gradient at the best fit, {args.batch_points} points")
        print(f"in {args.batches} batches of {args.batch_points // args.batches}, one task each:")
        loss, grad = run_batches(vg, best.params, tb, yb, args.batches, client=client, timeout=args.timeout)
        print(f"mse {loss:.6e}  gradient", np.array2string(grad, precision=6))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

    print("\nsingle-process check (the same work in this process):")
    here = run_sweep(vg, p0s, t, y, steps=args.steps, lr=args.lr)
    sweep_diff = max(float(np.max(np.abs(a.params - b.params))) for a, b in zip(fits, here))
    loss_here, grad_here = run_batches(vg, best.params, tb, yb, args.batches)
    batch_diff = max(abs(loss - loss_here), float(np.max(np.abs(grad - grad_here))))
    ok = np.allclose([f.params for f in fits], [f.params for f in here], rtol=1e-6, atol=1e-9) and np.allclose(
        [loss, *grad], [loss_here, *grad_here], rtol=1e-6, atol=1e-12
    )
    print(f"fitted parameters: max |difference| {sweep_diff:.1e}")
    print(f"batched gradient:  max |difference| {batch_diff:.1e}")
    print("OK: the cluster's results agree with this process's" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
