"""Planning what-if: the same storm on the city as it is and as planned, and what the plan changes.

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

__all__ = ["WhatIf", "what_if"]


@dataclass
class WhatIf:
    """Baseline and scenario forecasts and their differences."""

    baseline: Any
    scenario: Any
    depth_change: xr.DataArray          # scenario minus baseline maximum depth (m); NaN on walls of either
    changed: gpd.GeoDataFrame           # roads, buildings and hotspots whose warning level changed
    by_region: pd.DataFrame             # per region: level and flooded road length and buildings, before and after


def what_if(scene, *, planned: gpd.GeoDataFrame, rainfall: Any, duration: float, name: str = "whatif",
            **forecast_kw: Any) -> WhatIf:
    """Run `flood.forecast` without and with the ``planned`` buildings and compare (nothing is written)."""
    from flood.forecasting import forecast

    base = forecast(scene, rainfall=rainfall, duration=duration, name=f"{name}_baseline", write=False, **forecast_kw)
    plan = forecast(scene, rainfall=rainfall, duration=duration, name=f"{name}_planned", planned=planned,
                    write=False, **forecast_kw)
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
