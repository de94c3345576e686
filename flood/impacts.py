"""Who floods, how deep and when: warnings per road, building, low-lying point and region, and BIM impacts.

Pure functions over a `simulate` result (`xarray.Dataset`), the DEM and GeoDataFrames in the DEM's CRS; no
scene needed (`flood.forecast` feeds them from one). A feature's cells are the cells whose centres lie in it;
lines and points use the cells within half a cell of them, and a feature smaller than a cell takes the cell under
its representative point. Buildings are judged by the water against their walls: the ring of cells within
``ring`` metres outside the footprint.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr

from flood.errors import FloodValueError
from flood.levels import WarningLevels, first_exceedance

__all__ = ["REGION_COLUMNS", "WARNING_COLUMNS", "CellIndex", "bim_impacts", "empty_warnings", "feature_warnings",
           "region_summary"]

#: the columns of `feature_warnings` (besides geometry) and their dtypes, also those of an empty table
WARNING_COLUMNS: dict[str, str] = {
    "object_type": "str", "object_id": "str", "name": "str", "max_depth": "float64", "level": "uint8",
    "level_name": "str", "time_first_warning": "float64", "time_level": "float64", "water_level": "float64",
    "flooded_fraction": "float64", "flooded_length": "float64"}

#: the columns of `region_summary` (besides the region's own name/parent and geometry) and their dtypes
REGION_COLUMNS: dict[str, str] = {
    "level": "int64", "level_name": "str", "max_depth": "float64", "flooded_area_m2": "float64",
    "time_first_warning": "float64", "roads_flooded": "int64", "road_length_flooded_m": "float64",
    "buildings_affected": "int64", "hotspots_warned": "int64"}


def empty_warnings(crs=None) -> gpd.GeoDataFrame:
    """A warnings table with no rows and the columns and dtypes of `feature_warnings`.

    >>> empty_warnings("EPSG:28992")["time_first_warning"].dtype
    dtype('float64')
    """
    return gpd.GeoDataFrame({c: pd.Series(dtype=d) for c, d in WARNING_COLUMNS.items()},
                            geometry=gpd.GeoSeries([], crs=crs), crs=crs)


@dataclass
class CellIndex:
    """Cell centres of a grid in a spatial index, to find the cells of many features at once."""

    x: np.ndarray
    y: np.ndarray
    dx: float
    tree: shapely.STRtree

    @classmethod
    def of(cls, grid: xr.DataArray) -> CellIndex:
        xs, ys = grid["x"].to_numpy(), grid["y"].to_numpy()
        X, Y = np.meshgrid(xs, ys)
        return cls(xs, ys, float(abs(xs[1] - xs[0])), shapely.STRtree(shapely.points(X.ravel(), Y.ravel())))

    def pairs(self, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(feature index, flat cell index) for every cell of every feature, sorted by feature.

        A polygon has the cells whose centre lies in it, a centre on its edge going to one side only (as if
        nudged by a billionth of a cell towards +x, +y), so that polygons sharing an edge share no cell and miss
        none; a line or point has the cells whose centre is within half a cell of it (a road along cell edges
        has both rows)."""
        geoms = np.asarray(geoms, dtype=object)
        polygonal = np.isin(shapely.get_type_id(geoms), [3, 6])
        eps = 1e-9 * self.dx
        feat_p, cell_p = self.tree.query(shapely.transform(geoms[polygonal], lambda c: c - eps),
                                         predicate="contains_properly")
        feat_l, cell_l = self.tree.query(geoms[~polygonal], predicate="dwithin", distance=self.dx / 2)
        feat = np.concatenate([np.flatnonzero(polygonal)[feat_p], np.flatnonzero(~polygonal)[feat_l]])
        cell = np.concatenate([cell_p, cell_l])
        missing = np.setdiff1d(np.arange(len(geoms)), feat)
        missing = missing[~shapely.is_empty(geoms[missing]) & ~shapely.is_missing(geoms[missing])]
        if len(missing):                                   # smaller than a cell: the cell under it
            pts = shapely.point_on_surface(geoms[missing])
            i = np.abs(self.y[:, None] - shapely.get_y(pts)[None, :]).argmin(axis=0)
            j = np.abs(self.x[:, None] - shapely.get_x(pts)[None, :]).argmin(axis=0)
            feat = np.concatenate([feat, missing])
            cell = np.concatenate([cell, i * len(self.x) + j])
        order = np.argsort(feat, kind="stable")
        return feat[order], cell[order]


