"""Losses and one_hot: values against numpy, MindSpore's gradient conventions."""

from __future__ import annotations

import numpy as np
import pytest

from s2s_ad import ArgumentError, ArgumentValueError, Tensor, nn, ops

LOGITS = np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]], np.float64)
CLASSES = np.array([1, 2], np.int32)


# Plain numpy unless a test asks for both backends (the ``mode`` fixture applies after this).
pytestmark = pytest.mark.usefixtures("pynative")


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_softmax_cross_entropy_value_and_gradients(reduction):
    labels = np.eye(3)[CLASSES]
    ce = nn.SoftmaxCrossEntropyWithLogits(reduction=reduction)
    per_row = -(labels * np.log(softmax(LOGITS))).sum(-1)
    expected = {"none": per_row, "mean": per_row.mean(), "sum": per_row.sum()}[reduction]
    np.testing.assert_allclose(ce(Tensor(LOGITS), Tensor(labels)).asnumpy(), expected, rtol=1e-12)
    g_logits, g_labels = ops.grad(ce, grad_position=(0, 1))(Tensor(LOGITS), Tensor(labels))
    scale = {"none": 1.0, "mean": 1.0 / 2, "sum": 1.0}[reduction]
    np.testing.assert_allclose(g_logits.asnumpy(), scale * (softmax(LOGITS) - labels), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(g_labels.asnumpy(), np.zeros_like(labels))


def test_softmax_cross_entropy_gradient_is_softmax_minus_labels_for_any_labels():
    # MindSpore's rule treats the labels as a distribution: softmax - labels even when they do
    # not sum to one (the seed's zero labels give the gradient 0.5 per logit).
    labels = np.array([[0.0, 0.0, 0.0], [0.5, 0.9, 0.0]])
    ce = nn.SoftmaxCrossEntropyWithLogits()
    value = ce(Tensor(LOGITS), Tensor(labels)).asnumpy()
    np.testing.assert_allclose(value, -(labels * np.log(softmax(LOGITS))).sum(-1), rtol=1e-12, atol=1e-15)
    g = ops.grad(ce)(Tensor(LOGITS), Tensor(labels))
    np.testing.assert_allclose(g.asnumpy(), softmax(LOGITS) - labels, rtol=1e-12, atol=1e-15)


def test_softmax_cross_entropy_is_stable_for_large_logits():
    logits = np.array([[1000.0, 0.0, -1000.0]])
    labels = np.array([[0.0, 1.0, 0.0]])
    ce = nn.SoftmaxCrossEntropyWithLogits()
    np.testing.assert_allclose(ce(Tensor(logits), Tensor(labels)).asnumpy(), [1000.0])
    g = ops.grad(ce)(Tensor(logits), Tensor(labels)).asnumpy()
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [[1.0, -1.0, 0.0]], atol=1e-12)


def test_sparse_labels_match_one_hot_labels(mode):
    sparse = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    dense = nn.SoftmaxCrossEntropyWithLogits(sparse=False, reduction="mean")
    logits = Tensor(LOGITS.astype(np.float32))
    classes = Tensor(CLASSES)
    a = sparse(logits, classes)
    b = dense(logits, Tensor(np.eye(3, dtype=np.float32)[CLASSES]))
    assert a.asnumpy().dtype == np.float32
    np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)
    g = ops.grad(sparse)(logits, classes)
    np.testing.assert_allclose(g.asnumpy(), (softmax(LOGITS) - np.eye(3)[CLASSES]) / 2, rtol=1e-5, atol=1e-7)


def test_one_hot_values_axis_and_out_of_range():
    idx = Tensor(np.array([0, 2, 5, -1], np.int64))
    np.testing.assert_array_equal(ops.one_hot(idx, 3).asnumpy(), np.eye(3)[[0, 2]].tolist() + [[0, 0, 0]] * 2)
    got = ops.OneHot(axis=0)(Tensor(np.array([1, 0], np.int32)), 3, 5.0, -1.0).asnumpy()
    np.testing.assert_array_equal(got, [[-1, 5], [5, -1], [-1, -1]])


def test_one_hot_on_value_is_differentiable():
    def f(on):
        return ops.one_hot(Tensor(np.array([1, 0, 1], np.int32)), 2, on, 0.0).sum()

    assert float(ops.grad(f)(Tensor(np.array(2.0))).asnumpy()) == 3.0


def test_one_hot_errors():
    with pytest.raises(ArgumentError, match="indices must be an integer tensor"):
        ops.one_hot(Tensor(np.array([1.0])), 3)
    with pytest.raises(ArgumentError, match="depth must be a positive int"):
        ops.one_hot(Tensor(np.array([1])), 0)


def test_loss_arguments_are_checked():
    with pytest.raises(ArgumentValueError, match="reduction must be one of"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ArgumentError, match="sparse must be a bool"):
        nn.SoftmaxCrossEntropyWithLogits(sparse=1)
