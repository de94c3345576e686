"""CityJSON geometry paths the sample files do not cover: TINRelief, GeometryInstance templates, CompositeSolid
with partial semantics, version 1.1 without a transform — a tiny hand-made model with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

import ingest
from cim.mesh import TriangleMesh


def _box(i0: int) -> list:
    """Solid shell of a box from 8 vertices starting at i0 (bottom 0-3, top 4-7)."""
    b, t = list(range(i0, i0 + 4)), list(range(i0 + 4, i0 + 8))
    return [[[b[0], b[3], b[2], b[1]]], [[t[0], t[1], t[2], t[3]]]] + [
        [[b[k], b[(k + 1) % 4], t[(k + 1) % 4], t[k]]] for k in range(4)]


def _corners(x0, y0, w, d, z0, z1):
    c = [(x0, y0), (x0 + w, y0), (x0 + w, y0 + d), (x0, y0 + d)]
    return [[x, y, z0] for x, y in c] + [[x, y, z1] for x, y in c]


@pytest.fixture
def model(tmp_path):
    v = []
    v += [[1000, 1000, 1.0], [1100, 1000, 1.0], [1100, 1100, 2.0], [1000, 1100, 2.0]]     # 0-3 relief corners
    v += _corners(1010, 1010, 10, 10, 1.1, 7.1)                                          # 4-11 box A
    v += _corners(1020, 1010, 5, 10, 1.1, 4.1)                                           # 12-19 box B
    v += [[1050, 1050, 1.5]]                                                             # 20 tree anchor
    doc = {
        "type": "CityJSON", "version": "1.1",
        "metadata": {"referenceSystem": "urn:ogc:def:crs:EPSG::28992"},
        "CityObjects": {
            "relief": {"type": "TINRelief", "geometry": [{"type": "CompositeSurface", "lod": "1",
                                                           "boundaries": [[[0, 1, 2]], [[0, 2, 3]]]}]},
            "house": {"type": "Building", "attributes": {"roofType": "flat"},
                      "address": [{"CountryName": "NL", "LocalityName": "Delft", "ThoroughfareName": "Julianalaan",
                                   "ThoroughfareNumber": "134"}],
                      "geometry": [{"type": "CompositeSolid", "lod": "2",
                                    "boundaries": [[_box(4)], [_box(12)]],
                                    "semantics": {"surfaces": [{"type": "GroundSurface"}, {"type": "RoofSurface"},
                                                               {"type": "WallSurface"}],
                                                  "values": [[[0, 1, 2, 2, 2, 2]], None]}}]},
            "tree": {"type": "SolitaryVegetationObject",
                     "geometry": [{"type": "GeometryInstance", "template": 0, "boundaries": [20],
                                   "transformationMatrix": [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1]}]},
            "lamp": {"type": "CityFurniture", "geometry": [{"type": "MultiPoint", "lod": "1", "boundaries": [20]}]},
        },
        "geometry-templates": {
            "templates": [{"type": "MultiSurface", "lod": "2", "boundaries": [[[0, 1, 2]], [[0, 2, 3]]]}],
            "vertices-templates": [[-1, -1, 0], [1, -1, 0], [1, 1, 3], [-1, 1, 3]]},
        "vertices": v,
    }
    p = tmp_path / "tiny.city.json"
    p.write_text(json.dumps(doc))
    return p


def test_tin_relief_and_its_dem(model):
    r = ingest.read(model, dem_resolution=10.0)
    relief = r["relief"]
    assert r.layers["relief"].kind == "terrain" and r.layers["relief"].cim_level == 1
    assert (relief["z_min"].iloc[0], relief["z_max"].iloc[0]) == (1.0, 2.0)
    dem = r["dem"]
    assert dem.shape == (10, 10) and int(dem.isnull().sum()) == 0
    # a plane rising 1 m over 100 m northwards: at y = 1055 (the cell centre) z = 1.55
    assert float(dem.sel(x=1055.0, y=1055.0)) == pytest.approx(1.55, abs=1e-6)


def test_composite_solid_building_with_partial_semantics(model):
    r = ingest.read(model, dem=False)
    b = r["buildings"].iloc[0]
    assert (b["id"], b["lod"], b["ground_z"], b["roof_z"], b["eaves_z"]) == ("house", "2", 1.1, 7.1, 7.1)
    attrs = json.loads(b["attributes"])
    assert attrs["roofType"] == "flat" and attrs["address"][0]["ThoroughfareName"] == "Julianalaan"
    # the ground surface is known only for box A (box B's semantics are null): footprint from GroundSurface
    assert b.geometry.area == pytest.approx(100.0)
    s = r["building_surfaces"]
    assert sorted(s["surface"]) == ["GroundSurface", "RoofSurface", "WallSurface", "unknown"]
    unknown = TriangleMesh.from_multipolygon(s[s["surface"] == "unknown"].geometry.iloc[0])
    assert unknown.area() == pytest.approx(2 * 50 + 2 * (5 * 3) + 2 * (10 * 3))      # box B: 6 faces


def test_geometry_instance_is_placed_at_its_anchor(model):
    r = ingest.read(model, dem=False)
    tree = r["vegetation"].iloc[0]
    assert tree["type"] == "SolitaryVegetationObject" and tree["lod"] == "2"
    xyz = shapely.get_coordinates(tree.geometry, include_z=True)
    assert xyz.min(axis=0) == pytest.approx([1048, 1048, 1.5]) and xyz.max(axis=0) == pytest.approx([1052, 1052, 7.5])
    # the lamp has points only: skipped with its reason
    assert [(s.item, s.reason) for s in r.skipped] == [("lamp", "CityFurniture has no surface geometry")]
    assert np.isfinite(r["buildings"]["height"]).all()
