"""The ``s2s-ad`` command line.

* ``s2s-ad demo``: differentiate the seeds' MatMul network; print its ``construct``, the
  generated gradient source and the gradient.
* ``s2s-ad show FILE.py:NAME --args "f32[2,3], float32[3,3]" [--mode grad|jvp|vjp|forward] [--order N]
  [--target numpy|numba|cuda] [--standalone]``: print the generated derivative source of a Cell class (or
  instance) or a function in FILE; with ``--standalone``, as a module that runs on its own.
* ``s2s-ad cache info|clear``: show or empty the disk cache of compiled programs.
* ``s2s-ad --version``: print the version.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import re
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import diskcache
from . import dtype as mstype
from .api import GradOperation, JvpFunction, generated_source, output_avals, trace_program, vjp_function
from .demo import Net, inputs
from .errors import S2SError
from .ir import Aval
from .nn import Cell
from .tensor import ParameterTuple
from .version import __version__

_ITEM = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[([^\]]*)\])?\s*(?:,|$)")
_EXAMPLE = '"f32[2,3], float64[3], i64" (a bare dtype is a scalar)'


def parse_args_spec(spec: str) -> list[Aval]:
    """``"f32[2,3], float64[], i64"`` → Avals. A dtype is written as s2s_ad prints it in
    generated docstrings (``f64``, ``i32``, ``bool``), by numpy's name (``float64``) or by a
    MindSpore alias (``double``); a dtype without ``[...]`` is a scalar."""

    out = []
    pos = 0
    text = spec.strip()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if m is None or m.end() == pos:
            piece = text[pos:].split(",")[0].strip() or text[pos:]
            raise SystemExit(f"s2s-ad: cannot parse --args {spec!r} at {piece!r}: expected e.g. {_EXAMPLE}")
        name, dims = m.groups()
        try:
            dt = mstype.from_name(name)
        except ValueError as err:
            raise SystemExit(f"s2s-ad: {err} (in --args {spec!r})") from None
        try:
            shape = tuple(int(d) for d in (dims or "").split(",") if d.strip())
        except ValueError:
            raise SystemExit(
                f"s2s-ad: cannot parse the shape [{dims}] in --args: dimensions must be integers"
            ) from None
        if any(d < 0 for d in shape):
            raise SystemExit(f"s2s-ad: negative dimension in [{dims}] in --args")
        out.append(Aval(shape, dt))
        pos = m.end()
    if text.endswith(","):
        raise SystemExit(f"s2s-ad: cannot parse --args {spec!r}: a trailing comma; expected e.g. {_EXAMPLE}")
    return out


def load_target(target: str) -> Any:
    if ":" not in target:
        raise SystemExit(f"s2s-ad: expected FILE.py:NAME, got {target!r}")
    path, name = target.rsplit(":", 1)
    if not os.path.isfile(path):
        raise SystemExit(f"s2s-ad: no such file: {path}")
    mod_name = "_s2s_target_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(mod_name, os.path.abspath(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise SystemExit(f"s2s-ad: {path} has no attribute {name!r}")
        obj = getattr(obj, part)

    if isinstance(obj, type) and issubclass(obj, Cell):
        try:
            obj = obj()
        except TypeError as err:
            raise SystemExit(
                f"s2s-ad: cannot instantiate {name}() without arguments ({err}); "
                "expose an instance at module level and name that instead"
            ) from None
    return obj


def show(
    target: Any,
    avals: Sequence[Aval],
    mode: str,
    get_all: bool,
    get_by_list: bool,
    sens: bool,
    order: int = 1,
    backend: str = "numpy",
    ir: bool = False,
    standalone: bool = False,
) -> str:
    """The generated source of NAME's derivative (``mode``), for ``backend`` ("numpy", "numba"
    or "cuda"); with ``ir``, the optimised typed IR program that source is printed from; with
    ``standalone``, the source as a module that runs on its own (imports included)."""

    if ir and standalone:
        raise SystemExit("s2s-ad: --standalone prints a runnable module, --ir a listing: give one of them")

    def source(fn: Any, *args: Any, target: str) -> str:
        if ir:
            return trace_program(fn, *args).pretty() + "\n"
        return generated_source(fn, *args, target=target, standalone=standalone)

    if mode == "forward":
        if order != 1:
            raise SystemExit("s2s-ad: --order applies to the derivative modes (grad, jvp, vjp), not to forward")
        return source(target, *avals, target=backend)
    if order < 1:
        raise SystemExit(f"s2s-ad: --order must be at least 1, got {order}")
    if order > 1:
        if get_by_list or sens:
            raise SystemExit("s2s-ad: --get-by-list and --sens apply to first derivatives only (--order 1)")
        # Orders below the top are gradients (of every input with --get-all, else of the first);
        # the top level is the chosen mode: reverse over reverse, or forward over reverse (jvp).
        for _ in range(order - 1):
            target = GradOperation(get_all=get_all)(target)
    if mode in ("jvp", "vjp"):
        if not avals:
            raise SystemExit(f"s2s-ad: --mode {mode} needs at least one input in --args")
        if mode == "jvp":
            tangent = avals[0] if len(avals) == 1 else tuple(avals)
            return source(JvpFunction(target), *avals, tangent, target=backend)
        return source(vjp_function(target), *avals, output_avals(target, *avals), target=backend)
    weights = None
    if get_by_list:
        if not isinstance(target, Cell):
            raise SystemExit("s2s-ad: --get-by-list needs a Cell")
        weights = ParameterTuple(target.trainable_params())
    fn = GradOperation(get_all=get_all, get_by_list=get_by_list, sens_param=sens)(target, weights)
    args: list[Any] = list(avals)
    if sens:
        args.append(output_avals(target, *avals))
    return source(fn, *args, target=backend)


def demo() -> None:
    t0 = time.perf_counter()

    print("# s2s_ad demo: the MatMul network of the GradOperation guide\n")
    print("# construct (user source)")
    print(textwrap.dedent(inspect.getsource(Net.construct)))
    net = Net()
    x, y = inputs()
    grad_all = GradOperation(get_all=True, get_by_list=True)(net, ParameterTuple(net.trainable_params()))

    print("# generated gradient source: GradOperation(get_all=True, get_by_list=True)")
    print(generated_source(grad_all, x, y))
    (dx, dy), (dz,) = grad_all(x, y)
    t1 = time.perf_counter()
    np.set_printoptions(precision=8, suppress=False)
    print("# gradient w.r.t. x (the seed prints [[4.5099998 2.7 3.6000001] [4.5099998 2.7 3.6000001]])")
    print(dx)
    print("# gradient w.r.t. y")
    print(dy)
    print("# gradient w.r.t. the Parameter z (the seed prints 21.536)")
    print(dz)
    print(f"\n# compiled with Numba; first call (trace, differentiate, simplify, compile, run): {t1 - t0:.2f} s")


def _size(n: int | None) -> str:
    if n is None:
        return "no limit"
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} bytes"


def cache_command(action: str) -> str:
    """The text ``s2s-ad cache info|clear`` prints. Clearing a directory that is not an
    s2s_ad cache raises :class:`~s2s_ad.errors.CacheError`."""

    if action == "clear":
        n = diskcache.clear()
        where = diskcache.entries_dir()
        return f"removed {n} file{'s' if n != 1 else ''} from {where}\n" if where else "the disk cache is off\n"
    i = diskcache.info()
    if not i["enabled"]:
        return "disk cache: off (S2S_AD_DISK_CACHE=0)\n"
    where = i["entries_dir"] or i["directory"]
    note = ""
    if i["entries_dir"] is None:
        note = "            (not usable: not a directory)\n"
    elif i["entries_dir"] != i["directory"]:
        note = f"            (in a subfolder: {i['directory']} holds files s2s_ad did not write)\n"
    elif not i["marked"]:
        note = "            (not created yet)\n"
    return (
        f"disk cache: {where}\n{note}"
        f"programs:   {i['entries']}\n"
        f"size:       {_size(i['bytes'])} of {_size(i['max_bytes'])} (limit: S2S_AD_CACHE_MAX_BYTES)\n"
        "(set S2S_AD_CACHE_DIR to move it, S2S_AD_DISK_CACHE=0 to turn it off)\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="s2s-ad", description="Source-to-source automatic differentiation for Python.")
    p.add_argument("--version", action="version", version=f"s2s-ad {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("demo", help="differentiate the seeds' MatMul network and print the generated code")
    s = sub.add_parser("show", help="print the generated derivative source of a Cell or function")
    s.add_argument("target", help="FILE.py:NAME (a Cell class or instance, or a function)")
    s.add_argument(
        "--args",
        required=True,
        help='input dtypes and shapes, as generated docstrings print them or by numpy\'s names, e.g. "f32[2,3], float64[3], i64" (a bare dtype is a scalar)',
    )
    s.add_argument(
        "--mode",
        choices=["grad", "jvp", "vjp", "forward"],
        default="grad",
        help=(
            "grad: GradOperation's reverse-mode program (default); jvp: the forward-mode (tangent) "
            "program, one tangent per input; vjp: the reverse-mode program with an output "
            "cotangent; forward: the compiled forward program"
        ),
    )
    s.add_argument(
        "--order",
        type=int,
        default=1,
        help="derivative order: N-1 nested gradients, then the --mode transform on top (default 1)",
    )
    s.add_argument("--get-all", action="store_true", help="differentiate all inputs (GradOperation get_all)")
    s.add_argument("--get-by-list", action="store_true", help="differentiate the Cell's trainable parameters")
    s.add_argument("--sens", action="store_true", help="take the output cotangent as an extra input (sens_param)")
    s.add_argument(
        "--target",
        dest="backend",
        choices=["numpy", "numba", "cuda"],
        default="numpy",
        help=(
            "numpy: the source PYNATIVE_MODE runs (default); numba: with fused loops, the source "
            "GRAPH_MODE compiles; cuda: the CUDA kernels and host code of device_target='GPU'"
        ),
    )
    s.add_argument(
        "--ir",
        action="store_true",
        help="print the optimised typed IR program (the form the passes work on) instead of the source",
    )
    s.add_argument(
        "--standalone",
        action="store_true",
        help=(
            "print a module that runs on its own: the imports the source needs and, for --target numba, "
            "numba.njit with GRAPH_MODE's options (the CUDA source is always such a module)"
        ),
    )
    c = sub.add_parser("cache", help="show or empty the disk cache of compiled programs")
    c.add_argument(
        "action",
        choices=["info", "clear"],
        help="info: where it is, what it holds and its size limit; clear: delete its programs",
    )
    ns = p.parse_args(argv)
    try:
        if ns.cmd == "demo":
            demo()
        elif ns.cmd == "cache":
            print(cache_command(ns.action), end="")
        else:
            target = load_target(ns.target)
            spec = parse_args_spec(ns.args)
            print(
                show(
                    target,
                    spec,
                    ns.mode,
                    ns.get_all,
                    ns.get_by_list,
                    ns.sens,
                    ns.order,
                    ns.backend,
                    ns.ir,
                    ns.standalone,
                ),
                end="",
            )
    except S2SError as err:
        print(f"s2s-ad: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
