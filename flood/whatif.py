"""Planning what-if: the same storm on the city as it is and as planned, and what the plan changes.

A plan is planned buildings (footprints: walls in the model) and/or surface changes: polygons with one or more
of a new ``imperviousness`` (0..1, the share of the soil's infiltration they seal: 1 paves a park, 0 unseals a
square, applied to the forecast's ``infiltration`` rate, mm/h, a number or a grid on the model grid), a new
roughness ``manning``, and a new ground: ``ground_delta`` (metres added: a raised square, a lowered water plaza)
or ``ground_level`` (m). They are passed to `flood.forecast` as ``surfaces=`` (see `flood.forecasting.SURFACE_COLUMNS`).

>>> sorted(WhatIf.__dataclass_fields__)
['baseline', 'by_region', 'changed', 'depth_change', 'scenario']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["SURFACE_PROPERTIES", "WhatIf", "sealed_infiltration", "what_if"]


@dataclass
class WhatIf:
    """Baseline and scenario forecasts and their differences."""

    baseline: Any
    scenario: Any
    depth_change: xr.DataArray          # scenario minus baseline maximum depth (m); NaN on walls of either
    changed: gpd.GeoDataFrame           # roads, buildings and hotspots whose warning level changed (planned ones too)
    by_region: pd.DataFrame             # per region: level and flooded road length and buildings, before and after


#: surface properties a plan may change (the columns of `flood.forecast`'s ``surfaces``)
SURFACE_PROPERTIES = ("imperviousness", "manning", "ground_delta", "ground_level")


def sealed_infiltration(scene, surfaces: gpd.GeoDataFrame, infiltration: Any, *, dem: str | None = None,
                        resolution: float | None = None) -> xr.DataArray:
    """The ``infiltration`` rate (mm/h) on the model grid with each surface's ``imperviousness`` applied:
    ``rate * (1 - imperviousness)`` inside it (later polygons over earlier ones)."""
    import cim
    from flood.forecasting import _apply_surfaces, check_surfaces, terrain

    if "imperviousness" not in surfaces.columns:
        raise cim.ValidationError("surfaces: every feature needs an 'imperviousness' between 0 and 1")
    checked = check_surfaces(surfaces[["imperviousness", surfaces.geometry.name]], infiltration=infiltration)
    grid = terrain(scene, dem, resolution)
    _, _, rate = _apply_surfaces(checked.to_crs(scene.crs), grid, grid, infiltration)
    return rate


def what_if(scene, *, planned: gpd.GeoDataFrame | None = None, rainfall: Any, duration: float, name: str = "whatif",
            surfaces: gpd.GeoDataFrame | None = None, **forecast_kw: Any) -> WhatIf:
    """Run `flood.forecast` without and with the plan (``planned`` buildings, ``surfaces`` changes: see
    `flood.forecasting.SURFACE_COLUMNS`) and compare (nothing is written)."""
    from flood.forecasting import check_surfaces, forecast

    plan_kw = dict(forecast_kw)
    if surfaces is not None and len(surfaces):
        # checked before the baseline runs, so a bad plan fails at once
        plan_kw["surfaces"] = check_surfaces(surfaces, infiltration=forecast_kw.get("infiltration"))
    base = forecast(scene, rainfall=rainfall, duration=duration, name=f"{name}_baseline", write=False, **forecast_kw)
    plan = forecast(scene, rainfall=rainfall, duration=duration, name=f"{name}_planned", planned=planned,
                    write=False, **plan_kw)
    change = (plan.dataset["max_depth"] - base.dataset["max_depth"]).rename("depth_change")
    change.attrs["units"] = "m"
    key = ["object_type", "object_id"]
    b = base.warnings.set_index(key)
    p = plan.warnings.set_index(key)
    common = b.index.intersection(p.index)
    diff = pd.DataFrame({"name": p.loc[common, "name"], "level_before": b.loc[common, "level"],
                         "level_after": p.loc[common, "level"], "depth_before": b.loc[common, "max_depth"],
                         "depth_after": p.loc[common, "max_depth"]}, index=common)
    diff["depth_change"] = diff["depth_after"] - diff["depth_before"]
    diff["newly_flooded"] = (diff["level_before"] == 0) & (diff["level_after"] > 0)
    diff["planned"] = False
    # planned buildings that would stand in water (``planned``; not "newly flooded": they were not there)
    new = p.loc[p.index.difference(b.index)]
    new = new[new["level"] > 0]
    if len(new):
        diff = pd.concat([diff, pd.DataFrame({
            "name": new["name"], "level_before": 0, "level_after": new["level"], "depth_before": np.nan,
            "depth_after": new["max_depth"], "depth_change": np.nan, "newly_flooded": False, "planned": True},
            index=new.index)])
    moved = diff[diff["level_before"] != diff["level_after"]].reset_index()
    changed = gpd.GeoDataFrame(moved, geometry=p.loc[list(zip(moved["object_type"], moved["object_id"],
                                                              strict=True)), "geometry"].to_numpy()
                               if len(moved) else [], crs=scene.crs)
    by_region = pd.DataFrame()
    if len(base.regions):
        cols = ["level", "road_length_flooded_m", "buildings_affected", "flooded_area_m2"]
        rb = pd.DataFrame(base.regions.drop(columns="geometry")).set_index("region")[cols]
        rp = pd.DataFrame(plan.regions.drop(columns="geometry")).set_index("region")[cols]
        by_region = rb.join(rp, lsuffix="_before", rsuffix="_after")
        by_region["max_depth_change"] = [
            float(np.nanmax(change.rio.clip([scene.region(r).geometry], drop=False).values, initial=0.0))
            for r in by_region.index]
    return WhatIf(base, plan, change, changed, by_region)
