"""The custom SymPy heads of the op table's elementwise formulas.

Every value the compiled code computes is a real float (nan where a result is undefined), so
the heads below are extended real whatever their arguments: SymPy can then differentiate
``abs`` and ``sign`` of them, and convert them to numbers. SymPy's own ``Abs`` and ``sign``
differentiate an argument they cannot prove real (``sqrt(x)``, ``x/y``, which may be complex
or infinite to SymPy) through ``re``, ``im`` and ``arg``, which are no ops: :class:`Abs` and
:class:`Sign` state the real derivative instead.

This module imports SymPy, so the op table (:mod:`s2s_ad.primitives`) names these classes
without importing it (``heads.Sigmoid``, a :class:`~s2s_ad.lazy.Deferred`): it is imported the
first time a formula is differentiated or simplified, never by ``import s2s_ad``.
"""

from __future__ import annotations

import sympy as sp


class _Real(sp.Function):
    """A head whose values are extended real numbers (or nan)."""

    def _eval_is_extended_real(self) -> bool:
        return True


class Abs(sp.Abs):
    """``|x|`` of a real value: d|x|/dx = sign(x), also where SymPy cannot prove ``x`` real."""

    def _eval_derivative(self, x: sp.Symbol) -> sp.Expr:
        a = self.args[0]
        return Sign(a) * sp.diff(a, x)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return Sign(self.args[0])


class Sign(sp.sign):
    """``sign(x)`` of a real value: real, with derivative 0 (almost everywhere, as in every AD
    system), also where SymPy cannot prove ``x`` real."""

    def _eval_is_extended_real(self) -> bool:
        return True

    def _eval_derivative(self, x: sp.Symbol) -> sp.Expr:
        return sp.Integer(0)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)


class Sigmoid(_Real):
    """Logistic function. Its derivative is stated in terms of itself (``s*(1-s)``), which
    SymPy's chain rule then uses: the expanded form ``exp(-x)/(1+exp(-x))**2`` overflows to
    nan in floating point for large negative x."""

    def _eval_is_extended_nonnegative(self) -> bool:
        return True

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        x = self.args[0]
        return (1 / (1 + sp.exp(-x)))._eval_evalf(prec) if x.is_number else None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        s = Sigmoid(self.args[0])
        return s * (1 - s)


class _Indicator(_Real):
    """A 0/1 head made by differentiation (a comparison's outcome): nonnegative, with
    derivative 0."""

    def _eval_is_extended_nonnegative(self) -> bool:
        return True

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)


class Step(_Indicator):
    """Heaviside step with step(0) = 0 (the derivative of ReLU, as MindSpore defines it) and
    step(nan) = 0 (JAX's derivative of ReLU there)."""

    @classmethod
    def eval(cls, x):
        if x is sp.S.NaN:
            return sp.Integer(0)
        if x.is_number and x.is_extended_real:
            return sp.Integer(1) if x > 0 else sp.Integer(0)
        return None


