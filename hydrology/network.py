"""Watersheds, outlet snapping, stream networks with Strahler order, HAND, slope and MFD routing.

Inputs and outputs are 2-D ``xarray.DataArray`` objects with a CRS (rioxarray), as in :mod:`hydrology.terrain`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from hydrology import _kernels_network as _kn
from hydrology import _kernels_terrain as _k
from hydrology._grid import check_grid, crs_of, float_values, north_up, with_crs, wrap
from hydrology.errors import FlowDirectionError, GridError, ParameterError
from hydrology.terrain import _fdir_values

__all__ = [
    "flow_accumulation_mfd",
    "flow_direction_mfd",
    "hand",
    "slope",
    "snap_outlets",
    "stream_lines",
    "streams",
    "watersheds",
]


def _same_grid(a: xr.DataArray, b: xr.DataArray, names: str) -> None:
    if a.shape != b.shape:
        raise GridError(f"{names}: shapes {a.shape} and {b.shape} differ; use rasters on the same grid")


def _outlet_xy(outlets) -> np.ndarray:
    """(k, 2) x/y from a GeoDataFrame/GeoSeries of points or a sequence of (x, y) pairs."""
    geoms = getattr(outlets, "geometry", None)
    if geoms is not None:
        if not (geoms.geom_type == "Point").all():
            raise ParameterError("outlets must be points")
        return np.column_stack([geoms.x.to_numpy(), geoms.y.to_numpy()]).astype(float)
    xy = np.asarray(outlets, dtype=float).reshape(-1, 2)
    return xy


def _cells_of(da: xr.DataArray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row/column (of ``da`` as stored) of the cells containing each point; raises for points off the grid."""
    ydim, xdim = da.dims
    ys = np.asarray(da[ydim].values, dtype=float)
    xs = np.asarray(da[xdim].values, dtype=float)
    col = np.rint((xy[:, 0] - xs[0]) / (xs[1] - xs[0])).astype(int)
    row = np.rint((xy[:, 1] - ys[0]) / (ys[1] - ys[0])).astype(int)
    off = (row < 0) | (row >= ys.size) | (col < 0) | (col >= xs.size)
    if off.any():
        raise ParameterError(f"outlet(s) {np.flatnonzero(off).tolist()} lie outside the grid")
    return row, col


def snap_outlets(outlets, acc: xr.DataArray, radius: float):
    """Move each outlet to the cell of highest accumulation within ``radius`` (map units) of it.

    Pour points digitised next to the stream otherwise delineate a tiny watershed; snapping to the highest
    accumulation (as ArcGIS Snap Pour Point and WhiteboxTools' ``snap_pour_points``) puts them on it.

    Returns
    -------
    numpy.ndarray
        (k, 2) x/y of the snapped cell centres, in the order given.
    """
    if radius < 0:
        raise ParameterError(f"radius must be >= 0, got {radius}")
    xy = _outlet_xy(outlets)
    row, col = _cells_of(acc, xy)
    ydim, xdim = acc.dims
    ys = np.asarray(acc[ydim].values, dtype=float)
    xs = np.asarray(acc[xdim].values, dtype=float)
    a = np.asarray(acc.values, dtype=float)
    ry = int(np.ceil(radius / abs(ys[1] - ys[0])))
    rx = int(np.ceil(radius / abs(xs[1] - xs[0])))
    out = np.empty_like(xy)
    for k, (r, c) in enumerate(zip(row, col, strict=True)):
        r0, r1 = max(r - ry, 0), min(r + ry + 1, a.shape[0])
        c0, c1 = max(c - rx, 0), min(c + rx + 1, a.shape[1])
        yy, xx = np.meshgrid(ys[r0:r1], xs[c0:c1], indexing="ij")
        win = np.where((xx - xy[k, 0]) ** 2 + (yy - xy[k, 1]) ** 2 <= radius**2 + 1e-9, a[r0:r1, c0:c1], -np.inf)
        win = np.where(np.isnan(win), -np.inf, win)
        if np.isneginf(win).all():
            out[k] = xs[c], ys[r]
            continue
        i, j = np.unravel_index(int(np.argmax(win)), win.shape)
        out[k] = xx[i, j], yy[i, j]
    return out


