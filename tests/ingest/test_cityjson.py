"""CityJSON: real counts and heights from the sample files, the CRS rules, and the DEM derived from Delft."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

import ingest
from cim.errors import CRSError, DataError, ValidationError

DATA = Path(__file__).parents[1] / "data" / "ingest"
DELFT = DATA / "delft_lod1.city.json"


@pytest.fixture(scope="module")
def delft():
    return ingest.read(DELFT)


def test_delft_counts_per_object_type(delft):
    counts = {name: len(item) for name, item in delft.layers.items() if name != "dem"}
    assert counts == {"buildings": 160, "building_surfaces": 160, "roads": 143, "land_use": 81,
                      "plant_cover": 126, "water": 3, "generic": 54, "bridges": 3}
    assert delft.crs.to_epsg() == 7415
    assert delft.layers["roads"].kind == "roads" and delft.layers["plant_cover"].kind == "vegetation"
    assert delft.layers["buildings"].cim_level == 2          # LoD1 blocks -> CIM2 framework
    assert not delft.skipped


def test_delft_buildings_heights_and_attributes(delft):
    b = delft["buildings"].set_index("id")
    row = b.loc["b1105d28c-00ba-11e6-b420-2bdcc4ab5d7f"]
    attrs = json.loads(row["attributes"])
    assert attrs["identificatiebagpnd"] == "503100000000035"
    assert attrs["measuredHeight"] == 6
    assert row["lod"] == "1"
    assert row["height"] == pytest.approx(row["roof_z"] - row["ground_z"])
    # 3dfier's LoD1 blocks: the computed height is within 0.7 m of the BGT measuredHeight for every building
    measured = np.array([json.loads(a).get("measuredHeight", np.nan) for a in b["attributes"]], float)
    assert np.nanmax(np.abs(measured - b["height"].to_numpy())) < 0.7
    assert b.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all() and b.geometry.is_valid.all()
    assert not b.geometry.has_z.any()
    # every footprint lies within the file's geographicalExtent
    xmin, ymin, xmax, ymax = b.total_bounds
    assert xmin >= 84616.468 - 1e-6 and xmax <= 85140.839 + 1e-6 and ymin >= 447422.999 - 1e-6
    assert ymax <= 447750.636 + 1e-6


def test_delft_surfaces_are_triangle_meshes(delft):
    from cim.mesh import TriangleMesh

    s = delft["building_surfaces"]
    assert set(s["building_id"]) == set(delft["buildings"]["id"])
    mesh = TriangleMesh.from_multipolygon(s.geometry.iloc[0])
    assert mesh.n_triangles > 4 and mesh.area() > 0
    roads = delft["roads"]
    assert roads.geometry.has_z.all()
    assert roads["z_min"].min() >= -0.452 - 1e-6 and roads["z_max"].max() <= 16.846 + 1e-6


def test_delft_dem_covers_the_model_within_file_heights(delft):
    from scipy import ndimage

    dem = delft["dem"]
    item = delft.layers["dem"]
    assert item.kind == "terrain" and item.units == "m"
    assert dem.rio.crs.to_epsg() == 7415
    assert dem.dims == ("y", "x") and dem.shape == (329, 525)
    # no-data only outside the city model: every NaN region reaches the grid edge (no holes inside)
    nan = dem.isnull().to_numpy()
    labels, _ = ndimage.label(nan)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    assert not (nan & ~np.isin(labels, edge[edge > 0])).any()
    assert 0.2 < float((~nan).mean()) < 0.4                 # the ground surfaces cover about a quarter of the box
    # ground under every building is known (interpolated), so the flood model can block it
    import xarray as xr

    pts = delft["buildings"].geometry.representative_point()
    under = dem.sel(x=xr.DataArray(pts.x.to_numpy(), dims="p"), y=xr.DataArray(pts.y.to_numpy(), dims="p"),
                    method="nearest")
    assert bool(np.isfinite(under).all())
    xmin, ymin, xmax, ymax = dem.rio.bounds()
    assert xmin <= 84616.468 and xmax >= 85140.839 and ymin <= 447422.999 and ymax >= 447750.636
    assert float(dem.min()) >= -0.452 and float(dem.max()) <= 16.846
    # the grid follows the road surfaces: at each road triangle's centroid the DEM is the triangle's height
    from cim.mesh import TriangleMesh

    tris = np.concatenate([(lambda m: m.vertices[m.triangles])(TriangleMesh.from_multipolygon(g))
                           for g in delft["roads"].geometry])
    c = tris.mean(axis=1)
    u, v = tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
    big = np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]) > 20.0
    z = dem.interp(x=("p", c[big, 0]), y=("p", c[big, 1])).to_numpy()
    assert np.quantile(np.abs(z - c[big, 2])[np.isfinite(z)], 0.9) < 0.1 and np.isfinite(z).mean() > 0.9


def test_dem_under_buildings_is_interpolated_ground_not_roofs(delft):
    dem = delft["dem"]
    b = delft["buildings"]
    pts = shapely.get_coordinates(b.geometry.representative_point())
    z = dem.interp(x=("p", pts[:, 0]), y=("p", pts[:, 1]), method="nearest").to_numpy()
    roofs = b["roof_z"].to_numpy()
    assert np.all(z < roofs) and np.median(roofs - z) > 2.0
    assert np.all(np.abs(z - b["ground_z"].to_numpy()) < 2.5)


def test_dem_resolution_option(delft):
    coarse = ingest.read(DELFT, dem_resolution=4.0)["dem"]
    assert coarse.shape == (83, 132)
    assert abs(float(coarse.mean()) - float(delft["dem"].mean())) < 0.1
    with pytest.raises(ValidationError, match="dem_resolution"):
        ingest.read(DELFT, dem_resolution=0)
    with pytest.raises(ValidationError, match="dem_types must be a list of CityJSON object types"):
        ingest.read(DELFT, dem_types=["Raod"])
    # the DEM from the water surfaces alone: three canals, the rest filled from them
    water = ingest.read(DELFT, dem_types=["WaterBody"], dem_resolution=4.0)["dem"]
    z = delft["water"][["z_min", "z_max"]]
    assert float(water.min()) >= z["z_min"].min() - 1e-6 and float(water.max()) <= z["z_max"].max() + 1e-6


@pytest.mark.parametrize("name", ["3dbag_multi_lod.city.json", "denhaag_subset_lod2.city.json",
                                  "rotterdam_subset_lod2.city.json"])
def test_files_without_crs_refused_then_accepted_with_crs(name):
    with pytest.raises(CRSError, match=r"metadata\.referenceSystem.*crs="):
        ingest.read(DATA / name)
    r = ingest.read(DATA / name, crs="EPSG:7415")
    assert r["buildings"].crs.to_epsg() == 7415


def test_conflicting_crs_is_refused():
    with pytest.raises(CRSError, match="drop the crs option"):
        ingest.read(DELFT, crs="EPSG:3857")
    assert ingest.read(DELFT, crs="EPSG:7415", dem=False).crs.to_epsg() == 7415


def test_denhaag_cityjson11_lod2_parts_eaves_and_ridge():
    r = ingest.read(DATA / "denhaag_subset_lod2.city.json", crs="EPSG:7415", dem=False)
    b = r["buildings"].set_index("id")
    assert len(b) == 4 and b["n_parts"].sum() == 8
    assert b.loc["GUID_8CE54418-E2F7-49A7-9A8D-C3D172BA62C4", "n_parts"] == 2
    one = b.loc["GUID_3D7D60B9-8F3A-4D3B-A3E5-CD9B5565A5B2"]
    attrs = json.loads(one["attributes"])
    assert one["roof_z"] == pytest.approx(attrs["AbsoluteRidgeHeight"], abs=1e-3)      # 14.739
    assert one["eaves_z"] == pytest.approx(attrs["AbsoluteEavesHeight"], abs=1e-3)     # 11.38
    assert (b["lod"] == "2").all() and (b["cim_level"] == 3).all()
    # buildings made of parts: the ridge is the highest part's AbsoluteRidgeHeight (kept under "parts")
    for bid in ("GUID_8CE54418-E2F7-49A7-9A8D-C3D172BA62C4", "GUID_13974D93-CB4F-4B5A-AB1E-577DD9928CF2",
                "GUID_DBDABF53-7DD5-4C2F-BE7F-51F29A0CBA16"):
        parts = json.loads(b.loc[bid, "attributes"])["parts"]
        assert len(parts) == b.loc[bid, "n_parts"]
        assert b.loc[bid, "roof_z"] == pytest.approx(max(p["AbsoluteRidgeHeight"] for p in parts.values()), abs=1e-3)
    s = r["building_surfaces"]
    assert set(s["surface"]) == {"GroundSurface", "RoofSurface", "WallSurface"}
    # the parts' surfaces are kept under their building, with the part as object_id
    parts = s[s["building_id"] == "GUID_8CE54418-E2F7-49A7-9A8D-C3D172BA62C4"]["object_id"].nunique()
    assert parts == 2


def test_rotterdam_lod2_semantic_surfaces():
    r = ingest.read(DATA / "rotterdam_subset_lod2.city.json", crs="EPSG:7415")
    b = r["buildings"]
    assert len(b) == 16 and r.layers["buildings"].cim_level == 3
    assert b["roof_z"].max() == pytest.approx(18.29, abs=1e-3)
    assert (b["eaves_z"] <= b["roof_z"]).all()
    s = r["building_surfaces"]
    assert len(s) == 48 and sorted(s["surface"].unique()) == ["GroundSurface", "RoofSurface", "WallSurface"]
    assert [x.item for x in r.skipped] == ["dem"]        # buildings only: no ground to derive a DEM from


def test_3dbag_multi_lod_picks_highest_or_requested_lod():
    path = DATA / "3dbag_multi_lod.city.json"
    r = ingest.read(path, crs="EPSG:7415")
    b = r["buildings"].set_index("id")
    assert len(b) == 10 and set(b["lod"]) == {"2.2"} and set(b["lods"]) == {"1.2,1.3,2.2"}
    first = b.iloc[0]
    attrs = json.loads(first["attributes"])
    assert first["ground_z"] == pytest.approx(attrs["h_maaiveld"], abs=1e-3)       # 5.254
    assert attrs["dak_type"] == "slanted" and attrs["oorspronkelijk_bouwjaar"] == 1965
    lod12 = ingest.read(path, crs="EPSG:7415", lod="1.2")["buildings"].set_index("id")
    # lod= picks among building LoDs only: Delft's LoD1 roads are still read with lod="2"
    assert len(ingest.read(DELFT, lod="2", dem=False)["roads"]) == 143
    assert set(lod12["lod"]) == {"1.2"} and (lod12["cim_level"] == 2).all()
    # LoD1.2 blocks are flat: the roof is lower than the LoD2.2 ridge
    assert (lod12["roof_z"] <= b.loc[lod12.index, "roof_z"] + 1e-6).all()
    assert (lod12["roof_z"] < b.loc[lod12.index, "roof_z"]).any()


def test_unknown_option_is_refused_with_a_hint():
    with pytest.raises(ValidationError, match="did you mean 'lod'"):
        ingest.read(DELFT, lodd="2")


def test_truncated_and_wrong_version(tmp_path):
    bad = tmp_path / "cut.city.json"
    bad.write_bytes(DELFT.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"cut\.city\.json: not valid JSON"):
        ingest.read(bad)
    old = tmp_path / "v09.city.json"
    old.write_text(json.dumps({"type": "CityJSON", "version": "0.9", "CityObjects": {}, "vertices": []}))
    with pytest.raises(DataError, match=r"version .0\.9.*upgrade"):
        ingest.read(old)


def _as_sequence(doc: dict, path) -> None:
    """Write a CityJSON document as CityJSON Text Sequences: header, then one feature per top-level object with
    its children and only the vertices it uses (indices renumbered)."""
    header = {k: v for k, v in doc.items() if k not in ("CityObjects", "vertices")}
    header.update(CityObjects={}, vertices=[])
    lines = [json.dumps(header)]
    objs = doc["CityObjects"]
    for oid, obj in objs.items():
        if obj.get("parents"):
            continue
        members = {oid: obj, **{c: objs[c] for c in obj.get("children", [])}}
        used: dict[int, int] = {}

        def renumber(b, used=used):
            if isinstance(b, list):
                return [renumber(x, used) for x in b]
            return used.setdefault(b, len(used))

        feature_objs = {}
        for mid, m in members.items():
            m = json.loads(json.dumps(m))
            for g in m.get("geometry", []):
                g["boundaries"] = renumber(g["boundaries"])
            feature_objs[mid] = m
        verts = [doc["vertices"][i] for i in sorted(used, key=used.get)]
        lines.append(json.dumps({"type": "CityJSONFeature", "id": oid, "CityObjects": feature_objs, "vertices": verts}))
    path.write_text("\n".join(lines) + "\n")


def test_cityjson_text_sequence_reads_like_the_document(tmp_path):
    src = DATA / "denhaag_subset_lod2.city.json"
    seq = tmp_path / "denhaag.city.jsonl"
    _as_sequence(json.loads(src.read_text()), seq)
    assert ingest.find_reader(seq).name == "cityjson"
    a = ingest.read(src, crs="EPSG:7415")["buildings"].set_index("id").sort_index()
    b = ingest.read(seq, crs="EPSG:7415")["buildings"].set_index("id").sort_index()
    assert len(b) == 4 and b["n_parts"].sum() == 8
    assert np.allclose(a[["ground_z", "roof_z", "eaves_z"]], b[["ground_z", "roof_z", "eaves_z"]])
    assert a.geometry.area.to_numpy() == pytest.approx(b.geometry.area.to_numpy())
    cut = tmp_path / "cut.city.jsonl"
    cut.write_text(seq.read_text()[:-200])
    with pytest.raises(DataError, match=r"cut\.city\.jsonl: line \d+ is not valid JSON"):
        ingest.read(cut, crs="EPSG:7415")
