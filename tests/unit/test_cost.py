import numpy as np
import pytest
from conftest import central_difference, relative_error
from reference import plain_cost_gradient
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


# --- the fast gradient against the plain formula (tests/unit/reference.py) ---------------------


@pytest.mark.parametrize("activation", zl.ACTIVATIONS)
@pytest.mark.parametrize(
    "hidden, output_dim, n", [((), 1, 1), ((), 2, 5), ((4,), 1, 1), ((5, 1, 3), 3, 4), ((6, 5, 4), 2, 9)]
)
def test_cost_and_gradient_match_the_plain_formula(activation, hidden, output_dim, n):
    arch = zl.Architecture(3, hidden, output_dim, activation)
    net = zl.Network.init(arch, rng=len(hidden), bias_std=0.5)
    rng = np.random.default_rng(n)
    X, Y = rng.standard_normal((n, 3)), rng.standard_normal((n, output_dim))
    c_plain, g_plain = plain_cost_gradient(net, X, Y)
    c, g = zl.cost_and_gradient(net, X, Y)
    assert g.shape == (arch.num_params,)
    assert abs(c - c_plain) <= ROUNDOFF_RTOL * c_plain
    assert relative_error(g, g_plain) < ROUNDOFF_RTOL
    assert np.array_equal(zl.cost_gradient(net, X, Y), g)


def test_tanh_derivative_from_the_activations_is_exact():
    """cost_and_gradient and jacobian read tanh' = 1 − A² off the forward pass: the same bits as
    evaluating the activation's derivative at the pre-activations."""
    from zlnotes.jacobian import _derivatives

    arch = zl.Architecture(3, (5, 4), 2, "tanh")
    net = zl.Network.init(arch, rng=2)
    X = np.random.default_rng(3).standard_normal((20, 3)) * 3
    pre, post = net.pre_and_post_activations(X)
    for fast, Z in zip(_derivatives(net, pre, post), pre):
        assert np.array_equal(fast, arch.sigma.derivative(Z))


