"""Flow length and time-area routing of excess rainfall over the D8 flow paths to an outlet."""

from __future__ import annotations

import numpy as np
import xarray as xr

from hydrology import _kernels_network as _kn
from hydrology import _kernels_terrain as _k
from hydrology._grid import Grid, check_grid, north_up, wrap
from hydrology.errors import GridError, ParameterError
from hydrology.terrain import _fdir_values

__all__ = ["flow_length", "time_area_hydrograph"]


def _step_lengths(a: np.ndarray, grid: Grid) -> np.ndarray:
    """Length (map units, metres for geographic grids) of each cell's step to its receiver; 0 at path ends."""
    ny, nx = a.shape
    horiz = np.isin(a, (1, 16))
    vert = np.isin(a, (4, 64))
    diag = np.isin(a, (2, 8, 32, 128))
    dx = grid.dx[:, None]
    dy = grid.dy[:, None]
    return np.where(horiz, dx, 0.0) + np.where(vert, dy, 0.0) + np.where(diag, np.hypot(dx, dy), 0.0) + np.zeros((ny, nx))


def flow_length(fdir: xr.DataArray) -> xr.DataArray:
    """Distance along the D8 flow path from each cell to the end of its path (outlet, pit or grid edge).

    Steps count the true cell width, height or diagonal of the cell they leave (metres on a geographic grid).
    float64, NaN on no-data. O(n) without recursion; memory: 8 bytes per cell for the step lengths, 8 for the
    receivers and 8 for the output.

    Examples
    --------
    >>> import numpy as np, xarray as xr, rioxarray
    >>> f = xr.DataArray(np.array([[1, 1, 4], [1, 1, 0]], np.uint8), dims=("y", "x"),
    ...                  coords={"y": [15.0, 5.0], "x": [5.0, 15.0, 25.0]}).rio.write_crs("EPSG:32631")
    >>> flow_length(f).values.tolist()
    [[30.0, 20.0, 10.0], [20.0, 10.0, 0.0]]
    """
    a, _ = _fdir_values(fdir)
    grid = check_grid(fdir, "fdir")
    rec = _k.downstream_index(a, _k.CODE_DR, _k.CODE_DC)
    cost = _step_lengths(a, grid).ravel()
    out = np.empty(a.size, dtype=np.float64)
    _kn.path_sum(rec, cost, out)
    out = out.reshape(a.shape)
    out[a == 255] = np.nan
    return wrap(out, fdir, grid, "flow_length", attrs={"units": "m" if grid.geographic else "map units"})


def time_area_hydrograph(fdir: xr.DataArray, excess: xr.DataArray, outlet, *, velocity=1.0) -> xr.DataArray:
    """Outflow hydrograph at ``outlet`` by time-area routing (isochrones) of uniform excess rainfall.

    Each cell of the outlet's watershed reaches the outlet after its travel time ``sum(step length / v)``
    along its D8 path; the catchment area is binned by travel time in steps of the storm's interval (the
    time-area histogram) and convolved with the excess-rainfall hyetograph. Pure translation, no storage
    (add a linear reservoir downstream for attenuation, Clark 1945).

    Parameters
    ----------
    fdir : xarray.DataArray
        D8 directions on a projected grid (cell sizes in metres) or a geographic one.
    excess : xarray.DataArray
        1-D excess rainfall rate in mm/h over ``time`` in seconds (interval starts, equal steps), e.g.
        ``chicago_hyetograph`` minus losses, or ``scs_runoff`` increments.
    outlet : (x, y)
        The outlet point, in the grid's CRS.
    velocity : float or xarray.DataArray
        Flow velocity in m/s, one value or a grid.

    Returns
    -------
    xarray.DataArray
        Discharge in m3/s over ``time`` in seconds (interval starts, same step as ``excess``), long enough for
        the last drop to arrive. ``attrs["area_m2"]`` is the catchment area.
    """
    from hydrology.network import _cells_of

    if not isinstance(excess, xr.DataArray) or excess.dims != ("time",):
        raise GridError("excess must be a 1-D DataArray over 'time' (seconds, interval starts) in mm/h")
    t = np.asarray(excess.time.values, dtype=float)
    if t.size < 2 or not np.allclose(np.diff(t), t[1] - t[0]):
        raise GridError("excess needs at least 2 equally spaced time steps")
    dt = float(t[1] - t[0])
    a, grid = _fdir_values(fdir)
    grid = check_grid(fdir, "fdir")
    if isinstance(velocity, xr.DataArray):
        v = north_up(velocity, check_grid(velocity, "velocity", need_crs=False, need_size=False), np.float64)
    else:
        v = np.full(a.shape, float(velocity))
    if np.any(~(v[a != 255] > 0)):
        raise ParameterError("velocity must be positive on every valid cell")
    rec = _k.downstream_index(a, _k.CODE_DR, _k.CODE_DC)
    travel = np.empty(a.size, dtype=np.float64)
    _kn.path_sum(rec, (_step_lengths(a, grid) / v).ravel(), travel)
    row, col = _cells_of(fdir, np.asarray(outlet, dtype=float).reshape(1, 2))
    r0 = a.shape[0] - 1 - row[0] if grid.flipped else row[0]
    o = r0 * a.shape[1] + col[0]
    labels = np.empty(a.size, dtype=np.int32)
    _kn.label_upstream(rec, np.array([o], dtype=np.int64), np.array([1], dtype=np.int32), labels)
    inside = labels == 1
    area = (grid.dx * grid.dy)[:, None] * np.ones(a.shape)
    tau = travel[inside] - travel[o]  # time from each cell to the outlet
    bins = np.floor(tau / dt + 1e-9).astype(np.int64)
    hist = np.bincount(bins, weights=area.ravel()[inside])  # m2 reaching the outlet k steps later
    rate = np.nan_to_num(np.asarray(excess.values, dtype=float)) / 3.6e6  # mm/h -> m/s
    q = np.convolve(rate, hist)
    out = xr.DataArray(q, dims=("time",), coords={"time": ("time", np.arange(q.size) * dt + t[0], {"units": "s"})},
                       name="discharge", attrs={"units": "m3 s-1", "area_m2": float(hist.sum())})
    return out