def watersheds(fdir: xr.DataArray, outlets, *, acc: xr.DataArray | None = None, snap_radius: float = 0.0):
    """Label the cells draining to each outlet (1, 2, ... in the order given; 0 elsewhere).

    A cell belongs to the first outlet on its flow path, so an outlet upstream of another one cuts a nested
    sub-watershed out of it. With ``acc`` and ``snap_radius`` the outlets are first moved to the highest
    accumulation nearby (:func:`snap_outlets`). O(n), no recursion; memory: 4 bytes per cell plus the
    8-byte receiver index per cell.

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> f = xr.DataArray(np.array([[1, 1, 4], [1, 1, 0]], np.uint8), dims=("y", "x"),
    ...                  coords={"y": [1.5, 0.5], "x": [0.5, 1.5, 2.5]}).rio.write_crs("EPSG:32631")
    >>> watersheds(f, [(2.5, 0.5), (1.5, 1.5)]).values.tolist()
    [[2, 2, 1], [1, 1, 1]]
    """
    a, grid = _fdir_values(fdir)
    xy = _outlet_xy(outlets)
    if acc is not None and snap_radius > 0:
        _same_grid(fdir, acc, "fdir and acc")
        xy = snap_outlets(xy, acc, snap_radius)
    row, col = _cells_of(fdir, xy)
    if grid.flipped:
        row = a.shape[0] - 1 - row
    rec = _k.downstream_index(a, _k.CODE_DR, _k.CODE_DC)
    seeds = (row * a.shape[1] + col).astype(np.int64)
    labels = np.empty(a.size, dtype=np.int32)
    # a later outlet on the same cell as an earlier one does not replace it
    _, first = np.unique(seeds, return_index=True)
    keep = np.sort(first)
    _kn.label_upstream(rec, seeds[keep], (keep + 1).astype(np.int32), labels)
    labels = labels.reshape(a.shape)
    labels[a == 255] = 0
    return wrap(labels, fdir, grid, "watershed", nodata=0, attrs={"long_name": "watershed label"})


def streams(acc: xr.DataArray, threshold: float, fdir: xr.DataArray) -> xr.DataArray:
    """Stream cells (``acc >= threshold``) with their Strahler order (uint8; 0 off-stream).

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> f = xr.DataArray(np.array([[4, 4, 4], [2, 4, 8], [0, 0, 0]], np.uint8), dims=("y", "x"),
    ...                  coords={"y": [2.5, 1.5, 0.5], "x": [0.5, 1.5, 2.5]}).rio.write_crs("EPSG:32631")
    >>> from hydrology import flow_accumulation
    >>> streams(flow_accumulation(f), 1, f).values.tolist()
    [[1, 1, 1], [1, 1, 1], [1, 2, 1]]
    """
    _same_grid(acc, fdir, "acc and fdir")
    a, grid = _fdir_values(fdir)
    accv = north_up(acc, check_grid(acc, "acc", need_size=False), np.float64)
    stream = (np.nan_to_num(accv, nan=-np.inf) >= threshold) & (a != 255)
    rec = _k.downstream_index(a, _k.CODE_DR, _k.CODE_DC)
    order = np.empty(a.size, dtype=np.uint8)
    _kn.strahler(rec, stream.ravel().view(np.uint8), order)
    return wrap(order.reshape(a.shape), fdir, grid, "strahler_order", attrs={"threshold": threshold})


def stream_lines(order: xr.DataArray, fdir: xr.DataArray):
    """The stream network of :func:`streams` as a line GeoDataFrame, one line per segment between confluences.

    Columns: ``strahler`` (order), ``cells`` (number of cells), geometry from cell centre to cell centre,
    ending on the first cell of the segment downstream (so segments touch), in the rasters' CRS.
    """
    import geopandas as gpd
    from shapely import LineString

    _same_grid(order, fdir, "order and fdir")
    a, grid = _fdir_values(fdir)
    o = north_up(order, check_grid(order, "order", need_size=False), np.uint8).ravel()
    rec = _k.downstream_index(a, _k.CODE_DR, _k.CODE_DC)
    ydim, xdim = fdir.dims
    ys = np.asarray(fdir[ydim].values, dtype=float)
    if grid.flipped:
        ys = ys[::-1]
    xs = np.asarray(fdir[xdim].values, dtype=float)
    nc = a.shape[1]
    on = o > 0
    inflow = np.zeros(o.size, dtype=np.int64)
    src = np.flatnonzero(on & (rec >= 0))
    src = src[on[rec[src]]]
    np.add.at(inflow, rec[src], 1)
    heads = np.flatnonzero(on & (inflow != 1))
    rows, orders, ncells = [], [], []
    for h in heads:
        path = [h]
        i = h
        while True:
            j = rec[i]
            if j < 0 or not on[j]:
                break
            path.append(j)
            if inflow[j] != 1:
                break
            i = j
        r, c = np.divmod(np.asarray(path), nc)
        pts = np.column_stack([xs[c], ys[r]])
        if len(pts) == 1:
            pts = np.vstack([pts, pts])
        rows.append(LineString(pts))
        orders.append(int(o[h]))
        ncells.append(len(path) - (1 if inflow[path[-1]] != 1 and len(path) > 1 else 0))
    return gpd.GeoDataFrame({"strahler": orders, "cells": ncells}, geometry=rows, crs=crs_of(fdir))