def test_cost_gradient_does_not_form_d():
    """The gradient's extra memory is a few N × M_ℓ arrays, far below the size of D."""
    import tracemalloc

    arch = zl.Architecture(8, (64, 64), 4, "relu")
    net = zl.Network.init(arch, rng=0)
    X = np.random.default_rng(1).standard_normal((200, 8))
    Y = np.random.default_rng(2).standard_normal((200, 4))
    zl.cost_gradient(net, X, Y)
    tracemalloc.start()
    zl.cost_gradient(net, X, Y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    d_bytes = 200 * 4 * arch.num_params * 8
    assert peak < 0.05 * d_bytes


# --- CostFunction: buffers reused across calls -------------------------------------------------


@pytest.mark.parametrize("activation", zl.ACTIVATIONS)
@pytest.mark.parametrize("hidden", [(), (4,), (5, 1, 3)])
def test_cost_function_matches_the_plain_formula_and_the_network(activation, hidden):
    arch = zl.Architecture(3, hidden, 2, activation)
    rng = np.random.default_rng(len(hidden))
    X, Y = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    f = zl.CostFunction(arch, X, Y)
    for seed in range(3):  # one instance, several points: nothing leaks between calls
        net = zl.Network.init(arch, rng=seed, bias_std=0.5)
        c, g = f(net.flat())
        c_plain, g_plain = plain_cost_gradient(net, X, Y)
        assert relative_error(g, g_plain) < ROUNDOFF_RTOL
        assert abs(c - c_plain) <= ROUNDOFF_RTOL * c_plain
        # the forward pass is Network's, operation for operation: the cost agrees to the bit
        assert c == zl.cost(net, X, Y)


def test_cost_function_calls_are_independent_of_history():
    arch = zl.Architecture(4, (6, 5), 3, "tanh")
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((9, 4)), rng.standard_normal((9, 3))
    f = zl.CostFunction(arch, X, Y)
    Z1, Z2 = (zl.Network.init(arch, rng=s).flat() for s in (1, 2))
    c1, g1 = f(Z1)
    f(Z2)
    c1_again, g1_again = zl.CostFunction(arch, X, Y)(Z1)
    assert c1 == c1_again and np.array_equal(g1, g1_again)
    out = np.full(arch.num_params, np.nan)
    c, g = f(Z1, out=out)
    assert g is out and c == c1 and np.array_equal(out, g1)


def test_activation_helpers_write_the_activation_values():
    from zlnotes.activations import derivative_into, value_into

    Z = np.random.default_rng(4).standard_normal((6, 5)) * 3
    Z[0, :2] = 0.0  # the kink of the ReLU-like activations
    for name in zl.ACTIVATIONS:
        sigma = zl.activation(name)
        A = value_into(sigma, Z, np.empty_like(Z))
        assert np.array_equal(A, sigma.value(Z)), name
        assert np.array_equal(derivative_into(sigma, Z, A, np.empty_like(Z)), sigma.derivative(Z)), name


def test_cost_function_bad_input():
    arch = zl.Architecture(3, (4,), 2, "tanh")
    X, Y = np.zeros((5, 3)), np.zeros((5, 2))
    f = zl.CostFunction(arch, X, Y)
    Z = np.zeros(arch.num_params)
    with pytest.raises(TypeError, match="arch must be a zlnotes.Architecture"):
        zl.CostFunction("tanh", X, Y)
    with pytest.raises(ValueError, match="X must have input_dim=3 columns"):
        zl.CostFunction(arch, X[:, :2], Y)
    with pytest.raises(ValueError, match="Y must have 5 rows"):
        zl.CostFunction(arch, X, Y[:4])
    with pytest.raises(ValueError, match=rf"Z \(flat parameters\) must have length {arch.num_params}"):
        f(Z[:-1])
    with pytest.raises(ValueError, match="Z \\(flat parameters\\) must contain only finite values"):
        f(np.full(arch.num_params, np.inf))
    with pytest.raises(
        ValueError, match=rf"out must have shape \({arch.num_params},\); got shape \({arch.num_params + 1},\)"
    ):
        f(Z, out=np.empty(arch.num_params + 1))
    with pytest.raises(TypeError, match="out must have dtype float64; got dtype float32"):
        f(Z, out=np.empty(arch.num_params, dtype=np.float32))
    with pytest.raises(ValueError, match="out must be contiguous"):
        f(Z, out=np.empty(2 * arch.num_params)[::2])
    frozen = np.empty(arch.num_params)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        f(Z, out=frozen)
    with pytest.raises(TypeError, match="out must be a numpy array"):
        f(Z, out=[0.0] * arch.num_params)
    with pytest.raises(ValueError, match="out must not share memory with Z"):
        f(Z, out=Z)


@pytest.mark.parametrize("layout", ["transposed", "column slice", "fortran"])
def test_cost_function_uses_x_as_given(layout):
    """BLAS's last bits depend on the memory layout: X is not copied, so the cost agrees with
    zl.cost (Network's forward pass on the same array) to the bit whatever the layout (a
    C-ordered copy of X differs in the last bit for several of these seeds)."""
    arch = zl.Architecture(8, (1,), 4, "tanh")
    rng = np.random.default_rng(0)
    base = rng.standard_normal((64, 24))
    X = {"transposed": base[:, :8].T.copy().T, "column slice": base[:, ::3], "fortran": np.asfortranarray(base[:, :8])}[
        layout
    ]
    assert X.shape == (64, 8) and not X.flags.c_contiguous
    Y = rng.standard_normal((64, 4))
    for seed in range(50):
        net = zl.Network.init(arch, rng=seed)
        c, g = zl.cost_and_gradient(net, X, Y)
        assert c == zl.cost(net, X, Y)
        assert relative_error(g, plain_cost_gradient(net, X, Y)[1]) < ROUNDOFF_RTOL
