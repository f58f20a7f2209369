"""Fused loop kernels compiled to machine code through LLVM directly (llvmlite), not Numba.

A split program's kernels (:func:`s2s_ad.backend.compile_split`) are written in a small
subset of Python: nested ``for v in range(N)`` loops, scalar loads and stores of array
elements (``a[i, j]``, ``a[i] += x``), arithmetic, comparisons, ``x if c else y``, numpy's
scalar casts (``np.float32(x)``) and the loop namespace's functions (``vm.tanh(x)``). This
module translates that subset into LLVM IR itself, a module per kernel and argument types,
and has LLVM optimise it and emit machine code. Numba reaches the same code through its
typing and lowering of general Python, which is most of its compile time; the translation
here is a walk of the kernel's syntax tree.

Semantics are Numba's (``error_model="numpy"``): float arithmetic is IEEE (no exception on a
division by zero); integers are 64-bit; ``float32 op float64`` is float64, ``int op float`` is
float64; a store converts to the array's dtype; results are boxed as Python scalars. The
vectorisable math functions are those of :mod:`s2s_ad.vecmath` (which :mod:`s2s_ad.cpumath`
compiles with Numba), translated from their Python source by the same walk, so one source
defines them for both compilers.

A compiled kernel is a Python function of the fast-call convention (:func:`entry_ir`) that
checks its arguments' types on every call; :class:`Kernel` compiles a kernel once per
argument types it meets, through the disk cache. A kernel outside the subset raises
:class:`Unsupported` and is compiled by Numba. ``S2S_AD_LOOPS=numba`` turns this compiler off.
"""

from __future__ import annotations

import ast
import ctypes
import ctypes.util
import functools
import hashlib
import inspect
import logging
import os
import platform
import struct
import sys
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from . import diskcache, vecmath
from .pyast import parse as parse_source
from .version import __version__

__all__ = ["ArgType", "Kernel", "Unsupported", "enabled", "kernel"]

log = logging.getLogger("s2s_ad")


class Unsupported(Exception):
    """A kernel uses a construct this compiler does not translate (Numba compiles it)."""


# LLVM's scalar types, by the dtype names used here
_LL = {"f32": "float", "f64": "double", "i64": "i64", "i1": "i1"}
_DTYPES = {"float32": "f32", "float64": "f64", "int64": "i64", "bool": "i1"}
# numpy's type numbers of those dtypes (int64 has two, long and long long: the one int64 is)
_TYPENUM = {name: np.dtype(name).num for name in _DTYPES}
_MEM = {"f32": "float", "f64": "double", "i64": "i64", "i1": "i8"}  # an element in memory
# numpy's scalar types as casts (np.int32 truncates a float to 32 bits, then widens)
_SCALAR_TYPES = {np.float32: "f32", np.float64: "f64", np.int64: "i64", np.int32: "i64", np.bool_: "i1"}


@dataclass(frozen=True)
class ArgType:
    """A kernel argument: an array of ``dtype`` with ``ndim`` dimensions, C-contiguous or not."""

    dtype: str
    ndim: int
    contig: bool

    @classmethod
    def of(cls, a: Any) -> ArgType:
        """The type of argument ``a``, as the kernel's entry checks it on every call: an
        ndarray (not a subclass) of a native float32, float64, int64 or bool dtype."""
        if type(a) is not np.ndarray:
            raise Unsupported(f"argument of type {type(a).__name__}")
        dt = a.dtype
        if dt.name not in _DTYPES or dt.num != _TYPENUM[dt.name] or dt.byteorder == ">":
            raise Unsupported(f"array of dtype {dt}")
        return cls(dt.name, a.ndim, bool(a.flags.c_contiguous))


def _float_const(t: str, value: float) -> str:
    # LLVM writes a float constant as the hexadecimal bits of the double with its value
    v = float(np.float32(value)) if t == "f32" else float(value)
    return f"0x{struct.unpack('<Q', struct.pack('<d', v))[0]:016X}"


@dataclass
class _Val:
    ref: str  # an SSA name (%x) or a constant
    t: str


@dataclass
class _Fn:
    """The state of one function's translation."""

    lines: list[str] = field(default_factory=list)
    n: int = 0
    vars: dict[str, str] = field(default_factory=dict)  # a local's type (its alloca is %var.NAME)
    allocas: list[str] = field(default_factory=list)

    def tmp(self) -> str:
        self.n += 1
        return f"%t{self.n}"

    def emit(self, text: str) -> str:
        name = self.tmp()
        self.lines.append(f"  {name} = {text}")
        return name

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")

    def local(self, name: str, t: str) -> None:
        """Declare local ``name`` of type ``t`` (its alloca ``%var.NAME``), once."""
        if name not in self.vars:
            self.vars[name] = t
            self.allocas.append(f"  %var.{name} = alloca {_LL[t]}")

    def terminate(self, line: str) -> None:
        """End the current block with ``line`` (a ``ret``); what follows is unreachable."""
        self.lines.append(line)
        self.label(f"dead{self.n}")
        self.n += 1

    def define(self, header: str) -> str:
        """The function's text, under ``header`` (``define ... {``)."""
        return "\n".join([header, "entry:", *self.allocas, *self.lines, "}"])


class _Module:
    """The functions of one LLVM module: kernels and the math functions they call."""

    def __init__(self) -> None:
        self.defs: list[str] = []
        self.declared: set[str] = set()
        self.helpers: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}  # (fn, arg types) -> (name, ret)

    def declare(self, decl: str) -> None:
        self.declared.add(decl)

    def text(self) -> str:
        return "\n".join(sorted(self.declared)) + "\n\n" + "\n\n".join(self.defs) + "\n"


# numpy's scalar functions that Numba computes with the C library's, by numpy's name
_LIBM = {
    "expm1": "expm1",
    "log1p": "log1p",
    "sinh": "sinh",
    "cosh": "cosh",
    "tan": "tan",
    "arcsin": "asin",
    "arccos": "acos",
    "arctan": "atan",
    "arcsinh": "asinh",
    "arccosh": "acosh",
    "arctanh": "atanh",
    "arctan2": "atan2",
    "sin": "sin",
    "cos": "cos",
    "exp": "exp",
    "log": "log",
    "tanh": "tanh",
    "log2": "log2",
    "log10": "log10",
    "exp2": "exp2",
}
LIBM_SYMBOLS = tuple(sorted({n + s for n in _LIBM.values() for s in ("", "f")} | {"erf", "erff", "erfc", "erfcf"}))


