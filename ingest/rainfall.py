"""Rainfall grids: CF NetCDF radar/nowcast (and GeoTIFF stacks) to rates in mm/h on ``(time, y, x)`` with a CRS.

Units come from the variable's CF ``units`` (or, when absent, its ``standard_name``): amounts per interval
(mm, m, kg m-2) are divided by the interval length; rates (mm/h, mm s-1, m s-1, kg m-2 s-1, mm/day) are scaled.
An unknown unit is refused. Values masked by ``_FillValue``/``missing_value`` stay missing (NaN); NaN in a
variable that declares no missing value, and negative rain, are refused (``nan="missing"`` keeps such NaN).

Each ``time`` of the result is the *start* of its interval (flood.simulate's step-function convention); the
``time_end`` coordinate keeps the end. Accumulations without CF time bounds are taken as labelled at the end of
their interval (radar convention; ``time_label="start"`` says otherwise); rates as labelled at the start.

>>> rate_factor("mm", 300.0), rate_factor("kg m-2 s-1", None), rate_factor("m", 3600.0)
(12.0, 3600.0, 1000.0)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cim.errors import CRSError, DataError, ValidationError
from ingest._crs import parse_crs, resolve_crs
from ingest.base import CORRUPT, LayerItem, Reader, ReadResult, check_size, register

__all__ = ["AMOUNT_UNITS", "RATE_UNITS", "RainfallNetCDFReader", "rate_factor", "to_rate"]

#: amount units -> millimetres
AMOUNT_UNITS: dict[str, float] = {"mm": 1.0, "m": 1000.0, "cm": 10.0, "kg m-2": 1.0, "0.1 mm": 0.1}
#: rate units -> mm/h
RATE_UNITS: dict[str, float] = {"mm h-1": 1.0, "mm s-1": 3600.0, "m s-1": 3.6e6, "kg m-2 s-1": 3600.0,
                                "m h-1": 1000.0, "mm d-1": 1.0 / 24.0, "mm min-1": 60.0, "kg m-2 h-1": 1.0}
#: CF standard names -> canonical units
STANDARD_NAMES: dict[str, str] = {
    "precipitation_flux": "kg m-2 s-1", "rainfall_flux": "kg m-2 s-1", "lwe_precipitation_rate": "m s-1",
    "rainfall_rate": "m s-1", "precipitation_amount": "kg m-2", "rainfall_amount": "kg m-2",
    "lwe_thickness_of_precipitation_amount": "m", "thickness_of_rainfall_amount": "m",
}
_ALIASES = {"kg/(m^2)": "kg m-2", "kg/(m^2s)": "kg m-2 s-1", "kg/m^2": "kg m-2", "kg/m^2/s": "kg m-2 s-1",
            "kg/(m^2*s)": "kg m-2 s-1", "mm/hr": "mm h-1"}
_RAIN_WORDS = ("precip", "rain", "rr", "pr", "tp", "lwe")


def normalise_units(units: str) -> str:
    """'mm/hr', 'mm h**-1', 'kg.m-2.s-1', 'kg/m2/s' -> the keys of AMOUNT_UNITS / RATE_UNITS."""
    u = str(units).strip().lower().strip("[]")
    u = _ALIASES.get(u.replace(" ", ""), u)
    u = u.replace("**", "").replace("^", "").replace(".", " ").replace("·", " ")
    u = re.sub(r"\b(millimet(er|re)s?)\b", "mm", u)
    u = re.sub(r"\b(hours?|hrs?)\b", "h", u)
    u = re.sub(r"\b(seconds?|secs?)\b", "s", u)
    u = re.sub(r"\b(days?)\b", "d", u)
    u = re.sub(r"\bmin(ute)?s?\b", "min", u)
    u = re.sub(r"/\s*m2\b", " m-2", u)
    u = re.sub(r"/\s*(h|s|d|min)\b", r" \1-1", u)
    u = re.sub(r"\bm2\b(?!-)", "m-2", u) if "kg" in u else u
    return " ".join(u.split())


def rate_factor(units: str, interval_seconds: float | None) -> float:
    """Factor taking values in ``units`` to mm/h (amounts need the interval in seconds)."""
    u = normalise_units(units)
    if u in RATE_UNITS:
        return RATE_UNITS[u]
    if u in AMOUNT_UNITS:
        if not interval_seconds:
            raise ValidationError(f"units {units!r} are an amount per interval; the interval length is needed")
        return AMOUNT_UNITS[u] * 3600.0 / float(interval_seconds)
    raise ValidationError(f"unknown rainfall units {units!r}")


def is_amount(units: str) -> bool:
    return normalise_units(units) in AMOUNT_UNITS


def units_of(attrs: dict, path: Path, var: str, given: str | None) -> str:
    """The units to use: the caller's, else CF units, else from the standard_name; refuse unknown ones."""
    u = given or attrs.get("units")
    field = f"variable {var!r} attribute 'units'" if not given else "units option"
    if not u:
        sn = attrs.get("standard_name")
        if sn in STANDARD_NAMES:
            return STANDARD_NAMES[sn]
        raise ValidationError(f"{path.name}: {var!r} has neither 'units' nor a known 'standard_name'; pass "
                              "units= (e.g. units='mm' for accumulations, 'mm/h' for rates)")
    n = normalise_units(u)
    if n not in RATE_UNITS and n not in AMOUNT_UNITS:
        raise ValidationError(
            f"{path.name}: {field} = {u!r} is not a rainfall unit this reader knows; pass units= one of "
            f"{', '.join(sorted(AMOUNT_UNITS))} (amounts per interval) or {', '.join(sorted(RATE_UNITS))} (rates)")
    return u


