"""State-based infiltration in the solver: Green-Ampt, Horton and SCS-CN against hydrology's solutions, per-cell grids,
the volume budget, typed errors and the forecast.

On a flat closed domain under uniform rain nothing flows, so every cell is a soil column: its depth is the rain
minus what hydrology says infiltrates (Green-Ampt: Chow, Maidment & Mays 1988 sections 4.3-4.4, with the time
shift after ponding; Horton in its infiltrated-depth form; SCS-CN: TR-55 eq. 2-3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

import flood
import hydrology
from flood.errors import FloodTypeError, FloodValueError, GridMismatchError
from tests.flood.test_forecast import bowl_scene
from tests.flood.urban_case import urban_dem

MM = 1e-3
SOIL = {"k_sat": 10.0, "psi": 110.0, "delta_theta": 0.3}  # mm/h, mm: a loam-like soil, psi·dθ = 33 mm


def flat(ny=6, nx=6, dx=10.0, z=None):
    values = np.zeros((ny, nx)) if z is None else z
    return xr.DataArray(values, coords={"y": (ny - np.arange(ny) - 0.5) * dx, "x": (np.arange(nx) + 0.5) * dx},
                        dims=("y", "x"))


def green_ampt_under_rain(t_s, rain, k_sat, psi, delta_theta):
    """Cumulative infiltration (mm) under a constant rain rate (mm/h) from a dry start (Chow et al. 1988 4.4):
    all rain until ponding at F_p = K psi dθ / (i - K), then the ponded curve shifted in time to pass F_p."""
    t = np.asarray(t_s, dtype=float) / 3600.0
    pd = psi * delta_theta
    fp = k_sat * pd / (rain - k_sat)
    tp = fp / rain
    t_shift = (fp - pd * math.log1p(fp / pd)) / k_sat  # when the curve ponded from t = 0 reaches F_p
    ponded = hydrology.green_ampt_cumulative(np.maximum(t - tp + t_shift, 0.0), k_sat, psi, delta_theta)
    return np.where(t <= tp, rain * t, ponded)


@pytest.mark.parametrize("scheme", ["inertial", "fv1"])
def test_green_ampt_ponded_from_the_start_follows_hydrology(scheme):
    ds = flood.simulate(flat(), initial_depth=0.05, infiltration=flood.GreenAmpt(**SOIL), duration=3600.0,
                        points={"p": (25.0, 25.0)}, point_interval=300.0, scheme=scheme)
    t = ds.point_time.values
    expected = 0.05 - hydrology.green_ampt_cumulative(t / 3600.0, **SOIL) * MM
    np.testing.assert_allclose(ds.point_depth.sel(point="p").values, expected, rtol=0, atol=2e-7)
    assert expected[-1] < 0.025  # 25+ mm soaked in: the capacity fell from infinity towards K
    np.testing.assert_allclose(ds.depth.isel(time=-1).values, expected[-1], atol=2e-7)  # every cell alike


def test_green_ampt_under_rain_ponds_then_follows_the_shifted_curve():
    rain = 60.0  # mm/h > K: ponding at F_p = 10·33/50 = 6.6 mm, t_p = 396 s
    ds = flood.simulate(flat(), rainfall=rain, infiltration=flood.GreenAmpt(**SOIL), duration=7200.0,
                        points={"p": (25.0, 25.0)}, point_interval=60.0)
    t = ds.point_time.values
    depth = ds.point_depth.sel(point="p").values.astype(float)
    expected = (rain * t / 3600.0 - green_ampt_under_rain(t, rain, **SOIL)) * MM
    assert np.all(depth[t <= 360.0] == 0.0)  # before ponding every drop soaks in
    assert depth[t == 420.0][0] > 0.0
    # the step that crosses ponding takes the ponded capacity for all of it (bounded by (i - K)·dt ≈ 0.14 mm;
    # measured 0.27 µm, as the step is short and the error second order) and Green-Ampt forgets it as F grows
    np.testing.assert_allclose(depth, expected, rtol=0, atol=1e-6)
    assert abs(depth[-1] - expected[-1]) < 2e-7
    assert expected[-1] == pytest.approx(0.0701, abs=1e-4)  # 120 mm of rain, ~50 mm infiltrated


@pytest.mark.parametrize("scheme", ["inertial", "fv1"])
def test_scs_curve_number_keeps_the_tr55_runoff(scheme):
    rain_in = 6.0  # TR-55 example: CN 75, P = 6.0 in -> Q = 3.28 in
    ds = flood.simulate(flat(), rainfall=rain_in * 25.4, infiltration=flood.SCSCurveNumber(75), duration=3600.0,
                        points={"p": (25.0, 25.0)}, point_interval=300.0, scheme=scheme)
    final = float(ds.depth.isel(time=-1).mean())
    assert round(final / 0.0254, 2) == 3.28
    t = ds.point_time.values
    expected = hydrology.scs_runoff(rain_in * 25.4 * t / 3600.0, 75) * MM
    np.testing.assert_allclose(ds.point_depth.sel(point="p").values, expected, rtol=0, atol=2e-7)
    assert ds.attrs["infiltration_volume"] == pytest.approx((rain_in * 25.4 * MM - expected[-1]) * 3600.0,
                                                             rel=1e-6)
    # float32 rounding of each step's rain leaves ~1e-8 on a grid this small, losses or not
    assert abs(ds.attrs["mass_error"]) < 1e-7


HORTON = {"f0": 75.0, "fc": 10.0, "k": 2.0}  # mm/h, 1/h


def test_horton_ponded_from_the_start_follows_hydrology():
    ds = flood.simulate(flat(), initial_depth=0.06, infiltration=flood.Horton(**HORTON), duration=3600.0,
                        points={"p": (25.0, 25.0)}, point_interval=300.0)
    t = ds.point_time.values
    expected = 0.06 - hydrology.horton_cumulative(t / 3600.0, **HORTON) * MM
    np.testing.assert_allclose(ds.point_depth.sel(point="p").values, expected, rtol=0, atol=2e-7)
    assert expected[-1] == pytest.approx(0.06 - 0.038102, abs=1e-6)


def test_horton_decays_with_the_water_taken_in_not_with_the_clock():
    # 40 mm/h < f0: all of it soaks in until the capacity, falling with F, meets the rain; then the ponded
    # curve from there (a clock-driven Horton would pond at 0.39 h instead of 0.53 h)
    rain = 40.0
    f0, fc, k = HORTON.values()
    te_p = math.log((f0 - fc) / (rain - fc)) / k  # on the ponded curve, where its rate equals the rain
    f_p = float(hydrology.horton_cumulative(te_p, **HORTON))
    t_p = f_p / rain  # hours
    ds = flood.simulate(flat(), rainfall=rain, infiltration=flood.Horton(**HORTON), duration=7200.0,
                        points={"p": (25.0, 25.0)}, point_interval=60.0)
    t = ds.point_time.values / 3600.0
    soaked = np.where(t <= t_p, rain * t, hydrology.horton_cumulative(np.maximum(te_p + t - t_p, 0.0), **HORTON))
    depth = ds.point_depth.sel(point="p").values
    assert t_p == pytest.approx(0.534, abs=1e-3) and te_p == pytest.approx(0.387, abs=1e-3)
    assert np.all(depth[t < t_p - 0.02] == 0.0) and depth[-1] > 0.015
    np.testing.assert_allclose(depth, (rain * t - soaked) * MM, rtol=0, atol=1e-6)


def test_per_cell_grids_two_halves():
    # a wall down the middle makes two closed flat basins with different soils
    dem = flat(6, 13)
    blocked = np.zeros(dem.shape, bool)
    blocked[:, 6] = True
    west, east = (slice(None), slice(0, 6)), (slice(None), slice(7, 13))
    k = np.full(dem.shape, 10.0)
    k[east] = 25.0
    ga = flood.simulate(dem, rainfall=60.0, blocked=blocked, duration=3600.0,
                        infiltration=flood.GreenAmpt(k_sat=dem.copy(data=k), psi=110.0, delta_theta=0.3))
    end = ga.depth.isel(time=-1).values
    for part, ks in ((west, 10.0), (east, 25.0)):
        soaked = green_ampt_under_rain(3600.0, 60.0, ks, 110.0, 0.3)
        np.testing.assert_allclose(end[part], (60.0 - soaked) * MM, atol=1e-4)
    assert np.all(np.isnan(end[:, 6]))

    # a CN grid from land cover and soil groups: streets on group B (98) west, open space in good condition on
    # group C (74) east; the wall's cells are NaN (an unknown class) and that is allowed
    cover = np.where(np.arange(13) < 6, 1, 2)[None, :].repeat(6, axis=0)
    cover[:, 6] = 9
    groups = np.where(np.arange(13) < 6, "B", "C")[None, :].repeat(6, axis=0)
    cn = hydrology.curve_number_grid(dem.copy(data=cover), dem.copy(data=groups),
                                     {1: "streets_paved_curbs", 2: "open_space_good"})
    scs = flood.simulate(dem, rainfall=80.0, blocked=blocked, duration=3600.0,
                         infiltration=flood.SCSCurveNumber(cn))
    end = scs.depth.isel(time=-1).values
    np.testing.assert_allclose(end[west], hydrology.scs_runoff(80.0, 98) * MM, atol=2e-7)
    np.testing.assert_allclose(end[east], hydrology.scs_runoff(80.0, 74) * MM, atol=2e-7)
    assert hydrology.scs_runoff(80.0, 98) - hydrology.scs_runoff(80.0, 74) > 45.0  # 71.2 vs 25.5 mm


@pytest.mark.parametrize("soil", [flood.GreenAmpt(k_sat=15.0, psi=90.0, delta_theta=0.25),
                                  flood.Horton(f0=60.0, fc=8.0, k=3.0),
                                  flood.SCSCurveNumber(80, ia_ratio=0.05)], ids=["green_ampt", "horton", "scs"])
def test_budget_closes_with_flow_drainage_and_open_edges(soil):
    dem = urban_dem(60, 5.0, seed=2)
    ds = flood.simulate(dem, rainfall=xr.DataArray([90.0, 0.0], coords={"time": [0.0, 1200.0]}, dims="time"),
                        infiltration=soil, drainage=5.0, boundary={"south": "open", "east": "open"},
                        duration=2400.0)
    a = ds.attrs
    assert a["infiltration_volume"] > 0.2 * a["rain_volume"]
    assert a["drainage_volume"] > 0 and a["outflow_volume"] > 0
    assert abs(a["mass_error"]) < 1e-7  # measured 1.6e-8 and 2.5e-8, as without losses on this grid
    if isinstance(soil, flood.SCSCurveNumber):  # rain-only losses: every cell loses P - Q(P), flow or not
        p = 90.0 * 1200.0 / 3600.0
        lost = (p - float(hydrology.scs_runoff(p, 80, ia_ratio=0.05))) * MM * dem.size * 25.0
        assert a["infiltration_volume"] == pytest.approx(lost, rel=1e-6)


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda d: flood.GreenAmpt(k_sat=-1.0, psi=100.0, delta_theta=0.3), FloodValueError, r"GreenAmpt\.k_sat"),
    (lambda d: flood.GreenAmpt(k_sat=5.0, psi=100.0, delta_theta=1.5), FloodValueError, r"GreenAmpt\.delta_theta"),
    (lambda d: flood.GreenAmpt(k_sat=5.0, psi="100", delta_theta=0.3), FloodTypeError, r"GreenAmpt\.psi"),
    (lambda d: flood.GreenAmpt(k_sat=5.0, psi=-d, delta_theta=0.3), FloodValueError, r"GreenAmpt\.psi.*>= 0"),
    (lambda d: flood.Horton(f0=5.0, fc=10.0, k=1.0), FloodValueError, r"Horton\.fc.*f0=5"),
    (lambda d: flood.Horton(f0=50.0, fc=10.0, k=-d), FloodValueError, r"Horton\.k"),
    (lambda d: flood.SCSCurveNumber(0.0), FloodValueError, r"SCSCurveNumber\.curve_number.*> 0"),
    (lambda d: flood.SCSCurveNumber(101.0), FloodValueError, r"SCSCurveNumber\.curve_number"),
    (lambda d: flood.SCSCurveNumber(75, ia_ratio=1.0), FloodValueError, r"SCSCurveNumber\.ia_ratio"),
])
def test_bad_parameters_raise_typed_errors_naming_the_field(make, error, match):
    dem = flat()
    with pytest.raises(error, match=match):
        make(dem.copy(data=np.ones(dem.shape)))


def test_bad_grids_raise_when_the_model_is_built():
    dem = flat()
    cn = np.full(dem.shape, 80.0)
    cn[2, 3] = np.nan
    with pytest.raises(FloodValueError, match=r"SCSCurveNumber\.curve_number: 1 active cells have no value"):
        flood.simulate(dem, rainfall=10.0, infiltration=flood.SCSCurveNumber(cn), duration=60.0)
    # NaN on a wall is fine
    blocked = np.zeros(dem.shape, bool)
    blocked[2, 3] = True
    ds = flood.simulate(dem, rainfall=10.0, blocked=blocked, infiltration=flood.SCSCurveNumber(cn), duration=60.0)
    assert ds.attrs["infiltration_volume"] > 0
    with pytest.raises(FloodValueError, match=r"Horton\.fc: exceeds f0 on 36 active cells"):
        flood.simulate(dem, rainfall=10.0, duration=60.0, infiltration=flood.Horton(f0=dem + 5.0, fc=10.0, k=1.0))
    with pytest.raises(GridMismatchError, match=r"GreenAmpt\.psi"):
        flood.simulate(dem, rainfall=10.0, duration=60.0,
                       infiltration=flood.GreenAmpt(k_sat=5.0, psi=np.ones((3, 3)), delta_theta=0.3))


def test_forecast_takes_a_curve_number_grid_from_land_cover_and_soil_layers(store_url):
    # the docstring recipe of flood.forecast: rasters at 1 m matched to the 2 m model grid, TR-55 classes
    scene = bowl_scene(store_url)
    grid = flood.terrain(scene)
    n = 2 * grid.sizes["x"]
    x = float(grid.x[0]) - 0.5 + np.arange(n) + 0.5
    y = float(grid.y[0]) + 0.5 - np.arange(n) - 0.5
    west = (x < float(grid.x.mean()))[None, :].repeat(n, axis=0)
    fine = {"y": y, "x": x}
    cover = xr.DataArray(np.where(west, 1, 3).astype("int16"), coords=fine, dims=("y", "x")).rio.write_crs(scene.crs)
    soil = xr.DataArray(np.full((n, n), 2, "int16"), coords=fine, dims=("y", "x")).rio.write_crs(scene.crs)
    scene.add_layer("landcover", cover.rio.write_nodata(0), kind="land_use", units="1")
    scene.add_layer("soil_groups", soil.rio.write_nodata(0), kind="soil", units="1")

    from rasterio.enums import Resampling

    cover = scene.layer("landcover").rio.reproject_match(grid, resampling=Resampling.nearest)
    soil = scene.layer("soil_groups").rio.reproject_match(grid, resampling=Resampling.nearest)
    cn = hydrology.curve_number_grid(cover, soil, {1: "impervious", 2: "residential_1_4_acre",
                                                   3: "open_space_good"})
    assert sorted(np.unique(cn.values).tolist()) == [61.0, 98.0]  # group B: paved 98, open space 61
    fc = flood.forecast(scene, rainfall=120.0, duration=900.0, name="cn", write=False,
                        infiltration=flood.SCSCurveNumber(cn.fillna(98.0)))
    a = fc.dataset.attrs
    active = np.isfinite(fc.dataset.max_depth.values)
    p = 120.0 * 900.0 / 3600.0  # 30 mm: below Ia = 32.5 mm for CN 61, so the east keeps nothing
    lost = (p - hydrology.scs_runoff(p, cn.values[active])) * MM * 4.0
    assert a["infiltration_volume"] == pytest.approx(float(lost.sum()), rel=1e-6)
    assert a["infiltration_volume"] < 0.9 * a["rain_volume"]
    assert abs(a["mass_error"]) < 1e-7
