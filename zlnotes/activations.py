"""Scalar activation functions σ, their derivatives σ' and, where they exist, their inverses.

All functions act entry-wise on float64 arrays. At a kink the derivative takes the value
of the left branch (``relu'(0) = 0``, ``leaky_relu'(0) = slope``); the results in the book
never evaluate a derivative exactly at a kink except on purpose.

- ``relu``: σ(x) = max(x, 0), σ'(x) = 1[x > 0], inverse on (0, ∞).
- ``leaky_relu``: σ(x) = x for x > 0 and a·x otherwise, with ``0 < a < 1`` its ``slope``
  (default 0.01); σ' = 1 or a, inverse on ℝ.
- ``softplus``: σ(x) = log(1 + e^{βx})/β, σ'(x) = 1/(1 + e^{−βx}), inverse on (0, ∞);
  β is its ``sharpness`` (default 1: σ(x) = log(1 + eˣ)).
- ``tanh``: σ(x) = tanh x, σ'(x) = 1 − tanh² x, inverse on (−1, 1).
- ``smooth_relu``: σ(x) = 0 for x ≤ −w, (x + w)²/(4w) for −w < x < w, x for x ≥ w;
  σ'(x) = 0, (x + w)/(2w), 1 on those pieces; inverse on (0, ∞).
- ``identity``: σ(x) = x, σ' = 1, inverse on ℝ.

What the rest of the package needs to know about an activation is an attribute of
:class:`Activation`, not a list of names: ``positive_sector`` (Theorem 2.2's hypothesis),
``positively_homogeneous`` (the rescaling symmetry of :mod:`zlnotes.symmetry`), ``he_gain``
(the default initialisation of :meth:`zlnotes.Network.init`) and ``sector_start`` (where the
shift construction of :func:`zlnotes.zero_loss_minimizer` puts the pre-activations); derived
from those, ``kinked`` (a kink at 0, :func:`zlnotes.classify_stationary`) and
``identity_on_range`` (:func:`zlnotes.embed_network`). Two activations are equal when their
definitions are: the same name *and* the same parameters (``params``), so a ``leaky_relu`` of
another slope or a ``softplus`` of another sharpness is another function.

Two mollified ReLUs, with different roles in Section 4.5 of Chen & Moore (2025),
references.bib key ``chen2025zeroloss``:

- ``softplus`` with sharpness β is a mollified ReLU of the kind Remark 1 there assumes:
  smooth, strictly increasing with σ'(x) > 0 for every x, σ'(x) → 0 as x → −∞, and
  ``0 < σ(x) − max(x, 0) ≤ log(2)/β``, so it tends to ReLU uniformly as β → ∞. It is a
  submersion, so its Jacobians lose rank only where the weights make them. In float64,
  σ'(x) = expit(βx) underflows to exactly 0 for βx below about −709.8 (where e^{−βx}
  overflows), so far enough in the left tail σ' > 0 holds only mathematically.
- ``smooth_relu`` is ReLU mollified over the interval ``[−w, w]`` (``w`` is its ``width``):
  it is C¹ with a Lipschitz derivative, equals ReLU outside ``[−w, w]``, and is a
  diffeomorphism of ``(−w, ∞)`` onto ``(0, ∞)``. Its derivative vanishes on the whole
  half-line ``x ≤ −w``, so it lies outside Remark 1's hypothesis: a pre-activation that
  enters that half-line loses rank exactly, the mechanism of Remark 2 there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.special import expit

from ._validation import choice, real_scalar
from .typing import Array

__all__ = ["Activation", "activation", "ACTIVATIONS", "LEAKY_RELU_SLOPE", "SMOOTH_RELU_WIDTH", "SOFTPLUS_SHARPNESS"]

ScalarMap = Callable[[Array], Array]

LEAKY_RELU_SLOPE = 0.01
"""Default slope ``a`` of ``leaky_relu`` on the negative half-line."""

SMOOTH_RELU_WIDTH = 1.0
"""Default half-width ``w`` of the interval over which ``smooth_relu`` is mollified."""

SOFTPLUS_SHARPNESS = 1.0
"""Default sharpness ``β`` of ``softplus``, σ(x) = log(1 + e^{βx})/β: with it σ(x) = log(1 + eˣ)."""


@dataclass(frozen=True)
class Activation:
    """An activation function with its derivative and (partial) inverse.

    Attributes
    ----------
    name
        The name used by :func:`activation` and :class:`zlnotes.Architecture`.
    value, derivative
        Entry-wise σ and σ'.
    inverse
        Entry-wise σ⁻¹ on ``inverse_domain``, or ``None`` when σ is not invertible anywhere.
    inverse_domain
        Open interval ``(lo, hi)`` of values on which ``inverse`` is defined.
    positive_sector
        ``True`` for the ReLU-like activations of Theorem 2.2: σ is a diffeomorphism of
        ``(0, ∞)`` onto its image there.
    params
        Extra parameters as ``(name, value)`` pairs: ``(("width", w),)`` for ``smooth_relu``,
        ``(("sharpness", β),)`` for ``softplus``, ``(("slope", a),)`` for ``leaky_relu``, empty
        for the others. Equality compares the name and ``params`` (and the facts below), not
        the function objects: ``activation("leaky_relu", slope=0.1)`` differs from the
        default ``leaky_relu``.
    positively_homogeneous
        ``True`` when ``σ(cx) = c σ(x)`` for every ``c > 0`` (``relu``, ``leaky_relu``,
        ``identity``): scaling a hidden unit's incoming weights and bias by ``c`` and its
        outgoing weights by ``1/c`` leaves the network function unchanged (see
        :func:`zlnotes.balance`).
    he_gain
        The weight gain :meth:`zlnotes.Network.init` uses by default: ``√2`` (He) for the
        ReLU-like ``relu``, ``leaky_relu`` and ``smooth_relu``, 1 (LeCun) for the others.
    sector_start
        Lower edge of the half-line ``(sector_start, ∞)`` in which the positive-sector shift
        of :func:`zlnotes.zero_loss_minimizer` places every pre-activation: 0 for ``relu``,
        ``leaky_relu`` and ``softplus`` (their positive sector), the width ``w`` for
        ``smooth_relu`` (where it equals ReLU); 0 for the others, which have no such sector.

    Examples
    --------
    >>> import zlnotes as zl
    >>> relu, sr = zl.activation("relu"), zl.activation("smooth_relu", width=0.5)
    >>> relu.positively_homogeneous, sr.positively_homogeneous
    (True, False)
    >>> round(relu.he_gain ** 2, 12), zl.activation("tanh").he_gain
    (2.0, 1.0)
    >>> relu.sector_start, sr.sector_start
    (0.0, 0.5)
    >>> zl.activation("leaky_relu", slope=0.1) == zl.activation("leaky_relu")
    False
    >>> zl.activation("softplus", sharpness=1.0) == zl.activation("softplus")
    True
    """

    name: str
    value: ScalarMap = field(repr=False, compare=False)
    derivative: ScalarMap = field(repr=False, compare=False)
    inverse: ScalarMap | None = field(repr=False, compare=False)
    inverse_domain: tuple[float, float]
    positive_sector: bool
    params: tuple[tuple[str, float], ...] = ()
    positively_homogeneous: bool = False
    he_gain: float = 1.0
    sector_start: float = 0.0

    def __call__(self, x: Array) -> Array:
        return self.value(x)

    @property
    def kinked(self) -> bool:
        """``True`` when σ is positively homogeneous with a kink at 0 (``relu``,
        ``leaky_relu``): σ'(−1) ≠ σ'(1). The identity is positively homogeneous without one."""
        if not self.positively_homogeneous:
            return False
        left, right = self.derivative(np.array([-1.0, 1.0]))
        return bool(left != right)

    @property
    def identity_on_range(self) -> bool:
        """``True`` when σ(σ(x)) = σ(x) for every x: σ is the identity on its own range
        (``relu``, on ``[0, ∞)``; ``identity``), so a layer ``W = I``, ``b = 0`` passes on a
        hidden layer's activations unchanged. Decided for positively homogeneous σ, which is
        ``x ↦ a x`` for ``x > 0`` and ``b x`` for ``x < 0``: idempotent exactly when ``a = 1``
        and ``b ∈ {0, 1}``; ``False`` for every other σ (none of them is idempotent)."""
        if not self.positively_homogeneous:
            return False
        left, right = (float(v) for v in self.derivative(np.array([-1.0, 1.0])))
        return right == 1.0 and left in (0.0, 1.0)


def _relu(x: Array) -> Array:
    return np.maximum(x, 0.0)


def _relu_prime(x: Array) -> Array:
    return (x > 0).astype(np.float64)


def _leaky(slope: float) -> tuple[ScalarMap, ScalarMap, ScalarMap]:
    a = float(slope)

    def value(x: Array) -> Array:
        return np.where(x > 0, x, a * x)

    def derivative(x: Array) -> Array:
        return np.where(x > 0, 1.0, a)

    def inverse(y: Array) -> Array:
        return np.where(y > 0, y, y / a)

    return value, derivative, inverse


def _softplus(x: Array) -> Array:
    return np.logaddexp(0.0, x)


def _softplus_inverse(y: Array) -> Array:
    # log(e^y - 1) written stably for large y: y + log(1 - e^{-y}).
    return y + np.log(-np.expm1(-y))


def _sharp_softplus(beta: float) -> tuple[ScalarMap, ScalarMap, ScalarMap]:
    b = float(beta)

    def value(x: Array) -> Array:
        return np.logaddexp(0.0, b * np.asarray(x, dtype=np.float64)) / b

    def derivative(x: Array) -> Array:
        return expit(b * np.asarray(x, dtype=np.float64))

    def inverse(y: Array) -> Array:
        return _softplus_inverse(b * np.asarray(y, dtype=np.float64)) / b

    return value, derivative, inverse


def _tanh_prime(x: Array) -> Array:
    t = np.tanh(x)
    return 1.0 - t * t


def _identity(x: Array) -> Array:
    return np.asarray(x, dtype=np.float64) * 1.0


def _one(x: Array) -> Array:
    return np.ones_like(np.asarray(x, dtype=np.float64))


def _smooth_relu(width: float) -> tuple[ScalarMap, ScalarMap, ScalarMap]:
    w = float(width)

    def value(x: Array) -> Array:
        x = np.asarray(x, dtype=np.float64)
        middle = (np.clip(x, -w, w) + w) ** 2 / (4.0 * w)  # clipped: no overflow far from [-w, w]
        return np.where(x >= w, x, np.where(x > -w, middle, 0.0))

    def derivative(x: Array) -> Array:
        x = np.asarray(x, dtype=np.float64)
        return np.clip((x + w) / (2.0 * w), 0.0, 1.0)

    def inverse(y: Array) -> Array:
        y = np.asarray(y, dtype=np.float64)
        return np.where(y >= w, y, 2.0 * np.sqrt(w * np.maximum(y, 0.0)) - w)

    return value, derivative, inverse


def value_into(sigma: Activation, Z: Array, out: Array) -> Array:
    """Write ``σ(Z)`` into ``out`` and return it: the same values as ``sigma.value(Z)``,
    computed in place (no temporary) for tanh and relu."""
    if sigma.value is np.tanh:
        np.tanh(Z, out=out)
    elif sigma.value is _relu:
        np.maximum(Z, 0.0, out=out)
    else:
        out[...] = sigma.value(Z)
    return out


def derivative_into(sigma: Activation, Z: Array, A: Array, out: Array) -> Array:
    """Write ``σ'(Z)`` into ``out`` and return it, given also ``A = σ(Z)``.

    For tanh it is read off the activations as ``1 − A²`` (the same floating-point operations
    :func:`activation` ``("tanh").derivative`` performs after its own ``tanh``, so the same
    bits, without evaluating tanh again); relu's is computed in place; any other activation
    calls ``sigma.derivative``.
    """
    if sigma.derivative is _tanh_prime and sigma.value is np.tanh:
        np.multiply(A, A, out=out)
        np.subtract(1.0, out, out=out)
    elif sigma.derivative is _relu_prime:
        np.greater(Z, 0.0, out=out)
    else:
        out[...] = sigma.derivative(Z)
    return out


_INF = float("inf")


_HE_GAIN = float(np.sqrt(2.0))  # the same bits as np.sqrt(2.0)


def _build(name: str, width: float, sharpness: float, slope: float) -> Activation:
    if name == "relu":
        return Activation(
            "relu", _relu, _relu_prime, _identity, (0.0, _INF), True, positively_homogeneous=True, he_gain=_HE_GAIN
        )
    if name == "leaky_relu":
        value, derivative, inverse = _leaky(slope)
        return Activation(
            "leaky_relu", value, derivative, inverse, (-_INF, _INF), True, (("slope", float(slope)),),
            positively_homogeneous=True, he_gain=_HE_GAIN,
        )
    if name == "softplus":
        params = (("sharpness", float(sharpness)),)
        if sharpness == 1.0:  # the plain functions: the same bits as log(1 + e^x) always gave
            return Activation("softplus", _softplus, expit, _softplus_inverse, (0.0, _INF), True, params)
        value, derivative, inverse = _sharp_softplus(sharpness)
        return Activation("softplus", value, derivative, inverse, (0.0, _INF), True, params)
    if name == "tanh":
        return Activation("tanh", np.tanh, _tanh_prime, np.arctanh, (-1.0, 1.0), False)
    if name == "smooth_relu":
        value, derivative, inverse = _smooth_relu(width)
        return Activation(
            "smooth_relu", value, derivative, inverse, (0.0, _INF), True, (("width", float(width)),),
            he_gain=_HE_GAIN, sector_start=float(width),
        )
    if name == "identity":
        return Activation("identity", _identity, _one, _identity, (-_INF, _INF), False, positively_homogeneous=True)
    raise AssertionError(name)  # unreachable: names are checked by `activation`


PARAMETER_RANGE = 2.0**500
"""``smooth_relu``'s ``width`` is at most ``2^500`` (about 3.3e150) and ``softplus``'s
``sharpness`` within ``[2^-500, 2^500]``: beyond, ``(x + w)²``, ``log(2)/sharpness`` or
``sharpness · x`` leave the float64 range for inputs of order one, and the activation's
values would be infinite."""

ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "softplus", "tanh", "smooth_relu", "identity")
"""Names accepted by :func:`activation`."""


def activation(
    name: str | Activation,
    *,
    width: float = SMOOTH_RELU_WIDTH,
    sharpness: float = SOFTPLUS_SHARPNESS,
    slope: float = LEAKY_RELU_SLOPE,
) -> Activation:
    """Look up an activation by name.

    Parameters
    ----------
    name
        One of :data:`ACTIVATIONS`, or an :class:`Activation` (returned unchanged).
    width
        Mollification half-width ``w > 0`` of ``smooth_relu`` (ignored by the others);
        default :data:`SMOOTH_RELU_WIDTH`.
    sharpness
        ``β > 0`` of ``softplus``, σ(x) = log(1 + e^{βx})/β (ignored by the others); default
        :data:`SOFTPLUS_SHARPNESS`, with which ``softplus`` is log(1 + eˣ), bit for bit.
        As β grows σ tends to ReLU (``0 < σ(x) − max(x, 0) ≤ log(2)/β``) while σ' stays
        positive everywhere: the strictly increasing mollified ReLU of Remark 1 in
        Chen & Moore (2025) (references.bib key ``chen2025zeroloss``).
    slope
        ``a`` of ``leaky_relu``, σ(x) = a·x for x ≤ 0, with ``0 < a < 1`` (ignored by the
        others); default :data:`LEAKY_RELU_SLOPE`. (neural-tangents' ``LeakyRelu(alpha)``.)

    Returns
    -------
    Activation

    Raises
    ------
    TypeError
        If ``name`` is neither a string nor an :class:`Activation`, or ``width``,
        ``sharpness`` or ``slope`` is not a real number (a bool is not).
    ValueError
        For an unknown name, a ``width`` outside ``(0, 2^500]``, a ``sharpness`` outside
        ``[2^-500, 2^500]`` (:data:`PARAMETER_RANGE`), or a ``slope`` outside ``(0, 1)``.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> zl.activation("smooth_relu").derivative(np.array([-2.0, 0.0, 2.0]))
    array([0. , 0.5, 1. ])
    >>> sp4 = zl.activation("softplus", sharpness=4.0)
    >>> sp4.params
    (('sharpness', 4.0),)
    >>> bool(np.all(sp4.derivative(np.array([-30.0, 0.0, 30.0])) > 0))
    True
    >>> np.round(sp4.value(np.array([-1.0, 0.0, 1.0])), 4)  # ReLU plus at most log(2)/4
    array([0.0045, 0.1733, 1.0045])
    >>> zl.activation("leaky_relu", slope=0.2)(np.array([-1.0, 2.0]))
    array([-0.2,  2. ])
    """
    if isinstance(name, Activation):
        return name
    name = choice("activation", name, ACTIVATIONS)
    # (x + w)² must fit in float64, and so must log(2)/sharpness: 2^±500 leaves room for both
    width = real_scalar("width (of smooth_relu)", width, lo=0.0, lo_open=True, hi=PARAMETER_RANGE)
    sharpness = real_scalar("sharpness (of softplus)", sharpness, lo=1 / PARAMETER_RANGE, hi=PARAMETER_RANGE)
    slope = real_scalar("slope (of leaky_relu)", slope, lo=0.0, lo_open=True, hi=1.0, hi_open=True)
    return _build(name, width, sharpness, slope)
