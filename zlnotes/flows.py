"""The adapted gradient flow and the family that joins it to the standard gradient flow.

With ``g = ∇_x C = (x[Z] − y_ω)/N`` (sample-major, length QN) and ``D = ∂x/∂Z`` (QN × K),
the *standard* gradient flow ``∂_s Z = −∇_Z C = −Dᵀ g`` moves the outputs by
``∂_s x = −D Dᵀ g``; the *adapted* flow of chen2024interpolation (their eq. 2.27),
``∂_s Z = −D⁺ g``, moves them by ``∂_s x = −D D⁺ g = −P g`` with ``P`` the orthogonal
projector onto ``range D`` (their eq. 2.28). Because ``D⁺ = (DᵀD)⁺Dᵀ``, the adapted direction
is also the minimum-norm Gauss–Newton step ``−(DᵀD)⁺ ∇_Z C``.

This module computes the family (the book's own formula, see :func:`adapted_direction`)

    V_α = −Dᵀ [(1 − α) I + α (D Dᵀ)⁺] g,        0 ≤ α ≤ 1,

which is ``−∇_Z C`` at ``α = 0`` and ``−D⁺ g`` at ``α = 1`` (``Dᵀ(DDᵀ)⁺ = D⁺``), without
ever forming ``D``: the Gram matrix ``D Dᵀ`` comes from :func:`zlnotes.ntk` (the Gram
identity), its pseudo-inverse from one symmetric eigendecomposition, and ``Dᵀ u`` from one
backward pass of the cotangent ``u`` (a vector–Jacobian product, the backward pass of
:class:`zlnotes.CostFunction` with ``u`` in place of the residual). :func:`gradient_flow`
integrates ``∂_s Z = V_α(Z)`` by the classical fourth-order Runge–Kutta method with a
step-halving error estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_matrix, boolean, positive_int, real_scalar
from .activations import derivative_into
from .architecture import Network, require_finite_result, require_network
from .jacobian import _ntk_numbers, ntk
from .linalg import _check_rtol, gram_rtol
from .memory import FLOAT_BYTES, require_memory
from .typing import Array

__all__ = ["adapted_direction", "gradient_flow", "FlowPath"]


def _vjp(net: Network, pre: list[Array], post: list[Array], U: Array) -> Array:
    """``Dᵀ u`` for the cotangent ``u = U.ravel()`` (U of shape (N, Q)), by one backward pass.

    ``δ_{L+1} = U``; for ℓ = L+1, …, 1: ``∂/∂W_ℓ = δ_ℓᵀ A_{ℓ−1}``, ``∂/∂b_ℓ = Σ_j δ_ℓ[j]`` and
    ``δ_{ℓ−1} = (δ_ℓ W_ℓ) ⊙ σ'(Z_{ℓ−1})``: the backward pass of :class:`zlnotes.CostFunction`
    with ``U`` in place of ``(F − Y)/N``.
    """
    arch = net.arch
    out = np.empty(arch.num_params)
    offsets = arch.param_offsets()
    delta = U
    for ell in range(arch.depth + 1, 0, -1):  # layer ℓ has W_ℓ = net.weights[ℓ − 1]
        ws, bs = offsets[ell - 1]
        out[bs] = delta.sum(axis=0)
        out[ws] = (delta.T @ post[ell - 1]).ravel()
        if ell > 1:
            d = derivative_into(arch.sigma, pre[ell - 2], post[ell - 1], np.empty_like(pre[ell - 2]))
            delta = (delta @ net.weights[ell - 1]) * d
    return out


@dataclass(frozen=True)
class _Field:
    direction: Array
    outputs: Array
    cost: float
    rank: int
    perp_norm: float
    rounding: float  # ``|R|·|F_abs|/N + C``: the scale of the rounding error of ``cost``
    lam_kept: tuple[float, float]  # smallest and largest kept eigenvalue of D Dᵀ (0, 0 if none)


def _field(net: Network, X: Array, Y: Array, alpha: float, rtol: float) -> _Field:
    """``V_α`` and what the flow records at the same point (one NTK, one backward pass)."""
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below
        pre, post = net.pre_and_post_activations(X)
        F = net.output_layer(post[-1])
        R = F - Y
        cost = float(np.vdot(R, R) / (2 * X.shape[0]))
    require_finite_result("the outputs", F, X, net)
    if not np.isfinite(cost):  # finite outputs: F − Y or its square overflows
        top_f, top_y = float(np.abs(F).max()), float(np.abs(Y).max())
        raise ValueError(
            f"{'Y' if top_y > top_f else 'X'}: the residuals F - Y or the cost |F - Y|^2/(2N) overflow float64 "
            f"(max |F| = {top_f:.3g}, max |Y| = {top_y:.3g}); rescale the data or the network"
        )
    N = X.shape[0]
    g = R.ravel() / N
    # each output is a sum of |W_out| |A_L| + |b_out| terms: its rounding error is a multiple of ε
    # times that sum (also where large terms cancel), and C's error ⟨R, δF⟩/N + rounding of the sum
    # of squares is below a multiple of ε times ``rounding``
    F_abs = np.abs(post[-1]) @ np.abs(net.weights[-1]).T + np.abs(net.biases[-1])
    rounding = float(np.linalg.norm(R) * np.linalg.norm(F_abs) / N) + cost
    lam, E = np.linalg.eigh(ntk(net, X))
    top = float(lam[-1])
    keep = lam > (rtol * rtol) * top if top > 0 else np.zeros(lam.shape, dtype=bool)
    Er = E[:, keep]
    c = Er.T @ g
    Pg = Er @ c  # P g, the projection of g onto range D (span of the kept eigenvectors)
    u = (1.0 - alpha) * g + alpha * (Er @ (c / lam[keep]))
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below
        V = -_vjp(net, pre, post, u.reshape(R.shape))
    require_finite_result("the direction V_alpha (the Jacobian is too ill-conditioned)", V, X, net)
    lam_kept = (float(lam[keep][0]), float(lam[keep][-1])) if keep.any() else (0.0, 0.0)
    return _Field(V, F.ravel(), cost, int(keep.sum()), float(np.linalg.norm(g - Pg)), rounding, lam_kept)


def _checked(
    net: object, X: ArrayLike, Y: ArrayLike, alpha: object, rtol: float | None
) -> tuple[Array, Array, float, float]:
    network = require_network(net)
    X = network.check_inputs(X)
    Y = as_matrix("Y", Y, rows=X.shape[0], cols=network.arch.output_dim, cols_label="output_dim")
    a = real_scalar("alpha", alpha, lo=0.0, hi=1.0)
    QN = X.shape[0] * Y.shape[1]
    floor = gram_rtol(QN)
    tol = _check_rtol(rtol, floor, floor=floor)
    # the NTK with its factors, then the NTK with numpy's eigh (a copy, the eigenvectors and
    # LAPACK's workspace of about 2 (QN)² numbers)
    require_memory(
        "X",
        f"the NTK (N·Q × N·Q = {QN} × {QN}), its factors and its eigendecomposition",
        max(_ntk_numbers(network, X.shape[0]), 5 * QN * QN) * FLOAT_BYTES,
    )
    return X, Y, a, tol


def adapted_direction(
    net: Network, X: ArrayLike, Y: ArrayLike, alpha: float = 1.0, *, rtol: float | None = None
) -> Array:
    """The direction ``V_α = −Dᵀ [(1 − α) I + α (D Dᵀ)⁺] ∇_x C``, without forming ``D``.

    ``α = 0`` is the standard gradient flow's direction ``−∇_Z C``; ``α = 1`` the adapted
    flow's ``−D⁺ ∇_x C`` of chen2024interpolation (eq. 2.27), the minimum-norm Gauss–Newton
    direction ``−(DᵀD)⁺ ∇_Z C``. For ``0 ≤ α ≤ 1`` the bracket has eigenvalues
    ``(1 − α) + α/λ_i > 0`` on ``range D`` (``λ_i`` the positive eigenvalues of ``D Dᵀ``), so
    ``min_i((1−α) + α/λ_i) |∇_Z C| ≤ |V_α| ≤ max_i((1−α) + α/λ_i) |∇_Z C|``: every member of
    the family vanishes exactly where ``∇_Z C`` does (the book's own statement of the
    family; the paper's Theorem 2.3 asserts such a family).

    How it is computed: ``g = (x − y_ω)/N``; ``D Dᵀ`` by :func:`zlnotes.ntk`;
    ``D Dᵀ = E Λ Eᵀ`` by :func:`numpy.linalg.eigh`; ``u = (1 − α) g + α E_r Λ_r⁻¹ E_rᵀ g``
    over the eigenvalues kept; then ``V_α = −Dᵀ u`` by one backward pass of ``u``. Time
    ``O((QN)² ΣM_ℓ + (QN)³ + N·K)``, memory ``O((QN)² + N·ΣM_ℓ)``; ``D`` (QN × K) is never
    formed.

    Tolerance of the pseudo-inverse: the eigenvalues kept are ``λ_i > rtol² · λ_max``, i.e.
    the singular values ``s_i = √λ_i > rtol · s_1`` of ``D``, the rule of
    :func:`zlnotes.jacobian_rank` and :func:`zlnotes.gram_rank`; the default and smallest
    ``rtol`` is :func:`zlnotes.gram_rtol` ``(QN) = √(QN·ε)``, the finest relative tolerance the
    Gram route resolves (see :mod:`zlnotes.linalg`). So ``(D Dᵀ)⁺`` here is the
    pseudo-inverse of ``D Dᵀ`` truncated at the numerical rank of ``D``, and the kept part
    ``P g`` is the projection onto the span of the kept singular vectors. Directions with
    ``s_i`` just above the tolerance are amplified by ``1/s_i`` at ``α = 1``: the adapted flow
    is as ill-conditioned as ``D``. Rounding: relative error about ``(s_1/s_r)² · ε`` at
    ``α > 0`` (the Gram matrix squares the condition number).

    Parameters
    ----------
    net
        The network.
    X : array_like, shape (N, M)
        Inputs, one sample per row.
    Y : array_like, shape (N, Q)
        Targets.
    alpha : float
        The member of the family, ``0 ≤ α ≤ 1``.
    rtol : float, optional
        Relative tolerance on the singular values of ``D``, at least ``gram_rtol(QN)``.

    Returns
    -------
    numpy.ndarray, shape (K,)
        ``V_α`` in the order of :meth:`zlnotes.Network.flat`.

    Raises
    ------
    TypeError
        If ``net`` is not a :class:`zlnotes.Network`, ``X``/``Y`` are not real arrays, or
        ``alpha``/``rtol`` are not real numbers.
    ValueError
        For wrong shapes, non-finite entries, ``alpha`` outside ``[0, 1]`` or ``rtol`` below
        ``gram_rtol(QN)`` or not below 1; if the NTK and its eigendecomposition (about
        ``5 (QN)²`` numbers) exceed the memory budget (:func:`zlnotes.memory_budget`); if the
        outputs (naming ``X``), the residuals or the cost (naming ``Y`` when ``|Y|`` is the
        larger) or the direction overflow float64.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> arch = zl.Architecture(2, (8,), 1, "tanh")
    >>> net = zl.Network.init(arch, 0)
    >>> X = np.random.default_rng(1).standard_normal((3, 2))
    >>> Y = np.random.default_rng(2).standard_normal((3, 1))
    >>> V0 = zl.adapted_direction(net, X, Y, alpha=0.0)
    >>> bool(np.allclose(V0, -zl.cost_gradient(net, X, Y), rtol=1e-12, atol=0))
    True
    >>> D = zl.jacobian(net, X)  # formed here only to check
    >>> V1 = zl.adapted_direction(net, X, Y)
    >>> g = zl.output_gradient(net, X, Y)
    >>> bool(np.allclose(V1, -np.linalg.pinv(D) @ g, rtol=1e-8, atol=0))
    True
    """
    X, Y, a, tol = _checked(net, X, Y, alpha, rtol)
    return _field(net, X, Y, a, tol).direction


@dataclass(frozen=True)
class FlowPath:
    """The orbit :func:`gradient_flow` computed, at the recorded times.

    Attributes
    ----------
    s : numpy.ndarray, shape (T,)
        Flow times ``0 = s_0 < s_1 < … < s_end`` (every ``record``-th Runge–Kutta step).
    params : numpy.ndarray, shape (T, K)
        The flat parameters ``Z(s)``.
    outputs : numpy.ndarray, shape (T, QN)
        The stacked outputs ``x(s) = x[Z(s)]``, sample-major.
    cost : numpy.ndarray, shape (T,)
        ``C(s)``.
    rank : numpy.ndarray of int, shape (T,)
        The numerical rank of ``D`` at each recorded point (tolerance as in
        :func:`adapted_direction`).
    perp_norm : numpy.ndarray, shape (T,)
        ``|P^⊥ ∇_x C|``, the part of the output gradient outside the (numerical) range of
        ``D``.
    alpha : float
        The member of the family that was integrated.
    steps : int
        Runge–Kutta steps taken, of size ``s_end/steps``.
    error_estimate : float
        ``(16/15) · max_s |x_h(s) − x_{h/2}(s)|``, the step-halving (Richardson) estimate of
        the largest error of ``outputs``, or NaN if the check was not asked for. For a
        smooth field the error of classical RK4 is ``O(h⁴)``, so halving the step divides it
        by 16 and ``x_h − x_{h/2} ≈ (15/16)(x_h − x)``.
    """

    s: Array
    params: Array
    outputs: Array
    cost: Array
    rank: np.ndarray
    perp_norm: Array
    alpha: float
    steps: int
    error_estimate: float


def _unstable(s: float, h: float) -> ValueError:
    return ValueError(
        f"steps: the orbit left the float64 range at s = {s:.3g}: the step h = s_end/steps = {h:.3g} is "
        "too large for this field (classical RK4 is stable only for h·|μ| below about 2.8, μ the "
        "eigenvalues of the field's derivative); use more steps"
    )


COST_RISE_ALLOWANCE = 1024 * float(np.finfo(float).eps)
"""Relative allowance for a rise of the computed cost between two Runge–Kutta steps.

Every member of the family lowers ``C`` strictly away from its equilibria, so a computed orbit
whose cost rises by more than ``COST_RISE_ALLOWANCE · (C + |F − Y|·|F_abs|/N)`` (``F_abs`` the
outputs computed with absolute values, ``|A_L| |W_out|ᵀ + |b_out|``), the scale of the rounding
error of ``C`` with a wide margin, is a failed integration and :func:`gradient_flow` refuses it."""


def _cost_rose(prev: _Field, cur: _Field, s: float, h: float, start: _Field) -> ValueError | None:
    allowance = COST_RISE_ALLOWANCE * max(prev.rounding, cur.rounding)
    if cur.cost <= prev.cost + allowance:
        return None
    lo, hi = start.lam_kept
    return ValueError(
        f"steps: the cost rose by {cur.cost - prev.cost:.2g}, from {prev.cost:.4g} to {cur.cost:.4g} at "
        f"s = {s:.4g}, but the flow lowers "
        f"it: the flow is too stiff for the step h = s_end/steps = {h:.3g} (at the start the kept "
        f"eigenvalues of D D^T range from lambda_min = {lo:.2g} to lambda_max = {hi:.2g}); use more steps"
    )


def _rk4(
    net: Network, X: Array, Y: Array, alpha: float, tol: float, s_end: float, steps: int, record: int
) -> FlowPath:
    arch = net.arch
    h = s_end / steps
    Z = net.flat()

    def field(z: Array) -> _Field:
        return _field(Network.from_flat(arch, z), X, Y, alpha, tol)

    s_rec: list[float] = []
    Z_rec: list[Array] = []
    fields: list[_Field] = []
    start = f1 = field(Z)  # at the start an error is the input's, raised as it is
    for k in range(steps + 1):
        if k > 0:
            prev = f1
            try:
                f1 = field(Z)
            except ValueError as exc:
                raise _unstable(k * h, h) from exc
            rose = _cost_rose(prev, f1, k * h, h, start)
            if rose is not None:
                raise rose
        if k % record == 0 or k == steps:
            s_rec.append(k * h)
            Z_rec.append(Z.copy())
            fields.append(f1)
        if k == steps:
            break
        try:
            k1 = f1.direction
            k2 = field(Z + (h / 2) * k1).direction
            k3 = field(Z + (h / 2) * k2).direction
            k4 = field(Z + h * k3).direction
        except ValueError as exc:  # an overflow in a stage: the step is beyond RK4's stability
            raise _unstable(k * h, h) from exc
        Z = Z + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return FlowPath(
        s=np.array(s_rec),
        params=np.array(Z_rec),
        outputs=np.array([f.outputs for f in fields]),
        cost=np.array([f.cost for f in fields]),
        rank=np.array([f.rank for f in fields]),
        perp_norm=np.array([f.perp_norm for f in fields]),
        alpha=alpha,
        steps=steps,
        error_estimate=float("nan"),
    )


def gradient_flow(
    net: Network,
    X: ArrayLike,
    Y: ArrayLike,
    s_end: float,
    steps: int,
    *,
    alpha: float = 1.0,
    record: int = 1,
    rtol: float | None = None,
    halving_check: bool = True,
) -> FlowPath:
    """Integrate ``∂_s Z = V_α(Z)`` from ``net`` to flow time ``s_end``, by classical RK4.

    The field is :func:`adapted_direction`: ``α = 0`` is the standard gradient flow
    ``∂_s Z = −∇_Z C``, ``α = 1`` the adapted flow ``∂_s Z = −D⁺ ∇_x C``. The integrator is the
    classical fourth-order Runge–Kutta method with ``steps`` equal steps ``h = s_end/steps``:
    its global error is ``O(h⁴)`` where the field is smooth (a smooth activation, and a rank of
    ``D`` that does not change along the orbit). With ``halving_check`` the orbit is
    integrated again with ``2·steps`` steps and the difference at the recorded times gives
    :attr:`FlowPath.error_estimate`; the orbit returned is the one with ``steps`` steps. At a
    ReLU kink or where the rank of ``D`` changes the field jumps, the order drops, and the
    estimate is only indicative.

    Parameters
    ----------
    net, X, Y, alpha, rtol
        As in :func:`adapted_direction`.
    s_end : float
        Flow time to reach, ``> 0``.
    steps : int
        Number of Runge–Kutta steps (each costs four evaluations of ``V_α``).
    record : int
        Record every ``record``-th step (and the last).
    halving_check : bool
        Also run with ``2·steps`` steps and report the step-halving error estimate.

    Returns
    -------
    FlowPath
        Parameter and output trajectories, cost, rank of ``D`` and ``|P^⊥ ∇_x C|``.

    Raises
    ------
    TypeError, ValueError
        As :func:`adapted_direction`, for ``s_end``, ``steps``, ``record`` or
        ``halving_check`` of the wrong type or out of range, for a record of
        ``steps // record + 2`` points (twice with ``halving_check``) above the memory budget
        (naming ``steps``, before the first step), for an orbit that leaves float64, or for one
        whose computed cost rises between two steps by more than the rounding allowance
        :data:`COST_RISE_ALLOWANCE` (naming ``steps``, with the rise, where it happened and the
        kept eigenvalues of ``D Dᵀ`` at the start): every member of the family lowers ``C``, so
        such an orbit is a failed integration, too stiff for the step.

    Examples
    --------
    With a full-rank ``D`` the adapted flow moves the outputs on the straight line
    ``x(s) = y + e^{−s/N}(x_0 − y)`` (chen2024interpolation):

    >>> import numpy as np, zlnotes as zl
    >>> arch = zl.Architecture(1, (6,), 1, "tanh")
    >>> net = zl.Network.init(arch, 3)
    >>> X, Y = np.array([[-1.0], [1.0]]), np.array([[0.5], [-0.5]])
    >>> path = zl.gradient_flow(net, X, Y, s_end=4.0, steps=40)
    >>> x0, y = path.outputs[0], Y.ravel()
    >>> line = y + np.exp(-path.s / 2)[:, None] * (x0 - y)
    >>> bool(np.abs(path.outputs - line).max() < 1e-6 and path.error_estimate < 1e-6)
    True
    """
    X, Y, a, tol = _checked(net, X, Y, alpha, rtol)
    s_end = real_scalar("s_end", s_end, lo=0.0, lo_open=True)
    steps = positive_int("steps", steps)
    record = positive_int("record", record)
    halving_check = boolean("halving_check", halving_check)
    K, QN = net.arch.num_params, X.shape[0] * Y.shape[1]
    points = steps // record + 2  # every record-th step, the last, and one to spare
    # per recorded point: Z and the field's direction and outputs while running, then the
    # stacked params/outputs, and about 1 KiB of Python objects (arrays, the field record);
    # the halving check holds both runs' records at the end
    numbers = (2 if halving_check else 1) * points * (3 * K + 2 * QN + 132)
    require_memory(
        "steps",
        f"the recorded orbit ({points} points of K + N·Q = {K} + {QN} numbers, steps // record + 2 "
        f"with steps = {steps}, record = {record}{', twice for the halving check' if halving_check else ''})",
        numbers * FLOAT_BYTES,
    )
    path = _rk4(net, X, Y, a, tol, s_end, steps, record)
    if not halving_check:
        return path
    fine = _rk4(net, X, Y, a, tol, s_end, 2 * steps, 2 * record)
    # the fine run records at the same times: every 2·record of its steps (and the last)
    if fine.s.shape != path.s.shape:  # pragma: no cover - the recorded times always match
        raise RuntimeError("the step-halving run recorded other times")
    err = (16.0 / 15.0) * float(np.abs(path.outputs - fine.outputs).max())
    return FlowPath(**{**path.__dict__, "error_estimate": err})
