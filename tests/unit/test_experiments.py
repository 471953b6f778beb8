"""The named experiments of zlnotes.book.experiments (the `dichotomy` sweep of chapter 09)."""

import numpy as np
import pytest

import zlnotes as zl
from zlnotes.book import experiments as ex

EXACT_FIT = 1e-18
"""Relative cost of an exact construction: rounding leaves ~1e-30 (see test_construction)."""


def _point(**changes):
    """A small dichotomy point (a few hundred steps), changed where asked."""
    base = {"data": "generic", **ex.DATA_FAMILIES["generic"], "depth": 1, "width": 4,
            "activation": "relu", "steps": 50, "lr_factor": 0.5, "seed": 3}
    if changes.get("data") == "clustered":
        base = {k: v for k, v in base.items() if k not in ex.DATA_FAMILIES["generic"]} | dict(
            ex.DATA_FAMILIES["clustered"]
        )
    return base | changes


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_widths_for_ratios_are_the_smallest_that_reach_each_ratio(depth):
    M, Q, N = 7, 3, 20
    ratios = np.geomspace(0.05, 20, 12)
    widths = ex.widths_for_ratios(depth, M, Q, N, ratios)
    K = lambda h: zl.Architecture(M, (h,) * depth, Q, "relu").num_params  # noqa: E731
    assert widths == sorted(set(widths))
    for r in ratios:
        h = next(w for w in widths if K(w) >= r * Q * N)  # the grid's width for this ratio
        assert h == 1 or K(h - 1) < r * Q * N


def test_the_data_depend_on_seed_and_sizes_only():
    a, b = ex.dichotomy_data(_point(width=4)), ex.dichotomy_data(_point(width=40, depth=3))
    assert np.array_equal(a.X, b.X) and np.array_equal(a.Y, b.Y)
    assert not np.array_equal(a.X, ex.dichotomy_data(_point(seed=4)).X)


def test_a_point_is_a_pure_function_of_its_parameters():
    p = _point()
    assert ex.dichotomy_point(p) == ex.dichotomy_point(dict(reversed(list(p.items()))))


def test_start_perturbation_moves_the_start_by_a_few_ulps_only():
    """``start_perturbation`` multiplies every initial parameter by 1 + k eps, |k| <= 4: the start
    fields move by rounding-sized amounts, differently for each i, and reproducibly."""
    p = _point(steps=5)
    plain = ex.dichotomy_point(p)
    nudged = [ex.dichotomy_point(p | {"start_perturbation": i}) for i in (0, 1)]
    assert nudged[0] == ex.dichotomy_point(p | {"start_perturbation": 0})
    assert nudged[0] != nudged[1] and nudged[0] != plain
    for n in nudged:
        for k in ("lr", "cost_start", "grad_norm_start"):
            assert abs(n[k] - plain[k]) <= 1e-13 * abs(plain[k])
    assert ex.dichotomy_point(p | {"start_perturbation": None}) == plain


@pytest.mark.parametrize(
    "data, depth, width", [("generic", 1, 3), ("generic", 2, 31), ("clustered", 3, 2), ("clustered", 1, 50)]
)
def test_rank_is_bounded_by_parameters_and_outputs(data, depth, width):
    r = ex.dichotomy_point(_point(data=data, depth=depth, width=width))
    rank = round(r["rank_ratio"] * r["QN"])
    assert rank <= min(r["K"], r["QN"])
    family = ex.DATA_FAMILIES[data]
    arch = zl.Architecture(family["input_dim"], (width,) * depth, family["output_dim"], "relu")
    assert r["K"] == arch.num_params and r["QN"] == family["n_samples"] * family["output_dim"]
    assert 0 <= r["range_fraction"] <= 1 + 1e-12
    assert r["cost"] <= r["cost_start"] or r["status"] == "diverged"


def test_constructions_apply_exactly_where_their_hypotheses_hold():
    N = ex.DATA_FAMILIES["generic"]["n_samples"]
    narrow = ex.dichotomy_point(_point(width=N - 2))
    assert narrow["construction"] is None and "width >= N - 1" in narrow["construction_note"]
    wide = ex.dichotomy_point(_point(width=N - 1, depth=2))
    assert wide["construction"] == "theorem 2.2" and wide["construction_cost"] < EXACT_FIT
    C = ex.DATA_FAMILIES["clustered"]["n_classes"]
    shallow = ex.dichotomy_point(_point(data="clustered", depth=C - 1, width=3))
    assert shallow["construction"] is None and f"depth >= {C}" in shallow["construction_note"]
    deep = ex.dichotomy_point(_point(data="clustered", depth=C + 1, width=3))
    assert deep["construction"] == "truncation" and deep["construction_cost"] < EXACT_FIT
    assert deep["ratio"] < 0.2  # zero loss far below K = QN: the point of the clustered family


