"""Filling, D8 and accumulation: Hypothesis properties against slow references (JIT on), invariants, examples."""

from __future__ import annotations

import doctest

import numba
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import hydrology
from hydrology import _kernels_terrain as _k
from hydrology import terrain
from hydrology._grid import check_grid
from hydrology.errors import CRSError, FlowDirectionError, GridError, ParameterError
from tests.hydrology.references import (
    accumulation_reference,
    d8_reference,
    fill_reference,
    grid,
    outlet_mask,
    path_lengths,
)

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def dems(draw, dtype=np.float64):
    """Small DEMs with integer-valued heights (many ties and flats) and sometimes no-data holes."""
    ny = draw(st.integers(2, 9))
    nx = draw(st.integers(2, 9))
    z = draw(arrays(np.float64, (ny, nx), elements=st.integers(0, 6).map(float)))
    if draw(st.booleans()):
        holes = draw(arrays(np.bool_, (ny, nx), elements=st.booleans()))
        z = np.where(holes & (draw(st.integers(0, 3)) == 0), np.nan, z)
    return z.astype(dtype)


def is_outlet_or_edge(z):
    return outlet_mask(z) | np.isnan(z)


# ------------------------------------------------------------------------------------------------ filling


@PROPS
@given(dems())
def test_fill_equals_minimax_reference(z):
    out = hydrology.fill_depressions(grid(z)).values
    np.testing.assert_array_equal(out, fill_reference(z))


@PROPS
@given(dems(np.float32))
def test_fill_float32_keeps_dtype_and_equals_reference(z):
    out = hydrology.fill_depressions(grid(z))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.values, fill_reference(z).astype(np.float32))


@PROPS
@given(dems(), st.sampled_from([np.float32, np.float64]))
def test_fill_epsilon_gives_every_cell_a_strictly_lower_neighbour(z, dtype):
    z = z.astype(dtype)
    eps = hydrology.fill_depressions(grid(z), epsilon=True).values
    flat = fill_reference(z).astype(dtype)
    valid = ~np.isnan(z)
    assert np.all(eps[valid] >= flat[valid])
    # the imposed gradient is tiny: far below the 1 m height steps of these DEMs
    assert np.all(eps[valid] - flat[valid] < 1e-3)
    # every cell that is not an outlet has a strictly lower valid neighbour
    fd = hydrology.flow_direction(grid(eps), flats="keep").values
    interior = valid & ~outlet_mask(z)
    assert np.all(fd[interior] != 0)


def test_fill_known_depression_and_nan_outlet():
    z = np.array([[5, 5, 5, 5], [5, 1, 2, 5], [5, 5, 3, 5], [5, 5, 4, 5]], float)
    out = hydrology.fill_depressions(grid(z)).values
    assert out[1:3, 1:3].tolist() == [[4.0, 4.0], [5.0, 4.0]]
    # a no-data hole next to the pit is an outlet: nothing is raised
    z2 = z.copy()
    z2[1, 0] = np.nan
    out2 = hydrology.fill_depressions(grid(z2)).values
    np.testing.assert_array_equal(out2[~np.isnan(z2)], z2[~np.isnan(z2)])
    assert np.isnan(out2[1, 0])


# ------------------------------------------------------------------------------------------------ D8


@PROPS
@given(dems(), st.floats(0.5, 30.0), st.floats(0.5, 30.0))
def test_d8_equals_reference_anisotropic(z, dx, dy):
    dem = grid(z, dx=dx, dy=dy)
    fd = hydrology.flow_direction(dem, flats="keep").values
    g = check_grid(dem, "dem")  # the cell sizes as read back from the coordinates (rounding noise included)
    np.testing.assert_allclose([g.dx[0], g.dy[0]], [dx, dy], rtol=1e-8)
    np.testing.assert_array_equal(fd, d8_reference(z, g.dx, g.dy))


