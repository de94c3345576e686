"""Gauges to grid (IDW, Thiessen) and radar-gauge mean-field-bias merging, with numpy and dask inputs."""

from __future__ import annotations

import doctest

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import points

import hydrology
from hydrology import rainfall
from hydrology.errors import GridError, ParameterError
from tests.hydrology.references import grid

TARGET = grid(np.zeros((6, 8)), dx=100.0, dy=100.0)  # cell centres x0 + 50 + 100 i, y0 - 50 - 100 j


def _readings(a):
    a = np.asarray(a, float)
    return xr.DataArray(a, dims=("time", "gauge"), coords={"time": np.arange(a.shape[0]) * 300.0})


@st.composite
def gauge_sets(draw):
    k = draw(st.integers(1, 5))
    xs = draw(st.lists(st.floats(500000.0, 500800.0), min_size=k, max_size=k))
    ys = draw(st.lists(st.floats(3999400.0, 4000000.0), min_size=k, max_size=k))
    vals = draw(st.lists(st.lists(st.one_of(st.floats(0, 80), st.just(np.nan)), min_size=k, max_size=k),
                         min_size=1, max_size=3))
    return np.column_stack([xs, ys]), np.asarray(vals, float)


@settings(max_examples=60, deadline=None)
@given(gauge_sets(), st.floats(1.0, 4.0))
def test_idw_equals_brute_force(gs, power):
    xy, vals = gs
    out = hydrology.gauges_to_grid(_readings(vals), xy, TARGET, power=power).values
    cx, cy = np.meshgrid(TARGET.x.values, TARGET.y.values)
    for t in range(vals.shape[0]):
        ok = ~np.isnan(vals[t])
        for r in range(6):
            for c in range(8):
                if not ok.any():
                    assert np.isnan(out[t, r, c])
                    continue
                d = np.hypot(cx[r, c] - xy[ok, 0], cy[r, c] - xy[ok, 1])
                if (d == 0).any():
                    expect = vals[t][ok][d == 0].mean()
                else:
                    w = d**-power
                    expect = (w * vals[t][ok]).sum() / w.sum()
                np.testing.assert_allclose(out[t, r, c], expect, rtol=1e-10)
                # a weighted mean stays within the readings
                assert vals[t][ok].min() - 1e-9 <= out[t, r, c] <= vals[t][ok].max() + 1e-9


def test_a_cell_on_a_silent_gauge_takes_the_others():
    import rioxarray  # noqa: F401

    target = xr.DataArray(np.zeros((1, 3)), dims=("y", "x"), coords={"y": [0.0], "x": [0.0, 1.0, 2.0]})
    target = target.rio.write_crs("EPSG:32631")
    v = xr.DataArray([[2.0, 8.0], [np.nan, 8.0]], dims=("time", "gauge"), coords={"time": [0, 1]})
    for method in ("idw", "nearest"):
        out = hydrology.gauges_to_grid(v, [(0.0, 0.0), (2.0, 0.0)], target, method=method).values
        assert out[1].tolist() == [[8.0, 8.0, 8.0]], method       # gauge 1 (on cell 0) is silent at t = 1
    assert hydrology.gauges_to_grid(v, [(0.0, 0.0), (2.0, 0.0)], target).values[0].tolist() == [[2.0, 5.0, 8.0]]


def test_gauges_on_a_geographic_grid_are_weighted_by_distance_on_the_ground():
    import rioxarray  # noqa: F401
    from pyproj import Geod

    # at 60 N a degree of longitude is half a degree of latitude on the ground: A (0.1 deg east) is 5.6 km away,
    # B (0.095 deg north) 10.6 km, though B is nearer in degrees
    target = xr.DataArray(np.zeros((1, 1)), dims=("y", "x"), coords={"y": [60.0], "x": [10.0]}).rio.write_crs(
        "EPSG:4326")
    v = xr.DataArray([[0.0, 10.0]], dims=("time", "gauge"), coords={"time": [0]})
    gauges = [(10.1, 60.0), (10.0, 60.095)]
    geod = Geod(ellps="WGS84")
    da, db = (geod.inv(10.0, 60.0, x, y)[2] for x, y in gauges)
    assert 5_500 < da < 5_700 and 10_500 < db < 10_700
    idw = hydrology.gauges_to_grid(v, gauges, target).values.item()
    assert idw == pytest.approx(10.0 * db**-2 / (da**-2 + db**-2), rel=1e-9)       # 2.175 mm/h
    assert hydrology.gauges_to_grid(v, gauges, target, method="nearest").values.item() == 0.0


