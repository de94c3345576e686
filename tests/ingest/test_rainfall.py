"""Rainfall: the KNMI radar event and the Vlissingen gauge with their real peaks, units and conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import ingest
from cim.errors import DataError, ValidationError
from ingest.rainfall import normalise_units, rate_factor

DATA = Path(__file__).parents[1] / "data" / "ingest"
RADAR = DATA / "knmi_radar_5min_20100826.nc"
GAUGE = DATA / "knmi_310_vlissingen_hourly_2019_2022.csv"


@pytest.fixture(scope="module")
def radar():
    return ingest.read(RADAR)


def test_radar_peak_accumulation_becomes_rate(radar):
    rate = radar["rainfall"]
    assert rate.dims == ("time", "y", "x") and rate.shape == (92, 765, 700)
    assert rate.attrs["units"] == "mm/h" and radar.layers["rainfall"].kind == "rainfall"
    flat = int(np.nanargmax(rate.to_numpy()))
    t, _, _ = np.unravel_index(flat, rate.shape)
    # 2.45 mm in the 5 minutes ending 05:40 UTC = 29.4 mm/h over 05:35-05:40
    assert float(rate.max()) == pytest.approx(29.4, abs=1e-4)
    assert rate["time_end"][t].values == np.datetime64("2010-08-26T05:40")
    assert rate["time"][t].values == np.datetime64("2010-08-26T05:35")


def test_radar_event_total_and_crs(radar):
    rate = radar["rainfall"]
    total_mm = (rate * (300.0 / 3600.0)).sum("time")
    assert float(total_mm.max()) == pytest.approx(12.8, abs=1e-3)
    crs = rate.rio.crs
    assert crs is not None and "Polar_Stereographic" in crs.to_wkt()
    # the grid covers Delft (4.36 E, 52.01 N)
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(4.36, 52.01)
    assert rate.x.min() < x < rate.x.max() and rate.y.min() < y < rate.y.max()


def test_radar_missing_values_stay_missing(radar):
    raw = xr.open_dataset(RADAR)["precip"].isel(time=0)
    rate = radar["rainfall"].isel(time=0)
    assert int(raw.isnull().sum()) > 0                       # the radar's out-of-range cells are masked
    assert int(rate.isnull().sum()) == int(raw.isnull().sum())


def test_radar_bbox_option_clips():
    clip = ingest.read(RADAR, bbox=(287_000, -4_118_000, 337_000, -4_068_000))["rainfall"]
    assert clip.shape[1:] == (50, 50)
    assert bool(clip.notnull().all())                    # Delft lies well inside the radar coverage
    # the same area asked for in RD New: Delft's centre +- 10 km
    rd = ingest.read(RADAR, bbox=(74_900, 437_600, 94_900, 457_600), bbox_crs="EPSG:28992")["rainfall"]
    assert 20 <= rd.sizes["x"] <= 23 and 20 <= rd.sizes["y"] <= 23
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:28992", rd.rio.crs, always_xy=True).transform(84_900, 447_600)
    assert rd.x.min() < x < rd.x.max() and rd.y.min() < y < rd.y.max()


def test_gauge_in_metres_peaks_at_51_3_mm_per_hour():
    with pytest.raises(ValidationError, match="units='m'"):
        ingest.read(GAUGE)
    s = ingest.read(GAUGE, units="m")["rainfall"]
    assert len(s) == 35064 and s.attrs["units"] == "mm/h"
    i = int(np.argmax(s.to_numpy()))
    assert float(s[i]) == pytest.approx(51.3, abs=1e-6)
    assert s["time_end"][i].values == np.datetime64("2020-06-17T15:00")
    assert s["time"][i].values == np.datetime64("2020-06-17T14:00")


def test_gauge_unit_from_header_and_missing_cells(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("time,rain [mm]\n2020-06-17 14:00,1.5\n2020-06-17 15:00,\n2020-06-17 16:00,3.0\n")
    s = ingest.read(p)["rainfall"]
    assert s.values[0] == pytest.approx(1.5) and np.isnan(s.values[1]) and s.values[2] == pytest.approx(3.0)
    p.write_text("time,rain [mm/5min]\n2020-06-17 14:00,1.5\n2020-06-17 14:05,2\n")
    with pytest.raises(ValidationError, match=r"unit 'mm/5min' of column 'rain \[mm/5min\]'"):
        ingest.read(p)


def test_gauge_csv_in_local_time_across_a_daylight_saving_change(tmp_path):
    # Dutch local time: 02:00 CET is followed by 03:00 CEST, one hour later in UTC
    p = tmp_path / "dst.csv"
    p.write_text("time,rain [mm]\n2020-03-29T00:00+01:00,0.1\n2020-03-29T01:00+01:00,0.2\n"
                 "2020-03-29T03:00+02:00,0.3\n2020-03-29T04:00+02:00,0.4\n")
    s = ingest.read(p)["rainfall"]
    np.testing.assert_array_equal(s.time_end.values, np.array(["2020-03-28T23:00", "2020-03-29T00:00",
                                                               "2020-03-29T01:00", "2020-03-29T02:00"], "M8[ns]"))
    assert s.values.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])       # hourly sums: mm/h
    # times without an offset are taken in tz= (here the same local times, written without offsets)
    p.write_text("time,rain [mm]\n2020-03-29 00:00,0.1\n2020-03-29 01:00,0.2\n2020-03-29 03:00,0.3\n")
    local = ingest.read(p, tz="Europe/Amsterdam")["rainfall"]
    np.testing.assert_array_equal(local.time_end.values, np.array(["2020-03-28T23:00", "2020-03-29T00:00",
                                                                   "2020-03-29T01:00"], "M8[ns]"))


@pytest.mark.parametrize(("units", "interval", "factor"), [
    ("mm", 300, 12.0), ("mm/h", None, 1.0), ("mm h-1", None, 1.0), ("mm hr-1", None, 1.0),
    ("kg m-2 s-1", None, 3600.0), ("kg/m2/s", None, 3600.0), ("m s-1", None, 3.6e6), ("m", 3600, 1000.0),
    ("kg m-2", 600, 6.0), ("mm/day", None, 1 / 24), ("millimetres per hour", None, None),
])
def test_units_table(units, interval, factor):
    if factor is None:
        with pytest.raises(ValidationError, match="unknown rainfall units"):
            rate_factor(units, interval)
    else:
        assert rate_factor(units, interval) == pytest.approx(factor)


def test_normalise_units():
    assert normalise_units("mm h**-1") == "mm h-1" and normalise_units("kg.m-2.s-1") == "kg m-2 s-1"


def _grid(tmp_path, name, values, **attrs):
    t = np.array(["2020-01-01T00:00", "2020-01-01T00:05"], "datetime64[ns]")
    da = xr.DataArray(np.asarray(values, np.float32).reshape(2, 2, 2), dims=("time", "y", "x"),
                      coords={"time": t, "y": [1.5, 0.5], "x": [0.5, 1.5]}, name="precip", attrs=attrs)
    da = da.rio.write_crs("EPSG:28992")
    p = tmp_path / name
    da.to_dataset().to_netcdf(p, encoding={"precip": {"_FillValue": None, "grid_mapping": "spatial_ref"}} if "nofill" in name else None)
    return p


def test_rates_from_cf_standard_name_and_rate_labels(tmp_path):
    p = _grid(tmp_path, "flux.nc", [1e-3] * 8, standard_name="precipitation_flux")
    r = ingest.read(p)["rainfall"]
    assert np.allclose(r.values, 3.6)
    assert r["time"][0].values == np.datetime64("2020-01-01T00:00")     # rates: time is already the start


def test_negative_nan_and_unknown_units_are_refused(tmp_path):
    neg = _grid(tmp_path, "neg.nc", [0, 1, -2, 0, 0, 0, 0, 0], units="mm")
    with pytest.raises(DataError, match=r"neg\.nc: 'precip' has 1 negative rainfall value.*2020-01-01T00:00"):
        ingest.read(neg)
    nan = _grid(tmp_path, "nan_nofill.nc", [0, 1, np.nan, 0, 0, 0, 0, 0], units="mm")
    with pytest.raises(DataError, match=r"NaN value.*declares no missing value"):
        ingest.read(nan)
    assert int(ingest.read(nan, nan="missing")["rainfall"].isnull().sum()) == 1
    odd = _grid(tmp_path, "odd.nc", [0] * 8, units="furlongs")
    with pytest.raises(ValidationError, match=r"odd\.nc: variable 'precip' attribute 'units' = 'furlongs'"):
        ingest.read(odd)


def test_pysteps_style_ensemble_nowcast_one_member_at_a_time(tmp_path):
    """pysteps writes precip_intensity in "mm h-1" (no standard_name) on (ens_number, time, y, x)."""
    t = np.array(["2020-06-17T14:00", "2020-06-17T14:05", "2020-06-17T14:10"], "datetime64[ns]")
    vals = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    da = xr.DataArray(vals, dims=("ens_number", "time", "y", "x"), name="precip_intensity",
                      coords={"ens_number": [1, 2], "time": t, "y": [447001.5, 447000.5], "x": [85000.5, 85001.5]},
                      attrs={"units": "mm h-1"}).rio.write_crs("EPSG:28992")
    p = tmp_path / "nowcast.nc"
    da.to_dataset().to_netcdf(p)
    with pytest.raises(ValidationError, match=r"'ens_number' of 2 .*member=0\.\.1"):
        ingest.read(p)
    second = ingest.read(p, member=1)["rainfall"]
    assert second.dims == ("time", "y", "x") and np.array_equal(second.to_numpy(), vals[1])
    assert second.time.values[0] == np.datetime64("2020-06-17T14:00")           # rates: labelled at the start
    with pytest.raises(ValidationError, match=r"outside 0\.\.1"):
        ingest.read(p, member=2)
