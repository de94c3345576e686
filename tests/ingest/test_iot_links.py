"""Datastreams linked to city objects of a scene: a street point and a district, checked before linking."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely import LineString, box

import cim
from cim import iot
from tests.ingest.test_iot import gauge_thing


@pytest.fixture
def scene(store_url):
    """A scene with two roads, two regions and the gauge's Datastream (and its id)."""
    s = cim.Scene.create(store_url, crs="EPSG:28992", name="Delft")
    roads = gpd.GeoDataFrame({"id": ["road-1", "road-2"], "name": ["Oude Delft", "Voorstraat"]},
                             geometry=[LineString([(84500, 447000), (84600, 447100)]),
                                       LineString([(84600, 447100), (84700, 447150)])], crs="EPSG:28992")
    s.add_layer("roads", roads, kind="roads")
    s.add_region("Delft", "city", box(84000, 446000, 86000, 448000))
    s.add_region("Binnenstad", "district", box(84400, 446900, 85000, 447400), parent="Delft")
    with s.transaction() as conn:
        gauge_id = iot.add_thing(conn, gauge_thing()).datastream_ids["Hourly precipitation 310"]
    yield s, gauge_id
    s.store.close()


def test_link_to_a_district_and_to_a_street_feature(scene):
    scene, gauge_id = scene
    iot.link_city_object(scene, gauge_id, iot.CityObjectRef("regions", "Binnenstad", "rainfall"))
    with scene.store.engine.connect() as conn:
        assert iot.datastreams(conn, city_layer="regions", feature_id="Binnenstad")["id"].tolist() == [gauge_id]
    iot.link_city_object(scene, gauge_id, iot.CityObjectRef("roads", "road-2"))
    with scene.store.engine.connect() as conn:
        assert iot.get_datastream(conn, gauge_id).city_object == iot.CityObjectRef("roads", "road-2")
        assert iot.datastreams(conn, city_layer="regions").empty


@pytest.mark.parametrize(("ref", "options", "error", "message"), [
    (iot.CityObjectRef("regions", "Centrum"), {}, cim.DataError, "no region 'Centrum' in 'regions' (2 there"),
    (iot.CityObjectRef("roads", "road-9"), {}, cim.DataError, "no feature with id 'road-9' in 'roads'"),
    (iot.CityObjectRef("roads", "Voorstraat"), {"id_column": "naam"}, cim.DataError,
     "has no 'naam' column: pass id_column= one of ['id', 'name']"),
    (iot.CityObjectRef("buildings", "b-1"), {}, cim.LayerNotFoundError, "no layer 'buildings'"),
])
def test_a_link_to_something_not_in_the_scene_is_refused(scene, ref, options, error, message):
    scene, gauge_id = scene
    with pytest.raises(error) as err:
        iot.link_city_object(scene, gauge_id, ref, **options)
    assert message in str(err.value)
    with scene.store.engine.connect() as conn:
        assert iot.get_datastream(conn, gauge_id).city_object is None


def test_a_link_by_another_column_and_for_an_unknown_datastream(scene):
    scene, gauge_id = scene
    iot.link_city_object(scene, gauge_id, iot.CityObjectRef("roads", "Oude Delft", "level"), id_column="name")
    with scene.store.engine.connect() as conn:   # found by its name, linked by its id
        assert iot.get_datastream(conn, gauge_id).city_object == iot.CityObjectRef("roads", "road-1", "level")
    scene.add_layer("roads", gpd.GeoDataFrame(
        {"id": ["road-1", "road-2"], "name": ["Oude Delft", "Oude Delft"]},
        geometry=[LineString([(84500, 447000), (84600, 447100)]), LineString([(84600, 447100), (84700, 447150)])],
        crs="EPSG:28992"), kind="roads", replace=True)
    with pytest.raises(cim.DataError, match=r"2 features of 'roads' have name 'Oude Delft' .*link by id instead"):
        iot.link_city_object(scene, gauge_id, iot.CityObjectRef("roads", "Oude Delft"), id_column="name")
    with pytest.raises(cim.DataError, match="Datastream 4242 is not in the store"):
        iot.link_city_object(scene, 4242, iot.CityObjectRef("roads", "road-1"))


def test_sensor_locations_become_a_sensors_layer_in_the_scene_crs(scene):
    scene, _ = scene
    with scene.store.engine.connect() as conn:
        gdf = iot.sensor_locations(conn)
    scene.add_layer("sensors", gdf, kind="sensors")
    back = scene.layer("sensors")
    assert back.crs.to_epsg() == 28992 and back["thing"].tolist() == ["KNMI AWS 310 Vlissingen"]
    # Vlissingen in RD New (x about 30.5 km, y about 385.2 km)
    assert back.geometry.x[0] == pytest.approx(30475.2, abs=1.0)
    assert back.geometry.y[0] == pytest.approx(385185.5, abs=1.0)
