"""Explicit zero-loss minimizers for overparametrized networks (chen2025zeroloss,
Theorems 2.1 and 2.2).

Three constructions, all exact up to rounding (see the book's chapter on zero-loss
minimizers and its Notation page for the conventions):

* **pull-back** (``method="pullback"``: the paper's own proof of Theorem 2.1, §4.5, Lemma 2
  and eq. 10–13; σ any activation that is a local diffeomorphism at one point ``p``). It runs
  *backward* from the targets. The targets are embedded into ``ℝ^width`` by ``ι`` (trailing
  zeros), ``u⁽ᴸ⁺¹⁾_j = ι(y_j)``. For ``ℓ = L, …, 1`` Lemma 2 gives an invertible affine map
  ``T_ℓ`` and points ``z⁽ℓ⁾_j = σ⁻¹(T_ℓ⁻¹ u⁽ℓ⁺¹⁾_j)`` with ``u⁽ℓ⁺¹⁾_j = T_ℓ(σ(z⁽ℓ⁾_j))``: ``σ`` is a
  diffeomorphism on a box ``B`` around ``p``, and ``T_ℓ`` maps the box ``σ(B)`` onto a box that
  holds the data. Layer ``ℓ + 1`` is ``T_ℓ`` (composed with the projection ``π`` onto the first
  ``Q`` coordinates for the output layer), and ``u⁽ℓ⁾ = z⁽ℓ⁾`` are the pre-activations layer ``ℓ``
  must produce. The data enter only at the end, through the first-layer linear regression
  ``W_1 x_j + b_1 = z⁽¹⁾_j`` (eq. 13). The hidden features depend on the targets alone: the
  last hidden layer is ``σ(z⁽ᴸ⁾_j) = T_L⁻¹ ι(y_j)``, an affine function of ``y_j``, so
  ``rank [A_L 1] ≤ Q + 1``.
* **positive-sector shift** (``method="shift"``: the paper's proof of Theorem 2.2, §5; σ
  ReLU-like, a diffeomorphism of the positive sector): any full-rank ``W_ℓ`` and a bias
  ``b_ℓ = β_ℓ·(1, …, 1)`` with ``β_ℓ`` so large that every pre-activation lies in the sector
  where σ is invertible. For ``relu``, ``leaky_relu`` and ``smooth_relu`` σ is the identity
  there, so each layer acts on the data as an injective affine map and keeps their affine
  rank; ``softplus`` is only a diffeomorphism there, and keeps it for generic data. The output
  layer solves ``[A_L 1] [W_{L+1} b_{L+1}]ᵀ = Y`` by least squares (eq. 24, which takes
  ``b_{L+1} = 0``; the code keeps the output bias, which the book's extension to
  ``width ≥ N − 1`` needs). The free choice of ``W_ℓ`` and ``β_ℓ`` makes the minimum
  *degenerate*.
* **small box** (``method="box"``: the book's own forward alternative to Theorem 2.1, not the
  paper's construction): ``W_ℓ = ε_ℓ E_ℓ``, ``b_ℓ = p·1 − ε_ℓ E_ℓ m_ℓ`` push the data forward
  into a small box around ``p`` where σ' stays away from zero, and the output layer is solved
  by least squares. For generic data its hidden features keep the affine rank ``N`` of the
  data layer after layer (σ is nonlinear on the box, so particular data can lose it; the code
  then refuses), where the pull-back's depend on the targets only.

Hypotheses. The paper's theorems take the input dimension ``M ≥ N``, every hidden width equal
to ``M`` and generic data (a data matrix of full rank ``N``). What the code needs (derived in
the book, each with its own check): the pull-back needs ``rank [X 1] = N`` (affinely
independent inputs, so ``N ≤ M + 1``) and any ``width ≥ Q``; when ``rank X = N`` it
follows eq. 13 to the letter (``b_1`` chosen freely, here the midrange of the pre-activations,
and ``W_1 = (Z⁽¹⁾ − 1 b_1ᵀ)ᵀ (X⁺)ᵀ``),
otherwise it solves for ``W_1`` and ``b_1`` together. The shift and the box solve the output
layer on features of affine rank ``N``, which needs ``N ≤ width + 1`` and ``rank [X 1] = N``,
and raise a ``ValueError`` where a hidden layer loses that rank.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_generator, as_matrix, choice, instance, nonnegative_int, positive_int
from .activations import Activation
from .activations import activation as lookup_activation
from .architecture import Architecture, Network, require_network
from .diagnostics import affine_rank
from .linalg import _power_of_four_scale, numerical_rank, singular_values
from .memory import FLOAT_BYTES, LAYER_OVERHEAD_BYTES, require_memory
from .typing import Array

__all__ = [
    "zero_loss_minimizer",
    "embed_network",
    "diffeomorphism_box",
    "verify_fit",
    "finite_network",
    "SHIFT_MARGIN",
    "PULLBACK_FILL",
    "FIT_TOLERANCE",
]


CONSTRUCTION_SCALE_EXPONENT = 64
""":func:`zero_loss_minimizer` builds its network for the inputs scaled by a power of 4 to unit
size when the largest ``|X|`` leaves ``[2^-64, 2^64]`` (the constructions add biases of order
one to ``W x``, which is not scale-free), and folds the scale into the first layer."""

FIT_TOLERANCE = 1e-16
"""The exactness every construction promises and checks before it returns: the misfit
``|F − Y|² / |Y|²`` on its own data is at most ``1e-16`` (a relative error of ``1e-8`` in the
outputs). An exact construction reaches the rounding floor, far below (the book's chapters
measure ``< 1e-18``); a misfit above it means that rounding defeated the construction (inputs
too close together for the requested depth, a hidden layer too badly conditioned), and the
construction raises a :class:`ValueError` that says why instead of returning the network."""


def _misfit(F: Array, Y: Array) -> float:
    """``|F − Y|² / |Y|²``, or ``|F|² / N`` for ``Y = 0``; computed on a power-of-two scale."""
    scale = float(np.abs(Y).max())
    if scale == 0.0:
        scale = float(np.abs(F).max()) or 1.0
        e = -int(np.frexp(scale)[1])
        return float(np.sum(np.ldexp(F, e) ** 2)) * 4.0 ** (-e) / F.shape[0]
    e = -int(np.frexp(scale)[1])  # |Y| scaled to about 1, so the squares neither overflow nor underflow
    Fs, Ys = np.ldexp(F, e), np.ldexp(Y, e)
    return float(np.sum((Fs - Ys) ** 2) / np.sum(Ys**2))


def finite_network(arch: Architecture, weights: list[Array], biases: list[Array], why: Callable[[], str]) -> Network:
    """``Network(arch, weights, biases)``, or a ``ValueError`` ending with ``why()`` if rounding
    made a weight infinite or NaN."""
    if not all(np.all(np.isfinite(p)) for p in (*weights, *biases)):
        raise ValueError(f"X: rounding defeats the construction: a weight overflows or is not a number; {why()}")
    return Network(arch, weights, biases)


def verify_fit(net: Network, X: Array, Y: Array, why: Callable[[], str], argument: str = "X") -> Network:
    """Return ``net`` if it fits ``(X, Y)`` to :data:`FIT_TOLERANCE`, else a ``ValueError``
    that names ``argument`` and ends with ``why()`` (the reason, computed only then)."""
    try:
        F = net.forward(X)
    except ValueError as err:  # the outputs overflow
        raise ValueError(f"{argument}: the construction does not fit: {err}; {why()}") from None
    with np.errstate(over="ignore", invalid="ignore"):
        misfit = _misfit(F, Y)
    if not misfit <= FIT_TOLERANCE:
        raise ValueError(
            f"{argument}: rounding defeats the exact fit: |F - Y|^2/|Y|^2 = {misfit:.3g} on the data, above "
            f"{FIT_TOLERANCE:g}; {why()}"
        )
    return net


SHIFT_MARGIN = 1.0
"""How far inside the invertible sector the shift puts the smallest pre-activation."""

PULLBACK_FILL = 0.5
"""Fraction of the box ``σ(B)`` (half-side, measured from ``σ(p)``) that the pulled-back data
fill in Lemma 2: any value in ``(0, 1)`` works; 1/2 keeps ``σ⁻¹`` well away from the edge of
the box, where its derivative grows."""


def diffeomorphism_box(sigma: Activation) -> tuple[float, float]:
    """A point ``p`` where σ is a local diffeomorphism and a radius ``r`` around it.

    On a grid of ``[−4, 4]``, take the longest interval on which ``|σ'|`` stays above half its
    maximum; ``p`` is its midpoint and ``r`` its half-length, capped at 1. For ``tanh`` this is
    ``p = 0``, ``r = 0.88``; for ``relu`` it is ``p = 2.0025`` (the midpoint of the grid points
    ``0.005, …, 4`` where σ' = 1), ``r = 1``, inside the linear piece.

    Examples
    --------
    >>> import zlnotes as zl
    >>> p, r = diffeomorphism_box(zl.activation("relu"))
    >>> round(p, 4), r
    (2.0025, 1.0)
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


def _lemma2(
    U: Array, sigma: Activation, p: float, radius: float, gen: np.random.Generator | None
) -> tuple[Array, Array, Array]:
    """Lemma 2 of chen2025zeroloss on the data ``U`` (rows ``u_j``): ``U = σ(Z) diag(s) + 1 tᵀ``.

    ``σ`` is a diffeomorphism on the box ``B = (p − r, p + r)^m``, whose image is the box
    ``σ(B)``. The affine map ``T(v) = s ⊙ v + t`` (diagonal, invertible) takes the smaller box
    around ``σ(p)`` of half-side ``ρ = PULLBACK_FILL · min(σ(p + r) − σ(p), σ(p) − σ(p − r))``
    onto the bounding box of the data; so ``T⁻¹ u_j`` lies in ``σ(B)`` and
    ``z_j = σ⁻¹(T⁻¹ u_j) ∈ B`` is a smooth function of ``u_j``. With a generator, each scale
    gets a random sign and a factor in ``[1, 2)`` (a smaller box, still inside ``σ(B)``).

    Returns ``(s, t, Z)``.
    """
    mid = float(sigma.value(np.array(p)))
    lo, hi = (float(v) for v in sigma.value(np.array([p - radius, p + radius])))
    rho = PULLBACK_FILL * min(hi - mid, mid - lo)
    centre = 0.5 * (U.max(axis=0) + U.min(axis=0))
    half = 0.5 * (U.max(axis=0) - U.min(axis=0))
    s = np.where(half > 0, half / rho, 1.0)
    if gen is not None:
        s = s * gen.choice([-1.0, 1.0], size=s.shape) * (1.0 + gen.random(s.shape))
    t = centre - s * mid
    inside = mid + (U - centre) / s  # T⁻¹ u_j, within ρ of σ(p) in every coordinate
    assert sigma.inverse is not None  # every activation with a diffeomorphism box has one
    return s, t, sigma.inverse(inside)


def _pullback(X: Array, Y: Array, depth: int, width: int, sigma: Activation, gen: np.random.Generator | None):
    """Weights and biases of the pull-back construction (module docstring); ``depth ≥ 1``."""
    N, Q = Y.shape
    p, radius = diffeomorphism_box(sigma)
    U = np.zeros((N, width))
    U[:, :Q] = Y  # ι: the targets, padded with trailing zeros
    weights: list[Array] = []
    biases: list[Array] = []
    for ell in range(depth, 0, -1):  # T_ℓ: layer ℓ + 1 from the pre-activations of layer ℓ
        s, t, U = _lemma2(U, sigma, p, radius, gen)
        W, b = np.diag(s), t
        if ell == depth:  # the output layer is π ∘ T_L
            W, b = W[:Q], b[:Q]
        weights.insert(0, W)
        biases.insert(0, b)
    # eq. 13: the first layer's linear regression X W_1ᵀ + 1 b_1ᵀ = Z⁽¹⁾ (rows), U = Z⁽¹⁾ now.
    # The paper leaves b_1 free; the midrange of each column is exact for a constant column,
    # so a coordinate the targets do not reach gets W_1 row 0 and stays constant exactly.
    b1 = 0.5 * (U.max(axis=0) + U.min(axis=0))
    if numerical_rank(X) == N:  # the paper's case: W_1ᵀ = X⁺ (Z⁽¹⁾ − 1 b_1ᵀ)
        W1t = _exact_solve(X, U - b1)
    else:  # rank [X 1] = N only: solve for W_1 and a correction of b_1 together (derived)
        theta = _exact_solve(np.hstack([X, np.ones((N, 1))]), U - b1)
        W1t, b1 = theta[:-1], b1 + theta[-1]
    weights.insert(0, W1t.T.copy())
    biases.insert(0, b1)
    return weights, biases


def _exact_solve(A: Array, B: Array) -> Array:
    """The minimal-norm solution of ``A Θ = B`` for ``A`` of full row rank, with one step of
    iterative refinement (exact up to rounding)."""
    theta: Array = np.asarray(np.linalg.lstsq(A, B, rcond=None)[0], dtype=np.float64)
    theta += np.linalg.lstsq(A, B - A @ theta, rcond=None)[0]
    return theta


@np.errstate(all="ignore")  # a construction defeated by rounding is refused by verify_fit, saying why
def zero_loss_minimizer(
    X: ArrayLike,
    Y: ArrayLike,
    *,
    depth: int,
    width: int,
    activation: str | Activation,
    rng: np.random.Generator | int | None = None,
    method: Literal["auto", "pullback", "shift", "box"] = "auto",
) -> Network:
    """A network with ``depth`` hidden layers of ``width`` that fits ``Y`` exactly.

    Parameters
    ----------
    X : array_like, shape (N, M)
        Training inputs (rows). Must be affinely independent: ``rank [X 1] = N``.
    Y : array_like, shape (N, Q)
        Targets.
    depth
        ``L ≥ 0`` hidden layers (0 gives the affine model of eq. 10–12, solved by regression).
    width
        Hidden width ``M_ℓ`` of every hidden layer (the paper takes it equal to ``M``). The
        pull-back needs ``width ≥ Q``; the shift and the box need ``N ≤ width + 1``.
    activation
        Name or :class:`Activation`.
    rng
        ``None`` for deterministic choices; a generator or seed for random free choices
        (pull-back: signs and scales of the affine maps of Lemma 2;
        shift and box: orthogonal full-rank weights). Each seed gives a different zero-loss
        minimizer: the minimum is degenerate.
    method
        ``"pullback"`` (the paper's proof of Theorem 2.1, any activation with a
        diffeomorphism box), ``"shift"`` (the paper's proof of Theorem 2.2, ReLU-like
        activations), ``"box"`` (the book's own forward alternative to Theorem 2.1), or
        ``"auto"``: the paper's construction for the activation, shift for ReLU-like
        activations and pull-back otherwise.

    Returns
    -------
    Network
        Its cost on ``(X, Y)`` is zero up to rounding: the construction checks, before it
        returns, that ``|F − Y|² / |Y|² ≤`` :data:`FIT_TOLERANCE` (``1e-16``) on its data.

    Raises
    ------
    ValueError
        If ``rank [X 1] < N`` (which includes ``N > M + 1``), if the width is too small for the
        method (``width < Q`` for the pull-back, ``N > width + 1`` for the others), if
        ``method`` does not apply to ``activation``, or on malformed input; if the network would
        take more than the memory budget (:func:`zlnotes.set_memory_budget`); and if rounding
        defeats the construction (inputs so close that the fit misses :data:`FIT_TOLERANCE`:
        the message gives the misfit and the condition number of the inputs).

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.standard_normal((5, 6)), rng.standard_normal((5, 2))
    >>> net = zl.zero_loss_minimizer(X, Y, depth=3, width=6, activation="tanh", method="pullback")
    >>> bool(np.abs(net.forward(X) - Y).max() < 1e-12)
    True
    >>> A = net.hidden(X)[-1]  # the last hidden layer: an affine function of the targets
    >>> int(np.linalg.matrix_rank(np.hstack([A, np.ones((5, 1))])))
    3
    """
    X = as_matrix("X", X)
    N, M = X.shape
    Y = as_matrix("Y", Y, rows=N)
    Q = Y.shape[1]
    depth = nonnegative_int("depth", depth)
    width = positive_int("width", width)
    gen = as_generator(rng) if rng is not None else None
    sigma = lookup_activation(activation)
    method = choice("method", method, ("auto", "pullback", "shift", "box"))  # type: ignore[assignment]
    if method == "auto":
        method = "shift" if sigma.positive_sector else "pullback"
    if method == "shift" and not sigma.positive_sector:
        raise ValueError(
            "method='shift' needs a ReLU-like activation (relu, leaky_relu, softplus, smooth_relu); "
            f"got {sigma.name!r}"
        )
    if depth > 0 and method == "pullback" and width < Q:
        raise ValueError(
            f"width: the pullback construction needs width >= Q = {Q}, because the targets are "
            f"embedded into the last hidden layer (ι: R^Q -> R^width); got {width}"
        )
    last_width = width if depth > 0 else M
    if (depth == 0 or method != "pullback") and N > last_width + 1:
        what = f"width + 1 = {width + 1}" if depth > 0 else f"input_dim + 1 = {M + 1} (depth 0 is an affine model)"
        raise ValueError(
            f"width: the {method} construction needs N <= {what}, because the output layer must solve "
            f"[A_L 1] Θ = Y exactly for N = {N} samples"
        )
    rank = affine_rank(X)
    if rank < N:
        raise ValueError(
            f"X: the construction needs affinely independent samples, rank [X 1] = N = {N}; got rank {rank}"
            + (f" (impossible with N > input_dim + 1 = {M + 1})" if N > M + 1 else "")
        )
    require_memory(
        "depth, width",
        f"a network of depth {depth} and width {width} and its features on N = {N} samples",
        (depth * width * (width + 1) + width * (M + 1) + 4 * N * max(width, M) + (M * M if width < M else 0))
        * FLOAT_BYTES
        + depth * LAYER_OVERHEAD_BYTES,
    )
    arch = Architecture(M, (width,) * depth, Q, sigma)
    e = _power_of_four_scale(X, CONSTRUCTION_SCALE_EXPONENT)
    if e:
        # far from unit scale the network is built for 2^e X (exact) and 2^e is folded into the
        # first layer's weights (exact): it computes the same numbers on X
        scaled = zero_loss_minimizer(np.ldexp(X, e), Y, depth=depth, width=width, activation=sigma, rng=gen,
                                     method=method)
        folded = [np.ldexp(scaled.weights[0], e), *scaled.weights[1:]]
        return verify_fit(
            Network(arch, folded, scaled.biases), X, Y, lambda: f"the inputs were scaled by 2^{e} for the construction"
        )

    def why() -> str:
        s = singular_values(np.hstack([X, np.ones((N, 1))]))[:N]
        gaps = [float(np.linalg.norm(X[i] - X[j])) for i in range(min(N, 200)) for j in range(i)]
        close = f", two of them {min(gaps):.3g} apart" if gaps else ""
        return (
            f"the inputs are too close for an exact fit by the {method} construction of depth {depth}: "
            f"the affine system [X 1] has condition number {s[0] / s[-1]:.3g}{close}"
        )

    if depth > 0 and method == "pullback":
        pulled_weights, pulled_biases = _pullback(X, Y, depth, width, sigma, gen)
        return verify_fit(finite_network(arch, pulled_weights, pulled_biases, why), X, Y, why)

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
            lo = sigma.sector_start  # where σ starts being the identity on the sector (smooth_relu: its width)
            beta = lo + SHIFT_MARGIN - Zl.min()  # every pre-activation >= lo + margin
            W, b = E, np.full(width, beta)
        else:
            centre = 0.5 * (A.max(axis=0) + A.min(axis=0))
            spread = np.abs((A - centre) @ E.T).max()
            eps = radius / spread if spread > 0 else 1.0
            W, b = eps * E, p - eps * (E @ centre)
        Zl = A @ W.T + b
        A = sigma.value(Zl)
        if affine_rank(A) < N:
            raise ValueError(
                f"X: the samples are not generic enough: hidden layer {ell} of the {method} construction "
                f"maps them to affinely dependent points"
            )
        weights.append(W)
        biases.append(b)

    # eq. 10–12 (depth 0) and eq. 24: the output layer by minimal-norm least squares
    theta = _exact_solve(np.hstack([A, np.ones((N, 1))]), Y)  # (width + 1) × Q
    weights.append(theta[:-1].T)
    biases.append(theta[-1])
    return verify_fit(finite_network(arch, weights, biases, why), X, Y, why)


def _params(arch: Architecture) -> str:
    """`` (slope=0.1)`` for an activation with parameters, else empty: for messages."""
    params = arch.sigma.params
    return f" ({', '.join(f'{k}={v:g}' for k, v in params)})" if params else ""


def embed_network(net: Network, arch: Architecture) -> Network:
    """The same function as ``net``, written as a network of the wider and deeper ``arch``.

    Extra units of a layer get zero incoming and outgoing weights and zero bias; extra hidden
    layers are appended after the last one as identity layers ``W = I``, ``b = 0``. An
    identity layer reproduces its input only where σ is the identity on the values it sees,
    so adding depth needs a σ that is the identity on its own range
    (:attr:`zlnotes.Activation.identity_on_range`: ``relu``, whose hidden activations are
    ``≥ 0``, where σ(x) = x; and ``identity``). Widening works for every activation, because
    padded units send zero weights forward.

    Parameters
    ----------
    net
        The network to embed.
    arch
        Target architecture: same input and output dimension and the same activation (the
        same function: equal name *and* parameters, so a ``leaky_relu`` of another slope or a
        ``softplus`` of another sharpness is refused), at least as deep, and every hidden
        layer at least as wide as the widest hidden layer of ``net`` it has to carry.

    Returns
    -------
    Network
        A network of ``arch`` with ``embedded.forward(X) = net.forward(X)`` for every ``X``,
        exactly in real arithmetic; in floating point up to rounding, because BLAS may sum
        the products of the padded matrices in another order. Checked before it returns: on
        :data:`EMBED_PROBES` seeded standard-normal inputs the two networks' outputs agree to
        :data:`FIT_TOLERANCE` (``|F_embedded − F|² / |F|²``), or a ``ValueError`` says so.

    Raises
    ------
    TypeError
        If ``net`` is not a :class:`zlnotes.Network` or ``arch`` not a
        :class:`zlnotes.Architecture`.
    ValueError
        If ``arch`` is narrower, shallower, has other input or output dimensions or
        another activation, or adds depth to a network whose σ is not the identity on its
        range.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> net = zl.Network.init(zl.Architecture(2, (3,), 1, "relu"), rng=0)
    >>> big = zl.embed_network(net, zl.Architecture(2, (4, 4), 1, "relu"))
    >>> X = np.random.default_rng(1).standard_normal((5, 2))
    >>> bool(np.allclose(big.forward(X), net.forward(X), rtol=1e-14, atol=1e-14))
    True
    """
    src = require_network(net).arch
    instance("arch", arch, Architecture, "a zlnotes.Architecture")
    require_memory("arch", f"a network of K = {arch.num_params} parameters", 2 * arch.num_params * FLOAT_BYTES)
    if (arch.input_dim, arch.output_dim) != (src.input_dim, src.output_dim):
        raise ValueError(
            f"arch: input and output dimensions must stay ({src.input_dim}, {src.output_dim}); "
            f"got ({arch.input_dim}, {arch.output_dim})"
        )
    if arch.sigma != src.sigma:  # the same function: name and parameters
        raise ValueError(
            f"arch: activation must stay {src.activation!r}{_params(src)}; got {arch.activation!r}{_params(arch)}"
        )
    if arch.depth < src.depth:
        raise ValueError(f"arch: depth must be >= {src.depth} (the network's depth); got {arch.depth}")
    if arch.depth > src.depth and (not src.sigma.identity_on_range or src.depth == 0):
        raise ValueError(
            "arch: adding hidden layers needs at least one hidden layer and an activation that is the "
            "identity on its range, such as relu (an identity layer must pass its input on unchanged); "
            f"got {src.activation!r}{_params(src)} with depth {src.depth}"
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
    big = Network(arch, weights, biases)
    # the same function: compare the outputs on a fixed set of probe inputs (the origin if
    # the network's outputs overflow on the standard-normal ones)
    probes = np.random.default_rng(0).standard_normal((EMBED_PROBES, src.input_dim))
    try:
        reference = net.forward(probes)
    except ValueError:
        probes = np.zeros((1, src.input_dim))
        try:
            reference = net.forward(probes)
        except ValueError:
            raise ValueError(
                "net: its outputs overflow float64 at every probe input, so the embedding cannot be checked; "
                "rescale the network"
            ) from None
    return verify_fit(
        big,
        probes,
        reference,
        lambda: "the embedded network does not compute the same function as net on the probe inputs "
        "(rounding in its identity layers or its padded sums)",
        argument="arch",
    )


EMBED_PROBES = 16
"""Inputs (seeded standard normal) on which :func:`embed_network` checks that the embedded
network computes the same outputs as the original, to :data:`FIT_TOLERANCE`."""
