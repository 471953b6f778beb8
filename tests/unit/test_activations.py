import numpy as np
import pytest
from conftest import relative_error
from tolerances import FD_RTOL, FD_STEP, ROUNDOFF_RTOL

import zlnotes as zl

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
    with pytest.raises(ValueError, match="width of smooth_relu"):
        zl.activation("smooth_relu", width=0.0)
    with pytest.raises(ValueError, match="activation must be one of"):
        zl.Architecture(2, (3,), 1, "gelu")
