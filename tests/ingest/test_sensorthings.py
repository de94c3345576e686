"""SensorThings JSON and observation CSV: read through the registry, loaded into scenes on both backends."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import cim
import ingest
from cim import iot
from ingest.sensorthings import load_observations, read_observations_csv, read_sensorthings

DATA = Path(__file__).parents[1] / "data" / "iot"
STA = DATA / "sta_thing_knmi310_precip_20200617.json"
CSV_MM = DATA / "knmi310_20200617_observations.csv"
CSV_M = DATA / "knmi310_hourly_20200617_metres.csv"
BAD = DATA / "bad"


@pytest.fixture
def scene(store_url):
    s = cim.Scene.create(store_url, crs="EPSG:28992", name="Vlissingen")
    yield s
    s.store.close()


def n_rows(scene, table) -> int:
    with scene.store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def test_registry_detects_sensorthings_json_and_csv():
    assert ingest.find_reader(STA).name == "sensorthings"
    assert ingest.find_reader(CSV_MM).name == "observations_csv"
    assert ingest.find_reader(CSV_M).name != "observations_csv"      # a gauge CSV without STA headers
    result = ingest.read(STA)
    (thing,) = result.extra["things"]
    assert [o.result for o in thing.datastreams[0].observations][14:17] == [3.0, 51.3, 8.7]


def test_sample_json_ingests_once_with_the_peak_at_15_utc(scene):
    first = ingest.ingest(scene, STA)
    second = ingest.ingest(scene, STA)
    assert first.added_count("KNMI AWS 310 Vlissingen / Hourly precipitation 310") == 24
    assert second.added_count("KNMI AWS 310 Vlissingen / Hourly precipitation 310") == 0
    assert any("24 observations were stored already" in s.reason for s in second.skipped)
    assert n_rows(scene, iot.observations_table) == 24
    assert n_rows(scene, iot.things) == 1 and n_rows(scene, iot.datastreams_table) == 1
    with scene.store.engine.connect() as conn:
        (ds_id,) = iot.datastreams(conn, thing="KNMI AWS 310 Vlissingen")["id"]
        s = iot.observation_series(conn, ds_id)
    assert (s.idxmax(), s.max()) == (pd.Timestamp("2020-06-17T15:00:00Z"), 51.3)
    assert s.attrs["units"] == "mm" and len(s) == 24


def test_csv_observations_load_once_into_the_gauge_datastream(scene):
    ingest.ingest(scene, STA)
    with scene.store.engine.connect() as conn:
        (ds_id,) = iot.datastreams(conn)["id"]
    with scene.transaction() as conn:            # empty the series, then load it again from CSV
        conn.execute(sa.delete(iot.observations_table))
    report = ingest.ingest(scene, CSV_MM, datastream_id=int(ds_id))
    assert report.added_count("observations") == 24
    assert ingest.ingest(scene, CSV_MM, datastream_id=int(ds_id)).added_count("observations") == 0
    assert load_observations(scene, read_observations_csv(CSV_MM, datastream_id=int(ds_id))) == 0
    with scene.store.engine.connect() as conn:
        s = iot.observation_series(conn, ds_id, "2020-06-17T15:00Z", "2020-06-17T16:00Z")
    assert s.tolist() == [51.3]
    assert n_rows(scene, iot.observations_table) == 24


def test_gauge_csv_in_metres_converts_to_the_datastreams_millimetres(scene):
    ingest.ingest(scene, STA)
    with scene.store.engine.connect() as conn:
        (ds_id,) = iot.datastreams(conn)["id"]
    obs = read_observations_csv(CSV_M, datastream_id=int(ds_id), tz="UTC", unit="m", to_unit="mm")
    assert len(obs) == 24
    peak = max(obs, key=lambda o: o.result)
    assert peak.result == pytest.approx(51.3) and peak.phenomenon_time.isoformat() == "2020-06-17T15:00:00+00:00"
    # the JSON has the same 24 hours: nothing is new
    assert load_observations(scene, obs) == 0


@pytest.mark.parametrize(("name", "field", "fix"), [
    ("truncated.json", "not valid JSON at line", "truncated or corrupt"),
    ("unit_as_string.json", "Thing.Datastreams[0].unitOfMeasurement must be an object", '"symbol": "mm"'),
    ("unit_without_symbol.json", "Thing.Datastreams[0].unitOfMeasurement.symbol is missing", "write e.g."),
    ("observation_without_result.json", "Thing.Datastreams[0].Observations[5].result is missing",
     '"result": 51.3'),
    ("naive_time.json", "Observations[3]: phenomenonTime 2020-06-17T03:00:00 has no time zone", "add one"),
    ("text_result.json", "observation 15 result '51,3' does not fit", "send a finite number"),
    ("unknown_observation_type.json", "observationType 'OM_Measurement' is not a SensorThings", "use one of"),
    ("datastream_without_sensor.json", "Thing.Datastreams[0].Sensor is missing", "nest the Sensor"),
    ("thing_without_name.json", "Thing.name is missing", "give the Thing a name"),
])
def test_bad_json_is_refused_naming_file_field_and_fix_and_leaves_the_scene_unchanged(scene, name, field, fix):
    with pytest.raises(cim.DataError) as err:
        ingest.ingest(scene, BAD / name, format="sensorthings")
    msg = str(err.value)
    assert name in msg and field in msg and fix in msg, msg
    assert n_rows(scene, iot.things) == 0 and n_rows(scene, iot.observations_table) == 0


@pytest.mark.parametrize(("name", "options", "message"), [
    ("observations_not_a_number.csv", {}, "row 3 column 'result': 'heavy' is not a number"),
    ("observations_naive_time.csv", {}, "has times without a zone (e.g. '2020-06-17 15:00:00'): pass tz='UTC'"),
    ("observations_bad_time.csv", {}, "row 3 column 'phenomenonTime': 'yesterday' is not a time"),
])
def test_bad_csv_is_refused_naming_row_and_fix(name, options, message):
    with pytest.raises(cim.DataError) as err:
        read_observations_csv(BAD / name, datastream_id=1, **options)
    assert name in str(err.value) and message in str(err.value)


def test_csv_times_whose_offset_changes_are_read_in_utc(tmp_path):
    p = tmp_path / "dst.csv"
    p.write_text("phenomenonTime,result\n2020-03-29T01:00:00+01:00,0.2\n2020-03-29T03:00:00+02:00,0.3\n"
                 "2020-03-29T02:00:00Z,0.4\n")
    obs = read_observations_csv(p, datastream_id=1)
    assert [o.phenomenon_time.isoformat() for o in obs] == [
        "2020-03-29T00:00:00+00:00", "2020-03-29T01:00:00+00:00", "2020-03-29T02:00:00+00:00"]
    assert [o.result for o in obs] == [0.2, 0.3, 0.4]


def test_csv_options_are_checked():
    with pytest.raises(cim.ValidationError, match="did you mean 'datastream_id'"):
        ingest.read(CSV_MM, datastream=1)
    with pytest.raises(cim.ValidationError, match="unit 'inch' is not one this reader converts"):
        read_observations_csv(CSV_M, datastream_id=1, tz="UTC", unit="inch", to_unit="mm")
    with pytest.raises(cim.DataError, match="pass datastream_id= for the whole file"):
        read_observations_csv(CSV_MM)


def test_csv_for_a_datastream_not_in_the_scene_writes_nothing(scene):
    ingest.ingest(scene, STA)
    with pytest.raises(cim.DataError, match="Datastream 77 is not in the store"):
        ingest.ingest(scene, CSV_MM, datastream_id=77)
    assert n_rows(scene, iot.observations_table) == 24


def test_a_collection_of_things_reads_every_thing():
    doc = {"value": [{"name": "gauge A"}, {"name": "gauge B", "Locations": []}]}
    assert [t.name for t in read_sensorthings(doc)] == ["gauge A", "gauge B"]
    with pytest.raises(cim.DataError, match=r"Thing\[1\].name is missing"):
        read_sensorthings([{"name": "gauge A"}, {"description": "no name"}])
