import numpy as np
import pytest

import zlnotes as zl


def test_num_params_and_output_size():
    arch = zl.Architecture(4, (7, 5, 3), 2, "relu")
    assert arch.num_params == 7 * 5 + 5 * 8 + 3 * 6 + 2 * 4
    assert arch.output_size(9) == 18
    assert arch.widths == (4, 7, 5, 3, 2)
    assert arch.depth == 3
    assert zl.Architecture(4, (), 1).num_params == 5  # affine model


def test_flat_round_trip_and_order():
    arch = zl.Architecture(2, (3,), 2, "tanh")
    Z = np.arange(arch.num_params, dtype=float)
    net = zl.Network.from_flat(arch, Z)
    assert np.array_equal(net.flat(), Z)
    # Z = [vec W_1 (row-major), b_1, vec W_2, b_2]
    assert np.array_equal(net.weights[0], [[0, 1], [2, 3], [4, 5]])
    assert np.array_equal(net.biases[0], [6, 7, 8])
    assert np.array_equal(net.weights[1], [[9, 10, 11], [12, 13, 14]])
    assert np.array_equal(net.biases[1], [15, 16])


def test_forward_matches_the_layer_recursion():
    arch = zl.Architecture(3, (4, 4), 2, "softplus")
    net = zl.Network.init(arch, rng=3)
    X = np.random.default_rng(4).standard_normal((5, 3))
    a = X.T  # papers' convention: samples are columns
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        a = np.logaddexp(0.0, W @ a + b[:, None])
    F = (net.weights[-1] @ a + net.biases[-1][:, None]).T
    assert np.allclose(net.forward(X), F, rtol=1e-14, atol=0)
    assert [A.shape for A in net.hidden(X)] == [(5, 4), (5, 4)]


def test_init_is_seeded():
    arch = zl.Architecture(3, (4,), 1)
    assert np.array_equal(zl.Network.init(arch, 5).flat(), zl.Network.init(arch, np.random.default_rng(5)).flat())
    assert not np.array_equal(zl.Network.init(arch, 5).flat(), zl.Network.init(arch, 6).flat())
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator or an integer seed"):
        zl.Network.init(arch, None)


def test_network_is_immutable():
    net = zl.Network.init(zl.Architecture(2, (3,), 1), 0)
    with pytest.raises(ValueError):
        net.weights[0][0, 0] = 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        ((0, (3,), 1), "input_dim must be an integer >= 1"),
        ((2, (3, 0), 1), r"hidden\[1\] must be an integer >= 1"),
        ((2, (3,), -1), "output_dim must be an integer >= 1"),
    ],
)
def test_bad_architecture(args, message):
    with pytest.raises(ValueError, match=message):
        zl.Architecture(*args)


@pytest.mark.parametrize(
    "args, message",
    [
        ((2, (2.5,), 1), r"hidden\[0\] must be an integer >= 1; got float"),
        ((2, "abc", 1), "hidden must be an integer width or a sequence of widths"),
        ((2, 3.0, 1), "hidden must be an integer width or a sequence of widths"),
        ((2.0, (3,), 1), "input_dim must be an integer >= 1; got float"),
        ((2, (3,), True), "output_dim must be an integer >= 1; got bool"),
        ((2, (3,), 1, 7), "activation must be one of the strings"),
    ],
)
def test_architecture_wrong_types(args, message):
    with pytest.raises(TypeError, match=message):
        zl.Architecture(*args)


def test_bad_flat_vector():
    arch = zl.Architecture(2, (3,), 1)
    with pytest.raises(ValueError, match=f"Z \\(flat parameters\\) must have length {arch.num_params}; got length 5"):
        zl.Network.from_flat(arch, np.zeros(5))
    Z = np.zeros(arch.num_params)
    Z[3] = np.nan
    with pytest.raises(ValueError, match="must contain only finite values"):
        zl.Network.from_flat(arch, Z)
    with pytest.raises(ValueError, match="must be a 1-D array"):
        zl.Network.from_flat(arch, np.zeros((arch.num_params, 1)))


