"""Rain from the scene's rain gauges (SensorThings Datastreams) as forecast rainfall: one gauge as uniform rain,
several gridded over the model domain (part of the scene-aware layer, like `flood.forecasting`).

Gauges report depths per interval (mm or m). Each gauge's depths are turned into rates over its own intervals,
then all gauges are put on the finest interval of any of them by their depth within each step (so a gauge that
reports hourly keeps its hourly depth on a 10-minute grid), and
`hydrology.gauges_to_grid` spreads them over cells of about ``cell`` metres covering the domain (inverse
distance weighting or nearest gauge). `flood.simulate` regrids that conservatively to the model cells.

>>> parse_window("2020-06-17T14:00/2020-06-17T17:00")
(Timestamp('2020-06-17 14:00:00+0000', tz='UTC'), Timestamp('2020-06-17 17:00:00+0000', tz='UTC'))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

import cim

__all__ = ["gauge_rainfall", "parse_window", "rain_gauges"]

_RAIN = "precipitation|rain"
#: mm per unit of gauge depths
_DEPTH_SCALE = {"mm": 1.0, "m": 1000.0}


def parse_window(text: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``START/END`` (ISO 8601, UTC unless an offset is given) as two UTC timestamps, START before END."""
    try:
        start, end = (pd.Timestamp(t).tz_localize("UTC") if pd.Timestamp(t).tzinfo is None
                      else pd.Timestamp(t).tz_convert("UTC") for t in str(text).split("/"))
    except ValueError:
        raise cim.ValidationError(f"gauge window {text!r}: give START/END, e.g. "
                                  "2020-06-17T14:00/2020-06-17T17:00") from None
    if not start < end:
        raise cim.ValidationError(f"gauge window {text!r}: START must be before END")
    return start, end


def rain_gauges(conn: Any, datastreams: Sequence[int | str] | None = None) -> pd.DataFrame:
    """The rain-gauge Datastreams (rows of `cim.iot.datastreams`): those whose observed property names
    precipitation or rain, or the ones picked by id or name (each must be a rain gauge)."""
    from cim import iot

    streams = iot.datastreams(conn)
    is_rain = streams["observed_property"].str.contains(_RAIN, case=False, na=False)
    if datastreams is None:
        return streams[is_rain]
    rows = []
    for key in datastreams:
        hit = streams["id"] == key if isinstance(key, (int, np.integer)) else streams["name"] == str(key)
        if not hit.any():
            raise cim.ValidationError(f"datastreams: no Datastream {key!r} in the scene; list them with "
                                      "GET /Datastreams or cim.iot.datastreams(conn)")
        if hit.sum() > 1:
            raise cim.ValidationError(f"datastreams: {hit.sum()} Datastreams are named {key!r}; give their ids")
        row = streams[hit].iloc[0]
        if not is_rain[hit].iloc[0]:
            raise cim.ValidationError(f"datastreams: Datastream {row['id']} ({row['name']!r}) observes "
                                      f"{row['observed_property']!r}, not rain")
        rows.append(row)
    return pd.DataFrame(rows).drop_duplicates("id")


def _intervals(row: Any, obs: pd.DataFrame, time_label: str) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex, np.ndarray]:
    """Interval starts, ends and depths (mm) of one gauge's observations."""
    scale = _DEPTH_SCALE.get(str(row["unit_symbol"]))
    if scale is None:
        raise cim.ValidationError(f"rain gauge {row['name']!r} reports in {row['unit_symbol']!r}; expected depths "
                                  "in mm or m")
    t = pd.DatetimeIndex(pd.to_datetime(obs["phenomenon_time"], utc=True))
    t_end = pd.DatetimeIndex(pd.to_datetime(obs["phenomenon_time_end"], utc=True))
    if t_end.isna().all():
        if len(t) < 2:
            raise cim.ValidationError(f"rain gauge {row['name']!r}: one observation without a phenomenon time "
                                      "interval; its duration is unknown (store intervals, start/end)")
        step = pd.Series(t).diff().median()
        t0, t1 = (t - step, t) if time_label == "end" else (t, t + step)
    else:
        t0, t1 = t, t_end
    if np.any(t0[1:] < t1[:-1]):
        raise cim.ValidationError(f"rain gauge {row['name']!r}: its observation intervals overlap; each must "
                                  "end before the next begins")
    return t0, t1, obs["result"].to_numpy(dtype=np.float64) * scale


