"""Forcing of the flood solver: rainfall (uniform or gridded), point inflows, infiltration and drainage.

Infiltration is a rate (mm/h, a number or a grid) or a soil model with state: :class:`GreenAmpt` or
:class:`Horton` (capacity falling with the cumulative infiltration) or :class:`SCSCurveNumber` (only the SCS runoff of the cumulative rain
stays on the surface); both take numbers or grids aligned with the DEM.

Every time-varying forcing is a step function: each time value starts an interval with the given rate. Times
are seconds from the start of the run, or datetimes (then counted from ``start``, by default the first
datetime given).

>>> import xarray as xr
>>> rain = xr.DataArray([20.0, 60.0, 0.0], coords={"time": [0.0, 600.0, 1200.0]}, dims="time")
>>> f = rainfall_series(rain)
>>> round(f.rate_at(700.0) * 3.6e6, 9)  # back to mm/h
60.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from flood import _kernels as K
from flood.errors import FloodCRSError, FloodTypeError, FloodValueError, GridMismatchError
from hydrology.runoff import scs_retention

__all__ = [
    "GreenAmpt",
    "Horton",
    "Inlet",
    "PointInflow",
    "SCSCurveNumber",
    "TimeSeries",
    "rainfall_series",
    "regrid_conservative",
    "to_m_per_s",
]

# factors from a rate unit to m/s; rates are mm/h unless the DataArray says otherwise in attrs["units"]
_RATE_UNITS = {
    "mm/h": 1.0 / 3.6e6, "mm h-1": 1.0 / 3.6e6, "mm hr-1": 1.0 / 3.6e6, "mm/hr": 1.0 / 3.6e6,
    "mm h**-1": 1.0 / 3.6e6, "mm/s": 1e-3, "mm s-1": 1e-3, "m/s": 1.0, "m s-1": 1.0,
    "kg m-2 s-1": 1e-3, "m/h": 1.0 / 3600.0, "m h-1": 1.0 / 3600.0,
}


def to_m_per_s(units: str | None, name: str) -> float:
    """Factor from a rate unit (``None`` = mm/h) to m/s.

    >>> to_m_per_s("kg m-2 s-1", "rainfall")
    0.001
    """
    if units is None:
        return _RATE_UNITS["mm/h"]
    key = " ".join(str(units).strip().split())
    if key not in _RATE_UNITS:
        raise FloodValueError(
            f"{name}: unknown rate units {units!r}; use one of {sorted(_RATE_UNITS)} (or none for mm/h)"
        )
    return _RATE_UNITS[key]


def _times_to_seconds(values: np.ndarray, start: Any, name: str) -> tuple[np.ndarray, np.datetime64 | None]:
    """Time coordinate values -> float seconds from the start; datetimes count from ``start`` (or the first)."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        t0 = np.datetime64(start, "ns") if start is not None else values.min().astype("datetime64[ns]")
        sec = (values.astype("datetime64[ns]") - t0) / np.timedelta64(1, "s")
        return sec.astype(np.float64), t0
    if np.issubdtype(values.dtype, np.timedelta64):
        return (values / np.timedelta64(1, "s")).astype(np.float64), None
    if not np.issubdtype(values.dtype, np.number):
        raise FloodTypeError(f"{name}: the 'time' coordinate must hold seconds or datetimes, not {values.dtype}")
    return values.astype(np.float64), None


@dataclass(frozen=True)
class TimeSeries:
    """A step function of time: ``values[k]`` holds from ``times[k]`` until ``times[k + 1]`` (or ``end``).

    ``values`` may have trailing grid dimensions ``(nt, ny, nx)``; the rate is 0 before the first time and from
    ``end`` on.
    """

    times: np.ndarray
    values: np.ndarray
    end: float = math.inf

    def index(self, t: float) -> int:
        """Interval holding time ``t`` (-1 when none does)."""
        if t >= self.end:
            return -1
        return int(np.searchsorted(self.times, t, side="right")) - 1

    def rate_at(self, t: float):
        """Value at time ``t`` (0 outside the series)."""
        k = self.index(t)
        if k < 0:
            return 0.0 if self.values.ndim == 1 else None
        return float(self.values[k]) if self.values.ndim == 1 else self.values[k]

    def breakpoints(self) -> np.ndarray:
        """The times at which the value changes (interval starts and the end)."""
        pts = list(self.times)
        if math.isfinite(self.end):
            pts.append(self.end)
        return np.asarray(pts, dtype=np.float64)

    def integral(self, t0: float, t1: float) -> float:
        """Exact integral over [t0, t1] of a 1-D series (volume per unit, e.g. m of rain)."""
        edges = np.append(self.times, self.end)
        lo = np.clip(edges[:-1], t0, t1)
        hi = np.clip(edges[1:], t0, t1)
        return float(np.sum(self.values * (hi - lo)))


