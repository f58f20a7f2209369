"""vmap's errors: clear messages naming the function, the argument, the axes and the shapes,
and the user's line where vmap is called inside compiled code."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad as sa
from s2s_ad import ArgumentError, ArgumentValueError, Tensor, ops


def f(x, y):
    return x * y


X = Tensor(np.ones((3, 2)))
Y = Tensor(np.ones((4, 2)))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: sa.vmap(f)(X, Y), "mapped axes of f's inputs differ in size: x has size 3, y has size 4"),
        (lambda: sa.vmap(f, in_axes=(0, 2))(X, Y), r"in_axes 2 is out of range for y of shape \(4, 2\)"),
        (lambda: sa.vmap(f, in_axes=(0, -3))(X, Y), r"in_axes -3 is out of range for y of shape \(4, 2\)"),
        (lambda: sa.vmap(f, in_axes=(0,))(X, Y), r"in_axes \(0,\) has 1 entry but f was called with 2"),
        (lambda: sa.vmap(f, in_axes=((0, 1), 0))(X, Y), r"in_axes \(0, 1\) is a tuple but argument x is a single"),
        (lambda: sa.vmap(f, (0, None), out_axes=5)(X, Y[0]), "out_axes 5 is out of range for output 0 of f"),
        (lambda: sa.vmap(f, (0, None), out_axes=None)(X, Y[0]), "out_axes is None for output 0 of f, but"),
        (lambda: sa.vmap(f, (0, None), out_axes=(0, 1))(X, Y[0]), r"out_axes \(0, 1\) is a tuple but the output"),
        (lambda: sa.vmap(f, None)(X, Y), "no input of f is mapped over"),
        (lambda: sa.vmap(f, (0, 0))(X, 2.0), "y is a float, not a tensor, so it cannot be mapped over"),
        (lambda: sa.vmap(lambda d: d["a"], in_axes=({"b": 0},))({"a": X}), r"does not match the structure"),
        (lambda: sa.vmap(f, in_axes="a"), "in_axes must be an int, None, or a tuple/list/dict of them"),
        (lambda: ops.vmap(f, out_axes=1.5), "ops.vmap: out_axes must be an int, None"),
    ],
)
def test_errors(call, match, pynative):
    with pytest.raises(ArgumentValueError, match=match):
        call()


def test_not_callable():
    with pytest.raises(ArgumentError, match="vmap: expected a Cell or a function to map over a batch, got int"):
        sa.vmap(3)


def test_error_inside_compiled_code_names_the_line(pynative):
    @sa.jit
    def g(a, b):
        return sa.vmap(f)(a, b)

    with pytest.raises(ArgumentValueError, match=r"test_vmap_errors.py:\d+: vmap: the mapped axes of f's inputs"):
        g(X, Y)