@PROPS
@given(dems())
def test_every_cell_of_a_filled_dem_drains(z):
    """No cycles and no interior 0 after filling + flat resolution; non-flat cells keep steepest descent."""
    filled = hydrology.fill_depressions(grid(z))
    fd = hydrology.flow_direction(filled).values
    f = filled.values
    interior = ~is_outlet_or_edge(z)
    assert np.all(fd[interior] != 0), "interior pit left"
    assert np.all((fd == 255) == np.isnan(z))
    path_lengths(fd)  # raises on a cycle
    steep = d8_reference(f)
    has_lower = (steep != 0) & (steep != 255)
    np.testing.assert_array_equal(fd[has_lower], steep[has_lower])
    # flat cells route to a neighbour of the same height (within their flat)
    from tests.hydrology.references import OFFSET

    for r, c in zip(*np.nonzero(interior & ~has_lower), strict=True):
        dr, dc = OFFSET[int(fd[r, c])]
        assert f[r + dr, c + dc] == f[r, c]


def test_flats_drain_towards_lower_and_away_from_higher():
    # a 5-wide flat at 1 m between a 9 m wall (west) and an outlet column at 0 m (east)
    z = np.full((7, 7), 9.0)
    z[1:6, 1:6] = 1.0
    z[3, 6] = 0.0  # the only way out, on the east edge
    fd = hydrology.flow_direction(grid(z)).values
    # the cell next to the outlet points at it; the whole flat drains through it
    assert fd[3, 5] == hydrology.D8_CODES["E"]
    assert fd[2, 5] == hydrology.D8_CODES["SE"] and fd[4, 5] == hydrology.D8_CODES["NE"]
    acc = hydrology.flow_accumulation(grid(fd)).values
    assert acc[3, 6] == 49  # every cell, walls included, ends at the single outlet
    # no flat cell points back towards the wall it came from: western column moves east
    assert all(fd[r, 1] in {hydrology.D8_CODES[k] for k in ("E", "NE", "SE")} for r in range(1, 6))


def test_away_from_higher_pulls_flow_off_the_walls():
    # a 7 x 9 flat walled in at 9 m, one outlet in the middle of the east side. The flat corners' east and
    # diagonal neighbours are equally far from the outlet (towards-lower ties, and E would win as cardinal);
    # the away-from-higher gradient sends them diagonally, off the walls, towards the flat's middle row
    z = np.full((9, 11), 9.0)
    z[1:8, 1:10] = 1.0
    z[4, 10] = 0.0
    fd = hydrology.flow_direction(grid(z)).values
    assert fd[1, 1] == hydrology.D8_CODES["SE"] and fd[7, 1] == hydrology.D8_CODES["NE"]
    assert (fd[4, 1:10] == hydrology.D8_CODES["E"]).all()  # the middle row runs straight to the outlet
    keep = hydrology.flow_direction(grid(z), flats="keep").values
    assert (keep[1:8, 1:9] == 0).all()  # without resolution these are all pits


def test_d8_known_values_and_edges():
    z = np.array([[3, 2, 3], [2, 1, 2], [3, 2, 0]], float)
    fd = hydrology.flow_direction(grid(z)).values
    assert fd.tolist() == [[2, 4, 8], [1, 2, 4], [128, 1, 0]]


def test_d8_anisotropic_cells_change_the_choice():
    # drop 1 to the east and 1.2 to the south: with dx=10, dy=20 east is steeper (0.1 > 0.06)
    z = np.array([[5, 5, 5], [5, 3, 2], [5, 1.8, 5]])
    assert hydrology.flow_direction(grid(z, dx=10, dy=20), flats="keep").values[1, 1] == 1
    assert hydrology.flow_direction(grid(z, dx=10, dy=10), flats="keep").values[1, 1] == 4


