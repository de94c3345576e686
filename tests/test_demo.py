"""The main job: `cim demo` on the bundled Delft data, end to end, run once for this module."""

from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest

import cim

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    run = subprocess.run([sys.executable, "-m", "cim.cli", "demo", "--out", str(out)], capture_output=True,
                         text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    return out, run


def test_cli_output(demo):
    _, run = demo
    assert "Traceback" not in run.stderr
    for text in ("demo finished", "report:", "cim serve", "forecast 'design_100y'", "forecast 'gauge_20200617'"):
        assert text in run.stdout


def test_scene_contents(demo):
    out, _ = demo
    scene = cim.open_scene(out / "delft.cim")
    assert scene.name == "Delft" and scene.crs.to_epsg() == 7415
    info = {i.name: i for i in scene.layers}
    assert info["buildings"].count == 160 and info["roads"].count == 143 and info["water"].count == 3
    dem = scene.layer("dem")
    assert -0.46 <= float(np.nanmin(dem)) and float(np.nanmax(dem)) <= 16.81      # the file's ground heights
    assert list(scene.regions["name"]) == ["Delft", "Binnenstad", "Binnenstad-Noord", "Binnenstad-Zuid"]
    assert len(scene.layer("buildings", region="Binnenstad")) == 160
    assert (info["radar_20100826"].info["shape"][0], info["radar_20100826"].units) == (92, "mm/h")
    bim = [i for i in scene.layers if i.kind == "bim"]
    assert len(bim) == 1 and bim[0].cim_level == 6
    hot = scene.layer("hotspots")
    assert 1 <= len(hot) <= 8 and (hot["depth"] >= 0.05).all()
    assert not scene.layer("buildings").intersects(hot.union_all()).any()


@pytest.mark.parametrize("name", ["design_100y", "gauge_20200617"])
def test_forecasts(demo, name):
    out, _ = demo
    scene = cim.open_scene(out / "delft.cim")
    depth = scene.layer(f"flood_{name}_max_depth")
    assert depth.rio.crs == scene.crs and float(depth.max()) > 0.15
    attrs = scene.layer_info(f"flood_{name}_max_depth").attrs
    assert abs(attrs["mass_error"]) < 1e-6
    warnings = scene.layer(f"flood_{name}_warnings")
    assert set(warnings["object_type"]) == {"road", "building", "hotspot"}
    warned = warnings[warnings["level"] > 0]
    assert len(warned) > 0 and warned["time_level"].notna().all()
    regions = scene.layer(f"flood_{name}_regions").set_index("region")
    assert regions.loc["Delft", "level"] == warnings["level"].max()
    # the two subdistricts split the district: their counts add up to it
    assert regions.loc["Binnenstad", "buildings_affected"] == \
        regions.loc["Binnenstad-Noord", "buildings_affected"] + regions.loc["Binnenstad-Zuid", "buildings_affected"]
    geo = gpd.read_file(out / "results" / f"{name}_warnings.geojson")
    assert len(geo) == len(warnings) and geo.crs.to_string() == "OGC:CRS84"


def test_design_storm_is_heavier_than_the_gauge_event(demo):
    out, _ = demo
    scene = cim.open_scene(out / "delft.cim")
    design = scene.layer_info("flood_design_100y_max_depth").attrs["rain_volume"]
    gauge = scene.layer_info("flood_gauge_20200617_max_depth").attrs["rain_volume"]
    assert design > gauge > 0


def test_tiles_and_report(demo):
    out, _ = demo
    for name in ("buildings", "terrain", "water/t000"):
        tileset = json.loads((out / "tiles" / name / "tileset.json").read_text())
        assert tileset["asset"]["version"] in ("1.0", "1.1")
    report = (out / "report.html").read_text()
    assert report.count("<img src='data:image/png;base64,") >= 4
    assert "Binnenstad-Zuid" in report and "KNMI" in report and "cim serve" in report
