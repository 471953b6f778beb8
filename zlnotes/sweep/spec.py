"""The experiment specification: an :class:`Experiment` and the keys of its points."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_FORBIDDEN_IN_KEYS = frozenset(",=\n\r")


def _scalar(name: str, value: object) -> bool | int | float | str:
    """Return a parameter value as a plain Python scalar, or raise ``ValueError``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"parameter {name!r} must be finite; got {value!r}")
        return x
    if isinstance(value, str):
        if _FORBIDDEN_IN_KEYS & set(value):
            raise ValueError(f"parameter {name!r}: a string value may not contain ',', '=' or a newline; got {value!r}")
        return value
    raise ValueError(f"parameter {name!r} must be an int, float, str or bool; got {type(value).__name__} {value!r}")


def _normalise_params(params: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """Check a point's parameters and return them as a new dict sorted by name."""
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a mapping of names to scalars; got {type(params).__name__}")
    out = {}
    for name in sorted(params, key=str):
        if not isinstance(name, str) or not name or _FORBIDDEN_IN_KEYS & set(name) or name != name.strip():
            raise ValueError(
                f"parameter names must be non-empty strings without ',', '=' or spaces around; got {name!r}"
            )
        out[name] = _scalar(name, params[name])
    return out


def point_key(params: Mapping[str, Any]) -> str:
    """The canonical, readable key of one point: ``"name=value,..."`` sorted by name.

    Parameters
    ----------
    params : mapping of str to int, float, str or bool
        The point's parameters.

    Returns
    -------
    str
        For example ``"data=generic,depth=2,lr=0.01,seed=0"``: names sorted, integers
        and booleans as Python prints them, floats by ``repr`` (so ``1`` and ``1.0``
        differ and every float is exact), strings as they are.

    Raises
    ------
    ValueError
        If a value is not a finite scalar, or a name or string value contains ``,``,
        ``=`` or a newline.
    """
    return ",".join(f"{name}={_format_value(value)}" for name, value in _normalise_params(params).items())


def _format_value(value: bool | int | float | str) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Experiment:
    """A named function of a parameters dict, with named grids of parameters.

    Parameters
    ----------
    name : str
        The name ``zlnotes sweep NAME`` knows it by.
    description : str
        One or two sentences: what a point computes and what the sweep shows.
    run : callable
        ``run(params) -> dict``. A module-level function (worker processes import it by
        name), pure in ``params`` (all randomness seeded from them), returning a
        JSON-serialisable dict: floats, ints, str, bool, None, lists and dicts of these
        (numpy scalars and arrays are accepted and stored as numbers and lists).
    presets : mapping of str to sequence of mappings
        Preset name (``"tiny"``, ``"book"``, ``"full"``) to its grid: a list of parameter
        dicts whose values are int, float, str or bool.
    """

    name: str
    description: str
    run: Callable[[dict[str, Any]], dict[str, Any]]
    presets: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name must be a non-empty string; got {self.name!r}")
        if not callable(self.run):
            raise ValueError(f"run must be callable; got {self.run!r}")
        if not isinstance(self.presets, Mapping) or not self.presets:
            raise ValueError(f"presets of experiment {self.name!r} must be a non-empty mapping of names to grids")
        for preset, grid in self.presets.items():
            self._check_grid(preset, grid)

    def _check_grid(self, preset: object, grid: object) -> None:
        """``ValueError`` unless `preset` is a string and `grid` a sequence of mappings."""
        if not isinstance(preset, str) or not preset:
            raise ValueError(f"experiment {self.name!r}: preset names must be non-empty strings; got {preset!r}")
        if not isinstance(grid, Sequence) or isinstance(grid, (str, bytes)):
            raise ValueError(
                f"experiment {self.name!r}, preset {preset!r}: a grid must be a list of parameter dicts; "
                f"got {type(grid).__name__} {grid!r:.80}"
            )
        for i, params in enumerate(grid):
            if not isinstance(params, Mapping):
                raise ValueError(
                    f"experiment {self.name!r}, preset {preset!r}, point {i}: a point must be a mapping of "
                    f"parameter names to values; got {type(params).__name__} {params!r:.80}"
                )

    def points(self, preset: str) -> list[dict[str, Any]]:
        """The grid of one preset: checked, normalised parameter dicts in preset order.

        Raises
        ------
        ValueError
            If `preset` is unknown (the message lists the valid ones), or a point's
            parameters are not scalars, or two points have the same key.
        """
        if not isinstance(preset, str):
            raise ValueError(f"preset must be a string naming a grid of experiment {self.name!r}; got {preset!r}")
        if preset not in self.presets:
            raise ValueError(
                f"preset {preset!r} is not defined for experiment {self.name!r}; "
                f"valid presets: {', '.join(self.presets)}"
            )
        self._check_grid(preset, self.presets[preset])  # the mapping may have changed since
        points: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for i, params in enumerate(self.presets[preset]):
            try:
                point = _normalise_params(params)
            except ValueError as exc:
                raise ValueError(f"experiment {self.name!r}, preset {preset!r}, point {i}: {exc}") from None
            key = point_key(point)
            if key in seen:
                raise ValueError(
                    f"experiment {self.name!r}, preset {preset!r}: points {seen[key]} and {i} have the same key {key!r}"
                )
            seen[key] = i
            points.append(point)
        return points