def test_geographic_crs_uses_true_cell_sizes():
    # at 60 N a 0.01-degree cell is ~558 m wide and ~1114 m high, so a drop of 1 east (0.0018/m) beats a
    # drop of 1.5 south (0.0013/m); in degrees (square cells) south would win
    z = np.array([[5, 5, 5], [5, 3, 2], [5, 1.5, 5]])
    da = xr.DataArray(z, dims=("y", "x"), coords={"y": [60.01, 60.0, 59.99], "x": [10.0, 10.01, 10.02]})
    da = da.rio.write_crs("EPSG:4326")
    assert hydrology.flow_direction(da, flats="keep").values[1, 1] == 1
    g = check_grid(da, "dem")
    assert g.geographic
    np.testing.assert_allclose(g.dy[1], 1114.1, rtol=1e-4)  # 1 deg of latitude at 60 N is 111.41 km (WGS84)
    np.testing.assert_allclose(g.dx[1], 558.0, rtol=2e-3)  # parallel arc of 0.01 deg at 60 N


@PROPS
@given(dems())
def test_south_up_grid_gives_the_same_compass_directions(z):
    north = hydrology.flow_direction(hydrology.fill_depressions(grid(z)))
    south = hydrology.flow_direction(hydrology.fill_depressions(grid(z, south_up=True)))
    np.testing.assert_array_equal(south.values[::-1], north.values)
    acc_n = hydrology.flow_accumulation(north).values
    acc_s = hydrology.flow_accumulation(south).values
    np.testing.assert_array_equal(acc_s[::-1], acc_n)


# ------------------------------------------------------------------------------------------------ accumulation


@PROPS
@given(dems(), st.booleans())
def test_accumulation_equals_path_walking_reference(z, weighted):
    fd = hydrology.flow_direction(hydrology.fill_depressions(grid(z)))
    w = None
    if weighted:
        w = grid(np.arange(z.size, dtype=float).reshape(z.shape) * 0.5)
    acc = hydrology.flow_accumulation(fd, weights=w).values
    ref = accumulation_reference(fd.values, None if w is None else w.values)
    np.testing.assert_allclose(acc, ref, equal_nan=True)
    assert acc.dtype == np.float64
    # mass balance: what leaves through the outlets is everything
    ends = (fd.values == 0) | _leaves(fd.values)
    total = z.size - np.isnan(z).sum() if w is None else np.nansum(np.where(np.isnan(z), 0, w.values))
    np.testing.assert_allclose(np.nansum(acc[ends]), total)


def _leaves(fd):
    from tests.hydrology.references import receivers

    rec = receivers(fd).reshape(fd.shape)
    return (rec < 0) & (fd != 255) & (fd != 0)


def test_weights_stored_south_up_are_not_mirrored():
    # three rows flowing east; the weight 100 sits on the north-west cell, whichever way either grid is stored
    fd = grid(np.ones((3, 3)), dx=1.0, dy=1.0).copy(data=np.full((3, 3), 1, dtype=np.uint8))
    fd[:, 2] = 0
    w = np.zeros((3, 3))
    w[0, 0] = 100.0
    north_up = fd.copy(data=w)
    south_up = north_up.isel(y=slice(None, None, -1))
    for weights in (north_up, south_up):
        acc = hydrology.flow_accumulation(fd, weights=weights)
        assert float(acc.sel(y=fd.y[0], x=fd.x[2])) == 100.0       # the north-east outlet
        assert float(acc.sel(y=fd.y[2], x=fd.x[2])) == 0.0         # the south-east one


def test_accumulation_refuses_cycles_and_bad_codes():
    cyc = grid(np.array([[1, 16], [64, 0]], np.uint8))  # E then W: a 2-cell loop
    with pytest.raises(FlowDirectionError, match="cycle"):
        hydrology.flow_accumulation(cyc)
    with pytest.raises(FlowDirectionError, match="not an ESRI D8 code"):
        hydrology.flow_accumulation(grid(np.array([[3, 0]], np.uint8)))


