"""3D Tiles tilesets: the Cesium samples are checked, summarised and kept in the scene as files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import cim
import ingest

TILES = Path(__file__).resolve().parents[1] / "data" / "ingest" / "3dtiles"
V10 = TILES / "1.0_TilesetWithRequestVolume" / "tileset.json"
V11 = TILES / "1.1_SparseImplicitQuadtree" / "tileset.json"


def test_tileset_10_explicit_with_external_tileset():
    result = ingest.read(V10)
    (item,) = result.files
    s = item.attrs
    on_disk = {ext: len(list(V10.parent.rglob(f"*{ext}"))) for ext in (".b3dm", ".pnts")}
    assert (s["version"], s["implicit"], s["contents"]) == ("1.0", False, on_disk)
    assert s["tiles"] == 9                              # root, building, points, and the city tileset's 6 tiles
    west, south, east, north = s["bounds_lonlat"]       # Cesium's sample site near Philadelphia
    assert -75.62 < west < east < -75.60 and 40.04 < south < north < 40.05
    assert item.kind == "tileset" and item.path == V10.parent


def test_tileset_11_implicit_quadtree():
    s = ingest.read(V11).files[0].attrs
    assert (s["version"], s["implicit"], s["placement"]) == ("1.1", True, "local")
    assert s["subtrees"] == len(list((V11.parent / "subtrees").glob("*.subtree"))) == 9
    assert s["contents"] == {".glb": len(list((V11.parent / "content").glob("*.glb")))}


def test_tileset_into_scene(store_url):
    scene = cim.Scene.create(store_url, crs="EPSG:7415", name="x")
    report = ingest.ingest(scene, V10, name="philly")
    assert report.added_count("philly") >= 1
    stored = scene.file_path("philly")
    assert (stored / "tileset.json").read_bytes() == V10.read_bytes()
    assert scene.layer_info("philly").info["files"] == sum(1 for p in V10.parent.rglob("*") if p.is_file())


def test_missing_content_is_refused_and_nothing_is_added(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(V10.parent, broken)
    (broken / "building.b3dm").unlink()
    scene = cim.Scene.create(tmp_path / "s.cim", crs="EPSG:7415", name="x")
    with pytest.raises(cim.DataError, match=r"'building.b3dm' is missing"):
        ingest.ingest(scene, broken / "tileset.json")
    assert scene.layers == []
    bad = tmp_path / "tileset.json"
    bad.write_text(json.dumps({"asset": {"version": "2.0"}, "root": {}}))
    with pytest.raises(cim.DataError, match="not a 3D Tiles tileset"):
        ingest.read(bad)
