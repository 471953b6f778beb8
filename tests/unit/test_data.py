import numpy as np
import pytest

import zlnotes as zl


def test_generic_data_is_seeded_and_shaped():
    a = zl.generic_data(10, 4, 2, rng=3)
    b = zl.generic_data(10, 4, 2, rng=np.random.default_rng(3))
    assert np.array_equal(a.X, b.X) and np.array_equal(a.Y, b.Y)
    assert a.X.shape == (10, 4) and a.Y.shape == (10, 2) and a.n_samples == 10
    assert np.array_equal(a.labels, np.arange(10))
    assert np.linalg.matrix_rank(zl.generic_data(4, 10, rng=0).X) == 4  # general position


def test_generic_data_with_classes():
    d = zl.generic_data(50, 3, 4, rng=1, n_classes=3)
    assert d.label_vectors.shape == (3, 4)
    assert np.linalg.matrix_rank(d.label_vectors) == 3
    assert np.array_equal(d.Y, d.label_vectors[d.labels])
    assert set(d.labels) <= {0, 1, 2}


def test_generic_data_bad_input():
    with pytest.raises(ValueError, match="n_classes must be <= output_dim=2"):
        zl.generic_data(5, 3, 2, rng=0, n_classes=3)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1"):
        zl.generic_data(0, 3, rng=0)
    with pytest.raises(TypeError, match="rng must be"):
        zl.generic_data(5, 3, rng=None)
    with pytest.raises(ValueError, match="rng must be a numpy Generator or a seed >= 0"):
        zl.generic_data(5, 3, rng=-1)
    with pytest.raises(TypeError, match="n_classes must be an integer >= 1; got float"):
        zl.generic_data(5, 3, 2, rng=0, n_classes=2.0)


# --- the same bits on every machine -----------------------------------------------------------
#
# Every generator draws with numpy's Generator and then uses only correctly rounded operations
# (+, −, ×, ÷, sqrt, comparisons), never numpy's `**`, `exp` or `log` loops, whose last bits
# differ between SIMD levels (AVX2 against AVX-512). So its output is the same bits on every
# x86-64 machine, whatever numpy's SIMD level and OpenBLAS's kernel: the fingerprints below were
# computed once and were the same with numpy's native AVX-512 loops and OpenBLAS SkylakeX,
# with X86_V4 disabled and OpenBLAS Haswell, and with numpy at its SSE4.2 baseline and
# OpenBLAS Prescott or Sandybridge. A mismatch means a generator changed or stopped being
# portable.


def _fingerprint(*arrays) -> str:
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()[:16]


def _generated():
    from zlnotes.book.experiments import DATA_FAMILIES, dichotomy_data

    d = zl.generic_data(20, 7, 3, rng=5)
    yield "generic_data", (d.X, d.Y, d.labels)
    d = zl.generic_data(20, 7, 3, rng=5, n_classes=2)
    yield "generic_data classes", (d.X, d.Y, d.labels)
    for M in (2, 3, 5):
        d = zl.clustered_data(10, 3, M, radius=0.1, rng=7)
        yield f"clustered_data M={M}", (d.X, d.Y, d.labels)
    d = zl.clustered_data(10, 3, 4, 5, radius=0.1, rng=7)
    yield "clustered_data Q=5", (d.X, d.Y, d.labels)
    for act in ("relu", "tanh"):
        yield f"Network.init {act}", (zl.Network.init(zl.Architecture(4, (6, 5), 2, act), 3).flat(),)
    for family in ("generic", "clustered"):
        d = dichotomy_data({"data": family, **DATA_FAMILIES[family], "seed": 1})
        yield f"dichotomy_data {family}", (d.X, d.Y)


FINGERPRINTS = {
    "generic_data": "678326e33b15e0e4",
    "generic_data classes": "b3c1058d610beb03",
    "clustered_data M=2": "599204efe294feb3",
    "clustered_data M=3": "bc38605e34c6f3ae",
    "clustered_data M=5": "9577140ffba50e87",
    "clustered_data Q=5": "1f1c6a43014a788b",
    "Network.init relu": "9fdac041269a69d7",
    "Network.init tanh": "230f9152d0cdd97f",
    "dichotomy_data generic": "b353068341b07b71",
    "dichotomy_data clustered": "d9b9ae0a5b6af9ec",
}


def test_generators_give_the_same_bits_on_every_machine():
    got = {name: _fingerprint(*arrays) for name, arrays in _generated()}
    assert got == FINGERPRINTS


def test_clustered_radii_are_uniform_in_the_ball():
    """The radius is the largest of M uniforms, whose law is that of U^(1/M): P(r ≤ t) = t^M."""
    M, n = 3, 20000
    d = zl.clustered_data(n, 1, M, radius=1.0, rng=11)
    r = np.linalg.norm(d.X - d.X.mean(axis=0), axis=1)  # distance to (nearly) the generating mean
    for t in (0.5, 0.8, 0.95):
        assert abs(np.mean(r <= t) - t**M) < 0.02  # binomial sd <= 0.0036 at n = 20000
