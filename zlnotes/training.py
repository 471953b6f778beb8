"""Full-batch gradient descent with a history of the quantities the papers track."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .architecture import Network
from .cost import cost_and_gradient
from .jacobian import ntk
from .linalg import gram_rtol, rank_from_gram_eigenvalues
from .validation import as_matrix, nonnegative_int

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
        every = nonnegative_int("record", record)
        return set() if every == 0 else set(range(0, steps + 1, every))
    try:
        return {nonnegative_int("record[i]", k) for k in record}
    except TypeError:
        raise ValueError(f"record must be an int (every k steps), a sequence of steps, or None; got {record!r}") from None


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

    Gradients come from :func:`zlnotes.cost_and_gradient` (``D`` is never formed); the NTK is
    computed only at the recorded steps.

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
        ``k`` steps, a sequence of step indices, or ``None`` for never. Unless ``None``, the
        final step is examined too.
    target_cost
        Stop as soon as ``C ≤ target_cost`` (default 0: run all steps).
    progress
        Show a tqdm progress bar.

    Returns
    -------
    (Network, History)
        The final network and the run's history.
    """
    X = net.check_inputs(X)
    Y = as_matrix("Y", Y, rows=X.shape[0], cols=net.arch.output_dim, cols_label="output_dim")
    if not (isinstance(lr, (int, float, np.floating)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0; got {lr!r}")
    steps = nonnegative_int("steps", steps)
    if not (isinstance(target_cost, (int, float, np.floating)) and np.isfinite(target_cost) and target_cost >= 0):
        raise ValueError(f"target_cost must be a finite number >= 0; got {target_cost!r}")
    schedule = _ntk_schedule(record, steps)
    QN = X.shape[0] * net.arch.output_dim
    arch = net.arch

    costs, norms, ntk_steps, ranks, lam_mins = [], [], [], [], []
    status: Status = "max_steps"
    Z = net.flat()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="gradient descent", leave=False)
    current = net
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps + 1):
            c, g = cost_and_gradient(current, X, Y)
            if not (np.isfinite(c) and np.all(np.isfinite(g))):
                status = "diverged"
                break
            costs.append(c)
            norms.append(float(np.linalg.norm(g)))
            stop = c <= target_cost or k == steps
            if k in schedule or (stop and schedule):  # the last step is always examined
                lam = np.linalg.eigvalsh(ntk(current, X))
                ntk_steps.append(k)
                ranks.append(rank_from_gram_eigenvalues(lam, gram_rtol(QN)))
                lam_mins.append(float(lam[0]))
            if stop:
                status = "target_reached" if c <= target_cost else "max_steps"
                break
            Z_next = Z - lr * g
            if not np.all(np.isfinite(Z_next)):
                status = "diverged"
                break
            Z = Z_next
            current = Network.from_flat(arch, Z)
            if bar is not None:
                bar.update(1)
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
    """

    net: Network
    cost: float
    grad_norm: float
    initial_grad_norm: float
    converged: bool
    gd_history: History
    lbfgs_iterations: int


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
) -> StationaryPoint:
    """Bring a network to a stationary point of the cost: gradient descent, then L-BFGS.

    Gradient descent (:func:`gradient_descent`) moves into a basin; the quasi-Newton polish
    (:func:`scipy.optimize.minimize` with ``L-BFGS-B`` and :func:`zlnotes.cost_and_gradient`)
    then drives ``|∇_Z C|`` below ``rel_grad_tol · |∇_Z C(Z_0)|``. L-BFGS-B stops on the
    largest gradient entry, so it is given ``gtol = rel_grad_tol · |∇_Z C(Z_0)| / √K``, which
    implies the bound on the Euclidean norm. It is restarted from its last point (with a fresh
    curvature memory) when its line search stalls, up to ``restarts`` times.

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

    Returns
    -------
    StationaryPoint
    """
    from scipy.optimize import minimize

    if not (np.isfinite(rel_grad_tol) and 0 < rel_grad_tol < 1):
        raise ValueError(f"rel_grad_tol must be a number in (0, 1); got {rel_grad_tol!r}")
    max_iterations = nonnegative_int("max_iterations", max_iterations)
    restarts = nonnegative_int("restarts", restarts)
    X = net.check_inputs(X)
    g0 = float(np.linalg.norm(cost_and_gradient(net, X, Y)[1]))
    current, history = gradient_descent(net, X, Y, lr, gd_steps)
    arch = net.arch
    target = rel_grad_tol * g0

    def fun(Z: Array) -> tuple[float, Array]:
        return cost_and_gradient(Network.from_flat(arch, Z), X, Y)

    iterations = 0
    Z = current.flat()
    c, g = fun(Z)
    for _ in range(restarts + 1):
        if np.linalg.norm(g) <= target or max_iterations == 0:
            break
        result = minimize(
            fun, Z, jac=True, method="L-BFGS-B",
            options={"gtol": target / np.sqrt(arch.num_params), "ftol": 0.0, "maxiter": max_iterations, "maxcor": 30},
        )
        iterations += int(result.nit)
        Z = result.x
        c, g = fun(Z)
    final = Network.from_flat(arch, Z)
    gn = float(np.linalg.norm(g))
    return StationaryPoint(final, float(c), gn, g0, gn <= target, history, iterations)
