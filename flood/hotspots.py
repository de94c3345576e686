"""Low-lying points where rain water ponds: the depressions of the terrain, found by filling them.

A hotspot is a depression (filled minus original elevation of at least ``min_depth``) covering at least
``min_area``; it is reported at its deepest cell with its depth, area and storage volume, deepest first.

>>> import numpy as np, rioxarray, xarray as xr
>>> z = np.full((7, 7), 2.0); z[2:5, 2:5] = 1.5; z[3, 3] = 1.2      # a 3 x 3 pit, 0.5 m deep, 0.8 m at its centre
>>> dem = xr.DataArray(z, coords={"y": np.arange(7.0)[::-1], "x": np.arange(7.0)}, dims=("y", "x"))
>>> h = find_hotspots(dem.rio.write_crs("EPSG:28992"), min_depth=0.1)
>>> len(h), float(h.depth.iloc[0]), float(h.area_m2.iloc[0]), float(h.volume_m3.iloc[0]), h.geometry.iloc[0].wkt
(1, 0.8, 9.0, 4.8, 'POINT (3 3)')
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import xarray as xr
from scipy import ndimage

import hydrology

__all__ = ["find_hotspots"]


def find_hotspots(dem: xr.DataArray, *, min_depth: float = 0.05, min_area: float = 0.0,
                  max_count: int | None = None) -> gpd.GeoDataFrame:
    """Depressions of ``dem`` as points at their deepest cells: ``depth`` (m), ``area_m2``, ``volume_m3``."""
    filled = hydrology.fill_depressions(dem)
    fill = np.nan_to_num((filled - dem).to_numpy(), nan=0.0)
    # a depression is a connected area the filling raises (its shallow rim included, however wide); those at
    # least min_depth deep somewhere are hotspots
    labels, n = ndimage.label(fill > 0, structure=np.ones((3, 3)))
    crs = dem.rio.crs if hasattr(dem, "rio") else None
    index = np.arange(1, n + 1)
    depth = np.asarray(ndimage.maximum(fill, labels, index), dtype=float) if n else np.zeros(0)
    index = index[depth >= min_depth]
    if not len(index):
        return gpd.GeoDataFrame({"depth": [], "area_m2": [], "volume_m3": []}, geometry=[], crs=crs)
    depth = depth[depth >= min_depth]
    xs, ys = dem["x"].to_numpy(), dem["y"].to_numpy()
    cell = abs(float(xs[1] - xs[0])) * abs(float(ys[1] - ys[0]))
    area = ndimage.sum_labels(np.ones_like(fill), labels, index) * cell
    volume = ndimage.sum_labels(fill, labels, index) * cell
    deepest = ndimage.maximum_position(fill, labels, index)
    rows, cols = np.array(deepest).T
    out = gpd.GeoDataFrame({"depth": np.round(depth, 4), "area_m2": area, "volume_m3": np.round(volume, 4)},
                           geometry=gpd.points_from_xy(xs[cols], ys[rows]), crs=crs)
    out = out[out["area_m2"] >= min_area].sort_values("depth", ascending=False, kind="stable").reset_index(drop=True)
    out.index.name = "hotspot"
    return out.iloc[:max_count] if max_count else out
