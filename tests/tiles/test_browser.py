"""End to end: tilesets served on loopback, opened by the viewer page (CesiumJS) in headless Debian Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
import xarray as xr
from PIL import Image
from pyproj import Transformer

import cim
import tiles
from tests.tiles.helpers import Server, assert_valid, run_viewer

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "tiles"
DELFT = (84_900.0, 447_400.0)


def blocks(n: int, seed: int = 7) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    x = DELFT[0] + (np.arange(n) % side) * 30.0
    y = DELFT[1] + (np.arange(n) // side) * 30.0
    h = rng.uniform(5, 25, n).round(1)
    h[n // 2] = 90.0                                     # one tower, so that a pick from above reaches it
    return gpd.GeoDataFrame({
        "id": [f"NL.{i}" for i in range(n)], "name": [f"Huis {i}" for i in range(n)], "height": h,
        "year": rng.integers(1700, 2020, n)},
        geometry=[shapely.box(a, b, a + 14, b + 14) for a, b in zip(x, y, strict=True)], crs="EPSG:28992")


def roof_centre_ecef(gdf, i: int) -> list[float]:
    c = gdf.geometry.iloc[i].centroid
    t = Transformer.from_crs("EPSG:28992", "EPSG:4978", always_xy=True)
    return list(t.transform(c.x, c.y, float(gdf["height"].iloc[i])))


def not_blank(png: Path) -> float:
    """Share of pixels that differ clearly from the most common colour (background/ground)."""
    a = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)
    colours, counts = np.unique(a, axis=0, return_counts=True)
    bg = colours[np.argmax(counts)]
    return float((np.abs(a - bg).sum(axis=1) > 30).mean())


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("fmt, quantize", [("glb", False), ("b3dm", False), ("glb", True)])
def test_cesium_loads_counts_and_picks_buildings(tmp_path, fmt, quantize):
    gdf = blocks(64)
    site = tmp_path / "site"
    ts = tiles.buildings_to_3dtiles(gdf, site / "buildings", max_features=20, format=fmt, quantize=quantize)
    n_tiles = len(list((site / "buildings" / "tiles").iterdir()))
    tiles.write_viewer(site, [ts])
    assert_valid(sorted((site / "buildings" / "tiles").iterdir()))
    tower = int(np.argmax(gdf["height"]))
    shot = ARTIFACTS / f"buildings_{fmt}{'_quantized' if quantize else ''}.png"
    with Server(site) as srv:
        res = run_viewer(f"{srv.url}/index.html?sse=0&pitch=-70", shot, picks=[roof_centre_ecef(gdf, tower)])
    assert res["errors"] == [], res["errors"]
    assert [c for c in res["console"] if c.startswith("error")] == []
    assert res["requestsOutside"] == []                                   # nothing from the network
    (stats,) = res["stats"]
    assert stats["loadedLeaves"] == stats["leaves"] >= 4 and stats["tiles"] == n_tiles
    assert stats["leafFeatures"] == len(gdf)                              # features Cesium reports
    (pick,) = res["picks"]
    props = pick["properties"]
    assert props is not None, pick
    assert props["id"] == gdf["id"].iloc[tower] and props["name"] == gdf["name"].iloc[tower]
    assert props["height"] == pytest.approx(90.0) and props["year"] == int(gdf["year"].iloc[tower])
    assert props["cim_level"] == 2 and props["class"] == "building"
    # clicking the tower shows its metadata in the page's table
    assert res["clicked"]["id"] == gdf["id"].iloc[tower] and res["clicked"]["name"] == gdf["name"].iloc[tower]
    assert float(res["clicked"]["height"]) == pytest.approx(90.0)
    assert not_blank(shot) > 0.03


@pytest.mark.browser
def test_viewer_config_lists_tilesets_and_frames(tmp_path):
    gdf = blocks(4)
    a = tiles.buildings_to_3dtiles(gdf, tmp_path / "a")
    b = tiles.buildings_to_3dtiles(gdf, tmp_path / "w0")
    c = tiles.buildings_to_3dtiles(gdf, tmp_path / "w1")
    page = tiles.write_viewer(tmp_path, [a], frames=[b, c], frame_interval_ms=500)
    cfg = json.loads((tmp_path / "viewer-config.json").read_text())
    assert cfg == {"tilesets": [{"url": "a/tileset.json", "name": "a"}],
                   "frames": ["w0/tileset.json", "w1/tileset.json"], "frameInterval": 500}
    assert page.read_text().count("cesium/Cesium.js") == 1
    assert (tmp_path / "cesium" / "Cesium.js").is_file() and (tmp_path / "cesium").is_symlink()
    with pytest.raises(cim.ValidationError, match="not inside"):
        tiles.write_viewer(tmp_path / "other", [a])


@pytest.mark.browser
@pytest.mark.slow
def test_cesium_shows_terrain_and_animates_water_frames(tmp_path):
    from tests.tiles.test_surfaces import dem_grid

    dem = dem_grid()
    d = np.zeros((3, *dem.shape))
    d[0, 20:40, 20:40] = 0.2
    d[1, 20:40, 20:40] = 0.6                                # frame 2 stays dry: an empty tileset
    depth = xr.DataArray(d, dims=("time", "y", "x"), coords={"time": [0, 600, 1200], "x": dem.x, "y": dem.y})
    site = tmp_path / "site"
    terrain = tiles.terrain_to_3dtiles(dem, site / "terrain", block=16, max_features=4)
    frames = tiles.flood_to_3dtiles(depth.rio.write_crs("EPSG:28992"), dem, site / "water", block=8)
    hill = tiles.raster_xyz_tiles(dem, site / "terrain" / "hillshade", kind="hillshade", zooms=(15, 17))
    peak = tiles.raster_xyz_tiles(depth.max("time").rio.write_crs("EPSG:28992"), site / "water" / "depth",
                                  kind="depth", zooms=(15, 17))
    tiles.write_viewer(site, [terrain], frames=frames, imagery=[hill, peak])
    cfg = json.loads((site / "viewer-config.json").read_text())
    assert [i["url"] for i in cfg["imagery"]] == ["terrain/hillshade/{z}/{x}/{y}.png", "water/depth/{z}/{x}/{y}.png"]
    assert cfg["imagery"][1]["legend"] == "water/depth/legend.png"
    assert_valid(sorted(site.rglob("*.glb")))
    # the middle of the pond (cells 20..39): ground + 0.2 m
    iy, ix = 30, 30
    x, y = float(dem.x[ix]), float(dem.y[iy])
    z = float(dem.to_numpy()[iy, ix]) + 0.2
    pick = Transformer.from_crs("EPSG:28992", "EPSG:4978", always_xy=True).transform(x, y, z)
    shot = ARTIFACTS / "terrain_water.png"
    with Server(site) as srv:
        res = run_viewer(f"{srv.url}/index.html?autoplay=0&pitch=-80&range=1.6", shot, picks=[pick])
    assert res["errors"] == [], res["errors"]
    assert [c for c in res["console"] if c.startswith("error")] == []
    assert res["frames"] == 3 and res["frameShown"] == [False, True, False]
    assert res["imagery"] == 2
    terrain_stats, *water = res["stats"]
    assert terrain_stats["loadedTiles"] >= 1 and water[0]["show"] is True
    props = res["picks"][0]["properties"]
    assert props is not None and props["class"] == "flood_water"
    assert props["max_depth"] == pytest.approx(0.2) and props["warning"] == "blue" and props["time"] == "0"
    assert not_blank(shot) > 0.05
