"""Named experiments for :mod:`zlnotes.sweep`: the parameter grids behind the book's sweeps.

``dichotomy``
    Gradient descent against the explicit constructions, across the threshold ``K = QN``,
    for generic and for clustered data (chapter 09). One point trains one network from one
    seeded start and records the final cost, the gradient, the rank of ``D`` and, where a
    construction applies to the same architecture, the cost of that construction.

Every point is a pure function of its parameters: the data depend on ``seed`` only (so a
curve over widths is drawn for one data set), the start on ``seed`` and the architecture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import positive_int
from ..activations import activation
from ..architecture import Architecture, Network
from ..clustered import cluster_geometry, clustered_data, clustered_minimizer
from ..construction import embed_network, zero_loss_minimizer
from ..cost import cost, output_gradient
from ..data import Dataset, generic_data
from ..jacobian import ntk
from ..linalg import gram_rtol, rank_from_gram_eigenvalues
from ..sweep import Experiment
from ..training import gradient_descent

__all__ = [
    "EXPERIMENTS",
    "get_experiment",
    "register_experiment",
    "DICHOTOMY",
    "DATA_FAMILIES",
    "dichotomy_point",
    "dichotomy_data",
    "widths_for_ratios",
]

DATA_FAMILIES: Mapping[str, Mapping[str, Any]] = {
    # chen2025zeroloss's setting, widened: N generic points in general position with
    # input_dim >= N - 1, so the shift construction (Theorem 2.2's, extended to width >= N - 1
    # with affinely independent inputs: derived in the book) applies; Gaussian targets in R^Q.
    "generic": {"n_samples": 32, "input_dim": 31, "output_dim": 16},
    # chen2023deep's setting: C tight classes in a low input dimension with one-hot targets; the
    # truncation construction (depth C, width M) fits them with K/QN far below 1.
    # The radius is a fraction of h/3 (h: the separation of the class means), so that the
    # construction's sufficient condition delta < h/3 holds for every seed.
    "clustered": {"n_samples": 150, "input_dim": 2, "output_dim": 3, "n_classes": 3, "radius_fraction": 0.3},
}
"""The two data families of the ``dichotomy`` sweep (sizes chosen to span K/QN ≈ 0.05–20)."""

RELATIVE_TARGET = 1e-12
"""Gradient descent stops once ``C ≤ RELATIVE_TARGET · C_const``: zero loss to plotting accuracy."""


def _require(params: Mapping[str, Any], names: Sequence[str]) -> None:
    missing = [name for name in names if name not in params]
    if missing:
        got = ", ".join(sorted(params)) or "nothing"
        raise ValueError(f"params: a dichotomy point needs {', '.join(missing)} (got {got})")


def dichotomy_data(params: Mapping[str, Any]) -> Dataset:
    """The training set of one ``dichotomy`` point: depends on ``data``, the sizes and ``seed`` only.

    Parameters
    ----------
    params
        ``data`` (``"generic"`` or ``"clustered"``), ``n_samples``, ``input_dim``,
        ``output_dim``, ``seed``, and for clustered data ``n_classes`` and ``radius_fraction``:
        the points lie within ``radius_fraction · h/3`` of their class's generating mean,
        where ``h`` is the separation of the means (see :func:`zlnotes.cluster_geometry`).

    Returns
    -------
    Dataset
    """
    _require(params, ("data", "n_samples", "input_dim", "output_dim", "seed"))
    rng = np.random.default_rng([int(params["seed"]), 0])
    if params["data"] == "generic":
        return generic_data(params["n_samples"], params["input_dim"], params["output_dim"], rng=rng)
    if params["data"] == "clustered":
        _require(params, ("n_classes", "radius_fraction"))
        C = params["n_classes"]
        if params["n_samples"] % C:
            raise ValueError(f"n_samples must be a multiple of n_classes = {C}; got {params['n_samples']}")
        if not 0 < params["radius_fraction"] < 1:
            raise ValueError(
                "radius_fraction must be in (0, 1) (the construction needs delta < h/3); "
                f"got {params['radius_fraction']}"
            )
        sizes = (params["n_samples"] // C, C, params["input_dim"], params["output_dim"])
        means = clustered_data(*sizes, radius=0.0, rng=np.random.default_rng([int(params["seed"]), 0]))  # same means
        h = cluster_geometry(means.X, means.labels).h
        return clustered_data(*sizes, radius=params["radius_fraction"] * h / 3, rng=rng)
    raise ValueError(f"data must be 'generic' or 'clustered'; got {params['data']!r}")


def _construction(
    data: Dataset, arch: Architecture, params: Mapping[str, Any]
) -> tuple[str | None, Network | None, str]:
    """The explicit zero-loss construction that applies to ``arch`` on ``data``, if any."""
    N, M = data.X.shape
    if arch.depth >= 1 and N <= arch.hidden[0] + 1 and np.linalg.matrix_rank(np.hstack([data.X, np.ones((N, 1))])) == N:
        net = zero_loss_minimizer(data.X, data.Y, depth=arch.depth, width=arch.hidden[0], activation=arch.sigma)
        return ("theorem 2.2" if arch.sigma.positive_sector else "theorem 2.1"), net, ""
    if params["data"] == "clustered":
        C = params["n_classes"]
        if arch.sigma != activation("relu"):  # the full definition, not the name
            return None, None, "the truncation construction is a relu network"
        if arch.depth < C or min(arch.hidden) < M:
            return None, None, f"the truncation construction needs depth >= {C} and width >= {M}"
        if not cluster_geometry(data.X, data.labels).satisfied:
            return None, None, "the classes violate delta < h/3"
        net = clustered_minimizer(data.X, data.labels, data.label_vectors)
        return "truncation", embed_network(net, arch), ""
    return None, None, f"theorems 2.1/2.2 need width >= N - 1 = {N - 1} and affinely independent inputs"


def _nudged(net: Network, gen: np.random.Generator) -> Network:
    """``net`` with every parameter multiplied by ``1 + k ε``, ``k`` uniform in ``−4..4``."""
    eps = np.finfo(np.float64).eps

    def bump(a: np.ndarray) -> np.ndarray:
        return a * (1 + gen.integers(-4, 5, a.shape) * eps)

    return Network(net.arch, [bump(w) for w in net.weights], [bump(b) for b in net.biases])


def dichotomy_point(params: Mapping[str, Any]) -> dict[str, Any]:
    """Train one network by gradient descent and compare it with the explicit construction.

    Parameters
    ----------
    params
        The data parameters of :func:`dichotomy_data` and ``depth``, ``width``,
        ``activation``, ``steps`` (gradient-descent budget) and ``lr_factor`` (step size
        ``lr = lr_factor · N / λ_max(D Dᵀ)`` at the start, as in chapters 05 and 08).
        Optional ``start_perturbation`` (an integer ``i``): every initial parameter is
        multiplied by ``1 + k ε`` with ``k`` drawn from ``−4..4`` (generator seeded by
        ``[seed, 99, i]``), a change of a few ulps. Reruns with a few values of ``i`` measure
        how far rounding alone can move the end of a run (the book's chapter on the
        dichotomy compares stored records within that spread).

    Returns
    -------
    dict
        ``K``, ``QN``, ``ratio`` (``K/QN``); ``lr``; ``status`` and ``steps_taken`` of the run;
        ``cost_start`` and ``cost`` relative to ``C_const`` (the cost of the best constant
        output); ``grad_norm`` (``|∇_Z C|`` at the end) and ``grad_norm_start``;
        ``rank_ratio`` (``rank D / QN`` at the end, Gram route, tolerance ``√(QN ε)``);
        ``lambda_min`` (smallest eigenvalue of ``D Dᵀ / N``, relative to the largest);
        ``range_fraction`` (``|P ∇_x C| / |∇_x C|``: zero exactly at a stationary point,
        where Theorem 1.5 gives ``C = (N/2)|P^⊥ ∇_x C|²``; in general
        ``|C − (N/2)|P^⊥ ∇_x C|²| / C`` equals its square, so it measures how far from
        stationary the run ended);
        ``construction`` (its name or ``None``), ``construction_cost`` (relative, or ``None``)
        and ``construction_note`` (why none applies).
    """
    _require(params, ("depth", "width", "activation", "steps", "lr_factor"))
    data = dichotomy_data(params)
    X, Y = data.X, data.Y
    N, Q = Y.shape
    arch = Architecture(X.shape[1], (int(params["width"]),) * int(params["depth"]), Q, params["activation"])
    QN, K = N * Q, arch.num_params
    c_const = float(np.sum((Y - Y.mean(axis=0)) ** 2) / (2 * N))
    net0 = Network.init(arch, np.random.default_rng([int(params["seed"]), 1]))
    if params.get("start_perturbation") is not None:
        net0 = _nudged(net0, np.random.default_rng([int(params["seed"]), 99, int(params["start_perturbation"])]))
    lr = float(params["lr_factor"]) * N / float(np.linalg.eigvalsh(ntk(net0, X))[-1])
    net, hist = gradient_descent(net0, X, Y, lr, int(params["steps"]), target_cost=RELATIVE_TARGET * c_const)
    c = float(hist.cost[-1])  # the history holds C and |grad_Z C| at the start and at the returned network

    lam, U = np.linalg.eigh(ntk(net, X))
    tol = gram_rtol(QN)
    rank = rank_from_gram_eigenvalues(lam, tol)
    grad_x = output_gradient(net, X, Y)
    in_range = float(np.linalg.norm(U[:, QN - rank :].T @ grad_x))  # |P ∇_x C|: top eigenvectors span range D
    norm_x = float(np.linalg.norm(grad_x))

    name, built, note = _construction(data, arch, params)
    return {
        "K": K,
        "QN": QN,
        "ratio": K / QN,
        "lr": lr,
        "status": hist.status,
        "steps_taken": hist.steps,
        "cost_start": float(hist.cost[0]) / c_const,
        "cost": c / c_const,
        "grad_norm_start": float(hist.grad_norm[0]),
        "grad_norm": float(hist.grad_norm[-1]),
        "rank_ratio": rank / QN,
        "lambda_min": float(max(lam[0], 0.0) / lam[-1]) if lam[-1] > 0 else 0.0,
        "range_fraction": in_range / norm_x if norm_x > 0 else 0.0,
        "construction": name,
        "construction_cost": cost(built, X, Y) / c_const if built is not None else None,
        "construction_note": note,
    }


def widths_for_ratios(
    depth: int, input_dim: int, output_dim: int, n_samples: int, ratios: Sequence[float]
) -> list[int]:
    """The smallest width whose network has ``K/QN ≥ r``, for each ratio ``r`` (duplicates dropped).

    Parameters
    ----------
    depth, input_dim, output_dim, n_samples
        ``L``, ``M``, ``Q`` and ``N``.
    ratios
        Targets for ``K/QN``, increasing.

    Returns
    -------
    list of int
        Increasing widths.

    Raises
    ------
    ValueError
        If ``depth`` or a size is not a positive integer, or the ratios are not finite,
        positive and increasing.
    """
    depth = positive_int("depth", depth)
    QN = positive_int("n_samples", n_samples) * positive_int("output_dim", output_dim)
    positive_int("input_dim", input_dim)
    r = np.asarray(ratios, dtype=float)
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)) or np.any(r <= 0) or np.any(np.diff(r) <= 0):
        raise ValueError(f"ratios must be finite numbers > 0 in increasing order; got {list(ratios)!r}")

    def K(h: int) -> int:
        return Architecture(input_dim, (h,) * depth, output_dim, "relu").num_params

    widths: list[int] = []
    for ratio in r:
        lo, hi = 1, 1
        while K(hi) < ratio * QN:  # K grows with h: double, then bisect
            lo, hi = hi, 2 * hi
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if K(mid) < ratio * QN else (lo, mid)
        if not widths or lo > widths[-1]:
            widths.append(lo)
    return widths


def _dichotomy_grid(
    depths: Sequence[int], n_ratios: int, seeds: Sequence[int], *, steps: int, lo: float = 0.05, hi: float = 20.0
) -> list[dict[str, Any]]:
    ratios = np.geomspace(lo, hi, n_ratios)
    grid = []
    for data, family in DATA_FAMILIES.items():
        for depth in depths:
            dims = (family["input_dim"], family["output_dim"], family["n_samples"])
            for width in widths_for_ratios(depth, *dims, list(ratios)):
                for seed in seeds:
                    grid.append(
                        {"data": data, **family, "depth": depth, "width": width, "activation": "relu",
                         "steps": steps, "lr_factor": 0.5, "seed": seed}
                    )
    return grid


DICHOTOMY = Experiment(
    name="dichotomy",
    description="gradient descent against the explicit constructions across K = QN, generic and clustered data",
    run=dichotomy_point,
    presets={
        "tiny": _dichotomy_grid([1], 3, [0], steps=200, hi=5.0),
        "book": _dichotomy_grid([1, 3, 5], 10, range(4), steps=4000),
        "full": _dichotomy_grid([1, 2, 3, 4, 5, 6], 24, range(20), steps=20000, lo=0.03, hi=30.0),
    },
)
"""The ``dichotomy`` sweep of chapter 09."""

EXPERIMENTS: dict[str, Experiment] = {DICHOTOMY.name: DICHOTOMY}
"""The registry: the experiments ``zlnotes sweep NAME`` knows, by name.

