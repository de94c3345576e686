"""cim.iot: SensorThings entities validated when built, their tables on SQLite and PostgreSQL, idempotent writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import cim
from cim import iot

DATA = Path(__file__).parents[1] / "data" / "iot"
STA = DATA / "sta_thing_knmi310_precip_20200617.json"


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def iot_engine(request, tmp_path):
    """An Engine with the IoT tables: a SQLite file, or a fresh schema of the throwaway PostGIS cluster."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'iot.sqlite'}")
    else:
        url = sa.engine.make_url(request.getfixturevalue("postgis_url"))
        schema = url.query["schema"]
        engine = sa.create_engine(url.difference_update_query(["schema"]),
                                  connect_args={"options": f"-c search_path={schema},public"})
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    iot.create_tables(engine)
    yield engine
    engine.dispose()


def gauge_thing() -> iot.Thing:
    return iot.thing_from_sta(json.loads(STA.read_text()))


def simple_stream(name="level", obs_type=iot.OM_MEASUREMENT, unit=("metre", "m")) -> iot.Datastream:
    return iot.Datastream(name=name, unit_of_measurement=iot.UnitOfMeasurement(*unit), observation_type=obs_type,
                          sensor=iot.Sensor("pressure probe"), observed_property=iot.ObservedProperty("water_level"))


# ------------------------------------------------------------------------------------------ validation on build

@pytest.mark.parametrize(("build", "field", "fix"), [
    (lambda: iot.UnitOfMeasurement("millimetre", ""), "unitOfMeasurement.symbol", "symbol"),
    (lambda: iot.UnitOfMeasurement("millimetre", None), "unitOfMeasurement.symbol", '"symbol": "mm"'),
    (lambda: iot.UnitOfMeasurement.from_sta("mm"), "unitOfMeasurement", "name, symbol and definition"),
    (lambda: iot.UnitOfMeasurement.from_sta({"name": "millimetre"}), "unitOfMeasurement.symbol", '"symbol"'),
    (lambda: iot.Datastream("d", {"symbol": "mm"}, iot.Sensor("s"), iot.ObservedProperty("p")),
     "Datastream.unitOfMeasurement.name", "e.g."),
    (lambda: iot.Datastream("d", iot.UnitOfMeasurement("m", "m"), None, iot.ObservedProperty("p")),
     "no Sensor", "nested Sensor"),
    (lambda: simple_stream(obs_type="OM_Measurement"), "observationType", "OM_Measurement'"),
    (lambda: iot.Thing(""), "Thing.name", "give the thing a name"),
    (lambda: iot.Observation(None, 1.0), "phenomenonTime is missing", "2020-06-17T15:00:00Z"),
    (lambda: iot.Observation("2020-06-17T15:00:00", 1.0), "has no time zone", "add one"),
    (lambda: iot.Observation("17 June", 1.0), "not an ISO 8601 time", "2020-06-17T15:00:00Z"),
    (lambda: iot.Observation("2020-06-17T16:00Z/2020-06-17T15:00Z", 1.0), "ends before it starts", "start/end"),
    (lambda: iot.Observation("2020-06-17T15:00Z", float("nan")), "result is nan", "finite number"),
    (lambda: iot.Observation("2020-06-17T15:00Z", 1.0, datastream_id="abc"), "Datastream.@iot.id", "integer"),
    (lambda: iot.Location("gauge", {"coordinates": [3.6, 51.4]}), "Location.location", '"type": "Point"'),
    (lambda: iot.FeatureOfInterest("inlet", {"coordinates": [3.6, 51.4]}), "FeatureOfInterest.feature has no GeoJSON",
     '"type": "Point"'),
    (lambda: iot.FeatureOfInterest("inlet", [3.6, 51.4]), "FeatureOfInterest.feature must be a JSON object", "mapping"),
    (lambda: iot.Observation("2020-06-17T15:00Z", 1.0, datastream_id=2**40), "out of range", "1 to 2147483647"),
    (lambda: iot.Observation("0001-01-01T00:00+01:00", 1.0), "out of range in UTC", "between years 1 and 9999"),
    (lambda: iot.Thing("x" * 300), "Thing.name is 300 characters long", "at most 255"),
    (lambda: iot.UnitOfMeasurement("millimetre", "m" * 65), "unitOfMeasurement.symbol is 65", "at most 64"),
])
def test_entities_refuse_bad_values_naming_field_and_fix(build, field, fix):
    with pytest.raises(cim.DataError) as err:
        build()
    assert field in str(err.value) and fix in str(err.value)
    assert isinstance(err.value, ValueError)


