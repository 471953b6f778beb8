import numpy as np
import pytest
import sympy as sp
from conftest import central_difference, relative_error
from reference import plain_jacobian
from tolerances import FD_RTOL, FD_STEP, ROUNDOFF_RTOL

import zlnotes as zl
from zlnotes.symbolic import symbolic_network


def _problem(activation, hidden=(5, 4), input_dim=3, output_dim=2, n=6, seed=0):
    arch = zl.Architecture(input_dim, hidden, output_dim, activation)
    net = zl.Network.init(arch, rng=seed, bias_std=0.5)
    X = np.random.default_rng(seed + 100).standard_normal((n, input_dim))
    return net, X


def _min_distance_to_kink(net, X):
    """Smallest distance of any pre-activation to a kink of σ (0, or ±w for smooth_relu)."""
    kinks = {"relu": [0.0], "leaky_relu": [0.0], "smooth_relu": [-1.0, 1.0]}.get(net.arch.activation, [])
    pre, _ = net.pre_and_post_activations(X)
    if not kinks:
        return np.inf
    return min((np.min(np.abs(Zl - k)) for Zl in pre for k in kinks), default=np.inf)


@pytest.mark.parametrize("activation", zl.ACTIVATIONS)
@pytest.mark.parametrize("hidden", [(), (4,), (5, 4, 3)])
def test_jacobian_matches_central_differences(activation, hidden):
    net, X = _problem(activation, hidden)
    assert _min_distance_to_kink(net, X) > 10 * FD_STEP  # the difference quotient sees one branch
    arch = net.arch
    D = zl.jacobian(net, X)
    assert D.shape == (arch.output_size(X.shape[0]), arch.num_params)
    fd = central_difference(lambda Z: zl.Network.from_flat(arch, Z).forward(X), net.flat(), FD_STEP)
    assert relative_error(D, fd) < FD_RTOL


@pytest.mark.parametrize("activation", zl.ACTIVATIONS)
def test_jacobian_matches_sympy(activation):
    net, X = _problem(activation, hidden=(3, 2), input_dim=2, output_dim=2, n=3, seed=1)
    sym = symbolic_network(net.arch, n_samples=3)
    exact = sym.evaluate(sym.jacobian(), net.flat(), X)
    assert relative_error(zl.jacobian(net, X), exact) < ROUNDOFF_RTOL
    outputs = sym.evaluate(sym.outputs, net.flat(), X).ravel()
    assert relative_error(net.forward(X).ravel(), outputs) < ROUNDOFF_RTOL


@pytest.mark.parametrize("sigma", [zl.activation("softplus", sharpness=3.0), zl.activation("smooth_relu", width=0.5)])
def test_sympy_keeps_the_activation_parameter(sigma):
    """A sharp softplus or a narrow smooth_relu is differentiated as itself, not as the default."""
    net = zl.Network.init(zl.Architecture(2, (3,), 1, sigma), 2)
    X = np.random.default_rng(3).standard_normal((3, 2))
    sym = symbolic_network(net.arch, n_samples=3)
    assert relative_error(zl.jacobian(net, X), sym.evaluate(sym.jacobian(), net.flat(), X)) < ROUNDOFF_RTOL
    assert relative_error(net.forward(X).ravel(), sym.evaluate(sym.outputs, net.flat(), X).ravel()) < ROUNDOFF_RTOL


def test_sympy_parameter_order_matches_flat():
    sym = symbolic_network(zl.Architecture(2, (3,), 2, "tanh"), n_samples=1)
    names = [str(p) for p in sym.params]
    assert names[:8] == ["W1_0_0", "W1_0_1", "W1_1_0", "W1_1_1", "W1_2_0", "W1_2_1", "b1_0", "b1_1"]
    assert names[-2:] == ["b2_0", "b2_1"] and len(names) == sym.arch.num_params
    assert isinstance(sym.jacobian(), sp.Matrix)


