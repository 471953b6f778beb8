"""Tests of zl.stationary_point: gradient descent, L-BFGS, Newton polish, honest outcome."""

import numpy as np
import pytest
from tolerances import ROUNDOFF_RTOL

import zlnotes as zl
from zlnotes.stationary import _fd_hessian
from zlnotes.symmetry import _balance

ROUNDING_FLOOR = 1e-13
"""|∇C| / |∇C(Z_0)| that the Newton polish reaches at a nondegenerate minimum of these small
problems: a few hundred ε, the rounding of a gradient of size O(1) summed over O(10) samples."""

CERTIFICATE = 1e-6
"""|P ∇_x C| / |∇_x C| at a converged point whose Jacobian is well conditioned (s_r / s_1 ≳ 1e-4):
the bound |∇_Z C| / s_r is then below 1e-13 / 1e-4 relative, and 1e-6 leaves a wide margin."""


@pytest.fixture
def tanh_problem():
    """A small underparametrized tanh problem (K = 11 < QN = 20) with a finite, nondegenerate minimizer."""
    data = zl.generic_data(20, 3, 1, rng=2)
    net = zl.Network.init(zl.Architecture(3, (2,), 1, "tanh"), rng=3)
    return net, data.X, data.Y


@pytest.fixture
def relu_problem():
    """A ReLU teacher plus small noise (K = 9 < QN = 40); from this start the run ends away from kinks."""
    arch = zl.Architecture(2, (2,), 1, "relu")
    gen = np.random.default_rng(0)
    data = zl.generic_data(40, 2, 1, rng=gen)
    teacher = zl.Network(arch, [np.array([[1.0, 0.3], [-0.4, 1.0]]), np.array([[1.0, -1.0]])],
                         [np.array([0.1, -0.2]), np.zeros(1)])
    Y = teacher.forward(data.X) + 0.03 * data.Y
    return zl.Network.init(arch, rng=gen), data.X, Y


def test_stationary_point_reports_honestly(tanh_problem):
    net, X, Y = tanh_problem
    sp = zl.stationary_point(net, X, Y, lr=0.1, gd_steps=200)
    assert sp.converged == (sp.grad_norm <= 1e-9 * sp.initial_grad_norm)
    assert sp.converged and sp.status == "converged"  # this small problem has a finite, non-degenerate minimizer
    assert np.isclose(sp.cost, zl.cost(sp.net, X, Y), rtol=ROUNDOFF_RTOL)
    assert np.isclose(sp.grad_norm, np.linalg.norm(zl.cost_gradient(sp.net, X, Y)), rtol=1e-6)
    assert np.isclose(sp.initial_grad_norm, np.linalg.norm(zl.cost_gradient(net, X, Y)), rtol=ROUNDOFF_RTOL)
    assert sp.gd_history.steps == 200
    assert sp.max_param == np.abs(sp.net.flat()).max()
    assert sp.path == ()  # not recorded unless asked


def test_newton_polish_reaches_the_rounding_floor(tanh_problem):
    net, X, Y = tanh_problem
    # no L-BFGS at all: gradient descent, then Newton alone (slow far out, damped; fast at the end), down to rounding
    sp = zl.stationary_point(net, X, Y, lr=0.1, gd_steps=200, max_iterations=0, newton_iterations=200,
                             polish_tol=0.0, record_path=True)
    assert sp.lbfgs_iterations == 0 and sp.newton_iterations >= 1
    assert sp.status == "converged" and sp.grad_norm <= ROUNDING_FLOOR * sp.initial_grad_norm
    # the path: end of gradient descent, then one entry per accepted Newton step, ending at the result
    assert len(sp.path) == 1 + sp.newton_iterations
    assert np.array_equal(sp.path[-1], sp.net.flat())
    final_gd = zl.gradient_descent(net, X, Y, 0.1, 200)[0]
    assert np.array_equal(sp.path[0], final_gd.flat())
    # Newton converges quadratically: the gradient norm along the Newton steps falls superlinearly at the end
    g = [np.linalg.norm(zl.cost_gradient(zl.Network.from_flat(net.arch, Z), X, Y)) for Z in sp.path]
    assert g[-1] < 1e-3 * g[-2] or g[-1] <= ROUNDING_FLOOR * sp.initial_grad_norm


