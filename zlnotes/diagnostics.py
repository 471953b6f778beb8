"""Diagnostics the chapters share: Theorem 1.5's quantities at a network, the step-size rule,
the constant-output cost, the affine rank, the distance to ReLU's kink, and printing at the
precision a quantity supports.

Conventions (the book's Notation page): ``D`` is the training Jacobian (``QN × K``),
``x`` the stacked outputs, ``C = |x − y|² / 2N``, ``∇_x C = (x − y)/N``, ``∇_Z C = Dᵀ∇_x C``.

Rank tolerance
--------------
:func:`stationarity_report` takes the full SVD ``D = U S Vᵀ`` and counts the rank with the
rule of :func:`numpy.linalg.matrix_rank` and :func:`zlnotes.numerical_rank`,
``s_i > max(QN, K) · ε · s_1``: a backward-stable SVD is exact for ``D + E`` with
``‖E‖ ≲ max(QN, K) ε ‖D‖``, so a smaller singular value cannot be told from zero. The
projectors are ``P = U_r U_rᵀ`` and ``P^⊥ = U_⊥ U_⊥ᵀ`` from the first ``r`` and the other
``QN − r`` columns of ``U``; neither involves the gradient. Whether that range is *settled*
in double precision is a separate question, answered by the resolution ``s_r / s_1``: a
matrix with ``s_r < √ε · s_1 ≈ 10⁻⁸ s_1`` lies within relative distance ``√ε`` of one of lower
rank (see :func:`classify_stationary`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_matrix, instance, positive_int, real_scalar
from .architecture import Network
from .cost import cost, cost_gradient, output_gradient
from .jacobian import jacobian, ntk
from .linalg import EPS, RangeProjector, numerical_rank
from .typing import Array

__all__ = [
    "StationarityReport",
    "affine_rank",
    "classify_stationary",
    "constant_output_cost",
    "decade",
    "kink_margin",
    "least_unit_slope",
    "relative_misfit",
    "significant",
    "stationarity_report",
    "step_size",
]



def _positive_real(name: str, value: object) -> float:
    return real_scalar(name, value, lo=0.0, lo_open=True)


def _network(net: object) -> Network:
    return instance("net", net, Network, "a zlnotes.Network")


_NO_TARGETS = object()


def _data(net: Network, X: ArrayLike, Y: object = _NO_TARGETS) -> tuple[Array, Array | None]:
    """``X`` checked, and ``Y`` checked when given (``None`` is a wrong ``Y``, a TypeError)."""
    Xm = as_matrix("X", X, cols=net.arch.input_dim, cols_label="input_dim")
    if Y is _NO_TARGETS:
        return Xm, None
    return Xm, as_matrix("Y", Y, rows=Xm.shape[0], cols=net.arch.output_dim, cols_label="output_dim")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Theorem 1.5


@dataclass(frozen=True)
class StationarityReport:
    """The quantities of Theorem 1.5 (chen2023nonapprox) at one network; see
    :func:`stationarity_report`. Names follow the book's notation."""

    C: float
    """The cost ``|x − y|² / 2N``, from a forward pass."""
    N: int
    """Number of samples."""
    QN: int
    """Rows of ``D`` (outputs times samples)."""
    K: int
    """Columns of ``D`` (parameters)."""
    D: Array
    """The training Jacobian."""
    s: Array
    """Singular values of ``D``, decreasing."""
    rank: int
    """``#{s_i > max(QN, K) ε s_1}`` (the module's rank tolerance)."""
    proj: RangeProjector
    """``P = U_r U_rᵀ`` and ``P^⊥ = U_⊥ U_⊥ᵀ`` from the full SVD."""
    x: Array
    """The stacked outputs, length ``QN`` (sample-major)."""
    y: Array
    """The stacked targets."""
    grad_Z: float
    """``|∇_Z C|``, by backpropagation."""
    grad_x: float
    """``|∇_x C|``."""
    P_rel: float
    """``|P ∇_x C| / |∇_x C|`` (0 where ``∇_x C = 0``)."""
    identity: float
    """Relative error of the identity, ``|C − (N/2)|P^⊥∇_x C|²| / C`` (0 where ``C = 0``)."""
    pythagoras: float
    """``(N/2)|P ∇_x C|² / C``, which the identity error equals by Pythagoras."""
    resolution: float
    """``s_r / s_1`` with ``r`` the rank (0 if ``D = 0``)."""
    kappa: float
    """``(s_1 / s_r)²``: the condition number of ``DDᵀ`` on ``range D`` (inf if ``D = 0``)."""
    kink_margin: float
    """:func:`kink_margin` of the network on the data."""
    least_slope: float
    """:func:`least_unit_slope` of the network on the data."""


