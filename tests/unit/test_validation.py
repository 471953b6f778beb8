# mypy: disable-error-code="arg-type"
"""Bad input to the public API: a wrong type is a TypeError, a wrong value a ValueError, and
either message names the argument."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import zlnotes as zl

ARCH = zl.Architecture(2, (3,), 1, "tanh")
NET = zl.Network.init(ARCH, 0)
X = np.random.default_rng(1).standard_normal((4, 2))
Y = np.random.default_rng(2).standard_normal((4, 1))
CLUSTERS = zl.clustered_data(4, 3, 2, radius=0.01, rng=3)
REPORT = zl.stationarity_report(NET, X, Y)
GD: dict[str, Any] = {"lr": 0.1, "gd_steps": 0}

# (label, call, argument named in the message)
TYPE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("activation name None", lambda: zl.activation(None), "activation"),
    ("activation width bool", lambda: zl.activation("smooth_relu", width=True), "width"),
    ("activation sharpness str", lambda: zl.activation("softplus", sharpness="2"), "sharpness"),
    ("activation slope None", lambda: zl.activation("leaky_relu", slope=None), "slope"),
    ("Architecture input_dim float", lambda: zl.Architecture(2.0, (3,), 1), "input_dim"),
    ("Architecture hidden str", lambda: zl.Architecture(2, "3", 1), "hidden"),
    ("Architecture hidden bool", lambda: zl.Architecture(2, True, 1), "hidden"),
    ("Architecture activation int", lambda: zl.Architecture(2, (3,), 1, 3), "activation"),
    ("Network arch", lambda: zl.Network("arch", [], []), "arch"),
    ("Network weights None", lambda: zl.Network(ARCH, None, NET.biases), "weights"),
    ("Network weight str", lambda: zl.Network(ARCH, ["a", NET.weights[1]], NET.biases), "weights[0]"),
    ("init rng None", lambda: zl.Network.init(ARCH, None), "rng"),
    ("init rng float", lambda: zl.Network.init(ARCH, 1.5), "rng"),
    ("init weight_gain bool", lambda: zl.Network.init(ARCH, 0, weight_gain=True), "weight_gain"),
    ("from_flat Z object", lambda: zl.Network.from_flat(ARCH, [object()] * ARCH.num_params), "Z"),
    ("forward X None", lambda: NET.forward(None), "X"),
    ("forward X str", lambda: NET.forward("x"), "X"),
    ("forward X bool array", lambda: NET.forward(np.ones((2, 2), dtype=bool)), "X"),
    ("cost net", lambda: zl.cost(NET.flat(), X, Y), "net"),
    ("cost Y object", lambda: zl.cost(NET, X, np.array([[None]] * 4)), "Y"),
    ("cost_gradient net None", lambda: zl.cost_gradient(None, X, Y), "net"),
    ("cost_and_gradient Y str", lambda: zl.cost_and_gradient(NET, X, "y"), "Y"),
    ("output_gradient net", lambda: zl.output_gradient(ARCH, X, Y), "net"),
    ("CostFunction arch", lambda: zl.CostFunction(NET, X, Y), "arch"),
    ("CostFunction out list", lambda: zl.CostFunction(ARCH, X, Y)(NET.flat(), out=[0.0]), "out"),
    ("jacobian net", lambda: zl.jacobian("net", X), "net"),
    ("ntk X None", lambda: zl.ntk(NET, None), "X"),
    ("backprop_factors net", lambda: zl.backprop_factors(None, X), "net"),
    ("jacobian_rank method", lambda: zl.jacobian_rank(NET, X, method=1), "method"),
    ("jacobian_rank rtol str", lambda: zl.jacobian_rank(NET, X, rtol="0.1"), "rtol"),
    ("face_split A str", lambda: zl.face_split("A", X), "A"),
    ("singular_values A None", lambda: zl.singular_values(None), "A"),
    ("numerical_rank rtol bool", lambda: zl.numerical_rank(X, rtol=True), "rtol"),
    ("gram_rank G object", lambda: zl.gram_rank(np.array([[object()]])), "G"),
    ("gram_rtol m float", lambda: zl.gram_rtol(4.0), "m"),
    ("gram_rtol m None", lambda: zl.gram_rtol(None), "m"),
    ("range_projector rtol str", lambda: zl.range_projector(X, rtol="x"), "rtol"),
    ("gradient_descent lr str", lambda: zl.gradient_descent(NET, X, Y, "0.1", 3), "lr"),
    ("gradient_descent steps float", lambda: zl.gradient_descent(NET, X, Y, 0.1, 3.0), "steps"),
    ("gradient_descent record str", lambda: zl.gradient_descent(NET, X, Y, 0.1, 3, record="1"), "record"),
    ("gradient_descent progress", lambda: zl.gradient_descent(NET, X, Y, 0.1, 3, progress="no"), "progress"),
    ("stationary_point record_path", lambda: zl.stationary_point(NET, X, Y, **GD, record_path="no"), "record_path"),
    ("stationary_point restarts", lambda: zl.stationary_point(NET, X, Y, **GD, restarts=1.0), "restarts"),
    ("stationary_point max_param", lambda: zl.stationary_point(NET, X, Y, **GD, max_param="big"), "max_param"),
    ("stationary_point polish_tol", lambda: zl.stationary_point(NET, X, Y, **GD, polish_tol=False), "polish_tol"),
    ("lbfgs_polish rebalance", lambda: zl.lbfgs_polish(NET, X, Y, max_iter=1, rebalance=1), "rebalance"),
    ("lbfgs_polish max_fun", lambda: zl.lbfgs_polish(NET, X, Y, max_iter=1, max_fun=2.0), "max_fun"),
    ("lbfgs_polish target_cost", lambda: zl.lbfgs_polish(NET, X, Y, max_iter=1, target_cost="0"), "target_cost"),
    ("balance net", lambda: zl.balance(ARCH), "net"),
    ("generic_data n_samples float", lambda: zl.generic_data(4.0, 2, rng=0), "n_samples"),
    ("generic_data rng str", lambda: zl.generic_data(4, 2, rng="0"), "rng"),
    ("generic_data n_classes bool", lambda: zl.generic_data(4, 2, 2, rng=0, n_classes=True), "n_classes"),
    ("clustered_data radius bool", lambda: zl.clustered_data(4, 3, 2, radius=True, rng=0), "radius"),
    (
        "clustered_data separation str",
        lambda: zl.clustered_data(4, 3, 2, radius=0.1, rng=0, separation="1"),
        "separation",
    ),
    ("clustered_data rng None", lambda: zl.clustered_data(4, 3, 2, radius=0.1, rng=None), "rng"),
    ("cluster_geometry labels float", lambda: zl.cluster_geometry(CLUSTERS.X, CLUSTERS.labels * 1.0), "labels"),
    ("cluster_geometry labels None", lambda: zl.cluster_geometry(CLUSTERS.X, None), "labels"),
    (
        "clustered_minimizer strict",
        lambda: zl.clustered_minimizer(CLUSTERS.X, CLUSTERS.labels, CLUSTERS.label_vectors, strict="no"),
        "strict",
    ),
    (
        "zero_loss_minimizer method",
        lambda: zl.zero_loss_minimizer(X, Y, depth=1, width=4, activation="tanh", method=None),
        "method",
    ),
    ("zero_loss_minimizer depth", lambda: zl.zero_loss_minimizer(X, Y, depth=1.0, width=4, activation="tanh"), "depth"),
    (
        "zero_loss_minimizer rng",
        lambda: zl.zero_loss_minimizer(X, Y, depth=1, width=4, activation="tanh", rng="1"),
        "rng",
    ),
    ("embed_network arch", lambda: zl.embed_network(NET, "arch"), "arch"),
    ("stationarity_report net", lambda: zl.stationarity_report(None, X, Y), "net"),
    ("classify_stationary report", lambda: zl.classify_stationary(None, None), "report"),
    ("classify_stationary kink_tol", lambda: zl.classify_stationary(None, REPORT, kink_tol="1"), "kink_tol"),
    ("kink_margin net", lambda: zl.kink_margin(None, X), "net"),
    ("least_unit_slope X str", lambda: zl.least_unit_slope(NET, "X"), "X"),
    ("constant_output_cost Y None", lambda: zl.constant_output_cost(None), "Y"),
    ("relative_misfit F str", lambda: zl.relative_misfit("F", Y), "F"),
    ("step_size factor bool", lambda: zl.step_size(NET, X, factor=True), "factor"),
    ("affine_rank rtol str", lambda: zl.affine_rank(X, rtol="0"), "rtol"),
    ("significant x str", lambda: zl.significant("1.0"), "x"),
    ("significant digits float", lambda: zl.significant(1.0, 2.0), "digits"),
    ("decade v None", lambda: zl.decade(None), "v"),
    ("decade floor bool", lambda: zl.decade(1.0, floor=True), "floor"),
    ("set_memory_budget nbytes float", lambda: zl.set_memory_budget(1e9), "nbytes"),
    ("set_memory_budget nbytes str", lambda: zl.set_memory_budget("1G"), "nbytes"),
    ("stationarity_report Y None", lambda: zl.stationarity_report(NET, X, None), "Y"),
]

VALUE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("activation unknown", lambda: zl.activation("gelu"), "activation"),
    ("activation width 0", lambda: zl.activation("smooth_relu", width=0.0), "width"),
    ("activation sharpness nan", lambda: zl.activation("softplus", sharpness=np.nan), "sharpness"),
    ("activation slope 1", lambda: zl.activation("leaky_relu", slope=1.0), "slope"),
    ("activation slope inf", lambda: zl.activation("leaky_relu", slope=np.inf), "slope"),
    ("Architecture input_dim 0", lambda: zl.Architecture(0, (3,), 1), "input_dim"),
    ("Architecture hidden -1", lambda: zl.Architecture(2, (3, -1), 1), "hidden[1]"),
    ("Network weights count", lambda: zl.Network(ARCH, NET.weights[:1], NET.biases[:1]), "weights"),
    ("init rng negative", lambda: zl.Network.init(ARCH, -1), "rng"),
    ("init bias_std negative", lambda: zl.Network.init(ARCH, 0, bias_std=-0.1), "bias_std"),
    ("init weight_gain inf", lambda: zl.Network.init(ARCH, 0, weight_gain=np.inf), "weight_gain"),
    ("forward X nan", lambda: NET.forward(np.full((2, 2), np.nan)), "X"),
    ("forward X ragged", lambda: NET.forward([[1.0, 2.0], [3.0]]), "X"),
    ("cost Y rows", lambda: zl.cost(NET, X, Y[:2]), "Y"),
    ("jacobian_rank method", lambda: zl.jacobian_rank(NET, X, method="qr"), "method"),
    ("jacobian_rank rtol 2", lambda: zl.jacobian_rank(NET, X, rtol=2.0), "rtol"),
    ("numerical_rank rtol nan", lambda: zl.numerical_rank(X, rtol=np.nan), "rtol"),
    ("gram_rtol m negative", lambda: zl.gram_rtol(-5), "m"),
    ("gram_rank rtol below floor", lambda: zl.gram_rank(X @ X.T, rtol=1e-12), "rtol"),
    ("gradient_descent lr inf", lambda: zl.gradient_descent(NET, X, Y, np.inf, 3), "lr"),
    ("gradient_descent steps -1", lambda: zl.gradient_descent(NET, X, Y, 0.1, -1), "steps"),
    ("gradient_descent record 0", lambda: zl.gradient_descent(NET, X, Y, 0.1, 3, record=0), "record"),
    (
        "stationary_point rel_grad_tol",
        lambda: zl.stationary_point(NET, X, Y, **GD, rel_grad_tol=np.nan),
        "rel_grad_tol",
    ),
    ("stationary_point max_param", lambda: zl.stationary_point(NET, X, Y, **GD, max_param=np.nan), "max_param"),
    ("lbfgs_polish grad_tol", lambda: zl.lbfgs_polish(NET, X, Y, max_iter=1, grad_tol=-np.inf), "grad_tol"),
    ("lbfgs_polish max_iter", lambda: zl.lbfgs_polish(NET, X, Y, max_iter=-1), "max_iter"),
    ("generic_data n_samples 0", lambda: zl.generic_data(0, 2, rng=0), "n_samples"),
    ("clustered_data radius nan", lambda: zl.clustered_data(4, 3, 2, radius=np.nan, rng=0), "radius"),
    (
        "clustered_data separation 0",
        lambda: zl.clustered_data(4, 3, 2, radius=0.1, rng=0, separation=0.0),
        "separation",
    ),
    ("cluster_geometry labels shape", lambda: zl.cluster_geometry(CLUSTERS.X, CLUSTERS.labels[:3]), "labels"),
    (
        "zero_loss_minimizer method",
        lambda: zl.zero_loss_minimizer(X, Y, depth=1, width=4, activation="tanh", method="exact"),
        "method",
    ),
    ("zero_loss_minimizer width 0", lambda: zl.zero_loss_minimizer(X, Y, depth=1, width=0, activation="tanh"), "width"),
    ("classify_stationary kink_tol", lambda: zl.classify_stationary(None, REPORT, kink_tol=-1.0), "kink_tol"),
    ("step_size factor nan", lambda: zl.step_size(NET, X, factor=np.nan), "factor"),
    ("significant x inf", lambda: zl.significant(np.inf), "x"),
    ("significant digits 0", lambda: zl.significant(1.0, 0), "digits"),
    ("decade v nan", lambda: zl.decade(np.nan), "v"),
    ("decade floor 0", lambda: zl.decade(1.0, floor=0.0), "floor"),
    ("relative_misfit Y zero", lambda: zl.relative_misfit(Y, 0 * Y), "Y"),
    ("set_memory_budget nbytes negative", lambda: zl.set_memory_budget(-1), "nbytes"),
    ("cluster_geometry label 1e9", lambda: zl.cluster_geometry(np.ones((2, 2)), np.array([0, 10**9])), "labels"),
    ("gram_rank G not PSD", lambda: zl.gram_rank(-np.eye(3)), "G"),
]


def _names(argument: str) -> str:
    """The message starts with the argument, or names it as a word (``hidden[1]``, ``width (of ...``)."""
    return rf"(^|\W){re.escape(argument)}(\W|$)"


@pytest.mark.parametrize("call, argument", [c[1:] for c in TYPE_ERRORS], ids=[c[0] for c in TYPE_ERRORS])
def test_wrong_type_is_a_type_error_naming_the_argument(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(TypeError, match=_names(argument)):
        call()


@pytest.mark.parametrize("call, argument", [c[1:] for c in VALUE_ERRORS], ids=[c[0] for c in VALUE_ERRORS])
def test_wrong_value_is_a_value_error_naming_the_argument(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=_names(argument)) as info:
        call()
    assert not isinstance(info.value, TypeError)


def test_every_public_callable_is_exercised() -> None:
    """Each function and class in zlnotes.__all__ appears in the cases above (by name)."""
    import inspect

    source = inspect.getsource(inspect.getmodule(test_every_public_callable_is_exercised))
    public = [n for n in zl.__all__ if callable(getattr(zl, n)) and n[0].islower() or n in ("Architecture", "Network")]
    exempt = {
        "History",
        "Dataset",
        "RangeProjector",
        "StationaryPoint",
        "LbfgsReport",
        "StationarityReport",
        "ClusterGeometry",
        "Activation",
        "memory_budget",  # no arguments
        "FlowPath",
    }  # result records, built by the library
    missing = [n for n in public if n not in exempt and f"zl.{n}(" not in source]
    assert missing == []


def test_validation_is_private() -> None:
    assert not hasattr(zl, "validation") and "validation" not in zl.__all__
    assert all("validation" not in n for n in zl.__all__)


# zlnotes.flows (appended: the lists above are read when the module is imported)
FLOW_TYPE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("adapted_direction net", lambda: zl.adapted_direction(ARCH, X, Y), "net"),
    ("adapted_direction alpha str", lambda: zl.adapted_direction(NET, X, Y, "1"), "alpha"),
    ("adapted_direction Y None", lambda: zl.adapted_direction(NET, X, None), "Y"),
    ("adapted_direction rtol str", lambda: zl.adapted_direction(NET, X, Y, rtol="0.1"), "rtol"),
    ("gradient_flow steps float", lambda: zl.gradient_flow(NET, X, Y, 1.0, 2.0), "steps"),
    ("gradient_flow s_end str", lambda: zl.gradient_flow(NET, X, Y, "1", 2), "s_end"),
    ("gradient_flow halving_check", lambda: zl.gradient_flow(NET, X, Y, 1.0, 2, halving_check=1), "halving_check"),
    ("gradient_flow record bool", lambda: zl.gradient_flow(NET, X, Y, 1.0, 2, record=True), "record"),
]

FLOW_VALUE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("adapted_direction alpha 1.5", lambda: zl.adapted_direction(NET, X, Y, 1.5), "alpha"),
    ("adapted_direction alpha nan", lambda: zl.adapted_direction(NET, X, Y, np.nan), "alpha"),
    ("adapted_direction rtol below floor", lambda: zl.adapted_direction(NET, X, Y, rtol=1e-12), "rtol"),
    ("adapted_direction Y rows", lambda: zl.adapted_direction(NET, X, Y[:2]), "Y"),
    ("gradient_flow s_end 0", lambda: zl.gradient_flow(NET, X, Y, 0.0, 2), "s_end"),
    ("gradient_flow steps 0", lambda: zl.gradient_flow(NET, X, Y, 1.0, 0), "steps"),
    ("gradient_flow record 0", lambda: zl.gradient_flow(NET, X, Y, 1.0, 2, record=0), "record"),
    ("gradient_flow alpha -0.1", lambda: zl.gradient_flow(NET, X, Y, 1.0, 2, alpha=-0.1), "alpha"),
]


@pytest.mark.parametrize("call, argument", [c[1:] for c in FLOW_TYPE_ERRORS], ids=[c[0] for c in FLOW_TYPE_ERRORS])
def test_flows_wrong_type_is_a_type_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(TypeError, match=_names(argument)):
        call()


@pytest.mark.parametrize("call, argument", [c[1:] for c in FLOW_VALUE_ERRORS], ids=[c[0] for c in FLOW_VALUE_ERRORS])
def test_flows_wrong_value_is_a_value_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=_names(argument)) as info:
        call()
    assert not isinstance(info.value, TypeError)


# zlnotes.training_jacobian (appended)
TJ_TYPE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("training_jacobian net", lambda: zl.training_jacobian(ARCH, X, Y, 0.1, 2), "net"),
    ("training_jacobian lr str", lambda: zl.training_jacobian(NET, X, Y, "0.1", 2), "lr"),
    ("training_jacobian steps float", lambda: zl.training_jacobian(NET, X, Y, 0.1, 2.0), "steps"),
    ("training_jacobian Y None", lambda: zl.training_jacobian(NET, X, None, 0.1, 2), "Y"),
    ("training_jacobian max_params", lambda: zl.training_jacobian(NET, X, Y, 0.1, 2, max_params=1.5), "max_params"),
    ("second_derivative sigma str", lambda: zl.second_derivative("tanh", X), "sigma"),
]

TJ_VALUE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("training_jacobian lr 0", lambda: zl.training_jacobian(NET, X, Y, 0.0, 2), "lr"),
    ("training_jacobian steps -1", lambda: zl.training_jacobian(NET, X, Y, 0.1, -1), "steps"),
    ("training_jacobian Y rows", lambda: zl.training_jacobian(NET, X, Y[:2], 0.1, 2), "Y"),
    ("training_jacobian K > max_params", lambda: zl.training_jacobian(NET, X, Y, 0.1, 2, max_params=4), "max_params"),
    ("second_derivative z nan", lambda: zl.second_derivative(zl.activation("tanh"), [np.nan]), "z"),
]


@pytest.mark.parametrize("call, argument", [c[1:] for c in TJ_TYPE_ERRORS], ids=[c[0] for c in TJ_TYPE_ERRORS])
def test_training_jacobian_wrong_type_is_a_type_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(TypeError, match=_names(argument)):
        call()


@pytest.mark.parametrize("call, argument", [c[1:] for c in TJ_VALUE_ERRORS], ids=[c[0] for c in TJ_VALUE_ERRORS])
def test_training_jacobian_wrong_value_is_a_value_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=_names(argument)) as info:
        call()
    assert not isinstance(info.value, TypeError)


# zlnotes.two_layer (appended)
TL_X = zl.sphere_data(3, 2, rng=0)
TL_W, TL_A = zl.two_layer_init(4, 2, rng=1)
TL_TYPE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("relu_gram_limit X None", lambda: zl.relu_gram_limit(None), "X"),
    ("sphere_data n float", lambda: zl.sphere_data(3.0, 2, rng=0), "n"),
    ("sphere_data rng None", lambda: zl.sphere_data(3, 2, rng=None), "rng"),
    ("two_layer_init d str", lambda: zl.two_layer_init(4, "2", rng=0), "d"),
    ("two_layer_output a str", lambda: zl.two_layer_output(TL_W, "a", TL_X), "a"),
    ("two_layer_gram W None", lambda: zl.two_layer_gram(None, TL_X), "W"),
    ("kernel_losses eta str", lambda: zl.kernel_losses(np.eye(3), np.ones(3), "0.1", 2), "eta"),
    ("two_layer_gd steps float", lambda: zl.two_layer_gd(TL_X, np.ones(3), TL_W, TL_A, 0.1, 2.0), "steps"),
]

TL_VALUE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("relu_gram_limit zero row", lambda: zl.relu_gram_limit([[1.0, 0.0], [0.0, 0.0]]), "X"),
    ("sphere_data d 0", lambda: zl.sphere_data(3, 0, rng=0), "d"),
    ("two_layer_init m 0", lambda: zl.two_layer_init(0, 2, rng=0), "m"),
    ("two_layer_output X columns", lambda: zl.two_layer_output(TL_W, TL_A, np.ones((3, 5))), "X"),
    ("two_layer_output a length", lambda: zl.two_layer_output(TL_W, TL_A[:2], TL_X), "a"),
    ("two_layer_gram X nan", lambda: zl.two_layer_gram(TL_W, [[np.nan, 0.0]]), "X"),
    ("kernel_losses H not symmetric", lambda: zl.kernel_losses([[1.0, 1.0], [0.0, 1.0]], [1.0, 1.0], 0.1, 2), "H"),
    ("kernel_losses residual length", lambda: zl.kernel_losses(np.eye(3), np.ones(2), 0.1, 2), "residual"),
    ("two_layer_gd eta 0", lambda: zl.two_layer_gd(TL_X, np.ones(3), TL_W, TL_A, 0.0, 2), "eta"),
    ("two_layer_gd y length", lambda: zl.two_layer_gd(TL_X, np.ones(2), TL_W, TL_A, 0.1, 2), "y"),
]


@pytest.mark.parametrize("call, argument", [c[1:] for c in TL_TYPE_ERRORS], ids=[c[0] for c in TL_TYPE_ERRORS])
def test_two_layer_wrong_type_is_a_type_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(TypeError, match=_names(argument)):
        call()


@pytest.mark.parametrize("call, argument", [c[1:] for c in TL_VALUE_ERRORS], ids=[c[0] for c in TL_VALUE_ERRORS])
def test_two_layer_wrong_value_is_a_value_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=_names(argument)) as info:
        call()
    assert not isinstance(info.value, TypeError)


# zlnotes.kernels (appended)
KERNEL_TYPE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("relu_expectation cov None", lambda: zl.relu_expectation(None), "cov"),
    ("relu_derivative_expectation cov str", lambda: zl.relu_derivative_expectation("1"), "cov"),
    ("ntk_limit X None", lambda: zl.ntk_limit(None, 1), "X"),
    ("ntk_limit depth float", lambda: zl.ntk_limit(X, 1.0), "depth"),
    ("ntk_limit weight_var str", lambda: zl.ntk_limit(X, 1, weight_var="2"), "weight_var"),
    ("ntk_limit bias_var bool", lambda: zl.ntk_limit(X, 1, bias_var=True), "bias_var"),
    ("ntk_scaled net", lambda: zl.ntk_scaled(ARCH, X), "net"),
    ("ntk_scaled weight_var None", lambda: zl.ntk_scaled(NET, X, weight_var=None), "weight_var"),  # type: ignore[arg-type]
]

KERNEL_VALUE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("relu_expectation cov not square", lambda: zl.relu_expectation(np.ones((2, 3))), "cov"),
    ("relu_expectation cov asymmetric", lambda: zl.relu_expectation([[1.0, 0.2], [0.1, 1.0]]), "cov"),
    ("relu_derivative_expectation cov zero var", lambda: zl.relu_derivative_expectation(np.zeros((2, 2))), "cov"),
    ("ntk_limit depth -1", lambda: zl.ntk_limit(X, -1), "depth"),
    ("ntk_limit weight_var 0", lambda: zl.ntk_limit(X, 1, weight_var=0.0), "weight_var"),
    ("ntk_limit bias_var -1", lambda: zl.ntk_limit(X, 1, bias_var=-1.0), "bias_var"),
    ("ntk_limit X zero row", lambda: zl.ntk_limit(np.zeros((2, 2)), 1), "X"),
    ("ntk_limit X nan", lambda: zl.ntk_limit([[np.nan, 1.0]], 1), "X"),
    ("ntk_scaled X cols", lambda: zl.ntk_scaled(NET, np.ones((2, 5))), "X"),
    ("ntk_scaled bias_var nan", lambda: zl.ntk_scaled(NET, X, bias_var=np.nan), "bias_var"),
]


@pytest.mark.parametrize("call, argument", [c[1:] for c in KERNEL_TYPE_ERRORS], ids=[c[0] for c in KERNEL_TYPE_ERRORS])
def test_kernels_wrong_type_is_a_type_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(TypeError, match=_names(argument)):
        call()


@pytest.mark.parametrize(
    "call, argument", [c[1:] for c in KERNEL_VALUE_ERRORS], ids=[c[0] for c in KERNEL_VALUE_ERRORS]
)
def test_kernels_wrong_value_is_a_value_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=_names(argument)) as info:
        call()
    assert not isinstance(info.value, TypeError)


# zlnotes.full_rank (appended)
FR_W, FR_B = zl.torch_linear_init(2, 3, 0)
FR_V = np.ones(3)
FR_TYPE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("torch_linear_init d_in float", lambda: zl.torch_linear_init(2.0, 3, 0), "d_in"),
    ("torch_linear_init rng None", lambda: zl.torch_linear_init(2, 3, None), "rng"),
    ("shallow_jacobian X str", lambda: zl.shallow_jacobian("X", FR_W, FR_B, FR_V), "X"),
    ("shallow_jacobian frozen_v int", lambda: zl.shallow_jacobian(X, FR_W, FR_B, FR_V, frozen_v=1), "frozen_v"),
    ("shallow_gram v None", lambda: zl.shallow_gram(X, FR_W, FR_B, None), "v"),  # type: ignore[arg-type]
    ("full_rank_grid trials float", lambda: zl.full_rank_grid([4], [2], trials=2.0, rng=0), "trials"),
    ("full_rank_grid ns float", lambda: zl.full_rank_grid([4.5], [2], trials=2, rng=0), "ns[0]"),
    ("full_rank_grid ratio str", lambda: zl.full_rank_grid([4], [2], trials=2, rng=0, ratio="1"), "ratio"),
    ("full_rank_grid tolerance 32", lambda: zl.full_rank_grid([4], [2], trials=1, rng=0, tolerance=32), "tolerance"),
]

FR_VALUE_ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("torch_linear_init d_out 0", lambda: zl.torch_linear_init(2, 0, 0), "d_out"),
    ("shallow_jacobian W columns", lambda: zl.shallow_jacobian(X, np.ones((3, 5)), FR_B, FR_V), "W"),
    ("shallow_gram b length", lambda: zl.shallow_gram(X, FR_W, FR_B[:2], FR_V), "b"),
    ("shallow_gram X nan", lambda: zl.shallow_gram([[np.nan, 0.0]], FR_W, FR_B, FR_V), "X"),
    ("full_rank_grid widths 0", lambda: zl.full_rank_grid([4], [0], trials=2, rng=0), "widths[0]"),
    ("full_rank_grid ns empty", lambda: zl.full_rank_grid([], [2], trials=2, rng=0), "ns"),
    ("full_rank_grid ratio 0", lambda: zl.full_rank_grid([4], [2], trials=2, rng=0, ratio=0.0), "ratio"),
    ("full_rank_grid tolerance", lambda: zl.full_rank_grid([4], [2], trials=1, rng=0, tolerance="f16"), "tolerance"),
]


@pytest.mark.parametrize("call, argument", [c[1:] for c in FR_TYPE_ERRORS], ids=[c[0] for c in FR_TYPE_ERRORS])
def test_full_rank_wrong_type_is_a_type_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(TypeError, match=_names(argument)):
        call()


@pytest.mark.parametrize("call, argument", [c[1:] for c in FR_VALUE_ERRORS], ids=[c[0] for c in FR_VALUE_ERRORS])
def test_full_rank_wrong_value_is_a_value_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=_names(argument)) as info:
        call()
    assert not isinstance(info.value, TypeError)


def test_finiteness_is_tested_without_a_temporary_of_the_full_shape() -> None:
    import tracemalloc

    from zlnotes import _validation as zl_validation

    # a broadcast 10^5 × 10^5 input: 10^10 entries over 8 bytes (a boolean temporary: 9.3 GiB)
    huge = np.broadcast_to(1.0, (10**5, 10**5))
    assert zl_validation.as_matrix("X", huge) is not None
    with pytest.raises(ValueError, match=r"^X must contain only finite values; found 100000 NaN"):
        zl_validation.as_matrix("X", np.broadcast_to(np.array([[1.0], [np.nan]]), (2, 10**5)))
    dense = np.ones((4000, 1000))
    dense[-1, -1] = np.inf
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="found 1 NaN or infinite"):
            zl_validation.as_matrix("X", dense)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < dense.size // 2, f"the check allocated {peak} bytes for a {dense.shape} input"


def test_the_block_by_block_finiteness_check_agrees_with_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    from zlnotes import _validation as zl_validation

    monkeypatch.setattr(zl_validation, "_FINITE_CHUNK", 7)  # blocks of 7 entries: every branch on small arrays
    entries = st.sampled_from([0.0, 1.0, -2.5, 1e308, np.nan, np.inf, -np.inf])

    @settings(max_examples=300, deadline=None)
    @given(
        hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=4, max_side=6), elements=entries),
        st.integers(0, 3),
    )
    def check(array: np.ndarray, view: int) -> None:
        if view == 1 and array.ndim:  # strided
            array = array[::2]
        elif view == 2 and array.ndim:  # reversed
            array = array[::-1]
        elif view == 3:  # broadcast: a new leading axis of stride 0
            array = np.broadcast_to(array, (3,) + array.shape)
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        assert sum(b.size for b in zl_validation._blocks(array)) == array.size
        if bad == 0:
            zl_validation._require_finite("A", array)
        else:
            with pytest.raises(ValueError, match=rf"^A must contain only finite values; found {bad} NaN"):
                zl_validation._require_finite("A", array)

    check()
