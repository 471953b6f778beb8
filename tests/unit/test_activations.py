import numpy as np
import pytest
from conftest import relative_error
from tolerances import FD_RTOL, FD_STEP, ROUNDOFF_RTOL

import zlnotes as zl
from zlnotes.activations import SOFTPLUS_SHARPNESS

# Points at least 1e-3 away from every kink (0 for relu/leaky_relu, ±1 for smooth_relu),
# so a central difference with step 1e-6 never straddles one.
POINTS = np.concatenate([np.linspace(-4.0, -1.01, 40), np.linspace(-0.99, -0.01, 40),
                         np.linspace(0.01, 0.99, 40), np.linspace(1.01, 4.0, 40)])


@pytest.mark.parametrize("name", zl.ACTIVATIONS)
def test_derivative_matches_central_difference(name):
    s = zl.activation(name)
    fd = (s.value(POINTS + FD_STEP) - s.value(POINTS - FD_STEP)) / (2 * FD_STEP)
    assert np.max(np.abs(s.derivative(POINTS) - fd)) < FD_RTOL


@pytest.mark.parametrize("name", zl.ACTIVATIONS)
def test_inverse_on_its_domain(name):
    s = zl.activation(name)
    lo, hi = s.inverse_domain
    y = np.linspace(max(lo, -3.0), min(hi, 3.0), 101)[1:-1]
    assert relative_error(s.value(s.inverse(y)), y) < ROUNDOFF_RTOL * 1e3  # arctanh near ±1 loses digits


def test_kink_conventions_and_values():
    x = np.array([-2.0, 0.0, 2.0])
    assert np.array_equal(zl.activation("relu").derivative(x), [0.0, 0.0, 1.0])
    assert np.array_equal(zl.activation("leaky_relu").value(x), [-0.02, 0.0, 2.0])
    assert np.allclose(zl.activation("softplus").value(np.array([0.0])), np.log(2.0))
    assert np.allclose(zl.activation("softplus").value(np.array([800.0])), 800.0)  # no overflow


def test_smooth_relu_is_c1_and_equals_relu_outside_the_mollified_interval():
    s = zl.activation("smooth_relu", width=0.5)
    x = np.array([-3.0, -0.5, 0.5, 3.0])
    assert np.array_equal(s.value(x), [0.0, 0.0, 0.5, 3.0])
    assert np.array_equal(s.derivative(x), [0.0, 0.0, 1.0, 1.0])
    assert s.params == (("width", 0.5),)
    # continuity of σ' across ±w
    eps = 1e-9
    for k in (-0.5, 0.5):
        assert abs(s.derivative(np.array([k - eps]))[0] - s.derivative(np.array([k + eps]))[0]) < 1e-8


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation must be one of"):
        zl.activation("sigmoidal")
    rule = r"width \(of smooth_relu\) must be a finite real number in \(0.0, 3.27[0-9]*e\+150\]"
    with pytest.raises(ValueError, match=rule):
        zl.activation("smooth_relu", width=0.0)
    with pytest.raises(TypeError, match="activation must be one of the strings"):
        zl.activation(None)
    with pytest.raises(ValueError, match="activation must be one of"):
        zl.Architecture(2, (3,), 1, "gelu")


@pytest.mark.parametrize("beta", [0.25, 1.0, 4.0, 20.0])
def test_sharp_softplus_against_reference_formulas(beta):
    s = zl.activation("softplus", sharpness=beta)
    assert s.name == "softplus" and s.params == (("sharpness", beta),) and s.positive_sector
    x = np.linspace(-3.0, 3.0, 61)
    # log1p(exp(.)) and 1 / (1 + exp(-.)) are accurate for |beta x| <= 60, where exp cannot overflow
    assert relative_error(s.value(x), np.log1p(np.exp(beta * x)) / beta) < ROUNDOFF_RTOL
    assert relative_error(s.derivative(x), 1.0 / (1.0 + np.exp(-beta * x))) < ROUNDOFF_RTOL
    fd = (s.value(x + FD_STEP) - s.value(x - FD_STEP)) / (2 * FD_STEP)
    assert np.max(np.abs(s.derivative(x) - fd)) < FD_RTOL * max(1.0, beta)  # third derivative ~ beta^2
    y = np.linspace(0.05, 5.0, 100)
    assert relative_error(s.value(s.inverse(y)), y) < ROUNDOFF_RTOL * 1e2
    assert relative_error(s.inverse(y), np.log(np.expm1(beta * y)) / beta) < ROUNDOFF_RTOL * 1e2


