import numpy as np
import pytest
from tolerances import ROUNDOFF_RTOL

import zlnotes as zl

EXACT_FIT = 1e-18
"""|F − Y|²/|Y|² of an exact construction: a float64 residual is ~1e-16 |Y| per entry, so its
square is ~1e-32; 1e-18 (the issue's acceptance bound) leaves ample room for depth 8."""


def _relative_loss(net, X, Y):
    F = zl.Network.from_flat(net.arch, net.flat()).forward(X)  # independent of the returned object
    return np.sum((F - Y) ** 2) / np.sum(Y ** 2)


@pytest.mark.parametrize("activation", zl.ACTIVATIONS)
@pytest.mark.parametrize("depth", [0, 1, 3, 8])
@pytest.mark.parametrize("rng", [None, 4])
def test_zero_loss_for_every_activation_and_depth(activation, depth, rng):
    data = np.random.default_rng(depth + 10)
    N, M, Q, width = 9, 10, 2, 9
    X, Y = data.standard_normal((N, M)), data.standard_normal((N, Q))
    net = zl.zero_loss_minimizer(X, Y, depth=depth, width=width, activation=activation, rng=rng)
    assert net.arch.hidden == (width,) * depth and net.arch.activation == activation
    assert _relative_loss(net, X, Y) < EXACT_FIT


def test_narrow_width_and_few_inputs():
    """N = width + 1 and N = input_dim + 1, the edge of what the construction allows."""
    data = np.random.default_rng(0)
    X, Y = data.standard_normal((6, 5)), data.standard_normal((6, 1))
    for activation in ("relu", "tanh"):
        net = zl.zero_loss_minimizer(X, Y, depth=3, width=5, activation=activation)
        assert _relative_loss(net, X, Y) < EXACT_FIT


def test_degenerate_family():
    """Different seeds give different parameters, all with zero loss (Theorem 2.2)."""
    data = np.random.default_rng(1)
    X, Y = data.standard_normal((5, 6)), data.standard_normal((5, 1))
    nets = [zl.zero_loss_minimizer(X, Y, depth=2, width=6, activation="relu", rng=s) for s in range(3)]
    assert all(_relative_loss(n, X, Y) < EXACT_FIT for n in nets)
    assert min(np.linalg.norm(a.flat() - b.flat()) for a, b in [(nets[0], nets[1]), (nets[1], nets[2])]) > 0.1


def test_methods():
    data = np.random.default_rng(2)
    X, Y = data.standard_normal((5, 6)), data.standard_normal((5, 1))
    net = zl.zero_loss_minimizer(X, Y, depth=2, width=6, activation="relu", method="box")
    assert _relative_loss(net, X, Y) < EXACT_FIT
    with pytest.raises(ValueError, match="method='shift' needs a ReLU-like activation"):
        zl.zero_loss_minimizer(X, Y, depth=2, width=6, activation="tanh", method="shift")


def test_impossible_problems_raise():
    data = np.random.default_rng(3)
    X, Y = data.standard_normal((8, 10)), data.standard_normal((8, 1))
    with pytest.raises(ValueError, match=r"width: the shift construction needs N <= width \+ 1 = 7"):
        zl.zero_loss_minimizer(X, Y, depth=2, width=6, activation="relu")
    with pytest.raises(ValueError, match=r"width: the box construction needs N <= width \+ 1 = 7"):
        zl.zero_loss_minimizer(X, Y, depth=2, width=6, activation="tanh", method="box")
    X_low = data.standard_normal((8, 3))  # 8 points in R^3 cannot be affinely independent
    with pytest.raises(
        ValueError, match=r"affinely independent .* got rank 4 \(impossible with N > input_dim \+ 1 = 4\)"
    ):
        zl.zero_loss_minimizer(X_low, Y, depth=2, width=10, activation="relu")
    X_dup = X.copy()
    X_dup[1] = X_dup[0]
    with pytest.raises(ValueError, match="affinely independent samples, rank \\[X 1\\] = N = 8; got rank 7"):
        zl.zero_loss_minimizer(X_dup, Y, depth=2, width=10, activation="tanh")
    with pytest.raises(ValueError, match="Y must have 8 rows"):
        zl.zero_loss_minimizer(X, Y[:3], depth=2, width=10, activation="tanh")
    with pytest.raises(ValueError, match="activation must be one of"):
        zl.zero_loss_minimizer(X, Y, depth=2, width=10, activation="swish")


