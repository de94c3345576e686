"""The main job: `cim demo` builds the Delft scene from the bundled data, on any machine."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import cim
from api.demo import run_demo


def test_demo_builds_the_delft_scene(tmp_path):
    steps = []
    res = run_demo(tmp_path, progress=lambda label, i, n: steps.append((label, i, n)))
    assert [s[0] for s in steps][:2] == ["scene", "city model"] and steps[-1][1] == steps[-1][2] - 1
    scene = cim.open_scene(tmp_path / "delft.cim")
    assert scene.name == "Delft" and scene.crs.to_epsg() == 7415
    names = {i.name: i for i in scene.layers}
    assert names["buildings"].count == 160 and names["roads"].count == 143 and names["water"].count == 3
    dem = scene.layer("dem")
    assert -0.46 <= float(np.nanmin(dem)) and float(np.nanmax(dem)) <= 16.81      # the file's ground heights
    assert list(scene.regions["name"]) == ["Delft", "Binnenstad", "Binnenstad-Noord", "Binnenstad-Zuid"]
    # every building lies in the Binnenstad district; each lies in at least one of its two halves
    assert len(scene.layer("buildings", region="Binnenstad")) == 160
    n = len(scene.layer("buildings", region="Binnenstad-Noord")) + len(scene.layer("buildings", region="Binnenstad-Zuid"))
    assert 160 <= n < 200
    x0, y0, x1, y1 = scene.extent
    assert (x1 - x0, y1 - y0) == (525.0, 329.0)
    radar = scene.layer("radar_20100826")
    assert radar.sizes["time"] == 92 and radar.attrs.get("units", names["radar_20100826"].units) == "mm/h"
    assert res.timings["city model"] > 0


def test_cim_demo_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cim.cli", "demo", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "160" in out.stdout and "demo finished" in out.stdout and "Traceback" not in out.stderr
