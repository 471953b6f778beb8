"""Sympy versions of the networks, for exact checks of the numerical formulas.

A symbolic network has one sympy symbol per parameter, named after its place in the flat
vector (``W1_0_2`` is ``W_1[0, 2]``, ``b2_1`` is ``b_2[1]``), and symbolic inputs
``x{j}_{i}`` (sample ``j``, coordinate ``i``). Everything is exact: derivatives are taken by
sympy, not by the backpropagation formulas the package implements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from .activations import LEAKY_RELU_SLOPE
from .architecture import Architecture

__all__ = ["SymbolicNetwork", "symbolic_activation", "symbolic_network"]


def _piecewise_function(name: str, expr: sp.Expr, t: sp.Symbol) -> type:
    """A sympy function class for a piecewise σ whose derivative is ``sp.diff(expr, t)``.

    Composing ``Piecewise`` expressions layer after layer makes sympy's differentiation blow up
    combinatorially. Wrapping σ in a function class keeps the network's expression compact;
    the chain rule is still applied by sympy, and σ' is still derived by sympy from the
    piecewise formula. Both carry a numeric implementation (``_imp_``) for ``lambdify``.
    """
    derivative = sp.diff(expr, t)
    prime = type(f"{name}_prime", (sp.Function,), {
        "nargs": 1,
        "_imp_": staticmethod(sp.lambdify(t, derivative, "numpy")),
    })
    return type(name, (sp.Function,), {
        "nargs": 1,
        "_imp_": staticmethod(sp.lambdify(t, expr, "numpy")),
        "fdiff": lambda self, argindex=1: prime(self.args[0]),
    })


def symbolic_activation(name: str, *, width: float = 1.0, sharpness: float = 1.0, slope: float = LEAKY_RELU_SLOPE):
    """σ as a function of one sympy expression.

    ``tanh``, ``softplus`` (``log(1 + e^{βz})/β`` with β the ``sharpness``) and ``identity``
    are elementary expressions that sympy differentiates itself. ``relu``, ``leaky_relu`` (with
    its ``slope``) and ``smooth_relu`` (with its ``width``) are ``Piecewise`` formulas wrapped in
    function classes (see :func:`_piecewise_function`); their derivatives are defined away
    from the kinks.
    """
    t = sp.Symbol("t", real=True)
    w = sp.nsimplify(width)
    beta = sp.nsimplify(sharpness)
    a = sp.nsimplify(slope)
    piecewise = {
        "relu": sp.Piecewise((t, t > 0), (0, True)),
        "leaky_relu": sp.Piecewise((t, t > 0), (a * t, True)),
        "smooth_relu": sp.Piecewise((0, t <= -w), ((t + w) ** 2 / (4 * w), t < w), (t, True)),
    }
    elementary = {
        "softplus": (
            (lambda z: sp.log(1 + sp.exp(z))) if beta == 1 else (lambda z: sp.log(1 + sp.exp(beta * z)) / beta)
        ),
        "tanh": sp.tanh,
        "identity": lambda z: z,
    }
    if name in elementary:
        return elementary[name]
    if name in piecewise:
        return _piecewise_function(name, piecewise[name], t)
    if not isinstance(name, str):
        raise TypeError(f"name must be a string; got {type(name).__name__}")
    raise ValueError(f"name must be one of {', '.join([*piecewise, *elementary])}; got {name!r}")


@dataclass(frozen=True)
class SymbolicNetwork:
    """A network whose parameters and inputs are sympy symbols.

    Attributes
    ----------
    arch
        The architecture.
    params : list of sympy.Symbol
        The flat parameter vector ``Z`` (same order as :meth:`zlnotes.Network.flat`).
    inputs : sympy.Matrix, shape (N, M)
        Symbolic inputs, one sample per row.
    outputs : sympy.Matrix, shape (N·Q, 1)
        The stacked outputs ``x[Z]``, sample-major.
    """

    arch: Architecture
    params: list
    inputs: sp.Matrix
    outputs: sp.Matrix

    def jacobian(self) -> sp.Matrix:
        """``∂x[Z]/∂Z`` as an exact ``(N·Q) × K`` sympy matrix."""
        return self.outputs.jacobian(self.params)

    def substitutions(self, Z: np.ndarray, X: np.ndarray) -> dict:
        """A substitution dict mapping the symbols to the numbers in ``Z`` and ``X``."""
        subs = {p: float(v) for p, v in zip(self.params, np.ravel(Z))}
        subs.update({s: float(v) for s, v in zip(self.inputs, np.ravel(X))})
        return subs

    def evaluate(self, expr: sp.Matrix, Z: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Evaluate an exact expression in the parameters and inputs at numbers ``Z``, ``X``.

        The expression is compiled with :func:`sympy.lambdify` (fast, unlike ``evalf`` on deep
        nested expressions); the derivatives in it were still taken exactly by sympy.
        """
        fn = sp.lambdify([self.params, list(self.inputs)], expr, modules="numpy")
        return np.asarray(fn(list(np.ravel(Z)), list(np.ravel(X))), dtype=np.float64)


def symbolic_network(arch: Architecture, n_samples: int) -> SymbolicNetwork:
    """Build the :class:`SymbolicNetwork` of ``arch`` on ``n_samples`` symbolic inputs."""
    shape = dict(arch.sigma.params)  # smooth_relu's width, softplus's sharpness, leaky_relu's slope
    sigma = symbolic_activation(
        arch.activation,
        width=shape.get("width", 1.0),
        sharpness=shape.get("sharpness", 1.0),
        slope=shape.get("slope", LEAKY_RELU_SLOPE),
    )
    params: list = []
    layers = []
    for ell, (out, inp) in enumerate(arch.layer_shapes, start=1):
        W = sp.Matrix(out, inp, lambda a, b: sp.Symbol(f"W{ell}_{a}_{b}", real=True))
        b = sp.Matrix(out, 1, lambda a, _: sp.Symbol(f"b{ell}_{a}", real=True))
        params.extend(list(W))  # sympy matrices iterate row-major
        params.extend(list(b))
        layers.append((W, b))
    X = sp.Matrix(n_samples, arch.input_dim, lambda j, i: sp.Symbol(f"x{j}_{i}", real=True))
    outputs = []
    for j in range(n_samples):
        a = X[j, :].T
        for W, b in layers[:-1]:
            a = (W * a + b).applyfunc(sigma)
        W, b = layers[-1]
        outputs.extend(list(W * a + b))
    return SymbolicNetwork(arch, params, X, sp.Matrix(outputs))
