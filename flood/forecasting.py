"""Flood forecasts for a scene: the model fed from the city model, with warnings and impacts written back.

This is the scene-aware layer of `flood` (with `flood.gauges`, the modules here that import `cim`). From the
scene it takes the terrain (a raster layer of kind ``terrain``), buildings (kind ``buildings``: blocked or raised
cells), land-surface roughness by layer kind (roads, water, vegetation), roads and hotspots to warn about, the
administrative regions, BIM models (doors and storeys) and rain gauges (`flood.gauges`); it runs
`flood.simulate` and returns a `Forecast`.

>>> import flood
>>> sorted(MANNING_BY_KIND)
['land_use', 'roads', 'vegetation', 'water']
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from rasterio import features as rio_features

import cim
from flood.gauges import gauge_rainfall
from flood.impacts import bim_impacts, empty_warnings, feature_warnings, region_summary
from flood.levels import WarningLevels
from flood.model import Scheme, simulate

__all__ = ["DEFAULT_BUILDING_HEIGHT", "MANNING_BY_KIND", "SURFACE_COLUMNS", "Forecast", "building_heights",
           "check_surfaces", "forecast", "water_level_skill"]

log = logging.getLogger(__name__)

#: Manning's n (s m^-1/3) by layer kind, painted in this order over the default (Chow 1959; urban 2D practice).
MANNING_BY_KIND: dict[str, float] = {"land_use": 0.035, "vegetation": 0.06, "water": 0.025, "roads": 0.016}
MANNING_DEFAULT = 0.035
#: metres a building without a known height is raised by, with ``buildings="raised"`` (about three storeys)
DEFAULT_BUILDING_HEIGHT = 10.0

#: what a surface change (a polygon of ``surfaces=``) may set; each feature sets one or more, the rest stay
SURFACE_COLUMNS: dict[str, str] = {
    "manning": "Manning's n (s m^-1/3, 0 < n <= 1) replacing the land-surface roughness",
    "ground_delta": "metres added to the ground (negative lowers it)",
    "ground_level": "the ground's new elevation (m, the terrain's datum)",
    "imperviousness": "share 0..1 of the soil's infiltration sealed (needs an infiltration rate)",
}
#: names people try for them
_SURFACE_ALIASES = {"ground": "ground_delta or ground_level", "dz": "ground_delta", "elevation": "ground_level",
                    "roughness": "manning", "mannings_n": "manning", "impervious": "imperviousness"}


@dataclass
class Forecast:
    """What a forecast gives: the model result, warnings per object, summaries per region and BIM impacts."""

    name: str
    dataset: xr.Dataset
    warnings: gpd.GeoDataFrame
    regions: gpd.GeoDataFrame
    dem: xr.DataArray
    levels: WarningLevels
    start: pd.Timestamp | None = None
    bim: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    skill: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def impacts(self) -> gpd.GeoDataFrame:
        """Flooded road length, buildings affected and hotspots warned, per region."""
        return self.regions

    def summary(self) -> str:
        ds, w = self.dataset, self.warnings
        warned = w[w["level"] > 0]
        lines = [f"forecast {self.name!r}: {ds.attrs['steps']} steps, {ds.attrs['wall_seconds']:.1f} s wall "
                 f"for {float(ds.attrs.get('duration', ds['time'][-1])):.0f} s simulated, "
                 f"mass error {ds.attrs['mass_error']:.1e}",
                 f"max depth {float(ds['max_depth'].max()):.2f} m; warnings: " +
                 (", ".join(f"{n} {k}" for k, n in warned["level_name"].value_counts().items()) or "none")]
        for r in self.regions.itertuples():
            lines.append(f"  {getattr(r, 'region', r.Index)}: {r.level_name}, {r.road_length_flooded_m:.0f} m of road, "
                         f"{r.buildings_affected} buildings")
        lines += self.notes
        return "\n".join(lines)

    def to_files(self, out_dir: str | Path) -> dict[str, Path]:
        """Write max depth, arrival time and time of max as GeoTIFF, warnings and regions as GeoJSON (CRS84).

        Always the same five files: with nothing to warn about or no regions in the scene, the warnings or region
        summary is an empty FeatureCollection (GeoJSON carries no columns without features).
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for var in ("max_depth", "arrival_time", "time_of_max"):
            p = out / f"{self.name}_{var}.tif"
            self.dataset[var].rio.to_raster(p, driver="COG", compress="DEFLATE")
            paths[var] = p
        for label, frame in (("warnings", self.warnings), ("regions", self.regions)):
            p = out / f"{self.name}_{label}.geojson"
            frame.to_crs("OGC:CRS84").to_file(p, driver="GeoJSON")
            paths[label] = p
        return paths


