"""The viewer page loads 3D Tiles served by `cim serve` in headless Chromium (CesiumJS), as in the tiles issue."""

from __future__ import annotations

import numpy as np
import pytest

import cim
import tiles
from tests.api.test_fault import _serve
from tests.tiles.helpers import run_viewer
from tests.tiles.test_browser import blocks, not_blank, roof_centre_ecef


@pytest.mark.browser
@pytest.mark.slow
def test_viewer_through_cim_serve(tmp_path):
    url = str(tmp_path / "scene.cim")
    gdf = blocks(36)
    cim.Scene.create(url, crs="EPSG:28992", name="Delft blocks").add_layer("buildings", gdf, kind="buildings")
    site = tmp_path / "site"
    ts = tiles.buildings_to_3dtiles(gdf, site / "buildings", max_features=12)
    tiles.write_viewer(site, [ts])
    proc, base = _serve(url, "--tiles-root", str(site), "--anonymous-read")
    try:
        tower = int(np.argmax(gdf["height"]))
        res = run_viewer(f"{base}/viewer/index.html?sse=0&pitch=-70", tmp_path / "shot.png",
                         picks=[roof_centre_ecef(gdf, tower)])
    finally:
        proc.terminate()
        proc.wait(10)
    assert res["errors"] == [], (res["errors"], res["console"][:20])
    assert [c for c in res["console"] if c.startswith("error")] == []
    assert res["requestsOutside"] == []
    (stats,) = res["stats"]
    assert stats["loadedLeaves"] == stats["leaves"] >= 3 and stats["leafFeatures"] == len(gdf)
    (pick,) = res["picks"]
    assert pick["properties"]["id"] == gdf["id"].iloc[tower]
    assert not_blank(tmp_path / "shot.png") > 0.03