def test_theorem_1_5_at_the_polished_point(tanh_problem):
    """At the converged point: P ∇_x C ≈ 0, C = (N/2)|P⊥∇_x C|², rank P⊥ ≥ QN − K, C > 0."""
    net, X, Y = tanh_problem
    sp = zl.stationary_point(net, X, Y, lr=0.1, gd_steps=200, polish_tol=0.0)
    D = zl.jacobian(sp.net, X)
    proj = zl.range_projector(D)
    gx = zl.output_gradient(sp.net, X, Y)
    s = zl.singular_values(D)
    assert np.linalg.norm(proj.P @ gx) <= sp.grad_norm / s[proj.rank - 1] * (1 + 1e-8) + 1e-15  # the certificate
    assert np.linalg.norm(proj.P @ gx) <= CERTIFICATE * np.linalg.norm(gx)
    N = X.shape[0]
    assert np.isclose(sp.cost, N / 2 * np.sum((proj.P_perp @ gx) ** 2), rtol=1e-10)
    K, QN = sp.net.arch.num_params, D.shape[0]
    assert QN - proj.rank >= QN - K and sp.cost > 0


def test_finite_difference_hessian_matches_the_gradient_of_a_quadratic():
    A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, -1.0], [0.0, -1.0, 4.0]])
    H = _fd_hessian(lambda z: A @ z + np.array([1.0, 0.0, -2.0]), np.array([0.5, -7.0, 30.0]))
    assert np.allclose(H, A, rtol=0, atol=1e-8) and np.array_equal(H, H.T)


def test_relu_rebalancing_keeps_the_function_and_ignores_rescaling_drift(relu_problem):
    net, X, Y = relu_problem
    sp = zl.stationary_point(net, X, Y, lr=0.1, gd_steps=300, polish_tol=0.0, newton_iterations=30,
                             restarts=1, max_iterations=500)
    assert sp.status == "converged" and sp.converged
    pre = sp.net.pre_and_post_activations(X)[0][0]
    assert np.abs(pre).min() > 1e-4  # no data point near a kink: a genuine smooth stationary point
    # the rescaling directions t_i = (w_i, b_i, -v_i) are in the null space of D: rank D <= K - H
    assert zl.jacobian_rank(sp.net, X) <= net.arch.num_params - 2
    # scale unit 0 by 1000 (incoming) and 1/1000 (outgoing): the same function, parameters far beyond 50
    W1, b1, W2 = (a.copy() for a in (sp.net.weights[0], sp.net.biases[0], sp.net.weights[1]))
    W1[0] *= 1e3
    b1[0] *= 1e3
    W2[:, 0] /= 1e3
    far = zl.Network(net.arch, [W1, W2], [b1, sp.net.biases[1]])
    assert np.allclose(far.forward(X), sp.net.forward(X), rtol=1e-12, atol=1e-12)
    balanced = zl.Network.from_flat(net.arch, _balance(net.arch, far.flat()))
    assert np.allclose(balanced.forward(X), sp.net.forward(X), rtol=1e-12, atol=1e-12)
    incoming = np.hypot(np.linalg.norm(balanced.weights[0], axis=1), balanced.biases[0])
    assert np.allclose(incoming, np.linalg.norm(balanced.weights[1], axis=0), rtol=1e-12)
    # restarted from the far representative: measured on the balanced one, it has not escaped
    # (it starts at a stationary point, so the relative target 1e-9 |∇C(far)| is below rounding: "stalled")
    again = zl.stationary_point(far, X, Y, lr=0.1, gd_steps=0, polish_tol=0.0, max_param=50.0)
    assert np.abs(far.flat()).max() > 50.0 and again.max_param < 50.0 and again.status != "escaped"
    assert again.grad_norm <= ROUNDING_FLOOR * sp.initial_grad_norm and np.isclose(again.cost, sp.cost, rtol=1e-9)