def test_default_softplus_is_bit_identical_to_log_one_plus_exp():
    x = np.linspace(-40.0, 40.0, 801)
    s, s1 = zl.activation("softplus"), zl.activation("softplus", sharpness=1.0)
    assert np.array_equal(s.value(x), np.logaddexp(0.0, x))
    for a, b in ((s.value, s1.value), (s.derivative, s1.derivative)):
        assert np.array_equal(a(x), b(x))
    assert s.params == (("sharpness", SOFTPLUS_SHARPNESS),) and SOFTPLUS_SHARPNESS == 1.0


@pytest.mark.parametrize("beta", [0.5, 1.0, 8.0])
def test_sharp_softplus_is_strictly_increasing_everywhere(beta):
    """Remark 1's hypothesis: sigma' > 0 at every x (a grid on [-30, 30] and two far points), -> 0 at -inf."""
    s = zl.activation("softplus", sharpness=beta)
    x = np.concatenate([np.linspace(-30.0, 30.0, 6001), [-30.0 / beta, -700.0 / beta]])
    d = s.derivative(x)
    assert np.all(d > 0) and np.all(d <= 1)
    assert np.all(np.diff(s.value(np.linspace(-30.0, 30.0, 6001))) > 0)
    assert s.derivative(np.array([-30.0]))[0] < 1e-3 * s.derivative(np.array([0.0]))[0] or beta < 1
    assert np.all(s.value(x) > 0)


def test_sharp_softplus_tends_to_relu():
    x = np.linspace(-5.0, 5.0, 1001)
    gaps = []
    for beta in (1.0, 4.0, 16.0, 64.0):
        gap = zl.activation("softplus", sharpness=beta).value(x) - np.maximum(x, 0.0)
        assert np.all(gap >= 0) and np.all(gap[x <= 0] > 0) and np.max(gap) <= np.log(2.0) / beta * (1 + 1e-12)
        assert abs(gap[500] - np.log(2.0) / beta) < 1e-15  # the gap is largest at the kink, x = 0
        gaps.append(np.max(gap))
    assert np.allclose(np.array(gaps[:-1]) / np.array(gaps[1:]), 4.0)  # sup |sigma - relu| = log(2)/beta
    d = zl.activation("softplus", sharpness=1e4).derivative(np.array([-0.01, 0.01]))
    assert d[0] < 1e-40 and 1.0 - d[1] < 1e-15  # sigma' -> the step 1[x > 0] away from the kink


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf, np.nan])
def test_bad_sharpness_value_is_refused(bad):
    rule = r"sharpness \(of softplus\) must be a finite real number in \[3.05[0-9]*e-151, 3.27[0-9]*e\+150\]"
    with pytest.raises(ValueError, match=rule):
        zl.activation("softplus", sharpness=bad)


@pytest.mark.parametrize("bad", [True, "4", None])
def test_bad_sharpness_type_is_refused(bad):
    with pytest.raises(TypeError, match=r"sharpness \(of softplus\) must be a finite real number"):
        zl.activation("softplus", sharpness=bad)


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.5])
def test_leaky_relu_slope_against_reference_formulas(slope):
    s = zl.activation("leaky_relu", slope=slope)
    x = np.array([-3.0, -0.5, 0.5, 3.0])
    assert np.array_equal(s.value(x), np.where(x > 0, x, slope * x))
    assert np.array_equal(s.derivative(x), [slope, slope, 1.0, 1.0])
    assert np.allclose(s.inverse(s.value(x)), x, rtol=1e-15, atol=0)
    assert s.params == (("slope", slope),)
    assert s.kinked and not s.identity_on_range


def test_default_leaky_relu_is_the_documented_one():
    """The default slope is LEAKY_RELU_SLOPE, bit for bit the function the book always used."""
    x = np.linspace(-3.0, 3.0, 61)
    s = zl.activation("leaky_relu")
    assert s == zl.activation("leaky_relu", slope=zl.activations.LEAKY_RELU_SLOPE)
    assert np.array_equal(s.value(x), np.where(x > 0, x, 0.01 * x))


@pytest.mark.parametrize("bad, error", [(0.0, ValueError), (1.0, ValueError), (-0.1, ValueError), (np.nan, ValueError),
                                        (True, TypeError), ("0.1", TypeError)])
