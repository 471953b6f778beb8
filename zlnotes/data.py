"""Seeded training sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ._validation import as_generator, positive_int
from .memory import FLOAT_BYTES, require_memory
from .typing import Array

__all__ = ["Dataset", "generic_data"]



@dataclass(frozen=True)
class Dataset:
    """Inputs, targets and labels of one training set.

    Attributes
    ----------
    X : numpy.ndarray, shape (N, M)
        Inputs, one sample per row (the papers' ``x_{0,j}`` are its rows).
    Y : numpy.ndarray, shape (N, Q)
        Targets; row ``j`` is ``y_{ω(j)}``.
    labels : numpy.ndarray of int, shape (N,)
        ``ω(j)``, the class of sample ``j``.
    label_vectors : numpy.ndarray, shape (C, Q)
        ``y_1, …, y_C``: ``Y = label_vectors[labels]``.
    """

    X: Array
    Y: Array
    labels: NDArray[np.int64]
    label_vectors: Array

    @property
    def n_samples(self) -> int:
        """``N``."""
        return int(self.X.shape[0])


def generic_data(
    n_samples: int,
    input_dim: int,
    output_dim: int = 1,
    *,
    rng: np.random.Generator | int,
    n_classes: int | None = None,
) -> Dataset:
    """Generic training data: Gaussian inputs and targets.

    Inputs have i.i.d. ``N(0, 1/M)`` entries, so that ``|x_j| ≈ 1``; with probability one
    they are in general position (any ``min(N, M)`` of them are linearly independent).

    Parameters
    ----------
    n_samples, input_dim, output_dim
        ``N``, ``M`` and ``Q``.
    rng
        A :class:`numpy.random.Generator` or an integer seed.
    n_classes
        ``None`` (default): every sample is its own class with a Gaussian target
        ``y_j ~ N(0, I_Q)`` — generic targets. An integer ``C ≤ Q``: ``C`` label vectors
        ``y_1..y_C`` drawn ``N(0, I_Q)`` (linearly independent with probability one) and
        classes ``ω(j)`` drawn uniformly.

    Returns
    -------
    Dataset
    """
    N = positive_int("n_samples", n_samples)
    M = positive_int("input_dim", input_dim)
    Q = positive_int("output_dim", output_dim)
    gen = as_generator(rng)
    require_memory(
        "n_samples",
        f"a data set of N = {N} samples (N × (M + 2Q + 1) = {N} × {M + 2 * Q + 1} numbers)",
        N * (M + 2 * Q + 1) * FLOAT_BYTES,
    )
    X = gen.standard_normal((N, M)) / np.sqrt(M)
    if n_classes is None:
        label_vectors = gen.standard_normal((N, Q))
        labels = np.arange(N)
    else:
        C = positive_int("n_classes", n_classes)
        if C > Q:
            raise ValueError(
                f"n_classes must be <= output_dim={Q} (label vectors must be linearly independent); got {C}"
            )
        label_vectors = gen.standard_normal((C, Q))
        labels = gen.integers(0, C, size=N)
    return Dataset(X, label_vectors[labels], labels.astype(np.int64), label_vectors)