Names are looked up here only (:func:`get_experiment`): a name never imports a module.
Code that defines another experiment adds it with :func:`register_experiment` and then
calls :func:`zlnotes.book.cli.main` itself.
"""


def register_experiment(experiment: Experiment) -> Experiment:
    """Add an experiment to :data:`EXPERIMENTS` under its name, and return it.

    Raises
    ------
    TypeError
        If `experiment` is not a :class:`zlnotes.sweep.Experiment`.
    ValueError
        If another experiment is registered under the same name.
    """
    if not isinstance(experiment, Experiment):
        raise TypeError(f"experiment must be a zlnotes.sweep.Experiment; got {type(experiment).__name__}")
    known = EXPERIMENTS.get(experiment.name)
    if known is not None and known is not experiment:
        raise ValueError(f"experiment name {experiment.name!r} is already registered for another experiment")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def get_experiment(name: str) -> Experiment:
    """Look up an experiment by name in the registry :data:`EXPERIMENTS`.

    Parameters
    ----------
    name : str
        A key of :data:`EXPERIMENTS`. Nothing else is accepted: a name such as
        ``package.module:attribute`` is an unknown name, and no module is imported.

    Raises
    ------
    ValueError
        If the name is not a non-empty string or is unknown (the message lists the
        known ones).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"experiment name must be a non-empty string; got {name!r}")
    registry = EXPERIMENTS
    if name not in registry:
        raise ValueError(
            f"unknown experiment {name!r}; known experiments: {', '.join(sorted(registry)) or '(none)'} "
            "(names are looked up in zlnotes.book.experiments.EXPERIMENTS only)"
        )
    return registry[name]
