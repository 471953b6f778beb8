"""The Part V sweeps of zlnotes.book.experiments: `full_rank_regions` (chapter 15) and `du_rate` (chapter 14)."""

import json
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import zlnotes as zl
from zlnotes.book import chapters
from zlnotes.book import experiments as ex
from zlnotes.book.cli import main
from zlnotes.sweep import load_results

ROOT = Path(__file__).resolve().parents[2]


def _defaults(number: str) -> dict:
    """The default parameters of a chapter, read from its ``parameters`` cell."""
    (path,) = chapters.find_chapters([number], root=ROOT)
    return {p.name: p.default for p in chapters.read_parameters(path)}


def _sweep(name: str, out: Path) -> list[dict]:
    """Run the tiny preset of `name` through the command line into `out`; the records, checked."""
    assert main(["sweep", name, "--preset", "tiny", "--out", str(out), "--workers", "1"]) == 0
    records = load_results(out)
    keys = {zl.sweep.point_key(p) for p in ex.get_experiment(name).points("tiny")}
    assert sorted(r["key"] for r in records) == sorted(keys)
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
    return records


# ---------------------------------------------------------------------------- full_rank_regions


def _fr_point(**changes):
    return {"n": 30, "width": 4, "ratio": 0.5, "frozen_v": True, "trials": 8, "block": 1, "seed": 2} | changes


@pytest.mark.parametrize("changes", [{}, {"frozen_v": False, "ratio": 1.0, "n": 10, "width": 2, "block": 0}])
def test_a_full_rank_point_is_full_rank_grid_on_its_cell(changes):
    """The point is what full_rank_grid gives for that cell with the cell's generator, at both thresholds."""
    p = _fr_point(**changes)
    r = ex.full_rank_point(p)
    kw = {"trials": p["trials"], "ratio": p["ratio"], "frozen_v": p["frozen_v"]}
    rng = lambda: np.random.default_rng([p["seed"], 15, p["n"], p["width"], p["block"]])  # noqa: E731
    f32 = zl.full_rank_grid([p["n"]], [p["width"]], rng=rng(), tolerance="float32", **kw)
    f64 = zl.full_rank_grid([p["n"]], [p["width"]], rng=rng(), tolerance="float64", **kw)
    assert r["sigma_ratio"] == f32.sigma_ratio[0, 0].tolist()
    assert r["full_rank"] == round(f32.full_rank[0, 0] * p["trials"])
    assert r["full_rank_float64"] == round(f64.full_rank[0, 0] * p["trials"])
    assert r["no_dead_point"] == round(f32.no_dead_point[0, 0] * p["trials"])
    assert r["d0"] == f32.d0[0] and r["rtol"] == f32.rtol[0, 0] and r["rtol_float64"] == f64.rtol[0, 0]
    assert r["columns"] == p["width"] * (r["d0"] + 1 + int(p["frozen_v"]))
    assert 0 < r["full_rank"] < p["trials"] or changes, "the default cell should be in the transition"


def test_blocks_of_a_cell_are_disjoint_draws():
    a, b = (ex.full_rank_point(_fr_point(block=k)) for k in (0, 1))
    assert not set(a["sigma_ratio"]) & set(b["sigma_ratio"]) - {0.0}
    assert ex.full_rank_point(_fr_point(block=0)) == a


def test_the_book_preset_is_chapter_15s_default_grid_and_block_0_of_the_paper_preset():
    c = _defaults("15")
    book, paper = ex.FULL_RANK_REGIONS.points("book"), ex.FULL_RANK_REGIONS.points("paper")
    cells = {(p["n"], p["width"]) for p in book}
    assert cells == {(n, w) for n in range(10, c["n_max"] + 1, 20) for w in range(1, c["max_width"] + 1)}
    assert len(book) == len(cells) and {p["block"] for p in book} == {0}
    assert all(p["trials"] == c["trials"] and p["ratio"] == c["ratio"] and p["frozen_v"] == c["frozen_v"]
               and p["seed"] == c["seed"] for p in book)
    paper_keys = {zl.sweep.point_key(p) for p in paper}
    assert {zl.sweep.point_key(p) for p in book} <= paper_keys
    per_cell = Counter()
    for p in paper:
        per_cell[p["n"], p["width"]] += p["trials"]
    assert set(per_cell) == cells and set(per_cell.values()) == {100}  # the paper's 100 draws per cell


