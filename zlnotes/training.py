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

__all__ = ["History", "gradient_descent"]

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
