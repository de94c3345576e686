"""The finite-volume shallow-water scheme ``scheme="fv1"`` against analytic solutions and exact properties.

Ritter's front and profile at the default grid are held in ``test_verification.py`` next to the local-inertial
contrast; here: convergence under refinement, Stoker's wet dam break, the output maps against Ritter's velocity
field, a 2-D symmetric dam break, a lake at rest with a shoreline, walls and holes, and the volume budget.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

import flood
from flood.model import G
from tests.flood.test_kernels import states
from tests.flood.test_verification import grid, ritter, uneven_ground
from tests.flood.urban_case import urban_dem

X0, T = 5.0, 6.0  # SWASHES: a 10 m channel, the dam at 5 m, 6 s


def dam_break(dx, h_left, h_right, **kw):
    """A 10 m strip three cells wide, frictionless, water ``h_left`` behind the dam and ``h_right`` ahead."""
    dem = grid(np.zeros((3, round(10.0 / dx))), dx)
    x = dem.x.values
    h = xr.zeros_like(dem) + np.where(x < X0, h_left, h_right)[None, :]
    ds = flood.simulate(dem, initial_depth=h, duration=T, manning=0.0, output_interval=T, scheme="fv1",
                        depth_threshold=1e-5, **kw)
    depth = ds.depth.isel(time=-1).values
    assert np.ptp(depth, axis=0).max() == 0.0  # the three rows stay identical: a 1-D problem
    return x, depth[1], ds


def stoker(x, t, hl, hr, x0):
    """Stoker's (1957) dam break onto a wet bed (SWASHES 4.1.1): rarefaction, plateau, bore."""
    cl, cr2 = np.sqrt(G * hl), G * hr
    cm = brentq(lambda c: -8 * cr2 * c * c * (cl - c) ** 2 + (c * c - cr2) ** 2 * (c * c + cr2),
                np.sqrt(cr2) * (1 + 1e-12), cl * (1 - 1e-12))
    xa, xb = x0 - t * cl, x0 + t * (2 * cl - 3 * cm)
    xc = x0 + t * 2 * cm * cm * (cl - cm) / (cm * cm - cr2)
    fan = 4 / (9 * G) * (cl - (x - x0) / (2 * t)) ** 2
    return np.where(x <= xa, hl, np.where(x <= xb, fan, np.where(x <= xc, cm * cm / G, hr))), xc, cm * cm / G


def test_ritter_error_shrinks_with_the_grid():
    """First-order convergence on Ritter's case: halving dx cuts the L1 error of the depth profile by ~1.7 (order
    ~0.75: the dry tip, where the exact depth vanishes quadratically, keeps it below 1), and the front (last cell
    deeper than 1e-6 m) closes in on the tip x0 + 2 c0 t."""
    h0 = 0.005
    tip = X0 + 2 * np.sqrt(G * h0) * T
    l1, fronts = [], []
    for dx in (0.02, 0.01, 0.005):
        x, h, ds = dam_break(dx, h0, 0.0)
        exact = ritter(x, T, h0, X0)
        l1.append(np.abs(h - exact).sum() / exact.sum())
        fronts.append(x[np.nonzero(h > 1e-6)[0].max()])
        assert abs(ds.attrs["mass_error"]) < 1e-8
    # measured L1 0.65 %, 0.39 %, 0.23 %; fronts 7.23, 7.29, 7.34 m (tip 7.66 m)
    assert l1[0] < 0.008 and l1[2] < 0.003
    orders = np.log2(np.array(l1[:-1]) / np.array(l1[1:]))
    assert np.all(orders > 0.65)
    assert fronts[0] < fronts[1] < fronts[2] < tip
    assert tip - fronts[2] < 0.75 * (tip - fronts[0])


def test_stoker_wet_dam_break():
    """SWASHES' Stoker case (5 mm behind the dam, 1 mm ahead): the bore, the plateau between it and the fan."""
    hl, hr = 0.005, 0.001
    x, h, ds = dam_break(0.01, hl, hr)
    exact, bore, plateau = stoker(x, T, hl, hr, X0)
    assert plateau == pytest.approx(0.002539, abs=1e-6)  # the analytic middle depth
    assert np.abs(h - exact).sum() / np.abs(exact).sum() < 0.004  # measured 0.28 %
    mid = (x > bore - 0.8) & (x < bore - 0.3)
    assert h[mid].mean() == pytest.approx(plateau, rel=0.003)  # measured 0.07 % low
    front = x[np.nonzero(h > 0.5 * (plateau + hr))[0].max()]  # the bore, where the depth is half-way up
    assert abs(front - bore) < 0.02  # within two cells: measured 6.255 m vs 6.260 m
    assert np.sum(h) * 0.01 == pytest.approx(hl * X0 + hr * X0, rel=1e-6)
    assert abs(ds.attrs["mass_error"]) < 1e-8


