"""Rainfall-runoff: SCS curve number, curve-number grids, rational method, NRCS unit hydrograph, infiltration.

Functions are vectorised: they take Python numbers, NumPy arrays or xarray DataArrays (also dask-backed, which
stay lazy) and return the same kind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np
import xarray as xr

from hydrology._kernels_runoff import (
    green_ampt_increments,
    horton_curve,
    horton_increments,
    scs_excess_runoff,
)
from hydrology.errors import GridError, ParameterError

__all__ = [
    "NRCS_DIMENSIONLESS_UH",
    "TR55_CURVE_NUMBERS",
    "amc_adjust",
    "curve_number_grid",
    "green_ampt_cumulative",
    "green_ampt_rate",
    "horton_cumulative",
    "horton_rate",
    "nrcs_unit_hydrograph",
    "rational_peak",
    "scs_retention",
    "scs_runoff",
]

Units = Literal["mm", "in"]


def _where(cond, a, b):
    if isinstance(cond, xr.DataArray) or isinstance(a, xr.DataArray) or isinstance(b, xr.DataArray):
        return xr.where(cond, a, b)
    out = np.where(cond, a, b)
    return out[()] if out.ndim == 0 else out


def _check_range(name: str, value, lo: float, hi: float, *, lo_open: bool = False) -> None:
    v = np.asarray(value.data if isinstance(value, xr.DataArray) else value)
    if v.dtype == object or getattr(v, "chunks", None) is not None:  # dask arrays are checked lazily by NaNs
        return
    finite = v[np.isfinite(v)] if np.issubdtype(v.dtype, np.floating) else v
    if finite.size and ((finite.min() <= lo if lo_open else finite.min() < lo) or finite.max() > hi):
        bound = "(" if lo_open else "["
        raise ParameterError(f"{name} must lie in {bound}{lo}, {hi}], got values in [{finite.min()}, {finite.max()}]")


def scs_runoff(precipitation, curve_number, *, units: Units = "mm", ia_ratio: float = 0.2):
    """Direct runoff depth by the SCS (NRCS) curve-number method.

    ``S = 1000/CN - 10`` inches (``25400/CN - 254`` mm), ``Ia = ia_ratio * S`` and
    ``Q = (P - Ia)^2 / (P - Ia + S)`` for ``P > Ia``, else 0 (USDA-SCS 1986, TR-55, eq. 2-1 to 2-4).

    Parameters
    ----------
    precipitation : float, array or DataArray
        Rainfall depth P (>= 0) in ``units``.
    curve_number : float, array or DataArray
        CN in (0, 100]; broadcast against ``precipitation`` (a CN grid and a rainfall grid, for example).
    units : {"mm", "in"}
    ia_ratio : float, default 0.2
        Initial abstraction ratio. With 0.05 (Hawkins et al. 2002) the retention of the tabulated (0.2-based)
        curve number is converted, ``S_0.05 = 1.33 S_0.20^1.15`` in inches (Woodward et al. 2003), so TR-55
        curve numbers are used as they are; other ratios keep ``S``.

    Returns
    -------
    Same kind as the inputs: runoff depth Q in ``units``.

    Examples
    --------
    TR-55 example 2-2 (CN 75, P = 6.0 in) and a metric case:

    >>> round(float(scs_runoff(6.0, 75, units="in")), 2)
    3.28
    >>> round(float(scs_runoff(120.0, 85, units="mm")), 1)
    79.1
    >>> round(float(scs_runoff(2.0, 75, units="in", ia_ratio=0.05)), 3)  # S = 1.33 * 3.333^1.15 = 5.311 in
    0.427
    """
    if not 0 <= ia_ratio < 1:
        raise ParameterError(f"ia_ratio must lie in [0, 1), got {ia_ratio}")
    _check_range("precipitation", precipitation, 0.0, math.inf)
    if not isinstance(precipitation, xr.DataArray):
        precipitation = np.asarray(precipitation, dtype=float)
    s = scs_retention(curve_number, units=units, ia_ratio=ia_ratio)
    ia = ia_ratio * s
    excess = precipitation - ia
    with np.errstate(invalid="ignore", divide="ignore"):
        q = scs_excess_runoff(excess, s)  # 0/0 only where excess = 0, replaced below
    return _where(excess > 0, q, 0.0 * excess)


def scs_retention(curve_number, *, units: Units = "mm", ia_ratio: float = 0.2):
    """Potential maximum retention ``S = 1000/CN - 10`` inches (``25400/CN - 254`` mm) of a curve number; with
    ``ia_ratio=0.05``, converted for that initial abstraction: ``S_0.05 = 1.33 S^1.15`` in inches (Woodward et
    al. 2003), since tabulated curve numbers are 0.2-based.

    Examples
    --------
    >>> round(float(scs_retention(75, units="in")), 4), round(float(scs_retention(100)), 4)
    (3.3333, 0.0)
    >>> round(float(scs_retention(75, units="in", ia_ratio=0.05)), 3)
    5.311
    """
    if units not in ("mm", "in"):
        raise ParameterError(f"units must be 'mm' or 'in', got {units!r}")
    _check_range("curve_number", curve_number, 0.0, 100.0, lo_open=True)
    if not isinstance(curve_number, xr.DataArray):
        curve_number = np.asarray(curve_number, dtype=float)
    inches = 1000.0 / curve_number - 10.0
    if ia_ratio == 0.05:
        inches = 1.33 * inches**1.15
    return inches * (25.4 if units == "mm" else 1.0)


def amc_adjust(curve_number, condition: Literal["I", "II", "III"]):
    """Curve number for dry (I) or wet (III) antecedent moisture from the average (II) one.

    ``CN(I) = 4.2 CN / (10 - 0.058 CN)`` and ``CN(III) = 23 CN / (10 + 0.13 CN)`` (Chow, Maidment & Mays 1988,
    Applied Hydrology, eq. 5.5.6-5.5.7, fitted to NEH-4 table 10.1).

    Examples
    --------
    >>> round(float(amc_adjust(75, "I")), 1), round(float(amc_adjust(75, "III")), 1)
    (55.8, 87.3)
    """
    _check_range("curve_number", curve_number, 0.0, 100.0, lo_open=True)
    if condition == "II":
        return curve_number
    if condition == "I":
        return 4.2 * curve_number / (10.0 - 0.058 * curve_number)
    if condition == "III":
        return 23.0 * curve_number / (10.0 + 0.13 * curve_number)
    raise ParameterError(f"condition must be 'I', 'II' or 'III', got {condition!r}")


#: Runoff curve numbers for hydrologic soil groups (A, B, C, D), average moisture, from USDA-SCS (1986)
#: TR-55 tables 2-2a (urban) and 2-2b/2-2c (agricultural, other). Keys are the names accepted by
#: :func:`curve_number_grid`.
TR55_CURVE_NUMBERS: dict[str, tuple[float, float, float, float]] = {
    "open_space_poor": (68, 79, 86, 89),
    "open_space_fair": (49, 69, 79, 84),
    "open_space_good": (39, 61, 74, 80),
    "impervious": (98, 98, 98, 98),
    "streets_paved_curbs": (98, 98, 98, 98),
    "streets_gravel": (76, 85, 89, 91),
    "streets_dirt": (72, 82, 87, 89),
    "commercial": (89, 92, 94, 95),
    "industrial": (81, 88, 91, 93),
    "residential_1_8_acre": (77, 85, 90, 92),
    "residential_1_4_acre": (61, 75, 83, 87),
    "residential_1_3_acre": (57, 72, 81, 86),
    "residential_1_2_acre": (54, 70, 80, 85),
    "residential_1_acre": (51, 68, 79, 84),
    "residential_2_acre": (46, 65, 77, 82),
    "newly_graded": (77, 86, 91, 94),
    "fallow_bare": (77, 86, 91, 94),
    "row_crops_straight_good": (67, 78, 85, 89),
    "small_grain_straight_good": (63, 75, 83, 87),
    "pasture_good": (39, 61, 74, 80),
    "meadow": (30, 58, 71, 78),
    "brush_good": (30, 48, 65, 73),
    "woods_poor": (45, 66, 77, 83),
    "woods_fair": (36, 60, 73, 79),
    "woods_good": (30, 55, 70, 77),
    "farmsteads": (59, 74, 82, 86),
}


def curve_number_grid(
    landcover: xr.DataArray,
    soil_group: xr.DataArray,
    table: Mapping[int, str | tuple[float, float, float, float]],
) -> xr.DataArray:
    """Curve-number grid from a land-cover grid and a hydrologic-soil-group grid.

    Parameters
    ----------
    landcover : xarray.DataArray
        Integer land-cover classes.
    soil_group : xarray.DataArray
        Hydrologic soil group per cell: 1-4 or "A"-"D" (dual groups such as "A/D" are not accepted; choose
        the drained or undrained one first). NaN/0 = unknown, giving NaN.
    table : mapping
        Land-cover class -> a :data:`TR55_CURVE_NUMBERS` name or a tuple of CNs for groups (A, B, C, D).

    Returns
    -------
    xarray.DataArray
        float64 CN on the land-cover grid (coords, CRS kept); NaN where the class or group is unknown.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> lc = xr.DataArray(np.array([[1, 2], [2, 9]]), dims=("y", "x"))
    >>> hsg = xr.DataArray(np.array([["B", "C"], ["D", "A"]]), dims=("y", "x"))
    >>> curve_number_grid(lc, hsg, {1: "commercial", 2: (30, 55, 70, 77)}).values.tolist()
    [[92.0, 70.0], [77.0, nan]]
    """
    if not isinstance(landcover, xr.DataArray) or not isinstance(soil_group, xr.DataArray):
        raise GridError("landcover and soil_group must be xarray.DataArray objects on the same grid")
    if landcover.shape != soil_group.shape:
        raise GridError(f"landcover {landcover.shape} and soil_group {soil_group.shape} shapes differ")
    hsg = np.asarray(soil_group.values)
    if hsg.dtype.kind in "US":
        letters = np.char.upper(hsg.astype(str))
        idx = np.select([letters == g for g in "ABCD"], [0, 1, 2, 3], -1)
    else:
        h = np.nan_to_num(hsg.astype(float), nan=0.0)
        idx = np.where(np.isin(h, [1, 2, 3, 4]), h - 1, -1).astype(int)
    classes = np.asarray(landcover.values)
    cn = np.full(classes.shape, np.nan)
    for cls, entry in table.items():
        if isinstance(entry, str):
            if entry not in TR55_CURVE_NUMBERS:
                raise ParameterError(f"unknown cover {entry!r}; use one of {sorted(TR55_CURVE_NUMBERS)}")
            entry = TR55_CURVE_NUMBERS[entry]
        values = np.asarray(entry, dtype=float)
        if values.shape != (4,) or np.any((values <= 0) | (values > 100)):
            raise ParameterError(f"class {cls}: give 4 curve numbers in (0, 100] for groups A-D, got {entry}")
        sel = (classes == cls) & (idx >= 0)
        cn[sel] = values[idx[sel]]
    out = landcover.copy(data=cn)
    out.name = "curve_number"
    out.attrs = {"long_name": "SCS runoff curve number", "units": "1"}
    return out


def rational_peak(c, intensity, area, *, units: Literal["us", "si"] = "us"):
    """Peak discharge by the rational method, ``Q = C i A``.

    ``units="us"``: i in in/h, A in acres, Q in ft3/s (the conversion factor 1.008 is taken as 1, as usual).
    ``units="si"``: i in mm/h, A in m2, Q in m3/s (``Q = C i A / 3.6e6``).

    Examples
    --------
    >>> round(rational_peak(0.11, 1.25, 30.0), 3)
    4.125
    """
    _check_range("c", c, 0.0, 1.0)
    if units == "us":
        return c * intensity * area
    if units == "si":
        return c * intensity * area / 3.6e6
    raise ParameterError(f"units must be 'us' or 'si', got {units!r}")


#: NRCS dimensionless unit hydrograph, (t/Tp, q/qp), NEH Part 630 chapter 16, table 16-1.
NRCS_DIMENSIONLESS_UH = np.array(
    [
        (0.0, 0.000), (0.1, 0.030), (0.2, 0.100), (0.3, 0.190), (0.4, 0.310), (0.5, 0.470), (0.6, 0.660),
        (0.7, 0.820), (0.8, 0.930), (0.9, 0.990), (1.0, 1.000), (1.1, 0.990), (1.2, 0.930), (1.3, 0.860),
        (1.4, 0.780), (1.5, 0.680), (1.6, 0.560), (1.7, 0.460), (1.8, 0.390), (1.9, 0.330), (2.0, 0.280),
        (2.2, 0.207), (2.4, 0.147), (2.6, 0.107), (2.8, 0.077), (3.0, 0.055), (3.2, 0.040), (3.4, 0.029),
        (3.6, 0.021), (3.8, 0.015), (4.0, 0.011), (4.5, 0.005), (5.0, 0.000),
    ]
)  # fmt: skip


def nrcs_unit_hydrograph(
    area,
    tc: float,
    duration: float,
    *,
    runoff: float = 1.0,
    units: Literal["us", "si"] = "us",
    dt: float | None = None,
) -> xr.DataArray:
    """NRCS (SCS) dimensionless unit hydrograph scaled to a catchment.

    ``Tp = D/2 + 0.6 Tc`` (lag = 0.6 Tc) and ``qp = K A Q / Tp`` with K = 484 for A in mi2, Q in inches, Tp in
    hours, qp in ft3/s (``units="us"``) or K = 0.208 for A in km2, Q in mm, qp in m3/s (``units="si"``).
    The shape is table 16-1 of NEH Part 630 chapter 16, interpolated linearly.

    Parameters
    ----------
    area : float
        Drainage area (mi2 or km2).
    tc : float
        Time of concentration, hours.
    duration : float
        Duration D of the unit excess rainfall, hours.
    runoff : float, default 1
        Runoff depth Q (in or mm); 1 gives the unit hydrograph.
    dt : float, optional
        Output step in hours (default D).

    Returns
    -------
    xarray.DataArray
        Discharge over ``time`` in seconds from the start of the excess rainfall; ``attrs`` hold ``tp_hours``
        and ``qp``.

    Examples
    --------
    >>> uh = nrcs_unit_hydrograph(1.0, tc=1.5, duration=0.2)
    >>> uh.attrs["tp_hours"], round(float(uh.max()), 1), float(uh.time[int(np.argmax(uh.values))]) / 3600
    (1.0, 484.0, 1.0)
    """
    if tc <= 0 or duration <= 0 or area <= 0:
        raise ParameterError("area, tc and duration must be positive")
    k = {"us": 484.0, "si": 0.208}.get(units)
    if k is None:
        raise ParameterError(f"units must be 'us' or 'si', got {units!r}")
    tp = duration / 2.0 + 0.6 * tc
    qp = k * area * runoff / tp
    step = duration if dt is None else dt
    n = math.floor(5.0 * tp / step + 1e-9) + 1
    t_h = np.arange(n) * step
    q = qp * np.interp(t_h / tp, NRCS_DIMENSIONLESS_UH[:, 0], NRCS_DIMENSIONLESS_UH[:, 1])
    return xr.DataArray(
        q,
        dims=("time",),
        coords={"time": ("time", t_h * 3600.0, {"units": "s", "long_name": "time since start"})},
        name="discharge",
        attrs={"units": "ft3 s-1" if units == "us" else "m3 s-1", "tp_hours": round(tp, 12), "qp": qp},
    )


def green_ampt_rate(cumulative, k_sat, psi, delta_theta):
    """Green-Ampt infiltration capacity ``f = K (1 + psi * dtheta / F)`` for cumulative infiltration F.

    Units: F and psi in one length unit, K (and the result) in that unit per time. F = 0 gives +inf.

    Examples
    --------
    Chow, Maidment & Mays (1988) example 4.3.1, silt loam after 1 h:

    >>> round(float(green_ampt_rate(3.17, 0.65, 16.7, 0.340)), 2)
    1.81
    """
    with np.errstate(divide="ignore"):
        return k_sat * (1.0 + psi * delta_theta / cumulative)


def green_ampt_cumulative(t, k_sat, psi, delta_theta, *, initial=0.0, tol: float = 1e-10):
    """Cumulative Green-Ampt infiltration F(t) under ponding for a time t, starting from F = ``initial``.

    Solves ``F - F0 - psi dtheta ln((psi dtheta + F) / (psi dtheta + F0)) = K t`` (Chow et al. 1988
    eq. 4.3.8 from F0 = 0, eq. 4.4.5 from any F0) by Newton iteration from above the root. With ``initial``
    it is the step form a model uses: the most that can infiltrate over a step of ``t`` from the state F0.

    Examples
    --------
    >>> round(float(green_ampt_cumulative(1.0, 0.65, 16.7, 0.340)), 2)
    3.17
    >>> round(float(green_ampt_cumulative(0.5, 0.65, 16.7, 0.340, initial=green_ampt_cumulative(0.5, 0.65,
    ...     16.7, 0.340))), 2)  # two half hours make one hour
    3.17
    """
    pd = psi * delta_theta
    args = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (initial, t, k_sat, pd)))
    flat = [np.ascontiguousarray(a).ravel() for a in args]
    out = np.empty(flat[0].size)
    green_ampt_increments(*flat, float(tol), out)
    f = flat[0] + out
    f = f.reshape(args[0].shape)
    return f[()] if f.ndim == 0 else f


def horton_rate(t, f0, fc, k):
    """Horton infiltration capacity ``f = fc + (f0 - fc) exp(-k t)``.

    Examples
    --------
    >>> float(horton_rate(0.0, 75.0, 10.0, 2.0)), round(float(horton_rate(1.0, 75.0, 10.0, 2.0)), 3)
    (75.0, 18.797)
    """
    return fc + (f0 - fc) * np.exp(-k * t)


def horton_cumulative(t, f0, fc, k, *, initial=None, tol: float = 1e-12):
    """Cumulative Horton infiltration under ponding ``F = fc t + (f0 - fc)(1 - exp(-k t)) / k``.

    With ``initial`` (a cumulative infiltration F0) the curve continues from the point where it holds F0 (the
    infiltrated-depth form a model steps with, as in SWMM): ``F(te + t)`` with ``F(te) = F0``.

    Examples
    --------
    >>> round(float(horton_cumulative(1.0, 75.0, 10.0, 2.0)), 3)
    38.102
    >>> round(float(horton_cumulative(0.5, 75.0, 10.0, 2.0, initial=horton_cumulative(0.5, 75.0, 10.0, 2.0))), 3)
    38.102
    """
    if initial is None:
        return horton_curve(t, f0, fc, k)
    args = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (initial, t, f0, fc, k)))
    flat = [np.ascontiguousarray(a).ravel() for a in args]
    out = np.empty(flat[0].size)
    horton_increments(*flat, float(tol), out)
    f = (flat[0] + out).reshape(args[0].shape)
    return f[()] if f.ndim == 0 else f
