"""Tests of zlnotes.sweep and `zlnotes sweep`, on the test-only experiments in sweep_fixtures.py."""

from __future__ import annotations

import fcntl
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sweep_fixtures as fx

import zlnotes
from zlnotes import sweep
from zlnotes.book.cli import main
from zlnotes.book.experiments import get_experiment
from zlnotes.sweep import Experiment, RepairWarning, SweepError, TornLineWarning, load_results, point_key, run_sweep

HERE = Path(__file__).resolve().parent
PROCESS_TIMEOUT = 120
"""Seconds a `zlnotes sweep` subprocess may take: it needs ~3 s; a busy machine may be much slower."""


def outcomes(path: Path) -> dict[str, tuple[Any, ...]]:
    """key -> (params, status, result) of every record as stored, for exact comparisons between runs.

    Read without decoding, so a NaN (stored as "nan") compares equal to itself; equal
    stored floats are bit-identical floats (``repr`` round-trips).
    """
    load_results(path)  # the file passes load_results' checks
    records = [json.loads(line) for line in (Path(path) / "results.jsonl").read_text().splitlines()]
    return {r["key"]: (r["params"], r["status"], r["result"]) for r in records}


def raw_keys(path: Path) -> Counter[str]:
    """How often each key occurs in results.jsonl, read without load_results' checks."""
    return Counter(json.loads(line)["key"] for line in (path / "results.jsonl").read_text().splitlines())


def grid_keys(experiment: Experiment, preset: str = "tiny") -> set[str]:
    return {point_key(p) for p in experiment.points(preset)}


@pytest.fixture(scope="module")
def fast_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, ...]]:
    """FAST/tiny run point by point in this process: the reference every other way must match."""
    out = tmp_path_factory.mktemp("fast_reference")
    run_sweep(fx.FAST, "tiny", out, workers=1, progress=False)
    return outcomes(out)


