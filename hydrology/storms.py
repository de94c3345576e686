"""Design storms: IDF curves, the Chinese storm-intensity formula, Chicago and alternating-block hyetographs.

Every hyetograph is a 1-D ``xarray.DataArray`` of rainfall rate in mm/h over ``time`` in seconds from the start
of the storm, each time value being the start of a constant-rate interval: exactly the uniform-rain forcing
``flood.simulate(dem, rainfall=storm, ...)`` takes.

Durations in IDF formulas are in minutes (as in the formulas' sources); intensities are in mm/h.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np
import xarray as xr

from hydrology.errors import ParameterError

__all__ = [
    "IDF",
    "ChineseStormFormula",
    "alternating_block",
    "chicago_hyetograph",
    "chinese_storm_formula",
    "hyetograph",
    "sewer_capacity",
]

#: 1 L/(s·ha) in mm/h: 1e-3 m3/s over 1e4 m2 is 1e-7 m/s = 0.36 mm/h.
LPS_HA_TO_MM_H = 0.36


@dataclass(frozen=True)
class IDF:
    """Intensity-duration-frequency curve ``i = a / (t + b)^n`` (mm/h, t in minutes) for one return period.

    Examples
    --------
    >>> idf = IDF(a=1000.0, b=10.0, n=0.7)
    >>> round(float(idf.intensity(30.0)), 3), round(float(idf.depth(30.0)), 3)
    (75.606, 37.803)
    """

    a: float
    b: float
    n: float

    def __post_init__(self) -> None:
        if not (self.a > 0 and self.b >= 0 and 0 < self.n < 1):
            raise ParameterError(f"IDF needs a > 0, b >= 0 and 0 < n < 1, got a={self.a}, b={self.b}, n={self.n}")

    def intensity(self, minutes):
        """Mean intensity (mm/h) over a duration in minutes."""
        return self.a / (np.asarray(minutes, dtype=float) + self.b) ** self.n

    def depth(self, minutes):
        """Depth (mm) of the heaviest burst of the given duration: intensity x duration."""
        minutes = np.asarray(minutes, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = self.intensity(minutes) * minutes / 60.0
        return np.where(minutes > 0, d, 0.0)  # the limit for t -> 0 (n < 1), also when b = 0


@dataclass(frozen=True)
class ChineseStormFormula:
    """Storm-intensity formula of GB 50014 (Code for design of outdoor wastewater engineering):

    ``q = 167 A1 (1 + C lg P) / (t + b)^n`` in L/(s·ha), t in minutes, P the return period in years.

    Examples
    --------
    >>> beijing = chinese_storm_formula("beijing")
    >>> round(float(beijing.q(10.0, 1.0)), 1), round(float(beijing.intensity(10.0, 1.0)), 2)  # L/(s ha), mm/h
    (256.3, 92.27)
    """

    a1: float
    c: float
    b: float
    n: float
    name: str = ""
    source: str = ""

    def q(self, minutes, return_period):
        """Intensity in L/(s·ha)."""
        if np.any(np.asarray(return_period) <= 0):
            raise ParameterError("return_period must be positive (years)")
        p = np.asarray(return_period, dtype=float)
        return 167.0 * self.a1 * (1.0 + self.c * np.log10(p)) / (np.asarray(minutes, dtype=float) + self.b) ** self.n

    def intensity(self, minutes, return_period):
        """Intensity in mm/h."""
        return self.q(minutes, return_period) * LPS_HA_TO_MM_H

    def idf(self, return_period: float) -> IDF:
        """The IDF curve ``i = a / (t + b)^n`` (mm/h) of one return period."""
        a = 167.0 * self.a1 * (1.0 + self.c * math.log10(return_period)) * LPS_HA_TO_MM_H
        return IDF(a=a, b=self.b, n=self.n)


def sewer_capacity(storm: ChineseStormFormula | IDF, return_period: float | None = None, *,
                   concentration_time: float = 15.0, runoff_coefficient: float = 1.0) -> float:
    """What a sewer network designed for a return period drains, as a loss rate in mm/h over its area.

    The rational design flow of GB 50014, ``Q = psi q F``, spread over the area ``F``: ``psi * i(t, P)`` with
    ``t`` the concentration time (minutes: surface inflow plus flow in the pipes) and ``P`` the design return
    period (years; with an :class:`IDF` of one return period leave it out). Ready for
    ``flood.simulate(drainage=...)`` or ``flood.forecast(drainage=...)``.

    Examples
    --------
    >>> beijing = chinese_storm_formula("beijing")
    >>> round(sewer_capacity(beijing, 3, concentration_time=15.0, runoff_coefficient=0.9), 1)
    96.8
    """
    if not 0 < runoff_coefficient <= 1:
        raise ParameterError(f"runoff_coefficient must lie in (0, 1], got {runoff_coefficient}")
    if not concentration_time > 0:
        raise ParameterError(f"concentration_time must be positive (minutes), got {concentration_time}")
    if isinstance(storm, IDF):
        if return_period is not None:
            raise ParameterError("an IDF curve is for one return period already: leave return_period out")
        i = storm.intensity(concentration_time)
    elif isinstance(storm, ChineseStormFormula):
        if return_period is None:
            raise ParameterError("give the network's design return period (years), e.g. 3")
        i = storm.intensity(concentration_time, return_period)
    else:
        raise ParameterError(f"storm must be a ChineseStormFormula or an IDF, not {type(storm).__name__}")
    return float(runoff_coefficient * i)


def _city_table() -> dict:
    text = resources.files("hydrology").joinpath("storm_formulas_cn.json").read_text(encoding="utf-8")
    return json.loads(text)


def chinese_storm_formula(city: str) -> ChineseStormFormula:
    """Parameters of a city's storm-intensity formula, kept as data with their source.

    Known cities: see ``hydrology/storm_formulas_cn.json`` (each entry names where it comes from).
    """
    table = _city_table()["cities"]
    key = city.strip().lower()
    if key not in table:
        raise ParameterError(f"no storm formula for {city!r}; known: {', '.join(sorted(table))}")
    e = table[key]
    return ChineseStormFormula(a1=e["numerator"] / 167.0, c=e["C"], b=e["b"], n=e["n"], name=e["name"], source=e["source"])


def _check_timing(duration: float, dt: float) -> int:
    if duration <= 0 or dt <= 0:
        raise ParameterError(f"duration and dt must be positive (minutes), got {duration} and {dt}")
    steps = duration / dt
    if abs(steps - round(steps)) > 1e-9 * steps:
        raise ParameterError(f"duration ({duration} min) must be a whole number of steps dt ({dt} min)")
    return round(steps)


def hyetograph(depths_mm: np.ndarray, dt_minutes: float, **attrs) -> xr.DataArray:
    """Wrap interval depths (mm) as a rate hyetograph (mm/h) over ``time`` in seconds (interval starts)."""
    depths_mm = np.asarray(depths_mm, dtype=float)
    t = np.arange(depths_mm.size) * dt_minutes * 60.0
    return xr.DataArray(
        depths_mm * 60.0 / dt_minutes,
        dims=("time",),
        coords={"time": ("time", t, {"units": "s", "long_name": "start of interval since storm start"})},
        name="rainfall_rate",
        attrs={"units": "mm/h", "interval_seconds": dt_minutes * 60.0, **attrs},
    )


def _depth_function(idf) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(idf, IDF):
        return idf.depth
    if callable(idf):
        def depth(minutes):
            minutes = np.asarray(minutes, dtype=float)
            safe = np.where(minutes > 0, minutes, 1.0)
            return np.where(minutes > 0, np.asarray(idf(safe), dtype=float) * minutes / 60.0, 0.0)

        return depth
    raise ParameterError("idf must be an IDF or a callable giving intensity (mm/h) for durations in minutes")


def chicago_hyetograph(idf, duration: float, dt: float, *, r: float = 0.4) -> xr.DataArray:
    """Chicago design storm (Keifer & Chu 1957) with the peak at fraction ``r`` of the duration.

    Built from its mass curve, so that for every burst length tw the rain between ``tp - r tw`` and
    ``tp + (1 - r) tw`` equals the IDF depth of duration tw (tp = r T): the cumulative depth is
    ``r (D(T) - D((tp - t)/r))`` before the peak and ``r D(T) + (1 - r) D((t - tp)/(1 - r))`` after it.
    Interval rates are its differences, so the total is exactly the IDF depth of the whole duration,
    ``a T / (T + b)^n / 60`` mm for ``i = a/(t + b)^n`` in mm/h.

    Parameters
    ----------
    idf : IDF or callable
        Intensity (mm/h) for a duration in minutes.
    duration, dt : float
        Storm length and step, minutes (duration a multiple of dt).
    r : float in [0, 1]
        Peak position.

    Examples
    --------
    >>> s = chicago_hyetograph(IDF(a=1000.0, b=10.0, n=0.7), duration=120, dt=5, r=0.4)
    >>> round(float((s * 5 / 60).sum()), 6) == round(1000.0 * 120 / 130**0.7 / 60, 6)
    True
    >>> k = int(np.argmax(s.values))   # the peak (48 min) lies in the interval starting at 45 min
    >>> k, float(s.time[k])
    (9, 2700.0)
    """
    if not 0 <= r <= 1:
        raise ParameterError(f"r must lie in [0, 1], got {r}")
    steps = _check_timing(duration, dt)
    depth = _depth_function(idf)
    t = np.arange(steps + 1) * float(dt)
    tp = r * duration
    total = float(depth(duration))
    mass = np.empty_like(t)
    before = t <= tp
    if r > 0:
        mass[before] = r * (total - depth((tp - t[before]) / r))
    else:
        mass[before] = 0.0
    if r < 1:
        mass[~before] = r * total + (1 - r) * depth((t[~before] - tp) / (1 - r))
    else:
        mass[~before] = total
    return hyetograph(np.diff(mass), dt, method="chicago", peak_position=r, total_depth_mm=total)


def alternating_block(idf, duration: float, dt: float, *, peak_position: float = 0.5) -> xr.DataArray:
    """Alternating-block design storm (Chow, Maidment & Mays 1988, section 14.4).

    Block depths are the increments of the IDF depth over durations dt, 2 dt, ...; the largest is placed in
    block ``floor(peak_position * (n - 1) + 0.5)`` and the others alternate right and left of it in
    decreasing order (falling back to whichever side still has room). So the k largest blocks are adjacent
    and hold the IDF depth of duration k dt.

    Examples
    --------
    >>> s = alternating_block(IDF(a=1000.0, b=10.0, n=0.7), duration=60, dt=10)
    >>> [round(v, 1) for v in (s * 10 / 60).values.tolist()]
    [3.7, 4.3, 7.0, 20.5, 10.4, 5.3]
    """
    if not 0 <= peak_position <= 1:
        raise ParameterError(f"peak_position must lie in [0, 1], got {peak_position}")
    steps = _check_timing(duration, dt)
    depth = _depth_function(idf)
    cum = depth(np.arange(1, steps + 1) * dt)
    blocks = np.diff(np.concatenate([[0.0], cum]))
    order = np.argsort(-blocks, kind="stable")
    out = np.zeros(steps)
    centre = math.floor(peak_position * (steps - 1) + 0.5)
    left, right = centre - 1, centre + 1
    out[centre] = blocks[order[0]]
    go_right = True
    for k in order[1:]:
        if (go_right and right < steps) or left < 0:
            out[right] = blocks[k]
            right += 1
        else:
            out[left] = blocks[k]
            left -= 1
        go_right = not go_right
    return hyetograph(out, dt, method="alternating_block", total_depth_mm=float(cum[-1]))
