"""Buildings to 3D Tiles: validity, tileset structure, placement, geometry and metadata, checked independently."""

from __future__ import annotations

import itertools
import json
import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

import cim
import tiles
from cim.mesh import TriangleMesh
from tests.tiles.helpers import assert_valid, check_tileset, mesh_of, yup_to_zup

DELFT = (84_900.0, 447_400.0)          # RD New (EPSG:28992 / 7415)
GUANGZHOU = (438_000.0, 2_558_000.0)   # CGCS2000 3-degree GK CM 114E (EPSG:4547), easting, northing


def town(n: int, origin, crs: str, seed: int = 1, spacing: float = 25.0) -> gpd.GeoDataFrame:
    """n buildings on a jittered grid: rectangles, an L shape, a courtyard (hole) and a two-part MultiPolygon."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    geoms = []
    for i in range(n):
        x0 = origin[0] + (i % side) * spacing + rng.uniform(0, 3)
        y0 = origin[1] + (i // side) * spacing + rng.uniform(0, 3)
        w, d = rng.uniform(6, 15), rng.uniform(6, 15)
        if i % 7 == 3:
            g = shapely.Polygon([(x0, y0), (x0 + 16, y0), (x0 + 16, y0 + 6), (x0 + 6, y0 + 6), (x0 + 6, y0 + 16),
                                 (x0, y0 + 16)])
        elif i % 7 == 5:
            g = shapely.Polygon(shapely.box(x0, y0, x0 + 18, y0 + 18).exterior.coords,
                                [shapely.box(x0 + 6, y0 + 6, x0 + 12, y0 + 12).exterior.coords])
        elif i % 7 == 6:
            g = shapely.MultiPolygon([shapely.box(x0, y0, x0 + 7, y0 + 7), shapely.box(x0 + 10, y0, x0 + 17, y0 + 7)])
        else:
            g = shapely.box(x0, y0, x0 + w, y0 + d)
        geoms.append(g)
    return gpd.GeoDataFrame({
        "id": [f"B{i:04d}" for i in range(n)],
        "name": [f"Oude Delft {i} – ü" if i % 4 else None for i in range(n)],
        "height": rng.uniform(4, 40, n).round(2),
        "ground": rng.uniform(-1, 3, n).round(2),
        "year": rng.integers(1600, 2024, n),
        "monument": rng.random(n) < 0.3,
        "roof_area": rng.uniform(10, 300, n),
        "function": rng.choice(["residential", "office", None], n),
    }, geometry=geoms, crs=crs)


def leaf_files(ts_path: Path) -> list[Path]:
    return [ts_path.parent / t["tile"]["content"]["uri"] for t in check_tileset(ts_path)
            if "content" in t["tile"] and not t["tile"].get("children")]


def all_content(ts_path: Path) -> list[Path]:
    return sorted((ts_path.parent / "tiles").iterdir())


@pytest.fixture(scope="module")
def delft(tmp_path_factory):
    gdf = town(150, DELFT, "EPSG:7415")
    out = tmp_path_factory.mktemp("delft")
    return gdf, tiles.buildings_to_3dtiles(gdf, out / "glb", max_features=40), \
        tiles.buildings_to_3dtiles(gdf, out / "b3dm", max_features=40, format="b3dm")


def test_every_content_file_passes_the_khronos_validator(delft):
    _, glb, b3dm = delft
    files = all_content(glb) + all_content(b3dm)
    assert sum(f.suffix == ".glb" for f in files) >= 5 and sum(f.suffix == ".b3dm" for f in files) >= 5
    assert_valid(files)


def test_tileset_structure_quadtree_and_lods(delft):
    gdf, glb, b3dm = delft
    assert json.loads(glb.read_text())["asset"]["version"] == "1.1"
    tiles_ = check_tileset(glb, version="1.1")
    check_tileset(b3dm, version="1.0")
    assert max(t["depth"] for t in tiles_) >= 2                       # a real hierarchy, not one tile
    leaves = [t for t in tiles_ if not t["tile"].get("children")]
    assert all(len(t["tile"].get("children", [])) <= 4 for t in tiles_)
    # every building is in exactly one leaf
    ids = []
    for f in leaf_files(glb):
        gltf, binary = tiles._glb.split_glb(f.read_bytes())
        ids += list(tiles._glb.read_property_table(gltf, binary)["id"])
    assert sorted(ids) == sorted(gdf["id"]) and len(leaves) >= 4
    # inner tiles: coarser (at most max_features simplified blocks), with a positive error
    inner = [t for t in tiles_ if t["tile"].get("children")]
    for t in inner:
        assert t["tile"]["geometricError"] > 0
        m = mesh_of(glb.parent / t["tile"]["content"]["uri"])
        assert m["gltf"]["extensions"]["EXT_structural_metadata"]["propertyTables"][0]["count"] <= 40
        # oriented boxes: 4 roof vertices + 16 wall vertices per building
        assert len(m["positions"]) == 20 * (m["feature"].max() + 1)


def ecef_of(ts_path: Path) -> dict[str, np.ndarray]:
    """ECEF positions of each building's vertices (by id), from leaf contents and composed tile transforms."""
    out: dict[str, list] = {}
    for t in check_tileset(ts_path):
        if t["tile"].get("children") or "content" not in t["tile"]:
            continue
        path = ts_path.parent / t["tile"]["content"]["uri"]
        m = mesh_of(path)
        local = yup_to_zup(m["positions"])
        world = local @ t["world"][:3, :3].T + t["world"][:3, 3]
        if path.suffix == ".glb":
            gltf, binary = tiles._glb.split_glb(path.read_bytes())
            ids = tiles._glb.read_property_table(gltf, binary)["id"].to_numpy()
        else:
            ids = np.array(batch_table(path)["id"])
        for k in np.unique(m["feature"]):
            out.setdefault(ids[k], []).append(world[m["feature"] == k])
    return {k: np.vstack(v) for k, v in out.items()}