def test_orderings():
    net, X = _problem("tanh", hidden=(5, 4), output_dim=3, n=7)
    N, Q = X.shape[0], 3
    D = zl.jacobian(net, X)
    w_last, b_last = net.arch.param_offsets()[-1]
    # Output-bias block: ∂f_q(x_j)/∂b_{L+1}[p] = δ_qp, i.e. the identity repeated once per sample.
    assert np.array_equal(D[:, b_last], np.tile(np.eye(Q), (N, 1)))
    # Output-weight block: ∂f_q(x_j)/∂W_{L+1}[p, b] = δ_qp A_L[j, b]  (row j·Q + q, column p·M_L + b).
    A_L = net.hidden(X)[-1]
    expected = np.stack([np.kron(np.eye(Q), A_L[j]) for j in range(N)]).reshape(N * Q, -1)
    assert np.allclose(D[:, w_last], expected, rtol=0, atol=1e-15)
    # Row j·Q + q is ∇_Z f_q(x_j): perturbing sample j alone changes rows jQ..jQ+Q-1 only.
    D_one = zl.jacobian(net, X[2:3])
    assert np.allclose(D[2 * Q:3 * Q], D_one, rtol=0, atol=1e-15)


@pytest.mark.parametrize("activation", ["relu", "tanh", "smooth_relu"])
def test_layer_blocks_are_face_split_products(activation):
    """For Q = 1 the W_ℓ block of D is G_ℓ ⊛ A_{ℓ−1} and the b_ℓ block is G_ℓ."""
    net, X = _problem(activation, hidden=(5, 4), output_dim=1, n=8)
    D = zl.jacobian(net, X)
    for (A, G), (ws, bs) in zip(zl.backprop_factors(net, X), net.arch.param_offsets()):
        assert np.array_equal(D[:, ws], zl.face_split(G[:, 0, :], A))
        assert np.array_equal(D[:, bs], G[:, 0, :])
        # and [G ⊛ A | G] is a column permutation of G ⊛ [A 1]
        ones = np.ones((A.shape[0], 1))
        block = np.hstack([D[:, ws], D[:, bs]])
        assert sorted(map(tuple, block.T.round(12))) == sorted(
            map(tuple, zl.face_split(G[:, 0, :], np.hstack([A, ones])).T.round(12))
        )


@pytest.mark.parametrize("activation", zl.ACTIVATIONS)
@pytest.mark.parametrize("output_dim", [1, 3])
def test_ntk_is_d_dt(activation, output_dim):
    net, X = _problem(activation, hidden=(6, 5), output_dim=output_dim, n=9)
    D = zl.jacobian(net, X)
    assert relative_error(zl.ntk(net, X), D @ D.T) < ROUNDOFF_RTOL


def test_jacobian_rank_full_and_deficient():
    # overparametrized, generic: full rank QN
    net, X = _problem("tanh", hidden=(8, 8), output_dim=2, n=10)
    D = zl.jacobian(net, X)
    assert zl.jacobian_rank(net, X) == np.linalg.matrix_rank(D) == 20
    # underparametrized: rank ≤ K < QN
    net, X = _problem("tanh", hidden=(2,), input_dim=2, output_dim=1, n=30)
    assert net.arch.num_params == 9
    assert zl.jacobian_rank(net, X) == np.linalg.matrix_rank(zl.jacobian(net, X)) == 9
    # a ReLU layer that kills every sample: only the output bias survives
    arch = zl.Architecture(3, (4, 4), 1, "relu")
    net = zl.Network.from_flat(arch, np.zeros(arch.num_params) - 1.0)
    X = np.abs(np.random.default_rng(0).standard_normal((6, 3)))
    assert zl.jacobian_rank(net, X) == np.linalg.matrix_rank(zl.jacobian(net, X)) == 1


def test_jacobian_rank_methods_and_tolerance():
    net, X = _problem("tanh", hidden=(8, 8), output_dim=2, n=10)
    assert zl.jacobian_rank(net, X, method="svd") == zl.jacobian_rank(net, X, method="gram") == 20
    # a tolerance finer than the Gram route can resolve falls back to the SVD under "auto" ...
    assert zl.jacobian_rank(net, X, rtol=1e-12) == 20
    # ... and is refused on the Gram route
    with pytest.raises(ValueError, match="rtol must be >= .* on the Gram route"):
        zl.jacobian_rank(net, X, rtol=1e-12, method="gram")
    with pytest.raises(ValueError, match="method must be"):
        zl.jacobian_rank(net, X, method="qr")
    with pytest.raises(ValueError, match=r"rtol must be a finite real number in \[0.0, 1.0\)"):
        zl.jacobian_rank(net, X, rtol=2.0)
    with pytest.raises(TypeError, match="rtol must be a finite real number"):
        zl.jacobian_rank(net, X, rtol="1e-8")
    with pytest.raises(TypeError, match="method must be one of the strings"):
        zl.jacobian_rank(net, X, method=None)