def stationarity_report(net: Network, X: ArrayLike, Y: ArrayLike) -> StationarityReport:
    """Everything Theorem 1.5 (chen2023nonapprox) is about, at one network.

    The theorem: at a stationary point of gradient flow with ``K < QN``,
    ``P ∇_x C = 0`` and ``C = (N/2)|P^⊥ ∇_x C|²``. The report computes both sides with ``P``
    from a full SVD of ``D`` (the module's rank tolerance), independently of the gradient, so
    that a stationarity criterion on ``|∇_Z C|`` can be *tested* against them.

    Parameters
    ----------
    net : Network
    X : array_like, shape (N, M)
    Y : array_like, shape (N, Q)

    Returns
    -------
    StationarityReport

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> arch = zl.Architecture(2, (2,), 1, "tanh")            # K = 9 < QN = 12
    >>> data = zl.generic_data(12, 2, 1, rng=0)
    >>> r = zl.stationarity_report(zl.Network.init(arch, rng=1), data.X, data.Y)
    >>> r.K, r.QN, r.rank
    (9, 12, 9)
    >>> bool(abs(r.identity - r.pythagoras) < 1e-12)          # Pythagoras
    True
    >>> bool(np.isclose(r.grad_Z, np.linalg.norm(r.D.T @ (r.x - r.y)) / r.N))
    True
    """
    net = _network(net)
    X_, Y_ = _data(net, X, Y)
    assert Y_ is not None
    X, Y = X_, Y_
    D = jacobian(net, X)
    U, s, _ = np.linalg.svd(D)  # full U: its last QN - rank columns span the null space of Dᵀ
    rank = 0 if s[0] == 0.0 else int(np.count_nonzero(s > max(D.shape) * EPS * s[0]))
    U_r, U_perp = U[:, :rank], U[:, rank:]
    proj = RangeProjector(U_r @ U_r.T, U_perp @ U_perp.T, rank)
    gx = output_gradient(net, X, Y)
    gZ = cost_gradient(net, X, Y)
    C, N = cost(net, X, Y), X.shape[0]
    Pg, Pperp_g = U_r.T @ gx, U_perp.T @ gx
    grad_x = float(np.linalg.norm(gx))
    P_rel = float(np.linalg.norm(Pg) / grad_x) if grad_x > 0 else 0.0
    identity = abs(C - N / 2 * float(Pperp_g @ Pperp_g)) / C if C > 0 else 0.0
    pythagoras = N / 2 * float(Pg @ Pg) / C if C > 0 else 0.0
    resolution = float(s[rank - 1] / s[0]) if rank > 0 else 0.0
    return StationarityReport(
        C=C, N=N, QN=D.shape[0], K=D.shape[1], D=D, s=s, rank=rank, proj=proj,
        x=net.forward(X).ravel(), y=np.ravel(Y), grad_Z=float(np.linalg.norm(gZ)), grad_x=grad_x,
        P_rel=P_rel, identity=identity, pythagoras=pythagoras, resolution=resolution,
        kappa=resolution**-2 if rank > 0 else math.inf,
        kink_margin=kink_margin(net, X), least_slope=least_unit_slope(net, X),
    )