@pytest.mark.parametrize("crs, origin, lonlat", [
    ("EPSG:7415", DELFT, (4.36, 52.01)),
    ("EPSG:28992", DELFT, (4.36, 52.01)),
    ("EPSG:4547", GUANGZHOU, (113.38, 23.12)),          # northing-first axis order in the EPSG definition
])
@pytest.mark.parametrize("fmt, quantize", [("glb", False), ("b3dm", False), ("glb", True)])
def test_placement_round_trips_to_the_crs_within_1cm(tmp_path, crs, origin, lonlat, fmt, quantize):
    gdf = town(30, origin, crs, seed=3)
    ts = tiles.buildings_to_3dtiles(gdf, tmp_path, max_features=10, format=fmt, quantize=quantize)
    if quantize:
        assert_valid(all_content(ts))
        gltf = mesh_of(all_content(ts)[0])["gltf"]
        assert gltf["extensionsRequired"] == ["KHR_mesh_quantization"]
    ecef = ecef_of(ts)
    back = Transformer.from_crs("EPSG:4978", crs, always_xy=True)
    geodetic = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
    assert set(ecef) == set(gdf["id"])
    for row in gdf.itertuples():
        e = ecef[row.id]
        x, y, z = back.transform(e[:, 0], e[:, 1], e[:, 2])
        corners = shapely.get_coordinates(row.geometry)
        d = np.hypot(x[:, None] - corners[None, :, 0], y[:, None] - corners[None, :, 1]).min(axis=1)
        assert d.max() < 0.01, (row.id, d.max())
        dz = np.minimum(np.abs(z - row.ground), np.abs(z - (row.ground + row.height)))
        assert dz.max() < 0.01, (row.id, dz.max())
        assert np.abs(z - (row.ground + row.height)).min() < 0.01        # the roof is there
        lon, lat, _ = geodetic.transform(*e[0])
        assert abs(lon - lonlat[0]) < 0.1 and abs(lat - lonlat[1]) < 0.1