def test_full_rank_regions_tiny_end_to_end(tmp_path):
    """The tiny preset through `zlnotes sweep`; the heatmap sums each cell's blocks; one point rerun agrees."""
    records = _sweep("full_rank_regions", tmp_path / "fr")
    heat = ex.full_rank_heatmap(records)
    tiny = ex.FULL_RANK_REGIONS.points("tiny")
    assert heat.ns.tolist() == sorted({p["n"] for p in tiny})
    assert heat.widths.tolist() == sorted({p["width"] for p in tiny})
    for i, w in enumerate(heat.widths):
        for j, n in enumerate(heat.ns):
            blocks = [p for p in tiny if p["n"] == n and p["width"] == w]
            sig = np.concatenate([
                zl.full_rank_grid([n], [w], trials=p["trials"], rng=ex.full_rank_cell_rng(p["seed"], n, w, p["block"]),
                                  ratio=p["ratio"], frozen_v=p["frozen_v"]).sigma_ratio[0, 0]
                for p in blocks
            ])
            cell = next(r["result"] for r in records if r["params"]["n"] == n and r["params"]["width"] == w)
            assert heat.trials[i, j] == sig.size
            assert heat.full_rank[i, j] == np.mean(sig > cell["rtol"])
            assert heat.full_rank_float64[i, j] == np.mean(sig > zl.gram_rtol(int(n)))
    assert np.any(heat.full_rank > 0) and np.any(heat.full_rank < 1)
    stored = records[0]
    assert json.loads(json.dumps(ex.full_rank_point(stored["params"]))) == stored["result"]


def test_full_rank_heatmap_refuses_mixed_failed_or_repeated_records(tmp_path):
    records = _sweep("full_rank_regions", tmp_path / "fr")
    with pytest.raises(ValueError, match="appears twice"):
        ex.full_rank_heatmap(records + records[:1])
    other = dict(records[0], params=dict(records[0]["params"], seed=7, block=9))
    with pytest.raises(ValueError, match="records mix"):
        ex.full_rank_heatmap(records + [other])
    failed = dict(records[0], status="error", result=None, error="ValueError: boom")
    with pytest.raises(ValueError, match="failed"):
        ex.full_rank_heatmap([failed] + records[1:])


def test_a_full_rank_point_refuses_bad_parameters():
    with pytest.raises(ValueError, match="a full_rank_regions point needs block"):
        ex.full_rank_point({k: v for k, v in _fr_point().items() if k != "block"})
    with pytest.raises(ValueError, match="block must be an integer >= 0"):
        ex.full_rank_point(_fr_point(block=-1))
    with pytest.raises(TypeError, match="frozen_v must be True or False"):
        ex.full_rank_point(_fr_point(frozen_v=1))


# ---------------------------------------------------------------------------- du_rate


def _du_point(**changes):
    return {"n": 12, "d": 6, "m": 300, "seed": 1, "draw": 2, "eta_factor": 1.0, "steps": 40} | changes


def test_record_steps_are_integers_about_ten_per_decade():
    assert ex.du_rate_steps(100) == [0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100]
    assert ex.du_rate_steps(7) == [0, 1, 2, 3, 4, 5, 6, 7]
    ks = ex.du_rate_steps(200)
    assert ks[0] == 0 and ks[-1] == 200 and ks == sorted(set(ks)) and 20 <= len(ks) <= 25


def test_a_du_rate_point_is_chapter_14s_computation():
    """A point computed directly as chapter 14 computes one run, from the same seeds."""
    p = _du_point()
    r = ex.du_rate_point(p)
    n, d, m, s = p["n"], p["d"], p["m"], p["seed"]
    X = zl.sphere_data(n, d, rng=np.random.default_rng([s, 14, 0]))
    y = np.random.default_rng([s, 14, 1]).standard_normal(n)
    H_inf = zl.relu_gram_limit(X)
    lam = np.linalg.eigvalsh(H_inf)
    eta = p["eta_factor"] / lam[-1]
    W, a = zl.two_layer_init(m, d, rng=np.random.default_rng([s, 14, 3, m, p["draw"]]))
    run = zl.two_layer_gd(X, y, W, a, eta, p["steps"])
    kernel = zl.kernel_losses(H_inf, zl.two_layer_output(W, a, X) - y, eta, p["steps"])
    ks = r["record_steps"]
    assert ks == ex.du_rate_steps(p["steps"])
    assert r["lambda_0"] == lam[0] and r["lambda_max"] == lam[-1] and r["eta"] == eta
    assert r["loss"] == run.loss[ks].tolist() and r["kernel_loss"] == kernel[ks].tolist()
    assert r["pattern_change"] == run.pattern_change[ks].tolist() and r["max_move"] == run.max_move[ks].tolist()
    assert r["h0_distance"] == np.linalg.norm(zl.two_layer_gram(W, X) - H_inf, 2)
    assert r["lambda_min_HT"] == np.linalg.eigvalsh(zl.two_layer_gram(run.W, X))[0]
    # consistency of the record: both curves start at L(0) = ½|r₀|²; nothing moved at k = 0
    assert abs(r["kernel_loss"][0] - r["loss"][0]) <= 1e-12 * r["loss"][0]
    assert r["pattern_change"][0] == 0 and r["max_move"][0] == 0
    assert r["loss"][-1] < 1e-3 * r["loss"][0]  # lambda_0 > 0 and m = 300 >> n: the run converges