def forecast(scene: cim.Scene, *, rainfall: Any, duration: float, name: str = "forecast",
             dem: str | None = None, resolution: float | None = None, window: tuple[Any, Any] | None = None,
             drainage: Any = None, infiltration: Any = None, boundary: Any = "closed",
             levels: WarningLevels | dict[str, float] | None = None, output_interval: float = 60.0,
             planned: gpd.GeoDataFrame | None = None, surfaces: gpd.GeoDataFrame | None = None,
             scheme: Scheme = "inertial", buildings: Literal["blocked", "raised"] = "blocked",
             gauges: Sequence[int | str] | None = None,
             gauge_method: Literal["idw", "nearest"] = "idw", write: bool = True,
             progress: Callable[[float, float], None] | None = None) -> Forecast:
    """Run a flood forecast on a scene and (with ``write``) store its results as layers ``flood_<name>_*``.

    ``rainfall``: mm/h as a number, a 1-D DataArray over time, a (time, y, x) grid with a CRS, the name of a
    rainfall layer of the scene, or ``"gauges"`` for the scene's rain-gauge Datastreams within ``window``
    (all of them, or those named by id or name in ``gauges``; several are gridded over the model domain by
    ``gauge_method``, ``"idw"`` or ``"nearest"``: see :func:`flood.gauge_rainfall`).
    ``resolution`` coarsens the terrain (block mean) to cells of that size in metres; ``drainage`` and
    ``infiltration`` are loss rates in mm/h (sewer capacity: `hydrology.sewer_capacity` gives a network's from
    its design return period; soil), numbers or grids aligned with the terrain
    (``flood.terrain(scene, dem, resolution)`` gives that grid); ``infiltration`` may also be a soil model with
    state, :class:`flood.GreenAmpt`, :class:`flood.Horton` or :class:`flood.SCSCurveNumber`, with numbers or such
    grids.
    ``buildings``: ``"blocked"`` (the default: their cells are walls, rain on them is not modelled) or
    ``"raised"`` (their cells are raised by the building's height, so roofs shed their rain around them; heights
    from the ``height`` column, else ``roof_z - ground_z``, else :data:`DEFAULT_BUILDING_HEIGHT`, noted).
    ``planned`` adds buildings that are not in the scene (a planning scenario: footprints in any CRS).
    ``surfaces`` changes the ground under polygons (any CRS; later polygons over earlier ones), each with one or
    more of the columns of :data:`SURFACE_COLUMNS`: ``manning`` (a new roughness), ``ground_delta`` (metres
    added) or ``ground_level`` (a new elevation), ``imperviousness`` (applied to ``infiltration``, which must then
    be a rate); a missing or empty value leaves that property alone.
    ``scheme`` is the solver of `flood.simulate`: ``"inertial"`` (local inertial, the default, right for pluvial
    flooding: slow, shallow, subcritical flow) or ``"fv1"`` (first-order finite volume with a Riemann solver, for
    dam breaks and fast, supercritical flow).

    A curve-number grid from the scene's land-cover and soil-group rasters (TR-55 classes by land-cover code),
    matched to the model grid, paved cells where either is unknown::

        from rasterio.enums import Resampling

        grid = flood.terrain(scene, resolution=2.0)
        cover = scene.layer("landcover").rio.reproject_match(grid, resampling=Resampling.nearest)
        soil = scene.layer("soil_groups").rio.reproject_match(grid, resampling=Resampling.nearest)
        cn = hydrology.curve_number_grid(cover, soil, {1: "impervious", 2: "residential_1_4_acre",
                                                       3: "open_space_good"})
        fc = flood.forecast(scene, rainfall=storm, duration=5400, resolution=2.0,
                            infiltration=flood.SCSCurveNumber(cn.fillna(98.0)))
    """
    lv = levels if isinstance(levels, WarningLevels) else WarningLevels.from_mapping(levels) if levels else WarningLevels()
    grid = terrain(scene, dem, resolution)
    manning = roughness(scene, grid)
    if surfaces is not None and len(surfaces):
        surfaces = check_surfaces(surfaces, infiltration=infiltration).to_crs(scene.crs)
        grid, manning, infiltration = _apply_surfaces(surfaces, grid, manning, infiltration)
    dx = float(abs(grid.x[1] - grid.x[0]))
    if buildings not in ("blocked", "raised"):
        raise cim.ValidationError(f"buildings={buildings!r}: choose 'blocked' (walls) or 'raised' (by height)")
    mode, buildings = buildings, _layers_of(scene, "buildings", grid)
    if planned is not None and len(planned):
        extra = gpd.GeoDataFrame(planned, crs=planned.crs).to_crs(scene.crs)
        extra = extra.set_geometry(shapely.force_2d(extra.geometry.to_numpy()), crs=scene.crs)
        extra.index = [f"planned {i}" for i in extra.index]
        buildings = gpd.GeoDataFrame(pd.concat([buildings, extra]), crs=scene.crs)
    notes = []
    blocked = _burn(buildings, grid) if len(buildings) and mode == "blocked" else None
    ground, roofs = grid, None
    if len(buildings) and mode == "raised":
        grid, notes = _raise(grid, buildings)
        roofs = grid.to_numpy() > ground.to_numpy()         # the cells the raise lifted
    rain = _rainfall(scene, rainfall, window, grid, gauges, gauge_method)
    start = None
    if isinstance(rain, xr.DataArray) and "time" in rain.dims and np.issubdtype(rain["time"].dtype, np.datetime64):
        start = pd.Timestamp(rain["time"].to_numpy()[0], tz="UTC")
    hotspots = _layers_of(scene, "hotspots", grid)
    labels = hotspots["name"].astype(str) if "name" in hotspots else [f"hotspot {i}" for i in hotspots.index]
    points = {label: (g.x, g.y) for label, g in zip(labels, hotspots.geometry.representative_point(), strict=True)} \
        if len(hotspots) else None
    ds = simulate(grid, rainfall=rain, duration=duration, manning=manning, scheme=scheme,
                  blocked=blocked, drainage=drainage,
                  infiltration=infiltration, boundary=boundary, output_interval=output_interval, points=points,
                  progress=progress)
    ds.attrs["duration"] = float(duration)
    # impacts are about the ground: raised buildings' roofs (their rain film included) are not water at a wall
    on_ground = ds if roofs is None else _off_roofs(ds, roofs)
    parts = []
    roads = _layers_of(scene, "roads", grid)
    for gdf, kind, ring in ((roads, "road", None), (buildings, "building", 1.5 * dx), (hotspots, "hotspot", None)):
        if len(gdf):
            name_col = next((c for c in ("name", "naam", "identificatie", "id") if c in gdf), None)
            parts.append(feature_warnings(gdf, on_ground, ground, object_type=kind, levels=lv, ring=ring,
                                          name_column=name_col))
    warnings = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=grid.rio.crs) if parts else \
        empty_warnings(grid.rio.crs)
    # a scene without regions gets an empty summary with the same columns (written as an empty file)
    summary = region_summary(scene.regions, warnings, on_ground, lv)
    fc = Forecast(name, ds, warnings, summary, grid, lv, start, notes=notes)
    _bim(scene, fc, on_ground, ground, ring=1.5 * dx)
    fc.skill = water_level_skill(scene, fc, hotspots) if len(hotspots) else None
    if start is not None:
        for col in ("time_first_warning", "time_level"):
            fc.warnings[col + "_utc"] = start + pd.to_timedelta(fc.warnings[col], unit="s")
    if write:
        _write_back(scene, fc)
    return fc