CLI = [sys.executable, "-c", "import sys, sweep_fixtures; sys.exit(sweep_fixtures.cli(sys.argv[1:]))"]
"""`zlnotes` with the test experiments registered, as a subprocess command."""


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test experiments in the registry, by name, for the duration of a test."""
    from zlnotes.book import experiments

    monkeypatch.setattr(experiments, "EXPERIMENTS", {**experiments.EXPERIMENTS, **fx.REGISTRY})


def subprocess_env() -> dict[str, str]:
    """The environment of a `zlnotes sweep` subprocess: sweep_fixtures importable, one BLAS thread."""
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


# -- keys and experiments ---------------------------------------------------------------


def test_point_key_is_sorted_readable_and_order_independent() -> None:
    key = point_key({"width": 8, "seed": 0, "data": "generic", "depth": 2})
    assert key == "data=generic,depth=2,seed=0,width=8"
    assert point_key({"depth": 2, "width": 8, "data": "generic", "seed": 0}) == key


def test_point_key_spells_types_exactly() -> None:
    import numpy as np

    assert point_key({"lr": 0.1, "x": 1.0, "n": 1, "flag": True}) == "flag=True,lr=0.1,n=1,x=1.0"
    assert point_key({"lr": 1 / 3}) == "lr=0.3333333333333333"  # repr: every float exact
    # numpy scalars become the Python scalars they equal
    assert point_key({"lr": np.float64(0.1), "n": np.int64(1), "flag": np.bool_(True)}) == "flag=True,lr=0.1,n=1"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": float("nan")}, "parameter 'lr' must be finite"),
        ({"data": "a,b"}, "parameter 'data': a string value may not contain"),
        ({"a=b": 1}, "parameter names must be non-empty strings"),
        ({"widths": [1, 2]}, "parameter 'widths' must be an int, float, str or bool; got list"),
    ],
)
def test_point_key_refuses_values_that_are_not_plain_scalars(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        point_key(params)


def test_points_names_the_unknown_preset_and_the_valid_ones() -> None:
    assert fx.FAST.points("tiny")[0] == {"label": "generic", "n": 60, "seed": 0, "sleep": 0.0}
    with pytest.raises(
        ValueError, match=r"preset 'huge' is not defined for experiment 'fast'; valid presets: tiny, book"
    ):
        fx.FAST.points("huge")


def test_points_refuses_duplicate_keys() -> None:
    twice = Experiment("twice", "", fx.seeded_numbers, {"tiny": [{"seed": 1, "n": 2}, {"n": 2, "seed": 1}]})
    with pytest.raises(ValueError, match=r"points 0 and 1 have the same key 'n=2,seed=1'"):
        twice.points("tiny")


def test_get_experiment_resolves_registered_names_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``module:attribute`` name is an unknown name: its module is never imported (no side effects)."""
    assert get_experiment("fast") is fx.FAST
    marker = tmp_path / "imported"
    (tmp_path / "planted_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nfrom sweep_fixtures import FAST\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("planted_module:FAST", "sweep_fixtures:FAST", "os:system", "planted_module", "FAST"):
        with pytest.raises(ValueError, match=rf"unknown experiment '{name}'; known experiments: .*dichotomy"):
            get_experiment(name)
    assert not marker.exists() and "planted_module" not in sys.modules


def test_register_experiment_refuses_another_under_a_known_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from zlnotes.book import experiments

    monkeypatch.setattr(experiments, "EXPERIMENTS", dict(experiments.EXPERIMENTS))
    assert experiments.register_experiment(fx.FAST) is fx.FAST and get_experiment("fast") is fx.FAST
    assert experiments.register_experiment(fx.FAST) is fx.FAST  # the same one again: no change
    other = Experiment("fast", "", fx.seeded_numbers, {"tiny": [{"seed": 1, "n": 2, "label": "x"}]})
    with pytest.raises(ValueError, match="experiment name 'fast' is already registered"):
        experiments.register_experiment(other)
    with pytest.raises(TypeError, match="experiment must be a zlnotes.sweep.Experiment; got str"):
        experiments.register_experiment("fast")  # type: ignore[arg-type]


def test_get_experiment_lists_the_known_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from zlnotes.book import experiments

    monkeypatch.setattr(experiments, "EXPERIMENTS", {"fast": fx.FAST, "slow": fx.SLOW})
    assert get_experiment("slow") is fx.SLOW
    with pytest.raises(ValueError, match="unknown experiment 'nope'; known experiments: fast, slow"):
        get_experiment("nope")


def test_the_engine_takes_an_experiment_not_a_name(tmp_path: Path) -> None:
    """The sweep engine never looks an experiment up by name: that is the book's registry's job."""
    with pytest.raises(TypeError, match="experiment must be a zlnotes.sweep.Experiment; got str"):
        run_sweep("fast", "tiny", tmp_path / "out", workers=1)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


# -- running, resuming, provenance ------------------------------------------------------


def test_run_resume_and_manifest(tmp_path: Path, fast_reference: dict) -> None:
    summary = run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    assert (summary.total, summary.already_done, summary.run_now, summary.failed, summary.errors) == (6, 0, 6, 0, 0)
    assert not summary.repaired and summary.results == tmp_path / "results.jsonl"
    assert outcomes(tmp_path) == fast_reference
    record = load_results(tmp_path)[0]
    row = record["result"]["first_row"]  # a numpy array in the result: stored as a list of floats
    assert isinstance(row, list) and len(row) == 3 and all(type(x) is float for x in row)
    assert (
        record["zlnotes_version"] == zlnotes.__version__
        and record["elapsed_s"] >= 0
        and record["finished_at"].endswith("Z")
    )

    again = run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    assert (again.already_done, again.run_now) == (6, 0)
    assert raw_keys(tmp_path) == Counter(grid_keys(fx.FAST))

    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert (manifest["experiment"], manifest["preset"]) == ("fast", "tiny")
    assert manifest["grid"] == fx.FAST.points("tiny")
    for name in ("zlnotes_version", "commit", "date", "python", "numpy", "scipy", "platform"):
        assert name in manifest
    assert manifest["commit"] is None or len(manifest["commit"].removesuffix("+dirty")) == 40
    assert [run["workers"] for run in manifest["runs"]] == [1]  # the second call ran no points
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))  # the atomic write left none
    for record in load_results(tmp_path):  # each record: the commit its process saw (here the parent)
        assert record["commit"] is None or is_commit(record["commit"])
    assert manifest["commit"] is None or is_commit(manifest["commit"])


