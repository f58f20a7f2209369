"""Control flow under vmap: ``if`` on a tensor with a shared or a per-example predicate, ``for``
loops (batched consts, scanned values and carried values, including a carry that only the body
makes batched), and ``while`` loops whose trip count differs per example, with reverse mode
through them both ways (grad of vmap, vmap of grad) checked against per-example gradients and
finite differences."""

from __future__ import annotations

import numpy as np

import s2s_ad as sa
from s2s_ad import Tensor, ops

RNG = np.random.default_rng(3)


def T(a) -> Tensor:
    return Tensor(np.asarray(a))


def reference(fn, *args):
    """``fn(*args)`` computed in PYNATIVE mode (the per-example references of GRAPH-mode tests)."""
    old = sa.get_context("mode")
    sa.set_context(mode=sa.PYNATIVE_MODE)
    try:
        return fn(*args).asnumpy()
    finally:
        sa.set_context(mode=old)


def branchy(x, y):
    if ops.reduce_sum(x) > 0:
        z = ops.sin(x) * y
    else:
        z = x - y
    return z


def branchy_np(x, y):
    return np.sin(x) * y if x.sum() > 0 else x - y


def test_cond_with_a_predicate_per_example(mode):
    x = RNG.standard_normal((6, 3))
    y = RNG.standard_normal(3)
    out = sa.vmap(branchy, (0, None))(T(x), T(y)).asnumpy()
    assert {bool(r.sum() > 0) for r in x} == {True, False}
    np.testing.assert_allclose(out, np.stack([branchy_np(r, y) for r in x]), rtol=1e-12)
    g = sa.vmap(sa.grad(lambda_sum_branchy), (0, None))(T(x), T(y)).asnumpy()
    np.testing.assert_allclose(g, np.stack([reference(sa.grad(lambda_sum_branchy), T(r), T(y)) for r in x]))


def lambda_sum_branchy(x, y):
    return ops.reduce_sum(branchy(x, y))


def test_cond_with_a_shared_predicate(pynative):
    x = RNG.standard_normal((4, 3))
    for y in (np.abs(RNG.standard_normal(3)), -np.abs(RNG.standard_normal(3))):
        out = sa.vmap(lambda a, b: branchy(b, a), (0, None))(T(x), T(y)).asnumpy()
        np.testing.assert_allclose(out, np.stack([branchy_np(y, r) for r in x]), rtol=1e-12)


def loop_fn(x, a):
    s = x
    for _ in range(3):
        s = ops.sin(s) * a + x
    return s


def loop_np(x, a):
    s = x
    for _ in range(3):
        s = np.sin(s) * a + x
    return s


def test_loop_batched_consts_and_carry(mode):
    x = RNG.standard_normal((4, 2))
    a = RNG.standard_normal((4, 2))
    out = sa.vmap(loop_fn)(T(x), T(a)).asnumpy()
    np.testing.assert_allclose(out, np.stack([loop_np(x[i], a[i]) for i in range(4)]), rtol=1e-12)


def test_loop_carry_made_batched_by_the_body(pynative):
    """The carry starts shared (x) but the body mixes in the batched a: it is batched from the start."""
    x = RNG.standard_normal(2)
    a = RNG.standard_normal((5, 2))
    out = sa.vmap(loop_fn, (None, 0))(T(x), T(a)).asnumpy()
    np.testing.assert_allclose(out, np.stack([loop_np(x, r) for r in a]), rtol=1e-12)
    g = sa.vmap(sa.grad(lambda_sum_loop, grad_position=1), (None, 0))(T(x), T(a)).asnumpy()
    ref = np.stack([sa.grad(lambda_sum_loop, grad_position=1)(T(x), T(r)).asnumpy() for r in a])
    np.testing.assert_allclose(g, ref, rtol=1e-12)


def lambda_sum_loop(x, a):
    return ops.reduce_sum(loop_fn(x, a))


def rows(m, v):
    acc = v * 0
    for r in m:
        acc = acc + ops.sin(r) * v
    return acc


def test_loop_over_batched_rows(pynative):
    m = RNG.standard_normal((4, 3, 2))  # example i: 3 rows of 2
    v = RNG.standard_normal((4, 2))
    ref = np.stack([sum(np.sin(r) * v[i] for r in m[i]) for i in range(4)])
    # the batch on each axis of m: before, on, and after the axis the loop runs over
    for axis, mb in ((0, m), (1, m.transpose(1, 0, 2)), (-1, m.transpose(1, 2, 0))):
        out = sa.vmap(rows, (axis, 0))(T(mb.copy()), T(v)).asnumpy()
        np.testing.assert_allclose(out, ref, rtol=1e-12, err_msg=f"in_axes {axis}")
    out = sa.vmap(rows, (None, 0))(T(m[0]), T(v)).asnumpy()
    np.testing.assert_allclose(out, np.stack([sum(np.sin(r) * v[i] for r in m[0]) for i in range(4)]), rtol=1e-12)


def newton_sqrt(c):
    x = c * 0 + 1.0
    while ops.abs(x * x - c) > 1e-12:
        x = 0.5 * (x + c / x)
    return x


def newton_steps(c):
    x = c * 0 + 1.0
    while ops.abs(x * x - c) > 1e-12:
        x = 0.5 * (x + c / x)
    return x, 0


C = np.array([0.25, 2.0, 9.0, 1.0, 400.0])


def test_while_with_a_trip_count_per_example(mode):
    out = sa.vmap(newton_sqrt)(T(C)).asnumpy()
    np.testing.assert_allclose(out, np.sqrt(C), rtol=1e-12)