def terrain(scene: cim.Scene, name: str | None = None, resolution: float | None = None) -> xr.DataArray:
    """The scene's terrain raster (the first of kind ``terrain`` unless named), optionally coarsened."""
    if name is None:
        names = [i.name for i in scene.layers if i.kind == "terrain" and i.storage == "raster"]
        if not names:
            raise cim.ValidationError(f"scene {scene.name!r} has no terrain raster; add a DEM layer of kind 'terrain' "
                                      "(e.g. `cim ingest` of a GeoTIFF, or the DEM derived from a CityJSON model)")
        name = names[0]
    dem = scene.layer(name).astype("float64")
    nodata = dem.rio.nodata
    if nodata is not None and not np.isnan(nodata):
        dem = dem.where(dem != nodata)
    dx = float(abs(dem.x[1] - dem.x[0]))
    if resolution is not None and resolution > dx * 1.0001:
        factor = round(resolution / dx)
        if abs(factor * dx - resolution) > 1e-6 * resolution:
            raise cim.ValidationError(f"resolution {resolution} m is not a multiple of the terrain's {dx} m cells")
        dem = dem.coarsen(x=factor, y=factor, boundary="trim").mean()
        # rioxarray would keep the fine grid's cached GeoTransform: recompute it from the new coordinates
        dem = dem.rio.write_transform(dem.rio.transform(recalc=True))
    return dem.rio.write_crs(scene.crs)


