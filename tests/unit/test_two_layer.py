"""zlnotes.two_layer against plain formulas: H∞ by quadrature over the angle of w and by
Monte Carlo, D Dᵀ against a formed D and D against central differences, one gradient step
against central differences of the loss, the kernel prediction against matrix powers."""

from __future__ import annotations

import numpy as np
import pytest

import zlnotes as zl

FD_STEP = 1e-6
FD_RTOL = 1e-7  # central differences of a piecewise quadratic: rounding ~1e-10 / 1e-6


def _quadrature_limit(x: np.ndarray, z: np.ndarray, points: int = 2_000_001) -> float:
    """x·z P(wᵀx ≥ 0, wᵀz ≥ 0): w's projection on span{x, z} is isotropic, so the
    probability is the measure of directions φ with cos φ ≥ 0 and cos(φ − θ) ≥ 0."""
    theta = np.arccos(np.clip(x @ z / np.linalg.norm(x) / np.linalg.norm(z), -1, 1))
    phi = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    p = np.mean((np.cos(phi) >= 0) & (np.cos(phi - theta) >= 0))
    return float(x @ z * p)


def _formed_D(W: np.ndarray, a: np.ndarray, X: np.ndarray) -> np.ndarray:
    m = W.shape[0]
    S = (X @ W.T >= 0).astype(float)
    return np.stack([np.kron(a * S[i], X[i]) for i in range(X.shape[0])]) / np.sqrt(m)


def test_limit_against_quadrature_on_held_out_inputs() -> None:
    X = np.random.default_rng(101).standard_normal((6, 4)) * np.array([[1.0], [2.0], [0.5], [1.0], [3.0], [1.0]])
    H = zl.relu_gram_limit(X)
    Q = np.array([[_quadrature_limit(x, z) for z in X] for x in X])
    # the grid resolves the angle to 2π/2e6: error <= |x||z| * 1e-6
    scale = np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(X, axis=1))
    assert np.max(np.abs(H - Q) / scale) < 2e-6
    assert np.allclose(np.diag(H), np.sum(X**2, axis=1) / 2, rtol=1e-14)


def test_unit_inputs_match_the_papers_formula() -> None:
    X = zl.sphere_data(7, 3, rng=5)
    G = np.clip(X @ X.T, -1, 1)
    expected = G * (np.pi - np.arccos(G)) / (2 * np.pi)
    off = ~np.eye(7, dtype=bool)  # on the diagonal arccos(1 − ε) ≈ sqrt(2ε): 1e-8, not 0
    H = zl.relu_gram_limit(X)
    assert np.max(np.abs(H - expected)[off]) < 1e-14
    assert np.max(np.abs(np.diag(H) - 0.5)) < 1e-15


def test_gram_identity_against_formed_D_and_central_differences() -> None:
    X = zl.sphere_data(5, 3, rng=7)
    W, a = zl.two_layer_init(9, 3, rng=8)
    D = _formed_D(W, a, X)
    H = zl.two_layer_gram(W, X)
    assert np.max(np.abs(H - D @ D.T)) < 1e-14 * max(1.0, np.max(np.abs(H)))
    cols = []
    for k in range(W.size):
        e = np.zeros(W.size)
        e[k] = FD_STEP
        plus = zl.two_layer_output((W.ravel() + e).reshape(W.shape), a, X)
        minus = zl.two_layer_output((W.ravel() - e).reshape(W.shape), a, X)
        cols.append((plus - minus) / (2 * FD_STEP))
    assert np.max(np.abs(np.stack(cols, axis=1) - D)) < FD_RTOL * np.max(np.abs(D))


def test_output_against_a_loop() -> None:
    X = zl.sphere_data(4, 3, rng=1)
    W, a = zl.two_layer_init(6, 3, rng=2)
    loop = [sum(a[r] * max(W[r] @ x, 0.0) for r in range(6)) / np.sqrt(6) for x in X]
    assert np.allclose(zl.two_layer_output(W, a, X), loop, rtol=1e-13, atol=1e-15)


def test_empirical_gram_converges_to_the_limit() -> None:
    X = zl.sphere_data(8, 5, rng=21)
    Hinf = zl.relu_gram_limit(X)
    errors = []
    for m in (1_000, 16_000, 256_000):
        W, _ = zl.two_layer_init(m, 5, rng=m)
        errors.append(np.max(np.abs(zl.two_layer_gram(W, X) - Hinf)))
    # each entry is a mean of m variables bounded by 1: max error ~ 1/sqrt(m), not smaller
    assert errors[2] < 5 / np.sqrt(256_000)
    assert errors[0] > 4 * errors[2]


