"""Real sample data through ingest: Rotterdam LoD2 CityJSON buildings and the georeferenced TU Delft IFC model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer

import ingest
import tiles
from tests.tiles.helpers import assert_valid, check_tileset
from tests.tiles.test_surfaces import leaf_points

INGEST_DATA = Path(__file__).resolve().parents[1] / "data" / "ingest"


def test_rotterdam_lod2_surfaces_placed_and_valid(tmp_path):
    read = ingest.read(INGEST_DATA / "rotterdam_subset_lod2.city.json", crs="EPSG:7415")
    buildings, surfaces = read.layers["buildings"].data, read.layers["building_surfaces"].data
    ts = tiles.buildings_to_3dtiles(buildings, tmp_path, surfaces=surfaces)
    check_tileset(ts, version="1.1")
    assert_valid(sorted((tmp_path / "tiles").iterdir()))
    ((pts, m, props),) = leaf_points(ts, crs="EPSG:7415")
    assert sorted(props["id"]) == sorted(buildings["id"]) and (props["cim_level"] >= 3).all()
    # every vertex of a building is a vertex of its LoD2 surfaces (CityJSON coordinates), within 1 cm
    for k, bid in enumerate(props["id"]):
        src = shapely.get_coordinates(surfaces.loc[surfaces["building_id"] == bid].geometry, include_z=True)
        mine = pts[m["feature"] == k]
        d = np.linalg.norm(mine[:, None, :] - src[None, :, :], axis=2).min(axis=1)
        assert d.max() < 0.01, (bid, d.max())


def test_tu_delft_ifc_elements_at_their_map_position(tmp_path):
    model = ingest.read(INGEST_DATA / "bouwkunde_georeferenced.ifc").bim
    ts = tiles.bim_to_3dtiles(model, tmp_path)
    assert_valid(sorted((tmp_path / "tiles").iterdir()))
    ((pts, _, props),) = leaf_points(ts, crs="EPSG:28992")
    assert list(props["guid"]) == list(model.elements["guid"]) and (props["cim_level"] == 6).all()
    # IfcMapConversion puts the model near E 85104.7, N 446805.1 (RD New)
    centre = pts.mean(axis=0)
    assert abs(centre[0] - 85_104.7) < 200 and abs(centre[1] - 446_805.1) < 200
    src = shapely.get_coordinates(model.elements.geometry, include_z=True)
    assert np.abs(pts.min(axis=0) - src.min(axis=0)).max() < 0.01
    assert np.abs(pts.max(axis=0) - src.max(axis=0)).max() < 0.01
    lon, lat = Transformer.from_crs("EPSG:28992", "EPSG:4326", always_xy=True).transform(*centre[:2])
    assert 4.36 < lon < 4.38 and 51.99 < lat < 52.01                           # TU Delft campus