def is_commit(value: str) -> bool:
    sha = value.removesuffix("+dirty")
    return len(sha) == 40 and all(c in "0123456789abcdef" for c in sha)


def test_sweep_json_gets_a_new_files_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    finally:
        os.umask(old)
    assert (tmp_path / "sweep.json").stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600
    assert (tmp_path / "results.jsonl").stat().st_mode & 0o777 == 0o640


def test_each_record_has_the_commit_of_the_process_that_ran_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep.executors, "_git_commit", lambda: "parent")  # this process only; workers import their own
    run_sweep(fx.FAST, "tiny", tmp_path, workers=2, progress=False)
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert manifest["commit"] == manifest["runs"][0]["commit"] == "parent"
    for record in load_results(tmp_path):
        assert record["commit"] is None or is_commit(record["commit"])


def test_old_manifest_without_runs_is_resumed(tmp_path: Path) -> None:
    run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    del manifest["runs"]
    (tmp_path / "sweep.json").write_text(json.dumps(manifest))
    results = tmp_path / "results.jsonl"
    results.write_text("".join(results.read_text().splitlines(keepends=True)[:-1]))  # one point to run again
    assert run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False).run_now == 1
    assert len(json.loads((tmp_path / "sweep.json").read_text())["runs"]) == 1


def test_only_this_modules_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".sweep.json.ab_cd123.tmp").write_text("{")  # left by a crash inside the atomic write
    (tmp_path / ".results.jsonl.x1y2z3w4.tmp").write_text("")
    (tmp_path / ".notes.tmp").write_text("someone else's")
    (tmp_path / ".sweep.json.mine.tmp").write_text("not mkstemp's")
    run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == [".notes.tmp", ".sweep.json.mine.tmp"]


def test_local_pool_is_bit_identical_to_in_process(tmp_path: Path, fast_reference: dict) -> None:
    summary = run_sweep(fx.FAST, "tiny", tmp_path, workers=2, progress=False)
    assert summary.run_now == 6
    assert outcomes(tmp_path) == fast_reference


def test_manifest_of_another_sweep_is_refused(tmp_path: Path) -> None:
    run_sweep(fx.FAILING, "tiny", tmp_path, workers=1, progress=False)
    with pytest.raises(
        ValueError, match="holds a sweep of experiment 'failing', preset 'tiny', not 'fast', preset 'tiny'"
    ):
        run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    changed = Experiment("failing", "", fx.fails_on_seed_2, {"tiny": fx._grid(range(5), 10)})
    with pytest.raises(ValueError, match="over a different grid"):
        run_sweep(changed, "tiny", tmp_path, workers=1, progress=False)


def test_results_of_another_grid_without_manifest_are_refused(tmp_path: Path) -> None:
    run_sweep(fx.FAILING, "tiny", tmp_path, workers=1, progress=False)
    (tmp_path / "sweep.json").unlink()
    results = tmp_path / "results.jsonl"
    results.write_bytes(results.read_bytes() + b'{"key": "torn')  # a torn line, too: left as it is
    (tmp_path / ".sweep.json.abcd1234.tmp").write_text("")
    before = results.read_bytes()
    with pytest.raises(ValueError, match=r"holds 4 point\(s\) not in the grid of 'fast'"):
        run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    assert results.read_bytes() == before and not (tmp_path / "sweep.json").exists()
    assert (tmp_path / ".sweep.json.abcd1234.tmp").exists()  # a refused folder is not changed


