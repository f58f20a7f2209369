"""The bridge between IR and SymPy.

``eqn_to_sympy`` applies an op's scalar formula to SymPy arguments (``lit_to_sympy`` turns a
literal into a SymPy number); ``to_ir`` prints SymPy expressions back as IR equations of table
ops. Together they let elementwise derivatives come from SymPy and let clusters of
elementwise equations (:mod:`s2s_ad.clusters` builds their expressions) be differentiated,
simplified and ``cse``'d as one expression.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .ir import Atom, Builder, Lit
from .lazy import lazy_module, resolve
from .primitives import ATOM, SPECIAL_NS, get_op, numpy_literal, print_elementwise, sympy_heads

sp = lazy_module("sympy")  # imported when a formula is first built


def lit_to_sympy(lit: Lit) -> sp.Expr:
    """The SymPy number of a literal (an Integer where the value is whole, so that SymPy's
    algebra stays exact)."""
    v = lit.value
    if isinstance(v, bool):
        return sp.Integer(int(v))
    if float(v).is_integer():
        return sp.Integer(int(v))
    return sp.Float(float(v))


def eqn_to_sympy(op: str, args: list[sp.Expr]) -> sp.Expr:
    """The elementwise ``op`` applied to SymPy ``args`` by its scalar formula."""
    return resolve(get_op(op).formula)(*args)


class _Emitter:
    def __init__(self, b: Builder, env: Mapping[sp.Symbol, Atom], dtype: np.dtype):
        self.b = b
        self.env = env
        self.dtype = np.dtype(dtype)
        self.memo: dict[sp.Expr, Atom] = {}

    def lit(self, v: float) -> Lit:
        return Lit(v, self.dtype)

    def call(self, op: str, *xs: Atom) -> Atom:
        """``op`` applied to ``xs``; folded to a literal when every input is one (computed as
        the compiled code would compute it: numpy in the dtype, inf and nan included)."""
        if all(isinstance(x, Lit) for x in xs):
            return self.lit(numpy_value(op, list(xs), self.dtype))
        return self.b.bind1(op, *xs)

    def bin(self, op: str, x: Atom, y: Atom) -> Atom:
        return self.call(op, x, y)

    def un(self, op: str, x: Atom) -> Atom:
        return self.call(op, x)

    def go(self, e: sp.Expr) -> Atom:
        if e in self.memo:
            return self.memo[e]
        r = self._go(e)
        self.memo[e] = r
        return r

    def _go(self, e: sp.Expr) -> Atom:
        if e.is_Symbol:
            return self.env[e]
        if e.is_number and (e.is_Atom or e.has(sp.I, sp.zoo)):
            return self.lit(real_number(e))
        if e.is_Add:
            pos, neg = [], []
            for t in e.args:
                (neg if t.could_extract_minus_sign() else pos).append(t)
            if pos:
                acc = self.go(pos[0])
                for t in pos[1:]:
                    acc = self.bin("add", acc, self.go(t))
            else:
                acc = self.un("neg", self.go(-neg[0]))
                neg = neg[1:]
            for t in neg:
                acc = self.bin("sub", acc, self.go(-t))
            return acc
        if e.is_Mul:
            coeff, factors = e.as_coeff_mul()
            num, den = [], []
            for f in factors:
                if f.is_Pow and f.exp.is_Rational and f.exp.is_negative:
                    den.append(f.base ** (-f.exp))
                else:
                    num.append(f)
            sign = coeff < 0
            coeff = abs(coeff)
            den_lit = None
            if coeff != 1:
                if coeff.is_Rational and coeff.p == 1:
                    den_lit = self.lit(float(coeff.q))
                else:
                    num.insert(0, coeff)
            acc = self.go(num[0]) if num else self.lit(1.0)
            for f in num[1:]:
                acc = self.bin("mul", acc, self.go(f))
            if den or den_lit is not None:
                d = self.go(den[0]) if den else den_lit
                for f in den[1:]:
                    d = self.bin("mul", d, self.go(f))
                if den and den_lit is not None:
                    d = self.bin("mul", d, den_lit)
                acc = self.bin("div", acc, d)
            return self.un("neg", acc) if sign else acc
        if e.is_Pow:
            base, ex = e.base, e.exp
            if base is sp.E:
                return self.un("exp", self.go(ex))
            if ex.is_number:
                if ex == 2:
                    return self.un("square", self.go(base))
                if ex == sp.Rational(1, 2):
                    return self.un("sqrt", self.go(base))
                if ex.is_negative and ex.is_Rational:  # a Float exponent is the user's: pow keeps C's signed zeros
                    return self.bin("div", self.lit(1.0), self.go(base ** (-ex)))
                return self.bin("pow", self.go(base), self.lit(float(ex)))
            return self.bin("pow", self.go(base), self.go(ex))
        head = type(e)
        heads = sympy_heads()
        if head in heads:
            return self.call(heads[head], *(self.go(a) for a in e.args))
        raise NotImplementedError(f"s2s_ad cannot print the SymPy expression {e} ({head.__name__}) as an op")


def real_number(e: sp.Expr) -> float:
    """The float of a SymPy number: nan for a non-real one (``log(-2)``, ``I``, ``zoo``, whose
    real-valued computation gives nan in floating point)."""
    if e is sp.S.ComplexInfinity:
        return float("nan")
    try:
        v = complex(sp.N(e))
    except (TypeError, ValueError):
        return float("nan")
    return v.real if v.imag == 0 else float("nan")


def numpy_value(op: str, xs: list[Lit], dtype: np.dtype) -> float:
    """The value of the elementwise ``op`` on literals as the generated numpy code computes it
    (the op table's printer evaluated with numpy scalars of ``dtype``)."""
    dt = np.dtype(dtype)
    names = [f"a{i}" for i in range(len(xs))]
    src, _ = print_elementwise(get_op(op), [(n, ATOM) for n in names], lambda v: numpy_literal(v, dt), "np")
    scope = {n: np.dtype(x.dtype).type(x.value) for n, x in zip(names, xs)}
    ns: dict = {"np": np}
    if get_op(op).special:
        import scipy.special  # a special function (erf) is scipy's in numpy code

        ns[SPECIAL_NS] = scipy.special
    with np.errstate(all="ignore"):
        return float(eval(src, ns, scope))  # noqa: S307 - the op table's own printer


def to_ir(b: Builder, exprs: list[sp.Expr], env: Mapping[sp.Symbol, Atom], dtype: np.dtype) -> list[Atom]:
    """Emit IR for ``exprs`` (sharing common subexpressions) and return their atoms."""
    em = _Emitter(b, env, dtype)
    return [em.go(e) for e in exprs]
