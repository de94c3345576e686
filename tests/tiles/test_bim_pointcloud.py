"""BIM element tiles (one feature per element) and LAS/LAZ point clouds through py3dtiles (pnts)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import geopandas as gpd
import laspy
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree

import cim
import tiles
from cim.mesh import TriangleMesh
from tests.tiles.helpers import assert_valid, check_tileset
from tests.tiles.test_surfaces import leaf_points

DATA = Path(__file__).resolve().parents[1] / "data" / "tiles"


def box_mesh(x0, y0, z0, dx, dy, dz) -> shapely.MultiPolygon:
    x1, y1, z1 = x0 + dx, y0 + dy, z0 + dz
    c = {k: v for k, v in zip("abcdefgh", [(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0),
                                             (x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)], strict=True)}
    faces = ["adcb", "efgh", "abfe", "bcgf", "cdhg", "daeh"]          # counter-clockwise seen from outside
    return TriangleMesh.from_polygons([shapely.Polygon([c[k] for k in f]) for f in faces]).to_multipolygon()


def elements() -> gpd.GeoDataFrame:
    x, y = 85_104.7, 446_805.1
    return gpd.GeoDataFrame({
        "guid": ["2O2Fr$t4X7Zf8NOew3FLOH", "1hOSvn6df7F8_7GcBWlRGQ", "0XyZ$abcd1234567890ABC"],
        "ifc_class": ["IfcWall", "IfcSlab", "IfcDoor"],
        "name": ["Wall 1", "Floor 0", "Front door"],
        "storey": ["Ground floor", "Ground floor", None],
        "storey_elevation": [0.0, 0.0, np.nan],
        "properties": [json.dumps({"Pset_WallCommon": {"IsExternal": True, "FireRating": "REI60"}}),
                       json.dumps({"Pset_SlabCommon": {"IsExternal": False}}),
                       json.dumps({"Pset_WallCommon": {"IsExternal": False}})],
    }, geometry=[box_mesh(x, y, 0.5, 10, 0.3, 3), box_mesh(x, y, 0.2, 10, 8, 0.3), box_mesh(x + 4, y - 0.1, 0.5, 1, 0.5, 2.1)],
        crs="EPSG:28992")


def test_bim_elements_one_feature_each_with_metadata(tmp_path):
    els = elements()
    ts = tiles.bim_to_3dtiles(els, tmp_path, properties=["Pset_WallCommon.IsExternal", "Pset_WallCommon.FireRating"])
    check_tileset(ts, version="1.1")
    assert_valid(sorted((tmp_path / "tiles").iterdir()))
    ((pts, m, props),) = leaf_points(ts)
    assert list(props["guid"]) == list(els["guid"])
    assert list(props["ifc_class"]) == ["IfcWall", "IfcSlab", "IfcDoor"]
    assert list(props["storey"]) == ["Ground floor", "Ground floor", ""]
    assert (props["cim_level"] == 6).all()
    assert list(props["Pset_WallCommon_FireRating"]) == ["REI60", "", ""]
    schema = m["gltf"]["extensions"]["EXT_structural_metadata"]["schema"]["classes"]["bim_element"]["properties"]
    assert schema["storey_elevation"]["componentType"] == "FLOAT64"
    for k, geom in enumerate(els.geometry):
        mine = pts[m["feature"] == k]
        assert len(mine) == 36                                         # 12 triangles, flat shaded
        lo, hi = np.array(geom.bounds[:2]), np.array(geom.bounds[2:4])
        assert (mine[:, :2] > lo - 0.01).all() and (mine[:, :2] < hi + 0.01).all()
        zs = shapely.get_coordinates(geom, include_z=True)[:, 2]
        assert mine[:, 2].min() == pytest.approx(zs.min(), abs=0.01)
        assert mine[:, 2].max() == pytest.approx(zs.max(), abs=0.01)


def test_bim_needs_guid_and_3d_meshes(tmp_path):
    with pytest.raises(cim.ValidationError, match="guid"):
        tiles.bim_to_3dtiles(elements().drop(columns="guid"), tmp_path)
    flat = elements().assign(geometry=shapely.box(0, 0, 1, 1))
    with pytest.raises(cim.DataError, match="3D meshes"):
        tiles.bim_to_3dtiles(flat, tmp_path)
    with pytest.raises(cim.ValidationError, match="Pset"):
        tiles.bim_to_3dtiles(elements(), tmp_path, properties=["Nope.Missing"])


def read_pnts(path: Path) -> tuple[dict, np.ndarray]:
    data = path.read_bytes()
    magic, version, length, ft_j, ft_b, _, _ = struct.unpack_from("<4sIIIIII", data)
    assert magic == b"pnts" and version == 1 and length == len(data)
    ft = json.loads(data[28:28 + ft_j])
    body = data[28 + ft_j: 28 + ft_j + ft_b]
    n = ft["POINTS_LENGTH"]
    pos = np.frombuffer(body, np.float32, n * 3, ft["POSITION"]["byteOffset"]).reshape(-1, 3).astype(np.float64)
    return ft, pos + np.array(ft.get("RTC_CENTER", [0.0, 0.0, 0.0]))


def test_point_cloud_placed_from_its_crs(tmp_path):
    src = DATA / "simple.las"
    ts = tiles.pointcloud_to_3dtiles(src, tmp_path / "pc", crs="EPSG:2994")
    tileset = json.loads(ts.read_text())
    assert tileset["asset"]["version"] == "1.0"
    las = laspy.read(src)
    want = np.column_stack([las.x, las.y, las.z])
    back = Transformer.from_crs("EPSG:4978", "EPSG:2994", always_xy=True)
    tree = shapely.STRtree(shapely.points(want[:, :2]))
    full, preview = [], []

    def walk(tile, world):
        m = np.array(tile.get("transform", np.eye(4).reshape(-1)), float).reshape(4, 4).T
        w = world @ m
        if "content" in tile:
            _, pos = read_pnts(ts.parent / tile["content"]["uri"])
            xyz = np.column_stack(back.transform(*(pos @ w[:3, :3].T + w[:3, 3]).T))
            idx = tree.nearest(shapely.points(xyz[:, :2]))
            err = np.abs(xyz - want[idx]).max()
            (preview if tile["content"]["uri"] == "preview.pnts" else full).append((idx, err))
        for c in tile.get("children", []):
            walk(c, w)

    walk(tileset["root"], np.eye(4))
    # the root's preview is a coarse subsample (points snapped, replaced when refined); below it every point of
    # the file is written at its place (feet), to float32 precision in the tile frame (py3dtiles 12 writes the
    # points of the first level again in its ADD children, so some appear twice)
    assert len(preview) == 1 and preview[0][1] < 2.0
    idx = np.concatenate([i for i, _ in full])
    assert max(e for _, e in full) < 0.005
    assert len(np.unique(idx)) == len(want) == 1065


def written_points(ts: Path) -> list[tuple[str, np.ndarray]]:
    """(content uri, ECEF points) of every pnts in a tileset, with the composed tile transforms."""
    out = []

    def walk(tile, world):
        m = np.array(tile.get("transform", np.eye(4).reshape(-1)), float).reshape(4, 4).T
        w = world @ m
        if "content" in tile:
            _, pos = read_pnts(ts.parent / tile["content"]["uri"])
            out.append((tile["content"]["uri"], pos @ w[:3, :3].T + w[:3, 3]))
        for c in tile.get("children", []):
            walk(c, w)

    walk(json.loads(ts.read_text())["root"], np.eye(4))
    return out


def test_laz_placed_from_the_crs_in_its_vlrs(tmp_path):
    """Autzen: LAZ whose CRS is WKT in the VLRs with no EPSG code (Oregon Lambert, international feet)."""
    src = DATA / "autzen_trim.laz"
    ts = tiles.pointcloud_to_3dtiles(src, tmp_path / "pc")
    las = laspy.read(src)
    crs = las.header.parse_crs()
    assert crs is not None and crs.to_epsg() is None
    want = np.column_stack([las.x, las.y, las.z])
    back = Transformer.from_crs("EPSG:4978", crs, always_xy=True)
    geodetic = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
    tree = cKDTree(want)                       # 3D: lidar has several returns over the same x, y
    seen = []
    for uri, ecef in written_points(ts):
        xyz = np.column_stack(back.transform(*ecef.T))
        dist, idx = tree.query(xyz)
        if uri != "preview.pnts":
            assert dist.max() < 0.03                                        # feet, float32 in the tile frame
            seen.append(idx)
    assert len(np.unique(np.concatenate(seen))) == len(want) == 110_000
    lon, lat, _ = geodetic.transform(*written_points(ts)[-1][1][0])
    assert abs(lon - -123.07) < 0.02 and abs(lat - 44.06) < 0.02            # Autzen Stadium, Eugene, Oregon


def test_point_cloud_without_crs_names_the_fix(tmp_path):
    with pytest.raises(cim.CRSError, match="crs="):
        tiles.pointcloud_to_3dtiles(DATA / "simple.las", tmp_path / "pc")
    with pytest.raises(cim.DataError, match="does not exist"):
        tiles.pointcloud_to_3dtiles(DATA / "missing.laz", tmp_path / "pc")