def test_balance_is_the_identity_for_tanh():
    arch = zl.Architecture(2, (3,), 1, "tanh")
    Z = zl.Network.init(arch, rng=0).flat()
    assert np.array_equal(_balance(arch, Z), Z)


def test_a_minimum_at_infinity_is_reported_as_an_escape():
    """A step target: one tanh unit fits it better and better as its weight grows without bound."""
    X = np.linspace(-1, 1, 21)[:, None] + 0.013
    Y = np.sign(X)
    net = zl.Network.init(zl.Architecture(1, (1,), 1, "tanh"), rng=0)
    sp = zl.stationary_point(net, X, Y, lr=0.1, gd_steps=100, max_iterations=300, restarts=1,
                             newton_iterations=20, max_param=20.0, record_path=True)
    assert sp.status == "escaped" and not sp.converged
    assert sp.max_param > 20.0 and abs(sp.net.weights[0][0, 0]) > 20.0  # the incoming weight: a step forms
    assert np.array_equal(sp.path[-1], sp.net.flat())
    # the cost fell along the way, but Theorem 1.5's identity is far from holding at the end
    D = zl.jacobian(sp.net, X)
    gx = zl.output_gradient(sp.net, X, Y)
    identity_error = X.shape[0] / 2 * np.sum((zl.range_projector(D).P @ gx) ** 2) / sp.cost
    assert sp.cost < zl.cost(net, X, Y) and identity_error > 1e-6


def test_backward_compatible_signature_and_dataclass(tanh_problem):
    net, X, Y = tanh_problem
    sp = zl.stationary_point(net, X, Y, lr=0.1, gd_steps=10, rel_grad_tol=1e-3, max_iterations=50, restarts=0)
    assert isinstance(sp, zl.StationaryPoint)
    old = zl.StationaryPoint(sp.net, sp.cost, sp.grad_norm, sp.initial_grad_norm, sp.converged, sp.gd_history,
                             sp.lbfgs_iterations)  # the seven original fields, positionally
    assert old.newton_iterations == 0 and old.status == "stalled" and old.path == () and np.isnan(old.max_param)


def test_bad_input(tanh_problem):
    net, X, Y = tanh_problem
    with pytest.raises(ValueError, match=r"rel_grad_tol must be a finite real number in \(0.0, 1.0\)"):
        zl.stationary_point(net, X, Y, lr=0.1, gd_steps=0, rel_grad_tol=0.0)
    with pytest.raises(ValueError, match="newton_iterations must be an integer >= 0"):
        zl.stationary_point(net, X, Y, lr=0.1, gd_steps=0, newton_iterations=-1)
    with pytest.raises(ValueError, match=r"max_param must be a real number in \(0, inf\]"):
        zl.stationary_point(net, X, Y, lr=0.1, gd_steps=0, max_param=np.nan)
    with pytest.raises(ValueError, match=r"max_param must be a real number in \(0, inf\]"):
        zl.stationary_point(net, X, Y, lr=0.1, gd_steps=0, max_param=0)
    with pytest.raises(ValueError, match=r"polish_tol must be a finite real number in \[0.0, 1.0\)"):
        zl.stationary_point(net, X, Y, lr=0.1, gd_steps=0, polish_tol=1.0)
    with pytest.raises(ValueError, match="Y must have 20 rows"):
        zl.stationary_point(net, X, Y[:5], lr=0.1, gd_steps=0)


