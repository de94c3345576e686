"""A small real scene for the HTTP tests: two vector layers, a tiny terrain (a bowl of 12 x 12 cells around a
building, so that flood jobs run in milliseconds), a rain gauge with observations, API keys of every scope (and a
revoked one), a tiles root with a tileset; clients over the app built by `api.create_app`."""

from __future__ import annotations

import json
import uuid
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from fastapi.testclient import TestClient
from shapely import Point, box

import cim
import cim.security as sec  # its tables are created when a store is created/opened
import tiles
from api import Settings, create_app
from cim import iot

SCOPES = ("read", "ingest", "run", "admin")
RAIN = [0.0, 1.5, 3.0, 4.5, 6.0]      # hourly from 2020-06-17T10:00Z


def buildings() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": ["a", "b", "c"], "height": [10.0, 20.0, 30.0], "floors": [1, 2, 3], "name": ["Alpha", "O'Brien", "Gamma"],
         "built": pd.to_datetime(["2000-01-01", "2010-06-01", "2020-01-01"], utc=True)},
        geometry=[Point(155000, 463000), box(155100, 463100, 155200, 463200), Point(85000, 446000)],
        crs="EPSG:28992")


def trees() -> gpd.GeoDataFrame:        # no id column, no time: ids are positions
    return gpd.GeoDataFrame({"girth": [float(i) for i in range(25)]},
                            geometry=[Point(84000 + 10 * i, 447000) for i in range(25)], crs="EPSG:28992")


BOWL = (155030.0, 463030.0, 155270.0, 463270.0)    # the terrain's bounds (EPSG:28992): 12 x 12 cells of 20 m


def terrain() -> xr.DataArray:
    """A bowl 0.5 m deep around building "b" (whose cells are walls): rain gathers around the building."""
    n, dx = 12, 20.0
    x = BOWL[0] + dx * (np.arange(n) + 0.5)
    y = BOWL[3] - dx * (np.arange(n) + 0.5)
    xx, yy = np.meshgrid(x - (BOWL[0] + 120), y - (BOWL[1] + 120))
    z = (1.0 + 0.5 * (xx ** 2 + yy ** 2) / 120 ** 2).astype("float32")
    return xr.DataArray(z, coords={"y": y, "x": x}, dims=("y", "x")).rio.write_crs("EPSG:28992").rio.write_nodata(
        np.nan)


def gauge() -> iot.Thing:
    ds = iot.Datastream(
        name="rain", unit_of_measurement=iot.UnitOfMeasurement("millimetre", "mm"), sensor=iot.Sensor("tipping bucket"),
        observed_property=iot.ObservedProperty("precipitation_amount"),
        observations=tuple(iot.Observation(f"2020-06-17T{10 + i}:00:00Z", v) for i, v in enumerate(RAIN)))
    level = iot.Datastream(
        name="level", unit_of_measurement=iot.UnitOfMeasurement("metre", "m"), sensor=iot.Sensor("radar level"),
        observed_property=iot.ObservedProperty("water_level"),
        observations=(iot.Observation("2020-06-17T10:00:00Z", -0.4, feature_of_interest=iot.FeatureOfInterest(
            "Oude Delft low point", {"type": "Point", "coordinates": [4.357, 52.012]})),))
    return iot.Thing(name="Gauge Delft", description="rain and level",
                     locations=(iot.Location("Delft", {"type": "Point", "coordinates": [4.36, 52.01]}),),
                     datastreams=(ds, level))


@dataclass
class Twin:
    url: str
    scene: cim.Scene
    tiles: Path
    tokens: dict[str, str]
    rain_id: int
    level_id: int
    thing_id: int
    _stack: ExitStack = field(default_factory=ExitStack)

    def h(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"X-API-Key": self.tokens[who]}

    def client(self, **settings) -> TestClient:
        s = Settings(scene=self.url, tiles_root=self.tiles, **settings)
        return self._stack.enter_context(TestClient(create_app(s)))

    def audit(self) -> list[sec.AuditEntry]:
        with self.scene.store.engine.connect() as conn:
            return sec.audit_log(conn)


def build(url: str, tmp: Path) -> Twin:
    scene = cim.Scene.create(url, crs="EPSG:28992", name="Test town")
    scene.add_layer("buildings", buildings(), kind="buildings")
    scene.add_layer("trees", trees(), kind="other")
    scene.add_layer("dem", terrain(), kind="terrain", units="m")
    tokens = {}
    with scene.store.engine.begin() as conn:
        added = iot.add_thing(conn, gauge())
        for s in SCOPES:
            tokens[s] = sec.create_key(conn, f"{s} key", [s])[1]
        revoked, tokens["revoked"] = sec.create_key(conn, "old admin key", ["admin"])
        sec.revoke_key(conn, revoked.key_id)
    tiles_root = tmp / "tiles"
    (tiles_root / "city").mkdir(parents=True)
    (tiles_root / "city" / "tileset.json").write_text(json.dumps({"asset": {"version": "1.1"}, "geometricError": 100,
                                                            "root": {"content": {"uri": "content/0.glb"}}}))
    (tiles_root / "city" / "content").mkdir()
    (tiles_root / "city" / "content" / "0.glb").write_bytes(b"glTF\x02\x00\x00\x00" + bytes(range(256)) * 4)
    (tmp / "secret.txt").write_text("TOP-SECRET")
    with warnings.catch_warnings():       # mapbox_vector_tile calls a deprecated shapely function: not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        tiles.vector_tiles(scene.layer("buildings"), tiles_root / "maps" / "buildings", layer="buildings",
                           zooms=(12, 12))
    return Twin(url, scene, tiles_root, tokens, added.datastream_ids["rain"], added.datastream_ids["level"],
                added.thing_id)


@pytest.fixture
def twin(store_url, tmp_path):
    t = build(store_url, tmp_path)
    with t._stack:
        yield t
    t.scene.close()


@pytest.fixture(scope="module", params=["embedded", pytest.param("postgis", marks=pytest.mark.postgis)])
def shared_twin(request, tmp_path_factory):
    """One twin per module and backend, for tests that only read (built once: PostGIS layers take seconds)."""
    tmp = tmp_path_factory.mktemp("twin")
    if request.param == "embedded":
        url = str(tmp / "scene.cim")
    else:
        url = request.getfixturevalue("postgis_cluster").url(schema=f"api_{uuid.uuid4().hex[:10]}")
    t = build(url, tmp)
    with t._stack:
        yield t
    t.scene.close()


@pytest.fixture
def twin_embedded(tmp_path):
    t = build(str(tmp_path / "scene.cim"), tmp_path)
    with t._stack:
        yield t
    t.scene.close()