def _series_end(times: np.ndarray) -> float:
    """End of the last interval: one typical spacing after the last time (a single value holds forever)."""
    if times.size < 2:
        return math.inf
    return float(times[-1] + np.median(np.diff(times)))


def rainfall_series(
    rain: Any, *, start: Any = None, name: str = "rainfall", scale: float | None = None
) -> TimeSeries:
    """A number or a 1-D DataArray over ``time`` (rates, mm/h unless ``attrs['units']`` says else) -> m/s series.

    The last value lasts one typical time spacing (a single value: the whole run); end a storm early with a 0.

    >>> round(rainfall_series(36.0).rate_at(1e6), 12)  # m/s
    1e-05
    """
    if isinstance(rain, bool):
        raise FloodTypeError(f"{name}: expected a number in mm/h or a DataArray over 'time', got a bool")
    if isinstance(rain, int | float | np.integer | np.floating):
        rate = float(rain)
        if not math.isfinite(rate) or rate < 0:
            raise FloodValueError(f"{name}: the rate must be a finite number >= 0 (mm/h), got {rain!r}")
        f = scale if scale is not None else to_m_per_s(None, name)
        return TimeSeries(np.array([0.0]), np.array([rate * f]))
    if not isinstance(rain, xr.DataArray):
        raise FloodTypeError(
            f"{name}: expected a number (mm/h) or an xarray.DataArray over 'time', got {type(rain).__name__}"
        )
    if rain.dims != ("time",):
        raise FloodValueError(f"{name}: a 1-D series must have the single dimension 'time', got {rain.dims}")
    times, _ = _times_to_seconds(rain["time"].values, start, name)
    vals = np.asarray(rain.values, dtype=np.float64)
    if vals.size == 0:
        raise FloodValueError(f"{name}: the series is empty; give at least one time and rate")
    if np.any(np.diff(times) <= 0):
        raise FloodValueError(f"{name}: 'time' must increase strictly; sort it (rain.sortby('time'))")
    if not np.all(np.isfinite(vals)) or np.any(vals < 0):
        raise FloodValueError(f"{name}: rates must be finite and >= 0; fill gaps with 0 (rain.fillna(0))")
    f = scale if scale is not None else to_m_per_s(rain.attrs.get("units"), name)
    return TimeSeries(times, vals * f, _series_end(times))