def test_accumulation_reads_custom_nodata_and_float_codes():
    fd = grid(np.array([[1, 1, 0], [247, 247, 64]], np.uint8)).rio.write_nodata(247)
    acc = hydrology.flow_accumulation(fd).values
    assert acc[0].tolist() == [1.0, 2.0, 4.0]
    assert np.isnan(acc[1, :2]).all()
    fdf = grid(np.array([[1.0, 1.0, 0.0], [np.nan, np.nan, 64.0]]))
    np.testing.assert_array_equal(hydrology.flow_accumulation(fdf).values, acc)


# ------------------------------------------------------------------------------------------------ xarray contract


def test_outputs_keep_coords_crs_and_mask():
    z = np.array([[4.0, 3.0, np.nan], [3.0, 2.0, 1.0], [2.0, 1.0, 0.0]])
    dem = grid(z, crs="EPSG:28992").assign_attrs(units="m")
    dem = dem.assign_coords(band=1)
    for out in (hydrology.fill_depressions(dem), hydrology.flow_direction(dem)):
        assert out.rio.crs.to_epsg() == 28992
        np.testing.assert_array_equal(out.x, dem.x)
        np.testing.assert_array_equal(out.y, dem.y)
        assert int(out.band) == 1
    fd = hydrology.flow_direction(dem)
    assert fd.dtype == np.uint8 and fd.rio.nodata == 255 and fd.values[0, 2] == 255
    acc = hydrology.flow_accumulation(fd)
    assert np.isnan(acc.values[0, 2]) and acc.rio.crs.to_epsg() == 28992
    assert hydrology.fill_depressions(dem).attrs["units"] == "m"


def test_rio_nodata_value_is_no_data():
    z = np.array([[5.0, 5.0, 5.0], [5.0, -9999.0, 5.0], [5.0, 5.0, 5.0]])
    dem = grid(z).rio.write_nodata(-9999.0)
    out = hydrology.fill_depressions(dem)
    assert np.isnan(out.values[1, 1])
    assert hydrology.flow_direction(dem).values[1, 1] == 255


def test_input_errors_are_clear():
    with pytest.raises(CRSError, match="write_crs"):
        hydrology.fill_depressions(grid(np.ones((3, 3)), crs=None))
    with pytest.raises(GridError, match="DataArray"):
        hydrology.fill_depressions(np.ones((3, 3)))
    with pytest.raises(GridError, match="2-D"):
        hydrology.fill_depressions(grid(np.ones((3, 3))).expand_dims(t=2))
    with pytest.raises(GridError, match="infinite"):
        hydrology.fill_depressions(grid(np.array([[1.0, np.inf], [1.0, 1.0]])))
    irregular = grid(np.ones((3, 3))).assign_coords(x=[0.0, 1.0, 5.0])
    with pytest.raises(GridError, match="regularly spaced"):
        hydrology.flow_direction(irregular)
    with pytest.raises(ParameterError, match="flats"):
        hydrology.flow_direction(grid(np.ones((3, 3))), flats="resolv")
    with pytest.raises(GridError, match="shape"):
        hydrology.flow_accumulation(grid(np.zeros((2, 2), np.uint8)), weights=grid(np.ones((3, 3))))
    assert issubclass(GridError, ValueError) and issubclass(CRSError, hydrology.HydrologyError)


def test_docstring_examples():
    for mod in (terrain,):
        res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.attempted > 0 and res.failed == 0


def test_undrained_flat_next_to_another_flat_stays_a_pit():
    # on an unfilled DEM: a closed 2-cell basin at 1 m (no way out) next to a 3 m flat that drains east; the
    # basin stays pits, (1, 3) falls into it, and the flat cell (1, 4) goes east (tie between two low edges
    # at equal masks, first in NE, E, ... order)
    z = np.array(
        [
            [9, 9, 9, 9, 9, 9, 9],
            [9, 1, 1, 3, 3, 3, 2],
            [9, 9, 9, 9, 9, 9, 9],
        ],
        float,
    )
    fd = hydrology.flow_direction(grid(z)).values
    assert fd[1, 1] == 0 and fd[1, 2] == 0
    assert fd[1, 3] == hydrology.D8_CODES["W"] and fd[1, 4] == hydrology.D8_CODES["E"]
    assert fd[1, 5] == hydrology.D8_CODES["E"]