def test_ritter_arrival_time_and_max_speed_maps():
    """The output maps against Ritter's fields: u = 2/3 (c0 + (x - x0)/t). A depth of w arrives at x when
    (x - x0)/t = 2 c0 - 3 sqrt(g w); beyond the dam the fastest flow passes at arrival."""
    h0, w = 0.005, 0.001
    c0 = np.sqrt(G * h0)
    x, _, ds = dam_break(0.01, h0, 0.0, wet_depth=w)
    arrival = ds.arrival_time.values[1]
    speed = ds.max_speed.values[1]
    xi_w = 2 * c0 - 3 * np.sqrt(G * w)
    for xp in (5.3, 5.6):
        i = np.argmin(np.abs(x - xp))
        assert arrival[i] == pytest.approx((x[i] - X0) / xi_w, rel=0.05)  # measured 2-3 % early
        assert speed[i] == pytest.approx(2 / 3 * (c0 + xi_w), rel=0.05)
    behind = (x > 4.0) & (x < X0)  # behind the dam the flow only speeds up: the maximum is the last, at T
    np.testing.assert_allclose(speed[behind], 2 / 3 * (c0 + (x[behind] - X0) / T), rtol=0.03)  # measured <= 2.5 %
    reached = x[np.nonzero(np.isfinite(arrival))[0].max()]  # how far 1 mm got in 6 s: exactly, at this depth
    assert reached == pytest.approx(X0 + xi_w * T, abs=0.015)  # measured 5.875 m vs 5.8747 m


def test_two_dimensional_dam_break_is_symmetric():
    """A square column of water released in the middle of a closed square: the x- and y-sweeps must be the same
    code, so the result is symmetric under transposing and flipping; the water reaches the corners' diagonal."""
    n, dx = 41, 0.1
    dem = grid(np.zeros((n, n)), dx)
    h0 = np.zeros((n, n))
    h0[15:26, 15:26] = 0.1
    ds = flood.simulate(dem, initial_depth=xr.zeros_like(dem) + h0, duration=2.0, manning=0.0, scheme="fv1",
                        output_interval=2.0, depth_threshold=1e-5)
    h = ds.depth.isel(time=-1).values
    np.testing.assert_allclose(h, h.T, atol=1e-6)
    np.testing.assert_allclose(h, h[::-1, :], atol=1e-6)
    np.testing.assert_allclose(h, h[:, ::-1], atol=1e-6)
    assert h.max() < 0.05 and h[0, 20] > 0.005 and h[0, 0] > 1e-4  # spread out, reflected by the walls
    assert abs(ds.attrs["mass_error"]) < 1e-7


@pytest.mark.parametrize("walls", [False, True])
def test_lake_at_rest_with_shoreline_walls_and_holes(walls):
    """Well balanced: a lake over uneven ground with islands and a dry shore stays still for 600 s (max_speed
    is the largest speed over every step in every cell deeper than ``wet_depth``)."""
    dem = uneven_ground()
    kw = {}
    if walls:
        dem = dem.where(np.hypot(dem.x - 40, dem.y - 70) > 9)
        kw["blocked"] = (np.abs(dem.x - 80) < 6) & (np.abs(dem.y - 30) < 10)
    ds = flood.simulate(dem, initial_level=1.37, duration=600.0, scheme="fv1", wet_depth=1e-6, manning=0.0,
                        output_interval=600.0, max_dt=0.5, **kw)
    h0, h1 = ds.depth.isel(time=0).values, ds.depth.isel(time=-1).values
    assert 0.5 < np.nanmean(h0 > 0) < 0.95  # a shore and islands
    assert ds.attrs["steps"] > 1000
    assert float(ds.max_speed.max()) < 1e-6
    assert np.nanmax(np.abs(h1 - h0)) < 1e-6
    assert abs(ds.attrs["mass_error"]) < 1e-9


def test_rain_on_a_closed_domain_keeps_every_drop():
    rain = xr.DataArray([30.0, 120.0, 10.0, 0.0], coords={"time": [0.0, 300.0, 900.0, 1500.0]}, dims="time")
    ds = flood.simulate(urban_dem(60), rainfall=rain, duration=2400.0, scheme="fv1")
    expected = (30.0 * 300 + 120.0 * 600 + 10.0 * 600) / 3.6e6 * 60 * 60 * 25.0
    assert ds.attrs["rain_volume"] == pytest.approx(expected, rel=1e-12)
    assert ds.attrs["final_volume"] == pytest.approx(expected, rel=1e-6)
    assert abs(ds.attrs["mass_error"]) < 1e-7 and ds.attrs["outflow_volume"] == 0.0
    assert ds.attrs["scheme"] == "fv1" and "HLL" in ds.attrs["solver"]


