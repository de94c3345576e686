"""Depression breaching: least-cost breach channels instead of filling (Lindsay 2016).

Takes and returns 2-D ``xarray.DataArray`` objects with a CRS, as :mod:`hydrology.terrain` does: the input's
coordinates and CRS are kept, NaN (or ``rio.nodata``) is no-data, south-up grids are handled.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import xarray as xr

from hydrology import _kernels_breach as _k
from hydrology._grid import check_grid, float_values, wrap
from hydrology.errors import ParameterError
from hydrology.terrain import fill_depressions

__all__ = ["breach_depressions"]


def _limit(value, name: str, *, integer: bool = False, allow_zero: bool = False):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a number or None (no limit), got {value!r}")
    if integer and not (isinstance(value, numbers.Integral) or float(value).is_integer()):
        raise ParameterError(f"{name} is a number of cells: give a whole number, got {value!r}")
    v = float(value)
    if math.isnan(v) or (v < 0 if allow_zero else v <= 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ParameterError(f"{name} must be {bound} (or None for no limit), got {value!r}")
    return v


def breach_depressions(
    dem: xr.DataArray,
    *,
    max_depth: float | None = None,
    max_length: int | None = None,
    max_cost: float | None = None,
    fill: bool = True,
    flat_increment: float | None = None,
) -> xr.DataArray:
    """Remove depressions by cutting least-cost breach channels through their barriers, then fill what is left.

    Each pit is drained by lowering a channel of cells from the pit to the nearest cell that is lower than the
    channel floor, or to the grid edge / no-data, choosing the channel that needs the least total lowering
    (a Dijkstra search; the least-cost breaching of Lindsay & Dhun 2015 as refined in Lindsay 2016, "Efficient
    hybrid breaching-filling of sinks and depressions in digital elevation models", Hydrological Processes
    30(6), and in WhiteboxTools' ``BreachDepressionsLeastCost``). Pits are handled lowest first, so a channel
    cut for a low pit often drains higher ones. Single-cell pits are first raised to just below their lowest
    neighbour, which keeps channels shallow. Channel cells are lowered so that the channel descends strictly,
    by ``flat_increment`` per cell. Depressions that cannot be breached within the limits are filled
    afterwards with :func:`hydrology.fill_depressions` when ``fill=True``; then every cell drains, and
    :func:`hydrology.flow_direction` routes the filled flats. Breaching usually changes far less of the
    terrain than filling: a road embankment across a valley is cut, not the valley flooded behind it. The cost
    counts elevation only, not cell sizes, so geographic grids need nothing special. A search covers at most
    the cells within ``max_length`` of its pit; without limits the first search in a large depression can
    cover all of it (later pits in it then usually find its channel nearby).

    Parameters
    ----------
    dem : xarray.DataArray
        Elevations (y, x) with a CRS; NaN is no-data and, like the grid edge, an outlet.
    max_depth : float, optional
        No cell is lowered by more than this (elevation units); WhiteboxTools' ``BreachDepressions``
        ``max_depth``. Default: no limit.
    max_length : int, optional
        No channel lowers more than this many cells; WhiteboxTools' ``dist`` / ``max_dist`` (the search
        radius in cells). Default: no limit.
    max_cost : float, optional
        No channel whose total lowering (sum over its cells, elevation units) exceeds this is cut;
        WhiteboxTools' ``max_cost``. Default: no limit.
    fill : bool, default True
        Fill the depressions left unbreached (WhiteboxTools' ``fill_deps``). With ``False`` they stay.
    flat_increment : float, optional
        Drop per channel cell (elevation units); WhiteboxTools' ``flat_increment``. Default: the smallest
        representable step of the DEM's dtype at each cell, the least possible change (the dtype is kept;
        WhiteboxTools instead switches to float64 and derives a step from the elevation range).

    Returns
    -------
    xarray.DataArray
        The breached (and filled) surface, same dtype (float32 stays float32; integers become float64),
        coords, CRS and attrs, plus ``attrs["breached_pits"]`` (pits drained by their own channel or by an
        earlier one) and ``attrs["unbreached_pits"]`` (pits no channel within the limits could drain; filled
        when ``fill=True``). Memory: the output plus 5 bytes per cell while breaching (pit marks, search slots) plus
        the pit lists and one search's queue; then :func:`hydrology.fill_depressions`'s needs if it runs.

    Raises
    ------
    ParameterError
        If a limit is not a positive number (``max_length`` a whole number of cells) or ``flat_increment`` is
        not a positive finite number.

    Examples
    --------
    A flat two-cell basin (height 2) behind a one-cell dam (5) next to lower ground (1, then the edge): the
    dam is cut to just below the basin floor, where filling would raise the basin to 5.

    >>> import numpy as np, xarray as xr, rioxarray
    >>> z = np.array([[9, 9, 9, 9, 9], [9, 2, 2, 5, 1], [9, 9, 9, 9, 9]], float)
    >>> dem = xr.DataArray(z, dims=("y", "x"), coords={"y": [2.5, 1.5, 0.5], "x": [0.5, 1.5, 2.5, 3.5, 4.5]})
    >>> out = breach_depressions(dem.rio.write_crs("EPSG:32631"), flat_increment=0.1)
    >>> out.values[1].round(6).tolist()
    [9.0, 2.0, 2.0, 1.9, 1.0]
    >>> out.attrs["breached_pits"], out.attrs["unbreached_pits"]
    (1, 0)
    """
    max_depth = _limit(max_depth, "max_depth")
    max_length = _limit(max_length, "max_length", integer=True)
    max_cost = _limit(max_cost, "max_cost", allow_zero=True)
    if flat_increment is not None:
        step = _limit(flat_increment, "flat_increment")
        if math.isinf(step):
            raise ParameterError(f"flat_increment must be finite, got {flat_increment!r}")
    else:
        step = 0.0
    if not isinstance(fill, (bool, np.bool_)):
        raise ParameterError(f"fill must be True or False, got {fill!r}")
    grid = check_grid(dem, "dem")
    z0 = float_values(dem, grid, "dem")
    out = z0.copy()
    fbuf = np.zeros(1, dtype=out.dtype)
    ibuf = fbuf.view(np.int32 if fbuf.itemsize == 4 else np.int64)
    cells, starts, count = _k.find_pits(out, step, fbuf, ibuf)
    heights = out.reshape(-1)[cells[starts[:count]]]
    order = np.argsort(heights, kind="stable").astype(np.int64)
    n = out.size
    _, _, unsolved = _k.breach(
        z0,
        out,
        cells,
        starts,
        order,
        step,
        math.inf if max_depth is None else max_depth,
        n + 1 if max_length is None else int(min(max_length, n + 1)),
        math.inf if max_cost is None else max_cost,
        fbuf,
        ibuf,
        np.zeros(1, dtype=np.int32),
    )
    attrs = {**dem.attrs, "breached_pits": int(count - unsolved), "unbreached_pits": int(unsolved)}
    result = wrap(out, dem, grid, dem.name or "breached", attrs=attrs)
    if fill and unsolved:
        result = fill_depressions(result)
        result.attrs.update(attrs)
    return result