# ------------------------------------------------------------------------------------------------ parallel kernels


@pytest.fixture
def threads():
    """Set numba's thread count for one test (1, or 2 where the machine has 2), restored afterwards."""
    before = numba.get_num_threads()
    yield lambda n: numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(before)


def _terraced_dem(seed=7, shape=(150, 130)):
    """Integer heights on a gentle slope (flats of every size crossing strip borders), one flat of 1,800
    cells (larger than a strip's buffers), a closed basin and no-data holes."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    z = np.round(rng.random(shape) * 3 + 0.02 * np.arange(ny)[:, None] + 0.01 * np.arange(nx)[None, :])
    z[40:100, 20:50] = 1.0
    z[5:12, 100:110] = 9.0
    z[8:10, 104:106] = 0.0
    z[rng.random(shape) < 0.01] = np.nan
    return z


def _d8_then_flats(z, nstrips):
    f = hydrology.fill_depressions(grid(z)).values
    fd = np.empty(z.shape, np.uint8)
    d = np.full(z.shape[0], 10.0)
    nflat = _k.d8_directions(f, d, d, fd)
    pits = _k.resolve_flats(f, fd, nstrips)
    return fd, nflat, pits


def test_parallel_d8_and_flats_do_not_depend_on_threads_or_strips(threads):
    z = _terraced_dem()
    threads(1)
    one, nflat, pits = _d8_then_flats(z, 1)  # one strip: every flat resolved by the sequential path
    assert nflat > 2000 and pits == 0
    keep = hydrology.flow_direction(grid(fill_reference(z)), flats="keep").values
    np.testing.assert_array_equal(keep, d8_reference(fill_reference(z)))
    threads(2)
    np.testing.assert_array_equal(hydrology.flow_direction(grid(fill_reference(z)), flats="keep").values, keep)
    for nstrips in (0, 3, 37, z.shape[0]):  # auto, few, many, one row each (every multi-row flat crosses)
        fd, _, p = _d8_then_flats(z, nstrips)
        np.testing.assert_array_equal(fd, one)
        assert p == 0
    fd = hydrology.flow_direction(hydrology.fill_depressions(grid(z))).values
    np.testing.assert_array_equal(fd, one)
    path_lengths(fd)  # raises on a cycle
    assert np.all(fd[~is_outlet_or_edge(z)] != 0)


@PROPS
@given(dems(), st.integers(1, 9), st.sampled_from([np.float32, np.float64]))
def test_strip_parallel_fill_equals_reference(z, nstrips, dtype):
    """Barnes 2016 over strips (down to one row each, with no-data on strip borders) gives the exact fill."""
    z = z.astype(dtype)
    out = terrain._fill_strips(z, min(nstrips, z.shape[0]))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, fill_reference(z).astype(dtype))


def test_strip_parallel_fill_does_not_depend_on_threads(threads):
    z = _terraced_dem(seed=3, shape=(300, 90)) + np.random.default_rng(3).random((300, 90)) * 0.5
    ref = fill_reference(z)
    threads(1)
    np.testing.assert_array_equal(terrain._fill_strips(z, 1), ref)
    for nthreads in (1, 2):
        threads(nthreads)
        for nstrips in (2, 3, 8, 300):
            np.testing.assert_array_equal(terrain._fill_strips(z, nstrips), ref)
    threads(2)  # the public function takes the strip path on 2 threads with >= 256 rows
    np.testing.assert_array_equal(hydrology.fill_depressions(grid(z)).values, ref)


def test_parallel_accumulation_does_not_depend_on_threads(threads):
    fd = hydrology.flow_direction(hydrology.fill_depressions(grid(_terraced_dem(seed=5))))
    w = grid(np.random.default_rng(5).random(fd.shape))
    ref = accumulation_reference(fd.values, w.values)
    for nthreads in (1, 2):
        threads(nthreads)
        np.testing.assert_allclose(hydrology.flow_accumulation(fd, weights=w).values, ref, rtol=1e-12, equal_nan=True)
        assert np.nansum(hydrology.flow_accumulation(fd).values[fd.values == 0]) > 0


@numba.njit(cache=True)
def _heap_sort(keys, vals, packed):
    """Push every (key, value) into the fill's 4-ary heap (from 1 slot, so it grows), pop them all."""
    hk = np.empty(1, dtype=np.uint64)
    hv = np.empty(0 if packed else 1, dtype=np.int64)
    out = np.empty(keys.size, dtype=np.int64)
    n = 0
    for i in range(keys.size):
        key = (keys[i] << np.uint64(32)) | np.uint64(vals[i]) if packed else keys[i]
        hk, hv = _k._hq_push(hk, hv, n, key, vals[i], packed)
        n += 1
    for i in range(keys.size):
        out[i] = _k._hq_pop(hk, hv, n, packed)
        n -= 1
    return out