def test_budget_closes_with_every_forcing_at_once():
    """Radar rain, a point inflow, infiltration, a drainage grid, NaN holes, buildings and two open edges in one
    run: each term is booked (none negligible) and the budget closes."""
    dem = urban_dem(60)
    dem = dem.where(np.hypot(dem.x - 100, dem.y - 200) > 30)
    radar = xr.DataArray(np.random.default_rng(1).uniform(20, 150, (3, 4, 4)), dims=("time", "y", "x"),
                         coords={"time": [0.0, 600.0, 1200.0], "y": [262.5, 187.5, 112.5, 37.5],
                                 "x": [37.5, 112.5, 187.5, 262.5]}).rio.write_crs("EPSG:28992")
    drainage = (xr.zeros_like(dem) + np.linspace(0.0, 30.0, 60)[:, None]).fillna(0.0).assign_attrs(units="mm/h")
    ds = flood.simulate(dem.rio.write_crs("EPSG:28992"), rainfall=radar, duration=1800.0, scheme="fv1",
                        inflows=[flood.PointInflow(150.0, 150.0, 0.3, radius=8.0)], infiltration=10.0,
                        drainage=drainage, blocked=dem > 19.0, boundary={"south": "open", "east": "open"})
    a = ds.attrs
    inputs = a["initial_volume"] + a["rain_volume"] + a["inflow_volume"]
    for k in ("outflow_volume", "infiltration_volume", "drainage_volume"):
        assert a[k] > 0.02 * inputs, k
    assert a["inflow_volume"] == pytest.approx(0.3 * 1800.0, rel=1e-5)
    outputs = a["outflow_volume"] + a["infiltration_volume"] + a["drainage_volume"]
    assert a["final_volume"] == pytest.approx(inputs - outputs, rel=1e-6)
    assert abs(a["mass_error"]) < 1e-6
    assert np.isnan(ds.max_depth.values[np.isnan(dem.values)]).all()


def test_step_interface_and_errors():
    """``calc_time_step`` is alpha dx / (|u| + sqrt(g h)) (0.5 by default for fv1); a typo names the field."""
    dem = grid(np.zeros((10, 10)), 1.0)
    model = flood.Model(dem, initial_depth=0.1, scheme="fv1")
    assert model.calc_time_step() == pytest.approx(0.5 / np.sqrt(G * 0.1), rel=1e-6)
    assert model.run_one_step() == pytest.approx(0.5 / np.sqrt(G * 0.1), rel=1e-6)
    assert np.abs(model.h - 0.1).max() == 0.0 and np.abs(model.hu).max() == 0.0  # a flat pool stays still
    assert flood.Model(dem, scheme="inertial").alpha == 0.7
    with pytest.raises(flood.FloodValueError, match=r"scheme.*'fv1'"):
        flood.simulate(dem, duration=1.0, scheme="fv2")
    with pytest.warns(flood.FloodWarning, match="theta=0.7 has no effect"):
        flood.Model(dem, scheme="fv1", theta=0.7)


def test_state_based_infiltration_is_shared():
    """The fv1 scheme calls the same loss step as the inertial one, SCS curve numbers included: on a closed flat
    plane under uniform rain only the SCS runoff Q = (P - Ia)^2 / (P - Ia + S) stays on the surface."""
    cn, rain, t = 80.0, 60.0, 3600.0
    ds = flood.simulate(grid(np.zeros((12, 12)), 5.0), rainfall=rain, duration=t, scheme="fv1",
                        infiltration=flood.SCSCurveNumber(cn), output_interval=t)
    s = 25.4 / cn - 0.254  # m
    p, ia = rain / 1000.0, 0.2 * s
    runoff = (p - ia) ** 2 / (p - ia + s)  # 17.3 mm of the 60
    np.testing.assert_allclose(ds.depth.isel(time=-1).values, runoff, rtol=1e-5)
    assert ds.attrs["infiltration_volume"] == pytest.approx((p - runoff) * 144 * 25.0, rel=1e-5)
    assert abs(ds.attrs["mass_error"]) < 1e-7


