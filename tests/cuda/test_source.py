"""The generated CUDA source: what it contains, float32 kept float32, deterministic, errors for
what has no device implementation, and the CLI's ``--target``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import s2s_ad
from s2s_ad import ops
from s2s_ad.api import generated_source
from s2s_ad.cli import main
from s2s_ad.cuda import generate
from s2s_ad.cuda.printer import GPU_LAUNCH, _shared, cuda_schedule
from s2s_ad.errors import S2SError
from s2s_ad.fusion import Loop
from s2s_ad.ir import Aval
from s2s_ad.opt import optimize
from s2s_ad.primitives import OPS, OpDef
from s2s_ad.trace import trace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
F32 = np.dtype(np.float32)


def model(x, w, b):
    h = np.tanh(np.matmul(x, w) + b)
    p = 1.0 / (1.0 + np.exp(-2.5 * h))
    return np.mean((p - 0.5) ** 2) + 0.01 * np.sum(w * w), np.max(h, axis=0)


def _program(fn=model, shapes=((4, 3), (3, 2), (2,)), dtype=F32):
    return trace(lambda fe, args: fe.call(fn, args), [Aval(s, dtype) for s in shapes], fn.__name__, ["x", "w", "b"])


def _grad_source(dtype=F32) -> str:
    g = s2s_ad.value_and_grad(model, grad_position=(0, 1, 2))
    return generated_source(g, *[Aval(s, dtype) for s in ((4, 3), (3, 2), (2,))], target="cuda")


def test_the_source_has_kernels_and_host_code():
    src = _grad_source()
    ast.parse(src)
    kernels = re.findall(r"@cuda\.jit\ndef (\w+)\(", src)
    assert any(k.endswith("_loop") for k in kernels) and any(k.endswith("_matmul") for k in kernels)
    assert "cuda.shared.array" in src and "cuda.syncthreads()" in src and "cuda.atomic.add" in src
    assert "for f in range(cuda.grid(1)," in src  # grid-stride loops
    # the host copies each input to the device once and each output back once
    host = src[src.index("\ndef grad_model(") :]
    assert host.count("cuda.to_device(") == 3
    assert host.count(".copy_to_host()") == 5  # the value (2 outputs) and 3 gradients
    assert "dm.exp(" in src and "dm.tanh(" in src


def test_shared_memory_is_dynamic_with_disjoint_aligned_views():
    """Numba's simulator allocates a static ``cuda.shared.array((n,), dt)`` per source line
    without a lock, so simulated threads racing there may get different arrays (seen as wrong
    matmul tiles); every kernel carves its shared arrays out of the dynamic buffer instead."""
    src = _grad_source(np.dtype(np.float64))
    views = re.findall(r"cuda\.shared\.array\(([^)]*)\)(\[\d+:\d+\])?", src)
    assert views and all(args.startswith("0, nt.") and view for args, view in views)
    # mixed dtypes: the largest items first, each view aligned to its item size
    lines, nbytes = _shared([("a", 3, np.dtype(np.int32)), ("b", 5, np.dtype(np.float64)), ("c", 2, np.dtype(np.int8))])
    assert lines == [
        "b = cuda.shared.array(0, nt.float64)[0:5]",
        "a = cuda.shared.array(0, nt.int32)[10:13]",
        "c = cuda.shared.array(0, nt.int8)[52:54]",
    ]
    assert nbytes == 54


def test_one_kernel_per_fused_loop():
    prog = optimize(_program())
    loops = [st for st in cuda_schedule(prog) if isinstance(st, Loop)]
    src = generate(prog, "model")
    assert len(re.findall(r"def k\d+_loop\(", src)) == len(loops) >= 1


def test_float32_stays_float32():
    """Every float literal of a float32 program is a np.float32(...) (a bare 2.0 is a float64
    in a kernel and would promote), and nothing is float64."""
    src = _grad_source()
    assert "float64" not in src
    tree = ast.parse(src)
    wrapped = {
        id(node.args[0].operand if isinstance(node.args[0], ast.UnaryOp) else node.args[0])  # np.float32(-2.5)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "np.float32" and node.args
    }
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and isinstance(n.body[0], ast.Expr)
    }
    bare = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, float) and id(node) not in wrapped
    ]
    assert not bare, f"untyped float literals: {bare}"
    assert docstrings  # (the walk saw the functions)


def test_float64_programs_print_plain_literals():
    src = _grad_source(np.dtype(np.float64))
    assert "float32" not in src
    assert not re.search(r"np\.float64\(-?\d", src)  # a bare 2.0 is a float64 already


def test_the_source_is_deterministic():
    a = generated_source(s2s_ad.grad(model), *[Aval(s, F32) for s in ((4, 3), (3, 2), (2,))], target="cuda")
    b = generated_source(s2s_ad.grad(model), *[Aval(s, F32) for s in ((4, 3), (3, 2), (2,))], target="cuda")
    assert a == b
    assert not re.search(r"0x[0-9a-f]{6,}|uuid", a)


def test_launches_follow_the_launch_configuration(monkeypatch):
    import s2s_ad.cuda.printer as printer

    monkeypatch.setattr(printer, "launch_config", lambda: GPU_LAUNCH)
    src = generate(optimize(_program()), "model")
    # one block-wide tree of 256 float32 partial sums; 16x16 tiles of both matmul operands
    assert "cuda.shared.array(0, nt.float32)[0:256]" in src and ", 256, 0, 1024](" in src
    assert "sb = cuda.shared.array(0, nt.float32)[256:512]" in src and ", (16, 16), 0, 2048](" in src


def test_an_op_without_device_code_is_named(monkeypatch):
    same = OpDef("frobnicate", "Frobnicate", "structural", 1, lambda avals, p: [avals[0]])
    monkeypatch.setitem(OPS, "frobnicate", same)
    prog = trace(lambda fe, args: fe.bind1("frobnicate", args[0]), [Aval((3,), F32)], "f", ["x"])
    with pytest.raises(S2SError, match=r"Frobnicate \(frobnicate\) has no device implementation on the CUDA target"):
        generate(prog, "f")


def test_an_unsupported_dtype_is_named():
    prog = trace(lambda fe, args: fe.bind1("exp", args[0]), [Aval((3,), np.dtype(np.float16))], "f", ["x"])
    with pytest.raises(S2SError, match="does not support dtype float16"):
        generate(prog, "f")


# ---------------------------------------------------------------------------- CLI
def _show(capsys, *extra: str) -> str:
    args = ["show", f"{EXAMPLES / 'grad_wrt_x.py'}:Net", "--args", "float32[2,3], float32[3,3]", *extra]
    assert main(args) == 0
    return capsys.readouterr().out


def test_cli_show_targets(capsys):
    cuda_src = _show(capsys, "--target", "cuda")
    # the gradient of sum((x * z) @ y) by x: y's row sums (a reduction kernel), broadcast and scaled in a loop
    assert "@cuda.jit" in cuda_src and "def grad_Net(x, y, z):" in cuda_src and "_loop[" in cuda_src
    assert "cuda.to_device(" in cuda_src and ".copy_to_host()" in cuda_src
    numba_src = _show(capsys, "--target", "numba")
    assert "for i0 in range(2):" in numba_src and "@cuda" not in numba_src
    assert _show(capsys) == _show(capsys, "--target", "numpy")
    assert "np.sum(y, axis=1)" in _show(capsys)


def test_generated_source_checks_its_target():
    with pytest.raises(S2SError, match="target must be 'numpy', 'numba' or 'cuda'"):
        generated_source(ops.sin, Aval((2,), F32), target="gpu")
