import numpy as np
import pytest

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
    with pytest.raises(ValueError, match=r"width: the construction needs N <= width \+ 1 = 7"):
        zl.zero_loss_minimizer(X, Y, depth=2, width=6, activation="relu")
    X_low = data.standard_normal((8, 3))  # 8 points in R^3 cannot be affinely independent
    with pytest.raises(ValueError, match=r"affinely independent .* got rank 4 \(impossible with N > input_dim \+ 1 = 4\)"):
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


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
def test_embed_network_wider_keeps_the_function_exactly(activation):
    net = zl.Network.init(zl.Architecture(3, (4, 2), 2, activation), 5)
    wide = zl.embed_network(net, zl.Architecture(3, (7, 5), 2, activation))
    X = np.random.default_rng(6).standard_normal((11, 3))
    assert np.array_equal(wide.forward(X), net.forward(X))


def test_embed_network_deeper_relu_keeps_the_function_exactly():
    """Identity layers after a relu layer pass its nonnegative output through unchanged."""
    net = zl.Network.init(zl.Architecture(2, (3, 3), 1, "relu"), 1)
    deep = zl.embed_network(net, zl.Architecture(2, (4, 3, 6, 3), 1, "relu"))
    X = np.random.default_rng(2).standard_normal((20, 2)) * 3
    assert np.array_equal(deep.forward(X), net.forward(X))
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
        (zl.Architecture(2, (3,), 1, "tanh"), zl.Architecture(2, (3, 3), 1, "tanh"), "adding hidden layers needs a relu"),
        (zl.Architecture(2, (3,), 1, "relu"), zl.Architecture(2, (3, 2), 1, "relu"), "hidden layer 2 has width 2 < 3"),
        (zl.Architecture(2, (3,), 1, "relu"), zl.Architecture(3, (3,), 1, "relu"), "input and output dimensions"),
        (zl.Architecture(2, (3,), 1, "relu"), zl.Architecture(2, (3,), 1, "tanh"), "activation must stay"),
    ],
)
def test_embed_network_refuses_what_it_cannot_carry(src, dst, rule):
    with pytest.raises(ValueError, match=rule):
        zl.embed_network(zl.Network.init(src, 0), dst)
