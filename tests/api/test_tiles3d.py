"""3D Tiles serving: content, ETag/304, Cache-Control, CORS, and paths that never leave the tiles root."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def api(twin_embedded):
    return twin_embedded.client(cors_origins=["https://viewer.example"], cache_max_age=600), twin_embedded


def test_tileset_and_content(api):
    c, t = api
    h = t.h("read")
    assert c.get("/3dtiles", headers=h).json()["tilesets"] == [
        {"id": "city", "href": "http://testserver/3dtiles/city/tileset.json", "type": "application/json"}]
    r = c.get("/3dtiles/city/tileset.json", headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == json.loads((t.tiles / "city" / "tileset.json").read_text())
    assert r.headers["cache-control"] == "public, max-age=600"
    g = c.get("/3dtiles/city/content/0.glb", headers=h)
    assert g.status_code == 200 and g.headers["content-type"] == "model/gltf-binary"
    assert g.content == (t.tiles / "city" / "content" / "0.glb").read_bytes()
    assert g.headers["etag"] != r.headers["etag"]


def test_etag_revalidation(api):
    c, t = api
    h = t.h("read")
    r = c.get("/3dtiles/city/content/0.glb", headers=h)
    etag = r.headers["etag"]
    again = c.get("/3dtiles/city/content/0.glb", headers=h | {"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert c.get("/3dtiles/city/content/0.glb", headers=h | {"If-None-Match": '"other"'}).status_code == 200
    path = t.tiles / "city" / "content" / "0.glb"
    path.write_bytes(path.read_bytes() + b"more")
    os.utime(path, ns=(1, 1))
    changed = c.get("/3dtiles/city/content/0.glb", headers=h | {"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag and changed.content.endswith(b"more")


def test_cors(api):
    c, t = api
    h = t.h("read")
    ok = c.get("/3dtiles/city/tileset.json", headers=h | {"Origin": "https://viewer.example"})
    assert ok.headers["access-control-allow-origin"] == "https://viewer.example"
    assert "etag" in ok.headers["access-control-expose-headers"].lower()
    other = c.get("/3dtiles/city/tileset.json", headers=h | {"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    pre = c.options("/3dtiles/city/tileset.json", headers={"Origin": "https://viewer.example",
                                                             "Access-Control-Request-Method": "GET",
                                                             "Access-Control-Request-Headers": "x-api-key"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://viewer.example"
    no_cors = t.client()
    assert "access-control-allow-origin" not in no_cors.get(
        "/3dtiles/city/tileset.json", headers=h | {"Origin": "https://viewer.example"}).headers


@pytest.mark.parametrize("path", [
    "/3dtiles/city/..%2F..%2Fsecret.txt",
    "/3dtiles/city/..%2f..%2fsecret.txt",
    "/3dtiles/city/content/..%2F..%2F..%2Fsecret.txt",
    "/3dtiles/city/%2E%2E/%2E%2E/secret.txt",
    "/3dtiles/city/..%5C..%5Csecret.txt",
    "/3dtiles/city/%2Fetc%2Fhostname",
    "/3dtiles/city/..%2F..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fhostname",
    "/3dtiles/..%2F/secret.txt",
    "/3dtiles/city/link/secret.txt",
    "/3dtiles/city/escape.txt",
    "/3dtiles/city/content",
    "/3dtiles/city/content%00.glb",
])
def test_paths_never_leave_the_root(api, path):
    c, t = api
    (t.tiles / "city" / "link").symlink_to(t.tiles.parent, target_is_directory=True)
    (t.tiles / "city" / "escape.txt").symlink_to(t.tiles.parent / "secret.txt")
    r = c.get(path, headers=t.h("read"))
    assert r.status_code in (400, 404), (path, r.status_code)
    assert b"TOP-SECRET" not in r.content and b"root:" not in r.content
    assert r.headers["content-type"] == "application/problem+json"


def test_viewer_page(twin_embedded):
    t = twin_embedded
    build = t.tiles.parent / "node_modules" / "cesium" / "Build" / "Cesium"
    build.mkdir(parents=True)
    (build / "Cesium.js").write_text("var Cesium = {};")
    (t.tiles / "cesium").symlink_to(build, target_is_directory=True)
    (t.tiles / "index.html").write_text("<html><script src='cesium/Cesium.js'></script></html>")
    (t.tiles / "viewer-config.json").write_text(json.dumps({"tilesets": [{"url": "city/tileset.json"}]}))
    c = t.client(anonymous_read=True)
    assert c.get("/viewer", follow_redirects=False).headers["location"] == "/viewer/"
    assert c.get("/viewer/index.html?sse=0&pitch=-70").status_code == 200      # the page's own options
    assert c.get("/3dtiles/city/tileset.json?v=2").status_code == 200
    page = c.get("/viewer/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "cesium/Cesium.js" in page.text
    js = c.get("/viewer/cesium/Cesium.js")
    assert js.status_code == 200 and js.text == "var Cesium = {};" and "javascript" in js.headers["content-type"]
    config = c.get("/viewer/viewer-config.json").json()
    assert c.get("/viewer/" + config["tilesets"][0]["url"]).json()["asset"]["version"] == "1.1"
    for bad in ("/viewer/cesium/..%2F..%2F..%2F..%2Fsecret.txt", "/viewer/..%2Fsecret.txt",
                "/viewer/cesium/../../../secret.txt", "/viewer/%2Fetc%2Fhostname"):
        r = c.get(bad)
        assert r.status_code == 404 and b"TOP-SECRET" not in r.content, bad
    assert t.client().get("/viewer/").status_code == 401         # reads need a key unless anonymous read is on


def test_cached_content_follows_the_file(api):
    """Content is served from memory; a rewrite of the same size, or a file swapped in by rename with the same
    size and mtime, is seen at once; files over the cache's size limit are streamed from disk."""
    from api.tiles3d import FileCache

    c, t = api
    h = t.h("read")
    path = t.tiles / "city" / "content" / "0.glb"
    first = c.get("/3dtiles/city/content/0.glb", headers=h)
    cached = c.app.state.static_files
    assert cached.get(path.resolve(), path.stat()) == (first.headers["etag"], first.content)
    body = bytearray(first.content)
    body[-1] ^= 0xFF
    path.write_bytes(bytes(body))
    os.utime(path, ns=(2, 2))
    assert c.get("/3dtiles/city/content/0.glb", headers=h).content == bytes(body)
    swapped = path.with_name("new.glb")
    swapped.write_bytes(first.content)
    os.utime(swapped, ns=(2, 2))
    os.replace(swapped, path)                                   # same size, same mtime, another inode
    assert c.get("/3dtiles/city/content/0.glb", headers=h).content == first.content
    c.app.state.static_files = FileCache(max_file=100)
    big = c.get("/3dtiles/city/content/0.glb", headers=h)
    assert big.status_code == 200 and big.content == first.content and big.headers["etag"]
    assert c.app.state.static_files.get(path.resolve(), path.stat()) is None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cim_serve_with_several_workers(twin_embedded):
    """`cim serve --workers 2` starts worker processes (each with its own SO_REUSEPORT socket) that read the same
    settings; every worker serves the tiles root and anonymous reads it was given on the command line, and both
    shut down cleanly on SIGINT."""
    import shutil
    import signal
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    t = twin_embedded
    cim = shutil.which("cim", path=os.path.dirname(sys.executable))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    proc = subprocess.Popen([cim, "serve", t.url, "--port", str(port), "--workers", "2", "--anonymous-read",
                             "--tiles-root", str(t.tiles), "--no-access-log"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/3dtiles/city/content/0.glb"
    try:
        body = None
        for _ in range(600):                         # up to 60 s for both workers to import and open the scene
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    body = r.read()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        assert body == (t.tiles / "city" / "content" / "0.glb").read_bytes()
        for _ in range(8):                           # whichever worker answers
            with urllib.request.urlopen(url, timeout=5) as r:
                assert r.status == 200 and r.read() == body
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0].decode()
    assert "started 2 worker processes" in out and out.count("Application shutdown complete") == 2, out[-2000:]


def test_cim_serve_refuses_workers_with_mqtt(twin_embedded):
    import shutil
    import subprocess
    import sys

    cim = shutil.which("cim", path=os.path.dirname(sys.executable))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")} | {"CIM_MQTT_HOST": "127.0.0.1"}
    r = subprocess.run([cim, "serve", twin_embedded.url, "--workers", "2"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "MQTT" in r.stdout + r.stderr and "--workers" in r.stdout + r.stderr


def test_remembered_addresses_follow_removal(api):
    """Addresses are resolved once; a file removed is 404 at once and found again when it comes back."""
    c, t = api
    h = t.h("read")
    path = t.tiles / "city" / "content" / "0.glb"
    body = c.get("/3dtiles/city/content/0.glb", headers=h).content
    path.unlink()
    assert c.get("/3dtiles/city/content/0.glb", headers=h).status_code == 404
    path.write_bytes(body)
    assert c.get("/3dtiles/city/content/0.glb", headers=h).content == body
    assert c.get("/3dtiles/city/content/../../../secret.txt", headers=h).status_code == 404
    assert c.get("/3dtiles/city/..%2F..%2Fsecret.txt", headers=h).status_code == 404


def test_a_link_swapped_in_after_resolution_does_not_leave_the_root(api):
    c, t = api
    h = t.h("read")
    path = t.tiles / "city" / "content" / "0.glb"
    assert c.get("/3dtiles/city/content/0.glb", headers=h).status_code == 200      # resolved and remembered
    path.unlink()
    path.symlink_to(t.tiles.parent / "secret.txt")
    r = c.get("/3dtiles/city/content/0.glb", headers=h)
    assert r.status_code == 404 and b"TOP-SECRET" not in r.content
