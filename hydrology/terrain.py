"""Terrain conditioning and D8 routing on xarray grids: filling, flow directions, flow accumulation.

All functions take and return 2-D ``xarray.DataArray`` objects with a CRS (rioxarray), keep the input's
coordinates, and treat NaN (or the raster's ``rio.nodata``) as no-data. Grids may be north-up or south-up;
ESRI direction codes always mean compass directions. For a geographic CRS, cell sizes are the true lengths on
the CRS's ellipsoid, row by row.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numba
import numpy as np
import xarray as xr

from hydrology import _kernels_terrain as _k
from hydrology._grid import check_grid, float_values, nodata_of, north_up, wrap
from hydrology.errors import FlowDirectionError, GridError, ParameterError

__all__ = [
    "D8_CODES",
    "fill_depressions",
    "flow_accumulation",
    "flow_direction",
]

#: ESRI D8 codes by compass direction; 0 = outlet or pit, 255 = no data.
D8_CODES = {"E": 1, "SE": 2, "S": 4, "SW": 8, "W": 16, "NW": 32, "N": 64, "NE": 128}


def _fbuf(dtype) -> tuple[np.ndarray, np.ndarray]:
    fbuf = np.zeros(1, dtype=dtype)
    return fbuf, fbuf.view(np.int32 if fbuf.itemsize == 4 else np.int64)


def fill_depressions(dem: xr.DataArray, *, epsilon: bool = False) -> xr.DataArray:
    """Fill every depression so that each cell can drain to the grid edge or to no-data.

    Priority-flood (Barnes, Lehman & Mulla 2014, the improved variant: cells inside a depression go through a
    plain FIFO "pit queue", only the rest through the priority queue, here a 4-ary heap on the float bits; a
    radix heap with ``epsilon=True``).
    Each cell is raised to the lowest level at which it spills: the minimum
    over paths to the edge of the highest elevation on the path. Filled depressions are flat; give the result
    to :func:`flow_direction`, which routes flats towards lower and away from higher terrain. With
    ``epsilon=True`` raised cells instead climb by the smallest representable step, so every cell has a
    strictly lower neighbour (Barnes et al. 2014, Priority-Flood+epsilon).

    With more than one numba thread (``numba.set_num_threads``) and at least 256 rows, the default (flat)
    fill runs in parallel over strips of rows, two per thread (Barnes 2016, parallel priority-flood: each strip is flooded
    with its inner borders as labelled outlets, the labels' spill levels are solved on the small graph of
    where they meet, then cells are raised to them); the result is identical to the one-piece fill.

    Parameters
    ----------
    dem : xarray.DataArray
        Elevations (y, x) with a CRS; NaN is no-data and acts as an outlet, like the grid edge.
    epsilon : bool, default False
        Impose the smallest gradient on filled areas instead of leaving them flat.

    Returns
    -------
    xarray.DataArray
        The filled surface, same dtype (float32 stays float32; integers become float64), coords and CRS.
        Memory, in bytes per cell: the output (4 for float32, 8 for float64; the input is not copied when it
        is already a north-up float array), 1 for visited flags, and in the parallel fill up to 2 for strip
        labels (4 beyond 32,767 columns; written only where water leaves through a strip border); plus the
        queues: 8 bytes per queued cell of the flooding front for float32 (16 for float64 and with
        ``epsilon=True``), 8 per cell of the largest depression front, and 24 per pair of neighbouring cells
        with different labels. No recursion.

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> z = np.array([[5, 5, 5, 5], [5, 1, 2, 5], [5, 5, 3, 5], [5, 5, 4, 5]], float)
    >>> dem = xr.DataArray(z, dims=("y", "x"), coords={"y": [3.5, 2.5, 1.5, 0.5], "x": [0.5, 1.5, 2.5, 3.5]})
    >>> filled = fill_depressions(dem.rio.write_crs("EPSG:32631"))
    >>> filled.values[1:3, 1:3].tolist()
    [[4.0, 4.0], [5.0, 4.0]]
    """
    grid = check_grid(dem, "dem")
    z = float_values(dem, grid, "dem")
    if epsilon:
        out = np.empty_like(z)
        fbuf, ibuf = _fbuf(z.dtype)
        nbits = 8 * z.dtype.itemsize
        bits = out.reshape(-1).view(np.uint64 if nbits == 64 else np.uint32)
        _k.fill_depressions(z, out, bits, nbits, True, fbuf, ibuf)
    else:
        threads = numba.get_num_threads()
        nstrips = 1 if threads < 2 else min(_STRIPS_PER_THREAD * threads, z.shape[0] // _MIN_STRIP_ROWS)
        out = _fill_strips(z, max(1, nstrips))
    return wrap(out, dem, grid, dem.name or "filled", attrs=dem.attrs)


_MIN_STRIP_ROWS = 128  # below 2 x this many rows the grid is filled in one piece
# strips per numba thread in the parallel fill: a thread slowed by other work leaves strips to the others, and
# shorter flooding fronts keep the queue and the cache footprint small (4000²: 1.75 -> 1.49 CPU s from 2 to 4
# strips on 2 threads)
_STRIPS_PER_THREAD = 2


def _fill_strips(z: np.ndarray, nstrips: int) -> np.ndarray:
    """Parallel priority-flood (Barnes 2016) over ``nstrips`` strips of rows; the same result as one piece.

    Each strip is flooded on its own thread with its inner borders as labelled outlets (the kernels release
    the GIL); the labels' spill levels come from a minimax search over where labels meet; then every cell is
    raised to its label's spill level where that is higher. Exact: a cell's fill level is the larger of its
    strip-local level and its label's spill level. One strip is the plain fill (all labels 0, nothing to raise).
    """
    nr, nc = z.shape
    out = np.empty_like(z)
    nbits = 8 * z.dtype.itemsize
    bits = out.reshape(-1).view(np.uint64 if nbits == 64 else np.uint32)
    nlab = 1 + 2 * (nstrips - 1) * nc
    # calloc: pages where no label is written are never touched; 2 bytes per cell while the labels fit
    labels = np.zeros(z.shape, dtype=np.uint16 if nlab <= 65536 else np.int32)
    bounds = [nr * s // nstrips for s in range(nstrips + 1)]
    if nstrips == 1:  # labels stay 0: only read, so their pages are never touched
        _k.fill_strip(z, out, bits, nbits, 0, nr, labels, 0, 0)
        return out

    def strip(s: int) -> None:
        lab_top = 0 if s == 0 else 1 + (2 * s - 1) * nc  # label of the strip's top row, column 0
        lab_bot = 0 if s == nstrips - 1 else 1 + 2 * s * nc
        _k.fill_strip(z, out, bits, nbits, bounds[s], bounds[s + 1], labels, lab_top, lab_bot)

    with ThreadPoolExecutor(max_workers=min(nstrips, numba.get_num_threads())) as pool:
        list(pool.map(strip, range(nstrips)))  # waits for every strip and raises what a strip raised
    ea, eb, ew = _k.label_edges(out, labels)
    level = _k.spill_levels(nlab, ea, eb, ew)
    _k.raise_to_spill(out, labels, level.astype(out.dtype))
    return out


def flow_direction(
    dem: xr.DataArray,
    *,
    method: Literal["d8", "mfd"] = "d8",
    flats: Literal["resolve", "keep"] = "resolve",
    exponent: float = 1.1,
) -> xr.DataArray:
    """D8 flow directions by steepest descent (drop divided by the distance to the neighbour).

    Distances are the true cell width, height and diagonal of each row, so anisotropic cells and geographic
    grids are handled. Cells on the grid edge or next to no-data drain out of the domain (code 0) when none of
    their neighbours is lower. With ``flats="resolve"`` cells on flat areas that can drain are routed
    towards lower terrain and away from higher terrain (Barnes, Lehman & Mulla 2014); cells that cannot drain
    (undrained depressions of an unfilled DEM) are pits, code 0. On a :func:`fill_depressions` result no
    interior cell is left at 0 and the directions contain no cycle.

    Parameters
    ----------
    dem : xarray.DataArray
        Elevations (y, x) with a CRS, NaN = no-data; usually the output of :func:`fill_depressions`.
    method : {"d8", "mfd"}
        ``"mfd"`` returns multiple-flow-direction shares instead
        (:func:`hydrology.network.flow_direction_mfd`, Freeman weights with ``exponent``).
    flats : {"resolve", "keep"}
        ``"keep"`` leaves every interior cell without a lower neighbour at 0.

    Returns
    -------
    xarray.DataArray
        uint8 ESRI codes (1=E, 2=SE, 4=S, 8=SW, 16=W, 32=NW, 64=N, 128=NE), 0 = outlet or pit,
        255 = no-data (also set as ``rio.nodata``). Memory, in bytes per cell: 1 for the output (the DEM is
        not copied when it is already a north-up float array); while resolving flats 1 more (visited flags)
        and 4 per flat cell (gradient masks, never touched elsewhere), plus small per-strip queues. Rows run
        in parallel on numba's threads; the result does not depend on their number.

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> z = np.array([[3, 2, 3], [2, 1, 2], [3, 2, 0]], float)
    >>> dem = xr.DataArray(z, dims=("y", "x"), coords={"y": [2.5, 1.5, 0.5], "x": [0.5, 1.5, 2.5]})
    >>> flow_direction(dem.rio.write_crs("EPSG:32631")).values.tolist()
    [[2, 4, 8], [1, 2, 4], [128, 1, 0]]
    """
    if method == "mfd":
        from hydrology.network import flow_direction_mfd

        return flow_direction_mfd(dem, exponent=exponent)
    if method != "d8":
        raise ParameterError(f"method must be 'd8' or 'mfd', got {method!r}")
    if flats not in ("resolve", "keep"):
        raise ParameterError(f"flats must be 'resolve' or 'keep', got {flats!r}")
    grid = check_grid(dem, "dem")
    z = float_values(dem, grid, "dem")
    fdir = np.empty(z.shape, dtype=np.uint8)
    nflat = _k.d8_directions(z, grid.dx, grid.dy, fdir)
    if nflat:
        if flats == "resolve":
            _k.resolve_flats(z, fdir)
        else:
            fdir[fdir == _k.NOFLOW] = 0
    return wrap(fdir, dem, grid, "flow_direction", nodata=255, attrs={"convention": "ESRI D8"})


def _fdir_values(fdir: xr.DataArray, what: str = "fdir") -> tuple[np.ndarray, object]:
    grid = check_grid(fdir, what, need_size=False)
    if fdir.dtype != np.uint8:
        v = np.asarray(fdir.values)
        if not np.issubdtype(v.dtype, np.integer) and not (
            np.issubdtype(v.dtype, np.floating) and np.all(np.isnan(v) | (v == np.round(v)))
        ):
            raise FlowDirectionError(f"{what} must hold integer ESRI D8 codes, got dtype {v.dtype}")
        v = np.where(np.isnan(v), 255, v) if np.issubdtype(v.dtype, np.floating) else v
        if v.min() < 0 or v.max() > 255:
            raise FlowDirectionError(f"{what} holds values outside 0..255; expected ESRI D8 codes")
        fdir = fdir.copy(data=v.astype(np.uint8))
    nodata = nodata_of(fdir)
    a = north_up(fdir, grid, np.uint8)
    if nodata is not None and not np.isnan(nodata) and int(nodata) != 255:
        a = np.where(a == int(nodata), np.uint8(255), a)
    bad = _k.check_codes(a, _k.CODE_OK)
    if bad >= 0:
        r, c = divmod(int(bad), a.shape[1])
        raise FlowDirectionError(
            f"{what} holds {int(a[r, c])} at row {r}, column {c} (north-up): not an ESRI D8 code "
            "(1, 2, 4, ..., 128), 0 (outlet/pit) or 255 (no-data); set rio.nodata if it marks no-data"
        )
    return a, grid


def _acc_strips(nrows: int) -> int:
    """Strips of the accumulation walk: fixed by the grid, not the thread count, so that weighted sums are
    the same on any machine; two of at least 64 rows (more borders add sequential work: at 4000² the walk took
    0.27 s in one strip, 0.15 s in two and 0.17 s in four or eight on 2 cores)."""
    return max(1, min(2, nrows // 64))


def flow_accumulation(fdir: xr.DataArray, weights: xr.DataArray | None = None) -> xr.DataArray:
    """Upstream area in cells (including the cell itself), or the weighted sum of everything upstream.

    O(n): in-degrees are counted, then flow chains are walked from the sources in topological order; no
    recursion, no sorting. Weighted accumulation of a runoff depth times cell area gives discharge volume.
    Two strips of rows are walked in parallel, flow crossing between them added afterwards; the result does
    not depend on the number of threads.

    Parameters
    ----------
    fdir : xarray.DataArray
        ESRI D8 codes as returned by :func:`flow_direction` (255 or ``rio.nodata`` = no-data), or the
        ``(direction, y, x)`` shares of ``flow_direction(dem, method="mfd")``.
    weights : xarray.DataArray, optional
        Per-cell values on the same grid (NaN counts as 0).

    Returns
    -------
    xarray.DataArray
        float64, NaN on no-data cells, same coords and CRS. Memory: 8 bytes per cell for the output plus 1 byte
        per cell of in-degrees (plus 32 bytes per column).

    Raises
    ------
    FlowDirectionError
        If the directions contain a cycle (some cells never drain).

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> f = xr.DataArray(np.array([[1, 1, 4], [1, 1, 0]], np.uint8), dims=("y", "x"),
    ...                  coords={"y": [1.5, 0.5], "x": [0.5, 1.5, 2.5]}).rio.write_crs("EPSG:32631")
    >>> flow_accumulation(f).values.tolist()
    [[1.0, 2.0, 3.0], [1.0, 2.0, 6.0]]
    """
    if isinstance(fdir, xr.DataArray) and fdir.ndim == 3 and "direction" in fdir.dims:
        from hydrology.network import flow_accumulation_mfd

        return flow_accumulation_mfd(fdir, weights)
    a, grid = _fdir_values(fdir)
    if weights is not None:
        wgrid = check_grid(weights, "weights", need_crs=False, need_size=False)
        if weights.shape != fdir.shape:
            raise GridError(f"weights has shape {weights.shape}, fdir has {fdir.shape}; they must match")
        w = float_values(weights, wgrid, "weights").astype(np.float64, copy=False)  # north-up, as ``a``
    else:
        w = np.zeros((1, 1))
    acc = np.empty(a.shape, dtype=np.float64)
    left = _k.flow_accumulation(a, w, weights is not None, _k.CODE_DR, _k.CODE_DC, acc, _acc_strips(a.shape[0]))
    if left:
        raise FlowDirectionError(
            f"fdir routes water in a cycle: {left} cells never reach an outlet; "
            "derive directions from a filled DEM with flow_direction()"
        )
    return wrap(acc, fdir, grid, "flow_accumulation")
