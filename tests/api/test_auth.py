"""Keys, scopes and audit: every route x {no key, read, ingest, run, admin, revoked key} gets the right status;
anonymous read; bearer tokens; rate limit; the audit trail of writes; `cim keys` and `cim serve`.

Scopes: reads need ``read`` (every other scope implies it); SensorThings writes need ``ingest``; running a process
needs ``run``; dismissing a job needs ``run`` and the key that started it, or ``admin``."""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import time

import httpx

import cim.security as sec
from cim import jobs as J
from tests.api.conftest import BOWL

WHO = (None, "read", "ingest", "run", "admin", "revoked")
PUBLIC = {"/", "/conformance", "/v1.1"}
RUN = ("/processes", "/jobs", "/uploads")           # routes whose writes need the `run` scope
_n = itertools.count()


def _ids(c, h, twin) -> dict[str, int]:
    ids = {name: c.get(f"/v1.1/{name}", headers=h).json()["value"][0]["@iot.id"]
           for name in ("Things", "Locations", "Sensors", "ObservedProperties", "Datastreams", "FeaturesOfInterest")}
    ids["Observations"] = c.get(f"/v1.1/Datastreams({twin.level_id})/Observations", headers=h).json()["value"][0][
        "@iot.id"]                                 # the one with a FeatureOfInterest
    return ids


def _tile_over_the_terrain(z: int) -> str:
    import morecantile
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True).transform(
        (BOWL[0] + BOWL[2]) / 2, (BOWL[1] + BOWL[3]) / 2)
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    return f"{z}/{t.y}/{t.x}"


def _job_owned_by(twin, who: str) -> str:
    """A fresh job in the store, started by ``who``'s key (each DELETE of the matrix dismisses its own)."""
    with twin.scene.store.engine.begin() as conn:
        return J.create_job(conn, "flood-forecast", {"rainfall": 1.0, "duration": 60.0},
                            who=sec.parse_token(twin.tokens[who])[0]).id


def _request(template: str, method: str, twin, ids) -> tuple[str, dict | None]:
    if template.startswith(RUN):
        job = _job_owned_by(twin, "run") if method == "DELETE" else ids["job"]
        path = (template.replace("{processId}", "flood-forecast").replace("{jobId}", job)
                .replace("{name}", "forecast_max_depth.tif").replace("{z}/{y}/{x}", ids["tile"])
                .replace("{uploadId}", ids["upload"]))
        body = None
        if method == "POST":
            body = ids["tif"] if path == "/uploads" else {"inputs": {"rainfall": 100.0, "duration": 60.0}}
        return path, body
    m = re.match(r"^/v1\.1/(\w+)\(\{id\}\)", template)
    path = template.replace("{id}", str(ids[m.group(1)])) if m else template
    path = path.replace("/viewer/{path}", "/viewer/city/tileset.json")
    path = (path.replace("{collectionId}", "buildings").replace("{featureId}", "a")
            .replace("{tileset}", "city").replace("{path}", "tileset.json")
            .replace("{z}/{y}/{x}", "12/1350/2109"))
    body = None
    if method == "POST" and path.endswith("/Things"):
        body = {"name": f"thing {next(_n)}"}
    elif method == "POST":
        i = next(_n)
        body = {"phenomenonTime": f"2030-01-01T{i // 60:02d}:{i % 60:02d}:00Z", "result": 1.0}
        if "Datastreams(" not in path:
            body["Datastream"] = {"@iot.id": twin.rain_id}
    return path, body


def _expected(template: str, method: str, who: str | None) -> int:
    if template in PUBLIC:
        return 200
    if who in (None, "revoked"):
        return 401
    if template.startswith(RUN) and method != "GET":       # sync execution answers 200 with the results
        return (201 if template == "/uploads" else 200) if who in ("run", "admin") else 403
    if method == "POST":
        return 201 if who in ("ingest", "admin") else 403
    return 200


def _rain_tif(path) -> bytes:
    import numpy as np
    import rioxarray  # noqa: F401
    import xarray as xr

    da = xr.DataArray(np.full((3, 3), 50.0, np.float32), dims=("y", "x"),
                      coords={"y": BOWL[3] - 80.0 * np.arange(3) - 40, "x": BOWL[0] + 80.0 * np.arange(3) + 40})
    da.rio.write_crs("EPSG:28992").rio.to_raster(path)
    return path.read_bytes()