@pytest.mark.parametrize("scale", [1e-12, 1e-6, 1e6, 1e14])
def test_exact_at_any_data_scale(scale):
    """The shift rescales W_1 to the data and the affine-rank check is scale-free."""
    data = np.random.default_rng(5)
    X, Y = scale * data.standard_normal((5, 6)), data.standard_normal((5, 2))
    for activation in ("relu", "softplus", "tanh"):
        for rng in (None, 1):
            net = zl.zero_loss_minimizer(X, Y, depth=3, width=6, activation=activation, rng=rng)
            assert _relative_loss(net, X, Y) < EXACT_FIT


def _same_up_to_rounding(F, G):
    """Equal to rounding of the outputs' scale (BLAS may sum padded products in another order)."""
    return float(np.abs(F - G).max()) <= ROUNDOFF_RTOL * max(1.0, float(np.abs(G).max()))


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus", "identity"])
def test_embed_network_wider_keeps_the_function(activation):
    net = zl.Network.init(zl.Architecture(3, (4, 2), 2, activation), 5)
    wide = zl.embed_network(net, zl.Architecture(3, (7, 5), 2, activation))
    X = np.random.default_rng(6).standard_normal((11, 3))
    assert _same_up_to_rounding(wide.forward(X), net.forward(X))


@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_embed_network_deeper_keeps_the_function(activation):
    """Identity layers after a relu layer pass its nonnegative output through unchanged (and
    any output of an identity layer)."""
    net = zl.Network.init(zl.Architecture(2, (3, 3), 1, activation), 1)
    deep = zl.embed_network(net, zl.Architecture(2, (4, 3, 6, 3), 1, activation))
    X = np.random.default_rng(2).standard_normal((20, 2)) * 3
    assert _same_up_to_rounding(deep.forward(X), net.forward(X))
    # the clustered construction, embedded into a wider and deeper network, stays exact
    data = zl.clustered_data(10, 3, 2, radius=0.02, rng=3)
    small = zl.clustered_minimizer(data.X, data.labels, data.label_vectors)
    big = zl.embed_network(small, zl.Architecture(2, (5, 2, 4, 3), 3, "relu"))
    assert _relative_loss(big, data.X, data.Y) < EXACT_FIT


@pytest.mark.parametrize(
    "src, dst, rule",
    [
        (zl.Architecture(2, (3,), 1, "relu"), zl.Architecture(2, (2,), 1, "relu"), "hidden layer 1 has width 2 < 3"),
        (zl.Architecture(2, (3, 3), 1, "relu"), zl.Architecture(2, (3,), 1, "relu"), "depth must be >= 2"),
        (zl.Architecture(2, (3,), 1, "tanh"), zl.Architecture(2, (3, 3), 1, "tanh"), "adding hidden layers needs"),
        (
            zl.Architecture(2, (3,), 1, zl.activation("leaky_relu", slope=0.2)),
            zl.Architecture(2, (3, 3), 1, zl.activation("leaky_relu", slope=0.2)),
            "identity on its range",
        ),
        (
            zl.Architecture(2, (3,), 1, "smooth_relu"),
            zl.Architecture(2, (3, 3), 1, "smooth_relu"),
            "identity on its range",
        ),
        (
            zl.Architecture(2, (3,), 1, "leaky_relu"),
            zl.Architecture(2, (3,), 1, zl.activation("leaky_relu", slope=0.2)),
            r"activation must stay 'leaky_relu' \(slope=0.01\); got 'leaky_relu' \(slope=0.2\)",
        ),
        (
            zl.Architecture(2, (3,), 1, zl.activation("softplus", sharpness=4.0)),
            zl.Architecture(2, (4,), 1, "softplus"),
            r"activation must stay 'softplus' \(sharpness=4\)",
        ),
        (
            zl.Architecture(2, (3,), 1, zl.activation("smooth_relu", width=0.5)),
            zl.Architecture(2, (4,), 1, "smooth_relu"),
            "activation must stay 'smooth_relu'",
        ),
        (zl.Architecture(2, (3,), 1, "relu"), zl.Architecture(2, (3, 2), 1, "relu"), "hidden layer 2 has width 2 < 3"),
        (zl.Architecture(2, (3,), 1, "relu"), zl.Architecture(3, (3,), 1, "relu"), "input and output dimensions"),
        (zl.Architecture(2, (3,), 1, "relu"), zl.Architecture(2, (3,), 1, "tanh"), "activation must stay"),
    ],
)
def test_embed_network_refuses_what_it_cannot_carry(src, dst, rule):
    with pytest.raises(ValueError, match=rule):
        zl.embed_network(zl.Network.init(src, 0), dst)


