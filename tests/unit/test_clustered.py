import numpy as np
import pytest

import zlnotes as zl

EXACT_FIT = 1e-16
"""Relative cost |F − Y|²/|Y|² of the truncation construction: each of its L = C layers is an
exact affine map or a ReLU on well-separated signs, so only rounding remains (≲ 1e-20)."""


def _relative_loss(net, X, Y):
    F = zl.Network.from_flat(net.arch, net.flat()).forward(X)
    return np.sum((F - Y) ** 2) / np.sum(Y ** 2)


def _well_inside(Q, seed, n_per_class=150, fraction=0.5):
    """Clustered data whose radius is `fraction` of the sufficient condition h/3."""
    means_only = zl.clustered_data(n_per_class, Q, Q, radius=0.0, rng=seed)
    h = zl.cluster_geometry(means_only.X, means_only.labels).h
    return zl.clustered_data(n_per_class, Q, Q, radius=fraction * h / 3 / 2, rng=seed)  # empirical δ ≤ 2 radius


@pytest.mark.parametrize("Q", [2, 3, 4, 5, 6])
def test_zero_loss_with_far_fewer_parameters_than_outputs(Q):
    for seed in (101, 202):
        data = _well_inside(Q, seed)
        assert zl.cluster_geometry(data.X, data.labels).satisfied
        net = zl.clustered_minimizer(data.X, data.labels, data.label_vectors)
        assert net.arch.hidden == (Q,) * Q and net.arch.activation == "relu"
        assert net.arch.num_params < Q * data.n_samples  # K < QN
        assert _relative_loss(net, data.X, data.Y) < EXACT_FIT


LAYER_COND = 1e6
"""Largest condition number of a constructed layer W_ℓ = W^(ℓ) (W^(ℓ−1))⁻¹ accepted at cluster radius
0.9·h/3 for Q = 2..6: the per-point bound on η gives at most ~5e4 (measured over 20 seeds at
0.8·h/3 and 0.99·h/3); the worst-case bound used before gave up to 1e7 at 0.8·h/3, which costs
seven digits of the hidden layers."""


def _cumulative(net):
    W_cum, b_cum, out = np.eye(net.arch.input_dim), np.zeros(net.arch.input_dim), []
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        W_cum, b_cum = W @ W_cum, W @ b_cum + b
        out.append((W_cum, b_cum))
    return out


@pytest.mark.parametrize("Q", [2, 3, 4, 5, 6])
def test_each_layer_is_one_truncation_step(Q):
    for seed in (5, 6, 7):
        data = _well_inside(Q, seed, n_per_class=60, fraction=0.9)
        geo = zl.cluster_geometry(data.X, data.labels)
        net = zl.clustered_minimizer(data.X, data.labels, data.label_vectors)
        hidden = net.hidden(data.X)
        for ell, (W_cum, b_cum) in enumerate(_cumulative(net)):
            off = W_cum - np.outer(np.ones(Q), geo.normals[ell])  # must be eta_l I
            eta = off[0, 0]
            assert eta > 0
            assert np.allclose(off, eta * np.eye(Q), rtol=0, atol=1e-8 * eta)
            assert np.allclose(-np.linalg.solve(W_cum, b_cum), geo.apexes[ell], rtol=0, atol=1e-8)
            ours = data.labels == ell
            assert np.all(hidden[ell][ours] == 0.0)  # every unit of layer ell is off for class ell ...
            assert np.all(hidden[ell][~ours] > 0.0)  # ... and on for every other sample
            for later in hidden[ell:]:  # so class ell carries one hidden vector from layer ell on
                assert np.all(later[ours] == later[ours][0])
        assert max(np.linalg.cond(W) for W in net.weights[:-1]) < LAYER_COND


def test_eta_keeps_every_sign():
    from zlnotes.clustered import _truncation_eta

    gen = np.random.default_rng(0)
    for _ in range(50):
        M = int(gen.integers(2, 7))
        n = gen.standard_normal(M)
        n /= np.linalg.norm(n)
        p = gen.standard_normal(M)
        points = p + gen.standard_normal((40, M)) * gen.uniform(0.1, 3.0)
        in_class = (points - p) @ n < 0  # the class sits behind the hyperplane
        eta = _truncation_eta(points, in_class, n, p, h=1.0)
        assert eta > 0
        W = np.outer(np.ones(M), n) + eta * np.eye(M)
        pre = (points - p) @ W.T
        assert np.all(pre[in_class] < 0) and np.all(pre[~in_class] > 0)
        assert abs(eta + n.sum()) >= 0.5 * eta * (1 - 1e-12)  # the eigenvalue eta + n.1 stays away from 0


