"""zlnotes.diagnostics against plain formulas written out here (not the module's code)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

import zlnotes as zl


@pytest.fixture
def under():
    """K = 12 < QN = 24: a 2 → (2,) → 2 tanh network on 12 samples, generic targets."""
    arch = zl.Architecture(2, (2,), 2, "tanh")
    data = zl.generic_data(12, 2, 2, rng=3)
    return zl.Network.init(arch, rng=4), data.X, data.Y


def test_report_against_plain_formulas(under):
    net, X, Y = under
    r = zl.stationarity_report(net, X, Y)
    N, Q = X.shape[0], Y.shape[1]
    F = net.forward(X)
    C = np.sum((F - Y) ** 2) / (2 * N)
    gx = (F - Y).ravel() / N
    D = zl.jacobian(net, X)
    # projector by least squares, independent of the SVD route: P v = D (D⁺ v)
    Pg = D @ np.linalg.lstsq(D, gx, rcond=None)[0]
    s = np.linalg.svd(D, compute_uv=False)
    assert (r.N, r.QN, r.K) == (N, Q * N, net.arch.num_params)
    assert r.rank == np.linalg.matrix_rank(D) == 12
    assert math.isclose(r.C, C, rel_tol=1e-12)
    assert math.isclose(r.grad_x, np.linalg.norm(gx), rel_tol=1e-12)
    assert math.isclose(r.grad_Z, np.linalg.norm(D.T @ gx), rel_tol=1e-9)
    assert math.isclose(r.P_rel, np.linalg.norm(Pg) / np.linalg.norm(gx), rel_tol=1e-8)
    perp = gx - Pg
    assert math.isclose(r.identity, abs(C - N / 2 * perp @ perp) / C, rel_tol=1e-6, abs_tol=1e-14)
    assert math.isclose(r.pythagoras, N / 2 * (Pg @ Pg) / C, rel_tol=1e-8)
    assert math.isclose(r.resolution, s[11] / s[0], rel_tol=1e-12)
    assert math.isclose(r.kappa, (s[0] / s[11]) ** 2, rel_tol=1e-12)
    assert np.allclose(r.proj.P @ r.proj.P, r.proj.P, atol=1e-12)
    assert np.allclose(r.proj.P + r.proj.P_perp, np.eye(Q * N), atol=1e-12)
    assert np.allclose(r.x, F.ravel()) and np.array_equal(r.y, Y.ravel())
    # this random start is not stationary: P grad_x C is far from 0
    assert r.P_rel > 1e-3


def test_report_at_a_least_squares_point_satisfies_theorem_1_5():
    # identity network, one hidden unit: the outputs are affine in x, and at the least-squares
    # fit the gradient vanishes, so P grad_x C = 0 and C = N/2 |P_perp grad_x C|^2
    rng = np.random.default_rng(5)
    X = rng.standard_normal((10, 1))
    Y = rng.standard_normal((10, 1))
    slope, intercept = np.polyfit(X[:, 0], Y[:, 0], 1)
    net = zl.Network(zl.Architecture(1, (1,), 1, "identity"), [np.array([[slope]]), np.ones((1, 1))],
                     [np.array([intercept]), np.zeros(1)])
    r = zl.stationarity_report(net, X, Y)
    assert r.rank == 2  # rank [X 1]
    assert r.P_rel < 1e-12 and r.identity < 1e-12
    assert r.C > 0.01


def test_zero_loss_conventions():
    net = zl.Network(zl.Architecture(1, (1,), 1, "identity"), [np.ones((1, 1)), np.ones((1, 1))],
                     [np.zeros(1), np.zeros(1)])
    X = np.array([[1.0], [2.0]])
    r = zl.stationarity_report(net, X, X)  # outputs = inputs = targets
    assert r.C == 0.0 and r.P_rel == 0.0 and r.identity == 0.0 and r.pythagoras == 0.0


def test_kink_margin_and_least_slope_plain():
    rng = np.random.default_rng(6)
    net = zl.Network.init(zl.Architecture(3, (4, 5), 2, "relu"), rng)
    X = rng.standard_normal((7, 3))
    A, margins, slopes = X, [], []
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        Z = A @ W.T + b
        margins.append(np.min(np.abs(Z)) / np.max(np.abs(Z)))
        slopes.append(min(max(1.0 if z > 0 else 0.0 for z in Z[:, i]) for i in range(Z.shape[1])))
        A = np.maximum(Z, 0)
    assert zl.kink_margin(net, X) == pytest.approx(min(margins), rel=1e-14)
    assert zl.least_unit_slope(net, X) == min(slopes)


def test_kink_margin_is_scale_free_per_layer():
    rng = np.random.default_rng(7)
    net = zl.Network.init(zl.Architecture(2, (3,), 1, "relu"), rng)
    X = rng.standard_normal((5, 2))
    big = zl.Network(net.arch, [1e6 * net.weights[0], 1e-6 * net.weights[1]], [1e6 * net.biases[0], net.biases[1]])
    assert zl.kink_margin(big, X) == pytest.approx(zl.kink_margin(net, X), rel=1e-12)


def test_constant_output_cost_is_the_least_cost_of_a_constant():
    rng = np.random.default_rng(8)
    Y = rng.standard_normal((9, 3))
    c = zl.constant_output_cost(Y)
    plain = sum(((Y[j] - Y.sum(axis=0) / 9) ** 2).sum() for j in range(9)) / 18
    assert c == pytest.approx(plain, rel=1e-12)
    for _ in range(5):  # any other constant costs more
        other = Y.mean(axis=0) + 0.1 * rng.standard_normal(3)
        assert np.sum((Y - other) ** 2) / 18 > c


def test_relative_misfit():
    F, Y = np.array([[1.0, 2.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 1.0]])
    assert zl.relative_misfit(F, Y) == pytest.approx((4 + 1) / 3)
    with pytest.raises(ValueError, match="Y"):
        zl.relative_misfit(F, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="Y"):
        zl.relative_misfit(F, np.ones((3, 2)))


@pytest.mark.parametrize("arch", [zl.Architecture(2, (3,), 1, "tanh"), zl.Architecture(2, (2,), 2, "tanh")])
def test_step_size_is_factor_N_over_lambda_max(arch):
    rng = np.random.default_rng(9)
    net = zl.Network.init(arch, rng)
    X = rng.standard_normal((6, 2))  # first: QN = 6 <= K = 13 (NTK route); second: K = 12 < QN (DᵀD route)
    D = zl.jacobian(net, X)
    lam_max = np.linalg.norm(D, 2) ** 2  # the spectral norm squared, not an eigensolver
    assert zl.step_size(net, X, 0.5) == pytest.approx(0.5 * 6 / lam_max, rel=1e-10)


def test_step_size_stable_on_the_linear_problem():
    # for a linear model x = X w the cost is quadratic with Hessian XᵀX/N: factor 1.9 converges, 2.1 diverges
    rng = np.random.default_rng(10)
    X = rng.standard_normal((8, 3))
    Y = rng.standard_normal((8, 1))
    net = zl.Network(zl.Architecture(3, (1,), 1, "identity"), [rng.standard_normal((1, 3)), np.ones((1, 1))],
                     [np.zeros(1), np.zeros(1)])
    D = zl.jacobian(net, X)[:, :3]  # the first-layer weights alone: D_w = X (outer weight 1)
    assert np.allclose(D, X)
    H = X.T @ X / 8
    for factor, stable in ((1.9, True), (2.1, False)):
        lr = factor * 8 / np.linalg.eigvalsh(X @ X.T)[-1]
        w = np.zeros(3)
        for _ in range(400):
            w = w - lr * (H @ w - X.T @ Y[:, 0] / 8)
        assert np.all(np.isfinite(w)) and (np.linalg.norm(H @ w - X.T @ Y[:, 0] / 8) < 1e-6) == stable


def test_affine_rank_plain():
    rng = np.random.default_rng(11)
    A = rng.standard_normal((4, 6))
    assert zl.affine_rank(A) == np.linalg.matrix_rank(np.hstack([A, np.ones((4, 1))])) == 4
    B = np.vstack([A, A[:2].mean(axis=0)])  # a midpoint: affinely dependent
    assert zl.affine_rank(B) == 4
    tiny = 1e-14 * rng.standard_normal((3, 5))  # scale-free
    assert zl.affine_rank(tiny) == 3
    assert zl.affine_rank(np.ones((3, 2))) == 1


def test_significant_and_decade():
    assert zl.significant(0.0123456, 2) == 0.012 and zl.significant(-2.56, 2) == -2.6
    assert zl.significant(7.0) == 7.0
    assert zl.decade(0.002) == "1e-3" and zl.decade(5e7) == "1e+8" and zl.decade(-1.0) == "0"
    assert zl.decade(1e-13, floor=1e-12) == "<1e-12" and zl.decade(1e-11, floor=1e-12) == "1e-11"


def _result(status, converged, act):
    return SimpleNamespace(
        status=status, converged=converged, net=SimpleNamespace(arch=SimpleNamespace(sigma=zl.activation(act)))
    )


def test_classify_stationary_rule(under):
    net, X, Y = under
    base = zl.stationarity_report(net, X, Y)

    def rep(**kw):
        return base.__class__(**{**base.__dict__, **kw})

    good = rep(kink_margin=0.1, least_slope=0.5, resolution=1e-3)
    assert zl.classify_stationary(_result("converged", True, "relu"), good) == "certified"
    assert zl.classify_stationary(_result("escaped", False, "relu"), good) == "at infinity"
    assert zl.classify_stationary(_result("converged", True, "tanh"), rep(least_slope=1e-7, kink_margin=0.1,
                                                                         resolution=1e-3)) == "at infinity"
    # a ReLU unit with sigma' = 0 everywhere is dead, not at infinity
    assert zl.classify_stationary(_result("converged", True, "relu"), rep(least_slope=0.0, kink_margin=0.1,
                                                                         resolution=1e-3)) == "certified"
    assert zl.classify_stationary(_result("converged", True, "relu"), rep(kink_margin=1e-9, least_slope=0.5,
                                                                         resolution=1e-3)) == "kink"
    assert zl.classify_stationary(_result("converged", True, "tanh"), rep(kink_margin=1e-9, least_slope=0.5,
                                                                         resolution=1e-3)) == "certified"
    assert zl.classify_stationary(_result("converged", True, "relu"), rep(kink_margin=0.1, least_slope=0.5,
                                                                         resolution=1e-9)) == "uncertified"
    assert zl.classify_stationary(_result("stalled", False, "relu"), good) == "stalled"


def test_bad_input_names_the_argument(under):
    net, X, Y = under
    with pytest.raises(TypeError, match="net"):
        zl.stationarity_report("net", X, Y)
    with pytest.raises(ValueError, match="Y"):
        zl.stationarity_report(net, X, Y[:3])
    with pytest.raises(ValueError, match="X"):
        zl.kink_margin(net, X[:, :1])
    with pytest.raises(ValueError, match="factor"):
        zl.step_size(net, X, -1.0)
    with pytest.raises(TypeError, match="factor"):
        zl.step_size(net, X, "1")
    with pytest.raises(ValueError, match="A"):
        zl.affine_rank(np.array([1.0, np.nan])[None, :])
    with pytest.raises(TypeError, match="digits"):
        zl.significant(1.0, 1.5)
    with pytest.raises(ValueError, match="floor"):
        zl.decade(1.0, floor=0.0)
    with pytest.raises(TypeError, match="report"):
        zl.classify_stationary(_result("converged", True, "relu"), {})
    with pytest.raises(ValueError, match="kink_tol"):
        zl.classify_stationary(_result("converged", True, "relu"), zl.stationarity_report(net, X, Y), kink_tol=-1)
