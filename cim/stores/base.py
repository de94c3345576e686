"""The store interface shared by both backends.

A store keeps a scene's tables (`cim.schema.metadata`) in a SQL database reached through SQLAlchemy, and layer
contents either in that database (PostGIS vector tables) or as files under a files root (GeoPackage, COG, Zarr,
point clouds). One `transaction()` covers both: files are written to a staging area first, moved into place
just before the database commits, and moved back if the commit fails; a failure at any point leaves the store
as it was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry

from cim import schema
from cim.errors import StoreError, ValidationError

__all__ = ["Store", "check_layer_name"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_layer_name(name: str) -> str:
    """Layer names are identifiers (they become table and file names): letters, digits, underscore."""
    if not isinstance(name, str) or not _NAME.match(name) or name.lower().startswith("cim_"):
        raise ValidationError(
            f"invalid layer name {name!r}: use 1-63 letters, digits or '_' starting with a letter or '_' "
            "(and not starting with 'cim_'), e.g. 'buildings_lod2'")
    return name


# built once: constructing the statement and its cache key cost as much as running it (the HTTP service reads a
# catalogue row on every Features request)
_CATALOG_ROW = sa.select(schema.layers).where(schema.layers.c.name == sa.bindparam("name"))


@dataclass
class _Tx:
    conn: sa.Connection
    staged: list[tuple[Path, Path]] = field(default_factory=list)     # (staged path, final path)
    removed: list[Path] = field(default_factory=list)                 # final paths to delete on commit
    moved: list[tuple[Path, Path]] = field(default_factory=list)      # done moves, for undo
    after_commit: list = field(default_factory=list)


class Store(ABC):
    """Base of the embedded and PostGIS stores."""

    url: str
    engine: sa.Engine
    files_root: Path
    #: reads are local file reads, no network round trip: a catalogue lookup may run on an event loop
    local_reads: bool = False

    def __init__(self) -> None:
        self._local = threading.local()      # the open transaction belongs to the thread that opened it

    @property
    def _tx(self) -> _Tx | None:
        return getattr(self._local, "tx", None)

    @_tx.setter
    def _tx(self, tx: _Tx | None) -> None:
        self._local.tx = tx

    # -- life cycle ---------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def create(cls, url: str, **options) -> Store: ...

    @classmethod
    @abstractmethod
    def open(cls, url: str) -> Store: ...

    def _create_schema(self, meta_values: dict[str, str]) -> None:
        _import_table_modules()
        with self.transaction() as conn:
            schema.metadata.create_all(conn)
            rows = {"schema_version": str(schema.SCHEMA_VERSION), **meta_values}
            conn.execute(sa.insert(schema.meta), [{"key": k, "value": v} for k, v in rows.items()])

    def _check_schema(self) -> None:
        _import_table_modules()
        version = self.meta().get("schema_version")
        if version is None:
            raise StoreError(f"{self.display_url}: not a cim-twin scene store (no schema version); "
                             "create one with `cim scene create` or cim.Scene.create")
        if int(version) > schema.SCHEMA_VERSION:
            raise StoreError(f"{self.display_url}: store schema version {version} is newer than this cim-twin "
                             f"supports ({schema.SCHEMA_VERSION}); upgrade cim-twin")
        with self.transaction() as conn:          # tables added by newer modules of the same version
            schema.metadata.create_all(conn)

    @property
    def display_url(self) -> str:
        return self.url

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions -------------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One atomic unit of work over tables and files; nested calls join the outer transaction."""
        if self._tx is not None:
            yield self._tx.conn
            return
        conn = self.engine.connect()
        trans = conn.begin()
        tx = self._tx = _Tx(conn)
        try:
            yield conn
            try:
                self._apply_files(tx)
                trans.commit()
            except BaseException:
                self._undo_files(tx)
                raise
        except BaseException:
            if trans.is_active:
                trans.rollback()
            for staged, _ in tx.staged:
                _remove(staged)
            raise
        finally:
            self._tx = None
            conn.close()
        for path in tx.removed:
            _remove(path.with_name(path.name + ".removed"))
        for fn in tx.after_commit:
            fn()

    @contextmanager
    def connection(self) -> Iterator[sa.Connection]:
        """A connection for reading: the open transaction's, so that reads see its own writes, else a new one."""
        if self._tx is not None:
            yield self._tx.conn
        else:
            with self.engine.connect() as conn:
                yield conn

    def _current(self) -> _Tx:
        if self._tx is None:
            raise RuntimeError("store writes must happen inside store.transaction()")
        return self._tx

    def stage_path(self, final: Path) -> Path:
        """A fresh path to write a file or directory that will be moved to ``final`` on commit."""
        tx = self._current()
        staging = self.files_root / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        staged = staging / f"{uuid.uuid4().hex}{''.join(final.suffixes)}"
        tx.staged.append((staged, final))
        return staged

    def remove_on_commit(self, final: Path) -> None:
        self._current().removed.append(final)

    def _apply_files(self, tx: _Tx) -> None:
        for path in tx.removed:
            if path.exists():
                os.replace(path, path.with_name(path.name + ".removed"))
                tx.moved.append((path.with_name(path.name + ".removed"), path))
        for staged, final in tx.staged:
            if staged.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, final)
                tx.moved.append((final, staged))

    def _undo_files(self, tx: _Tx) -> None:
        for now, before in reversed(tx.moved):
            if now.exists():
                os.replace(now, before)

    # -- metadata -----------------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self.connection() as conn:
            return {r.key: r.value for r in conn.execute(sa.select(schema.meta))}

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(sa.delete(schema.meta).where(schema.meta.c.key == key))
            conn.execute(sa.insert(schema.meta).values(key=key, value=value))

    def catalog(self) -> list[dict]:
        with self.connection() as conn:
            rows = conn.execute(sa.select(schema.layers).order_by(schema.layers.c.created, schema.layers.c.name))
            return [dict(r._mapping) for r in rows]

    def catalog_row(self, name: str) -> dict | None:
        with self.connection() as conn:
            row = conn.execute(_CATALOG_ROW, {"name": name}).first()
            return dict(row._mapping) if row else None

    def add_catalog_row(self, row: dict) -> None:
        row = {**row, "info": json.dumps(row.get("info", {}), default=str),
               "created": row.get("created") or datetime.now(UTC).isoformat(timespec="microseconds")}
        self._current().conn.execute(sa.insert(schema.layers).values(**row))

    def delete_catalog_row(self, name: str) -> None:
        self._current().conn.execute(sa.delete(schema.layers).where(schema.layers.c.name == name))

    # -- vector contents (backend specific) ---------------------------------------------------------------
    @abstractmethod
    def write_vector(self, name: str, gdf: gpd.GeoDataFrame, contract: dict, srid: int | None) -> str:
        """Write a layer's rows inside the current transaction; return its location."""

    @abstractmethod
    def read_vector(self, location: str, contract: dict, *, bbox: tuple[float, float, float, float] | None = None,
                    mask: BaseGeometry | None = None, srid: int | None = None) -> gpd.GeoDataFrame:
        """Read rows intersecting ``bbox`` and/or ``mask`` (exact intersection), in written order."""

    @abstractmethod
    def drop_vector(self, location: str) -> None:
        """Remove a vector layer's contents inside the current transaction."""

    # -- files (shared) -----------------------------------------------------------------------------------
    def file_location(self, name: str, suffix: str) -> str:
        return f"layers/{name}{suffix}"

    def path(self, location: str) -> Path:
        p = (self.files_root / location).resolve()
        if not p.is_relative_to(self.files_root.resolve()):
            raise StoreError(f"{self.display_url}: layer location {location!r} points outside the store")
        return p


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _import_table_modules() -> None:
    """Modules that add their tables to cim.schema.metadata (imported here to avoid import cycles)."""
    import importlib

    for mod in ("cim.iot", "cim.security", "cim.jobs"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
