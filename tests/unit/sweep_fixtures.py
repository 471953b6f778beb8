"""Test-only experiments for tests/unit/test_sweep.py, registered by name in the tests (``REGISTRY``).

Module-level so that worker processes import them by name (pytest puts tests/unit on
sys.path and multiprocessing passes sys.path on; subprocesses get it via PYTHONPATH).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from zlnotes.sweep import Experiment


def seeded_numbers(params: dict[str, Any]) -> dict[str, Any]:
    """A seeded BLAS-heavy computation (matrix product, eigenvalues), after an optional sleep."""
    time.sleep(params.get("sleep", 0.0))
    rng = np.random.default_rng(params["seed"])
    n = params["n"]
    A = rng.standard_normal((n, n))
    G = A @ A.T / n
    eig = np.linalg.eigvalsh(G)
    return {
        "trace": float(np.trace(G)),
        "eig_min": float(eig[0]),
        "eig_max": float(eig[-1]),
        "first_row": G[0, :3],  # a numpy array: stored as a list
        "n_positive": int(np.sum(eig > 0)),
        "label": params["label"],
    }


def fails_on_seed_2(params: dict[str, Any]) -> dict[str, Any]:
    """Like :func:`seeded_numbers`, but raises for seed 2."""
    if params["seed"] == 2:
        raise ZeroDivisionError("seed 2 is cursed")
    return seeded_numbers(params)


def non_finite(params: dict[str, Any]) -> dict[str, Any]:
    """Results holding NaN and infinities, nested, and floats that need all 17 digits."""
    x = 0.1 * params["seed"] + 1 / 3
    return {
        "nan": float("nan"),
        "inf": float("inf"),
        "neg_inf": -np.inf,  # a numpy float
        "nested": [1.0, float("nan"), {"deep": [float("-inf"), x]}],
        "exact": x,
        "tiny": 5e-324,
        "none": None,
        "flag": True,
    }


def returns_reserved_string(params: dict[str, Any]) -> dict[str, Any]:
    """A result that uses a string reserved for non-finite floats."""
    return {"value": "nan"}


def _grid(seeds: range, n: int, sleep: float = 0.0) -> list[dict[str, Any]]:
    return [{"seed": s, "n": n, "sleep": sleep, "label": "generic"} for s in seeds]


FAST = Experiment(
    name="fast",
    description="Seeded linear algebra, no sleep.",
    run=seeded_numbers,
    presets={"tiny": _grid(range(6), 60), "book": _grid(range(8), 120)},
)

SLOW = Experiment(
    name="slow",
    description="Seeded linear algebra after a 0.1 s sleep per point, so a run can be killed mid-way.",
    run=seeded_numbers,
    presets={"tiny": _grid(range(24), 40, sleep=0.1)},
)

FAILING = Experiment(
    name="failing",
    description="Seed 2 raises.",
    run=fails_on_seed_2,
    presets={"tiny": _grid(range(4), 10)},
)

NON_FINITE = Experiment(
    name="non_finite",
    description="NaN and infinities in results.",
    run=non_finite,
    presets={"tiny": [{"seed": 0}, {"seed": 1}]},
)

RESERVED = Experiment(
    name="reserved",
    description="A result with the string 'nan'.",
    run=returns_reserved_string,
    presets={"tiny": [{"seed": 0}]},
)

NOT_AN_EXPERIMENT = 42


def dies_on_seed_3(params: dict[str, Any]) -> dict[str, Any]:
    """Ends its worker process abruptly for seed 3 (never the test process itself)."""
    import multiprocessing
    import os

    if params["seed"] == 3:
        if multiprocessing.parent_process() is None:
            raise RuntimeError("dies_on_seed_3 must run in a worker process")
        os._exit(3)
    return seeded_numbers(params)


DIES = Experiment(
    name="dies", description="Seed 3 kills its worker.", run=dies_on_seed_3, presets={"tiny": _grid(range(4), 10)}
)


def blas_thread_count() -> int:
    """The BLAS thread count of this process now (0 without a BLAS threadpoolctl knows)."""
    from threadpoolctl import threadpool_info

    return max((info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"), default=0)


def blas_threads_seen(params: dict[str, Any]) -> dict[str, Any]:
    """The most BLAS threads this point saw, polled while it sleeps (so points overlap in a worker's threads)."""
    seen = blas_thread_count()
    deadline = time.monotonic() + params["sleep"]
    while time.monotonic() < deadline:
        time.sleep(0.01)
        seen = max(seen, blas_thread_count())
    return {"blas_threads": seen}


THREADS = Experiment(
    name="threads",
    description="Reports the BLAS thread count seen inside each point; points of unequal length overlap.",
    run=blas_threads_seen,
    presets={"tiny": [{"seed": s, "sleep": (0.05, 0.2, 0.12)[s % 3]} for s in range(12)]},
)



def sleeps(params: dict[str, Any]) -> dict[str, Any]:
    """Sleeps ``params["sleep"]`` seconds (so a worker is busy when its sweep is killed)."""
    time.sleep(params["sleep"])
    return {"seed": params["seed"]}


SLEEPY = Experiment(
    name="sleepy",
    description="One second of sleep per point: workers are mid-point when the sweep is killed.",
    run=sleeps,
    presets={"tiny": [{"seed": s, "sleep": 1.0} for s in range(40)]},
)

GATE_ENV = "ZLNOTES_TEST_GATE"
"""Environment variable naming the file :func:`gated` waits for."""


def gated(params: dict[str, Any]) -> dict[str, Any]:
    """Seed 0 at once; the others wait (at most 300 s) until the file named by ``$ZLNOTES_TEST_GATE`` exists.

    A waiting point first creates that file's name + ``.waiting``.
    """
    import os

    gate = os.environ.get(GATE_ENV)
    if params["seed"] and gate:
        open(gate + ".waiting", "a").close()  # tells the test this point has started
    deadline = time.monotonic() + 300
    while params["seed"] and gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"seed": params["seed"]}


GATED = Experiment(
    name="gated",
    description="Points after the first wait for a gate file: a test decides when the sweep writes again.",
    run=gated,
    presets={"tiny": [{"seed": s} for s in range(6)]},
)

REGISTRY = {e.name: e for e in (FAST, SLOW, FAILING, NON_FINITE, RESERVED, DIES, THREADS, SLEEPY, GATED)}
"""The test experiments by name, for the registry of zlnotes.book.experiments (see :func:`cli`)."""


def cli(argv: list[str]) -> int:
    """``zlnotes`` with the test experiments registered: what a subprocess test runs.

    ``python -c "import sys, sweep_fixtures; sys.exit(sweep_fixtures.cli(sys.argv[1:]))" sweep slow ...``
    """
    from zlnotes.book.cli import main
    from zlnotes.book.experiments import register_experiment

    for experiment in REGISTRY.values():
        register_experiment(experiment)
    return main(argv)
