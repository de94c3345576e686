"""Map tiles in the OGC API - Tiles form: PNG and MVT pyramids written by the tiles package, typed z/y/x."""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import tiles
from tests.api.conftest import build

BASE = "/collections/{}/tiles/WebMercatorQuad"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("maptiles")
    t = build(str(tmp / "scene.cim"), tmp)
    x = np.arange(84000.0, 86000.0, 20.0)
    y = np.arange(447500.0, 445500.0, -20.0)
    dem = xr.DataArray(np.add.outer(np.sin(y / 200.0), np.cos(x / 150.0)) * 5.0, dims=("y", "x"),
                       coords={"y": y, "x": x}).rio.write_crs("EPSG:28992")
    tiles.raster_xyz_tiles(dem, t.tiles / "maps" / "dem", kind="hillshade", zooms=(13, 13))
    with t._stack:
        yield t.client(), t
    t.scene.close()


def test_vector_tiles(api):
    import mapbox_vector_tile

    c, t = api
    meta = c.get("/collections/buildings/tiles", headers=t.h("read")).json()["tilesets"][0]
    assert meta["dataType"] == "vector" and meta["minzoom"] == meta["maxzoom"] == 12
    r = c.get(BASE.format("buildings") + "/12/1350/2109", headers=t.h("read"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert r.content == (t.tiles / "maps" / "buildings" / "12" / "2109" / "1350.mvt").read_bytes()
    layer = mapbox_vector_tile.decode(r.content)["buildings"]
    assert sorted(f["properties"]["id"] for f in layer["features"]) == ["a", "b"]
    again = c.get(BASE.format("buildings") + "/12/1350/2109",
                  headers=t.h("read") | {"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    empty = c.get(BASE.format("buildings") + "/12/0/0", headers=t.h("read"))
    assert empty.status_code == 204 and empty.content == b""


def test_raster_tiles(api):
    c, t = api
    written = sorted((t.tiles / "maps" / "dem" / "13").rglob("*.png"))
    assert written
    z, x, y = 13, int(written[0].parent.name), int(written[0].stem)
    r = c.get(BASE.format("dem") + f"/{z}/{y}/{x}", headers=t.h("read"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG") and r.content == written[0].read_bytes()
    assert c.get("/collections/dem/tiles", headers=t.h("read")).json()["tilesets"][0]["dataType"] == "map"
    assert c.get(BASE.format("dem") + f"/{z}/{y}/{x}").status_code == 401


@pytest.mark.parametrize(("zyx", "status"), [
    ("abc/0/0", 400), ("1.5/0/0", 400), ("-1/0/0", 400), ("25/0/0", 400), ("0/-1/0", 400),
    ("99999999999999999999/0/0", 400), ("3/8/0", 404), ("3/0/8", 404), ("12/4096/0", 404), ("0/0", 404),
    ("12/1350/2109/1", 404), ("12/1350/..%2F..%2F..%2Fsecret.txt", 404),
])
def test_malformed_tile_addresses(api, zyx, status):
    c, t = api
    r = c.get(BASE.format("buildings") + "/" + zyx, headers=t.h("read"))
    assert r.status_code == status, (zyx, r.status_code, r.text[:200])
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("name", ["..%2F..%2Fsecret", "..", "nope", "maps", "buildings%2F12"])
def test_tile_sets_stay_in_the_root(api, name):
    c, t = api
    r = c.get(BASE.format(name) + "/0/0/0", headers=t.h("read"))
    assert r.status_code in (400, 404) and b"TOP-SECRET" not in r.content