class _Translator:
    """Translates one function body (a kernel, or a scalar math function) into IR lines."""

    def __init__(self, mod: _Module, fn: _Fn, globals_: dict[str, Any]):
        self.mod = mod
        self.f = fn
        self.g = globals_
        self.ret: str | None = None  # a scalar function's return type, once seen
        self.results: list[str] | None = None  # a kernel's: the types of the tuple it returns
        self.arrays: dict[str, tuple[ArgType, str, list[str], list[str]]] = {}
        self.loop_vars: set[str] = set()  # the variables of range loops (never assigned otherwise)

    # ------------------------------------------------------------------ values and types
    def const(self, value: Any, t: str | None = None) -> _Val:
        if isinstance(value, (bool, np.bool_)):
            return _Val("true" if value else "false", "i1")
        if isinstance(value, (int, np.integer)) and t in (None, "i64"):
            return _Val(str(int(value)), "i64")
        if isinstance(value, np.float32):
            t = t or "f32"
        if isinstance(value, (int, float, np.integer, np.floating)):
            t = t or "f64"
            return _Val(_float_const(t, float(value)), t)
        raise Unsupported(f"constant {value!r}")

    def cast(self, v: _Val, t: str) -> _Val:
        if v.t == t:
            return v
        f = self.f
        src, dst = _LL[v.t], _LL[t]
        if v.t == "i1":
            if t == "i64":
                return _Val(f.emit(f"zext i1 {v.ref} to i64"), t)
            return _Val(f.emit(f"uitofp i1 {v.ref} to {dst}"), t)
        if t == "i1":
            if v.t == "i64":
                return _Val(f.emit(f"icmp ne i64 {v.ref}, 0"), t)
            return _Val(f.emit(f"fcmp une {src} {v.ref}, 0.0"), t)
        if v.t == "i64":
            return _Val(f.emit(f"sitofp i64 {v.ref} to {dst}"), t)
        if t == "i64":
            return _Val(f.emit(f"fptosi {src} {v.ref} to i64"), t)
        op = "fpext" if v.t == "f32" else "fptrunc"
        return _Val(f.emit(f"{op} {src} {v.ref} to {dst}"), t)

    def common(self, a: _Val, b: _Val) -> tuple[_Val, _Val, str]:
        """``a`` and ``b`` converted to one type (Numba's for arithmetic where they differ)."""
        t = self.unify(a.t, b.t) if a.t != b.t else a.t
        return self.cast(a, t), self.cast(b, t), t

    @staticmethod
    def unify(a: str, b: str) -> str:
        """Numba's result type of arithmetic on scalars of types a and b."""
        if a == b:
            return "i64" if a == "i1" else a
        if "f64" in (a, b) or ("f32" in (a, b) and "i64" in (a, b)):
            return "f64"
        if "f32" in (a, b):  # float32 with bool
            return "f32"
        return "i64"

    # ------------------------------------------------------------------ expressions
    def expr(self, node: ast.expr) -> _Val:
        f = self.f
        if isinstance(node, ast.Constant):
            return self.const(node.value)
        if isinstance(node, ast.Name):
            if node.id in f.vars:
                t = f.vars[node.id]
                return _Val(f.emit(f"load {_LL[t]}, ptr %var.{node.id}"), t)
            return self.const(self.resolve(node))
        if isinstance(node, ast.Attribute):
            return self.const(self.resolve(node))
        if isinstance(node, ast.BinOp):
            return self.binop(node.op, self.expr(node.left), self.expr(node.right))
        if isinstance(node, ast.UnaryOp):
            v = self.expr(node.operand)
            if isinstance(node.op, ast.USub):
                if v.t in ("f32", "f64"):
                    return _Val(f.emit(f"fneg {_LL[v.t]} {v.ref}"), v.t)
                v = self.cast(v, "i64")
                return _Val(f.emit(f"sub i64 0, {v.ref}"), "i64")
            if isinstance(node.op, ast.UAdd):
                return v
            if isinstance(node.op, ast.Not):
                v = self.cast(v, "i1")
                return _Val(f.emit(f"xor i1 {v.ref}, true"), "i1")
            raise Unsupported(f"operator {type(node.op).__name__}")
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise Unsupported("a chained comparison")
            return self.compare(node.ops[0], self.expr(node.left), self.expr(node.comparators[0]))
        if isinstance(node, ast.BoolOp):
            vals = [self.expr(v) for v in node.values]
            if any(v.t != "i1" for v in vals):  # Python's `or` of numbers gives one of them
                raise Unsupported("and/or of non-booleans")
            op = "and" if isinstance(node.op, ast.And) else "or"
            acc = vals[0]
            for v in vals[1:]:
                acc = _Val(f.emit(f"{op} i1 {acc.ref}, {v.ref}"), "i1")
            return acc
        if isinstance(node, ast.IfExp):
            c = self.cast(self.expr(node.test), "i1")
            a, b, t = self.common(self.expr(node.body), self.expr(node.orelse))
            return _Val(f.emit(f"select i1 {c.ref}, {_LL[t]} {a.ref}, {_LL[t]} {b.ref}"), t)
        if isinstance(node, ast.Subscript):
            ptr, t = self.element(node)
            if t == "i1":
                byte = f.emit(f"load i8, ptr {ptr}")
                return _Val(f.emit(f"icmp ne i8 {byte}, 0"), "i1")
            return _Val(f.emit(f"load {_LL[t]}, ptr {ptr}"), t)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise Unsupported(f"expression {type(node).__name__}")

    def resolve(self, node: ast.expr) -> Any:
        """The Python object a global name or attribute chain (``np.float32``, ``vm.tanh``) names."""
        if isinstance(node, ast.Name):
            if node.id in self.g:
                return self.g[node.id]
            if node.id in ("min", "max", "range", "abs"):
                return {"min": min, "max": max, "range": range, "abs": abs}[node.id]
            raise Unsupported(f"name {node.id}")
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if not hasattr(base, node.attr):
                raise Unsupported(f"attribute {node.attr}")
            return getattr(base, node.attr)
        raise Unsupported(f"expression {type(node).__name__}")

    def binop(self, op: ast.operator, a: _Val, b: _Val) -> _Val:
        f = self.f
        if isinstance(op, ast.Pow):
            return self.power(a, b)
        if isinstance(op, ast.Div):
            t = "f64" if a.t in ("i64", "i1") and b.t in ("i64", "i1") else self.unify(a.t, b.t)
            a, b = self.cast(a, t), self.cast(b, t)
            return _Val(f.emit(f"fdiv {_LL[t]} {a.ref}, {b.ref}"), t)
        bitwise = isinstance(op, (ast.BitAnd, ast.BitOr, ast.BitXor))
        t = "i1" if bitwise and a.t == b.t == "i1" else self.unify(a.t, b.t)
        a, b = self.cast(a, t), self.cast(b, t)
        if t in ("f32", "f64"):
            names = {ast.Add: "fadd", ast.Sub: "fsub", ast.Mult: "fmul"}
        else:
            names = {
                ast.Add: "add",
                ast.Sub: "sub",
                ast.Mult: "mul",
                ast.BitAnd: "and",
                ast.BitOr: "or",
                ast.BitXor: "xor",
                ast.LShift: "shl",
                ast.RShift: "ashr",
            }
        name = names.get(type(op))
        if name is None:
            raise Unsupported(f"operator {type(op).__name__} on {t}")
        return _Val(f.emit(f"{name} {_LL[t]} {a.ref}, {b.ref}"), t)

    def power(self, a: _Val, b: _Val) -> _Val:
        """``a ** b`` of a float: by repeated squaring for a literal positive integer exponent
        (as Numba multiplies), else the C library's ``pow``."""
        f = self.f
        if a.t not in ("f32", "f64") and b.t not in ("f32", "f64"):
            raise Unsupported("an integer power")
        if b.t == "i64" and b.ref[0] != "%" and int(b.ref) < 0:
            raise Unsupported("a negative integer power")  # Numba raises ZeroDivisionError at 0
        if b.t == "i64" and b.ref[0] != "%":
            k = int(b.ref)
            t = a.t if a.t in ("f32", "f64") else "f64"
            base, result = self.cast(a, t), None
            n = k
            while n:
                if n & 1:
                    result = base if result is None else _Val(f.emit(f"fmul {_LL[t]} {result.ref}, {base.ref}"), t)
                n >>= 1
                if n:
                    base = _Val(f.emit(f"fmul {_LL[t]} {base.ref}, {base.ref}"), t)
            return self.const(1.0, t) if result is None else result
        t = self.unify(a.t, b.t)
        return self.intrinsic("pow", [self.cast(a, t), self.cast(b, t)])

    def compare(self, op: ast.cmpop, a: _Val, b: _Val) -> _Val:
        a, b, t = self.common(a, b)
        if t in ("f32", "f64"):
            names = {ast.Lt: "olt", ast.Gt: "ogt", ast.LtE: "ole", ast.GtE: "oge", ast.Eq: "oeq", ast.NotEq: "une"}
            kind = "fcmp"
        else:
            names = {ast.Lt: "slt", ast.Gt: "sgt", ast.LtE: "sle", ast.GtE: "sge", ast.Eq: "eq", ast.NotEq: "ne"}
            kind = "icmp"
        name = names.get(type(op))
        if name is None:
            raise Unsupported(f"comparison {type(op).__name__}")
        return _Val(self.f.emit(f"{kind} {name} {_LL[t]} {a.ref}, {b.ref}"), "i1")

    def intrinsic(self, name: str, args: list[_Val]) -> _Val:
        t = args[0].t
        if t not in ("f32", "f64"):
            raise Unsupported(f"{name} of {t}")
        args = [self.cast(a, t) for a in args]
        ll = _LL[t]
        sig = ", ".join(ll for _ in args)
        self.mod.declare(f"declare {ll} @llvm.{name}.{t}({sig})")
        call_args = ", ".join(f"{ll} {a.ref}" for a in args)
        return _Val(self.f.emit(f"call {ll} @llvm.{name}.{t}({call_args})"), t)

    def call(self, node: ast.Call) -> _Val:
        if node.keywords:
            raise Unsupported("keyword arguments")
        fn = self.resolve(node.func)
        args = [self.expr(a) for a in node.args]
        f = self.f
        if fn in _SCALAR_TYPES and len(args) == 1:
            t = _SCALAR_TYPES[fn]
            a = args[0]
            if fn is np.int32 and a.t in ("f32", "f64"):  # truncated to 32 bits, then widened
                r = f.emit(f"fptosi {_LL[a.t]} {a.ref} to i32")
                return _Val(f.emit(f"sext i32 {r} to i64"), "i64")
            if a.ref[0] != "%" and a.t in ("f32", "f64") and t in ("f32", "f64"):
                return self.const(_from_bits_text(a.ref), t)  # a constant of another precision
            return self.cast(a, t)
        if fn in (min, max) and len(args) == 2:
            a, b, t = self.common(*args)
            # Python's: max(a, b) is b only where b > a (min: b < a)
            c = self.compare(ast.Gt() if fn is max else ast.Lt(), b, a)
            return _Val(f.emit(f"select i1 {c.ref}, {_LL[t]} {b.ref}, {_LL[t]} {a.ref}"), t)
        if fn is np.floor or fn is np.abs or fn is abs or fn is np.sqrt:
            if len(args) != 1:
                raise Unsupported("arguments")
            name = {np.floor: "floor", np.abs: "fabs", abs: "fabs", np.sqrt: "sqrt"}[fn]
            if args[0].t not in ("f32", "f64"):
                raise Unsupported(f"{name} of {args[0].t}")
            return self.intrinsic(name, args)
        if fn is np.copysign and len(args) == 2:
            return self.intrinsic("copysign", args)
        if fn is np.where and len(args) == 3:
            c = self.cast(args[0], "i1")
            a, b, t = self.common(args[1], args[2])
            return _Val(f.emit(f"select i1 {c.ref}, {_LL[t]} {a.ref}, {_LL[t]} {b.ref}"), t)
        if fn is np.sign and len(args) == 1 and args[0].t != "i1":
            # Numba's: 1 above zero, -1 below, else the argument itself (nan, and -0.0 kept)
            a = args[0]
            ll = _LL[a.t]
            one, minus = self.const(1, a.t), self.const(-1, a.t)
            gt, lt = self.compare(ast.Gt(), a, self.const(0, a.t)), self.compare(ast.Lt(), a, self.const(0, a.t))
            inner = f.emit(f"select i1 {lt.ref}, {ll} {minus.ref}, {ll} {a.ref}")
            return _Val(f.emit(f"select i1 {gt.ref}, {ll} {one.ref}, {ll} {inner}"), a.t)
        if (fn is np.maximum or fn is np.minimum) and len(args) == 2:
            return self.extremum(fn is np.maximum, *args)
        libm = _LIBM.get(getattr(fn, "__name__", ""))
        if libm is not None and isinstance(fn, np.ufunc) and len(args) == fn.nin:
            return self.libm_call(libm, args)
        return self.user_call(fn, args)

    def extremum(self, is_max: bool, a: _Val, b: _Val) -> _Val:
        """numpy's maximum (minimum) of two scalars: ``a`` where ``a >= b`` (``<=``), else
        ``b``; nan where either is nan (``a`` where it is)."""
        f = self.f
        a, b, t = self.common(a, b)
        ll = _LL[t]
        if t in ("f32", "f64"):
            c = f.emit(f"fcmp {'oge' if is_max else 'ole'} {ll} {a.ref}, {b.ref}")
            r = f.emit(f"select i1 {c}, {ll} {a.ref}, {ll} {b.ref}")
            nan = f.emit(f"fcmp uno {ll} {a.ref}, {a.ref}")
            return _Val(f.emit(f"select i1 {nan}, {ll} {a.ref}, {ll} {r}"), t)
        c = f.emit(f"icmp {'sge' if is_max else 'sle'} {ll} {a.ref}, {b.ref}")
        return _Val(f.emit(f"select i1 {c}, {ll} {a.ref}, {ll} {b.ref}"), t)

    def libm_call(self, name: str, args: list[_Val]) -> _Val:
        """A call of the C library's function ``name`` (``namef`` for float32 arguments;
        integers as float64), as Numba calls it for numpy's scalar function."""
        t = "f32" if all(a.t == "f32" for a in args) else "f64"
        args = [self.cast(a, t) for a in args]
        sym = name + ("f" if t == "f32" else "")
        ll = _LL[t]
        self.mod.declare(f"declare {ll} @{sym}({', '.join(ll for _ in args)}) nounwind readnone")
        return _Val(self.f.emit(f"call {ll} @{sym}({', '.join(f'{ll} {a.ref}' for a in args)})"), t)

    def user_call(self, fn: Any, args: list[_Val]) -> _Val:
        """A call of a loop-namespace function (``vm.NAME``: :func:`loop_functions`) or, in
        vecmath's functions, of another of them or of a bit cast."""
        f = self.f
        if fn is _SUM_ADD:
            acc, v = args
            if acc.t not in ("f32", "f64"):
                raise Unsupported("sum_add of a non-float")
            v = self.cast(v, acc.t)
            return _Val(f.emit(f"fadd reassoc {_LL[acc.t]} {acc.ref}, {v.ref}"), acc.t)
        if fn is np.square and len(args) == 1 and args[0].t != "i1":
            a = args[0]
            return _Val(f.emit(f"{'mul' if a.t == 'i64' else 'fmul'} {_LL[a.t]} {a.ref}, {a.ref}"), a.t)
        if isinstance(fn, _Special):  # the C library's, as Numba's math.erf
            return self.libm_call(fn.name, args)
        if isinstance(fn, _Vectorised) and len(args) == 1:
            t = args[0].t
            if t not in ("f32", "f64"):
                raise Unsupported(f"vm.{fn.name} of {t}")
            fn = getattr(vecmath, vecmath.VECTORISED[fn.name][t == "f64"])
        name = getattr(fn, "__name__", "")
        if getattr(fn, "__module__", None) == vecmath.__name__ and name in vecmath.BIT_CASTS:
            return self.bit_cast(name, args)
        if getattr(fn, "__module__", None) != vecmath.__name__ or name not in vecmath.SCALAR:
            raise Unsupported(f"call of {name or fn!r}")
        ref, ret = helper(self.mod, fn, tuple(a.t for a in args))
        call_args = ", ".join(f"{_LL[a.t]} {a.ref}" for a in args)
        return _Val(f.emit(f"call {_LL[ret]} {ref}({call_args})"), ret)

    def bit_cast(self, name: str, args: list[_Val]) -> _Val:
        """vecmath's bit casts (Numba intrinsics in cpumath): integers are 64-bit here, as
        there, so a float32's bits are sign-extended and a float32 takes the low 32 bits."""
        f = self.f
        (a,) = args
        if name == "_f32_from_bits":
            low = f.emit(f"trunc i64 {self.cast(a, 'i64').ref} to i32")
            return _Val(f.emit(f"bitcast i32 {low} to float"), "f32")
        if name == "_f64_from_bits":
            return _Val(f.emit(f"bitcast i64 {self.cast(a, 'i64').ref} to double"), "f64")
        if name == "_bits32":
            b = f.emit(f"bitcast float {self.cast(a, 'f32').ref} to i32")
            return _Val(f.emit(f"sext i32 {b} to i64"), "i64")
        return _Val(f.emit(f"bitcast double {self.cast(a, 'f64').ref} to i64"), "i64")

    # ------------------------------------------------------------------ arrays
    def element(self, node: ast.Subscript) -> tuple[str, str]:
        """A pointer to the element ``a[i, j, ...]`` and its type."""
        if not isinstance(node.value, ast.Name) or node.value.id not in self.arrays:
            raise Unsupported("indexing of a non-argument")
        at, data, dims, strides = self.arrays[node.value.id]
        idx = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if len(idx) != at.ndim:
            raise Unsupported("partial indexing")
        f = self.f
        vals = []
        for k, i in enumerate(idx):
            v = self.expr(i)
            if v.t == "i1":
                raise Unsupported("a boolean index")
            if v.t != "i64":
                raise Unsupported("a non-integer index")
            if v.ref[0] != "%" and int(v.ref) < 0:  # a negative constant counts from the end
                vals.append(f.emit(f"add i64 {dims[k]}, {v.ref}"))
            elif v.ref[0] == "%" and not (isinstance(i, ast.Name) and i.id in self.loop_vars):
                # an index that may be negative counts from the end, as Numba's (a loop's
                # variable, from 0 up, is not)
                neg = f.emit(f"icmp slt i64 {v.ref}, 0")
                wrapped = f.emit(f"add i64 {v.ref}, {dims[k]}")
                vals.append(f.emit(f"select i1 {neg}, i64 {wrapped}, i64 {v.ref}"))
            else:
                vals.append(v.ref)
        t = _DTYPES[at.dtype]
        if at.ndim == 0:
            return data, t
        if at.contig:  # the flat index, in elements
            flat = vals[0]
            for k in range(1, at.ndim):
                m = f.emit(f"mul nsw i64 {flat}, {dims[k]}")
                flat = f.emit(f"add nsw i64 {m}, {vals[k]}")
            return f.emit(f"getelementptr inbounds {_MEM[t]}, ptr {data}, i64 {flat}"), t
        off = "0"
        for k in range(at.ndim):
            m = f.emit(f"mul nsw i64 {vals[k]}, {strides[k]}")
            off = f.emit(f"add nsw i64 {off}, {m}")
        return f.emit(f"getelementptr inbounds i8, ptr {data}, i64 {off}"), t

    def store(self, target: ast.Subscript, v: _Val) -> None:
        ptr, t = self.element(target)
        v = self.cast(v, t)
        if t == "i1":
            byte = self.f.emit(f"zext i1 {v.ref} to i8")
            self.f.lines.append(f"  store i8 {byte}, ptr {ptr}")
        else:
            self.f.lines.append(f"  store {_LL[t]} {v.ref}, ptr {ptr}")

    # ------------------------------------------------------------------ statements
    def assign_var(self, name: str, v: _Val) -> None:
        f = self.f
        if name in self.loop_vars:
            raise Unsupported(f"an assignment to the loop variable {name}")
        f.local(name, v.t)
        t = f.vars[name]
        if t != v.t:
            # Numba unifies a variable's types; here a variable keeps its first type where the
            # later value converts to it without loss, else the kernel is Numba's
            if self.unify(t, v.t) != t:
                raise Unsupported(f"variable {name} changes type ({t} to {v.t})")
            v = self.cast(v, t)
        f.lines.append(f"  store {_LL[t]} {v.ref}, ptr %var.{name}")

    def body(self, stmts: list[ast.stmt]) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s: ast.stmt) -> None:
        f = self.f
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
            return  # a docstring
        if isinstance(s, ast.Assign):
            if len(s.targets) != 1:
                raise Unsupported("chained assignment")
            (target,) = s.targets
            v = self.expr(s.value)
            if isinstance(target, ast.Name):
                self.assign_var(target.id, v)
            elif isinstance(target, ast.Subscript):
                self.store(target, v)
            else:
                raise Unsupported("assignment target")
            return
        if isinstance(s, ast.AugAssign):
            if isinstance(s.target, ast.Name):
                cur = self.expr(ast.Name(s.target.id, ast.Load()))
                self.assign_var(s.target.id, self.binop(s.op, cur, self.expr(s.value)))
            elif isinstance(s.target, ast.Subscript):
                ptr, t = self.element(s.target)
                if t == "i1":
                    raise Unsupported("augmented assignment of a bool element")
                cur = _Val(f.emit(f"load {_LL[t]}, ptr {ptr}"), t)
                self.store(s.target, self.binop(s.op, cur, self.expr(s.value)))
            else:
                raise Unsupported("assignment target")
            return
        if isinstance(s, ast.For):
            self.loop(s)
            return
        if isinstance(s, ast.Return) and self.results is not None:
            # a kernel's results: a tuple of scalars, stored through its output pointers
            if not isinstance(s.value, ast.Tuple) or self.results:
                raise Unsupported("a kernel's return of no tuple, or a second return")
            for k, e in enumerate(s.value.elts):
                v = self.expr(e)
                self.results.append(v.t)
                f.lines.append(f"  store {_LL[v.t]} {v.ref}, ptr %out{k}")
            f.terminate("  ret void")
            return
        if isinstance(s, ast.Return):
            if s.value is None:
                raise Unsupported("a bare return")
            v = self.expr(s.value)
            if self.ret is None:
                self.ret = v.t
            v = self.cast(v, self.ret)
            f.terminate(f"  ret {_LL[self.ret]} {v.ref}")
            return
        if isinstance(s, ast.Pass):
            return
        if isinstance(s, ast.If):
            k = f.n
            f.n += 1
            c = self.cast(self.expr(s.test), "i1")
            f.lines.append(f"  br i1 {c.ref}, label %then{k}, label %else{k}")
            f.label(f"then{k}")
            self.body(s.body)
            f.lines.append(f"  br label %endif{k}")
            f.label(f"else{k}")
            self.body(s.orelse)
            f.lines.append(f"  br label %endif{k}")
            f.label(f"endif{k}")
            return
        raise Unsupported(f"statement {type(s).__name__}")

    def loop(self, s: ast.For) -> None:
        f = self.f
        if s.orelse or not isinstance(s.target, ast.Name):
            raise Unsupported("for-else or an unpacking loop")
        it = s.iter
        if not (isinstance(it, ast.Call) and self.resolve(it.func) is range and len(it.args) == 1 and not it.keywords):
            raise Unsupported("a loop over something but range(n)")
        n = self.expr(it.args[0])
        if n.t != "i64":
            raise Unsupported("range of a non-integer")
        k = f.n
        f.n += 1
        var = s.target.id
        self.loop_vars.add(var)
        f.local(var, "i64")  # (a second loop may use the same name)
        if f.vars[var] != "i64":
            raise Unsupported(f"loop variable {var} of another type")
        head, body, done = f"loop{k}", f"body{k}", f"done{k}"
        f.lines.append(f"  store i64 0, ptr %var.{var}")
        f.lines.append(f"  br label %{head}")
        f.label(head)
        i = f.emit(f"load i64, ptr %var.{var}")
        c = f.emit(f"icmp slt i64 {i}, {n.ref}")
        f.lines.append(f"  br i1 {c}, label %{body}, label %{done}")
        f.label(body)
        self.body(s.body)
        i2 = f.emit(f"load i64, ptr %var.{var}")
        nxt = f.emit(f"add nsw i64 {i2}, 1")
        f.lines.append(f"  store i64 {nxt}, ptr %var.{var}")
        f.lines.append(f"  br label %{head}")
        f.label(done)


