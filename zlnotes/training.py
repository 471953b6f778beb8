"""Full-batch gradient descent with a history of the quantities the papers track.

Stationary points (:func:`zlnotes.stationary_point`, :func:`zlnotes.lbfgs_polish`) are in
:mod:`zlnotes.stationary`, the rescaling symmetry of ReLU networks in :mod:`zlnotes.symmetry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import as_matrix, boolean, nonnegative_int, positive_int, real_scalar
from .architecture import Network, require_network
from .cost import CostFunction
from .jacobian import ntk
from .linalg import gram_rtol, rank_from_gram_eigenvalues
from .memory import FLOAT_BYTES, require_memory
from .typing import Array

__all__ = ["History", "gradient_descent"]

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
    if isinstance(record, (str, bytes, bool, np.bool_)) or not hasattr(record, "__iter__"):
        raise TypeError(
            "record must be an int >= 1 (every k steps), a sequence of steps, or None; "
            f"got {type(record).__name__} {record!r}"
        )
    chosen = {nonnegative_int(f"record[{i}]", k) for i, k in enumerate(cast(Sequence[int], record))}
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
    progress = boolean("progress", progress)
    schedule = _ntk_schedule(record, steps)
    QN = X.shape[0] * net.arch.output_dim
    # the history keeps two Python floats per step (about 80 bytes with the list slots)
    require_memory("steps", f"the history of {steps} steps", (steps + 1) * 80)
    if schedule:
        what = f"the NTK examined along the run (N·Q × N·Q = {QN} × {QN}, twice)"
        require_memory("record", what, 2 * QN * QN * FLOAT_BYTES)
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
                    raise ValueError(
                        "net: the cost or its gradient is not finite at the starting point "
                        "(inputs, targets or weights too large)"
                    )
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
