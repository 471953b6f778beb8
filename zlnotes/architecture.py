"""Fully connected networks: their architecture, parameters and forward pass.

Conventions (the book's Notation page). A network with ``L`` hidden layers of widths
``M_1, …, M_L`` maps ``x ∈ ℝ^{M_0}`` to ``f(x) ∈ ℝ^Q`` by

    a_0 = x,   a_ℓ = σ(W_ℓ a_{ℓ−1} + b_ℓ)  (ℓ = 1..L),   f(x) = W_{L+1} a_L + b_{L+1},

with ``W_ℓ ∈ ℝ^{M_ℓ × M_{ℓ−1}}``. In code the samples are the *rows* of
``X ∈ ℝ^{N × M_0}``, so layer ℓ computes ``Z_ℓ = A_{ℓ−1} W_ℓᵀ + 1 b_ℓᵀ``.
The flat parameter vector is ``Z = [vec W_1, b_1, …, vec W_{L+1}, b_{L+1}]`` with ``vec``
row-major, of length ``K = Σ_ℓ M_ℓ (M_{ℓ−1} + 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, cast

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_generator, as_matrix, as_vector, instance, positive_int, real_scalar
from .activations import Activation
from .activations import activation as lookup_activation
from .memory import FLOAT_BYTES, LAYER_OVERHEAD_BYTES, require_memory
from .typing import Array

__all__ = ["Architecture", "Network", "require_network", "require_finite_result"]


def require_finite_result(where: str, result: Array, X: Array, net: "Network") -> None:
    """``ValueError`` if ``result``, computed from the finite ``X`` and ``net``, is not finite.

    Finite inputs give an infinite or NaN result only when a number exceeds the float64 range
    (about 1.8e308) on the way: the message says so and gives the sizes that caused it.
    """
    if np.all(np.isfinite(result)):
        return
    big_w = max(float(np.abs(w).max()) for w in net.weights)
    big_b = max((float(np.abs(b).max()) for b in net.biases if b.size), default=0.0)
    raise ValueError(
        f"X: {where} overflow float64 (inputs or parameters too large: max |X| = {float(np.abs(X).max()):.3g}, "
        f"max |W| = {big_w:.3g}, max |b| = {big_b:.3g}); rescale the data or the network"
    )


@dataclass(frozen=True, init=False)
class Architecture:
    """The shape of a fully connected network.

    Parameters
    ----------
    input_dim
        ``M_0 = M``, the dimension of one input.
    hidden
        Hidden widths ``(M_1, …, M_L)``; empty for an affine model.
    output_dim
        ``Q``, the dimension of one output.
    activation
        An activation name (see :data:`zlnotes.ACTIVATIONS`) or an :class:`Activation`.

    Attributes
    ----------
    activation : str
        The activation's name; the function itself is :attr:`sigma`.

    Examples
    --------
    >>> import zlnotes as zl
    >>> arch = zl.Architecture(3, (5, 5), 2, "tanh")
    >>> arch.num_params, arch.output_size(10)
    (62, 20)
    """

    input_dim: int
    hidden: tuple[int, ...]
    output_dim: int
    activation: str
    sigma: Activation

    def __init__(
        self,
        input_dim: int,
        hidden: Sequence[int] | int,
        output_dim: int,
        activation: str | Activation = "relu",
    ) -> None:
        input_dim = positive_int("input_dim", input_dim)
        output_dim = positive_int("output_dim", output_dim)
        if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
            hidden = (hidden,)
        if isinstance(hidden, (str, bytes)):
            raise TypeError(f"hidden must be an integer width or a sequence of widths; got {hidden!r}")
        try:
            widths = tuple(cast(Sequence[int], hidden))
        except TypeError:
            raise TypeError(
                f"hidden must be an integer width or a sequence of widths; got {type(hidden).__name__} {hidden!r}"
            ) from None
        widths = tuple(positive_int(f"hidden[{i}]", w) for i, w in enumerate(widths))
        sigma = lookup_activation(activation)
        object.__setattr__(self, "input_dim", input_dim)
        object.__setattr__(self, "hidden", widths)
        object.__setattr__(self, "output_dim", output_dim)
        object.__setattr__(self, "activation", sigma.name)
        object.__setattr__(self, "sigma", sigma)

    @property
    def depth(self) -> int:
        """``L``, the number of hidden layers."""
        return len(self.hidden)

    @property
    def widths(self) -> tuple[int, ...]:
        """``(M_0, M_1, …, M_L, Q)``."""
        return (self.input_dim, *self.hidden, self.output_dim)

    @property
    def layer_shapes(self) -> tuple[tuple[int, int], ...]:
        """Shapes ``(M_ℓ, M_{ℓ−1})`` of ``W_1, …, W_{L+1}``."""
        w = self.widths
        return tuple((w[i + 1], w[i]) for i in range(len(w) - 1))

    @property
    def num_params(self) -> int:
        """``K = Σ_ℓ M_ℓ (M_{ℓ−1} + 1)``."""
        return sum(out * (inp + 1) for out, inp in self.layer_shapes)

    def output_size(self, n_samples: int) -> int:
        """``Q·N``, the length of the stacked output vector for ``N`` samples."""
        return self.output_dim * positive_int("n_samples", n_samples)

    def param_offsets(self) -> tuple[tuple[slice, slice], ...]:
        """Slices of the flat vector holding ``vec W_ℓ`` and ``b_ℓ``, for ℓ = 1..L+1."""
        slices = []
        start = 0
        for out, inp in self.layer_shapes:
            w = slice(start, start + out * inp)
            b = slice(w.stop, w.stop + out)
            slices.append((w, b))
            start = b.stop
        return tuple(slices)


class Network:
    """Weights and biases of one :class:`Architecture`.

    Parameters
    ----------
    arch
        The architecture.
    weights, biases
        ``W_1, …, W_{L+1}`` (shapes ``arch.layer_shapes``) and ``b_1, …, b_{L+1}``.
        They are copied; a network never changes after construction.
    """

    __slots__ = ("arch", "weights", "biases")

    def __init__(self, arch: Architecture, weights: Sequence[ArrayLike], biases: Sequence[ArrayLike]) -> None:
        instance("arch", arch, Architecture, "a zlnotes.Architecture")
        for label, seq in (("weights", weights), ("biases", biases)):
            if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__") or not hasattr(seq, "__iter__"):
                raise TypeError(f"{label} must be a list or tuple of arrays, one per layer; got {type(seq).__name__}")
        shapes = arch.layer_shapes
        if len(weights) != len(shapes) or len(biases) != len(shapes):
            raise ValueError(
                f"weights and biases must each hold {len(shapes)} arrays (L + 1 layers); "
                f"got {len(weights)} weights and {len(biases)} biases"
            )
        ws, bs = [], []
        for i, ((out, inp), w, b) in enumerate(zip(shapes, weights, biases), start=1):
            w = as_matrix(f"weights[{i - 1}] (W_{i})", w, rows=out, cols=inp).copy()
            b = as_vector(f"biases[{i - 1}] (b_{i})", b, length=out).copy()
            w.flags.writeable = False
            b.flags.writeable = False
            ws.append(w)
            bs.append(b)
        self.arch = arch
        self.weights: tuple[Array, ...] = tuple(ws)
        self.biases: tuple[Array, ...] = tuple(bs)

    def __repr__(self) -> str:
        a = self.arch
        return f"Network({a.input_dim} -> {list(a.hidden)} -> {a.output_dim}, {a.activation}, K={a.num_params})"

    @classmethod
    def init(
        cls,
        arch: Architecture,
        rng: np.random.Generator | int,
        *,
        weight_gain: float | None = None,
        bias_std: float = 0.1,
    ) -> "Network":
        """Random initialisation.

        ``W_ℓ`` has i.i.d. ``N(0, gain² / M_{ℓ−1})`` entries and ``b_ℓ`` i.i.d.
        ``N(0, bias_std²)`` entries.

        Parameters
        ----------
        arch
            The architecture.
        rng
            A :class:`numpy.random.Generator` or an integer seed.
        weight_gain
            Default ``arch.sigma.he_gain``: ``√2`` for ``relu``, ``leaky_relu`` and
            ``smooth_relu`` (He), else 1 (LeCun); see :attr:`zlnotes.Activation.he_gain`.
        bias_std
            Standard deviation of the biases (≥ 0).
        """
        instance("arch", arch, Architecture, "a zlnotes.Architecture")
        gen = as_generator(rng)
        if weight_gain is None:
            weight_gain = arch.sigma.he_gain
        weight_gain = real_scalar("weight_gain", weight_gain, lo=0.0, lo_open=True)
        bias_std = real_scalar("bias_std", bias_std, lo=0.0)
        K = arch.num_params
        require_memory(
            "arch",
            f"a network of K = {K} parameters in {arch.depth + 1} layers (drawn, then copied)",
            2 * K * FLOAT_BYTES + (arch.depth + 1) * LAYER_OVERHEAD_BYTES,
        )
        weights, biases = [], []
        with np.errstate(over="ignore"):
            for out, inp in arch.layer_shapes:
                weights.append(gen.standard_normal((out, inp)) * (weight_gain / np.sqrt(inp)))
                biases.append(gen.standard_normal(out) * bias_std)
        for name, value, drawn in (("weight_gain", weight_gain, weights), ("bias_std", bias_std, biases)):
            if not all(np.all(np.isfinite(d)) for d in drawn):
                raise ValueError(
                    f"{name}: the draws overflow float64 (a normal draw times {value:.3g}); use a smaller {name}"
                )
        return cls(arch, weights, biases)

    @classmethod
    def from_flat(cls, arch: Architecture, Z: ArrayLike) -> "Network":
        """The network whose flat parameter vector is ``Z``; the inverse of :meth:`flat`.

        Parameters
        ----------
        arch
            The architecture.
        Z : array_like, shape (K,)
            ``K = arch.num_params`` finite numbers, ordered as in :meth:`flat`.

        Returns
        -------
        Network
            A network holding copies of the blocks of ``Z``.
        """
        instance("arch", arch, Architecture, "a zlnotes.Architecture")
        require_memory("arch", f"a network of K = {arch.num_params} parameters", arch.num_params * FLOAT_BYTES)
        Z = as_vector("Z (flat parameters)", Z, length=arch.num_params)
        weights, biases = [], []
        for (out, inp), (ws, bs) in zip(arch.layer_shapes, arch.param_offsets()):
            weights.append(Z[ws].reshape(out, inp))
            biases.append(Z[bs])
        return cls(arch, weights, biases)

    def flat(self) -> Array:
        """The flat parameter vector ``Z = [vec W_1, b_1, …, vec W_{L+1}, b_{L+1}]`` (row-major)."""
        return np.concatenate([p for w, b in zip(self.weights, self.biases) for p in (w.ravel(), b)])

    def check_inputs(self, X: ArrayLike) -> Array:
        """``X`` as a finite float64 ``(N, input_dim)`` matrix, or ``ValueError``."""
        return as_matrix("X", X, cols=self.arch.input_dim, cols_label="input_dim")

    def _layers(self, X: ArrayLike) -> tuple[Array, list[Array], list[Array]]:
        """``(X, pre, post)`` unchecked for overflow (the memory is checked first)."""
        A = self.check_inputs(X)
        N = A.shape[0]
        require_memory(
            "X",
            f"the forward pass over N = {N} samples (pre- and post-activations, 2·N·ΣM_l numbers)",
            2 * N * sum(self.arch.widths[1:]) * FLOAT_BYTES,
        )
        sigma = self.arch.sigma
        pre, post = [], [A]
        with np.errstate(over="ignore", invalid="ignore"):
            for W, b in zip(self.weights[:-1], self.biases[:-1]):
                Zl = A @ W.T
                Zl += b
                A = sigma.value(Zl)
                pre.append(Zl)
                post.append(A)
        return post[0], pre, post

    def pre_and_post_activations(self, X: ArrayLike) -> tuple[list[Array], list[Array]]:
        """The hidden layers' pre- and post-activations.

        Parameters
        ----------
        X : array_like, shape (N, M)
            Inputs, one sample per row.

        Returns
        -------
        (pre, post)
            ``pre = [Z_1, …, Z_L]`` with ``Z_ℓ = A_{ℓ−1} W_ℓᵀ + 1 b_ℓᵀ`` and ``post = [A_0, …,
            A_L]`` with ``A_0 = X`` and ``A_ℓ = σ(Z_ℓ)``; each of shape ``(N, M_ℓ)``.

        Raises
        ------
        ValueError
            If a pre- or post-activation overflows float64 (see :meth:`forward`).
        """
        X, pre, post = self._layers(X)
        for i, (Zl, Al) in enumerate(zip(pre, post[1:]), start=1):
            require_finite_result(f"the pre-activations of hidden layer {i}", Zl, X, self)
            require_finite_result(f"the activations of hidden layer {i}", Al, X, self)
        return pre, post

    def hidden(self, X: ArrayLike) -> list[Array]:
        """The hidden layers' activations ``[A_1, …, A_L]``, each of shape ``(N, M_ℓ)``."""
        return self.pre_and_post_activations(X)[1][1:]

    def output_layer(self, A_L: Array) -> Array:
        """The linear output layer ``A_L W_{L+1}ᵀ + 1 b_{L+1}ᵀ`` applied to the last hidden features."""
        return A_L @ self.weights[-1].T + self.biases[-1]

    def forward(self, X: ArrayLike) -> Array:
        """The network's outputs.

        Parameters
        ----------
        X : array_like, shape (N, M)
            Inputs, one sample per row.

        Returns
        -------
        numpy.ndarray, shape (N, Q)
            ``F``; ``F.ravel()`` is the stacked vector ``x[Z]`` (sample-major).

        Raises
        ------
        ValueError
            If ``X`` is malformed, if the pass would take more than the memory budget
            (:func:`zlnotes.set_memory_budget`), or if the outputs overflow float64 (finite
            inputs and parameters too large): never an infinite or NaN output.
        """
        X, _, post = self._layers(X)
        with np.errstate(over="ignore", invalid="ignore"):
            F = self.output_layer(post[-1])
        require_finite_result("the outputs", F, X, self)
        return F

def require_network(net: object, name: str = "net") -> Network:
    """Return ``net`` if it is a :class:`Network`, else raise ``TypeError`` naming ``name``."""
    return instance(name, net, Network, "a zlnotes.Network")
