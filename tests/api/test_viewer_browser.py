"""The viewer page loads 3D Tiles served by `cim serve` in headless Chromium (CesiumJS), as in the tiles issue,
with the water of the latest forecast job draped over them (map tiles of its maximum depth)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from PIL import Image

import cim
import cim.security as sec
import tiles
from tests.api.test_fault import _serve
from tests.tiles.helpers import run_viewer
from tests.tiles.test_browser import DELFT, blocks, not_blank, roof_centre_ecef


def _terrain() -> xr.DataArray:
    """A bowl of 10 m cells under the blocks (180 m square), 1 m deep in the middle."""
    n, dx = 20, 10.0
    x = DELFT[0] - 10 + dx * (np.arange(n) + 0.5)
    y = DELFT[1] + 190 - dx * (np.arange(n) + 0.5)
    xx, yy = np.meshgrid(x - x.mean(), y - y.mean())
    z = (1.0 + (xx ** 2 + yy ** 2) / 100 ** 2).astype("float32")
    return xr.DataArray(z, coords={"y": y, "x": x}, dims=("y", "x")).rio.write_crs("EPSG:28992")


@pytest.mark.browser
@pytest.mark.slow
def test_viewer_through_cim_serve(tmp_path):
    url = str(tmp_path / "scene.cim")
    gdf = blocks(36)
    scene = cim.Scene.create(url, crs="EPSG:28992", name="Delft blocks")
    scene.add_layer("buildings", gdf, kind="buildings")
    scene.add_layer("dem", _terrain(), kind="terrain", units="m")
    with scene.store.engine.begin() as conn:
        token = sec.create_key(conn, "runner", ["run"])[1]
    scene.close()
    site = tmp_path / "site"
    ts = tiles.buildings_to_3dtiles(gdf, site / "buildings", max_features=12)
    tiles.write_viewer(site, [ts])
    proc, base = _serve(url, "--tiles-root", str(site), "--anonymous-read")
    try:
        before = httpx.get(f"{base}/viewer/viewer-config.json").json()
        r = httpx.post(f"{base}/processes/flood-forecast/execution", headers={"X-API-Key": token},
                       json={"inputs": {"rainfall": 100.0, "duration": 600.0}}, timeout=120)
        assert r.status_code == 200, r.text
        after = httpx.get(f"{base}/viewer/viewer-config.json").json()
        tower = int(np.argmax(gdf["height"]))
        res = run_viewer(f"{base}/viewer/index.html?sse=0&pitch=-70", tmp_path / "shot.png",
                         picks=[roof_centre_ecef(gdf, tower)])
    finally:
        proc.terminate()
        proc.wait(10)
    assert "imagery" not in before and before["tilesets"][0]["name"] == "buildings"
    assert [i["job"] for i in after["imagery"]] == [r.json()["jobID"]]
    assert res["errors"] == [], (res["errors"], res["console"][:20])
    assert [c for c in res["console"] if c.startswith("error")] == []
    assert res["requestsOutside"] == []
    (stats,) = res["stats"]
    assert stats["loadedLeaves"] == stats["leaves"] >= 3 and stats["leafFeatures"] == len(gdf)
    (pick,) = res["picks"]
    assert pick["properties"]["id"] == gdf["id"].iloc[tower]
    assert not_blank(tmp_path / "shot.png") > 0.03
    # the latest forecast's water: one imagery layer, drawn in the depth ramp's blues between the buildings (the
    # globe is green-grey, buildings grey, the sky and panel stay out of the rows looked at)
    assert res["imagery"] == 1
    rgb = np.asarray(Image.open(tmp_path / "shot.png").convert("RGB")).astype(int)[160:]
    water = rgb[..., 2] - rgb[..., 0] > 50
    assert water.mean() > 0.03, water.mean()
