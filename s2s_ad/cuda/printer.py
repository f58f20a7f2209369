"""An optimised program → CUDA Python source: ``@cuda.jit`` kernels and the host function that
launches them.

Every value lives on the device as a flat, C-contiguous array (a value of shape ``()`` as one
element), so a reshape is free and every kernel indexes with one offset. The host function
copies each used input to the device once, launches one kernel per step of the schedule, and
copies each output back once at the end.

* A fused :class:`~s2s_ad.fusion.Loop` is one grid-stride kernel over the loop's flat index,
  unravelled with the static shape where an input is broadcast. Each external input element
  is loaded once into a local; the members are printed with the op table's printers, with
  :mod:`~s2s_ad.cuda.devicemath` (``dm``) as the namespace of functions. A fused full
  reduction adds into a per-thread partial sum, then a tree in shared memory and one
  ``cuda.atomic.add`` per block; a fused partial reduction runs the loop with its reduced axes
  innermost and adds each row's values across the block (a segmented scan in shared memory)
  before one atomic add per row and block.
* ``matmul`` is a tiled kernel: square tiles of both operands are staged in shared memory.
* ``reduce_sum``/``reduce_mean``/``reduce_max``/``reduce_min`` outside loops view the input as
  (rows, reduced elements): a thread per row when rows are short, else a block per row with a
  tree in shared memory.
* ``transpose``, ``getitem`` and ``broadcast_to`` gather with static index arithmetic;
  ``scatter`` fills zeros and writes the indexed region; ``reshape`` and ``stop_gradient`` are
  the same device array.

The launch configuration is part of the source: on a GPU 256 threads per block, under Numba's
simulator (``NUMBA_ENABLE_CUDASIM=1``, where every simulated thread is a Python thread) 4
threads and at most 2 blocks; grid-stride loops cover any size.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from .. import codegen
from ..codegen import _leaf_names, _Names
from ..errors import NotSupportedError, S2SError
from ..fusion import Loop, schedule, use_counts
from ..ir import Atom, Eqn, Lit, Program, Var
from ..primitives import ATOM, CMP, ELEMENTWISE, UNARY, OpDef, get_op, index_str
from ..primitives import print_elementwise as print_op
from ..regions import is_region


@dataclass(frozen=True)
class Launch:
    """Launch configuration: ``threads`` per block of 1-D kernels (a power of two), at most
    ``max_blocks`` blocks (grid-stride loops cover the rest), ``tile`` x ``tile`` threads per
    matmul block."""

    threads: int
    max_blocks: int
    tile: int


GPU_LAUNCH = Launch(threads=256, max_blocks=1024, tile=16)
SIM_LAUNCH = Launch(threads=4, max_blocks=2, tile=2)


def simulated() -> bool:
    """Whether Numba's CUDA simulator is enabled (``NUMBA_ENABLE_CUDASIM=1`` when numba was
    imported)."""
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def launch_config() -> Launch:
    return SIM_LAUNCH if simulated() else GPU_LAUNCH


# dtypes of device arrays, and those cuda.atomic.add takes
_DTYPES = frozenset(
    np.dtype(t)
    for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
    + (np.float32, np.float64)
)
_ATOMIC = frozenset(np.dtype(t) for t in (np.int32, np.int64, np.uint32, np.uint64, np.float32, np.float64))


# ----------------------------------------------------------------------------- scalar printing
def lit(v: float | int | bool, dt: np.dtype) -> str:
    """A literal of dtype ``dt``: ``np.float32(2.0)`` (a bare ``2.0`` is a float64 in a kernel
    and would promote float32 arithmetic), bare for float64 and int64."""
    dt = np.dtype(dt)
    if dt.kind == "b":
        return repr(bool(v))
    if dt.kind == "f":
        x = float(v)
        if math.isnan(x):
            txt = "math.nan"
        elif math.isinf(x):
            txt = "math.inf" if x > 0 else "-math.inf"
        else:
            txt = repr(x)
        return txt if dt == np.float64 else f"np.{dt.name}({txt})"
    return repr(int(v)) if dt == np.int64 else f"np.{dt.name}({int(v)})"


def _lit_atom(v, dt) -> tuple[str, int]:
    s = lit(v, dt)
    return s, (UNARY if s.startswith("-") else ATOM)


def cast(expr: tuple[str, int], src: np.dtype, dst: np.dtype) -> tuple[str, int]:
    if np.dtype(src) == np.dtype(dst):
        return expr
    if np.dtype(dst).kind == "b":
        return f"{_wrap(expr, CMP + 1)} != 0", CMP
    return f"np.{np.dtype(dst).name}({expr[0]})", ATOM


def _shared(arrays: list[tuple[str, int, np.dtype]]) -> tuple[list[str], int]:
    """Lines that carve the named 1-D arrays ``(name, length, dtype)`` out of the kernel's
    dynamic shared memory, and the bytes to launch it with.

    Dynamic shared arrays alias one buffer (on a GPU and in the simulator alike), so each name
    is a disjoint view; the largest items come first, which keeps every view aligned. The dtype
    is a Numba type (``nt.float32``), which both targets take for a dynamic array. Static
    ``cuda.shared.array((n,), dt)`` would read better, but Numba's simulator allocates those per
    source line without a lock, and threads that race there get different arrays."""
    lines: list[str] = []
    offset = 0
    for name, n, dt in sorted(arrays, key=lambda a: -np.dtype(a[2]).itemsize):
        size = np.dtype(dt).itemsize
        start = offset // size
        lines.append(f"{name} = cuda.shared.array(0, nt.{np.dtype(dt).name})[{start}:{start + n}]")
        offset += n * size
    return lines, offset


def _wrap(arg: tuple[str, int], need: int) -> str:
    s, p = arg
    return s if p >= need else f"({s})"


def print_elementwise(op: OpDef, args: list[tuple[str, int]], dt: np.dtype, ns: str = "dm") -> tuple[str, int]:
    """One elementwise op on scalars, from its table printer, with ``ns`` as the namespace of
    functions (``("call", "exp")`` → ``dm.exp(x)``) and literals typed ``dt``."""
    return print_op(op, args, lambda v: lit(v, dt), ns, ())


def device_function_names() -> list[str]:
    """The ``dm.NAME`` functions the elementwise printers of the op table use (every one must be
    in :func:`device_namespace`)."""
    return codegen.function_names("dm")


@functools.cache
def device_namespace() -> ModuleType:
    """The namespace ``dm`` of the kernels' scalar device functions, built from the op table: for
    the function each elementwise op computes (its ``function``), :mod:`~s2s_ad.cuda.devicemath`'s
    helper of that name where one exists, else a device function of numpy's function and the
    op's CUDA lowering (its ``cuda``, by default the ``math`` function of the same name)."""
    from . import devicemath  # imports Numba, which only the CUDA target needs

    ns = ModuleType("s2s_ad.cuda.dm", "The scalar device functions (s2s_ad.cuda.printer.device_namespace).")
    for op in ELEMENTWISE:
        name = op.function
        if name is None or hasattr(ns, name):
            continue
        fn = devicemath.HELPERS.get(name)
        if fn is None:
            if op.cuda is None:
                raise S2SError(
                    f"{op.display} ({op.name}): the CUDA target has no device function for {name}; give its "
                    "op table entry a `cuda=` lowering (a function numba.cuda compiles, e.g. math.expm1)"
                )
            fn = devicemath.math_function(name, op.host_function(), op.cuda, op.nin)
        setattr(ns, name, fn)
    return ns