def test_bad_weights():
    arch = zl.Architecture(2, (3,), 1)
    with pytest.raises(ValueError, match=r"W_1\) must have 3 rows"):
        zl.Network(arch, [np.zeros((2, 2)), np.zeros((1, 3))], [np.zeros(3), np.zeros(1)])
    with pytest.raises(ValueError, match="must each hold 2 arrays"):
        zl.Network(arch, [np.zeros((3, 2))], [np.zeros(3)])


def test_bad_inputs():
    net = zl.Network.init(zl.Architecture(2, (3,), 1), 0)
    with pytest.raises(ValueError, match="X must have input_dim=2 columns; got shape \\(4, 3\\)"):
        net.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        net.forward(np.zeros(2))
    with pytest.raises(ValueError, match="X must contain only finite values; found 1"):
        net.forward(np.array([[1.0, np.inf]]))
    with pytest.raises(TypeError, match="X must be an array of real numbers"):
        net.forward([["a", "b"]])
    with pytest.raises(TypeError, match="X must be an array of real numbers; got NoneType"):
        net.forward(None)
    with pytest.raises(TypeError, match="X must be an array of real numbers; got str"):
        net.forward("1 2")
    with pytest.raises(ValueError, match="X must be a rectangular array of real numbers"):
        net.forward([[1.0, 2.0], [3.0]])


@pytest.mark.parametrize(
    "value, dtype",
    [
        (np.array([[1 + 1j, 2.0]]), "complex128"),
        (np.array([[True, False]]), "bool"),
        (np.array([["2020-01-01", "1970-01-02"]], dtype="datetime64[D]"), "datetime64"),
        (np.array([["1", "2"]]), "<U1"),
    ],
)
def test_non_real_dtypes_are_refused(value, dtype):
    net = zl.Network.init(zl.Architecture(2, (3,), 1), 0)
    with pytest.raises(TypeError, match=f"X must be an array of real numbers .*got dtype {dtype}"):
        net.forward(value)


def test_scalar_arguments_and_net_are_checked():
    arch = zl.Architecture(2, (3,), 1)
    with pytest.raises(TypeError, match="weight_gain must be a finite real number"):
        zl.Network.init(arch, 0, weight_gain="2")
    with pytest.raises(TypeError, match="bias_std must be a finite real number"):
        zl.Network.init(arch, 0, bias_std=[1, 2])
    with pytest.raises(ValueError, match="weight_gain must be a finite real number"):
        zl.Network.init(arch, 0, weight_gain=np.inf)
    with pytest.raises(ValueError, match="bias_std must be a finite real number"):
        zl.Network.init(arch, 0, bias_std=-1.0)
    assert zl.Network.init(arch, 0, weight_gain=np.float32(2.0), bias_std=np.int64(0)).biases[0].tolist() == [0.0] * 3
    X = np.zeros((2, 2))
    for fn in (zl.jacobian, zl.ntk, zl.jacobian_rank):
        with pytest.raises(TypeError, match="net must be a zlnotes.Network; got NoneType"):
            fn(None, X)
    with pytest.raises(TypeError, match="net must be a zlnotes.Network"):
        zl.cost(None, X, np.zeros((2, 1)))


def test_init_gain_comes_from_the_activation():
    for name in zl.ACTIVATIONS:
        arch = zl.Architecture(3, (4,), 2, name)
        net = zl.Network.init(arch, 7)
        explicit = zl.Network.init(arch, 7, weight_gain=arch.sigma.he_gain)
        assert np.array_equal(net.flat(), explicit.flat())
    import dataclasses

    wide = dataclasses.replace(zl.activation("tanh"), he_gain=3.0)
    W = zl.Network.init(zl.Architecture(3, (4,), 2, wide), 7).weights[0]
    assert np.array_equal(W, zl.Network.init(zl.Architecture(3, (4,), 2, "tanh"), 7, weight_gain=3.0).weights[0])
