"""api: the HTTP service, a thin FastAPI layer over the library (see DESIGN.md).

``api.create_app(settings)`` builds the app for one scene; ``cim serve SCENE`` runs it with uvicorn. Nothing is
built at import time, and FastAPI is imported only when the app is (``import api`` stays light for the CLI).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

__all__ = ["Settings", "create_app"]

if TYPE_CHECKING:
    from api.app import create_app
    from api.settings import Settings


def __getattr__(name: str):
    if name == "create_app":
        from api.app import create_app

        return create_app
    if name == "Settings":
        from api.settings import Settings

        return Settings
    raise AttributeError(f"module 'api' has no attribute {name!r}")


logging.getLogger(__name__).addHandler(logging.NullHandler())