def _common_steps(gauges: list[tuple], names: list[str]) -> xr.DataArray:
    """(time, gauge) mm/h on the finest interval of any gauge: each gauge's depth within each step over the
    time it reported in that step (NaN where it did not report at all)."""
    origin = min(g[0][0] for g in gauges)
    step = min(float(np.min((g[1] - g[0]).total_seconds())) for g in gauges)
    end = max(g[1][-1] for g in gauges)
    n = math.ceil(round((end - origin).total_seconds() / step, 6))
    edges = np.arange(n + 1) * step
    out = np.full((n, len(gauges)), np.nan)
    for k, (t0, t1, depth) in enumerate(gauges):
        a = (t0 - origin).total_seconds().to_numpy()
        b = (t1 - origin).total_seconds().to_numpy()
        xp = np.column_stack([a, b]).ravel()
        cum_depth = np.column_stack([np.cumsum(depth) - depth, np.cumsum(depth)]).ravel()
        cum_time = np.column_stack([np.cumsum(b - a) - (b - a), np.cumsum(b - a)]).ravel()
        d = np.diff(np.interp(edges, xp, cum_depth))
        s = np.diff(np.interp(edges, xp, cum_time))
        out[:, k] = np.where(s > 1e-9 * step, d / np.where(s > 0, s, 1.0) * 3600.0, np.nan)
    times = (origin + pd.to_timedelta(edges[:-1], unit="s")).tz_localize(None).to_numpy()
    return xr.DataArray(out, coords={"time": times, "gauge": names}, dims=("time", "gauge"))


