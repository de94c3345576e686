"""Vectors (pyogrio), rasters (rioxarray), point clouds (laspy) and CityGML 2.0 buildings, with real values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

import ingest
from cim.errors import CRSError, DataError, ValidationError

DATA = Path(__file__).parents[1] / "data" / "ingest"


@pytest.fixture(scope="module")
def footprints():
    """Delft building footprints from the CityJSON, one made invalid (a bow-tie), one null."""
    b = ingest.read(DATA / "delft_lod1.city.json", dem=False)["buildings"][["id", "height", "geometry"]].copy()
    b.loc[0, "geometry"] = shapely.Polygon([(84700, 447500), (84710, 447510), (84710, 447500), (84700, 447510)])
    b.loc[1, "geometry"] = None
    return b


@pytest.mark.parametrize("ext", ["geojson", "gpkg", "shp", "fgb", "parquet"])
def test_vector_formats_reprojected_and_repaired(tmp_path, footprints, ext):
    p = tmp_path / f"delft.{ext}"
    data = footprints if ext != "fgb" else footprints[footprints.geometry.notna()]
    data.to_parquet(p) if ext == "parquet" else data.to_file(p)
    r = ingest.read(p, to_crs="EPSG:4326", kind="buildings")
    g = r["delft"]
    assert r.layers["delft"].kind == "buildings" and g.crs.to_epsg() == 4326
    assert len(g) == 159 and g.geometry.is_valid.all()
    assert [(x.what, x.count) for x in r.repairs] == [("invalid geometries in delft", 1)]
    assert "Self-intersection" in r.repairs[0].detail
    assert [s.reason for s in r.skipped] == (["1 feature(s) with null or empty geometry"] if ext != "fgb" else [])
    # always_xy: Delft is at 4.36 E, 52.01 N (not swapped)
    xmin, ymin, xmax, ymax = g.total_bounds
    assert 4.34 < xmin < xmax < 4.37 and 52.00 < ymin < ymax < 52.02
    assert g["height"].sum() == pytest.approx(footprints["height"].drop(index=1).sum(), rel=1e-12)
    assert g.loc[g["id"] == footprints["id"].iloc[0]].geometry.iloc[0].geom_type in ("MultiPolygon", "GeometryCollection")


def test_vector_without_or_with_wrong_crs(tmp_path, footprints):
    p = tmp_path / "nocrs.shp"                     # a shapefile without its .prj
    footprints.iloc[2:5].set_crs(None, allow_override=True).to_file(p)
    assert not p.with_suffix(".prj").exists()
    with pytest.raises(CRSError, match=r"no CRS.*crs="):
        ingest.read(p)
    assert ingest.read(p, crs="EPSG:28992")["nocrs"].crs.to_epsg() == 28992
    wrong = tmp_path / "wrong.geojson"
    footprints.iloc[2:5].set_crs("EPSG:4326", allow_override=True).to_file(wrong)
    with pytest.raises(CRSError, match="the CRS is wrong"):
        ingest.read(wrong)
    with pytest.raises(DataError, match="invalid geometries"):
        bad = tmp_path / "bowtie.gpkg"
        footprints.iloc[:1].to_file(bad)
        ingest.read(bad, repair=False)


def test_rhine_dem_nodata_to_nan_crs_kept():
    r = ingest.read(DATA / "rhine_elv0.tif")
    dem = r["rhine_elv0"]
    assert dem.dims == ("y", "x") and dem.shape == (682, 997) and dem.rio.crs.to_epsg() == 4326
    assert float(dem.isnull().mean()) == pytest.approx(0.4855, abs=1e-3)          # half the basin box is nodata
    assert float(dem.min()) == 0.0 and float(dem.max()) == pytest.approx(3532.1, abs=0.01)
    assert r.layers["rhine_elv0"].attrs["source_nodata"] == -9999.0 and r.layers["rhine_elv0"].units == "m"


def test_lidar_dem_reprojected_and_matched_to_a_grid():
    src = ingest.read(DATA / "lidar_dem_1m_utm15n.tif")["lidar_dem_1m_utm15n"]
    assert src.shape == (400, 400) and src.rio.crs.to_epsg() == 26915
    assert float(src.min()) == pytest.approx(379.66, abs=0.01) and float(src.max()) == pytest.approx(410.76, abs=0.01)
    coarse = ingest.read(DATA / "lidar_dem_1m_utm15n.tif", resolution=5.0)["lidar_dem_1m_utm15n"]
    assert coarse.shape == (80, 80) and abs(float(coarse.mean()) - float(src.mean())) < 0.05
    matched = ingest.read(DATA / "lidar_dem_1m_utm15n.tif", match=coarse)["lidar_dem_1m_utm15n"]
    assert matched.shape == coarse.shape and np.allclose(matched.x, coarse.x)


def test_autzen_crs_from_wkt_vlr_without_epsg():
    r = ingest.read(DATA / "autzen_trim.laz")
    (f,) = r.files
    a = f.attrs
    assert f.kind == "point_cloud" and a["point_count"] == 110_000 and a["crs_from"] == "file"
    assert a["classification_counts"] == {1: 83_893, 2: 26_107}
    assert r.crs.to_epsg() is None and a["horizontal_unit"] == "foot"
    assert a["bounds_native"][:3] == pytest.approx([636001.76, 848935.20, 406.26], abs=0.01)
    # Autzen Stadium, Eugene (Oregon): 44.06 N, 123.07 W
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(r.crs, "EPSG:4326", always_xy=True).transform(
        (a["bounds_native"][0] + a["bounds_native"][3]) / 2, (a["bounds_native"][1] + a["bounds_native"][4]) / 2)
    assert lon == pytest.approx(-123.07, abs=0.02) and lat == pytest.approx(44.06, abs=0.02)


def test_simple_las_needs_the_callers_crs():
    with pytest.raises(CRSError, match=r"simple\.las: no CRS.*crs="):
        ingest.read(DATA / "simple.las")
    autzen = ingest.read(DATA / "autzen_trim.laz").crs
    r = ingest.read(DATA / "simple.las", crs=autzen.to_wkt())
    a = r.files[0].attrs
    assert a["point_count"] == 1065 and a["classification_counts"] == {1: 789, 2: 276} and a["crs_from"] == "caller"


def test_truncated_laz(tmp_path):
    cut = tmp_path / "cut.laz"
    cut.write_bytes((DATA / "autzen_trim.laz").read_bytes()[:200_000])
    with pytest.raises(DataError, match=r"cut\.laz: .*truncated"):
        ingest.read(cut)


def test_citygml2_lod1_and_lod2_buildings():
    r = ingest.read(DATA / "three_buildings_citygml2.gml")
    assert r.crs.to_epsg() == 7415                      # compound URN 28992 + 5709
    b = r["buildings"].set_index("id")
    a, h = b.loc["BLDG_A"], b.loc["BLDG_B"]
    assert (a["lod"], a["cim_level"], a["measured_height"], a["height"]) == ("1", 2, 6.0, 6.0)
    assert a.geometry.area == pytest.approx(80.0) and a["ground_z"] == 0.5
    assert json.loads(a["attributes"]) == {"bag_id": "0503100000000001", "function": "1000",
                                           "yearOfConstruction": 1965}
    assert (h["lod"], h["cim_level"], h["ground_z"], h["eaves_z"], h["roof_z"]) == ("2", 3, 1.0, 4.0, 7.0)
    assert h.geometry.area == pytest.approx(60.0)
    c = b.loc["BLDG_C"]                                 # two LoD1 BuildingParts, 9 m and 4 m tall
    assert (c["n_parts"], c["roof_z"], c["height"]) == (2, 9.8, 9.0) and c.geometry.area == pytest.approx(60.0)
    parts = json.loads(c["attributes"])["parts"]
    assert {k: v["measuredHeight"] for k, v in parts.items()} == {"BLDG_C_P1": 9.0, "BLDG_C_P2": 4.0}
    s = r["building_surfaces"]
    assert sorted(s[s.building_id == "BLDG_C"]["object_id"]) == ["BLDG_C_P1", "BLDG_C_P2"]
    roof = s[(s.building_id == "BLDG_B") & (s.surface == "RoofSurface")].geometry.iloc[0]
    from cim.mesh import TriangleMesh

    # two roof planes 10 m long, sloping 3 m over 3 m: 2 x 10 x sqrt(18)
    assert TriangleMesh.from_multipolygon(roof).area() == pytest.approx(2 * 10 * np.sqrt(18.0))


def test_citygml_truncated(tmp_path):
    cut = tmp_path / "cut.gml"
    cut.write_bytes((DATA / "three_buildings_citygml2.gml").read_bytes()[:1500])
    with pytest.raises(DataError, match="not well-formed XML"):
        ingest.read(cut)


def _xlinked_box_gml() -> str:
    """A 10 x 6 m box, 3 m high (ground at 1 m), its polygons in lod2Solid, the thematic surfaces linking to them."""
    x0, y0, x1, y1, z0, z1 = 85020, 447000, 85030, 447006, 1, 4
    rings = {"GroundSurface": [(x0, y1, z0), (x1, y1, z0), (x1, y0, z0), (x0, y0, z0)],
             "RoofSurface": [(x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)],
             "WallSurface": [(x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1)]}
    surfaces, polygons = [], []
    for i, (kind, ring) in enumerate(rings.items()):
        pos = " ".join(f"{x} {y} {z}" for x, y, z in [*ring, ring[0]])
        polygons.append(f'<gml:surfaceMember><gml:Polygon gml:id="P{i}"><gml:exterior><gml:LinearRing>'
                        f'<gml:posList srsDimension="3">{pos}</gml:posList></gml:LinearRing></gml:exterior>'
                        "</gml:Polygon></gml:surfaceMember>")
        surfaces.append(f"<bldg:boundedBy><bldg:{kind}><bldg:lod2MultiSurface><gml:MultiSurface>"
                        f'<gml:surfaceMember xlink:href="#P{i}"/></gml:MultiSurface></bldg:lod2MultiSurface>'
                        f"</bldg:{kind}></bldg:boundedBy>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<CityModel xmlns="http://www.opengis.net/citygml/2.0" '
            'xmlns:gml="http://www.opengis.net/gml" xmlns:bldg="http://www.opengis.net/citygml/building/2.0" '
            'xmlns:xlink="http://www.w3.org/1999/xlink"><gml:boundedBy><gml:Envelope srsName="EPSG:7415" '
            'srsDimension="3"><gml:lowerCorner>85020 447000 1</gml:lowerCorner><gml:upperCorner>85030 447006 4'
            '</gml:upperCorner></gml:Envelope></gml:boundedBy><cityObjectMember><bldg:Building gml:id="B1">'
            + "".join(surfaces) + "<bldg:lod2Solid><gml:Solid><gml:exterior><gml:CompositeSurface>"
            + "".join(polygons) + "</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod2Solid>"
            "</bldg:Building></cityObjectMember></CityModel>")


def test_citygml_surfaces_linked_by_xlink_keep_their_types(tmp_path):
    p = tmp_path / "xlinked.gml"
    p.write_text(_xlinked_box_gml())
    r = ingest.read(p)
    surfaces = r["building_surfaces"].set_index("surface")
    assert sorted(surfaces.index) == ["GroundSurface", "RoofSurface", "WallSurface"]
    b = r["buildings"].iloc[0]
    assert (b["ground_z"], b["eaves_z"], b["roof_z"]) == (1.0, 4.0, 4.0)
    assert b.geometry.area == pytest.approx(60.0)


def test_citygml_in_a_geographic_crs_is_refused(tmp_path):
    # its posLists would be latitude, longitude (GML follows the CRS's axis order) and its areas square degrees
    text = (DATA / "three_buildings_citygml2.gml").read_text()
    geo = tmp_path / "geo.gml"
    geo.write_text(text.replace("urn:ogc:def:crs,crs:EPSG::28992,crs:EPSG::5709", "urn:ogc:def:crs:EPSG::4979"))
    with pytest.raises(ValidationError, match=r"geo\.gml: CRS EPSG:4979 is not projected; CityGML .*reproject"):
        ingest.read(geo)


def test_rhine_d8_untagged_nodata_masked_by_option():
    path = DATA / "rhine_d8_esri.tif"
    raw = ingest.read(path, kind="other", units="")["rhine_d8_esri"]
    assert int((raw == 247).sum()) == 330_107 and int(raw.isnull().sum()) == 0        # no nodata tag in the file
    d8 = ingest.read(path, kind="other", nodata=247)["rhine_d8_esri"]
    assert int(d8.isnull().sum()) == 330_107
    codes, counts = np.unique(d8.to_numpy()[~np.isnan(d8.to_numpy())], return_counts=True)
    assert codes.tolist() == [0, 1, 2, 4, 8, 16, 32, 64, 128]                          # ESRI D8, one outlet
    assert counts[0] == 1 and int(counts.sum()) == 682 * 997 - 330_107
    # the D8 grid's no-data cells are exactly the elevation grid's
    elv = ingest.read(DATA / "rhine_elv0.tif")["rhine_elv0"]
    assert (d8.isnull().to_numpy() == elv.isnull().to_numpy()).all()


def test_zipped_shapefile_and_kml(tmp_path, footprints):
    import zipfile

    part = footprints.iloc[2:12]
    part.to_file(tmp_path / "blocks.shp")
    with zipfile.ZipFile(tmp_path / "blocks.zip", "w") as z:
        for p in tmp_path.glob("blocks.*"):
            if p.suffix != ".zip":
                z.write(p, p.name)
    r = ingest.read(tmp_path / "blocks.zip")
    assert r["blocks"].crs.to_epsg() == 7415 and len(r["blocks"]) == 10
    assert r["blocks"]["height"].tolist() == pytest.approx(part["height"].tolist())
    part.to_crs("EPSG:4326").to_file(tmp_path / "blocks.kml", driver="KML")
    k = ingest.read(tmp_path / "blocks.kml", to_crs="EPSG:7415")["blocks"]
    assert len(k) == 10 and k.geometry.area.sum() == pytest.approx(part.geometry.area.sum(), rel=1e-3)