def _from_bits_text(ref: str) -> float:
    return struct.unpack("<d", struct.pack("<Q", int(ref, 16)))[0]


@functools.cache
def _parse(py: Any) -> ast.FunctionDef:
    """The syntax tree of vecmath function ``py`` (read once: the translation only reads it)."""
    try:
        tree = parse_source(textwrap.dedent(inspect.getsource(py)))
    except (OSError, TypeError) as err:  # no source file (a frozen install), or one edited since
        raise Unsupported(f"the source of {py.__name__} is unavailable ({err})") from err
    fn = tree.body[0]
    if not isinstance(fn, ast.FunctionDef):
        raise Unsupported("not a function")
    return fn


def helper(mod: _Module, py: Any, arg_types: tuple[str, ...]) -> tuple[str, str]:
    """The IR function for vecmath's scalar function ``py`` at ``arg_types`` (translated once
    per module): its name and return type."""
    key = (py.__name__, arg_types)
    if key in mod.helpers:
        return mod.helpers[key]
    node = _parse(py)
    if len(node.args.args) != len(arg_types):
        raise Unsupported(f"call of {py.__name__} with {len(arg_types)} arguments")
    name = f"@{py.__name__}.{'.'.join(arg_types)}"
    f = _Fn()
    tr = _Translator(mod, f, py.__globals__)
    params = []
    for a, t in zip(node.args.args, arg_types, strict=True):
        params.append(f"{_LL[t]} %arg.{a.arg}")
        tr.assign_var(a.arg, _Val(f"%arg.{a.arg}", t))
    tr.body(node.body)
    if tr.ret is None:
        raise Unsupported(f"{py.__name__} returns nothing")
    f.lines.append("  unreachable")
    mod.defs.append(f.define(f"define internal {_LL[tr.ret]} {name}({', '.join(params)}) alwaysinline nounwind {{"))
    mod.helpers[key] = (name, tr.ret)
    return name, tr.ret