@settings(max_examples=60, deadline=None)
@given(gauge_sets())
def test_thiessen_takes_the_nearest_reporting_gauge(gs):
    xy, vals = gs
    out = hydrology.gauges_to_grid(_readings(vals), xy, TARGET, method="nearest").values
    cx, cy = np.meshgrid(TARGET.x.values, TARGET.y.values)
    for t in range(vals.shape[0]):
        ok = np.flatnonzero(~np.isnan(vals[t]))
        if ok.size == 0:
            assert np.isnan(out[t]).all()
            continue
        d = np.hypot(cx[..., None] - xy[ok, 0], cy[..., None] - xy[ok, 1])
        np.testing.assert_array_equal(out[t], vals[t][ok][np.argmin(d, axis=-1)])


def test_gauges_in_another_crs_are_reprojected_and_dask_stays_lazy():
    # gauges given in WGS84 onto a UTM 31N grid: the gauge at a cell centre gives that cell its value
    cell = (float(TARGET.x[2]), float(TARGET.y[3]))
    utm = gpd.GeoDataFrame(geometry=points([cell, (float(TARGET.x[7]), float(TARGET.y[0]))]), crs="EPSG:32631")
    wgs = utm.to_crs("EPSG:4326")
    vals = _readings([[12.0, 3.0], [0.0, 6.0]]).chunk({"time": 1})
    out = hydrology.gauges_to_grid(vals, wgs, TARGET)
    assert out.chunks is not None
    out = out.compute()
    np.testing.assert_allclose(out.values[0, 3, 2], 12.0, rtol=1e-6)
    np.testing.assert_allclose(out.values[1, 0, 7], 6.0, rtol=1e-6)
    assert out.dims == ("time", "y", "x") and out.rio.crs.to_epsg() == 32631 and out.attrs["units"] == "mm/h"
    np.testing.assert_array_equal(out.time, vals.time)
    with pytest.raises(ParameterError):
        hydrology.gauges_to_grid(vals, wgs, TARGET, method="kriging")
    with pytest.raises(GridError, match="gauges"):
        hydrology.gauges_to_grid(_readings([[1.0]]), wgs, TARGET)


def test_radar_gauge_merging_removes_a_uniform_bias():
    rng = np.random.default_rng(5)
    truth = rng.gamma(2.0, 3.0, size=(4, 6, 8))
    truth[2] = 0.0  # a dry step: bias stays 1
    radar = xr.DataArray(0.5 * truth, dims=("time", "y", "x"),
                         coords={"time": np.arange(4) * 300.0, "y": TARGET.y, "x": TARGET.x}).rio.write_crs("EPSG:32631")
    cells = [(1, 2), (4, 6), (5, 0)]
    xy = [(float(TARGET.x[c]), float(TARGET.y[r])) for r, c in cells]
    gauge = _readings(np.stack([truth[:, r, c] for r, c in cells], axis=1))
    gauge[3, 1] = np.nan  # a missing reading: the pair is left out
    merged = hydrology.merge_radar_gauges(radar, gauge, xy)
    np.testing.assert_allclose(merged.values[[0, 1, 3]], truth[[0, 1, 3]], rtol=1e-12)
    np.testing.assert_allclose(merged.mean_field_bias.values, [2.0, 2.0, 1.0, 2.0])
    assert merged.rio.crs.to_epsg() == 32631
    lazy = hydrology.merge_radar_gauges(radar.chunk({"time": 2}), gauge, xy)
    assert lazy.chunks is not None
    np.testing.assert_allclose(lazy.values, merged.values)


def test_mean_field_bias_is_a_ratio_of_sums_over_valid_pairs():
    radar = xr.DataArray(np.zeros((3, 6, 8)), dims=("time", "y", "x"),
                         coords={"time": np.arange(3) * 300.0, "y": TARGET.y, "x": TARGET.x}).rio.write_crs("EPSG:32631")
    cells = [(1, 2), (4, 6), (5, 0)]
    xy = [(float(TARGET.x[c]), float(TARGET.y[r])) for r, c in cells]
    for (r, c), v in zip(cells, (1.0, 2.0, 3.0), strict=True):
        radar[:, r, c] = v
    gauge = _readings([[2.0, 2.0, 2.0], [2.0, 2.0, 9.0], [4.0, np.nan, np.nan]])
    bias = hydrology.mean_field_bias(radar, gauge, xy)
    # sum(gauge) / sum(radar): 6 / 6 = 1 (a mean of ratios would give 1.222); 13 / 6; one pair left: 4 / 1
    np.testing.assert_allclose(bias.values, [1.0, 13.0 / 6.0, 4.0], rtol=1e-12)
    # with min_pairs=2 the step with one valid pair keeps a bias of 1
    np.testing.assert_allclose(hydrology.mean_field_bias(radar, gauge, xy, min_pairs=2).values,
                               [1.0, 13.0 / 6.0, 1.0], rtol=1e-12)


def test_docstring_examples():
    res = doctest.testmod(rainfall, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
