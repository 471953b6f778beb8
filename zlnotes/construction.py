"""Explicit zero-loss minimizers for overparametrized networks ([ZL] Theorems 2.1 and 2.2).

Both constructions choose the hidden layers so that every layer acts on the ``N`` training
points as an injective map that keeps them affinely independent, and then solve the
output layer exactly:

* **positive-sector shift** (Theorem 2.2; ReLU-like σ, a diffeomorphism on its positive
  sector): take any full-rank ``W_ℓ`` and a bias ``b_ℓ = β_ℓ·(1, …, 1)`` with ``β_ℓ`` so large
  that every pre-activation lies in the sector where σ is invertible (for ``relu``,
  ``leaky_relu`` and ``smooth_relu`` the sector where σ is the identity). Each layer is then an
  invertible affine map of the data. The free choice of ``W_ℓ`` and ``β_ℓ`` makes the minimum
  *degenerate*.
* **small-box pull-back** (Theorem 2.1; any σ that is a local diffeomorphism near a point
  ``p``): ``W_ℓ = ε_ℓ E_ℓ``, ``b_ℓ = p·1 − ε_ℓ E_ℓ m_ℓ`` with ``m_ℓ`` the centre of the current
  points, so that all pre-activations lie in the box ``[p − r, p + r]^M`` where σ' stays
  away from zero.

The output layer solves ``[A_L 1] [W_{L+1} b_{L+1}]ᵀ = Y`` by the minimal-norm
least-squares solution (eq. 12/13 and 24 of [ZL]); it is exact when ``[A_L 1]`` has rank
``N``, which needs ``N ≤ width + 1`` and affinely independent inputs, ``rank [X 1] = N``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .activations import Activation, activation as lookup_activation
from .architecture import Architecture, Network, require_network
from .linalg import numerical_rank
from .validation import as_generator, as_matrix, nonnegative_int, positive_int

__all__ = ["zero_loss_minimizer", "embed_network", "diffeomorphism_box", "SHIFT_MARGIN"]

Array = NDArray[np.float64]

SHIFT_MARGIN = 1.0
"""How far inside the invertible sector the shift puts the smallest pre-activation."""


def diffeomorphism_box(sigma: Activation) -> tuple[float, float]:
    """A point ``p`` where σ is a local diffeomorphism and a radius ``r`` around it.

    On a grid of ``[−4, 4]``, take the longest interval on which ``|σ'|`` stays above half its
    maximum; ``p`` is its midpoint and ``r`` its half-length, capped at 1. For ``tanh`` this is
    ``p = 0``, ``r ≈ 0.88``; for ``relu`` it is ``p = 2``, ``r = 1`` (inside the linear piece).
    """
    grid = np.linspace(-4.0, 4.0, 1601)
    d = np.abs(sigma.derivative(grid))
    if d.max() == 0.0:
        raise ValueError(f"activation {sigma.name!r} has σ' = 0 on [-4, 4]: it is a local diffeomorphism nowhere there")
    good = np.concatenate([[False], d >= 0.5 * d.max(), [False]])
    edges = np.flatnonzero(np.diff(good.astype(np.int8)))
    starts, stops = edges[::2], edges[1::2] - 1  # inclusive runs of good grid points
    longest = int(np.argmax(stops - starts))
    lo, hi = grid[starts[longest]], grid[stops[longest]]
    radius = min(0.5 * (hi - lo), 1.0)
    if radius <= 0.0:
        raise ValueError(f"activation {sigma.name!r}: σ' varies too fast for the small-box construction")
    return float(0.5 * (lo + hi)), float(radius)


def _affine_rank(A: Array) -> int:
    """Rank of ``[A 1]``, computed scale-free as ``1 + rank(A − mean)``.

    Appending a column of ones to data of scale 1e-14 or 1e15 would make the SVD tolerance
    depend on that scale; centring does not.
    """
    centred = A - A.mean(axis=0)
    if not np.any(centred):
        return 1
    return 1 + numerical_rank(centred)


def _embedding(X: Array, width: int) -> Array:
    """A ``width × M`` matrix that keeps the points' affine hull: ``[I; 0]`` if ``width ≥ M``,
    otherwise the top right singular vectors of the centred data."""
    M = X.shape[1]
    if width >= M:
        return np.eye(width, M)
    _, _, Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=True)
    return Vt[:width]


def _random_full_rank(gen: np.random.Generator, rows: int, cols: int) -> Array:
    """A random ``rows × cols`` matrix with orthonormal rows or columns (Haar-distributed).

    Any full-rank matrix works in theory; orthonormal ones keep every layer perfectly
    conditioned, so that deep constructions stay exact to rounding.
    """
    G = gen.standard_normal((max(rows, cols), min(rows, cols)))
    Qm, R = np.linalg.qr(G)
    Qm = Qm * np.sign(np.diag(R))  # the sign fix makes the distribution Haar
    return Qm if rows >= cols else Qm.T


def zero_loss_minimizer(
    X: ArrayLike,
    Y: ArrayLike,
    *,
    depth: int,
    width: int,
    activation: str | Activation,
    rng: np.random.Generator | int | None = None,
    method: Literal["auto", "shift", "box"] = "auto",
) -> Network:
    """A network with ``depth`` hidden layers of ``width`` that fits ``Y`` exactly.

    Parameters
    ----------
    X : array_like, shape (N, M)
        Training inputs (rows). Must be affinely independent: ``rank [X 1] = N``.
    Y : array_like, shape (N, Q)
        Targets.
    depth
        ``L ≥ 0`` hidden layers (0 gives an affine model).
    width
        Hidden width ``M_ℓ``; must satisfy ``N ≤ width + 1``.
    activation
        Name or :class:`Activation`.
    rng
        ``None`` for the deterministic choice (``W_1`` an embedding of the data's affine hull,
        ``W_ℓ = I`` after it); a generator or seed for random full-rank weights — each seed
        gives a different zero-loss minimizer (the degeneracy of Theorem 2.2).
    method
        ``"shift"`` (Theorem 2.2, ReLU-like activations only), ``"box"`` (Theorem 2.1), or
        ``"auto"``: shift for ReLU-like activations, box otherwise.

    Returns
    -------
    Network
        Its cost on ``(X, Y)`` is zero up to rounding.

    Raises
    ------
    ValueError
        If ``N > width + 1``, if the inputs are not affinely independent, if ``method`` does
        not apply to ``activation``, or on malformed input.
    """
    X = as_matrix("X", X)
    N, M = X.shape
    Y = as_matrix("Y", Y, rows=N)
    depth = nonnegative_int("depth", depth)
    width = positive_int("width", width)
    sigma = lookup_activation(activation)
    if method not in ("auto", "shift", "box"):
        raise ValueError(f"method must be 'auto', 'shift' or 'box'; got {method!r}")
    if method == "auto":
        method = "shift" if sigma.positive_sector else "box"
    if method == "shift" and not sigma.positive_sector:
        raise ValueError(f"method='shift' needs a ReLU-like activation (relu, leaky_relu, softplus, smooth_relu); got {sigma.name!r}")
    last_width = width if depth > 0 else M
    if N > last_width + 1:
        what = f"width + 1 = {width + 1}" if depth > 0 else f"input_dim + 1 = {M + 1} (depth 0 is an affine model)"
        raise ValueError(
            f"width: the construction needs N <= {what}, because the output layer must solve "
            f"[A_L 1] Θ = Y exactly for N = {N} samples"
        )
    rank = _affine_rank(X)
    if rank < N:
        raise ValueError(
            f"X: the construction needs affinely independent samples, rank [X 1] = N = {N}; got rank {rank}"
            + (f" (impossible with N > input_dim + 1 = {M + 1})" if N > M + 1 else "")
        )
    gen = as_generator(rng) if rng is not None else None

    weights: list[Array] = []
    biases: list[Array] = []
    A = X
    if method == "box":
        p, radius = diffeomorphism_box(sigma)
    for ell in range(1, depth + 1):
        fan_in = A.shape[1]
        if gen is not None:
            E = _random_full_rank(gen, width, fan_in)
        else:
            E = _embedding(A, width) if ell == 1 else np.eye(width)
        if method == "shift":
            # Theorem 2.2 allows any full-rank W_ℓ: rescale so that the pre-activations have an
            # O(1) spread, so that the margin below is neither negligible nor dominant.
            spread = float(np.abs((A - A.mean(axis=0)) @ E.T).max())
            if spread > 0:
                E = E / spread
            Zl = A @ E.T
            lo = 0.0 if sigma.name != "smooth_relu" else dict(sigma.params)["width"]
            beta = lo + SHIFT_MARGIN - Zl.min()  # every pre-activation >= lo + margin
            W, b = E, np.full(width, beta)
        else:
            centre = 0.5 * (A.max(axis=0) + A.min(axis=0))
            spread = np.abs((A - centre) @ E.T).max()
            eps = radius / spread if spread > 0 else 1.0
            W, b = eps * E, p - eps * (E @ centre)
        Zl = A @ W.T + b
        A = sigma.value(Zl)
        if _affine_rank(A) < N:
            raise ValueError(
                f"X: the samples are not generic enough: hidden layer {ell} of the {method} construction "
                f"maps them to affinely dependent points"
            )
        weights.append(W)
        biases.append(b)

    features = np.hstack([A, np.ones((N, 1))])
    theta = np.linalg.lstsq(features, Y, rcond=None)[0]  # minimal-norm exact solution, (width + 1) × Q
    theta += np.linalg.lstsq(features, Y - features @ theta, rcond=None)[0]  # one step of iterative refinement
    weights.append(theta[:-1].T)
    biases.append(theta[-1])
    arch = Architecture(M, (width,) * depth, Y.shape[1], sigma)
    return Network(arch, weights, biases)


def embed_network(net: Network, arch: Architecture) -> Network:
    """The same function as ``net``, written as a network of the wider and deeper ``arch``.

    Extra units of a layer get zero incoming and outgoing weights and zero bias; extra hidden
    layers are appended after the last one as identity layers ``W = I``, ``b = 0``. An
    identity layer reproduces its input only where σ is the identity on the values it sees,
    so adding depth needs ``relu``: its hidden activations are ``≥ 0``, where σ(x) = x.
    Widening works for every activation, because padded units send zero weights forward.

    Parameters
    ----------
    net
        The network to embed.
    arch
        Target architecture: same input and output dimension and activation, at least as
        deep, and every hidden layer at least as wide as the widest hidden layer of ``net``
        it has to carry.

    Returns
    -------
    Network
        A network of ``arch`` with ``embedded.forward(X) == net.forward(X)`` for every ``X``
        (up to the rounding of the added zeros: exactly equal in floating point).

    Raises
    ------
    ValueError
        If ``arch`` is narrower, shallower, has other input or output dimensions or
        another activation, or adds depth to a non-ReLU network.
    """
    src = require_network(net).arch
    if not isinstance(arch, Architecture):
        raise ValueError(f"arch must be an Architecture; got {type(arch).__name__}")
    if (arch.input_dim, arch.output_dim) != (src.input_dim, src.output_dim):
        raise ValueError(
            f"arch: input and output dimensions must stay ({src.input_dim}, {src.output_dim}); "
            f"got ({arch.input_dim}, {arch.output_dim})"
        )
    if arch.activation != src.activation:
        raise ValueError(f"arch: activation must stay {src.activation!r}; got {arch.activation!r}")
    if arch.depth < src.depth:
        raise ValueError(f"arch: depth must be >= {src.depth} (the network's depth); got {arch.depth}")
    if arch.depth > src.depth and (src.activation != "relu" or src.depth == 0):
        raise ValueError(
            "arch: adding hidden layers needs a relu network with at least one hidden layer "
            f"(identity layers pass on nonnegative values only); got {src.activation!r} with depth {src.depth}"
        )
    carried = list(src.hidden) + [src.hidden[-1] if src.hidden else 0] * (arch.depth - src.depth)
    narrow = [ell + 1 for ell, (have, need) in enumerate(zip(arch.hidden, carried)) if have < need]
    if narrow:
        raise ValueError(
            f"arch: hidden layer {narrow[0]} has width {arch.hidden[narrow[0] - 1]} < {carried[narrow[0] - 1]}, "
            "the width it must carry"
        )
    weights, biases = [], []
    src_layers = list(zip(net.weights[:-1], net.biases[:-1]))
    for ell, (out, inp) in enumerate(arch.layer_shapes[:-1]):
        W, b = np.zeros((out, inp)), np.zeros(out)
        if ell < src.depth:
            W_src, b_src = src_layers[ell]
        else:  # identity layer on the carried units
            W_src, b_src = np.eye(carried[ell]), np.zeros(carried[ell])
        W[: W_src.shape[0], : W_src.shape[1]] = W_src
        b[: b_src.shape[0]] = b_src
        weights.append(W)
        biases.append(b)
    W_out = np.zeros(arch.layer_shapes[-1])
    W_out[:, : net.weights[-1].shape[1]] = net.weights[-1]
    weights.append(W_out)
    biases.append(net.biases[-1].copy())
    return Network(arch, weights, biases)
