"""zlnotes.kernels against an independent recursion built on 2-D Gaussian quadrature.

The expectations E[σ(u)σ(v)] and E[σ'(u)σ'(v)] are integrated numerically, with no closed
form: (u, v) = (a z₁, b(ρ z₁ + √(1−ρ²) z₂)) with z standard normal in polar coordinates
z = r(cos φ, sin φ). The radial integral is Gauss–Laguerre in t = r²/2 (the integrands are
homogeneous in r, so it is exact); the angular one is Gauss–Legendre on each arc between
the angles where u or v changes sign (the integrand is smooth there). The activation is
evaluated as max(·, 0) and its derivative as the indicator of a positive argument.
"""

from __future__ import annotations

import numpy as np
import pytest

import zlnotes as zl

_T, _WT = np.polynomial.laguerre.laggauss(12)  # ∫₀^∞ g(t) e^{-t} dt
_S, _WS = np.polynomial.legendre.leggauss(40)


def _quad2(k11: float, k12: float, k22: float, fn: str) -> float:
    """E[g(u) g(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]) by polar quadrature."""
    a, b = np.sqrt(k11), np.sqrt(k22)
    rho = min(1.0, max(-1.0, k12 / np.sqrt(k11 * k22)))  # exactly 1 when k11 = k12 = k22
    s = np.sqrt(1.0 - rho * rho)
    th = np.arctan2(s, rho)
    kinks = np.array([-np.pi / 2, np.pi / 2, th - np.pi / 2, th + np.pi / 2])
    kinks = np.sort(np.concatenate([(kinks + np.pi) % (2 * np.pi) - np.pi, [-np.pi, np.pi]]))
    total = 0.0
    r = np.sqrt(2 * _T)  # t = r²/2: r e^{-r²/2} dr = e^{-t} dt
    for lo, hi in zip(kinks[:-1], kinks[1:]):
        if hi - lo < 1e-15:
            continue
        phi = (hi - lo) / 2 * _S + (hi + lo) / 2
        z1 = r[:, None] * np.cos(phi)[None, :]
        z2 = r[:, None] * np.sin(phi)[None, :]
        u, v = a * z1, b * (rho * z1 + s * z2)
        if fn == "relu":
            g = np.maximum(u, 0.0) * np.maximum(v, 0.0)
        else:
            g = (u > 0).astype(float) * (v > 0).astype(float)
        total += (hi - lo) / 2 * float(_WT @ g @ _WS)
    return total / (2 * np.pi)


def _reference_ntk(X: np.ndarray, depth: int, cw: float, cb: float) -> np.ndarray:
    """The recursion entry by entry, on 2 × 2 covariances, with quadrature expectations."""
    N, d0 = X.shape
    out = np.empty((N, N))
    for i in range(N):
        for j in range(i, N):
            x, y = X[i], X[j]
            s11, s12, s22 = (cw * float(p @ q) / d0 + cb for p, q in ((x, x), (x, y), (y, y)))
            t12 = s12
            for _ in range(depth):
                d12 = _quad2(s11, s12, s22, "step")
                s11, s12, s22 = (
                    cw * _quad2(s11, s11, s11, "relu") + cb,
                    cw * _quad2(s11, s12, s22, "relu") + cb,
                    cw * _quad2(s22, s22, s22, "relu") + cb,
                )
                t12 = t12 * cw * d12 + s12
            out[i, j] = out[j, i] = t12
    return out


def _rel(A: np.ndarray, B: np.ndarray) -> float:
    """max |A − B| / √(B_ii B_jj): the error relative to the diagonal scale of each entry."""
    d = np.sqrt(np.abs(np.diag(B)))
    return float(np.max(np.abs(A - B) / np.outer(d, d)))


def test_quadrature_reproduces_known_values() -> None:
    """Sanity of the reference itself at ρ = 1, 0, −1 (values read off the Gaussian law)."""
    assert _quad2(2.0, 2.0, 2.0, "relu") == pytest.approx(1.0, rel=1e-13)  # E[max(u,0)²] = k/2
    assert _quad2(1.0, 0.0, 1.0, "relu") == pytest.approx(1 / (2 * np.pi), rel=1e-13)  # (E u₊)²
    assert abs(_quad2(1.0, -1.0, 1.0, "relu")) < 1e-15
    assert _quad2(1.0, 0.0, 3.0, "step") == pytest.approx(0.25, rel=1e-13)
    assert abs(_quad2(1.0, -1.0, 1.0, "step")) < 1e-15


def test_expectations_match_quadrature() -> None:
    rng = np.random.default_rng(170)
    B = rng.standard_normal((6, 3))
    C = B @ B.T + 0.1 * np.eye(6)
    E1, E0 = zl.relu_expectation(C), zl.relu_derivative_expectation(C)
    for i in range(6):
        for j in range(6):
            assert E1[i, j] == pytest.approx(_quad2(C[i, i], C[i, j], C[j, j], "relu"), rel=1e-12, abs=1e-15)
            assert E0[i, j] == pytest.approx(_quad2(C[i, i], C[i, j], C[j, j], "step"), rel=1e-12, abs=1e-15)
    assert np.array_equal(E1, E1.T) and np.array_equal(E0, E0.T)