def roughness(scene: cim.Scene, grid: xr.DataArray) -> xr.DataArray:
    """Manning's n per cell from the land-surface layers of the scene (MANNING_BY_KIND over MANNING_DEFAULT)."""
    n = np.full(grid.shape, MANNING_DEFAULT, dtype=np.float64)
    for kind, value in MANNING_BY_KIND.items():
        gdf = _layers_of(scene, kind, grid)
        if len(gdf):
            n[_burn(gdf, grid)] = value
    return grid.copy(data=n)


def check_surfaces(surfaces: gpd.GeoDataFrame, *, infiltration: Any = None) -> gpd.GeoDataFrame:
    """Check surface changes (polygons with columns of :data:`SURFACE_COLUMNS`); return them with numeric columns.

    Raises `cim.ValidationError` naming the property and what fixes it.

    >>> from shapely import box
    >>> s = gpd.GeoDataFrame({"manning": [0.1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:28992")
    >>> check_surfaces(s)["manning"].tolist()
    [0.1]
    """
    hint = next((c for c in surfaces.columns if c in _SURFACE_ALIASES), None)
    if hint is not None:
        raise cim.ValidationError(f"surfaces: unknown property {hint!r}; did you mean {_SURFACE_ALIASES[hint]}? "
                                  f"(surfaces may set {', '.join(map(repr, SURFACE_COLUMNS))})")
    kinds = surfaces.geometry.geom_type
    if surfaces.geometry.isna().any() or not kinds.isin(["Polygon", "MultiPolygon"]).all():
        raise cim.ValidationError("surfaces: every feature needs a Polygon or MultiPolygon geometry")
    out = surfaces.copy()
    given = [c for c in SURFACE_COLUMNS if c in out.columns]
    for c in given:
        values = pd.to_numeric(out[c], errors="coerce")
        if (values.isna() & out[c].notna()).any():
            raise cim.ValidationError(f"surfaces: {c!r} must be a number in every feature that has it")
        out[c] = values.astype("float64")
    if not given or out[given].isna().all(axis=1).any():
        raise cim.ValidationError("surfaces: every feature needs at least one of "
                                  f"{', '.join(map(repr, SURFACE_COLUMNS))}")
    checks = {"manning": (lambda v: (v > 0) & (v <= 1), "between 0 (exclusive) and 1"),
              "ground_delta": (np.isfinite, "a finite number of metres"),
              "ground_level": (np.isfinite, "a finite elevation in metres"),
              "imperviousness": (lambda v: (v >= 0) & (v <= 1), "a number between 0 and 1")}
    for c in given:
        v = out[c].dropna().to_numpy()
        ok, what = checks[c]
        if not np.all(ok(v)):
            raise cim.ValidationError(f"surfaces: {c!r} must be {what} in every feature that has it")
    if "ground_delta" in given and "ground_level" in given and \
            (out["ground_delta"].notna() & out["ground_level"].notna()).any():
        raise cim.ValidationError("surfaces: give a feature either 'ground_delta' or 'ground_level', not both")
    if "imperviousness" in given and out["imperviousness"].notna().any() and \
            (infiltration is None or not isinstance(infiltration, int | float | np.number | xr.DataArray)):
        raise cim.ValidationError("surfaces with an imperviousness change the soil's infiltration: give the "
                                  "baseline infiltration rate (mm/h, a number or a grid) as infiltration=")
    return out


