"""One root error for the whole project, with subclasses that also inherit the builtin they resemble.

Every message says what went wrong, where (file, layer, field) and what would fix it.

>>> issubclass(LayerNotFoundError, KeyError) and issubclass(LayerNotFoundError, CIMError)
True
"""

from __future__ import annotations

__all__ = [
    "CIMError",
    "CIMWarning",
    "CRSError",
    "DataError",
    "LayerExistsError",
    "LayerNotFoundError",
    "MissingDependencyError",
    "RegionNotFoundError",
    "StoreConnectionError",
    "StoreError",
    "StoreNotFoundError",
    "ValidationError",
]


class CIMError(Exception):
    """Root of every error raised by cim-twin."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else self.__class__.__name__


class CIMWarning(UserWarning):
    """Root of every warning issued by cim-twin."""


class ValidationError(CIMError, ValueError):
    """An argument or a value in the input is not acceptable."""


class DataError(CIMError, ValueError):
    """Input data (a file, a message) is malformed or inconsistent."""


class CRSError(ValidationError):
    """A coordinate reference system is missing, unusable or does not match."""


class LayerNotFoundError(CIMError, KeyError):
    """A named layer does not exist in the scene."""


class LayerExistsError(CIMError, FileExistsError):
    """A layer with that name is already in the scene."""


class RegionNotFoundError(CIMError, KeyError):
    """A named administrative region does not exist in the scene."""


class StoreError(CIMError, OSError):
    """The scene store is unreadable, corrupt, or of an unsupported version."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No scene store exists at the given location."""


class StoreConnectionError(StoreError, ConnectionError):
    """A database server cannot be reached or is not usable as a scene store."""


class MissingDependencyError(CIMError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str):
    """Import an optional dependency or raise a MissingDependencyError naming the extra.

    >>> require("json", "core").__name__
    'json'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is needed for this; install it with: pip install 'cim-twin[{extra}]'"
        ) from exc
