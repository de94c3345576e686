"""OGC API - Processes: flood forecasts and what-ifs as jobs on a tiny bowl scene, on both store backends;
the job lifecycle and its progress, the restart rule, the concurrency limit, scopes, bad inputs and traversal."""

from __future__ import annotations

import base64
import os
import threading
import time

import geopandas as gpd
import numpy as np
import pytest
import sqlalchemy as sa
import xarray as xr
from fastapi.testclient import TestClient
from shapely import box

import cim
import cim.security as sec
import flood.forecasting
import flood.whatif
import ingest
from api import Settings, create_app
from cim import iot
from cim import jobs as J
from tests.flood.test_forecast import X0, Y0, bowl_scene

DURATION = 900.0
RAIN = 200.0


@pytest.fixture
def bowl(store_url):
    scene = bowl_scene(store_url)
    tokens = {}
    with scene.store.engine.begin() as conn:
        for s in ("read", "run"):
            tokens[s] = sec.create_key(conn, f"{s} key", [s])[1]
    yield scene, store_url, tokens
    scene.close()


def _client(url, **settings) -> TestClient:
    return TestClient(create_app(Settings(scene=url, **settings)))


def _h(tokens, who):
    return {"X-API-Key": tokens[who]}


def _wait(c, h, job_id, statuses=("successful", "failed", "dismissed"), timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = c.get(f"/jobs/{job_id}", headers=h).json()
        if st["status"] in statuses:
            return st
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {st['status']}")


def test_sync_forecast_matches_the_library(bowl):
    scene, url, tokens = bowl
    direct = flood.forecasting.forecast(scene, rainfall=RAIN, duration=DURATION, name="direct", write=False)
    with _client(url) as c:
        assert [p["id"] for p in c.get("/processes", headers=_h(tokens, "read")).json()["processes"]] == \
            ["flood-forecast", "what-if"]
        desc = c.get("/processes/flood-forecast", headers=_h(tokens, "read")).json()
        assert {"rainfall", "storm", "rainfallFile", "gauges", "duration", "resolution", "planned"} <= set(desc["inputs"])
        r = c.post("/processes/flood-forecast/execution", headers=_h(tokens, "run"),
                   json={"inputs": {"rainfall": RAIN, "duration": DURATION}})
        assert r.status_code == 200, r.text
        doc = r.json()
        got = {f["properties"]["name"]: f["properties"]["level"] for f in doc["warnings"]["features"]}
        want = dict(zip(direct.warnings["name"], direct.warnings["level"].astype(int), strict=True))
        assert got == want and got["bowl road"] >= 1 and got["ridge road"] == 0
        # CRS84: the bowl is in Delft
        x, y = doc["warnings"]["features"][0]["geometry"]["coordinates"][0][0]
        assert 4.0 < x < 5.0 and 51.5 < y < 52.5
        regions = {r["region"]: r["level"] for r in doc["regions"]}
        assert regions == dict(zip(direct.regions["region"], direct.regions["level"].astype(int), strict=True))
        tif = next(link["href"] for link in doc["links"] if link["title"] == "forecast_max_depth.tif")
        f = c.get(tif, headers=_h(tokens, "read"))
        assert f.status_code == 200 and f.content[:4] in (b"II*\x00", b"MM\x00*")
        job = c.get(f"/jobs/{doc['jobID']}", headers=_h(tokens, "read")).json()
        assert job["status"] == "successful" and job["progress"] == 100
    # audited like every write
    with scene.store.engine.connect() as conn:
        log = sec.audit_log(conn)
    entries = [e for e in log if e.action == "POST /processes/flood-forecast/execution"]
    assert [(e.outcome, e.detail) for e in entries] == [("200", f"job {doc['jobID']}")]
    # and the job's own end, by the same caller
    ends = [(e.who, e.target, e.outcome) for e in log if e.action == "job flood-forecast"]
    assert ends == [(entries[0].who, doc["jobID"], "successful")]


def test_a_failed_job_is_audited_with_its_reason(bowl):
    scene, url, tokens = bowl
    with _client(url) as c:
        r = c.post("/processes/flood-forecast/execution", headers={**_h(tokens, "run"), "Prefer": "respond-async"},
                   json={"inputs": {"gauges": "2030-01-01T00:00/2030-01-02T00:00", "duration": 600}})
        assert r.status_code == 201, r.text
        st = _wait(c, _h(tokens, "read"), r.json()["jobID"], ("failed", "successful"))
    assert st["status"] == "failed"
    with scene.store.engine.connect() as conn:
        ends = [e for e in sec.audit_log(conn) if e.action == "job flood-forecast"]
    assert [(e.target, e.outcome, e.detail) for e in ends] == [(st["jobID"], "failed", st["message"])]
    assert "has no rain-gauge Datastream" in st["message"]


def test_async_lifecycle(bowl, monkeypatch):
    scene, url, tokens = bowl
    seen = []
    real = flood.forecasting.forecast

    def slow(*a, progress=None, **kw):      # record every progress call; a little slower so polls see running
        def p(t, total):
            seen.append(t / total)
            time.sleep(0.002)
            progress(t, total)
        return real(*a, progress=p, **kw)

    monkeypatch.setattr(flood.forecasting, "forecast", slow)
    with _client(url) as c:
        r = c.post("/processes/flood-forecast/execution", headers={**_h(tokens, "run"), "Prefer": "respond-async"},
                   json={"inputs": {"storm": "beijing:100:60", "duration": DURATION, "resolution": 4.0}})
        assert r.status_code == 201, r.text
        job_id = r.json()["jobID"]
        assert r.headers["location"].endswith(f"/jobs/{job_id}") and r.json()["status"] in ("accepted", "running")
        statuses, progress = [], []
        while True:
            st = c.get(f"/jobs/{job_id}", headers=_h(tokens, "read")).json()
            statuses.append(st["status"])
            progress.append(st["progress"])
            if st["status"] in ("successful", "failed"):
                break
            time.sleep(0.01)
        assert st["status"] == "successful", st
        assert "running" in statuses and progress[-1] == 100 and progress == sorted(progress)
        assert seen and seen[-1] == pytest.approx(1.0)
        res = c.get(f"/jobs/{job_id}/results", headers=_h(tokens, "read")).json()
        assert {f["properties"]["name"] for f in res["warnings"]["features"]} >= {"bowl road", "rim house"}
        assert [j["jobID"] for j in c.get("/jobs", headers=_h(tokens, "read")).json()["jobs"]] == [job_id]
        # dismissed: gone with its results (404 afterwards, as for any deleted resource)
        assert c.delete(f"/jobs/{job_id}", headers=_h(tokens, "run")).json()["status"] == "dismissed"
        for path in (f"/jobs/{job_id}/results", f"/jobs/{job_id}"):
            assert c.get(path, headers=_h(tokens, "read")).status_code == 404
        assert c.delete(f"/jobs/{job_id}", headers=_h(tokens, "run")).status_code == 404
        assert c.get("/jobs", headers=_h(tokens, "read")).json()["jobs"] == []
        assert not (scene.store.files_root / "jobs" / job_id).exists()


def test_restart_marks_running_jobs_failed(bowl):
    scene, url, tokens = bowl
    with _client(url) as c:  # a first server start creates the jobs table
        assert c.get("/jobs", headers=_h(tokens, "read")).json()["jobs"] == []
    with scene.store.engine.begin() as conn:
        running = J.create_job(conn, "flood-forecast", {"rainfall": 1.0, "duration": 60.0})
        J.update_job(conn, running.id, status="running", progress=40)
        waiting = J.create_job(conn, "flood-forecast", {"rainfall": 1.0, "duration": 60.0})
    with _client(url) as c:
        for job_id in (running.id, waiting.id):
            st = c.get(f"/jobs/{job_id}", headers=_h(tokens, "read")).json()
            assert st["status"] == "failed" and st["message"] == J.INTERRUPTED and st["finished"]
    with scene.store.engine.connect() as conn:
        ends = {e.target: (e.outcome, e.detail) for e in sec.audit_log(conn) if e.action == "job flood-forecast"}
    assert ends == {running.id: ("failed", J.INTERRUPTED), waiting.id: ("failed", J.INTERRUPTED)}


def test_restart_leaves_the_jobs_of_live_sibling_processes(bowl):
    """cim serve --workers: a worker that (re)starts fails only the jobs of processes that are gone."""
    import socket
    import subprocess

    scene, url, tokens = bowl
    alive = subprocess.Popen(["sleep", "60"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    here = socket.gethostname()
    held = {"alive": f"running in process {alive.pid} on {here}", "gone": f"running in process {gone.pid} on {here}",
            "queued alive": f"queued by process {alive.pid} on {here}", "elsewhere": "running in process 1 on other-host",
            "legacy": None}
    try:
        ids = {}
        with scene.store.engine.begin() as conn:
            for what, message in held.items():
                ids[what] = J.create_job(conn, "flood-forecast", {"rainfall": 1.0, "duration": 60.0},
                                         message=message).id
                if not what.startswith("queued"):
                    J.update_job(conn, ids[what], status="running", progress=10)
        with _client(url) as c:
            got = {what: c.get(f"/jobs/{i}", headers=_h(tokens, "read")).json() for what, i in ids.items()}
    finally:
        alive.kill()
        alive.wait()
    assert {what: st["status"] for what, st in got.items()} == {
        "alive": "running", "gone": "failed", "queued alive": "accepted", "elsewhere": "running", "legacy": "failed"}
    assert got["alive"]["message"] is None and got["gone"]["message"] == J.INTERRUPTED   # no pids or hosts shown


def _watched_job(monkeypatch, c, tokens) -> tuple[str, list[float], dict]:
    """An hour-long forecast started async, its progress steps recorded (a little slowed); returns once it runs."""
    started, steps = threading.Event(), []
    real = flood.forecasting.forecast

    def watched(*a, progress=None, **kw):
        def p(t, total):
            steps.append(t)
            started.set()
            time.sleep(0.01)
            progress(t, total)
        return real(*a, progress=p, **kw)

    monkeypatch.setattr(flood.forecasting, "forecast", watched)
    h = {**_h(tokens, "run"), "Prefer": "respond-async"}
    job = c.post("/processes/flood-forecast/execution", headers=h,
                 json={"inputs": {"rainfall": RAIN, "duration": 3600.0}}).json()["jobID"]
    assert started.wait(30)
    return job, steps, h


def test_dismissed_by_a_sibling_process_stops(bowl, monkeypatch):
    """A dismissal written to the store by another worker stops the run at its next progress step."""
    scene, url, tokens = bowl
    with _client(url) as c:
        job, steps, _ = _watched_job(monkeypatch, c, tokens)
        with scene.store.engine.begin() as conn:
            assert J.update_job(conn, job, status="dismissed", message="dismissed", only_if=("running",))
        deadline = time.monotonic() + 30
        while job in c.app.state.jobs._futures and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job not in c.app.state.jobs._futures          # the worker let it go
        n = len(steps)
        time.sleep(0.3)
        assert len(steps) == n
    st = _stored(scene, job)
    assert st.status == "dismissed" and st.progress < 100 and st.results is None
    assert not (scene.store.files_root / "jobs" / job).exists()


def _stored(scene, job_id) -> J.Job:
    with scene.store.engine.connect() as conn:
        return J.get_job(conn, job_id)


def test_concurrency_limit_queues(bowl, monkeypatch):
    scene, url, tokens = bowl
    gate, started = threading.Event(), threading.Event()
    real = flood.forecasting.forecast

    def held(*a, progress=None, **kw):       # the first job waits at its first step until the test lets it go
        def p(t, total):
            started.set()
            gate.wait(30)
            progress(t, total)
        return real(*a, progress=p, **kw)

    monkeypatch.setattr(flood.forecasting, "forecast", held)
    h = {**_h(tokens, "run"), "Prefer": "respond-async"}
    body = {"inputs": {"rainfall": RAIN, "duration": 120.0, "resolution": 6.0}}
    with _client(url, max_concurrent_jobs=1) as c:
        first = c.post("/processes/flood-forecast/execution", headers=h, json=body).json()["jobID"]
        assert started.wait(30)
        second = c.post("/processes/flood-forecast/execution", headers=h, json=body).json()["jobID"]
        time.sleep(0.3)
        assert c.get(f"/jobs/{first}", headers=h).json()["status"] == "running"
        assert c.get(f"/jobs/{second}", headers=h).json()["status"] == "accepted"
        third = c.post("/processes/flood-forecast/execution", headers=h, json=body).json()["jobID"]
        assert c.delete(f"/jobs/{third}", headers=h).json()["status"] == "dismissed"     # never runs
        gate.set()
        assert _wait(c, h, first)["status"] == "successful"
        done = _wait(c, h, second)
        assert done["status"] == "successful" and done["started"] >= c.get(f"/jobs/{first}", headers=h).json()["finished"]
        assert c.get(f"/jobs/{third}", headers=h).status_code == 404
        st = _stored(scene, third)
        assert st.status == "dismissed" and st.started is None


def test_scopes_and_bad_inputs(bowl):
    scene, url, tokens = bowl
    ok = {"inputs": {"rainfall": RAIN, "duration": 60.0}}
    with _client(url) as c:
        ex = "/processes/flood-forecast/execution"
        assert c.post(ex, headers=_h(tokens, "read"), json=ok).status_code == 403
        r = c.post(ex, json=ok)
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        assert c.get("/jobs").status_code == 401 and c.get("/processes").status_code == 401
        h = _h(tokens, "run")
        bad = {
            "unknown": ("/processes/nope/execution", ok, 404),
            "no duration": (ex, {"inputs": {"rainfall": RAIN}}, 400),
            "two sources": (ex, {"inputs": {"rainfall": RAIN, "storm": "beijing:100:60", "duration": 60}}, 400),
            "no source": (ex, {"inputs": {"duration": 60}}, 400),
            "bad storm": (ex, {"inputs": {"storm": "beijing:lots:60", "duration": 60}}, 400),
            "unknown city": (ex, {"inputs": {"storm": "atlantis:100:60", "duration": 60}}, 400),
            "bad gauges": (ex, {"inputs": {"gauges": "yesterday", "duration": 60}}, 400),
            "gauges backwards": (ex, {"inputs": {"gauges": "2020-06-17T17:00/2020-06-17T14:00", "duration": 60}},
                                 400),
            "datastreams without gauges": (ex, {"inputs": {**ok["inputs"], "datastreams": [1]}}, 400),
            "method without gauges": (ex, {"inputs": {**ok["inputs"], "gaugeMethod": "idw"}}, 400),
            "unknown method": (ex, {"inputs": {"gauges": "2020-06-17T14:00/2020-06-17T17:00", "duration": 60,
                                               "gaugeMethod": "kriging"}}, 400),
            "unknown buildings": (ex, {"inputs": {**ok["inputs"], "buildings": "lifted"}}, 400),
            "no datastreams": (ex, {"inputs": {"gauges": "2020-06-17T14:00/2020-06-17T17:00", "duration": 60,
                                               "datastreams": []}}, 400),
            "bad file": (ex, {"inputs": {"rainfallFile": {"value": "not base64!", "mediaType": "image/tiff"},
                                         "duration": 60}}, 400),
            "what-if without plan": ("/processes/what-if/execution", ok, 400),
            "unknown input": (ex, {"inputs": {**ok["inputs"], "speed": 3}}, 400),
            "over a day": (ex, {"inputs": {"rainfall": RAIN, "duration": 86401}}, 400),
            "too coarse": (ex, {"inputs": {**ok["inputs"], "resolution": 40.0}}, 400),
        }
        for what, (path, body, status) in bad.items():
            r = c.post(path, headers=h, json=body)
            assert r.status_code == status, (what, r.text)
            assert r.headers["content-type"] == "application/problem+json" and "Traceback" not in r.text
        assert c.get("/processes/nope", headers=h).status_code == 404
        assert c.get("/jobs/" + "0" * 32, headers=h).status_code == 404
        assert c.get("/jobs/not-a-job", headers=h).status_code == 400
        with scene.store.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(J.jobs)).scalar() == 0
        # a failure inside the job (the bowl has no rain gauge): 400 with the library's message, the job failed
        r = c.post(ex, headers=h, json={"inputs": {"gauges": "2020-06-17T14:00/2020-06-17T17:00", "duration": 60}})
        assert r.status_code == 400 and "no rain-gauge Datastream" in r.json()["detail"]
        failed = c.get("/jobs", headers=h).json()["jobs"]
        assert [(j["status"], "no rain-gauge" in j["message"]) for j in failed] == [("failed", True)]
        assert c.get(f"/jobs/{failed[0]['jobID']}/results", headers=h).status_code == 404


def test_result_files_stay_in_the_job_folder(bowl):
    scene, url, tokens = bowl
    (scene.store.files_root / "secret.txt").write_text("TOP-SECRET")
    with _client(url) as c:
        h = _h(tokens, "read")
        job = c.post("/processes/flood-forecast/execution", headers=_h(tokens, "run"),
                     json={"inputs": {"rainfall": RAIN, "duration": 60.0, "resolution": 6.0}}).json()["jobID"]
        base = f"/jobs/{job}/results/"
        assert c.get(base + "forecast_warnings.geojson", headers=h).status_code == 200
        for attack in ("..%2F..%2Fsecret.txt", "..%2Fsecret.txt", "%2E%2E%2F%2E%2E%2Fsecret.txt", ".%2E",
                       "results.json", "..%5C..%5Csecret.txt"):
            r = c.get(base + attack, headers=h)
            assert r.status_code in (400, 404), (attack, r.status_code)
            assert "TOP-SECRET" not in r.text


def test_what_if_reports_the_planned_building(bowl):
    scene, url, tokens = bowl
    # two blocks filling the bowl on both sides of its road: the water they displace floods the rim house
    planned = gpd.GeoDataFrame({"name": ["north block", "south block"]},
                               geometry=[box(X0 + 18, Y0 + 32, X0 + 42, Y0 + 46), box(X0 + 18, Y0 + 14, X0 + 42, Y0 + 28)],
                               crs=scene.crs).to_crs("OGC:CRS84")
    direct = flood.whatif.what_if(scene, planned=planned, rainfall=100.0, duration=DURATION)
    with _client(url) as c:
        r = c.post("/processes/what-if/execution", headers=_h(tokens, "run"),
                   json={"inputs": {"rainfall": 100.0, "duration": DURATION, "planned": planned.__geo_interface__}})
        assert r.status_code == 200, r.text
        doc = r.json()
        r2 = c.post("/processes/flood-forecast/execution", headers=_h(tokens, "run"),
                    json={"inputs": {"rainfall": 100.0, "duration": DURATION, "compare": True,
                                     "planned": planned.__geo_interface__}})
        assert r2.status_code == 200 and r2.json()["changed"] == doc["changed"]
    assert doc["newly_flooded"] == {"road": [], "building": ["rim house"], "hotspot": []}
    assert doc["planned_flooded"] == ["north block", "south block"]      # both blocks stand in the bowl's water
    changed = {f["properties"]["name"]: f["properties"] for f in doc["changed"]["features"]}
    assert set(changed) == {"bowl road", "rim house", "north block", "south block"}
    assert changed["north block"]["planned"] and changed["north block"]["depth_before"] is None
    changed = {k: v for k, v in changed.items() if not v["planned"]}
    assert (changed["rim house"]["level_before"], changed["rim house"]["level_after"]) == (0, 1)
    assert (changed["bowl road"]["level_before"], changed["bowl road"]["level_after"]) == (1, 2)
    want = direct.changed.set_index("name")
    for name, props in changed.items():
        assert props["depth_change"] == pytest.approx(want.loc[name, "depth_change"], abs=1e-6)
        assert props["depth_change"] > 0.05
    assert doc["max_depth_change"] == pytest.approx(float(direct.depth_change.max()), abs=1e-5)
    by_region = {row["region"]: row for row in doc["by_region"]}
    assert set(by_region) == {"Town", "West", "East"}
    for region, row in direct.by_region.iterrows():
        assert by_region[region]["max_depth_change"] == pytest.approx(row["max_depth_change"], abs=1e-5)
        assert by_region[region]["buildings_affected_after"] == row["buildings_affected_after"]
    assert by_region["East"]["buildings_affected_after"] > by_region["East"]["buildings_affected_before"]
    assert {link["title"] for link in doc["links"]} == {"depth_change.tif", "planned_max_depth.tif",
                                                        "max depth tiles", "max depth tile"}


def test_uploaded_rainfall_netcdf(bowl, tmp_path):
    scene, url, tokens = bowl
    t = np.array(["2020-06-17T14:00", "2020-06-17T14:05", "2020-06-17T14:10"], "datetime64[ns]")
    vals = np.array([100.0, 300.0, 200.0], np.float32)[:, None, None] * np.ones((3, 4, 4), np.float32)
    da = xr.DataArray(vals, dims=("time", "y", "x"), name="precip_intensity", attrs={"units": "mm h-1"},
                      coords={"time": t, "y": Y0 + 60 - 20 * (np.arange(4) + 0.5) + 10,
                              "x": X0 - 10 + 20 * (np.arange(4) + 0.5)}).rio.write_crs("EPSG:28992")
    p = tmp_path / "radar.nc"
    da.to_dataset().to_netcdf(p)
    direct = flood.forecasting.forecast(scene, rainfall=ingest.read(p)["rainfall"], duration=DURATION,
                                        name="direct", write=False)
    with _client(url) as c:
        r = c.post("/processes/flood-forecast/execution", headers=_h(tokens, "run"), json={"inputs": {
            "rainfallFile": {"value": base64.b64encode(p.read_bytes()).decode(), "mediaType": "application/x-netcdf"},
            "duration": DURATION}})
        assert r.status_code == 200, r.text
        doc = r.json()
        stored = c.get(f"/jobs/{doc['jobID']}", headers=_h(tokens, "read")).json()
    got = {f["properties"]["name"]: (f["properties"]["level"], f["properties"]["max_depth"])
           for f in doc["warnings"]["features"]}
    for row in direct.warnings.itertuples():
        assert got[row.name][0] == row.level and got[row.name][1] == pytest.approx(row.max_depth, abs=1e-9)
    assert got["bowl road"][0] >= 1
    # times from the radar file: warnings carry UTC times
    assert any((f["properties"].get("time_first_warning_utc") or "").startswith("2020-06-17T14:")
               for f in doc["warnings"]["features"])
    assert stored["status"] == "successful"


def test_radar_rain_on_a_bare_scene_without_regions(tmp_path):
    # timestamped rain with nothing to warn and no regions used to be a 500 (KeyError: 'time_first_warning')
    scene = bowl_scene(tmp_path / "bare.cim", features=False, regions=False)
    with scene.store.engine.begin() as conn:
        token = sec.create_key(conn, "run key", ["read", "run"])[1]
    t = np.array(["2020-06-17T14:00", "2020-06-17T14:05"], "datetime64[ns]")
    da = xr.DataArray(np.full((2, 4, 4), 150.0, np.float32), dims=("time", "y", "x"), name="precip_intensity",
                      attrs={"units": "mm h-1"}, coords={"time": t, "y": Y0 + 60 - 20 * (np.arange(4) + 0.5) + 10,
                                                         "x": X0 - 10 + 20 * (np.arange(4) + 0.5)}).rio.write_crs(
                                                             "EPSG:28992")
    p = tmp_path / "radar.nc"
    da.to_dataset().to_netcdf(p)
    with _client(str(tmp_path / "bare.cim")) as c:
        r = c.post("/processes/flood-forecast/execution", headers={"X-API-Key": token}, json={"inputs": {
            "rainfallFile": {"value": base64.b64encode(p.read_bytes()).decode(), "mediaType": "application/x-netcdf"},
            "duration": 600.0}})
        assert r.status_code == 200, r.text
        doc = r.json()
    assert doc["warnings"]["features"] == [] and doc["regions"] == []
    assert {"forecast_regions.geojson", "forecast_warnings.geojson", "forecast_max_depth.tif"} <= \
        {link["title"] for link in doc["links"]}
    scene.close()


def test_gauge_rainfall_over_a_window(bowl):
    import pandas as pd

    from cim import iot
    from tests.api.conftest import gauge

    scene, url, tokens = bowl
    with scene.store.engine.begin() as conn:
        iot.add_thing(conn, gauge())
    window = (pd.Timestamp("2020-06-17T10:30", tz="UTC"), pd.Timestamp("2020-06-17T14:00", tz="UTC"))
    direct = flood.forecasting.forecast(scene, rainfall="gauges", window=window, duration=DURATION, write=False)
    with _client(url) as c:
        r = c.post("/processes/flood-forecast/execution", headers=_h(tokens, "run"),
                   json={"inputs": {"gauges": "2020-06-17T10:30/2020-06-17T14:00", "duration": DURATION}})
        assert r.status_code == 200, r.text
    got = {f["properties"]["name"]: f["properties"]["max_depth"] for f in r.json()["warnings"]["features"]}
    assert got == pytest.approx(dict(zip(direct.warnings["name"], direct.warnings["max_depth"], strict=True)),
                                abs=1e-9)
    assert set(got) == {"bowl road", "ridge road", "rim house"} and direct.dataset.attrs["rain_volume"] > 0


def test_several_gauges_picked_by_datastream(bowl):
    from tests.flood.test_gauges import CELLS, WINDOW, _at, _gauge, _ids

    scene, url, tokens = bowl
    with scene.store.engine.begin() as conn:
        for k, depths in (("west", [40.0, 10.0]), ("east", [80.0, 0.0]), ("south", [5.0, 5.0])):
            iot.add_thing(conn, _gauge(k, *_at(*CELLS[k]), depths))
    ids = _ids(scene)
    window = "/".join(t.isoformat() for t in WINDOW)
    with _client(url) as c:
        r = c.post("/processes/flood-forecast/execution", headers=_h(tokens, "run"), json={"inputs": {
            "gauges": window, "datastreams": [ids["west"], ids["east"]], "gaugeMethod": "nearest",
            "duration": DURATION}})
        assert r.status_code == 200, r.text
        bad = c.post("/processes/flood-forecast/execution", headers=_h(tokens, "run"),
                     json={"inputs": {"gauges": window, "datastreams": [99999], "duration": DURATION}})
        assert bad.status_code == 400 and "no Datastream 99999" in bad.json()["detail"]
    direct = flood.forecasting.forecast(scene, rainfall="gauges", window=WINDOW, gauges=[ids["west"], ids["east"]],
                                        gauge_method="nearest", duration=DURATION, write=False)
    everything = flood.forecasting.forecast(scene, rainfall="gauges", window=WINDOW, duration=DURATION, write=False)
    got = {f["properties"]["name"]: f["properties"]["max_depth"] for f in r.json()["warnings"]["features"]}
    want = dict(zip(direct.warnings["name"], direct.warnings["max_depth"], strict=True))
    assert got == pytest.approx(want, abs=1e-9) and set(got) == {"bowl road", "ridge road", "rim house"}
    # the two gauges rained 40 (west half) and 80 mm/h (east half) in the first hour: between the two uniform
    # cases; adding the light south gauge (every gauge by default) gives less rain
    open_area = 60.0 * 60.0 - 8.0 * 12.0
    vol = direct.dataset.attrs["rain_volume"]
    assert 0.040 / 4 * open_area < vol < 0.080 / 4 * open_area
    assert everything.dataset.attrs["rain_volume"] < vol


def test_raised_buildings_as_the_library(bowl):
    scene, url, tokens = bowl
    raised = flood.forecasting.forecast(scene, rainfall=RAIN, duration=DURATION, buildings="raised", write=False)
    blocked = flood.forecasting.forecast(scene, rainfall=RAIN, duration=DURATION, write=False)
    with _client(url) as c:
        r = c.post("/processes/flood-forecast/execution", headers=_h(tokens, "run"),
                   json={"inputs": {"rainfall": RAIN, "duration": DURATION, "buildings": "raised"}})
        assert r.status_code == 200, r.text
    got = {f["properties"]["name"]: f["properties"]["max_depth"] for f in r.json()["warnings"]["features"]}
    assert got == pytest.approx(dict(zip(raised.warnings["name"], raised.warnings["max_depth"], strict=True)),
                                abs=1e-9)
    # the roof's rain runs down its walls
    assert got["rim house"] > float(blocked.warnings.set_index("name").loc["rim house", "max_depth"])


def test_dismiss_a_running_job(bowl, monkeypatch):
    scene, url, tokens = bowl
    with _client(url) as c:
        job, steps, h = _watched_job(monkeypatch, c, tokens)
        assert c.delete(f"/jobs/{job}", headers=h).json()["status"] == "dismissed"
        n = len(steps)
        time.sleep(0.3)
        assert len(steps) <= n + 1                       # the forecast stopped at its next step
        st = _stored(scene, job)
        assert st.status == "dismissed" and st.progress < 100


def test_only_the_owner_or_an_admin_dismisses(bowl):
    scene, url, tokens = bowl
    with scene.store.engine.begin() as conn:
        tokens["other"] = sec.create_key(conn, "another runner", ["run"])[1]
        tokens["admin"] = sec.create_key(conn, "admin", ["admin"])[1]
    body = {"inputs": {"rainfall": RAIN, "duration": 60.0, "resolution": 6.0}}
    with _client(url) as c:
        jobs = [c.post("/processes/flood-forecast/execution", headers=_h(tokens, "run"), json=body).json()["jobID"]
                for _ in range(2)]
        r = c.delete(f"/jobs/{jobs[0]}", headers=_h(tokens, "other"))
        assert r.status_code == 403 and "started by another key" in r.json()["detail"]
        assert c.get(f"/jobs/{jobs[0]}", headers=_h(tokens, "read")).json()["status"] == "successful"
        assert c.delete(f"/jobs/{jobs[0]}", headers=_h(tokens, "run")).json()["status"] == "dismissed"
        assert c.delete(f"/jobs/{jobs[1]}", headers=_h(tokens, "admin")).json()["status"] == "dismissed"
        assert c.delete(f"/jobs/{jobs[1]}", headers=_h(tokens, "read")).status_code == 403
    assert [_stored(scene, j).status for j in jobs] == ["dismissed", "dismissed"]


def _pixel(lonlat_or_xy, z: int, crs) -> tuple[int, int, int, int]:
    """(tile x, tile y, column, row) of the WebMercatorQuad pixel under a point of ``crs``."""
    from pyproj import Transformer

    half = 20037508.342789244
    mx, my = Transformer.from_crs(crs, "EPSG:3857", always_xy=True).transform(*lonlat_or_xy)
    res = 2 * half / 2**z / 256
    px, py = int((mx + half) // res), int((half - my) // res)
    return px // 256, py // 256, px % 256, py % 256


def test_max_depth_as_map_tiles(bowl):
    import io

    import rioxarray
    from PIL import Image

    from tiles.maptiles import depth_colormap

    scene, url, tokens = bowl
    h = _h(tokens, "read")
    with _client(url) as c:
        doc = c.post("/processes/flood-forecast/execution", headers=_h(tokens, "run"),
                     json={"inputs": {"rainfall": RAIN, "duration": DURATION}}).json()
        links = {link["rel"]: link for link in doc["links"] if "tile" in link["title"]}
        (ts,) = c.get(links["http://www.opengis.net/def/rel/ogc/1.0/tilesets-map"]["href"], headers=h).json()["tilesets"]
        template = links["item"]["href"]
        assert links["item"]["templated"] and ts["links"][0]["href"] == template
        z = ts["maxzoom"]
        assert z == 16 and 4.0 < ts["bounds"][0] < ts["bounds"][2] < 5.0
        depth = rioxarray.open_rasterio(scene.store.files_root / "jobs" / doc["jobID"] / "forecast_max_depth.tif",
                                        masked=True).squeeze("band", drop=True)
        d = depth.to_numpy()
        wet = np.argwhere(d >= 0.15)                          # a blue-or-worse warning class of water
        dry = np.argwhere(~(d >= 0.01))                       # under min_depth or a wall: transparent
        assert len(wet) and len(dry)
        cmap = depth_colormap(2.0)
        pngs: dict = {}

        def rgba(i, j):
            x, y = float(depth.x[j]), float(depth.y[i])
            tx, ty, col, row = _pixel((x, y), z, scene.crs)
            if (tx, ty) not in pngs:
                r = c.get(template.replace("{tileMatrix}", str(z)).replace("{tileRow}", str(ty))
                          .replace("{tileCol}", str(tx)), headers=h)
                assert r.status_code == 200 and r.headers["content-type"] == "image/png"
                pngs[tx, ty] = (r, Image.open(io.BytesIO(r.content)).convert("RGBA"))
            return pngs[tx, ty][1].getpixel((col, row))

        deepest = np.unravel_index(np.nanargmax(d), d.shape)
        for i, j in [tuple(deepest), *map(tuple, wet[:: max(1, len(wet) // 10)])]:
            want = cmap[1 + round(min(float(d[i, j]), 2.0) / 2.0 * 254)]
            assert np.abs(np.array(rgba(i, j)) - want).max() <= 1, (i, j, d[i, j], rgba(i, j), want)
        for i, j in map(tuple, dry[:: max(1, len(dry) // 10)]):
            assert rgba(i, j)[3] == 0, (i, j, d[i, j])
        # a tile away from the grid is empty (204, as the map-tile routes); ETags; scopes
        (tx, ty), (first, _) = next(iter(pngs.items()))
        far = template.replace("{tileMatrix}", str(z)).replace("{tileRow}", str(ty + 9)).replace("{tileCol}", str(tx))
        empty = c.get(far, headers=h)
        assert empty.status_code == 204 and empty.content == b""
        assert c.get(str(first.url), headers=h | {"If-None-Match": first.headers["etag"]}).status_code == 304
        assert c.get(str(first.url)).status_code == 401
        assert c.get(template.replace("{tileMatrix}", "3").replace("{tileRow}", "8").replace("{tileCol}", "0"),
                     headers=h).status_code == 404
        c.delete(f"/jobs/{doc['jobID']}", headers=_h(tokens, "run"))
        assert c.get(str(first.url), headers=h).status_code == 404


def test_viewer_config_points_at_the_latest_forecast(bowl):
    import json

    scene, url, tokens = bowl
    root = scene.store.files_root / "tiles"
    (root / "city").mkdir(parents=True)
    (root / "city" / "tileset.json").write_text("{}")
    h, run = _h(tokens, "read"), _h(tokens, "run")
    body = {"inputs": {"rainfall": RAIN, "duration": 300.0}}
    with _client(url) as c:
        before = c.get("/viewer/viewer-config.json", headers=h)
        assert before.status_code == 200 and before.headers["cache-control"] == "no-cache"
        assert before.json() == {"tilesets": [{"url": "city/tileset.json", "name": "city"}], "frames": []}
        first = c.post("/processes/flood-forecast/execution", headers=run, json=body).json()["jobID"]
        c.post("/processes/what-if/execution", headers=run, json={"inputs": {**body["inputs"], "planned": {
            "type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": {
                "type": "Polygon", "coordinates": [[[4.3, 52.0], [4.3001, 52.0], [4.3001, 52.0001], [4.3, 52.0]]]}}]}}})
        cfg = c.get("/viewer/viewer-config.json", headers=h).json()
        (water,) = cfg["imagery"]
        assert water["job"] == first and water["name"] == "water"            # a what-if is not a forecast
        assert water["url"] == f"http://testserver/jobs/{first}/results/max_depth/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"
        assert water["maxzoom"] == 16 and water["minzoom"] == 13 and 4.0 < water["bounds"][0] < 5.0
        lon, lat = (water["bounds"][0] + water["bounds"][2]) / 2, (water["bounds"][1] + water["bounds"][3]) / 2
        tx, ty, _, _ = _pixel((lon, lat), 16, "OGC:CRS84")
        tile = c.get(water["url"].format(z=16, y=ty, x=tx), headers=h)
        assert tile.status_code == 200 and tile.content.startswith(b"\x89PNG")
        second = c.post("/processes/flood-forecast/execution", headers=run, json=body).json()["jobID"]
        assert c.get("/viewer/viewer-config.json", headers=h).json()["imagery"][0]["job"] == second
        c.delete(f"/jobs/{second}", headers=run)
        assert c.get("/viewer/viewer-config.json", headers=h).json()["imagery"][0]["job"] == first
        # a config written by tiles.write_viewer (cim demo): its tilesets stay, the job's water replaces its frames
        (root / "viewer-config.json").write_text(json.dumps({"tilesets": [{"url": "city/tileset.json", "name": "c"}],
                                                             "frames": ["water/0/tileset.json"], "frameInterval": 500}))
        cfg = c.get("/viewer/viewer-config.json", headers=h).json()
        assert cfg["tilesets"] == [{"url": "city/tileset.json", "name": "c"}] and cfg["frames"] == []
        assert cfg["frameInterval"] == 500 and [i["job"] for i in cfg["imagery"]] == [first]
        c.delete(f"/jobs/{first}", headers=run)
        assert c.get("/viewer/viewer-config.json", headers=h).json()["frames"] == ["water/0/tileset.json"]
        assert c.get("/viewer/viewer-config.json").status_code == 401


def _rain_tif(path, rate: float = RAIN):
    """A GeoTIFF of one band of rain rates (mm/h) over the bowl: 20 m cells, one band."""
    da = xr.DataArray(np.full((4, 4), rate, np.float32), dims=("y", "x"),
                      coords={"y": Y0 + 70 - 20 * np.arange(4), "x": X0 - 10 + 20 * np.arange(4)})
    da.rio.write_crs("EPSG:28992").rio.to_raster(path)
    return path.read_bytes()


def test_uploaded_rainfall_by_href(bowl, tmp_path):
    scene, url, tokens = bowl
    tif = _rain_tif(tmp_path / "rain.tif")
    direct = flood.forecasting.forecast(scene, rainfall=RAIN, duration=DURATION, name="direct", write=False)
    ex = "/processes/flood-forecast/execution"
    with _client(url) as c:
        assert c.post("/uploads", headers=_h(tokens, "read") | {"Content-Type": "image/tiff"},
                      content=tif).status_code == 403
        r = c.post("/uploads", headers=_h(tokens, "run") | {"Content-Type": "image/tiff"}, content=tif)
        assert r.status_code == 201, r.text
        up = r.json()
        assert r.headers["location"] == up["href"] == f"http://testserver/uploads/{up['id']}"
        assert up["bytes"] == len(tif) and up["mediaType"] == "image/tiff"
        assert c.get(f"/uploads/{up['id']}", headers=_h(tokens, "read")).json() == up
        for href in (up["href"], f"/uploads/{up['id']}"):
            r = c.post(ex, headers=_h(tokens, "run"), json={"inputs": {"rainfallFile": {"href": href},
                                                                        "duration": DURATION}})
            assert r.status_code == 200, r.text
            got = {f["properties"]["name"]: f["properties"]["max_depth"] for f in r.json()["warnings"]["features"]}
            assert got == pytest.approx(dict(zip(direct.warnings["name"], direct.warnings["max_depth"], strict=True)),
                                        abs=1e-6)
            assert got["bowl road"] > 0.15
        assert sorted(p.name for p in (scene.store.files_root / "uploads").iterdir()) == [f"{up['id']}.tif"]
        # kept a week: the next upload sweeps older ones
        stale = scene.store.files_root / "uploads" / f"{up['id']}.tif"
        week = time.time() - 7 * 86400
        os.utime(stale, (week - 60, week - 60))
        again = c.post("/uploads", headers=_h(tokens, "run") | {"Content-Type": "image/tiff"}, content=tif).json()
        assert sorted(p.name for p in stale.parent.iterdir()) == [f"{again['id']}.tif"]
        r = c.post(ex, headers=_h(tokens, "run"), json={"inputs": {"rainfallFile": {"href": up["href"]},
                                                                    "duration": DURATION}})
        assert r.status_code == 400 and "no uploaded file" in r.json()["detail"]


def test_bad_uploads_and_hrefs(bowl, tmp_path):
    scene, url, tokens = bowl
    h = _h(tokens, "run")
    tif = _rain_tif(tmp_path / "rain.tif")
    ex = "/processes/flood-forecast/execution"
    with _client(url, max_body_bytes=2048) as c:
        cases = {
            "not a GeoTIFF": ({"Content-Type": "image/tiff"}, b"II*\x00" + b"\x00" * 200, 400, "the uploaded file"),
            "not NetCDF": ({"Content-Type": "application/x-netcdf"}, b"CDF\x01garbage", 400, "the uploaded file"),
            "a JPEG": ({"Content-Type": "image/jpeg"}, b"\xff\xd8\xff", 415, "image/tiff"),
            "empty": ({"Content-Type": "image/tiff"}, b"", 400, "empty"),
            "too large": ({"Content-Type": "image/tiff"}, tif + b"\x00" * 4096, 413, "larger than"),
            "out of range": ({"Content-Type": "image/tiff"}, _rain_tif(tmp_path / "hot.tif", 9999.0), 400,
                             "0..500"),
        }
        for what, (headers, content, status, words) in cases.items():
            r = c.post("/uploads", headers=h | headers, content=content)
            assert r.status_code == status, (what, r.text)
            assert r.headers["content-type"] == "application/problem+json" and words in r.json()["detail"], what
            assert str(tmp_path) not in r.text and "Traceback" not in r.text
        assert not (scene.store.files_root / "uploads").exists() or \
            not list((scene.store.files_root / "uploads").iterdir())
        for what, f, words in [
            ("unknown id", {"href": "/uploads/" + "0" * 32}, "rainfallFile.href: no uploaded file"),
            ("elsewhere", {"href": "http://example.org/rain.nc"}, "rainfallFile.href: only files sent"),
            ("traversal", {"href": "/uploads/../../secret"}, "rainfallFile.href"),
            ("both", {"href": "/uploads/" + "0" * 32, "value": "AAAA", "mediaType": "image/tiff"}, "either href"),
            ("no media type", {"value": base64.b64encode(tif).decode()}, "rainfallFile.mediaType"),
        ]:
            r = c.post(ex, headers=h, json={"inputs": {"rainfallFile": f, "duration": 60}})
            assert r.status_code == 400 and words in r.json()["detail"], (what, r.text)
        assert c.get("/uploads/" + "0" * 32, headers=h).status_code == 404


def _declared_only_netcdf(path, nt: int, ny: int, nx: int, x0: float, y0: float):
    """A NetCDF-4 rainfall grid around (x0, y0) whose values are declared but never written: a few KB on disk."""
    import netCDF4
    from pyproj import CRS

    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        for dim, n in (("time", nt), ("y", ny), ("x", nx)):
            ds.createDimension(dim, n)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.standard_name = "minutes since 2020-06-17 00:00", "time"
        t[:] = np.arange(nt) * 5.0
        for name, start, n in (("y", y0, ny), ("x", x0, nx)):
            v = ds.createVariable(name, "f8", (name,))
            v.units, v.standard_name = "m", f"projection_{name}_coordinate"
            v[:] = start + np.arange(n)
        crs = ds.createVariable("crs", "i4")
        crs.crs_wkt = crs.spatial_ref = CRS("EPSG:28992").to_wkt()
        rain = ds.createVariable("rainfall", "f4", ("time", "y", "x"), chunksizes=(1, min(ny, 1024), min(nx, 1024)),
                                 zlib=True)
        rain.units, rain.grid_mapping = "mm/h", "crs"
    return path


def test_files_declaring_huge_grids_are_refused_before_reading(bowl, tmp_path):
    import resource

    import rasterio

    _, url, tokens = bowl
    h = _h(tokens, "run")
    # 2,000 steps of 3,000 x 3,000 cells over the scene: 18e9 values (72 GB) declared in a ~100 KB file
    bomb = _declared_only_netcdf(tmp_path / "bomb.nc", 2000, 3000, 3000, X0 - 1000.0, Y0 - 1000.0).read_bytes()
    assert len(bomb) < 1_000_000
    # and a sparse GeoTIFF of 200,000 x 200,000 cells (40e9), never written
    with rasterio.open(tmp_path / "bomb.tif", "w", driver="GTiff", width=200_000, height=200_000, count=1,
                       dtype="float32", crs="EPSG:28992", transform=rasterio.Affine(1, 0, X0, 0, -1, Y0),
                       tiled=True, sparse_ok=True, compress="deflate", BIGTIFF="YES") as dst:
        dst.update_tags(units="mm/h")
    tif = (tmp_path / "bomb.tif").read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with _client(url) as c:
        for media, content in (("application/x-netcdf", bomb), ("image/tiff", tif)):
            r = c.post("/uploads", headers=h | {"Content-Type": media}, content=content)
            assert r.status_code == 400, r.text
            assert "more than max_values=20,000,000" in r.json()["detail"], r.text
        inline = {"value": base64.b64encode(bomb).decode(), "mediaType": "application/x-netcdf"}
        r = c.post("/processes/flood-forecast/execution", headers=h,
                   json={"inputs": {"rainfallFile": inline, "duration": 60}})
        assert r.status_code == 400 and "more than max_values" in r.json()["detail"]
    # nothing of the declared grids was allocated (the peak of this process grew by less than 200 MB)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024
    # the same file cropped to the scene (the reader's bbox) fits: what lies 10 km away is never read
    far = _declared_only_netcdf(tmp_path / "far.nc", 2000, 3000, 3000, X0 + 50_000.0, Y0)
    with pytest.raises(cim.ValidationError, match="more than max_values"):
        ingest.read(far, max_values=1000)
    with pytest.raises(cim.DataError):   # nothing within 10 km of the scene: no grid to read, and nothing allocated
        ingest.read(far, max_values=1000, bbox=(X0 - 10_000, Y0 - 10_000, X0 + 10_000, Y0 + 10_000))


def test_what_if_planned_building_on_the_flooded_road(bowl):
    import rioxarray

    scene, url, tokens = bowl
    # a building over the bowl's centre, on the road where the water gathers
    planned = gpd.GeoDataFrame({"name": ["hall"]}, geometry=[box(X0 + 24, Y0 + 24, X0 + 36, Y0 + 36)],
                               crs=scene.crs).to_crs("OGC:CRS84")
    with _client(url) as c:
        r = c.post("/processes/what-if/execution", headers=_h(tokens, "run"),
                   json={"inputs": {"rainfall": RAIN, "duration": DURATION, "planned": planned.__geo_interface__}})
        assert r.status_code == 200, r.text
        doc = r.json()
    folder = scene.store.files_root / "jobs" / doc["jobID"]
    after = rioxarray.open_rasterio(folder / "planned_max_depth.tif", masked=True).squeeze("band", drop=True)
    change = rioxarray.open_rasterio(folder / "depth_change.tif", masked=True).squeeze("band", drop=True)
    before = after - change
    inside = dict(x=slice(X0 + 25, X0 + 35), y=slice(Y0 + 35, Y0 + 25))
    base = flood.forecasting.forecast(scene, rainfall=RAIN, duration=DURATION, write=False).dataset["max_depth"]
    assert float(base.sel(**inside).min()) > 0.15                     # flooded before
    assert not (after.sel(**inside).fillna(0.0) > 0).any()            # dry (walls) with the building
    ring = change.sel(x=slice(X0 + 19, X0 + 41), y=slice(Y0 + 41, Y0 + 19))
    assert float(ring.max()) > 0.02 and float(change.min()) > -0.005  # the water it displaces raises depth nearby
    assert np.isnan(before.sel(**inside)).all()
    assert doc["volumes_m3"]["rain_volume"]["after"] < doc["volumes_m3"]["rain_volume"]["before"]   # roof cells


def test_what_if_sealed_surface_keeps_more_water(bowl):
    scene, url, tokens = bowl
    west = gpd.GeoDataFrame({"imperviousness": [1.0]}, geometry=[box(X0, Y0, X0 + 30, Y0 + 60)],
                            crs=scene.crs).to_crs("OGC:CRS84")
    inputs = {"rainfall": 100.0, "infiltration": 40.0, "duration": DURATION, "surfaces": west.__geo_interface__}
    direct = flood.whatif.what_if(scene, surfaces=west, rainfall=100.0, infiltration=40.0, duration=DURATION)
    with _client(url) as c:
        h = _h(tokens, "run")
        r = c.post("/processes/what-if/execution", headers=h, json={"inputs": inputs})
        assert r.status_code == 200, r.text
        v = r.json()["volumes_m3"]
        bad = {
            "no infiltration": ({k: w for k, w in inputs.items() if k != "infiltration"}, "infiltration="),
            "roughness": ({**inputs, "surfaces": {**inputs["surfaces"], "features": [
                {**f, "properties": {"manning": -0.1}} for f in inputs["surfaces"]["features"]]}}, "'manning'"),
            "ground": ({**inputs, "surfaces": {**inputs["surfaces"], "features": [
                {**f, "properties": {"dz": 1}} for f in inputs["surfaces"]["features"]]}}, "ground_delta"),
            "no share": ({**inputs, "surfaces": {**inputs["surfaces"], "features": [
                {**f, "properties": {}} for f in inputs["surfaces"]["features"]]}}, "'imperviousness'"),
            "share > 1": ({**inputs, "surfaces": {**inputs["surfaces"], "features": [
                {**f, "properties": {"imperviousness": 2}} for f in inputs["surfaces"]["features"]]}}, "between 0"),
        }
        for what, (body, words) in bad.items():
            r = c.post("/processes/what-if/execution", headers=h, json={"inputs": body})
            assert r.status_code == 400 and words in r.json()["detail"], (what, r.text)
        r = c.post("/processes/flood-forecast/execution", headers=h, json={"inputs": inputs})
        assert r.status_code == 400 and r.json()["detail"].startswith("surfaces:")
    assert v["rain_volume"]["after"] == pytest.approx(v["rain_volume"]["before"], rel=1e-12)
    # sealing half the bowl: less infiltrates, more water stays on the ground
    assert v["infiltration_volume"]["after"] < 0.8 * v["infiltration_volume"]["before"]
    assert v["final_volume"]["after"] > v["final_volume"]["before"] + 1.0
    for k in v:
        assert v[k]["after"] == pytest.approx(direct.scenario.dataset.attrs[k], rel=1e-9)
        assert v[k]["before"] == pytest.approx(direct.baseline.dataset.attrs[k], rel=1e-9)


def test_what_if_raised_ground_and_rougher_surface(bowl):
    # ground and roughness changes were refused (400) before flood.forecast took them
    scene, url, tokens = bowl
    square = gpd.GeoDataFrame({"ground_delta": [1.0], "manning": [0.1]},
                              geometry=[box(X0 + 24, Y0 + 28, X0 + 36, Y0 + 32)], crs=scene.crs).to_crs("OGC:CRS84")
    direct = flood.whatif.what_if(scene, surfaces=square, rainfall=RAIN, duration=DURATION)
    with _client(url) as c:
        r = c.post("/processes/what-if/execution", headers=_h(tokens, "run"),
                   json={"inputs": {"rainfall": RAIN, "duration": DURATION, "surfaces": square.__geo_interface__}})
        assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["max_depth_change"] == pytest.approx(float(direct.depth_change.max()), abs=1e-6)
    assert doc["volumes_m3"]["final_volume"]["after"] == pytest.approx(direct.scenario.dataset.attrs["final_volume"])
    assert float(direct.depth_change.min()) < -0.2 < 0 < doc["max_depth_change"]


def test_job_list_filters(bowl):
    scene, url, tokens = bowl
    h = _h(tokens, "read")
    with _client(url) as c:
        with scene.store.engine.begin() as conn:
            made = {}
            for process, status in [("flood-forecast", "successful"), ("what-if", "failed"),
                                    ("flood-forecast", "accepted"), ("what-if", "dismissed")]:
                made[process, status] = J.create_job(conn, process, {"rainfall": 1.0, "duration": 60.0}).id
                J.update_job(conn, made[process, status], status=status)
                time.sleep(0.002)                        # distinct creation times: the list is newest first

        def listed(**params) -> list[str]:
            r = c.get("/jobs", headers=h, params=params)
            assert r.status_code == 200, r.text
            return [j["jobID"] for j in r.json()["jobs"]]

        assert listed() == [made["flood-forecast", "accepted"], made["what-if", "failed"],
                            made["flood-forecast", "successful"]]
        assert listed(processID="what-if") == [made["what-if", "failed"]]
        assert listed(status=["successful", "failed"]) == [made["what-if", "failed"],
                                                           made["flood-forecast", "successful"]]
        assert listed(processID="flood-forecast", status="accepted", limit=5) == [made["flood-forecast", "accepted"]]
        assert listed(limit=1) == [made["flood-forecast", "accepted"]]
        for bad in ({"status": "dismissed"}, {"processID": "nope"}, {"limit": 0}, {"limit": 1001}, {"type": "x"}):
            r = c.get("/jobs", headers=h, params=bad)
            assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", bad
