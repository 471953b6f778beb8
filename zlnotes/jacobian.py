"""The training Jacobian ``D = ∂x[Z]/∂Z`` (QN × K), its Gram matrix ``D Dᵀ`` and its rank.

Backpropagation in the code's convention (rows are samples, ``MATH.md`` §2): with
``G_{L+1}[j, q, :] = e_q`` and ``G_ℓ[j, q, :] = (G_{ℓ+1}[j, q, :] W_{ℓ+1}) ⊙ σ'(Z_ℓ[j, :])``,

    ∂f_q(x_j)/∂W_ℓ[a, b] = G_ℓ[j, q, a] · A_{ℓ−1}[j, b],     ∂f_q(x_j)/∂b_ℓ[a] = G_ℓ[j, q, a].

Row ``j·Q + q`` of ``D`` is sample ``j``, output ``q``; columns follow the flat parameter
vector of :meth:`zlnotes.Network.flat`. For ``Q = 1`` the ``W_ℓ`` block is the face-splitting
product ``G_ℓ ⊛ A_{ℓ−1}``.

The Gram identity

    D Dᵀ[(j, q), (k, p)] = Σ_ℓ ⟨G_ℓ[j, q], G_ℓ[k, p]⟩ · (⟨A_{ℓ−1}[j], A_{ℓ−1}[k]⟩ + 1)

gives the empirical NTK without forming ``D``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .architecture import Network, require_network
from .linalg import _check_rtol, default_rtol, gram_rank, gram_rtol, numerical_rank

__all__ = ["backprop_factors", "jacobian", "ntk", "jacobian_rank"]

Array = NDArray[np.float64]


def backprop_factors(net: Network, X: ArrayLike) -> list[tuple[Array, Array]]:
    """The factors ``(A_{ℓ−1}, G_ℓ)`` of every layer ℓ = 1..L+1.

    Parameters
    ----------
    net
        The network.
    X : array_like, shape (N, M)
        Inputs, one sample per row.

    Returns
    -------
    list of (A, G)
        ``A`` has shape ``(N, M_{ℓ−1})`` and ``G`` has shape ``(N, Q, M_ℓ)``;
        the ℓ-block of ``D`` is ``D[(j, q), (a, b)] = G[j, q, a] · A[j, b]`` followed by
        the bias columns ``G[j, q, a]``.
    """
    pre, post = require_network(net).pre_and_post_activations(X)
    N = post[0].shape[0]
    Q = net.arch.output_dim
    G = np.broadcast_to(np.eye(Q), (N, Q, Q))
    factors = [(post[-1], G)]
    for ell in range(net.arch.depth, 0, -1):  # hidden layer ℓ uses W_{ℓ+1} = weights[ℓ]
        G = (G @ net.weights[ell]) * net.arch.sigma.derivative(pre[ell - 1])[:, None, :]
        factors.append((post[ell - 1], G))
    factors.reverse()
    return factors


def jacobian(net: Network, X: ArrayLike) -> Array:
    """The training Jacobian ``D = ∂x[Z]/∂Z``.

    Parameters
    ----------
    net
        The network.
    X : array_like, shape (N, M)
        Inputs, one sample per row.

    Returns
    -------
    numpy.ndarray, shape (N·Q, K)
        Row ``j·Q + q`` is ``∇_Z f_q(x_j)``; columns in the order of :meth:`Network.flat`.
    """
    factors = backprop_factors(net, X)
    N = factors[0][0].shape[0]
    Q = net.arch.output_dim
    D = np.empty((N, Q, net.arch.num_params))
    for (A, G), (ws, bs), (out, inp) in zip(factors, net.arch.param_offsets(), net.arch.layer_shapes):
        np.multiply(G[:, :, :, None], A[:, None, None, :], out=D[:, :, ws].reshape(N, Q, out, inp))
        D[:, :, bs] = G
    return D.reshape(N * Q, -1)


def ntk(net: Network, X: ArrayLike) -> Array:
    """The empirical neural tangent kernel ``D Dᵀ``, computed by the Gram identity.

    ``D`` is never formed: each layer contributes the Hadamard product of the Gram matrix of
    its backpropagated factors ``G_ℓ`` and ``A_{ℓ−1} A_{ℓ−1}ᵀ + 1``.

    Parameters
    ----------
    net
        The network.
    X : array_like, shape (N, M)

    Returns
    -------
    numpy.ndarray, shape (N·Q, N·Q)
        Symmetric positive semi-definite; same row order as :func:`jacobian`.
    """
    factors = backprop_factors(net, X)
    N = factors[0][0].shape[0]
    Q = net.arch.output_dim
    K = np.zeros((N, Q, N, Q))
    for A, G in factors:
        input_gram = A @ A.T
        input_gram += 1.0
        Gm = G.reshape(N * Q, -1)
        K += (Gm @ Gm.T).reshape(N, Q, N, Q) * input_gram[:, None, :, None]
    return K.reshape(N * Q, N * Q)


def jacobian_rank(
    net: Network,
    X: ArrayLike,
    rtol: float | None = None,
    *,
    method: Literal["auto", "gram", "svd"] = "auto",
) -> int:
    """Numerical rank of ``D`` without forming it (when the tolerance allows).

    The rank is ``#{s_i > rtol · s_1}`` for the singular values ``s`` of ``D``. On the Gram
    route it is read off the eigenvalues ``s_i²`` of :func:`ntk`; because the Gram matrix
    squares the singular values, that route can only resolve ``rtol ≥ √(QN · ε)`` (see
    :mod:`zlnotes.linalg`), which is also its default. A smaller ``rtol`` (with
    ``method="auto"``) falls back to the SVD of the full ``D``.

    Parameters
    ----------
    net, X
        As in :func:`jacobian`.
    rtol
        Relative tolerance on the singular values of ``D``; ``None`` for the method's default
        (``√(QN · ε)`` on the Gram route, ``max(QN, K) · ε`` for the SVD).
    method
        ``"gram"`` (eigenvalues of ``D Dᵀ``), ``"svd"`` (SVD of ``D``), or ``"auto"``:
        Gram unless ``rtol`` is below the Gram route's resolution.
    """
    if method not in ("auto", "gram", "svd"):
        raise ValueError(f"method must be 'auto', 'gram' or 'svd'; got {method!r}")
    QN = require_network(net).check_inputs(X).shape[0] * net.arch.output_dim
    floor = gram_rtol(QN)
    _check_rtol(rtol, floor)
    if method == "svd" or (method == "auto" and rtol is not None and rtol < floor):
        return numerical_rank(jacobian(net, X), default_rtol((QN, net.arch.num_params)) if rtol is None else rtol)
    return gram_rank(ntk(net, X), rtol)