def test_datastream_checks_results_against_observation_type():
    obs = iot.Observation("2020-06-17T15:00:00Z", "51,3")
    with pytest.raises(cim.DataError, match="does not fit the Datastream's observationType OM_Measurement"):
        iot.Datastream("rain", iot.UnitOfMeasurement("millimetre", "mm"), iot.Sensor("g"),
                       iot.ObservedProperty("p"), observations=(obs,))
    truth = simple_stream(obs_type=iot.OM_TRUTH)
    assert truth.observation_type.endswith("OM_TruthObservation")


def test_sample_json_builds_the_gauge_entities():
    thing = gauge_thing()
    assert thing.name == "KNMI AWS 310 Vlissingen"
    (loc,) = thing.locations
    assert loc.location["coordinates"] == [3.596, 51.442]
    (ds,) = thing.datastreams
    assert (ds.unit_of_measurement.symbol, ds.observed_property.name) == ("mm", "precipitation_amount")
    assert len(ds.observations) == 24
    peak = max(ds.observations, key=lambda o: o.result)
    assert peak.result == 51.3
    assert peak.phenomenon_time == datetime(2020, 6, 17, 15, tzinfo=UTC)


def test_times_are_normalised_to_utc_and_intervals_kept():
    o = iot.Observation("2020-06-17T17:00:00+02:00/2020-06-17T18:00:00+02:00", 3.1)
    assert o.phenomenon_time == datetime(2020, 6, 17, 15, tzinfo=UTC)
    assert o.phenomenon_time_end == datetime(2020, 6, 17, 16, tzinfo=UTC)
    assert o.to_sta()["phenomenonTime"] == "2020-06-17T15:00:00Z/2020-06-17T16:00:00Z"


# ---------------------------------------------------------------------------------------- tables, both backends

def test_tables_have_the_keys_that_make_resends_idempotent(iot_engine):
    insp = sa.inspect(iot_engine)
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("iot_observations")}
    uniques |= {tuple(i["column_names"]) for i in insp.get_indexes("iot_observations") if i["unique"]}
    assert ("datastream_id", "phenomenon_time") in uniques
    assert ("client_id",) in uniques
    fks = {fk["referred_table"] for fk in insp.get_foreign_keys("iot_observations")}
    assert fks == {"iot_datastreams", "iot_features_of_interest"}
    assert any(i["column_names"] == ["city_layer", "city_feature_id"] for i in insp.get_indexes("iot_datastreams"))


def test_gauge_loads_once_and_peak_reads_back(iot_engine):
    with iot_engine.begin() as conn:
        first = iot.add_thing(conn, gauge_thing())
    with iot_engine.begin() as conn:
        again = iot.add_thing(conn, gauge_thing())
    assert (first.observations_new, again.observations_new) == (24, 0)
    assert again.thing_id == first.thing_id
    assert again.datastream_ids == first.datastream_ids
    ds_id = first.datastream_ids["Hourly precipitation 310"]
    with iot_engine.connect() as conn:
        counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in iot.tables}
        series = iot.observation_series(conn, ds_id)
        window = iot.observations(conn, ds_id, "2020-06-17T14:00:00Z", "2020-06-17T16:00:00Z")
        stream = iot.get_datastream(conn, ds_id)
    assert counts["iot_observations"] == 24
    assert counts["iot_things"] == counts["iot_datastreams"] == counts["iot_locations"] == 1
    assert counts["iot_sensors"] == counts["iot_observed_properties"] == 1
    assert series.idxmax() == pd.Timestamp("2020-06-17T15:00:00Z")
    assert series.max() == 51.3
    assert series.sum() == pytest.approx(76.8)
    assert series.attrs["units"] == "mm"
    assert window["result"].tolist() == [3.0, 51.3]           # [start, end): 16:00 is out
    assert str(window["phenomenon_time"].dtype) == "datetime64[us, UTC]"
    assert stream.sensor.name == "KNMI rain gauge" and stream.unit_of_measurement.name == "millimetre"