def test_gram_route_resolution_is_what_the_docs_say():
    """A singular value at 1e-4·s_1 is seen by both routes; one at 1e-9·s_1 only by the SVD."""
    rng = np.random.default_rng(5)
    U, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    V, _ = np.linalg.qr(rng.standard_normal((60, 40)))
    for small, gram_sees_it in ((1e-4, True), (1e-9, False)):
        s = np.ones(40)
        s[-1] = small
        A = (U * s) @ V.T
        assert zl.numerical_rank(A) == 40
        assert zl.gram_rank(A @ A.T) == (40 if gram_sees_it else 39)


# --- the fast kernels against the plain formulas (tests/unit/reference.py) --------------------

EDGE_SHAPES = [
    # (hidden, output_dim, n): depth 0, Q = 1, N = 1, a width-1 layer, several blocks of ntk
    ((), 1, 1),
    ((), 3, 4),
    ((4,), 1, 1),
    ((5, 1, 3), 2, 6),
    ((6, 5, 4), 3, 7),
]


@pytest.mark.parametrize("activation", zl.ACTIVATIONS)
@pytest.mark.parametrize("hidden, output_dim, n", EDGE_SHAPES)
def test_fast_kernels_match_the_plain_formulas(activation, hidden, output_dim, n):
    net, X = _problem(activation, hidden, output_dim=output_dim, n=n, seed=len(hidden) + output_dim)
    D_plain = plain_jacobian(net, X)
    D = zl.jacobian(net, X)
    assert D.shape == D_plain.shape == (n * output_dim, net.arch.num_params)
    assert relative_error(D, D_plain) < ROUNDOFF_RTOL
    K = zl.ntk(net, X)
    assert relative_error(K, D_plain @ D_plain.T) < ROUNDOFF_RTOL
    assert np.array_equal(K, K.T)  # exactly symmetric, not only to rounding
    factors = zl.backprop_factors(net, X)
    assert len(factors) == net.arch.depth + 1
    for (A, G), (ws, bs), (out, inp) in zip(factors, net.arch.param_offsets(), net.arch.layer_shapes):
        assert A.shape == (n, inp) and G.shape == (n, output_dim, out)
        assert relative_error(G.reshape(n * output_dim, out), D_plain[:, bs]) < ROUNDOFF_RTOL


@pytest.mark.parametrize("output_dim, n", [(1, 300), (3, 100), (8, 40)])
def test_ntk_in_several_row_blocks(output_dim, n):
    """N·Q larger than a block of rows, and Q not dividing the block: every block and the
    mirrored lower triangle are right."""
    from zlnotes.jacobian import NTK_BLOCK_ROWS

    net, X = _problem("softplus", hidden=(7, 5), input_dim=3, output_dim=output_dim, n=n)
    assert n * output_dim > NTK_BLOCK_ROWS
    D = plain_jacobian(net, X)
    K = zl.ntk(net, X)
    assert relative_error(K, D @ D.T) < ROUNDOFF_RTOL
    assert np.array_equal(K, K.T)


def test_jacobian_blocks_are_written_exactly_once():
    """The output layer's blocks are exact (zeros, copies of A_L, the identity) and no entry is
    left unwritten: D has no NaN even when the memory it was allocated in held NaN."""
    net, X = _problem("tanh", hidden=(5, 4), output_dim=3, n=6)
    N, Q = 6, 3
    D = zl.jacobian(net, X)
    assert np.all(np.isfinite(D))
    w_last, b_last = net.arch.param_offsets()[-1]
    A_L = net.hidden(X)[-1]
    block = D[:, w_last].reshape(N, Q, Q, -1)
    for q in range(Q):
        for p in range(Q):
            expected = A_L if q == p else np.zeros_like(A_L)
            assert np.array_equal(block[:, q, p, :], expected)
    assert np.array_equal(D[:, b_last], np.tile(np.eye(Q), (N, 1)))


