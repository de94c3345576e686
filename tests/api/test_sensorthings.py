"""SensorThings API v1.1: entities, query options, navigation, creation with idempotency, on both stores."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from cim import iot
from tests.api.conftest import RAIN

V = "http://testserver/v1.1"


@pytest.fixture
def api(twin):
    return twin.client(), twin.h("read"), twin


def stored(twin, ds: int) -> list[float]:
    with twin.scene.store.engine.connect() as conn:
        return iot.observations(conn, ds)["result"].tolist()


def test_service_root_and_entity_sets(api):
    c, h, t = api
    root = c.get("/v1.1").json()
    assert [e["name"] for e in root["value"]] == ["Things", "Locations", "Sensors", "ObservedProperties",
                                                  "Datastreams", "Observations", "FeaturesOfInterest"]
    assert root["value"][0]["url"] == f"{V}/Things"
    things = c.get("/v1.1/Things", headers=h).json()["value"]
    assert len(things) == 1
    th = things[0]
    assert th["@iot.id"] == t.thing_id and th["name"] == "Gauge Delft" and th["description"] == "rain and level"
    assert th["@iot.selfLink"] == f"{V}/Things({t.thing_id})"
    assert th["Datastreams@iot.navigationLink"] == f"{V}/Things({t.thing_id})/Datastreams"
    loc = c.get("/v1.1/Locations", headers=h).json()["value"][0]
    assert loc["location"] == {"type": "Point", "coordinates": [4.36, 52.01]}
    ds = c.get(f"/v1.1/Datastreams({t.rain_id})", headers=h).json()
    assert ds["name"] == "rain" and ds["unitOfMeasurement"]["symbol"] == "mm"
    assert ds["observationType"] == iot.OM_MEASUREMENT
    assert c.get(f"/v1.1/Datastreams({t.rain_id})/Sensor", headers=h).json()["name"] == "tipping bucket"
    assert c.get(f"/v1.1/Datastreams({t.rain_id})/ObservedProperty", headers=h).json()["name"] == \
        "precipitation_amount"
    assert c.get(f"/v1.1/Datastreams({t.rain_id})/Thing", headers=h).json()["@iot.id"] == t.thing_id
    assert [d["name"] for d in c.get(f"/v1.1/Things({t.thing_id})/Datastreams", headers=h).json()["value"]] == \
        ["rain", "level"]
    assert c.get(f"/v1.1/Things({t.thing_id})/Locations", headers=h).json()["value"][0]["name"] == "Delft"
    assert c.get("/v1.1/Things(999)", headers=h).status_code == 404
    assert c.get("/v1.1/Things(999)/Datastreams", headers=h).status_code == 404


def test_observations_query_options(api):
    c, h, t = api
    url = f"/v1.1/Datastreams({t.rain_id})/Observations"
    page = c.get(url, params={"$top": 2, "$count": "true"}, headers=h).json()
    assert page["@iot.count"] == 5
    assert [o["result"] for o in page["value"]] == RAIN[:2]
    assert page["value"][0]["phenomenonTime"] == "2020-06-17T10:00:00Z"
    results, nxt = [], page
    while True:
        results += [o["result"] for o in nxt["value"]]
        if "@iot.nextLink" not in nxt:
            break
        nxt = c.get(unquote(nxt["@iot.nextLink"]).replace("http://testserver", ""), headers=h).json()
    assert results == RAIN
    desc = c.get(url, params={"$orderby": "phenomenonTime desc", "$top": 1}, headers=h).json()
    assert desc["value"][0]["result"] == 6.0 and "@iot.nextLink" in desc
    assert [o["result"] for o in c.get(url, params={"$filter": "result gt 2"}, headers=h).json()["value"]] == \
        [3.0, 4.5, 6.0]
    window = "phenomenonTime ge 2020-06-17T12:00:00Z and phenomenonTime lt 2020-06-17T14:00:00Z"
    assert [o["result"] for o in c.get(url, params={"$filter": window}, headers=h).json()["value"]] == [3.0, 4.5]
    either = "result eq 0 or (result ge 4.5 and not (result eq 6))"
    assert [o["result"] for o in c.get(url, params={"$filter": either}, headers=h).json()["value"]] == [0.0, 4.5]
    assert [o["result"] for o in c.get(url, params={"$skip": 3}, headers=h).json()["value"]] == [4.5, 6.0]
    sel = c.get(url, params={"$select": "id,result", "$top": 1}, headers=h).json()["value"][0]
    assert set(sel) == {"@iot.id", "result"}
    everything = c.get("/v1.1/Observations", params={"$filter": f"Datastream/id eq {t.level_id}"}, headers=h).json()
    assert [o["result"] for o in everything["value"]] == [-0.4]


def test_expand_one_level(api):
    c, h, t = api
    th = c.get("/v1.1/Things", params={"$expand": "Datastreams,Locations"}, headers=h).json()["value"][0]
    assert [d["name"] for d in th["Datastreams"]] == ["rain", "level"]
    assert th["Locations"][0]["name"] == "Delft"
    ob = c.get(f"/v1.1/Datastreams({t.rain_id})/Observations", params={"$top": 1, "$expand": "Datastream"},
               headers=h).json()["value"][0]
    assert ob["Datastream"]["name"] == "rain"
    one = c.get(f"/v1.1/Datastreams({t.rain_id})", params={"$expand": "Observations"}, headers=h).json()
    assert [o["result"] for o in one["Observations"]] == RAIN
    for bad in ("Datastreams/Observations", "Datastreams($top=1)", "Nope"):
        assert c.get("/v1.1/Things", params={"$expand": bad}, headers=h).status_code == 400


@pytest.mark.parametrize(("params", "fix"), [
    ({"$filter": "result gt"}, "complete the expression"),
    ({"$filter": "colour eq 'red'"}, "(use id, phenomenonTime, resultTime, result, Datastream/id"),
    ({"$filter": "result gt 'x'"}, "compared with a number, e.g. result gt 5"),
    ({"$filter": "phenomenonTime gt 5"}, "compared with a time, e.g. 2020-06-17T15:00:00Z"),
    ({"$filter": "result gt 1 or 1 eq 1"}, "'1' is not a property"), ({"$filter": "result gt 1)"}, "unexpected ')'"),
    ({"$orderby": "colour"}, "$orderby: String should match pattern '^(FeatureOfInterest/id|phenomenonTime"),
    ({"$orderby": "result sideways"}, "( (asc|desc))?"),
    ({"$orderby": "id; DROP TABLE iot_observations"}, "$orderby"),
    ({"$top": "-1"}, "$top: Input should be greater than or equal to 0"),
    ({"$top": "10001"}, "$top: Input should be less than or equal to 10000"),
    ({"$count": "maybe"}, "$count: Input should be 'true' or 'false'"), ({"$select": "secret"}, "$select"),
    ({"top": "1"}, "unknown query parameter 'top': this resource takes $count, $expand, $filter"),
    ({"$expand": "Datastream," * 44 + "Datastream"}, "$expand names 'Datastream' twice"),
])
def test_bad_query_options_are_400(api, params, fix):
    c, h, t = api
    r = c.get(f"/v1.1/Datastreams({t.rain_id})/Observations", params=params, headers=h)
    assert r.status_code == 400, (params, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    assert fix in r.json()["detail"], r.json()["detail"]


def test_create_observations_one_by_one_idempotent(api):
    c, _, t = api
    w = t.h("ingest")
    body = {"phenomenonTime": "2020-06-17T15:00:00Z", "result": 7.5, "parameters": {"q": "ok"}}
    r = c.post(f"/v1.1/Datastreams({t.rain_id})/Observations", json=body, headers=w)
    assert r.status_code == 201, r.text
    new = r.json()
    assert r.headers["location"] == f"{V}/Observations({new['@iot.id']})"
    assert new["result"] == 7.5 and new["phenomenonTime"] == "2020-06-17T15:00:00Z"
    assert new["parameters"] == {"q": "ok"}
    again = c.post(f"/v1.1/Datastreams({t.rain_id})/Observations", json=body, headers=w)
    assert again.status_code == 200 and again.json()["@iot.id"] == new["@iot.id"]
    assert stored(t, t.rain_id) == [*RAIN, 7.5]
    got = c.get(f"/v1.1/Observations({new['@iot.id']})", headers=w).json()
    assert got["result"] == 7.5
    assert c.get(f"/v1.1/Observations({new['@iot.id']})/Datastream", headers=w).json()["name"] == "rain"
    via_ref = {"phenomenonTime": "2020-06-17T16:00:00Z", "result": 1.0, "Datastream": {"@iot.id": t.level_id}}
    assert c.post("/v1.1/Observations", json=via_ref, headers=w).status_code == 201
    assert stored(t, t.level_id) == [-0.4, 1.0]


def test_create_observations_in_a_batch(api):
    c, _, t = api
    w = t.h("ingest")
    batch = [{"phenomenonTime": "2020-06-17T10:00:00Z", "result": 0.0},       # stored already
             {"phenomenonTime": "2020-06-17T15:00:00Z", "result": 2.0, "@iot.id": "g-15"},
             {"phenomenonTime": "2020-06-17T16:00:00Z/2020-06-17T17:00:00Z", "result": 2.5}]
    r = c.post(f"/v1.1/Datastreams({t.rain_id})/Observations", json=batch, headers=w)
    assert r.status_code == 201, r.text
    assert r.json()["created"] == 2 and r.json()["duplicates"] == 1
    assert len(r.json()["value"]) == 3
    assert stored(t, t.rain_id) == [*RAIN, 2.0, 2.5]
    r2 = c.post(f"/v1.1/Datastreams({t.rain_id})/Observations", json=batch, headers=w)
    assert r2.json()["created"] == 0 and r2.json()["value"] == r.json()["value"]
    assert stored(t, t.rain_id) == [*RAIN, 2.0, 2.5]
    interval = c.get(r.json()["value"][2].replace("http://testserver", ""), headers=w).json()
    assert interval["phenomenonTime"] == "2020-06-17T16:00:00Z/2020-06-17T17:00:00Z"


@pytest.mark.parametrize(("body", "status"), [
    ({"phenomenonTime": "2020-06-17T15:00:00Z", "result": "heavy"}, 400),          # not a measurement
    ({"phenomenonTime": "2020-06-17T15:00:00", "result": 1.0}, 400),               # no time zone
    ({"phenomenonTime": "yesterday", "result": 1.0}, 400),
    ({"result": 1.0}, 400),
    ({"phenomenonTime": "2020-06-17T15:00:00Z"}, 400),
    ({"phenomenonTime": "2020-06-17T15:00:00Z", "result": 1.0, "secret": 1}, 400),
    ([], 400),
    ([{"phenomenonTime": "2020-06-17T15:00:00Z", "result": 1.0}, {"result": "x"}], 400),
])
def test_invalid_observations_store_nothing(api, body, status):
    c, _, t = api
    r = c.post(f"/v1.1/Datastreams({t.rain_id})/Observations", json=body, headers=t.h("ingest"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert stored(t, t.rain_id) == RAIN


def test_observation_for_a_missing_datastream(api):
    c, _, t = api
    body = {"phenomenonTime": "2020-06-17T15:00:00Z", "result": 1.0}
    assert c.post("/v1.1/Datastreams(999)/Observations", json=body, headers=t.h("ingest")).status_code == 404
    r = c.post("/v1.1/Observations", json=body | {"Datastream": {"@iot.id": 999}}, headers=t.h("ingest"))
    assert r.status_code == 400 and "999" in r.json()["detail"]
    assert c.post("/v1.1/Observations", json=body, headers=t.h("ingest")).status_code == 400


def test_batch_limit(twin):
    c = twin.client(max_batch=3)
    batch = [{"phenomenonTime": f"2021-01-01T0{i}:00:00Z", "result": 1.0} for i in range(4)]
    r = c.post(f"/v1.1/Datastreams({twin.rain_id})/Observations", json=batch, headers=twin.h("ingest"))
    assert r.status_code == 413
    assert stored(twin, twin.rain_id) == RAIN


def test_deep_insert_thing(api):
    c, h, t = api
    doc = {"name": "Pump 7", "description": "pumping station", "properties": {"capacity_m3s": 2.5},
           "Locations": [{"name": "Pump 7 site", "encodingType": "application/geo+json",
                          "location": {"type": "Point", "coordinates": [4.35, 52.0]}}],
           "Datastreams": [{"name": "discharge", "unitOfMeasurement": {"name": "cubic metre per second",
                                                                        "symbol": "m3/s"},
                            "Sensor": {"name": "flow meter"}, "ObservedProperty": {"name": "discharge"},
                            "Observations": [{"phenomenonTime": "2020-06-17T10:00:00Z", "result": 1.25}]}]}
    r = c.post("/v1.1/Things", json=doc, headers=t.h("ingest"))
    assert r.status_code == 201, r.text
    tid = r.json()["@iot.id"]
    assert r.json()["properties"] == {"capacity_m3s": 2.5}
    assert c.get("/v1.1/Things", params={"$count": "true"}, headers=h).json()["@iot.count"] == 2
    ds = c.get(f"/v1.1/Things({tid})/Datastreams", params={"$expand": "Observations"}, headers=h).json()["value"]
    assert ds[0]["name"] == "discharge" and ds[0]["Observations"][0]["result"] == 1.25
    assert c.post("/v1.1/Things", json={"description": "no name"}, headers=t.h("ingest")).status_code == 400


def test_sql_looking_input_is_data_not_sql(api):
    c, h, t = api
    for f in ("name eq 'x'' or ''1''=''1'", "name eq '; DROP TABLE iot_things; --'"):
        r = c.get("/v1.1/Things", params={"$filter": f}, headers=h)
        assert r.status_code == 200 and r.json()["value"] == []
    with t.scene.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(iot.things)).scalar() == 1
    name = c.get("/v1.1/Things", params={"$filter": "name eq 'Gauge Delft'"}, headers=h).json()["value"]
    assert [x["name"] for x in name] == ["Gauge Delft"]


def test_expanded_pages_are_bounded():
    from api import _sta as S

    es = S.ENTITY_SETS["Observations"]
    kw = {"skip": None, "count": None, "orderby": None, "select": None, "filter": None, "max_top": 10000}
    assert S.parse_options(es, top=10000, expand=None, **kw).top == 10000
    opts = S.parse_options(es, top=10000, expand="Datastream,FeatureOfInterest", **kw)
    assert opts.top == S.EXPAND_PAGE == 200 and opts.expand == ["Datastream", "FeatureOfInterest"]
