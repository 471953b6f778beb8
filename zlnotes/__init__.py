"""zlnotes: numerics for the book *Zero loss and the training Jacobian*.

Import as ``import zlnotes as zl``. Arrays are float64; rows of ``X`` are samples; the
flat parameter vector and the rows of the Jacobian follow the orderings of the book's
Notation page. Citations name the keys of the book's ``references.bib``.
"""

from .activations import ACTIVATIONS, Activation, activation
from .architecture import Architecture, Network
from .clustered import ClusterGeometry, cluster_geometry, clustered_data, clustered_minimizer
from .construction import embed_network, zero_loss_minimizer
from .cost import CostFunction, cost, cost_and_gradient, cost_gradient, output_gradient
from .data import Dataset, generic_data
from .diagnostics import (
    StationarityReport,
    affine_rank,
    classify_stationary,
    constant_output_cost,
    decade,
    kink_margin,
    least_unit_slope,
    relative_misfit,
    significant,
    stationarity_report,
    step_size,
)
from .flows import FlowPath, adapted_direction, gradient_flow
from .full_rank import FullRankGrid, full_rank_grid, shallow_gram, shallow_jacobian, torch_linear_init
from .jacobian import backprop_factors, jacobian, jacobian_rank, ntk
from .kernels import ntk_limit, ntk_scaled, relu_derivative_expectation, relu_expectation
from .linalg import (
    RangeProjector,
    face_split,
    gram_rank,
    gram_rtol,
    numerical_rank,
    range_projector,
    singular_values,
)
from .memory import memory_budget, set_memory_budget
from .stationary import LbfgsReport, StationaryPoint, lbfgs_polish, stationary_point
from .symmetry import balance
from .training import History, gradient_descent
from .training_jacobian import second_derivative, training_jacobian
from .two_layer import (
    TwoLayerRun,
    kernel_losses,
    relu_gram_limit,
    sphere_data,
    two_layer_gd,
    two_layer_gram,
    two_layer_init,
    two_layer_output,
)

__version__ = "0.1.0"

__all__ = [
    "StationarityReport",
    "affine_rank",
    "classify_stationary",
    "constant_output_cost",
    "decade",
    "kink_margin",
    "least_unit_slope",
    "relative_misfit",
    "significant",
    "stationarity_report",
    "step_size",
    "ACTIVATIONS",
    "Activation",
    "Architecture",
    "ClusterGeometry",
    "CostFunction",
    "Dataset",
    "FlowPath",
    "History",
    "LbfgsReport",
    "Network",
    "RangeProjector",
    "StationaryPoint",
    "activation",
    "adapted_direction",
    "backprop_factors",
    "balance",
    "cluster_geometry",
    "clustered_data",
    "clustered_minimizer",
    "cost",
    "cost_and_gradient",
    "cost_gradient",
    "embed_network",
    "face_split",
    "generic_data",
    "gradient_descent",
    "gradient_flow",
    "gram_rank",
    "gram_rtol",
    "jacobian",
    "jacobian_rank",
    "lbfgs_polish",
    "memory_budget",
    "ntk",
    "ntk_limit",
    "ntk_scaled",
    "numerical_rank",
    "output_gradient",
    "range_projector",
    "relu_derivative_expectation",
    "relu_expectation",
    "set_memory_budget",
    "singular_values",
    "second_derivative",
    "stationary_point",
    "training_jacobian",
    "zero_loss_minimizer",
    "FullRankGrid",
    "full_rank_grid",
    "shallow_gram",
    "shallow_jacobian",
    "torch_linear_init",
    "TwoLayerRun",
    "kernel_losses",
    "relu_gram_limit",
    "sphere_data",
    "two_layer_gd",
    "two_layer_gram",
    "two_layer_init",
    "two_layer_output",
]