def test_presets_span_the_threshold():
    for preset in ("tiny", "book", "full"):
        points = ex.DICHOTOMY.points(preset)
        assert {p["data"] for p in points} == set(ex.DATA_FAMILIES)
    book = ex.DICHOTOMY.points("book")
    ratios = [zl.Architecture(p["input_dim"], (p["width"],) * p["depth"], p["output_dim"], "relu").num_params
              / (p["n_samples"] * p["output_dim"]) for p in book]
    assert min(ratios) < 0.07 and 20 <= max(ratios) < 25
    assert sorted({p["depth"] for p in book}) == [1, 3, 5] and len({p["seed"] for p in book}) == 4


@pytest.mark.parametrize("depth, ratios, rule", [
    (0, [0.5], "depth must be"), (1, [np.inf], "ratios must be finite"), (1, [np.nan], "ratios must be finite"),
    (1, [5, 1], "increasing order"), (1, [], "ratios must be"), (1, [-1.0], "ratios must be"),
])
def test_widths_for_ratios_refuses_bad_input(depth, ratios, rule):
    with pytest.raises(ValueError, match=rule):
        ex.widths_for_ratios(depth, 3, 2, 10, ratios)


def test_a_point_without_its_parameters_is_refused():
    with pytest.raises(ValueError, match="params: a dichotomy point needs"):
        ex.dichotomy_point({"data": "generic"})
    with pytest.raises(ValueError, match="needs n_classes, radius_fraction"):
        ex.dichotomy_data(
            {k: v for k, v in _point(data="clustered").items() if k not in ("n_classes", "radius_fraction")}
        )


def test_bad_data_family_is_refused():
    with pytest.raises(ValueError, match="data must be 'generic' or 'clustered'"):
        ex.dichotomy_data(_point(data="digits"))
    with pytest.raises(ValueError, match="multiple of n_classes"):
        ex.dichotomy_data(_point(data="clustered", n_samples=151))


def test_the_registry_knows_dichotomy():
    from zlnotes.book.experiments import get_experiment

    assert get_experiment("dichotomy") is ex.DICHOTOMY


def test_clustered_data_satisfy_the_construction_condition_for_every_seed():
    """The radius is relative to h/3, so delta < h/3 holds whatever the seed draws."""
    for seed in range(50):
        data = ex.dichotomy_data(_point(data="clustered", seed=seed))
        assert zl.cluster_geometry(data.X, data.labels).satisfied
    with pytest.raises(ValueError, match="radius_fraction must be in"):
        ex.dichotomy_data(_point(data="clustered", radius_fraction=1.0))


def test_the_truncation_construction_needs_relu_by_definition_not_by_name():
    """A network whose activation is not ReLU gets no truncation construction, even one named "relu"."""
    import dataclasses

    from zlnotes.book.experiments import _construction

    C = ex.DATA_FAMILIES["clustered"]["n_classes"]
    params = _point(data="clustered", depth=C + 1, width=3)
    data = ex.dichotomy_data(params)
    M, Q = data.X.shape[1], data.Y.shape[1]
    relu = zl.activation("relu")
    impostor = dataclasses.replace(relu, value=lambda x: np.where(x > 0, x, 0.01 * x), params=(("slope", 0.01),))
    assert impostor.name == "relu" and impostor != relu
    for sigma in (zl.activation("leaky_relu"), zl.activation("leaky_relu", slope=0.5), impostor):
        name, net, note = _construction(data, zl.Architecture(M, (3,) * (C + 1), Q, sigma), params)
        assert name is None and net is None and "relu network" in note
    name, net, _ = _construction(data, zl.Architecture(M, (3,) * (C + 1), Q, relu), params)
    assert name == "truncation" and zl.cost(net, data.X, data.Y) < EXACT_FIT * zl.cost(
        zl.Network.init(net.arch, np.random.default_rng(0)), data.X, data.Y)
    leaky = ex.dichotomy_point(params | {"activation": "leaky_relu"})
    assert leaky["construction"] is None and "relu network" in leaky["construction_note"]
