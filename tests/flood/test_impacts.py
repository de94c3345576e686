"""Warnings and impacts on hand-made depth fields, where every answer is known."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from shapely import LineString, Point, box

from flood.impacts import bim_impacts, feature_warnings, region_summary
from flood.levels import WarningLevels, first_exceedance

DX = 2.0
N = 20                                         # 40 m x 40 m, cell centres at 1, 3, ..., 39
X = DX * (np.arange(N) + 0.5)
Y = X[::-1].copy()
TIMES = np.array([0.0, 60.0, 120.0, 180.0])


def field() -> tuple[xr.Dataset, xr.DataArray]:
    """Flat bed at 1.0 m; water rising in the west half (x < 20): 0, 0.1, 0.35, 0.6 m; east half dry."""
    dem = xr.DataArray(np.full((N, N), 1.0), coords={"y": Y, "x": X}, dims=("y", "x"))
    depth = np.zeros((len(TIMES), N, N), np.float32)
    for k, d in enumerate([0.0, 0.1, 0.35, 0.6]):
        depth[k][:, X < 20] = d
    ds = xr.Dataset({"depth": (("time", "y", "x"), depth), "max_depth": (("y", "x"), depth.max(axis=0))},
                    coords={"time": TIMES, "y": Y, "x": X})
    return ds, dem


def test_levels_and_first_times():
    lv = WarningLevels()
    assert lv.classify([0.0, 0.15, 0.29, 0.3, 0.99, 1.0, np.nan]).tolist() == [0, 1, 1, 2, 3, 4, 0]
    custom = WarningLevels.from_mapping({"yellow": 0.2, "blue": 0.05})
    assert custom.names == ("blue", "yellow") and custom.classify([0.1]).tolist() == [1]
    with pytest.raises(ValueError, match="increasing"):
        WarningLevels((0.3, 0.1), ("a", "b"), ("#000", "#111"))
    d = np.array([[0.0, 0.0], [0.2, 0.0], [0.4, 0.16]])
    f = first_exceedance(d, [0, 10, 20], [0.15, 0.3])
    assert f[0].tolist() == [10.0, 20.0] and f[1, 0] == 20.0 and np.isnan(f[1, 1])


def test_road_building_hotspot_warnings():
    ds, dem = field()
    roads = gpd.GeoDataFrame({"name": ["west street", "cross street", "east lane"]}, geometry=[
        box(4, 10, 16, 14),                     # all in the wet half: 6 x 2 cells
        LineString([(2, 31), (38, 31)]),        # crosses both halves: half its cells wet
        box(24, 0, 36, 4),                      # dry
    ])
    w = feature_warnings(roads, ds, dem, object_type="road", name_column="name")
    assert w["level"].tolist() == [3, 3, 0] and w["level_name"].tolist() == ["orange", "orange", "none"]
    assert w["max_depth"].tolist() == pytest.approx([0.6, 0.6, 0.0])
    assert w["time_first_warning"].iloc[0] == 120.0 and w["time_level"].iloc[0] == 180.0
    assert np.isnan(w["time_level"].iloc[2])
    assert w["water_level"].iloc[0] == pytest.approx(1.6)
    assert w["flooded_fraction"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert w["flooded_length"].iloc[1] == pytest.approx(18.0)      # half of a 36 m line
    assert w["flooded_length"].iloc[0] == pytest.approx(12.0)      # 12 m x 4 m road surface
    # a building in the dry half whose west wall faces the water: judged by the ring of cells outside it
    buildings = gpd.GeoDataFrame({"name": ["wet wall", "dry"]}, geometry=[box(20, 20, 30, 30), box(30, 4, 38, 12)])
    wb = feature_warnings(buildings, ds, dem, object_type="building", ring=1.5 * DX)
    assert wb["level"].tolist() == [3, 0] and wb["time_first_warning"].iloc[0] == 120.0
    hot = gpd.GeoDataFrame({"name": ["underpass"]}, geometry=[Point(5, 5)])
    wh = feature_warnings(hot, ds, dem, object_type="hotspot")
    assert wh["level"].tolist() == [3] and wh["max_depth"].iloc[0] == pytest.approx(0.6)


def test_region_summary_counts():
    ds, dem = field()
    roads = gpd.GeoDataFrame(geometry=[box(4, 10, 16, 14), box(24, 0, 36, 4)])
    buildings = gpd.GeoDataFrame(geometry=[box(20, 20, 30, 30)])
    warnings = pd.concat([feature_warnings(roads, ds, dem, object_type="road"),
                          feature_warnings(buildings, ds, dem, object_type="building", ring=3.0)], ignore_index=True)
    regions = gpd.GeoDataFrame({"name": ["city", "west", "east"]},
                               geometry=[box(0, 0, 40, 40), box(0, 0, 20, 40), box(20, 0, 40, 40)])
    s = region_summary(regions, warnings, ds)
    assert s["region"].tolist() == ["city", "west", "east"]
    assert s["level_name"].tolist() == ["orange", "orange", "orange"]
    assert s["flooded_area_m2"].tolist() == pytest.approx([800.0, 800.0, 0.0])
    assert s["roads_flooded"].tolist() == [1, 1, 0] and s["road_length_flooded_m"].iloc[0] == pytest.approx(12.0)
    assert s["buildings_affected"].tolist() == [1, 0, 1]           # its representative point is in the east
    assert s["time_first_warning"].iloc[0] == 120.0


def test_bim_doors_and_storeys_below_water():
    ds, dem = field()
    building = box(20, 20, 30, 30)
    entrances = pd.DataFrame({"guid": ["d1", "d2"], "name": ["west door", "east door"], "storey": ["00", "00"],
                              "sill_elevation": [1.2, 1.2], "x": [19.0, 31.0], "y": [25.0, 25.0]})
    storeys = pd.DataFrame({"name": ["00", "01"], "elevation": [1.3, 4.3]})
    spaces = pd.DataFrame({"guid": ["s1", "s2", "s3"], "name": ["cellar", "hall", "office"],
                           "storey": ["-1", "00", "01"], "floor_elevation": [-1.7, 1.3, 4.3]})
    doors, floors, rooms = bim_impacts(entrances, storeys, ds, dem, building_geometry=building, ring=3.0,
                                       spaces=spaces)
    assert doors["below_water"].tolist() == [True, False]
    assert doors["depth_over_sill"].iloc[0] == pytest.approx(0.4) and doors["from_time"].iloc[0] == 120.0
    assert np.isnan(doors["from_time"].iloc[1])
    assert floors["below_water"].tolist() == [True, False] and floors["from_time"].iloc[0] == 120.0
    # the water next to the west wall stands at 1.1 m at 60 s, 1.35 m at 120 s and 1.6 m at 180 s
    assert rooms["below_water"].tolist() == [True, True, False]
    assert rooms["depth_over_floor"].tolist() == pytest.approx([3.3, 0.3, 0.0], abs=1e-6)
    assert rooms["from_time"].iloc[:2].tolist() == [60.0, 120.0] and np.isnan(rooms["from_time"].iloc[2])
    # without spaces: an empty table with the same columns
    assert list(bim_impacts(entrances, storeys, ds, dem, building_geometry=building, ring=3.0)[2].columns) == \
        list(rooms.columns)


def test_level_reached_between_depth_maps_takes_the_time_of_maximum():
    ds, dem = field()
    # a spike to 1.2 m at 150 s in one cell, seen by the running maximum but not by the 60 s depth maps
    ds["max_depth"][5, 2] = 1.2
    ds["time_of_max"] = xr.zeros_like(ds["max_depth"]) + 180.0
    ds["time_of_max"][5, 2] = 150.0
    spot = gpd.GeoDataFrame(geometry=[Point(5.0, Y[5])])
    w = feature_warnings(spot, ds, dem, object_type="hotspot")
    assert w["level_name"].iloc[0] == "red" and w["time_level"].iloc[0] == 150.0
    assert w["time_first_warning"].iloc[0] == 120.0


def _half_flooded(west_only: bool = True) -> tuple[xr.Dataset, xr.DataArray]:
    """20 x 20 cells of 2 m (centres at odd metres); 0.4 m of water on the west half (x < 20) or everywhere."""
    x = 2.0 * (np.arange(20) + 0.5)
    y = x[::-1].copy()
    depth = np.zeros((2, 20, 20), np.float32)
    depth[1][:, x < 20] = 0.4
    if not west_only:
        depth[1] = 0.4
    ds = xr.Dataset({"depth": (("time", "y", "x"), depth), "max_depth": (("y", "x"), depth.max(0))},
                    coords={"time": [0.0, 60.0], "y": y, "x": x})
    return ds, xr.DataArray(np.zeros((20, 20)), coords={"y": y, "x": x}, dims=("y", "x"))


def test_a_road_along_cell_edges_has_the_cells_on_both_sides():
    ds, dem = _half_flooded()
    roads = gpd.GeoDataFrame({"name": ["on edges", "on centres", "on edges, drawn east to west"]},
                             geometry=[LineString([(2, 20), (38, 20)]), LineString([(2, 21), (38, 21)]),
                                       LineString([(38, 20), (2, 20)])])
    w = feature_warnings(roads, ds, dem, object_type="road", name_column="name")
    # 36 m of road, the western half under 0.4 m (orange: 0.3 <= 0.4 < 0.5)
    assert w["level"].tolist() == [2, 2, 2]
    assert w["flooded_fraction"].tolist() == [0.5, 0.5, 0.5]
    assert w["flooded_length"].tolist() == pytest.approx([18.0, 18.0, 18.0])


def test_regions_sharing_a_border_share_no_cell_and_both_count_a_border_road():
    ds, dem = _half_flooded(west_only=False)
    roads = gpd.GeoDataFrame({"name": ["border road", "west road"]},
                             geometry=[LineString([(21, 2), (21, 38)]), LineString([(5, 2), (5, 38)])])
    w = feature_warnings(roads, ds, dem, object_type="road", name_column="name")
    # the border x = 21 runs through a column of cell centres
    regions = gpd.GeoDataFrame({"name": ["city", "west", "east"], "parent": [None, "city", "city"]},
                               geometry=[box(0, 0, 40, 40), box(0, 0, 21, 40), box(21, 0, 40, 40)])
    s = region_summary(regions, w, ds).set_index("region")
    assert s["flooded_area_m2"].to_dict() == {"city": 1600.0, "west": 800.0, "east": 800.0}
    assert s["roads_flooded"].to_dict() == {"city": 2, "west": 2, "east": 1}
    assert s["road_length_flooded_m"].to_dict() == pytest.approx({"city": 72.0, "west": 72.0, "east": 36.0})


def test_an_l_shaped_bim_building_is_reached_from_its_courtyard():
    from flood.forecasting import bim_footprint

    dem = xr.DataArray(np.full((N, N), 1.0), coords={"y": Y, "x": X}, dims=("y", "x"))
    wings = [box(10, 10, 30, 18), box(10, 10, 18, 30)]                 # an L of two wings
    footprint = bim_footprint(np.array(wings, dtype=object))
    assert footprint.area == pytest.approx(256.0)                       # not the hull (328 m2), which covers the court
    depth = np.zeros((3, N, N), np.float32)
    court = (X[None, :] > 18) & (X[None, :] < 24) & (Y[:, None] > 18) & (Y[:, None] < 24)
    depth[1][court], depth[2][court] = 0.2, 0.5
    ds = xr.Dataset({"depth": (("time", "y", "x"), depth), "max_depth": (("y", "x"), depth.max(0))},
                    coords={"time": [0.0, 60.0, 120.0], "y": Y, "x": X})
    doors = pd.DataFrame([{"guid": "d1", "name": "courtyard door", "storey": "GF", "sill_elevation": 1.05,
                           "x": 22.0, "y": 18.0},
                          {"guid": "d2", "name": "inner door", "storey": "GF", "sill_elevation": 1.05,
                           "x": 14.0, "y": 14.0}])
    storeys = pd.DataFrame([{"name": "GF", "elevation": 1.05}])
    d, s, _ = bim_impacts(doors, storeys, ds, dem, building_geometry=footprint, ring=3.0)
    # the courtyard's 0.5 m of water stands 1.5 m high, 0.45 m over the sill, from 60 s (0.2 m then)
    court_door = d.set_index("name").loc["courtyard door"]
    assert court_door["max_water_level"] == pytest.approx(1.5) and court_door["below_water"]
    assert court_door["depth_over_sill"] == pytest.approx(0.45) and court_door["from_time"] == 60.0
    # a door with no open ground within reach has no water level (and does not break the rest)
    inner = d.set_index("name").loc["inner door"]
    assert np.isnan(inner["max_water_level"]) and not inner["below_water"]
    assert s["below_water"].tolist() == [True] and s["max_water_level"].tolist() == pytest.approx([1.5])
