"""zl.training_jacobian against central differences of gradient descent's end point, and
its exact unit singular values (first-layer directions orthogonal to every [x_i, 1])."""

from __future__ import annotations

import numpy as np
import pytest

import zlnotes as zl

# central differences with step h err by ~h² |θ'''| + ε|θ_T|/h; at h = 1e-5 both are ~1e-10
FD_STEP = 1e-5
FD_RTOL = 1e-7
# an exact unit singular value is 1 to rounding: |σ − 1| <= UNIT_TOL (the rounding of
# K·steps products is ~1e-14 here; the nearest singular value that is not exact is far away)
UNIT_TOL = 1e-9


def _end_point(arch: zl.Architecture, Z: np.ndarray, X: np.ndarray, Y: np.ndarray, lr: float, T: int) -> np.ndarray:
    return zl.gradient_descent(zl.Network.from_flat(arch, Z), X, Y, lr, T)[0].flat()


def _central_differences(net: zl.Network, X: np.ndarray, Y: np.ndarray, lr: float, T: int) -> np.ndarray:
    Z0, K = net.flat(), net.arch.num_params
    J = np.empty((K, K))
    for j in range(K):
        e = np.zeros(K)
        e[j] = FD_STEP
        plus = _end_point(net.arch, Z0 + e, X, Y, lr, T)
        minus = _end_point(net.arch, Z0 - e, X, Y, lr, T)
        J[:, j] = (plus - minus) / (2 * FD_STEP)
    return J


CASES = [  # (activation, hidden widths, seed)
    ("tanh", (4, 3), 11),
    ("softplus", (4,), 12),
    ("smooth_relu", (3, 3), 13),
    ("identity", (3,), 14),
    ("tanh", (5,), 15),
]


