import numpy as np
import pytest
from tolerances import ROUNDOFF_RTOL

import zlnotes as zl


def test_face_split_rows_are_kronecker_products():
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    C = zl.face_split(A, B)
    assert C.shape == (5, 12)
    for j in range(5):
        assert np.array_equal(C[j], np.kron(A[j], B[j]))


def test_face_split_commutes_up_to_a_column_permutation():
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((4, 2)), rng.standard_normal((4, 3))
    perm = np.array([k * 2 + i for i in range(2) for k in range(3)])  # column (i, k) of A⊛B is (k, i) of B⊛A
    assert np.array_equal(zl.face_split(A, B), zl.face_split(B, A)[:, perm])


def test_face_split_bad_shapes():
    with pytest.raises(ValueError, match="A and B must have the same number of rows"):
        zl.face_split(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="B must be a 2-D array"):
        zl.face_split(np.ones((3, 2)), np.ones(3))


def test_numerical_rank_agrees_with_numpy():
    rng = np.random.default_rng(2)
    for r in (0, 1, 3, 5):
        A = rng.standard_normal((7, r)) @ rng.standard_normal((r, 9)) if r else np.zeros((7, 9))
        assert zl.numerical_rank(A) == np.linalg.matrix_rank(A) == r
    s = zl.singular_values(rng.standard_normal((4, 6)))
    assert s.shape == (4,) and np.all(np.diff(s) <= 0)


def test_range_projector():
    rng = np.random.default_rng(3)
    D = rng.standard_normal((8, 3)) @ rng.standard_normal((3, 5))  # rank 3 in ℝ^8
    P, P_perp, rank = zl.range_projector(D)
    assert rank == 3
    assert np.allclose(P @ P, P, atol=1e-14) and np.allclose(P, P.T, atol=1e-15)
    assert np.allclose(P @ D, D, atol=1e-13)
    assert round(np.trace(P_perp)) == 5
    assert np.allclose(P_perp @ D, 0, atol=1e-13)
    # independent reference: P_perp projects onto ker Dᵀ, spanned by the last left singular vectors
    U = np.linalg.svd(D)[0]
    assert np.allclose(P_perp, U[:, 3:] @ U[:, 3:].T, atol=1e-13)


def test_gram_rank_checks():
    with pytest.raises(ValueError, match="G must be square"):
        zl.gram_rank(np.ones((3, 4)))
    assert zl.gram_rank(np.zeros((3, 3))) == 0
    A = np.random.default_rng(4).standard_normal((5, 8))
    assert zl.gram_rank(A @ A.T) == 5
    assert abs(zl.singular_values(A)[0] ** 2 - np.linalg.eigvalsh(A @ A.T)[-1]) < ROUNDOFF_RTOL * 100


def test_gram_rank_needs_a_symmetric_matrix():
    with pytest.raises(ValueError, match="G must be symmetric"):
        zl.gram_rank(np.array([[1.0, 5.0], [0.0, 1.0]]))


def test_smooth_relu_does_not_overflow_far_from_its_kinks():
    s = zl.activation("smooth_relu")
    with np.errstate(over="raise"):
        assert s.value(np.array([-1e200, 1e200])).tolist() == [0.0, 1e200]


def test_gram_tolerance_is_the_documented_one():
    """√(m ε): the numbers quoted in zlnotes.linalg's docstring, and the eigenvalue threshold m ε."""
    assert [f"{zl.gram_rtol(m):.2g}" for m in (100, 1000, 4096)] == ["1.5e-07", "4.7e-07", "9.5e-07"]
    for m in (1, 7, 1024):
        assert np.isclose(zl.gram_rtol(m) ** 2, m * zl.linalg.EPS, rtol=1e-12)
    # eigenvalues above rtol² λ_max count (on the singular-value scale: s_i > rtol s_1)
    lam = np.array([4.0, 4e-11, 4e-13, 0.0, -1e-15])
    assert zl.linalg.rank_from_gram_eigenvalues(lam, 1e-6) == 2