def _reference_lbfgs(net, X, Y, target, target_cost, iterations):
    """A plain L-BFGS-B loop written out (two runs at most), as a reference for zl.lbfgs_polish."""
    from scipy.optimize import minimize

    arch = net.arch

    def fun(Z):
        return zl.cost_and_gradient(zl.Network.from_flat(arch, Z), X, Y)

    def stop(intermediate_result):
        if intermediate_result.fun <= target_cost:
            raise StopIteration

    Z = net.flat()
    c, g = fun(Z)
    for _ in range(2):
        if np.linalg.norm(g) <= target or c <= target_cost:
            break
        Z = minimize(fun, Z, jac=True, method="L-BFGS-B", callback=stop,
                     options={"gtol": target / np.sqrt(arch.num_params), "ftol": 0.0, "maxiter": iterations,
                              "maxfun": 3 * iterations, "maxcor": 30}).x
        c, g = fun(Z)
    return Z, c, float(np.linalg.norm(g))


@pytest.mark.parametrize("target_fraction", [0.0, 0.5])
def test_lbfgs_polish_is_the_plain_lbfgs_loop(relu_problem, target_fraction):
    net, X, Y = relu_problem
    g0 = np.linalg.norm(zl.cost_gradient(net, X, Y))
    target_cost = target_fraction * zl.cost(net, X, Y)
    Z, c, gn = _reference_lbfgs(net, X, Y, 1e-9 * g0, target_cost, 40)
    polished, report = zl.lbfgs_polish(net, X, Y, max_iter=40, grad_tol=1e-9 * g0, target_cost=target_cost,
                                       restarts=1, max_fun=120)
    assert np.array_equal(polished.flat(), Z) and report.cost == c and report.grad_norm == gn
    assert report.runs in (1, 2) and report.iterations >= 1
    if target_fraction > 0:
        assert report.status == "target_cost" and report.cost <= target_cost
    else:
        assert report.status in ("grad_tol", "stopped") and (report.status == "grad_tol") == (gn <= 1e-9 * g0)


def test_lbfgs_polish_reports_and_records(tanh_problem):
    net, X, Y = tanh_problem
    g0 = np.linalg.norm(zl.cost_gradient(net, X, Y))
    polished, report = zl.lbfgs_polish(net, X, Y, max_iter=500, grad_tol=1e-8 * g0, record_path=True)
    assert report.status == "grad_tol" and report.grad_norm <= 1e-8 * g0
    assert report.cost == zl.cost(polished, X, Y)  # CostFunction's cost is cost() to the bit
    assert np.isclose(report.grad_norm, np.linalg.norm(zl.cost_gradient(polished, X, Y)), rtol=ROUNDOFF_RTOL)
    assert len(report.path) == report.iterations and np.array_equal(report.path[-1], polished.flat())
    # nothing to do: already below the gradient target, or no iterations allowed
    same, again = zl.lbfgs_polish(polished, X, Y, max_iter=500, grad_tol=1e-8 * g0)
    assert again.runs == 0 and again.status == "grad_tol" and np.array_equal(same.flat(), polished.flat())
    same, none = zl.lbfgs_polish(net, X, Y, max_iter=0)
    assert none.runs == 0 and none.status == "stopped" and np.array_equal(same.flat(), net.flat())


def test_lbfgs_polish_stops_at_max_param():
    X = np.linspace(-1, 1, 21)[:, None] + 0.013
    Y = np.sign(X)  # a step: the best tanh fit is at infinity
    net = zl.Network.init(zl.Architecture(1, (1,), 1, "tanh"), rng=0)
    polished, report = zl.lbfgs_polish(net, X, Y, max_iter=300, max_param=20.0)
    assert report.status == "escaped" and np.abs(polished.flat()).max() > 20.0


def test_stationary_point_uses_lbfgs_polish(relu_problem):
    """The L-BFGS phase of stationary_point is lbfgs_polish with rebalancing, bit for bit."""
    net, X, Y = relu_problem
    sp = zl.stationary_point(net, X, Y, lr=0.1, gd_steps=50, max_iterations=30, restarts=2, newton_iterations=0,
                             record_path=True)
    gd_end, hist = zl.gradient_descent(net, X, Y, 0.1, 50)
    polished, report = zl.lbfgs_polish(gd_end, X, Y, max_iter=30, grad_tol=1e-9 * hist.grad_norm[0], restarts=2,
                                       rebalance=True, record_path=True)
    assert np.array_equal(sp.net.flat(), polished.flat()) and sp.lbfgs_iterations == report.iterations
    assert sp.cost == report.cost and sp.grad_norm == report.grad_norm