def _group_reduce(feat: np.ndarray, values: np.ndarray, n: int, how: str) -> np.ndarray:
    out = np.full(n, np.nan)
    ok = ~np.isnan(values)
    if how == "max":
        np.fmax.at(out, feat[ok], values[ok])
    else:
        np.fmin.at(out, feat[ok], values[ok])
    return out


def feature_warnings(features: gpd.GeoDataFrame, ds: xr.Dataset, dem: xr.DataArray, *, object_type: str,
                     levels: WarningLevels | None = None, ring: float | None = None,
                     cells: CellIndex | None = None, name_column: str | None = None) -> gpd.GeoDataFrame:
    """Warning level, maximum depth and timing for each feature.

    Returns the features' geometry with ``object_type, object_id, name, max_depth, level, level_name,
    time_first_warning`` (s, first time any of its cells reached the lowest threshold), ``time_level`` (s, when
    its reported level was first reached), ``water_level`` (m, bed + depth where deepest), ``flooded_fraction``
    (share of its cells at or above the lowest threshold) and ``flooded_length`` (m; lines: their length, polygons:
    the long side of their minimum rotated rectangle, times the flooded fraction).
    """
    levels = levels or WarningLevels()
    if not len(features):
        return empty_warnings(features.crs)
    cells = cells or CellIndex.of(ds["max_depth"])
    geoms = features.geometry.to_numpy()
    sample = geoms
    if ring is not None:
        sample = shapely.difference(shapely.buffer(geoms, ring, quad_segs=2), geoms)
    feat, cell = cells.pairs(sample)
    n = len(features)
    hmax = ds["max_depth"].to_numpy().ravel()
    bed = dem.to_numpy().ravel()
    depth_at = np.nan_to_num(hmax[cell], nan=0.0)
    max_depth = np.nan_to_num(_group_reduce(feat, depth_at, n, "max"), nan=0.0)
    level = levels.classify(max_depth)
    if "depth" in ds and ds["depth"].sizes.get("time", 0) > 1:
        depth_series = ds["depth"].to_numpy().reshape(ds["depth"].sizes["time"], -1)[:, np.unique(cell)]
        firsts = first_exceedance(depth_series, ds["time"].to_numpy().astype(np.float64), levels.thresholds)
        lookup = {c: k for k, c in enumerate(np.unique(cell))}
        idx = np.fromiter((lookup[c] for c in cell), dtype=np.int64, count=len(cell))
        first_by_level = np.stack([_group_reduce(feat, firsts[k][idx], n, "min") for k in range(len(levels.thresholds))])
    else:
        first_by_level = np.full((len(levels.thresholds), n), np.nan)
    time_level = np.array([first_by_level[lv - 1, i] if lv else np.nan for i, lv in enumerate(level)])
    if "time_of_max" in ds:
        # a level reached between two depth maps: its deepest cell reached it at the latest at its time of max
        tmax = ds["time_of_max"].to_numpy().ravel()[cell]
        at_peak = _group_reduce(feat, np.where(depth_at >= max_depth[feat] - 1e-9, tmax, np.nan), n, "min")
        late = (level > 0) & np.isnan(time_level)
        time_level[late] = at_peak[late]
        first = first_by_level[0]
        first[(level > 0) & np.isnan(first)] = at_peak[(level > 0) & np.isnan(first)]
    # water level where the feature is deepest
    surface = np.where(depth_at > 0, bed[cell] + depth_at, np.nan)
    water_level = _group_reduce(feat, surface, n, "max")
    flooded = (depth_at >= levels.thresholds[0]).astype(np.float64)
    counts = np.bincount(feat, minlength=n).astype(np.float64)
    fraction = np.divide(np.bincount(feat, weights=flooded, minlength=n), counts, out=np.zeros(n), where=counts > 0)
    out = gpd.GeoDataFrame({
        "object_type": object_type,
        "object_id": [str(v) for v in features.index],
        "name": features[name_column].astype(str).to_numpy() if name_column and name_column in features else "",
        "max_depth": max_depth.round(4),
        "level": level,
        "level_name": [levels.name(int(v)) for v in level],
        "time_first_warning": first_by_level[0],
        "time_level": time_level,
        "water_level": water_level,
        "flooded_fraction": fraction,
        "flooded_length": fraction * _feature_length(geoms),
    }, geometry=geoms, crs=features.crs)
    return out


