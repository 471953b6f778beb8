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
    with pytest.raises(ValueError, match="rng must be"):
        zl.generic_data(5, 3, rng=None)
