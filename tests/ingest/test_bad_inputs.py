"""The bad-input corpus (tests/data/ingest/bad, made by make_bad.py): each file gets its own clear error naming the
file and the fix, and the scene is unchanged afterwards — on both store backends."""

from __future__ import annotations

from pathlib import Path

import pytest

import cim
import ingest
from cim.errors import CIMError, CRSError, DataError, ValidationError

BAD = Path(__file__).parents[1] / "data" / "ingest" / "bad"
GOOD = BAD.parent

# file, options, error class, a regex the message must match (the file name is checked for every case)
CASES = [
    ("truncated.city.json", {}, DataError, r"not valid JSON at line 1 .*truncated or corrupt: download or export it again"),
    ("no_crs.city.json", {}, CRSError, r"metadata\.referenceSystem is missing.*crs="),
    ("wrong_version.city.json", {}, DataError, r"version '0\.6' is not supported.*cjio"),
    ("vertex_out_of_range.city.json", {}, DataError, r"vertex index beyond the 5 vertices; the file is truncated or corrupt: download or export it again"),
    ("corrupt.gpkg", {}, DataError, r"cannot open as a vector file .*truncated or corrupt: download or export it again"),
    ("rd_coordinates_labelled_wgs84.geojson", {}, CRSError, r"EPSG:4326 \(degrees\) but its coordinates reach"),
    ("no_prj.shp", {}, CRSError, r"has no CRS .*crs="),
    ("invalid_geometry.gpkg", {"repair": False}, DataError, r"1 invalid geometries \(first: Self-intersection.*pass repair=True to fix them"),
    ("truncated.tif", {}, DataError, r"cannot read as a raster .*truncated or corrupt: download or export it again"),
    ("truncated.ifc", {}, DataError, r"does not end with END-ISO-10303-21; it is truncated"),
    ("no_georeference.ifc", {}, CRSError, r"no IfcMapConversion/IfcProjectedCRS.*\(1\).*\(2\) pass placement="),
    ("truncated.laz", {}, DataError, r"cannot read as LAS/LAZ .*truncated or corrupt: download or export it again"),
    ("no_crs.las", {}, CRSError, r"no CRS in the file's VLRs; pass crs="),
    ("truncated.nc", {}, DataError, r"cannot open as NetCDF .*download it again"),
    ("rain_negative.nc", {}, DataError, r"1 negative rainfall value\(s\), minimum -1\.2 \(first at time 2020-06-17T14:00"),
    ("rain_nan_undeclared.nc", {}, DataError, r"1 NaN value\(s\) but declares no missing value"),
    ("rain_unknown_units.nc", {}, ValidationError, r"'units' = 'inch per fortnight' is not a rainfall unit"),
    ("gauge_negative.csv", {}, DataError, r"negative rainfall value.*2020-06-17T15:00"),
    ("gauge_nan.csv", {}, DataError, r"NaN value.*leave the cell empty"),
    ("gauge_unknown_units.csv", {}, ValidationError, r"unit 'furlong' of column 'rain \[furlong\]'"),
    ("gauge_no_units.csv", {}, ValidationError, r"column 'RH' does not say its unit.*units="),
    ("truncated.gml", {}, DataError, r"not well-formed XML .*truncated or corrupt: download or export it again"),
]


@pytest.mark.parametrize(("name", "options", "error", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_bad_file_error(name, options, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        ingest.read(BAD / name, **options)
    assert isinstance(info.value, CIMError) and name in str(info.value)


def test_corpus_is_complete():
    made = {p.name for p in BAD.iterdir() if p.suffix not in (".py", ".shx", ".dbf", ".cpg", ".md")}
    assert made == {c[0] for c in CASES}


def test_scene_unchanged_after_every_bad_file(store_url):
    scene = cim.Scene.create(store_url, crs="EPSG:7415", name="Bad")
    try:
        ingest.ingest(scene, GOOD / "three_buildings_citygml2.gml")
        before = [(i.name, i.info.get("count")) for i in scene.layers]
        for name, options, error, _ in CASES:
            with pytest.raises(error):
                ingest.ingest(scene, BAD / name, **options)
            assert [(i.name, i.info.get("count")) for i in scene.layers] == before, name
        assert len(scene.layer("buildings")) == 3
    finally:
        scene.close()


def test_invalid_geometry_is_repaired_and_reported_by_default(tmp_path):
    scene = cim.Scene.create(tmp_path / "s.cim", crs="EPSG:28992", name="Fix")
    report = ingest.ingest(scene, BAD / "invalid_geometry.gpkg")
    assert [(r.what, r.count) for r in report.repaired] == [("invalid geometries in invalid_geometry", 1)]
    gdf = scene.layer("invalid_geometry")
    assert len(gdf) == 2 and gdf.geometry.is_valid.all()
    assert gdf.geometry.area.sum() == pytest.approx(50.0 + 100.0)     # the bow-tie's two 25 m² halves + the box


def test_unknown_format_and_missing_file(tmp_path):
    odd = tmp_path / "data.xyz"
    odd.write_text("1 2 3\n")
    with pytest.raises(DataError, match=r"data\.xyz: no reader recognises this file.*format= one of .*cityjson"):
        ingest.read(odd)
    with pytest.raises(ValidationError, match=r"unknown format 'cityjsn' for data\.xyz \(did you mean 'cityjson'\?\)"):
        ingest.read(odd, format="cityjsn")
    with pytest.raises(FileNotFoundError, match="no such file") as info:
        ingest.read(tmp_path / "gone.city.json")
    assert isinstance(info.value, CIMError)
