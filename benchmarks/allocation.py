#!/usr/bin/env python
"""What reusing buffers buys: ``zl.CostFunction`` against per-call allocation, in one process.

numpy has no caching allocator. A temporary larger than glibc's mmap threshold is mapped,
page-faulted in and unmapped at every call; how often that happens depends on the
allocator's state (glibc raises the threshold after freeing a large mapped block, and trims
the heap when its top is free). This script measures, in one fresh process and interleaved
round by round:

- the gradient at the benchmark's sizes: a one-off ``zl.cost_gradient(net, X, Y)`` (which
  builds a ``CostFunction`` and its buffers each call) against one ``CostFunction`` reused
  with ``out=`` (as ``zl.gradient_descent`` calls it);
- gradient descent at the sizes of the book's sweep (chapter 09): ``zl.gradient_descent``
  against the same forward-Euler loop written with a fresh network and a one-off gradient at
  every step (``Z − lr · cost_gradient(Network.from_flat(arch, Z), X, Y)``, which is how
  ``gradient_descent`` worked before ``CostFunction``); the final parameters must agree bit
  for bit.

Run: ``benchmarks/.venv/bin/python benchmarks/allocation.py`` (or the book's ``.venv``);
it prints a Markdown table (committed as ``results/allocation.md``).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import zlnotes as zl  # noqa: E402
from bench import problem  # noqa: E402 - the benchmark's seeded problems

ROUNDS = 7


def per_call(fn, calls: int) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def old_style_descent(net: zl.Network, X: np.ndarray, Y: np.ndarray, lr: float, steps: int) -> np.ndarray:
    Z = net.flat()
    for _ in range(steps):
        Z = Z - lr * zl.cost_gradient(zl.Network.from_flat(net.arch, Z), X, Y)
    return Z


def main() -> None:
    lines = ["| case | per-call allocation | reused `CostFunction` | ratio |", "|---|---:|---:|---:|"]
    for size in ("medium", "large"):
        for act in ("tanh", "relu"):
            net, X, Y = problem(size, act)
            f, Z = zl.CostFunction(net.arch, X, Y), net.flat()
            g = np.empty_like(Z)
            assert np.array_equal(f(Z, out=g)[1], zl.cost_gradient(net, X, Y))
            calls = 50 if size == "medium" else 5
            fresh, reused = [], []
            for _ in range(ROUNDS):
                fresh.append(per_call(lambda: zl.cost_gradient(net, X, Y), calls))
                reused.append(per_call(lambda: f(Z, out=g), calls))
            a, b = statistics.median(fresh), statistics.median(reused)
            lines.append(f"| gradient, {size}/{act} (ms per call) | {a * 1e3:.2f} | {b * 1e3:.2f} | {a / b:.2f}× |")
    sweep = {  # chapter 09's data families (zlnotes.book.experiments.DATA_FAMILIES) at depth 3
        "generic-family size": dict(N=32, M=31, Q=16, width=20),
        "clustered-family size": dict(N=150, M=2, Q=3, width=10),
    }
    steps, lr = 4000, 0.01
    for name, p in sweep.items():
        rng = np.random.default_rng(0)
        X, Y = rng.standard_normal((p["N"], p["M"])), rng.standard_normal((p["N"], p["Q"]))
        net = zl.Network.init(zl.Architecture(p["M"], (p["width"],) * 3, p["Q"], "tanh"), 1)
        old, new = [], []
        for _ in range(3):
            t = time.perf_counter()
            Z_old = old_style_descent(net, X, Y, lr, steps)
            old.append(time.perf_counter() - t)
            t = time.perf_counter()
            final, _ = zl.gradient_descent(net, X, Y, lr, steps)
            new.append(time.perf_counter() - t)
            assert np.array_equal(final.flat(), Z_old), "gradient_descent must reproduce the plain loop bit for bit"
        a, b = statistics.median(old), statistics.median(new)
        lines.append(f"| {steps} gradient-descent steps, {name} N={p['N']}, M={p['M']}, Q={p['Q']}, widths [{p['width']}]×3, "
                     f"tanh, Gaussian data (s) "
                     f"| {a:.2f} | {b:.2f} | {a / b:.2f}× |")
    head = (f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} in one process (medians of {ROUNDS} interleaved rounds for "
            f"the gradient, 3 for descent; BLAS on one thread); python {platform.python_version()}, numpy {np.__version__}, "
            f"load average before the run {os.getloadavg()[0]:.2f}. The descent rows' final parameters agree bit for bit.")
    print(head + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
