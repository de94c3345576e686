"""A vector layer's column contract: the dtypes written, so that reading back restores them exactly.

GeoPackage and PostgreSQL each lose something (GPKG: datetimes to milliseconds, nullable integers to float;
both: the time zone of an aware column, pandas' index). We record the contract on write and restore it on read.
Datetimes are kept to the microsecond, the resolution of PostgreSQL timestamps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cim.errors import ValidationError

INDEX_PREFIX = "__index__"
# names the backends reserve (GeoPackage's feature id, PostgreSQL's system columns, our geometry column)
_RESERVED = {"fid", "geometry", "geom", "oid", "tableoid", "xmin", "xmax", "cmin", "cmax", "ctid"}

_INTS = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"}
_NULLABLE = {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "Float32", "Float64", "boolean"}


def column_kind(dtype: str) -> str:
    """Map a recorded dtype string to a storage kind: int, float, bool, str, datetime, datetimetz."""
    if dtype in _INTS or dtype in {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32"}:
        return "int"
    if dtype in {"float32", "float64", "Float32", "Float64"}:
        return "float"
    if dtype in {"bool", "boolean"}:
        return "bool"
    if dtype.startswith("datetime64"):
        return "datetimetz" if "," in dtype else "datetime"
    return "str"


def capture(df: pd.DataFrame, geometry: str, where: str) -> tuple[pd.DataFrame, dict]:
    """Check the columns of ``df`` and return (a frame with a plain RangeIndex, the contract).

    The index, if it carries information, becomes ordinary columns named ``__index__<name>``.
    """
    index_names: list[str] = []
    if not (isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1
            and df.index.name is None):
        names = [n if n is not None else f"level_{i}" for i, n in enumerate(df.index.names)]
        index_names = [INDEX_PREFIX + str(n) for n in names]
        df = df.copy()
        df.index = df.index.set_names(index_names)
        df = df.reset_index()
    dtypes: dict[str, str] = {}
    for col in df.columns:
        if col == geometry:
            continue
        if not isinstance(col, str):
            raise ValidationError(f"{where}: column names must be strings, got {col!r}; rename it")
        s = df[col]
        dt = str(s.dtype)
        if dt.startswith("datetime64"):
            dt = _normalise_datetime(dt)
        elif dt in {"str", "string", "object"}:
            types = s.dropna().map(type) if dt == "object" else pd.Series([], dtype=object)
            bad = types[~types.map(lambda t: issubclass(t, str))]
            if len(bad):
                raise ValidationError(
                    f"{where}: column {col!r} holds {bad.iloc[0].__name__} values; only str, numbers, bools and "
                    "datetimes can be stored: convert it (e.g. to JSON text with .map(json.dumps))")
            dt = "str"
        elif not (dt in _INTS or dt in _NULLABLE or dt in {"float32", "float64", "bool"}):
            raise ValidationError(f"{where}: column {col!r} has dtype {dt}, which a store cannot keep exactly; "
                                  "convert it to int, float, bool, str or datetime")
        dtypes[col] = dt
    columns = [c for c in df.columns if c != geometry]
    renames = {c: f"{c}__" for c in columns if c.lower() in _RESERVED}
    if renames:
        df = df.rename(columns=renames)
        dtypes = {renames.get(c, c): dt for c, dt in dtypes.items()}
    return df, {"dtypes": dtypes, "index": index_names, "columns": [renames.get(c, c) for c in columns],
                "renamed": {v: k for k, v in renames.items()}}


def _normalise_datetime(dt: str) -> str:
    # keep at most microseconds: that is what PostgreSQL (and our GPKG encoding) hold
    return dt.replace("[ns", "[us")


def encode_datetime_text(s: pd.Series) -> pd.Series:
    """Datetimes as ISO 8601 text with microseconds (UTC 'Z' for aware columns); NaT as None."""
    aware = getattr(s.dt, "tz", None) is not None
    if aware:
        s = s.dt.tz_convert("UTC")
    out = s.dt.strftime("%Y-%m-%dT%H:%M:%S.%f" + ("Z" if aware else ""))
    return out.astype(object).where(s.notna(), None)


def restore(df: pd.DataFrame, contract: dict) -> pd.DataFrame:
    """Cast columns back to the recorded dtypes and rebuild the index; columns in their original order."""
    dtypes: dict[str, str] = contract["dtypes"]
    for col, dt in dtypes.items():
        s = df[col]
        kind = column_kind(dt)
        if kind == "datetimetz":
            tz = dt.split(",", 1)[1].rstrip("]").strip()
            unit = dt[len("datetime64["):].split(",")[0]
            df[col] = pd.to_datetime(s, utc=True, format="ISO8601").dt.tz_convert(tz).astype(f"datetime64[{unit}, {tz}]")
        elif kind == "datetime":
            parsed = pd.to_datetime(s, format="ISO8601")
            if getattr(parsed.dt, "tz", None) is not None:
                parsed = parsed.dt.tz_localize(None)
            df[col] = parsed.astype(dt)
        elif kind == "str":
            df[col] = s.astype(object).where(s.notna(), None).astype("str" if dt == "str" else dt)
        elif dt in {"bool"}:
            df[col] = s.astype(bool)
        elif dt in _INTS:
            df[col] = s.astype(dt)
        else:
            df[col] = s.astype(dt)
    order = [c for c in contract["columns"] if c in df.columns] + [c for c in df.columns if c not in dtypes]
    df = df[order]
    df = df.rename(columns=contract.get("renamed") or {})
    index = contract.get("index") or []
    if index:
        df = df.set_index(index)
        df.index = df.index.set_names([n[len(INDEX_PREFIX):] if not n.startswith(INDEX_PREFIX + "level_") else None
                                       for n in index])
    return df


def numpy_to_python(s: pd.Series, kind: str) -> list:
    """Column values as Python objects for a database driver (None for missing)."""
    if kind in {"datetime", "datetimetz"}:
        return [None if pd.isna(v) else v.to_pydatetime() for v in s]
    if kind == "float":
        return [None if v != v else float(v) for v in s.to_numpy(dtype=np.float64, na_value=np.nan)]
    values = s.astype(object).where(s.notna(), None).tolist()
    if kind == "int":
        return [None if v is None else int(v) for v in values]
    if kind == "bool":
        return [None if v is None else bool(v) for v in values]
    return values