def test_gaussian_label_vectors_and_more_outputs():
    data = zl.clustered_data(80, 3, 4, output_dim=5, radius=0.01, rng=7)
    assert data.label_vectors.shape == (3, 5)
    net = zl.clustered_minimizer(data.X, data.labels, data.label_vectors)
    assert net.arch.widths == (4, 4, 4, 4, 5)
    assert _relative_loss(net, data.X, data.Y) < EXACT_FIT


def test_geometry_of_a_regular_simplex():
    Q = 4
    X = np.eye(Q)  # one point per class at the vertices e_1..e_Q
    geo = zl.cluster_geometry(X, np.arange(Q))
    assert np.allclose(geo.distances, np.sqrt(1 + 1 / (Q - 1)))  # distance from e_1 to aff{e_2..e_Q}
    assert geo.delta == 0.0 and geo.satisfied
    # n_1 points from e_1 to the centroid of the other vertices
    target = (np.ones(Q) - X[0]) / (Q - 1) - X[0]
    assert np.allclose(geo.normals[0], target / np.linalg.norm(target))


def test_clustered_data_radius_and_seed():
    a = zl.clustered_data(50, 3, 4, radius=0.2, rng=1)
    b = zl.clustered_data(50, 3, 4, radius=0.2, rng=np.random.default_rng(1))
    assert np.array_equal(a.X, b.X)
    means = zl.clustered_data(50, 3, 4, radius=0.0, rng=1).X[::50]
    assert np.max(np.linalg.norm(a.X - means[a.labels], axis=1)) <= 0.2 + 1e-12
    assert np.array_equal(a.Y, np.eye(3)[a.labels])


def test_overlapping_classes_are_refused():
    data = zl.clustered_data(60, 3, 3, radius=3.0, rng=2)
    with pytest.raises(ValueError, match=r"X: the classes overlap too much .* δ = .* must be < h/3"):
        zl.clustered_minimizer(data.X, data.labels, data.label_vectors)
    best_effort = zl.clustered_minimizer(data.X, data.labels, data.label_vectors, strict=False)
    assert zl.cost(best_effort, data.X, data.Y) > 1e-6


def test_bad_input():
    data = zl.clustered_data(10, 3, 3, radius=0.01, rng=3)
    with pytest.raises(TypeError, match="labels must be an integer array"):
        zl.clustered_minimizer(data.X, data.labels.astype(float), data.label_vectors)
    with pytest.raises(ValueError, match=r"labels must have shape \(30,\)"):
        zl.clustered_minimizer(data.X, data.labels[:5], data.label_vectors)
    with pytest.raises(TypeError, match="strict must be True or False"):
        zl.clustered_minimizer(data.X, data.labels, data.label_vectors, strict="no")
    with pytest.raises(TypeError, match="radius must be a finite real number"):
        zl.clustered_data(10, 3, 3, radius=True, rng=0)
    with pytest.raises(ValueError, match="radius must be a finite real number"):
        zl.clustered_data(10, 3, 3, radius=np.nan, rng=0)
    with pytest.raises(ValueError, match="labels must use every class"):
        zl.clustered_minimizer(data.X, np.where(data.labels == 1, 2, data.labels), data.label_vectors)
    with pytest.raises(ValueError, match="targets must have 3 rows"):
        zl.clustered_minimizer(data.X, data.labels, data.label_vectors[:2])
    with pytest.raises(ValueError, match="n_classes must be <= input_dim \\+ 1 = 3"):
        zl.clustered_data(10, 4, 2, radius=0.1, rng=0)
    X = np.vstack([np.zeros((5, 2)), np.ones((5, 2)), 2 * np.ones((5, 2))])  # collinear means
    with pytest.raises(ValueError, match="class means must be affinely independent"):
        zl.clustered_minimizer(X, np.repeat(np.arange(3), 5), np.eye(3))