def test_auth_matrix_covers_every_route(twin_embedded, tmp_path):
    t = twin_embedded
    c = t.client()
    ids = _ids(c, t.h("admin"), t)
    r = c.post("/processes/flood-forecast/execution", headers=t.h("run"),
               json={"inputs": {"rainfall": 100.0, "duration": 600.0}})
    assert r.status_code == 200, r.text
    ids["job"] = r.json()["jobID"]
    ids["tile"] = _tile_over_the_terrain(14)
    ids["tif"] = _rain_tif(tmp_path / "rain.tif")
    r = c.post("/uploads", headers=t.h("run") | {"Content-Type": "image/tiff"}, content=ids["tif"])
    assert r.status_code == 201, r.text
    ids["upload"] = r.json()["id"]
    operations = [(p, m.upper()) for p, ops in c.get("/openapi.json").json()["paths"].items() for m in ops]
    assert len(operations) >= 50
    assert {("/processes/{processId}/execution", "POST"), ("/jobs/{jobId}", "DELETE"),
            ("/jobs/{jobId}/results/{name}", "GET"),
            ("/jobs/{jobId}/results/max_depth/tiles/WebMercatorQuad/{z}/{y}/{x}", "GET")} <= set(operations)
    writes = dismissals = 0
    for template, method in operations:
        for who in WHO:
            path, body = _request(template, method, t, ids)
            if isinstance(body, bytes):
                r = c.request(method, path, content=body, headers=t.h(who) | {"Content-Type": "image/tiff"})
            else:
                r = c.request(method, path, json=body, headers=t.h(who))
            want = _expected(template, method, who)
            assert r.status_code == want, (method, path, who, r.status_code, r.text[:200])
            if want == 401:
                assert "WWW-Authenticate" in r.headers and r.headers["content-type"] == "application/problem+json"
            writes += method == "POST"
            dismissals += method == "DELETE"
    # every write attempt is in the audit trail, with who and the outcome (and the job run before the matrix)
    entries = t.audit()
    posts = [e for e in entries if e.action.startswith("POST ")]
    n_posts = sum(m == "POST" for _, m in operations)
    assert len(posts) == writes + 2 == n_posts * len(WHO) + 2 and n_posts == 5
    keys = {k.name.split()[0]: k.key_id for k in _keys(t)}
    outcomes = {(e.who, e.outcome) for e in posts}
    assert ("unauthenticated", "401") in outcomes and (keys["read"], "403") in outcomes
    assert (keys["ingest"], "201") in outcomes and (keys["admin"], "201") in outcomes
    runs = {(e.who, e.outcome) for e in posts if e.action == "POST /processes/flood-forecast/execution"}
    assert runs == {("unauthenticated", "401"), (keys["read"], "403"), (keys["ingest"], "403"),
                    (keys["run"], "200"), (keys["admin"], "200")}
    uploads = {(e.who, e.outcome) for e in posts if e.action == "POST /uploads"}
    assert {(keys["run"], "201"), (keys["admin"], "201"), (keys["read"], "403"), (keys["ingest"], "403")} <= uploads
    deletes = sorted((e.who, e.outcome) for e in entries if e.action.startswith("DELETE /jobs/"))
    assert len(deletes) == dismissals == len(WHO)
    assert deletes == sorted([("unauthenticated", "401")] * 2 + [(keys["read"], "403"), (keys["ingest"], "403"),
                                                                  (keys["run"], "200"), (keys["admin"], "200")])
    assert all(e.at.startswith("20") and e.at.endswith("+00:00") for e in posts)


def _keys(t):
    with t.scene.store.engine.connect() as conn:
        return [k for k in sec.list_keys(conn) if k.name != "old admin key"]


def test_anonymous_read(twin_embedded):
    t = twin_embedded
    c = t.client(anonymous_read=True)
    assert c.get("/collections/buildings/items").status_code == 200
    assert c.get("/v1.1/Things").status_code == 200
    assert c.get("/3dtiles/city/tileset.json").status_code == 200
    assert c.post(f"/v1.1/Datastreams({t.rain_id})/Observations",
                  json={"phenomenonTime": "2030-01-01T00:00:00Z", "result": 1.0}).status_code == 401
    assert c.get("/collections", headers=t.h("revoked")).status_code == 401    # a bad key is never anonymous
    assert t.client().get("/collections").status_code == 401                  # off by default


def test_bearer_and_malformed_keys(twin_embedded):
    t = twin_embedded
    c = t.client()
    assert c.get("/collections", headers={"Authorization": f"Bearer {t.tokens['read']}"}).status_code == 200
    good = t.tokens["admin"]
    for bad in (good[:-1] + ("A" if good[-1] != "A" else "B"), "cim_0123456789abcdef_" + "x" * 43, "nonsense",
                "' OR 1=1 --", "cim_" + "z" * 16 + "_" + "y" * 40):
        r = c.get("/collections", headers={"X-API-Key": bad})
        assert r.status_code == 401 and bad not in r.text
    assert c.get("/collections", headers={"Authorization": f"Basic {good}"}).status_code == 401


def test_rate_limit(twin_embedded):
    t = twin_embedded
    c = t.client(rate_limit=3)
    h = t.h("read")
    assert [c.get("/collections", headers=h).status_code for _ in range(3)] == [200, 200, 200]
    r = c.get("/collections", headers=h)
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 61
    assert c.get("/collections", headers=t.h("admin")).status_code == 200      # per key


def _cim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cim.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})


def test_keys_cli_and_serve(twin_embedded):
    t = twin_embedded
    out = _cim("keys", "create", t.url, "--name", "uploader", "--scope", "ingest")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    key_id = sec.parse_token(token)[0]
    listed = _cim("keys", "list", t.url)
    assert key_id in listed.stdout and "uploader" in listed.stdout and token not in listed.stdout
    assert _cim("keys", "create", t.url, "--name", "x", "--scope", "superuser").returncode == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "cim.cli", "serve", t.url, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/conformance").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        r = httpx.get(f"{base}/collections/buildings/items", headers={"X-API-Key": token})
        assert r.status_code == 200 and r.json()["numberMatched"] == 3
        revoked = _cim("keys", "revoke", t.url, key_id)
        assert revoked.returncode == 0 and key_id in revoked.stdout
        r = httpx.get(f"{base}/collections/buildings/items", headers={"X-API-Key": token})
        assert r.status_code == 401 and r.json()["detail"] == "this API key has been revoked"
    finally:
        server.terminate()
        server.wait(10)
    assert _cim("keys", "revoke", t.url, "0" * 16).returncode == 1
    audit = [(e.who, e.action, e.target) for e in t.audit()]
    assert ("cli", "keys.create", key_id) in audit and ("cli", "keys.revoke", key_id) in audit


def test_keys_are_stored_hashed(twin_embedded):
    t = twin_embedded
    with t.scene.store.engine.connect() as conn:
        rows = conn.execute(sec.api_keys.select()).all()
    for token in t.tokens.values():
        assert all(token not in str(tuple(r)) and sec.parse_token(token)[1] not in str(tuple(r)) for r in rows)