def test_unparsable_scheduler_names_the_argument_and_leaves_out_alone(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match=r"^scheduler: .*'garbage'"):
        run_sweep(fx.FAST, "tiny", tmp_path / "out", scheduler="garbage", progress=False)
    assert not (tmp_path / "out").exists()


def test_unreachable_scheduler_is_a_sweep_error_and_leaves_out_alone(tmp_path: Path) -> None:
    pytest.importorskip("distributed")

    run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    (tmp_path / "results.jsonl").write_text("")  # points to run: a sweep would write
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(SweepError, match="cannot connect to the Dask scheduler at tcp://127.0.0.1:1"):
        run_sweep(fx.FAST, "tiny", tmp_path, scheduler="tcp://127.0.0.1:1", progress=False, scheduler_timeout=0.5)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    with pytest.raises(SweepError, match="cannot connect"):
        run_sweep(
            fx.FAST, "tiny", tmp_path / "new", scheduler="tcp://127.0.0.1:1", progress=False, scheduler_timeout=0.5
        )
    assert not (tmp_path / "new").exists()


def test_bad_inputs_are_value_errors_naming_the_argument(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="out must be the path of a folder; got None"):
        run_sweep(fx.FAST, "tiny", None, workers=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out must be the path of a folder; got ''"):
        run_sweep(fx.FAST, "tiny", "", workers=1)
    with pytest.raises(ValueError, match="preset must be a string naming a grid of experiment 'fast'; got"):
        fx.FAST.points(["tiny"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="preset must be a string"):
        run_sweep(fx.FAST, 5, tmp_path / "out", workers=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="preset 'tiny': a grid must be a list of parameter dicts; got int 5"):
        Experiment("x", "", fx.seeded_numbers, {"tiny": 5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="preset 'tiny': a grid must be a list"):
        Experiment("x", "", fx.seeded_numbers, {"tiny": "seed=1"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="preset 'tiny', point 1: a point must be a mapping"):
        Experiment("x", "", fx.seeded_numbers, {"tiny": [{"seed": 1}, 5]})  # type: ignore[list-item]
    with pytest.raises(ValueError, match="preset names must be non-empty strings"):
        Experiment("x", "", fx.seeded_numbers, {1: [{"seed": 1}]})  # type: ignore[dict-item]
    presets: dict = {"tiny": [{"seed": 1}]}
    changed = Experiment("x", "", fx.seeded_numbers, presets)
    presets["tiny"] = 5  # the mapping is not frozen: points checks again
    with pytest.raises(ValueError, match="a grid must be a list"):
        changed.points("tiny")
    for name in (":X", "sweep_fixtures:", ".sweep_fixtures:FAST", ":"):
        with pytest.raises(ValueError, match=r"unknown experiment"):
            get_experiment(name)
    with pytest.raises(ValueError, match=r"experiment name must be a non-empty string; got ''"):
        get_experiment("")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 0}, "workers must be an integer >= 1; got 0"),
        ({"workers": True}, "workers must be an integer >= 1; got True"),
        ({"workers": 2, "scheduler": "tcp://localhost:1"}, "workers and scheduler are exclusive"),
        ({"scheduler": ""}, "scheduler must be an address"),
    ],
)
def test_bad_arguments_name_the_argument(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_sweep(fx.FAST, "tiny", tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_folder_and_preset_must_exist(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="out must be a folder"):
        run_sweep(fx.FAST, "tiny", tmp_path / "file", workers=1)
    with pytest.raises(ValueError, match="preset 'huge' is not defined"):
        run_sweep(fx.FAST, "huge", tmp_path / "out", workers=1)


def test_unpicklable_run_needs_one_worker(tmp_path: Path) -> None:
    local = Experiment("local", "", lambda params: {"x": params["seed"]}, {"tiny": [{"seed": 1}]})
    with pytest.raises(ValueError, match="cannot be sent to worker processes"):
        run_sweep(local, "tiny", tmp_path, workers=2, progress=False)
    assert run_sweep(local, "tiny", tmp_path, workers=1, progress=False).run_now == 1


def test_a_locked_folder_is_refused(tmp_path: Path) -> None:
    with open(tmp_path / ".lock", "w") as f:
        f.write("12345\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        with pytest.raises(ValueError, match=r"is in use by another running sweep \(pid 12345\)"):
            run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    assert not (tmp_path / "results.jsonl").exists()
    assert run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False).run_now == 6  # lock released


def test_missing_distributed_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install -e \.\[distributed\]"):
        run_sweep(fx.FAST, "tiny", tmp_path / "out", scheduler="tcp://localhost:1", progress=False)
    assert not (tmp_path / "out").exists()


# -- what goes into results.jsonl -------------------------------------------------------


def test_non_finite_floats_round_trip(tmp_path: Path) -> None:
    run_sweep(fx.NON_FINITE, "tiny", tmp_path, workers=1, progress=False)
    for line in (tmp_path / "results.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"bare {name} in results.jsonl"))  # strict JSON
        assert '"nan"' in line and '"-inf"' in line
    for record in load_results(tmp_path):
        expected = fx.non_finite(record["params"])
        result = record["result"]
        assert math.isnan(result["nan"]) and math.isnan(result["nested"][1])
        assert (
            result["inf"] == math.inf and result["neg_inf"] == -math.inf and result["nested"][2]["deep"][0] == -math.inf
        )
        assert result["exact"] == expected["exact"] and result["nested"][2]["deep"][1] == expected["exact"]
        assert result["tiny"] == 5e-324 and result["none"] is None and result["flag"] is True


def test_reserved_strings_make_an_error_record(tmp_path: Path) -> None:
    summary = run_sweep(fx.RESERVED, "tiny", tmp_path, workers=1, progress=False)
    assert summary.failed == 1
    (record,) = load_results(tmp_path)
    assert (
        record["error"]
        == "ValueError: result['value'] is the string 'nan', which results.jsonl reserves for a non-finite float"
    )


def test_failing_points_are_recorded_and_retried_on_request(tmp_path: Path) -> None:
    summary = run_sweep(fx.FAILING, "tiny", tmp_path, workers=1, progress=False)
    assert (summary.run_now, summary.failed, summary.errors) == (4, 1, 1)
    (bad,) = [r for r in load_results(tmp_path) if r["status"] == "error"]
    assert bad["params"]["seed"] == 2 and bad["result"] is None
    assert bad["error"] == "ZeroDivisionError: seed 2 is cursed" and "fails_on_seed_2" in bad["traceback"]

    again = run_sweep(fx.FAILING, "tiny", tmp_path, workers=1, progress=False)
    assert (again.run_now, again.failed, again.errors) == (0, 0, 1)  # not retried by default

    retried = run_sweep(fx.FAILING, "tiny", tmp_path, workers=1, progress=False, retry_errors=True)
    assert (retried.already_done, retried.run_now, retried.failed, retried.errors) == (3, 1, 1, 1)
    assert raw_keys(tmp_path) == Counter(grid_keys(fx.FAILING))  # the retried key is still there once


def test_points_finished_before_the_pool_broke_are_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when as_completed hands over the broken future before finished ones."""
    import concurrent.futures

    finished: set[str] = set()

    def broken_first(fs: Any) -> Any:
        concurrent.futures.wait(fs)  # the pool broke: every future is done
        ok = [f for f in fs if f.exception() is None]
        finished.update(point_key(fs[f]) for f in ok)
        return iter([f for f in fs if f.exception() is not None] + ok)

    monkeypatch.setattr(concurrent.futures, "as_completed", broken_first)
    with pytest.raises(SweepError, match="a worker process died"):
        run_sweep(fx.DIES, "tiny", tmp_path, workers=2, progress=False)
    assert set(raw_keys(tmp_path)) == finished
    assert all(count == 1 for count in raw_keys(tmp_path).values())


def test_a_dying_worker_stops_the_sweep_but_keeps_finished_points(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="a worker process died"):
        run_sweep(fx.DIES, "tiny", tmp_path, workers=2, progress=False)
    done = raw_keys(tmp_path)
    assert set(done) <= grid_keys(fx.DIES) - {point_key(fx.DIES.points("tiny")[3])}
    assert all(count == 1 for count in done.values())


# -- torn lines and load_results --------------------------------------------------------


def test_torn_last_line_is_reported_and_repaired(
    tmp_path: Path, fast_reference: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    path = tmp_path / "results.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # a write cut short

    with pytest.warns(TornLineWarning, match="ends with an incomplete line"):
        assert len(load_results(tmp_path)) == 5

    with pytest.warns(RepairWarning, match=r"results\.jsonl ended with an incomplete line .*truncated it"):
        summary = run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    assert summary.repaired and (summary.already_done, summary.run_now) == (5, 1)
    assert capsys.readouterr().err == ""  # the library warns; it does not print
    assert raw_keys(tmp_path) == Counter(grid_keys(fx.FAST))
    assert outcomes(tmp_path) == fast_reference


def test_load_results_refuses_corruption_and_duplicates(tmp_path: Path) -> None:
    run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    path = tmp_path / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    assert len(load_results(path)) == 6  # the file itself, or its folder
    path.write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        load_results(path)
    path.write_text("".join(lines) + lines[0])
    with pytest.raises(ValueError, match="appears twice"):
        load_results(path)
    with pytest.raises(ValueError, match="appears twice"):
        run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)


# -- the command line -------------------------------------------------------------------


def test_cli_dry_run_prints_every_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["sweep", "fast", "--preset", "tiny", "--dry-run"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [point_key(p) for p in fx.FAST.points("tiny")]
    assert printed[0] == "label=generic,n=60,seed=0,sleep=0.0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fast", "--preset", "huge", "--out", "x"], "valid presets: tiny, book"),
        (["fast", "--preset", "tiny"], "--out DIR is required"),
        (
            ["fast", "--preset", "tiny", "--out", "x", "--workers", "0"],
            "workers must be an integer >= 1",
        ),
        (["fast", "--preset", "tiny", "--workers", "2", "--scheduler", "tcp://h:1"], "not allowed with"),
        (["sweep_fixtures:FAST", "--preset", "tiny", "--dry-run"], "unknown experiment 'sweep_fixtures:FAST'"),
    ],
)
def test_cli_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code: object = main(["sweep", *args])  # refused by run_sweep: one line
    except SystemExit as info:  # refused by argparse or the registry: usage and one line
        code = info.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_runs_and_reports_error_points(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    assert main(["sweep", "failing", "--preset", "tiny", "--out", out, "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert f"failing/tiny: 4 points, 0 already done, 4 run now (1 failed) -> {out}/results.jsonl" in captured.out
    assert "1 point(s) recorded as errors" in captured.err and "--retry-errors" in captured.err
    assert (
        main(["sweep", "fast", "--preset", "tiny", "--out", str(tmp_path / "ok"), "--workers", "1"]) == 0
    )


def test_cli_shows_the_repair_warning_as_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_sweep(fx.FAST, "tiny", out, workers=1, progress=False)
    path = out / "results.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # the last line loses its end
    assert main(["sweep", "fast", "--preset", "tiny", "--out", str(out), "--workers", "1"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1
    assert lines[0].startswith(f"warning: {path} ended with an incomplete line") and "truncated it" in lines[0]


def test_library_messages_name_no_command_line_flag() -> None:
    """Flags belong to the CLI: no string in the numerics or the sweep engine names one."""
    import re

    root = Path(zlnotes.__file__).parent
    sources = [p for p in root.rglob("*.py") if "book" not in p.relative_to(root).parts]
    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
    offenders = [f"{p.name}: {m}" for p in sources for m in flag.findall(p.read_text(encoding="utf-8"))]
    # git's own options, which the provenance module passes to git, are arguments, not messages
    git_options = {f"provenance.py: {o}" for o in ("--error-unmatch", "--porcelain", "--untracked-files")}
    assert [o for o in offenders if o not in git_options] == []


def test_kill_9_mid_run_then_resume(tmp_path: Path) -> None:
    """kill -9 the whole process group of a running sweep; rerunning completes it exactly."""
    reference_dir = tmp_path / "reference"
    run_sweep(fx.SLOW, "tiny", reference_dir, workers=1, progress=False)
    reference = outcomes(reference_dir)

    out = tmp_path / "out"
    command = [
        *CLI,
        "sweep",
        "slow",
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--workers",
        "2",
    ]
    process = subprocess.Popen(
        command, env=subprocess_env(), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    results, deadline = out / "results.jsonl", time.monotonic() + PROCESS_TIMEOUT
    try:
        while not (results.exists() and results.read_bytes().count(b"\n") >= 3):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the sweep wrote no 3 points in time"
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.communicate(timeout=PROCESS_TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    written = results.read_bytes().count(b"\n")
    assert 3 <= written < 24, "the sweep finished before it was killed"

    done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert f"slow/tiny: 24 points, {written} already done, {24 - written} run now" in done.stdout
    assert raw_keys(out) == Counter(grid_keys(fx.SLOW))  # every key exactly once
    assert outcomes(out) == reference


def test_dask_cluster_is_bit_identical(tmp_path: Path, fast_reference: dict) -> None:
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    # Workers of a real cluster cannot import a test module: ship its functions by value.
    cloudpickle.register_pickle_by_value(fx)
    try:
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster:
            summary = run_sweep(fx.FAST, "tiny", tmp_path, scheduler=cluster.scheduler_address, progress=False)
    finally:
        cloudpickle.unregister_pickle_by_value(fx)
    assert summary.run_now == 6
    assert outcomes(tmp_path) == fast_reference
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert manifest["runs"][0]["scheduler"].startswith("tcp://") and manifest["runs"][0]["workers"] is None


def test_points_overlapping_in_a_dask_worker_run_single_threaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker with two threads whose BLAS default is 2: every point sees 1 thread, and the default is restored."""
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # the worker's default (Dask's nanny would make it 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    cloudpickle.register_pickle_by_value(fx)
    try:
        with distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
        ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
            assert set(client.run(fx.blas_thread_count).values()) == {2}
            summary = run_sweep(fx.THREADS, "tiny", tmp_path, scheduler=cluster.scheduler_address, progress=False)
            after = set(client.run(fx.blas_thread_count).values())
    finally:
        cloudpickle.unregister_pickle_by_value(fx)
    assert summary.run_now == 12 and summary.failed == 0
    assert {r["key"]: r["result"]["blas_threads"] for r in load_results(tmp_path)} == dict.fromkeys(
        grid_keys(fx.THREADS), 1
    )
    assert after == {2}  # the limit did not leak out of the points


def test_dichotomy_tiny_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The book's real experiment: every point of its tiny preset runs, resumes, and is bit-identical in-process."""
    experiments = pytest.importorskip("zlnotes.book.experiments")
    dichotomy = get_experiment("dichotomy")
    assert experiments.EXPERIMENTS["dichotomy"] is dichotomy
    out = tmp_path / "dichotomy"
    assert main(["sweep", "dichotomy", "--preset", "tiny", "--out", str(out), "--workers", "2"]) == 0
    records = load_results(out)
    assert Counter(r["key"] for r in records) == Counter(grid_keys(dichotomy))
    assert all(r["status"] == "ok" and r["result"] for r in records), [r["error"] for r in records]
    assert main(["sweep", "dichotomy", "--preset", "tiny", "--out", str(out)]) == 0
    assert "0 run now" in capsys.readouterr().out

    # one point again, in this process: bit-identical to the worker process's record
    key, stored = next(iter(outcomes(out).items()))
    one = Experiment("dichotomy", "", dichotomy.run, {"tiny": [stored[0]]})
    run_sweep(one, "tiny", tmp_path / "one", workers=1, progress=False)
    assert outcomes(tmp_path / "one") == {key: stored}