def test_embed_network_accepts_the_same_parametrized_activation():
    """An activation built twice with the same parameters is the same function."""
    src = zl.Architecture(2, (3,), 1, zl.activation("leaky_relu", slope=0.2))
    net = zl.Network.init(src, 0)
    wide = zl.embed_network(net, zl.Architecture(2, (5,), 1, zl.activation("leaky_relu", slope=0.2)))
    X = np.random.default_rng(1).standard_normal((6, 2))
    assert _same_up_to_rounding(wide.forward(X), net.forward(X))


def test_embed_network_type_errors():
    net = zl.Network.init(zl.Architecture(2, (3,), 1, "relu"), 0)
    with pytest.raises(TypeError, match="arch must be a zlnotes.Architecture"):
        zl.embed_network(net, (2, (3,), 1))
    with pytest.raises(TypeError, match="net must be a zlnotes.Network"):
        zl.embed_network(net.flat(), net.arch)


# --- the paper's construction of Theorem 2.1: the pull-back (Lemma 2, eq. 10–13) ---------

SAME_FEATURES = 1e-9
"""Hidden features of two data sets with the same targets agree to rounding (measured ~1e-15
at depth 4); 1e-9 leaves a margin of six orders for other data and depths."""

AFFINE_RANK_RTOL = 1e-10
"""Relative tolerance for rank [A_L 1] ≤ Q + 1: the singular values beyond Q + 1 are rounding
(below 1e-16 relative up to depth 12, because the padded coordinates are exactly constant)
against ~1e-2 for the last genuine one. numpy's default rule is asserted as well."""


def _pullback_problem(seed, N, M, Q):
    data = np.random.default_rng([seed, 12])
    return data.standard_normal((N, M)), data.standard_normal((N, Q))


def _plain_outputs_and_last_hidden(net, X):
    """The network evaluated sample by sample with the reference formulas (no shared code)."""
    from reference import plain_forward

    outs, last = [], []
    for x in X:
        z, a = plain_forward(net, x)
        outs.append(net.weights[-1] @ a[-1] + net.biases[-1])
        last.append(a[-1])
    return np.array(outs), np.array(last)


