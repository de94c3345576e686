"""hydrology: terrain analysis and rainfall-runoff on xarray grids (see DESIGN.md).

Imports nothing else of the project. Numba kernels live in private ``_kernels*`` modules.
"""

from __future__ import annotations

import logging

from hydrology.errors import CRSError, FlowDirectionError, GridError, HydrologyError, ParameterError
from hydrology.terrain import D8_CODES, fill_depressions, flow_accumulation, flow_direction

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "D8_CODES",
    "CRSError",
    "FlowDirectionError",
    "GridError",
    "HydrologyError",
    "ParameterError",
    "fill_depressions",
    "flow_accumulation",
    "flow_direction",
]
