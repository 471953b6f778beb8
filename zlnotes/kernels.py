"""Infinite-width kernels of fully connected ReLU networks (Jacot et al.'s NTK).

Arc-cosine expectations
-----------------------
For a centred Gaussian pair ``(u, v)`` with covariance ``[[k₁₁, k₁₂], [k₁₂, k₂₂]]``, write
``ρ = k₁₂/√(k₁₁k₂₂)`` and ``θ = arccos ρ ∈ [0, π]``. For ``σ = ReLU`` (Cho & Saul's
arc-cosine kernels of order 1 and 0):

    E[σ(u)σ(v)]   = √(k₁₁k₂₂) (sin θ + (π − θ) cos θ) / (2π)      (relu_expectation)
    E[σ'(u)σ'(v)] = (π − θ) / (2π)                                (relu_derivative_expectation)

With ``k₁₁ = k₂₂ = 1`` the second, times ``k₁₂``, is Du et al.'s
``H∞_ij = x_iᵀx_j (π − arccos x_iᵀx_j)/(2π)`` for unit inputs.

The limiting kernel
-------------------
:func:`ntk_limit` follows neural-tangents' ``Dense(W_std, b_std, parameterization='ntk')`` /
``Relu`` convention (``W_std² = weight_var``, ``b_std² = bias_var``): a layer computes
``z = (σ_w/√n) V a + σ_b β`` with ``V``, ``β`` standard normal and trained. It starts from
``Σ = Θ = σ_w² X Xᵀ/d₀ + σ_b²`` and each of the ``depth`` hidden layers (ReLU, then the next
dense layer) applies

    Σ ← σ_w² E[σσ](Σ) + σ_b²,      Θ ← Θ ⊙ σ_w² E[σ'σ'](Σ) + Σ     (new Σ).

The QN × QN empirical kernel of a network with ``Q`` outputs tends to ``Θ ⊗ I_Q``
(Jacot et al., ``jacot2018ntk``), in probability as the hidden widths grow.

The bridge to the book's parametrization
-----------------------------------------
The book trains ``W_ℓ, b_ℓ`` directly (standard parametrization; :meth:`zlnotes.Network.init`
draws ``W_ℓ ~ N(0, gain²/M_{ℓ−1})``, ``b_ℓ ~ N(0, bias_std²)``). With ``W_ℓ = σ_w V_ℓ/√M_{ℓ−1}``
and ``b_ℓ = σ_b β_ℓ`` the two parametrizations compute the same function, and by the chain rule
the NTK-parametrized kernel is ``D P Dᵀ`` with ``P`` diagonal: ``σ_w²/M_{ℓ−1}`` on the
entries of ``W_ℓ`` and ``σ_b²`` on those of ``b_ℓ``. In the Gram identity of
:mod:`zlnotes.jacobian` each layer is weighted:

    Θ̂[(j, q), (k, p)] = Σ_ℓ ⟨G_ℓ[j, q], G_ℓ[k, p]⟩ · (σ_w²/M_{ℓ−1} ⟨A_{ℓ−1}[j], A_{ℓ−1}[k]⟩ + σ_b²),

which :func:`ntk_scaled` computes; :func:`zlnotes.ntk` is the case ``P = I``
(weights 1 and 1). Gradient descent with step ``η`` in the NTK parametrization is gradient
descent in the book's with step ``η σ_w²/M_{ℓ−1}`` on ``W_ℓ`` and ``η σ_b²`` on ``b_ℓ``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validation import _as_float_array, as_matrix, nonnegative_int, real_scalar
from .architecture import Network, require_network
from .jacobian import _factor_numbers, backprop_factors
from .memory import FLOAT_BYTES, require_memory
from .typing import Array

__all__ = ["relu_expectation", "relu_derivative_expectation", "ntk_limit", "ntk_scaled"]


PAIR_SLACK = float(np.sqrt(np.finfo(float).eps))
"""Relative slack of the pair rule ``|k_ij| ≤ √(k_ii k_jj)``: rounding in a matrix formed in
floating point (``X Xᵀ``, a previous layer's kernel) may exceed the bound by a few units in the
last place; ``ρ`` is then clipped to ``[−1, 1]``. A larger excess is not a covariance."""

_KERNEL_TEMPORARIES = 8
"""``n × n`` arrays one of the arc-cosine expectations holds at once (input, ``√(k_ii k_jj)``,
``ρ``, ``θ`` and temporaries)."""


def _covariance(name: str, cov: ArrayLike) -> tuple[Array, Array, Array]:
    """``(cov, √(k_ii k_jj), ρ)`` for a symmetric matrix with positive diagonal whose pairs are
    covariances; ``ρ`` is clipped to ``[−1, 1]`` and exactly 1 on the diagonal.

    ``√(k_ii k_jj)`` is one square root of the product wherever that product is a normal
    float64, so that a pair with ``k_ij = ±√(k_ii k_jj)`` exactly (parallel or antipodal
    inputs of a Gram matrix) gets ``ρ = ±1`` exactly (``√k_ii · √k_jj`` is off by rounding,
    which ``arccos`` near ``±1`` magnifies to ``√ε ≈ 1e-8``).
    """
    raw = _as_float_array(name, cov)
    if raw.ndim == 2 and raw.shape[0] == raw.shape[1]:  # before the finiteness check allocates
        n = raw.shape[0]
        what = f"the kernel of an n × n covariance (n = {n}) and its temporaries"
        require_memory(name, what, _KERNEL_TEMPORARIES * n * n * FLOAT_BYTES)
    C = as_matrix(name, raw)
    n = C.shape[0]
    if C.shape != (n, n):
        raise ValueError(f"{name} must be a square covariance matrix; got shape {C.shape}")
    if not np.array_equal(C, C.T):
        raise ValueError(f"{name} must be symmetric (a covariance matrix)")
    d = np.diag(C).copy()
    if not np.all(d > 0):
        raise ValueError(f"{name} must have a positive diagonal (variances); its least entry is {d.min():.3g}")
    s = np.sqrt(d)
    with np.errstate(over="ignore", under="ignore"):
        product = d[:, None] * d[None, :]
        norm = np.sqrt(product)
        outside = ~(product >= np.finfo(float).tiny) | ~np.isfinite(product)
        if np.any(outside):  # the product leaves the normal range: the product of the roots
            norm[outside] = (s[:, None] * s[None, :])[outside]
        rho = C / norm
    if not np.all(np.isfinite(rho)):
        raise ValueError(f"{name}: the correlations k_ij/√(k_ii k_jj) leave float64; rescale {name}")
    excess = np.abs(rho) > 1.0 + PAIR_SLACK
    if np.any(excess):
        i, j = (int(k) for k in np.argwhere(excess)[0])
        raise ValueError(
            f"{name} must be a covariance matrix: every pair needs |k_ij| <= sqrt(k_ii k_jj); "
            f"entry ({i}, {j}) is {C[i, j]:.6g}, sqrt(k_ii k_jj) = {norm[i, j]:.6g}"
        )
    rho = np.clip(rho, -1.0, 1.0)
    np.fill_diagonal(rho, 1.0)
    return C, norm, rho


def relu_expectation(cov: ArrayLike) -> Array:
    """``E[σ(u_i)σ(u_j)]`` for ``σ = ReLU`` and ``u ~ N(0, cov)``, entrywise.

    Parameters
    ----------
    cov : array_like, shape (n, n)
        A symmetric covariance matrix with positive diagonal; every pair must satisfy
        ``|k_ij| ≤ √(k_ii k_jj)`` (up to rounding, :data:`PAIR_SLACK`).

    Returns
    -------
    numpy.ndarray, shape (n, n)
        ``√(k_ii k_jj) (sin θ_ij + (π − θ_ij) cos θ_ij) / (2π)`` with
        ``cos θ_ij = k_ij/√(k_ii k_jj)``; the diagonal is ``k_ii/2``.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> E = zl.relu_expectation([[1.0, 0.0], [0.0, 4.0]])
    >>> bool(np.isclose(E[0, 0], 0.5)), bool(np.isclose(E[0, 1], 2 / (2 * np.pi)))
    (True, True)
    """
    _, norm, rho = _covariance("cov", cov)
    theta = np.arccos(rho)
    # the bracket lies in [0, π]: divided by 2π before the product, E cannot overflow
    E = norm * ((np.sqrt(np.clip(1.0 - rho * rho, 0.0, None)) + (np.pi - theta) * rho) / (2 * np.pi))
    np.fill_diagonal(E, np.diag(norm) / 2)
    return E


def relu_derivative_expectation(cov: ArrayLike) -> Array:
    """``E[σ'(u_i)σ'(u_j)] = P(u_i > 0, u_j > 0)`` for ``σ = ReLU`` and ``u ~ N(0, cov)``.

    Parameters
    ----------
    cov : array_like, shape (n, n)
        A symmetric covariance matrix with positive diagonal; every pair must satisfy
        ``|k_ij| ≤ √(k_ii k_jj)`` (up to rounding, :data:`PAIR_SLACK`).

    Returns
    -------
    numpy.ndarray, shape (n, n)
        ``(π − θ_ij)/(2π)`` with ``cos θ_ij = k_ij/√(k_ii k_jj)``; the diagonal is ``1/2``.
        For unit inputs, ``(X Xᵀ) ⊙ relu_derivative_expectation(X Xᵀ)`` is Du et al.'s ``H∞``.

    Examples
    --------
    >>> import zlnotes as zl
    >>> zl.relu_derivative_expectation([[1.0, 0.0], [0.0, 1.0]]).tolist()
    [[0.5, 0.25], [0.25, 0.5]]
    """
    _, _, rho = _covariance("cov", cov)
    E: Array = (np.pi - np.arccos(rho)) / (2 * np.pi)
    return E


def ntk_limit(X: ArrayLike, depth: int, *, weight_var: float = 2.0, bias_var: float = 0.0) -> Array:
    """The infinite-width NTK ``Θ`` of a fully connected ReLU network (NTK parametrization).

    Parameters
    ----------
    X : array_like, shape (N, d₀)
        Inputs, one sample per row. With ``bias_var = 0`` no row may be zero.
    depth
        ``L ≥ 0``, the number of hidden layers (0: the linear model).
    weight_var, bias_var
        ``σ_w² > 0`` and ``σ_b² ≥ 0`` (neural-tangents' ``W_std²`` and ``b_std²``); the default
        ``σ_w² = 2`` is He initialisation.

    Returns
    -------
    numpy.ndarray, shape (N, N)
        ``Θ``; the limit of the ``QN × QN`` empirical kernel is ``Θ ⊗ I_Q``. See the module
        docstring for the recursion.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> T = zl.ntk_limit(X, 1)     # σ_w² = 2: Σ¹ = Θ¹ = I, Σ² = [[1, 1/π], [1/π, 1]]
    >>> bool(np.isclose(T[0, 0], 2.0)), bool(np.isclose(T[0, 1], 1 / np.pi))
    (True, True)
    """
    X = as_matrix("X", X)
    depth = nonnegative_int("depth", depth)
    cw = real_scalar("weight_var", weight_var, lo=0.0, lo_open=True)
    cb = real_scalar("bias_var", bias_var, lo=0.0)
    if cb == 0.0 and not np.all(np.any(X != 0.0, axis=1)):
        raise ValueError("X must have no zero row when bias_var = 0 (its kernel entries vanish)")
    N = X.shape[0]
    require_memory(
        "X",
        f"the kernels Σ and Θ (N × N = {N} × {N}) and their temporaries",
        (4 + _KERNEL_TEMPORARIES) * N * N * FLOAT_BYTES,
    )
    with np.errstate(over="ignore", invalid="ignore"):
        Sigma = cw * (X @ X.T) / X.shape[1] + cb
        Sigma = (Sigma + Sigma.T) / 2
        Theta = Sigma.copy()
        for _ in range(depth):
            if not np.all(np.isfinite(Sigma)) or not np.all(np.diag(Sigma) > 0):
                raise ValueError("X: the kernel overflows or underflows float64; rescale X or the variances")
            dot = relu_derivative_expectation(Sigma)
            Sigma = cw * relu_expectation(Sigma) + cb
            Theta = Theta * (cw * dot) + Sigma
    if not np.all(np.isfinite(Theta)):
        raise ValueError("X: the kernel overflows float64; rescale X or the variances")
    return Theta


def ntk_scaled(net: Network, X: ArrayLike, *, weight_var: float = 2.0, bias_var: float = 0.0) -> Array:
    """The empirical NTK of ``net`` in the NTK parametrization: ``D P Dᵀ``.

    ``P`` is diagonal, ``σ_w²/M_{ℓ−1}`` on the entries of ``W_ℓ`` and ``σ_b²`` on those of
    ``b_ℓ`` (see the module docstring); computed by the layer-weighted Gram identity without
    forming ``D``. :func:`zlnotes.ntk` is ``D Dᵀ``.

    Parameters
    ----------
    net
        The network (book parametrization).
    X : array_like, shape (N, M₀)
        Inputs, one sample per row.
    weight_var, bias_var
        ``σ_w² > 0`` and ``σ_b² ≥ 0``.

    Returns
    -------
    numpy.ndarray, shape (N·Q, N·Q)
        Rows ordered as in :func:`zlnotes.jacobian`; tends to ``ntk_limit(X, L) ⊗ I_Q`` when
        ``net`` is drawn by ``Network.init(arch, rng, weight_gain=√σ_w², bias_std=√σ_b²)``
        and the widths grow.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> net = zl.Network.init(zl.Architecture(2, (2,), 1, "relu"), 0)
    >>> X = np.random.default_rng(1).standard_normal((4, 2))
    >>> # every fan-in is 2, so σ_w² = 2, σ_b² = 1 is P = I: the book's D Dᵀ
    >>> bool(np.allclose(zl.ntk_scaled(net, X, weight_var=2.0, bias_var=1.0), zl.ntk(net, X)))
    True
    """
    net = require_network(net)
    X = net.check_inputs(X)
    cw = real_scalar("weight_var", weight_var, lo=0.0, lo_open=True)
    cb = real_scalar("bias_var", bias_var, lo=0.0)
    N, Q = X.shape[0], net.arch.output_dim
    NQ = N * Q
    # the kernel, one layer's block D_ℓ P_ℓ D_ℓᵀ and its N × N factor, the backpropagated factors
    require_memory(
        "X",
        f"the kernel (N·Q × N·Q = {NQ} × {NQ}), one layer's block and the factors",
        (2 * NQ * NQ + 2 * N * N + _factor_numbers(net, N) + N * sum(net.arch.widths)) * FLOAT_BYTES,
    )
    factors = backprop_factors(net, X)
    K = np.zeros((NQ, NQ))
    with np.errstate(over="ignore", invalid="ignore"):  # refused below
        for A, G in factors:
            Gm = np.ascontiguousarray(G).reshape(NQ, -1)
            S = (cw / A.shape[1]) * (A @ A.T) + cb
            block = Gm @ Gm.T
            block.reshape(N, Q, N, Q)[...] *= S[:, None, :, None]  # (Gm Gmᵀ) ∘ (S ⊗ 1_{Q×Q})
            K += block
        K = (K + K.T) / 2
    if not np.all(np.isfinite(K)):
        big = max(float(np.abs(w).max()) for w in net.weights)
        raise ValueError(
            f"X: the kernel overflows float64 (max |X| = {float(np.abs(X).max()):.3g}, max |W| = {big:.3g}, "
            f"weight_var = {cw:.3g}, bias_var = {cb:.3g}); rescale the data, the network or the variances"
        )
    return K
