"""The IR-level batching API (what transforms built on batching call): ``batch_program`` and
``batch_eqns``, outputs that stay shared, sizes, and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from s2s_ad import ArgumentValueError
from s2s_ad.batching import batch_eqns, batch_program
from s2s_ad.ir import Aval, Builder, Var, check_program
from s2s_ad.runtime import Compiled
from s2s_ad.trace import trace

F64 = np.dtype(np.float64)


def _prog():
    def body(fe, vals):
        x, w = vals
        y = fe.bind1("matmul", w, fe.bind1("reshape", x, shape=(3, 1)), transpose_a=False, transpose_b=False)
        return fe.bind1("sin", y), fe.bind1("mul", w, w)

    return trace(body, [Aval((3,), F64), Aval((2, 3), F64)], "f", ["x", "w"])


def test_batch_program_keeps_shared_outputs_shared_where_asked():
    prog = _prog()
    rng = np.random.default_rng(0)
    xs, w = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    batched = batch_program(prog, [0, None], 4, [1, None])
    check_program(batched)
    assert [v.shape for v in batched.arg_vars] == [(4, 3), (2, 3)]
    assert [o.shape for o in batched.outs] == [(2, 4, 1), (2, 3)]
    y, ww = Compiled(batched, "python")([xs, w])
    np.testing.assert_allclose(y.asnumpy(), np.sin(w @ xs.T)[:, :, None])
    np.testing.assert_allclose(ww.asnumpy(), w * w)
    # the default out_dims=0 broadcasts the shared output over the batch
    y, ww = Compiled(batch_program(prog, [0, None], 4), "python")([xs, w])
    np.testing.assert_allclose(ww.asnumpy(), np.broadcast_to(w * w, (4, 2, 3)))


def test_batch_program_errors():
    prog = _prog()
    with pytest.raises(ArgumentValueError, match="out_axes is None for output 0 of f, but that output varies"):
        batch_program(prog, [0, None], 4, None)
    with pytest.raises(ArgumentValueError, match="batch axis 2 is out of range for argument x of rank 2"):
        batch_program(prog, [2, None], 4)
    with pytest.raises(ValueError, match="takes 2 arguments, got 1 in_dims"):
        batch_program(prog, [0], 4)


def test_batch_eqns_inlines_into_a_builder():
    """A batched copy appended to a program being built: outputs and their batch axes."""
    prog = _prog()
    b = Builder()
    x = Var(Aval((3, 5), F64), "xs")  # the batch on axis 1
    w = Var(Aval((2, 3), F64), "w")
    outs, dims = batch_eqns(b, prog, [x, w], [1, None])
    assert dims == [0, None]
    assert outs[0].shape == (5, 2, 1) and outs[1].shape == (2, 3)
    with pytest.raises(ArgumentValueError, match="different batch sizes"):
        batch_eqns(Builder(), prog, [x, Var(Aval((4, 2, 3), F64))], [1, 0])
    with pytest.raises(ArgumentValueError, match="no input is batched and no batch size"):
        batch_eqns(Builder(), prog, [Var(Aval((3,), F64)), w], [None, None])
    # nothing batched, a size given: the copy is unbatched
    outs, dims = batch_eqns(Builder(), prog, [Var(Aval((3,), F64)), w], [None, None], size=4)
    assert dims == [None, None]
