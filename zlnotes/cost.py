"""The quadratic cost ``C = 1/(2N) Σ_j |f(x_j) − y_j|²`` and its gradients.

In output space ``∇_x C = (x − y_ω)/N`` (sample-major, length QN); in parameter space
``∇_Z C = Dᵀ ∇_x C``, computed here by backpropagation without forming ``D``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_matrix, as_vector, instance
from .activations import derivative_into, value_into
from .architecture import Architecture, Network, require_network
from .memory import FLOAT_BYTES, require_memory
from .typing import Array

__all__ = ["CostFunction", "cost", "output_gradient", "cost_and_gradient", "cost_gradient"]



def _residual(net: Network, X: ArrayLike, Y: ArrayLike) -> Array:
    """``F − Y`` (N × Q) by the network's own forward pass."""
    X = require_network(net).check_inputs(X)
    Y = as_matrix("Y", Y, rows=X.shape[0], cols=net.arch.output_dim, cols_label="output_dim")
    F = net.forward(X)
    with np.errstate(over="ignore"):
        R = F - Y
    if not np.all(np.isfinite(R)):
        raise ValueError(
            f"Y: the residuals F - Y overflow float64 (max |F| = {float(np.abs(F).max()):.3g}, "
            f"max |Y| = {float(np.abs(Y).max()):.3g}); rescale the data or the network"
        )
    return R


def cost(net: Network, X: ArrayLike, Y: ArrayLike) -> float:
    """The quadratic cost ``C = 1/(2N) ‖F − Y‖²_F``.

    Parameters
    ----------
    net
        The network.
    X : array_like, shape (N, M)
        Inputs, one sample per row.
    Y : array_like, shape (N, Q)
        Targets.

    Returns
    -------
    float
        ``C ≥ 0``, with ``F = net.forward(X)``.
    """
    X = require_network(net).check_inputs(X)
    R = _residual(net, X, Y)
    with np.errstate(over="ignore"):
        c = float(np.vdot(R, R) / (2 * R.shape[0]))
    if not np.isfinite(c):
        raise ValueError(
            f"X: the cost overflows float64 (|F - Y|^2 exceeds 1.8e308: max |F - Y| = {float(np.abs(R).max()):.3g}, "
            f"max |X| = {float(np.abs(X).max()):.3g}); rescale the data or the network"
        )
    return c


def output_gradient(net: Network, X: ArrayLike, Y: ArrayLike) -> Array:
    """The cost's gradient in output space, ``∇_x C = (x[Z] − y_ω)/N``.

    Parameters
    ----------
    net, X, Y
        As in :func:`cost`.

    Returns
    -------
    numpy.ndarray, shape (Q·N,)
        Sample-major (entry ``j·Q + q`` is sample ``j``, output ``q``), the row order of
        :func:`zlnotes.jacobian`, so that ``∇_Z C = Dᵀ ∇_x C``.
    """
    R = _residual(net, X, Y)
    return R.ravel() / R.shape[0]


def _check_out(out: object, K: int) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array of shape ({K},); got {type(out).__name__}")
    if out.dtype != np.float64:
        raise TypeError(f"out must have dtype float64; got dtype {out.dtype}")
    for ok, rule, got in (
        (out.shape == (K,), f"have shape ({K},)", f"shape {out.shape}"),
        (out.flags.c_contiguous, "be contiguous", f"strides {out.strides}"),
        (out.flags.writeable, "be writeable", "a read-only array"),
    ):
        if not ok:
            raise ValueError(f"out must {rule}; got {got}")