@PROPS
@given(st.lists(st.integers(0, 2**32 - 1), max_size=300), st.booleans(), st.integers(1, 40))
def test_fill_heap_pops_in_key_order(raw, packed, spread):
    """The 4-ary heap of the flat fill pops values in nondecreasing key order (many ties), packed or not."""
    keys = np.array([k // spread for k in raw] if raw else [], dtype=np.uint64) % np.uint64(spread * 7 + 1)
    vals = np.arange(keys.size, dtype=np.int64)
    popped = _heap_sort(keys, vals, packed)
    assert sorted(popped.tolist()) == vals.tolist()
    got = keys[popped]
    assert np.all(got[1:] >= got[:-1])
    if packed:  # the value breaks ties: the order is exactly (key, value)
        np.testing.assert_array_equal(popped, np.lexsort((vals, keys)))


def _cells_on_a_cycle(fdir):
    """Cells whose path comes back to them (with one receiver per cell, nothing lies below a cycle but the
    cycle, and cells above one still finish): slow reference, follow each path for n steps."""
    from tests.hydrology.references import receivers

    rec = receivers(fdir)
    stuck = 0
    for s in range(fdir.size):
        i = rec[s]
        for _ in range(fdir.size):
            if i < 0 or i == s:
                break
            i = rec[i]
        stuck += i == s
    return stuck


@PROPS
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.sampled_from(list(_k.CODES) + [0, 255])),
    st.integers(1, 10),
    st.booleans(),
)
def test_strip_accumulation_equals_reference_and_counts_cycles(fd, nstrips, weighted):
    """The strip-parallel walk on any codes (cycles included): exact totals where no cycle is, and the number of
    cells on a cycle, for every strip count and 1 or 2 threads."""
    w = np.arange(fd.size, dtype=float).reshape(fd.shape) * 0.25 if weighted else np.zeros((1, 1))
    stuck = _cells_on_a_cycle(fd)
    before = numba.get_num_threads()
    try:
        for nthreads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(nthreads)
            acc = np.empty(fd.shape)
            left = _k.flow_accumulation(fd, w, weighted, _k.CODE_DR, _k.CODE_DC, acc, nstrips)
            assert left == stuck
            if stuck == 0:
                ref = accumulation_reference(fd, w if weighted else None)
                np.testing.assert_array_equal(acc[fd != 255], ref[fd != 255])  # quarters: exact in float64
                assert np.isnan(acc[fd == 255]).all()
    finally:
        numba.set_num_threads(before)
