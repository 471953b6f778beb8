import numpy as np
import pytest

import zlnotes as zl


def relative_error(a, b) -> float:
    """max |a − b| / max(|b|, tiny), over all entries."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def central_difference(fun, Z, h):
    """Jacobian of ``fun: ℝ^K → ℝ^m`` at ``Z`` by central differences, shape (m, K)."""
    cols = []
    for k in range(Z.size):
        e = np.zeros_like(Z)
        e[k] = h
        cols.append((np.ravel(fun(Z + e)) - np.ravel(fun(Z - e))) / (2 * h))
    return np.stack(cols, axis=1)


@pytest.fixture
def small_problem():
    """A 3 → (5, 4) → 2 tanh network on 6 samples."""
    arch = zl.Architecture(3, (5, 4), 2, "tanh")
    net = zl.Network.init(arch, rng=11)
    X = np.random.default_rng(12).standard_normal((6, 3))
    Y = np.random.default_rng(13).standard_normal((6, 2))
    return net, X, Y