def test_resent_observation_same_time_or_same_client_id_is_stored_once(iot_engine):
    with iot_engine.begin() as conn:
        ds_id = iot.add_thing(conn, iot.Thing("pump 7", datastreams=(simple_stream(),))).datastream_ids["level"]
        a = iot.Observation("2024-01-01T00:00:00Z", -0.42, id="probe-1/0001")
        assert iot.add_observations(conn, [a], datastream_id=ds_id) == 1
        assert iot.add_observations(conn, [a, a], datastream_id=ds_id) == 0
        # a different time but the same client id: the same observation re-sent with a corrected clock
        b = iot.Observation("2024-01-01T00:00:05Z", -0.42, id="probe-1/0001")
        c = iot.Observation("2024-01-01T00:10:00Z", -0.40)
        assert iot.add_observations(conn, [b, c], datastream_id=ds_id) == 1
    with iot_engine.connect() as conn:
        df = iot.observations(conn, ds_id)
    assert df["result"].tolist() == [-0.42, -0.40]
    assert df["client_id"].tolist() == ["probe-1/0001", None]


def test_unknown_datastream_and_wrong_type_write_nothing(iot_engine):
    with iot_engine.begin() as conn:
        ds_id = iot.add_thing(conn, iot.Thing("pump 7", datastreams=(simple_stream(),))).datastream_ids["level"]
    good = iot.Observation("2024-01-01T00:00:00Z", 1.0, datastream_id=ds_id)
    with pytest.raises(cim.DataError, match=r"Datastream 999 is not in the store: create it"):
        with iot_engine.begin() as conn:
            iot.add_observations(conn, [good, iot.Observation("2024-01-01T00:00:00Z", 1.0, datastream_id=999)])
    with pytest.raises(cim.DataError, match=r"observation 1 result 'high' does not fit .* send a finite number"):
        with iot_engine.begin() as conn:
            iot.add_observations(conn, [good, iot.Observation("2024-01-01T01:00Z", "high", datastream_id=ds_id)])
    with iot_engine.connect() as conn:
        assert iot.observations(conn, ds_id).empty


def test_non_numeric_results_parameters_and_features_round_trip(iot_engine):
    foi = iot.FeatureOfInterest("Spuikom inlet", {"type": "Point", "coordinates": [3.59, 51.44]})
    with iot_engine.begin() as conn:
        ids = iot.add_thing(conn, iot.Thing("gate", datastreams=(
            simple_stream("open", iot.OM_TRUTH, ("dimensionless", "1")),
            simple_stream("state", iot.OM_CATEGORY, ("dimensionless", "1"))))).datastream_ids
        iot.add_observations(conn, [
            iot.Observation("2024-01-01T00:00Z", True, parameters={"operator": "auto"}, feature_of_interest=foi),
            iot.Observation("2024-01-01T01:00Z", False, feature_of_interest=foi)], datastream_id=ids["open"])
        iot.add_observations(conn, [iot.Observation("2024-01-01T00:00Z", "closing")], datastream_id=ids["state"])
        n_foi = conn.execute(sa.select(sa.func.count()).select_from(iot.features_of_interest)).scalar()
    with iot_engine.connect() as conn:
        gate = iot.observations(conn, ids["open"])
        state = iot.observations(conn, ids["state"])
    assert gate["result"].tolist() == [True, False]
    assert gate["parameters"].tolist() == [{"operator": "auto"}, None]
    assert state["result"].tolist() == ["closing"]
    assert n_foi == 1