@pytest.mark.parametrize("cw, cb", [(2.0, 0.0), (1.0, 0.1), (1.5, 0.5), (3.0, 1.0)])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_ntk_limit_matches_independent_recursion(depth: int, cw: float, cb: float) -> None:
    X = np.random.default_rng(1717).standard_normal((5, 3))  # held-out: not used elsewhere
    T = zl.ntk_limit(X, depth, weight_var=cw, bias_var=cb)
    assert _rel(T, _reference_ntk(X, depth, cw, cb)) < 1e-10
    assert np.array_equal(T, T.T)
    assert np.linalg.eigvalsh(T).min() > 0


def test_depth_zero_is_the_linear_kernel() -> None:
    X = np.random.default_rng(3).standard_normal((4, 5))
    assert np.allclose(zl.ntk_limit(X, 0, weight_var=1.5, bias_var=0.3), 1.5 * X @ X.T / 5 + 0.3, rtol=1e-14)


def test_du_h_infinity_is_the_first_layer_derivative_term() -> None:
    """For unit inputs, depth 1 and σ_w² = 1, σ_b² = 0 (d₀ = 1 scaling absorbed):
    Θ = (X Xᵀ/d₀) ⊙ E[σ'σ'] + Σ², and the first term is H∞/d₀ with Du et al.'s formula."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((5, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    G = X @ X.T
    C = np.clip(G, -1, 1)
    np.fill_diagonal(C, 1.0)  # unit inputs: cos 0 = 1 exactly (arccos is ill-conditioned at 1)
    H = G * (np.pi - np.arccos(C)) / (2 * np.pi)
    sigma2 = zl.relu_expectation(G / 4)
    assert np.allclose(zl.ntk_limit(X, 1, weight_var=1.0), H / 4 + sigma2, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_ntk_scaled_is_d_p_dt(activation: str) -> None:
    """The layer-weighted Gram identity against the formed Jacobian D and the diagonal P."""
    arch = zl.Architecture(3, (4, 5), 2, activation)
    net = zl.Network.init(arch, 11, bias_std=0.3)
    X = np.random.default_rng(12).standard_normal((6, 3))
    cw, cb = 1.7, 0.4
    D = zl.jacobian(net, X)
    p = np.empty(arch.num_params)
    for (ws, bs), (_, fan_in) in zip(arch.param_offsets(), arch.layer_shapes):
        p[ws], p[bs] = cw / fan_in, cb
    assert np.allclose(zl.ntk_scaled(net, X, weight_var=cw, bias_var=cb), (D * p) @ D.T, rtol=1e-12, atol=1e-13)
    # the book's kernel is P = I
    assert np.allclose(D @ D.T, zl.ntk(net, X), rtol=1e-12, atol=1e-13)


def test_ntk_scaled_is_the_ntk_parametrization_kernel() -> None:
    """Chain rule check by finite differences in the NTK parameters V, β of one entry."""
    arch = zl.Architecture(2, (3,), 1, "tanh")
    cw, cb = 2.0, 0.5
    net = zl.Network.init(arch, 4, weight_gain=np.sqrt(cw), bias_std=np.sqrt(cb))
    X = np.random.default_rng(6).standard_normal((2, 2))
    scale = np.empty(arch.num_params)
    for (ws, bs), (_, fan_in) in zip(arch.param_offsets(), arch.layer_shapes):
        scale[ws], scale[bs] = np.sqrt(cw / fan_in), np.sqrt(cb)
    theta = net.flat() / scale  # NTK parameters (V, β)
    h = 1e-6
    J = np.empty((2, arch.num_params))
    for k in range(arch.num_params):
        e = np.zeros(arch.num_params)
        e[k] = h
        up = zl.Network.from_flat(arch, (theta + e) * scale).forward(X)[:, 0]
        dn = zl.Network.from_flat(arch, (theta - e) * scale).forward(X)[:, 0]
        J[:, k] = (up - dn) / (2 * h)
    assert np.allclose(zl.ntk_scaled(net, X, weight_var=cw, bias_var=cb), J @ J.T, rtol=1e-7, atol=1e-8)


def test_empirical_kernel_approaches_the_limit() -> None:
    """Seeded draws: the NTK-parametrized empirical kernel at width 2048 is within 10% of Θ ⊗ I_2
    (its fluctuation is O(width^{-1/2})), and much closer than at width 32."""
    X = np.random.default_rng(1718).standard_normal((4, 3))
    limit = np.kron(zl.ntk_limit(X, 2, weight_var=2.0, bias_var=0.1), np.eye(2))
    errs = []
    for width in (32, 2048):
        arch = zl.Architecture(3, (width, width), 2, "relu")
        e = []
        for seed in range(3):
            net = zl.Network.init(arch, seed, weight_gain=np.sqrt(2.0), bias_std=np.sqrt(0.1))
            K = zl.ntk_scaled(net, X, weight_var=2.0, bias_var=0.1)
            e.append(np.linalg.norm(K - limit) / np.linalg.norm(limit))
        errs.append(float(np.mean(e)))
    assert errs[1] < 0.1
    assert errs[1] < errs[0] / 3


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="cov"):
        zl.relu_expectation([[1.0, 0.5], [0.4, 1.0]])
    with pytest.raises(ValueError, match="cov"):
        zl.relu_derivative_expectation([[0.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="cov"):
        zl.relu_expectation(np.ones((2, 3)))
    with pytest.raises(ValueError, match="X"):
        zl.ntk_limit([[0.0, 0.0], [1.0, 0.0]], 1)
    assert np.all(np.isfinite(zl.ntk_limit([[0.0, 0.0], [1.0, 0.0]], 2, bias_var=0.1)))


# ------------------------------------------------------------------ hostile inputs


def test_a_pair_that_is_no_covariance_is_refused() -> None:
    """|k_ij| > √(k_ii k_jj) has no Gaussian pair: refused, not clipped into a value."""
    for f in (zl.relu_expectation, zl.relu_derivative_expectation):
        with pytest.raises(ValueError, match=r"^cov must be a covariance matrix: every pair needs"):
            f([[1.0, 5.0], [5.0, 1.0]])
    # rounding-sized excess (a Gram matrix formed in floating point) is clipped
    eps = np.finfo(float).eps
    assert zl.relu_derivative_expectation([[1.0, 1.0 + 4 * eps], [1.0 + 4 * eps, 1.0]])[0, 1] == 0.5


@pytest.mark.parametrize("scale", [1.0, 2.0, 3.0, 1e-150, 1e150])
def test_parallel_and_antipodal_pairs_have_exact_correlation(scale: float) -> None:
    """k_ij = ±√(k_ii k_jj) gives ρ = ±1 exactly: no √ε error from arccos near ±1."""
    G = scale * np.array([[2.0, 4.0, -2.0], [4.0, 8.0, -4.0], [-2.0, -4.0, 2.0]])  # x, 2x, −x
    dot = zl.relu_derivative_expectation(G)
    assert dot[0, 1] == 0.5 and dot[0, 2] == 0.0 and dot[1, 2] == 0.0
    E = zl.relu_expectation(G)
    assert E[0, 1] == pytest.approx(scale * 2.0, rel=4 * np.finfo(float).eps) and E[0, 2] == 0.0
    # the infinite-width NTK of antipodal inputs: the off-diagonal entry is exactly 0 at depth 1
    T = zl.ntk_limit([[1.0], [-1.0]], 1)
    assert np.array_equal(T, [[4.0, 0.0], [0.0, 4.0]])


def test_variances_near_the_float64_limit_give_finite_expectations() -> None:
    big = np.finfo(float).max * 0.95
    with np.errstate(all="raise"):
        E = zl.relu_expectation([[big, 0.0], [0.0, big]])
    assert E[0, 0] == big / 2 and E[0, 1] == pytest.approx(big / (2 * np.pi), rel=1e-15)


def test_kernels_above_the_memory_budget_are_refused_before_allocating() -> None:
    """An n × n kernel of n = 1e5 (a broadcast input of no memory) is refused by size."""
    with pytest.raises(ValueError, match=r"^cov: the kernel of an n × n covariance \(n = 100000\)"):
        zl.relu_expectation(np.broadcast_to(1.0, (10**5, 10**5)))
    with pytest.raises(ValueError, match=r"^X: the kernels Σ and Θ \(N × N = 100000 × 100000\)"):
        zl.ntk_limit(np.ones((10**5, 2)), 1)
    net = zl.Network.init(zl.Architecture(2, (3,), 10), 0)
    with pytest.raises(ValueError, match=r"^X: the kernel \(N·Q × N·Q = 60000 × 60000\)"):
        zl.ntk_scaled(net, np.ones((6000, 2)))


@pytest.mark.parametrize(
    "kwargs",
    [{"scale": 1e200}, {"scale": 1e100, "weight_var": 1e308}, {"scale": 1.0, "bias_var": 1e308}],
    ids=["X 1e200", "weight_var 1e308", "bias_var 1e308"],
)
def test_ntk_scaled_refuses_an_overflow_from_finite_inputs(kwargs: dict[str, float]) -> None:
    net = zl.Network.init(zl.Architecture(2, (3,), 1, "relu"), 0)
    X = np.random.default_rng(1).standard_normal((4, 2)) * kwargs.pop("scale")
    with np.errstate(all="raise"), pytest.raises(ValueError, match=r"^X: the kernel overflows float64"):
        zl.ntk_scaled(net, X, **kwargs)
