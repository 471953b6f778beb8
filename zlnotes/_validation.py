"""Input checks shared by every public function (private: not part of the API).

Each check names the offending argument and the rule it broke, so that bad input never
surfaces as a NaN or as a traceback from deep inside numpy. The exception says which kind
of mistake it was:

- :class:`TypeError` for a value of the wrong *type*: a string, ``None`` or an object array
  where an array of real numbers is wanted, a float or a bool where an integer is wanted, a
  bool where a real number is wanted, a non-string where a name is wanted;
- :class:`ValueError` for a value of the right type that breaks a rule: a wrong shape, a NaN
  or an infinity, a number out of its range, an unknown name.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "as_matrix",
    "as_vector",
    "as_generator",
    "positive_int",
    "nonnegative_int",
    "real_scalar",
    "optional_real_scalar",
    "boolean",
    "choice",
    "instance",
]

T = TypeVar("T")


def _as_float_array(name: str, value: ArrayLike) -> NDArray[np.float64]:
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an array of real numbers; got {type(value).__name__}")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested sequences
        raise ValueError(f"{name} must be a rectangular array of real numbers; {exc}") from None
    if raw.dtype.kind not in "iuf" and not (raw.dtype.kind == "O" and raw.size == 0):
        raise TypeError(f"{name} must be an array of real numbers (integer or float dtype); got dtype {raw.dtype}")
    return raw.astype(np.float64, copy=False)


_FINITE_CHUNK = 1 << 20
"""Entries tested at once by :func:`_require_finite`: its boolean temporaries stay at 1 MiB."""


def _blocks(array: NDArray[np.float64]) -> Iterator[NDArray[np.float64]]:
    """Views of ``array`` of at most :data:`_FINITE_CHUNK` entries that together cover it.

    No copy is made, so a broadcast or strided input (a large shape over little memory) is
    tested without allocating an array of its full shape.
    """
    if array.size <= _FINITE_CHUNK or array.ndim == 0:
        yield array
        return
    row = array.size // array.shape[0]  # entries in one index of the first axis
    if row > _FINITE_CHUNK:
        for i in range(array.shape[0]):
            yield from _blocks(array[i])
        return
    step = _FINITE_CHUNK // row
    for i in range(0, array.shape[0], step):
        yield array[i : i + step]


def _require_finite(name: str, array: NDArray[np.float64]) -> None:
    """``ValueError`` naming ``name`` if an entry is NaN or infinite.

    Tested block by block (:func:`_blocks`): no boolean array of the input's full shape is
    allocated, so the check never needs more memory than the input itself.
    """
    # an axis of stride 0 (a broadcast input) repeats one entry: test that entry once
    distinct = array[tuple(slice(0, 1) if step == 0 else slice(None) for step in array.strides)]
    if all(bool(np.isfinite(block).all()) for block in _blocks(distinct)):
        return
    bad = sum(int(block.size - np.count_nonzero(np.isfinite(block))) for block in _blocks(array))
    raise ValueError(f"{name} must contain only finite values; found {bad} NaN or infinite entries")


def as_matrix(
    name: str,
    value: ArrayLike,
    *,
    rows: int | None = None,
    cols: int | None = None,
    cols_label: str | None = None,
) -> NDArray[np.float64]:
    """Return `value` as a finite float64 matrix.

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

    Raises
    ------
    TypeError
        If ``value`` is not an array of real numbers (``None``, a string, an object, bool or
        complex array).
    ValueError
        For a wrong shape, an empty matrix or a non-finite entry.
    """
    array = _as_float_array(name, value)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (rows are samples); got {array.ndim} dimension(s) with shape {array.shape}"
        )
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
    """Return `value` as a finite 1-D float64 array of the given length.

    ``TypeError`` if it is not an array of real numbers, ``ValueError`` for a wrong shape or
    a non-finite entry.
    """
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
    """Return ``value`` as a finite ``float`` in the given interval.

    Accepts Python and numpy real numbers, not ``bool``: anything else is a ``TypeError``; a
    NaN, an infinity or a number outside the interval is a ``ValueError``.
    """
    lo_s = "-inf" if lo is None else str(lo)
    hi_s = "inf" if hi is None else str(hi)
    bounds = f"{'(' if lo_open else '['}{lo_s}, {hi_s}{')' if hi_open else ']'}"
    rule = f"{name} must be a finite real number in {bounds}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{rule}; got {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x) or (lo is not None and (x < lo or (lo_open and x == lo))) or (
        hi is not None and (x > hi or (hi_open and x == hi))
    ):
        raise ValueError(f"{rule}; got {value!r}")
    return x


def optional_real_scalar(name: str, value: object, **bounds: float | bool | None) -> float | None:
    """``None`` unchanged, anything else through :func:`real_scalar`."""
    return None if value is None else real_scalar(name, value, **bounds)  # type: ignore[arg-type]


def _integer(name: str, value: object, least: int) -> int:
    rule = f"{name} must be an integer >= {least}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{rule}; got {type(value).__name__} {value!r}")
    if value < least:
        raise ValueError(f"{rule}; got {value}")
    return int(value)


def positive_int(name: str, value: object) -> int:
    """Return `value` as an ``int`` ≥ 1: ``TypeError`` unless an integer (not a bool),
    ``ValueError`` if < 1."""
    return _integer(name, value, 1)


def nonnegative_int(name: str, value: object) -> int:
    """Return `value` as an ``int`` ≥ 0: ``TypeError`` unless an integer (not a bool),
    ``ValueError`` if < 0."""
    return _integer(name, value, 0)


def boolean(name: str, value: object) -> bool:
    """Return `value` as a ``bool``: ``TypeError`` unless it is ``True`` or ``False``
    (a Python or numpy bool; not an integer or a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {type(value).__name__} {value!r}")
    return bool(value)


def choice(name: str, value: object, options: Sequence[str]) -> str:
    """Return `value` if it is one of the strings ``options``: ``TypeError`` unless a string,
    ``ValueError`` for another string."""
    listed = ", ".join(repr(o) for o in options)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of the strings {listed}; got {type(value).__name__} {value!r}")
    if value not in options:
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
    return value


def instance(name: str, value: object, cls: type[T], what: str | None = None) -> T:
    """Return `value` if it is an instance of ``cls``, else ``TypeError`` naming ``name``."""
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be {what or 'a ' + cls.__name__}; got {type(value).__name__}")
    return value


def as_generator(rng: object, *, name: str = "rng") -> np.random.Generator:
    """Return a :class:`numpy.random.Generator`.

    An ``int`` ≥ 0 is used as a seed. Anything else, ``None`` included, is a ``TypeError``:
    every random draw in zlnotes is seeded explicitly, so that every number in the book can be
    reproduced. A negative seed is a ``ValueError``.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{name} must be a numpy Generator or a seed >= 0; got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"{name} must be a numpy.random.Generator or an integer seed (randomness is never implicit); "
        f"got {type(rng).__name__} {rng!r}"
    )