def check_values(values: np.ndarray, path: Path, var: str, *, nan_declared: bool, nan: str,
                 times: Any = None, declare: str = "declare one (_FillValue/missing_value)") -> None:
    """Refuse negative rain and undeclared NaN (unless nan='missing'), naming where."""
    neg = values < -1e-9
    if neg.any():
        first = np.argwhere(neg)[0]
        ti = first[0] if times is not None and len(times) == len(values) > 1 else 0
        when = f" (first at time {np.datetime_as_string(times[ti], 's')})" if times is not None else ""
        raise DataError(f"{path.name}: {var!r} has {int(neg.sum())} negative rainfall value(s), minimum "
                        f"{float(values[neg].min()):g}{when}; rain cannot be negative — mask them as missing "
                        "or correct the source")
    if nan == "raise" and not nan_declared:
        bad = np.isnan(values)
        if bad.any():
            raise DataError(f"{path.name}: {var!r} has {int(bad.sum())} NaN value(s) but declares no missing value; "
                            f"{declare}, or pass nan='missing' to treat NaN as missing")


def to_rate(values: np.ndarray, units: str, interval_seconds: float | None) -> np.ndarray:
    return values * rate_factor(units, interval_seconds)


def _result(path: Path, fmt: str, out: np.ndarray, coords: dict, crs: Any, *, name: str, units: str, var: str,
            secs: np.ndarray) -> ReadResult:
    """The (time, y, x) mm/h DataArray with its CRS, as a ReadResult with one rainfall layer."""
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    if np.isnan(out).all():
        raise DataError(f"{path.name}: every value of {var!r} is missing")
    rate = xr.DataArray(out, coords=coords, dims=("time", "y", "x"), name=name,
                        attrs={"units": "mm/h", "long_name": "rainfall rate", "source_units": units,
                               "source_variable": var,
                               "time_convention": "time is the start of each interval; time_end its end"})
    rate = rate.rio.write_crs(crs).rio.write_nodata(np.nan, encoded=False)
    result = ReadResult(source=path, format=fmt, crs=crs)
    result.add_layer(LayerItem(name, rate, "rainfall", None, "mm/h",
                               attrs={"source_units": units, "interval_seconds": float(np.median(secs))}))
    return result


def _interval_bounds(times: np.ndarray, path: Path, amount: bool, interval: Any, time_label: str | None):
    """(starts, ends, seconds) of each interval from labelled times (see the module docstring)."""
    label = time_label or ("end" if amount else "start")
    step = _interval_seconds(times, path, interval)
    delta = np.timedelta64(round(step * 1e9), "ns")
    starts = times - delta if label == "end" else times
    return starts, starts + delta, np.full(len(times), step)


