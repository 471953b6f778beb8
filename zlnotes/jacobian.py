"""The training Jacobian ``D = ∂x[Z]/∂Z`` (QN × K), its Gram matrix ``D Dᵀ`` and its rank.

Backpropagation in the code's convention (rows are samples; the book's Notation page): with
``G_{L+1}[j, q, :] = e_q`` and ``G_ℓ[j, q, :] = (G_{ℓ+1}[j, q, :] W_{ℓ+1}) ⊙ σ'(Z_ℓ[j, :])``,

    ∂f_q(x_j)/∂W_ℓ[a, b] = G_ℓ[j, q, a] · A_{ℓ−1}[j, b],     ∂f_q(x_j)/∂b_ℓ[a] = G_ℓ[j, q, a].

Row ``j·Q + q`` of ``D`` is sample ``j``, output ``q``; columns follow the flat parameter
vector of :meth:`zlnotes.Network.flat`. For ``Q = 1`` the ``W_ℓ`` block is the face-splitting
product ``G_ℓ ⊛ A_{ℓ−1}``.

The Gram identity

    D Dᵀ[(j, q), (k, p)] = Σ_ℓ ⟨G_ℓ[j, q], G_ℓ[k, p]⟩ · (⟨A_{ℓ−1}[j], A_{ℓ−1}[k]⟩ + 1)

gives the empirical NTK without forming ``D``.

How the kernels are written (``benchmarks/`` measures them)
-----------------------------------------------------------
- :func:`jacobian` allocates ``D`` once and fills it in place, chunk of samples by chunk of
  samples: the bias block of layer ℓ is ``G_ℓ``, the ``W_ℓ`` block the products
  ``G_ℓ[j, q, a] · A_{ℓ−1}[j, b]`` (see its Notes; no temporary of a block's size), and the
  output layer, whose ``G`` is the identity, zeros plus a diagonal. Its time is close to that
  of writing ``D``; its extra memory is the factors ``G_ℓ`` and a small tile.
- :func:`ntk` multiplies only the ``N·Q × M_ℓ`` factors: per block of rows it forms
  ``G_ℓ[rows] G_ℓ[cols]ᵀ`` for the columns on and right of the diagonal block (one BLAS call
  per layer), scales it by ``A_{ℓ−1} A_{ℓ−1}ᵀ + 1`` repeated over the outputs, accumulates
  the layers while the block is still in cache, and mirrors the upper block triangle at the
  end, so the result is exactly symmetric. The output layer adds ``A_L A_Lᵀ + 1`` to the
  entries with ``q = p`` (its ``G`` is the identity) with no product at all.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ._validation import choice
from .activations import derivative_into
from .architecture import Network, require_finite_result, require_network
from .linalg import _check_rtol, default_rtol, gram_rtol, numerical_rank, rank_from_gram_eigenvalues
from .memory import FLOAT_BYTES, require_memory
from .typing import Array

__all__ = ["backprop_factors", "jacobian", "ntk", "jacobian_rank"]


NTK_BLOCK_ROWS = 256
"""Rows of ``D Dᵀ`` that :func:`ntk` computes per block: a block of ``256 × N·Q`` doubles
(2 MB at ``N·Q = 1024``) stays in the last-level cache while every layer is added to it,
and is large enough that each BLAS call runs at full speed."""


def _derivatives(net: Network, pre: list[Array], post: list[Array]) -> list[Array]:
    """``σ'(Z_ℓ)`` for ℓ = 1..L (for tanh read off the activations; see
    :func:`zlnotes.activations.derivative_into`)."""
    return [derivative_into(net.arch.sigma, Z, A, np.empty_like(Z)) for Z, A in zip(pre, post[1:])]


def _hidden_factors(net: Network, dsig: list[Array], N: int) -> list[Array]:
    """``G_ℓ`` as ``(N·Q, M_ℓ)`` matrices (row ``j·Q + q``), for ℓ = 1..L."""
    Q = net.arch.output_dim
    L = net.arch.depth
    G: list[Array] = [np.empty(0)] * L
    for ell in range(L, 0, -1):  # hidden layer ℓ uses W_{ℓ+1} = weights[ℓ]
        M = net.arch.hidden[ell - 1]
        if ell == L:  # G_{L+1} = I: G_L[j, q, :] = W_{L+1}[q, :] ⊙ σ'(Z_L[j, :])
            Gl = net.weights[L][None, :, :] * dsig[L - 1][:, None, :]
        else:
            Gl = (G[ell] @ net.weights[ell]).reshape(N, Q, M)
            Gl *= dsig[ell - 1][:, None, :]
        G[ell - 1] = Gl.reshape(N * Q, M)
    return G


def _factor_numbers(net: Network, N: int) -> int:
    """Numbers in the factors ``G_ℓ`` and ``σ'(Z_ℓ)``: ``N·(Q + 1)·ΣM_ℓ``."""
    return N * (net.arch.output_dim + 1) * sum(net.arch.hidden)


