"""The PostGIS store: a scene in a PostgreSQL schema, reached with a ``postgresql+psycopg://`` URL.

``postgresql+psycopg://user:pw@host:5432/db?schema=delft`` keeps the scene in schema ``delft`` (default
``public``); ``&files=/srv/cim/delft`` sets where rasters and referenced files live (default under
``~/.local/share/cim-twin``): rasters stay files, referenced from the database. Vector layers are tables named
after the layer, with a GiST-indexed ``geometry`` column; rows go in with COPY.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry

from cim._dtypes import column_kind, numpy_to_python, restore
from cim.errors import StoreConnectionError, StoreError, StoreNotFoundError, require
from cim.stores.base import Store

__all__ = ["PostGISStore"]

_SQL_TYPES = {
    "int8": sa.SmallInteger, "int16": sa.SmallInteger, "uint8": sa.SmallInteger, "Int8": sa.SmallInteger,
    "Int16": sa.SmallInteger, "UInt8": sa.SmallInteger, "int32": sa.Integer, "uint16": sa.Integer,
    "Int32": sa.Integer, "UInt16": sa.Integer, "float32": sa.REAL, "Float32": sa.REAL,
}


def _sql_type(dtype: str):
    kind = column_kind(dtype)
    if dtype in _SQL_TYPES:
        return _SQL_TYPES[dtype]
    return {"int": sa.BigInteger, "float": sa.Double, "bool": sa.Boolean, "str": sa.Text,
            "datetime": sa.TIMESTAMP(timezone=False), "datetimetz": sa.TIMESTAMP(timezone=True)}[kind]


class PostGISStore(Store):
    """A scene in a PostgreSQL + PostGIS schema."""

    def __init__(self, url: str) -> None:
        super().__init__()
        require("geoalchemy2", "postgis")
        require("psycopg", "postgis")
        u = sa.engine.make_url(url)
        self.schema = u.query.get("schema", "public")
        self._files_override = u.query.get("files")
        self._sa_url = u.difference_update_query(["schema", "files"])
        self.url = url
        self.engine = sa.create_engine(
            self._sa_url, pool_pre_ping=True,
            connect_args={"options": f"-c search_path={self.schema},public", "connect_timeout": 10})
        self.files_root = Path(self._files_override) if self._files_override else Path()

    @property
    def display_url(self) -> str:
        return self._sa_url.render_as_string(hide_password=True) + f" (schema {self.schema})"

    def _connect_checked(self) -> None:
        """Reach the server and check PostGIS, turning failures into messages that say what to check."""
        probe = sa.create_engine(self._sa_url, connect_args={"connect_timeout": 10}, poolclass=sa.pool.NullPool)
        try:
            with probe.connect() as conn:
                conn.execute(sa.text("SELECT PostGIS_Version()"))
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StoreConnectionError(
                f"cannot connect to {self.display_url}: {reason}. Check that the server is running and "
                "reachable, and the host, port, user, password and database name in the URL") from None
        except sa.exc.ProgrammingError:
            raise StoreConnectionError(
                f"{self.display_url}: the database has no PostGIS. Run `CREATE EXTENSION postgis;` in it "
                "(as a superuser), or point the URL at a database that has it") from None
        finally:
            probe.dispose()

    @classmethod
    def create(cls, url: str, *, meta: dict[str, str], **_) -> PostGISStore:
        store = cls(url)
        store._connect_checked()
        with store.engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {_quote(conn, store.schema)}"))
            if sa.inspect(conn).has_table("cim_meta", schema=store.schema):
                raise StoreError(f"{store.display_url}: a scene exists in this schema already; open it with "
                                 "cim.open_scene or use another ?schema=")
        if not store._files_override:
            base = Path.home() / ".local" / "share" / "cim-twin"
            store.files_root = base / f"{store._sa_url.database}_{store.schema}_{uuid.uuid4().hex[:8]}"
        store.files_root.mkdir(parents=True, exist_ok=True)
        store._create_schema({**meta, "files_root": str(store.files_root.resolve())})
        return store

    @classmethod
    def open(cls, url: str) -> PostGISStore:
        store = cls(url)
        store._connect_checked()
        with store.engine.connect() as conn:
            if not sa.inspect(conn).has_table("cim_meta", schema=store.schema):
                raise StoreNotFoundError(f"{store.display_url}: no scene in this schema; create one with "
                                         "cim.Scene.create(url, crs=...) or check ?schema= in the URL")
        store._check_schema()
        if not store._files_override:
            store.files_root = Path(store.meta()["files_root"])
        return store

    # -- vectors ------------------------------------------------------------------------------------------
    def write_vector(self, name: str, gdf: gpd.GeoDataFrame, contract: dict, srid: int | None) -> str:
        from geoalchemy2 import Geometry

        conn = self._current().conn
        dtypes: dict[str, str] = contract["dtypes"]
        present = gdf.geometry.values[~shapely.is_missing(gdf.geometry.values)]
        has_z = shapely.has_z(present)
        # typed column when all rows share a dimension (QGIS and ST_* functions like that); untyped if mixed
        if has_z.all() or not has_z.any():
            geom_type = Geometry("GEOMETRYZ" if len(has_z) and has_z.all() else "GEOMETRY", srid=srid or -1,
                                 spatial_index=False)
            checks = []
        else:
            geom_type = Geometry(None, spatial_index=False)
            checks = [sa.CheckConstraint(f"ST_SRID(geometry) = {int(srid or 0)}")]
        table = sa.Table(
            name, sa.MetaData(),
            sa.Column("fid", sa.BigInteger, primary_key=True, autoincrement=False),
            *[sa.Column(col, _sql_type(dt)) for col, dt in dtypes.items()],
            sa.Column("geometry", geom_type),
            *checks,
        )
        sa.Index(f"{name}_geometry_gist", table.c.geometry, postgresql_using="gist")
        table.create(conn)
        geoms = shapely.set_srid(gdf.geometry.values, srid or 0) if srid else gdf.geometry.values
        wkb = shapely.to_wkb(geoms, hex=True, include_srid=bool(srid), flavor="extended")
        columns = [numpy_to_python(gdf[c], column_kind(dt)) for c, dt in dtypes.items()]
        names = ", ".join(_quote(conn, c) for c in ["fid", *dtypes, "geometry"])
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {_quote(conn, self.schema)}.{_quote(conn, name)} ({names}) FROM STDIN") as copy:
            for i, row in enumerate(zip(*columns, wkb, strict=True)):
                copy.write_row((i, *row))
        conn.execute(sa.text(f"ANALYZE {_quote(conn, self.schema)}.{_quote(conn, name)}"))
        return name

    def read_vector(self, location: str, contract: dict, *, bbox=None, mask: BaseGeometry | None = None,
                    srid: int | None = None) -> gpd.GeoDataFrame:
        dtypes: dict[str, str] = contract["dtypes"]
        with self.connection() as conn:
            q = _quote
            cols = ", ".join(q(conn, c) for c in dtypes)
            sql = f"SELECT fid AS __fid, {cols + ', ' if cols else ''}ST_AsEWKB(geometry) AS __wkb FROM {q(conn, location)}"
            params: dict = {}
            if mask is not None:
                sql += " WHERE ST_Intersects(geometry, ST_GeomFromWKB(:mask, :srid))"
                params = {"mask": shapely.to_wkb(mask), "srid": srid or 0}
            elif bbox is not None:
                sql += " WHERE ST_Intersects(geometry, ST_MakeEnvelope(:x0, :y0, :x1, :y1, :srid))"
                params = dict(zip(("x0", "y0", "x1", "y1"), map(float, bbox), strict=True)) | {"srid": srid or 0}
            try:
                rows = conn.execute(sa.text(sql + " ORDER BY fid"), params).fetchall()
            except sa.exc.ProgrammingError as exc:
                raise StoreError(f"{self.display_url}: layer table {location!r} is missing or altered "
                                 f"({str(exc.orig).splitlines()[0]}); remove the layer and add it again") from None
        df = pd.DataFrame.from_records(rows, columns=["__fid", *dtypes, "__wkb"])
        fid = df.pop("__fid").to_numpy(dtype=np.int64)      # 0.. in written order: a subset keeps its positions
        df.index = pd.RangeIndex(len(df)) if not fid.size or fid[-1] == fid.size - 1 else pd.Index(fid)
        geometry = shapely.from_wkb([bytes(b) if b is not None else None for b in df.pop("__wkb")])
        gdf = gpd.GeoDataFrame(df, geometry=geometry)
        return restore(gdf, contract)

    def drop_vector(self, location: str) -> None:
        conn = self._current().conn
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {_quote(conn, self.schema)}.{_quote(conn, location)}"))


def _quote(conn: sa.Connection, ident: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(ident)