def test_roof_keeps_holes_and_normals_face_outward(tmp_path):
    ring = [(0, 0), (30, 0), (30, 30), (0, 30)]
    hole = [(10, 10), (10, 20), (20, 20), (20, 10)]
    poly = shapely.affinity.translate(shapely.Polygon(ring, [hole]), *DELFT)
    gdf = gpd.GeoDataFrame({"height": [12.0]}, geometry=[poly], crs="EPSG:28992")
    ts = tiles.buildings_to_3dtiles(gdf, tmp_path)
    m = mesh_of(tmp_path / "tiles" / "0-0-0.glb")
    p = yup_to_zup(m["positions"])
    n = yup_to_zup(m["normals"])
    tri = p[m["triangles"]]
    geo = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(geo, axis=1) / 2
    geo /= np.linalg.norm(geo, axis=1, keepdims=True)
    stored = n[m["triangles"][:, 0]]
    assert np.all(np.einsum("ij,ij->i", geo, stored) > 0.999)        # winding agrees with the stored normal
    roof = geo[:, 2] > 0.99
    assert area[roof].sum() == pytest.approx(800.0, rel=2e-3)       # 900 - 100: the courtyard stays open
    walls = np.abs(geo[:, 2]) < 1e-3
    assert roof.sum() + walls.sum() == len(tri)                      # no floor by default
    assert area[walls].sum() == pytest.approx(12.0 * (120 + 40), rel=2e-3)
    # outward: outer walls face away from the centre, courtyard walls face into the courtyard
    centre = p.mean(axis=0)
    mid = tri[walls].mean(axis=1)
    r = np.hypot(*(mid - centre)[:, :2].T)
    radial = np.einsum("ij,ij->i", (mid - centre)[:, :2], geo[walls][:, :2]) / r
    outer = r > 12
    assert np.all(radial[outer] > 0.5) and np.all(radial[~outer] < -0.5)
    # roof triangles never cover the hole
    roof_mid = tri[roof].mean(axis=1)
    assert not np.any(np.hypot(*(roof_mid - centre)[:, :2].T) < 4.9)
    check_tileset(ts)


def _view(gltf: dict, binary: bytes, index: int) -> np.ndarray:
    """The bytes of buffer view ``index`` of a GLB's binary chunk."""
    bv = gltf["bufferViews"][index]
    start = bv.get("byteOffset", 0)
    return np.frombuffer(binary, dtype=np.uint8, count=bv["byteLength"], offset=start)