def test_datastream_linked_to_a_city_object_is_found_by_it(iot_engine):
    link = iot.CityObjectRef("roads", "b0a8da4cc-2d2a-11e6-9a38-393caa90be70", "water_depth")
    stream = iot.Datastream("depth", iot.UnitOfMeasurement("metre", "m"), iot.Sensor("radar"),
                            iot.ObservedProperty("water_depth"), city_object=link)
    with iot_engine.begin() as conn:
        ids = iot.add_thing(conn, iot.Thing("street sensor 12", datastreams=(stream, simple_stream()))).datastream_ids
    with iot_engine.connect() as conn:
        linked = iot.datastreams(conn, city_layer="roads", feature_id=link.feature_id)
        assert iot.get_datastream(conn, ids["depth"]).city_object == link
        assert iot.get_datastream(conn, ids["level"]).city_object is None
    assert linked["id"].tolist() == [ids["depth"]]
    assert linked["city_attribute"].tolist() == ["water_depth"]


def test_explicit_ids_are_kept_and_generated_ids_do_not_collide(iot_engine):
    explicit = iot.Datastream("temperature", iot.UnitOfMeasurement("degree Celsius", "Cel"), iot.Sensor("t"),
                              iot.ObservedProperty("air_temperature"), id=7)
    with iot_engine.begin() as conn:
        a = iot.add_thing(conn, iot.Thing("room", datastreams=(explicit,), id=3))
        b = iot.add_thing(conn, iot.Thing("hall", datastreams=(simple_stream(),)))
    assert (a.thing_id, a.datastream_ids["temperature"]) == (3, 7)
    assert b.thing_id not in (3,) and b.datastream_ids["level"] != 7
    with pytest.raises(cim.DataError, match=r"Thing 'room' with @iot.id 5 is already stored as @iot.id 3"):
        with iot_engine.begin() as conn:
            iot.add_thing(conn, iot.Thing("room", id=5))


def test_changed_unit_for_a_stored_datastream_is_refused(iot_engine):
    with iot_engine.begin() as conn:
        iot.add_thing(conn, gauge_thing())
    doc = json.loads(STA.read_text())
    doc["Datastreams"][0]["unitOfMeasurement"] = {"name": "metre", "symbol": "m", "definition": ""}
    with pytest.raises(cim.DataError, match=r"stored with unit 'mm'.*says 'm'.*convert the values"):
        with iot_engine.begin() as conn:
            iot.add_thing(conn, iot.thing_from_sta(doc))


def test_dead_letters_keep_reason_and_raw_bytes(iot_engine):
    with iot_engine.begin() as conn:
        iot.add_dead_letter(conn, source="mqtt://127.0.0.1:1883", topic="v1.1/Datastreams(9)/Observations",
                            reason="payload is not JSON", payload=b"\xff{not json")
    with iot_engine.connect() as conn:
        df = iot.dead_letters(conn)
    assert df["payload"].tolist() == [b"\xff{not json"]
    assert df["reason"].tolist() == ["payload is not JSON"]
    assert df["received"].iloc[0] <= pd.Timestamp.now(tz="UTC")


# ------------------------------------------------------------------------------------------ bulk (DataFrame) path