def classify_stationary(
    result: object,
    report: StationarityReport,
    *,
    kink_tol: float = 1e-8,
    saturation_tol: float = 1e-6,
    resolution_tol: float = 1e-8,
) -> str:
    """Where a run of :func:`zlnotes.stationary_point` ended, judged without ``P``.

    The rule, in order:

    1. ``"at infinity"``: the run escaped (``result.status == "escaped"``), or the activation
       is not positively homogeneous (tanh, softplus, …) and some hidden unit is *saturated*:
       ``σ' < saturation_tol`` on every sample (``report.least_slope``), a unit that has become
       a step, which only parameters going to infinity produce. (For ReLU ``σ' = 0`` on every
       sample is a dead unit at finite parameters, not a limit.)
    2. ``"kink"``: an activation with a kink at 0 (:attr:`zlnotes.Activation.kinked`: relu,
       leaky_relu) with
       ``report.kink_margin <= kink_tol``: a data point on a kink, where ``C`` is not
       differentiable.
    3. ``"certified"``: the run converged and ``range D`` is resolved,
       ``report.resolution >= resolution_tol`` (about ``√ε`` by default).
    4. ``"uncertified"`` if it converged otherwise, else ``"stalled"``.

    Parameters
    ----------
    result : StationaryPoint
        What :func:`zlnotes.stationary_point` returned.
    report : StationarityReport
        :func:`stationarity_report` at ``result.net``.
    kink_tol, saturation_tol, resolution_tol : float
        Positive thresholds.
    """
    instance("report", report, StationarityReport)
    for name, value in (("kink_tol", kink_tol), ("saturation_tol", saturation_tol), ("resolution_tol", resolution_tol)):
        _positive_real(name, value)
    try:
        status, converged, sigma = result.status, result.converged, result.net.arch.sigma  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError(f"result must be a zlnotes.StationaryPoint; got {type(result).__name__}") from None
    saturated = not sigma.positively_homogeneous and report.least_slope < saturation_tol
    if status == "escaped" or saturated:
        return "at infinity"
    if sigma.kinked and report.kink_margin <= kink_tol:
        return "kink"
    if converged and report.resolution >= resolution_tol:
        return "certified"
    return "uncertified" if converged else "stalled"


# --------------------------------------------------------------------------- units


def kink_margin(net: Network, X: ArrayLike) -> float:
    """Distance of the data from ReLU's kink, relative to each layer's scale.

    ``min_ℓ  min_{j,i} |Z_ℓ[j, i]| / max_{j,i} |Z_ℓ[j, i]|`` over the hidden layers'
    pre-activations ``Z_ℓ`` on the samples (0 for a layer whose pre-activations all vanish).
    Relative per layer, so a layer's scale (which the ReLU rescaling symmetry moves) does not
    change it. Defined for any activation; it concerns a kink at 0.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> net = zl.Network(zl.Architecture(1, (2,), 1, "relu"),
    ...                  [np.array([[1.0], [2.0]]), np.ones((1, 2))], [np.array([0.5, 0.0]), np.zeros(1)])
    >>> zl.kink_margin(net, [[1.0], [-2.0]])      # layer: |Z| = 1.5, 2, 1.5, 4: 1.5 / 4
    0.375
    """
    net = _network(net)
    X, _ = _data(net, X)
    pre = net.pre_and_post_activations(X)[0]
    margins = []
    for z in pre:
        top = float(np.abs(z).max())
        margins.append(float(np.abs(z).min() / top) if top > 0 else 0.0)
    return min(margins)


def least_unit_slope(net: Network, X: ArrayLike) -> float:
    """``min_{ℓ, i} max_j σ'(Z_ℓ[j, i])``: the slope of the flattest hidden unit at its steepest sample.

    Small means some unit has ``σ'`` small on every sample: for tanh or softplus a saturated
    unit (a step, or a constant), for ReLU a dead one.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> net = zl.Network(zl.Architecture(1, (2,), 1, "tanh"),
    ...                  [np.array([[0.0], [1.0]]), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    >>> zl.least_unit_slope(net, [[0.0], [3.0]])  # both units have σ' = 1 at x = 0
    1.0
    """
    net = _network(net)
    X, _ = _data(net, X)
    pre = net.pre_and_post_activations(X)[0]
    return min(float(net.arch.sigma.derivative(z).max(axis=0).min()) for z in pre)


# --------------------------------------------------------------------------- costs and steps