def _cell_edges(coord: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edges of the cells of a regular 1-D coordinate."""
    c = np.asarray(coord, dtype=np.float64)
    if c.size == 1:
        raise FloodValueError(f"{name}: a grid needs at least 2 cells per axis to know its cell size")
    d = np.diff(c)
    if not np.allclose(d, d[0], rtol=1e-6, atol=0):
        raise FloodValueError(f"{name}: the grid must be regular (equal spacing) along each axis")
    half = abs(d[0]) / 2.0
    return c - half, c + half


def _overlap_matrix(dst: np.ndarray, src: np.ndarray, name: str):
    """Sparse (n_dst, n_src) matrix of overlap length / destination cell length along one axis."""
    from scipy import sparse

    dlo, dhi = _cell_edges(dst, name)
    slo, shi = _cell_edges(src, name)
    order = np.argsort(slo)
    slo_s, shi_s = slo[order], shi[order]
    j0 = np.searchsorted(shi_s, dlo, side="right")
    j1 = np.searchsorted(slo_s, dhi, side="left")
    counts = np.maximum(j1 - j0, 0)
    rows = np.repeat(np.arange(dst.size), counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cols_sorted = np.repeat(j0, counts) + offs
    ov = np.minimum(dhi[rows], shi_s[cols_sorted]) - np.maximum(dlo[rows], slo_s[cols_sorted])
    w = np.clip(ov, 0.0, None) / (dhi[rows] - dlo[rows])
    return sparse.csr_matrix((w, (rows, order[cols_sorted])), shape=(dst.size, src.size))


def regrid_conservative(grid: xr.DataArray, dem: xr.DataArray, *, name: str = "rainfall") -> np.ndarray:
    """Regrid a ``(time, y, x)`` rate grid to the DEM's cells, area-weighted (conservative), as float64.

    A grid in another CRS is first reprojected to the DEM's CRS at its own resolution (nearest pixel), then
    every DEM cell receives the area-weighted mean of the pixels that cover it; parts of a DEM cell outside the
    grid, and NaN pixels, count as 0.

    >>> import numpy as np, xarray as xr
    >>> dem = xr.DataArray(np.zeros((4, 4)), coords={"y": [3.5, 2.5, 1.5, 0.5], "x": [0.5, 1.5, 2.5, 3.5]},
    ...                    dims=("y", "x"))
    >>> coarse = xr.DataArray(np.array([[[1.0, 2.0], [3.0, 4.0]]]),
    ...                       coords={"time": [0.0], "y": [3.0, 1.0], "x": [1.0, 3.0]}, dims=("time", "y", "x"))
    >>> regrid_conservative(coarse, dem)[0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]])
    """
    if set(grid.dims) != {"time", "y", "x"}:
        raise FloodValueError(f"{name}: a rain grid must have dimensions (time, y, x), got {grid.dims}")
    grid = grid.transpose("time", "y", "x")
    gcrs = grid.rio.crs
    dcrs = dem.rio.crs
    if gcrs is not None and dcrs is None:
        raise FloodCRSError(f"{name}: the grid has a CRS but the DEM has none; set it with dem.rio.write_crs(...)")
    if gcrs is not None and dcrs is not None and gcrs != dcrs:
        from rasterio.enums import Resampling

        grid = grid.rio.reproject(dcrs, resampling=Resampling.nearest, nodata=np.nan)
        grid = grid.rename({grid.rio.y_dim: "y", grid.rio.x_dim: "x"}) if grid.rio.y_dim != "y" else grid
    wy = _overlap_matrix(dem["y"].values, grid["y"].values, name)
    wx = _overlap_matrix(dem["x"].values, grid["x"].values, name)
    if wy.nnz == 0 or wx.nnz == 0:
        raise FloodValueError(f"{name}: the grid does not overlap the DEM; check both extents and CRSs")
    vals = np.nan_to_num(np.asarray(grid.values, dtype=np.float64), nan=0.0)
    out = np.empty((vals.shape[0], dem.sizes["y"], dem.sizes["x"]))
    for k in range(vals.shape[0]):
        out[k] = (wx @ (wy @ vals[k]).T).T
    return out


def _finite_fields(obj: Any, fields: tuple[str, ...]) -> None:
    """Raise FloodTypeError unless every named field of ``obj`` is a finite real number."""
    for fld in fields:
        v = getattr(obj, fld)
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not math.isfinite(v):
            raise FloodTypeError(f"{type(obj).__name__}.{fld}: expected a finite number, got {v!r}")


@dataclass(frozen=True)
class PointInflow:
    """Water entering at a point: ``discharge`` m³/s (a number, or a DataArray over ``time``, step function)
    spread evenly over the active cells whose centres lie within ``radius`` (m, DEM CRS) of ``(x, y)``, or the
    nearest cell when none does.

    >>> PointInflow(10.0, 20.0, 0.5, radius=5.0).radius
    5.0
    """

    x: float
    y: float
    discharge: Any
    radius: float = 0.0

    def __post_init__(self) -> None:
        _finite_fields(self, ("x", "y", "radius"))
        if self.radius < 0:
            raise FloodValueError(f"PointInflow.radius: must be >= 0 m, got {self.radius}")
        if isinstance(self.discharge, int | float | np.integer | np.floating) and not isinstance(
            self.discharge, bool
        ):
            if not math.isfinite(self.discharge) or self.discharge < 0:
                raise FloodValueError(f"PointInflow.discharge: must be finite and >= 0 m³/s, got {self.discharge}")
        elif not isinstance(self.discharge, xr.DataArray):
            raise FloodTypeError(
                "PointInflow.discharge: expected m³/s as a number or a DataArray over 'time', "
                f"got {type(self.discharge).__name__}"
            )

    def series(self, start: Any = None) -> TimeSeries:
        """The discharge as a step function of time (m³/s)."""
        return rainfall_series(self.discharge, start=start, name="PointInflow.discharge", scale=1.0)


@dataclass(frozen=True)
class Inlet:
    """A drainage inlet (gully, culvert) taking up to ``capacity`` m³/s of the water present at ``(x, y)``,
    spread over the active cells within ``radius`` (m, DEM CRS; the nearest cell when none is that close).
    Give a list of them as ``drainage=``.

    >>> Inlet(10.0, 20.0, 0.05).capacity
    0.05
    """

    x: float
    y: float
    capacity: float
    radius: float = 0.0

    def __post_init__(self) -> None:
        _finite_fields(self, ("x", "y", "capacity", "radius"))
        if self.capacity < 0 or self.radius < 0:
            raise FloodValueError(f"Inlet: capacity (m³/s) and radius (m) must be >= 0, got {self.capacity}, {self.radius}")


def as_inflows(inflows: Sequence[PointInflow] | PointInflow | None) -> list[PointInflow]:
    """Normalise the ``inflows`` argument to a list of PointInflow."""
    if inflows is None:
        return []
    if isinstance(inflows, PointInflow):
        return [inflows]
    out = list(inflows)
    for i, p in enumerate(out):
        if not isinstance(p, PointInflow):
            raise FloodTypeError(f"inflows[{i}]: expected flood.PointInflow(x, y, discharge), got {type(p).__name__}")
    return out


def rate_grid(value: Any, dem: xr.DataArray, name: str) -> tuple[float, np.ndarray | None]:
    """A rate (mm/h; a number or a DEM-aligned grid) -> (uniform m/s, or None and a float32 grid in m/s)."""
    if value is None:
        return 0.0, None
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise FloodValueError(f"{name}: the rate must be a finite number >= 0 (mm/h), got {value!r}")
        return v * to_m_per_s(None, name), None
    units = value.attrs.get("units") if isinstance(value, xr.DataArray) else None
    arr = aligned_grid(value, dem, name)
    if np.any(arr[np.isfinite(arr)] < 0):
        raise FloodValueError(f"{name}: rates must be >= 0 (mm/h)")
    return 0.0, (np.nan_to_num(arr, nan=0.0) * to_m_per_s(units, name)).astype(np.float32)


def aligned_grid(value: Any, dem: xr.DataArray, name: str) -> np.ndarray:
    """A DataArray or ndarray with the DEM's shape (and coordinates, for a DataArray) -> float64 array."""
    if isinstance(value, xr.DataArray):
        if set(value.dims) == set(dem.dims):
            value = value.transpose(*dem.dims)
        if value.shape != dem.shape or tuple(value.dims) != tuple(dem.dims):
            raise GridMismatchError(
                f"{name}: the grid has dims {value.dims} shape {value.shape}; it must match the DEM's "
                f"{dem.dims} {dem.shape} (regrid it with .rio.reproject_match(dem))"
            )
        for d in dem.dims:
            if d in value.coords and d in dem.coords and not np.allclose(value[d].values, dem[d].values):
                raise GridMismatchError(
                    f"{name}: its '{d}' coordinates differ from the DEM's; align it with .rio.reproject_match(dem)"
                )
        return np.array(value.values, dtype=np.float64)  # a copy: callers may edit it
    if isinstance(value, np.ndarray):
        if value.shape != dem.shape:
            raise GridMismatchError(f"{name}: array shape {value.shape} differs from the DEM's {dem.shape}")
        return value.astype(np.float64)
    raise FloodTypeError(f"{name}: expected a number or a grid (DataArray/ndarray like the DEM), got {type(value).__name__}")


