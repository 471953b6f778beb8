"""Named tolerances for the unit tests, each with its reason."""

FD_STEP = 1e-6
"""Central-difference step: truncation error O(h²) ≈ 1e-12 balances rounding error ε/h ≈ 2e-10."""

FD_RTOL = 1e-6
"""Central differences agree with exact derivatives to about ε/h ≈ 2e-10 relative to the
function's scale; 1e-6 leaves room for third-derivative terms and still catches any wrong
entry (a wrong formula is off by O(1))."""

ROUNDOFF_RTOL = 1e-12
"""Two exact formulas for the same float64 quantity (sympy vs backpropagation, Gram identity
vs D Dᵀ) differ only by rounding: a few hundred ε relative to the largest entry."""
