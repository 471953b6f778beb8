"""Clustered data and the truncation construction of zero-loss minimizers with K < QN.

Reconstructed from chen2023deep and chen2024sequential (the book's chapter on clustered
data states what is the papers' and what is derived). With input dimension ``M``
and ``Q̄ ≤ M + 1`` classes (``Q̄`` is the number of classes, as on the book's Notation
page) whose means are affinely independent, a ReLU network with
``L = Q̄`` hidden layers of width ``M`` fits every point of class ``ℓ`` to its target ``y_ℓ``
exactly, however many points there are: hidden layer ℓ collapses class ℓ onto an apex point.

Truncation map: ``τ_{W,b}(x) = W⁻¹(σ(Wx + b) − b)``. With cumulative parameters
``W^(ℓ) = W_ℓ W^(ℓ−1)``, ``b^(ℓ) = W_ℓ b^(ℓ−1) + b_ℓ``, hidden layer ℓ equals
``W^(ℓ) (τ_ℓ ∘ … ∘ τ_1)(x) + b^(ℓ)``. Step ℓ uses ``W^(ℓ) = 1 nᵀ + η I`` and
``b^(ℓ) = −W^(ℓ) p_ℓ``: τ sends points with ``W(x − p) ≤ 0`` to ``p`` and fixes points with
``W(x − p) ≥ 0``. The sufficient condition: with ``h = min_ℓ dist(m_ℓ, aff{m_k : k ≠ ℓ})``,
``n_ℓ`` the unit vector from ``m_ℓ`` toward that hull and apex ``p_ℓ = m_ℓ + (h/3) n_ℓ``,
every point lies within ``δ < h/3`` of its class mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import as_generator, as_matrix, boolean, positive_int, real_scalar
from .architecture import Architecture, Network
from .construction import finite_network, verify_fit
from .data import Dataset
from .linalg import _power_of_four_scale
from .memory import FLOAT_BYTES, require_memory
from .typing import Array

__all__ = ["ClusterGeometry", "cluster_geometry", "clustered_data", "clustered_minimizer"]



@np.errstate(over="ignore", invalid="ignore")  # overflow is refused below, by name
def clustered_data(
    n_per_class: int,
    n_classes: int,
    input_dim: int,
    output_dim: int | None = None,
    *,
    radius: float,
    rng: np.random.Generator | int,
    separation: float = 1.0,
) -> Dataset:
    """Points in balls of a given radius around affinely independent class means.

    Parameters
    ----------
    n_per_class
        Points per class.
    n_classes
        ``Q̄ = n_classes ≤ input_dim + 1``.
    input_dim
        ``M``.
    output_dim
        ``Q`` (default ``Q̄``): targets are ``y_ℓ = e_ℓ`` (one-hot) when ``Q = Q̄``, otherwise
        ``Q̄`` Gaussian label vectors (linearly independent with probability one if ``Q̄ ≤ Q``).
    radius
        ``δ ≥ 0``: every point lies within ``δ`` of its class's generating mean (uniform in the ball).
    rng
        Generator or seed.
    separation
        Scale of the means, drawn ``N(0, separation² I)``.

    Returns
    -------
    Dataset
        Samples ordered class by class; ``labels`` in ``0..Q̄−1``.
    """
    n = positive_int("n_per_class", n_per_class)
    C = positive_int("n_classes", n_classes)
    M = positive_int("input_dim", input_dim)
    Q = C if output_dim is None else positive_int("output_dim", output_dim)
    if C > M + 1:
        raise ValueError(f"n_classes must be <= input_dim + 1 = {M + 1} (affinely independent means); got {C}")
    radius = real_scalar("radius", radius, lo=0.0)
    separation = real_scalar("separation", separation, lo=0.0, lo_open=True)
    gen = as_generator(rng)
    require_memory(
        "n_per_class",
        f"a data set of Q̄·n = {C * n} points in dimension M = {M} (about 4·Q̄·n·(M + Q) numbers)",
        4 * C * n * (M + Q) * FLOAT_BYTES,
    )
    means = gen.standard_normal((C, M)) * separation
    directions = gen.standard_normal((C * n, M))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    # uniform in the ball: the radius has the law of U^(1/M), which is the law of the largest
    # of M uniforms (P(max ≤ r) = r^M). The maximum needs no `**`, whose last bits differ
    # between numpy's SIMD loops, so the points are the same bits on every machine.
    radii = radius * gen.random((C * n, M)).max(axis=1)
    labels = np.repeat(np.arange(C), n)
    X = means[labels] + directions * radii[:, None]
    if not np.all(np.isfinite(X)):
        raise ValueError(
            f"radius, separation: the points overflow float64 (radius = {radius:.3g}, separation = {separation:.3g}); "
            "use smaller values"
        )
    label_vectors = np.eye(C) if Q == C else gen.standard_normal((C, Q))
    return Dataset(X, label_vectors[labels], labels.astype(np.int64), label_vectors)


@dataclass(frozen=True)
class ClusterGeometry:
    """The quantities of the sufficient condition, measured on the data.

    Attributes
    ----------
    means : (Q̄, M)
        Class means ``m_ℓ``.
    normals : (Q̄, M)
        Unit vectors ``n_ℓ`` from ``m_ℓ`` toward ``aff{m_k : k ≠ ℓ}``.
    distances : (Q̄,)
        ``dist(m_ℓ, aff{m_k : k ≠ ℓ})``.
    h : float
        ``min_ℓ distances[ℓ]``.
    delta : float
        Cluster radius: the largest distance of a point from its class mean.
    apexes : (Q̄, M)
        ``p_ℓ = m_ℓ + (h/3) n_ℓ``.
    """

    means: Array
    normals: Array
    distances: Array
    h: float
    delta: float
    apexes: Array

    @property
    def satisfied(self) -> bool:
        """Whether the sufficient condition ``δ < h/3`` holds."""
        return bool(self.delta < self.h / 3)


def _listed(values: NDArray[np.int64]) -> str:
    shown = ", ".join(str(int(v)) for v in values[:8])
    return f"[{shown}{', ...' if values.size > 8 else ''}]"


def _check_labels(X: Array, labels: ArrayLike) -> tuple[NDArray[np.int64], int]:
    if labels is None or isinstance(labels, (str, bytes)):
        raise TypeError(f"labels must be an integer array (one class per sample); got {type(labels).__name__}")
    try:
        lab = np.asarray(labels)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"labels must be a 1-D integer array; {exc}") from None
    if not np.issubdtype(lab.dtype, np.integer):
        raise TypeError(f"labels must be an integer array (one class per sample); got dtype {lab.dtype}")
    if lab.shape != (X.shape[0],):
        raise ValueError(f"labels must have shape ({X.shape[0]},) (one class per sample); got shape {lab.shape}")
    C = int(lab.max()) + 1 if lab.size else 0
    if lab.min() < 0 or C > lab.size or np.any(np.bincount(lab, minlength=C) == 0):
        raise ValueError(
            f"labels must use every class 0..Q̄-1 at least once (Q̄ = {C}); got classes {_listed(np.unique(lab))}"
        )
    return lab.astype(np.int64), C


def cluster_geometry(X: ArrayLike, labels: ArrayLike) -> ClusterGeometry:
    """Measure the class means, their separation ``h`` and the cluster radius ``δ``.

    Raises
    ------
    ValueError
        If there are more than ``M + 1`` classes or the class means are affinely dependent.
    """
    X = as_matrix("X", X)
    lab, C = _check_labels(X, labels)
    M = X.shape[1]
    if C > M + 1:
        raise ValueError(
            f"labels: at most input_dim + 1 = {M + 1} classes can have affinely independent means; got {C}"
        )
    # Data far from unit scale (1e200: squared distances overflow; 1e-200: they underflow) are
    # measured at a power-of-4 scale and the lengths scaled back, exactly; data inside the
    # range [2^-300, 2^300] are measured as given.
    e = _power_of_four_scale(X)
    if e:
        geo = cluster_geometry(np.ldexp(X, e), lab)
        return ClusterGeometry(
            np.ldexp(geo.means, -e),
            geo.normals,
            np.ldexp(geo.distances, -e),
            float(np.ldexp(geo.h, -e)),
            float(np.ldexp(geo.delta, -e)),
            np.ldexp(geo.apexes, -e),
        )
    means = np.stack([X[lab == c].mean(axis=0) for c in range(C)])
    normals = np.zeros_like(means)
    distances = np.zeros(C)
    for c in range(C):
        others = np.delete(means, c, axis=0)
        if C == 1:
            raise ValueError("labels: the construction needs at least 2 classes")
        base = others[0]
        span = (others[1:] - base).T  # M × (C − 2)
        offset = means[c] - base
        if span.shape[1]:
            coef = np.linalg.lstsq(span, offset, rcond=None)[0]
            offset = offset - span @ coef  # component orthogonal to the other means' affine hull
        dist = float(np.linalg.norm(offset))
        scale = float(np.abs(means).max()) or 1.0
        if dist <= 1e-10 * scale:
            raise ValueError(
                f"X: the class means must be affinely independent; mean of class {c} lies in the affine hull "
                "of the others"
            )
        normals[c] = -offset / dist
        distances[c] = dist
    deltas = np.linalg.norm(X - means[lab], axis=1)
    h = float(distances.min())
    return ClusterGeometry(means, normals, distances, h, float(deltas.max()), means + (h / 3) * normals)


def _truncation_eta(points: Array, in_class: NDArray[np.bool_], n: Array, p: Array, h: float) -> float:
    """``η`` of one truncation step ``W = 1 nᵀ + η I``, ``b = −W p``.

    Component ``i`` of ``W(x − p)`` is ``n·(x − p) + η (x − p)_i``: it has the sign of
    ``n·(x − p)`` as long as ``η < |n·(x − p)| / |x − p|_∞``. Taking half of the smallest such
    bound over the correctly placed points (class ``ℓ`` behind the hyperplane ``n·(x − p) = 0``,
    every other point in front) keeps every sign and makes ``η`` as large as that allows; ``W`` is
    close to the rank-one ``1 nᵀ``, so a larger ``η`` means a better-conditioned layer. (Half of
    the worst-case bound ``min |n·(x − p)| / max |x − p|_∞``, used before, is also valid, but it
    gave layer condition numbers 10²–10³ times larger on clustered data with Q = 3..6.) The
    eigenvalue ``η + n·1`` of ``W`` is kept at least ``η/2`` in modulus.
    """
    side = (points - p) @ n  # negative for the class truncated, positive for the rest
    signed = np.where(in_class, -side, side)
    sup = np.abs(points - p).max(axis=1)
    ok = (signed > 0) & (sup > 0)
    if ok.any():
        eta = 0.5 * float(np.min(signed[ok] / sup[ok]))
    else:  # best effort with no point on its side: any small η
        eta = 0.5 * (h / 3) / (float(sup.max()) or 1.0)
    s = float(n.sum())
    if abs(eta + s) < 0.5 * eta:  # 1 nᵀ + η I nearly singular: its eigenvalue η + n·1 ≈ 0
        eta = -s / 2  # < η, so the signs are still kept, and |η + n·1| = η
    return eta


CLUSTER_SCALE_EXPONENT = 16
""":func:`clustered_minimizer` builds its network on data scaled by a power of 4 to unit
size when the largest ``|X|`` leaves ``[2^-16, 2^16]``: the construction appends columns of
ones (the apexes' affine rank, the output layer's least squares), which is not scale-free."""


@np.errstate(all="ignore")  # a construction defeated by rounding is refused below, saying why
def clustered_minimizer(
    X: ArrayLike,
    labels: ArrayLike,
    targets: ArrayLike,
    *,
    strict: bool = True,
) -> Network:
    """The truncation construction: a ReLU network of ``Q̄`` hidden layers of width ``M``.

    Parameters
    ----------
    X : array_like, shape (N, M)
        Inputs.
    labels : array_like of int, shape (N,)
        Class of each sample, ``0..Q̄−1``, with ``2 ≤ Q̄ ≤ M + 1``.
    targets : array_like, shape (Q̄, Q)
        One target vector per class.
    strict
        If ``True`` (default), refuse data that violate the sufficient condition ``δ < h/3``.
        If ``False``, build the network anyway (the "best effort"): its cost is then usually
        positive, because some class is not collapsed cleanly.

    Returns
    -------
    Network
        Architecture ``(M, (M,)*Q̄, Q, "relu")``. Under the sufficient condition it maps every
        sample of class ℓ exactly to ``targets[ℓ]``: with ``strict`` this is checked before
        it returns (``|F − Y|² / |Y|² ≤`` :data:`zlnotes.construction.FIT_TOLERANCE` on the
        data, ``Y = targets[labels]``).

    Raises
    ------
    ValueError
        On overlapping classes (``δ ≥ h/3`` with ``strict``), affinely dependent means or
        apexes, or malformed input; on a network above the memory budget
        (:func:`zlnotes.set_memory_budget`); with ``strict``, if rounding defeats the
        construction (the message gives the misfit and the layers' conditioning). The
        geometry is measured scale-free, so data scaled by any power of ten in the float64
        range give the same verdict.
    """
    X = as_matrix("X", X)
    N, M = X.shape
    strict = boolean("strict", strict)
    geo = cluster_geometry(X, labels)
    lab = np.asarray(labels, dtype=np.int64)
    C = geo.means.shape[0]
    T = as_matrix("targets", targets, rows=C)
    if strict and not geo.satisfied:
        raise ValueError(
            f"X: the classes overlap too much for the truncation construction: cluster radius "
            f"δ = {geo.delta:.3g} must be < h/3 = {geo.h / 3:.3g} (h = {geo.h:.3g} is the smallest distance "
            f"of a class mean from the affine hull of the others)"
        )
    require_memory(
        "X",
        f"the truncation network ({C} hidden layers of width M = {M}) and its features on N = {N} samples",
        (3 * C * M * (M + 1) + 4 * N * (M + 1)) * FLOAT_BYTES,
    )
    e = _power_of_four_scale(X, CLUSTER_SCALE_EXPONENT)
    if e:
        # far from unit scale the construction is built on 2^e X (exact) and 2^e is folded into
        # the first layer's weights (exact): the network computes the same numbers on X
        weights, biases = _truncation_layers(np.ldexp(X, e), lab, T, cluster_geometry(np.ldexp(X, e), lab))
        weights[0] = np.ldexp(weights[0], e)
    else:
        weights, biases = _truncation_layers(X, lab, T, geo)
    def why() -> str:
        with np.errstate(all="ignore"):
            kappa = max(float(np.linalg.cond(W)) for W in weights[1:-1]) if C > 1 else 1.0
        return (
            "the truncation layers are too badly conditioned for the data "
            f"(largest condition number of W_l, l >= 2: {kappa:.3g}; h = {geo.h:.3g}, delta = {geo.delta:.3g})"
        )

    net = finite_network(Architecture(M, (M,) * C, T.shape[1], "relu"), weights, biases, why)
    if not strict:
        return net  # best effort: documented to miss the targets where the condition fails
    return verify_fit(net, X, T[lab], why)


def _truncation_layers(
    X: Array, lab: NDArray[np.int64], T: Array, geo: ClusterGeometry
) -> tuple[list[Array], list[Array]]:
    """Weights and biases of :func:`clustered_minimizer` on checked data."""
    N, M = X.shape
    C = geo.means.shape[0]
    apex_matrix = np.vstack([geo.apexes.T, np.ones((1, C))])  # (M + 1) × C
    if np.linalg.matrix_rank(apex_matrix) < C:
        raise ValueError("X: the apexes p_l are affinely dependent; the output layer cannot separate the classes")

    ones = np.ones(M)
    cum_W, cum_b = np.eye(M), np.zeros(M)
    points = X.copy()  # (τ_ℓ ∘ … ∘ τ_1)(x), updated step by step
    weights, biases = [], []
    for c in range(C):
        n, p = geo.normals[c], geo.apexes[c]
        eta = _truncation_eta(points, lab == c, n, p, geo.h)
        W_c = np.outer(ones, n) + eta * np.eye(M)
        b_c = -W_c @ p
        pre = (points - p) @ W_c.T
        points = np.linalg.solve(W_c, np.maximum(pre, 0.0).T).T + p  # τ: W⁻¹ σ(W(x − p)) + p
        W_layer = W_c @ np.linalg.inv(cum_W)
        weights.append(W_layer)
        biases.append(b_c - W_layer @ cum_b)
        cum_W, cum_b = W_c, b_c
    # Output layer. In exact arithmetic every sample of class ℓ reaches the last hidden layer as
    # W^(C) p_ℓ + b^(C), and [G g] = Y · pinv([p_1 … p_C; 1ᵀ]) maps the apexes to the targets.
    # Solving [A_L 1] Θ = Y by least squares on the computed features gives an exact solution
    # of the same system and also absorbs the rounding of the hidden layers.
    A = X
    for W, b in zip(weights, biases):
        A = np.maximum(A @ W.T + b, 0.0)
    features = np.hstack([A, np.ones((N, 1))])
    Y = T[lab]
    theta = np.linalg.lstsq(features, Y, rcond=None)[0]
    theta += np.linalg.lstsq(features, Y - features @ theta, rcond=None)[0]  # iterative refinement
    weights.append(theta[:M].T)
    biases.append(theta[M])
    return weights, biases
