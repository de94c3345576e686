"""Errors and warnings raised by the flood solver.

``flood`` must not import ``cim`` (the solver stays independent of the scene model), so it has its own root,
:class:`FloodError`. Every subclass also inherits the builtin it resembles, so callers can catch ``ValueError``
or ``TypeError`` as usual, and every message names the argument and what would fix it.

>>> issubclass(FloodValueError, ValueError) and issubclass(FloodValueError, FloodError)
True
"""

from __future__ import annotations

__all__ = [
    "FloodCRSError",
    "FloodError",
    "FloodTypeError",
    "FloodValueError",
    "FloodWarning",
    "GridMismatchError",
    "UnstableError",
]


class FloodError(Exception):
    """Root of every error raised by :mod:`flood`."""


class FloodWarning(UserWarning):
    """Root of every warning issued by :mod:`flood`."""


class FloodValueError(FloodError, ValueError):
    """An argument has an unacceptable value (negative duration, unknown boundary side, ...)."""


class FloodTypeError(FloodError, TypeError):
    """An argument has an unacceptable type (a list where a number or a DataArray is expected, ...)."""


class GridMismatchError(FloodValueError):
    """A grid argument (manning, blocked, initial_depth, ...) does not have the DEM's shape or coordinates."""


class FloodCRSError(FloodValueError):
    """A coordinate reference system is missing or cannot be matched to the DEM's."""


class UnstableError(FloodError, ArithmeticError):
    """The solution became non-finite; the message gives the time and what to change (smaller alpha/max_dt)."""