def kernel_ir(
    mod: _Module, src: str, symbol: str, argtypes: tuple[ArgType, ...], namespace: dict[str, Any]
) -> list[str]:
    """Add the kernel of Python source ``src`` for ``argtypes`` to ``mod``: an internal
    function ``void SYMBOL(ptr a0, ..., ptr out0, ...)`` taking numpy array objects
    (``PyArrayObject *``) and, for each scalar of the tuple the kernel returns, a pointer it
    stores it through. The types of those results."""
    tree = parse_source(src)
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if len(node.args.args) != len(argtypes):
        raise Unsupported("argument count")
    f = _Fn()
    tr = _Translator(mod, f, namespace)
    params = []
    for k, (a, at) in enumerate(zip(node.args.args, argtypes, strict=True)):
        p = f"%p{k}"
        params.append(f"ptr {p}")
        # the array object's data, dimensions and strides (fields checked by _abi_ok)
        data = f.emit(f"load ptr, ptr {f.emit(f'getelementptr i8, ptr {p}, i64 {_DATA}')}")
        dims, strides = [], []
        if at.ndim:
            dimp = f.emit(f"load ptr, ptr {f.emit(f'getelementptr i8, ptr {p}, i64 {_DIMS}')}")
            stp = f.emit(f"load ptr, ptr {f.emit(f'getelementptr i8, ptr {p}, i64 {_STRIDES}')}")
            for d in range(at.ndim):
                dims.append(f.emit(f"load i64, ptr {f.emit(f'getelementptr i64, ptr {dimp}, i64 {d}')}"))
                strides.append(f.emit(f"load i64, ptr {f.emit(f'getelementptr i64, ptr {stp}, i64 {d}')}"))
        tr.arrays[a.arg] = (at, data, dims, strides)
    tr.results = []
    tr.body(node.body)
    params += [f"ptr %out{k}" for k in range(len(tr.results))]
    f.lines.append("  ret void")
    mod.defs.append(f.define(f"define internal void @{symbol}({', '.join(params)}) nounwind {{"))
    return tr.results