def hand(dem: xr.DataArray, fdir: xr.DataArray, stream: xr.DataArray) -> xr.DataArray:
    """Height above nearest drainage (Rennó et al. 2008): elevation minus that of the first stream cell
    downstream along D8. ``stream`` is any raster that is non-zero on stream cells (a :func:`streams`
    result, for instance). Cells that reach no stream get NaN. Memory: 8 + 1 bytes per cell plus the
    receiver index (8 bytes per cell).
    """
    _same_grid(dem, fdir, "dem and fdir")
    _same_grid(dem, stream, "dem and stream")
    grid = check_grid(dem, "dem")
    z = float_values(dem, grid, "dem").astype(np.float64, copy=False)
    a, _ = _fdir_values(fdir)
    s = north_up(stream, check_grid(stream, "stream", need_size=False))
    smask = (np.nan_to_num(s.astype(float)) != 0) & ~np.isnan(z)
    rec = _k.downstream_index(a, _k.CODE_DR, _k.CODE_DC)
    out = np.empty(z.size, dtype=np.float64)
    _kn.drainage_height(rec, z.ravel(), smask.ravel().view(np.uint8), out)
    return wrap(out.reshape(z.shape), dem, grid, "hand", attrs={"long_name": "height above nearest drainage"})


def slope(dem: xr.DataArray, *, units: Literal["degrees", "percent", "ratio"] = "degrees") -> xr.DataArray:
    """Terrain slope by Horn's (1981) 3x3 finite differences, with true cell sizes per row.

    Horn's gradient along x is the 1-2-1 weighted mean of the central differences of the stencil's three rows
    (along y, of its three columns). Where a neighbour is no-data or off the grid, that row uses the one-sided
    difference with its middle cell instead, and a row with neither is left out of the mean; so the slope of a
    plane is exact on every valid cell with a valid neighbour along each axis (edges, corners and cells next
    to holes included), and an axis without any gives 0. No-data cells get NaN.

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> x = np.arange(4) * 10.0
    >>> dem = xr.DataArray(0.1 * np.tile(x, (3, 1)), dims=("y", "x"),
    ...                    coords={"y": [25.0, 15.0, 5.0], "x": x}).rio.write_crs("EPSG:32631")
    >>> slope(dem, units="percent").values.round(12).tolist()[0]  # the edge row too
    [10.0, 10.0, 10.0, 10.0]
    """
    if units not in ("degrees", "percent", "ratio"):
        raise ParameterError(f"units must be 'degrees', 'percent' or 'ratio', got {units!r}")
    grid = check_grid(dem, "dem")
    z = float_values(dem, grid, "dem").astype(np.float64, copy=False)
    p = np.pad(z, 1, mode="constant", constant_values=np.nan)

    def nb(dr: int, dc: int) -> np.ndarray:
        return p[1 + dr : 1 + dr + z.shape[0], 1 + dc : 1 + dc + z.shape[1]]

    dzdx = _horn_mean([(nb(d, -1), nb(d, 0), nb(d, 1)) for d in (-1, 0, 1)]) / grid.dx[:, None]
    dzdy = _horn_mean([(nb(-1, d), nb(0, d), nb(1, d)) for d in (-1, 0, 1)]) / grid.dy[:, None]
    ratio = np.where(np.isnan(z), np.nan, np.hypot(dzdx, dzdy))
    out = {"ratio": ratio, "percent": 100 * ratio, "degrees": np.degrees(np.arctan(ratio))}[units]
    return wrap(out, dem, grid, "slope", attrs={"units": {"ratio": "1", "percent": "%", "degrees": "degree"}[units]})


