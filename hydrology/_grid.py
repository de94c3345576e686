"""Validation of raster inputs and wrapping of kernel outputs (private).

Kernels work on north-up numpy arrays; these helpers turn a DataArray into such an array (flipping a
south-up grid), compute true cell sizes per row (metres on the ellipsoid for a geographic CRS) and put results
back on the input's coordinates with its CRS.

The CRS and no-data value are read the way rioxarray reads them, through its ``.rio`` accessor when the
caller has imported rioxarray, otherwise from the CF grid-mapping coordinate (``spatial_ref`` with
``crs_wkt`` / ``spatial_ref`` attributes, or CF projection parameters; what both rioxarray and
``xr.open_dataset`` of a CF NetCDF give) and the ``_FillValue`` / ``missing_value`` / ``nodata`` attributes.
Importing rioxarray here would load rasterio, dask and scipy: about 55 MB of memory and 0.3 s for every user
of the terrain functions, who may never need them.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
import xarray as xr

from hydrology.errors import CRSError, GridError

__all__: list[str] = []


@dataclass(frozen=True)
class Grid:
    """What the kernels need to know about a 2-D raster."""

    flipped: bool  # True when the input's first axis runs south to north
    dx: np.ndarray  # per row (north-up order), width of a cell, metres for geographic CRSs
    dy: np.ndarray  # per row (north-up order), height of a cell
    geographic: bool
    crs: object = None  # pyproj.CRS (or rasterio's CRS through rioxarray); None when the raster has none


def _rio_loaded() -> bool:
    return "rioxarray" in sys.modules


def _grid_mapping(da: xr.DataArray) -> str:
    return da.encoding.get("grid_mapping", da.attrs.get("grid_mapping", "spatial_ref"))


def crs_of(da: xr.DataArray):
    """``da``'s CRS, or None: ``da.rio.crs`` when rioxarray is loaded, else from the CF grid-mapping coordinate
    (its ``spatial_ref`` or ``crs_wkt`` WKT, else its CF projection parameters) or a ``crs`` attribute."""
    if _rio_loaded():
        return da.rio.crs
    from pyproj import CRS
    from pyproj.exceptions import CRSError as ProjCRSError

    gm = da.coords.get(_grid_mapping(da))
    if gm is not None:
        for key in ("spatial_ref", "crs_wkt"):
            if key in gm.attrs:
                return CRS.from_user_input(gm.attrs[key])
        try:
            return CRS.from_cf(gm.attrs)
        except (KeyError, ProjCRSError):
            pass
    if "crs" in da.attrs:
        return CRS.from_user_input(da.attrs["crs"])
    return None


def with_crs(out: xr.DataArray, crs) -> xr.DataArray:
    """Write ``crs`` onto ``out`` in place (rioxarray's grid-mapping coordinate ``spatial_ref``) and return it."""
    if crs is None:
        return out
    if _rio_loaded():
        # in place: rioxarray's default (inplace=False) deep-copies the data, a full extra grid per output
        return out.rio.write_crs(crs, inplace=True)
    from pyproj import CRS

    crs = CRS.from_user_input(crs)
    wkt = crs.to_wkt()
    attrs = {**crs.to_cf(), "spatial_ref": wkt, "crs_wkt": wkt}
    name = _grid_mapping(out)
    out.coords[name] = xr.Variable((), 0, attrs)
    out.attrs.pop("crs", None)
    out.encoding["grid_mapping"] = name
    return out


def nodata_of(da: xr.DataArray):
    """``da``'s no-data value (``da.rio.nodata`` when rioxarray is loaded), or None; NaN when masked on load."""
    if _rio_loaded():
        return da.rio.nodata
    if da.encoding.get("_FillValue") is not None:
        return np.nan if np.issubdtype(da.dtype, np.floating) else None  # decoded to NaN by xarray
    for key in ("_FillValue", "missing_value", "fill_value", "nodata"):
        if da.attrs.get(key) is not None:
            v = da.attrs[key]
            return da.dtype.type(v if np.issubdtype(type(v), np.integer) else float(v))
    return None


def _spacing(coord: np.ndarray, name: str, what: str, need_size: bool) -> float:
    if coord.size < 2:
        if not need_size:
            return math.nan
        raise GridError(f"{what}: coordinate {name!r} needs at least 2 values to give a cell size")
    d = np.diff(coord.astype(np.float64))
    step = float(d[0])
    if step == 0 or not np.allclose(d, step, rtol=1e-6, atol=0):
        raise GridError(f"{what}: coordinate {name!r} is not regularly spaced; resample to a regular grid first")
    return (float(coord[-1]) - float(coord[0])) / (coord.size - 1)


def check_grid(da: object, what: str, *, need_crs: bool = True, need_size: bool = True) -> Grid:
    """Validate a 2-D raster DataArray and describe it; raise GridError / CRSError with a fix in the message."""
    if not isinstance(da, xr.DataArray):
        raise GridError(f"{what} must be an xarray.DataArray with dims (y, x), got {type(da).__name__}")
    if da.ndim != 2:
        raise GridError(f"{what} must be 2-D (y, x), got dims {da.dims}")
    ydim, xdim = da.dims
    for dim in (ydim, xdim):
        if dim not in da.coords:
            raise GridError(f"{what}: dimension {dim!r} has no coordinate; give it cell-centre coordinates")
    ystep = _spacing(np.asarray(da[ydim].values), str(ydim), what, need_size)
    xstep = _spacing(np.asarray(da[xdim].values), str(xdim), what, need_size)
    crs = crs_of(da)
    if crs is None:
        if need_crs:
            raise CRSError(f"{what} has no CRS; set one with {what}.rio.write_crs('EPSG:...')")
        geographic = False
    else:
        geographic = bool(crs.is_geographic)
    ny = da.shape[0]
    flipped = bool(ystep > 0)  # False for a single row (NaN step)
    if not geographic:
        if math.isclose(abs(xstep), abs(ystep), rel_tol=1e-8):
            # coordinates like x0 + i * dx carry rounding noise; square cells must stay exactly square so
            # that equal drops tie exactly
            ystep = math.copysign(xstep, ystep)
        dx = np.full(ny, abs(xstep))
        dy = np.full(ny, abs(ystep))
    else:
        lat = np.asarray(da[ydim].values, dtype=np.float64)
        if flipped:
            lat = lat[::-1]
        if np.any(np.abs(lat) > 90):
            raise CRSError(f"{what}: latitudes outside [-90, 90] in a geographic CRS ({crs})")
        a, f = ellipsoid(crs)
        e2 = f * (2 - f)
        phi = np.radians(lat)
        s2 = np.sin(phi) ** 2
        n_rad = a / np.sqrt(1 - e2 * s2)  # prime-vertical radius of curvature
        m_rad = a * (1 - e2) / (1 - e2 * s2) ** 1.5  # meridional radius of curvature
        dx = n_rad * np.cos(phi) * math.radians(abs(xstep))
        dy = m_rad * math.radians(abs(ystep))
        dx = np.maximum(dx, 1e-9)
    return Grid(
        flipped=flipped, dx=np.ascontiguousarray(dx), dy=np.ascontiguousarray(dy), geographic=geographic, crs=crs
    )


def ellipsoid(crs) -> tuple[float, float]:
    """Semi-major axis (m) and flattening of a CRS's ellipsoid (WGS84 when it has none)."""
    from pyproj import CRS

    ell = CRS.from_user_input(crs).ellipsoid
    if ell is None:
        return 6378137.0, 1 / 298.257223563
    inv_f = ell.inverse_flattening
    return float(ell.semi_major_metre), (0.0 if not inv_f else 1.0 / inv_f)


def north_up(da: xr.DataArray, grid: Grid, dtype=None) -> np.ndarray:
    """The values as a C-contiguous north-up array (a copy only when flipping or casting is needed)."""
    v = np.asarray(da.values)
    if grid.flipped:
        v = v[::-1]
    if dtype is not None and v.dtype != dtype:
        v = v.astype(dtype)
    return np.ascontiguousarray(v)


def float_values(da: xr.DataArray, grid: Grid, what: str) -> np.ndarray:
    """Elevation-like values as float32/float64 (other numbers become float64); rio nodata becomes NaN."""
    if not (np.issubdtype(da.dtype, np.number) or da.dtype == bool) or np.issubdtype(da.dtype, np.complexfloating):
        raise GridError(f"{what} must hold real numbers, got dtype {da.dtype}")
    dtype = da.dtype if da.dtype in (np.float32, np.float64) else np.float64
    v = north_up(da, grid, dtype)
    nodata = nodata_of(da)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        bad = v == nodata
        if bad.any():
            v = np.where(bad, np.nan, v).astype(dtype)
    flat = v.reshape(-1)
    # in blocks of 1 Mi cells: a whole-grid boolean temporary would be 1 byte per cell at the fill's peak
    if any(np.isinf(flat[i : i + 2**20]).any() for i in range(0, flat.size, 2**20)):
        raise GridError(f"{what} holds infinite values; use NaN for no-data")
    return v


def wrap(values: np.ndarray, like: xr.DataArray, grid: Grid, name: str, *, nodata=None, attrs=None) -> xr.DataArray:
    """Put a north-up result back on ``like``'s coordinates (flipping back if needed), keeping its CRS."""
    if grid.flipped:
        values = values[::-1]
    coords = {k: v for k, v in like.coords.items() if set(v.dims) <= set(like.dims)}
    out = xr.DataArray(values, dims=like.dims, coords=coords, name=name, attrs=dict(attrs or {}))
    gm = _grid_mapping(like)
    if gm in out.coords:  # copied with the coordinates; a name other than the default must be pointed to
        if gm != "spatial_ref":
            out.encoding["grid_mapping"] = gm
    else:
        with_crs(out, grid.crs if grid.crs is not None else crs_of(like))
    if nodata is not None:
        if _rio_loaded():
            out.rio.write_nodata(nodata, encoded=False, inplace=True)
        else:
            out.attrs["_FillValue"] = out.dtype.type(nodata)
    return out