def _soil_field(obj: Any, fld: str, lo: float, hi: float, what: str, *, lo_open: bool = False) -> None:
    """Check one field of a soil model: a finite number or a grid (DataArray/ndarray) with values in range."""
    v = getattr(obj, fld)
    name = f"{type(obj).__name__}.{fld}"
    rng = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if math.isfinite(hi) else "")
    if isinstance(v, xr.DataArray | np.ndarray):
        arr = np.asarray(v.values if isinstance(v, xr.DataArray) else v)
        if arr.ndim != 2 or arr.dtype.kind not in "iuf":
            raise FloodTypeError(f"{name}: a grid must be a 2-D numeric array like the DEM, got {arr.dtype} {arr.shape}")
        vals = arr[np.isfinite(arr)]  # NaN cells are checked against the walls when the model is built
        if not vals.size:
            return
        v_lo, v_hi, got = float(vals.min()), float(vals.max()), "values in [{:g}, {:g}]"
    elif isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise FloodTypeError(f"{name}: expected {what} as a number or a grid aligned with the DEM, got {type(v).__name__}")
    else:
        v_lo = v_hi = float(v)
        got = "{!r}"
    if not (math.isfinite(v_lo) and math.isfinite(v_hi)) or (v_lo <= lo if lo_open else v_lo < lo) or v_hi > hi:
        raise FloodValueError(f"{name}: {what} must be {rng}, got " + got.format(v_lo, v_hi))