def _horn_mean(lines: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Horn's 1-2-1 weighted mean of the per-cell differences along three stencil lines (before, middle, after),
    each central where both ends are valid, else one-sided with the middle cell, else left out (0 if all are)."""
    total = np.zeros(lines[0][0].shape)
    weight = np.zeros(lines[0][0].shape)
    for w, (a, m, b) in zip((1.0, 2.0, 1.0), lines, strict=True):
        d = np.where(np.isnan(a) | np.isnan(b), np.where(np.isnan(a), b - m, m - a), (b - a) / 2)
        ok = ~np.isnan(d)
        total += np.where(ok, w * d, 0.0)
        weight += w * ok
    return np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)


def flow_direction_mfd(dem: xr.DataArray, *, exponent: float = 1.1, contour_weights: bool = False) -> xr.DataArray:
    """Multiple flow directions: the share of each cell's flow sent to each of its 8 neighbours.

    Weights ``tan(beta)^exponent`` over downslope neighbours (Freeman 1991, exponent 1.1); with
    ``contour_weights=True`` and ``exponent=1`` this is Quinn et al. (1991). Cells without a lower neighbour
    (flats of a filled DEM) send all flow along their flat-resolved D8 direction, so routing stays acyclic.

    Returns
    -------
    xarray.DataArray
        float32 ``(direction, y, x)`` with ``direction`` = NE, E, SE, S, SW, W, NW, N (north-up compass);
        shares sum to 1 except at outlets (all 0); NaN on no-data. Memory: 32 bytes per cell.
    """
    from hydrology.terrain import flow_direction

    if exponent <= 0:
        raise ParameterError(f"exponent must be positive, got {exponent}")
    grid = check_grid(dem, "dem")
    z = float_values(dem, grid, "dem")
    d8 = north_up(flow_direction(dem), grid, np.uint8)
    frac = np.empty((8, *z.shape), dtype=np.float32)
    _kn.mfd_fractions(z, grid.dx, grid.dy, d8, float(exponent), bool(contour_weights), frac)
    if grid.flipped:
        frac = frac[:, ::-1]
    names = ["NE", "E", "SE", "S", "SW", "W", "NW", "N"]
    ydim, xdim = dem.dims
    out = xr.DataArray(frac, dims=("direction", ydim, xdim),
                       coords={"direction": names, **{k: v for k, v in dem.coords.items() if set(v.dims) <= set(dem.dims)}},
                       name="flow_fraction", attrs={"method": "mfd", "exponent": exponent, "north_up_rows": not grid.flipped})
    return with_crs(out, grid.crs)


def flow_accumulation_mfd(fractions: xr.DataArray, weights: xr.DataArray | None = None) -> xr.DataArray:
    """Accumulate along :func:`flow_direction_mfd` shares (float64; upstream cells incl. itself, or weights)."""
    if not isinstance(fractions, xr.DataArray) or fractions.ndim != 3 or fractions.shape[0] != 8:
        raise GridError("fractions must be the (direction, y, x) result of flow_direction_mfd")
    like = fractions.isel(direction=0, drop=True)
    grid = check_grid(like, "fractions", need_size=False)
    f = np.asarray(fractions.values, dtype=np.float64)
    if grid.flipped:
        f = f[:, ::-1]
    nodata = np.isnan(f[0])
    f = np.ascontiguousarray(np.nan_to_num(f, nan=0.0))
    if weights is None:
        w = np.ones(f.shape[1:])
    else:
        _same_grid(like, weights, "fractions and weights")
        w = np.nan_to_num(north_up(weights, check_grid(weights, "weights", need_crs=False, need_size=False), np.float64))
    w = np.where(nodata, 0.0, w)
    acc = np.empty(f.shape[1:], dtype=np.float64)
    left = _kn.mfd_accumulate(f, w, acc)
    if left:
        raise FlowDirectionError(f"the flow shares route water in a cycle ({left} cells never finish)")
    acc[nodata] = np.nan
    return wrap(acc, like, grid, "flow_accumulation_mfd")
