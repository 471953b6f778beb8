"""Plain, slow reference formulas for the fast kernels of ``zlnotes.jacobian`` and ``zlnotes.cost``.

Written from the formulas of the book's Notation page and chapter 1, one sample and one
output at a time, with no broadcasting, no in-place tricks and no shared code with the
kernels, so that the tests compare two independent computations.
"""

import numpy as np


def plain_forward(net, x):
    """Pre-activations ``z_ℓ`` and activations ``a_ℓ`` (``a_0 = x``) of one sample."""
    a, z = [np.asarray(x, dtype=float)], []
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        z.append(W @ a[-1] + b)
        a.append(net.arch.sigma.value(z[-1]))
    return z, a


def plain_jacobian(net, X):
    """``D`` row by row: row ``j·Q + q`` is ``∇_Z f_q(x_j)`` by backpropagation of ``e_q``."""
    arch = net.arch
    Q = arch.output_dim
    rows = []
    for x in X:
        z, a = plain_forward(net, x)
        for q in range(Q):
            g = np.eye(Q)[q]  # G_{L+1}[j, q, :] = e_q
            blocks = []
            for ell in range(arch.depth + 1, 0, -1):  # layer ℓ has weights[ℓ − 1]
                blocks.append(np.concatenate([np.outer(g, a[ell - 1]).ravel(), g]))
                if ell > 1:
                    g = (g @ net.weights[ell - 1]) * arch.sigma.derivative(z[ell - 2])
            rows.append(np.concatenate(blocks[::-1]))
    return np.array(rows)


def plain_cost_gradient(net, X, Y):
    """``C = 1/(2N) Σ |f(x_j) − y_j|²`` and ``∇_Z C = Dᵀ (x − y_ω)/N`` with the plain ``D``."""
    N = len(X)
    F = np.array([net.weights[-1] @ plain_forward(net, x)[1][-1] + net.biases[-1] for x in X])
    R = F - np.asarray(Y, dtype=float)
    return float(np.sum(R * R) / (2 * N)), plain_jacobian(net, X).T @ (R.ravel() / N)
