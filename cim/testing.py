"""Assertions and generators for testing code that uses cim (ours and users').

>>> import numpy as np
>>> gdf = random_layer(np.random.default_rng(0), n=5, crs="EPSG:28992")
>>> assert_layer_equal(gdf, gdf.copy())
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

__all__ = ["assert_layer_equal", "random_layer"]


def assert_layer_equal(actual: gpd.GeoDataFrame, expected: gpd.GeoDataFrame) -> None:
    """Columns, dtypes, values (NaN-aware), index, CRS and geometries (with Z) all equal."""
    assert list(actual.columns) == list(expected.columns), f"columns {list(actual.columns)} != {list(expected.columns)}"
    assert actual.geometry.name == expected.geometry.name
    assert actual.crs == expected.crs, f"CRS {actual.crs} != {expected.crs}"
    pd.testing.assert_index_equal(actual.index, expected.index, exact=False)
    for col in expected.columns:
        if col == expected.geometry.name:
            continue
        a, e = actual[col], expected[col]
        if str(e.dtype).startswith("datetime64[ns"):
            e = e.astype(str(e.dtype).replace("[ns", "[us"))
        assert str(a.dtype) == str(e.dtype), f"column {col!r}: dtype {a.dtype} != {e.dtype}"
        pd.testing.assert_series_equal(a.reset_index(drop=True), e.reset_index(drop=True), check_names=False)
    ga, ge = actual.geometry.values, expected.geometry.values
    missing = shapely.is_missing(ge)
    assert (shapely.is_missing(ga) == missing).all(), "missing geometries differ"
    same = shapely.equals_exact(ga[~missing], ge[~missing], tolerance=0)
    assert same.all(), f"geometries differ at rows {np.flatnonzero(~same).tolist()}"
    assert (shapely.has_z(ga[~missing]) == shapely.has_z(ge[~missing])).all(), "Z dimension lost"
    za = shapely.get_coordinates(ga[~missing], include_z=True)
    ze = shapely.get_coordinates(ge[~missing], include_z=True)
    np.testing.assert_array_equal(za, ze)


def random_layer(rng: np.random.Generator, n: int = 50, crs: str = "EPSG:28992",
                 origin: tuple[float, float] = (84000.0, 446000.0)) -> gpd.GeoDataFrame:
    """A GeoDataFrame with a column of every storable dtype, random nulls and mixed 2D/3D, multi-part geometries."""
    x0, y0 = origin
    nulls = rng.random(n) < 0.2

    def nullable(values, dtype):
        arr = pd.array(values, dtype=dtype)
        arr[nulls] = pd.NA
        return arr

    when = pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**15, n), unit="us")
    cols = {
        "i64": rng.integers(-2**62, 2**62, n, dtype=np.int64),
        "i16": rng.integers(-2**15, 2**15, n, dtype=np.int16),
        "f64": np.where(nulls, np.nan, rng.normal(0, 1e6, n)),
        "f32": rng.normal(0, 100, n).astype(np.float32),
        "b": rng.random(n) < 0.5,
        "ni": nullable(rng.integers(-1000, 1000, n), "Int64"),
        "s": pd.array([None if z else "".join(rng.choice(list("abcé中 '\";\\"), rng.integers(0, 12)))
                       for z in nulls], dtype="str"),
        "t": pd.Series(when).where(~nulls).dt.tz_convert("Asia/Shanghai").astype("datetime64[us, Asia/Shanghai]"),
    }
    geoms = []
    for i in range(n):
        cx, cy = x0 + rng.uniform(0, 5000), y0 + rng.uniform(0, 5000)
        kind = i % 5
        z = rng.uniform(-5, 50) if rng.random() < 0.5 else None
        if kind == 0:
            g = shapely.Point(cx, cy) if z is None else shapely.Point(cx, cy, z)
        elif kind == 1:
            pts = rng.uniform(0, 50, (rng.integers(2, 6), 2)) + [cx, cy]
            g = shapely.LineString(pts if z is None else np.column_stack([pts, np.full(len(pts), z)]))
        elif kind == 2:
            g = shapely.box(cx, cy, cx + rng.uniform(1, 40), cy + rng.uniform(1, 40))
            g = g if z is None else shapely.force_3d(g, z)
        elif kind == 3:
            parts = [shapely.box(cx + 60 * k, cy, cx + 60 * k + 20, cy + 20) for k in range(rng.integers(1, 4))]
            g = shapely.MultiPolygon(parts)
            g = g if z is None else shapely.force_3d(g, z)
        else:
            g = None if rng.random() < 0.5 else shapely.MultiPoint(rng.uniform(0, 9, (3, 2)) + [cx, cy])
        geoms.append(g)
    return gpd.GeoDataFrame(cols, geometry=geoms, crs=crs)
