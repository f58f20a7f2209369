"""Per-op batching tests generated from the op table: for every entry and every sample of it,
the batched program (:func:`s2s_ad.batching.batch_program`) equals the op applied to each
example and stacked, for batch axes at the front, at the back, on one input only (the others
shared) and nested (a batch of batches), and every op has a batching rule or is one of the
ops the loop fallback maps."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from _harness import inputs, trace_op  # noqa: E402

from s2s_ad.batching import batch_program, fallback_ops  # noqa: E402
from s2s_ad.ir import check_program  # noqa: E402
from s2s_ad.primitives import OPS  # noqa: E402
from s2s_ad.runtime import Compiled  # noqa: E402

B = 3

# Ops without a vectorised rule: the loop fallback maps them (docs/guide/batching.md lists them).
LOOP_FALLBACK = {
    "conv2d_backprop_filter",
    "custom",
    "matrix_determinant",
    "matrix_inverse",
    "random_uniform",
    "solve",
}


def test_every_op_has_a_rule_or_uses_the_fallback():
    assert set(fallback_ops()) == LOOP_FALLBACK


def _variants(nin: int) -> list[tuple[str, list, int]]:
    """(label, in_dims, out_dim): every input batched in front, every input batched last (a
    negative axis), and each input alone batched (the others shared by the batch)."""
    out = [("front", [0] * nin, 0), ("last", [-1] * nin, -1)]
    if nin > 1:
        out += [(f"only{k}", [0 if j == k else None for j in range(nin)], 1) for k in range(nin)]
    return out


CASES = []
for _op in OPS.values():
    for _k, (_shapes, _params) in enumerate(_op.samples):
        for _label, _dims, _out in _variants(len(_shapes)):
            CASES.append(pytest.param(_op.name, _shapes, _params, _dims, _out, id=f"{_op.name}-{_k}-{_label}"))


def _examples(op, shapes, params, n, seed=0):
    rng = np.random.default_rng(seed)
    return [inputs(op, shapes, "float64", rng, params) for _ in range(n)]


def _batched_input(xs: list, k: int, d, n: int) -> np.ndarray:
    """Input ``k`` of the ``n`` examples ``xs`` stacked along ``d`` (None: example 0's)."""
    if d is None:
        return xs[0][k]
    return np.stack([xs[i][k] for i in range(n)], axis=d)


def _run(prog, args) -> list[np.ndarray]:
    out = Compiled(prog, "python")(list(args))
    outs = out if isinstance(out, tuple) else (out,)
    return [np.asarray(o.asnumpy()) for o in outs]


@pytest.mark.parametrize("op,shapes,params,in_dims,out_dim", CASES)
def test_batched_op_equals_stacked_examples(op, shapes, params, in_dims, out_dim):
    prog = trace_op(op, shapes, params, "float64")
    out_dim = min(out_dim, len(prog.outs[0].shape))  # (axis 1 of a batch of 0-d outputs is axis 0)
    xs = _examples(op, shapes, params, B)
    # an unbatched input is the same for every example
    for k, d in enumerate(in_dims):
        if d is None:
            for i in range(B):
                xs[i][k] = xs[0][k]
    batched = batch_program(prog, in_dims, B, out_dim)
    check_program(batched, "batch_program")
    got = _run(batched, [_batched_input(xs, k, d, B) for k, d in enumerate(in_dims)])
    want = [np.stack(col, axis=out_dim) for col in zip(*(_run(prog, x) for x in xs))]
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"{op} in_dims={in_dims}")


NESTED = [c for c in CASES if c.id.endswith("-front")]


@pytest.mark.parametrize("op,shapes,params,in_dims,out_dim", NESTED)
def test_nested_batching(op, shapes, params, in_dims, out_dim):
    """A batch of batches: the inner batch axis first, the outer one second."""
    prog = trace_op(op, shapes, params, "float64")
    n_outer, n_inner = 2, B
    inner = batch_program(prog, [0] * len(shapes), n_inner, 0)
    outer = batch_program(inner, [1] * len(shapes), n_outer, 1)
    check_program(outer, "nested batch_program")
    xs = _examples(op, shapes, params, n_outer * n_inner, seed=1)
    args = []
    for k in range(len(shapes)):
        grid = [[xs[o * n_inner + i][k] for o in range(n_outer)] for i in range(n_inner)]
        args.append(np.stack([np.stack(row) for row in grid]))  # (inner, outer, ...)
    got = _run(outer, args)
    refs = [[_run(prog, xs[o * n_inner + i]) for o in range(n_outer)] for i in range(n_inner)]
    for j, g in enumerate(got):
        w = np.stack([np.stack([refs[i][o][j] for o in range(n_outer)]) for i in range(n_inner)])
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=op)


# GRAPH mode: one sample of each kind of rule, compiled by Numba (fused loops included).
GRAPH_OPS = ("mul", "select", "matmul", "reduce_max", "getitem", "gather")


@pytest.mark.parametrize("op", GRAPH_OPS)
def test_batched_op_compiled(op):
    shapes, params = OPS[op].samples[1 if len(OPS[op].samples) > 1 else 0]
    prog = trace_op(op, shapes, params, "float64")
    xs = _examples(op, shapes, params, B, seed=2)
    dims = [0] * len(shapes)
    batched = batch_program(prog, dims, B, 0)
    args = [_batched_input(xs, k, 0, B) for k in range(len(shapes))]
    got = Compiled(batched, "numba")(list(args))
    want = _run(batched, args)
    np.testing.assert_allclose(np.asarray(got.asnumpy()), want[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(want[0], np.stack([_run(prog, x)[0] for x in xs]), rtol=1e-12, atol=1e-12)
