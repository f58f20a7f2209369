"""One compiled training step against PyTorch and JAX: forward, gradient and Momentum update.

The model is a tanh MLP 784→256→10 with a mean softmax cross-entropy (W3's network), batch 64,
float32, trained with Momentum (lr 0.01, momentum 0.9):

- s2s_ad: ``nn.TrainOneStepCell(nn.WithLossCell(net, loss), nn.Momentum(...))`` in GRAPH mode,
  one Numba-compiled program per step that updates the Parameters in place;
- PyTorch: the same network as ``torch.nn`` modules, ``loss.backward()`` and
  ``torch.optim.SGD(momentum=0.9)`` (the same update rule as MindSpore's Momentum);
- JAX: ``jax.jit`` of a function computing the loss, ``jax.grad`` and the momentum update,
  with the parameters and moments passed in and returned (``donate_argnums`` for in-place).

Every system starts from the same weights and runs the same batches; after the timed steps
the weights are compared (they must agree to 1e-3 relative). One thread per framework
(``benchmarks/threads.py``). A peer that is not installed is skipped with a note.

    python benchmarks/train_step.py [--steps 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import threads  # noqa: E402

os.environ.update(threads.THREAD_ENV)

import numpy as np  # noqa: E402

BATCH, D_IN, D_HID, D_OUT = 64, 784, 256, 10
LR, MOMENTUM = 0.01, 0.9


def data(steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Initial weights (W1, b1, W2, b2 in MindSpore's (out, in) layout) and ``steps`` batches."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((D_HID, D_IN)) * 0.05).astype(np.float32)
    w2 = (rng.standard_normal((D_OUT, D_HID)) * 0.05).astype(np.float32)
    batches = [
        (rng.standard_normal((BATCH, D_IN)).astype(np.float32), rng.integers(0, D_OUT, BATCH).astype(np.int32))
        for _ in range(steps)
    ]
    return w1, w2, batches


def s2s_ad_runner(w1: np.ndarray, w2: np.ndarray) -> tuple[Any, Any]:
    import s2s_ad
    from s2s_ad import Parameter, Tensor, nn, ops

    s2s_ad.set_context(mode=s2s_ad.GRAPH_MODE)

    class MLP(nn.Cell):
        def __init__(self):
            super().__init__()
            self.w1 = Parameter(Tensor(w1.copy()), name="w1")
            self.b1 = Parameter(Tensor(np.zeros(D_HID, np.float32)), name="b1")
            self.w2 = Parameter(Tensor(w2.copy()), name="w2")
            self.b2 = Parameter(Tensor(np.zeros(D_OUT, np.float32)), name="b2")
            self.matmul = ops.MatMul(transpose_b=True)

        def construct(self, x):
            h = ops.tanh(self.matmul(x, self.w1) + self.b1)
            return self.matmul(h, self.w2) + self.b2

    net = MLP()
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    step = nn.TrainOneStepCell(nn.WithLossCell(net, loss), nn.Momentum(net.trainable_params(), LR, MOMENTUM))

    def run(x: np.ndarray, y: np.ndarray) -> None:
        step(Tensor(x), Tensor(y))

    def weights() -> list[np.ndarray]:
        return [p.asnumpy() for p in (net.w1, net.b1, net.w2, net.b2)]

    return run, weights


def torch_runner(w1: np.ndarray, w2: np.ndarray) -> tuple[Any, Any]:
    import torch

    torch.set_num_threads(1)
    l1, l2 = torch.nn.Linear(D_IN, D_HID), torch.nn.Linear(D_HID, D_OUT)
    with torch.no_grad():
        l1.weight.copy_(torch.from_numpy(w1))
        l1.bias.zero_()
        l2.weight.copy_(torch.from_numpy(w2))
        l2.bias.zero_()
    model = torch.nn.Sequential(l1, torch.nn.Tanh(), l2)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(x: np.ndarray, y: np.ndarray) -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y).long())
        loss.backward()
        opt.step()

    def weights() -> list[np.ndarray]:
        return [t.detach().numpy().copy() for t in (l1.weight, l1.bias, l2.weight, l2.bias)]

    return run, weights


def jax_runner(w1: np.ndarray, w2: np.ndarray) -> tuple[Any, Any]:
    import jax
    import jax.numpy as jnp

    def loss(params, x, y):
        w1_, b1_, w2_, b2_ = params
        logits = jnp.tanh(x @ w1_.T + b1_) @ w2_.T + b2_
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(params, moments, x, y):
        grads = jax.grad(loss)(params, x, y)
        moments = tuple(MOMENTUM * m + g for m, g in zip(moments, grads))
        params = tuple(p - LR * m for p, m in zip(params, moments))
        return params, moments

    state = {
        "params": tuple(jnp.asarray(a) for a in (w1, np.zeros(D_HID, np.float32), w2, np.zeros(D_OUT, np.float32))),
    }
    state["moments"] = tuple(jnp.zeros_like(p) for p in state["params"])

    def run(x: np.ndarray, y: np.ndarray) -> None:
        state["params"], state["moments"] = step(state["params"], state["moments"], x, y)
        jax.block_until_ready(state["params"])

    def weights() -> list[np.ndarray]:
        return [np.asarray(p) for p in state["params"]]

    return run, weights


RUNNERS = {"s2s_ad": s2s_ad_runner, "torch": torch_runner, "jax": jax_runner}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--systems", default="s2s_ad,torch,jax")
    args = parser.parse_args(argv)
    w1, w2, batches = data(args.steps)
    results: dict[str, float] = {}
    finals: dict[str, list[np.ndarray]] = {}
    for name in args.systems.split(","):
        try:
            run, weights = RUNNERS[name](w1, w2)
        except ImportError as err:
            print(f"{name}: skipped ({err})")
            continue
        t0 = time.perf_counter()
        run(*batches[0])  # compiles (s2s_ad, JAX)
        first = time.perf_counter() - t0
        samples = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for x, y in batches:
                run(x, y)
            samples.append((time.perf_counter() - t0) / len(batches))
        results[name] = statistics.median(samples)
        finals[name] = weights()
        print(f"{name}: first step {first * 1e3:.0f} ms, then {results[name] * 1e6:.0f} µs per step")
    ref = finals.get("s2s_ad")
    for name, ws in finals.items():
        if ref is not None and name != "s2s_ad":
            err = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12)) for a, b in zip(ws, ref))
            status = "agree" if err < 1e-3 else "DISAGREE"
            print(f"{name} vs s2s_ad weights after {1 + args.rounds * args.steps} steps: {status} ({err:.1e})")
            if err >= 1e-3:
                return 1
    if "s2s_ad" in results:
        print()
        print("| system | µs per step | time / s2s_ad |")
        print("| --- | --- | --- |")
        for name, t in results.items():
            print(f"| {name} | {t * 1e6:.0f} | {t / results['s2s_ad']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