def test_du_rate_points_depend_on_their_seeds_only():
    base = ex.du_rate_point(_du_point(steps=3))
    assert ex.du_rate_point(dict(reversed(list(_du_point(steps=3).items())))) == base
    wider = ex.du_rate_point(_du_point(steps=3, m=301))
    other_draw = ex.du_rate_point(_du_point(steps=3, draw=3))
    other_data = ex.du_rate_point(_du_point(steps=3, seed=2))
    assert wider["lambda_0"] == other_draw["lambda_0"] == base["lambda_0"] != other_data["lambda_0"]
    assert other_draw["loss"] != base["loss"]


def test_the_book_preset_holds_chapter_14s_runs_and_the_paper_preset_is_their_size():
    c = _defaults("14")
    book = {zl.sweep.point_key(p) for p in ex.DU_RATE.points("book")}
    chapter = [{"n": c["n"], "d": c["d"], "m": m, "seed": c["seed"], "draw": s, "eta_factor": c["lr"],
                "steps": c["steps"]} for m in c["widths"] for s in range(c["draws"])]
    assert {zl.sweep.point_key(p) for p in chapter} <= book
    assert all(50 <= p["n"] <= 100 and p["m"] <= 2000 for p in ex.DU_RATE.points("book"))
    paper = ex.DU_RATE.points("paper")
    assert {(p["n"], p["d"]) for p in paper} == {(1000, 1000)}
    assert len({(p["seed"], p["draw"]) for p in paper}) >= 4
    widest = max(ex.du_rate_memory(p["n"], p["d"], p["m"], p["steps"]) for p in paper)
    assert widest < 4 * 2**30  # the docstring's 3.6 GB: six such points fit in 24 GiB


@pytest.mark.parametrize("n, d, m", [(40, 20, 1500), (100, 100, 600)])
def test_du_rate_memory_bounds_the_measured_peak(n, d, m):
    """numpy's allocations are traced by tracemalloc: the estimate bounds the peak (how tight it
    is depends on numpy's temporaries, so only the bound is a test)."""
    p = _du_point(n=n, d=d, m=m, steps=3)
    tracemalloc.start()
    try:
        ex.du_rate_point(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = ex.du_rate_memory(n, d, m, p["steps"])
    assert peak <= estimate, (peak, estimate)


def test_du_rate_tiny_end_to_end(tmp_path):
    records = _sweep("du_rate", tmp_path / "du")
    for record in records:
        r = record["result"]
        assert len(r["loss"]) == len(r["kernel_loss"]) == len(r["record_steps"]) == len(r["max_move"])
        assert r["lambda_0"] > 0 and r["loss"][-1] < r["loss"][0]
    stored = records[-1]
    assert json.loads(json.dumps(ex.du_rate_point(stored["params"]))) == stored["result"]


def test_a_du_rate_point_refuses_bad_parameters():
    with pytest.raises(ValueError, match="a du_rate point needs draw"):
        ex.du_rate_point({k: v for k, v in _du_point().items() if k != "draw"})
    with pytest.raises(ValueError, match=r"eta_factor must be a finite real number in \(0.0, 2.0\)"):
        ex.du_rate_point(_du_point(eta_factor=2.0))
    with pytest.raises(ValueError, match="n must be at least 2"):
        ex.du_rate_point(_du_point(n=1))


def test_the_registry_knows_both():
    assert ex.get_experiment("full_rank_regions") is ex.FULL_RANK_REGIONS
    assert ex.get_experiment("du_rate") is ex.DU_RATE
