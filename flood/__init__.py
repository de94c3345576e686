"""flood: a local-inertial 2D flood solver on xarray DEMs (numba kernels), its forcing and outputs.

>>> import flood
>>> sorted(flood.__all__)[:3]
['FloodCRSError', 'FloodError', 'FloodTypeError']
"""

import logging

from flood.errors import *  # noqa: F403
from flood.errors import __all__ as _errors_all
from flood.forcing import PointInflow
from flood.model import Model, simulate

__all__ = [*_errors_all, "Model", "PointInflow", "simulate"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
