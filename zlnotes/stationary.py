"""Stationary points of the cost: an L-BFGS polish, and a three-phase solver built on it.

:func:`stationary_point` runs gradient descent (:func:`zlnotes.gradient_descent`) into a basin,
then :func:`lbfgs_polish`, then a saddle-free Newton polish with a finite-difference Hessian,
and reports honestly whether it reached a stationary point, escaped towards a minimum at
infinity, or stalled (e.g. at a kink of a ReLU network).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_matrix, boolean, nonnegative_int, positive_int, real_scalar
from .architecture import Architecture, Network, require_network
from .cost import CostFunction
from .memory import FLOAT_BYTES, require_memory
from .symmetry import _balance
from .training import History, gradient_descent
from .typing import Array

__all__ = ["DAMPING_FLOOR", "FD_STEP", "LbfgsReport", "StationaryPoint", "lbfgs_polish", "stationary_point"]

PolishStatus = Literal["grad_tol", "target_cost", "escaped", "stopped"]


def _max_param(value: object) -> float:
    rule = "max_param must be a real number in (0, inf]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{rule}; got {type(value).__name__} {value!r}")
    if not float(value) > 0:  # NaN fails too
        raise ValueError(f"{rule}; got {value!r}")
    return float(value)


def _balanced_size(arch: Architecture, Z: Array) -> float:
    """``max_i |Z_i|`` on the balanced representative of ``Z`` (``Z`` itself unless ReLU-like)."""
    return float(np.abs(_balance(arch, Z)).max())


def _lbfgs(
    fun: Callable[[Array], tuple[float, Array]],
    arch: Architecture,
    Z: Array,
    *,
    grad_tol: float,
    max_iter: int,
    restarts: int,
    target_cost: float | None,
    max_fun: int | None,
    rebalance: bool,
    max_param: float,
    path: list[Array] | None,
) -> tuple[Array, float, Array, int, int]:
    """The L-BFGS phase on flat parameters: ``(Z, C, ∇_Z C, iterations, runs)`` at the end.

    See :func:`lbfgs_polish`; ``path``, if a list, receives the iterate after every iteration.
    """
    from scipy.optimize import minimize

    def size(Z: Array) -> float:  # max |Z_i| on the balanced representative (ReLU-like nets)
        return _balanced_size(arch, Z)

    def callback(intermediate_result) -> None:  # scipy passes its OptimizeResult by this name
        if path is not None:
            path.append(intermediate_result.x.copy())
        if target_cost is not None and intermediate_result.fun <= target_cost:
            raise StopIteration
        if np.isfinite(max_param) and size(intermediate_result.x) > max_param:
            raise StopIteration

    options: dict[str, float | int] = {
        "gtol": grad_tol / np.sqrt(arch.num_params),
        "ftol": 0.0,
        "maxiter": max_iter,
        "maxcor": 30,
    }
    if max_fun is not None:
        options["maxfun"] = max_fun
    iterations = runs = 0
    if rebalance:
        Z = _balance(arch, Z)
    c, g = fun(Z)
    for _ in range(restarts + 1):
        if (
            np.linalg.norm(g) <= grad_tol
            or max_iter == 0
            or size(Z) > max_param
            or (target_cost is not None and c <= target_cost)
        ):
            break
        with np.errstate(over="ignore", invalid="ignore"):
            result = minimize(fun, Z, jac=True, method="L-BFGS-B", callback=callback, options=options)
        iterations += int(result.nit)
        runs += 1
        if not np.all(np.isfinite(result.x)):
            break
        Z = result.x
        c, g = fun(Z)
        if rebalance and np.linalg.norm(g) > grad_tol:
            Z = _balance(arch, Z)  # restart from the balanced representative
            c, g = fun(Z)
    return Z, c, g, iterations, runs


@dataclass(frozen=True)
class LbfgsReport:
    """What :func:`lbfgs_polish` did.

    Attributes
    ----------
    cost, grad_norm
        ``C`` and ``|∇_Z C|`` at the returned network.
    iterations
        L-BFGS iterations, summed over the runs.
    runs
        L-BFGS runs started (at most ``restarts + 1``; 0 if the start already met a stopping rule).
    status
        Why it stopped, checked in this order: ``"grad_tol"`` (``|∇_Z C| ≤ grad_tol``),
        ``"target_cost"`` (``C ≤ target_cost``), ``"escaped"`` (``max_i |Z_i|``, on the balanced
        representative, exceeds ``max_param``), or ``"stopped"`` (budgets or restarts used up,
        or the line search made no progress).
    path
        If ``record_path``: the flat parameters after every L-BFGS iteration, in order; else empty.
    """

    cost: float
    grad_norm: float
    iterations: int
    runs: int
    status: PolishStatus
    path: tuple[Array, ...] = ()


def lbfgs_polish(
    net: Network,
    X: ArrayLike,
    Y: ArrayLike,
    *,
    max_iter: int,
    grad_tol: float = 0.0,
    target_cost: float | None = None,
    restarts: int = 1,
    max_fun: int | None = None,
    rebalance: bool = False,
    max_param: float = np.inf,
    record_path: bool = False,
) -> tuple[Network, LbfgsReport]:
    """Drive ``|∇_Z C|`` down with L-BFGS, restarting its curvature memory when it stalls.

    :func:`scipy.optimize.minimize` with ``method="L-BFGS-B"`` (no bounds, memory 30,
    ``ftol = 0``) on one :class:`zlnotes.CostFunction` for the data. L-BFGS-B stops on the
    largest gradient entry, so it is given ``gtol = grad_tol / √K``, which implies
    ``|∇_Z C| ≤ grad_tol`` for the Euclidean norm. When a run ends above ``grad_tol`` (its
    line search stalled, or a budget ran out) it is restarted from its last point with a fresh
    memory, up to ``restarts`` times. This is the second phase of :func:`stationary_point`.

    Parameters
    ----------
    net, X, Y
        Starting network (not modified) and training data, shapes ``(N, M)`` and ``(N, Q)``.
    max_iter
        Iteration budget of each L-BFGS run (``≥ 0``; 0 does nothing).
    grad_tol
        Stop once ``|∇_Z C| ≤ grad_tol`` (absolute; default 0: never on the gradient alone).
    target_cost
        If given, stop once ``C ≤ target_cost`` (checked after every iteration): zero loss to
        rounding leaves nothing to polish.
    restarts
        How many times a run may be restarted (default 1: at most two runs).
    max_fun
        Budget of cost evaluations of each run (default: scipy's, 15000).
    rebalance
        Start from, and restart from, the balanced representative (:func:`zlnotes.balance`)
        of a positively homogeneous network; no effect for other activations.
    max_param
        Stop once ``max_i |Z_i|`` exceeds this (measured on the balanced representative of a
        positively homogeneous network, see :func:`zlnotes.balance`); default: never.
    record_path
        Keep the iterates in :attr:`LbfgsReport.path`.

    Returns
    -------
    (Network, LbfgsReport)
        The polished network and what happened.

    Raises
    ------
    ValueError, TypeError
        For a bad network, data or option, naming it.

    Examples
    --------
    A small tanh network, first to a stationary point, then only until the cost halves:

    >>> import numpy as np, zlnotes as zl
    >>> data = zl.generic_data(20, 3, 1, rng=2)
    >>> net = zl.Network.init(zl.Architecture(3, (2,), 1, "tanh"), rng=3)
    >>> c0, g0 = zl.cost(net, data.X, data.Y), np.linalg.norm(zl.cost_gradient(net, data.X, data.Y))
    >>> polished, report = zl.lbfgs_polish(net, data.X, data.Y, max_iter=500, grad_tol=1e-8 * g0)
    >>> report.status, bool(report.grad_norm <= 1e-8 * g0), bool(report.cost < c0)
    ('grad_tol', True, True)
    >>> bool(report.cost == zl.cost(polished, data.X, data.Y))
    True
    >>> half, report = zl.lbfgs_polish(net, data.X, data.Y, max_iter=500, target_cost=c0 / 2)
    >>> report.status, bool(report.cost <= c0 / 2)
    ('target_cost', True)
    """
    X = require_network(net).check_inputs(X)
    arch = net.arch
    Y = as_matrix("Y", Y, rows=X.shape[0], cols=arch.output_dim, cols_label="output_dim")
    max_iter = nonnegative_int("max_iter", max_iter)
    grad_tol = real_scalar("grad_tol", grad_tol, lo=0.0)
    if target_cost is not None:
        target_cost = real_scalar("target_cost", target_cost, lo=0.0)
    restarts = nonnegative_int("restarts", restarts)
    if max_fun is not None:
        max_fun = positive_int("max_fun", max_fun)
    rebalance = boolean("rebalance", rebalance)
    record_path = boolean("record_path", record_path)
    max_param = _max_param(max_param)
    path: list[Array] | None = [] if record_path else None
    fun = CostFunction(arch, X, Y)  # fun(Z) = (C, ∇_Z C), a fresh gradient array per call
    with np.errstate(over="ignore", invalid="ignore"):
        c0, g0 = fun(net.flat())
    if not (np.isfinite(c0) and np.all(np.isfinite(g0))):
        raise ValueError(
            "net: the cost or its gradient is not finite at the starting point (inputs, targets or weights too large)"
        )
    Z, c, g, iterations, runs = _lbfgs(
        fun, arch, net.flat(), grad_tol=grad_tol, max_iter=max_iter, restarts=restarts,
        target_cost=target_cost, max_fun=max_fun, rebalance=bool(rebalance), max_param=max_param, path=path,
    )
    gn = float(np.linalg.norm(g))
    status: PolishStatus
    if gn <= grad_tol:
        status = "grad_tol"
    elif target_cost is not None and c <= target_cost:
        status = "target_cost"
    elif _balanced_size(arch, Z) > max_param:
        status = "escaped"
    else:
        status = "stopped"
    report = LbfgsReport(float(c), gn, iterations, runs, status, tuple(path) if path is not None else ())
    return Network.from_flat(arch, Z), report


Outcome = Literal["converged", "escaped", "stalled"]


@dataclass(frozen=True)
class StationaryPoint:
    """Outcome of :func:`stationary_point`.

    Attributes
    ----------
    net
        The network at the end.
    cost, grad_norm
        ``C`` and ``|∇_Z C|`` there.
    initial_grad_norm
        ``|∇_Z C|`` at the start.
    converged
        Whether ``grad_norm ≤ rel_grad_tol · initial_grad_norm``.
    gd_history
        The gradient-descent phase.
    lbfgs_iterations
        Iterations of the quasi-Newton polish, summed over restarts.
    newton_iterations
        Accepted steps of the Newton polish (0 if L-BFGS already converged).
    max_param
        ``max_i |Z_i|`` at the end; for positively homogeneous activations
        (:attr:`zlnotes.Activation.positively_homogeneous`), of the balanced representative
        (:func:`zlnotes.balance`; see ``max_param`` of :func:`stationary_point`).
    status
        ``"converged"``; ``"escaped"`` (the polish stopped because ``max_i |Z_i|`` passed
        ``max_param``: the run is heading for a minimum at infinity); or ``"stalled"`` (the
        budgets ran out or no step made progress, e.g. at a kink of a ReLU network).
    path
        If ``record_path``: the flat parameters at the end of gradient descent, after every
        L-BFGS iteration and after every Newton step, in order, ending with ``net.flat()``;
        else empty.
    """

    net: Network
    cost: float
    grad_norm: float
    initial_grad_norm: float
    converged: bool
    gd_history: History
    lbfgs_iterations: int
    newton_iterations: int = 0
    max_param: float = float("nan")
    status: Outcome = "stalled"
    path: tuple[Array, ...] = ()


FD_STEP = float(np.finfo(np.float64).eps ** (1 / 3))
"""Relative step of the central differences of the gradient in :func:`stationary_point`'s
Newton polish: truncation error O(h²) and rounding error O(ε/h) balance at h = ε^{1/3} ≈ 6e-6,
so the finite-difference Hessian is accurate to about ε^{2/3} ≈ 4e-11 relative, which is enough
for Newton's method to converge to machine precision (each step shrinks the error by that factor)."""

DAMPING_FLOOR = 1e-10
"""Smallest Levenberg damping of the Newton polish, relative to the largest absolute eigenvalue of the
Hessian: eigenvalues below it are below the accuracy of the finite-difference Hessian."""


def _fd_hessian(grad: Callable[[Array], Array], Z: Array) -> Array:
    """Symmetrised central-difference Hessian of a function whose gradient is ``grad``."""
    K = Z.size
    H = np.empty((K, K))
    steps = FD_STEP * np.maximum(1.0, np.abs(Z))
    for i in range(K):
        e = np.zeros(K)
        e[i] = steps[i]
        H[:, i] = (grad(Z + e) - grad(Z - e)) / (2 * steps[i])
    return (H + H.T) / 2


def _newton_polish(
    fun: Callable[[Array], tuple[float, Array]],
    Z: Array,
    target: float,
    iterations: int,
    size: Callable[[Array], float],
    max_param: float,
    path: list[Array] | None,
) -> tuple[Array, float, Array, int]:
    """Saddle-free Newton with Levenberg damping and a finite-difference Hessian.

    Step ``p = −V (|Λ| + μ)⁻¹ Vᵀ g`` from ``H = V Λ Vᵀ``: Newton's step near a minimum (quadratic
    convergence), a descent step near a saddle, and a bounded step along (near-)null directions
    of ``H`` such as the rescaling symmetry of ReLU units. A step is accepted if it decreases the
    cost by a fraction of the quadratic model's prediction or, when the predicted decrease is
    below the rounding of ``C``, if it keeps the cost and at least halves ``|g|``; otherwise
    ``μ`` grows tenfold. Stops when
    ``|g| ≤ target``, after ``iterations`` accepted steps, when no step is accepted, or when
    ``size(Z) > max_param``.
    """
    eps = float(np.finfo(np.float64).eps)
    c, g = fun(Z)
    taken = 0
    mu_rel = 1e-6
    while taken < iterations and np.linalg.norm(g) > target and size(Z) <= max_param:
        gn = float(np.linalg.norm(g))
        lam, V = np.linalg.eigh(_fd_hessian(lambda z: fun(z)[1], Z))
        scale = float(np.abs(lam).max())
        if not (np.isfinite(scale) and scale > 0):
            break
        gv = V.T @ g
        for _ in range(16):
            a = np.abs(lam) + mu_rel * scale
            p = -(V @ (gv / a))
            predicted = float(np.sum(gv * gv / a) - 0.5 * np.sum(lam * (gv / a) ** 2))
            c_new, g_new = fun(Z + p)
            if predicted > 64 * eps * abs(c):  # a decrease the cost can resolve: demand part of it
                ok = bool(c_new <= c - 1e-4 * predicted)
            else:  # below rounding: keep the cost, halve the gradient
                ok = bool(c_new <= c + 64 * eps * abs(c) and np.linalg.norm(g_new) <= 0.5 * gn)
            if np.isfinite(c_new) and ok:
                Z, c, g = Z + p, c_new, g_new
                mu_rel = max(mu_rel / 10, DAMPING_FLOOR)
                taken += 1
                if path is not None:
                    path.append(Z.copy())
                break
            mu_rel *= 10
        else:
            break  # no acceptable step: a kink, or the rounding floor of |g|
    return Z, c, g, taken


def stationary_point(
    net: Network,
    X: ArrayLike,
    Y: ArrayLike,
    *,
    lr: float,
    gd_steps: int,
    rel_grad_tol: float = 1e-9,
    max_iterations: int = 20000,
    restarts: int = 5,
    newton_iterations: int = 50,
    max_param: float = np.inf,
    polish_tol: float | None = None,
    record_path: bool = False,
) -> StationaryPoint:
    """Bring a network to a stationary point of the cost: gradient descent, L-BFGS, then Newton.

    1. Gradient descent (:func:`gradient_descent`) moves into a basin.
    2. The quasi-Newton polish (:func:`lbfgs_polish`: :func:`scipy.optimize.minimize` with
       ``L-BFGS-B`` and one :class:`zlnotes.CostFunction` for the data) drives ``|∇_Z C|`` towards
       ``rel_grad_tol · |∇_Z C(Z_0)|``. L-BFGS-B stops on the largest gradient entry, so it is
       given ``gtol = rel_grad_tol · |∇_Z C(Z_0)| / √K``, which implies the bound on the
       Euclidean norm. It is restarted from its last point (with a fresh curvature memory) when
       its line search stalls, up to ``restarts`` times.
    3. If that is not enough, a Newton polish: the Hessian by central differences of
       the same ``CostFunction`` (``2K`` gradients), and saddle-free Newton steps
       ``−V(|Λ| + μ)⁻¹Vᵀ∇_Z C`` with Levenberg damping ``μ``. Where the cost is smooth and its
       Hessian is nonsingular up to symmetries (tanh networks; ReLU networks away from kinks,
       whose per-unit rescaling symmetry makes the Hessian singular), this converges
       quadratically, where L-BFGS often crawls.

    Nothing here can reach a stationary point that does not exist: when the infimum of the cost
    is approached only as ``|Z| → ∞`` (saturating tanh units) or at a kink (a data point on the
    boundary of a ReLU unit's active region), the run ends with ``converged=False``, or
    ``converged=True`` only because the derivatives underflow; ``status`` and ``max_param``
    tell these apart, and the caller should check the result (see chapter 06 of the book).

    Parameters
    ----------
    net, X, Y
        Starting network and training data.
    lr, gd_steps
        Step size and number of steps of the gradient-descent phase (``gd_steps`` may be 0).
    rel_grad_tol
        Target ``|∇_Z C| / |∇_Z C(Z_0)|``.
    max_iterations
        Iteration budget of each L-BFGS run.
    restarts
        How many times L-BFGS may be restarted.
    newton_iterations
        Budget of accepted Newton steps (each costs ``2K + 1`` gradients); 0 skips the phase.
    max_param
        Stop (``status="escaped"``) once ``max_i |Z_i|`` exceeds this; default: never. For
        ReLU-like (:attr:`zlnotes.Activation.positively_homogeneous`) activations, ``|Z_i|`` is
        measured on the balanced representative of ``Z`` (:func:`zlnotes.balance`: each hidden
        unit rescaled so that its incoming and outgoing weights have equal norms, which leaves
        the network function unchanged): a drift along the rescaling orbit is not an escape.
        Those networks are also rebalanced before each L-BFGS restart and before the Newton
        phase.
    polish_tol
        If smaller than ``rel_grad_tol``: the Newton phase keeps going until
        ``|∇_Z C| ≤ polish_tol · |∇_Z C(Z_0)|`` or until no step at least halves ``|∇_Z C|``
        (the rounding floor), even after the target has been met. A smaller gradient gives a
        sharper bound ``|P ∇_x C| ≤ |∇_Z C| / s_min(D)``.
    record_path
        Keep the iterates in :attr:`StationaryPoint.path`.

    Returns
    -------
    StationaryPoint
    """
    rel_grad_tol = real_scalar("rel_grad_tol", rel_grad_tol, lo=0.0, lo_open=True, hi=1.0, hi_open=True)
    max_iterations = nonnegative_int("max_iterations", max_iterations)
    restarts = nonnegative_int("restarts", restarts)
    newton_iterations = nonnegative_int("newton_iterations", newton_iterations)
    max_param = _max_param(max_param)
    if polish_tol is not None:
        polish_tol = real_scalar("polish_tol", polish_tol, lo=0.0, hi=1.0, hi_open=True)
    record_path = boolean("record_path", record_path)
    X = require_network(net).check_inputs(X)
    if newton_iterations:
        K = net.arch.num_params
        require_memory(
            "net",
            f"the Newton polish's Hessian and its eigenvectors (3 matrices of K × K = {K} × {K})",
            3 * K * K * FLOAT_BYTES,
        )
    current, history = gradient_descent(net, X, Y, lr, gd_steps)
    g0 = float(history.grad_norm[0])  # |∇_Z C| at the start, as gradient descent measured it
    arch = net.arch
    target = rel_grad_tol * g0
    path: list[Array] | None = [current.flat()] if record_path else None

    fun = CostFunction(arch, X, Y)  # fun(Z) = (C, ∇_Z C), a fresh gradient array per call

    def size(Z: Array) -> float:  # max |Z_i| on the balanced representative (ReLU-like nets)
        return _balanced_size(arch, Z)

    Z, c, g, iterations, _ = _lbfgs(
        fun, arch, current.flat(), grad_tol=target, max_iter=max_iterations, restarts=restarts,
        target_cost=None, max_fun=None, rebalance=True, max_param=max_param, path=path,
    )
    polish = target if polish_tol is None else min(target, polish_tol * g0)
    newton = 0
    if newton_iterations > 0 and np.linalg.norm(g) > polish and size(Z) <= max_param:
        balanced = _balance(arch, Z)
        c_b, g_b = fun(balanced)
        if np.linalg.norm(g) > target or np.linalg.norm(g_b) <= target:  # never undo convergence
            Z, c, g = balanced, c_b, g_b
        with np.errstate(over="ignore", invalid="ignore"):
            Z, c, g, newton = _newton_polish(fun, Z, polish, newton_iterations, size, max_param, path)
    if size(Z) > max_param:
        status: Outcome = "escaped"
    elif np.linalg.norm(g) <= target:
        status = "converged"
    else:
        status = "stalled"
    if path is not None and not np.array_equal(path[-1], Z):
        path.append(Z.copy())  # the path ends at the returned point
    final = Network.from_flat(arch, Z)
    gn = float(np.linalg.norm(g))
    return StationaryPoint(
        final, float(c), gn, g0, gn <= target, history, iterations,
        newton_iterations=newton, max_param=size(Z), status=status,
        path=tuple(path) if path is not None else (),
    )
