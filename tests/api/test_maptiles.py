"""Map tiles in the OGC API - Tiles form: PNG and MVT pyramids written by the tiles package, typed z/y/x."""

from __future__ import annotations

import json

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


def test_links_out_of_the_tiles_root_are_not_followed(api):
    c, t = api
    outside = t.tiles.parent / "outside_pyramid"
    (outside / "0" / "0").mkdir(parents=True, exist_ok=True)
    (outside / "tiles.json").write_text(json.dumps({"tiles": ["{z}/{x}/{y}.png"], "minzoom": 0, "maxzoom": 0}))
    (outside / "0" / "0" / "0.png").write_bytes(b"\x89PNG TOP-SECRET")
    maps = t.tiles / "maps"
    # a whole pyramid linked in from outside
    (maps / "evil").symlink_to(outside, target_is_directory=True)
    # a zoom level of a real pyramid linked to an outside folder, and one tile file linked to an outside file
    (maps / "buildings" / "0").symlink_to(outside / "0", target_is_directory=True)
    (maps / "buildings" / "1" / "0").mkdir(parents=True)
    (maps / "buildings" / "1" / "0" / "0.mvt").symlink_to(outside / "0" / "0" / "0.png")
    for name, zyx in (("evil", "0/0/0"), ("buildings", "0/0/0"), ("buildings", "1/0/0")):
        r = c.get(BASE.format(name) + "/" + zyx, headers=t.h("read"))
        assert b"TOP-SECRET" not in r.content, (name, zyx)
        assert r.status_code in (204, 404), (name, zyx, r.status_code)
    assert c.get(BASE.format("buildings") + "/12/1350/2109", headers=t.h("read")).status_code == 200


# ---------------------------------------------------------------- raster flood-depth layers, rendered on request
DEPTH = "flood_test_max_depth"


def _depth_grid(left: float, right: float) -> xr.DataArray:
    """400 m x 400 m of 4 m cells in RD New: ``left`` m of water on the west half, ``right`` m on the east."""
    x = 84000.0 + 4.0 * (np.arange(100) + 0.5)
    y = 447400.0 - 4.0 * (np.arange(100) + 0.5)
    data = np.where(x[None, :] < 84200.0, left, right) * np.ones((100, 1))
    return xr.DataArray(data.astype("float32"), dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs(
        "EPSG:28992").rio.write_nodata(np.nan)


def _tile_of(x: float, y: float, z: int) -> tuple[int, int, int]:
    import morecantile
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True).transform(x, y)
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    return t.z, t.y, t.x


