"""Rain-gauge time series from CSV: one time column, one or more value columns, to mm/h over ``time``.

The unit comes from the caller (``units="m"``) or from the column header (``rain [mm]``, ``precip (mm/h)``,
``rain_mm``); a file that states none is refused — the KNMI Vlissingen file, for one, is in metres, and reading
it as millimetres would shrink a cloudburst a thousandfold. Amounts per interval are divided by the interval;
like the radar reader, ``time`` is the interval start and ``time_end`` its end (amounts are taken as labelled at
the end of their interval unless ``time_label="start"``). Empty cells are missing and stay missing (NaN);
literal NaN text and negative rain are refused. Naive timestamps are taken as UTC (``tz=`` to say otherwise).

Into a scene (`ingest.ingest`) each series goes as a SensorThings Thing (``station=``, default the file name) with
an optional Location (``location=(lon, lat)`` in WGS84) and one Datastream of rates in mm/h whose observations
have the interval as phenomenonTime (start/end); missing intervals are left out, re-ingesting adds nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cim.errors import DataError, ValidationError
from ingest.base import Reader, ReadResult, register, utc_times
from ingest.rainfall import AMOUNT_UNITS, RATE_UNITS, check_values, is_amount, normalise_units, rate_factor

__all__ = ["GaugeCSVReader"]

_UNIT_IN_HEADER = re.compile(r"[\[(]\s*([^\])]+?)\s*[\])]\s*$")


def _unit_from_header(col: str) -> str | None:
    m = _UNIT_IN_HEADER.search(col)
    if m:
        return m.group(1)
    m = re.search(r"[_ ](mm|m|mm_h|mmh|mm_per_h)$", col.lower())
    if m:
        return {"mm_h": "mm/h", "mmh": "mm/h", "mm_per_h": "mm/h"}.get(m.group(1), m.group(1))
    return None


@register
class GaugeCSVReader(Reader):
    name = "gauge_csv"
    extensions = (".csv",)
    options = frozenset({"units", "column", "time_column", "interval", "time_label", "tz", "nan", "station",
                         "location"})
    description = "rain-gauge time series (CSV) to mm/h"

    def read(self, path: Path, *, units: str | None = None, column: str | None = None,
             time_column: str | int = 0, interval: Any = None, time_label: Literal["start", "end"] | None = None,
             tz: str = "UTC", nan: Literal["raise", "missing"] = "raise", station: str | None = None,
             location: tuple[float, float] | None = None) -> ReadResult:
        import pandas as pd
        import xarray as xr

        path = Path(path)
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path.name}: not a readable CSV ({exc}); check the file") from None
        if df.shape[1] < 2:
            raise DataError(f"{path.name}: needs a time column and at least one value column; found {list(df.columns)}")
        tcol = df.columns[time_column] if isinstance(time_column, int) else time_column
        if tcol not in df.columns:
            raise ValidationError(f"{path.name}: no column {tcol!r}; columns are {list(df.columns)}")
        value_cols = [c for c in df.columns if c != tcol]
        if column is not None:
            if column not in value_cols:
                raise ValidationError(f"{path.name}: no value column {column!r}; columns are {value_cols}")
            value_cols = [column]
        t, row = utc_times(df[tcol], tz)          # offsets may change within the file (daylight saving)
        if row is not None:
            raise DataError(f"{path.name}: column {tcol!r} row {row + 2} {df[tcol].iloc[row]!r} is not a date/time; "
                            "fix the row or pass time_column=")
        times = t.dt.tz_localize(None).to_numpy("datetime64[ns]")
        if len(times) > 1 and np.any(np.diff(times) <= np.timedelta64(0)):
            raise DataError(f"{path.name}: times in {tcol!r} must increase strictly (duplicates or unsorted rows)")
        result = ReadResult(source=path, format=self.name)
        if location is not None:
            try:
                lon, lat = (float(v) for v in location)
            except (TypeError, ValueError):
                raise ValidationError(f"location must be (lon, lat) in degrees, got {location!r}") from None
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise ValidationError(f"location {location!r} is not (lon, lat) in degrees (WGS84)")
            result.extra["location"] = (lon, lat)
        result.extra["station"] = station or path.name.split(".")[0]
        for col in value_cols:
            u = units or _unit_from_header(col)
            if u is None:
                raise ValidationError(
                    f"{path.name}: column {col!r} does not say its unit and none was given; pass units= "
                    "(e.g. units='m' for the KNMI Vlissingen file, 'mm' for hourly sums in mm, 'mm/h' for rates)")
            n = normalise_units(u)
            if n not in AMOUNT_UNITS and n not in RATE_UNITS:
                raise ValidationError(f"{path.name}: unit {u!r} of column {col!r} is not a rainfall unit; pass "
                                      f"units= one of {', '.join(sorted(AMOUNT_UNITS) + sorted(RATE_UNITS))}")
            text = df[col].str.strip()
            vals = pd.to_numeric(text.where(text != "", None), errors="coerce").to_numpy(np.float64)
            unparsable = np.isnan(vals) & (text != "").to_numpy() & ~text.str.lower().isin(["nan"]).to_numpy()
            if unparsable.any():
                row = int(np.nonzero(unparsable)[0][0])
                raise DataError(f"{path.name}: column {col!r} row {row + 2} {text.iloc[row]!r} is not a number")
            literal_nan = text.str.lower().eq("nan").to_numpy()
            check_values(np.where(literal_nan, np.nan, np.nan_to_num(vals, nan=0.0)), path, col,
                         nan_declared=False, nan=nan, times=times,
                         declare="leave the cell empty for a missing value")
            if interval is not None:
                step = float(pd.Timedelta(interval).total_seconds())
            elif len(times) > 1:
                step = float(np.median(np.diff(times)).astype("timedelta64[ns]").astype(np.int64) / 1e9)
            else:
                raise ValidationError(f"{path.name}: one row only; pass interval=")
            label = time_label or ("end" if is_amount(u) else "start")
            delta = np.timedelta64(round(step * 1e9), "ns")
            starts = times - delta if label == "end" else times
            rate = vals * rate_factor(u, step)
            name = f"rainfall_{col}" if len(value_cols) > 1 else "rainfall"
            result.series[name] = xr.DataArray(
                rate, coords={"time": starts, "time_end": ("time", starts + delta)}, dims=("time",), name=name,
                attrs={"units": "mm/h", "source_units": u, "source_column": col, "interval_seconds": step,
                       "time_convention": "time is the start of each interval; time_end its end"})
        return result

    def write(self, scene: Any, result: ReadResult, report: Any) -> None:
        """Each series as a SensorThings Thing + Datastream (mm/h) with its observations (see the docstring)."""
        import pandas as pd

        from cim.iot import (
            Datastream,
            Location,
            ObservedProperty,
            Sensor,
            Thing,
            UnitOfMeasurement,
            add_observation_frame,
            add_thing,
        )

        name = result.extra["station"]
        locs = ()
        if "location" in result.extra:
            lon, lat = result.extra["location"]
            locs = (Location(name, {"type": "Point", "coordinates": [lon, lat]}),)
        streams = tuple(
            Datastream(name=f"{s.attrs['source_column']} rainfall rate",
                       description=f"rain gauge rates from {result.source.name} (source units "
                                   f"{s.attrs['source_units']}); phenomenonTime is the interval",
                       unit_of_measurement=UnitOfMeasurement("millimetre per hour", "mm/h",
                                                             "http://unitsofmeasure.org/ucum.html"),
                       sensor=Sensor("rain gauge", f"series from {result.source.name}"),
                       observed_property=ObservedProperty(
                           "lwe_precipitation_rate", "http://vocab.nerc.ac.uk/standard_name/lwe_precipitation_rate/"))
            for s in result.series.values())
        with scene.transaction() as conn:
            added = add_thing(conn, Thing(name, f"rain gauge ingested from {result.source.name}", locations=locs,
                                          datastreams=streams))
            for ds, s in zip(streams, result.series.values(), strict=True):
                keep = ~np.isnan(s.to_numpy())
                frame = pd.DataFrame({
                    "phenomenon_time": pd.DatetimeIndex(s["time"].to_numpy()[keep]).tz_localize("UTC"),
                    "phenomenon_time_end": pd.DatetimeIndex(s["time_end"].to_numpy()[keep]).tz_localize("UTC"),
                    "result": s.to_numpy()[keep]})
                new = add_observation_frame(conn, frame, datastream_id=added.datastream_ids[ds.name])
                report.add(result.source, f"{name} / {ds.name}", "sensors", new)
                if new < int(keep.sum()):
                    report.skip(result.source, ds.name, f"{int(keep.sum()) - new} observations were stored already")
