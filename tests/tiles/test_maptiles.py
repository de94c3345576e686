"""2D map tiles: XYZ PNG (hillshade, flood depth with legend) and Mapbox Vector Tiles on WebMercatorQuad."""

from __future__ import annotations

import itertools
import json
import logging

import geopandas as gpd
import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from PIL import Image
from pyproj import Transformer

import cim
import tiles

TMS = morecantile.tms.get("WebMercatorQuad")
X0, Y0 = 84_000.0, 447_000.0


def grid(values: np.ndarray, res: float = 2.0) -> xr.DataArray:
    ny, nx = values.shape
    x = X0 + res * (np.arange(nx) + 0.5)
    y = Y0 + res * (np.arange(ny)[::-1] + 0.5)
    return xr.DataArray(values, dims=("y", "x"), coords={"x": x, "y": y}).rio.write_crs("EPSG:28992")


def pixel_of(tile_dir, z: int, px: float, py: float):
    """RGBA of the tile pixel containing the RD point (px, py), and the tile."""
    lon, lat = Transformer.from_crs("EPSG:28992", "EPSG:4326", always_xy=True).transform(px, py)
    t = TMS.tile(lon, lat, z)
    im = np.asarray(Image.open(tile_dir / str(z) / str(t.x) / f"{t.y}.png").convert("RGBA"))
    b = TMS.xy_bounds(t)
    mx, my = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(lon, lat)
    col = int((mx - b.left) / (b.right - b.left) * 256)
    row = int((b.top - my) / (b.top - b.bottom) * 256)
    return im[row, col], im


def test_hillshade_lights_slopes_facing_the_sun():
    n = 40
    xx = np.tile(np.arange(n), (n, 1))
    west_up = grid((n - xx) * 1.0)          # rises towards the west: faces east, away from a NW sun
    east_up = grid(xx * 1.0)                # rises towards the east: faces west, towards the sun
    flat = grid(np.zeros((n, n)))
    hs_w, hs_e, hs_f = (tiles.hillshade(g).to_numpy()[5:-5, 5:-5] for g in (west_up, east_up, flat))
    assert (hs_f == round(1 + 254 * np.sin(np.radians(45)))).all()
    assert hs_e.mean() > hs_f.mean() > hs_w.mean()
    assert tiles.hillshade(flat).rio.nodata == 0
    # 45-degree planes under the default sun (azimuth 315, altitude 45): cos(zenith) cos(slope) + sin(zenith)
    # sin(slope) cos(azimuth - aspect) is 1 facing north-west (255) and 0 facing south-east (1); facing north
    # or south they get the same, 1/2 + 1/2 cos(45) (a north-south mirror would light the south face instead)
    y, x = xr.broadcast(flat.y, flat.x)
    faces = {"NW": ((x - y) / np.sqrt(2), 255), "SE": ((y - x) / np.sqrt(2), 1),
             "N": (-y, round(1 + 254 * (0.5 + 0.5 * np.cos(np.radians(45))))),
             "S": (y, round(1 + 254 * (0.5 + 0.5 * np.cos(np.radians(135)))))}
    for face, (z, want) in faces.items():
        got = tiles.hillshade(flat.copy(data=z.transpose("y", "x").values)).to_numpy()[1:-1, 1:-1]
        assert (got == want).all(), (face, np.unique(got), want)


def test_depth_colours_are_the_ramps_stops_and_darken_with_depth():
    cmap = tiles.depth_colormap(2.0)
    assert cmap[0] == (0, 0, 0, 0)                      # dry: transparent
    assert cmap[1] == (191, 230, 255, 255)              # the shallowest: the 0.01 m stop (0.75, 0.9, 1.0)
    assert cmap[128] == (51, 26, 128, 255)              # (128 - 1) / 254 * 2 = 1.00 m: (0.2, 0.1, 0.5)
    assert cmap[255] == (89, 0, 89, 255)                # 2.00 m: (0.35, 0.0, 0.35)
    assert tiles.depth_colormap(1.0)[255] == (51, 26, 128, 255)  # scaled to a 1 m maximum
    luma = [0.299 * r + 0.587 * g + 0.114 * b for r, g, b, _ in (cmap[v] for v in range(1, 256))]
    assert all(b <= a + 1 for a, b in itertools.pairwise(luma))  # deeper is never lighter (but for 8-bit rounding)
    assert luma[0] > 3 * luma[127] > 3 * luma[254]