def _rgba(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


@pytest.fixture
def depth_api(api):
    c, t = api
    t.scene.add_layer(DEPTH, _depth_grid(0.5, 0.0), kind="flood_result", units="m", replace=True)
    return c, t


def test_depth_layer_tiles_are_coloured_by_depth(depth_api):
    c, t = depth_api
    colour = tiles.depth_colormap(2.0)[1 + round(0.5 / 2.0 * 254)]
    z, y, x = _tile_of(84100.0, 447200.0, 18)          # inside the 0.5 m half
    r = c.get(BASE.format(DEPTH) + f"/{z}/{y}/{x}", headers=t.h("read"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    rgba = _rgba(r.content)
    assert rgba.shape == (256, 256, 4) and (rgba == colour).all()
    z, y, x = _tile_of(84300.0, 447200.0, 18)          # inside the dry half: transparent
    dry = c.get(BASE.format(DEPTH) + f"/{z}/{y}/{x}", headers=t.h("read"))
    assert dry.status_code == 200 and (_rgba(dry.content)[..., 3] == 0).all()
    z, y, x = _tile_of(155000.0, 463000.0, 18)         # far away: no content
    assert c.get(BASE.format(DEPTH) + f"/{z}/{y}/{x}", headers=t.h("read")).status_code == 204
    assert c.get(BASE.format(DEPTH) + f"/{z}/{y}/{x}").status_code == 401
    meta = c.get(f"/collections/{DEPTH}/tiles", headers=t.h("read")).json()["tilesets"][0]
    assert meta["dataType"] == "map" and meta["minzoom"] == 0
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True).transform([84000, 84400],
                                                                                         [447000, 447400])
    assert np.allclose(meta["bounds"], [lon[0], lat[0], lon[1], lat[1]], atol=1e-4)     # ~7 m


def test_depth_tiles_match_the_written_pyramid(depth_api, tmp_path):
    """The tiles rendered on request are those `tiles.raster_xyz_tiles` writes (rio-tiler, nearest), pixel for
    pixel except where a pixel centre falls within rounding of a cell edge."""
    c, t = depth_api
    grid = _depth_grid(0.5, 0.0) + xr.DataArray(np.linspace(0, 1.5, 100), dims="x").astype("float32")
    t.scene.add_layer(DEPTH, grid.rio.write_crs("EPSG:28992"), kind="flood_result", units="m", replace=True)
    written = json.loads(tiles.raster_xyz_tiles(grid.rio.write_crs("EPSG:28992"), tmp_path, kind="depth",
                                                zooms=(16, 17)).read_text())
    pyramid = json.loads(tiles.raster_xyz_tiles(grid.rio.write_crs("EPSG:28992"), tmp_path / "auto",
                                                kind="depth").read_text())
    meta = c.get(f"/collections/{DEPTH}/tiles", headers=t.h("read")).json()["tilesets"][0]
    assert meta["maxzoom"] == pyramid["maxzoom"] and written["maxzoom"] == 17
    assert np.allclose(meta["bounds"], pyramid["bounds"], atol=1e-6)
    same = total = 0
    for path in sorted(tmp_path.glob("1[67]/*/*.png")):
        z, x, y = int(path.parent.parent.name), int(path.parent.name), int(path.stem)
        r = c.get(BASE.format(DEPTH) + f"/{z}/{y}/{x}", headers=t.h("read"))
        assert r.status_code == 200
        ours, ref = _rgba(r.content), _rgba(path.read_bytes())
        same += (ours == ref).all(axis=-1).sum()
        total += 256 * 256
    assert total >= 4 * 256 * 256 and same / total > 0.999


def test_replacing_a_layer_invalidates_its_cached_tiles(depth_api):
    c, t = depth_api
    z, y, x = _tile_of(84100.0, 447200.0, 18)
    url = BASE.format(DEPTH) + f"/{z}/{y}/{x}"
    first = c.get(url, headers=t.h("read"))
    assert c.get(url, headers=t.h("read")).content == first.content          # served from the cache
    assert c.get(url, headers=t.h("read") | {"If-None-Match": first.headers["etag"]}).status_code == 304
    t.scene.add_layer(DEPTH, _depth_grid(1.0, 1.0), kind="flood_result", units="m", replace=True)
    second = c.get(url, headers=t.h("read") | {"If-None-Match": first.headers["etag"]})
    assert second.status_code == 200 and second.headers["etag"] != first.headers["etag"]
    assert (_rgba(second.content) == tiles.depth_colormap(2.0)[1 + round(1.0 / 2.0 * 254)]).all()
    t.scene.remove_layer(DEPTH)
    assert c.get(url, headers=t.h("read")).status_code == 404


def test_only_depth_rasters_get_tiles(api):
    c, t = api
    t.scene.add_layer("flood_test_arrival", _depth_grid(600.0, 900.0), kind="flood_result", units="s",
                      replace=True)
    z, y, x = _tile_of(84100.0, 447200.0, 18)
    for name in ("flood_test_arrival", "trees"):
        r = c.get(BASE.format(name) + f"/{z}/{y}/{x}", headers=t.h("read"))
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_concurrent_requests_for_a_tile_render_it_once():
    import asyncio
    import threading

    from api.tiles3d import RasterTiles

    calls, gate = [], threading.Event()

    def render(v):
        calls.append(v)
        gate.wait(5)
        if v == "bad":
            raise ValueError("broken tile")
        return v * 2

    async def main():
        cache = RasterTiles()
        many = [asyncio.create_task(cache.once(("t", 1), render, "ab")) for _ in range(20)]
        bad = [asyncio.create_task(cache.once(("t", 2), render, "bad")) for _ in range(5)]
        await asyncio.sleep(0.2)
        gate.set()
        done = await asyncio.gather(*many)
        errors = await asyncio.gather(*bad, return_exceptions=True)
        return done, errors, cache._pending

    done, errors, pending = asyncio.run(main())
    assert done == ["abab"] * 20 and sorted(calls) == ["ab", "bad"] and pending == {}
    assert all(isinstance(e, ValueError) and str(e) == "broken tile" for e in errors)


def test_large_rasters_are_read_per_tile(tmp_path):
    """Over ``max_cells`` the band is not held in memory: each tile is read through rio-tiler (at the overview
    that fits the zoom) and coloured the same way."""
    from tiles.maptiles import DepthTiles

    grid = _depth_grid(0.5, 0.0) + xr.DataArray(np.linspace(0, 1.5, 100), dims="x").astype("float32")
    path = tmp_path / "depth.tif"
    grid.rio.write_crs("EPSG:28992").rio.to_raster(path, driver="COG")
    in_memory, per_tile = DepthTiles(path), DepthTiles(path, max_cells=0)
    z, y, x = _tile_of(84200.0, 447200.0, 17)
    a, b = _rgba(in_memory.tile(z, x, y)), _rgba(per_tile.tile(z, x, y))
    assert (a[..., 3] > 0).mean() > 0.1 and (a == b).all(axis=-1).mean() > 0.999
    assert per_tile.tile(17, 0, 0) is None


def test_the_map_tiles_of_cim_tiles_build_are_served(tmp_path):
    import geopandas as gpd
    import mapbox_vector_tile
    from shapely import box as sbox

    import cim
    from api import Settings, create_app
    from tiles.scene import build_scene_tiles

    scene = cim.Scene.create(str(tmp_path / "s.cim"), crs="EPSG:28992", name="t")
    scene.add_layer("buildings", gpd.GeoDataFrame({"id": ["a"], "height": [10.0]},
                    geometry=[sbox(85000, 446000, 85020, 446020)], crs="EPSG:28992"), kind="buildings")
    x = np.arange(84900.0, 85100.0, 10.0)
    dem = xr.DataArray(np.add.outer(np.arange(20.0)[::-1], np.zeros(20)), dims=("y", "x"),
                       coords={"y": np.arange(446100.0, 445900.0, -10.0), "x": x}).rio.write_crs("EPSG:28992")
    scene.add_layer("dem", dem, kind="terrain", units="m")
    build_scene_tiles(scene, tmp_path / "tiles", viewer=False)
    mvt = sorted((tmp_path / "tiles" / "buildings" / "mvt" / "16").rglob("*.mvt"))[0]
    png = sorted((tmp_path / "tiles" / "dem" / "hillshade").rglob("*.png"))[0]
    from fastapi.testclient import TestClient

    with TestClient(create_app(Settings(scene=str(tmp_path / "s.cim"), anonymous_read=True,
                                        tiles_root=tmp_path / "tiles"))) as c:
        assert c.get("/collections/buildings/tiles").json()["tilesets"][0]["dataType"] == "vector"
        r = c.get(BASE.format("buildings") + f"/16/{mvt.stem}/{mvt.parent.name}")
        assert r.status_code == 200 and r.content == mvt.read_bytes()
        assert [f["properties"]["id"] for f in mapbox_vector_tile.decode(r.content)["buildings"]["features"]] == ["a"]
        z = png.parent.parent.name
        r = c.get(BASE.format("dem") + f"/{z}/{png.stem}/{png.parent.name}")
        assert r.status_code == 200 and r.content == png.read_bytes()
    scene.close()
