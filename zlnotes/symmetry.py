"""Symmetries of the parameters: the rescaling of hidden units of positively homogeneous networks.

If ``σ(cx) = c σ(x)`` for every ``c > 0`` (:attr:`zlnotes.Activation.positively_homogeneous`:
``relu``, ``leaky_relu``, ``identity``), scaling one hidden unit's incoming weights and bias by
``α > 0`` and its outgoing weights by ``1/α`` leaves the network function unchanged. A network
with ``H`` hidden units therefore has an ``H``-dimensional family of parameters for each of its
functions, along which the cost is flat and the Hessian singular.
"""

from __future__ import annotations

import numpy as np

from .architecture import Architecture, Network, require_network
from .typing import Array

__all__ = ["balance"]



def _balance(arch: Architecture, Z: Array) -> Array:
    """The representative of ``Z`` on its rescaling orbit with |incoming| = |outgoing| per unit.

    Only for positively homogeneous activations (otherwise ``Z`` is returned): one sweep
    over the hidden layers, each unit's (row of ``W_ℓ``, entry of ``b_ℓ``) scaled by
    ``α = √(|out|/|in|)`` and its column of ``W_{ℓ+1}`` by ``1/α``. The network function, hence
    the cost, is unchanged; it keeps a drift along the orbit (along which the cost is flat) from
    looking like an escape to infinity.
    """
    if not arch.sigma.positively_homogeneous:
        return Z
    net = Network.from_flat(arch, Z)
    weights = [w.copy() for w in net.weights]
    biases = [b.copy() for b in net.biases]
    for ell in range(arch.depth):
        incoming = np.sqrt(np.sum(weights[ell] ** 2, axis=1) + biases[ell] ** 2)
        outgoing = np.sqrt(np.sum(weights[ell + 1] ** 2, axis=0))
        alpha = np.ones_like(incoming)
        both = (incoming > 0) & (outgoing > 0)
        alpha[both] = np.sqrt(outgoing[both] / incoming[both])
        weights[ell] *= alpha[:, None]
        biases[ell] *= alpha
        weights[ell + 1] /= alpha[None, :]
    return Network(arch, weights, biases).flat()


def balance(net: Network) -> Network:
    """The balanced representative of ``net`` on its rescaling orbit.

    For a positively homogeneous activation (:attr:`zlnotes.Activation.positively_homogeneous`),
    one sweep over the hidden layers ``ℓ = 1..L`` scales each unit's incoming weights and bias
    (its row of ``W_ℓ`` and entry of ``b_ℓ``) by ``α = √(|out| / |in|)`` and its outgoing
    weights (its column of ``W_{ℓ+1}``) by ``1/α``, where ``|in|`` is the norm of the row and
    bias together and ``|out|`` that of the column at the time the unit is visited; units with
    ``|in| = 0`` or ``|out| = 0`` are left alone. The network function is unchanged (to
    rounding); after the sweep the last hidden layer's units have ``|in| = |out|``. For any
    other activation ``net`` is returned unchanged.

    :func:`zlnotes.stationary_point` measures ``max_i |Z_i|`` on this representative, so that a
    drift along the orbit, where the cost is flat, is not taken for an escape to infinity.

    Parameters
    ----------
    net
        The network.

    Returns
    -------
    Network

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> arch = zl.Architecture(2, (3,), 1, "relu")
    >>> net = zl.Network(arch, [np.array([[100.0, 0.0], [0.0, 1.0], [3.0, 4.0]]), np.array([[0.01, 2.0, 5.0]])],
    ...                  [np.zeros(3), np.zeros(1)])
    >>> b = zl.balance(net)
    >>> np.round(np.linalg.norm(b.weights[0], axis=1), 6), np.round(np.abs(b.weights[1][0]), 6)
    (array([1.      , 1.414214, 5.      ]), array([1.      , 1.414214, 5.      ]))
    >>> X = np.array([[1.0, 2.0], [-1.0, 0.5]])
    >>> bool(np.allclose(b.forward(X), net.forward(X), rtol=1e-14))
    True
    """
    net = require_network(net)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return Network.from_flat(net.arch, _balance(net.arch, net.flat()))
    except ValueError:  # a weight or a rescaling factor overflowed
        raise ValueError(
            f"net: balancing overflows float64 (the squared norms of its rows, max |W| = "
            f"{max(float(np.abs(w).max()) for w in net.weights):.3g}); rescale the network"
        ) from None