def _per_lane_grads(c):
    return np.array([reference(sa.grad(newton_sqrt), T(v)) for v in c])


def total_sqrt(c):
    return ops.reduce_sum(sa.vmap(newton_sqrt)(c))


def test_reverse_mode_through_a_batched_while(pynative):
    """vmap(grad(f)) and grad(vmap(f)) for a Newton solve whose iteration count differs per
    example (c = 1 needs none, c = 400 many): each lane's adjoint runs its own count."""
    want = _per_lane_grads(C)
    # d sqrt(c)/dc away from c = 1 (where no iteration runs and x = 1 does not depend on c)
    np.testing.assert_allclose(want[C != 1], 0.5 / np.sqrt(C[C != 1]), rtol=1e-8)
    assert want[C == 1] == 0
    np.testing.assert_allclose(sa.vmap(sa.grad(newton_sqrt))(T(C)).asnumpy(), want, rtol=1e-12)
    np.testing.assert_allclose(sa.grad(total_sqrt)(T(C)).asnumpy(), want, rtol=1e-12)


def test_per_example_gradients_through_a_while_compiled(graph):
    np.testing.assert_allclose(sa.vmap(sa.grad(newton_sqrt))(T(C)).asnumpy(), _per_lane_grads(C), rtol=1e-12)


def test_while_gradient_against_finite_differences(pynative):
    c = np.array([0.3, 5.0, 70.0])
    g = sa.vmap(sa.grad(newton_sqrt))(T(c)).asnumpy()
    h = 1e-6
    fd = (sa.vmap(newton_sqrt)(T(c + h)).asnumpy() - sa.vmap(newton_sqrt)(T(c - h)).asnumpy()) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def counted(x, k):
    i = 0
    while i < k:
        x = ops.sin(x) + 0.5
        i += 1
    return x


def test_while_with_a_shared_predicate(pynative):
    """The trip count depends on shared values only: one while for the whole batch."""
    x = RNG.standard_normal((4, 2))
    out = sa.vmap(counted, (0, None))(T(x), 3).asnumpy()
    ref = x
    for _ in range(3):
        ref = np.sin(ref) + 0.5
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def solve_all(c):
    acc = c * 0
    for k in range(3):
        x = c * 0 + 1.0
        target = c + k
        while ops.abs(x * x - target) > 1e-12:
            x = 0.5 * (x + target / x)
        acc = acc + x
    return acc


def test_while_inside_a_loop_nested_vmap_and_second_order(pynative):
    """A per-example while inside a for loop: vmap of vmap, and vmap of the second derivative,
    against the per-example programs."""
    c = np.array([0.3, 2.0, 50.0, 1.0])
    per = np.array([sa.grad(solve_all)(T(v)).asnumpy() for v in c])
    np.testing.assert_allclose(sa.vmap(sa.grad(solve_all))(T(c)).asnumpy(), per, rtol=1e-12)
    per2 = np.array([sa.grad(sa.grad(solve_all))(T(v)).asnumpy() for v in c])
    np.testing.assert_allclose(sa.vmap(sa.grad(sa.grad(solve_all)))(T(c)).asnumpy(), per2, rtol=1e-10)
    cc = c.reshape(2, 2)
    np.testing.assert_allclose(sa.vmap(sa.vmap(sa.grad(solve_all)))(T(cc)).asnumpy(), per.reshape(2, 2), rtol=1e-12)


def rows_total(m, v):
    return ops.reduce_sum(rows(m, v))


def counted_total(x, k):
    return ops.reduce_sum(counted(x, k))


def test_per_example_gradients_through_loops(pynative):
    """The adjoint of a loop over rows (it stacks the rows' cotangents) and of a while with a
    shared trip count, batched, for each choice of batched inputs."""
    m = RNG.standard_normal((4, 3, 2))
    v = RNG.standard_normal((4, 2))
    grad = sa.grad(rows_total, grad_position=(0, 1))
    for axes in [(0, 0), (0, None), (None, 0)]:
        margs = m if axes[0] is not None else m[0]
        vargs = v if axes[1] is not None else v[0]
        got = sa.vmap(grad, axes)(T(margs), T(vargs))
        refs = [
            grad(T(m[i] if axes[0] is not None else m[0]), T(v[i] if axes[1] is not None else v[0])) for i in range(4)
        ]
        for k in range(2):
            np.testing.assert_allclose(got[k].asnumpy(), np.stack([r[k].asnumpy() for r in refs]), rtol=1e-12)
    x = RNG.standard_normal((4, 2))
    got = sa.vmap(sa.grad(counted_total), (0, None))(T(x), 3).asnumpy()
    np.testing.assert_allclose(got, np.stack([sa.grad(counted_total)(T(r), 3).asnumpy() for r in x]), rtol=1e-12)


def _newton_jvp(c, v):
    return sa.jvp(newton_sqrt, c, v)


def test_forward_mode_through_a_batched_while(pynative):
    """jvp of vmap and vmap of jvp through a while with a trip count per example."""
    v = np.array([1.0, 2.0, -1.0, 0.5, 3.0])
    want = np.array([sa.jvp(newton_sqrt, T(ci), T(vi))[1].asnumpy() for ci, vi in zip(C, v)])
    _, t = sa.jvp(sa.vmap(newton_sqrt), T(C), T(v))
    np.testing.assert_allclose(t.asnumpy(), want, rtol=1e-12)
    _, t = sa.vmap(_newton_jvp)(T(C), T(v))
    np.testing.assert_allclose(t.asnumpy(), want, rtol=1e-12)
