"""flood: a local-inertial 2D flood solver on xarray DEMs (numba kernels), its forcing and outputs.

>>> import flood
>>> sorted(flood.__all__)[:3]
['FloodCRSError', 'FloodError', 'FloodTypeError']
"""

import logging

from flood.errors import *  # noqa: F403
from flood.errors import __all__ as _errors_all
from flood.forcing import GreenAmpt, Horton, Inlet, PointInflow, SCSCurveNumber
from flood.model import Model, simulate

__all__ = [*_errors_all, "GreenAmpt", "Horton", "Inlet", "Model", "PointInflow", "SCSCurveNumber", "simulate"]

logging.getLogger(__name__).addHandler(logging.NullHandler())


# The scene-aware layer imports cim: load it only when asked for, so the solver stays independent of it.
_LAZY = {"forecast": "flood.forecasting", "Forecast": "flood.forecasting", "terrain": "flood.forecasting",
         "gauge_rainfall": "flood.gauges", "WarningLevels": "flood.levels", "ensemble": "flood.ensembles",
         "find_hotspots": "flood.hotspots", "what_if": "flood.whatif"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flood' has no attribute {name!r}")