def _pick_variable(ds, path: Path, variable: str | None) -> str:
    if variable is not None:
        if variable not in ds.data_vars:
            raise ValidationError(f"{path.name}: no variable {variable!r}; it has {', '.join(map(str, ds.data_vars))}")
        return variable
    cands = []
    for name, v in ds.data_vars.items():
        if v.ndim < 2:
            continue
        sn = str(v.attrs.get("standard_name", ""))
        lname = str(name).lower()
        if sn in STANDARD_NAMES or any(lname.startswith(w) for w in _RAIN_WORDS):
            cands.append(str(name))
    if len(cands) != 1:
        raise ValidationError(f"{path.name}: cannot tell which variable is rainfall (candidates: "
                              f"{cands or list(map(str, ds.data_vars))}); pass variable='NAME'")
    return cands[0]


def _interval_seconds(times: np.ndarray, path: Path, given: Any) -> float:
    if given is not None:
        import pandas as pd

        return float(pd.Timedelta(given).total_seconds()) if not isinstance(given, int | float) else float(given)
    if len(times) < 2:
        raise ValidationError(f"{path.name}: one time step only; pass interval= (e.g. interval='5min')")
    d = np.diff(times).astype("timedelta64[ns]").astype(np.int64) / 1e9
    if not np.allclose(d, d[0]):
        raise DataError(f"{path.name}: time steps are irregular ({sorted(set(d.tolist()))[:4]} s); "
                        "pass interval= for accumulations")
    return float(d[0])


