"""zlnotes.full_rank against plain formulas: the formed Jacobian against central differences
of F(x) = vᵀReLU(Wx + b), the Gram identity against J Jᵀ, the grid's ranks against the SVD
rank of the formed J (float64 and float32) on the same draws, and the torch.nn.Linear bounds."""

from __future__ import annotations

import numpy as np
import pytest
from tolerances import ROUNDOFF_RTOL

import zlnotes as zl
from zlnotes.full_rank import _trial

# F is piecewise polynomial (degree 2) in (W, b, v): central differences with step h are
# exact up to rounding (~ε/h) unless a pre-activation lies within h of a kink (checked below)
FD_STEP = 1e-6
FD_ATOL = 1e-8


def _draw(n: int, d0: int, d1: int, seed: int) -> tuple[np.ndarray, ...]:
    gen = np.random.default_rng(seed)
    W, b = zl.torch_linear_init(d0, d1, gen)
    v = gen.standard_normal(d1)
    X = gen.random((n, d0))
    return X, W, b, v


def _F(X: np.ndarray, W: np.ndarray, b: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.asarray(np.maximum(X @ W.T + b, 0.0) @ v)


@pytest.mark.parametrize("n, d0, d1, seed", [(6, 3, 4, 0), (5, 2, 7, 1), (9, 5, 2, 2)])
def test_jacobian_against_central_differences(n: int, d0: int, d1: int, seed: int) -> None:
    X, W, b, v = _draw(n, d0, d1, seed)
    assert np.abs(X @ W.T + b).min() > 100 * FD_STEP, "a pre-activation near a kink"
    theta = np.concatenate([W.ravel(), b, v])

    def F(t: np.ndarray) -> np.ndarray:
        return _F(X, t[: d1 * d0].reshape(d1, d0), t[d1 * d0 : d1 * d0 + d1], t[d1 * d0 + d1 :])

    fd = np.empty((n, theta.size))
    for k in range(theta.size):
        e = np.zeros(theta.size)
        e[k] = FD_STEP
        fd[:, k] = (F(theta + e) - F(theta - e)) / (2 * FD_STEP)
    J = zl.shallow_jacobian(X, W, b, v, frozen_v=True)
    assert J.shape == (n, d1 * d0 + 2 * d1)
    np.testing.assert_allclose(J, fd, rtol=0, atol=FD_ATOL)
    np.testing.assert_array_equal(zl.shallow_jacobian(X, W, b, v), J[:, : d1 * (d0 + 1)])


@pytest.mark.parametrize("frozen_v", [False, True])
@pytest.mark.parametrize("n, d0, d1, seed", [(20, 10, 5, 3), (40, 3, 12, 4)])
def test_gram_identity(n: int, d0: int, d1: int, seed: int, frozen_v: bool) -> None:
    X, W, b, v = _draw(n, d0, d1, seed)
    J = zl.shallow_jacobian(X, W, b, v, frozen_v=frozen_v)
    G = zl.shallow_gram(X, W, b, v, frozen_v=frozen_v)
    D = J @ J.T
    assert np.abs(G - D).max() <= ROUNDOFF_RTOL * np.abs(D).max()


def test_torch_linear_bounds() -> None:
    W, b = zl.torch_linear_init(25, 4000, 5)
    bound = 1 / 5.0
    assert np.abs(W).max() < bound and np.abs(b).max() < bound
    # uniform on (-1/5, 1/5): max |W| within 1e-3 of the bound, variance bound²/3 to 2 %
    assert np.abs(W).max() > bound - 1e-3
    assert abs(W.var() / (bound**2 / 3) - 1) < 0.02
    assert abs(W.mean()) < 0.01 * bound


@pytest.mark.parametrize("frozen_v", [False, True])
def test_grid_ranks_against_formed_svd(frozen_v: bool) -> None:
    """Replay the grid's draws, form J and take its SVD rank (float64 and float32)."""
    ns, widths, trials, seed = [6, 14, 30], [1, 2, 3, 5, 8], 6, 7
    grids = {
        tol: zl.full_rank_grid(ns, widths, trials=trials, rng=seed, frozen_v=frozen_v, tolerance=tol)
        for tol in ("float32", "float64")
    }
    gen = np.random.default_rng(seed)
    full64 = np.zeros((len(widths), len(ns)))
    full32 = np.zeros_like(full64)
    alive = np.zeros_like(full64)
    ratio = np.zeros((len(widths), len(ns), trials))
    for i, d1 in enumerate(widths):
        for j, n in enumerate(ns):
            d0 = -(-n // 2)
            for t in range(trials):
                W, b = zl.torch_linear_init(d0, d1, gen)
                v = gen.standard_normal(d1)
                X = gen.random((n, d0))
                J = zl.shallow_jacobian(X, W, b, v, frozen_v=frozen_v)
                full64[i, j] += np.linalg.matrix_rank(J) == n
                full32[i, j] += np.linalg.matrix_rank(J.astype(np.float32)) == n
                alive[i, j] += np.all((np.maximum(X @ W.T + b, 0) > 0).any(axis=1))
                s = np.linalg.svd(J, compute_uv=False)
                ratio[i, j, t] = s[n - 1] / s[0] if len(s) >= n and s[0] > 0 else 0.0
    np.testing.assert_array_equal(grids["float64"].full_rank, full64 / trials)
    np.testing.assert_array_equal(grids["float32"].full_rank, full32 / trials)
    for g in grids.values():
        np.testing.assert_array_equal(g.no_dead_point, alive / trials)
        # σ_n/σ_1 from the Gram eigenvalues: absolute error <= √(n ε) (the Gram route's floor)
        assert np.abs(g.sigma_ratio - ratio).max() <= 1e-6
        assert g.d0.tolist() == [3, 7, 15]
    assert np.all(grids["float32"].rtol > grids["float64"].rtol)
    # the grid is not trivial: both outcomes occur
    assert 0 < grids["float32"].full_rank.mean() < 1


def test_trial_shortcuts_agree_with_the_eigenvalues() -> None:
    """A dead point or too few columns is rank deficient: the eigenvalues agree."""
    dead = 0
    for seed in range(200):
        X, W, b, v = _draw(12, 2, 3, seed)
        alive, ratio = _trial(X, W, b, v, True)
        rank = zl.gram_rank(zl.shallow_gram(X, W, b, v, frozen_v=True))
        assert (ratio > zl.gram_rtol(12)) == (rank == 12)
        dead += not alive
        assert alive or rank < 12
    X, W, b, v = _draw(12, 2, 2, 0)  # 2 · (2 + 2) = 8 < 12 columns
    assert zl.gram_rank(zl.shallow_gram(X, W, b, v, frozen_v=True)) < 12
    assert _trial(X, W, b, v, True)[1] == 0.0
    assert dead > 10


def test_generic_full_rank_when_wide() -> None:
    """d₀ ≥ n: X alone has rank n, so rank J = n iff no data point is dead."""
    grid = zl.full_rank_grid([8], [12], trials=20, rng=8, ratio=1.0, frozen_v=False)
    assert grid.full_rank[0, 0] == grid.no_dead_point[0, 0] > 0.8


# ------------------------------------------------------------------ hostile inputs


def test_sizes_above_the_memory_budget_are_refused_before_allocating() -> None:
    zl.set_memory_budget(1 << 30)
    try:
        with pytest.raises(ValueError, match=r"^d_in, d_out: W and b \(d_out × d_in = 1000000 × 1000000\)"):
            zl.torch_linear_init(10**6, 10**6, 0)
        with pytest.raises(ValueError, match=r"^X, W: the pre-activations and pattern"):
            zl.shallow_gram(np.ones((10**4, 1)), np.ones((10**6, 1)), np.zeros(10**6), np.ones(10**6))
        with pytest.raises(ValueError, match=r"^X: J Jᵀ and its factors \(4 × n × n = 4 × 100000 × 100000\)"):
            zl.shallow_gram(np.ones((10**5, 2)), np.ones((3, 2)), np.zeros(3), np.ones(3))
        with pytest.raises(ValueError, match=r"^X, W: J and its blocks"):
            zl.shallow_jacobian(np.ones((10**3, 100)), np.ones((10**4, 100)), np.zeros(10**4), np.ones(10**4))
        with pytest.raises(ValueError, match=r"^ns, widths: one draw at n = 1000000, d₁ = 2"):
            zl.full_rank_grid([10**6], [2], trials=1, rng=0)
        with pytest.raises(ValueError, match=r"^trials: σ_n/σ_1 of every draw \(1 cells × 1000000000 trials\)"):
            zl.full_rank_grid([4], [2], trials=10**9, rng=0)
    finally:
        zl.set_memory_budget(None)
    # a cell with fewer columns than rows forms no Gram matrix: n = 1e5 is not refused for it
    g = zl.full_rank_grid([10**5], [2], trials=1, rng=0, ratio=1e-5)
    assert g.full_rank.tolist() == [[0.0]] and g.no_dead_point.shape == (1, 1)


@pytest.mark.parametrize(
    "scales, frozen_v, message",
    [
        ((1e200, 1.0, 1.0), False, r"^X, v: J Jᵀ overflows float64"),
        ((1.0, 1.0, 1e200), False, r"^X, v: J Jᵀ overflows float64"),
        ((1e200, 1.0, 1.0), True, r"^X, v: J Jᵀ overflows float64"),
        ((1e300, 1e10, 1.0), False, r"^X, W, b: the pre-activations W x \+ b overflow float64"),
    ],
    ids=["X 1e200", "v 1e200", "X 1e200 frozen v", "W x overflows"],
)
def test_shallow_gram_refuses_an_overflow_from_finite_inputs(
    scales: tuple[float, float, float], frozen_v: bool, message: str
) -> None:
    sx, sw, sv = scales
    X = np.random.default_rng(1).standard_normal((4, 2)) * sx
    W, b = zl.torch_linear_init(2, 3, 0)
    with np.errstate(all="raise"), pytest.raises(ValueError, match=message):
        zl.shallow_gram(X, W * sw, b, np.array([1.0, -2.0, 0.5]) * sv, frozen_v=frozen_v)


def test_shallow_jacobian_refuses_products_that_overflow_and_keeps_large_finite_ones() -> None:
    X = np.random.default_rng(1).standard_normal((4, 2))
    W, b = zl.torch_linear_init(2, 3, 0)
    v = np.array([1.0, -2.0, 0.5])
    with np.errstate(all="raise"), pytest.raises(ValueError, match=r"^X, v: the Jacobian overflows float64"):
        zl.shallow_jacobian(X * 1e200, W, b, v * 1e200)
    # inputs and biases scaled by 2^600 (exact): the W- and v-columns scale, the b-columns do not
    s = 2.0**600
    J, big = zl.shallow_jacobian(X, W, b, v, frozen_v=True), zl.shallow_jacobian(X * s, W, b * s, v, frozen_v=True)
    w_cols, b_cols = slice(0, 6), slice(6, 9)
    assert np.array_equal(big[:, w_cols], J[:, w_cols] * s) and np.array_equal(big[:, b_cols], J[:, b_cols])
    assert np.array_equal(big[:, 9:], J[:, 9:] * s)


@pytest.mark.parametrize("ns", [None, "4", 4, {4: 1}], ids=["None", "str", "int", "dict"])
def test_full_rank_grid_sizes_that_are_no_sequence_are_a_type_error(ns: object) -> None:
    with pytest.raises(TypeError, match=r"^ns must be a sequence of integers >= 1"):
        zl.full_rank_grid(ns, [2], trials=1, rng=0)  # type: ignore[arg-type]
