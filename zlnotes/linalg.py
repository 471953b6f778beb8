"""Linear algebra of the training Jacobian: face-splitting products, ranks and projectors.

Tolerance rule
--------------
A matrix ``A`` (m × n) with singular values ``s_1 ≥ s_2 ≥ …`` has *numerical rank*
``#{i : s_i > rtol · s_1}``.

**SVD route** (:func:`numerical_rank`). The default ``rtol = max(m, n) · ε`` (ε = 2.2e-16,
the float64 machine epsilon) is the rule of LAPACK and :func:`numpy.linalg.matrix_rank`: a
backward-stable SVD returns the exact singular values of ``A + E`` with
``‖E‖₂ ≲ max(m, n) · ε · ‖A‖₂``, and by Weyl's inequality ``|ŝ_i − s_i| ≤ ‖E‖₂``, so a
singular value below that bound cannot be told apart from zero.

**Gram route** (:func:`gram_rank`, :func:`zlnotes.jacobian_rank`). The Gram matrix
``G = A Aᵀ`` has eigenvalues ``λ_i = s_i²``: squaring is what makes the route cheap for a
wide ``A`` (``m × m`` instead of ``m × n``) and what costs it resolution. ``G`` carries two
errors, both on the scale of its largest eigenvalue ``s_1²``:

1. forming it: each entry is a sum of products with a rounding error of at most a few ε
   times ``|a_i| |a_j|`` (rows of ``A``), so the error matrix has 2-norm ``≲ c · ε · ‖A‖_F²
   ≤ c · m · ε · s_1²``;
2. the symmetric eigensolver (LAPACK ``syevd`` behind :func:`numpy.linalg.eigvalsh`) is
   backward stable: its eigenvalues are exact for ``G + E'`` with ``‖E'‖₂ ≲ m · ε · s_1²``.

By Weyl's inequality every computed ``λ_i`` is within about ``m · ε · s_1²`` of ``s_i²``, so
an eigenvalue is distinguishable from zero only if ``s_i² > m · ε · s_1²``, that is
``s_i > √(m · ε) · s_1``. The Gram route therefore uses ``rtol_gram = √(m · ε)``
(:func:`gram_rtol`; about ``1.5e-7`` for m = 100, ``4.7e-7`` for m = 1000 and ``9.5e-7`` for
m = 4096) on the singular-value scale, i.e. it counts eigenvalues ``λ_i > m · ε · λ_max``.

What that costs: singular values between ``max(m, n) · ε · s_1`` and ``√(m · ε) · s_1``
(about six orders of magnitude: for m = 1000, n = 10⁴ from ``2.2e-12`` to ``4.7e-7``) are
seen by the SVD and not by the Gram route. The two ranks agree whenever no singular value
falls in that band, as for a generic network whose smallest singular value is well above
it; a network with a near-degenerate layer can put one there, and then the Gram rank is the
smaller (it is the rank at the coarser tolerance, as documented). :func:`gram_rank` refuses
an ``rtol`` below ``√(m · ε)``; :func:`zlnotes.jacobian_rank` falls back to the SVD of the
full ``D`` when asked for one (or for ``method="svd"``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_matrix, positive_int, real_scalar
from .memory import FLOAT_BYTES, require_memory
from .typing import Array

__all__ = [
    "EPS",
    "face_split",
    "singular_values",
    "default_rtol",
    "gram_rtol",
    "numerical_rank",
    "gram_rank",
    "rank_from_gram_eigenvalues",
    "RangeProjector",
    "range_projector",
]


EPS = float(np.finfo(np.float64).eps)
"""Machine epsilon of float64, 2.22e-16."""

SAFE_EXPONENT = 300
"""Matrices whose largest entry lies outside ``[2^-300, 2^300]`` are scaled by a power of 4
(exact, and commuting with square roots) before an SVD or an eigensolver, so that singular
values that overflow float64 (``np.full((2, 2), 1e308)`` has ``s_1 = 2e308``) or lose digits
as subnormal numbers are still resolved; matrices inside the range are passed on as given."""


def _power_of_four_scale(A: Array, exponent: int = SAFE_EXPONENT) -> int:
    """``e`` (even) such that ``2^e · max|A|`` is about 1, or 0 when ``max|A|`` is already
    in ``[2^-exponent, 2^exponent]`` (or ``A = 0``)."""
    top = float(np.abs(A).max())
    if top == 0.0 or 2.0**-exponent <= top <= 2.0**exponent:
        return 0
    e = -int(np.frexp(top)[1])
    return e - (e % 2)


def _scaled(A: Array) -> tuple[Array, int]:
    """``(2^e A, e)`` with :func:`_power_of_four_scale`; ``A`` itself when ``e = 0``."""
    e = _power_of_four_scale(A)
    return (np.ldexp(A, e) if e else A), e


def _require_svd_memory(name: str, shape: tuple[int, ...], extra: int = 0) -> None:
    m, n = shape
    require_memory(name, f"the SVD of a {m} × {n} matrix", (m * n + min(m, n) ** 2 + extra) * FLOAT_BYTES)


def face_split(A: ArrayLike, B: ArrayLike) -> Array:
    """The broadcast vectorized tensor product ``A ⊛ B`` (chen2025zeroloss, Definition 4.2).

    Row ``j`` of the result is the Kronecker product ``A_j ⊗ B_j`` of the rows of ``A`` and
    ``B`` (the "face-splitting" or row-wise Kronecker product).

    Parameters
    ----------
    A : array_like, shape (N, a)
    B : array_like, shape (N, b)

    Returns
    -------
    numpy.ndarray, shape (N, a·b)
        Entry ``[j, i·b + k] = A[j, i] · B[j, k]``.
    """
    A = as_matrix("A", A)
    B = as_matrix("B", B)
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"A and B must have the same number of rows; got A {A.shape} and B {B.shape}")
    (N, a), b = A.shape, B.shape[1]
    require_memory("A", f"the product A ⊛ B (N × a·b = {N} × {a * b})", N * a * b * FLOAT_BYTES)
    with np.errstate(over="ignore", invalid="ignore"):
        out = (A[:, :, None] * B[:, None, :]).reshape(N, -1)
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"A: the products A[j, i]·B[j, k] overflow float64 (max |A| = {float(np.abs(A).max()):.3g}, "
            f"max |B| = {float(np.abs(B).max()):.3g}); rescale A or B"
        )
    return out


def singular_values(A: ArrayLike) -> Array:
    """Singular values of a matrix.

    Parameters
    ----------
    A : array_like, shape (m, n)
        A finite real matrix.

    Returns
    -------
    numpy.ndarray, shape (min(m, n),)
        The singular values in decreasing order (LAPACK's SVD, without the singular vectors).
        A matrix with entries outside ``[2^-300, 2^300]`` is scaled by a power of 4 first
        (:data:`SAFE_EXPONENT`), so subnormal entries keep their digits.

    Raises
    ------
    ValueError
        If the largest singular value exceeds the float64 range (about 1.8e308), or on
        malformed input.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> zl.singular_values(np.diag([3e-320, 4e-320])).tolist()
    [4e-320, 3e-320]
    """
    A = as_matrix("A", A)
    _require_svd_memory("A", A.shape)
    As, e = _scaled(A)
    s = np.asarray(np.linalg.svd(As, compute_uv=False), dtype=np.float64)
    if not e:
        return s
    with np.errstate(over="ignore"):
        s = np.ldexp(s, -e)
    if not np.isfinite(s[0]):
        top = np.log10(float(np.linalg.svd(As, compute_uv=False)[0])) - e * np.log10(2.0)
        mantissa, exponent = 10 ** (top % 1), int(top // 1)
        raise ValueError(
            f"A: its largest singular value, about {mantissa:.3g}e+{exponent}, exceeds the float64 range "
            "(about 1.8e308); rescale A"
        )
    return s


def default_rtol(shape: tuple[int, int]) -> float:
    """The SVD tolerance ``max(m, n) · ε`` relative to the largest singular value."""
    return max(shape) * EPS


def gram_rtol(m: int) -> float:
    """The finest relative singular-value tolerance the Gram route can resolve, ``√(m · ε)``.

    Parameters
    ----------
    m : int
        The size ``m ≥ 1`` of the Gram matrix (rows of ``A``).

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``m`` is not an integer.
    ValueError
        If ``m < 1`` or ``m > 2^52`` (then ``m · ε > 1``).

    Examples
    --------
    >>> import zlnotes as zl
    >>> f"{zl.gram_rtol(100):.2g}"
    '1.5e-07'
    """
    m = positive_int("m", m)
    if m > 2**52:  # m · ε > 1: no tolerance below 1 is resolvable
        raise ValueError(f"m must be an integer in [1, 2^52] (m · ε <= 1); got {m}")
    return float(np.sqrt(m * EPS))


def _check_rtol(rtol: float | None, default: float, *, floor: float = 0.0) -> float:
    if rtol is None:
        return default
    rtol = real_scalar("rtol", rtol, lo=0.0, hi=1.0, hi_open=True)
    if rtol < floor:
        raise ValueError(
            f"rtol must be >= {floor:.3g} on the Gram route (the Gram matrix squares the singular values); "
            f"got {rtol:.3g}; use the SVD for a finer tolerance"
        )
    return float(rtol)


def numerical_rank(A: ArrayLike, rtol: float | None = None) -> int:
    """Numerical rank of ``A`` from its SVD: ``#{s_i > rtol · s_1}``.

    The rank does not depend on the scale of ``A``: a matrix with entries outside
    [2⁻³⁰⁰, 2³⁰⁰] is scaled by a power of 4 first.

    Parameters
    ----------
    A : array_like, shape (m, n)
    rtol
        Relative tolerance; default ``max(m, n) · ε`` (see the module docstring).

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> zl.numerical_rank(np.full((2, 2), 1e308)), zl.numerical_rank(np.eye(3) * 1e-320)
    (1, 3)
    """
    A = as_matrix("A", A)
    tol = _check_rtol(rtol, default_rtol(A.shape))
    _require_svd_memory("A", A.shape)
    s = np.linalg.svd(_scaled(A)[0], compute_uv=False)
    if s[0] == 0.0:
        return 0
    return int(np.count_nonzero(s > tol * s[0]))


def gram_rank(G: ArrayLike, rtol: float | None = None) -> int:
    """Rank of ``A`` computed from its Gram matrix ``G = A Aᵀ`` (m × m).

    Counts eigenvalues ``λ_i > (rtol · s_1)²`` with ``s_1² = λ_max``.

    Parameters
    ----------
    G : array_like, shape (m, m)
        A symmetric positive semi-definite Gram matrix.
    rtol
        Relative tolerance on the singular values of ``A``; default and minimum
        :func:`gram_rtol` ``(m)`` (see the module docstring).

    Raises
    ------
    ValueError
        If ``G`` is not square, not symmetric (to a relative ``1e-10``), or not positive
        semi-definite: an eigenvalue below ``−gram_rtol(m) · max |λ_i|``, far beyond what
        rounding in forming a Gram matrix and in the eigensolver can produce (module
        docstring). ``G`` is scaled by a power of 4 when its entries leave
        ``[2^-300, 2^300]``, so the rank does not depend on its scale.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> A = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    >>> zl.gram_rank(A @ A.T), zl.gram_rank(1e300 * (A @ A.T))
    (2, 2)
    """
    G = as_matrix("G", G)
    if G.shape[0] != G.shape[1]:
        raise ValueError(f"G must be square; got shape {G.shape}")
    m = G.shape[0]
    tol = _check_rtol(rtol, gram_rtol(m), floor=gram_rtol(m))
    require_memory("G", f"the eigenvalues of a {m} × {m} matrix", 4 * m * m * FLOAT_BYTES)
    G, _ = _scaled(G)
    if not np.allclose(G, G.T, rtol=1e-10, atol=1e-12 * float(np.abs(G).max())):
        raise ValueError("G must be symmetric (a Gram matrix A Aᵀ)")
    lam = np.linalg.eigvalsh(G)
    allowance = gram_rtol(m) * float(np.abs(lam).max())
    if lam[0] < -allowance or (lam[0] < 0 and lam[-1] <= 0):
        raise ValueError(
            f"G must be positive semi-definite (a Gram matrix A Aᵀ); its smallest eigenvalue is "
            f"{lam[0] / float(np.abs(lam).max()):.3g} × max |λ|, below the rounding allowance "
            f"-gram_rtol(m) = {-gram_rtol(m):.3g}"
        )
    return rank_from_gram_eigenvalues(lam, tol)


def rank_from_gram_eigenvalues(eigenvalues: ArrayLike, rtol: float) -> int:
    """``#{λ_i > rtol² · λ_max}``: the rank of ``A`` from the eigenvalues of ``A Aᵀ``.

    ``rtol`` is relative to the largest singular value of ``A`` (see :func:`gram_rank`).
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    top = float(lam.max()) if lam.size else 0.0
    if top <= 0.0:
        return 0
    return int(np.count_nonzero(lam > (rtol * rtol) * top))


class RangeProjector(NamedTuple):
    """Orthogonal projectors onto ``range D`` and its complement."""

    P: Array
    """Projector onto ``range D`` (``m × m``)."""
    P_perp: Array
    """Projector onto ``(range D)^⊥``, ``1 − P``."""
    rank: int
    """``rank P`` = numerical rank of ``D``; ``rank P_perp = m − rank``."""


def range_projector(D: ArrayLike, rtol: float | None = None) -> RangeProjector:
    """Orthogonal projectors ``P`` onto ``range D ⊂ ℝ^m`` and ``P^⊥ = 1 − P``.

    ``P = U_r U_rᵀ`` with ``U_r`` the left singular vectors of the ``r`` singular values above
    the tolerance of :func:`numerical_rank`.

    Parameters
    ----------
    D : array_like, shape (m, n)
    rtol
        As in :func:`numerical_rank`.
    """
    D = as_matrix("D", D)
    tol = _check_rtol(rtol, default_rtol(D.shape))
    m, n = D.shape
    require_memory(
        "D",
        f"the projectors P and P_perp (m × m = {m} × {m}) and the SVD of D ({m} × {n})",
        (2 * m * m + 2 * m * min(m, n) + m * n) * FLOAT_BYTES,
    )
    U, s, _ = np.linalg.svd(_scaled(D)[0], full_matrices=False)
    r = 0 if s[0] == 0.0 else int(np.count_nonzero(s > tol * s[0]))
    Ur = U[:, :r]
    P = Ur @ Ur.T
    return RangeProjector(P, np.eye(D.shape[0]) - P, r)