def _step_rates(t0: pd.DatetimeIndex, t1: pd.DatetimeIndex, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times and mm/h of one gauge as a step function: each interval's rate from its start, and 0 from the end
    of an interval that the next one does not follow at once (a silent gauge does not keep raining) and from
    the end of the last.

    >>> t0 = pd.DatetimeIndex(["2020-06-17T10:00", "2020-06-17T10:30"])
    >>> times, rate = _step_rates(t0, t0 + pd.Timedelta("10min"), np.array([2.0, 1.0]))
    >>> [str(t)[11:16] for t in times], rate.tolist()
    (['10:00', '10:10', '10:30', '10:40'], [12.0, 0.0, 6.0, 0.0])
    """
    rate = depth / ((t1 - t0).total_seconds().to_numpy() / 3600.0)
    times, out = [], []
    for i in range(len(t0)):
        times.append(t0[i])
        out.append(rate[i])
        if i + 1 == len(t0) or t0[i + 1] > t1[i]:
            times.append(t1[i])
            out.append(0.0)
    return pd.DatetimeIndex(times).tz_localize(None).to_numpy(), np.asarray(out, dtype=np.float64)


def _rain_grid(domain: xr.DataArray, cell: float) -> xr.DataArray:
    """A grid of about ``cell`` metres (at least 2 x 2) covering ``domain``'s extent exactly, in its CRS."""
    xmin, ymin, xmax, ymax = domain.rio.bounds()
    nx, ny = (max(2, math.ceil((hi - lo) / cell - 1e-9)) for lo, hi in ((xmin, xmax), (ymin, ymax)))
    sx, sy = (xmax - xmin) / nx, (ymax - ymin) / ny
    x = xmin + sx * (np.arange(nx) + 0.5)
    y = ymax - sy * (np.arange(ny) + 0.5)
    return xr.DataArray(np.zeros((ny, nx)), coords={"y": y, "x": x}, dims=("y", "x")).rio.write_crs(domain.rio.crs)


def gauge_rainfall(scene: cim.Scene, window: tuple[Any, Any] | None = None, *,
                   datastreams: Sequence[int | str] | None = None, domain: xr.DataArray | None = None,
                   method: Literal["idw", "nearest"] = "idw", cell: float = 100.0,
                   time_label: str = "end") -> xr.DataArray:
    """Rain rate (mm/h) from the scene's rain gauges over the intervals that start within ``window`` (start
    inclusive, end exclusive; aware datetimes or ISO 8601 strings).

    ``datastreams`` picks gauges by Datastream id or name (default: every Datastream whose observed property
    names precipitation or rain). One gauge gives a 1-D series over its interval starts (uniform rain); several
    give a ``(time, y, x)`` grid over ``domain`` (default: the scene's terrain) in cells of about ``cell`` m,
    by inverse distance weighting (``method="idw"``) or nearest gauge (``"nearest"``, Thiessen polygons), on the
    finest reporting interval of any gauge. A gauge that did not report in a step is left out of that step; steps
    no gauge reported are taken as dry (counted in ``attrs["steps_without_gauges"]``). Gauge values are depths
    per interval; ``time_label="end"`` (KNMI's convention) means a value stamped 15:00 fell from 14:00 to 15:00.

    Examples
    --------
    >>> rain = gauge_rainfall(scene, parse_window("2020-06-17T10:00/2020-06-17T18:00"))  # doctest: +SKIP
    >>> rain.attrs["units"]  # doctest: +SKIP
    'mm/h'
    """
    from cim import iot
    from hydrology import gauges_to_grid

    if method not in ("idw", "nearest"):
        raise cim.ValidationError(f"gauge method {method!r}: choose 'idw' or 'nearest'")
    lo, hi = window if window is not None else (None, None)
    start = None if lo is None else iot.parse_time(lo, "window start")
    end = None if hi is None else iot.parse_time(hi, "window end")
    # a stamp may mark an interval's end: read a day either side (for the reporting step too) and keep the
    # intervals that start inside the window
    day = pd.Timedelta(days=1)
    read_start, read_end = (None if start is None else start - day), (None if end is None else end + day)
    with scene.transaction() as conn:
        rain = rain_gauges(conn, datastreams)
        if rain.empty:
            raise cim.ValidationError(f"scene {scene.name!r} has no rain-gauge Datastream (observed property "
                                      "with 'precipitation' or 'rain'); ingest one, or give rainfall= directly")
        obs = {int(r["id"]): iot.observations(conn, int(r["id"]), read_start, read_end) for _, r in rain.iterrows()}
        places = iot.sensor_locations(conn) if len(rain) > 1 else None
    series, names, things = [], [], []
    for _, row in rain.iterrows():
        o = obs[int(row["id"])]
        none = pd.DatetimeIndex([], tz="UTC")
        t0, t1, depth = _intervals(row, o, time_label) if len(o) else (none, none, None)
        keep = np.ones(len(t0), bool)
        if start is not None:
            keep &= np.asarray(t0 >= start)
        if end is not None:
            keep &= np.asarray(t0 < end)
        if not keep.any():
            if len(rain) == 1:
                raise cim.ValidationError(f"rain gauge {row['name']!r} has no observations in {window}")
            continue
        series.append((t0[keep], t1[keep], depth[keep]))
        names.append(f"{row['thing']}: {row['name']}")
        things.append(row["thing"])
    if not series:
        raise cim.ValidationError(f"none of the {len(rain)} rain gauges has observations in {window}")
    if len(rain) == 1:
        times, rate = _step_rates(*series[0])
        return xr.DataArray(rate, coords={"time": times}, dims="time", name="rainfall",
                            attrs={"units": "mm/h", "source": f"rain gauge {rain.iloc[0]['name']}"})
    # a Thing that moved keeps its older Locations: the newest (highest id) is where it is
    at = places.drop_duplicates("thing", keep="last").set_index("thing").geometry.representative_point()
    missing = sorted(set(things) - set(at.index))
    if missing:
        raise cim.ValidationError(f"rain gauges {missing} have no GeoJSON point Location; give their Things a "
                                  "Location to grid several gauges")
    points = gpd.GeoSeries(at.loc[things].to_numpy(), crs=places.crs)
    if domain is None:
        from flood.forecasting import terrain
        domain = terrain(scene)
    target = _rain_grid(domain, cell)
    values = _common_steps(series, names)
    grid = gauges_to_grid(values, gpd.GeoDataFrame(geometry=points.to_crs(target.rio.crs)), target, method=method)
    dry = int(np.isnan(values).all("gauge").sum())
    out = grid.fillna(0.0).rename("rainfall").rio.write_crs(target.rio.crs)
    out.attrs = {"units": "mm/h", "method": method, "steps_without_gauges": dry,
                 "source": f"{len(names)} rain gauges ({method}): " + "; ".join(names)}
    return out