@register
class RainfallNetCDFReader(Reader):
    name = "rainfall_netcdf"
    extensions = (".nc", ".nc4", ".netcdf")
    options = frozenset({"variable", "units", "crs", "interval", "time_label", "nan", "name", "bbox", "bbox_crs",
                         "member", "max_values"})
    description = "CF NetCDF rainfall grids (radar, nowcasts, reanalysis) to mm/h"

    def read(self, path: Path, *, variable: str | None = None, units: str | None = None, crs: Any = None,
             interval: Any = None, time_label: Literal["start", "end"] | None = None,
             nan: Literal["raise", "missing"] = "raise", name: str = "rainfall",
             bbox: tuple[float, float, float, float] | None = None, bbox_crs: Any = None,
             member: int | None = None, max_values: int | None = None) -> ReadResult:
        """``bbox`` (xmin, ymin, xmax, ymax) limits the grid; it is in the file's CRS unless ``bbox_crs`` says
        otherwise (e.g. the scene's CRS: ``bbox=scene.extent, bbox_crs=scene.crs``). An ensemble nowcast
        (pysteps: ``(ens_number, time, y, x)``) needs ``member=`` (0-based), one member per layer.
        ``max_values`` refuses a grid (after ``bbox``) of more values, before reading any."""
        import rioxarray  # noqa: F401
        import xarray as xr

        path = Path(path)
        if nan not in ("raise", "missing"):
            raise ValidationError(f"nan must be 'raise' or 'missing', got {nan!r}")
        if time_label not in (None, "start", "end"):
            raise ValidationError(f"time_label must be 'start' or 'end', got {time_label!r}")
        try:
            ds = xr.open_dataset(path, decode_coords="all", mask_and_scale=True)
        except Exception as exc:  # netCDF4/h5 raise OSError, ValueError, RuntimeError for corrupt files
            raise DataError(f"{path.name}: cannot open as NetCDF ({type(exc).__name__}); the file is truncated or "
                            "not NetCDF: download it again") from None
        with ds:
            var = _pick_variable(ds, path, variable)
            da = ds[var]
            u = units_of(da.attrs, path, var, units)
            tdim = next((d for d in da.dims if np.issubdtype(ds[d].dtype, np.datetime64)), None) \
                if all(d in ds.coords for d in da.dims) else None
            if tdim is None:
                tdim = next((d for d in da.dims if str(d).lower().startswith("time")), None)
            if tdim is None or not np.issubdtype(da[tdim].dtype, np.datetime64):
                raise DataError(f"{path.name}: {var!r} has no decodable time dimension (dims {da.dims}); CF "
                                "needs a 'time' coordinate with units like 'minutes since 2010-08-26'")
            xdim = next((d for d in da.dims if str(d).lower() in ("x", "lon", "longitude", "projection_x_coordinate")), None)
            ydim = next((d for d in da.dims if str(d).lower() in ("y", "lat", "latitude", "projection_y_coordinate")), None)
            if xdim is None or ydim is None:
                raise DataError(f"{path.name}: {var!r} must be (time, y, x); it has dims {da.dims}")
            extra = [d for d in da.dims if d not in (tdim, xdim, ydim)]
            if len(extra) > 1 or (extra and member is None):
                sizes = ", ".join(f"{d!r} of {da.sizes[d]}" for d in extra)
                raise ValidationError(f"{path.name}: {var!r} has the extra dimension(s) {sizes} (an ensemble?); pass "
                                      f"member=0..{da.sizes[extra[0]] - 1} to read one member")
            if extra:
                if not 0 <= int(member) < da.sizes[extra[0]]:
                    raise ValidationError(f"{path.name}: member={member} is outside 0..{da.sizes[extra[0]] - 1}")
                da = da.isel({extra[0]: int(member)}, drop=True)
            elif member is not None:
                raise ValidationError(f"{path.name}: {var!r} has no ensemble dimension; drop member=")
            da = da.transpose(tdim, ydim, xdim).rename({tdim: "time", ydim: "y", xdim: "x"})
            file_crs = da.rio.crs
            if file_crs is None and str(xdim).lower().startswith("lon"):
                file_crs = "EPSG:4326"
            if file_crs is None and crs is None:
                raise CRSError(f"{path.name}: {var!r} has no grid_mapping and its axes are not lon/lat; pass crs=")
            the_crs = resolve_crs(file_crs.to_wkt() if hasattr(file_crs, "to_wkt") else file_crs, crs, path,
                                  "grid_mapping")
            if bbox is not None and bbox_crs is not None:
                from pyproj import Transformer

                tf = Transformer.from_crs(parse_crs(bbox_crs, path, "bbox_crs option"), the_crs, always_xy=True)
                bbox = tf.transform_bounds(*bbox, densify_pts=21)
            if bbox is not None:
                xs, ys = da["x"].to_numpy(), da["y"].to_numpy()
                keep_x = (xs >= bbox[0]) & (xs <= bbox[2])
                keep_y = (ys >= bbox[1]) & (ys <= bbox[3])
                da = da.isel(x=np.nonzero(keep_x)[0], y=np.nonzero(keep_y)[0])
            check_size(path, repr(var), da.shape, max_values)
            enc = ds[var].encoding
            declared = any(k in enc or k in ds[var].attrs for k in ("_FillValue", "missing_value"))
            times = da["time"].to_numpy()
            bounds_name = ds[tdim].attrs.get("bounds")
            amount = is_amount(u)
            if bounds_name and bounds_name in ds:
                tb = ds[bounds_name].to_numpy()
                starts, ends = tb[:, 0], tb[:, 1]
                secs = (ends - starts).astype("timedelta64[ns]").astype(np.int64) / 1e9
            else:
                starts, ends, secs = _interval_bounds(times, path, amount, interval, time_label)
            out = np.empty(da.shape, np.float32)
            for i in range(da.sizes["time"]):                  # one step at a time: bounded memory
                vals = np.asarray(da.isel(time=i).to_numpy(), np.float64)
                check_values(vals, path, var, nan_declared=declared, nan=nan, times=times[i:i + 1])
                out[i] = vals * rate_factor(u, secs[i])
            coords = {"time": starts.astype("datetime64[ns]"), "y": da["y"].to_numpy(), "x": da["x"].to_numpy(),
                      "time_end": ("time", ends.astype("datetime64[ns]"))}
        return _result(path, self.name, out, coords, the_crs, name=name, units=u, var=var, secs=secs)


_GRIB = (".grib2", ".grb2", ".grib", ".grb")


def _band_time(src, i: int) -> np.datetime64 | None:
    """A band's time from GRIB_VALID_TIME (epoch seconds), a 'time' tag or an ISO band description."""
    tags = src.tags(i)
    v = tags.get("GRIB_VALID_TIME")
    if v:
        return np.datetime64(int(v.split()[0]), "s").astype("datetime64[ns]")
    for text in (tags.get("time"), tags.get("TIME"), src.descriptions[i - 1]):
        if text:
            try:
                return np.datetime64(str(text).replace("Z", ""), "ns")
            except ValueError:
                continue
    return None


def _band_units(src) -> str | None:
    tags1 = src.tags(1)
    return (tags1.get("GRIB_UNIT") or tags1.get("units") or src.tags().get("units")
            or (src.units[0] if src.units and src.units[0] else None))


