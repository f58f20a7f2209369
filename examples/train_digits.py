"""Train a LeNet-style network on scikit-learn's 8x8 digits, MindSpore style.

The data set ships with scikit-learn (``sklearn.datasets.load_digits``: 1797 grey 8x8
images of the digits 0-9), so nothing is downloaded; install it with
``pip install "s2s_ad[examples]"``. The network, the loss, the optimizer and the training
step are written as a MindSpore program is: ``nn.Cell`` layers, ``SoftmaxCrossEntropyWithLogits``,
``nn.Momentum`` and ``nn.TrainOneStepCell``. Each training step (forward pass, gradient and
Momentum update of every Parameter) is one compiled program, compiled at the first step.

    python examples/train_digits.py              # GRAPH mode (Numba), 20 epochs
    python examples/train_digits.py --pynative   # PYNATIVE mode (NumPy)
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

import s2s_ad as ms
from s2s_ad import Tensor, nn


class LeNet(nn.Cell):
    """Two convolution + ReLU + max-pooling stages, then three dense layers."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, pad_mode="same")
        self.conv2 = nn.Conv2d(8, 16, 3, pad_mode="same")
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Dense(16 * 2 * 2, 64, weight_init="he_uniform")
        self.fc2 = nn.Dense(64, 32, weight_init="he_uniform")
        self.fc3 = nn.Dense(32, num_classes, weight_init="he_uniform")

    def construct(self, x):
        x = self.pool(self.relu(self.conv1(x)))  # (N, 8, 4, 4)
        x = self.pool(self.relu(self.conv2(x)))  # (N, 16, 2, 2)
        x = x.reshape((x.shape[0], -1))
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


def load_data(seed: int = 0, test_fraction: float = 0.2) -> tuple[np.ndarray, ...]:
    """The digits as float32 images (N, 1, 8, 8) scaled to [0, 1] and int32 labels, split at
    random (by ``seed``) into training and test sets."""
    from sklearn.datasets import load_digits  # the examples extra; imported only when the example runs

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(len(labels) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


def progress(epoch: int, epochs: int, done: int, total: int, loss: float, width: int = 30) -> str:
    """A one-line progress bar: ``epoch 3/12 [#########.....] 40/44 loss 0.1234``."""
    filled = int(width * done / total)
    return f"epoch {epoch}/{epochs} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} loss {loss:.4f}"


def accuracy(net: nn.Cell, images: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of ``images`` whose largest logit is at the right label."""
    logits = net(Tensor(images)).asnumpy()
    return float((logits.argmax(axis=1) == labels).mean())


def train(
    epochs: int = 20,
    batch_size: int = 32,
    learning_rate: float = 0.02,
    momentum: float = 0.9,
    max_steps: int | None = None,
    seed: int = 0,
    quiet: bool = False,
    evaluate: bool = True,
) -> dict[str, Any]:
    """Train :class:`LeNet` and return the losses, the test accuracy (None without
    ``evaluate``) and the times. ``max_steps`` stops early (a short run for the tests)."""
    ms.set_seed(seed)
    x_train, y_train, x_test, y_test = load_data(seed)
    net = LeNet()
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    optimizer = nn.Momentum(net.trainable_params(), learning_rate=learning_rate, momentum=momentum)
    train_step = nn.TrainOneStepCell(nn.WithLossCell(net, loss_fn), optimizer)
    train_step.set_train()

    rng = np.random.default_rng(seed)
    steps_per_epoch = len(y_train) // batch_size  # full batches only: one compiled program
    losses: list[float] = []
    start = time.perf_counter()
    first_step = None
    step = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(y_train))
        for k in range(steps_per_epoch):
            batch = order[k * batch_size : (k + 1) * batch_size]
            t0 = time.perf_counter()
            loss = float(train_step(Tensor(x_train[batch]), Tensor(y_train[batch])).asnumpy())
            if first_step is None:
                first_step = time.perf_counter() - t0  # includes compiling the step
            losses.append(loss)
            step += 1
            if not quiet and ((k + 1) % 4 == 0 or k + 1 == steps_per_epoch):
                print("\r" + progress(epoch, epochs, k + 1, steps_per_epoch, loss), end="", flush=True)
            if max_steps is not None and step >= max_steps:
                break
        if not quiet:
            print()
        if max_steps is not None and step >= max_steps:
            break
    train_time = time.perf_counter() - start
    acc = accuracy(net, x_test, y_test) if evaluate else None
    return {
        "losses": losses,
        "test_accuracy": acc,
        "train_time": train_time,
        "first_step_time": first_step,
        "steps": step,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--pynative", action="store_true", help="run in PYNATIVE mode (NumPy) instead of GRAPH mode")
    args = parser.parse_args(argv)
    ms.set_context(mode=ms.PYNATIVE_MODE if args.pynative else ms.GRAPH_MODE)
    result = train(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr)
    print(
        f"test accuracy {result['test_accuracy']:.1%} after {result['steps']} steps; "
        f"training took {result['train_time']:.1f} s (first step, with compilation: {result['first_step_time']:.1f} s)"
    )
    return 0 if result["test_accuracy"] >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
