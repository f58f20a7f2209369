"""Compile the kernels of some programs for a real GPU (to PTX, compute capability 8.0) without
running them: every kernel must type and compile, and float32 programs must use no float64
arithmetic. Run by ``test_ptx.py`` in a process without the simulator; it needs NVVM and NVRTC
(a CUDA toolkit, or the ``nvidia-nvvm`` and ``nvidia-cuda-nvrtc`` wheels), not a GPU.

Exit status 0: all compiled; 1: a failure (printed); 77: no CUDA compiler here."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# f64 instructions allowed in float32 kernels: libdevice's sinf/cosf/tanf reduce huge arguments
# with a float64 multiplication by 2**-62 * pi (Payne-Hanek)
_ALLOWED_F64 = re.compile(r"^\s*(\.reg \.f64|cvt\.rn\.f64\.s64|cvt\.rn\.f32\.f64|mul\.f64\s.*0d3BF921FB54442D19)")


def main() -> int:
    from numba import cuda

    try:
        cuda.compile_ptx(lambda x: x + x, "float32(float32)", device=True, cc=(8, 0))
    except Exception as err:  # no NVVM / NVRTC
        print(f"no CUDA compiler: {type(err).__name__}: {err}".splitlines()[0])
        return 77
    if not cuda.is_available():  # device functions ask the current device for its compute capability
        import numba.cuda.dispatcher as dispatcher

        dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(8, 0))

    from numba.cuda.dispatcher import CUDADispatcher
    from numba.cuda.typing.typeof import typeof

    from s2s_ad.cuda import build
    from s2s_ad.opt import optimize

    class HostArray(np.ndarray):
        def copy_to_host(self):
            return np.array(self)

    failures = []
    count = 0

    def check(prog) -> None:
        nonlocal count
        prog = optimize(prog)
        src, fn = build(prog, prog.name)
        g = fn.__globals__
        f32 = all(v.dtype != np.float64 for v in prog.invars)

        def recorder(name, kernel):
            def launch(*args):
                nonlocal count
                sig = tuple(typeof(np.asarray(a) if isinstance(a, HostArray) else a) for a in args)
                try:
                    ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(8, 0))
                except Exception as err:
                    failures.append(f"{prog.name}.{name}: {type(err).__name__}: {err}")
                    return
                count += 1
                bad = [ln for ln in ptx.splitlines() if ".f64" in ln and not _ALLOWED_F64.match(ln)]
                if f32 and "float64" not in str(sig) and bad:
                    failures.append(f"{prog.name}.{name} computes in float64: {bad[:3]}")

            return type("Launch", (), {"__getitem__": lambda self, cfg: launch})()

        for name, obj in list(g.items()):
            if isinstance(obj, CUDADispatcher):
                g[name] = recorder(name, obj)
        saved = cuda.to_device, cuda.device_array
        cuda.to_device = lambda a: np.array(a).view(HostArray)
        cuda.device_array = lambda n, dt: np.zeros(n, dt).view(HostArray)
        try:
            fn(*[np.ones(v.shape, v.dtype)[()] for v in prog.invars])
        finally:
            cuda.to_device, cuda.device_array = saved

    from _programs import all_elementwise, vjp_of

    import s2s_ad
    from s2s_ad.ir import Aval
    from s2s_ad.trace import trace

    for dtype in ("float32", "float64"):
        prog, _, _ = all_elementwise(dtype)
        check(prog)
        check(vjp_of(prog))
    import test_structural as ts

    for fn, args in ts.CASES.values():
        for make in (lambda f: f, lambda f: s2s_ad.grad(f, grad_position=tuple(range(f.__code__.co_argcount)))):
            avals = [Aval(np.shape(a), np.asarray(a).dtype) for a in args]
            target = make(fn)
            body = (lambda t: lambda fe, vals: fe.call(t, vals))(target)
            check(trace(body, avals, getattr(target, "__name__", fn.__name__), [f"a{i}" for i in range(len(avals))]))
    i32 = Aval((3, 4), np.dtype(np.int32))
    check(trace(lambda fe, vals: fe.call(ts.integers, vals), [i32], "integers", ["i"]))

    for f in failures:
        print(f)
    print(f"{count} kernels compiled, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
