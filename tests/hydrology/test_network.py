"""Watersheds, snapping, Strahler streams and lines, HAND, slope and MFD: references, invariants, anchors."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import rioxarray
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hydrology
from hydrology import network
from hydrology.errors import ParameterError
from tests.hydrology.references import accumulation_reference, grid, receivers
from tests.hydrology.test_terrain import dems

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DATA = Path(__file__).parents[1] / "data" / "hydrology"


def _routed(z):
    dem = hydrology.fill_depressions(grid(z))
    fd = hydrology.flow_direction(dem)
    return dem, fd, hydrology.flow_accumulation(fd)


def _centre(da, r, c):
    return float(da.x[c]), float(da.y[r])


@PROPS
@given(dems(), st.data())
def test_watersheds_equal_first_outlet_downstream(z, data):
    _, fd, acc = _routed(z)
    valid = np.argwhere(~np.isnan(z))
    if len(valid) == 0:
        return
    picks = data.draw(st.lists(st.sampled_from([tuple(v) for v in valid]), min_size=1, max_size=3, unique=True))
    labels = hydrology.watersheds(fd, [_centre(fd, r, c) for r, c in picks]).values
    rec = receivers(fd.values)
    seeds = {r * z.shape[1] + c: k + 1 for k, (r, c) in enumerate(picks)}
    for s in range(z.size):
        i, lab = s, 0
        while i >= 0:
            if i in seeds:
                lab = seeds[i]
                break
            i = rec[i]
        assert labels.flat[s] == (lab if not np.isnan(z.flat[s]) else 0)
    # one outlet: its watershed has exactly as many cells as the accumulation there
    r, c = picks[0]
    one = hydrology.watersheds(fd, [_centre(fd, r, c)]).values
    assert (one == 1).sum() == acc.values[r, c]


def test_snapping_moves_the_outlet_onto_the_stream():
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:40, 0:40]
    z = 0.2 * np.abs(cols - 20) + 0.05 * (39 - rows) + 0.01 * rng.random((40, 40))  # a valley along x = 20
    _, fd, acc = _routed(z)
    off_stream = _centre(fd, 39 - 1, 18)  # two cells west of the valley bottom, one row up from the edge
    small = hydrology.watersheds(fd, [off_stream]).values
    snapped = network.snap_outlets([off_stream], acc, radius=25.0)[0]
    r = int(np.argmin(np.abs(fd.y.values - snapped[1])))
    c = int(np.argmin(np.abs(fd.x.values - snapped[0])))
    assert c == 20
    big = hydrology.watersheds(fd, [off_stream], acc=acc, snap_radius=25.0).values
    assert (big == 1).sum() == acc.values[r, c] > 20 * (small == 1).sum()
    with pytest.raises(ParameterError, match="outside the grid"):
        hydrology.watersheds(fd, [(0.0, 0.0)])


def _strahler_reference(fd, stream):
    rec = receivers(fd)
    acc = accumulation_reference(fd).ravel()
    order = np.zeros(fd.size, dtype=int)
    for i in np.argsort(acc, kind="stable"):  # upstream cells have smaller accumulation
        if not stream.flat[i]:
            continue
        ins = [order[j] for j in range(fd.size) if rec[j] == i and stream.flat[j]]
        if not ins:
            order[i] = 1
        else:
            m = max(ins)
            order[i] = m + 1 if ins.count(m) >= 2 else m
    return order.reshape(fd.shape)


@PROPS
@given(dems(), st.integers(1, 6))
def test_strahler_equals_reference(z, threshold):
    _, fd, acc = _routed(z)
    order = hydrology.streams(acc, threshold, fd)
    stream = np.nan_to_num(acc.values, nan=0) >= threshold
    np.testing.assert_array_equal(order.values, _strahler_reference(fd.values, stream))
    lines = hydrology.stream_lines(order, fd)
    assert lines.crs == fd.rio.crs
    if stream.any():
        # every stream cell is on exactly one segment (a segment's last vertex is the next segment's head)
        assert lines["cells"].sum() == stream.sum()
        assert set(lines["strahler"]) <= set(np.unique(order.values[stream]))


def test_strahler_agrees_with_pyflwdir_on_the_rhine():
    import pyflwdir
    shipped = rioxarray.open_rasterio(DATA / "rhine_d8_esri.tif").squeeze("band", drop=True).rio.write_nodata(247)
    acc = hydrology.flow_accumulation(shipped)
    order = hydrology.streams(acc, 100, shipped)
    d = shipped.values
    flw = pyflwdir.from_array(np.where(d == 247, 247, d).astype(np.uint8), ftype="d8", check_ftype=True)
    ref = flw.stream_order(type="strahler", mask=np.nan_to_num(acc.values) >= 100)
    np.testing.assert_array_equal(order.values, np.where(ref > 0, ref, 0))
    assert order.values.max() >= 5  # the Rhine main stem is a high-order river at this threshold
    lines = hydrology.stream_lines(order, shipped)
    assert lines["cells"].sum() == (order.values > 0).sum()
    assert lines.crs.to_epsg() == 4326


@PROPS
@given(dems(), st.integers(1, 5))
def test_hand_equals_walk_to_the_first_stream_cell(z, threshold):
    dem, fd, acc = _routed(z)
    order = hydrology.streams(acc, threshold, fd)
    h = hydrology.hand(dem, fd, order).values
    rec = receivers(fd.values)
    f = dem.values.ravel()
    s = order.values.ravel() > 0
    for i0 in range(z.size):
        if np.isnan(f[i0]):
            assert np.isnan(h.flat[i0])
            continue
        i = i0
        while i >= 0 and not s[i]:
            i = rec[i]
        expect = f[i0] - f[i] if i >= 0 else np.nan
        np.testing.assert_equal(h.flat[i0], expect)
    assert np.all(h[~np.isnan(h)] >= 0)  # on a filled DEM the path to the stream never climbs


@settings(max_examples=50, deadline=None)
@given(st.floats(-2, 2), st.floats(-2, 2), st.floats(1, 30), st.floats(1, 30))
def test_slope_of_a_plane_is_exact(a, b, dx, dy):
    rows, cols = np.mgrid[0:6, 0:7]
    x = cols * dx
    y = -rows * dy  # north-up: y decreases with the row
    dem = grid(a * x + b * y, dx=dx, dy=dy)
    s = network.slope(dem, units="ratio").values
    np.testing.assert_allclose(s, np.hypot(a, b), rtol=1e-9, atol=1e-12)  # edges and corners too
    deg = network.slope(dem).values[2, 2]
    np.testing.assert_allclose(deg, np.degrees(np.arctan(np.hypot(a, b))), rtol=1e-9, atol=1e-9)
    # holes: a cell, a 2x2 block and a row end; every valid cell keeps a valid neighbour along each axis
    hole = ((rows == 3) & (cols == 3)) | ((rows <= 1) & (cols >= 5)) | ((rows == 5) & (cols == 0))
    holed = dem.copy(data=np.where(hole, np.nan, dem.values))
    s2 = network.slope(holed, units="ratio").values
    assert np.isnan(s2[hole]).all()
    np.testing.assert_allclose(s2[~hole], np.hypot(a, b), rtol=1e-9, atol=1e-12)


def test_slope_is_horns_stencil_inside_and_zero_for_an_isolated_cell():
    z = np.array([[1.0, 4.0, 2.0, 8.0], [3.0, 0.0, 5.0, 1.0], [7.0, 2.0, 6.0, 9.0], [np.nan, np.nan, np.nan, 4.0]])
    s = network.slope(grid(z, dx=2.0, dy=5.0), units="ratio").values
    # Horn (1981) at (1, 1), written out: [(c + 2f + i) - (a + 2d + g)] / 8dx and [(g + 2h + i) - (a + 2b + c)] / 8dy
    gx = ((2 + 2 * 5 + 6) - (1 + 2 * 3 + 7)) / (8 * 2.0)
    gy = ((7 + 2 * 2 + 6) - (1 + 2 * 4 + 2)) / (8 * 5.0)
    assert s[1, 1] == pytest.approx(np.hypot(gx, gy), rel=1e-12)
    # (2, 0): the row below is no-data, so the y gradient is the 1-2-1 mean of one-sided differences upwards
    gx20 = (2 * (2 - 7) / 1 + 1 * (0 - 3) / 1) / 3 / 2.0
    gy20 = (2 * (7 - 3) + 1 * (2 - 0)) / 3 / 5.0
    assert s[2, 0] == pytest.approx(np.hypot(gx20, gy20), rel=1e-12)
    lone = np.full((3, 3), np.nan)
    lone[1, 1] = 5.0
    assert network.slope(grid(lone), units="ratio").values[1, 1] == 0.0


def _mfd_reference(frac, nodata):
    """acc = 1 + sum of upstream shares, solved as one linear system (I - F^T) acc = 1."""
    _, ny, nx = frac.shape
    n = ny * nx
    m = np.eye(n)
    dr = [-1, 0, 1, 1, 1, 0, -1, -1]
    dc = [1, 1, 1, 0, -1, -1, -1, 0]
    for k in range(8):
        for r in range(ny):
            for c in range(nx):
                f = frac[k, r, c]
                if f > 0:
                    m[(r + dr[k]) * nx + c + dc[k], r * nx + c] -= f
    w = np.where(nodata.ravel(), 0.0, 1.0)
    acc = np.linalg.solve(m, w).reshape(ny, nx)
    acc[nodata] = np.nan
    return acc


@PROPS
@given(dems(), st.sampled_from([(1.1, False), (1.0, True), (5.0, False)]))
def test_mfd_shares_and_accumulation_equal_linear_solve(z, opts):
    exponent, contour = opts
    dem = hydrology.fill_depressions(grid(z))
    frac = network.flow_direction_mfd(dem, exponent=exponent, contour_weights=contour)
    f = frac.values.astype(np.float64)
    nodata = np.isnan(z)
    total = f.sum(axis=0)
    d8 = hydrology.flow_direction(dem).values
    outlet = d8 == 0
    np.testing.assert_allclose(total[~nodata & ~outlet], 1.0, rtol=1e-6)
    assert np.all(total[outlet] == 0)
    acc = network.flow_accumulation_mfd(frac).values
    np.testing.assert_allclose(acc, _mfd_reference(np.nan_to_num(f), nodata), rtol=1e-5, equal_nan=True)
    # mass balance: everything leaves through the outlets
    np.testing.assert_allclose(np.nansum(acc[outlet]), (~nodata).sum(), rtol=1e-5)


def test_mfd_on_a_plane_matches_freeman_weights():
    cols = np.mgrid[0:5, 0:5][1]
    dem = grid(-0.1 * cols * 10.0 + 100.0)  # falls 1 m per 10 m cell towards the east
    f = network.flow_direction_mfd(dem, exponent=1.1).sel(direction=["NE", "E", "SE"]).values[:, 2, 2]
    card, diag = 0.1**1.1, (1.0 / np.hypot(10, 10)) ** 1.1
    np.testing.assert_allclose(f, np.array([diag, card, diag]) / (card + 2 * diag), rtol=1e-6)


def test_docstring_examples():
    res = doctest.testmod(network, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
