"""CityGML 3.0 Dynamizers: a SensorConnection links a Datastream to a room; an inline time series gives values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import cim
import ingest
from cim import iot
from ingest.dynamizer import read_dynamizers

DATA = Path(__file__).parents[1] / "data" / "iot"
SENSOR = DATA / "Building_CityGML3.0_with_Dynamizer_and_SensorConnection_V1.gml"
INLINE = DATA / "Building_CityGML3.0_with_Dynamizer_and_inline_Timeseries.gml"
MONTHLY = [1454.63, 1866.83, 1998.43, 2152.07, 2381.81, 2511.77, 2480.00, 2307.56, 2087.42, 1903.98, 1707.01,
           1391.29]


def test_sensor_connection_links_the_temperature_datastream_to_the_room():
    (thing,) = read_dynamizers(SENSOR).things
    (ds,) = thing.datastreams
    assert thing.description == "Living Room"
    assert ds.city_object == iot.CityObjectRef("building_rooms", "DEBY_LOD2_5744682_room1", "temperature")
    assert (ds.name, ds.unit_of_measurement.symbol) == ("Temperature", "Celsius")
    remote = ds.properties["sensorConnection"]
    assert remote["datastreamID"] == "1" and remote["connectionType"] == "ogc_sta_1.0"
    assert remote["linkToObservation"] == ("http://127.0.0.1:8080/FROST-Server/v1.0/Datastreams(1)/Observations"
                                           "?$filter=during(phenomenonTime, 2019-01-01T00:00:00Z/2020-01-01T00:00:00Z)")
    assert ds.sensor.metadata == "http://127.0.0.1:8080/FROST-Server/v1.0/Datastreams(1)/Sensor"
    assert ds.properties["parentCityObject"] == "DEBY_LOD2_5744682"
    assert ds.observations == ()


def test_inline_timeseries_gives_the_monthly_values_as_intervals():
    (thing,) = read_dynamizers(INLINE).things
    (ds,) = thing.datastreams
    assert ds.city_object == iot.CityObjectRef("building_surfaces", "DEBY_LOD2_5744682_roofsurface1",
                                               "diffuse_irradiation")
    assert (ds.name, ds.unit_of_measurement.symbol) == ("DiffuseIrradiationPerMonth", "kWh")
    assert [o.result for o in ds.observations] == MONTHLY
    june = ds.observations[5]
    assert (june.phenomenon_time.isoformat(), june.phenomenon_time_end.isoformat()) == (
        "2019-06-01T00:00:00+00:00", "2019-07-01T00:00:00+00:00")
    assert ds.observations[11].phenomenon_time_end.isoformat() == "2020-01-01T00:00:00+00:00"


def test_dynamizers_ingest_into_a_scene_found_by_their_city_objects(store_url):
    scene = cim.Scene.create(store_url, crs="EPSG:25832", name="Moosach")
    try:
        assert ingest.find_reader(SENSOR).name == "citygml3_dynamizer"
        ingest.ingest(scene, SENSOR)
        report = ingest.ingest(scene, INLINE)
        again = ingest.ingest(scene, INLINE)                             # again: nothing new
        assert report.added_count("DEBY_LOD2_5744682_roofsurface1 / DiffuseIrradiationPerMonth") == 12
        assert again.added_count("DEBY_LOD2_5744682_roofsurface1 / DiffuseIrradiationPerMonth") == 0
        with scene.store.engine.connect() as conn:
            room = iot.datastreams(conn, city_layer="building_rooms", feature_id="DEBY_LOD2_5744682_room1")
            roof = iot.datastreams(conn, feature_id="DEBY_LOD2_5744682_roofsurface1")
            series = iot.observation_series(conn, int(roof["id"].iloc[0]))
            n = conn.execute(sa.select(sa.func.count()).select_from(iot.observations_table)).scalar()
        assert room[["name", "unit_symbol", "city_attribute"]].values.tolist() == [["Temperature", "Celsius",
                                                                                    "temperature"]]
        assert n == 12
        assert series.tolist() == MONTHLY
        assert series.idxmax() == pd.Timestamp("2019-06-01T00:00:00Z")
    finally:
        scene.store.close()


def test_a_broken_dynamizer_file_is_refused(tmp_path):
    cut = tmp_path / "cut.gml"
    cut.write_bytes(SENSOR.read_bytes()[:9000])
    with pytest.raises(cim.DataError, match=r"cut\.gml: not well-formed XML .* truncated or corrupt"):
        read_dynamizers(cut)
    wrong = tmp_path / "wrong_ref.gml"
    wrong.write_text(SENSOR.read_text().replace("@gml:id='DEBY_LOD2_5744682_room1'", "@gml:id='room-9'"))
    with pytest.raises(cim.DataError, match="attributeRef names gml:id 'room-9', which is not in the file"):
        read_dynamizers(wrong)