@pytest.mark.parametrize("act, hidden, seed", CASES)
def test_matches_central_differences(act: str, hidden: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    arch = zl.Architecture(3, hidden, 2, act)
    net = zl.Network.init(arch, rng)
    X, Y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    J = zl.training_jacobian(net, X, Y, 0.1, 25)
    Jfd = _central_differences(net, X, Y, 0.1, 25)
    assert J.shape == (arch.num_params,) * 2
    err = np.abs(J - Jfd).max() / np.abs(J).max()
    assert err < FD_RTOL, f"{act}: relative error {err:.2e} against central differences"
    assert np.abs(J - np.eye(arch.num_params)).max() > 1e-3  # the run moved: J is not I


def test_relu_away_from_kinks() -> None:
    # relu: σ'' = 0, exact where no pre-activation crosses 0 for the perturbed starts
    rng = np.random.default_rng(21)
    arch = zl.Architecture(3, (4,), 1, "relu")
    net = zl.Network.init(arch, rng)
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((6, 1))
    lr, T = 0.05, 20
    Z = net.flat()
    for t in range(T + 1):  # every pre-activation stays far from the kink along the run
        z = zl.Network.from_flat(arch, Z).pre_and_post_activations(X)[0][0]
        assert np.abs(z).min() > 1e-3, "the test run passes near a kink: change the seed"
        Z = _end_point(arch, Z, X, Y, lr, 1)
    err = np.abs(zl.training_jacobian(net, X, Y, lr, T) - _central_differences(net, X, Y, lr, T)).max()
    assert err < FD_RTOL


def test_hessian_vector_products_match_differences_of_gradients() -> None:
    # one step: J = I − lr ∇²C, so (I − J)/lr is the Hessian; compare with differences of ∇C
    rng = np.random.default_rng(31)
    arch = zl.Architecture(2, (3, 2), 2, "softplus")
    net = zl.Network.init(arch, rng)
    X, Y = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    H = (np.eye(arch.num_params) - zl.training_jacobian(net, X, Y, 0.5, 1)) / 0.5
    assert np.abs(H - H.T).max() < 1e-12 * np.abs(H).max()
    f, Z, h = zl.CostFunction(arch, X, Y), net.flat(), 1e-5
    for j in range(arch.num_params):
        e = np.zeros(arch.num_params)
        e[j] = h
        col = (f(Z + e)[1] - f(Z - e)[1]) / (2 * h)
        assert np.abs(col - H[:, j]).max() < 1e-7 * max(1.0, np.abs(H).max())


@pytest.mark.parametrize("act", ["tanh", "softplus", "relu", "smooth_relu"])
def test_unit_singular_values_at_least_the_first_layer_count(act: str) -> None:
    rng = np.random.default_rng(41)
    M, N, h = 6, 4, 3  # rank [X 1] <= N = 4 < M + 1 = 7
    arch = zl.Architecture(M, (h, 2), 2, act)
    net = zl.Network.init(arch, rng)
    X, Y = rng.standard_normal((N, M)), rng.standard_normal((N, 2))
    X[:, 5] = X[:, 4] - 2 * X[:, 0]  # a dependent column, as blank pixels give
    J = zl.training_jacobian(net, X, Y, 0.2, 40)
    s = np.linalg.svd(J, compute_uv=False)
    bound = h * (M + 1 - zl.affine_rank(X))
    assert bound == 9
    assert int(np.sum(np.abs(s - 1) <= UNIT_TOL)) >= bound
    # the subspace itself: first-layer directions whose rows are orthogonal to every [x_i, 1]
    A = np.hstack([X, np.ones((N, 1))])
    null = np.linalg.svd(A)[2][zl.affine_rank(X) :]  # (M + 1 − r) × (M + 1)
    (ws, bs) = arch.param_offsets()[0]
    for a in range(h):
        for n in null:
            v = np.zeros(arch.num_params)
            v[ws.start + a * M : ws.start + (a + 1) * M] = n[:M]
            v[bs.start + a] = n[M]
            assert np.abs(J @ v - v).max() < UNIT_TOL and np.abs(J.T @ v - v).max() < UNIT_TOL


def test_zero_steps_is_identity_and_refusals() -> None:
    arch = zl.Architecture(2, (3,), 1, "tanh")
    net = zl.Network.init(arch, 0)
    X, Y = np.ones((3, 2)), np.zeros((3, 1))
    assert np.array_equal(zl.training_jacobian(net, X, Y, 0.1, 0), np.eye(arch.num_params))
    with pytest.raises(ValueError, match="max_params"):
        zl.training_jacobian(net, X, Y, 0.1, 1, max_params=5)
    with pytest.raises(ValueError, match="lr"):
        zl.training_jacobian(net, 1e3 * X, Y, 1e6, 50)


def test_second_derivative_against_differences() -> None:
    z = np.linspace(-3, 3, 13) + 0.05
    for sigma in (zl.activation("tanh"), zl.activation("softplus", sharpness=2.0), zl.activation("smooth_relu")):
        fd = (sigma.derivative(z + 1e-6) - sigma.derivative(z - 1e-6)) / 2e-6
        assert np.abs(zl.second_derivative(sigma, z) - fd).max() < 1e-8
    assert not np.any(zl.second_derivative(zl.activation("relu"), z))


def test_the_memory_check_counts_the_forward_and_backward_buffers() -> None:
    # N = 10^7 broadcast samples need little memory for X but gigabytes of layer buffers
    net = zl.Network.init(zl.Architecture(2, (3,), 1, "tanh"), 0)
    X, Y = np.broadcast_to(1.0, (10**7, 2)), np.broadcast_to(0.0, (10**7, 1))
    zl.set_memory_budget(1 << 30)
    try:
        with pytest.raises(ValueError, match=r"^X: .*buffers over N = 10000000 samples.*memory budget"):
            zl.training_jacobian(net, X, Y, 0.1, 1)
    finally:
        zl.set_memory_budget(None)


@pytest.mark.parametrize(
    "scale_x, scale_y, act, name",
    [
        (1e200, 1.0, "relu", "X, net"),
        (1.0, 1e200, "tanh", "Y"),
        (1.0, 1e160, "tanh", "Y"),
        (1e160, 1.0, "softplus", "X, net"),
    ],
)
def test_an_overflow_at_the_start_names_the_input_not_lr(scale_x: float, scale_y: float, act: str, name: str) -> None:
    net = zl.Network.init(zl.Architecture(2, (3,), 1, act), 0)
    gen = np.random.default_rng(1)
    X, Y = scale_x * gen.standard_normal((4, 2)), scale_y * gen.standard_normal((4, 1))
    with pytest.raises(ValueError, match=rf"^{name}: the cost or its gradient overflows float64 at the starting"):
        zl.training_jacobian(net, X, Y, 0.1, 2)


def test_parameters_that_overflow_the_outputs_are_named() -> None:
    base = zl.Network.init(zl.Architecture(2, (3,), 1, "relu"), 0)
    net = zl.Network(base.arch, [1e200 * w for w in base.weights], base.biases)
    with pytest.raises(ValueError, match=r"^X: the outputs overflow float64 .*max \|W\| = 1"):
        zl.training_jacobian(net, np.ones((4, 2)), np.zeros((4, 1)), 0.1, 1)


def test_second_derivative_near_the_float64_limit_and_its_memory() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # β z overflows to ±inf where σ'' is exactly 0: no warning
        out = zl.second_derivative(zl.activation("softplus", sharpness=1e150), [1e200, -1e200, 0.0])
    assert out.tolist() == [0.0, 0.0, 1e150 / 4]
    with pytest.raises(ValueError, match=r"^sigma: .*1/\(2w\) overflows float64"):
        zl.second_derivative(zl.activation("smooth_relu", width=1e-320), [0.0])
    zl.set_memory_budget(1 << 30)
    try:
        with pytest.raises(ValueError, match=r"^z: .*10000000000 numbers.*memory budget"):
            zl.second_derivative(zl.activation("tanh"), np.broadcast_to(1.0, (10**5, 10**5)))
    finally:
        zl.set_memory_budget(None)