def test_sheet_flow_on_a_plane_converges_to_normal_depth():
    """Rain on a 250 m plane falling 0.2 % to an open edge, at steady state: the depth is the normal depth of
    the discharge q = r x, h = (n r x / sqrt(S))^(3/5) (kinematic wave; the pressure gradient adds ~2 %, as the
    inertial scheme shows). First-order upwinding adds a conveyance ~ sqrt(g h) x the surface drop per cell, so
    thin sheets on coarse cells run too shallow; the error falls quickly with dx. The open edge lets the water
    leave at about normal depth (no pile-up)."""
    n, slope, rain, length = 0.03, 0.002, 100.0, 250.0
    errors = []
    for dx in (5.0, 2.5, 1.25):
        x = (np.arange(round(length / dx)) + 0.5) * dx
        dem = grid(np.tile(slope * (length - x), (3, 1)), dx)
        ds = flood.simulate(dem, rainfall=rain, duration=5400.0, manning=n, boundary={"east": "open"},
                            output_interval=600.0, scheme="fv1")
        h = ds.depth.isel(time=-1).values[1]
        assert np.abs(h - ds.depth.isel(time=-2).values[1]).max() < 1e-6  # steady
        normal = (n * rain / 3.6e6 * x / np.sqrt(slope)) ** 0.6
        inner = (x > 0.2 * length) & (x < 0.9 * length)
        errors.append(float(np.mean(h[inner] / normal[inner] - 1)))
        assert h[-1] / normal[-1] == pytest.approx(1.0, abs=0.07)  # measured 0.95, 0.99, 1.01
        assert abs(ds.attrs["mass_error"]) < 1e-7 and ds.attrs["outflow_volume"] > 0
    # measured -16.8 %, -5.6 %, -1.2 % (local inertial: +2.6 %, +2.3 %, +2.3 %)
    assert errors[0] < errors[1] < errors[2] < 0.03
    assert -0.2 < errors[0] and abs(errors[2]) < 0.02


def _moving(z, h, n, sides, dx, walls, rng=None, transpose=False):
    """A Model with the state (and random momentum, when ``rng`` is given), or its transpose."""
    names = ("north", "east", "south", "west")  # kernel order; transposed: rows <-> columns, N <-> W, S <-> E
    if transpose:
        z, h, n, walls = z.T, h.T, n.T, walls.T
        sides = sides[[3, 2, 1, 0]]
    model = flood.Model(grid(z, dx), initial_depth=grid(h, dx), manning=grid(n, dx), scheme="fv1",
                        blocked=grid(walls, dx), boundary={s: ("open" if o else "closed") for s, o in
                                                           zip(names, sides, strict=True)})
    return model


@settings(max_examples=40, deadline=None)
@given(states(), st.integers(1, 5), st.integers(0, 2**31))
def test_random_states_keep_depths_positive_mass_exact_and_x_y_alike(state, nsteps, seed):
    """Random beds, depths (30 % dry), momenta, walls and open edges, several steps: depths stay >= 0, the
    budget closes, and the transposed problem gives the transposed answer (the x and y sweeps, their edges and
    walls are the same scheme)."""
    z, h, n, _, sides, dx = state
    rng = np.random.default_rng(seed)
    walls = rng.random(z.shape) < 0.15
    h = np.where(walls, 0.0, h).astype(np.float32)
    hu = (rng.uniform(-0.3, 0.3, z.shape) * h).astype(np.float32)
    hv = (rng.uniform(-0.3, 0.3, z.shape) * h).astype(np.float32)
    a = _moving(z, h, n, sides, dx, walls)
    b = _moving(z, h, n, sides, dx, walls, transpose=True)
    for m, (p, q) in ((a, (hu, hv)), (b, (hv.T, hu.T))):
        m.hu[:] = p
        m.hv[:] = q
        wet = m.h > 1e-6
        m._u[:] = np.where(wet, p / np.maximum(m.h, 1e-6), 0.0)
        m._v[:] = np.where(wet, q / np.maximum(m.h, 1e-6), 0.0)
        m._smax = float(np.max(np.maximum(np.abs(m._u), np.abs(m._v)) + np.sqrt(G * m.h)))
    for _ in range(nsteps):
        dt = a.calc_time_step()
        assert b.calc_time_step() == pytest.approx(dt, rel=1e-6)
        a.run_one_step(dt)
        b.run_one_step(dt)
        assert (a.h >= 0).all() and (b.h >= 0).all()
        scale = float(h.max()) + 1e-3
        np.testing.assert_allclose(b.h, a.h.T, atol=1e-6 * scale)
        np.testing.assert_allclose(b.hu, a.hv.T, atol=1e-5 * scale)
        np.testing.assert_allclose(b.hv, a.hu.T, atol=1e-5 * scale)
    bud = a.budget()
    if bud["initial_volume"] > 0:
        assert abs(bud["mass_error"]) < 1e-6