# ----------------------------------------------------------------------------- the namespace
@dataclass(frozen=True)
class _Vectorised:
    """``vm.NAME`` of a function vecmath implements (``VECTORISED``)."""

    name: str


@dataclass(frozen=True)
class _Special:
    """``vm.NAME`` of a function numpy lacks (``SPECIAL``): the C library's."""

    name: str


_SUM_ADD = object()  # vm.sum_add: a float addition LLVM may reassociate


@functools.cache
def loop_functions() -> dict[str, Any]:
    """The globals of a kernel as translated here: ``np``, and ``vm`` as
    :func:`s2s_ad.codegen.loop_namespace` builds it from the op table (vecmath's function
    where it has one, else numpy's), without the Numba functions that one holds."""
    from .primitives import ELEMENTWISE  # the op table (SymPy), needed by translation only

    vm = SimpleNamespace(sum_add=_SUM_ADD)
    for op in ELEMENTWISE:
        if op.function is None:
            continue
        if op.function in vecmath.VECTORISED:
            setattr(vm, op.function, _Vectorised(op.function))
        elif op.function in vecmath.SPECIAL:
            setattr(vm, op.function, _Special(op.function))
        else:
            setattr(vm, op.function, op.host_function())
    return {"np": np, "vm": vm}


# ----------------------------------------------------------------------------- the entry
# numpy's array object (PyArrayObject) and dtype (PyArray_Descr) fields that the kernels
# read, by byte offset; checked against the running numpy by _abi_ok before any use
_DATA, _ND, _DIMS, _STRIDES, _DESCR, _FLAGS = 16, 24, 32, 40, 56, 64
_TYPE_NUM, _BYTEORDER = 28, 26
_C_CONTIGUOUS = 0x0001  # NPY_ARRAY_C_CONTIGUOUS
_METH_FASTCALL = 0x0080

