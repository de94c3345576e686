"""Scene stores, chosen by URL: a filesystem path (embedded) or ``postgresql+psycopg://`` (PostGIS)."""

from __future__ import annotations

from cim.errors import ValidationError
from cim.stores.base import Store, check_layer_name

__all__ = ["Store", "check_layer_name", "create_store", "open_store", "store_class"]


def store_class(url: str) -> type[Store]:
    """The backend for a URL."""
    url = str(url)
    if url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        if not url.startswith("postgresql+psycopg://"):
            raise ValidationError(f"use the psycopg 3 driver in database URLs: "
                                  f"{'postgresql+psycopg://' + url.split('://', 1)[1]!r}")
        from cim.stores.postgis import PostGISStore

        return PostGISStore
    if "://" in url:
        raise ValidationError(f"unsupported store URL {url!r}: give a directory path (embedded store) or a "
                              "postgresql+psycopg://user@host:port/db?schema=NAME URL (PostGIS)")
    from cim.stores.embedded import EmbeddedStore

    return EmbeddedStore


def create_store(url: str, meta: dict[str, str]) -> Store:
    return store_class(url).create(str(url), meta=meta)


def open_store(url: str) -> Store:
    return store_class(url).open(str(url))
