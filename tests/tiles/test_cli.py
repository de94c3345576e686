"""`cim tiles build SCENE OUT`: a real embedded scene to 3D Tiles, map tiles and the viewer page."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import cim
from cim.cli import main
from tests.tiles.helpers import assert_valid, check_tileset
from tests.tiles.test_buildings import town
from tests.tiles.test_surfaces import dem_grid


@pytest.fixture(scope="module")
def scene_url(tmp_path_factory):
    url = str(tmp_path_factory.mktemp("scene") / "t.cim")
    scene = cim.Scene.create(url, crs="EPSG:28992", name="Tiles test")
    scene.add_layer("buildings", town(20, (84_010.0, 447_010.0), "EPSG:28992"), kind="buildings", cim_level=2)
    dem = dem_grid()
    scene.add_layer("dem", dem, kind="terrain")
    d = np.zeros((2, *dem.shape))
    d[1, 20:30, 20:40] = 0.4
    depth = xr.DataArray(d, dims=("time", "y", "x"), coords={"time": [0.0, 600.0], "x": dem.x, "y": dem.y})
    scene.add_layer("flood", depth.rio.write_crs("EPSG:28992"), kind="flood_result")
    return url


@pytest.mark.browser          # writes the viewer page, which needs the npm cesium package
def test_cim_tiles_build_writes_every_layer_and_the_viewer(scene_url, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["tiles", "build", scene_url, str(out)]) == 0
    printed = capsys.readouterr()
    assert "tiles: done" in printed.err and "viewer:" in printed.out
    for ts in ("buildings/tileset.json", "dem/tileset.json", "flood/t000/tileset.json", "flood/t001/tileset.json"):
        check_tileset(out / ts)
    assert_valid(sorted(out.rglob("*.glb")))
    ids = set()
    for f in (out / "buildings" / "tiles").iterdir():
        from tiles._glb import read_property_table, split_glb

        ids |= set(read_property_table(*split_glb(f.read_bytes()))["id"])
    assert len(ids) == 20
    assert any((out / "buildings" / "mvt").rglob("*.mvt")) and any((out / "dem" / "hillshade").rglob("*.png"))
    assert json.loads((out / "flood" / "depth" / "legend.json").read_text())["unit"] == "m"
    cfg = json.loads((out / "viewer-config.json").read_text())
    assert [t["url"] for t in cfg["tilesets"]] == ["buildings/tileset.json", "dem/tileset.json"]
    assert cfg["frames"] == ["flood/t000/tileset.json", "flood/t001/tileset.json"]


def test_cim_tiles_build_names_unknown_layers(scene_url, tmp_path, capsys):
    assert main(["tiles", "build", scene_url, str(tmp_path / "o"), "--layers", "buildngs", "--no-viewer"]) == 1
    err = capsys.readouterr().err
    assert "buildngs" in err and "buildings" in err and "Traceback" not in err


def test_cim_tiles_build_one_layer_as_b3dm(scene_url, tmp_path):
    out = tmp_path / "o"
    assert main(["tiles", "build", scene_url, str(out), "--layers", "buildings", "--format", "b3dm",
                 "--no-viewer"]) == 0
    assert check_tileset(out / "buildings" / "tileset.json", version="1.0")
    assert_valid(sorted(out.rglob("*.b3dm")))
    assert not (out / "dem").exists() and not (out / "index.html").exists()


def test_build_scene_tiles_on_both_backends(store_url, tmp_path):
    from tiles.scene import build_scene_tiles

    scene = cim.Scene.create(store_url, crs="EPSG:28992", name="Both")
    scene.add_layer("buildings", town(12, (84_010.0, 447_010.0), "EPSG:28992"), kind="buildings")
    scene.add_layer("dem", dem_grid(), kind="terrain")
    res = build_scene_tiles(scene, tmp_path / "out", viewer=False)
    assert set(res.outputs) == {"buildings", "dem"} and res.skipped == {} and res.viewer is None
    check_tileset(res.outputs["buildings"][0], version="1.1")
    check_tileset(res.outputs["dem"][0], version="1.1")
    assert_valid(sorted((tmp_path / "out").rglob("*.glb")))
    ids = set()
    for f in (tmp_path / "out" / "buildings" / "tiles").iterdir():
        from tiles._glb import read_property_table, split_glb

        ids |= set(read_property_table(*split_glb(f.read_bytes()))["id"])
    assert ids == {f"B{i:04d}" for i in range(12)}
    assert any((tmp_path / "out" / "buildings" / "mvt").rglob("*.mvt"))
