"""The training Jacobian ``J = ∂θ_T/∂θ_0`` of full-batch gradient descent.

Gradient descent ``θ_{t+1} = θ_t − lr · ∇C(θ_t)`` on the book's cost
``C = |F − Y|²/(2N)`` (the steps of :func:`zlnotes.gradient_descent`) is a map
``θ_0 ↦ θ_T``. By the chain rule its Jacobian is the ordered product

    J = (I − lr H_{T−1}) ⋯ (I − lr H_1)(I − lr H_0),      H_t = ∇²C(θ_t),

the object whose singular values belrose2024jacobian study. It is computed here by carrying
``J_t = ∂θ_t/∂θ_0`` along the run, ``J_{t+1} = J_t − lr · H_t J_t``, where ``H_t J_t`` is
``K`` Hessian–vector products done at once by forward-over-reverse differentiation of the
book's backpropagation (the R-operator): a forward pass of the tangents through the layers
and a backward pass of the tangents of the errors ``δ_ℓ``, using σ, σ' and σ''. No finite
differences: ``J`` is exact up to rounding. ``D`` and the Hessian are never formed.
The rounding of step ``t`` reaches ``J`` multiplied by the later factors: past the edge of
stability (``lr · λ_max(H_t) > 2``) it grows by ``lr · λ_max − 1`` per step along the
sharpest direction, as the rounding of the run ``θ_t`` itself does.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit

from ._validation import _as_float_array, _require_finite, as_matrix, nonnegative_int, positive_int, real_scalar
from .activations import Activation, derivative_into, value_into
from .architecture import Architecture, Network, require_network
from .cost import CostFunction
from .memory import FLOAT_BYTES, require_memory
from .typing import Array

__all__ = ["training_jacobian", "second_derivative"]

_CHUNK_NUMBERS = 1 << 16  # tangent buffers of one chunk: about 0.5 MiB (cache-sized)


def second_derivative(sigma: Activation, z: ArrayLike) -> Array:
    """σ''(z) entry-wise, for the activations of :func:`zlnotes.activation`.

    ``tanh``: ``−2 tanh z (1 − tanh² z)``; ``softplus`` of sharpness β: ``β s (1 − s)`` with
    ``s = expit(β z)``; ``smooth_relu`` of width ``w``: ``1/(2w)`` on ``(−w, w)``, else 0;
    ``relu``, ``leaky_relu`` and ``identity``: 0 (away from the kink at 0, where σ' jumps and
    σ'' does not exist; a run that crosses the kink has no training Jacobian there).

    Parameters
    ----------
    sigma
        An :class:`zlnotes.Activation`.
    z : array_like
        Pre-activations (finite).

    Returns
    -------
    numpy.ndarray
        σ''(z), of the shape of ``z``.

    Raises
    ------
    TypeError
        If ``sigma`` is not an :class:`zlnotes.Activation` or ``z`` not an array of real numbers.
    ValueError
        For a non-finite ``z``, ``3 z.size`` floats above the memory budget, or a
        ``smooth_relu`` so narrow that ``1/(2w)`` overflows float64.

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> t = zl.second_derivative(zl.activation("tanh"), np.array([0.0, 1.0]))
    >>> bool(t[0] == 0.0), bool(abs(t[1] + 2 * np.tanh(1) / np.cosh(1) ** 2) < 1e-15)
    (True, True)
    """
    if not isinstance(sigma, Activation):
        raise TypeError(f"sigma must be a zlnotes.Activation; got {type(sigma).__name__}")
    z = _as_float_array("z", z)
    require_memory("z", f"σ''(z) and its temporaries (3 × {z.size} numbers)", 3 * z.size * FLOAT_BYTES)
    _require_finite("z", z)
    params = dict(sigma.params)
    if sigma.name == "tanh":
        t = np.tanh(z)
        return -2.0 * t * (1.0 - t * t)
    if sigma.name == "softplus":
        beta = params.get("sharpness", 1.0)
        with np.errstate(over="ignore"):  # β z = ±inf only where expit(β z) is exactly 1 or 0
            s = expit(beta * z)
        return beta * s * (1.0 - s)
    if sigma.name == "smooth_relu":
        w = params["width"]
        if 2.0 * w < 1.0 / np.finfo(np.float64).max:
            raise ValueError(f"sigma: smooth_relu's second derivative 1/(2w) overflows float64 at width w = {w:.3g}")
        return np.where(np.abs(z) < w, 1.0 / (2.0 * w), 0.0)
    if sigma.name in ("relu", "leaky_relu", "identity"):
        return np.zeros_like(z)
    raise ValueError(f"sigma: no second derivative known for the activation {sigma.name!r}")


def _hessian_times(
    net: Network,
    X: Array,
    Y: Array,
    V: Array,
    out: Array,
    chunk: int,
) -> None:
    """``out = ∇²C(θ) V`` for the K × k block ``V``, ``k`` columns at a time (R-operator).

    Forward tangents: ``dZ_ℓ = dA_{ℓ−1} W_ℓᵀ + A_{ℓ−1} dW_ℓᵀ + 1 db_ℓᵀ``, ``dA_ℓ = σ'(Z_ℓ) ⊙ dZ_ℓ``.
    Backward: ``δ_{L+1} = (F − Y)/N``, ``dδ_{L+1} = dF/N``, and
    ``dδ_{ℓ−1} = (dδ_ℓ W_ℓ + δ_ℓ dW_ℓ) ⊙ σ'(Z_{ℓ−1}) + (δ_ℓ W_ℓ) ⊙ σ''(Z_{ℓ−1}) ⊙ dZ_{ℓ−1}``;
    the Hessian–vector product is ``(dδ_ℓᵀ A_{ℓ−1} + δ_ℓᵀ dA_{ℓ−1}, Σ_j dδ_ℓ[j])`` per layer.
    """
    arch = net.arch
    sigma, L, N = arch.sigma, arch.depth, X.shape[0]
    offsets, shapes = arch.param_offsets(), arch.layer_shapes
    Ws = net.weights
    pre: list[Array] = []
    post: list[Array] = [X]
    for ell in range(L):  # as Network.pre_and_post_activations
        z = post[ell] @ Ws[ell].T
        z += net.biases[ell]
        pre.append(z)
        post.append(value_into(sigma, z, np.empty_like(z)))
    F = post[L] @ Ws[L].T
    F += net.biases[L]
    d1 = [derivative_into(sigma, pre[ell], post[ell + 1], np.empty_like(pre[ell])) for ell in range(L)]
    d2 = [second_derivative(sigma, pre[ell]) for ell in range(L)]
    delta = [np.empty(0)] * (L + 2)  # δ_1..δ_{L+1} at indices 1..L+1
    delta[L + 1] = (F - Y) / N
    back = [np.empty(0)] * (L + 2)  # δ_{ℓ+1} W_{ℓ+1}, before ⊙ σ'
    for ell in range(L + 1, 1, -1):
        back[ell - 1] = delta[ell] @ Ws[ell - 1]
        delta[ell - 1] = back[ell - 1] * d1[ell - 2]
    for start in range(0, V.shape[1], chunk):
        Vc = V[:, start : start + chunk]
        k = Vc.shape[1]
        # tangents are laid out (N, k, M_ℓ), so that every product below is one 2-D GEMM
        dWT = [Vc[ws].reshape(shape + (k,)).transpose(1, 0, 2) for (ws, _), shape in zip(offsets, shapes)]
        # dWT[ℓ−1] = dW_ℓᵀ as (M_{ℓ−1}, M_ℓ, k): dWT[i, a, c] = dW_ℓ[a, i] of tangent c
        dpre: list[Array] = []
        dpost: list[Array | None] = [None]  # dA_0 = 0: the data do not move
        for ell in range(L + 1):
            m_in, m_out = shapes[ell][1], shapes[ell][0]
            dWk = np.ascontiguousarray(dWT[ell].transpose(0, 2, 1)).reshape(m_in, k * m_out)
            dz = (post[ell] @ dWk).reshape(N, k, m_out)  # A_{ℓ−1} dW_ℓᵀ
            prev = dpost[ell]
            if prev is not None:
                dz += (prev.reshape(N * k, m_in) @ Ws[ell].T).reshape(N, k, m_out)
            dz += Vc[offsets[ell][1]].T  # db_ℓ, (k, M_ℓ) broadcast over samples
            if ell < L:
                dpre.append(dz)
                dpost.append(dz * d1[ell][:, None, :])
            else:
                dF = dz
        ddelta = dF / N
        for ell in range(L + 1, 0, -1):
            (ws, bs), (m_out, m_in) = offsets[ell - 1], shapes[ell - 1]
            # dδ_ℓᵀ A_{ℓ−1}, as (k, M_ℓ, M_{ℓ−1})
            gW = (ddelta.reshape(N, k * m_out).T @ post[ell - 1]).reshape(k, m_out, m_in)
            prev = dpost[ell - 1]
            if prev is not None:  # + δ_ℓᵀ dA_{ℓ−1}
                gW += (delta[ell].T @ prev.reshape(N, k * m_in)).reshape(m_out, k, m_in).transpose(1, 0, 2)
            out[ws, start : start + k] = gW.reshape(k, m_out * m_in).T
            out[bs, start : start + k] = ddelta.sum(axis=0).T
            if ell > 1:
                nxt = (ddelta.reshape(N * k, m_out) @ Ws[ell - 1]).reshape(N, k, m_in)
                dWk = np.ascontiguousarray(dWT[ell - 1].transpose(1, 2, 0)).reshape(m_out, k * m_in)
                nxt += (delta[ell] @ dWk).reshape(N, k, m_in)  # δ_ℓ dW_ℓ
                nxt *= d1[ell - 2][:, None, :]
                nxt += (back[ell - 1] * d2[ell - 2])[:, None, :] * dpre[ell - 2]
                ddelta = nxt


def _buffer_numbers(arch: Architecture, N: int, per_tangent: int) -> int:
    """Numbers held by one run besides ``J`` and ``H J``: the cost's buffers
    (:class:`zlnotes.CostFunction`), the forward and backward passes of :func:`_hessian_times`
    (``Z_ℓ, A_ℓ, σ', σ''`` and its temporaries, ``δ_ℓ``, ``δ_ℓ W_ℓ``: about ``9 N ΣM_ℓ``) and
    one chunk of tangents with its temporaries."""
    hidden, Q = sum(arch.hidden), arch.output_dim
    widest = max(arch.hidden, default=1)
    cost = N * (3 * hidden + 2 * Q + widest)
    passes = N * (6 * hidden + 3 * Q + 3 * widest)
    return cost + passes + 2 * max(_CHUNK_NUMBERS, per_tangent)


def _start_overflow(net: Network, X: Array, Y: Array, what: str) -> None:
    """Refuse an overflow at the starting point ``θ_0``, naming the input that caused it."""
    F = net.forward(X)  # names X (and the parameters) if the outputs overflow
    top_f, top_y, top_x = float(np.abs(F).max()), float(np.abs(Y).max()), float(np.abs(X).max())
    top_z = float(np.abs(net.flat()).max())
    name = "Y" if top_y > top_f else "X, net"
    raise ValueError(
        f"{name}: {what} overflows float64 at the starting parameters, before any step of size lr "
        f"(max |X| = {top_x:.3g}, max |Y| = {top_y:.3g}, max |F| = {top_f:.3g}, max |θ_0| = {top_z:.3g}); "
        "rescale the data or the network"
    )


def training_jacobian(
    net: Network,
    X: ArrayLike,
    Y: ArrayLike,
    lr: float,
    steps: int,
    *,
    max_params: int = 4096,
) -> Array:
    """The training Jacobian ``J = ∂θ_T/∂θ_0`` of ``steps`` steps of full-batch gradient descent.

    The run is the one of :func:`zlnotes.gradient_descent` from ``net`` (the same cost
    ``C = |F − Y|²/(2N)``, the same gradients from :class:`zlnotes.CostFunction`, the same
    update ``θ_{t+1} = θ_t − lr ∇C(θ_t)``), and

        J = (I − lr H_{T−1}) ⋯ (I − lr H_0),      H_t = ∇²C(θ_t),   T = ``steps``,

    accumulated as ``J_{t+1} = J_t − lr H_t J_t`` with ``H_t J_t`` from ``K`` Hessian–vector
    products by forward-over-reverse differentiation (exact up to rounding; no finite
    differences; the Hessian itself is never formed). For ``relu`` and ``leaky_relu`` σ'' = 0
    is used: ``J`` is the derivative of the run only where no pre-activation crosses the kink
    for nearby starts.

    Cost: time ``O(steps · N · K · Σ_ℓ M_ℓ M_{ℓ−1})``, about ``steps · N · K²`` multiply–adds
    times a small constant (each of the ``K`` tangents costs a few gradient evaluations) plus
    ``steps · K²`` for the update; memory ``2 K²`` floats (``J`` and ``H_t J_t``) plus tangent
    buffers of about 0.5 MiB (the tangents go through in chunks). ``K`` is checked
    against ``max_params`` and ``2 K²`` floats against the memory budget
    (:func:`zlnotes.memory_budget`) before anything of size ``K²`` is allocated.

    Parameters
    ----------
    net
        Starting network ``θ_0`` (not modified).
    X, Y : array_like, shapes (N, M) and (N, Q)
        Training data.
    lr
        Step size ``> 0``.
    steps
        Number of gradient steps ``T ≥ 0`` (``T = 0`` gives the identity).
    max_params
        Refuse networks with more than this many parameters ``K`` (default 4096: ``J`` then
        has 16.8 million entries, and each step costs ``K`` Hessian–vector products).

    Returns
    -------
    numpy.ndarray, shape (K, K)
        ``J[i, j] = ∂(θ_T)_i / ∂(θ_0)_j`` in the order of :meth:`zlnotes.Network.flat`.

    Raises
    ------
    ValueError
        For malformed data, ``K > max_params``, ``2 K²`` floats (with the forward and backward
        buffers over the ``N`` samples) above the memory budget, a cost, gradient or Hessian
        that overflows float64 at the starting point (naming ``X``, ``Y`` or ``net``), or a
        run whose cost or gradient stops being finite later (naming ``lr``).

    Examples
    --------
    >>> import numpy as np, zlnotes as zl
    >>> arch = zl.Architecture(2, [3], 1, "tanh")
    >>> net = zl.Network.init(arch, 0)
    >>> X = np.random.default_rng(1).standard_normal((4, 2))
    >>> Y = np.zeros((4, 1))
    >>> J = zl.training_jacobian(net, X, Y, lr=0.1, steps=20)
    >>> J.shape
    (13, 13)
    >>> bool(np.allclose(zl.training_jacobian(net, X, Y, 0.1, 0), np.eye(13)))
    True
    """
    X = require_network(net).check_inputs(X)
    Y = as_matrix("Y", Y, rows=X.shape[0], cols=net.arch.output_dim, cols_label="output_dim")
    lr = real_scalar("lr", lr, lo=0.0, lo_open=True)
    steps = nonnegative_int("steps", steps)
    max_params = positive_int("max_params", max_params)
    arch = net.arch
    K, N = arch.num_params, X.shape[0]
    if K > max_params:
        raise ValueError(
            f"net: K = {K} parameters exceeds max_params = {max_params}; J is K × K and each step "
            "costs K Hessian-vector products: raise max_params to proceed"
        )
    require_memory("net", f"the training Jacobian and H J (2 × K × K = 2 × {K} × {K})", 2 * K * K * FLOAT_BYTES)
    per_tangent = K + N * (3 * sum(arch.hidden) + 2 * arch.output_dim)
    chunk = max(1, min(K, _CHUNK_NUMBERS // per_tangent))
    buffers = _buffer_numbers(arch, N, per_tangent)
    require_memory(
        "X",
        f"the training Jacobian and H J (2 × K × K = 2 × {K} × {K}) with the forward and backward "
        f"buffers over N = {N} samples ({buffers} numbers)",
        (2 * K * K + buffers) * FLOAT_BYTES,
    )
    f = CostFunction(arch, X, Y)
    J = np.eye(K)
    HJ = np.empty((K, K))
    Z, g, step = net.flat(), np.empty(K), np.empty(K)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps):
            c, _ = f(Z, out=g)
            if not (np.isfinite(c) and np.all(np.isfinite(g))):
                if t == 0:  # no step taken yet: the data or the parameters are too large, not lr
                    _start_overflow(net, X, Y, "the cost or its gradient")
                raise ValueError(
                    f"lr: the cost or its gradient is not finite at step {t} (gradient descent diverged); "
                    "use a smaller lr"
                )
            _hessian_times(Network.from_flat(arch, Z), X, Y, J, HJ, chunk)
            if t == 0 and not np.all(np.isfinite(HJ)):  # H_0 J_0 = H_0: the Hessian at the start
                _start_overflow(net, X, Y, "the Hessian of the cost")
            HJ *= lr
            J -= HJ  # J_{t+1} = (I − lr H_t) J_t
            np.multiply(g, lr, out=step)
            Z = Z - step  # θ_{t+1} = θ_t − lr ∇C(θ_t), as zlnotes.gradient_descent
    if not np.all(np.isfinite(J)):
        raise ValueError("lr: the training Jacobian overflows float64 (the run is unstable); use a smaller lr")
    return J
