"""The types the package's signatures use, in one place.

``Array`` is a float64 numpy array, the type of every input, parameter and result array in
zlnotes (inputs are converted on entry, see the Notation page of the book). ``ArrayLike`` is
what a function accepts where it converts for itself.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Array", "ArrayLike"]

Array = NDArray[np.float64]
"""A numpy array of float64."""