class _SoilModel:
    """Base of the soil models: ``_checks`` lists (field, low, high, what) for :func:`_soil_field`."""

    _checks: ClassVar[tuple[tuple[str, float, float, str], ...]] = ()

    def __post_init__(self) -> None:
        for fld, lo, hi, what in self._checks:
            _soil_field(self, fld, lo, hi, what)


@dataclass(frozen=True, eq=False)
class GreenAmpt(_SoilModel):
    """Green-Ampt infiltration (Green & Ampt 1911; Chow, Maidment & Mays 1988, section 4.3) as ``infiltration=``.

    Every cell tracks its cumulative infiltration F (0 at the start); a step takes the capacity
    ``f = k_sat (1 + psi delta_theta / F)`` integrated exactly over the step, limited to the water present
    (ponded water and the step's rain). Each field is a number or a grid aligned with the DEM (NaN only on
    walls).

    Parameters
    ----------
    k_sat : number or grid
        Saturated hydraulic conductivity K (mm/h), >= 0 (0: impervious).
    psi : number or grid
        Suction head at the wetting front (mm), >= 0.
    delta_theta : number or grid
        Moisture deficit: effective porosity minus the initial moisture content, in [0, 1].

    Examples
    --------
    Silt loam (Chow et al. 1988, table 4.3.1: K 6.5 mm/h, psi 166.8 mm, effective porosity 0.486), 30 % of
    it filled at the start:

    >>> soil = GreenAmpt(k_sat=6.5, psi=166.8, delta_theta=0.7 * 0.486)
    >>> round(soil.delta_theta, 4)
    0.3402
    """

    k_sat: Any
    psi: Any
    delta_theta: Any

    _checks: ClassVar = (("k_sat", 0.0, math.inf, "the conductivity (mm/h)"),
                         ("psi", 0.0, math.inf, "the suction head (mm)"),
                         ("delta_theta", 0.0, 1.0, "the moisture deficit"))