def test_bad_slope_is_refused(bad, error):
    with pytest.raises(error, match=r"slope \(of leaky_relu\) must be a finite real number in \(0.0, 1.0\)"):
        zl.activation("leaky_relu", slope=bad)


def test_activations_are_equal_by_name_and_parameters():
    """Equality is the full definition, not the name: the sweep of a parametrized family must
    not confuse its members."""
    a = zl.activation
    assert a("leaky_relu", slope=0.1) == a("leaky_relu", slope=0.1)
    assert a("leaky_relu", slope=0.1) != a("leaky_relu")
    assert a("softplus", sharpness=2.0) != a("softplus")
    assert a("smooth_relu", width=0.5) != a("smooth_relu")
    assert a("relu") != a("leaky_relu") and a("relu") == a("relu")
    assert zl.Architecture(2, (3,), 1, a("leaky_relu", slope=0.1)) != zl.Architecture(2, (3,), 1, "leaky_relu")


def test_kink_and_idempotence_facts():
    facts = {name: (zl.activation(name).kinked, zl.activation(name).identity_on_range) for name in zl.ACTIVATIONS}
    assert facts == {
        "relu": (True, True), "leaky_relu": (True, False), "softplus": (False, False),
        "tanh": (False, False), "smooth_relu": (False, False), "identity": (False, True),
    }
    x = np.linspace(-3.0, 3.0, 61)  # identity_on_range is sigma(sigma(x)) == sigma(x)
    for name in zl.ACTIVATIONS:
        s = zl.activation(name)
        assert s.identity_on_range == bool(np.array_equal(s.value(s.value(x)), s.value(x)))


def test_sharp_softplus_flows_through_architecture():
    arch = zl.Architecture(3, (4,), 1, zl.activation("softplus", sharpness=5.0))
    assert arch.activation == "softplus" and dict(arch.sigma.params)["sharpness"] == 5.0
    assert arch != zl.Architecture(3, (4,), 1, "softplus")  # the sharpness is part of the architecture
    net = zl.Network.init(arch, np.random.default_rng(0))
    X = np.random.default_rng(1).standard_normal((5, 3))
    W, b = net.weights[0], net.biases[0]
    expected = np.logaddexp(0.0, 5.0 * (X @ W.T + b)) / 5.0 @ net.weights[1].T + net.biases[1]
    assert relative_error(net.forward(X), expected) < ROUNDOFF_RTOL


@pytest.mark.parametrize("name", zl.ACTIVATIONS)
def test_positive_homogeneity_flag_matches_the_function(name):
    """positively_homogeneous is True exactly when sigma(c x) = c sigma(x) for c > 0 on these points."""
    s = zl.activation(name)
    x = np.linspace(-3.0, 3.0, 61)
    holds = all(np.allclose(s.value(c * x), c * s.value(x), rtol=1e-14, atol=1e-300) for c in (0.5, 2.0, 7.0))
    assert s.positively_homogeneous == holds
    assert s.positively_homogeneous == (name in ("relu", "leaky_relu", "identity"))


@pytest.mark.parametrize("name", zl.ACTIVATIONS)
def test_he_gain(name):
    s = zl.activation(name)
    relu_like = name in ("relu", "leaky_relu", "smooth_relu")  # equal to x on a half-line, ~0 on the other
    assert s.he_gain == (np.sqrt(2.0) if relu_like else 1.0)


@pytest.mark.parametrize("width", [0.25, 1.0, 3.0])
def test_sector_start_is_where_the_shift_sector_begins(width):
    for name in ("relu", "leaky_relu", "softplus", "smooth_relu"):
        s = zl.activation(name, width=width)
        x = s.sector_start + np.linspace(1e-3, 5.0, 50)
        assert np.all(np.diff(s.value(x)) > 0) and np.all(s.derivative(x) > 0)  # invertible there
        if name != "softplus":  # the ReLU-like pieces are the identity on their sector
            assert np.array_equal(s.value(x), x)
    sr = zl.activation("smooth_relu", width=width)
    assert sr.sector_start == width == dict(sr.params)["width"]
    assert zl.activation("relu").sector_start == 0.0 and zl.activation("softplus").sector_start == 0.0


def test_facts_default_for_a_user_activation():
    const = zl.Activation("constant", value=np.ones_like, derivative=np.zeros_like, inverse=None,
                          inverse_domain=(1.0, 1.0), positive_sector=False)
    assert not const.positively_homogeneous and const.he_gain == 1.0 and const.sector_start == 0.0