class AtLeast(_Indicator):
    """``AtLeast(x, y)``: 1 where x >= y, else 0 (also where either is nan: a comparison with
    nan is false). The derivative of max(x, y) in x: ties (also of infinities, where ``y - x``
    is nan) go to x."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if x is sp.S.NaN or y is sp.S.NaN:
            return sp.Integer(0)
        if x == y and x.is_extended_real:
            return sp.Integer(1)
        if x.is_number and y.is_number and x.is_extended_real and y.is_extended_real:
            return sp.Integer(1) if x >= y else sp.Integer(0)
        return None


class _Extremum(_Real):
    """Elementwise max or min of two values. On a tie the derivative goes to ``x``
    (MindSpore's rule)."""

    nargs = 2
    is_max = True

    @classmethod
    def eval(cls, x, y):
        if x == y:
            return x
        if x.is_number and y.is_number and x.is_extended_real and y.is_extended_real:
            return x if (x >= y if cls.is_max else x <= y) else y
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        # 1 for x where x >= y (max) or x <= y (min), 1 for y where y > x (max) or y < x (min);
        # 0 for both where either is nan (as JAX)
        x, y = self.args
        if argindex == 1:
            return AtLeast(x, y) if self.is_max else AtLeast(y, x)
        return Step(y - x) if self.is_max else Step(x - y)


class Maximum(_Extremum):
    """max(x, y): d/dx = 1 where x >= y, d/dy = 1 where x < y."""


class Minimum(_Extremum):
    """min(x, y): d/dx = 1 where x <= y, d/dy = 1 where x > y."""

    is_max = False


class Select(_Real):
    """``Select(c, a, b)``: ``a`` where the (bool) condition ``c`` holds, else ``b``
    (``np.where``). Not differentiable in ``c``; the derivative in ``a`` is ``Select(c, 1, 0)``."""

    nargs = 3

    @classmethod
    def eval(cls, c, a, b):
        if c.is_number:
            return a if c != 0 else b
        if a == b:
            return a
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        c = self.args[0]
        if argindex == 2:
            return Select(c, 1, 0)
        if argindex == 3:
            return Select(c, 0, 1)
        return sp.Integer(0)


class LogOrZero(_Real):
    """``log(x)``, and 0 where ``x`` is 0 (the log of ``x`` with its zeros replaced by ones):
    the factor of d(x**y)/dy, which is then 0 at x = 0 (as in JAX), not 0 * -inf = nan."""

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.Integer(0)
        if x.is_number:
            return sp.log(x)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return 1 / self.args[0]


class Power(_Real):
    """``x ** y`` with an exponent that is not a number (a number gives SymPy's own power,
    which SymPy simplifies): its derivative in ``y`` is ``x**y * LogOrZero(x)``."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if y.is_number or (x.is_number and not x.is_zero):
            return x**y
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x, y = self.args
        if argindex == 1:
            return y * Power(x, y - 1)
        return self * LogOrZero(x)


class Relu(_Real):
    """max(x, 0)."""

    @classmethod
    def eval(cls, x):
        if x is sp.S.NaN:
            return sp.S.NaN
        if x.is_number and x.is_extended_real:
            return x if x > 0 else sp.Integer(0)
        return None

    def _eval_is_extended_nonnegative(self) -> bool:
        return True

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return Step(self.args[0])


__all__ = [
    "Abs",
    "AtLeast",
    "FloorDiv",
    "FloorMod",
    "LogAddExp",
    "LogOrZero",
    "Maximum",
    "Minimum",
    "Power",
    "Relu",
    "Select",
    "Sigmoid",
    "Sign",
    "Softplus",
    "Step",
]


class FloorDiv(_Real):
    """``floor(x / y)`` (Python's ``//``, numpy's ``floor_divide``): piecewise constant, so its
    derivative is 0 (almost everywhere, as in every AD system)."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if x.is_Rational and y.is_Rational and y != 0:
            return sp.floor(x / y)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)


class FloorMod(_Real):
    """``x - y * floor(x / y)`` (Python's ``%``, numpy's ``mod``: the sign of ``y``):
    d/dx = 1, d/dy = -floor(x / y)."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if x.is_Rational and y.is_Rational and y != 0:
            return x - y * sp.floor(x / y)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x, y = self.args
        return sp.Integer(1) if argindex == 1 else -FloorDiv(x, y)


class LogAddExp(_Real):
    """``log(exp(x) + exp(y))`` (``np.logaddexp``). Its derivatives are stated stably,
    ``sigmoid(x - y)`` and ``sigmoid(y - x)`` (the expanded ``exp(x) / (exp(x) + exp(y))``
    overflows to nan for large arguments); at a tie each is 1/2."""

    nargs = 2

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        x, y = self.args
        return sp.log(sp.exp(x) + sp.exp(y))._eval_evalf(prec) if x.is_number and y.is_number else None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x, y = self.args
        return Sigmoid(x - y) if argindex == 1 else Sigmoid(y - x)


class Softplus(_Real):
    """``log(1 + exp(x))``, with derivative ``sigmoid(x)`` (stated: the derivative of the stable
    form ``log1p(exp(-|x|)) + max(x, 0)``, which is how it prints, would be 0 at x = 0, where
    the one-sided derivatives of its kinks meet)."""

    def _eval_is_extended_nonnegative(self) -> bool:
        return True

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        x = self.args[0]
        return sp.log(1 + sp.exp(x))._eval_evalf(prec) if x.is_number else None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return Sigmoid(self.args[0])
