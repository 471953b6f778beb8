# mypy: disable-error-code="arg-type"
"""Property-based tests (hypothesis) of the argument checks of the public API.

For every argument of every public function in the table below, hypothesis draws values of
the wrong type and values of the right type that break the argument's rule; each call must
raise a TypeError (wrong type) or a ValueError (wrong value) whose message names the
argument, and nothing else: no IndexError, no numpy error, no warning, no result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zlnotes as zl

ARCH = zl.Architecture(2, (3,), 1, "tanh")
NET = zl.Network.init(ARCH, 0)
X = np.random.default_rng(1).standard_normal((4, 2))
Y = np.random.default_rng(2).standard_normal((4, 1))
CLUSTERS = zl.clustered_data(4, 3, 2, radius=0.01, rng=3)
REPORT = zl.stationarity_report(NET, X, Y)

SETTINGS = settings(
    max_examples=25,
    deadline=2000,  # ms per example: every refusal comes before any real work
    derandomize=True,  # the same examples on every run
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)

# ------------------------------------------------------------------ wrong values, by kind

_objects = st.sampled_from([None, object(), {"a": 1}, "text", b"bytes", 1j, [1, "a"]])
_floats_not_int = st.floats(allow_nan=True, allow_infinity=True)
_bools = st.sampled_from([True, False, np.bool_(True)])


def _wrong_int(least: int) -> st.SearchStrategy[tuple[type, object]]:
    """Not an integer (TypeError), or an integer below ``least`` (ValueError)."""
    return st.one_of(
        st.tuples(st.just(TypeError), st.one_of(_objects, _floats_not_int, _bools)),
        st.tuples(st.just(ValueError), st.integers(max_value=least - 1)),
        st.tuples(st.just(ValueError), st.integers(min_value=-(2**62), max_value=least - 1).map(np.int64)),
    )


def _wrong_real(lo: float | None, hi: float | None, lo_open: bool = False) -> st.SearchStrategy[tuple[type, object]]:
    """Not a real number (TypeError), or NaN, an infinity, or outside ``[lo, hi]`` (ValueError)."""
    bad_values: list[st.SearchStrategy[float]] = [st.sampled_from([math.nan, math.inf, -math.inf])]
    if lo is not None:
        below = st.floats(max_value=lo, allow_nan=False, allow_infinity=False)
        bad_values.append(below.filter(lambda x: x <= lo if lo_open else x < lo))
    if hi is not None:
        bad_values.append(st.floats(min_value=hi, exclude_min=True, allow_nan=False, allow_infinity=False))
    return st.one_of(
        st.tuples(st.just(TypeError), st.one_of(_objects, _bools, st.text(max_size=3))),
        st.tuples(st.just(ValueError), st.one_of(*bad_values)),
    )


def _wrong_bool() -> st.SearchStrategy[tuple[type, object]]:
    return st.tuples(st.just(TypeError), st.one_of(_objects, st.integers(), st.floats(), st.text(max_size=3)))


def _wrong_choice() -> st.SearchStrategy[tuple[type, object]]:
    return st.one_of(
        st.tuples(st.just(TypeError), st.one_of(_objects.filter(lambda v: not isinstance(v, str)), st.integers())),
        st.tuples(st.just(ValueError), st.text(max_size=8).filter(lambda s: s not in ("auto", "gram", "svd"))),
    )


def _wrong_rng() -> st.SearchStrategy[tuple[type, object]]:
    return st.one_of(
        st.tuples(st.just(TypeError), st.one_of(_objects, _floats_not_int, _bools)),
        st.tuples(st.just(ValueError), st.integers(max_value=-1)),
    )


def _wrong_matrix(rows: int, cols: int) -> st.SearchStrategy[tuple[type, object]]:
    """Not an array of reals (TypeError), or the wrong shape, empty, or not finite (ValueError)."""
    finite = st.floats(-1e3, 1e3)
    bad_entry = st.sampled_from([math.nan, math.inf, -math.inf])

    def with_bad_entry(args: tuple[float, int]) -> np.ndarray:
        value, where = args
        A = np.ones((rows, cols))
        A.flat[where % A.size] = value
        return A

    return st.one_of(
        st.tuples(
            st.just(TypeError),
            st.one_of(
                st.sampled_from([None, "matrix", b"x", object()]),
                st.just(np.ones((rows, cols), dtype=bool)),
                st.just(np.ones((rows, cols), dtype=complex)),
                st.just(np.full((rows, cols), None, dtype=object)),
                st.just([["a"] * cols] * rows),
            ),
        ),
        st.tuples(
            st.just(ValueError),
            st.one_of(
                st.tuples(bad_entry, st.integers(0, 1000)).map(with_bad_entry),
                st.lists(finite, min_size=1, max_size=5).map(np.array),  # 1-D
                st.just(np.ones((rows, cols, 2))),  # 3-D
                st.just(np.ones((0, cols))),  # empty
                st.just([[1.0] * cols, [1.0] * (cols + 1)]),  # ragged
            ),
        ),
    )


def _wrong_network() -> st.SearchStrategy[tuple[type, object]]:
    return st.tuples(st.just(TypeError), st.one_of(_objects, st.just(ARCH), st.just(NET.flat())))


def _wrong_arch() -> st.SearchStrategy[tuple[type, object]]:
    return st.tuples(st.just(TypeError), st.one_of(_objects, st.just(NET), st.integers()))


def _not_none(case: tuple[type, object]) -> bool:
    """For an optional argument, ``None`` is a valid value."""
    return case[1] is not None


# (label, function of the bad value, argument named in the message, strategy of (exception, value))
CASES: list[tuple[str, Callable[[Any], object], str, st.SearchStrategy[tuple[type, object]]]] = [
    ("Architecture input_dim", lambda v: zl.Architecture(v, (3,), 1), "input_dim", _wrong_int(1)),
    ("Architecture output_dim", lambda v: zl.Architecture(2, (3,), v), "output_dim", _wrong_int(1)),
    ("Architecture hidden[0]", lambda v: zl.Architecture(2, (v,), 1), "hidden[0]", _wrong_int(1)),
    ("activation width", lambda v: zl.activation("smooth_relu", width=v), "width", _wrong_real(0.0, None, True)),
    ("activation sharpness", lambda v: zl.activation("softplus", sharpness=v), "sharpness",
     _wrong_real(0.0, None, True)),
    ("Network arch", lambda v: zl.Network(v, NET.weights, NET.biases), "arch", _wrong_arch()),
    ("Network.init arch", lambda v: zl.Network.init(v, 0), "arch", _wrong_arch()),
    ("Network.init rng", lambda v: zl.Network.init(ARCH, v), "rng", _wrong_rng()),
    ("Network.init bias_std", lambda v: zl.Network.init(ARCH, 0, bias_std=v), "bias_std", _wrong_real(0.0, None)),
    ("Network.init weight_gain", lambda v: zl.Network.init(ARCH, 0, weight_gain=v), "weight_gain",
     _wrong_real(0.0, None, True).filter(_not_none)),
    ("forward X", lambda v: NET.forward(v), "X", _wrong_matrix(4, 2)),
    ("cost net", lambda v: zl.cost(v, X, Y), "net", _wrong_network()),
    ("cost X", lambda v: zl.cost(NET, v, Y), "X", _wrong_matrix(4, 2)),
    ("cost Y", lambda v: zl.cost(NET, X, v), "Y", _wrong_matrix(4, 1)),
    ("cost_gradient Y", lambda v: zl.cost_gradient(NET, X, v), "Y", _wrong_matrix(4, 1)),
    ("cost_and_gradient X", lambda v: zl.cost_and_gradient(NET, v, Y), "X", _wrong_matrix(4, 2)),
    ("output_gradient Y", lambda v: zl.output_gradient(NET, X, v), "Y", _wrong_matrix(4, 1)),
    ("CostFunction Y", lambda v: zl.CostFunction(ARCH, X, v), "Y", _wrong_matrix(4, 1)),
    ("jacobian X", lambda v: zl.jacobian(NET, v), "X", _wrong_matrix(4, 2)),
    ("ntk X", lambda v: zl.ntk(NET, v), "X", _wrong_matrix(4, 2)),
    ("ntk net", lambda v: zl.ntk(v, X), "net", _wrong_network()),
    ("backprop_factors X", lambda v: zl.backprop_factors(NET, v), "X", _wrong_matrix(4, 2)),
    ("jacobian_rank rtol", lambda v: zl.jacobian_rank(NET, X, rtol=v), "rtol", _wrong_real(0.0, 1.0).filter(_not_none)),
    ("jacobian_rank method", lambda v: zl.jacobian_rank(NET, X, method=v), "method", _wrong_choice()),
    ("face_split A", lambda v: zl.face_split(v, X), "A", _wrong_matrix(4, 2)),
    ("face_split B", lambda v: zl.face_split(X, v), "B", _wrong_matrix(4, 2)),
    ("singular_values A", lambda v: zl.singular_values(v), "A", _wrong_matrix(3, 2)),
    ("numerical_rank A", lambda v: zl.numerical_rank(v), "A", _wrong_matrix(3, 2)),
    ("numerical_rank rtol", lambda v: zl.numerical_rank(X, rtol=v), "rtol", _wrong_real(0.0, 1.0).filter(_not_none)),
    ("gram_rank G", lambda v: zl.gram_rank(v), "G", _wrong_matrix(3, 3)),
    ("gram_rtol m", lambda v: zl.gram_rtol(v), "m", _wrong_int(1)),
    ("range_projector D", lambda v: zl.range_projector(v), "D", _wrong_matrix(3, 2)),
    ("range_projector rtol", lambda v: zl.range_projector(X, rtol=v), "rtol", _wrong_real(0.0, 1.0).filter(_not_none)),
    ("gradient_descent lr", lambda v: zl.gradient_descent(NET, X, Y, v, 1), "lr", _wrong_real(0.0, None, True)),
    ("gradient_descent steps", lambda v: zl.gradient_descent(NET, X, Y, 0.1, v), "steps", _wrong_int(0)),
    ("gradient_descent progress", lambda v: zl.gradient_descent(NET, X, Y, 0.1, 1, progress=v), "progress",
     _wrong_bool()),
    ("lbfgs_polish max_iter", lambda v: zl.lbfgs_polish(NET, X, Y, max_iter=v), "max_iter", _wrong_int(0)),
    ("lbfgs_polish rebalance", lambda v: zl.lbfgs_polish(NET, X, Y, max_iter=1, rebalance=v), "rebalance",
     _wrong_bool()),
    ("stationary_point restarts", lambda v: zl.stationary_point(NET, X, Y, lr=0.1, gd_steps=0, restarts=v),
     "restarts", _wrong_int(0)),
    ("balance net", lambda v: zl.balance(v), "net", _wrong_network()),
    ("generic_data n_samples", lambda v: zl.generic_data(v, 2, rng=0), "n_samples", _wrong_int(1)),
    ("generic_data input_dim", lambda v: zl.generic_data(4, v, rng=0), "input_dim", _wrong_int(1)),
    ("generic_data rng", lambda v: zl.generic_data(4, 2, rng=v), "rng", _wrong_rng()),
    ("clustered_data n_per_class", lambda v: zl.clustered_data(v, 3, 2, radius=0.1, rng=0), "n_per_class",
     _wrong_int(1)),
    ("clustered_data radius", lambda v: zl.clustered_data(4, 3, 2, radius=v, rng=0), "radius", _wrong_real(0.0, None)),
    ("clustered_data separation", lambda v: zl.clustered_data(4, 3, 2, radius=0.1, rng=0, separation=v),
     "separation", _wrong_real(0.0, None, True)),
    ("cluster_geometry X", lambda v: zl.cluster_geometry(v, CLUSTERS.labels), "X", _wrong_matrix(12, 2)),
    ("clustered_minimizer strict",
     lambda v: zl.clustered_minimizer(CLUSTERS.X, CLUSTERS.labels, CLUSTERS.label_vectors, strict=v), "strict",
     _wrong_bool()),
    ("clustered_minimizer targets", lambda v: zl.clustered_minimizer(CLUSTERS.X, CLUSTERS.labels, v), "targets",
     _wrong_matrix(3, 3)),
    ("zero_loss_minimizer X", lambda v: zl.zero_loss_minimizer(v, Y, depth=1, width=4, activation="tanh"), "X",
     _wrong_matrix(4, 2)),
    ("zero_loss_minimizer depth", lambda v: zl.zero_loss_minimizer(X, Y, depth=v, width=4, activation="tanh"),
     "depth", _wrong_int(0)),
    ("zero_loss_minimizer width", lambda v: zl.zero_loss_minimizer(X, Y, depth=1, width=v, activation="tanh"),
     "width", _wrong_int(1)),
    ("zero_loss_minimizer rng", lambda v: zl.zero_loss_minimizer(X, Y, depth=1, width=4, activation="tanh", rng=v),
     "rng", _wrong_rng().filter(_not_none)),
    ("embed_network arch", lambda v: zl.embed_network(NET, v), "arch", _wrong_arch()),
    ("stationarity_report Y", lambda v: zl.stationarity_report(NET, X, v), "Y", _wrong_matrix(4, 1)),
    ("classify_stationary kink_tol", lambda v: zl.classify_stationary(None, REPORT, kink_tol=v), "kink_tol",
     _wrong_real(0.0, None)),
    ("kink_margin X", lambda v: zl.kink_margin(NET, v), "X", _wrong_matrix(4, 2)),
    ("least_unit_slope X", lambda v: zl.least_unit_slope(NET, v), "X", _wrong_matrix(4, 2)),
    ("constant_output_cost Y", lambda v: zl.constant_output_cost(v), "Y", _wrong_matrix(4, 1)),
    ("relative_misfit F", lambda v: zl.relative_misfit(v, Y), "F", _wrong_matrix(4, 1)),
    ("step_size factor", lambda v: zl.step_size(NET, X, factor=v), "factor", _wrong_real(0.0, None, True)),
    ("affine_rank A", lambda v: zl.affine_rank(v), "A", _wrong_matrix(3, 2)),
    ("significant digits", lambda v: zl.significant(1.0, v), "digits", _wrong_int(1)),
    ("set_memory_budget nbytes", lambda v: zl.set_memory_budget(v), "nbytes",
     _wrong_int(0).filter(_not_none)),
]


def _names(argument: str) -> str:
    return rf"(^|\W){re.escape(argument)}(\W|$)"


@pytest.mark.parametrize("call, argument, values", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_wrong_arguments_are_refused_naming_the_argument(
    call: Callable[[Any], object], argument: str, values: st.SearchStrategy[tuple[type, object]]
) -> None:
    @SETTINGS
    @given(values)
    def check(case: tuple[type, object]) -> None:
        expected, value = case
        try:
            call(value)
        except (TypeError, ValueError) as err:
            # the kind of mistake: a ValueError for a wrong value is never a TypeError
            assert isinstance(err, expected) and (expected is TypeError or not isinstance(err, TypeError)), (
                f"{value!r}: expected {expected.__name__}, got {type(err).__name__}: {err}"
            )
            assert re.search(_names(argument), str(err)), f"{value!r}: the message does not name {argument}: {err}"
        else:
            raise AssertionError(f"{value!r} was accepted for {argument}")

    check()


def test_every_case_has_a_public_callable() -> None:
    """The table covers functions and classes of zlnotes.__all__ only (and names them all)."""
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    called = set(re.findall(r"zl\.(\w+)\(", source))
    assert called <= set(zl.__all__)
    assert len(CASES) >= 60
