"""Full-rank Jacobians of a shallow ReLU network with a frozen output layer.

The model of karhadkar2024mildly is ``F(x) = vᵀ ReLU(W x + b)`` with ``W`` (d₁ × d₀),
``b`` (d₁) trained and ``v`` (d₁) fixed. On a dataset ``X`` (n × d₀) with activation
pattern ``A_ij = 1[w_jᵀ x_i + b_j > 0]`` (n × d₁) its Jacobian with respect to ``(W, b)`` is

    J = [(A diag v) ⊛ X | A diag v] = (A diag v) ⊛ [X | 1]

(``⊛`` the row-wise Kronecker product, :func:`zlnotes.face_split`; this is the structure of
Lemma 1 of chen2025zeroloss for one hidden layer). Its Gram matrix is a Hadamard product,

    J Jᵀ = (A diag(v²) Aᵀ) ∘ (X Xᵀ + 1),

an n × n matrix whatever the number ``d₁(d₀ + 1)`` of columns: the rank is decided from it
(its eigenvalues are the squared singular values of ``J``) without forming ``J``. The experiment code of the paper
differentiates with respect to every registered parameter, the frozen ``v`` included; its
Jacobian carries ``d₁`` more columns ``ReLU(X Wᵀ + bᵀ)``, which add their Gram matrix to
the sum (``frozen_v=True``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_generator, as_matrix, as_vector, boolean, choice, positive_int, real_scalar
from .linalg import face_split, gram_rtol
from .memory import FLOAT_BYTES, require_memory

Array = np.ndarray

__all__ = [
    "FullRankGrid",
    "full_rank_grid",
    "shallow_gram",
    "shallow_jacobian",
    "torch_linear_init",
]


def torch_linear_init(d_in: int, d_out: int, rng: object) -> tuple[Array, Array]:
    """Default ``torch.nn.Linear`` initialisation, reproduced in numpy.

    Weights and biases are uniform on ``[−1/√d_in, 1/√d_in)`` (PyTorch's
    ``kaiming_uniform_(a=√5)`` gives this bound for the weights, and the bias bound is
    ``1/√fan_in``). Each entry is ``(2u − 1)/√d_in`` with ``u`` from ``rng.random``.

    Parameters
    ----------
    d_in, d_out : int
        Input and output sizes (``fan_in = d_in``).
    rng : numpy.random.Generator or int
        Generator or seed.

    Returns
    -------
    W : numpy.ndarray, shape (d_out, d_in)
    b : numpy.ndarray, shape (d_out,)

    Examples
    --------
    >>> import zlnotes as zl
    >>> W, b = zl.torch_linear_init(4, 3, 0)
    >>> W.shape, b.shape, bool(abs(W).max() < 0.5)
    ((3, 4), (3,), True)
    """
    d_in = positive_int("d_in", d_in)
    d_out = positive_int("d_out", d_out)
    gen = as_generator(rng)
    require_memory("d_in, d_out", f"W and b (d_out × d_in = {d_out} × {d_in})", (d_out * d_in + d_out) * FLOAT_BYTES)
    bound = 1.0 / np.sqrt(float(d_in))
    W = (2.0 * gen.random((d_out, d_in)) - 1.0) * bound
    b = (2.0 * gen.random(d_out) - 1.0) * bound
    return W, b


def _shallow_parts(X: ArrayLike, W: ArrayLike, b: ArrayLike, v: ArrayLike) -> tuple[Array, Array, Array]:
    X = as_matrix("X", X)
    W = as_matrix("W", W)
    if W.shape[1] != X.shape[1]:
        raise ValueError(f"W must have d₀ = {X.shape[1]} columns (the columns of X); got shape {W.shape}")
    b = as_vector("b", b, length=W.shape[0])
    v = as_vector("v", v, length=W.shape[0])
    n, d1 = X.shape[0], W.shape[0]
    require_memory("X, W", f"the pre-activations and pattern (3 × n × d₁ = 3 × {n} × {d1})", 3 * n * d1 * FLOAT_BYTES)
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below
        Z = X @ W.T + b
    if not np.all(np.isfinite(Z)):
        raise ValueError(
            f"X, W, b: the pre-activations W x + b overflow float64 (max |X| = {float(np.abs(X).max()):.3g}, "
            f"max |W| = {float(np.abs(W).max()):.3g}, max |b| = {float(np.abs(b).max()):.3g}); rescale them"
        )
    return X, Z, v


def _require_finite_result(what: str, result: Array, X: Array, v: Array) -> Array:
    """``result`` if finite, else ``ValueError``: finite arguments whose products leave float64."""
    if not np.all(np.isfinite(result)):
        raise ValueError(
            f"X, v: {what} overflows float64 (max |X| = {float(np.abs(X).max()):.3g}, "
            f"max |v| = {float(np.abs(v).max()):.3g}); rescale the data or the network"
        )
    return result


def shallow_jacobian(X: ArrayLike, W: ArrayLike, b: ArrayLike, v: ArrayLike, *, frozen_v: bool = False) -> Array:
    """The formed Jacobian of ``F(x) = vᵀ ReLU(W x + b)`` on the rows of ``X``.

    Parameters
    ----------
    X : array_like, shape (n, d₀)
    W : array_like, shape (d₁, d₀)
    b, v : array_like, shape (d₁,)
    frozen_v : bool
        Append the ``d₁`` columns ``∂F/∂v = ReLU(X Wᵀ + bᵀ)``, as the paper's code does.

    Returns
    -------
    numpy.ndarray, shape (n, d₁ d₀ + d₁) or (n, d₁ d₀ + 2 d₁)
        Columns ``[(A diag v) ⊛ X | A diag v]`` (``W`` row-major, then ``b``), then the
        ``v`` columns if ``frozen_v``. ``A_ij = 1[(W x_i + b)_j > 0]``.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> J = zl.shallow_jacobian(np.eye(2), np.eye(2), [0.0, 0.0], [1.0, 2.0])
    >>> J.tolist()
    [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 2.0, 0.0, 2.0]]
    """
    frozen_v = boolean("frozen_v", frozen_v)
    X, Z, v = _shallow_parts(X, W, b, v)
    n, d0, d1 = X.shape[0], X.shape[1], Z.shape[1]
    columns = d1 * (d0 + 1 + int(frozen_v))
    require_memory("X, W", f"J and its blocks (2 × n × P = 2 × {n} × {columns})", 2 * n * columns * FLOAT_BYTES)
    Av = (Z > 0) * v
    if float(np.abs(v).max()) * float(np.abs(X).max()) > np.finfo(float).max:  # v_j x_ik may overflow
        with np.errstate(over="ignore"):  # within the memory of J checked above
            _require_finite_result("the Jacobian", np.abs(Av[:, :, None] * X[:, None, :]).max(), X, v)
    blocks = [face_split(Av, X), Av]
    if frozen_v:
        blocks.append(np.maximum(Z, 0.0))
    return _require_finite_result("the Jacobian", np.hstack(blocks), X, v)


def shallow_gram(X: ArrayLike, W: ArrayLike, b: ArrayLike, v: ArrayLike, *, frozen_v: bool = False) -> Array:
    """``J Jᵀ`` of :func:`shallow_jacobian` without forming ``J``.

    ``J Jᵀ = (A diag(v²) Aᵀ) ∘ (X Xᵀ + 1)``, plus ``ReLU(Z) ReLU(Z)ᵀ`` with
    ``Z = X Wᵀ + bᵀ`` if ``frozen_v``. Same arguments as :func:`shallow_jacobian`.

    Returns
    -------
    numpy.ndarray, shape (n, n)

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> X, W, b, v = np.eye(2), np.eye(2), [0.0, 0.0], [1.0, 2.0]
    >>> J = zl.shallow_jacobian(X, W, b, v, frozen_v=True)
    >>> bool(np.allclose(zl.shallow_gram(X, W, b, v, frozen_v=True), J @ J.T))
    True
    """
    frozen_v = boolean("frozen_v", frozen_v)
    X, Z, v = _shallow_parts(X, W, b, v)
    n = X.shape[0]
    require_memory("X", f"J Jᵀ and its factors (4 × n × n = 4 × {n} × {n})", 4 * n * n * FLOAT_BYTES)
    Av = (Z > 0) * v
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below
        G = (Av @ Av.T) * (X @ X.T + 1.0)
        if frozen_v:
            R = np.maximum(Z, 0.0)
            G = G + R @ R.T
    return _require_finite_result("J Jᵀ", G, X, v)


class FullRankGrid(NamedTuple):
    """Estimated probabilities on a grid of dataset sizes ``ns`` (columns) and widths (rows)."""

    ns: Array
    """Dataset sizes n, shape (len(ns),)."""
    widths: Array
    """Hidden widths d₁, shape (len(widths),)."""
    d0: Array
    """Input dimensions ``⌈ratio · n⌉``, shape (len(ns),)."""
    full_rank: Array
    """Fraction of trials with ``rank J = n`` at the chosen tolerance, shape (len(widths), len(ns))."""
    no_dead_point: Array
    """Fraction of trials in which every data point activates some neuron (same shape)."""
    sigma_ratio: Array
    """``σ_n(J)/σ_1(J)`` of each trial, from the Gram eigenvalues (0 when a data point is dead or
    ``J`` has fewer columns than rows), shape (len(widths), len(ns), trials)."""
    rtol: Array
    """The relative tolerance of each cell: ``rank J = n`` iff ``sigma_ratio > rtol``
    (shape (len(widths), len(ns)))."""


def full_rank_grid(
    ns: ArrayLike,
    widths: ArrayLike,
    *,
    trials: int,
    rng: object,
    ratio: float = 0.5,
    frozen_v: bool = True,
    tolerance: str = "float32",
) -> FullRankGrid:
    """Estimate ``P(rank J = n)`` for ``F(x) = vᵀ ReLU(W x + b)`` at random draws.

    For each width ``d₁`` and size ``n`` (input dimension ``d₀ = ⌈ratio · n⌉``) and each
    trial: ``W, b`` by :func:`torch_linear_init`, ``v`` standard normal, ``X`` uniform on
    ``[0, 1)^{n × d₀}`` (drawn in this order, as the paper's code does with PyTorch). The
    singular values come from the eigenvalues of the Gram matrix :func:`shallow_gram`
    (``σ_i² = λ_i``); ``J`` is never formed. A draw with a dead data point (a zero row of
    ``J``) or with fewer columns than rows is rank deficient without an eigenvalue computation.

    Parameters
    ----------
    ns, widths : array_like of int
        Dataset sizes and hidden widths (each ≥ 1).
    trials : int
        Random draws per cell.
    rng : numpy.random.Generator or int
        Generator or seed.
    ratio : float
        ``d₀ / n`` before rounding up; in ``(0, 100]``.
    frozen_v : bool
        Include the frozen ``v`` columns in ``J`` (the paper's code does).
    tolerance : {"float32", "float64"}
        ``"float32"``: ``rank J = n`` iff ``σ_n/σ_1 > max(n, P) · ε₃₂`` (``P`` the number of
        columns, ``ε₃₂ = 2^-23``), the default threshold of ``torch.linalg.matrix_rank`` on the
        float32 Jacobian of the paper's code. ``"float64"``: the finest threshold the Gram
        route resolves, :func:`zlnotes.gram_rtol` ``(n)``.

    Returns
    -------
    FullRankGrid

    Examples
    --------
    >>> import zlnotes as zl
    >>> g = zl.full_rank_grid([4], [1, 8], trials=5, rng=0)
    >>> g.full_rank.shape, g.sigma_ratio.shape, g.d0.tolist()
    ((2, 1), (2, 1, 5), [2])
    """
    ns_a = _int_list("ns", ns)
    widths_a = _int_list("widths", widths)
    trials = positive_int("trials", trials)
    gen = as_generator(rng)
    ratio = real_scalar("ratio", ratio, lo=0.0, lo_open=True, hi=100.0)
    frozen_v = boolean("frozen_v", frozen_v)
    tolerance = choice("tolerance", tolerance, ("float32", "float64"))
    d0s = [int(np.ceil(ratio * n)) for n in ns_a]
    cells = len(widths_a) * len(ns_a)
    require_memory("trials", f"σ_n/σ_1 of every draw ({cells} cells × {trials} trials)", cells * trials * FLOAT_BYTES)
    # one draw holds X (n × d₀), W (d₁ × d₀), Z, A, A diag v, ReLU(Z) (n × d₁), and 4 n × n
    # matrices unless J has fewer columns than rows (then no Gram matrix is formed)
    need, n_big, d1_big = max(
        (
            (n * d0 + d1 * d0 + 4 * n * d1 + (4 * n * n if d1 * (d0 + 1 + int(frozen_v)) >= n else 0), n, d1)
            for n, d0 in zip(ns_a, d0s)
            for d1 in widths_a
        )
    )
    require_memory("ns, widths", f"one draw at n = {n_big}, d₁ = {d1_big}", need * FLOAT_BYTES)
    sig = np.zeros((len(widths_a), len(ns_a), trials))
    alive = np.zeros((len(widths_a), len(ns_a)))
    tol = np.zeros_like(alive)
    for i, d1 in enumerate(widths_a):
        for j, (n, d0) in enumerate(zip(ns_a, d0s)):
            columns = d1 * (d0 + 1 + int(frozen_v))
            f32 = max(n, columns) * float(np.finfo(np.float32).eps)
            tol[i, j] = f32 if tolerance == "float32" else gram_rtol(n)
            for t in range(trials):
                W, b = torch_linear_init(d0, d1, gen)
                v = gen.standard_normal(d1)
                X = gen.random((n, d0))
                ok, sig[i, j, t] = _trial(X, W, b, v, frozen_v)
                alive[i, j] += ok
    full = np.mean(sig > tol[:, :, None], axis=2)
    return FullRankGrid(np.array(ns_a), np.array(widths_a), np.array(d0s), full, alive / trials, sig, tol)


def _trial(X: Array, W: Array, b: Array, v: Array, frozen_v: bool) -> tuple[bool, float]:
    """(no dead data point, σ_n/σ_1 of J) for one draw; the Gram route, J never formed."""
    Z = X @ W.T + b
    A = Z > 0
    if not np.all(np.any(A, axis=1)):
        return False, 0.0  # a dead point is a zero row of J
    n, d0 = X.shape
    if W.shape[0] * (d0 + 1 + int(frozen_v)) < n:
        return True, 0.0  # fewer columns than rows
    Av = A * v
    G = (Av @ Av.T) * (X @ X.T + 1.0)
    if frozen_v:
        R = np.maximum(Z, 0.0)
        G += R @ R.T
    lam = np.linalg.eigvalsh(G)
    return True, float(np.sqrt(max(lam[0], 0.0) / lam[-1]))


def _int_list(name: str, values: ArrayLike) -> list[int]:
    if values is None or isinstance(values, (str, bytes, dict)) or np.ndim(values) == 0:
        raise TypeError(f"{name} must be a sequence of integers >= 1; got {type(values).__name__} {values!r}")
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of integers >= 1; got shape {arr.shape}")
    return [positive_int(f"{name}[{k}]", x) for k, x in enumerate(arr.tolist())]