_DECLS = (
    "@_Py_NoneStruct = external global i8",
    "@s2s_ad_ndarray = external global i8",  # numpy.ndarray, the type object
    "declare ptr @PyObject_Vectorcall(ptr, ptr, i64, ptr)",
    "declare ptr @PyEval_SaveThread()",
    "declare void @PyEval_RestoreThread(ptr)",
    "declare void @Py_IncRef(ptr)",
    "declare ptr @PyTuple_New(i64)",
    "declare i32 @PyTuple_SetItem(ptr, i64, ptr)",
    "declare ptr @PyFloat_FromDouble(double)",
    "declare ptr @PyLong_FromLongLong(i64)",
    "declare ptr @PyBool_FromLong(i64)",
)
# the C-API functions the entries call (declared above), found in this process when loaded
_C_API = (
    "PyObject_Vectorcall",
    "PyEval_SaveThread",
    "PyEval_RestoreThread",
    "Py_IncRef",
    "PyTuple_New",
    "PyTuple_SetItem",
    "PyFloat_FromDouble",
    "PyLong_FromLongLong",
    "PyBool_FromLong",
)


# how the entry boxes a kernel's scalar result: the C-API function and the type it takes
_BOX = {
    "f64": ("PyFloat_FromDouble", "double"),
    "i64": ("PyLong_FromLongLong", "i64"),
    "i1": ("PyBool_FromLong", "i64"),
}
_BOX["f32"] = _BOX["f64"]  # a float32 is a Python float, as Numba boxes it