def test_frame_bulk_path_is_idempotent_and_agrees_with_the_row_path(iot_engine):
    with iot_engine.begin() as conn:
        ids = iot.add_thing(conn, gauge_thing()).datastream_ids          # 24 hourly values via the row path
        other = iot.add_thing(conn, iot.Thing("pump 7", datastreams=(simple_stream(),))).datastream_ids["level"]
    ds_id = ids["Hourly precipitation 310"]
    times = pd.date_range("2020-06-16T00:00Z", periods=72, freq="h")      # 17 June overlaps the stored day
    frame = pd.DataFrame({"phenomenon_time": times, "result": [round(0.1 * i, 1) for i in range(72)],
                          "datastream_id": ds_id})
    frame.loc[70, "datastream_id"] = other
    with iot_engine.begin() as conn:
        assert iot.add_observation_frame(conn, frame) == 72 - 24
    with iot_engine.begin() as conn:
        assert iot.add_observation_frame(conn, frame) == 0
        s = iot.observation_series(conn, ds_id)
        level = iot.observations(conn, other)
    assert len(s) == 71 and s["2020-06-17T15:00Z"] == 51.3                # the stored value was kept
    assert s["2020-06-18T23:00Z"] == 7.1 and s.index.is_monotonic_increasing
    assert level["result"].tolist() == [7.0]
    assert level["phenomenon_time"].iloc[0] == pd.Timestamp("2020-06-18T22:00Z")


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.assign(phenomenon_time=f["phenomenon_time"].dt.tz_localize(None)), "not timezone-aware"),
    (lambda f: f.assign(result=[1.0, float("nan")]), "row 1: result nan is not a finite number"),
    (lambda f: f.assign(result=[1.0, "heavy"]), "row 1: result 'heavy' is not a finite number"),
    (lambda f: f.assign(datastream_id=[1, 999]), "Datastream 999 is not in the store"),
    (lambda f: f.drop(columns="datastream_id"), "no 'datastream_id' column"),
])
def test_frame_bulk_path_refuses_bad_frames_and_writes_nothing(iot_engine, change, message):
    with iot_engine.begin() as conn:
        ds_id = iot.add_thing(conn, iot.Thing("pump 7", datastreams=(simple_stream(),))).datastream_ids["level"]
    good = pd.DataFrame({"phenomenon_time": pd.to_datetime(["2024-01-01T00:00Z", "2024-01-01T00:10Z"]),
                         "result": [1.0, 2.0], "datastream_id": [ds_id, ds_id]})
    with pytest.raises(cim.DataError, match=message):
        with iot_engine.begin() as conn:
            iot.add_observation_frame(conn, change(good))
    with iot_engine.connect() as conn:
        assert iot.observations(conn, ds_id).empty


def test_frame_bulk_path_in_a_scene_transaction_is_all_or_nothing(store_url):
    scene = cim.Scene.create(store_url, crs="EPSG:28992", name="Vlissingen")
    try:
        with scene.transaction() as conn:
            ds_id = iot.add_thing(conn, gauge_thing()).datastream_ids["Hourly precipitation 310"]
        frame = pd.DataFrame({"phenomenon_time": pd.date_range("2020-06-18T00:00Z", periods=1000, freq="min"),
                              "result": 0.5})
        with pytest.raises(RuntimeError, match="power cut"):
            with scene.transaction() as conn:
                assert iot.add_observation_frame(conn, frame, datastream_id=ds_id) == 1000
                raise RuntimeError("power cut")
        with scene.store.engine.connect() as conn:
            assert len(iot.observations(conn, ds_id)) == 24
        with scene.transaction() as conn:
            assert iot.add_observation_frame(conn, frame, datastream_id=ds_id) == 1000
        with scene.store.engine.connect() as conn:
            s = iot.observation_series(conn, ds_id, "2020-06-18T00:00Z")
        assert len(s) == 1000 and s.sum() == 500.0
    finally:
        scene.store.close()


def test_an_explicit_id_of_another_entity_is_refused(iot_engine):
    with iot_engine.begin() as conn:
        ds_id = iot.add_thing(conn, gauge_thing()).datastream_ids["Hourly precipitation 310"]
    clash = iot.Datastream("wind speed", iot.UnitOfMeasurement("millimetre", "mm"), iot.Sensor("anemometer"),
                           iot.ObservedProperty("wind_speed"), id=ds_id)
    with pytest.raises(cim.DataError, match=rf"Datastream 'wind speed' has @iot.id {ds_id}, which is stored for "
                                            r"another entity \(thing_id=1, name='Hourly precipitation 310'\)"):
        with iot_engine.begin() as conn:
            iot.add_thing(conn, iot.Thing("KNMI AWS 310 Vlissingen", datastreams=(clash,)))


