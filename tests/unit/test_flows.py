"""zlnotes.flows against plain formulas: a formed D, its SVD, scipy's ODE solver."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from tolerances import ROUNDOFF_RTOL

import zlnotes as zl
from zlnotes.flows import _vjp

ADAPTED_RTOL = 1e-8
"""The check the book promises: V_α from the Gram route and one backward pass agrees with
−Dᵀ[(1−α)I + α(DDᵀ)⁺]∇ₓC from a formed D to 1e-8 relative. The Gram route's rounding is about
κ(D)²·ε (1e-12 for κ = 100), so this leaves room for κ(D) up to about 1e3."""

# held-out networks: architectures, activations and seeds used nowhere else in the book
CASES = [
    (zl.Architecture(3, (7,), 1, "tanh"), 5, 901),
    (zl.Architecture(3, (7, 5), 2, "tanh"), 4, 902),
    (zl.Architecture(2, (6, 6), 1, "relu"), 6, 903),
    (zl.Architecture(4, (5,), 3, "softplus"), 3, 904),
    (zl.Architecture(2, (3,), 2, "leaky_relu"), 7, 905),  # K = 17 ≥ QN = 14
    (zl.Architecture(1, (2,), 1, "tanh"), 12, 906),  # underparametrized: K = 7 < QN = 12
]


def _problem(arch: zl.Architecture, n: int, seed: int) -> tuple[zl.Network, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, arch.input_dim))
    Y = rng.standard_normal((n, arch.output_dim))
    return zl.Network.init(arch, rng), X, Y


def _reference(net: zl.Network, X: np.ndarray, Y: np.ndarray, alpha: float) -> np.ndarray:
    """−Dᵀ[(1−α)I + α(DDᵀ)⁺]g with D formed and (DDᵀ)⁺ from the SVD of D, truncated at the
    same relative tolerance √(QN ε) on the singular values."""
    D = zl.jacobian(net, X)
    g = zl.output_gradient(net, X, Y)
    U, s, _ = np.linalg.svd(D, full_matrices=False)
    r = int(np.count_nonzero(s > zl.gram_rtol(D.shape[0]) * s[0]))
    pinv_gram = (U[:, :r] / s[:r] ** 2) @ U[:, :r].T
    bracket = (1 - alpha) * np.eye(D.shape[0]) + alpha * pinv_gram
    return -D.T @ (bracket @ g)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("arch, n, seed", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_adapted_direction_matches_the_formula_with_a_formed_jacobian(
    arch: zl.Architecture, n: int, seed: int, alpha: float
) -> None:
    net, X, Y = _problem(arch, n, seed)
    assert _rel(zl.adapted_direction(net, X, Y, alpha), _reference(net, X, Y, alpha)) < ADAPTED_RTOL


@pytest.mark.parametrize("arch, n, seed", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_alpha_zero_is_minus_the_cost_gradient(arch: zl.Architecture, n: int, seed: int) -> None:
    net, X, Y = _problem(arch, n, seed)
    g = zl.cost_gradient(net, X, Y)
    assert _rel(zl.adapted_direction(net, X, Y, 0.0), -g) < ROUNDOFF_RTOL


@pytest.mark.parametrize("arch, n, seed", CASES[:4], ids=[f"case{i}" for i in range(4)])
def test_alpha_one_is_the_pseudo_inverse_and_the_min_norm_gauss_newton_step(
    arch: zl.Architecture, n: int, seed: int
) -> None:
    """D⁺ g = (DᵀD)⁺ Dᵀ g: the adapted direction is the minimum-norm Gauss–Newton step."""
    net, X, Y = _problem(arch, n, seed)
    D = zl.jacobian(net, X)
    g = zl.output_gradient(net, X, Y)
    V = zl.adapted_direction(net, X, Y)
    assert _rel(V, -np.linalg.pinv(D) @ g) < ADAPTED_RTOL
    assert _rel(V, -np.linalg.pinv(D.T @ D, rcond=1e-10, hermitian=True) @ (D.T @ g)) < 1e-6
    # and the outputs move by −P g
    P = zl.range_projector(D).P
    assert _rel(D @ V, -P @ g) < ADAPTED_RTOL


def test_rank_deficient_jacobian_dead_layer() -> None:
    """A ReLU network whose second layer is dead on every sample: only the output bias moves
    the outputs, D has rank 1 and range span(1, …, 1); the pseudo-inverse keeps that one
    direction and V_α still matches the formula."""
    arch = zl.Architecture(2, (4, 3), 1, "relu")
    net, X, Y = _problem(arch, 5, 907)
    biases = [b.copy() for b in net.biases]
    biases[1][:] = -100.0
    dead = zl.Network(arch, net.weights, biases)
    assert zl.jacobian_rank(dead, X) == 1
    for alpha in (0.0, 0.5, 1.0):
        V = zl.adapted_direction(dead, X, Y, alpha)
        assert _rel(V, _reference(dead, X, Y, alpha)) < ADAPTED_RTOL
        assert np.count_nonzero(V) == 1  # the output bias only
    g = zl.output_gradient(dead, X, Y)
    # α = 1 moves the output bias by −mean(g) · N / N = −mean(x − y)/N · (1/1): D⁺ g = mean of g
    assert np.isclose(zl.adapted_direction(dead, X, Y)[-1], -g.mean(), rtol=1e-12)


@pytest.mark.parametrize("arch, n, seed", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_vjp_is_the_transpose_jacobian_product(arch: zl.Architecture, n: int, seed: int) -> None:
    net, X, Y = _problem(arch, n, seed)
    U = np.random.default_rng(seed + 1).standard_normal(Y.shape)
    pre, post = net.pre_and_post_activations(X)
    D = zl.jacobian(net, X)
    assert _rel(_vjp(net, pre, post, U), D.T @ U.ravel()) < ROUNDOFF_RTOL


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("arch, n, seed", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_the_family_vanishes_with_the_gradient(arch: zl.Architecture, n: int, seed: int, alpha: float) -> None:
    """min_i((1−α) + α/λ_i)|∇_Z C| ≤ |V_α| ≤ max_i((1−α) + α/λ_i)|∇_Z C| over the kept λ_i."""
    net, X, Y = _problem(arch, n, seed)
    lam = np.linalg.eigvalsh(zl.ntk(net, X))
    lam = lam[lam > zl.gram_rtol(lam.size) ** 2 * lam[-1]]
    factor = (1 - alpha) + alpha / lam
    v = np.linalg.norm(zl.adapted_direction(net, X, Y, alpha))
    g = np.linalg.norm(zl.cost_gradient(net, X, Y))
    assert factor.min() * g * (1 - 1e-10) <= v <= factor.max() * g * (1 + 1e-10)


def _plane_problem(seed: int) -> tuple[zl.Network, np.ndarray, np.ndarray]:
    arch = zl.Architecture(1, (6,), 1, "tanh")
    X = np.array([[-1.0], [1.0]])
    Y = np.array([[0.7], [-0.4]])
    return zl.Network.init(arch, seed), X, Y


def test_adapted_flow_is_a_straight_line_with_fourth_order_error() -> None:
    """Full rank: x(s) = y + e^{−s/N}(x₀ − y). RK4's error falls about 16-fold per halving."""
    net, X, Y = _plane_problem(908)
    errors = []
    for steps in (10, 20, 40):
        path = zl.gradient_flow(net, X, Y, 6.0, steps, halving_check=(steps == 20))
        assert (path.rank == 2).all()
        line = Y.ravel() + np.exp(-path.s / 2)[:, None] * (path.outputs[0] - Y.ravel())
        errors.append(float(np.abs(path.outputs - line).max()))
        if steps == 20:
            assert 0.5 < path.error_estimate / errors[-1] < 2.0  # the halving estimate is the error
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(10 < r < 25 for r in ratios), ratios
    assert errors[-1] < 1e-6


