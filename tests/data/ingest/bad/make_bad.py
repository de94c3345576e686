"""Regenerate the bad-input corpus from the good sample files one directory up: `python make_bad.py`.

Each file is broken in one way; tests/ingest/test_bad_inputs.py expects its error (or repair) and an unchanged scene.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
GOOD = HERE.parent


def cut(name: str, out: str, n: int) -> None:
    (HERE / out).write_bytes((GOOD / name).read_bytes()[:n])


def tiny_cityjson(**changes) -> dict:
    box = {"type": "Building", "attributes": {"measuredHeight": 3.0},
           "geometry": [{"type": "Solid", "lod": "1", "boundaries": [[[[0, 3, 2, 1]], [[4, 5, 6, 7]], [[0, 1, 5, 4]],
                                                                      [[1, 2, 6, 5]], [[2, 3, 7, 6]], [[3, 0, 4, 7]]]]}]}
    doc = {"type": "CityJSON", "version": "2.0", "transform": {"scale": [0.01, 0.01, 0.01],
                                                                "translate": [85000, 447000, 0]},
           "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/7415"},
           "CityObjects": {"b1": box},
           "vertices": [[0, 0, 0], [1000, 0, 0], [1000, 1000, 0], [0, 1000, 0],
                        [0, 0, 300], [1000, 0, 300], [1000, 1000, 300], [0, 1000, 300]]}
    doc.update(changes)
    return doc


def grid(name: str, values, **attrs) -> None:
    import rioxarray  # noqa: F401
    import xarray as xr

    t = np.array(["2020-06-17T14:00", "2020-06-17T14:05"], "datetime64[ns]")
    da = xr.DataArray(np.asarray(values, np.float32).reshape(2, 2, 2), dims=("time", "y", "x"),
                      coords={"time": t, "y": [447001.5, 447000.5], "x": [85000.5, 85001.5]}, name="precip",
                      attrs=attrs).rio.write_crs("EPSG:28992")
    da.to_dataset().to_netcdf(HERE / name, encoding={"precip": {"_FillValue": None, "grid_mapping": "spatial_ref"}})


def main() -> None:
    import geopandas as gpd
    import shapely

    cut("delft_lod1.city.json", "truncated.city.json", 20_000)
    (HERE / "no_crs.city.json").write_text(json.dumps(tiny_cityjson(metadata={})))
    (HERE / "wrong_version.city.json").write_text(json.dumps(tiny_cityjson(version="0.6")))
    doc = tiny_cityjson()
    doc["vertices"] = doc["vertices"][:5]
    (HERE / "vertex_out_of_range.city.json").write_text(json.dumps(doc))
    (HERE / "corrupt.gpkg").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    pts = gpd.GeoDataFrame({"n": [1, 2]}, geometry=[shapely.Point(85000, 447000), shapely.Point(85100, 447100)])
    pts.to_file(HERE / "rd_coordinates_labelled_wgs84.geojson")          # GeoJSON means WGS84
    pts.to_file(HERE / "no_prj.shp")
    bowtie = shapely.Polygon([(85000, 447000), (85010, 447010), (85010, 447000), (85000, 447010)])
    gpd.GeoDataFrame({"n": [1, 2]}, geometry=[bowtie, shapely.box(85020, 447000, 85030, 447010)],
                     crs="EPSG:28992").to_file(HERE / "invalid_geometry.gpkg")
    cut("lidar_dem_1m_utm15n.tif", "truncated.tif", 60_000)
    cut("ifcos_basic.ifc", "truncated.ifc", 3_000)
    shutil.copy(GOOD / "ifcos_basic.ifc", HERE / "no_georeference.ifc")
    cut("autzen_trim.laz", "truncated.laz", 200_000)
    shutil.copy(GOOD / "simple.las", HERE / "no_crs.las")
    cut("knmi_radar_5min_20100826.nc", "truncated.nc", 50_000)
    grid("rain_negative.nc", [0, 0.5, -1.2, 0, 0, 0, 0.1, 0], units="mm")
    grid("rain_nan_undeclared.nc", [0, 0.5, np.nan, 0, 0, 0, 0.1, 0], units="mm")
    grid("rain_unknown_units.nc", [0, 0.5, 1, 0, 0, 0, 0.1, 0], units="inch per fortnight")
    (HERE / "gauge_negative.csv").write_text("time,rain [mm]\n2020-06-17 14:00,0.5\n2020-06-17 15:00,-0.3\n")
    (HERE / "gauge_nan.csv").write_text("time,rain [mm]\n2020-06-17 14:00,0.5\n2020-06-17 15:00,NaN\n")
    (HERE / "gauge_unknown_units.csv").write_text("time,rain [furlong]\n2020-06-17 14:00,0.5\n2020-06-17 15:00,1\n")
    (HERE / "gauge_no_units.csv").write_text("time,RH\n2020-06-17 14:00,0.0005\n2020-06-17 15:00,0.001\n")
    cut("three_buildings_citygml2.gml", "truncated.gml", 1_500)


if __name__ == "__main__":
    main()
