"""The two-layer ReLU model of du2019gradient and its limiting Gram matrix.

The model is ``u(x) = m^{-1/2} Σ_r a_r σ(w_rᵀx)`` with ``σ = ReLU``, hidden weights
``w_r ∈ R^d`` (the rows of ``W``, trained) and output weights ``a_r ∈ {−1, +1}`` (fixed).
Their loss is the sum ``L = ½ Σ_i (u(x_i) − y_i)²`` (the book's mean cost is ``C = L/n``,
so a step ``η`` on ``L`` is a step ``n η`` on ``C``).

With ``S_ir = 1{w_rᵀx_i ≥ 0}``, the Jacobian of the outputs in ``vec W`` has the rows
``D_i = m^{-1/2} (a ∘ S_i) ⊗ x_i``, and since ``a_r² = 1`` its Gram matrix is

    H = D Dᵀ = (X Xᵀ) ∘ (S Sᵀ) / m,

the matrix ``H(k)`` of du2019gradient, computed here by that identity (``D`` is never
formed). For ``w_r ~ N(0, I)`` its expectation is

    H∞_ij = x_iᵀx_j (π − arccos(x_iᵀx_j / (‖x_i‖ ‖x_j‖))) / (2π),

which for unit inputs is their ``H∞``; ``λ₀ = λ_min(H∞) > 0`` when no two inputs are
parallel (their Theorem 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_generator, as_matrix, as_vector, positive_int, real_scalar
from .kernels import relu_derivative_expectation
from .memory import FLOAT_BYTES, require_memory
from .typing import Array

__all__ = [
    "TwoLayerRun",
    "relu_gram_limit",
    "sphere_data",
    "two_layer_gd",
    "two_layer_gram",
    "two_layer_init",
    "two_layer_output",
    "kernel_losses",
]


_TINY, _HUGE = np.finfo(np.float64).tiny, np.finfo(np.float64).max


def _row_norms(X: Array) -> Array:
    """Row norms by correctly rounded elementwise operations (no SIMD-dependent sums).

    A row whose sum of squares underflows (below the smallest normal number, e.g. entries of
    size 1e-200) or overflows (entries of size 1e200) is measured again after dividing it by
    its largest entry, so that a nonzero row never has norm 0 and a finite norm is never
    inf. Rows of ordinary size take the first route only (the same bits as before).
    """
    s = np.zeros(X.shape[0])
    with np.errstate(over="ignore", under="ignore"):
        for j in range(X.shape[1]):
            s = s + X[:, j] * X[:, j]
        norms = np.sqrt(s)
        redo = (s < _TINY) | (s > _HUGE)
        if np.any(redo):
            R = X[redo]
            top = np.abs(R).max(axis=1)
            scaled = np.zeros(R.shape[0])
            live = top > 0.0
            U = R[live] / top[live, None]
            t = np.zeros(U.shape[0])
            for j in range(U.shape[1]):
                t = t + U[:, j] * U[:, j]
            scaled[live] = top[live] * np.sqrt(t)  # inf only where the norm exceeds float64
            norms[redo] = scaled
    return norms


def _refuse_overflow(name: str, what: str, result: Array, detail: str) -> Array:
    """``result`` if finite, else a ``ValueError`` naming ``name`` (finite inputs, too large a result)."""
    if not np.all(np.isfinite(result)):
        raise ValueError(f"{name}: {what} overflows float64 ({detail}); rescale the data")
    return result


def sphere_data(n: int, d: int, rng: np.random.Generator | int) -> Array:
    """``n`` inputs drawn uniformly on the unit sphere of ``R^d`` (the rows of the result).

    Gaussian rows divided by their norms; the norms are formed column by column, so the
    draw is the same on every CPU.

    Examples
    --------
    >>> X = sphere_data(5, 3, rng=0)
    >>> X.shape, bool(np.allclose(np.linalg.norm(X, axis=1), 1.0))
    ((5, 3), True)
    """
    n = positive_int("n", n)
    d = positive_int("d", d)
    gen = as_generator(rng)
    require_memory("n", f"the inputs (n × d = {n} × {d})", n * d * FLOAT_BYTES)
    X = gen.standard_normal((n, d))
    return np.asarray(X / _row_norms(X)[:, None])


def relu_gram_limit(X: ArrayLike) -> Array:
    """The limiting Gram matrix ``H∞`` of du2019gradient (their eq. for ``H∞_ij``).

    ``H∞_ij = E_{w~N(0,I)}[x_iᵀx_j 1{wᵀx_i ≥ 0, wᵀx_j ≥ 0}]
    = x_iᵀx_j (π − θ_ij) / (2π)``, with ``θ_ij`` the angle between ``x_i`` and ``x_j``:
    ``(X Xᵀ) ∘`` :func:`zlnotes.relu_derivative_expectation` ``(X Xᵀ)``.

    Parameters
    ----------
    X
        ``n × d`` inputs, one per row, none zero (du2019gradient take unit rows).

    Returns
    -------
    numpy.ndarray
        The symmetric ``n × n`` matrix ``H∞``; its diagonal is ``|x_i|²/2``.

    Raises
    ------
    ValueError
        For a zero row, ``3 n²`` floats above the memory budget, or an ``H∞`` that overflows
        float64 (rows of norm above about 1.3e154). Rows whose squares underflow are measured
        at a power-of-two scale: their angles stay exact and ``H∞`` rounds as its entries do.

    Examples
    --------
    >>> H = relu_gram_limit([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    >>> np.round(H, 6).tolist()
    [[0.5, 0.0, -0.0], [0.0, 0.5, 0.0], [-0.0, 0.0, 0.5]]
    """
    X = as_matrix("X", X)
    n = X.shape[0]
    norms = _row_norms(X)
    if np.any(norms == 0.0):
        raise ValueError(f"X must have nonzero rows (the angle is undefined); row {int(np.argmin(norms))} is zero")
    require_memory("X", f"H∞ (n × n = {n} × {n})", 3 * n * n * FLOAT_BYTES)
    detail = f"its diagonal is |x_i|²/2 with max |x_i| = {float(norms.max()):.3g}"
    if float(norms.max()) <= 2.0**500 and float(norms.min()) >= 2.0**-500:  # X Xᵀ neither overflows nor underflows
        G = X @ X.T
        G = (G + G.T) / 2.0  # exactly symmetric
        return _refuse_overflow("X", "H∞", np.asarray(G * relu_derivative_expectation(G)), detail)
    # rows far from unit size: the angles from the unit rows, the sizes put back one at a time
    U = X / norms[:, None]
    C = U @ U.T
    C = (C + C.T) / 2.0
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        H = (norms[:, None] * C) * norms[None, :] * relu_derivative_expectation(C)
    return _refuse_overflow("X", "H∞", np.asarray(H), detail)


def two_layer_init(m: int, d: int, rng: np.random.Generator | int) -> tuple[Array, Array]:
    """du2019gradient's initialisation: ``w_r ~ N(0, I_d)`` and ``a_r`` uniform on ``{−1, +1}``.

    Returns ``(W, a)``: ``W`` is ``m × d`` (row ``r`` is ``w_r``), ``a`` has length ``m``.

    Examples
    --------
    >>> W, a = two_layer_init(4, 3, rng=0)
    >>> W.shape, sorted(set(a.tolist())) <= [-1.0, 1.0]
    ((4, 3), True)
    """
    m = positive_int("m", m)
    d = positive_int("d", d)
    gen = as_generator(rng)
    require_memory("m", f"the hidden weights (m × d = {m} × {d})", m * d * FLOAT_BYTES)
    W = gen.standard_normal((m, d))
    a = np.where(gen.random(m) < 0.5, -1.0, 1.0)
    return W, a


def _weights(W: ArrayLike, a: ArrayLike, X: ArrayLike) -> tuple[Array, Array, Array]:
    W = as_matrix("W", W)
    a = as_vector("a", a, length=W.shape[0])
    X = as_matrix("X", X, cols=W.shape[1], cols_label="d (the columns of W)")
    return W, a, X


def two_layer_output(W: ArrayLike, a: ArrayLike, X: ArrayLike) -> Array:
    """The outputs ``u_i = m^{-1/2} Σ_r a_r max(w_rᵀx_i, 0)`` on the rows of ``X``.

    Examples
    --------
    >>> two_layer_output([[1.0, 0.0], [0.0, 1.0]], [1.0, -1.0], [[2.0, 1.0]]).round(6).tolist()
    [0.707107]
    """
    W, a, X = _weights(W, a, X)
    require_memory(
        "W", f"the pre-activations (n × m = {X.shape[0]} × {W.shape[0]})", X.shape[0] * W.shape[0] * FLOAT_BYTES
    )
    return np.asarray(np.maximum(X @ W.T, 0.0) @ a / np.sqrt(W.shape[0]))


def two_layer_gram(W: ArrayLike, X: ArrayLike) -> Array:
    """``H = D Dᵀ = (X Xᵀ) ∘ (S Sᵀ) / m`` with ``S_ir = 1{w_rᵀx_i ≥ 0}`` (Gram identity).

    ``D`` is the Jacobian of the outputs in ``vec W`` with ``a_r = ±1``; ``H`` does not
    depend on ``a``. Its expectation over ``w_r ~ N(0, I)`` is :func:`relu_gram_limit`.
    ``3 n² + 2 n m`` floats are checked against the memory budget first; an ``H`` that
    overflows float64 is a ``ValueError`` naming ``X``.

    Examples
    --------
    >>> two_layer_gram([[1.0, 0.0], [-1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]).tolist()
    [[0.5, 0.0], [0.0, 1.0]]
    """
    W = as_matrix("W", W)
    X = as_matrix("X", X, cols=W.shape[1], cols_label="d (the columns of W)")
    n, m = X.shape[0], W.shape[0]
    require_memory("W", f"the activation pattern (n × m = {n} × {m})", n * m * FLOAT_BYTES)
    require_memory(
        "X",
        f"H (n × n = {n} × {n}) with X Xᵀ and S Sᵀ, and S (n × m = {n} × {m})",
        (3 * n * n + 2 * n * m) * FLOAT_BYTES,
    )
    S = (_pre_activations(X, W) >= 0.0).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        H = np.asarray((X @ X.T) * (S @ S.T) / m)
    return _refuse_overflow("X", "H = (X Xᵀ) ∘ (S Sᵀ)/m", H, f"max |x_i| = {float(_row_norms(X).max()):.3g}")


def _pre_activations(X: Array, W: Array) -> Array:
    """``X Wᵀ``, whose signs are the activation pattern; if a product overflows, the signs
    come from ``X`` and ``W`` divided by powers of two (exact), so no pattern is read off an
    infinity or a NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        Z = X @ W.T
    if np.all(np.isfinite(Z)):
        return Z
    ex, ew = np.frexp(np.abs(X).max())[1], np.frexp(np.abs(W).max())[1]
    Z = np.ldexp(X, -int(ex)) @ np.ldexp(W, -int(ew)).T
    return Z


def kernel_losses(H: ArrayLike, residual: ArrayLike, eta: float, steps: int) -> Array:
    """The kernel prediction ``½ |(I − ηH)^k r₀|²`` for ``k = 0, …, steps``.

    Gradient descent with step ``η`` on ``L = ½|u − y|²`` moves the residual by
    ``r ← (I − η H) r`` while the Gram matrix stays ``H``.

    The eigendecomposition (about ``5 n²`` floats) and the table (``2 (steps + 1) n``) are
    checked against the memory budget first. A prediction that overflows float64 is a
    ``ValueError`` naming ``H`` (its eigenvalues), ``residual`` (``½|r₀|²``) or ``eta``
    (``|1 − ηλ_i| > 1``: the iteration diverges).

    Examples
    --------
    >>> kernel_losses([[1.0]], [2.0], 0.5, 2).tolist()
    [2.0, 0.5, 0.125]
    """
    H = as_matrix("H", H)
    n = H.shape[0]
    if H.shape[1] == n:  # the symmetry test and eigh below: checked before either allocates
        require_memory(
            "H", f"the eigendecomposition of H (n × n = {n} × {n}, about 5 n² numbers)", 5 * n * n * FLOAT_BYTES
        )
    if H.shape[0] != H.shape[1] or not np.array_equal(H, H.T):
        raise ValueError(f"H must be a symmetric square matrix; got shape {H.shape}")
    r = as_vector("residual", residual, length=H.shape[0])
    eta = real_scalar("eta", eta, lo=0.0, lo_open=True)
    steps = positive_int("steps", steps)
    require_memory(
        "steps",
        f"the table of |1 − η λ_i|^k ((steps + 1) × n = {steps + 1} × {n}, twice, and k)",
        (2 * (steps + 1) * n + 2 * (steps + 1)) * FLOAT_BYTES,
    )
    with np.errstate(over="ignore", invalid="ignore"):
        lam, V = np.linalg.eigh(H)
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(V))):
        raise ValueError(f"H: its eigenvalues overflow float64 (max |H_ij| = {float(np.abs(H).max()):.3g}); rescale H")
    with np.errstate(over="ignore"):
        c2 = (V.T @ r) ** 2
        start = 0.5 * float(np.sum(c2))
    if not np.isfinite(start):
        raise ValueError(
            f"residual: ½|r₀|² overflows float64 (max |r₀_i| = {float(np.abs(r).max()):.3g}); rescale the residual"
        )
    k = np.arange(steps + 1)[:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(0.5 * (np.abs(1.0 - eta * lam)[None, :] ** k) ** 2 @ c2)
    if not np.all(np.isfinite(out)):
        first = int(np.argmin(np.isfinite(out)))
        grow = float(np.abs(1.0 - eta * lam).max())
        raise ValueError(
            f"eta: the predicted loss overflows float64 at k = {first}: the kernel iteration diverges, "
            f"max |1 − η λ_i| = {grow:.3g} > 1 (η λ_max > 2 with λ_max = {float(lam[-1]):.3g}); use a smaller eta "
            "or fewer steps"
        )
    return out


def _refuse_start(X: Array, y: Array, W: Array, a: Array, scale: float) -> None:
    """Refuse a loss that overflows at the initial weights, naming the input that caused it."""
    with np.errstate(over="ignore", invalid="ignore"):
        u = scale * (np.maximum(X @ W.T, 0.0) @ a)
    top_x, top_w, top_y = float(np.abs(X).max()), float(np.abs(W).max()), float(np.abs(y).max())
    if np.all(np.isfinite(u)) and float(np.abs(u).max()) < top_y:
        name, what = "y", f"max |y_i| = {top_y:.3g}, max |u_i| = {float(np.abs(u).max()):.3g}"
    else:
        name, what = "X, W", f"max |X| = {top_x:.3g}, max |W| = {top_w:.3g}, max |y_i| = {top_y:.3g}"
    raise ValueError(
        f"{name}: the loss overflows float64 at the initial weights, before any step of size eta ({what}); "
        "rescale the data or the weights"
    )


@dataclass(frozen=True)
class TwoLayerRun:
    """A gradient-descent run of :func:`two_layer_gd`; arrays have length ``steps + 1``.

    Attributes
    ----------
    loss
        ``L(k) = ½ Σ_i (u_i(k) − y_i)²`` (du2019gradient's loss, a sum).
    pattern_change
        Fraction of the ``n m`` pairs ``(i, r)`` with ``1{w_r(k)ᵀx_i ≥ 0} ≠ 1{w_r(0)ᵀx_i ≥ 0}``.
    max_move
        ``max_r |w_r(k) − w_r(0)|``.
    W
        The final hidden weights.
    """

    loss: Array
    pattern_change: Array
    max_move: Array
    W: Array


def two_layer_gd(X: ArrayLike, y: ArrayLike, W: ArrayLike, a: ArrayLike, eta: float, steps: int) -> TwoLayerRun:
    """Full-batch gradient descent on ``W`` with ``a`` fixed, step ``η`` on ``L = ½|u − y|²``.

    ``w_r ← w_r − η m^{-1/2} a_r Σ_i (u_i − y_i) 1{w_rᵀx_i ≥ 0} x_i`` (du2019gradient, with
    ``σ'(0) = 1`` as ``S`` above). A step ``η`` on their sum is a step ``n η`` on the book's
    mean cost ``C = L/n``.

    A loss that overflows float64 at the initial weights is a ``ValueError`` naming ``y`` or
    ``X, W``; one that overflows after a step names ``eta``. The records of ``steps + 1``
    points are checked against the memory budget first.

    Examples
    --------
    >>> X = sphere_data(3, 2, rng=0)
    >>> W, a = two_layer_init(50, 2, rng=1)
    >>> run = two_layer_gd(X, [1.0, -1.0, 0.5], W, a, eta=0.5, steps=200)
    >>> bool(run.loss[-1] < 1e-3 * run.loss[0]), float(run.max_move[0])
    (True, 0.0)
    """
    W0, a, X = _weights(W, a, X)
    y = as_vector("y", y, length=X.shape[0])
    eta = real_scalar("eta", eta, lo=0.0, lo_open=True)
    steps = positive_int("steps", steps)
    n, m = X.shape[0], W0.shape[0]
    require_memory("W", f"the activation patterns (2 × n × m = 2 × {n} × {m})", 3 * n * m * FLOAT_BYTES)
    require_memory(
        "steps", f"the records of the run (3 × (steps + 1) = 3 × {steps + 1} numbers)", 3 * (steps + 1) * FLOAT_BYTES
    )
    scale = 1.0 / np.sqrt(m)
    V = W0.copy()
    S0 = X @ V.T >= 0.0
    loss, change, move = np.empty(steps + 1), np.empty(steps + 1), np.empty(steps + 1)
    for k in range(steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            Z = X @ V.T
            r = scale * (np.maximum(Z, 0.0) @ a) - y
            loss[k] = 0.5 * float(r @ r)
        S = (Z >= 0.0).astype(np.float64)
        if not np.isfinite(loss[k]):
            if k == 0:  # no step taken yet: the inputs, not eta
                _refuse_start(X, y, W0, a, scale)
            raise ValueError(f"eta = {eta} is too large: the loss overflowed at step {k}")
        change[k] = np.count_nonzero((S > 0.5) != S0) / (n * m)
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is refused at the next loss
            move[k] = float(np.sqrt(np.max(np.sum((V - W0) ** 2, axis=1))))
            if k < steps:
                V = V - (eta * scale) * (a[:, None] * (S.T @ (r[:, None] * X)))
    return TwoLayerRun(loss=loss, pattern_change=change, max_move=move, W=V)
