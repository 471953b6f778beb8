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

from ._validation import as_matrix, nonnegative_int, real_scalar
from .architecture import Network, require_network
from .jacobian import backprop_factors
from .typing import Array

__all__ = ["relu_expectation", "relu_derivative_expectation", "ntk_limit", "ntk_scaled"]


def _covariance(name: str, cov: ArrayLike) -> tuple[Array, Array, Array]:
    """``(cov, √(k_ii k_jj), ρ)`` for a symmetric matrix with positive diagonal; ``ρ`` is
    clipped to ``[−1, 1]`` and exactly 1 on the diagonal."""
    C = as_matrix(name, cov)
    n = C.shape[0]
    if C.shape != (n, n):
        raise ValueError(f"{name} must be a square covariance matrix; got shape {C.shape}")
    if not np.array_equal(C, C.T):
        raise ValueError(f"{name} must be symmetric (a covariance matrix)")
    d = np.diag(C).copy()
    if not np.all(d > 0):
        raise ValueError(f"{name} must have a positive diagonal (variances); its least entry is {d.min():.3g}")
    s = np.sqrt(d)
    norm = s[:, None] * s[None, :]
    rho = np.clip(C / norm, -1.0, 1.0)
    np.fill_diagonal(rho, 1.0)
    return C, norm, rho


def relu_expectation(cov: ArrayLike) -> Array:
    """``E[σ(u_i)σ(u_j)]`` for ``σ = ReLU`` and ``u ~ N(0, cov)``, entrywise.

    Parameters
    ----------
    cov : array_like, shape (n, n)
        A symmetric covariance matrix with positive diagonal.

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
    E = norm * (np.sqrt(np.clip(1.0 - rho * rho, 0.0, None)) + (np.pi - theta) * rho) / (2 * np.pi)
    np.fill_diagonal(E, np.diag(norm) / 2)
    return E


def relu_derivative_expectation(cov: ArrayLike) -> Array:
    """``E[σ'(u_i)σ'(u_j)] = P(u_i > 0, u_j > 0)`` for ``σ = ReLU`` and ``u ~ N(0, cov)``.

    Parameters
    ----------
    cov : array_like, shape (n, n)
        A symmetric covariance matrix with positive diagonal.

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
    cw = real_scalar("weight_var", weight_var, lo=0.0, lo_open=True)
    cb = real_scalar("bias_var", bias_var, lo=0.0)
    factors = backprop_factors(net, X)
    N, Q = factors[0][0].shape[0], net.arch.output_dim
    K = np.zeros((N * Q, N * Q))
    ones = np.ones((Q, Q))
    for A, G in factors:
        Gm = np.ascontiguousarray(G).reshape(N * Q, -1)
        S = (cw / A.shape[1]) * (A @ A.T) + cb
        K += (Gm @ Gm.T) * np.kron(S, ones)
    return (K + K.T) / 2
