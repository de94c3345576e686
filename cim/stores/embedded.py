"""The embedded store: a directory with a SQLite database and layer files. Needs nothing beyond pip.

    scene.cim/
      scene.sqlite        catalogue, regions, IoT, jobs, keys, audit (cim.schema tables)
      layers/NAME.gpkg    vector layers (GeoPackage, one per layer, R-tree indexed)
      layers/NAME.tif     2-D rasters (Cloud-Optimized GeoTIFF)
      layers/NAME.zarr    n-D rasters (Zarr)
      files/NAME/...      referenced files (point clouds, IFC sources)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry

from cim._dtypes import column_kind, encode_datetime_text, restore
from cim.errors import StoreError, StoreNotFoundError
from cim.stores.base import Store

__all__ = ["EmbeddedStore"]

DB_NAME = "scene.sqlite"


def _engine(db: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{db}", connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None              # we issue BEGIN ourselves: DDL is transactional too
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN")

    return engine


class EmbeddedStore(Store):
    """A scene in a directory (the default for a filesystem path)."""

    local_reads = True

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = Path(root)
        self.url = str(self.root)
        self.files_root = self.root
        self.engine = _engine(self.root / DB_NAME)

    @classmethod
    def create(cls, url: str, *, meta: dict[str, str], **_) -> EmbeddedStore:
        root = Path(url)
        if (root / DB_NAME).exists():
            raise StoreError(f"{root}: a scene store exists here already; open it with cim.open_scene({str(root)!r}) "
                             "or choose another path")
        if root.exists() and any(root.iterdir()):
            raise StoreError(f"{root}: the directory is not empty; give a new path for the scene store")
        root.mkdir(parents=True, exist_ok=True)
        (root / "layers").mkdir(exist_ok=True)
        store = cls(root)
        try:
            store._create_schema(meta)
        except BaseException:
            store.close()
            for p in sorted(root.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
            root.rmdir()
            raise
        return store

    @classmethod
    def open(cls, url: str) -> EmbeddedStore:
        root = Path(url)
        db = root / DB_NAME
        if not db.exists():
            raise StoreNotFoundError(f"{root}: no scene store here (no {DB_NAME}); create one with "
                                     f"`cim scene create {root} --crs EPSG:...` or cim.Scene.create")
        store = cls(root)
        try:
            with open(db, "rb") as f:
                head = f.read(16)
            if head and head != b"SQLite format 3\x00":
                raise sqlite3.DatabaseError("file is not a database")
            store._check_schema()
        except (sa.exc.DatabaseError, sqlite3.DatabaseError) as exc:
            store.close()
            raise StoreError(f"{db}: the scene database is corrupt or not SQLite ({exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0]}); restore it from a backup or recreate the scene") from None
        return store

    # -- vectors ------------------------------------------------------------------------------------------
    def write_vector(self, name: str, gdf: gpd.GeoDataFrame, contract: dict, srid: int | None) -> str:
        location = self.file_location(name, ".gpkg")
        staged = self.stage_path(self.path(location))
        df = gdf.copy()
        for col, dt in contract["dtypes"].items():
            if column_kind(dt) in {"datetime", "datetimetz"}:
                df[col] = encode_datetime_text(df[col])
        # "Unknown" keeps every row's own type and dimension (mixed, multi-part and 3D geometries round-trip)
        pyogrio.write_dataframe(df, staged, layer=name, driver="GPKG", geometry_type="Unknown",
                                spatial_index=True, promote_to_multi=False)
        return location

    def read_vector(self, location: str, contract: dict, *, bbox=None, mask: BaseGeometry | None = None,
                    srid: int | None = None) -> gpd.GeoDataFrame:
        path = self.path(location)
        if not path.exists():
            raise StoreError(f"{path}: layer file is missing from the store; the store was modified by hand. "
                             "Remove the layer and add it again")
        read_kw: dict = {"fid_as_index": True}     # fids are 1.. in written order: a subset keeps its positions
        if mask is not None:
            read_kw["mask"] = mask
        elif bbox is not None:
            read_kw["bbox"] = tuple(bbox)
        datetimes = [c for c, dt in contract["dtypes"].items() if column_kind(dt) in {"datetime", "datetimetz"}]
        df = pyogrio.read_dataframe(path, datetime_as_string=True, **read_kw)
        full = not len(df) or (df.index.is_monotonic_increasing and df.index[-1] == len(df))
        df.index = pd.RangeIndex(len(df)) if full else pd.Index(np.asarray(df.index, np.int64) - 1)
        df = _exact_filter(df, bbox, mask)
        for col in datetimes:
            df[col] = df[col].astype(object).where(df[col].notna(), None)
        return restore(df, contract)

    def drop_vector(self, location: str) -> None:
        self.remove_on_commit(self.path(location))


def _exact_filter(df: gpd.GeoDataFrame, bbox, mask) -> gpd.GeoDataFrame:
    """Keep rows whose geometry truly intersects the bbox or mask (the file's index filters by envelope)."""
    shape = mask if mask is not None else (shapely.box(*bbox) if bbox is not None else None)
    if shape is None or not len(df):
        return df
    keep = shapely.intersects(df.geometry.values, shape)
    return df.loc[np.asarray(keep, bool)] if not keep.all() else df