def _feature_length(geoms: np.ndarray) -> np.ndarray:
    """Length of lines; for polygons (road surfaces), the long side of the minimum rotated rectangle."""
    lengths = shapely.length(geoms)
    poly = np.isin(shapely.get_type_id(geoms), [3, 6])
    if poly.any():
        rect = shapely.oriented_envelope(geoms[poly])
        ring = shapely.get_coordinates(shapely.get_exterior_ring(rect), return_index=True)
        coords, index = ring
        sides = []
        for k in range(int(poly.sum())):
            c = coords[index == k]
            sides.append(np.hypot(*np.diff(c, axis=0).T).max() if len(c) > 1 else 0.0)
        lengths = lengths.copy()
        lengths[poly] = sides
    return lengths


def region_summary(regions: gpd.GeoDataFrame, warnings: gpd.GeoDataFrame, ds: xr.Dataset,
                   levels: WarningLevels | None = None) -> gpd.GeoDataFrame:
    """Per region: highest level, earliest warning, flooded area, flooded road length, buildings and hotspots.

    ``warnings`` is the concatenation of `feature_warnings` results; a feature counts in every region its
    representative point lies in or on (regions nest: a district counts what its subdistricts count; a road along
    the border of two districts counts in both, as both must act). No regions give
    an empty table with the same columns; no warnings (nothing to warn about) give regions with nothing warned.
    """
    levels = levels or WarningLevels()
    if not len(warnings):
        warnings = empty_warnings(regions.crs)
    cells = CellIndex.of(ds["max_depth"])
    feat, cell = cells.pairs(regions.geometry.to_numpy())
    hmax = np.nan_to_num(ds["max_depth"].to_numpy().ravel(), nan=0.0)
    wet = (hmax[cell] >= levels.thresholds[0]).astype(np.float64)
    area = np.bincount(feat, weights=wet, minlength=len(regions)) * cells.dx ** 2
    maxd = np.nan_to_num(_group_reduce(feat, hmax[cell], len(regions), "max"), nan=0.0)
    pts = shapely.point_on_surface(warnings.geometry.to_numpy())
    rows = []
    for k, geom in enumerate(regions.geometry.to_numpy()):
        inside = shapely.covers(geom, pts) & (warnings["level"].to_numpy() > 0)
        w = warnings[inside]
        lv = int(max(levels.classify(maxd[k]), w["level"].max() if len(w) else 0))
        rows.append({
            "level": lv, "level_name": levels.name(lv), "max_depth": round(float(maxd[k]), 4),
            "flooded_area_m2": float(area[k]),
            "time_first_warning": float(np.nanmin(w["time_first_warning"])) if len(w) else np.nan,
            "roads_flooded": int((w["object_type"] == "road").sum()),
            "road_length_flooded_m": float(w.loc[w["object_type"] == "road", "flooded_length"].sum()),
            "buildings_affected": int((w["object_type"] == "building").sum()),
            "hotspots_warned": int((w["object_type"] == "hotspot").sum()),
        })
    table = pd.DataFrame(rows, index=regions.index, columns=list(REGION_COLUMNS)).astype(REGION_COLUMNS)
    out = gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(regions.geometry.to_numpy(), index=regions.index,
                                                         crs=regions.crs), crs=regions.crs)
    for col in ("name", "level_name_region", "parent"):
        if col in regions:
            out.insert(0, f"region_{col}" if col != "name" else "region", regions[col].to_numpy())
    return out