class CostFunction:
    """The cost ``Z ↦ C(Z)`` of one architecture on fixed data, with its gradient.

    ``f = CostFunction(arch, X, Y)`` validates the data once and allocates every intermediate
    array once: the pre- and post-activations ``Z_ℓ, A_ℓ``, the residual, the backpropagated
    errors ``δ_ℓ`` and one scratch array for ``σ'``. Each call ``f(Z)`` then runs one forward
    and one backward pass into those buffers. ``D`` is never formed: the output residual
    ``δ_{L+1} = (F − Y)/N`` is pulled back by ``δ_ℓ = (δ_{ℓ+1} W_{ℓ+1}) ⊙ σ'(Z_ℓ)``, and
    ``∇_{W_ℓ} C = δ_ℓᵀ A_{ℓ−1}``, ``∇_{b_ℓ} C = δ_ℓᵀ 1``, each written straight into the flat
    gradient. For tanh, ``σ'(Z_ℓ) = 1 − A_ℓ²`` is read off the forward pass.

    Why the buffers: numpy has no caching allocator (torch and XLA do). A fresh temporary
    larger than glibc's mmap threshold (128 KiB at first) is mapped, page-faulted in and
    unmapped on every call, which can cost as much as the arithmetic (``benchmarks/``
    measures it). :func:`zlnotes.gradient_descent` and :func:`zlnotes.stationary_point` build
    one ``CostFunction`` per run, so a step allocates nothing of size ``N × M_ℓ``.

    Every entry is computed by the same floating-point operations, in the same order, as the
    plain ``Network`` forward pass followed by backpropagation, so the result does not depend
    on whether it comes from a ``CostFunction`` or from :func:`cost_and_gradient` (which
    builds one).

    Parameters
    ----------
    arch
        The architecture.
    X : array_like, shape (N, M)
        Inputs, one sample per row.
    Y : array_like, shape (N, Q)
        Targets.

    Notes
    -----
    A ``CostFunction`` keeps state between calls (its buffers): use one per thread. ``X`` and
    ``Y`` are held as given (float64 arrays are not copied): do not modify them while it is
    in use.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> arch = zl.Architecture(2, [3], 1, "tanh")
    >>> net = zl.Network.init(arch, 0)
    >>> X, Y = np.ones((4, 2)), np.zeros((4, 1))
    >>> c, g = zl.CostFunction(arch, X, Y)(net.flat())
    >>> bool(c == zl.cost(net, X, Y)), g.shape
    (True, (13,))
    """

    __slots__ = ("arch", "X", "Y", "_pre", "_post", "_delta", "_scratch", "_offsets", "_shapes", "_K")

    def __init__(self, arch: Architecture, X: ArrayLike, Y: ArrayLike) -> None:
        instance("arch", arch, Architecture, "a zlnotes.Architecture")
        # X is used as given, not copied: BLAS's result depends on the memory layout, and the
        # forward pass must match Network's (which multiplies X as given) to the bit
        X = as_matrix("X", X, cols=arch.input_dim, cols_label="input_dim")
        Y = as_matrix("Y", Y, rows=X.shape[0], cols=arch.output_dim, cols_label="output_dim")
        N = X.shape[0]
        require_memory(
            "X",
            f"the buffers of the cost over N = {N} samples (about 4·N·ΣM_l numbers)",
            N * (3 * sum(arch.hidden) + 2 * arch.output_dim + max(arch.hidden, default=1)) * FLOAT_BYTES,
        )
        self.arch = arch
        self.X, self.Y = X, Y
        self._pre = [np.empty((N, M)) for M in arch.hidden]  # Z_1..Z_L
        self._post = [X] + [np.empty((N, M)) for M in arch.hidden]  # A_0..A_L
        self._delta = [np.empty((N, M)) for M in arch.widths[1:]]  # δ_1..δ_{L+1}; δ_{L+1} holds F − Y first
        self._scratch = np.empty((N, max(arch.hidden, default=1)))
        self._offsets = arch.param_offsets()
        self._shapes = arch.layer_shapes
        self._K = arch.num_params

    def __repr__(self) -> str:
        return f"CostFunction({self.arch!r}, N={self.X.shape[0]})"

    def __call__(self, Z: ArrayLike, out: Array | None = None) -> tuple[float, Array]:
        """``C(Z)`` and ``∇_Z C(Z)``.

        Parameters
        ----------
        Z : array_like, shape (K,)
            Flat parameters, in the order of :meth:`zlnotes.Network.flat`.
        out : numpy.ndarray, shape (K,), optional
            Where to write the gradient (a fresh array if ``None``). It must not share memory
            with ``Z``.

        Returns
        -------
        (float, numpy.ndarray)
            The cost and the gradient (``out`` when given). Unlike :func:`cost` and
            :func:`cost_and_gradient`, which refuse it, an overflow is returned as it comes
            (an infinite or NaN cost or gradient): optimizers call this on trial points far
            away and treat a non-finite value as a rejected step.
        """
        K = self._K
        Z = as_vector("Z (flat parameters)", Z, length=K)
        if out is None:
            out = np.empty(K)
        else:
            _check_out(out, K)
            if np.shares_memory(out, Z):
                raise ValueError("out must not share memory with Z")
        layers = [(Z[ws].reshape(shape), Z[bs]) for (ws, bs), shape in zip(self._offsets, self._shapes)]
        sigma = self.arch.sigma
        pre, post, delta, L = self._pre, self._post, self._delta, self.arch.depth
        for ell, (W, b) in enumerate(layers[:-1]):  # as Network.pre_and_post_activations
            np.matmul(post[ell], W.T, out=pre[ell])
            pre[ell] += b
            value_into(sigma, pre[ell], post[ell + 1])
        R = delta[L]  # as Network.output_layer, then F − Y
        np.matmul(post[L], layers[L][0].T, out=R)
        R += layers[L][1]
        R -= self.Y
        N = R.shape[0]
        c = float(np.vdot(R, R) / (2 * N))
        R /= N  # δ_{L+1} = (F − Y)/N
        for ell in range(L + 1, 0, -1):  # layer ℓ has W_ℓ = layers[ℓ − 1][0]
            (ws, bs), shape, d = self._offsets[ell - 1], self._shapes[ell - 1], delta[ell - 1]
            np.sum(d, axis=0, out=out[bs])
            np.matmul(d.T, post[ell - 1], out=out[ws].reshape(shape))
            if ell > 1:  # δ_{ℓ−1} = (δ_ℓ W_ℓ) ⊙ σ'(Z_{ℓ−1})
                prev = delta[ell - 2]
                np.matmul(d, layers[ell - 1][0], out=prev)
                s = self._scratch[:, : prev.shape[1]]
                derivative_into(sigma, pre[ell - 2], post[ell - 1], s)
                prev *= s
        return c, out