def _apply_surfaces(surfaces: gpd.GeoDataFrame, grid: xr.DataArray, manning: xr.DataArray,
                    infiltration: Any) -> tuple[xr.DataArray, xr.DataArray, Any]:
    """Terrain, roughness and infiltration rate with checked surface changes (in the grid's CRS) painted in."""
    painted = {c: _paint(surfaces, c, grid) for c in SURFACE_COLUMNS if c in surfaces.columns}
    z = grid.to_numpy().astype(np.float64)
    if "ground_level" in painted:
        z = np.where(np.isnan(painted["ground_level"]) | np.isnan(z), z, painted["ground_level"])
    if "ground_delta" in painted:
        z = z + np.nan_to_num(painted["ground_delta"], nan=0.0)
    grid = grid.copy(data=z)
    if "manning" in painted:
        manning = manning.copy(data=np.where(np.isnan(painted["manning"]), manning.to_numpy(), painted["manning"]))
    if "imperviousness" in painted and not np.isnan(painted["imperviousness"]).all():
        base = np.broadcast_to(np.asarray(infiltration, dtype=np.float64), grid.shape)
        share = np.nan_to_num(painted["imperviousness"], nan=0.0)
        infiltration = grid.copy(data=base * (1.0 - share)).assign_attrs(units="mm/h")
    return grid, manning, infiltration


def _paint(gdf: gpd.GeoDataFrame, column: str, grid: xr.DataArray) -> np.ndarray:
    """A column's values on the cells whose centres lie in each polygon (later ones over earlier), NaN elsewhere;
    features without a value are skipped."""
    shapes = [(g, float(v)) for g, v in zip(gdf.geometry, gdf[column], strict=True)
              if g is not None and not np.isnan(v) and g.geom_type in ("Polygon", "MultiPolygon")]
    if not shapes:
        return np.full(grid.shape, np.nan)
    return rio_features.rasterize(shapes, out_shape=grid.shape, transform=grid.rio.transform(), fill=np.nan,
                                  dtype="float64")


def _layers_of(scene: cim.Scene, kind: str, grid: xr.DataArray) -> gpd.GeoDataFrame:
    """All vector layers of a kind, limited to the grid's bounds, as one GeoDataFrame (polygons in 2D)."""
    frames = [scene.layer(i.name, bbox=grid.rio.bounds()) for i in scene.layers
              if i.kind == kind and i.storage == "vector"]
    frames = [f for f in frames if len(f)]
    if not frames:
        return gpd.GeoDataFrame(geometry=[], crs=scene.crs)
    gdf = gpd.GeoDataFrame(pd.concat(frames), crs=scene.crs)
    gdf = gdf[~(gdf.geometry.is_empty | gdf.geometry.isna())]
    return gdf.set_geometry(shapely.force_2d(gdf.geometry.to_numpy()), crs=scene.crs)


def building_heights(gdf: gpd.GeoDataFrame, default: float | None = None) -> tuple[np.ndarray, int]:
    """Heights above ground (m) of buildings: ``height``, else ``roof_z - ground_z``, else ``default``
    (:data:`DEFAULT_BUILDING_HEIGHT` unless given); also how many took the default.

    >>> import geopandas as gpd
    >>> building_heights(gpd.GeoDataFrame({"height": [6.1, None, None], "roof_z": [None, 9.0, None],
    ...                                    "ground_z": [None, 1.0, None]}))
    (array([ 6.1,  8. , 10. ]), 1)
    """
    h = np.full(len(gdf), np.nan)
    if "height" in gdf:
        h = pd.to_numeric(gdf["height"], errors="coerce").to_numpy(dtype=float)
    if {"roof_z", "ground_z"} <= set(gdf.columns):
        diff = (pd.to_numeric(gdf["roof_z"], errors="coerce") - pd.to_numeric(gdf["ground_z"], errors="coerce"))
        h = np.where(np.isfinite(h) & (h > 0), h, diff.to_numpy(dtype=float))
    missing = ~(np.isfinite(h) & (h > 0))
    return np.where(missing, DEFAULT_BUILDING_HEIGHT if default is None else default, h), int(missing.sum())