def constant_output_cost(Y: ArrayLike) -> float:
    """``C_const = |Y − 1 ȳᵀ|² / 2N``: the cost of the best constant output, the targets' mean.

    Examples
    --------
    >>> import zlnotes as zl
    >>> zl.constant_output_cost([[0.0, 1.0], [1.0, 0.0]])    # mean (1/2, 1/2); 4 · 1/4 / 4
    0.25
    """
    Y = as_matrix("Y", Y)
    with np.errstate(over="ignore", invalid="ignore"):
        c = float(np.sum((Y - Y.mean(axis=0)) ** 2) / (2 * Y.shape[0]))
    if not math.isfinite(c):
        raise ValueError(
            f"Y: the cost of the constant output overflows float64 (max |Y| = {float(np.abs(Y).max()):.3g}); rescale Y"
        )
    return c


def relative_misfit(F: ArrayLike, Y: ArrayLike) -> float:
    """``|F − Y|² / |Y|²``: the misfit of outputs ``F`` relative to the targets ``Y``.

    Takes the outputs, not a network, so that a chapter can compute ``F`` by a forward pass
    of its own. ``Y`` must not be zero.

    Examples
    --------
    >>> import zlnotes as zl
    >>> zl.relative_misfit([[1.0, 2.0]], [[1.0, 1.0]])
    0.5
    """
    F = as_matrix("F", F)
    Y = as_matrix("Y", Y, rows=F.shape[0], cols=F.shape[1])
    with np.errstate(over="ignore"):
        R = F - Y
    top_y, top_r = float(np.abs(Y).max()), float(np.abs(R).max())
    if 2.0**-240 <= top_y <= 2.0**240 and top_r <= 2.0**240:  # the squares neither overflow nor underflow
        return float(np.sum(R**2) / float(np.sum(Y**2)))
    # far from unit scale: the ratio of the norms, each computed at a power-of-two scale
    if top_y == 0.0:
        raise ValueError("Y must not be zero (the misfit is relative to |Y|^2)")
    if not math.isfinite(top_r):
        raise ValueError(f"F: F - Y overflows float64 (max |F| = {float(np.abs(F).max()):.3g}, max |Y| = {top_y:.3g})")
    with np.errstate(over="ignore"):
        ratio = _norm(R) / _norm(Y)
        misfit = ratio * ratio
    if not math.isfinite(misfit):
        raise ValueError(f"F: the misfit |F - Y|^2/|Y|^2 exceeds float64 (|F - Y|/|Y| = {ratio:.3g})")
    return float(misfit)


def _norm(A: Array) -> float:
    """``|A|`` (Frobenius) without overflow or underflow of the squares: at a power-of-two scale."""
    top = float(np.abs(A).max())
    if top == 0.0:
        return 0.0
    e = -int(np.frexp(top)[1])
    return math.ldexp(float(np.sqrt(np.sum(np.ldexp(A, e) ** 2))), -e)


def step_size(net: Network, X: ArrayLike, factor: float = 1.0) -> float:
    """The step-size rule ``lr = factor · N / λ_max(DDᵀ)`` at ``net``.

    Near a zero-loss point the Hessian of ``C = |x − y|²/2N`` is about ``DᵀD / N``, so
    gradient descent with step ``lr`` is stable on the linearised problem when
    ``lr < 2N / λ_max(DDᵀ)``: ``factor = 1`` is half that limit, ``factor < 2`` is required.
    (neural-tangents' ``max_learning_rate`` gives the same limit for its normalisation of the
    kernel.) ``λ_max(DDᵀ) = λ_max(DᵀD)`` is taken from the smaller of the two: the NTK
    :func:`zlnotes.ntk` when ``QN <= K``, ``DᵀD`` from :func:`zlnotes.jacobian` otherwise
    (symmetric eigensolver, :func:`numpy.linalg.eigvalsh`).

    Parameters
    ----------
    net : Network
    X : array_like, shape (N, M)
    factor : float
        ``c`` in the rule, > 0.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> net = zl.Network(zl.Architecture(1, (1,), 1, "identity"),
    ...                  [np.ones((1, 1)), np.ones((1, 1))], [np.zeros(1), np.zeros(1)])
    >>> X = np.array([[1.0], [-1.0]])   # D = [[x, 1, x, 1]] per sample: DDᵀ = [[4, 0], [0, 4]]
    >>> zl.step_size(net, X, factor=0.5)
    0.25
    """
    net = _network(net)
    factor = _positive_real("factor", factor)
    X, _ = _data(net, X)
    N = X.shape[0]
    if net.arch.output_dim * N <= net.arch.num_params:
        lam_max = np.linalg.eigvalsh(ntk(net, X))[-1]
    else:
        D = jacobian(net, X)
        lam_max = np.linalg.eigvalsh(D.T @ D)[-1]
    if not lam_max > 0:
        raise ValueError("net has D = 0 on X: the step-size rule needs lambda_max(D D^T) > 0")
    return float(factor * N / lam_max)