def test_parallel_inputs_make_the_limit_singular_and_generic_ones_do_not() -> None:
    X = zl.sphere_data(6, 4, rng=3)
    assert np.linalg.eigvalsh(zl.relu_gram_limit(X))[0] > 1e-3
    X[5] = X[2]
    assert abs(np.linalg.eigvalsh(zl.relu_gram_limit(X))[0]) < 1e-14


def test_a_gradient_step_against_central_differences_of_the_loss() -> None:
    X = zl.sphere_data(5, 3, rng=31)
    y = np.random.default_rng(32).standard_normal(5)
    W, a = zl.two_layer_init(7, 3, rng=33)
    eta = 0.3

    def loss(w: np.ndarray) -> float:
        r = zl.two_layer_output(w.reshape(W.shape), a, X) - y
        return 0.5 * float(r @ r)

    grad = np.array([(loss(W.ravel() + e) - loss(W.ravel() - e)) / (2 * FD_STEP) for e in np.eye(W.size) * FD_STEP])
    run = zl.two_layer_gd(X, y, W, a, eta, 1)
    step = W.ravel() - eta * grad
    assert np.max(np.abs(run.W.ravel() - step)) < FD_RTOL * max(1.0, np.max(np.abs(grad)))
    assert run.loss[0] == pytest.approx(loss(W.ravel()), rel=1e-14)
    assert run.loss[1] == pytest.approx(loss(run.W.ravel()), rel=1e-12)
    moved = np.sqrt(np.max(np.sum((run.W - W) ** 2, axis=1)))
    flips = np.mean((X @ run.W.T >= 0) != (X @ W.T >= 0))
    assert run.max_move[1] == pytest.approx(moved, rel=1e-14) and run.max_move[0] == 0.0
    assert run.pattern_change[1] == flips and run.pattern_change[0] == 0.0


def test_wide_network_follows_the_kernel_prediction() -> None:
    X = zl.sphere_data(6, 4, rng=41)
    y = np.random.default_rng(42).standard_normal(6)
    W, a = zl.two_layer_init(20_000, 4, rng=43)
    H0 = zl.two_layer_gram(W, X)
    r0 = zl.two_layer_output(W, a, X) - y
    run = zl.two_layer_gd(X, y, W, a, 1.0, 30)
    predicted = zl.kernel_losses(H0, r0, 1.0, 30)
    assert np.max(np.abs(run.loss - predicted)) < 1e-2 * run.loss[0]
    assert run.loss[-1] < 0.1 * run.loss[0]


def test_kernel_losses_against_matrix_powers() -> None:
    A = np.random.default_rng(51).standard_normal((5, 5))
    H = A @ A.T
    r = np.random.default_rng(52).standard_normal(5)
    eta = 1.5 / np.linalg.eigvalsh(H)[-1]
    got = zl.kernel_losses(H, r, eta, 12)
    v, want = r.copy(), []
    for _ in range(13):
        want.append(0.5 * v @ v)
        v = v - eta * H @ v
    assert np.allclose(got, want, rtol=1e-11, atol=0)


def test_sphere_data_is_on_the_sphere_and_seeded() -> None:
    X = zl.sphere_data(50, 7, rng=3)
    assert np.max(np.abs(np.linalg.norm(X, axis=1) - 1)) < 1e-15
    assert np.array_equal(X, zl.sphere_data(50, 7, rng=3))


