"""Forcing: rainfall as a number, a series or a grid (any CRS), point inflows, infiltration, drainage, walls and
boundaries. Each test checks volumes or depths that follow from the input by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import flood
from tests.flood.test_verification import grid

MM_H = 1 / 3.6e6


def flat(n=20, dx=5.0, crs="EPSG:28992", x0=0.0, y0=0.0):
    da = grid(np.full((n, n), 2.0), dx, crs)
    return da.assign_coords(x=da.x + x0, y=da.y + y0)


def test_number_and_series_rain_give_the_same_exact_depth():
    a = flood.simulate(flat(), rainfall=36.0, duration=600.0)
    b = flood.simulate(flat(), rainfall=xr.DataArray([36.0], coords={"time": [0.0]}, dims="time"), duration=600.0)
    for ds in (a, b):
        np.testing.assert_allclose(ds.depth.isel(time=-1), 36.0 * MM_H * 600.0, rtol=1e-6)
        assert ds.attrs["rain_volume"] == pytest.approx(36.0 * MM_H * 600.0 * 100 * 100, rel=1e-12)


def test_series_is_a_step_function_and_the_last_value_lasts_one_spacing():
    rain = xr.DataArray([10.0, 20.0], coords={"time": [0.0, 600.0]}, dims="time")
    ds = flood.simulate(flat(), rainfall=rain, duration=3600.0)
    expected = (10.0 * 600 + 20.0 * 600) * MM_H
    np.testing.assert_allclose(ds.depth.isel(time=-1), expected, rtol=1e-6)
    # before the change at 600 s only the first rate fell
    np.testing.assert_allclose(ds.depth.sel(time=300.0), 10.0 * MM_H * 300.0, rtol=1e-6)


def test_datetimes_and_units():
    times = pd.date_range("2020-06-17 12:00", periods=3, freq="5min").values
    rain = xr.DataArray([0.0, 1.0 / 3600.0, 0.0], coords={"time": times}, dims="time",
                        attrs={"units": "kg m-2 s-1"})  # 1 mm/h in CF flux units
    ds = flood.simulate(flat(), rainfall=rain, duration=1200.0)
    assert ds.attrs["rain_volume"] == pytest.approx(1.0 * MM_H * 300.0 * 100 * 100, rel=1e-9)
    # a start before the first time shifts the series
    ds2 = flood.simulate(flat(), rainfall=rain, duration=1200.0, start=np.datetime64("2020-06-17T11:55"))
    np.testing.assert_allclose(ds2.depth.sel(time=600.0), 0.0, atol=1e-9)
    np.testing.assert_allclose(ds2.depth.isel(time=-1), 1.0 * MM_H * 300.0, rtol=1e-6)


def _radar(values, x, y, crs, times=(0.0,)):
    return xr.DataArray(np.asarray(values, dtype=float), dims=("time", "y", "x"),
                        coords={"time": list(times), "y": y, "x": x}).rio.write_crs(crs)


def test_coarse_radar_grid_is_regridded_conservatively():
    dem = flat(40)  # 200 m x 200 m of 5 m cells
    vals = np.arange(1.0, 17.0).reshape(1, 4, 4) * 10  # 4 x 4 pixels of 50 m, 10..160 mm/h
    radar = _radar(vals, [25.0, 75.0, 125.0, 175.0], [175.0, 125.0, 75.0, 25.0], "EPSG:28992")
    ds = flood.simulate(dem, rainfall=radar, duration=30.0, max_dt=5.0, manning=0.5)
    assert ds.attrs["rain_volume"] == pytest.approx(vals.sum() * MM_H * 50 * 50 * 30.0, rel=1e-9)
    depth = ds.depth.isel(time=-1).values
    # every 5 m cell inside a pixel got that pixel's rate (30 s is too short for water to move 10 m)
    np.testing.assert_allclose(depth[2:8, 2:8], 10.0 * MM_H * 30.0, rtol=1e-3)
    np.testing.assert_allclose(depth[32:38, 32:38], 160.0 * MM_H * 30.0, rtol=1e-3)


def test_pixels_straddling_cells_are_area_weighted_and_outside_counts_as_zero():
    dem = flat(4, dx=10.0)  # 40 m x 40 m, cell edges at 0, 10, 20, 30, 40
    # two 15 m pixels in x starting at 5 m: [5, 20] = 60 mm/h and [20, 35] = 0; one 40 m pixel row in y
    radar = _radar([[[60.0, 0.0]]], [12.5, 27.5], [20.0], "EPSG:28992")
    radar = radar.assign_coords(y=[20.0])
    with pytest.raises(flood.FloodValueError, match="at least 2 cells"):
        flood.simulate(dem, rainfall=radar, duration=10.0)
    radar = _radar([[[60.0, 0.0], [60.0, 0.0]]], [12.5, 27.5], [30.0, 10.0], "EPSG:28992")
    from flood.forcing import regrid_conservative

    got = regrid_conservative(radar, dem)[0]
    np.testing.assert_allclose(got[0], [30.0, 60.0, 0.0, 0.0])  # half of cell 0 is outside the radar


def test_radar_in_another_crs_is_reprojected():
    # a DEM near Delft in RD New; radar in WGS84 lon/lat, rain on its western half only
    dem = flat(40, dx=5.0, x0=84000.0, y0=446000.0)
    lon = np.arange(4.3450, 4.3650, 0.0005)  # ~34 m pixels
    lat = np.arange(52.0030, 51.9940, -0.0003)  # ~33 m pixels
    vals = np.where(lon[None, None, :] < 4.35476, 20.0, 0.0) * np.ones((1, lat.size, lon.size))
    radar = _radar(vals, lon, lat, "EPSG:4326")
    ds = flood.simulate(dem, rainfall=radar, duration=60.0, max_dt=10.0, manning=0.5)
    depth = ds.depth.isel(time=-1).values
    # 4.35476 E is x = 84 100 m in RD New here: the western columns get rain, the eastern ones none
    np.testing.assert_allclose(depth[:, :10], 20.0 * MM_H * 60.0, rtol=1e-3)
    assert depth[:, 30:].max() < 1e-6
    assert 0.4 < ds.attrs["rain_volume"] / (20.0 * MM_H * 60.0 * 200 * 200) < 0.6


def test_radar_needs_a_dem_crs():
    dem = grid(np.zeros((10, 10)), 5.0)
    radar = _radar(np.ones((1, 2, 2)), [10.0, 40.0], [40.0, 10.0], "EPSG:28992")
    with pytest.raises(flood.FloodCRSError, match=r"dem\.rio\.write_crs"):
        flood.simulate(dem, rainfall=radar, duration=10.0)


def test_point_inflow_volume_and_spreading():
    dem = flat(21, dx=2.0)
    q = xr.DataArray([0.5, 0.0], coords={"time": [0.0, 100.0]}, dims="time")
    model = flood.Model(dem, inflows=[flood.PointInflow(21.0, 21.0, q, radius=3.0)], manning=5.0)
    rows, _ = model._inflow_cells[0]
    assert len(rows) == 9  # the centre cell and the 8 within 3 m (diagonals at 2.83 m)
    model.run_until(200.0)
    assert model.inflow_volume == pytest.approx(50.0, rel=1e-6)
    assert model.volume == pytest.approx(50.0, rel=1e-6)
    with pytest.raises(flood.FloodValueError, match="outside the DEM"):
        flood.Model(dem, inflows=[flood.PointInflow(500.0, 21.0, 1.0)])


def test_infiltration_takes_only_the_water_present():
    ds = flood.simulate(flat(), rainfall=50.0, infiltration=20.0, duration=1800.0)
    np.testing.assert_allclose(ds.depth.isel(time=-1), 30.0 * MM_H * 1800.0, rtol=1e-5)
    assert ds.attrs["infiltration_volume"] == pytest.approx(20.0 * MM_H * 1800.0 * 100 * 100, rel=1e-5)
    dry = flood.simulate(flat(), rainfall=10.0, infiltration=20.0, duration=1800.0)
    assert float(dry.depth.isel(time=-1).max()) == 0.0
    assert dry.attrs["infiltration_volume"] == pytest.approx(dry.attrs["rain_volume"], rel=1e-6)


def test_drainage_grid_removes_water_where_given():
    dem = flat()
    drain = xr.zeros_like(dem).assign_attrs(units="mm/h")
    drain[:, :10] = 100.0  # sewer capacity on the western half only
    ds = flood.simulate(dem, rainfall=40.0, drainage=drain, duration=900.0, manning=5.0)
    h = ds.depth.isel(time=-1).values
    assert h[:, :8].max() < 1e-4 and h[:, 12:].min() > 0.9 * 40.0 * MM_H * 900
    assert ds.attrs["drainage_volume"] == pytest.approx(0.5 * ds.attrs["rain_volume"], rel=0.05)


def test_walls_nan_and_blocked_cells_stay_dry():
    dem = flat()
    dem = dem.where(~((dem.x < 20) & (dem.y < 20)))  # NaN corner
    blocked = (dem.x > 40) & (dem.x < 60) & (dem.y > 40) & (dem.y < 60)
    ds = flood.simulate(dem, rainfall=60.0, blocked=blocked, duration=600.0)
    walls = np.isnan(dem.values) | blocked.values
    assert np.isnan(ds.max_depth.values[walls]).all() and np.isnan(ds.depth.values[:, walls]).all()
    active = (~walls).sum()
    assert ds.attrs["rain_volume"] == pytest.approx(60 * MM_H * 600 * active * 25.0, rel=1e-12)
    np.testing.assert_allclose(ds.depth.isel(time=-1).values[~walls], 60 * MM_H * 600, rtol=1e-5)


def _slope(n=30, dx=2.0, south_up=False):
    x = (np.arange(n) + 0.5) * dx
    z = np.tile(1.0 - 0.01 * x, (n, 1))  # falls towards the east
    da = grid(z, dx)
    if south_up:
        da = da.isel(y=slice(None, None, -1))
    return da


@pytest.mark.parametrize(("boundary", "drains"), [
    ("closed", False), ("open", True), ({"east": "open"}, True), ({"west": "open", "north": "open"}, False),
])
def test_open_edges_let_water_out_downhill(boundary, drains):
    ds = flood.simulate(_slope(), rainfall=100.0, boundary=boundary, duration=1800.0)
    share = ds.attrs["outflow_volume"] / ds.attrs["rain_volume"]
    assert (share > 0.3) if drains else (share < 1e-6)
    assert abs(ds.attrs["mass_error"]) < 1e-6


def test_sides_follow_the_coordinates_not_the_row_order():
    # the same east-west slope turned to fall north: with y ascending the north edge is the last row
    z = _slope().values.T[::-1]  # falls towards the first row (north when y descends)
    north_down = grid(z, 2.0)
    south_up = north_down.isel(y=slice(None, None, -1))
    a = flood.simulate(north_down, rainfall=100.0, boundary={"north": "open"}, duration=1200.0)
    b = flood.simulate(south_up, rainfall=100.0, boundary={"north": "open"}, duration=1200.0)
    assert a.attrs["outflow_volume"] > 0.2 * a.attrs["rain_volume"]
    assert b.attrs["outflow_volume"] == pytest.approx(a.attrs["outflow_volume"], rel=1e-5)


def test_drainage_inlets_take_at_most_their_capacity():
    from flood.forcing import Inlet

    x = (np.arange(21) + 0.5) * 2.0
    xx, yy = np.meshgrid(x, x[::-1])
    cone = grid(0.05 * np.hypot(xx - 21.0, yy - 21.0), 2.0)  # everything runs to the centre cell
    # 100 mm/h on 42 m x 42 m = 0.049 m³/s of rain; an inlet of 0.01 m³/s at the centre, 1 m³/s at a corner
    inlets = [Inlet(21.0, 21.0, 0.01), Inlet(1.0, 1.0, 1.0, radius=2.5)]
    ds = flood.simulate(cone, rainfall=100.0, drainage=inlets, duration=1800.0)
    corner = 3 * 4.0 * 100 * MM_H * 1800.0  # its 3 cells (centres within 2.5 m) lose exactly their own rain
    centre = ds.attrs["drainage_volume"] - corner
    assert 0.85 * 0.01 * 1800.0 < centre <= 0.01 * 1800.0 * (1 + 1e-6)  # at capacity once the pit is wet
    assert np.isnan(ds.max_depth).sum() == 0 and float(ds.max_depth.values[10, 10]) > 0.05  # it ponds
    assert abs(ds.attrs["mass_error"]) < 1e-6
    with pytest.raises(flood.FloodValueError, match="capacity"):
        Inlet(0.0, 0.0, -1.0)
