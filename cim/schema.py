"""The store's tables, defined once with SQLAlchemy Core and created on both backends (SQLite and PostgreSQL).

Vector layer contents live in GeoPackage files (embedded) or PostGIS tables; everything else a scene keeps —
the layer catalogue, regions, IoT entities and observations, jobs, keys, audit — is a table in this metadata.
Other modules of `cim` add their tables to `metadata` (e.g. `cim.iot`); `cim.stores` imports them before
creating the schema.

The schema is versioned: `SCHEMA_VERSION` is written to ``cim_meta`` on creation and checked on open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

__all__ = ["SCHEMA_VERSION", "insert_ignore", "layers", "meta", "metadata", "regions"]

SCHEMA_VERSION = 1

metadata = sa.MetaData()

meta = sa.Table(
    "cim_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

layers = sa.Table(
    "cim_layers", metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("cim_level", sa.Integer, nullable=True),
    sa.Column("storage", sa.String(16), nullable=False),     # vector | raster | file
    sa.Column("location", sa.Text, nullable=False),           # table name or path relative to the files root
    sa.Column("crs", sa.Text, nullable=True),
    sa.Column("units", sa.Text, nullable=True),
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("created", sa.String(40), nullable=False),      # ISO 8601 UTC
    sa.Column("tool_version", sa.String(64), nullable=False),
    sa.Column("info", sa.Text, nullable=False),               # JSON: dtypes, bounds, count, attrs, ...
)

regions = sa.Table(
    "cim_regions", metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("level", sa.String(32), nullable=False),
    sa.Column("parent", sa.String(128), sa.ForeignKey("cim_regions.name"), nullable=True),
    sa.Column("code", sa.String(32), nullable=True),         # administrative division code, e.g. 440305
    sa.Column("geometry", sa.LargeBinary, nullable=False),    # WKB, scene CRS
    sa.Column("bbox_xmin", sa.Float, nullable=False),
    sa.Column("bbox_ymin", sa.Float, nullable=False),
    sa.Column("bbox_xmax", sa.Float, nullable=False),
    sa.Column("bbox_ymax", sa.Float, nullable=False),
)


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert rows, silently skipping those whose primary/unique key exists already; return how many were new.

    This is how re-sent data does not duplicate, on both SQLite and PostgreSQL.
    """
    rows = list(rows)
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    key = next(iter(table.primary_key.columns))
    # RETURNING counts what was new on both dialects (executemany row counts are not reliable on PostgreSQL)
    result = conn.execute(insert(table).on_conflict_do_nothing().returning(key), rows)
    return len(result.all())
