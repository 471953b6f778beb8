"""Named experiments for :mod:`zlnotes.sweep`: the parameter grids behind the book's sweeps.

``dichotomy``
    Gradient descent against the explicit constructions, across the threshold ``K = QN``,
    for generic and for clustered data (chapter 09). One point trains one network from one
    seeded start and records the final cost, the gradient, the rank of ``D`` and, where a
    construction applies to the same architecture, the cost of that construction.

``full_rank_regions``
    karhadkar2024mildly's heatmap of ``P(rank J = n)`` for ``F(x) = vᵀReLU(Wx + b)`` with
    ``v`` fixed, over the dataset size ``n`` and the width ``d₁``, ``d₀ = ⌈n/2⌉`` (chapter
    15). One point is a block of ``trials`` seeded draws in one cell, computed by
    :func:`zlnotes.full_rank_grid` on that cell with its own generator
    (:func:`full_rank_cell_rng`); it records the counts of full-rank draws (float32
    threshold of the paper's code, and the float64 floor), of draws without a dead data
    point, and ``σ_n/σ_1`` of every draw. :func:`full_rank_heatmap` sums the blocks of a
    cell. ``book`` is chapter 15's default grid (``n = 10, 30, …, 190``, ``d₁ = 1, …, 15``,
    20 draws per cell: block 0), ``paper`` the paper's 100 draws per cell (blocks 0–4):
    the book's heatmap is a sub-grid of the paper's.
``du_rate``
    du2019gradient's two-layer ReLU network ``u = m^{-1/2} Σ_r a_r σ(w_rᵀx)`` on unit inputs
    trained by gradient descent (chapter 14). One point is one run, ``(n, d, m, seed, draw,
    eta_factor, steps)``, with the step ``η = eta_factor / λ_max(H∞)`` on their summed loss
    (``n η`` on the book's mean cost); it records ``λ₀``, ``‖H(0) − H∞‖₂``, the loss and
    the kernel prediction at log-spaced steps, the fraction of changed activation patterns
    and ``max_r ‖Δw_r‖``. ``book``: chapter 14's sizes (``n = 50``, ``d = 25``; also
    ``n = 100``, ``d = 50``), ``m ≤ 2000``, 3 data sets × 8 initialisations, chapter 14's
    runs among them; ``paper``: their ``n = d = 1000`` at
    ``m = 1000 · 2^k`` up to 64000 (:func:`du_rate_memory`: 3.6 GB for the widest point).

Every point is a pure function of its parameters. For ``dichotomy`` the data depend on
``seed`` only (so a curve over widths is drawn for one data set), the start on ``seed``
and the architecture; for ``du_rate`` the data depend on ``seed`` and the sizes, the start
on ``seed``, ``m`` and ``draw``; for ``full_rank_regions`` each block of a cell has its own
generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .._validation import nonnegative_int, positive_int, real_scalar
from ..activations import activation
from ..architecture import Architecture, Network
from ..clustered import cluster_geometry, clustered_data, clustered_minimizer
from ..construction import embed_network, zero_loss_minimizer
from ..cost import cost, output_gradient
from ..data import Dataset, generic_data
from ..full_rank import full_rank_grid
from ..jacobian import ntk
from ..linalg import gram_rtol, rank_from_gram_eigenvalues
from ..memory import FLOAT_BYTES
from ..sweep import Experiment
from ..training import gradient_descent
from ..two_layer import (
    kernel_losses,
    relu_gram_limit,
    sphere_data,
    two_layer_gd,
    two_layer_gram,
    two_layer_init,
    two_layer_output,
)
from ..typing import Array

__all__ = [
    "EXPERIMENTS",
    "get_experiment",
    "register_experiment",
    "DICHOTOMY",
    "DATA_FAMILIES",
    "dichotomy_point",
    "dichotomy_data",
    "widths_for_ratios",
    "FULL_RANK_REGIONS",
    "FULL_RANK_NS",
    "FULL_RANK_WIDTHS",
    "FULL_RANK_BLOCK",
    "FullRankHeatmap",
    "full_rank_cell_rng",
    "full_rank_heatmap",
    "full_rank_point",
    "DU_RATE",
    "PAPER_WIDTHS",
    "du_rate_memory",
    "du_rate_point",
    "du_rate_steps",
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


def _require(params: Mapping[str, Any], names: Sequence[str], what: str = "a dichotomy point") -> None:
    missing = [name for name in names if name not in params]
    if missing:
        got = ", ".join(sorted(params)) or "nothing"
        raise ValueError(f"params: {what} needs {', '.join(missing)} (got {got})")


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


# ----------------------------------------------------------------------------------------
# full_rank_regions: Karhadkar et al.'s heatmap of P(rank J = n) (chapter 15)

FULL_RANK_NS: tuple[int, ...] = tuple(range(10, 191, 20))
"""Dataset sizes ``n`` of karhadkar2024mildly's heatmap (their script's ratio-0.5 run)."""

FULL_RANK_WIDTHS: tuple[int, ...] = tuple(range(1, 16))
"""Hidden widths ``d₁`` of their heatmap."""

FULL_RANK_BLOCK = 20
"""Trials in one point of the ``book`` and ``paper`` presets (chapter 15's default per cell)."""


def full_rank_cell_rng(seed: int, n: int, width: int, block: int) -> np.random.Generator:
    """The generator of one trial block of one cell: ``default_rng([seed, 15, n, width, block])``.

    Every cell and block has its own stream, so a cell's draws do not depend on which other
    cells are computed, and blocks ``0, 1, …`` of a cell are disjoint sets of trials.
    """
    return np.random.default_rng(
        [nonnegative_int("seed", seed), 15, positive_int("n", n), positive_int("width", width),
         nonnegative_int("block", block)]
    )


def full_rank_point(params: Mapping[str, Any]) -> dict[str, Any]:
    """One trial block of one cell of the heatmap of ``P(rank J = n)`` (karhadkar2024mildly).

    :func:`zlnotes.full_rank_grid` on the single cell ``(n, width)`` with the generator
    :func:`full_rank_cell_rng` ``(seed, n, width, block)``: ``trials`` draws of ``W, b``
    (``torch.nn.Linear``'s initialisation), ``v`` standard normal and ``X`` uniform on
    ``[0, 1)^{n × d₀}``, ``d₀ = ⌈ratio · n⌉``; the rank is read from the Gram matrix at
    the float32 threshold of the paper's code (``σ_n/σ_1 > max(n, P) · 2⁻²³``, ``P`` the
    columns of ``J``).

    Parameters
    ----------
    params
        ``n``, ``width`` (``d₁``), ``ratio``, ``frozen_v`` (``J`` carries the frozen ``v``
        columns, as in the paper's code), ``trials``, ``block`` and ``seed``.

    Returns
    -------
    dict
        ``d0``; ``columns`` (``P = d₁(d₀ + 1 + frozen_v)``); ``trials``; ``full_rank``
        (draws with ``rank J = n`` at the float32 threshold ``rtol``); ``full_rank_float64``
        (the same at the Gram route's float64 floor ``rtol_float64`` =
        :func:`zlnotes.gram_rtol` ``(n)``); ``no_dead_point`` (draws in which every data
        point activates some unit); ``sigma_ratio`` (``σ_n/σ_1`` of every draw, 0 for a
        dead point or fewer columns than rows) and its median ``sigma_ratio_median``.
    """
    _require(params, ("n", "width", "ratio", "frozen_v", "trials", "block", "seed"), "a full_rank_regions point")
    n, width = positive_int("n", params["n"]), positive_int("width", params["width"])
    trials = positive_int("trials", params["trials"])
    gen = full_rank_cell_rng(params["seed"], n, width, params["block"])
    grid = full_rank_grid([n], [width], trials=trials, rng=gen, ratio=params["ratio"], frozen_v=params["frozen_v"])
    sig, rtol = grid.sigma_ratio[0, 0], float(grid.rtol[0, 0])
    d0 = int(grid.d0[0])
    tol64 = gram_rtol(n)
    return {
        "d0": d0,
        "columns": width * (d0 + 1 + int(params["frozen_v"])),
        "trials": trials,
        "full_rank": int(np.count_nonzero(sig > rtol)),
        "rtol": rtol,
        "full_rank_float64": int(np.count_nonzero(sig > tol64)),
        "rtol_float64": tol64,
        "no_dead_point": int(round(float(grid.no_dead_point[0, 0]) * trials)),
        "sigma_ratio": sig.tolist(),
        "sigma_ratio_median": float(np.median(sig)),
    }


class FullRankHeatmap(NamedTuple):
    """A heatmap assembled from ``full_rank_regions`` records: rows are widths, columns sizes."""

    ns: Array
    """Dataset sizes ``n``, increasing."""
    widths: Array
    """Hidden widths ``d₁``, increasing."""
    d0: Array
    """Input dimension of each size."""
    trials: Array
    """Draws per cell, summed over blocks (0 where no record), shape (len(widths), len(ns))."""
    full_rank: Array
    """Fraction of draws with ``rank J = n`` at the float32 threshold (NaN where no record)."""
    full_rank_float64: Array
    """The same at the float64 floor."""
    no_dead_point: Array
    """Fraction of draws with no dead data point."""


def full_rank_heatmap(records: Sequence[Mapping[str, Any]]) -> FullRankHeatmap:
    """Sum the counts of ``full_rank_regions`` records cell by cell over their trial blocks.

    Parameters
    ----------
    records
        Records as :func:`zlnotes.sweep.load_results` returns them.

    Raises
    ------
    ValueError
        If a record failed (``status`` not ``"ok"``), the records mix values of ``ratio``,
        ``frozen_v`` or ``seed``, or a block of a cell appears twice.
    """
    counts: dict[tuple[int, int], np.ndarray] = {}
    d0: dict[int, int] = {}
    seen: set[tuple[int, int, int]] = set()
    shared: set[tuple[Any, ...]] = set()
    for record in records:
        if record.get("status") != "ok":
            raise ValueError(f"records: point {record.get('key')!r} failed ({record.get('error')}); rerun it first")
        p, r = record["params"], record["result"]
        shared.add((p["ratio"], p["frozen_v"], p["seed"]))
        block = (p["n"], p["width"], p["block"])
        if block in seen:
            raise ValueError(f"records: n = {p['n']}, width = {p['width']}, block {p['block']} appears twice")
        seen.add(block)
        d0[p["n"]] = r["d0"]
        cell = counts.setdefault((p["width"], p["n"]), np.zeros(4, dtype=np.int64))
        cell += [r["trials"], r["full_rank"], r["full_rank_float64"], r["no_dead_point"]]
    if len(shared) > 1:
        raise ValueError(f"records mix (ratio, frozen_v, seed) = {sorted(shared, key=str)}; pass one sweep's records")
    ns, widths = sorted(d0), sorted({w for w, _ in counts})
    table = np.zeros((4, len(widths), len(ns)), dtype=np.int64)
    for (w, n), c in counts.items():
        table[:, widths.index(w), ns.index(n)] = c
    trials = table[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(trials > 0, table[1:] / np.maximum(trials, 1), np.nan)
    return FullRankHeatmap(
        np.array(ns), np.array(widths), np.array([d0[n] for n in ns]), trials, frac[0], frac[1], frac[2]
    )


def _full_rank_grid(
    ns: Sequence[int], widths: Sequence[int], blocks: int, *, trials: int = FULL_RANK_BLOCK
) -> list[dict[str, Any]]:
    return [
        {"n": n, "width": w, "ratio": 0.5, "frozen_v": True, "trials": trials, "block": b, "seed": 0}
        for w in widths for n in ns for b in range(blocks)
    ]


FULL_RANK_REGIONS = Experiment(
    name="full_rank_regions",
    description="P(rank J = n) of a shallow ReLU network with v fixed, over n and d1 with d0 = ceil(n/2) "
    "(Karhadkar et al.'s heatmap): one point is a block of seeded draws in one cell",
    run=full_rank_point,
    presets={
        "tiny": _full_rank_grid([10, 30], [1, 4], 2, trials=5),
        "book": _full_rank_grid(FULL_RANK_NS, FULL_RANK_WIDTHS, 1),
        "paper": _full_rank_grid(FULL_RANK_NS, FULL_RANK_WIDTHS, 5),
    },
)
"""The ``full_rank_regions`` sweep (chapter 15): ``paper`` has 100 draws per cell in blocks of 20."""


# ----------------------------------------------------------------------------------------
# du_rate: Du et al.'s two-layer ReLU network trained by gradient descent (chapter 14)

_MANTISSAS = (10, 12, 15, 20, 25, 30, 40, 50, 60, 80)


def du_rate_steps(steps: int) -> list[int]:
    """The steps at which a ``du_rate`` point records its curves: ``0``, about ten per decade
    (``1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, …``, integers only) and ``steps``."""
    steps = positive_int("steps", steps)
    ks, scale = {0, steps}, 1
    while scale <= steps:
        ks.update(k * scale // 10 for k in _MANTISSAS if k * scale // 10 <= steps)
        scale *= 10
    return sorted(ks)


def du_rate_memory(n: int, d: int, m: int, steps: int) -> int:
    """Bytes one ``du_rate`` point holds at its peak (float64, as :mod:`zlnotes.memory` counts).

    Gradient descent holds ``W(0)``, ``W(k)``, the gradient and its scaled copy (``4 m d``),
    the pre-activations, ``ReLU`` of them and the pattern ``S`` with ``S(0)`` and their
    comparison (about ``3 n m``); ``H∞``, ``H(0)``, their difference and ``eigh``'s
    work space (``6 n²``), the kernel prediction (``2 (steps + 1) n``) and the data.
    At ``n = d = 1000`` this is about ``7 · 8 · 1000 m`` bytes: 0.06 GB at ``m = 1000``,
    3.6 GB at ``m = 64000``.
    """
    n, d, m, steps = (positive_int(k, v) for k, v in (("n", n), ("d", d), ("m", m), ("steps", steps)))
    return FLOAT_BYTES * (4 * m * d + 3 * n * m + 6 * n * n + 2 * (steps + 1) * n + 2 * n * d)


def du_rate_point(params: Mapping[str, Any]) -> dict[str, Any]:
    """Train du2019gradient's two-layer ReLU network by gradient descent, beside its kernel.

    Inputs ``X`` uniform on the unit sphere of ``R^d`` (:func:`zlnotes.sphere_data`, generator
    ``[seed, 14, 0]``), labels standard normal (``[seed, 14, 1]``), ``w_r ~ N(0, I)`` and
    ``a_r = ±1`` (:func:`zlnotes.two_layer_init`, ``[seed, 14, 3, m, draw]``): chapter 14's
    seeds, so its runs are points of this sweep. The data depend on ``seed``, ``n`` and
    ``d`` only, so a curve over ``m`` or ``draw`` is drawn for one data set.

    Step size: ``η = eta_factor / λ_max(H∞)`` on du2019gradient's loss ``L = ½ Σ_i (u_i −
    y_i)²``, a sum over the data; on the book's mean cost ``C = L/n`` the same step is
    ``n η``. ``eta_factor < 1`` keeps every factor ``1 − η λ_i`` of the kernel dynamics in
    ``[0, 1)``; their theorem asks for the far smaller ``η = O(λ₀/n²)``.

    Memory: :func:`du_rate_memory`, about ``56 · n m`` bytes at ``n = d``: 3.6 GB for the
    ``paper`` preset's widest point (``n = d = 1000``, ``m = 64000``), so several points fit
    in 24 GiB side by side (measured: a peak resident size of 3.2 GB for that point, 0.14 GB
    at ``m = 1000``, Python included). Time: two ``n × d × m`` products per step; one
    ``paper`` point at ``m = 1000`` took 27 s of CPU (52 s wall on two shared cores), and the
    time grows like ``m``: about 30 CPU minutes at ``m = 64000``, 6 CPU hours for the preset.

    Parameters
    ----------
    params
        ``n``, ``d``, ``m``, ``seed`` (the data), ``draw`` (the initialisation),
        ``eta_factor`` (in ``(0, 2)``) and ``steps``.

    Returns
    -------
    dict
        ``lambda_0`` and ``lambda_max`` of ``H∞``; ``eta`` (on ``L``); ``h0_distance``
        (``‖H(0) − H∞‖₂``); ``lambda_min_H0`` and ``lambda_min_HT`` (``λ_min`` of the Gram
        matrix ``H`` at the start and after ``steps`` steps); ``record_steps``
        (:func:`du_rate_steps`) and at those steps: ``loss`` (``L(k)``), ``kernel_loss``
        (``½|(I − ηH∞)^k r₀|²``, :func:`zlnotes.kernel_losses`), ``pattern_change`` (fraction
        of changed activation patterns) and ``max_move`` (``max_r ‖w_r(k) − w_r(0)‖``);
        the last entries are the values at the end.
    """
    _require(params, ("n", "d", "m", "seed", "draw", "eta_factor", "steps"), "a du_rate point")
    n, d, m = positive_int("n", params["n"]), positive_int("d", params["d"]), positive_int("m", params["m"])
    seed, draw = nonnegative_int("seed", params["seed"]), nonnegative_int("draw", params["draw"])
    factor = real_scalar("eta_factor", params["eta_factor"], lo=0.0, lo_open=True, hi=2.0, hi_open=True)
    steps = positive_int("steps", params["steps"])
    if n < 2:
        raise ValueError(f"n must be at least 2 (lambda_0 compares inputs); got {n}")
    X = sphere_data(n, d, rng=np.random.default_rng([seed, 14, 0]))
    y = np.random.default_rng([seed, 14, 1]).standard_normal(n)
    H_inf = relu_gram_limit(X)
    lam = np.linalg.eigvalsh(H_inf)
    eta = factor / float(lam[-1])
    W, a = two_layer_init(m, d, rng=np.random.default_rng([seed, 14, 3, m, draw]))
    H0 = two_layer_gram(W, X)
    run = two_layer_gd(X, y, W, a, eta, steps)
    kernel = kernel_losses(H_inf, two_layer_output(W, a, X) - y, eta, steps)
    ks = du_rate_steps(steps)
    return {
        "lambda_0": float(lam[0]),
        "lambda_max": float(lam[-1]),
        "eta": eta,
        "h0_distance": float(np.linalg.norm(H0 - H_inf, 2)),
        "lambda_min_H0": float(np.linalg.eigvalsh(H0)[0]),
        "lambda_min_HT": float(np.linalg.eigvalsh(two_layer_gram(run.W, X))[0]),
        "record_steps": ks,
        "loss": run.loss[ks].tolist(),
        "kernel_loss": kernel[ks].tolist(),
        "pattern_change": run.pattern_change[ks].tolist(),
        "max_move": run.max_move[ks].tolist(),
    }


PAPER_WIDTHS: tuple[int, ...] = tuple(1000 * 2**k for k in range(7))
"""Widths ``m`` of the ``du_rate`` ``paper`` preset, 1000 to 64000 at ``n = d = 1000``."""


def _du_grid(
    sizes: Sequence[tuple[int, int]], widths: Sequence[int], seeds: Sequence[int], draws: int, *, steps: int
) -> list[dict[str, Any]]:
    return [
        {"n": n, "d": d, "m": m, "seed": seed, "draw": draw, "eta_factor": 1.0, "steps": steps}
        for n, d in sizes for m in widths for seed in seeds for draw in range(draws)
    ]


DU_RATE = Experiment(
    name="du_rate",
    description="gradient descent on Du et al.'s two-layer ReLU network against the bound (1 - eta lambda_0/2)^k "
    "and the kernel prediction, with H(0) - H_inf, changed patterns and max |dw_r| (one run per point)",
    run=du_rate_point,
    presets={
        "tiny": _du_grid([(10, 5)], [50, 200], [0], 2, steps=30),
        "book": _du_grid([(50, 25), (100, 50)], [100, 200, 500, 1000, 2000], [0, 1, 2], 8, steps=100),
        "paper": _du_grid([(1000, 1000)], PAPER_WIDTHS, [0, 1], 3, steps=200),
    },
)
"""The ``du_rate`` sweep (chapter 14; ``paper``: their size ``n = d = 1000``)."""

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (DICHOTOMY, FULL_RANK_REGIONS, DU_RATE)}
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
