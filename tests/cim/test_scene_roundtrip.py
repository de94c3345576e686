"""Round trips through both stores: what is written is what is read, including reprojection and queries."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from shapely import LineString, MultiPolygon, Point, Polygon, box

import cim
from cim.testing import assert_layer_equal, random_layer

CRS = "EPSG:28992"
X0, Y0 = 84000.0, 446000.0


def mixed_layer() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "i64": np.array([1, -2**40, 3], dtype="int64"),
            "i32": np.array([7, 8, 9], dtype="int32"),
            "u8": np.array([0, 255, 3], dtype="uint8"),
            "f32": np.array([1.25, np.nan, 3.1], dtype="float32"),
            "f64": [0.1, np.nan, -1e300],
            "flag": [True, False, True],
            "nint": pd.array([1, None, 3], dtype="Int64"),
            "nbool": pd.array([True, None, False], dtype="boolean"),
            "name": ["Oude Kerk", None, "Prinsenhof ü 中文"],
            "when": pd.to_datetime(["2020-06-17T15:00:00.123456", None, "1999-01-01T00:00:00"], format="ISO8601")
            .tz_localize("Europe/Amsterdam"),
            "naive": pd.to_datetime(["2020-06-17T15:00:00", "2021-01-01T12:00:00.5", None], format="ISO8601"),
        },
        geometry=[
            Point(X0 + 1, Y0 + 1, 2.5),
            MultiPolygon([shapely.force_3d(box(X0, Y0, X0 + 10, Y0 + 10), 0.5),
                          Polygon([(X0 + 20, Y0, 1), (X0 + 30, Y0, 2), (X0 + 30, Y0 + 5, 3)])]),
            None,
        ],
        crs=CRS,
    )


def test_vector_roundtrip_exact(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="Delft")
    gdf = mixed_layer()
    info = scene.add_layer("things", gdf, kind="generic", source="test")
    assert info.count == 3 and info.cim_level == 2 and info.source == "test"
    assert info.tool_version.startswith("cim-twin")
    back = cim.open_scene(store_url).layer("things")
    assert_layer_equal(back, gdf)
    assert shapely.has_z(back.geometry.values[0]) and back.geometry.values[2] is None
    assert str(back["when"].dtype) == "datetime64[us, Europe/Amsterdam]"
    assert back["when"].iloc[0] == pd.Timestamp("2020-06-17T15:00:00.123456", tz="Europe/Amsterdam")


def test_index_and_geometry_name_kept(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    gdf = gpd.GeoDataFrame({"h": [1.0, 2.0]}, geometry=gpd.GeoSeries([Point(X0, Y0), Point(X0 + 5, Y0)]),
                           crs=CRS, index=pd.Index(["b1", "b2"], name="id")).rename_geometry("footprint")
    scene.add_layer("b", gdf, kind="buildings")
    back = scene.layer("b")
    assert back.geometry.name == "footprint" and list(back.index) == ["b1", "b2"] and back.index.name == "id"
    assert_layer_equal(back, gdf)


def test_a_bbox_read_keeps_each_features_index(store_url):
    scene = cim.Scene.create(store_url, crs="EPSG:28992", name="Ids")
    points = gpd.GeoDataFrame({"name": ["a", "b", "c", "d"]}, geometry=gpd.points_from_xy([0, 100, 200, 300], [0] * 4),
                              crs="EPSG:28992")
    scene.add_layer("default", points, kind="hotspots")                     # a default 0..n-1 index
    scene.add_layer("named", points.set_index(pd.Index(["p", "q", "r", "s"], name="pid")), kind="hotspots")
    for bbox, want in (((50, -10, 250, 10), [1, 2]), ((250, -10, 350, 10), [3]), ((-10, -10, 10, 10), [0]),
                       ((-10, -10, 350, 10), [0, 1, 2, 3])):
        got = scene.layer("default", bbox=bbox)
        assert got.index.tolist() == want and got["name"].tolist() == ["abcd"[i] for i in want]
        assert scene.layer("named", bbox=bbox).index.tolist() == ["pqrs"[i] for i in want]
    assert isinstance(scene.layer("default").index, pd.RangeIndex)
    scene.close()


def test_reprojection_on_add(store_url):
    scene = cim.Scene.create(store_url, crs="EPSG:7415", name="Delft")
    # Oude Kerk, Delft: 52.0127 N, 4.3556 E; its RD coordinates are about (84 100, 447 500)
    wgs = gpd.GeoDataFrame({"name": ["Oude Kerk"]}, geometry=[Point(4.3556, 52.0127)], crs="EPSG:4326")
    scene.add_layer("landmarks", wgs, kind="generic")
    pt = scene.layer("landmarks").geometry.iloc[0]
    assert scene.layer("landmarks").crs == scene.crs
    assert abs(pt.x - 84_100) < 200 and abs(pt.y - 447_500) < 200
    expected = wgs.to_crs("EPSG:28992").geometry.iloc[0]
    assert pt.distance(expected) < 1e-6
    # the horizontal part of the scene CRS (RD New) is taken as the same CRS: no transformation
    rd = gpd.GeoDataFrame({"v": [1]}, geometry=[Point(X0, Y0)], crs="EPSG:28992")
    scene.add_layer("rd", rd, kind="generic", reproject=False)
    assert scene.layer("rd").geometry.iloc[0].equals(Point(X0, Y0))


def test_reproject_false_refuses_mismatch(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    wgs = gpd.GeoDataFrame({"v": [1]}, geometry=[Point(4.35, 52.0)], crs="EPSG:4326")
    with pytest.raises(cim.CRSError, match="reproject=True"):
        scene.add_layer("p", wgs, kind="generic", reproject=False)
    assert scene.layers == []


def test_raster_roundtrip_exact(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    rng = np.random.default_rng(3)
    values = rng.normal(5, 2, (40, 60)).astype("float32")
    values[3, 4] = np.nan
    dem = xr.DataArray(values, dims=("y", "x"),
                       coords={"y": Y0 + 400 - 5 * (np.arange(40) + 0.5), "x": X0 + 5 * (np.arange(60) + 0.5)},
                       name="elevation", attrs={"units": "m", "long_name": "ground"})
    dem = dem.rio.write_crs(CRS).rio.write_nodata(np.nan)
    scene.add_layer("dem", dem, kind="terrain", units="m")
    back = scene.layer("dem")
    np.testing.assert_array_equal(back.values, dem.values)
    assert back.dtype == np.float32 and back.rio.transform() == dem.rio.transform()
    assert back.rio.crs == dem.rio.crs and np.isnan(back.rio.nodata)
    assert {k: v for k, v in back.attrs.items() if k != "_FillValue"} == {"units": "m", "long_name": "ground"}
    assert back.name == "elevation"
    # integer raster with a nodata value
    classes = xr.DataArray(rng.integers(0, 5, (10, 12)).astype("uint8"), dims=("y", "x"),
                           coords={"y": Y0 + 100 - 10 * (np.arange(10) + 0.5), "x": X0 + 10 * (np.arange(12) + 0.5)})
    classes = classes.rio.write_crs(CRS).rio.write_nodata(255)
    scene.add_layer("landcover", classes, kind="land_cover")
    back = scene.layer("landcover")
    assert back.dtype == np.uint8 and back.rio.nodata == 255
    np.testing.assert_array_equal(back.values, classes.values)


def test_raster_time_stack_roundtrip(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    t = pd.date_range("2010-08-26T05:00", periods=4, freq="5min")
    rain = xr.DataArray(np.arange(4 * 6 * 5, dtype="float32").reshape(4, 6, 5), dims=("time", "y", "x"),
                        coords={"time": t, "y": Y0 + 6000 - 1000 * (np.arange(6) + 0.5),
                                "x": X0 + 1000 * (np.arange(5) + 0.5)}, attrs={"units": "mm/h"})
    rain = rain.rio.write_crs(CRS)
    scene.add_layer("radar", rain, kind="rainfall", units="mm/h")
    back = scene.layer("radar")
    np.testing.assert_array_equal(back.values, rain.values)
    np.testing.assert_array_equal(back.time.values, rain.time.values)
    assert back.rio.crs == rain.rio.crs and back.rio.transform() == rain.rio.transform()
    assert back.attrs["units"] == "mm/h"


def test_raster_reprojected_on_add(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    da = xr.DataArray(np.ones((20, 20), "float32"), dims=("y", "x"),
                      coords={"y": 52.02 - 0.001 * np.arange(20), "x": 4.35 + 0.001 * np.arange(20)})
    scene.add_layer("g", da.rio.write_crs("EPSG:4326").rio.write_nodata(np.nan), kind="terrain")
    back = scene.layer("g")
    assert back.rio.crs.to_epsg() == 28992
    x0, y0, x1, y1 = back.rio.bounds()
    assert 83_000 < x0 < x1 < 86_000 and 446_000 < y0 < y1 < 449_000
    assert np.nanmax(back.values) == 1.0


def test_region_tree_and_queries(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="Delft")
    scene.add_region("Delft", "city", box(X0, Y0, X0 + 1000, Y0 + 1000))
    scene.add_region("West", "district", box(X0, Y0, X0 + 500, Y0 + 1000), parent="Delft")
    scene.add_region("Noord", "subdistrict", box(X0, Y0 + 500, X0 + 500, Y0 + 1000), parent="West")
    regions = scene.regions
    assert list(regions["name"]) == ["Delft", "West", "Noord"]
    assert regions["parent"].isna().tolist() == [True, False, False]
    assert list(regions["parent"].iloc[1:]) == ["Delft", "West"] and list(regions["level"])[2] == "subdistrict"
    pts = gpd.GeoDataFrame({"n": np.arange(100)},
                           geometry=[Point(X0 + 5 + 100 * (i % 10), Y0 + 5 + 100 * (i // 10)) for i in range(100)],
                           crs=CRS)
    scene.add_layer("sensors", pts, kind="sensors")
    west = scene.layer("sensors", region="West")
    assert sorted(west.n) == sorted(i for i in range(100) if i % 10 < 5)
    noord = scene.layer("sensors", region="Noord")
    assert len(noord) == 25
    inside = scene.layer("sensors", bbox=(X0, Y0, X0 + 250, Y0 + 150))
    assert sorted(inside.n) == [0, 1, 2, 10, 11, 12]
    # a triangle: exact intersection, not just the envelope
    tri = Polygon([(X0, Y0), (X0 + 1000, Y0), (X0, Y0 + 1000)])
    assert len(scene.layer("sensors", region=tri)) == sum(1 for i in range(100) if (i % 10) + (i // 10) < 10)
    dem = xr.DataArray(np.arange(100, dtype="float32").reshape(10, 10), dims=("y", "x"),
                       coords={"y": Y0 + 1000 - 100 * (np.arange(10) + 0.5), "x": X0 + 100 * (np.arange(10) + 0.5)})
    scene.add_layer("dem", dem.rio.write_crs(CRS).rio.write_nodata(np.nan), kind="terrain")
    part = scene.layer("dem", region="Noord")
    assert part.shape == (5, 5) and float(part.max()) == 44.0
    with pytest.raises(cim.RegionNotFoundError, match="regions: Delft, West, Noord"):
        scene.layer("sensors", region="Oost")


def test_region_level_order(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    scene.add_region("D", "district", box(0, 0, 1, 1))
    with pytest.raises(cim.ValidationError, match="below its parent"):
        scene.add_region("C", "city", box(0, 0, 1, 1), parent="D")
    with pytest.raises(cim.ValidationError, match="unknown region level"):
        scene.add_region("Q", "quarter", box(0, 0, 1, 1))


def test_remove_layer_and_listing(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    gdf = gpd.GeoDataFrame({"a": [1]}, geometry=[LineString([(X0, Y0), (X0 + 1, Y0 + 1)])], crs=CRS)
    scene.add_layer("roads", gdf, kind="roads")
    scene.add_layer("roads2", gdf, kind="roads", cim_level="CIM2", units="m")
    assert [i.name for i in scene.layers] == ["roads", "roads2"]
    scene.remove_layer("roads")
    assert [i.name for i in scene.layers] == ["roads2"]
    with pytest.raises(cim.LayerNotFoundError):
        scene.layer("roads")
    scene.add_layer("roads", gdf, kind="roads")        # the name is free again
    assert scene.extent == pytest.approx((X0, Y0, X0 + 1, Y0 + 1))


def test_file_layer(store_url, tmp_path):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    f = tmp_path / "cloud.laz"
    f.write_bytes(b"LASF" + bytes(range(200)))
    info = scene.add_file("cloud", f, kind="point_cloud", attrs={"points": 10})
    assert info.storage == "file" and info.attrs["points"] == 10
    assert scene.file_path("cloud").read_bytes() == f.read_bytes()
    scene.remove_layer("cloud")
    assert "cloud" not in scene


@pytest.mark.parametrize("seed", range(6))
def test_random_layers_roundtrip(store_url, seed):
    """Property-style: random columns of every supported dtype and random (multi-part, 3D) geometries."""
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    gdf = random_layer(np.random.default_rng(seed), n=40, crs=CRS)
    scene.add_layer("r", gdf, kind="generic")
    assert_layer_equal(scene.layer("r"), gdf)


def test_extent_fixed_or_derived(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    assert scene.extent is None
    scene.add_layer("p", gpd.GeoDataFrame({"v": [1, 2]}, geometry=[Point(X0, Y0), Point(X0 + 50, Y0 + 20)], crs=CRS),
                    kind="generic")
    assert scene.extent == pytest.approx((X0, Y0, X0 + 50, Y0 + 20))
    scene.extent = (X0 - 1, Y0 - 1, X0 + 1, Y0 + 1)
    assert cim.open_scene(store_url).extent == (X0 - 1, Y0 - 1, X0 + 1, Y0 + 1)
    scene.extent = None
    assert scene.extent == pytest.approx((X0, Y0, X0 + 50, Y0 + 20))


def test_directory_file_layer(store_url, tmp_path):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    d = tmp_path / "tileset"
    (d / "content").mkdir(parents=True)
    (d / "tileset.json").write_text('{"asset": {"version": "1.1"}}')
    (d / "content" / "a.glb").write_bytes(b"glTF" + bytes(20))
    info = scene.add_file("ts", d, kind="tileset")
    assert info.info["files"] == 2 and info.info["bytes"] == len('{"asset": {"version": "1.1"}}') + 24
    stored = scene.file_path("ts")
    assert (stored / "content" / "a.glb").read_bytes() == (d / "content" / "a.glb").read_bytes()
    scene.remove_layer("ts")
    assert not stored.exists()