def test_depth_tiles_are_coloured_by_the_ramp_and_dry_is_transparent(tmp_path):
    d = np.zeros((100, 100))
    d[20:60, 20:60] = 0.4                    # a 80 m square pond, 0.4 m deep
    tj = tiles.raster_xyz_tiles(grid(d), tmp_path, kind="depth", zooms=(15, 17), max_depth=2.0)
    meta = json.loads(tj.read_text())
    assert meta["minzoom"] == 15 and meta["maxzoom"] == 17 and meta["tiles"] == ["{z}/{x}/{y}.png"]
    legend = json.loads((tmp_path / "legend.json").read_text())
    assert legend["unit"] == "m" and legend["stops"][0]["depth"] == 0.01
    assert Image.open(tmp_path / "legend.png").size == (220, 60)
    wet, im = pixel_of(tmp_path, 17, X0 + 80.0, Y0 + 120.0)     # inside the pond (rows 20..60 from the top)
    assert im.shape == (256, 256, 4)
    # 0.4 m is byte 52 (1 + round(0.2 * 254)), i.e. 0.4016 m, between the ramp's 0.30 m (0.2, 0.5, 0.88) and
    # 0.50 m (0.1, 0.3, 0.7) stops: 0.508 of the way, (0.149, 0.398, 0.789) -> (38, 102, 201)
    assert np.abs(wet.astype(int) - np.array([38, 102, 201, 255])).max() <= 1
    # dry is transparent: the coloured area at zoom 17 is the pond's 6400 m2 (Web Mercator pixels shrink by
    # cos(lat)^2 on the ground)
    lat = np.radians(TMS.ul(TMS.tile(4.35, 52.0, 17)).y)
    pixel_m2 = (2 * np.pi * 6378137.0 / 2**17 / 256) ** 2 * np.cos(lat) ** 2
    alpha = [np.asarray(Image.open(p).convert("RGBA"))[:, :, 3] for p in (tmp_path / "17").rglob("*.png")]
    assert sum(int((a > 0).sum()) for a in alpha) * pixel_m2 == pytest.approx(6400.0, rel=0.05)
    assert any((a == 0).any() for a in alpha)
    for z in (15, 16, 17):
        assert any((tmp_path / str(z)).rglob("*.png"))


def test_raster_tiles_reject_bad_input(tmp_path):
    g = grid(np.zeros((10, 10)))
    with pytest.raises(cim.ValidationError, match="kind"):
        tiles.raster_xyz_tiles(g, tmp_path, kind="slope")
    with pytest.raises(cim.DataError, match="dry"):
        tiles.raster_xyz_tiles(g, tmp_path, kind="depth", zooms=(15, 15))


