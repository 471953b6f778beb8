import numpy as np
import pytest
from conftest import central_difference, relative_error
from tolerances import FD_RTOL, FD_STEP, ROUNDOFF_RTOL

import zlnotes as zl


def test_cost_is_half_mean_squared_error(small_problem):
    net, X, Y = small_problem
    F = net.forward(X)
    assert np.isclose(zl.cost(net, X, Y), np.sum((F - Y) ** 2) / (2 * X.shape[0]), rtol=1e-15)
    assert np.allclose(zl.output_gradient(net, X, Y), (F - Y).ravel() / X.shape[0], rtol=1e-15)
    # C = (N/2) |∇_x C|²
    g = zl.output_gradient(net, X, Y)
    assert np.isclose(zl.cost(net, X, Y), X.shape[0] / 2 * g @ g, rtol=1e-14)


@pytest.mark.parametrize("activation", zl.ACTIVATIONS)
def test_cost_gradient_matches_central_differences(activation):
    arch = zl.Architecture(3, (5, 4), 2, activation)
    net = zl.Network.init(arch, rng=7, bias_std=0.5)
    X = np.random.default_rng(8).standard_normal((6, 3))
    Y = np.random.default_rng(9).standard_normal((6, 2))
    fd = central_difference(lambda Z: zl.cost(zl.Network.from_flat(arch, Z), X, Y), net.flat(), FD_STEP)[0]
    grad = zl.cost_gradient(net, X, Y)
    assert grad.shape == (arch.num_params,)
    assert relative_error(grad, fd) < FD_RTOL


@pytest.mark.parametrize("hidden", [(), (4,), (5, 4, 3)])
def test_cost_gradient_is_dt_times_output_gradient(hidden):
    arch = zl.Architecture(3, hidden, 2, "smooth_relu")
    net = zl.Network.init(arch, rng=1)
    X = np.random.default_rng(2).standard_normal((7, 3))
    Y = np.random.default_rng(3).standard_normal((7, 2))
    c, grad = zl.cost_and_gradient(net, X, Y)
    assert c == zl.cost(net, X, Y)
    assert relative_error(grad, zl.jacobian(net, X).T @ zl.output_gradient(net, X, Y)) < ROUNDOFF_RTOL


def test_bad_targets(small_problem):
    net, X, Y = small_problem
    with pytest.raises(ValueError, match="Y must have 6 rows"):
        zl.cost(net, X, Y[:5])
    with pytest.raises(ValueError, match="Y must have output_dim=2 columns"):
        zl.cost_gradient(net, X, Y[:, :1])
    Y = Y.copy()
    Y[0, 0] = np.nan
    with pytest.raises(ValueError, match="Y must contain only finite values"):
        zl.cost(net, X, Y)