# ----------------------------------------------------------------------------- index helpers
def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _strides(shape) -> list[int]:
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= d
    return out[::-1]


def _unravel(var: str, dims: list[int], names: list[str]) -> tuple[list[str], list[str]]:
    """Statements computing the row-major indices of flat ``var`` over ``dims`` into ``names``,
    and the index expression of each dimension (``"0"`` for a dimension of size 1, ``var``
    itself when it is the only dimension larger than 1)."""
    if sum(1 for d in dims if d != 1) == 1:
        return [], [var if d != 1 else "0" for d in dims]
    lines, exprs = [], []
    strides = _strides(dims)
    outer = True
    for d, s, n in zip(dims, strides, names):
        if d == 1:
            exprs.append("0")
            continue
        e = var if s == 1 else f"{var} // {s}"
        if not outer:
            e = f"{e} % {d}"
        outer = False
        lines.append(f"{n} = {e}")
        exprs.append(n)
    return lines, exprs


def _term(e: str, stride: int) -> str:
    if stride == 1:
        return e
    return f"({e}) * {stride}" if " " in e else f"{e} * {stride}"


def _offset(idx: list[str], shape) -> str:
    """The flat offset of index expressions ``idx`` into a C-contiguous array of ``shape``."""
    terms = [_term(e, s) for e, s, d in zip(idx, _strides(shape), shape) if d != 1 and e != "0"]
    return " + ".join(terms) or "0"


def _affine(start: int, step: int, j: str) -> str:
    """``start + step * j`` as text."""
    if step == 0 or j == "0":
        return str(start)
    t = j if abs(step) == 1 else f"{abs(step)} * {j}"
    if start == 0:
        return t if step > 0 else f"-{t}"
    return f"{start} + {t}" if step > 0 else f"{start} - {t}"


def _getitem_map(index: tuple, in_shape, out_shape) -> list[tuple[int, int, int | None]]:
    """For each input axis: ``(start, step, out_axis)``, meaning input index ``start + step *
    j[out_axis]`` (``out_axis`` None: the constant ``start``)."""
    items = list(index)
    used = sum(1 for i in items if i is not None and i is not Ellipsis)
    if Ellipsis in items:
        k = items.index(Ellipsis)
        items[k : k + 1] = [("slice", None, None, None)] * (len(in_shape) - used)
    items += [("slice", None, None, None)] * (len(in_shape) - sum(1 for i in items if i is not None))
    src: list[tuple[int, int, int | None]] = []
    ax_in = ax_out = 0
    for i in items:
        if i is None:
            ax_out += 1
        elif isinstance(i, tuple) and i and i[0] == "slice":
            start, _, step = slice(*i[1:]).indices(in_shape[ax_in])
            src.append((start, step, ax_out))
            ax_in += 1
            ax_out += 1
        elif isinstance(i, (int, np.integer)):
            src.append((int(i) % in_shape[ax_in], 0, None))
            ax_in += 1
        else:
            raise S2SError(f"the CUDA target cannot index with {i!r}")
    assert ax_in == len(in_shape) and ax_out == len(out_shape), (index, in_shape, out_shape)
    return src


