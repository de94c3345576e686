"""Errors raised by :mod:`hydrology`.

``hydrology`` imports nothing else of the project (see DESIGN.md), so it has its own small hierarchy. Every class
also inherits the builtin it resembles, so ``except ValueError`` keeps working for callers.
"""

from __future__ import annotations

__all__ = [
    "CRSError",
    "FlowDirectionError",
    "GridError",
    "HydrologyError",
    "ParameterError",
]


class HydrologyError(Exception):
    """Root of every error raised by :mod:`hydrology`."""


class GridError(HydrologyError, ValueError):
    """A raster input is not a usable grid (wrong type, dims, spacing, dtype or shape)."""


class CRSError(HydrologyError, ValueError):
    """A raster has no CRS, or one that the operation cannot use."""


class FlowDirectionError(HydrologyError, ValueError):
    """A flow-direction grid holds codes that are not ESRI D8 codes, or it routes water in a cycle."""


class ParameterError(HydrologyError, ValueError):
    """A scalar parameter is out of its valid range or an option is not one of the allowed values."""