def test_standard_flow_matches_scipy() -> None:
    """α = 0 is the gradient flow of C: compare with solve_ivp on −∇_Z C at tight tolerances."""
    net, X, Y = _plane_problem(909)
    arch = net.arch
    f = zl.CostFunction(arch, X, Y)
    ref = solve_ivp(lambda s, z: -f(z)[1], (0.0, 3.0), net.flat(), method="DOP853", rtol=1e-12, atol=1e-12,
                    t_eval=np.linspace(0.0, 3.0, 31))
    path = zl.gradient_flow(net, X, Y, 3.0, 300, alpha=0.0, record=10)
    assert np.allclose(path.s, ref.t, rtol=0, atol=1e-12)
    err = float(np.abs(path.params - ref.y.T).max())
    assert err < 1e-8
    assert np.allclose(path.cost, [zl.cost(zl.Network.from_flat(arch, z), X, Y) for z in ref.y.T], rtol=1e-8)
    exact = [zl.Network.from_flat(arch, z).forward(X).ravel() for z in ref.y.T]
    out_err = max(float(np.abs(e - x).max()) for e, x in zip(exact, path.outputs))
    assert out_err <= 2 * path.error_estimate + 1e-13  # the halving estimate does not miss the error


def test_flow_records() -> None:
    net, X, Y = _plane_problem(910)
    path = zl.gradient_flow(net, X, Y, 1.0, 7, alpha=0.5, record=3, halving_check=False)
    assert np.allclose(path.s, [0.0, 3 / 7, 6 / 7, 1.0])
    assert path.params.shape == (4, net.arch.num_params) and path.outputs.shape == (4, 2)
    assert np.array_equal(path.params[0], net.flat())
    assert np.allclose(path.outputs[0], net.forward(X).ravel(), rtol=0, atol=0)
    assert path.alpha == 0.5 and path.steps == 7 and np.isnan(path.error_estimate)
    # the cost decreases along every member of the family (dC/ds = ⟨g, D V_α⟩ ≤ 0)
    assert (np.diff(path.cost) < 0).all()