# ----------------------------------------------------------------------------- the schedule
def _pointwise(e: Eqn) -> bool:
    # elementwise ops and the structural ops that act index for index (the table's ``pointwise``)
    return len(e.outs) == 1 and get_op(e.op).pointwise


def cuda_schedule(prog: Program) -> list[Eqn | Loop]:
    """:func:`~s2s_ad.fusion.schedule`, with runs of consecutive scalar elementwise equations
    grouped into loops over ``()`` (one single-thread kernel each), so that every computation
    runs on the device."""
    steps: list[Eqn | Loop] = []
    scalar: Loop | None = None
    for st in schedule(prog):
        if isinstance(st, Eqn) and _pointwise(st) and st.outs[0].shape == () and st.op != "stop_gradient":
            if scalar is None:
                scalar = Loop(())
                steps.append(scalar)
            scalar.eqns.append(st)
            continue
        scalar = None
        steps.append(st)
    uses = use_counts(prog)
    for st in steps:
        if isinstance(st, Loop) and st.shape == () and not st.stored:
            st.set_stored(uses)
    return steps


# ----------------------------------------------------------------------------- source
class _LocalNames(_Names):
    """Names inside a kernel: temporaries are ``v0, v1, ...`` (``t0, ...`` name host arrays)."""

    def fresh(self, hint: str | None) -> str:
        if hint is not None:
            return super().fresh(hint)
        while f"v{self.temps}" in self.used:
            self.temps += 1
        name = f"v{self.temps}"
        self.temps += 1
        self.used.add(name)
        return name


class _Kernel:
    """Names and lines of one kernel being printed."""

    def __init__(self, reserved: tuple[str, ...] = ()) -> None:
        self.names = _LocalNames()
        self.names.used |= {"cuda", "dm", "np", "math", *reserved}
        self.params: list[str] = []  # kernel parameter names
        self.args: list[str] = []  # host expressions passed for them
        self._by_arg: dict[str, str] = {}

    def param(self, host: str) -> str:
        """The kernel parameter for host device array ``host`` (one per array)."""
        p = self._by_arg.get(host)
        if p is None:
            p = self._by_arg[host] = self.names.fresh(host)
            self.params.append(p)
            self.args.append(host)
        return p


@dataclass
class _Reduction:
    eqn: Eqn
    kind: str  # "full" | "rows" (the loop's innermost axes) | "atomic" (one add per element)
    acc_dt: np.dtype
    acc: str  # host name of the accumulator
    count: int  # number of reduced elements per output
    direct: bool  # the accumulator is the output (a sum in a dtype with atomic adds)


