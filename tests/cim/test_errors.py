"""Every error names what went wrong and what would fix it; each is a cim.CIMError and the matching builtin."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from shapely import Point

import cim
from tests.services import free_port

CRS = "EPSG:28992"


def pts(crs=CRS):
    return gpd.GeoDataFrame({"v": [1]}, geometry=[Point(84000, 446000)], crs=crs)


@pytest.mark.parametrize(("crs", "hint"), [("EPSG:4326", "projected CRS in metres"),
                                            ("EPSG:4490", "CGCS2000 Gauss-Kruger"),
                                            ("EPSG:2263", "metres")])
def test_geographic_or_non_metric_crs_refused(tmp_path, crs, hint):
    with pytest.raises(cim.CRSError, match=hint) as err:
        cim.Scene.create(tmp_path / "s.cim", crs=crs, name="x")
    assert isinstance(err.value, ValueError) and isinstance(err.value, cim.CIMError)
    assert not (tmp_path / "s.cim").exists()


def test_china_geographic_crs_suggests_gauss_kruger_zone(tmp_path):
    # CGCS2000 geographic with an area of use: the suggestion names a concrete projected CRS
    from cim.crs import suggest_projected

    assert "EPSG:4547" in suggest_projected(114.06, 22.54)      # Shenzhen: CM 114E
    assert "EPSG:32650" in suggest_projected(114.06, 22.54)     # WGS 84 / UTM 50N


def test_unknown_layer(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="Delft")
    scene.add_layer("roads", pts(), kind="roads")
    with pytest.raises(cim.LayerNotFoundError, match=r"no layer 'road' in scene 'Delft' \(layers: roads\)") as e:
        scene.layer("road")
    assert isinstance(e.value, KeyError)
    with pytest.raises(cim.LayerNotFoundError):
        scene.remove_layer("road")


def test_duplicate_layer(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="Delft")
    scene.add_layer("roads", pts(), kind="roads")
    with pytest.raises(cim.LayerExistsError, match="replace=True") as e:
        scene.add_layer("roads", pts(), kind="roads")
    assert isinstance(e.value, FileExistsError)


def test_layer_without_crs(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    with pytest.raises(cim.CRSError, match=r"has no CRS.*set_crs"):
        scene.add_layer("p", pts(crs=None), kind="generic")
    da = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), coords={"y": [1.0, 0.0], "x": [0.0, 1.0]})
    with pytest.raises(cim.CRSError, match=r"has no CRS.*write_crs"):
        scene.add_layer("r", da, kind="terrain")
    assert scene.layers == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"kind": "building"}, "Did you mean 'buildings'"),
    ({"kind": "buildings", "cim_level": 8}, "1..7"),
    ({"kind": "buildings", "cim_level": "CIM0"}, "CIM1'..'CIM7"),
    ({"kind": "terrain_raster"}, "Choose one of"),
    ({"kind": "rainfall"}, "holds raster"),
])
def test_invalid_kind_or_level(store_url, kwargs, match):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    with pytest.raises(cim.ValidationError, match=match):
        scene.add_layer("b", pts(), **kwargs)


@pytest.mark.parametrize("name", ["1abc", "a-b", "drop table", "cim_layers", "", "x" * 64])
def test_invalid_layer_name(store_url, name):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    with pytest.raises(cim.ValidationError, match="letters, digits"):
        scene.add_layer(name, pts(), kind="generic")


def test_missing_store(tmp_path):
    with pytest.raises(cim.StoreNotFoundError, match="cim scene create") as e:
        cim.open_scene(tmp_path / "nowhere.cim")
    assert isinstance(e.value, FileNotFoundError)


def test_corrupt_store(tmp_path):
    path = tmp_path / "s.cim"
    cim.Scene.create(path, crs=CRS, name="x").add_layer("p", pts(), kind="generic")
    (path / "scene.sqlite").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (path / f"scene.sqlite{suffix}").unlink(missing_ok=True)
    with pytest.raises(cim.StoreError, match=r"corrupt.*backup") as e:
        cim.open_scene(path)
    assert isinstance(e.value, OSError)


def test_store_with_missing_layer_file(tmp_path):
    path = tmp_path / "s.cim"
    cim.Scene.create(path, crs=CRS, name="x").add_layer("p", pts(), kind="generic")
    (path / "layers" / "p.gpkg").unlink()
    with pytest.raises(cim.StoreError, match="missing from the store"):
        cim.open_scene(path).layer("p")


def test_create_twice_refused(store_url):
    cim.Scene.create(store_url, crs=CRS, name="x")
    with pytest.raises(cim.StoreError, match="exists"):
        cim.Scene.create(store_url, crs=CRS, name="x")


def test_unreachable_database():
    url = f"postgresql+psycopg://postgres:secret@127.0.0.1:{free_port()}/cim?schema=s"
    with pytest.raises(cim.StoreConnectionError, match="server is running") as e:
        cim.open_scene(url)
    assert "secret" not in str(e.value) and isinstance(e.value, ConnectionError)


@pytest.mark.postgis
def test_database_without_postgis(postgis_cluster):
    postgis_cluster.psql("CREATE DATABASE plain")
    with pytest.raises(cim.StoreConnectionError, match="CREATE EXTENSION postgis"):
        cim.Scene.create(postgis_cluster.url(db="plain"), crs=CRS, name="x")


@pytest.mark.postgis
def test_postgis_schema_without_scene(postgis_url):
    with pytest.raises(cim.StoreNotFoundError, match="no scene in this schema"):
        cim.open_scene(postgis_url)


def test_bad_urls():
    with pytest.raises(cim.ValidationError, match="psycopg"):
        cim.open_scene("postgresql://u@h/db")
    with pytest.raises(cim.ValidationError, match="directory path"):
        cim.open_scene("s3://bucket/scene")


def test_store_from_a_newer_version_refused(store_url):
    from cim import schema

    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    assert scene.store.meta()["schema_version"] == str(schema.SCHEMA_VERSION)
    scene.store.set_meta("schema_version", str(schema.SCHEMA_VERSION + 1))
    scene.close()
    with pytest.raises(cim.StoreError, match="upgrade cim-twin"):
        cim.open_scene(store_url)