def _require_factor_memory(net: Network, N: int) -> None:
    require_memory(
        "X",
        f"the backpropagated factors G_l for N = {N} samples (N·(Q + 1)·ΣM_l numbers)",
        _factor_numbers(net, N) * FLOAT_BYTES,
    )


def _factors(net: Network, pre: list[Array], post: list[Array]) -> list[Array]:
    """:func:`_hidden_factors`, refusing an overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        G = _hidden_factors(net, _derivatives(net, pre, post), post[0].shape[0])
    for ell, Gl in enumerate(G, start=1):
        require_finite_result(f"the backpropagated factors G_{ell} (derivatives of the outputs)", Gl, post[0], net)
    return G


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
    N = require_network(net).check_inputs(X).shape[0]
    _require_factor_memory(net, N)
    pre, post = net.pre_and_post_activations(X)
    Q = net.arch.output_dim
    G = _factors(net, pre, post)
    factors = [(A, Gl.reshape(N, Q, -1)) for A, Gl in zip(post[:-1], G)]
    factors.append((post[-1], np.broadcast_to(np.eye(Q), (N, Q, Q))))
    return factors


JACOBIAN_CHUNK_BYTES = 1 << 21
"""Bytes of ``D`` that :func:`jacobian` fills per chunk of samples (at least one sample):
the rows of a chunk are written, then rescaled while they are still in cache."""


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

    Notes
    -----
    ``D`` is allocated once and filled in place, chunk of samples by chunk of samples, so its
    memory is written once, in order. In the ``W_ℓ`` block, ``D[(j, q), a·M_{ℓ−1} + b] =
    G_ℓ[j, q, a] · A_{ℓ−1}[j, b]``: a single broadcast product would run numpy's multiply loop
    once per ``(j, q, a)`` on only ``M_{ℓ−1}`` numbers, a per-call cost that exceeds the cost of
    writing them. Instead ``G_ℓ`` is copied in broadcast over ``b`` (numpy's copy loop is cheap
    per call) and each row of ``M_ℓ · M_{ℓ−1}`` numbers is then multiplied in place by
    ``A_{ℓ−1}[j]`` tiled ``M_ℓ`` times, one long loop per row, while the chunk is in cache.
    Every entry is the single product ``G_ℓ[j, q, a] · A_{ℓ−1}[j, b]``, as in the plain formula.
    The extra memory is the factors ``G_ℓ`` (``N·Q·Σ M_ℓ`` numbers) and one tile.
    """
    N = require_network(net).check_inputs(X).shape[0]
    arch = net.arch
    Q, L = arch.output_dim, arch.depth
    K = arch.num_params
    require_memory(
        "X",
        f"the Jacobian D (N·Q × K = {N * Q} × {K}) and its factors",
        (N * Q * K + _factor_numbers(net, N)) * FLOAT_BYTES,
    )
    pre, post = net.pre_and_post_activations(X)
    offsets = arch.param_offsets()
    G = [g.reshape(N, Q, -1) for g in _factors(net, pre, post)]
    with np.errstate(over="ignore"):  # entries of D are G_ℓ[j, q, a] · A_{ℓ−1}[j, b]: bounded by the factors
        bound = max([float(np.abs(g).max()) * max(1.0, float(np.abs(A).max())) for g, A in zip(G, post)], default=0.0)
    exact_check = not np.isfinite(bound)
    D = np.empty((N, Q, K))
    nb = int(min(N, max(1, JACOBIAN_CHUNK_BYTES // (Q * K * 8))))  # samples per chunk
    tile = np.empty(nb * max((M * M_in for M, M_in in arch.layer_shapes[:-1]), default=1))
    (w_out, b_out), M_L = offsets[L], post[-1].shape[1]
    eye, q = np.eye(Q), np.arange(Q)
    for j0 in range(0, N, nb):
        j1 = min(N, j0 + nb)
        rows, n = slice(j0, j1), j1 - j0
        chunk = D[rows]
        for ell in range(1, L + 1):  # hidden layers: W_ℓ block, then b_ℓ block (= G_ℓ)
            (ws, bs), (M, M_in) = offsets[ell - 1], arch.layer_shapes[ell - 1]
            Gc = G[ell - 1][rows]
            block = chunk[:, :, ws]
            np.copyto(block.reshape(n, Q, M, M_in), Gc[:, :, :, None])
            t = tile[: n * M * M_in].reshape(n, M, M_in)
            np.copyto(t, post[ell - 1][rows, None, :])
            with np.errstate(over="ignore"):  # refused below, after the bound on the factors
                np.multiply(block, t.reshape(n, 1, M * M_in), out=block)
            chunk[:, :, bs] = Gc
        # output layer: ∂f_q/∂W_{L+1}[p, b] = δ_qp A_L[j, b] and ∂f_q/∂b_{L+1}[p] = δ_qp
        out_w = chunk[:, :, w_out].reshape(n, Q, Q, M_L)
        out_w.fill(0.0)
        out_w[:, q, q, :] = post[-1][rows, None, :]
        chunk[:, :, b_out] = eye
        if exact_check:
            require_finite_result("the Jacobian's entries", chunk, post[0], net)
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
        Symmetric (exactly) positive semi-definite; same row order as :func:`jacobian`.
    """
    N = require_network(net).check_inputs(X).shape[0]
    arch = net.arch
    Q = arch.output_dim
    NQ = N * Q
    require_memory("X", f"the NTK (N·Q × N·Q = {NQ} × {NQ}) and its factors", _ntk_numbers(net, N) * FLOAT_BYTES)
    pre, post = net.pre_and_post_activations(X)
    G = _factors(net, pre, post)
    S = []  # A_{ℓ−1} A_{ℓ−1}ᵀ + 1 for ℓ = 1..L+1
    with np.errstate(over="ignore", invalid="ignore"):
        for A in post:
            Sl = A @ A.T
            Sl += 1.0
            S.append(Sl)
        K = _ntk_blocks(G, S, N, Q)
    # every entry is bounded by the diagonal's (Cauchy–Schwarz, layer by layer), so a finite
    # maximum and minimum mean no overflow anywhere
    if not (np.isfinite(K.max()) and np.isfinite(K.min())):
        require_finite_result("the NTK's entries", K, post[0], net)
    return K


def _ntk_numbers(net: Network, N: int) -> int:
    """Numbers :func:`ntk` holds at once: the kernel, one ``N × N`` matrix per layer, the
    factors and one block of scratch."""
    NQ = N * net.arch.output_dim
    return NQ * NQ + (net.arch.depth + 1) * N * N + _factor_numbers(net, N) + min(NTK_BLOCK_ROWS, NQ) * NQ


def _ntk_blocks(G: list[Array], S: list[Array], N: int, Q: int) -> Array:
    """``D Dᵀ`` from the factors (see :func:`ntk`)."""
    NQ = N * Q
    K = np.empty((NQ, NQ))
    nb = max(1, NTK_BLOCK_ROWS // Q)  # samples per block of rows
    scratch = np.empty(min(nb, N) * Q * NQ)
    for r0 in range(0, N, nb):
        r1 = min(N, r0 + nb)
        rows, cols = slice(r0 * Q, r1 * Q), slice(r0 * Q, NQ)
        nr, nc = (r1 - r0) * Q, NQ - r0 * Q
        block = K[rows, cols]
        for ell, Gl in enumerate(G):  # hidden layers ℓ = 1..L, in order
            prod = scratch[: nr * nc].reshape(nr, nc)
            np.matmul(Gl[rows], Gl[cols].T, out=prod)
            s = np.repeat(S[ell][r0:r1, r0:], Q, axis=1)[:, None, :]  # S[j, k] at column k·Q + p
            if ell == 0:
                np.multiply(prod.reshape(r1 - r0, Q, nc), s, out=block.reshape(r1 - r0, Q, nc))
            else:
                prod3 = prod.reshape(r1 - r0, Q, nc)
                prod3 *= s
                block += prod
        if not G:
            block.fill(0.0)
        # output layer: G_{L+1} = I contributes S_{L+1}[j, k] where q = p
        b4 = block.reshape(r1 - r0, Q, N - r0, Q)
        for q in range(Q):
            b4[:, q, :, q] += S[-1][r0:r1, r0:]
        # the diagonal block is symmetric in exact arithmetic: make it so in floating point
        diag = K[rows, rows]
        low = np.tril_indices(nr, -1)
        diag[low] = diag.T[low]
        # mirror the blocks above this one
        if r0 > 0:
            K[rows, : r0 * Q] = K[: r0 * Q, rows].T
    return K


def jacobian_rank(
    net: Network,
    X: ArrayLike,
    rtol: float | None = None,
    *,
    method: Literal["auto", "gram", "svd"] = "auto",
) -> int:
    """Numerical rank of ``D`` without forming it (when the tolerance allows).

    The rank is ``#{s_i > rtol · s_1}`` for the singular values ``s`` of ``D``. On the Gram
    route it is read off the eigenvalues ``s_i²`` of :func:`ntk` (``D`` is never formed: time
    ``O((QN)² Σ M_ℓ)`` for the NTK plus ``O((QN)³)`` for :func:`numpy.linalg.eigvalsh`,
    memory ``O((QN)²)``, against ``O(QN · K)`` memory and ``O((QN)² K)`` time for the SVD of
    ``D``). Because the Gram matrix squares the singular values, that route resolves only
    ``rtol ≥ √(QN · ε)`` (derived in :mod:`zlnotes.linalg`), which is also its default: it
    counts ``s_i > √(QN · ε) · s_1``. This equals :func:`numpy.linalg.matrix_rank` of ``D``
    unless a singular value lies between ``max(QN, K) · ε · s_1`` and ``√(QN · ε) · s_1``;
    then the Gram rank is the smaller. A smaller ``rtol`` (with ``method="auto"``) falls back
    to the SVD of the full ``D``.

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
    choice("method", method, ("auto", "gram", "svd"))
    N = require_network(net).check_inputs(X).shape[0]
    QN = N * net.arch.output_dim
    floor = gram_rtol(QN)
    _check_rtol(rtol, floor)
    if method == "svd" or (method == "auto" and rtol is not None and rtol < floor):
        K = net.arch.num_params
        require_memory(
            "X",
            f"the Jacobian D (N·Q × K = {QN} × {K}), its factors and its SVD",
            (2 * QN * K + min(QN, K) ** 2 + _factor_numbers(net, N)) * FLOAT_BYTES,
        )
        return numerical_rank(jacobian(net, X), default_rtol((QN, net.arch.num_params)) if rtol is None else rtol)
    tol = _check_rtol(rtol, floor, floor=floor)  # the Gram route refuses rtol < √(QN ε)
    # ntk is symmetric by construction (its lower triangle is a copy of the upper), so the
    # eigenvalues are read directly, without gram_rank's check that its input is symmetric
    require_memory(
        "X",
        f"the NTK (N·Q × N·Q = {QN} × {QN}), its factors and its eigenvalues",
        (_ntk_numbers(net, N) + QN * QN) * FLOAT_BYTES,
    )
    return rank_from_gram_eigenvalues(np.linalg.eigvalsh(ntk(net, X)), tol)
