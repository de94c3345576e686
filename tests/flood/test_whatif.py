"""Planning what-if: a building planned in the bottom of the bowl pushes the water onto the road around it."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely import box

import flood
from tests.flood.test_forecast import CRS, X0, Y0, bowl_scene


def test_building_in_the_bowl_raises_the_water_around_it(tmp_path):
    scene = bowl_scene(tmp_path / "s.cim")
    planned = gpd.GeoDataFrame({"name": ["new hall"]}, geometry=[box(X0 + 22, Y0 + 33, X0 + 38, Y0 + 45)], crs=CRS)
    levels = {"blue": 0.15, "yellow": 0.36, "orange": 0.5, "red": 1.0}   # yellow between the two road depths
    w = flood.what_if(scene, planned=planned, rainfall=250.0, duration=900.0, output_interval=300.0, levels=levels)
    base, plan = w.baseline.dataset, w.scenario.dataset
    hall = dict(x=slice(X0 + 24, X0 + 36), y=slice(Y0 + 43, Y0 + 35))
    assert np.isnan(plan["max_depth"].sel(**hall)).all() and not np.isnan(base["max_depth"].sel(**hall)).any()
    # less open ground takes less rain, and the same storm stands deeper on what is left of the bowl
    assert plan.attrs["rain_volume"] < base.attrs["rain_volume"]
    road = dict(x=slice(X0 + 4, X0 + 40), y=slice(Y0 + 32, Y0 + 28))
    assert float(plan["max_depth"].sel(**road).max()) > float(base["max_depth"].sel(**road).max())
    assert float(w.depth_change.sel(**road).max()) > 0
    # the road goes from blue to yellow; every object whose level changed is listed, depths consistent
    road_row = w.changed.set_index("name").loc["bowl road"]
    assert (road_row["level_before"], road_row["level_after"]) == (1, 2)
    assert road_row["depth_before"] < 0.36 <= road_row["depth_after"]
    assert "ridge road" not in set(w.changed["name"])
    for row in w.changed.itertuples():
        assert row.level_before != row.level_after
        if not row.planned:
            assert row.depth_change == pytest.approx(row.depth_after - row.depth_before)
    # the planned hall would stand in water: listed as planned, with its level and depth
    hall_row = w.changed.set_index("name").loc["new hall"]
    assert hall_row["planned"] and not hall_row["newly_flooded"] and hall_row["level_before"] == 0
    hall_warning = w.scenario.warnings.set_index("name").loc["new hall"]
    assert (hall_row["level_after"], hall_row["depth_after"]) == (hall_warning["level"], hall_warning["max_depth"])
    assert set(w.by_region.index) == {"Town", "West", "East"}
    assert {"level_before", "level_after", "max_depth_change"} <= set(w.by_region.columns)
    # the planned hall itself is warned about, and a what-if writes nothing into the scene
    assert "new hall" in set(w.scenario.warnings["name"])
    assert "flood_whatif_baseline_max_depth" not in scene


def test_raised_ground_on_the_flooded_road_pushes_the_water_elsewhere(tmp_path):
    scene = bowl_scene(tmp_path / "s.cim")
    # the bottom of the bowl road raised by 1 m (a new square on a mound); a later polygon over it sets nothing
    # new for the ground, only a rougher surface
    mound = gpd.GeoDataFrame({"ground_delta": [1.0, None], "manning": [None, 0.05]},
                             geometry=[box(X0 + 24, Y0 + 28, X0 + 36, Y0 + 32), box(X0, Y0, X0 + 4, Y0 + 4)], crs=CRS)
    w = flood.what_if(scene, surfaces=mound, rainfall=250.0, duration=900.0, output_interval=300.0)
    base, plan = w.baseline.dataset, w.scenario.dataset
    square = dict(x=slice(X0 + 24, X0 + 36), y=slice(Y0 + 32, Y0 + 28))
    assert float((w.scenario.dem - w.baseline.dem).sel(**square).min()) == pytest.approx(1.0)
    assert float((w.scenario.dem - w.baseline.dem).drop_sel(x=w.scenario.dem.sel(**square).x).max()) == 0.0
    # those cells were under a third of a metre of water; on the mound they only wet
    assert float(base["max_depth"].sel(**square).min()) > 0.3
    assert float(plan["max_depth"].sel(**square).max()) < 0.01
    # the same rain on the same open cells, all of it kept (closed domain, no losses): it stands elsewhere
    assert plan.attrs["rain_volume"] == pytest.approx(base.attrs["rain_volume"], rel=1e-12)
    for ds in (base, plan):
        assert ds.attrs["final_volume"] == pytest.approx(ds.attrs["rain_volume"], rel=1e-6)
    outside = ~np.isin(plan["x"], plan["max_depth"].sel(**square).x)[None, :] | \
        ~np.isin(plan["y"], plan["max_depth"].sel(**square).y)[:, None]
    stored = [float(np.nansum(ds["depth"].isel(time=-1).to_numpy()[outside])) * 4.0 for ds in (base, plan)]
    assert stored[1] > stored[0] + 10.0
    assert float(plan["max_depth"].max()) > float(base["max_depth"].max())
    assert float(w.depth_change.sel(**square).max()) < -0.3
