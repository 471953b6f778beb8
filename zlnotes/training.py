"""Full-batch gradient descent with a history of the quantities the papers track."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .architecture import Architecture, Network, require_network
from .cost import CostFunction
from .jacobian import ntk
from .linalg import gram_rtol, rank_from_gram_eigenvalues
from .validation import as_matrix, nonnegative_int, positive_int, real_scalar

__all__ = ["History", "StationaryPoint", "gradient_descent", "stationary_point"]

Array = NDArray[np.float64]
Status = Literal["max_steps", "target_reached", "diverged"]


@dataclass(frozen=True)
class History:
    """What happened along a gradient-descent run.

    Attributes
    ----------
    cost : numpy.ndarray, shape (n + 1,)
        ``C(Z_k)`` for ``k = 0..n``, where ``n`` is the number of steps taken.
    grad_norm : numpy.ndarray, shape (n + 1,)
        ``|∇_Z C(Z_k)|``.
    ntk_steps : numpy.ndarray of int
        The steps ``k`` at which the NTK was examined.
    rank : numpy.ndarray of int
        ``rank D(Z_k)`` at ``ntk_steps`` (Gram route, tolerance ``√(QN ε)``).
    lambda_min : numpy.ndarray
        ``λ_min(D Dᵀ)(Z_k)`` at ``ntk_steps``.
    status : str
        ``"target_reached"`` (cost ≤ ``target_cost``), ``"max_steps"`` or ``"diverged"``
        (the cost stopped being finite; the returned network is the last finite one).
    """

    cost: Array
    grad_norm: Array
    ntk_steps: NDArray[np.int64]
    rank: NDArray[np.int64]
    lambda_min: Array
    status: Status

    @property
    def steps(self) -> int:
        """Number of gradient steps taken."""
        return int(self.cost.size - 1)


def _ntk_schedule(record: int | Sequence[int] | None, steps: int) -> set[int]:
    if record is None:
        return set()
    if isinstance(record, (int, np.integer)) and not isinstance(record, bool):
        every = positive_int("record", record)
        return set(range(0, steps + 1, every))
    try:
        chosen = {nonnegative_int("record[i]", k) for k in record}
    except TypeError:
        raise ValueError(f"record must be an int >= 1 (every k steps), a sequence of steps, or None; got {record!r}") from None
    if chosen and max(chosen) > steps:
        raise ValueError(f"record: steps to examine must be <= steps = {steps}; got {max(chosen)}")
    return chosen


def gradient_descent(
    net: Network,
    X: ArrayLike,
    Y: ArrayLike,
    lr: float,
    steps: int,
    *,
    record: int | Sequence[int] | None = None,
    target_cost: float = 0.0,
    progress: bool = False,
) -> tuple[Network, History]:
    """Full-batch gradient descent ``Z_{k+1} = Z_k − lr · ∇_Z C(Z_k)`` (forward Euler of the flow).

    Gradients come from one :class:`zlnotes.CostFunction` built for the run (``D`` is never
    formed, and a step allocates nothing of size ``N × M_ℓ``); the NTK is computed only at the
    recorded steps.

    Parameters
    ----------
    net
        Starting network (not modified).
    X, Y : array_like, shapes (N, M) and (N, Q)
        Training data.
    lr
        Step size ``> 0``.
    steps
        Maximum number of steps ``≥ 0``.
    record
        When to examine the NTK (rank of ``D`` and ``λ_min(D Dᵀ)``): an int ``k`` for every
        ``k ≥ 1`` steps, a sequence of step indices (each ``≤ steps``), or ``None`` for
        never. Unless ``None`` or empty, the final step is examined too.
    target_cost
        Stop as soon as ``C ≤ target_cost`` (default 0: run all steps).
    progress
        Show a tqdm progress bar.

    Returns
    -------
    (Network, History)
        The final network and the run's history.
    """
    X = require_network(net).check_inputs(X)
    Y = as_matrix("Y", Y, rows=X.shape[0], cols=net.arch.output_dim, cols_label="output_dim")
    lr = real_scalar("lr", lr, lo=0.0, lo_open=True)
    steps = nonnegative_int("steps", steps)
    target_cost = real_scalar("target_cost", target_cost, lo=0.0)
    schedule = _ntk_schedule(record, steps)
    QN = X.shape[0] * net.arch.output_dim
    arch = net.arch

    costs, norms, ntk_steps, ranks, lam_mins = [], [], [], [], []
    status: Status = "max_steps"
    f = CostFunction(arch, X, Y)
    Z, Z_other = net.flat(), np.empty(arch.num_params)  # Z_other: the step before, or the next
    g, step = np.empty(arch.num_params), np.empty(arch.num_params)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="gradient descent", leave=False)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps + 1):
            c, _ = f(Z, out=g)
            if not (np.isfinite(c) and np.all(np.isfinite(g))):
                if k == 0:
                    raise ValueError("net: the cost or its gradient is not finite at the starting point (inputs, targets or weights too large)")
                status = "diverged"
                Z = Z_other  # the last point with a finite cost and gradient
                break
            costs.append(c)
            norms.append(float(np.linalg.norm(g)))
            stop = c <= target_cost or k == steps
            if k in schedule or (stop and schedule):  # the last step is examined whenever any is
                lam = np.linalg.eigvalsh(ntk(Network.from_flat(arch, Z), X))
                ntk_steps.append(k)
                ranks.append(rank_from_gram_eigenvalues(lam, gram_rtol(QN)))
                lam_mins.append(float(lam[0]))
            if stop:
                status = "target_reached" if c <= target_cost else "max_steps"
                break
            np.multiply(g, lr, out=step)
            np.subtract(Z, step, out=Z_other)  # Z_{k+1} = Z_k − lr · ∇_Z C(Z_k)
            if not np.all(np.isfinite(Z_other)):
                status = "diverged"
                break
            Z, Z_other = Z_other, Z
            if bar is not None:
                bar.update(1)
    current = Network.from_flat(arch, Z)
    if bar is not None:
        bar.close()
    history = History(
        cost=np.array(costs),
        grad_norm=np.array(norms),
        ntk_steps=np.array(ntk_steps, dtype=np.int64),
        rank=np.array(ranks, dtype=np.int64),
        lambda_min=np.array(lam_mins),
        status=status,
    )
    return current, history


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
        ``max_i |Z_i|`` at the end; for :data:`POSITIVELY_HOMOGENEOUS` activations, of the
        balanced representative (see ``max_param`` of :func:`stationary_point`).
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
"""Smallest Levenberg damping of the Newton polish, relative to the largest |eigenvalue| of the
Hessian: eigenvalues below it are below the accuracy of the finite-difference Hessian."""


POSITIVELY_HOMOGENEOUS = ("relu", "leaky_relu", "identity")
"""Activations with σ(αz) = ασ(z) for α > 0: scaling a hidden unit's incoming weights and bias by
α and its outgoing weights by 1/α leaves the network function unchanged (a K-parameter network
with H hidden units has an H-dimensional family of parameters for each function)."""


def _balance(arch: Architecture, Z: Array) -> Array:
    """The representative of ``Z`` on its rescaling orbit with |incoming| = |outgoing| per unit.

    Only for :data:`POSITIVELY_HOMOGENEOUS` activations (otherwise ``Z`` is returned): one sweep
    over the hidden layers, each unit's (row of ``W_ℓ``, entry of ``b_ℓ``) scaled by
    ``α = √(|out|/|in|)`` and its column of ``W_{ℓ+1}`` by ``1/α``. The network function, hence
    the cost, is unchanged; it keeps a drift along the orbit (along which the cost is flat) from
    looking like an escape to infinity.
    """
    if arch.activation not in POSITIVELY_HOMOGENEOUS:
        return Z
    net = Network.from_flat(arch, Z)
    weights = [w.copy() for w in net.weights]
    biases = [b.copy() for b in net.biases]
    for ell in range(arch.depth):
        incoming = np.sqrt(np.sum(weights[ell] ** 2, axis=1) + biases[ell] ** 2)
        outgoing = np.sqrt(np.sum(weights[ell + 1] ** 2, axis=0))
        alpha = np.ones_like(incoming)
        both = (incoming > 0) & (outgoing > 0)
        alpha[both] = np.sqrt(outgoing[both] / incoming[both])
        weights[ell] *= alpha[:, None]
        biases[ell] *= alpha
        weights[ell + 1] /= alpha[None, :]
    return Network(arch, weights, biases).flat()


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
                ok = c_new <= c - 1e-4 * predicted
            else:  # below rounding: keep the cost, halve the gradient
                ok = c_new <= c + 64 * eps * abs(c) and np.linalg.norm(g_new) <= 0.5 * gn
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
    2. The quasi-Newton polish (:func:`scipy.optimize.minimize` with ``L-BFGS-B`` and
       one :class:`zlnotes.CostFunction` for the data) drives ``|∇_Z C|`` towards
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
        ReLU-like (:data:`POSITIVELY_HOMOGENEOUS`) activations, ``|Z_i|`` is measured on the
        balanced representative of ``Z`` (each hidden unit rescaled so that its incoming and
        outgoing weights have equal norms, which leaves the network function unchanged): a
        drift along the rescaling orbit is not an escape. Those networks are also rebalanced
        before each L-BFGS restart and before the Newton phase.
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
    from scipy.optimize import minimize

    rel_grad_tol = real_scalar("rel_grad_tol", rel_grad_tol, lo=0.0, lo_open=True, hi=1.0, hi_open=True)
    max_iterations = nonnegative_int("max_iterations", max_iterations)
    restarts = nonnegative_int("restarts", restarts)
    newton_iterations = nonnegative_int("newton_iterations", newton_iterations)
    if isinstance(max_param, (bool, np.bool_)) or not isinstance(max_param, numbers.Real) or not max_param > 0:
        raise ValueError(f"max_param must be a real number in (0, inf]; got {max_param!r}")
    max_param = float(max_param)
    if polish_tol is not None:
        polish_tol = real_scalar("polish_tol", polish_tol, lo=0.0, hi=1.0, hi_open=True)
    X = require_network(net).check_inputs(X)
    current, history = gradient_descent(net, X, Y, lr, gd_steps)
    g0 = float(history.grad_norm[0])  # |∇_Z C| at the start, as gradient descent measured it
    arch = net.arch
    target = rel_grad_tol * g0
    path: list[Array] | None = [current.flat()] if record_path else None

    fun = CostFunction(arch, X, Y)  # fun(Z) = (C, ∇_Z C), a fresh gradient array per call

    def size(Z: Array) -> float:  # max |Z_i| on the balanced representative (ReLU-like nets)
        return float(np.abs(_balance(arch, Z)).max())

    def callback(intermediate_result) -> None:  # noqa: ANN001 (scipy's OptimizeResult)
        if path is not None:
            path.append(intermediate_result.x.copy())
        if np.isfinite(max_param) and size(intermediate_result.x) > max_param:
            raise StopIteration

    iterations = 0
    Z = _balance(arch, current.flat())
    c, g = fun(Z)
    for _ in range(restarts + 1):
        if np.linalg.norm(g) <= target or max_iterations == 0 or size(Z) > max_param:
            break
        with np.errstate(over="ignore", invalid="ignore"):
            result = minimize(
                fun, Z, jac=True, method="L-BFGS-B", callback=callback,
                options={"gtol": target / np.sqrt(arch.num_params), "ftol": 0.0, "maxiter": max_iterations, "maxcor": 30},
            )
        iterations += int(result.nit)
        if not np.all(np.isfinite(result.x)):
            break
        Z = result.x
        c, g = fun(Z)
        if np.linalg.norm(g) > target:
            Z = _balance(arch, Z)  # restart from the balanced representative
            c, g = fun(Z)
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