def bim_impacts(entrances: pd.DataFrame, storeys: pd.DataFrame, ds: xr.Dataset, dem: xr.DataArray, *,
                building_geometry: shapely.Geometry, ring: float,
                spaces: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Which doors, storeys and spaces (rooms) of a BIM building lie below the water next to it, and from when.

    ``entrances`` needs ``guid, name, storey, sill_elevation, x, y``; ``storeys`` needs ``name, elevation``;
    ``spaces`` needs ``guid, name, storey, floor_elevation``. The water level at a door is the highest water
    surface (bed + depth) in the cells outside the building within ``ring`` of it; a storey or a space is reached
    when the highest water level around the building passes its floor. Returns doors, storeys and spaces.
    """
    if "depth" not in ds or ds["depth"].sizes.get("time", 0) < 2:
        raise FloodValueError("bim_impacts needs the depth time series: run simulate with an output_interval")
    times = ds["time"].to_numpy().astype(np.float64)
    depth = ds["depth"].to_numpy()
    bed = dem.to_numpy()
    cells = CellIndex.of(ds["max_depth"])
    ring_geom = shapely.difference(shapely.buffer(building_geometry, ring), building_geometry)
    _, ring_cells = cells.pairs(np.array([ring_geom], dtype=object))
    ring_depth = depth.reshape(len(times), -1)[:, ring_cells]
    ring_levels = np.where(ring_depth > 0, bed.ravel()[ring_cells][None, :] + ring_depth, -np.inf)
    ring_series = ring_levels.max(axis=1, initial=-np.inf)

    def first_above(series: np.ndarray, elevation: float) -> float:
        hit = series > elevation
        return float(times[hit.argmax()]) if hit.any() else np.nan

    door_rows = []
    for e in entrances.itertuples():
        # the cells outside the building within `ring` of the door
        near = shapely.difference(shapely.buffer(shapely.Point(e.x, e.y), ring), building_geometry)
        _, door_cells = cells.pairs(np.array([near], dtype=object))
        d = depth.reshape(len(times), -1)[:, door_cells]
        series = np.where(d > 0, bed.ravel()[door_cells][None, :] + d, -np.inf).max(axis=1, initial=-np.inf)
        peak = float(series.max())
        door_rows.append({"guid": e.guid, "name": e.name, "storey": e.storey, "sill_elevation": e.sill_elevation,
                          "max_water_level": peak if np.isfinite(peak) else np.nan,
                          "below_water": bool(peak > e.sill_elevation),
                          "depth_over_sill": max(0.0, peak - e.sill_elevation) if np.isfinite(peak) else 0.0,
                          "from_time": first_above(series, e.sill_elevation)})
    peak = float(ring_series.max())
    level = peak if np.isfinite(peak) else np.nan

    def reached(floor: float) -> dict:
        return {"max_water_level": level, "below_water": bool(peak > floor),
                "depth_over_floor": max(0.0, peak - floor) if np.isfinite(peak) else 0.0,
                "from_time": first_above(ring_series, floor)}

    storey_rows = [{"storey": s.name, "elevation": s.elevation, **reached(s.elevation)} for s in storeys.itertuples()]
    space_rows = [{"guid": r.guid, "name": r.name, "storey": r.storey, "floor_elevation": r.floor_elevation,
                   **reached(r.floor_elevation)} for r in (spaces if spaces is not None else _NO_SPACES).itertuples()]
    return pd.DataFrame(door_rows), pd.DataFrame(storey_rows), pd.DataFrame(
        space_rows, columns=[*_NO_SPACES.columns, "max_water_level", "below_water", "depth_over_floor", "from_time"])


_NO_SPACES = pd.DataFrame(columns=["guid", "name", "storey", "floor_elevation"])
