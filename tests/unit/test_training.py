import numpy as np
import pytest
from tolerances import ROUNDOFF_RTOL

import zlnotes as zl


@pytest.fixture
def problem():
    d = zl.generic_data(6, 6, 1, rng=0)
    net = zl.Network.init(zl.Architecture(6, (12,), 1, "tanh"), rng=1)
    return net, d.X, d.Y


def test_steps_are_forward_euler(problem):
    net, X, Y = problem
    lr = 0.1
    final, hist = zl.gradient_descent(net, X, Y, lr, 3)
    Z = net.flat()
    for _ in range(3):
        Z = Z - lr * zl.cost_gradient(zl.Network.from_flat(net.arch, Z), X, Y)
    # the run reuses one CostFunction's buffers: the same operations, so the same bits
    assert np.array_equal(final.flat(), Z)
    assert hist.steps == 3 and hist.status == "max_steps"
    assert hist.cost[0] == zl.cost(net, X, Y)
    assert np.isclose(hist.cost[-1], zl.cost(final, X, Y), rtol=ROUNDOFF_RTOL)
    assert np.isclose(hist.grad_norm[0], np.linalg.norm(zl.cost_gradient(net, X, Y)), rtol=ROUNDOFF_RTOL)


def test_cost_decreases_and_target_stops(problem):
    net, X, Y = problem
    target = 1e-3 * zl.cost(net, X, Y)
    final, hist = zl.gradient_descent(net, X, Y, 0.5, 5000, target_cost=target)
    assert hist.status == "target_reached"
    assert hist.cost[-1] <= target < hist.cost[-2]


def test_ntk_record(problem):
    net, X, Y = problem
    final, hist = zl.gradient_descent(net, X, Y, 0.1, 10, record=4)
    assert list(hist.ntk_steps) == [0, 4, 8, 10]  # every 4 steps, plus the last
    lam = np.linalg.eigvalsh(zl.ntk(final, X))
    assert np.isclose(hist.lambda_min[-1], lam[0], rtol=1e-10)
    assert hist.rank[-1] == zl.jacobian_rank(final, X) == 6
    _, hist = zl.gradient_descent(net, X, Y, 0.1, 10, record=[2, 3])
    assert list(hist.ntk_steps) == [2, 3, 10]
    _, hist = zl.gradient_descent(net, X, Y, 0.1, 10)
    assert hist.ntk_steps.size == 0


def test_divergence_is_reported(problem):
    net, X, Y = problem
    final, hist = zl.gradient_descent(net, X, 1e3 * Y, 1e6, 50)
    assert hist.status == "diverged"
    assert np.all(np.isfinite(final.flat()))


def test_bad_arguments(problem):
    net, X, Y = problem
    with pytest.raises(ValueError, match=r"lr must be a finite real number in \(0.0, inf\]"):
        zl.gradient_descent(net, X, Y, 0.0, 5)
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        zl.gradient_descent(net, X, Y, 0.1, -1)
    with pytest.raises(ValueError, match="target_cost must be a finite real number"):
        zl.gradient_descent(net, X, Y, 0.1, 5, target_cost=np.nan)
    with pytest.raises(TypeError, match="record must be"):
        zl.gradient_descent(net, X, Y, 0.1, 5, record=2.5)
    with pytest.raises(TypeError, match="record must be"):
        zl.gradient_descent(net, X, Y, 0.1, 5, record=True)
    with pytest.raises(TypeError, match=r"record\[1\] must be an integer >= 0"):
        zl.gradient_descent(net, X, Y, 0.1, 5, record=[1, 2.0])
    with pytest.raises(TypeError, match="progress must be True or False"):
        zl.gradient_descent(net, X, Y, 0.1, 5, progress="no")
    with pytest.raises(ValueError, match="Y must have 6 rows"):
        zl.gradient_descent(net, X, Y[:3], 0.1, 5)


def test_divergence_returns_the_last_finite_network_and_its_history(problem):
    net, X, Y = problem
    final, hist = zl.gradient_descent(net, X, 1e3 * Y, 1e6, 50)
    assert hist.status == "diverged"
    # the history ends at the returned network, which is finite
    assert np.isfinite(zl.cost(final, X, 1e3 * Y))
    assert np.isclose(hist.cost[-1], zl.cost(final, X, 1e3 * Y), rtol=1e-12)
    # replaying the history's number of steps by hand lands on the returned network
    Z = net.flat()
    for _ in range(hist.steps):
        Z = Z - 1e6 * zl.cost_gradient(zl.Network.from_flat(net.arch, Z), X, 1e3 * Y)
    assert np.array_equal(Z, final.flat())


def test_non_finite_start_and_bad_record(problem):
    net, X, Y = problem
    with pytest.raises(ValueError, match="not finite at the starting point"):
        zl.gradient_descent(net, X, 1e200 * Y, 0.1, 5)
    with pytest.raises(ValueError, match="record: steps to examine must be <= steps = 5"):
        zl.gradient_descent(net, X, Y, 0.1, 5, record=[2, 99])
    with pytest.raises(ValueError, match="record must be an integer >= 1"):
        zl.gradient_descent(net, X, Y, 0.1, 5, record=0)
    with pytest.raises(TypeError, match=r"lr must be a finite real number in \(0.0, inf\]"):
        zl.gradient_descent(net, X, Y, True, 5)
    with pytest.raises(TypeError, match="net must be a zlnotes.Network"):
        zl.gradient_descent(None, X, Y, 0.1, 5)