def entry_ir(symbol: str, body: str, argtypes: tuple[ArgType, ...], results: list[str] = ()) -> str:
    """``PyObject *SYMBOL(PyObject *miss, PyObject *const *args, Py_ssize_t n)``: a Python
    function of the fast-call convention that checks its arguments' types (an ndarray of the
    dtype, number of dimensions and C-contiguity ``body`` was compiled for), then runs
    ``body`` without the GIL and returns None. Arguments of any other types go to ``miss``
    (the function object's ``self``, a Python callable), which compiles the kernel for them."""
    lines = [
        f"define ptr @{symbol}(ptr %self, ptr %args, i64 %n) nounwind {{",
        "entry:",
        f"  %n.ok = icmp eq i64 %n, {len(argtypes)}",
        "  br i1 %n.ok, label %check0, label %miss",
    ]
    for k, at in enumerate(argtypes):
        q = f"%a{k}"
        lines += [
            f"check{k}:",
            f"  %a{k}.p = getelementptr ptr, ptr %args, i64 {k}",
            f"  {q} = load ptr, ptr %a{k}.p",
            f"  %a{k}.tp = getelementptr i8, ptr {q}, i64 8",
            f"  %a{k}.type = load ptr, ptr %a{k}.tp",
            f"  %a{k}.c1 = icmp eq ptr %a{k}.type, @s2s_ad_ndarray",
            f"  br i1 %a{k}.c1, label %check{k}.fields, label %miss",
            f"check{k}.fields:",
            f"  %a{k}.ndp = getelementptr i8, ptr {q}, i64 {_ND}",
            f"  %a{k}.nd = load i32, ptr %a{k}.ndp",
            f"  %a{k}.c2 = icmp eq i32 %a{k}.nd, {at.ndim}",
            f"  %a{k}.dp = getelementptr i8, ptr {q}, i64 {_DESCR}",
            f"  %a{k}.d = load ptr, ptr %a{k}.dp",
            f"  %a{k}.tnp = getelementptr i8, ptr %a{k}.d, i64 {_TYPE_NUM}",
            f"  %a{k}.tn = load i32, ptr %a{k}.tnp",
            f"  %a{k}.c3 = icmp eq i32 %a{k}.tn, {_TYPENUM[at.dtype]}",
            f"  %a{k}.bop = getelementptr i8, ptr %a{k}.d, i64 {_BYTEORDER}",
            f"  %a{k}.bo = load i8, ptr %a{k}.bop",
            f"  %a{k}.c4 = icmp ne i8 %a{k}.bo, {ord('>')}",
            f"  %a{k}.fp = getelementptr i8, ptr {q}, i64 {_FLAGS}",
            f"  %a{k}.f = load i32, ptr %a{k}.fp",
            f"  %a{k}.fc = and i32 %a{k}.f, {_C_CONTIGUOUS}",
            f"  %a{k}.c5 = icmp {'ne' if at.contig else 'eq'} i32 %a{k}.fc, 0",
            f"  %a{k}.ok1 = and i1 %a{k}.c2, %a{k}.c3",
            f"  %a{k}.ok2 = and i1 %a{k}.c4, %a{k}.c5",
            f"  %a{k}.ok = and i1 %a{k}.ok1, %a{k}.ok2",
            f"  br i1 %a{k}.ok, label %{'check' + str(k + 1) if k + 1 < len(argtypes) else 'run'}, label %miss",
        ]
    if not argtypes:
        lines[3] = "  br i1 %n.ok, label %run, label %miss"
    call_args = ", ".join([f"ptr %a{k}" for k in range(len(argtypes))] + [f"ptr %r{k}" for k in range(len(results))])
    lines += [
        "run:",
        *(f"  %r{k} = alloca {_LL[t]}" for k, t in enumerate(results)),
        "  %ts = call ptr @PyEval_SaveThread()",
        f"  call void @{body}({call_args})",
        "  call void @PyEval_RestoreThread(ptr %ts)",
    ]
    if results:  # a tuple of Python scalars
        lines.append(f"  %tuple = call ptr @PyTuple_New(i64 {len(results)})")
        for k, t in enumerate(results):
            box, arg = _BOX[t]
            lines.append(f"  %r{k}.v = load {_LL[t]}, ptr %r{k}")
            v = f"%r{k}.v"
            if t == "f32":
                lines.append(f"  %r{k}.d = fpext float %r{k}.v to double")
                v = f"%r{k}.d"
            elif t == "i1":
                lines.append(f"  %r{k}.l = zext i1 %r{k}.v to i64")
                v = f"%r{k}.l"
            lines.append(f"  %r{k}.o = call ptr @{box}({arg} {v})")
            lines.append(f"  %r{k}.s = call i32 @PyTuple_SetItem(ptr %tuple, i64 {k}, ptr %r{k}.o)")
        lines.append("  ret ptr %tuple")
    else:
        lines += ["  call void @Py_IncRef(ptr @_Py_NoneStruct)", "  ret ptr @_Py_NoneStruct"]
    lines += [
        "miss:",
        "  %r = call ptr @PyObject_Vectorcall(ptr %self, ptr %args, i64 %n, ptr null)",
        "  ret ptr %r",
        "}",
    ]
    return "\n".join(lines)


def kernel_module(src: str, symbol: str, argtypes: tuple[ArgType, ...], namespace: dict[str, Any]) -> str:
    """The LLVM IR of the kernel of Python source ``src`` for ``argtypes``: its body
    (internal) and its entry ``symbol`` (:func:`entry_ir`)."""
    mod = _Module()
    body = f"{symbol}.body"
    results = kernel_ir(mod, src, body, argtypes, namespace)
    for d in _DECLS:
        mod.declare(d)
    mod.defs.append(entry_ir(symbol, body, argtypes, results))
    return mod.text()


# ----------------------------------------------------------------------------- the machine
def _abi_ok() -> bool:
    """Whether numpy's array and dtype objects have the fields the kernels read where they
    expect them (checked on arrays of every layout and dtype they take)."""
    if sys.byteorder != "little" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return False
    samples = [
        np.zeros((3, 4), np.float32),
        np.zeros((4, 3), np.float64).T,
        np.zeros(5, bool),
        np.zeros((2, 6), np.int64)[:, ::2],
    ]
    for a in samples:
        p = id(a)

        def ptr(off: int, base: int = p) -> int | None:
            return ctypes.c_void_p.from_address(base + off).value

        shape = [ctypes.c_int64.from_address(ptr(_DIMS) + 8 * d).value for d in range(a.ndim)]  # type: ignore[operator]
        strides = [ctypes.c_int64.from_address(ptr(_STRIDES) + 8 * d).value for d in range(a.ndim)]  # type: ignore[operator]
        descr = ptr(_DESCR)
        if (
            ptr(8) != id(np.ndarray)
            or ptr(_DATA) != a.ctypes.data
            or ctypes.c_int32.from_address(p + _ND).value != a.ndim
            or tuple(shape) != a.shape
            or tuple(strides) != a.strides
            or descr != id(a.dtype)
            or ctypes.c_int32.from_address(descr + _TYPE_NUM).value != a.dtype.num  # type: ignore[operator]
            or bool(ctypes.c_int32.from_address(p + _FLAGS).value & _C_CONTIGUOUS) != a.flags.c_contiguous
        ):
            return False
    return True


class _MethodDef(ctypes.Structure):
    _fields_ = [
        ("ml_name", ctypes.c_char_p),
        ("ml_meth", ctypes.c_void_p),
        ("ml_flags", ctypes.c_int),
        ("ml_doc", ctypes.c_char_p),
    ]