@dataclass(frozen=True, eq=False)
class Horton(_SoilModel):
    """Horton infiltration (Horton 1933) in its infiltrated-depth form (as in SWMM) as ``infiltration=``.

    Every cell tracks its cumulative infiltration F; the capacity is that of the ponded curve
    ``F(t) = fc t + (f0 - fc)(1 - exp(-k t)) / k`` at the point where it holds F, so it decays with the water
    taken in, not with the clock (:func:`hydrology.horton_cumulative` with ``initial=``). Each field is a
    number or a grid aligned with the DEM (NaN only on walls).

    Parameters
    ----------
    f0, fc : number or grid
        Initial and final capacity (mm/h), ``f0 >= fc >= 0``.
    k : number or grid
        Decay constant (1/h), >= 0.

    Examples
    --------
    >>> Horton(f0=75.0, fc=10.0, k=2.0).fc
    10.0
    """

    f0: Any
    fc: Any
    k: Any

    _checks: ClassVar = (("f0", 0.0, math.inf, "the initial capacity (mm/h)"),
                         ("fc", 0.0, math.inf, "the final capacity (mm/h)"),
                         ("k", 0.0, math.inf, "the decay constant (1/h)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if all(isinstance(v, int | float | np.integer | np.floating) for v in (self.f0, self.fc)) and self.fc > self.f0:
            raise FloodValueError(f"Horton.fc: the final capacity must not exceed f0={self.f0:g} mm/h, got {self.fc!r}")


@dataclass(frozen=True, eq=False)
class SCSCurveNumber:
    """SCS curve-number losses (USDA-SCS 1986, TR-55) as ``infiltration=``: only the runoff stays on the surface.

    Every cell tracks its cumulative rain P from the start of the run; of each step's rain dP it keeps
    ``Q(P + dP) - Q(P)`` on the surface, with ``Q = (P - Ia)^2 / (P - Ia + S)`` above ``Ia = ia_ratio S`` and
    ``S = 25400 / CN - 254`` mm (:func:`hydrology.scs_runoff`), and books the rest as infiltration. Water that
    arrives by flow or from inflows is not taken (the method is a rainfall-excess method).

    Parameters
    ----------
    curve_number : number or grid
        CN in (0, 100], e.g. :func:`hydrology.curve_number_grid` from land cover and soil groups (NaN only on
        walls: fill unknown cells, e.g. ``cn.fillna(98)`` for paved ground).
    ia_ratio : float, default 0.2
        Initial abstraction over retention (0.05: Hawkins et al. 2002, with the retention of the tabulated CN
        converted as in :func:`hydrology.scs_runoff`).

    Examples
    --------
    >>> SCSCurveNumber(75).ia_ratio
    0.2
    """

    curve_number: Any
    ia_ratio: float = 0.2

    def __post_init__(self) -> None:
        _soil_field(self, "curve_number", 0.0, 100.0, "the curve number", lo_open=True)
        v = self.ia_ratio
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise FloodTypeError(f"SCSCurveNumber.ia_ratio: expected a number in [0, 1), got {type(v).__name__}")
        if not (math.isfinite(v) and 0.0 <= v < 1.0):
            raise FloodValueError(f"SCSCurveNumber.ia_ratio: must lie in [0, 1) (0.2 in TR-55), got {v!r}")


def _soil_grid(obj: Any, fld: str, dem: xr.DataArray, wall: np.ndarray) -> np.ndarray:
    """One soil field as a float64 grid on the DEM: NaN on active cells is an error, walls get 0."""
    v = getattr(obj, fld)
    name = f"{type(obj).__name__}.{fld}"
    if not isinstance(v, xr.DataArray | np.ndarray):
        return np.full(dem.shape, float(v))
    arr = aligned_grid(v, dem, name)
    missing = ~wall & ~np.isfinite(arr)
    if missing.any():
        raise FloodValueError(f"{name}: {int(missing.sum())} active cells have no value (NaN); fill them "
                              "(e.g. with .fillna(...)) or block those cells")
    arr[wall] = 0.0
    return arr


def soil_model(value: Any, dem: xr.DataArray, wall: np.ndarray) -> tuple[int, np.ndarray, np.ndarray] | None:
    """``infiltration=`` as the kernels' ``soil`` tuple (mode, parameters in m and m/s, zero state), or None
    when it is not a soil model (a rate, a rate grid or None)."""
    if isinstance(value, GreenAmpt):
        k = _soil_grid(value, "k_sat", dem, wall) * to_m_per_s(None, "GreenAmpt.k_sat")
        pd = _soil_grid(value, "psi", dem, wall) * 1e-3 * _soil_grid(value, "delta_theta", dem, wall)
        return K.SOIL_GREEN_AMPT, np.stack([k, pd]), np.zeros(dem.shape)
    if isinstance(value, Horton):
        f0, fc = (_soil_grid(value, f, dem, wall) * to_m_per_s(None, f"Horton.{f}") for f in ("f0", "fc"))
        bad = ~wall & (fc > f0)
        if bad.any():
            raise FloodValueError(f"Horton.fc: exceeds f0 on {int(bad.sum())} active cells; fc must be <= f0")
        k = _soil_grid(value, "k", dem, wall) / 3600.0
        return K.SOIL_HORTON, np.stack([f0, fc, k]), np.zeros(dem.shape)
    if isinstance(value, SCSCurveNumber):
        cn = _soil_grid(value, "curve_number", dem, wall)
        s = np.where(wall, 0.0, scs_retention(np.where(wall, 100.0, cn), units="mm", ia_ratio=value.ia_ratio) * 1e-3)
        return K.SOIL_SCS_CN, np.stack([s, value.ia_ratio * s]), np.zeros(dem.shape)
    return None