class _Source:
    def __init__(self, prog: Program, fname: str, doc: str | None) -> None:
        self.prog = prog
        self.fname = fname
        self.doc = doc
        self.L = launch_config()
        self.names = _Names()
        self.names.used |= {"cuda", "dm", "np", "math"}
        self.dev: dict[Var, str] = {}  # variable -> host name of its (flat) device array
        self.kernels: list[str] = []
        self._kernel_names: dict[str, str] = {}
        self.fills: dict[str, str] = {}  # dtype name -> fill kernel name
        self.lines: list[str] = []
        self._pending: list[str] = []
        self._last_loc = None
        for v in prog.invars:
            self._check_dtype(v.dtype)
        for e in prog.eqns:
            for v in e.outs:
                self._check_dtype(v.dtype, e)

    @staticmethod
    def _check_dtype(dt: np.dtype, e: Eqn | None = None) -> None:
        if np.dtype(dt) not in _DTYPES:
            what = f" (in {get_op(e.op).display})" if e is not None else ""
            raise S2SError(f"the CUDA target does not support dtype {np.dtype(dt)}{what}", e.loc if e else None)

    # ------------------------------------------------------------------ host helpers
    def emit(self, *lines: str) -> None:
        self.lines.extend(self._pending)
        self._pending.clear()
        self.lines.extend(lines)

    def locate(self, e: Eqn) -> None:
        if e.loc is not None and (e.loc, e.adjoint) != self._last_loc:
            self._pending[:] = [codegen.location_comment(e)]
            self._last_loc = (e.loc, e.adjoint)

    def alloc(self, v: Var, name: str | None = None) -> str:
        name = name or self.names.fresh(self.prog.name_of(v))
        self.emit(f"{name} = cuda.device_array({v.aval.size}, np.{v.dtype.name})")
        self.dev[v] = name
        return name

    def blocks(self, n: int) -> int:
        return max(1, min(self.L.max_blocks, -(-n // self.L.threads)))

    def launch(
        self, kernel: str, grid: int, block: int | tuple[int, int], args: list[str], shared_bytes: int = 0
    ) -> None:
        block_txt = f"({block[0]}, {block[1]})" if isinstance(block, tuple) else str(block)
        config = f"{grid}, {block_txt}" + (f", 0, {shared_bytes}" if shared_bytes else "")
        self.emit(f"{kernel}[{config}]({', '.join(args)})")

    def array(self, a: Atom) -> str:
        """The device array holding ``a`` (a literal is written into a new one-element array)."""
        if isinstance(a, Var):
            return self.dev[a]
        name = self.names.fresh(None)
        self.emit(f"{name} = cuda.device_array(1, np.{a.dtype.name})")
        self.fill(name, 1, a.value, a.dtype)
        return name

    def fill(self, arr: str, n: int, value, dt: np.dtype) -> None:
        kname = self.fills.get(np.dtype(dt).name)
        if kname is None:
            kname = self.fills[np.dtype(dt).name] = self.names.fresh(f"fill_{np.dtype(dt).name}")
            self.kernels.append(
                "\n".join(
                    [
                        "@cuda.jit",
                        f"def {kname}(out, value):",
                        '    """out[:] = value."""',
                        "    for f in range(cuda.grid(1), out.size, cuda.gridsize(1)):",
                        "        out[f] = value",
                    ]
                )
            )
        self.launch(kname, self.blocks(n), self.L.threads, [arr, lit(value, dt)])

    def kernel(self, kind: str, k: _Kernel, doc: str, body: list[str]) -> str:
        """Register a kernel (identical kernels are printed once) and return its name."""
        text = "\n".join(
            ["@cuda.jit", f"def __kernel__({', '.join(k.params)}):", f'    """{doc}"""']
            + ["    " + ln if ln else ln for ln in body]
        )
        name = self._kernel_names.get(text)
        if name is None:
            name = self._kernel_names[text] = self.names.fresh(f"k{len(self._kernel_names)}_{kind}")
            self.kernels.append(text.replace("def __kernel__(", f"def {name}(", 1))
        return name

    # ------------------------------------------------------------------ the program
    def source(self) -> str:
        prog = self.prog
        used = {a for e in prog.eqns for a in e.ins} | set(prog.outs)
        params = []
        hints = list(_leaf_names(prog))
        hints += [getattr(p, "name", None) or "param" for p in prog.parameters]
        hints += [f"const{k}" for k in range(len(prog.consts))]
        for v, hint in zip(prog.invars, hints):
            name = self.names.fresh(prog.name_of(v) or hint)
            params.append(name)
            self.dev[v] = name
            if v in used:
                src = f"np.full(1, {name}, np.{v.dtype.name})" if v.shape == () else f"{name}.ravel()"
                self.lines.append(f"{name} = cuda.to_device({src})")

        for st in cuda_schedule(prog):
            if isinstance(st, Loop):
                for e in st.eqns:
                    self.locate(e)
                self.loop(st)
            else:
                self.locate(st)
                self.eqn(st)

        rets = []
        for a in prog.outs:
            if isinstance(a, Lit):
                txt = lit(a.value, a.dtype)
                rets.append(f"np.{a.dtype.name}({txt})" if a.dtype in (np.float64, np.int64) else txt)
            elif a.shape == ():
                rets.append(f"{self.dev[a]}.copy_to_host()[0]")
            else:
                rets.append(f"{self.dev[a]}.copy_to_host().reshape({a.shape!r})")
        self.emit(f"return ({', '.join(rets)}{',' if len(rets) == 1 else ''})")

        sig_doc = ", ".join(f"{n}: {v.aval}" for n, v in zip(params, prog.invars))
        head = [f"def {self.fname}({', '.join(params)}):"]
        doc = (self.doc + "\n\n") if self.doc else ""
        doc += "Runs on the GPU: inputs are copied to the device once, outputs back once."
        body = [f'"""{doc}' + (f"\n\n{sig_doc}" if sig_doc else "") + '\n"""'] + self.lines
        host = "\n".join(head + ["    " + ln if ln else ln for ln in "\n".join(body).split("\n")])
        header = [
            f"# CUDA kernels and host code of {self.fname}, generated by s2s_ad.",
            "# Every value is a flat, C-contiguous device array (shape () as one element);",
            "# launches are kernel[blocks, threads per block](arrays...), or with [..., stream, shared bytes]",
            "# where a kernel stages values in dynamic shared memory.",
            "import math",
            "",
            "import numpy as np",
            "from numba import cuda",
            "from numba import types as nt",
            "",
            "from s2s_ad.cuda.printer import device_namespace",
            "",
            "dm = device_namespace()  # the scalar device functions, from the op table",
        ]
        return "\n\n\n".join(["\n".join(header), *self.kernels, host]) + "\n"

    def eqn(self, e: Eqn) -> None:
        out = e.outs[0]
        op = get_op(e.op)
        kernel = op.cuda_kernel  # how the op table says the op runs on the device
        if kernel == "alias":
            self.dev[out] = self.array(e.ins[0])
        elif kernel == "fill":
            name = self.alloc(out)
            self.fill(name, out.aval.size, e.params["value"], out.dtype)
        elif kernel == "pointwise":
            self.loop(Loop(out.shape, [e], stored=[out]))
        elif kernel == "matmul":
            self.matmul(e)
        elif kernel == "reduce":
            self.reduce(e)
        elif kernel == "gather":
            self.gather(e)
        elif kernel == "scatter":
            self.scatter(e)
        else:
            raise S2SError(
                f"{op.display} ({e.op}) has no device implementation on the CUDA target; "
                "run this program on the CPU (set_context(device_target='CPU') or target='cpu')",
                e.loc,
            )

    # ------------------------------------------------------------------ fused loops
    def loop(self, loop: Loop) -> None:
        shape = loop.shape
        n = _size(shape)
        T = self.L.threads
        k = _Kernel(("f", "o", "tid", "base", "lo", "d", "w"))

        # The most common partial reduction axes become the innermost loop axes, so that the
        # elements of one output of those reductions are consecutive values of f.
        partial = [e.params["axes"] for e in loop.reductions if len(e.params["axes"]) < len(shape)]
        rows_axes = Counter(partial).most_common(1)[0][0] if partial else ()
        order = [a for a in range(len(shape)) if a not in rows_axes] + list(rows_axes)
        identity = order == list(range(len(shape)))
        R = _size([shape[a] for a in rows_axes])
        reds: list[_Reduction] = []
        for e in loop.reductions:
            out = e.outs[0]
            axes = e.params["axes"]
            kind = "full" if len(axes) == len(shape) else ("rows" if axes == rows_axes else "atomic")
            direct = e.op == "reduce_sum" and out.dtype in _ATOMIC
            acc_dt = out.dtype if out.dtype in _ATOMIC else np.dtype(np.int64)
            if direct:
                acc = self.alloc(out)
            else:
                acc = self.names.fresh(f"{self.prog.name_of(out) or 't'}_acc")
                self.emit(f"{acc} = cuda.device_array({out.aval.size}, np.{acc_dt.name})")
            self.fill(acc, out.aval.size, 0, acc_dt)
            reds.append(_Reduction(e, kind, acc_dt, acc, _size([shape[a] for a in axes]), direct))

        # loop indices (in the loop order), printed where first needed
        idx_names = [k.names.fresh(f"i{a}") for a in range(len(shape))]
        unravel_lines, exprs = _unravel("f", [shape[a] for a in order], [idx_names[a] for a in order])
        idx_expr = dict(zip(order, exprs))
        needed: list[str] = []

        def index(axis: int) -> str:
            ex = idx_expr[axis]
            for ln in unravel_lines:  # (none when the index is f itself)
                if ln.startswith(ex + " = ") and ln not in needed:
                    needed.append(ln)
            return ex

        row_major: list[str] = []  # "o = ...": the row-major offset, when the loop order is not

        def offset(shp) -> str:
            """The offset into a flat array of shape ``shp`` broadcast against the loop."""
            if shp == ():
                return "0"
            if tuple(shp) == tuple(shape):
                if identity:
                    return "f"
                if not row_major:
                    row_major.append(f"o = {_offset([index(a) for a in range(len(shape))], shape)}")
                return "o"
            lead = len(shape) - len(shp)
            if identity and 1 not in shp and tuple(shp) == tuple(shape[lead:]):
                return f"f % {_size(shp)}"
            return _offset([index(lead + j) if d != 1 else "0" for j, d in enumerate(shp)], shp)

        hoisted: list[str] = []  # loads of one-element inputs, once before the loop
        loads: list[str] = []
        local: dict[Var, tuple[str, int]] = {}

        def read(a: Atom, want: np.dtype | None = None) -> tuple[str, int]:
            """``a`` inside the loop (each input element is loaded once, into a local), cast to
            ``want``."""
            if isinstance(a, Lit):
                return _lit_atom(a.value, want if want is not None else a.dtype)
            got = local.get(a)
            if got is None:
                p = k.param(self.dev[a])
                name = k.names.fresh(f"{p}_i")
                at = offset(a.shape)
                (hoisted if at == "0" else loads).append(f"{name} = {p}[{at}]")
                got = local[a] = (name, ATOM)
            return got if want is None else cast(got, a.dtype, want)

        member_uses = loop.reads()
        stored = set(loop.stored)
        body: list[str] = []
        writes: list[str] = []
        for e in loop.eqns:
            out = e.outs[0]
            hint = self.prog.name_of(out)
            op = get_op(e.op)
            if e.op in ("stop_gradient", "broadcast_to"):
                s, prec = read(e.ins[0])
            elif e.op == "fill":
                s, prec = _lit_atom(e.params["value"], out.dtype)
            elif e.op == "cast":
                s, prec = cast(read(e.ins[0]), e.ins[0].dtype, out.dtype)
            elif op.kind == "elementwise":
                # inputs are computed in the output dtype (numpy's promotion, made explicit)
                args = [read(a, None if i in op.bool_inputs else out.dtype) for i, a in enumerate(e.ins)]
                s, prec = print_elementwise(op, args, out.dtype)
            else:  # comparisons
                s, prec = op.emit([read(a) for a in e.ins], e, None)
            if out in stored:
                arr = k.param(self.alloc(out))
                writes.append(arr)
                if member_uses[out] == 0:
                    body.append(f"{arr}[{offset(shape)}] = {s}")
                    continue
                name = k.names.fresh(f"{hint}_i" if hint else None)
                body += [f"{name} = {s}", f"{arr}[{offset(shape)}] = {name}"]
                local[out] = (name, ATOM)
            elif e.op in ("stop_gradient", "broadcast_to") or (hint is None and member_uses[out] <= 1):
                local[out] = (s, prec)
            else:
                name = k.names.fresh(hint)
                body.append(f"{name} = {s}")
                local[out] = (name, ATOM)

        init: list[str] = []  # before the loop
        shared: list[tuple[str, int, np.dtype]] = []
        zeros: list[str] = []  # at the top of each block-uniform iteration
        scans: list[tuple[str, str, str, np.dtype]] = []  # (value, shared array, accumulator, dtype)
        trees: list[tuple[str, str, str]] = []  # (partial sum, shared array, accumulator)
        for r in reds:
            value = cast(read(r.eqn.ins[0]), r.eqn.ins[0].dtype, r.acc_dt)[0]
            accp = k.param(r.acc)
            base = self.prog.name_of(r.eqn.outs[0]) or "sum"
            zero = lit(0, r.acc_dt)
            if r.kind == "full":
                part, sh = k.names.fresh(f"{base}_part"), k.names.fresh(f"{base}_sh")
                init.append(f"{part} = {zero}")
                shared.append((sh, T, r.acc_dt))
                body.append(f"{part} += {value}")
                trees.append((part, sh, accp))
            elif r.kind == "rows":
                v, sh = k.names.fresh(f"{base}_v"), k.names.fresh(f"{base}_sh")
                shared.append((sh, T, r.acc_dt))
                zeros.append(f"{v} = {zero}")
                body.append(f"{v} = {value}")
                scans.append((v, sh, accp, r.acc_dt))
            else:  # reduced axes that are not innermost: an atomic add per element
                kept = [a for a in range(len(shape)) if a not in r.eqn.params["axes"]]
                slot = _offset([index(a) for a in kept], [shape[a] for a in kept])
                body.append(f"cuda.atomic.add({accp}, {slot}, {value})")

        inner = needed + row_major + loads + body
        code = ["tid = cuda.threadIdx.x"] if scans or trees else []
        shared_lines, shared_bytes = _shared(shared)
        code += shared_lines + hoisted + init
        if scans:  # block-uniform iterations: every thread of a block reaches each syncthreads
            code += [f"for base in range(cuda.blockIdx.x * {T}, {n}, cuda.gridDim.x * {T}):", "    f = base + tid"]
            code += ["    " + ln for ln in zeros]
            code += [f"    if f < {n}:"] + ["        " + ln for ln in inner]
            code += [f"    # add up the values of each row ({R} consecutive f) in the block: a segmented scan"]
            code += [f"    {sh}[tid] = {v}" for v, sh, _, _ in scans]
            code += [
                "    cuda.syncthreads()",
                f"    lo = max(f // {R} * {R} - base, 0)  # the first thread of this row",
                "    d = 1",
                f"    while d < {T}:",
            ]
            code += [f"        {v} = {sh}[tid - d] if tid - d >= lo else {lit(0, dt)}" for v, sh, _, dt in scans]
            code += ["        cuda.syncthreads()"]
            code += [f"        {sh}[tid] += {v}" for v, sh, _, _ in scans]
            code += ["        cuda.syncthreads()", "        d *= 2"]
            code += [f"    if f < {n} and (tid == {T - 1} or f % {R} == {R - 1} or f == {n - 1}):"]
            code += [f"        cuda.atomic.add({acc}, f // {R}, {sh}[tid])" for _, sh, acc, _ in scans]
        else:
            code += [f"for f in range(cuda.grid(1), {n}, cuda.gridsize(1)):"] + ["    " + ln for ln in inner]
        if trees:
            code += ["# add up the partial sums of the block's threads: a tree, then one atomic add per block"]
            code += [f"{sh}[tid] = {part}" for part, sh, _ in trees]
            code += ["cuda.syncthreads()", f"w = {T // 2}", "while w > 0:", "    if tid < w:"]
            code += [f"        {sh}[tid] += {sh}[tid + w]" for _, sh, _ in trees]
            code += ["    cuda.syncthreads()", "    w //= 2", "if tid == 0:"]
            code += [f"    cuda.atomic.add({acc}, 0, {sh}[0])" for _, sh, acc in trees]

        what = []
        if writes:
            what.append("writes " + ", ".join(writes))
        if reds:
            what.append("sums into " + ", ".join(k.param(r.acc) for r in reds))
        doc = f"Fused loop over {shape!r}" + (": " + "; ".join(what) if what else "") + "."
        name = self.kernel("loop", k, doc, code)
        self.launch(name, self.blocks(n), T, k.args, shared_bytes)
        for r in reds:
            if not r.direct:
                self.finish(r)

    def finish(self, r: _Reduction) -> None:
        out = r.eqn.outs[0]
        target = self.alloc(out)
        k = _Kernel(("f",))
        src, dst = k.param(r.acc), k.param(target)
        val: tuple[str, int] = (f"{src}[f]", ATOM)
        if r.eqn.op == "reduce_mean":
            div_dt = r.acc_dt if r.acc_dt.kind == "f" else np.dtype(np.float64)
            val = (f"{src}[f] / {lit(r.count, div_dt)}", UNARY)
            val = cast(val, div_dt, out.dtype)
        else:
            val = cast(val, r.acc_dt, out.dtype)
        m = out.aval.size
        body = [f"for f in range(cuda.grid(1), {m}, cuda.gridsize(1)):", f"    {dst}[f] = {val[0]}"]
        what = "mean" if r.eqn.op == "reduce_mean" else "sum"
        name = self.kernel("finish", k, f"{dst} = the {what} from the accumulated sums {src}.", body)
        self.launch(name, self.blocks(m), self.L.threads, k.args)

    # ------------------------------------------------------------------ matmul
    def matmul(self, e: Eqn) -> None:
        a, b = e.ins
        out = e.outs[0]
        if out.dtype.kind == "b":
            raise S2SError("MatMul of bool tensors is not supported on the CUDA target", e.loc)
        ta, tb = e.params["transpose_a"], e.params["transpose_b"]
        M, N = out.shape
        K = a.shape[0] if ta else a.shape[1]
        T = self.L.tile
        dt = out.dtype
        k = _Kernel(("sa", "sb", "tx", "ty", "tile", "row", "col", "acc", "k0", "kk", "kx", "ky"))
        pa, pb = k.param(self.array(a)), k.param(self.array(b))
        po = k.param(self.alloc(out))
        ea = f"{pa}[kx * {M} + row]" if ta else f"{pa}[row * {K} + kx]"
        eb = f"{pb}[col * {K} + ky]" if tb else f"{pb}[ky * {N} + col]"
        tiles_n = -(-N // T)
        tiles = -(-M // T) * tiles_n
        zero = lit(0, dt)
        shared_lines, shared_bytes = _shared([("sa", T * T, dt), ("sb", T * T, dt)])
        body = shared_lines + [
            "tx = cuda.threadIdx.x",
            "ty = cuda.threadIdx.y",
            f"for tile in range(cuda.blockIdx.x, {tiles}, cuda.gridDim.x):",
            f"    row = {'tile' if tiles_n == 1 else f'tile // {tiles_n}'} * {T} + ty",
            f"    col = {'' if tiles_n == 1 else f'tile % {tiles_n} * {T} + '}tx",
            f"    acc = {zero}",
            f"    for k0 in range(0, {K}, {T}):",
            "        kx = k0 + tx",
            "        ky = k0 + ty",
            f"        sa[ty * {T} + tx] = {ea} if row < {M} and kx < {K} else {zero}",
            f"        sb[ty * {T} + tx] = {eb} if ky < {K} and col < {N} else {zero}",
            "        cuda.syncthreads()",
            f"        for kk in range({T}):",
            f"            acc += sa[ty * {T} + kk] * sb[kk * {T} + tx]",
            "        cuda.syncthreads()",
            f"    if row < {M} and col < {N}:",
            f"        {po}[row * {N} + col] = acc",
        ]
        opa = f"{pa}{'.T' if ta else ''} {a.shape!r}"
        opb = f"{pb}{'.T' if tb else ''} {b.shape!r}"
        doc = f"{po} {out.shape!r} = {opa} @ {opb}, in {T}x{T} tiles staged in shared memory."
        name = self.kernel("matmul", k, doc, body)
        self.launch(name, min(tiles, self.L.max_blocks), (T, T), k.args, shared_bytes)

    # ------------------------------------------------------------------ reductions
    def reduce(self, e: Eqn) -> None:
        (x,) = e.ins
        out = e.outs[0]
        axes = e.params["axes"]
        shape = x.shape
        kept = [a for a in range(len(shape)) if a not in axes]
        R = _size([shape[a] for a in axes])
        rows = _size([shape[a] for a in kept])
        if R == 1:  # reducing dimensions of size 1: the same values
            self.dev[out] = self.array(x)
            return
        if e.op in ("reduce_sum", "reduce_mean"):
            # all blocks take part: a loop over x whose only work is the reduction
            self.loop(Loop(tuple(shape), [], [e]))
            return
        kind = e.op[len("reduce_") :]
        T = self.L.threads
        k = _Kernel(("row", "r", "acc", "sh", "tid", "w"))
        px = k.param(self.array(x))
        po = k.param(self.alloc(out))
        fold = f"dm.{'maximum' if kind == 'max' else 'minimum'}"

        # element r of row `row` of x viewed as (rows, R): its kept axes come from row
        kidx = [k.names.fresh(f"i{a}") for a in kept]
        ridx = [k.names.fresh(f"i{a}") for a in axes]
        row_lines, row_exprs = _unravel("row", [shape[a] for a in kept], kidx)

        def element(r: str) -> tuple[list[str], str]:
            lines, r_exprs = _unravel(r, [shape[a] for a in axes], ridx)
            at = dict(zip(kept, row_exprs)) | dict(zip(axes, r_exprs))
            return lines, f"{px}[{_offset([at[a] for a in range(len(shape))], shape)}]"

        first_lines, first = element("0" if R < T else "tid")
        next_lines, nxt = element("r")
        if R < T:  # short rows: a thread per row
            body = [f"for row in range(cuda.grid(1), {rows}, cuda.gridsize(1)):"]
            body += ["    " + ln for ln in row_lines + first_lines] + [f"    acc = {first}"]
            body += [f"    for r in range(1, {R}):"] + ["        " + ln for ln in next_lines]
            body += [f"        acc = {fold}(acc, {nxt})", f"    {po}[row] = acc"]
            grid, shared_bytes = self.blocks(rows), 0
            how = "a thread per row"
        else:  # long rows: a block per row, a tree in shared memory
            shared_lines, shared_bytes = _shared([("sh", T, x.dtype)])
            body = shared_lines + [
                "tid = cuda.threadIdx.x",
                f"for row in range(cuda.blockIdx.x, {rows}, cuda.gridDim.x):",
            ]
            body += ["    " + ln for ln in row_lines + first_lines] + [f"    acc = {first}"]
            body += [f"    for r in range(tid + {T}, {R}, {T}):"] + ["        " + ln for ln in next_lines]
            body += [
                f"        acc = {fold}(acc, {nxt})",
                "    sh[tid] = acc",
                "    cuda.syncthreads()",
                f"    w = {T // 2}",
                "    while w > 0:",
                "        if tid < w:",
                f"            sh[tid] = {fold}(sh[tid], sh[tid + w])",
                "        cuda.syncthreads()",
                "        w //= 2",
                "    if tid == 0:",
                f"        {po}[row] = sh[0]",
            ]
            grid = min(rows, self.L.max_blocks)
            how = "a block per row, a tree in shared memory"
        doc = f"{po}[row] = {kind} over axes {tuple(axes)!r} of {px} {shape!r}: {rows} rows of {R}, {how}."
        name = self.kernel(f"reduce_{kind}", k, doc, body)
        self.launch(name, grid, T, k.args, shared_bytes)

    # ------------------------------------------------------------------ gathers
    def gather(self, e: Eqn) -> None:
        (x,) = e.ins
        out = e.outs[0]
        k = _Kernel(("f",))
        px = k.param(self.array(x))
        po = k.param(self.alloc(out))
        lines, j = _unravel("f", list(out.shape), [k.names.fresh(f"j{a}") for a in range(len(out.shape))])
        if e.op == "transpose":
            perm = tuple(e.params["perm"])
            src = [j[perm.index(a)] for a in range(len(perm))]
            doc = f"{po} = {px}.transpose({perm!r}), {x.shape!r} -> {out.shape!r}."
        else:
            index = e.params["index"]
            src = [_affine(s, st, "0" if o is None else j[o]) for s, st, o in _getitem_map(index, x.shape, out.shape)]
            doc = f"{po} = {px}[{index_str(index)}], {x.shape!r} -> {out.shape!r}."
        at = _offset(src, x.shape)
        body = [f"for f in range(cuda.grid(1), {out.aval.size}, cuda.gridsize(1)):"]
        body += ["    " + ln for ln in _used(lines, [at])] + [f"    {po}[f] = {px}[{at}]"]
        name = self.kernel(e.op, k, doc, body)
        self.launch(name, self.blocks(out.aval.size), self.L.threads, k.args)

    def scatter(self, e: Eqn) -> None:
        (x,) = e.ins
        out = e.outs[0]
        index = e.params["index"]
        region = np.broadcast_to(np.zeros((), np.int8), out.shape)[tuple(_py_index(index))].shape
        target = self.alloc(out)
        self.fill(target, out.aval.size, 0, out.dtype)
        k = _Kernel(("f",))
        px, po = k.param(self.array(x)), k.param(target)
        lines, j = _unravel("f", list(region), [k.names.fresh(f"j{a}") for a in range(len(region))])
        dst = [_affine(s, st, "0" if o is None else j[o]) for s, st, o in _getitem_map(index, out.shape, region)]
        at = _offset(dst, out.shape)
        lead = len(region) - len(x.shape)
        xat = "f" if tuple(x.shape) == tuple(region) else _offset(j[lead:], x.shape)
        body = [f"for f in range(cuda.grid(1), {_size(region)}, cuda.gridsize(1)):"]
        body += ["    " + ln for ln in _used(lines, [at, xat])] + [f"    {po}[{at}] = {px}[{xat}]"]
        doc = f"{po}[{index_str(index)}] = {px} ({po} was filled with zeros)."
        name = self.kernel("scatter", k, doc, body)
        self.launch(name, self.blocks(_size(region)), self.L.threads, k.args)


def _used(lines: list[str], exprs: list[str]) -> list[str]:
    """The index statements among ``lines`` whose names ``exprs`` use."""
    words = {w for ex in exprs for w in re.findall(r"\w+", ex)}
    return [ln for ln in lines if ln.split(" = ")[0] in words]


def _py_index(index: tuple) -> list:
    return [slice(*i[1:]) if isinstance(i, tuple) and i and i[0] == "slice" else i for i in index]


def generate(prog: Program, fname: str, doc: str | None = None) -> str:
    """CUDA Python source computing ``prog``: kernels, and a host function ``fname`` that takes
    the program's inputs as numpy arrays/scalars and returns its outputs as a flat tuple.
    Control-flow regions (``if``/``for``/``while`` on tensors) are not compiled for CUDA: a
    program with one is a :class:`NotSupportedError` naming the construct and its line."""
    for e in prog.eqns:
        if is_region(e):
            raise NotSupportedError(
                f"the CUDA target does not compile control flow on tensors: {get_op(e.op).display} is kept as a "
                "region; use the numpy or Numba target (PYNATIVE or GRAPH mode on the CPU) for this program",
                e.loc,
            )
    return _Source(prog, fname, doc).source()