def cost_and_gradient(net: Network, X: ArrayLike, Y: ArrayLike) -> tuple[float, Array]:
    """``C`` and ``∇_Z C = Dᵀ ∇_x C`` in one forward and one backward pass.

    ``D`` is never formed; see :class:`CostFunction`, which this builds for one call. To
    evaluate many parameter vectors on the same data, build one :class:`CostFunction`.

    Parameters
    ----------
    net, X, Y
        As in :func:`cost`.

    Returns
    -------
    (float, numpy.ndarray of shape (K,))
        The cost, equal to :func:`cost` to the bit, and the gradient in the order of
        :meth:`zlnotes.Network.flat`.

    Raises
    ------
    ValueError
        On malformed input, or if the cost or the gradient overflows float64.
    """
    f = CostFunction(require_network(net).arch, X, Y)
    with np.errstate(over="ignore", invalid="ignore"):
        c, g = f(net.flat())
    if not (np.isfinite(c) and np.all(np.isfinite(g))):
        net.forward(f.X)  # names the overflow in the outputs, if that is where it is
        raise ValueError(
            "X: the cost or its gradient overflows float64 (inputs, targets or parameters too large: "
            f"max |X| = {float(np.abs(f.X).max()):.3g}, max |Y| = {float(np.abs(f.Y).max()):.3g}, "
            f"max |Z| = {float(np.abs(net.flat()).max()):.3g}); rescale the data or the network"
        )
    return c, g


def cost_gradient(net: Network, X: ArrayLike, Y: ArrayLike) -> Array:
    """The cost's gradient in parameter space, ``∇_Z C = Dᵀ ∇_x C``, without forming ``D``.

    Parameters
    ----------
    net, X, Y
        As in :func:`cost`.

    Returns
    -------
    numpy.ndarray, shape (K,)
        In the order of :meth:`zlnotes.Network.flat`. See :func:`cost_and_gradient`; to
        evaluate many parameter vectors on the same data, build one :class:`CostFunction`.
    """
    return cost_and_gradient(net, X, Y)[1]