def test_refusals() -> None:
    with pytest.raises(ValueError, match="X"):
        zl.relu_gram_limit([[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="H"):
        zl.kernel_losses([[1.0, 2.0], [0.0, 1.0]], [1.0, 1.0], 0.1, 2)
    with pytest.raises(ValueError, match="eta"):
        zl.two_layer_gd([[1.0, 0.0], [-1.0, 0.0]], [0.0, 0.0], [[1.0, 0.0]], [-1.0], 1e300, 3)


def _unit_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = zl.sphere_data(3, 2, rng=0)
    W, a = zl.two_layer_init(4, 2, rng=1)
    return X, W, a


@pytest.mark.parametrize("scale", [2.0**-700, 2.0**-520, 2.0**510])
def test_row_norms_and_the_limit_at_scales_whose_squares_leave_float64(scale: float) -> None:
    import warnings

    from zlnotes.two_layer import _row_norms

    X = _unit_problem()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        norms = _row_norms(scale * X)
        H = zl.relu_gram_limit(scale * X)
    # powers of two: the norms are the unit norms times the scale (no row reported zero)
    assert np.allclose(norms / scale, _row_norms(X), rtol=4e-16, atol=0)
    if scale * scale >= np.finfo(float).tiny:  # H∞ scales by scale² where that is a normal number
        assert np.allclose(H / scale**2, zl.relu_gram_limit(X), rtol=1e-14, atol=0)
    else:  # below the float64 range H∞ rounds to 0, as the products x_iᵀx_j themselves
        assert np.abs(H).max() <= 2.0**-1000


@pytest.mark.parametrize("scale", [1e160, 1e200])
def test_inputs_whose_gram_matrices_overflow_are_refused(scale: float) -> None:
    import warnings

    X, W, a = _unit_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ValueError naming X, not inf or a RuntimeWarning
        with pytest.raises(ValueError, match=r"^X: H∞ overflows float64"):
            zl.relu_gram_limit(scale * X)
        with pytest.raises(ValueError, match=r"^X: H = \(X Xᵀ\) ∘ \(S Sᵀ\)/m overflows float64"):
            zl.two_layer_gram(W, scale * X)
    # the pattern from products that overflow is read off exactly scaled copies
    assert np.allclose(zl.two_layer_gram(1e300 * W, 2.0**-520 * X) / 2.0**-1040, zl.two_layer_gram(W, X), rtol=1e-14)


def test_kernel_losses_refuse_overflow_by_name() -> None:
    H, r = np.array([[1.0, 0.2], [0.2, 0.5]]), np.array([1.0, -1.0])
    with pytest.raises(ValueError, match=r"^eta: the predicted loss overflows float64 at k = \d+.*diverges"):
        zl.kernel_losses(H, r, 10.0, 1000)
    with pytest.raises(ValueError, match=r"^residual: ½\|r₀\|² overflows float64"):
        zl.kernel_losses(H, 1e200 * r, 0.1, 3)
    with pytest.raises(ValueError, match=r"^(H|eta): "):
        zl.kernel_losses(1e308 * H, r, 0.1, 3)


def test_sizes_above_the_memory_budget_are_refused_before_allocating() -> None:
    X, W, a = _unit_problem()
    zl.set_memory_budget(1 << 30)
    try:
        with pytest.raises(ValueError, match=r"^X: H \(n × n = 30000 × 30000\).*memory budget"):
            zl.two_layer_gram(W, np.broadcast_to(X[:1], (30000, 2)))
        with pytest.raises(ValueError, match=r"^H: the eigendecomposition of H \(n × n = 100000 × 100000"):
            zl.kernel_losses(np.broadcast_to(1.0, (10**5, 10**5)), np.ones(10**5), 0.1, 2)
        with pytest.raises(ValueError, match=r"^steps: the table of .* 1000000001 × 3"):
            zl.kernel_losses(np.eye(3), np.ones(3), 0.1, 10**9)
        with pytest.raises(ValueError, match=r"^steps: the records of the run .* 10000000001 numbers"):
            zl.two_layer_gd(X, np.ones(3), W, a, 0.1, 10**10)
    finally:
        zl.set_memory_budget(None)


def test_an_overflow_at_the_initial_weights_names_the_input_not_eta() -> None:
    X, W, a = _unit_problem()
    with pytest.raises(ValueError, match=r"^y: the loss overflows float64 at the initial weights"):
        zl.two_layer_gd(X, np.array([1.0, 2.0, 1e160]), W, a, 0.1, 3)
    with pytest.raises(ValueError, match=r"^X, W: the loss overflows float64 at the initial weights"):
        zl.two_layer_gd(1e200 * X, np.ones(3), W, a, 0.1, 3)
    with pytest.raises(ValueError, match=r"^X, W: the loss overflows float64 at the initial weights"):
        zl.two_layer_gd(X, np.ones(3), 1e307 * W, a, 0.1, 3)
    with pytest.raises(ValueError, match=r"^eta = 1e\+300 is too large: the loss overflowed at step 1"):
        zl.two_layer_gd(X, np.ones(3), W, a, 1e300, 30)