def test_metadata_round_trip_typed(delft):
    gdf, glb, _ = delft
    rows = []
    schema = None
    for f in leaf_files(glb):
        gltf, binary = tiles._glb.split_glb(f.read_bytes())
        ext = gltf["extensions"]["EXT_structural_metadata"]
        schema = ext["schema"]["classes"]["building"]["properties"]
        assert gltf["extensionsUsed"] == ["EXT_mesh_features", "EXT_structural_metadata"]
        fids = gltf["meshes"][0]["primitives"][0]["extensions"]["EXT_mesh_features"]["featureIds"]
        assert fids[0]["featureCount"] == ext["propertyTables"][0]["count"] and fids[0]["attribute"] == 0
        rows.append(tiles._glb.read_property_table(gltf, binary))
        # decoded again here from the specification, not with our reader: booleans are a bitstream, least
        # significant bit first; strings are UTF-8 bytes with UINT32 offsets (count + 1); INT32 little-endian
        table = ext["propertyTables"][0]
        n = table["count"]
        bits = np.unpackbits(_view(gltf, binary, table["properties"]["monument"]["values"]), bitorder="little")[:n]
        np.testing.assert_array_equal(bits.astype(bool), rows[-1]["monument"].to_numpy(bool))
        offsets = _view(gltf, binary, table["properties"]["name"]["stringOffsets"]).view("<u4")
        assert offsets.size == n + 1 and table["properties"]["name"].get("stringOffsetType", "UINT32") == "UINT32"
        raw = _view(gltf, binary, table["properties"]["name"]["values"]).tobytes()
        names = [raw[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]
        assert names == list(rows[-1]["name"])
        years = _view(gltf, binary, table["properties"]["year"]["values"]).view("<i4")
        np.testing.assert_array_equal(years, rows[-1]["year"].to_numpy())
    got = pd.concat(rows).set_index("id").sort_index()
    want = gdf.set_index("id").sort_index()
    assert schema["year"] == {"type": "SCALAR", "componentType": "INT32"}
    assert schema["monument"] == {"type": "BOOLEAN"}
    assert schema["height"]["componentType"] == "FLOAT64" and schema["name"]["type"] == "STRING"
    assert schema["cim_level"]["componentType"] == "INT32"
    assert list(got.index) == list(want.index)
    assert (got["name"] == want["name"].fillna("")).all()
    np.testing.assert_array_equal(got["height"], want["height"])
    np.testing.assert_array_equal(got["ground"], want["ground"])
    np.testing.assert_array_equal(got["year"], want["year"])
    np.testing.assert_array_equal(got["monument"], want["monument"])
    assert 0 < want["monument"].sum() < len(want) / 2  # some monuments, not most: a bit order would show
    np.testing.assert_array_equal(got["roof_area"], want["roof_area"])
    assert (got["class"] == want["function"].fillna("building")).all()
    assert (got["cim_level"] == 2).all()


def test_feature_ids_point_at_the_right_building(delft):
    gdf, glb, _ = delft
    back = Transformer.from_crs("EPSG:4978", "EPSG:28992", always_xy=True)
    by_id = gdf.set_index("id").geometry
    for t in check_tileset(glb):
        if t["tile"].get("children"):
            continue
        path = glb.parent / t["tile"]["content"]["uri"]
        m = mesh_of(path)
        assert m["feature_accessor"]["componentType"] == 5126            # FLOAT feature ids
        gltf, binary = tiles._glb.split_glb(path.read_bytes())
        ids = tiles._glb.read_property_table(gltf, binary)["id"].to_numpy()
        world = yup_to_zup(m["positions"]) @ t["world"][:3, :3].T + t["world"][:3, 3]
        x, y, _ = back.transform(world[:, 0], world[:, 1], world[:, 2])
        dist = shapely.distance(by_id.loc[ids[m["feature"]]].to_numpy(), shapely.points(x, y))
        assert dist.max() < 0.01


def batch_table(path: Path) -> dict:
    data = path.read_bytes()
    ft_j, ft_b, bt_j, _ = struct.unpack_from("<IIII", data, 12)
    return json.loads(data[28 + ft_j + ft_b: 28 + ft_j + ft_b + bt_j])


def test_b3dm_layout_batch_length_and_batch_table(delft):
    gdf, _, b3dm = delft
    for f in leaf_files(b3dm):
        data = f.read_bytes()
        magic, version, length, ft_j, ft_b, bt_j, bt_b = struct.unpack_from("<4sIIIIII", data, 0)
        assert magic == b"b3dm" and version == 1 and length == len(data) and ft_b == bt_b == 0
        assert (28 + ft_j) % 8 == 0 and (28 + ft_j + ft_b + bt_j) % 8 == 0 and length % 8 == 0
        ft = json.loads(data[28:28 + ft_j])
        bt = batch_table(f)
        m = mesh_of(f)
        assert ft["BATCH_LENGTH"] == len(bt["id"]) == m["feature"].max() + 1
        assert m["feature_accessor"]["componentType"] == 5126             # _BATCHID as FLOAT
        want = gdf.set_index("id").loc[bt["id"]]
        assert bt["height"] == want["height"].tolist() and bt["year"] == want["year"].tolist()
        assert bt["name"] == [v if isinstance(v, str) else "" for v in want["name"]]


def test_lod2_surfaces_replace_the_block(tmp_path):
    gdf = town(6, DELFT, "EPSG:28992", seed=5).iloc[[0, 1, 2, 4]].reset_index(drop=True)
    x0, y0, x1, y1 = gdf.geometry[0].bounds
    g, h = gdf.loc[0, "ground"], gdf.loc[0, "height"]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    polys = [shapely.Polygon([(*corners[i], g + h), (*corners[(i + 1) % 4], g + h), (cx, cy, g + h + 5)])
             for i in range(4)]                                           # a pyramid roof, 5 m above the eaves
    surf = gpd.GeoDataFrame({"building_id": ["B0000"], "surface": ["RoofSurface"]},
                            geometry=[TriangleMesh.from_polygons(polys).to_multipolygon()], crs="EPSG:28992")
    ts = tiles.buildings_to_3dtiles(gdf, tmp_path, surfaces=surf)
    ecef = ecef_of(ts)
    back = Transformer.from_crs("EPSG:4978", "EPSG:28992", always_xy=True)
    _, _, z = back.transform(*ecef["B0000"].T)
    assert z.max() == pytest.approx(g + h + 5, abs=0.01) and len(z) == 12     # 4 triangles, flat shaded
    _, _, z1 = back.transform(*ecef["B0001"].T)
    assert z1.max() == pytest.approx(gdf.loc[1, "ground"] + gdf.loc[1, "height"], abs=0.01)
    gltf, binary = tiles._glb.split_glb((tmp_path / "tiles" / "0-0-0.glb").read_bytes())
    table = tiles._glb.read_property_table(gltf, binary).set_index("id")
    assert table.loc["B0000", "cim_level"] == 3                               # LoD2: CIM3 "standard"
    assert (table.drop(index="B0000")["cim_level"] == 2).all()                # blocks: CIM2 "framework"
    assert_valid(all_content(ts))


def test_base_from_3d_footprints_without_a_ground_column(tmp_path):
    poly = shapely.Polygon([(x, y, 7.5) for x, y in shapely.box(*DELFT, DELFT[0] + 10, DELFT[1] + 10).exterior.coords])
    gdf = gpd.GeoDataFrame({"height": [3.0]}, geometry=[poly], crs="EPSG:28992")
    ts = tiles.buildings_to_3dtiles(gdf, tmp_path)
    back = Transformer.from_crs("EPSG:4978", "EPSG:28992", always_xy=True)
    _, _, z = back.transform(*ecef_of(ts)["0"].T)
    assert z.min() == pytest.approx(7.5, abs=0.01) and z.max() == pytest.approx(10.5, abs=0.01)


@pytest.mark.parametrize("change, error, words", [
    (lambda g: g.drop(columns="height"), cim.ValidationError, "height column"),
    (lambda g: g.to_crs("EPSG:4326"), cim.CRSError, "not a projected CRS"),
    (lambda g: g.set_crs(None, allow_override=True), cim.CRSError, "has no CRS"),
    (lambda g: g.iloc[:0], cim.DataError, "empty"),
    (lambda g: g.assign(height=-1.0), cim.DataError, "negative"),
    (lambda g: g.assign(geometry=shapely.points(np.array(g.geometry.centroid.get_coordinates()))),
     cim.DataError, "Polygon"),
])
def test_bad_input_raises_a_cim_error_naming_the_fix(tmp_path, change, error, words):
    gdf = town(4, DELFT, "EPSG:28992")
    with pytest.raises(error, match=words):
        tiles.buildings_to_3dtiles(change(gdf), tmp_path)
    assert issubclass(error, ValueError)


def test_unknown_format_and_attribute_are_rejected(tmp_path):
    gdf = town(4, DELFT, "EPSG:28992")
    with pytest.raises(cim.ValidationError, match="glb"):
        tiles.buildings_to_3dtiles(gdf, tmp_path, format="gltf")
    with pytest.raises(cim.ValidationError, match="nope"):
        tiles.buildings_to_3dtiles(gdf, tmp_path, attributes=["nope"])


def test_floor_closes_a_watertight_solid_with_the_right_volume(tmp_path):
    ring = [(0, 0), (20, 0), (20, 8), (8, 8), (8, 20), (0, 20)]                  # an L shape (concave)
    poly = shapely.affinity.translate(shapely.Polygon(ring, [[(2, 2), (2, 5), (5, 5), (5, 2)]]), *DELFT)
    gdf = gpd.GeoDataFrame({"height": [9.0], "ground": [1.5]}, geometry=[poly], crs="EPSG:28992")
    tiles.buildings_to_3dtiles(gdf, tmp_path, floor=True)
    m = mesh_of(tmp_path / "tiles" / "0-0-0.glb")
    p = yup_to_zup(m["positions"])
    # weld vertices by position, then every edge is used once in each direction: closed and consistently wound
    _, weld = np.unique(np.round(p, 3), axis=0, return_inverse=True)
    t = weld.reshape(-1)[m["triangles"]]
    edges = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
    fwd = {tuple(e) for e in edges.tolist()}
    assert len(fwd) == len(edges) and all((b, a) in fwd for a, b in fwd)
    # divergence theorem: the signed volume is + area x height (outward normals)
    tri = p[m["triangles"]]
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert volume == pytest.approx(poly.area * 9.0, rel=2e-3)


def test_quantized_normals_render_as_given_under_the_non_uniform_node_scale():
    from tiles._glb import MeshData, encode_glb, read_accessor, split_glb

    # a long thin tile (400 x 10 x 94 m): the node scale is far from uniform
    rng = np.random.default_rng(0)
    pos = rng.uniform([-200, -5, 0], [200, 5, 94], size=(30, 3))
    nrm = rng.normal(size=(30, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    mesh = MeshData(pos, nrm, np.arange(30).reshape(10, 3), np.zeros(30, np.int64), pd.DataFrame({"id": ["a"]}))
    gltf, binary = split_glb(encode_glb(mesh, quantize=True))
    prim = gltf["meshes"][0]["primitives"][0]["attributes"]
    stored = read_accessor(gltf, binary, prim["NORMAL"]).astype(np.float64) / 127
    scale = np.array(gltf["nodes"][0]["scale"])
    rendered = stored / scale                      # glTF: the inverse transpose of diag(scale)
    rendered /= np.linalg.norm(rendered, axis=1, keepdims=True)
    given = np.column_stack([nrm[:, 0], nrm[:, 2], -nrm[:, 1]])      # glTF is y up: (e, n, u) -> (e, u, -n)
    angle = np.degrees(np.arccos(np.clip((rendered * given).sum(axis=1), -1, 1)))
    assert angle.max() < 2.0                        # int8 rounding only (it was up to tens of degrees)
