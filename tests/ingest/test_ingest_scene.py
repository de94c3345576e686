"""ingest.ingest into scenes on both store backends: what lands, the report, and all-or-nothing per file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cim
import ingest
from cim.errors import CRSError, LayerExistsError

DATA = Path(__file__).parents[1] / "data" / "ingest"


@pytest.fixture
def scene(store_url):
    s = cim.Scene.create(store_url, crs="EPSG:7415", name="Delft")
    yield s
    s.close()


def _names(scene):
    return sorted(i.name for i in scene.layers)


def test_delft_city_model_into_scene(scene):
    report = ingest.ingest(scene, DATA / "delft_lod1.city.json", dem_resolution=2.0)
    assert report.ok and report.added_count("buildings") == 160 and report.added_count("roads") == 143
    assert _names(scene) == ["bridges", "building_surfaces", "buildings", "dem", "generic", "land_use",
                             "plant_cover", "roads", "water"]
    info = scene.layer_info("buildings")
    assert (info.kind, info.cim_level, info.source) == ("buildings", 2, "delft_lod1.city.json")
    assert info.info["attrs"]["ingest"] == {"reader": "cityjson", "file": "delft_lod1.city.json",
                                            "options": {"dem_resolution": 2.0}}
    b = scene.layer("buildings")
    assert len(b) == 160 and b["height"].max() == pytest.approx(
        ingest.read(DATA / "delft_lod1.city.json", dem=False)["buildings"]["height"].max())
    dem = scene.layer("dem")
    assert dem.shape == (165, 263) and 0.2 < float(dem.notnull().mean()) < 0.4      # NaN outside the model
    assert -0.452 <= float(dem.min()) and float(dem.max()) <= 16.846
    assert scene.layer_info("dem").units == "m"
    # the report renders as a rich table
    from rich.console import Console

    console = Console(record=True, width=140)
    console.print(report)
    text = console.export_text()
    assert "buildings" in text and "160" in text and "added" in text


def test_two_city_models_in_one_scene_with_a_prefix(scene):
    ingest.ingest(scene, DATA / "rotterdam_subset_lod2.city.json", crs="EPSG:7415")
    with pytest.raises(LayerExistsError):
        ingest.ingest(scene, DATA / "denhaag_subset_lod2.city.json", crs="EPSG:7415")
    report = ingest.ingest(scene, DATA / "denhaag_subset_lod2.city.json", crs="EPSG:7415", prefix="dh_")
    assert [a.name for a in report.added] == ["dh_buildings", "dh_building_surfaces"]
    assert _names(scene) == ["building_surfaces", "buildings", "dh_building_surfaces", "dh_buildings"]
    assert len(scene.layer("buildings")) == 16 and len(scene.layer("dh_buildings")) == 4


def test_replace_swaps_layers_all_or_nothing(scene):
    ingest.ingest(scene, DATA / "rotterdam_subset_lod2.city.json", crs="EPSG:7415")
    report = ingest.ingest(scene, DATA / "denhaag_subset_lod2.city.json", crs="EPSG:7415", replace=True)
    assert report.added_count("buildings") == 4 and len(scene.layer("buildings")) == 4
    assert scene.layer_info("buildings").source == "denhaag_subset_lod2.city.json"
    with pytest.raises(LayerExistsError):
        ingest.ingest(scene, DATA / "denhaag_subset_lod2.city.json", crs="EPSG:7415")


@pytest.fixture
def half_broken_reader():
    """A reader (through the public registry) whose second layer cannot be stored: no CRS."""
    import geopandas as gpd
    from shapely import box

    from ingest.base import _REGISTRY, LayerItem, Reader, ReadResult, register

    @register
    class HalfBroken(Reader):
        name = "test_half_broken"
        extensions = (".halfbroken",)

        def read(self, path, **options):
            r = ReadResult(source=path, format=self.name)
            r.add_layer(LayerItem("buildings", gpd.GeoDataFrame({"n": [1, 2]}, geometry=[box(0, 0, 1, 1)] * 2,
                                                                crs="EPSG:7415"), "buildings"))
            r.add_layer(LayerItem("broken", gpd.GeoDataFrame({"n": [1]}, geometry=[box(0, 0, 1, 1)]), "other"))
            return r

    yield
    _REGISTRY.pop("test_half_broken")


def test_a_replacing_ingest_that_fails_half_way_restores_the_layers(scene, half_broken_reader, tmp_path):
    ingest.ingest(scene, DATA / "denhaag_subset_lod2.city.json", crs="EPSG:7415")
    path = tmp_path / "x.halfbroken"
    path.write_text("")
    with pytest.raises(CRSError, match="has no CRS"):
        ingest.ingest(scene, path, replace=True)         # "buildings" was swapped, then "broken" failed
    assert len(scene.layer("buildings")) == 4 and "broken" not in scene
    assert scene.layer_info("buildings").source == "denhaag_subset_lod2.city.json"


def test_failure_mid_file_leaves_the_scene_unchanged(scene):
    import geopandas as gpd
    from shapely import box

    scene.add_layer("roads", gpd.GeoDataFrame({"n": [1]}, geometry=[box(84700, 447500, 84710, 447510)],
                                               crs="EPSG:7415"), kind="roads")
    before = _names(scene)
    # buildings, building_surfaces, bridges and land_use are written before "roads" collides
    with pytest.raises(LayerExistsError, match="'roads' already"):
        ingest.ingest(scene, DATA / "delft_lod1.city.json", dem=False)
    assert _names(scene) == before == ["roads"]
    assert len(scene.layer("roads")) == 1


@pytest.mark.parametrize(("name", "options", "error"), [
    ("3dbag_multi_lod.city.json", {}, CRSError),
    ("ifcos_basic.ifc", {}, CRSError),
    ("simple.las", {}, CRSError),
])
def test_refused_files_leave_the_scene_unchanged(scene, name, options, error):
    ingest.ingest(scene, DATA / "rotterdam_subset_lod2.city.json", crs="EPSG:7415")
    before = _names(scene)
    with pytest.raises(error):
        ingest.ingest(scene, DATA / name, **options)
    assert _names(scene) == before


def test_bim_rainfall_and_point_cloud_into_scene(scene):
    r1 = ingest.ingest(scene, DATA / "bouwkunde_georeferenced.ifc")
    (added,) = r1.added
    assert added.kind == "bim" and added.count == 1
    info = scene.layer_info(added.name)
    assert info.cim_level == 6 and info.info["attrs"]["georeference"]["source"] == "IfcMapConversion"
    el = scene.layer(added.name)
    assert el.crs.to_epsg() in (7415, 28992) and el["guid"].iloc[0] == "2AaqBsx5L3MgJ1fIEZ3U5K"
    xmin, ymin, _, _ = el.total_bounds
    assert xmin == pytest.approx(85103.43, abs=0.05) and ymin == pytest.approx(446740.04, abs=0.05)

    ingest.ingest(scene, DATA / "knmi_radar_5min_20100826.nc", name="radar",
                  bbox=(302_000, -4_103_000, 322_000, -4_083_000))
    rain = scene.layer("radar")
    assert rain.dims[0] == "time" and rain.sizes["time"] == 92 and scene.layer_info("radar").units == "mm/h"
    assert np.nanmax(rain.to_numpy()) > 0

    ingest.ingest(scene, DATA / "autzen_trim.laz")
    info = scene.layer_info("autzen_trim")
    assert info.storage == "file" and info.kind == "point_cloud"
    assert info.info["attrs"]["point_count"] == 110_000
    assert scene.file_path("autzen_trim").read_bytes() == (DATA / "autzen_trim.laz").read_bytes()


def test_gauge_csv_becomes_a_sensorthings_datastream(scene):
    from cim.iot import datastreams, observations

    gauge = DATA / "knmi_310_vlissingen_hourly_2019_2022.csv"
    report = ingest.ingest(scene, gauge, units="m", station="KNMI 310 Vlissingen", location=(3.596, 51.442))
    assert [(a.name, a.count) for a in report.added] == [("KNMI 310 Vlissingen / RH rainfall rate", 35064)]
    with scene.transaction() as conn:
        (ds,) = datastreams(conn, thing="KNMI 310 Vlissingen").itertuples()
        assert (ds.unit_symbol, ds.observed_property) == ("mm/h", "lwe_precipitation_rate")
        obs = observations(conn, ds.id)
    assert len(obs) == 35064
    peak = obs.loc[obs["result"].idxmax()]
    assert peak["result"] == pytest.approx(51.3)
    assert peak["phenomenon_time"].isoformat() == "2020-06-17T14:00:00+00:00"
    assert peak["phenomenon_time_end"].isoformat() == "2020-06-17T15:00:00+00:00"
    again = ingest.ingest(scene, gauge, units="m", station="KNMI 310 Vlissingen", location=(3.596, 51.442))
    assert again.added[0].count == 0 and "stored already" in again.skipped[0].reason


def test_bim_model_comes_back_from_the_scene_with_its_entrances(scene):
    from cim.bim import BIMModel

    place = {"crs": "EPSG:28992", "eastings": 84700.0, "northings": 447500.0, "height": 0.4}
    report = ingest.ingest(scene, DATA / "ifcos_project0-openings.ifc", placement=place)
    (added,) = report.added
    back = BIMModel.from_layer(scene.layer(added.name), scene.layer_info(added.name).info["attrs"])
    original = ingest.read(DATA / "ifcos_project0-openings.ifc", placement=place).bim
    assert back.georeference == original.georeference and back.storeys == original.storeys
    assert back.buildings == original.buildings and back.lowest_floor_elevation == pytest.approx(0.4)
    assert len(back.entrances) == 2 and {round(e.sill_elevation, 4) for e in back.entrances} == {0.4}
    assert sorted(back.elements["guid"]) == sorted(original.elements["guid"])


def test_geotiff_dem_into_a_scene_in_its_crs(store_url):
    scene = cim.Scene.create(store_url, crs="EPSG:26915", name="Prairie")
    try:
        report = ingest.ingest(scene, DATA / "lidar_dem_1m_utm15n.tif", name="dem")
        assert [(a.name, a.kind, a.count) for a in report.added] == [("dem", "terrain", 160_000)]
        dem = scene.layer("dem")
        src = ingest.read(DATA / "lidar_dem_1m_utm15n.tif")["lidar_dem_1m_utm15n"]
        assert dem.shape == (400, 400) and dem.rio.crs.to_epsg() == 26915
        assert np.allclose(dem.to_numpy(), src.to_numpy(), equal_nan=True)
        assert scene.layer_info("dem").units == "m" and scene.layer_info("dem").cim_level == 1
    finally:
        scene.close()