def _raise(grid: xr.DataArray, gdf: gpd.GeoDataFrame) -> tuple[xr.DataArray, list[str]]:
    """The terrain with the cells of the buildings (later over earlier) raised by their heights."""
    heights, n_default = building_heights(gdf)
    shapes = [(g, v) for g, v in zip(gdf.geometry, heights, strict=True)
              if g is not None and g.geom_type in ("Polygon", "MultiPolygon")]
    lift = rio_features.rasterize(shapes, out_shape=grid.shape, transform=grid.rio.transform(), fill=0.0,
                                  dtype="float32") if shapes else 0.0
    notes = [f"buildings raised by their heights; {n_default} without one raised by "
             f"{DEFAULT_BUILDING_HEIGHT:g} m"] if n_default else []
    return grid.copy(data=grid.values + lift), notes


def _burn(gdf: gpd.GeoDataFrame, grid: xr.DataArray) -> np.ndarray:
    """Cells whose centres lie in the (polygonal) features."""
    shapes = [g for g in gdf.geometry if g is not None and g.geom_type in ("Polygon", "MultiPolygon")]
    if not shapes:
        return np.zeros(grid.shape, bool)
    return rio_features.rasterize(((g, 1) for g in shapes), out_shape=grid.shape, transform=grid.rio.transform(),
                                  fill=0, dtype="uint8").astype(bool)


#: metres per unit of water-depth observations
_DEPTH_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}


def water_level_skill(scene: cim.Scene, fc: Forecast, hotspots: gpd.GeoDataFrame) -> pd.DataFrame | None:
    """Observed vs simulated depth at hotspots that have a water-depth sensor (a Datastream linked to them).

    One row per sensor: observed and simulated peak (m) and time of peak, their differences, and the RMSE of
    the simulated depth interpolated to the observation times. Needs a forecast with absolute times (rainfall
    over datetimes); None when no hotspot has a sensor.
    """
    from cim import iot

    if "point_depth" not in fc.dataset:
        return None
    with scene.transaction() as conn:
        streams = iot.datastreams(conn, city_layer="hotspots")
        streams = streams[streams["unit_symbol"].isin(list(_DEPTH_UNITS))]
        if streams.empty:
            return None
        if fc.start is None:
            fc.notes.append("skill: the rainfall has no datetimes, so sensor observations cannot be aligned")
            return None
        end = fc.start + pd.Timedelta(seconds=float(fc.dataset.attrs["duration"]))
        obs = {int(r.id): iot.observations(conn, int(r.id), fc.start, end) for r in streams.itertuples()}
    labels = hotspots["name"].astype(str) if "name" in hotspots else pd.Series([f"hotspot {i}" for i in hotspots.index],
                                                                              index=hotspots.index)
    by_id = dict(zip(hotspots.index.astype(str), labels, strict=True))
    sim_t = fc.dataset["point_time"].to_numpy().astype(np.float64)
    rows = []
    for r in streams.itertuples():
        o = obs[int(r.id)]
        point = by_id.get(str(r.city_feature_id))
        if point is None or o.empty:
            continue
        sim = fc.dataset["point_depth"].sel(point=point).to_numpy().astype(np.float64)
        t_obs = (pd.DatetimeIndex(o["phenomenon_time"]) - fc.start).total_seconds().to_numpy()
        depth_obs = o["result"].to_numpy(dtype=np.float64) * _DEPTH_UNITS[r.unit_symbol]
        sim_at_obs = np.interp(t_obs, sim_t, sim)
        k_obs, k_sim = int(np.argmax(depth_obs)), int(np.argmax(sim))
        rows.append({"datastream": r.name, "hotspot": point, "observed_peak": depth_obs[k_obs],
                     "simulated_peak": sim[k_sim], "peak_error": sim[k_sim] - depth_obs[k_obs],
                     "observed_peak_time": t_obs[k_obs], "simulated_peak_time": sim_t[k_sim],
                     "timing_error": sim_t[k_sim] - t_obs[k_obs],
                     "rmse": float(np.sqrt(np.mean((sim_at_obs - depth_obs) ** 2))), "n_observations": len(o)})
    return pd.DataFrame(rows) if rows else None


def _rainfall(scene: cim.Scene, rainfall: Any, window, grid: xr.DataArray, gauges, gauge_method) -> Any:
    if isinstance(rainfall, str):
        if rainfall == "gauges":
            return gauge_rainfall(scene, window, datastreams=gauges, domain=grid, method=gauge_method)
        da = scene.layer(rainfall)
        if window is not None:
            da = da.sel(time=slice(*window))
        return da
    return rainfall