def test_vector_tiles_round_trip_geometry_and_properties(tmp_path):
    polys = [shapely.box(X0, Y0, X0 + 50, Y0 + 30), shapely.box(X0 + 100, Y0, X0 + 120, Y0 + 80)]
    gdf = gpd.GeoDataFrame({"name": ["Markt", "Oude Kerk"], "height": [12.5, 75.0], "year": [1620, 1350]},
                           geometry=polys, crs="EPSG:28992")
    tj = tiles.vector_tiles(gdf, tmp_path, layer="buildings", zooms=(16, 17))
    meta = json.loads(tj.read_text())
    assert meta["vector_layers"][0]["id"] == "buildings"
    to_merc = Transformer.from_crs("EPSG:28992", "EPSG:3857", always_xy=True)
    lon, lat = Transformer.from_crs("EPSG:28992", "EPSG:4326", always_xy=True).transform(X0 + 10, Y0 + 10)
    t = TMS.tile(lon, lat, 17)
    data = mapbox_vector_tile.decode((tmp_path / "17" / str(t.x) / f"{t.y}.mvt").read_bytes(),
                                     default_options={"y_coord_down": False})
    feats = data["buildings"]["features"]
    assert data["buildings"]["extent"] == 4096
    markt = next(f for f in feats if f["properties"]["name"] == "Markt")
    assert markt["properties"] == {"name": "Markt", "height": 12.5, "year": 1620}
    # tile units back to Web Mercator: the corner of the polygon within one tile unit
    b = TMS.xy_bounds(t)
    ring = np.array(markt["geometry"]["coordinates"][0], float)
    mx = b.left + ring[:, 0] / 4096 * (b.right - b.left)
    my = b.bottom + ring[:, 1] / 4096 * (b.top - b.bottom)
    unit = (b.right - b.left) / 4096
    merc = shapely.transform(polys[0], lambda c: np.column_stack(to_merc.transform(c[:, 0], c[:, 1])))
    pad = 64 * unit
    want = shapely.clip_by_rect(merc, b.left - pad, b.bottom - pad, b.right + pad, b.top + pad)
    got = shapely.Polygon(np.column_stack([mx, my]))
    assert shapely.hausdorff_distance(got, want) < 1.5 * unit
    assert got.area == pytest.approx(want.area, rel=0.01)


def decoded(folder) -> dict[str, dict]:
    """{z/x/y: decoded tile} of a folder of .mvt tiles."""
    return {str(p.relative_to(folder).with_suffix("")): mapbox_vector_tile.decode(
        p.read_bytes(), default_options={"y_coord_down": False}) for p in sorted(folder.rglob("*.mvt"))}


def test_scene_vector_tiles_same_on_both_backends(store_url, tmp_path, caplog):
    """ST_AsMVT on PostGIS and the Python encoder on the embedded store give the same tiles."""
    scene = cim.Scene.create(store_url, crs="EPSG:28992", name="MVT")
    polys = [shapely.box(X0 + 30 * i, Y0, X0 + 30 * i + 20, Y0 + 25) for i in range(5)]
    polys[2] = shapely.Polygon(shapely.box(X0 + 60, Y0, X0 + 90, Y0 + 30).exterior.coords,
                               [shapely.box(X0 + 70, Y0 + 10, X0 + 80, Y0 + 20).exterior.coords])
    gdf = gpd.GeoDataFrame({"name": [f"b{i}" for i in range(5)], "height": [3.5, 7.0, 9.25, 12.0, 30.0],
                            "year": [1900, 1950, 1960, 2000, 2020]}, geometry=polys, crs="EPSG:28992")
    scene.add_layer("buildings", gdf, kind="buildings")
    with caplog.at_level(logging.INFO, logger="tiles.maptiles"):
        auto = tiles.layer_vector_tiles(scene, "buildings", tmp_path / "auto", zooms=(15, 17))
    assert ("with ST_AsMVT" in caplog.text) == store_url.startswith("postgresql")     # the database encoded
    python = tiles.layer_vector_tiles(scene, "buildings", tmp_path / "python", zooms=(15, 17), backend="python")
    a, b = decoded(auto.parent), decoded(python.parent)
    assert set(a) == set(b) and len(a) >= 3
    for key in a:
        fa = sorted(a[key]["buildings"]["features"], key=lambda f: f["properties"]["name"])
        fb = sorted(b[key]["buildings"]["features"], key=lambda f: f["properties"]["name"])
        assert [f["properties"] for f in fa] == [f["properties"] for f in fb]
        assert a[key]["buildings"]["extent"] == b[key]["buildings"]["extent"] == 4096
        for ga, gb in zip(fa, fb, strict=True):
            sa_, sb = shapely.geometry.shape(ga["geometry"]), shapely.geometry.shape(gb["geometry"])
            assert shapely.hausdorff_distance(sa_, sb) <= 2.0                # tile units
            assert sa_.area == pytest.approx(sb.area, rel=0.02)
    assert json.loads(auto.read_text())["vector_layers"][0]["id"] == "buildings"