@pytest.mark.parametrize("activation", ["tanh", "softplus", "relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("rng", [None, 7])
def test_pullback_fits_exactly_with_target_only_features(activation, depth, rng):
    N, M, Q = 6, 8, 2  # input dimension M >= N, width = M: the paper's hypotheses
    X, Y = _pullback_problem(depth, N, M, Q)
    net = zl.zero_loss_minimizer(X, Y, depth=depth, width=M, activation=activation, method="pullback", rng=rng)
    assert net.arch.hidden == (M,) * depth
    F, A_L = _plain_outputs_and_last_hidden(net, X)
    assert np.sum((F - Y) ** 2) / np.sum(Y**2) < EXACT_FIT
    # the last hidden layer is T_L⁻¹ ι(y_j): affine in the targets, rank [A_L 1] <= Q + 1
    s = np.linalg.svd(np.hstack([A_L, np.ones((N, 1))]), compute_uv=False)
    assert np.count_nonzero(s > AFFINE_RANK_RTOL * s[0]) <= Q + 1
    assert np.linalg.matrix_rank(np.hstack([A_L, np.ones((N, 1))])) <= Q + 1  # numpy's tolerance too
    # other inputs, the same targets: the same hidden features, layer by layer
    X_other, _ = _pullback_problem(depth + 100, N, M, Q)
    other = zl.zero_loss_minimizer(X_other, Y, depth=depth, width=M, activation=activation, method="pullback", rng=rng)
    for A, B in zip(net.hidden(X)[1:], other.hidden(X_other)[1:]):
        assert np.abs(A - B).max() < SAME_FEATURES
    # ... while the shift and the box keep the data's affine rank N in the last hidden layer
    if activation in ("tanh", "identity"):
        box = zl.zero_loss_minimizer(X, Y, depth=depth, width=M, activation=activation, method="box")
        assert zl.numerical_rank(box.hidden(X)[-1] - box.hidden(X)[-1].mean(axis=0)) == N - 1


def test_pullback_is_the_papers_eq13_when_X_has_full_rank():
    """rank X = N: W_1 by regression for the free b_1 (the midrange of the pulled-back
    pre-activations); the coordinates the targets do not reach get W_1 rows of exact zeros,
    so the trailing hidden features are exactly constant, layer after layer."""
    X, Y = _pullback_problem(1, 5, 7, 2)
    for rng in (None, 3):
        net = zl.zero_loss_minimizer(X, Y, depth=3, width=7, activation="tanh", method="pullback", rng=rng)
        Z1 = X @ net.weights[0].T + net.biases[0]
        assert np.allclose(net.biases[0], 0.5 * (Z1.max(axis=0) + Z1.min(axis=0)), rtol=0, atol=1e-12)
        assert not np.any(net.weights[0][2:])  # ι pads with zeros: rows Q.. of W_1 are exactly 0
        for A in net.hidden(X)[1:]:
            assert np.all(A[:, 2:] == A[0, 2:])  # exactly constant, not only to rounding
    # affinely but not linearly independent inputs: still exact, W_1 and b_1 solved together
    X_aff = np.vstack([np.eye(4), np.zeros(4)]) + 1.0  # 5 points in R^4, rank X = 4, rank [X 1] = 5
    Y5 = np.arange(5.0).reshape(5, 1)
    net = zl.zero_loss_minimizer(X_aff, Y5, depth=2, width=4, activation="tanh", method="pullback")
    assert np.sum((net.forward(X_aff) - Y5) ** 2) / np.sum(Y5**2) < EXACT_FIT


def test_pullback_deterministic_and_degenerate():
    X, Y = _pullback_problem(2, 5, 6, 2)
    a = zl.zero_loss_minimizer(X, Y, depth=3, width=6, activation="softplus", method="pullback")
    b = zl.zero_loss_minimizer(X, Y, depth=3, width=6, activation="softplus", method="pullback")
    assert np.array_equal(a.flat(), b.flat())
    c = zl.zero_loss_minimizer(X, Y, depth=3, width=6, activation="softplus", method="pullback", rng=1)
    assert np.linalg.norm(a.flat() - c.flat()) > 0.1
    assert np.sum((c.forward(X) - Y) ** 2) / np.sum(Y**2) < EXACT_FIT


def test_pullback_any_width_at_least_Q():
    """The pull-back needs width >= Q only (derived): a width far below N still fits."""
    X, Y = _pullback_problem(3, 9, 10, 3)
    net = zl.zero_loss_minimizer(X, Y, depth=3, width=3, activation="tanh", method="pullback")
    assert np.sum((net.forward(X) - Y) ** 2) / np.sum(Y**2) < EXACT_FIT
    with pytest.raises(ValueError, match=r"width: the pullback construction needs width >= Q = 3.*got 2"):
        zl.zero_loss_minimizer(X, Y, depth=3, width=2, activation="tanh", method="pullback")


def test_auto_picks_the_papers_construction():
    X, Y = _pullback_problem(4, 5, 6, 1)
    for activation, method in [
        ("tanh", "pullback"),
        ("identity", "pullback"),
        ("relu", "shift"),
        ("softplus", "shift"),
    ]:
        auto = zl.zero_loss_minimizer(X, Y, depth=2, width=6, activation=activation)
        explicit = zl.zero_loss_minimizer(X, Y, depth=2, width=6, activation=activation, method=method)
        assert np.array_equal(auto.flat(), explicit.flat())


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_pullback_refuses_too_many_points(activation):
    """N > M + 1 points cannot be affinely independent: the first-layer regression has no
    exact solution for arbitrary pre-activations, so the construction refuses."""
    X, Y = _pullback_problem(5, 6, 4, 1)
    with pytest.raises(
        ValueError, match=r"X: .*rank \[X 1\] = N = 6; got rank 5 \(impossible with N > input_dim \+ 1 = 5\)"
    ):
        zl.zero_loss_minimizer(X, Y, depth=2, width=4, activation=activation, method="pullback")
    with pytest.raises(ValueError, match="method must be one of 'auto', 'pullback', 'shift', 'box'"):
        zl.zero_loss_minimizer(X[:3], Y[:3], depth=2, width=4, activation=activation, method="pull-back")
