"""Training: Parameter updates in compiled code (``ops.assign``), the optimizers against
NumPy references of MindSpore's update rules, parameter groups, learning-rate schedules, and
``TrainOneStepCell`` compiling forward, gradient and update as one program."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

import s2s_ad
from s2s_ad import GradOperation, Parameter, ParameterTuple, Tensor, nn, ops
from s2s_ad.api import generated_source
from s2s_ad.errors import ArgumentError, ArgumentValueError, ShapeError, UnsupportedSyntaxError


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a.asnumpy() if isinstance(a, Tensor) else a), b, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- ops.assign
class Counter(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.ones((2, 3), np.float32)), name="w")
        self.step = Parameter(Tensor(np.zeros((), np.int32)), name="step")
        self.assign = ops.Assign()

    def construct(self, x):
        before = self.w.sum()
        self.assign(self.w, self.w * x)
        ops.assign_add(self.step, 1)
        ops.assign_sub(self.w, 0.5)
        return before, self.w.sum()  # the read after the assignments sees the new value


def test_assign_updates_parameters_in_place(mode):
    net = Counter()
    w = net.w
    x = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    before, after = net(x)
    close(before, 6.0)
    close(after, 15.0 - 3.0)
    close(net.w, np.arange(6).reshape(2, 3) - 0.5)
    assert net.w is w and net.step.asnumpy().dtype == np.int32
    net(x)
    close(net.w, (np.arange(6).reshape(2, 3) - 0.5) * np.arange(6).reshape(2, 3) - 0.5)
    assert int(net.step.asnumpy()) == 2


def test_assign_outside_compiled_code():
    p = Parameter(Tensor(np.zeros(3, np.float32)), name="p")
    assert ops.assign(p, Tensor(np.ones(3, np.float32))) is p
    ops.assign_add(p, 2.0)
    close(p, [3.0, 3.0, 3.0])
    with pytest.raises(ArgumentError, match="must be a Parameter"):
        ops.assign(Tensor(np.zeros(3, np.float32)), 1.0)
    for update in (ops.assign, ops.assign_add):
        with pytest.raises(ShapeError, match=r"shape \(2,\) to Parameter p of shape \(3,\)"):
            update(p, np.ones(2, np.float32))


class AssignsTensor(nn.Cell):
    def construct(self, x):
        ops.assign(x, x + 1)
        return x


class AssignsWrongShape(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.zeros((3,), np.float32)), name="w")

    def construct(self, x):
        ops.assign(self.w, x)
        return x


def test_assign_errors(mode):
    x = Tensor(np.ones((2,), np.float32))
    with pytest.raises(ArgumentError, match=r"test_training.py:\d+: Assign: the variable to assign must be a Param"):
        AssignsTensor()(x)
    with pytest.raises(ShapeError, match=r"test_training.py:\d+: .*shape \(2,\) to Parameter w of shape \(3,\)"):
        AssignsWrongShape()(x)


def test_grad_of_a_network_that_assigns_makes_the_assignments_once(mode):
    # the assignments are not differentiated, but a result read after one depends on x through
    # the assigned value: d/dx sum(w * x - 0.5) = w; the derivative reads w before them
    net = Counter()
    g = s2s_ad.grad(net)(Tensor(np.full((2, 3), 2.0, np.float32)))
    np.testing.assert_allclose(g.asnumpy(), np.ones((2, 3)))
    np.testing.assert_allclose(net.w.asnumpy(), np.full((2, 3), 1.5))
    assert int(net.step.asnumpy()) == 1
    g = s2s_ad.grad(net)(Tensor(np.full((2, 3), 2.0, np.float32)))
    np.testing.assert_allclose(g.asnumpy(), np.full((2, 3), 1.5))
    np.testing.assert_allclose(net.w.asnumpy(), np.full((2, 3), 2.5))
    assert int(net.step.asnumpy()) == 2


class AssignsInALoop(nn.Cell):
    """Parameter updates inside a `for` loop kept as a loop and a `while` loop on a tensor."""

    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.ones(3, np.float32)), name="w")
        self.n = Parameter(Tensor(np.zeros((), np.float32)), name="n")

    def construct(self, x):
        s = x * 0
        for _ in range(10):
            ops.assign_add(self.n, 1.0)
            ops.assign(self.w, self.w * 0.5 + x)
            s = s + self.w * x
        while self.n < 13.0:  # the test reads the carried Parameter
            ops.assign_add(self.n, 1.0)
            s = s + self.n
        return s


def _assigns_in_a_loop_reference(w, n, x):
    s = x * 0
    for _ in range(10):
        n, w = n + 1, w * 0.5 + x
        s = s + w * x
    while n < 13.0:
        n += 1
        s = s + n
    return s, w, n


def test_assign_inside_loops_kept_as_loops(mode):
    x = np.array([1.0, 2.0, -1.0], np.float32)
    net = AssignsInALoop()
    src = generated_source(net, Tensor(x))
    assert "for " in src and "while " in src  # kept as loops, not unrolled
    w, n = np.ones(3), 0.0
    for _ in range(2):  # the second call starts from the updated Parameters
        out = net(Tensor(x))
        s, w, n = _assigns_in_a_loop_reference(w, n, x)
        close(out, s)
        close(net.w, w)
        close(net.n, n)
    # the derivative: d/dx sum(s); the loop's assignments are made once, as in the call
    net = AssignsInALoop()
    g = s2s_ad.grad(lambda x: net(x).sum())(Tensor(x.astype(np.float64)))
    eps, ref = 1e-6, []
    for k in range(3):
        d = np.zeros(3)
        d[k] = eps
        ref.append(
            (
                _assigns_in_a_loop_reference(np.ones(3), 0.0, x + d)[0].sum()
                - _assigns_in_a_loop_reference(np.ones(3), 0.0, x - d)[0].sum()
            )
            / (2 * eps)
        )
    close(g, ref, 1e-4)
    close(net.n, 13.0)


class AssignsUnderATensorIf(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.ones(3, np.float32)), name="w")
        self.k = Parameter(Tensor(np.zeros((), np.int32)), name="k")

    def construct(self, x):
        ops.assign_add(self.k, 1)  # assigned before the `if`, read in the branch that does not assign it
        if x.sum() > 0:
            ops.assign_add(self.w, x)
        else:
            ops.assign(self.w, x * 2)
            ops.assign_add(self.k, 10)
        return self.w * 3 + self.k


def test_assign_under_a_tensor_if(mode):
    x = np.array([1.0, 2.0, -1.0], np.float32)
    net = AssignsUnderATensorIf()
    out = net(Tensor(x))
    close(net.w, 1 + x)
    assert int(net.k.asnumpy()) == 1 and net.k.asnumpy().dtype == np.int32
    close(out, 3 * (1 + x) + 1)
    out = net(Tensor(-3 * x))
    close(net.w, -6 * x)
    assert int(net.k.asnumpy()) == 12
    close(out, -18 * x + 12)


class AssignsAndReturnsUnderATensorIf(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.ones(3, np.float32)), name="w")

    def construct(self, x):
        if x.sum() > 0:
            ops.assign(self.w, x)
            return x
        return x * 2


def test_assign_under_a_returning_tensor_if_is_an_error(mode):
    with pytest.raises(UnsupportedSyntaxError, match=r"test_training.py:\d+.*Parameter is assigned under the tensor"):
        AssignsAndReturnsUnderATensorIf()(Tensor(np.ones(3, np.float32)))


# ----------------------------------------------------------------------------- optimizers
def _data(seed=0, n=16, d_in=5, d_out=4):
    rng = np.random.default_rng(seed)
    return Tensor(rng.standard_normal((n, d_in)).astype(np.float32)), Tensor(
        rng.standard_normal((n, d_out)).astype(np.float32)
    )


def _net(seed=0):
    s2s_ad.set_seed(seed)
    return nn.Dense(5, 4)


def _ref_sgd(momentum=0.0, dampening=0.0, nesterov=False, wd=0.0):
    state = {}

    def update(k, p, g, lr, step):
        g = g + wd * p
        if momentum == 0.0:
            return p - lr * g
        a = g if step == 0 else momentum * state[k] + (1 - dampening) * g
        state[k] = a
        return p - lr * (g + momentum * a) if nesterov else p - lr * a

    return update


def _ref_momentum(momentum, nesterov=False, wd=0.0, loss_scale=1.0):
    state = {}

    def update(k, p, g, lr, step):
        g = g / loss_scale + wd * p
        a = momentum * state.get(k, 0.0) + g
        state[k] = a
        return p - lr * (g + momentum * a) if nesterov else p - lr * a

    return update


def _ref_adam(b1=0.9, b2=0.999, eps=1e-8, nesterov=False, wd=0.0):
    state = {}

    def update(k, p, g, lr, step):
        g = g + wd * p
        m, v = state.get(k, (0.0, 0.0))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        state[k] = (m, v)
        t = step + 1
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        num = b1 * m + (1 - b1) * g if nesterov else m
        return p - lr_t * num / (np.sqrt(v) + eps)

    return update


def _ref_adamw(b1=0.9, b2=0.999, eps=1e-6, wd=0.0):
    state = {}

    def update(k, p, g, lr, step):
        m, v = state.get(k, (0.0, 0.0))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        state[k] = (m, v)
        return p - lr * (m / (np.sqrt(v) + eps) + wd * p)

    return update


CASES = {
    "sgd": (lambda ps: nn.SGD(ps, 0.1), lambda: _ref_sgd()),
    "sgd_momentum_dampening": (
        lambda ps: nn.SGD(ps, 0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
        lambda: _ref_sgd(0.8, 0.3, wd=0.01),
    ),
    "sgd_nesterov": (lambda ps: nn.SGD(ps, 0.05, momentum=0.9, nesterov=True), lambda: _ref_sgd(0.9, nesterov=True)),
    "momentum": (lambda ps: nn.Momentum(ps, 0.1, 0.9), lambda: _ref_momentum(0.9)),
    "momentum_nesterov_wd_scale": (
        lambda ps: nn.Momentum(ps, 0.1, 0.9, weight_decay=0.1, loss_scale=4.0, use_nesterov=True),
        lambda: _ref_momentum(0.9, True, 0.1, 4.0),
    ),
    "adam": (lambda ps: nn.Adam(ps, 0.01), lambda: _ref_adam()),
    "adam_nesterov_wd": (
        lambda ps: nn.Adam(ps, 0.01, beta1=0.8, beta2=0.99, eps=1e-6, use_nesterov=True, weight_decay=0.05),
        lambda: _ref_adam(0.8, 0.99, 1e-6, True, 0.05),
    ),
    "adamw": (lambda ps: nn.AdamWeightDecay(ps, 0.01, weight_decay=0.1), lambda: _ref_adamw(wd=0.1)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_optimizer_matches_reference(mode, case):
    make, ref_factory = CASES[case]
    ref = ref_factory()  # a fresh state per test
    net = _net()
    loss_net = nn.WithLossCell(net, nn.MSELoss())
    weights = ParameterTuple(net.trainable_params())
    opt = make(net.trainable_params())
    train = nn.TrainOneStepCell(loss_net, opt)
    x, y = _data()
    lr = float(opt.learning_rate.asnumpy())
    for step in range(3):
        start = [p.asnumpy().astype(np.float64) for p in weights]
        grads = [g.asnumpy().astype(np.float64) for g in GradOperation(get_by_list=True)(loss_net, weights)(x, y)]
        loss_before = float(loss_net(x, y).asnumpy())
        close(train(x, y), loss_before)
        for k, (p, p0, g) in enumerate(zip(weights, start, grads)):
            close(p, ref(k, p0, g, lr, step), 1e-4)
    assert int(opt.global_step.asnumpy()) == 3


def test_optimizer_called_on_its_own(mode):
    """An optimizer is a Cell: called with gradients, it is a compiled program of its own."""
    net = _net()
    opt = nn.SGD(net.trainable_params(), learning_rate=0.5)
    w0 = net.weight.asnumpy().copy()
    grads = (Tensor(np.ones((4, 5), np.float32)), Tensor(np.ones((4,), np.float32)))
    opt(grads)
    close(net.weight, w0 - 0.5)
    with pytest.raises(ArgumentValueError, match="expected one tuple of 2 gradients .*, got 1 gradients"):
        opt(grads[:1])


def test_parameter_groups(mode):
    net = _net()
    groups = [
        {"params": [net.weight], "weight_decay": 0.1, "lr": 0.5},
        {"params": [net.bias]},
        {"order_params": [net.bias, net.weight]},
    ]
    opt = nn.SGD(groups, learning_rate=0.1)
    assert [p.name for p in opt.parameters] == ["bias", "weight"]
    w0, b0 = net.weight.asnumpy().copy(), net.bias.asnumpy().copy()
    opt((Tensor(np.ones((4,), np.float32)), Tensor(np.ones((4, 5), np.float32))))
    close(net.weight, w0 - 0.5 * (1.0 + 0.1 * w0))
    close(net.bias, b0 - 0.1 * 1.0)
    with pytest.raises(ArgumentValueError, match="more than one parameter group"):
        nn.SGD([{"params": [net.weight]}, {"params": [net.weight]}])
    with pytest.raises(ArgumentValueError, match="'params'"):
        nn.SGD([{"lr": 0.1}])


def test_default_weight_decay_filter_skips_beta_and_gamma():
    gamma = Parameter(Tensor(np.ones(3, np.float32)), name="ln.gamma")
    w = Parameter(Tensor(np.ones(3, np.float32)), name="fc.weight")
    opt = nn.Momentum([gamma, w], 0.1, 0.9, weight_decay=0.5)
    assert opt.weight_decay_values == (0.0, 0.5)


class Schedule(nn.Cell):
    def construct(self, step):
        return 1.0 / (1.0 + ops.cast(step, s2s_ad.float32))


def test_learning_rate_schedules(mode):
    p = Parameter(Tensor(np.zeros(2, np.float32)), name="p")
    g = (Tensor(np.ones(2, np.float32)),)
    opt = nn.SGD([p], learning_rate=[0.5, 0.25])
    for _ in range(3):
        opt(g)
    close(p, -(0.5 + 0.25 + 0.25) * np.ones(2))  # the last rate is kept after the list ends
    q = Parameter(Tensor(np.zeros(2, np.float32)), name="q")
    opt = nn.SGD([q], learning_rate=Schedule())
    for _ in range(3):
        opt(g)
    close(q, -(1 + 1 / 2 + 1 / 3) * np.ones(2))
    # a rate held in a Parameter can be changed between steps without recompiling
    r = Parameter(Tensor(np.zeros(2, np.float32)), name="r")
    opt = nn.SGD([r], learning_rate=0.5)
    opt(g)
    opt.learning_rate.set_data(Tensor(np.float32(2.0)))
    opt(g)
    close(r, -2.5 * np.ones(2))


def test_optimizer_argument_errors():
    net = _net()
    with pytest.raises(ArgumentValueError, match="empty parameter list"):
        nn.Adam([])
    with pytest.raises(ArgumentValueError, match="beta1 must be in"):
        nn.Adam(net.trainable_params(), beta1=1.0)
    with pytest.raises(ArgumentError, match="momentum must be a number"):
        nn.Momentum(net.trainable_params(), 0.1, "0.9")
    with pytest.raises(ArgumentValueError, match="nesterov requires momentum"):
        nn.SGD(net.trainable_params(), nesterov=True)
    with pytest.raises(ArgumentError, match="optimizer must be"):
        nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), object())


# ----------------------------------------------------------------------------- one program
def test_train_step_is_one_program_and_loss_falls(mode):
    net = _net()
    loss_net = nn.WithLossCell(net, nn.MSELoss())
    train = nn.TrainOneStepCell(loss_net, nn.Momentum(net.trainable_params(), 0.1, 0.9))
    x, _ = _data()
    y = Tensor(x.asnumpy() @ np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4) + 0.5)  # a linear target
    src = generated_source(train, x, y)
    assert src.count("def ") == 1  # forward, gradient and update in one function
    assert "np.dot" in src and "moments_weight" in src
    losses = [float(train(x, y).asnumpy()) for _ in range(40)]
    assert losses[-1] < 0.05 * losses[0]
    assert len(s2s_ad.runtime.cache_for(train)) == 1  # compiled once


def test_sens_and_return_grad(mode):
    net = _net()
    loss_net = nn.WithLossCell(net, nn.MSELoss())
    x, y = _data()
    grads = GradOperation(get_by_list=True)(loss_net, ParameterTuple(net.trainable_params()))(x, y)
    w0 = net.weight.asnumpy().copy()
    train = nn.TrainOneStepCell(loss_net, nn.SGD(net.trainable_params(), 0.1), sens=2.0, return_grad=True)
    loss, got = train(x, y)
    for g, e in zip(got, grads):
        close(g, 2.0 * e.asnumpy())
    close(net.weight, w0 - 0.1 * 2.0 * grads[0].asnumpy())


def test_with_grad_cell(mode):
    net = _net()
    x, y = _data()
    expected = GradOperation(get_by_list=True)(
        nn.WithLossCell(net, nn.MSELoss()), ParameterTuple(net.trainable_params())
    )(x, y)
    got = nn.WithGradCell(net, nn.MSELoss())(x, y)
    for g, e in zip(got, expected):
        close(g, e.asnumpy())
    sens = Tensor(np.float32(3.0))
    got = nn.WithGradCell(nn.WithLossCell(net, nn.MSELoss()), sens=sens)(x, y)
    for g, e in zip(got, expected):
        close(g, 3.0 * e.asnumpy())


# ----------------------------------------------------------------------------- the digits example
EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "train_digits.py"


def test_train_digits_example_short_run(mode):
    """A short run of "train_digits.py" (the full run reaches >= 95% test accuracy): the loss
    falls, and in PYNATIVE mode the network is evaluated on the test set."""
    pytest.importorskip("sklearn", reason="the example needs scikit-learn (the examples extra)")
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # GRAPH mode compiles the training step only (compiling the evaluation too doubles the time)
    result = module.train(epochs=1, max_steps=40, learning_rate=0.05, quiet=True, evaluate=mode == "python")
    losses = result["losses"]
    assert result["steps"] == 40 and len(losses) == 40
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3, losses
    if mode == "python":
        assert result["test_accuracy"] > 0.3  # well above chance (0.1) after 40 steps
    line = module.progress(2, 20, 11, 44, 0.5)
    assert line.startswith("epoch 2/20 [#######") and line.endswith("11/44 loss 0.5000")


def test_wrapping_cells_keep_the_networks_parameter_names():
    # TrainOneStepCell, WithGradCell and optimizers do not prefix the network's Parameters (MindSpore's auto_prefix=False)
    from s2s_ad import nn as _nn

    class Two(_nn.Cell):
        def __init__(self):
            super().__init__()
            self.fc1 = _nn.Dense(3, 4)
            self.fc2 = _nn.Dense(4, 2)

        def construct(self, x):
            return self.fc2(self.fc1(x))

    net = Two()
    names = [p.name for p in net.trainable_params()]
    assert names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    loss = _nn.WithLossCell(net, _nn.MSELoss())
    step = _nn.TrainOneStepCell(loss, _nn.Momentum(net.trainable_params(), 0.1, 0.9))
    _nn.WithGradCell(net, _nn.MSELoss())
    assert [p.name for p in net.trainable_params()] == names
    assert [p.name for p in step.trainable_params()] == names
