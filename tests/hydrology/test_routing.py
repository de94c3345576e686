"""Flow length and time-area routing: path-walking reference, equilibrium discharge, volume balance."""

from __future__ import annotations

import doctest
import math

import numpy as np
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hydrology
from hydrology import routing
from tests.hydrology.references import OFFSET, grid, receivers
from tests.hydrology.test_terrain import dems


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dems(), st.floats(1, 20), st.floats(1, 20))
def test_flow_length_equals_path_walk(z, dx, dy):
    fd = hydrology.flow_direction(hydrology.fill_depressions(grid(z, dx=dx, dy=dy)))
    length = routing.flow_length(fd).values
    rec = receivers(fd.values)
    f = fd.values
    for s in range(z.size):
        if f.flat[s] == 255:
            assert np.isnan(length.flat[s])
            continue
        total, i = 0.0, s
        while rec[i] >= 0:
            dr, dc = OFFSET[int(f.flat[i])]
            total += math.hypot(dr * dy, dc * dx)
            i = rec[i]
        np.testing.assert_allclose(length.flat[s], total, rtol=1e-6)


def _valley():
    rows, cols = np.mgrid[0:30, 0:20]
    z = 0.1 * np.abs(cols - 10) + 0.05 * (29 - rows) + 10.0
    dem = grid(z, dx=20.0, dy=20.0)
    fd = hydrology.flow_direction(hydrology.fill_depressions(dem))
    return fd, (float(fd.x[10]), float(fd.y[29]))


def test_time_area_reaches_rational_equilibrium_and_conserves_volume():
    fd, outlet = _valley()
    ws = hydrology.watersheds(fd, [outlet])
    area = float((ws == 1).sum()) * 400.0
    storm = hydrology.hyetograph(np.full(60, 20.0 / 60), 1.0)  # 20 mm/h for 60 one-minute steps
    assert np.allclose(storm.values, 20.0)
    q = routing.time_area_hydrograph(fd, storm, outlet, velocity=0.5)
    assert math.isclose(q.attrs["area_m2"], area)
    # with C = 1 the rational method's peak: i A once the whole catchment contributes
    assert math.isclose(float(q.max()), 20.0 / 3.6e6 * area, rel_tol=1e-12)
    # all the rain leaves: sum(q dt) = rain depth x area
    assert math.isclose(float(q.sum()) * 60.0, 20.0 / 1000 * area, rel_tol=1e-12)
    # travel time to the outlet of the farthest cell bounds the time to equilibrium
    tmax = float(routing.flow_length(fd).where(ws == 1).max()) / 0.5
    assert float(q.time[int(np.argmax(q.values > 0.999 * float(q.max())))]) <= tmax + 60.0
    # a faster flow peaks no lower and ends earlier
    fast = routing.time_area_hydrograph(fd, storm, outlet, velocity=2.0)
    assert fast.sizes["time"] < q.sizes["time"]


def test_time_area_with_a_short_burst_spreads_over_the_isochrones():
    fd, outlet = _valley()
    burst = xr.DataArray(np.r_[30.0, np.zeros(9)], dims="time", coords={"time": np.arange(10) * 120.0})
    q = routing.time_area_hydrograph(fd, burst, outlet, velocity=1.0)
    # one 2-minute burst: the hydrograph is the time-area histogram times the rate
    ws = hydrology.watersheds(fd, [outlet]).values == 1
    tau = (routing.flow_length(fd).values - float(routing.flow_length(fd).sel(x=outlet[0], y=outlet[1]))) / 1.0
    hist = np.bincount(np.floor(tau[ws] / 120.0 + 1e-9).astype(int), minlength=q.sizes["time"]) * 400.0
    np.testing.assert_allclose(q.values, 30.0 / 3.6e6 * hist[: q.sizes["time"]], rtol=1e-12)


def test_time_area_travel_times_follow_the_velocity_grid():
    fd, outlet = _valley()
    burst = xr.DataArray(np.r_[30.0, np.zeros(29)], dims="time", coords={"time": np.arange(30) * 60.0})
    # slow on the western half (0.5 m/s), fast on the eastern (2 m/s): travel time = sum over the path of
    # each step's length over the velocity of the cell it leaves, walked here cell by cell
    v = fd.copy(data=np.where(np.arange(fd.sizes["x"])[None, :] < 10, 0.5, 2.0) * np.ones(fd.shape))
    q = routing.time_area_hydrograph(fd, burst, outlet, velocity=v)
    f, rec = fd.values, receivers(fd.values)
    dx = float(abs(fd.x[1] - fd.x[0]))
    dy = float(abs(fd.y[1] - fd.y[0]))
    ws = hydrology.watersheds(fd, [outlet]).values == 1
    tau = []
    for s in np.flatnonzero(ws):
        total, i = 0.0, s
        while rec[i] >= 0 and ws.flat[rec[i]]:
            dr, dc = OFFSET[int(f.flat[i])]
            total += math.hypot(dr * dy, dc * dx) / v.values.flat[i]
            i = rec[i]
        tau.append(total)
    hist = np.bincount(np.floor(np.array(tau) / 60.0 + 1e-9).astype(int), minlength=q.sizes["time"]) * dx * dy
    np.testing.assert_allclose(q.values, 30.0 / 3.6e6 * hist[: q.sizes["time"]], rtol=1e-12)
    # a uniform 0.5 m/s doubles every travel time of the 1 m/s case
    slow = routing.time_area_hydrograph(fd, burst, outlet, velocity=0.5)
    fast = routing.time_area_hydrograph(fd, burst, outlet, velocity=1.0)
    assert float(slow.idxmax()) > float(fast.idxmax())
    tau1 = (routing.flow_length(fd).values - float(routing.flow_length(fd).sel(x=outlet[0], y=outlet[1])))[ws]
    hist2 = np.bincount(np.floor(tau1 / 0.5 / 60.0 + 1e-9).astype(int), minlength=slow.sizes["time"]) * dx * dy
    np.testing.assert_allclose(slow.values, 30.0 / 3.6e6 * hist2[: slow.sizes["time"]], rtol=1e-12)


def test_docstring_examples():
    res = doctest.testmod(routing, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
