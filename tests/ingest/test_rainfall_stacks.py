"""Rainfall GeoTIFF stacks and GRIB2 (written here with GDAL) to mm/h, times from the bands or the caller."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

import ingest
from cim.errors import DataError, ValidationError

AMOUNTS = np.array([[[0.0, 0.5], [1.0, 2.45]], [[0.1, 0.0], [0.2, 3.0]], [[0.0, 0.0], [0.0, 0.3]]], np.float32)


def _tiff(path, data, descriptions=None, units=None, nodata=None):
    with rasterio.open(path, "w", driver="GTiff", width=2, height=2, count=len(data), dtype="float32",
                       crs="EPSG:28992", transform=from_origin(85000, 447002, 1, 1), nodata=nodata) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
        if units:
            dst.update_tags(units=units)
    return path


def test_geotiff_stack_with_times_in_band_descriptions(tmp_path):
    p = _tiff(tmp_path / "radar.tif", AMOUNTS, ["2020-06-17T14:05", "2020-06-17T14:10", "2020-06-17T14:15"], "mm")
    assert ingest.find_reader(p).name == "rainfall_stack"
    rate = ingest.read(p)["rainfall"]
    assert rate.dims == ("time", "y", "x") and rate.rio.crs.to_epsg() == 28992
    assert float(rate.max()) == pytest.approx(36.0)             # 3.0 mm in 5 minutes
    assert float(rate[0, 1, 1]) == pytest.approx(29.4)          # 2.45 mm in 5 minutes
    assert rate.time.values[0] == np.datetime64("2020-06-17T14:00")
    assert rate.time_end.values[0] == np.datetime64("2020-06-17T14:05")
    assert rate.x.values.tolist() == [85000.5, 85001.5] and rate.y.values.tolist() == [447001.5, 447000.5]


def test_geotiff_stack_needs_times_or_start_and_interval(tmp_path):
    p = _tiff(tmp_path / "stack.tif", AMOUNTS, units="mm")
    with pytest.raises(ValidationError, match="no times; pass times="):
        ingest.read(p)
    rate = ingest.read(p, start="2020-06-17T14:00", interval="10min", time_label="start")["rainfall"]
    assert float(rate.max()) == pytest.approx(18.0) and rate.time.values[2] == np.datetime64("2020-06-17T14:20")
    plain = _tiff(tmp_path / "plain.tif", AMOUNTS)                      # no units: it is a plain raster
    assert ingest.find_reader(plain).name == "raster"
    with pytest.raises(ValidationError, match="units="):
        ingest.read(plain, format="rainfall_stack", start="2020-06-17T14:00", interval="5min")


def test_geotiff_stack_nodata_stays_missing_and_negative_refused(tmp_path):
    data = AMOUNTS.copy()
    data[1, 0, 0] = -3.0                                               # MRMS-style "no coverage"
    p = _tiff(tmp_path / "mrms.tif", data, units="mm", descriptions=["2020-06-17T14:05", "2020-06-17T14:10",
                                                                     "2020-06-17T14:15"])
    with pytest.raises(DataError, match=r"1 negative rainfall value.*first at time 2020-06-17T14:10"):
        ingest.read(p)
    rate = ingest.read(p, nodata=-3.0)["rainfall"]
    assert int(rate.isnull().sum()) == 1 and np.isnan(float(rate[1, 0, 0]))


def _grib_message(data2d, ref_time):
    with MemoryFile() as mf:
        with mf.open(driver="GTiff", width=2, height=2, count=1, dtype="float32", crs="EPSG:4326",
                     transform=from_origin(4.3, 52.1, 0.1, 0.1)) as d:
            d.write(data2d[None])
        with mf.open() as src, MemoryFile() as out:
            rasterio.shutil.copy(src, out.name, driver="GRIB", DISCIPLINE=0, PDS_PDTN=0,
                                 IDS=f"CENTER=98 SUBCENTER=0 MASTER_TABLE=2 SIGNF_REF_TIME=1 REF_TIME={ref_time} "
                                     "PROD_STATUS=0 TYPE=1",
                                 PDS_TEMPLATE_NUMBERS="1 8 2 0 96 0 0 0 1 0 0 0 0 1 0 0 0 0 0 255 255 255 255 255 255")
            return out.read()


def test_grib2_total_precipitation_kg_m2(tmp_path):
    p = tmp_path / "apcp.grib2"
    p.write_bytes(_grib_message(AMOUNTS[0], "2020-06-17T14:05:00Z") + _grib_message(AMOUNTS[1], "2020-06-17T14:10:00Z"))
    with rasterio.open(p) as src:
        assert src.count == 2 and src.tags(1)["GRIB_UNIT"] == "[kg/(m^2)]"
    r = ingest.read(p)
    rate = r["rainfall"]
    assert r.layers["rainfall"].attrs["source_units"] == "[kg/(m^2)]"   # 1 kg m-2 of water = 1 mm
    assert rate.sizes["time"] == 2 and rate.time_end.values[1] == np.datetime64("2020-06-17T14:10")
    assert float(rate[0, 1, 1]) == pytest.approx(29.4, abs=1e-4) and float(rate[1, 1, 1]) == pytest.approx(36.0)
    assert rate.rio.crs.to_epsg() == 4326


def test_geotiff_stack_into_a_scene(tmp_path):
    import cim

    p = _tiff(tmp_path / "radar.tif", AMOUNTS, ["2020-06-17T14:05", "2020-06-17T14:10", "2020-06-17T14:15"], "mm")
    scene = cim.Scene.create(tmp_path / "s.cim", crs="EPSG:28992", name="S")
    report = ingest.ingest(scene, p, name="rain")
    assert [(a.name, a.kind, a.count) for a in report.added] == [("rain", "rainfall", 12)]
    rain = scene.layer("rain")
    assert rain.dims == ("time", "y", "x") and float(rain.max()) == pytest.approx(36.0)
    assert rain.time.values[0] == np.datetime64("2020-06-17T14:00") and scene.layer_info("rain").units == "mm/h"


def test_packed_bands_are_unpacked_and_a_zoned_start_is_read_in_utc(tmp_path):
    # KNMI-style packing: uint16 hundredths of a millimetre per 5 minutes (96 = 0.96 mm = 11.52 mm/h)
    p = tmp_path / "packed.tif"
    with rasterio.open(p, "w", driver="GTiff", width=2, height=2, count=2, dtype="uint16", crs="EPSG:28992",
                       transform=from_origin(85000, 447002, 1, 1), nodata=65535) as dst:
        dst.write(np.array([[[96, 0], [65535, 12]], [[0, 0], [300, 0]]], np.uint16))
        dst.scales, dst.offsets = (0.01, 0.01), (0.0, 0.0)
        dst.update_tags(units="mm")
    rate = ingest.read(p, start="2020-06-17T14:00+02:00", interval="5min")["rainfall"]
    np.testing.assert_allclose(rate.values[0], [[11.52, 0.0], [np.nan, 1.44]], rtol=1e-6)
    assert float(rate.values[1, 1, 0]) == pytest.approx(36.0)
    # 14:00 at +02:00 is 12:00 UTC, the end of the first 5-minute interval (amounts are stamped at their end)
    assert rate.time_end.values[0] == np.datetime64("2020-06-17T12:00")


def test_a_packed_dem_is_unpacked(tmp_path):
    p = tmp_path / "dem_cm.tif"
    with rasterio.open(p, "w", driver="GTiff", width=2, height=2, count=1, dtype="int16", crs="EPSG:28992",
                       transform=from_origin(85000, 447002, 1, 1), nodata=-32768) as dst:
        dst.write(np.array([[[150, 250], [-45, -32768]]], np.int16))
        dst.scales, dst.offsets = (0.01,), (0.0,)
    dem = ingest.read(p)[p.stem]
    np.testing.assert_allclose(dem.values, [[1.5, 2.5], [-0.45, np.nan]], rtol=1e-6)