def bim_footprint(geoms: np.ndarray) -> shapely.Geometry:
    """The outline of a BIM model on the ground: the union of its elements' plan views (an L-shaped building stays
    an L, its courtyard outside), or their convex hull when the elements have no area in plan.

    >>> from shapely import box
    >>> round(bim_footprint(np.array([box(0, 0, 20, 8), box(0, 0, 8, 20)])).area)
    256
    """
    plan = shapely.make_valid(shapely.union_all(shapely.force_2d(np.asarray(geoms, dtype=object))))
    parts = [g for g in shapely.get_parts(plan) if g.geom_type in ("Polygon", "MultiPolygon") and g.area > 0]
    return shapely.union_all(parts) if parts else shapely.convex_hull(plan)


def _off_roofs(ds: xr.Dataset, roofs: np.ndarray) -> xr.Dataset:
    """``ds`` with no water on the cells of raised buildings (for impacts on the ground)."""
    out = ds.copy()
    for var in ("depth", "max_depth"):
        out[var] = ds[var].where(~roofs, 0.0)
    return out


def _bim(scene: cim.Scene, fc: Forecast, ds: xr.Dataset, ground: xr.DataArray, ring: float) -> None:
    """Doors, storeys and spaces below the water for every BIM building inside the modelled area."""
    x0, y0, x1, y1 = ground.rio.bounds()
    for info in scene.layers:
        if info.kind != "bim":
            continue
        elements = scene.layer(info.name)
        footprint = bim_footprint(elements.geometry.to_numpy())
        if not shapely.box(x0, y0, x1, y1).contains(footprint):
            fc.notes.append(f"BIM model {info.name}: outside the modelled area, no impacts computed")
            continue
        rooms = elements[elements["ifc_class"] == "IfcSpace"] if "ifc_class" in elements else elements.iloc[:0]
        floors = [float(shapely.get_coordinates(g, include_z=True)[:, 2].min()) for g in rooms.geometry]
        rooms = pd.DataFrame({"guid": rooms["guid"], "name": rooms["name"], "storey": rooms["storey"],
                              "floor_elevation": floors})
        buildings = info.attrs.get("buildings", [])
        for b in buildings:
            doors = pd.DataFrame([{**e, "storey": e.get("storey")} for e in b.get("entrances", [])],
                                 columns=["guid", "name", "storey", "sill_elevation", "x", "y"])
            storeys = pd.DataFrame([s for s in info.attrs.get("storeys", []) if s.get("building") == b["guid"]],
                                   columns=["name", "elevation"])
            # a model's rooms belong to its one building, or to the building whose storeys hold them
            spaces = rooms if len(buildings) == 1 else rooms[rooms["storey"].isin(storeys["name"])]
            d, s, r = bim_impacts(doors, storeys, ds, ground, building_geometry=footprint, ring=ring,
                                  spaces=spaces)
            fc.bim[b.get("name") or b["guid"]] = {"doors": d, "storeys": s, "spaces": r}


def _write_back(scene: cim.Scene, fc: Forecast) -> None:
    prefix = f"flood_{fc.name}"
    src = f"flood.forecast {fc.name!r}"
    with scene.transaction():
        for var in ("max_depth", "arrival_time", "max_speed"):
            da = fc.dataset[var].astype("float32").rio.write_crs(scene.crs).rio.write_nodata(np.nan)
            units = "s" if var == "arrival_time" else "m/s" if var == "max_speed" else "m"
            scene.add_layer(f"{prefix}_{var}", da, kind="flood_result", units=units, source=src, replace=True,
                            attrs={k: v for k, v in fc.dataset.attrs.items() if isinstance(v, int | float | str)})
        if len(fc.warnings):
            w = fc.warnings.copy()
            w["level"] = w["level"].astype("int16")
            scene.add_layer(f"{prefix}_warnings", w, kind="flood_result", source=src, replace=True,
                            attrs={"levels": json.dumps(dict(zip(fc.levels.names, fc.levels.thresholds, strict=True)))})
        if len(fc.regions):
            r = fc.regions.copy()
            r["level"] = r["level"].astype("int16")
            scene.add_layer(f"{prefix}_regions", r, kind="flood_result", source=src, replace=True)