# --------------------------------------------------------------------------- ranks


def affine_rank(A: ArrayLike, rtol: float | None = None) -> int:
    """``rank [A 1]``, computed scale-free as ``1 + rank(A − mean)``.

    The rows of ``A`` are points; ``rank [A 1] = N`` means they are affinely independent.
    Appending a column of ones to points of scale 1e-14 or 1e15 would make the SVD tolerance
    depend on that scale; centring does not. ``rtol`` is that of
    :func:`zlnotes.numerical_rank` (default ``max(m, n) · ε``) applied to the centred points.

    Examples
    --------
    >>> import zlnotes as zl
    >>> zl.affine_rank([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), zl.affine_rank([[0.0], [1.0], [2.0]])
    (3, 2)
    >>> zl.affine_rank([[5.0, 5.0], [5.0, 5.0]])
    1
    """
    A = as_matrix("A", A)
    centred = A - A.mean(axis=0)
    if not np.any(centred):
        return 1
    return 1 + numerical_rank(centred, rtol)


# --------------------------------------------------------------------------- printing


def significant(x: float, digits: int = 1) -> float:
    """``x`` rounded to ``digits`` significant digits (decimal, through its ``e`` format).

    For printing quantities at the precision they support.

    Parameters
    ----------
    x : float
        A finite real number (not a bool).
    digits : int
        Significant digits, ``>= 1``.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``x`` is not a real number or ``digits`` not an integer.
    ValueError
        If ``x`` is NaN or infinite, ``digits`` not in ``[1, 17]``, or the rounded value
        leaves the float64 range (``1.7e308`` to one digit).

    Examples
    --------
    >>> import zlnotes as zl
    >>> zl.significant(0.0123456, 2), zl.significant(98765.0)
    (0.012, 100000.0)
    """
    x = real_scalar("x", x)
    digits = positive_int("digits", digits)
    if digits > 17:
        raise ValueError(f"digits must be an integer in [1, 17] (float64 carries 17 significant digits); got {digits}")
    rounded = float(f"{x:.{digits - 1}e}")
    if not math.isfinite(rounded):
        raise ValueError(f"x: rounded to {digits} significant digit(s), {x!r} leaves the float64 range")
    return rounded


def decade(v: float, floor: float | None = None) -> str:
    """The power of ten nearest to ``v > 0``, as text (``"1e-03"``); coarse on purpose.

    ``"0"`` for ``v <= 0``; with ``floor``, values below it print as ``"<1e-12"`` (for
    quantities whose rounding floor is ``floor``).

    Parameters
    ----------
    v : float
        A finite real number (not a bool).
    floor : float, optional
        A finite number ``> 0``.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``v`` or ``floor`` is not a real number.
    ValueError
        If ``v`` is NaN or infinite, or ``floor`` is not a finite number ``> 0``.

    Examples
    --------
    >>> import zlnotes as zl
    >>> zl.decade(3.2e-6), zl.decade(0.0), zl.decade(1e-15, floor=1e-12)
    ('1e-5', '0', '<1e-12')
    """
    v = real_scalar("v", v)
    if floor is not None:
        floor = _positive_real("floor", floor)
        if v < floor:
            return f"<{floor:.0e}"
    if v <= 0:
        return "0"
    return f"1e{round(math.log10(v)):+d}"