@register
class RainfallStackReader(Reader):
    """GeoTIFF stacks (one band per time step) and GRIB/GRIB2 rainfall through rasterio, to mm/h.

    Times come from ``times=`` (ISO strings, one per band), else each band's GRIB_VALID_TIME, ``time`` tag or ISO
    description, else ``start=`` + ``interval=``; units from ``units=``, else GRIB_UNIT or a ``units`` tag.
    ``nodata=`` adds values to mask (e.g. MRMS's -3 "no coverage") besides the file's own nodata.
    """

    name = "rainfall_stack"
    extensions = (".tif", ".tiff", *_GRIB)
    options = frozenset({"units", "times", "start", "interval", "time_label", "nan", "name", "crs", "nodata",
                         "max_values"})
    priority = 1
    description = "rainfall GeoTIFF stacks and GRIB2 through rasterio, to mm/h"

    def guess_can_open(self, path: Path) -> bool:
        path = Path(path)
        if path.name.lower().endswith(_GRIB):
            return True
        if not super().guess_can_open(path):
            return False
        try:
            import rasterio

            with rasterio.open(path) as src:
                u = _band_units(src)
                return u is not None and (normalise_units(u) in RATE_UNITS or normalise_units(u) in AMOUNT_UNITS)
        except Exception:  # not readable here: let the raster reader report it
            return False

    def read(self, path: Path, *, units: str | None = None, times: list | None = None, start: Any = None,
             interval: Any = None, time_label: Literal["start", "end"] | None = None,
             nan: Literal["raise", "missing"] = "raise", name: str = "rainfall", crs: Any = None,
             nodata: float | list[float] | None = None, max_values: int | None = None) -> ReadResult:
        import rasterio

        path = Path(path)
        try:
            src = rasterio.open(path)
        except Exception as exc:  # rasterio.errors.RasterioIOError
            raise DataError(f"{path.name}: cannot open as a raster stack ({type(exc).__name__}); {CORRUPT}") from None
        with src:
            var = f"{src.count} band(s)"
            check_size(path, "the stack", (src.count, src.height, src.width), max_values)
            u = units_of({"units": _band_units(src)} if _band_units(src) else {}, path, "band 1", units)
            if times is not None:
                if len(times) != src.count:
                    raise ValidationError(f"{path.name}: times= has {len(times)} values for {src.count} bands")
                t = np.array([np.datetime64(str(x).replace("Z", ""), "ns") for x in times])
            else:
                found = [_band_time(src, i) for i in range(1, src.count + 1)]
                if all(x is not None for x in found):
                    t = np.array(found, "datetime64[ns]")
                elif start is not None and interval is not None:
                    import pandas as pd

                    step = pd.Timedelta(interval)
                    first = pd.Timestamp(start)
                    first = first.tz_convert("UTC").tz_localize(None) if first.tz is not None else first
                    t = np.array([np.datetime64(first + i * step, "ns") for i in range(src.count)])
                else:
                    raise ValidationError(f"{path.name}: the bands carry no times; pass times=[...] (one ISO time "
                                          "per band) or start='2020-06-17T14:00' with interval='5min'")
            the_crs = resolve_crs(src.crs.to_wkt() if src.crs else None, crs, path, "CRS")
            data = src.read(masked=True).astype(np.float64)
            vals = np.ma.filled(data, np.nan)
            for nd in ([nodata] if isinstance(nodata, int | float) else nodata or []):     # stored values
                vals[vals == nd] = np.nan
            vals = vals * np.array(src.scales)[:, None, None] + np.array(src.offsets)[:, None, None]  # unpacked
            declared = src.nodata is not None or nodata is not None
            order = np.argsort(t, kind="stable")
            t, vals = t[order], vals[order]
            if len(t) > 1 and np.any(np.diff(t) <= np.timedelta64(0)):
                raise DataError(f"{path.name}: two bands have the same time; one time step per band")
            check_values(vals, path, var, nan_declared=declared, nan=nan, times=t,
                         declare="set the raster's nodata value (or nodata=)")
            starts, ends, secs = _interval_bounds(t, path, is_amount(u), interval, time_label)
            out = (vals * rate_factor(u, secs[0])).astype(np.float32)
            tf = src.transform
            x = tf.c + tf.a * (np.arange(src.width) + 0.5)
            y = tf.f + tf.e * (np.arange(src.height) + 0.5)
        coords = {"time": starts, "y": y, "x": x, "time_end": ("time", ends)}
        return _result(path, self.name, out, coords, the_crs, name=name, units=u, var=var, secs=secs)