def test_perp_norm_and_theorem_1_5_at_a_stationary_point() -> None:
    """Underparametrized tanh network at a stationary point: every V_α vanishes there (relative
    to the start) and C = (N/2)|P^⊥∇ₓC|², with P^⊥ from the recorded perp_norm."""
    arch = zl.Architecture(1, (2,), 1, "tanh")
    rng = np.random.default_rng(911)
    X = rng.standard_normal((12, 1))
    Y = rng.standard_normal((12, 1))
    start = zl.Network.init(arch, rng)
    sp = zl.stationary_point(start, X, Y, lr=0.05, gd_steps=200, polish_tol=0.0)
    assert sp.converged
    for alpha in (0.0, 0.5, 1.0):  # |∇_Z C| is at rounding level: V_α amplifies it by ≤ 1/λ_min
        v0 = np.linalg.norm(zl.adapted_direction(start, X, Y, alpha))
        v = np.linalg.norm(zl.adapted_direction(sp.net, X, Y, alpha))
        assert v < 1e-5 * v0
    path = zl.gradient_flow(sp.net, X, Y, 1.0, 1, halving_check=False)
    assert np.isclose(path.cost[0], 12 / 2 * path.perp_norm[0] ** 2, rtol=1e-8)


def test_too_large_a_step_is_refused_with_the_rule() -> None:
    """A step far beyond RK4's stability region overflows; the error names ``steps`` and says what to do."""
    X, Y = _plane_problem(911)[1:]
    net = zl.Network.init(zl.Architecture(1, (6,), 1, "identity"), 911)  # outputs polynomial in the parameters
    # one step overflows in its stages; with three, the first step's cost rise is refused before that
    for s_end, steps, rule in ((1e3, 1, "the orbit left the float64 range"), (1e3, 3, "the cost rose by"),
                               (1e6, 1, "the orbit left the float64 range")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and no RuntimeWarning on the way
            with pytest.raises(ValueError, match=rf"^steps: {rule} .* use more steps"):
                zl.gradient_flow(net, X, Y, s_end, steps, alpha=0.0, halving_check=False)


def _underparametrized(seed: int) -> tuple[zl.Network, np.ndarray, np.ndarray]:
    """Chapter 11's underparametrized problem: 2 tanh units (K = 7), N = 12, seeded by [seed, 11, 2]."""
    rng = np.random.default_rng([seed, 11, 2])
    X = rng.standard_normal((12, 1))
    Y = rng.standard_normal((12, 1))
    return zl.Network.init(zl.Architecture(1, (2,), 1, "tanh"), rng), X, Y


@pytest.mark.parametrize("seed", [0, 7, 4])
def test_a_rising_cost_is_refused_naming_steps(seed: int) -> None:
    """The adapted flow from these starts is too stiff for h = 0.05: RK4 returned finite orbits whose
    cost rose (0.576 → 1912, 1.09 → 166, 2.14 → 483). A descent flow whose computed cost rises has
    failed: the run is refused, naming steps, the rise, where, and λ_min of DDᵀ at the start."""
    net, X, Y = _underparametrized(seed)
    lam = np.linalg.eigvalsh(zl.ntk(net, X))
    lam_min = lam[lam > zl.gram_rtol(12) ** 2 * lam[-1]][0]
    for halving in (False, True):
        with pytest.raises(ValueError) as info:
            zl.gradient_flow(net, X, Y, 2.0, 40, halving_check=halving)
        msg = str(info.value)
        assert msg.startswith("steps: the cost rose by ") and msg.endswith("use more steps"), msg
        found = re.search(r"from (\S+) to (\S+) at s = (\S+),", msg)
        assert found is not None, msg
        start, end, where = (float(v) for v in found.groups())
        assert end > 10 * start and 0 < where <= 2.0, msg
        assert f"lambda_min = {lam_min:.2g}" in msg and "too stiff" in msg, msg


def test_rounding_at_a_stationary_point_is_not_a_rise() -> None:
    """At a stationary point the computed cost moves only by rounding, up or down: the allowance admits
    it for every member of the family over many steps."""
    net, X, Y = _underparametrized(1)
    sp = zl.stationary_point(net, X, Y, lr=0.05, gd_steps=200, polish_tol=0.0)
    assert sp.converged
    for alpha in (0.0, 0.5, 1.0):
        path = zl.gradient_flow(sp.net, X, Y, 1.0, 50, alpha=alpha, halving_check=False)
        assert np.abs(path.cost - sp.cost).max() <= 1e-12 * sp.cost


def _small_problem() -> tuple[zl.Network, np.ndarray, np.ndarray]:
    gen = np.random.default_rng(1)
    net = zl.Network.init(zl.Architecture(2, (3,), 1, "tanh"), 0)
    return net, gen.standard_normal((4, 2)), gen.standard_normal((4, 1))


def test_the_eigendecomposition_of_the_ntk_is_within_the_memory_budget() -> None:
    # QN = 12000: the NTK (1.07 GiB) fits a 2 GiB budget, but not with numpy's eigh beside it
    net = zl.Network.init(zl.Architecture(2, (3,), 10), 0)
    X, Y = np.ones((1200, 2)), np.ones((1200, 10))
    zl.set_memory_budget(2 << 30)
    try:
        for call in (lambda: zl.adapted_direction(net, X, Y), lambda: zl.gradient_flow(net, X, Y, 1.0, 1)):
            with pytest.raises(ValueError, match=r"^X: the NTK \(N·Q × N·Q = 12000 × 12000\).* eigendecomposition"):
                call()
    finally:
        zl.set_memory_budget(None)


@pytest.mark.parametrize("steps, record, halving", [(10**8, 1, False), (10**7, 1, True), (10**9, 10, False)])
def test_a_record_above_the_memory_budget_is_refused_before_the_first_step(
    steps: int, record: int, halving: bool
) -> None:
    net, X, Y = _small_problem()
    zl.set_memory_budget(1 << 30)
    try:
        with pytest.raises(ValueError, match=rf"^steps: the recorded orbit \({steps // record + 2} points .*budget"):
            zl.gradient_flow(net, X, Y, 1.0, steps, record=record, halving_check=halving)
    finally:
        zl.set_memory_budget(None)
    # a record that fits runs as before
    path = zl.gradient_flow(net, X, Y, 1.0, 4, record=2, halving_check=False)
    assert path.s.tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("scale", [1e160, 1e200, 1e300])
def test_targets_that_overflow_the_cost_are_named(scale: float) -> None:
    net, X, Y = _small_problem()
    for call in (
        lambda: zl.adapted_direction(net, X, scale * Y),
        lambda: zl.adapted_direction(net, X, scale * Y, alpha=0.0),
        lambda: zl.gradient_flow(net, X, scale * Y, 1.0, 2),
    ):
        with pytest.raises(ValueError, match=r"^Y: the residuals F - Y or the cost .* overflow float64"):
            call()
    # inputs that overflow the outputs are still named X
    relu = zl.Network.init(zl.Architecture(2, (3,), 1, "relu"), 0)
    with pytest.raises(ValueError, match=r"^X: "):
        zl.adapted_direction(relu, 1e200 * X, Y)
