"""The quadratic cost ``C = 1/(2N) Σ_j |f(x_j) − y_j|²`` and its gradients.

In output space ``∇_x C = (x − y_ω)/N`` (sample-major, length QN); in parameter space
``∇_Z C = Dᵀ ∇_x C``, computed here by backpropagation without forming ``D``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .architecture import Network, require_network
from .jacobian import _derivatives
from .validation import as_matrix

__all__ = ["cost", "output_gradient", "cost_and_gradient", "cost_gradient"]

Array = NDArray[np.float64]


def _residual(net: Network, X: ArrayLike, Y: ArrayLike) -> tuple[Array, Array, list[Array], list[Array]]:
    X = require_network(net).check_inputs(X)
    Y = as_matrix("Y", Y, rows=X.shape[0], cols=net.arch.output_dim, cols_label="output_dim")
    pre, post = net.pre_and_post_activations(X)
    F = net.output_layer(post[-1])
    return F - Y, Y, pre, post


def cost(net: Network, X: ArrayLike, Y: ArrayLike) -> float:
    """``C = 1/(2N) ‖F − Y‖²_F`` for inputs ``X`` (N, M) and targets ``Y`` (N, Q)."""
    R = _residual(net, X, Y)[0]
    return float(np.vdot(R, R) / (2 * R.shape[0]))


def output_gradient(net: Network, X: ArrayLike, Y: ArrayLike) -> Array:
    """``∇_x C = (x[Z] − y_ω)/N``, a vector of length QN in sample-major order."""
    R = _residual(net, X, Y)[0]
    return R.ravel() / R.shape[0]


def cost_and_gradient(net: Network, X: ArrayLike, Y: ArrayLike) -> tuple[float, Array]:
    """``C`` and ``∇_Z C = Dᵀ ∇_x C`` (flat, length K) in one forward and one backward pass.

    ``D`` is never formed: the output residual ``δ_{L+1} = (F − Y)/N`` is pulled back by
    ``δ_ℓ = (δ_{ℓ+1} W_{ℓ+1}) ⊙ σ'(Z_ℓ)``, and ``∇_{W_ℓ} C = δ_ℓᵀ A_{ℓ−1}``,
    ``∇_{b_ℓ} C = δ_ℓᵀ 1``. Each block is written straight into the flat gradient; for tanh,
    ``σ'(Z_ℓ) = 1 − A_ℓ²`` is read off the forward pass instead of evaluating tanh again
    (the same floating-point operations, so the same bits). The extra memory is a few
    ``N × M_ℓ`` arrays.
    """
    R, _, pre, post = _residual(net, X, Y)
    N = R.shape[0]
    arch = net.arch
    dsig = _derivatives(net, pre, post)
    grad = np.empty(arch.num_params)
    delta = R / N
    for ell, ((ws, bs), shape) in reversed(list(enumerate(zip(arch.param_offsets(), arch.layer_shapes), start=1))):
        np.sum(delta, axis=0, out=grad[bs])
        np.matmul(delta.T, post[ell - 1], out=grad[ws].reshape(shape))
        if ell > 1:  # layer ℓ has weights[ℓ − 1]; σ'(Z_{ℓ−1}) = dsig[ℓ − 2]
            delta = delta @ net.weights[ell - 1]
            delta *= dsig[ell - 2]
    return float(np.vdot(R, R) / (2 * N)), grad


def cost_gradient(net: Network, X: ArrayLike, Y: ArrayLike) -> Array:
    """``∇_Z C`` (flat, length K), without forming ``D``; see :func:`cost_and_gradient`."""
    return cost_and_gradient(net, X, Y)[1]
