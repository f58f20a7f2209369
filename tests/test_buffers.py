"""The workspace of a split program's main function (s2s_ad.buffers): temporaries whose lives
do not overlap share a slot, products write into theirs, results and what they view keep
arrays of their own, and the workspace is kept between calls (one per concurrent call), or
made on each call when it is large. End to end: results of one call are not changed by the
next, calls from several threads agree, and values match PYNATIVE."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, buffers, context, ops, runtime

F32 = np.dtype(np.float32)


def names():
    used: set[str] = set()

    def fresh(hint: str) -> str:
        name, k = hint, 1
        while name in used:
            name, k = f"{hint}_{k}", k + 1
        used.add(name)
        return name

    return fresh


def planned(lines: list[str], returned: list[str], shapes: dict | None = None) -> tuple[list[str], list[str], str]:
    module, prologue, body = buffers.plan(lines, returned, shapes or {}, names())
    return module, prologue, "\n".join(body)


def run(module: list[str], prologue: list[str], body: str, returned: str, **args):
    """The planned statements as a function of ``args``, run; the namespace too."""
    src = "\n".join(module) + "\ndef f(" + ", ".join(args) + "):\n"
    src += "".join(f"    {ln}\n" for ln in [*prologue, *body.split("\n"), f"return {returned}"])
    ns: dict = {"np": np, "Workspaces": buffers.Workspaces}
    exec(src, ns)
    return ns["f"](**args), ns


LINES = [
    "a = np.empty((4, 3), np.float32)",
    "np.multiply(x, 2, out=a)",
    "b = np.empty((4, 3), np.float32)",  # a is still read below: another slot
    "np.add(a, x, out=b)",
    "c = np.empty((4, 3), np.float32)",  # a is dead: its slot
    "np.multiply(b, b, out=c)",
    "d = np.dot(c, w)",
    "r = np.sum(d, axis=0)",
]


def test_temporaries_whose_lives_do_not_overlap_share_a_slot() -> None:
    module, prologue, body = planned(LINES, ["r"], {"d": ((4, 2), F32)})
    assert "a = workspace[0]" in body and "b = workspace[1]" in body and "c = workspace[0]" in body
    assert "d = np.dot(c, w, out=workspace[2])" in body
    assert "np.empty((4, 3), np.float32)" in "\n".join(prologue) and "kept_workspaces = Workspaces(" in module[0]
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    w = np.ones((3, 2), np.float32)
    (r, ns), want = run(module, prologue, body, "r", x=x, w=w), np.sum(((2 * x + x) ** 2) @ w, axis=0)
    np.testing.assert_allclose(r, want)
    kept = ns["kept_workspaces"]
    assert len(kept.free) == 1  # given back for the next call
    first = kept.free[0]
    np.testing.assert_allclose(ns["f"](x=x, w=w), want)
    assert kept.free == [first]  # the same arrays again


@pytest.mark.parametrize("result", ["c", "v", "c.T", "(v, r)"])
def test_a_result_and_what_it_views_keep_their_own_arrays(result: str) -> None:
    lines = [*LINES, "v = c.reshape((12,))"]
    _, _, body = planned(lines, [result], {"d": ((4, 2), F32)})
    assert "c = np.empty((4, 3), np.float32)" in body
    assert "a = workspace[0]" in body  # the others still have slots


def test_a_view_of_several_arrays_keeps_them_apart() -> None:
    lines = [*LINES, "e = np.empty((4, 3), np.float32)", "v = np.where(r > 0, a, b)", "s = np.sum(v)"]
    _, _, body = planned(lines, ["s"], {"d": ((4, 2), F32)})
    assert "a = np.empty" in body and "b = np.empty" in body


def test_a_product_of_unknown_shape_and_control_flow_are_left_alone() -> None:
    _, _, body = planned(LINES, ["r"])
    assert "d = np.dot(c, w)" in body
    lines = ["a = np.empty((4,), np.float32)", "if x > 0:", "    a[:] = 1", "r = np.sum(a)"]
    assert buffers.plan(lines, ["r"], {}, names()) == ([], [], lines)


def test_a_large_workspace_is_made_on_each_call(monkeypatch) -> None:
    monkeypatch.setattr(buffers, "KEEP_BYTES", 64)
    module, prologue, body = planned(LINES, ["r"], {"d": ((4, 2), F32)})
    assert module == [] and prologue[0].startswith("workspace = (") and "give" not in body
    x = np.ones((4, 3), np.float32)
    r, _ = run(module, prologue, body, "r", x=x, w=np.ones((3, 2), np.float32))
    np.testing.assert_allclose(r, [108, 108])  # sum over rows of ((2x + x)^2 @ w)


def test_kept_workspaces_stay_within_the_budget(monkeypatch) -> None:
    gc.collect()  # (programs of earlier tests that are garbage release theirs now)
    base = buffers.kept_bytes()  # (programs of other tests still alive may hold some)
    limit = base + 2 * 48 + 32  # room for one workspace of these statements
    monkeypatch.setattr(buffers, "budget", lambda: limit)
    module, prologue, body = planned(LINES, ["r"], {"d": ((4, 2), F32)})
    x, w = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32)
    _, ns1 = run(module, prologue, body, "r", x=x, w=w)
    _, ns2 = run(module, prologue, body, "r", x=x, w=w)
    assert ns1["kept_workspaces"].nbytes == 2 * 48 + 32
    assert (len(ns1["kept_workspaces"].free), len(ns2["kept_workspaces"].free)) == (1, 0)
    assert buffers.kept_bytes() == limit
    del ns1
    gc.collect()
    assert buffers.kept_bytes() == base  # released with its program
    ns2["f"](x=x, w=w)
    assert len(ns2["kept_workspaces"].free) == 1 and buffers.kept_bytes() == limit
    ns2["kept_workspaces"].take()
    assert buffers.kept_bytes() == base


@pytest.mark.parametrize("raw,mb", [("", 256), ("0", 0), ("1.5", 1.5), ("many", 256), ("-3", 0)])
def test_the_budget_setting(monkeypatch, raw: str, mb: float) -> None:
    monkeypatch.setenv("S2S_AD_WORKSPACE_MB", raw)
    assert buffers.budget() == int(mb * (1 << 20))


def network(w1: np.ndarray, w2: np.ndarray):
    def total(x):
        return ops.sum(ops.matmul(ops.tanh(ops.matmul(x, Tensor(w1))), Tensor(w2)))

    def u_x(x):
        return ops.sum(ops.grad(total)(x)[:, 0])

    def field(x):
        du = ops.grad(total)(x)
        return ops.grad(u_x)(x) * du[:, 1:2] + du

    return field


@pytest.fixture
def split_graph(monkeypatch):
    old = context.get_context("mode"), context.get_context("compile_mode")
    context.set_context(mode=context.GRAPH_MODE, compile_mode="blocking")
    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "5")
    yield
    context.set_context(mode=old[0], compile_mode=old[1])


def test_a_split_program_keeps_its_workspace_and_its_results_apart(split_graph) -> None:
    rng = np.random.default_rng(11)
    w1, w2 = rng.standard_normal((2, 16)), rng.standard_normal((16, 1))
    field = network(w1, w2)
    fn = s2s_ad.jit(field)
    xs = [rng.standard_normal((300, 2)) for _ in range(3)]
    first = fn(Tensor(xs[0])).asnumpy()
    (c,) = [calls[k] for calls in runtime.cache_for(field).values() for k in list(calls)]
    assert "workspace" in c.main_source and "out=workspace[" in c.main_source
    kept = first.copy()
    later = [fn(Tensor(x)).asnumpy() for x in xs[1:]]
    np.testing.assert_array_equal(first, kept)  # not overwritten by the next calls
    context.set_context(mode=context.PYNATIVE_MODE)
    for x, got in zip(xs, [first, *later]):
        np.testing.assert_allclose(got, s2s_ad.jit(network(w1, w2))(Tensor(x)).asnumpy(), rtol=1e-12, atol=1e-13)


def test_calls_from_several_threads_each_have_a_workspace(split_graph) -> None:
    rng = np.random.default_rng(12)
    w1, w2 = rng.standard_normal((2, 16)), rng.standard_normal((16, 1))
    fn = s2s_ad.jit(network(w1, w2))
    xs = [rng.standard_normal((400, 2)) for _ in range(4)]
    want = [fn(Tensor(x)).asnumpy() for x in xs]
    got: dict[int, list] = {}

    def work(k: int) -> None:
        got[k] = [fn(Tensor(xs[k])).asnumpy() for _ in range(30)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        for r in got[k]:
            np.testing.assert_array_equal(r, want[k])
