"""Adversarial inputs to the numerics: refusals before work starts, no inf or NaN results,
scale-free ranks, and constructions that check what they return."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import zlnotes as zl
from zlnotes.construction import FIT_TOLERANCE

RELU = zl.Network.init(zl.Architecture(2, (3,), 1, "relu"), 0)
TANH = zl.Network.init(zl.Architecture(2, (3,), 1, "tanh"), 0)
X = np.random.default_rng(1).standard_normal((4, 2))
Y = np.random.default_rng(2).standard_normal((4, 1))
# weights 1e10 times too large: inputs of 1e300 overflow at the first layer
BIG = zl.Network(RELU.arch, [w * 1e10 for w in RELU.weights], RELU.biases)
# two hidden layers whose later weights are 1e200: the backpropagated factors overflow
DEEP = zl.Network.init(zl.Architecture(2, (3, 3), 1, "relu"), 0)
DEEP = zl.Network(DEEP.arch, [DEEP.weights[0], DEEP.weights[1] * 1e200, DEEP.weights[2] * 1e200], DEEP.biases)


@pytest.fixture
def budget() -> Iterator[int]:
    """A memory budget of 1 MiB for the test, the default rule afterwards."""
    zl.set_memory_budget(1 << 20)
    yield 1 << 20
    zl.set_memory_budget(None)


# ------------------------------------------------------------------ the memory budget

# (label, call, argument named, bytes the request needs at least)
HUGE = zl.Architecture(2, (10**6, 10**6), 1)  # K = 1e12 parameters
LARGE: list[tuple[str, Callable[[], object], str, int]] = [
    ("Network.init width 1e6 x 2", lambda: zl.Network.init(HUGE, 0), "arch", 8 * 10**12),
    ("Network.from_flat", lambda: zl.Network.from_flat(HUGE, [0.0]), "arch", 8 * 10**12),
    ("forward over 1e7 samples", lambda: TANH.forward(np.broadcast_to(1.0, (10**7, 2))), "X", 2 * 8 * 4 * 10**7),
    ("jacobian QN x K", lambda: zl.jacobian(zl.Network.init(zl.Architecture(2, (6000,), 1), 0), np.ones((8000, 2))),
     "X", 8 * 8000 * 24001),
    ("ntk QN x QN", lambda: zl.ntk(zl.Network.init(zl.Architecture(2, (3,), 10), 0), np.ones((6000, 2))), "X",
     8 * 60000**2),
    ("jacobian_rank gram", lambda: zl.jacobian_rank(zl.Network.init(zl.Architecture(2, (3,), 10), 0),
                                                    np.ones((6000, 2))), "X", 8 * 60000**2),
    ("jacobian_rank svd", lambda: zl.jacobian_rank(zl.Network.init(zl.Architecture(2, (3,), 10), 0),
                                                   np.ones((6000, 2)), method="svd"), "X", 8 * 60000 * 51),
    ("backprop_factors", lambda: zl.backprop_factors(zl.Network.init(zl.Architecture(2, (3000,), 1), 0),
                                                     np.ones((30000, 2))), "X", 8 * 30000 * 3000),
    ("face_split N x ab", lambda: zl.face_split(np.ones((10**4, 10**3)), np.ones((10**4, 10**3))), "A", 8 * 10**10),
    ("range_projector m x m", lambda: zl.range_projector(np.ones((10**5, 1))), "D", 8 * 10**10),
    ("generic_data", lambda: zl.generic_data(10**6, 10**4, rng=0), "n_samples", 8 * 10**10),
    ("clustered_data", lambda: zl.clustered_data(10**6, 3, 1000, radius=0.1, rng=0), "n_per_class", 8 * 3 * 10**9),
    ("CostFunction buffers", lambda: zl.CostFunction(zl.Architecture(2, (10**5,), 1), np.ones((10**5, 2)),
                                                     np.ones((10**5, 1))), "X", 8 * 10**10),
    ("zero_loss_minimizer width", lambda: zl.zero_loss_minimizer(X[:3], Y[:3], depth=2, width=10**6, activation="tanh"),
     "depth, width", 8 * 10**12),
    ("embed_network arch", lambda: zl.embed_network(RELU, zl.Architecture(2, (10**6, 10**6), 1, "relu")), "arch",
     8 * 10**12),
]


@pytest.mark.parametrize("call, argument, nbytes", [c[1:] for c in LARGE], ids=[c[0] for c in LARGE])
def test_a_request_above_the_budget_is_refused_before_allocating(
    call: Callable[[], object], argument: str, nbytes: int, budget: int
) -> None:
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{argument}:")
    size = float(re.search(r"needs ([0-9.e+]+) GiB", message).group(1))  # type: ignore[union-attr]
    assert size * 2**30 >= 0.99 * nbytes  # states the size
    assert "budget of 0.000977 GiB" in message and "zlnotes.set_memory_budget" in message


def test_the_budget_is_configurable_and_the_default_is_half_the_memory() -> None:
    import os

    zl.set_memory_budget(None)
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < zl.memory_budget() <= physical // 2
    zl.set_memory_budget(10**12)
    try:
        assert zl.memory_budget() == 10**12
        net = zl.Network.init(zl.Architecture(2, (5,), 1), 0)  # small requests are always allowed
        assert net.arch.num_params == 21
    finally:
        zl.set_memory_budget(None)


def test_a_small_request_is_never_refused_by_the_default_rule() -> None:
    zl.set_memory_budget(None)
    assert zl.ntk(TANH, X).shape == (4, 4)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc/self/statm")
def test_under_an_address_space_limit_requests_that_cannot_fit_are_value_errors() -> None:
    """Under a 4 GiB address-space limit (ulimit -v) every case is refused by zlnotes with a
    ValueError stating its size, never a MemoryError from numpy."""
    script = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        import numpy as np, zlnotes as zl
        assert zl.memory_budget() < 2 << 30, zl.memory_budget()
        cases = [
            lambda: zl.Network.init(zl.Architecture(2, (10**6, 10**6), 1), 0),
            lambda: zl.ntk(zl.Network.init(zl.Architecture(2, (3,), 10), 0), np.ones((6000, 2))),
            lambda: zl.jacobian(zl.Network.init(zl.Architecture(2, (3000,), 1), 0), np.ones((30000, 2))),
            lambda: zl.face_split(np.ones((10**4, 10**3)), np.ones((10**4, 10**3))),
            lambda: zl.cluster_geometry(np.ones((2, 2)), np.array([0, 10**9])),
            lambda: zl.generic_data(10**6, 10**4, rng=0),
            lambda: zl.range_projector(np.ones((10**5, 1))),
        ]
        for case in cases:
            try:
                case()
            except ValueError as err:
                print("refused:", str(err)[:40])
            else:
                raise SystemExit("accepted")
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("refused:") == 7


# ------------------------------------------------------------------ overflow


OVERFLOW: list[tuple[str, Callable[[], object]]] = [
    ("forward", lambda: BIG.forward(X * 1e300)),
    ("cost", lambda: zl.cost(RELU, X * 1e160, Y)),
    ("cost residual", lambda: zl.cost(zl.Network(RELU.arch, RELU.weights, [RELU.biases[0], np.array([1e308])]),
                                      X, -np.full((4, 1), 1e308))),
    ("output_gradient", lambda: zl.output_gradient(BIG, X * 1e300, Y)),
    ("cost_gradient", lambda: zl.cost_gradient(RELU, X * 1e160, Y)),
    ("cost_and_gradient", lambda: zl.cost_and_gradient(RELU, X * 1e160, Y)),
    ("jacobian", lambda: zl.jacobian(zl.Network(RELU.arch, [RELU.weights[0] * 1e300, RELU.weights[1]],
                                                RELU.biases), X * 1e10)),
    ("ntk", lambda: zl.ntk(RELU, X * 1e160)),
    ("backprop_factors", lambda: zl.backprop_factors(DEEP, X)),
    ("jacobian of a deep network", lambda: zl.jacobian(DEEP, X)),
    ("face_split", lambda: zl.face_split(X * 1e200, X * 1e200)),
    ("pre_and_post_activations", lambda: BIG.pre_and_post_activations(X * 1e300)),
]


@pytest.mark.parametrize("call", [c[1] for c in OVERFLOW], ids=[c[0] for c in OVERFLOW])
def test_overflow_from_finite_inputs_is_a_value_error(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=r"overflow"):
        call()


def test_values_near_the_limit_that_do_not_overflow_are_returned() -> None:
    F = RELU.forward(X * 1e300)
    assert np.all(np.isfinite(F)) and float(np.abs(F).max()) > 1e299
    D = zl.jacobian(RELU, X * 1e300)
    assert np.all(np.isfinite(D)) and float(np.abs(D).max()) > 1e299


def test_the_cost_function_reports_overflow_to_optimizers_as_inf() -> None:
    """CostFunction returns inf (documented): a line search rejects the step."""
    f = zl.CostFunction(RELU.arch, X * 1e160, Y)
    with np.errstate(over="ignore", invalid="ignore"):
        c, _ = f(RELU.flat())
    assert c == np.inf


# ------------------------------------------------------------------ ranks and spectra


def test_ranks_do_not_depend_on_the_scale() -> None:
    A = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])  # rank 2
    for scale in (1e-320, 1e-300, 1e-200, 1.0, 1e200, 1e300):
        if scale < 1e-310:
            B = np.eye(3) * scale  # subnormal: rank 3
            assert zl.numerical_rank(B) == 3
            continue
        assert zl.numerical_rank(A * scale) == 2, scale
        assert zl.gram_rank((A @ A.T) * scale) == 2, scale
        assert zl.range_projector(A * scale).rank == 2, scale
    assert zl.numerical_rank(np.full((2, 2), 1e308)) == 1
    assert zl.gram_rank(np.full((2, 2), 1e308)) == 1


def test_singular_values_of_huge_and_tiny_matrices() -> None:
    s = zl.singular_values(np.diag([1e300, 2e300]))
    assert np.allclose(s, [2e300, 1e300], rtol=1e-15)
    s = zl.singular_values(np.diag([3e-320, 4e-320]))
    assert s.tolist() == [4e-320, 3e-320]
    s = zl.singular_values(np.full((2, 2), 5e307))  # s_1 = 1e308, representable
    assert np.isclose(s[0], 1e308, rtol=1e-15)
    with pytest.raises(ValueError, match=r"^A: its largest singular value, about 2e\+308, exceeds"):
        zl.singular_values(np.full((2, 2), 1e308))


@pytest.mark.parametrize(
    "G",
    [-np.eye(3), np.diag([1.0, 1.0, -0.1]), np.array([[1.0, 2.0], [2.0, 1.0]]), -np.full((2, 2), 1e308)],
    ids=["-I", "one negative eigenvalue", "indefinite", "negative 1e308"],
)
def test_gram_rank_refuses_a_matrix_that_is_not_positive_semidefinite(G: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"^G must be positive semi-definite"):
        zl.gram_rank(G)


def test_gram_rank_accepts_rounding_in_a_gram_matrix() -> None:
    """A rank-deficient Gram matrix A Aᵀ has eigenvalues of either sign at rounding level."""
    A = np.random.default_rng(5).standard_normal((50, 10)) @ np.random.default_rng(6).standard_normal((10, 400))
    G = A @ A.T
    assert np.linalg.eigvalsh(G)[0] < 0  # rounding made it indefinite
    assert zl.gram_rank(G) == 10


def test_gram_rank_refuses_an_asymmetric_matrix() -> None:
    with pytest.raises(ValueError, match=r"^G must be symmetric"):
        zl.gram_rank(np.array([[1.0, 2.0], [0.0, 1.0]]))


# ------------------------------------------------------------------ constructions check their result


def test_zero_loss_minimizer_refuses_inputs_too_close_for_an_exact_fit() -> None:
    Xc = np.array([[0.0, 0.0], [1e-14, 0.0]])
    Yc = np.array([[1.0], [-1.0]])
    with pytest.raises(ValueError) as info:
        zl.zero_loss_minimizer(Xc, Yc, depth=2, width=3, activation="tanh")
    message = str(info.value)
    assert message.startswith("X: rounding defeats the exact fit")
    assert "too close" in message and "condition number" in message and "1e-14 apart" in message
    misfit = float(re.search(r"\|Y\|\^2 = ([0-9.e+-]+)", message).group(1))  # type: ignore[union-attr]
    assert misfit > FIT_TOLERANCE


def test_what_a_construction_returns_fits_to_its_tolerance() -> None:
    rng = np.random.default_rng(0)
    Xg, Yg = rng.standard_normal((5, 6)), rng.standard_normal((5, 2))
    for method, activation in (("pullback", "tanh"), ("box", "tanh"), ("shift", "relu"), ("auto", "softplus")):
        net = zl.zero_loss_minimizer(Xg, Yg, depth=3, width=6, activation=activation, method=method)  # type: ignore[arg-type]
        assert zl.relative_misfit(net.forward(Xg), Yg) <= FIT_TOLERANCE


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-30, 1e-6, 1.0, 1e6, 1e30, 1e200, 1e300])
def test_clustered_minimizer_does_not_depend_on_the_scale_of_the_data(scale: float) -> None:
    d = zl.clustered_data(5, 3, 3, radius=0.01, rng=0)
    geo = zl.cluster_geometry(d.X * scale, d.labels)
    assert geo.satisfied and np.isclose(geo.h, zl.cluster_geometry(d.X, d.labels).h * scale, rtol=1e-12)
    net = zl.clustered_minimizer(d.X * scale, d.labels, d.label_vectors)
    assert zl.relative_misfit(net.forward(d.X * scale), d.Y) <= FIT_TOLERANCE


def test_clustered_minimizer_still_refuses_overlapping_classes() -> None:
    d = zl.clustered_data(5, 3, 3, radius=2.0, rng=0)
    for scale in (1.0, 1e200):
        with pytest.raises(ValueError, match=r"^X: the classes overlap too much"):
            zl.clustered_minimizer(d.X * scale, d.labels, d.label_vectors)


def test_embed_network_checks_that_it_computes_the_same_function() -> None:
    big = zl.embed_network(RELU, zl.Architecture(2, (5, 5), 1, "relu"))
    probes = np.random.default_rng(9).standard_normal((20, 2))
    assert zl.relative_misfit(big.forward(probes), RELU.forward(probes)) <= FIT_TOLERANCE
    with pytest.raises(ValueError, match=r"^arch: activation must stay"):
        zl.embed_network(
            zl.Network.init(zl.Architecture(2, (3,), 1, zl.activation("smooth_relu", width=0.5)), 0),
            zl.Architecture(2, (4,), 1, zl.activation("smooth_relu", width=2.0)),
        )


def test_the_fit_check_raises_when_rounding_defeats_a_network() -> None:
    """verify_fit itself: a network that misses its targets is refused with the reason."""
    from zlnotes.construction import verify_fit

    with pytest.raises(ValueError, match=r"^X: rounding defeats the exact fit: .*; because"):
        verify_fit(TANH, X, Y, lambda: "because")
    assert verify_fit(TANH, X, TANH.forward(X), lambda: "unused") is TANH


WIDE = zl.Network.init(zl.Architecture(2, (400, 400), 1), 0)


def test_training_and_stationary_points_check_their_largest_arrays(budget: int) -> None:
    wide = WIDE
    with pytest.raises(ValueError, match=r"^net: the Newton polish's Hessian .* needs 587 GiB"):
        zl.stationary_point(wide, X, Y, lr=0.1, gd_steps=0)
    with pytest.raises(ValueError, match=r"^record: the NTK examined along the run"):
        zl.gradient_descent(TANH, np.ones((1000, 2)), np.ones((1000, 1)), 0.1, 1, record=1)


# ------------------------------------------------------------------ more overflow and scale cases

BIG_WEIGHTS = zl.Network(RELU.arch, [w * 1e300 for w in RELU.weights], RELU.biases)
MORE_REFUSALS: list[tuple[str, Callable[[], object], str]] = [
    ("gram_rtol m 1e400", lambda: zl.gram_rtol(10**400), "m"),
    ("significant digits 1e400", lambda: zl.significant(1.0, 10**400), "digits"),
    ("significant 1.7e308 to one digit", lambda: zl.significant(1.7e308, 1), "x"),
    ("relative_misfit F 1e300 times Y", lambda: zl.relative_misfit(Y * 1e300, Y), "F"),
    ("constant_output_cost 1e200", lambda: zl.constant_output_cost(Y * 1e200), "Y"),
    ("balance weights 1e300", lambda: zl.balance(BIG_WEIGHTS), "net"),
    ("Network.init bias_std 1e308", lambda: zl.Network.init(RELU.arch, 0, bias_std=1e308), "bias_std"),
    ("clustered_data points beyond float64", lambda: zl.clustered_data(20, 2, 2, radius=1.7e308, separation=1e308,
                                                                       rng=0), "radius, separation"),
]


@pytest.mark.parametrize("call, argument", [c[1:] for c in MORE_REFUSALS], ids=[c[0] for c in MORE_REFUSALS])
def test_results_beyond_float64_are_refused_naming_the_argument(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=rf"^{argument}[: ]"):
        call()


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e200, 1e300])
def test_relative_misfit_does_not_depend_on_the_scale(scale: float) -> None:
    assert np.isclose(zl.relative_misfit(Y * scale * 1.1, Y * scale), 0.01, rtol=1e-12)


@pytest.mark.parametrize("scale", [1e-200, 1e-30, 1.0, 1e30, 1e200])
@pytest.mark.parametrize("method, activation", [("pullback", "tanh"), ("box", "tanh"), ("shift", "relu")])
def test_zero_loss_minimizer_does_not_depend_on_the_scale_of_the_inputs(
    scale: float, method: str, activation: str
) -> None:
    Xs, Ys = X[:3] * scale, Y[:3]
    net = zl.zero_loss_minimizer(Xs, Ys, depth=2, width=3, activation=activation, method=method)  # type: ignore[arg-type]
    assert zl.relative_misfit(net.forward(Xs), Ys) <= FIT_TOLERANCE
    net = zl.zero_loss_minimizer(X[:3], Ys * scale, depth=2, width=3, activation=activation, method=method)  # type: ignore[arg-type]
    assert zl.relative_misfit(net.forward(X[:3]), Ys * scale) <= FIT_TOLERANCE


def test_embed_network_of_a_network_that_overflows_on_the_probes() -> None:
    """Weights of 1e300: the outputs overflow on standard-normal probes; the origin is checked."""
    big = zl.embed_network(BIG_WEIGHTS, zl.Architecture(2, (4,), 1, "relu"))
    assert np.array_equal(big.forward(np.zeros((1, 2))), BIG_WEIGHTS.forward(np.zeros((1, 2))))


@pytest.mark.parametrize(
    "kwargs",
    [{"width": 1e308}, {"sharpness": 1e-308}, {"sharpness": 1e308}],
    ids=["smooth_relu width 1e308", "softplus sharpness 1e-308", "softplus sharpness 1e308"],
)
def test_activation_parameters_whose_values_leave_float64_are_refused(kwargs: dict[str, float]) -> None:
    name = "smooth_relu" if "width" in kwargs else "softplus"
    with pytest.raises(ValueError, match=rf"^{next(iter(kwargs))} \(of {name}\) must be a finite real number in"):
        zl.activation(name, **kwargs)
    edge = {k: (2.0**500 if v > 1 else 2.0**-500) for k, v in kwargs.items()}
    values = zl.activation(name, **edge).value(np.array([-2.0, 0.0, 2.0]))
    assert np.all(np.isfinite(values))


def test_many_layers_and_long_runs_count_their_overhead(budget: int) -> None:
    with pytest.raises(ValueError, match=r"^depth, width: a network of depth 100000 "):
        zl.zero_loss_minimizer(X[:3], Y[:3], depth=10**5, width=3, activation="tanh")
    with pytest.raises(ValueError, match=r"^arch: a network of K = 1200001 parameters in 100001 layers"):
        zl.Network.init(zl.Architecture(2, (3,) * 10**5, 1), 0)
    with pytest.raises(ValueError, match=r"^steps: the history of 100000 steps"):
        zl.gradient_descent(TANH, X, Y, 0.1, 10**5)


def test_lbfgs_polish_refuses_a_start_whose_cost_overflows() -> None:
    with pytest.raises(ValueError, match=r"^net: the cost or its gradient is not finite at the starting point"):
        zl.lbfgs_polish(BIG_WEIGHTS, X, Y, max_iter=5)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc/self/statm")
def test_under_an_address_space_limit_flows_training_jacobian_and_two_layer_refuse_by_size() -> None:
    """The harness's MemoryErrors and endless runs of these modules, under a real 4 GiB
    address-space limit: each is a ValueError from zlnotes naming its argument, before work starts."""
    script = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        import numpy as np, zlnotes as zl
        net = zl.Network.init(zl.Architecture(2, (3,), 1, "tanh"), 0)
        X, Y = np.ones((4, 2)), np.zeros((4, 1))
        W, a = zl.two_layer_init(4, 2, rng=1)
        big = np.broadcast_to(1.0, (10**5, 10**5))
        cases = [
            ("X", lambda: zl.training_jacobian(net, np.broadcast_to(1.0, (10**7, 2)),
                                               np.broadcast_to(1.0, (10**7, 1)), 0.1, 1)),
            ("z", lambda: zl.second_derivative(zl.activation("tanh"), big)),
            ("X", lambda: zl.adapted_direction(zl.Network.init(zl.Architecture(2, (3,), 10), 0),
                                               np.ones((1200, 2)), np.ones((1200, 10)))),
            ("steps", lambda: zl.gradient_flow(net, X, Y, 1.0, 10**8, halving_check=False)),
            ("X", lambda: zl.two_layer_gram(W, np.ones((30000, 2)))),
            ("H", lambda: zl.kernel_losses(big, np.ones(10**5), 0.1, 2)),
            ("steps", lambda: zl.kernel_losses(np.eye(3), np.ones(3), 0.1, 10**9)),
            ("steps", lambda: zl.two_layer_gd(np.eye(2), np.ones(2), W, a, 0.1, 10**10)),
        ]
        for name, case in cases:
            try:
                case()
            except ValueError as err:
                assert str(err).startswith(name + ":") and "GiB" in str(err), err
                print("refused:", str(err)[:40])
            else:
                raise SystemExit("accepted")
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("refused:") == 8