def test_frame_bulk_path_keeps_every_column_exactly(iot_engine):
    with iot_engine.begin() as conn:
        ds_id = iot.add_thing(conn, iot.Thing("pump 7", datastreams=(simple_stream(),))).datastream_ids["level"]
    t0 = pd.Timestamp("2024-01-01T00:00:00.123456Z")
    frame = pd.DataFrame({
        "phenomenon_time": [t0, t0 + pd.Timedelta("10min")],
        "phenomenon_time_end": [t0 + pd.Timedelta("5min"), pd.NaT],
        "result_time": [pd.NaT, pd.Timestamp("2024-01-01T02:00:00+01:00")],
        "result": [0.1 + 0.2, -1e-300],
        "client_id": ['probe "A", 1', None]})
    with iot_engine.begin() as conn:
        assert iot.add_observation_frame(conn, frame, datastream_id=ds_id) == 2
    with iot_engine.connect() as conn:
        df = iot.observations(conn, ds_id)
    assert df["result"].tolist() == [0.30000000000000004, -1e-300]
    assert df["phenomenon_time"].tolist() == [t0, t0 + pd.Timedelta("10min")]
    assert df["phenomenon_time_end"].iloc[0] == t0 + pd.Timedelta("5min") and pd.isna(df["phenomenon_time_end"][1])
    assert pd.isna(df["result_time"][0]) and df["result_time"][1] == pd.Timestamp("2024-01-01T01:00:00Z")
    assert df["client_id"].tolist() == ['probe "A", 1', None]
    # the row path sees these as the same observations
    with iot_engine.begin() as conn:
        same = [iot.Observation(t0, 0.3), iot.Observation(t0 + pd.Timedelta("1h"), 9.9, id='probe "A", 1')]
        assert iot.add_observations(conn, same, datastream_id=ds_id) == 0


def test_large_batches_of_value_objects_take_the_bulk_road_with_the_same_rules(iot_engine):
    with iot_engine.begin() as conn:
        ds_id = iot.add_thing(conn, iot.Thing("pump 7", datastreams=(simple_stream(),))).datastream_ids["level"]
    times = pd.date_range("2024-01-01T00:00Z", periods=600, freq="min")
    batch = [iot.Observation(t, i / 100, id=f"p7-{i}") for i, t in enumerate(times)]
    with iot_engine.begin() as conn:
        assert iot.add_observations(conn, batch[:300], datastream_id=ds_id) == 300
    with iot_engine.begin() as conn:    # half re-sent, plus one re-sent under a new time but its old client id
        moved = iot.Observation(times[0] - pd.Timedelta("1h"), 0.0, id="p7-0")
        assert iot.add_observations(conn, [moved, *batch], datastream_id=ds_id) == 300
    with iot_engine.connect() as conn:
        df = iot.observations(conn, ds_id)
    assert len(df) == 600 and df["result"].sum() == pytest.approx(sum(i / 100 for i in range(600)))
    assert df["client_id"].iloc[599] == "p7-599" and df["phenomenon_time"].iloc[0] == times[0]


def test_sensor_locations_are_a_wgs84_point_layer(iot_engine):
    with iot_engine.begin() as conn:
        iot.add_thing(conn, gauge_thing())
        iot.add_thing(conn, iot.Thing("pump 7", datastreams=(simple_stream(),)))      # no location: not listed
        gdf = iot.sensor_locations(conn)
    assert gdf.crs.to_epsg() == 4326
    assert gdf[["thing", "location", "datastreams"]].values.tolist() == [
        ["KNMI AWS 310 Vlissingen", "Vlissingen 310", "Hourly precipitation 310"]]
    assert (gdf.geometry.x[0], gdf.geometry.y[0]) == (3.596, 51.442)