def test_lbfgs_polish_bad_input(tanh_problem):
    net, X, Y = tanh_problem
    with pytest.raises(ValueError, match="max_iter must be an integer >= 0"):
        zl.lbfgs_polish(net, X, Y, max_iter=-1)
    with pytest.raises(ValueError, match=r"grad_tol must be a finite real number in \[0.0, inf\]"):
        zl.lbfgs_polish(net, X, Y, max_iter=5, grad_tol=-1.0)
    with pytest.raises(ValueError, match=r"target_cost must be a finite real number"):
        zl.lbfgs_polish(net, X, Y, max_iter=5, target_cost=np.nan)
    with pytest.raises(ValueError, match="max_fun must be an integer >= 1"):
        zl.lbfgs_polish(net, X, Y, max_iter=5, max_fun=0)
    with pytest.raises(TypeError, match="rebalance must be True or False"):
        zl.lbfgs_polish(net, X, Y, max_iter=5, rebalance="yes")
    with pytest.raises(ValueError, match=r"max_param must be a real number in \(0, inf\]"):
        zl.lbfgs_polish(net, X, Y, max_iter=5, max_param=-1.0)
    with pytest.raises(TypeError, match=r"max_param must be a real number in \(0, inf\]"):
        zl.lbfgs_polish(net, X, Y, max_iter=5, max_param=True)
    with pytest.raises(TypeError, match="record_path must be True or False"):
        zl.lbfgs_polish(net, X, Y, max_iter=5, record_path=1)
    with pytest.raises(TypeError, match="max_iter must be an integer >= 0; got float"):
        zl.lbfgs_polish(net, X, Y, max_iter=5.0)
    with pytest.raises(ValueError, match="Y must have 20 rows"):
        zl.lbfgs_polish(net, X, Y[:5], max_iter=5)
    with pytest.raises(TypeError, match="net must be a zlnotes.Network"):
        zl.lbfgs_polish("net", X, Y, max_iter=5)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "identity"])
def test_balance_keeps_the_function_and_equalises_the_last_layer(name):
    arch = zl.Architecture(3, (4, 5), 2, name)
    net = zl.Network.init(arch, rng=1)
    W1, b1, W2 = (a.copy() for a in (net.weights[0], net.biases[0], net.weights[1]))
    W1[2] *= 50.0  # unit 2 of layer 1 rescaled: same function (c > 0, positive homogeneity)
    b1[2] *= 50.0
    W2[:, 2] /= 50.0
    far = zl.Network(arch, [W1, W2, net.weights[2]], [b1, net.biases[1], net.biases[2]])
    X = zl.generic_data(7, 3, 2, rng=2).X
    assert np.allclose(far.forward(X), net.forward(X), rtol=1e-12, atol=1e-12)
    b = zl.balance(far)
    assert np.allclose(b.forward(X), net.forward(X), rtol=1e-12, atol=1e-12)
    incoming = np.hypot(np.linalg.norm(b.weights[1], axis=1), b.biases[1])
    assert np.allclose(incoming, np.linalg.norm(b.weights[2], axis=0), rtol=1e-12)  # the last hidden layer
    assert np.abs(b.flat()).max() < np.abs(far.flat()).max()


@pytest.mark.parametrize("name", ["tanh", "softplus", "smooth_relu"])
def test_balance_leaves_other_activations_alone(name):
    net = zl.Network.init(zl.Architecture(2, (3,), 1, name), rng=0)
    assert np.array_equal(zl.balance(net).flat(), net.flat())
    with pytest.raises(TypeError, match="net must be a zlnotes.Network"):
        zl.balance(net.flat())
