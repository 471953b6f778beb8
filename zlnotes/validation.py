"""Input checks shared by every public function.

Each check raises :class:`ValueError` whose message names the offending argument and the
rule it broke, so that bad input never surfaces as a NaN or as a traceback from deep inside
numpy.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["as_matrix", "as_vector", "as_generator", "positive_int", "nonnegative_int", "real_scalar"]


def _as_float_array(name: str, value: ArrayLike) -> NDArray[np.float64]:
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers; {exc}") from None
    if raw.dtype.kind not in "iuf" and not (raw.dtype.kind == "O" and raw.size == 0):
        raise ValueError(f"{name} must be an array of real numbers (integer or float dtype); got dtype {raw.dtype}")
    return raw.astype(np.float64, copy=False)


def _require_finite(name: str, array: NDArray[np.float64]) -> None:
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} must contain only finite values; found {bad} NaN or infinite entries")


def as_matrix(
    name: str,
    value: ArrayLike,
    *,
    rows: int | None = None,
    cols: int | None = None,
    cols_label: str | None = None,
) -> NDArray[np.float64]:
    """Return `value` as a finite float64 matrix, or raise ``ValueError``.

    Parameters
    ----------
    name
        The argument's name, used in the error message.
    value
        Anything :func:`numpy.asarray` accepts.
    rows, cols
        Required number of rows / columns, if any.
    cols_label
        How to describe the required column count (e.g. ``"input_dim"``).

    Returns
    -------
    numpy.ndarray
        A 2-D float64 array (a copy only when a conversion was needed).
    """
    array = _as_float_array(name, value)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows are samples); got {array.ndim} dimension(s) with shape {array.shape}")
    if rows is not None and array.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows; got shape {array.shape}")
    if cols is not None and array.shape[1] != cols:
        label = f"{cols_label}={cols}" if cols_label else str(cols)
        raise ValueError(f"{name} must have {label} columns; got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty; got shape {array.shape}")
    _require_finite(name, array)
    return array


def as_vector(name: str, value: ArrayLike, *, length: int | None = None) -> NDArray[np.float64]:
    """Return `value` as a finite 1-D float64 array of the given length, or raise ``ValueError``."""
    array = _as_float_array(name, value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array; got shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} must have length {length}; got length {array.shape[0]}")
    _require_finite(name, array)
    return array


def real_scalar(
    name: str,
    value: object,
    *,
    lo: float | None = None,
    lo_open: bool = False,
    hi: float | None = None,
    hi_open: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` in the given interval, or raise ``ValueError``.

    Accepts Python and numpy real numbers, not ``bool``.
    """
    bounds = f"{'(' if lo_open else '['}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{')' if hi_open else ']'}"
    rule = f"{name} must be a finite real number in {bounds}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{rule}; got {value!r}")
    x = float(value)
    if not np.isfinite(x) or (lo is not None and (x < lo or (lo_open and x == lo))) or (
        hi is not None and (x > hi or (hi_open and x == hi))
    ):
        raise ValueError(f"{rule}; got {value!r}")
    return x


def positive_int(name: str, value: object) -> int:
    """Return `value` as an ``int`` ≥ 1, or raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value}")
    return int(value)


def nonnegative_int(name: str, value: object) -> int:
    """Return `value` as an ``int`` ≥ 0, or raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value}")
    return int(value)


def as_generator(rng: np.random.Generator | int | None, *, name: str = "rng") -> np.random.Generator:
    """Return a :class:`numpy.random.Generator`.

    An ``int`` is used as a seed. ``None`` is refused: every random draw in zlnotes is seeded
    explicitly, so that every number in the book can be reproduced.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{name} must be a numpy Generator or a seed >= 0; got {rng}")
        return np.random.default_rng(int(rng))
    raise ValueError(f"{name} must be a numpy.random.Generator or an integer seed (randomness is never implicit); got {rng!r}")