class _Machine:
    """LLVM for this process: the host's target machine and the execution engine that holds
    every kernel's machine code (added, never removed: a kernel's code lives as long as the
    process, as Numba's does)."""

    def __init__(self) -> None:
        import llvmlite
        import llvmlite.binding as llvm

        self.llvm = llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self.cpu = llvm.get_host_cpu_name()
        self.features = llvm.get_host_cpu_features().flatten()
        target = llvm.Target.from_default_triple()
        self.tm = target.create_target_machine(cpu=self.cpu, features=self.features, opt=3, codemodel="jitdefault")
        # an LLVM context of its own: LLVM's global one is Numba's, which another thread may be
        # compiling in (a context is not thread-safe; this one is used under self.lock only)
        self.context = llvm.create_context()
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly("", context=self.context), self.tm)
        api = ctypes.pythonapi
        for fn in _C_API:
            llvm.add_symbol(fn, ctypes.cast(getattr(api, fn), ctypes.c_void_p).value)
        libm = ctypes.CDLL(ctypes.util.find_library("m") or None)
        for fn in LIBM_SYMBOLS:  # the C library's functions that kernels may call
            addr = getattr(libm, fn, None)
            if addr is not None:
                llvm.add_symbol(fn, ctypes.cast(addr, ctypes.c_void_p).value)
        llvm.add_symbol("_Py_NoneStruct", id(None))
        llvm.add_symbol("s2s_ad_ndarray", id(np.ndarray))
        self.new_function = api.PyCFunction_NewEx
        self.new_function.restype = ctypes.py_object
        self.new_function.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
        self.lock = threading.Lock()
        here = Path(__file__).resolve().parent
        sources = hashlib.sha256()
        for f in ("llvmloops.py", "vecmath.py", "primitives.py"):
            sources.update((here / f).read_bytes())
        self.key = "|".join(
            [
                f"s2s_ad {__version__}",
                f"llvmlite {llvmlite.__version__} llvm {llvm.llvm_version_info}",
                f"numpy {np.__version__}",
                f"python {sys.version}",
                platform.machine(),
                self.cpu,
                self.features,
                sources.hexdigest(),
            ]
        )

    def compile(self, text: str) -> bytes:
        """The object code of the module ``text`` (LLVM IR), optimised as Numba optimises
        (level 3, loops vectorised)."""
        llvm = self.llvm
        with self.lock:  # one target machine for every thread
            mod = llvm.parse_assembly(text, context=self.context)
            mod.verify()
            pto = llvm.create_pipeline_tuning_options(speed_level=3)
            pto.loop_vectorization = True
            pto.slp_vectorization = False  # as Numba's default: no gain in the loops, 40% more compile time
            pb = llvm.create_pass_builder(self.tm, pto)
            pb.getModulePassManager().run(mod, pb)
            return self.tm.emit_object(mod)

    def load(self, obj: bytes, symbol: str, miss: Callable) -> Callable:
        """The Python function ``symbol`` of object code ``obj``, whose arguments of other
        types go to ``miss``."""
        llvm = self.llvm
        with self.lock:
            self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self.engine.finalize_object()
            addr = self.engine.get_function_address(symbol)
        if not addr:
            raise RuntimeError(f"s2s_ad: the machine code of {symbol} has no such function")
        name = symbol.encode()
        method = _MethodDef(name, addr, _METH_FASTCALL, None)
        fn = self.new_function(ctypes.addressof(method), miss, None)
        miss.keep = (method, name)  # the definition lives as long as the function (which holds miss)
        return fn


_machine: _Machine | None = None
_machine_lock = threading.Lock()


def machine() -> _Machine:
    global _machine
    with _machine_lock:
        if _machine is None:
            _machine = _Machine()
        return _machine


_ENABLED: bool | None = None


def enabled() -> bool:
    """Whether split programs' kernels compile here (``S2S_AD_LOOPS``: ``llvm``, the default,
    or ``numba``): also needs llvmlite (Numba's own dependency) and numpy's object layout as
    checked by :func:`_abi_ok`."""
    global _ENABLED
    if os.environ.get("S2S_AD_LOOPS", "llvm").strip().lower() == "numba":
        return False
    if _ENABLED is None:
        try:
            import llvmlite.binding as llvm  # Numba's own dependency, so present with it

            # the new pass manager's interface (llvmlite 0.44) and opaque pointers (LLVM 15)
            _ENABLED = hasattr(llvm, "create_pass_builder") and llvm.llvm_version_info >= (15,) and _abi_ok()
        except ImportError:
            _ENABLED = False
    return _ENABLED


# ----------------------------------------------------------------------------- kernels
class _Miss:
    """The callable a kernel's entry hands arguments of other types to."""

    def __init__(self, kernel: Kernel, types: tuple[ArgType, ...]):
        self.kernel = kernel
        self.types = types
        self.keep: Any = None

    def __call__(self, *args: Any) -> Any:
        return self.kernel.run(args, self.types)


class Kernel:
    """A fused-loop kernel (its source), compiled once per argument types met: by LLVM here
    (through the disk cache, as object code), or by Numba where the translation does not
    cover the kernel or the types."""

    def __init__(self, src: str, name: str, numba: Callable[[], Callable]):
        self.src = src
        self.name = name
        self._numba = numba  # Numba's compiled kernel (made when first needed)
        self.specs: dict[tuple[ArgType, ...] | None, Callable] = {}
        self.lock = threading.Lock()

    def function(self, args: tuple) -> Callable:
        """The compiled function for the types of ``args`` (compiled now if new)."""
        try:
            types: tuple[ArgType, ...] | None = tuple(ArgType.of(a) for a in args)
        except Unsupported:
            types = None
        fn = self.specs.get(types)
        if fn is None:
            with self.lock:
                fn = self.specs.get(types)
                if fn is None:
                    fn = self.specs[types] = self._build(types)
        return fn

    def run(self, args: tuple, failed: tuple[ArgType, ...] | None = None) -> Any:
        fn = self.function(args)
        if failed is not None and self.specs.get(failed) is fn:
            # the entry for these types refused them: the check here and there disagree
            fn = self._numba()
        return fn(*args)

    def _build(self, types: tuple[ArgType, ...] | None) -> Callable:
        if types is None:
            return self._numba()
        m = machine()
        digest = hashlib.sha256(f"{m.key}\0{self.src}\0{types!r}".encode()).hexdigest()[:20]
        symbol = f"{self.name}_{digest}"
        obj = _unsealed(diskcache.read_machine_code(symbol))
        if obj is None:
            try:
                text = kernel_module(self.src, symbol, types, loop_functions())
            except Unsupported as err:
                log.debug("kernel %s compiles with Numba: %s", self.name, err)
                return self._numba()
            try:
                obj = m.compile(text)
            except RuntimeError as err:  # LLVM rejected the translation: a defect here, not the user's
                log.warning("kernel %s: LLVM could not compile its translation (%s); Numba compiles it", self.name, err)
                return self._numba()
            diskcache.write_machine_code(symbol, _sealed(obj))
        return m.load(obj, symbol, _Miss(self, types))


def _sealed(obj: bytes) -> bytes:
    """Object code with its SHA-256 in front, as stored in the disk cache."""
    return hashlib.sha256(obj).digest() + obj


def _unsealed(data: bytes | None) -> bytes | None:
    """The object code of a stored entry; ``None`` for none, or for a damaged one (LLVM is
    not given a file that is not what was written: it is compiled again, and overwritten)."""
    if data is None or len(data) < 32 or hashlib.sha256(data[32:]).digest() != data[:32]:
        return None
    return data[32:]


_KERNELS: dict[tuple[str, str], Kernel] = {}


def kernel(src: str, name: str, numba: Callable[[], Callable]) -> Kernel:
    """The kernel of source ``src`` (shared by every program that has it); ``numba`` makes
    Numba's compiled kernel, for what the translation does not cover."""
    k = _KERNELS.get((src, name))
    if k is None:
        k = _KERNELS.setdefault((src, name), Kernel(src, name, numba))
    return k