@pytest.mark.parametrize("activation", zl.ACTIVATIONS)
@pytest.mark.parametrize("hidden, output_dim, n", EDGE_SHAPES + [((8, 8), 2, 10), ((2,), 1, 30)])
def test_jacobian_rank_is_the_svd_rank_at_the_gram_tolerance(activation, hidden, output_dim, n):
    """The documented rule: the Gram route counts s_i > √(QN ε) s_1; the SVD with that tolerance
    agrees, and so does matrix_rank's finer default whenever no s_i lies between the two."""
    net, X = _problem(activation, hidden, output_dim=output_dim, n=n, seed=3)
    D = plain_jacobian(net, X)
    QN = D.shape[0]
    r = zl.jacobian_rank(net, X)
    assert r == zl.numerical_rank(D, rtol=zl.gram_rtol(QN)) == zl.jacobian_rank(net, X, method="gram")
    s = zl.singular_values(D)
    in_between = np.count_nonzero((s > max(D.shape) * zl.linalg.EPS * s[0]) & (s <= zl.gram_rtol(QN) * s[0]))
    assert zl.jacobian_rank(net, X, method="svd") == np.linalg.matrix_rank(D) == r + in_between


def test_jacobian_rank_below_the_gram_resolution():
    """A singular value between the SVD tolerance and √(QN ε) s_1: the Gram route cannot see it
    (and says so by its definition); asking for a finer rtol falls back to the SVD, which can."""
    net, X = _problem("softplus", (5, 1, 3), output_dim=2, n=6, seed=3)  # a width-1 bottleneck
    D = zl.jacobian(net, X)
    s = zl.singular_values(D)
    assert max(D.shape) * zl.linalg.EPS < s[-1] / s[0] < zl.gram_rtol(12)  # 4.8e-8 < 5.2e-8
    assert zl.jacobian_rank(net, X) == 11
    assert (
        zl.jacobian_rank(net, X, rtol=1e-10) == zl.jacobian_rank(net, X, method="svd") == np.linalg.matrix_rank(D) == 12
    )


def test_jacobian_rank_auto_uses_the_gram_route_unless_rtol_is_finer(monkeypatch):
    import sys

    jac = sys.modules["zlnotes.jacobian"]  # the module (zl.jacobian is the function)
    net, X = _problem("tanh", hidden=(8, 8), output_dim=2, n=10)
    calls = []
    real = jac.numerical_rank
    monkeypatch.setattr(jac, "numerical_rank", lambda *a, **k: calls.append(1) or real(*a, **k))
    floor = zl.gram_rtol(20)
    assert zl.jacobian_rank(net, X) == 20 and not calls  # default: Gram
    assert zl.jacobian_rank(net, X, rtol=2 * floor) == 20 and not calls  # resolvable: Gram
    assert zl.jacobian_rank(net, X, rtol=floor / 2) == 20 and len(calls) == 1  # finer: SVD


def test_kernels_reject_bad_input():
    net, X = _problem("tanh", hidden=(4,), output_dim=2, n=5)
    for fn in (zl.jacobian, zl.ntk, zl.jacobian_rank, zl.backprop_factors):
        with pytest.raises(ValueError, match="X must have input_dim=3 columns"):
            fn(net, X[:, :2])
        bad = X.copy()
        bad[0, 0] = np.inf
        with pytest.raises(ValueError, match="X must contain only finite values"):
            fn(net, bad)
        with pytest.raises(TypeError, match="net must be a zlnotes.Network"):
            fn("not a network", X)


def test_jacobian_peak_memory_is_the_size_of_d():
    """jacobian allocates D once and no temporary of a block's size (issue 7: ≤ 1.2 × (D + X))."""
    import tracemalloc

    net, X = _problem("tanh", hidden=(64, 64), input_dim=16, output_dim=4, n=128)
    zl.jacobian(net, X)
    tracemalloc.start()
    D = zl.jacobian(net, X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= 1.2 * (D.nbytes + X.nbytes)
