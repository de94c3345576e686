"""flood.forecast on scenes: inputs taken from the scene, warnings consistent with the model, results written back."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from shapely import box

import cim
import flood.forecasting as F
import ingest

CRS = "EPSG:28992"
X0, Y0 = 85000.0, 447000.0
DATA = Path(__file__).resolve().parents[2] / "data" / "demo"


def bowl_scene(url, *, features: bool = True, regions: bool = True) -> cim.Scene:
    """60 m x 60 m, 2 m cells: a bowl 0.8 m deep in the middle, a building on its east rim, a road through it
    (without ``features``: the bare terrain), in a town of two districts (unless not ``regions``)."""
    scene = cim.Scene.create(url, crs=CRS, name="bowl")
    n, dx = 30, 2.0
    x = X0 + dx * (np.arange(n) + 0.5)
    y = Y0 + 60 - dx * (np.arange(n) + 0.5)
    X, Y = np.meshgrid(x - X0 - 30, y - Y0 - 30)
    z = np.minimum(0.8, 0.8 * (X ** 2 + Y ** 2) / 30 ** 2) + 1.0
    dem = xr.DataArray(z.astype("float32"), coords={"y": y, "x": x}, dims=("y", "x")).rio.write_crs(CRS)
    scene.add_layer("dem", dem.rio.write_nodata(np.nan), kind="terrain", units="m")
    if not features:
        return _regions(scene) if regions else scene
    scene.add_layer("buildings", gpd.GeoDataFrame({"name": ["rim house"]},
                    geometry=[box(X0 + 44, Y0 + 24, X0 + 52, Y0 + 36)], crs=CRS), kind="buildings")
    scene.add_layer("roads", gpd.GeoDataFrame({"name": ["bowl road", "ridge road"]},
                    geometry=[box(X0 + 4, Y0 + 28, X0 + 40, Y0 + 32), box(X0, Y0 + 56, X0 + 60, Y0 + 60)], crs=CRS),
                    kind="roads")
    return _regions(scene) if regions else scene


def _regions(scene: cim.Scene) -> cim.Scene:
    scene.add_region("Town", "city", box(X0, Y0, X0 + 60, Y0 + 60))
    scene.add_region("West", "district", box(X0, Y0, X0 + 30, Y0 + 60), parent="Town")
    scene.add_region("East", "district", box(X0 + 30, Y0, X0 + 60, Y0 + 60), parent="Town")
    return scene


def test_forecast_on_a_scene(store_url, tmp_path):
    scene = bowl_scene(store_url)
    fc = F.forecast(scene, rainfall=200.0, duration=900.0, name="storm", output_interval=60.0)
    ds = fc.dataset
    assert abs(ds.attrs["mass_error"]) < 1e-6
    # 200 mm/h for 15 min on the open cells (the building's cells are walls)
    open_cells = int((~F._burn(F._layers_of(scene, "buildings", fc.dem), fc.dem)).sum())
    assert ds.attrs["rain_volume"] == pytest.approx(0.2 / 4 * open_cells * 4.0, rel=1e-9)
    w = fc.warnings.set_index("name")
    # the road through the bowl collects water; the ridge road stays dry; levels agree with the depth maps
    assert w.loc["bowl road", "level"] >= 1 and w.loc["ridge road", "level"] == 0
    assert w.loc["bowl road", "max_depth"] == pytest.approx(
        float(ds["max_depth"].sel(x=slice(X0 + 4, X0 + 40), y=slice(Y0 + 32, Y0 + 28)).max()), abs=1e-4)
    assert fc.levels.classify(w["max_depth"]).tolist() == w["level"].tolist()
    assert (w["time_level"].dropna() <= 900.0).all()
    regions = fc.regions.set_index("region")
    assert regions.loc["Town", "level"] == max(regions.loc["West", "level"], regions.loc["East", "level"])
    assert regions.loc["Town", "flooded_area_m2"] == pytest.approx(
        float((ds["max_depth"] >= 0.15).sum()) * 4.0)
    # written back as layers, read back equal
    stored = scene.layer("flood_storm_max_depth")
    np.testing.assert_allclose(stored.values, ds["max_depth"].values.astype("float32"))
    assert len(scene.layer("flood_storm_warnings")) == 3
    assert set(scene.layer("flood_storm_regions")["region"]) == {"Town", "West", "East"}
    paths = fc.to_files(tmp_path)
    assert gpd.read_file(paths["warnings"]).crs.to_string() == "OGC:CRS84"
    assert "storm" in fc.summary()


def test_gauge_rainfall_from_the_vlissingen_observations(tmp_path):
    scene = cim.Scene.create(tmp_path / "g.cim", crs=CRS, name="g")
    ingest.ingest(scene, DATA / "sta_thing_knmi310_precip_20200617.json")
    rain = F.gauge_rainfall(scene, (pd.Timestamp("2020-06-17T10:00Z"), pd.Timestamp("2020-06-17T18:00Z")))
    assert rain.attrs["units"] == "mm/h"
    # 51.3 mm stamped 15:00 fell between 14:00 and 15:00 (KNMI: interval ending at the stamp)
    assert float(rain.sel(time=np.datetime64("2020-06-17T14:00")).item()) == pytest.approx(51.3)
    assert float(rain.max()) == pytest.approx(51.3)
    with pytest.raises(cim.ValidationError, match="no observations"):
        F.gauge_rainfall(scene, (pd.Timestamp("2021-01-01", tz="UTC"), pd.Timestamp("2021-01-02", tz="UTC")))


def test_forecast_needs_terrain(tmp_path):
    scene = cim.Scene.create(tmp_path / "e.cim", crs=CRS, name="empty")
    with pytest.raises(cim.ValidationError, match="no terrain raster"):
        F.forecast(scene, rainfall=10.0, duration=60.0)


def test_skill_against_a_water_depth_sensor_at_a_hotspot(tmp_path):
    from cim import iot

    scene = bowl_scene(tmp_path / "s.cim")
    scene.add_layer("hotspots", gpd.GeoDataFrame({"name": ["bowl centre"]},
                    geometry=gpd.points_from_xy([X0 + 31], [Y0 + 29]), crs=CRS), kind="hotspots")
    t0 = pd.Timestamp("2024-07-01T12:00", tz="UTC")
    rain = xr.DataArray([200.0, 0.0], coords={"time": pd.DatetimeIndex([t0, t0 + pd.Timedelta("10min")])
                                              .tz_localize(None)}, dims="time", attrs={"units": "mm/h"})
    first = F.forecast(scene, rainfall=rain, duration=1200.0, name="a", write=False)
    assert first.skill is None                                    # no sensor yet
    sim = first.dataset["point_depth"].sel(point="bowl centre")
    times = first.dataset["point_time"].to_numpy()
    # a sensor that saw 90 % of the simulated depth, 60 s later, in centimetres
    thing = iot.Thing("bowl gauge", datastreams=(iot.Datastream(
        "water depth bowl", iot.UnitOfMeasurement("centimetre", "cm"), iot.Sensor("pressure sensor"),
        iot.ObservedProperty("water depth"), city_object=iot.CityObjectRef("hotspots", "0")),))
    with scene.transaction() as conn:
        ds_id = iot.add_thing(conn, thing).datastream_ids["water depth bowl"]
        iot.add_observations(conn, [iot.Observation(phenomenon_time=(t0 + pd.Timedelta(seconds=t + 60)).to_pydatetime(),
                                                    result=90.0 * float(d), datastream_id=ds_id)
                                    for t, d in zip(times, sim.to_numpy(), strict=True) if t + 60 < 1200])
    fc = F.forecast(scene, rainfall=rain, duration=1200.0, name="b", write=False)
    row = fc.skill.iloc[0]
    sent = (times + 60) < 1200
    k_obs = int(np.argmax(sim.to_numpy()[sent]))
    k_sim = int(np.argmax(sim.to_numpy()))
    assert row["hotspot"] == "bowl centre" and row["n_observations"] == int(sent.sum())
    assert row["observed_peak"] == pytest.approx(0.9 * float(sim[sent][k_obs]), rel=1e-6)
    assert row["simulated_peak"] == pytest.approx(float(sim[k_sim]))
    assert row["observed_peak_time"] == pytest.approx(times[sent][k_obs] + 60.0)
    assert row["timing_error"] == pytest.approx(times[k_sim] - times[sent][k_obs] - 60.0)
    # rmse of the simulation interpolated to the sensor's times (60 s later) against the 90 % it saw
    s64 = sim.to_numpy().astype(np.float64)
    expected = np.sqrt(np.mean((np.interp(times[sent] + 60.0, times, s64) - 0.9 * s64[sent]) ** 2))
    assert row["rmse"] == pytest.approx(expected, rel=1e-9) and expected > 0


def test_a_sensor_is_paired_with_its_hotspot_when_others_lie_outside_the_model(tmp_path):
    from cim import iot

    scene = bowl_scene(tmp_path / "s.cim")
    # feature 0 lies outside the terrain, so the forecast reads features 1 and 2 only
    scene.add_layer("hotspots", gpd.GeoDataFrame({"name": ["far away", "bowl centre", "ridge corner"]},
                    geometry=gpd.points_from_xy([X0 + 500, X0 + 31, X0 + 1], [Y0 + 500, Y0 + 29, Y0 + 59]), crs=CRS),
                    kind="hotspots")
    t0 = pd.Timestamp("2024-07-01T12:00", tz="UTC")
    rain = xr.DataArray([200.0, 0.0], coords={"time": pd.DatetimeIndex([t0, t0 + pd.Timedelta("10min")])
                                              .tz_localize(None)}, dims="time", attrs={"units": "mm/h"})
    thing = iot.Thing("bowl gauge", datastreams=(iot.Datastream(
        "depth at bowl centre", iot.UnitOfMeasurement("centimetre", "cm"), iot.Sensor("pressure sensor"),
        iot.ObservedProperty("water depth"), city_object=iot.CityObjectRef("hotspots", "1")),))
    with scene.transaction() as conn:
        ds_id = iot.add_thing(conn, thing).datastream_ids["depth at bowl centre"]
        iot.add_observations(conn, [iot.Observation((t0 + pd.Timedelta(seconds=t)).to_pydatetime(), 10.0,
                                                    datastream_id=ds_id) for t in (120, 300, 600)])
    fc = F.forecast(scene, rainfall=rain, duration=900.0, name="ids", write=False)
    spots = fc.warnings[fc.warnings["object_type"] == "hotspot"].set_index("name")["object_id"].to_dict()
    assert spots == {"bowl centre": "1", "ridge corner": "2"}       # the features' own ids, not row positions
    row = fc.skill.iloc[0]
    assert row["hotspot"] == "bowl centre"
    centre = fc.dataset["point_depth"].sel(point="bowl centre").to_numpy()
    assert row["simulated_peak"] == pytest.approx(float(centre.max()))


def test_coarser_resolution_keeps_georeference_and_blocks_buildings(tmp_path):
    scene = bowl_scene(tmp_path / "s.cim")
    fine = F.terrain(scene)
    coarse = F.terrain(scene, resolution=4.0)
    assert coarse.shape == (15, 15) and coarse.rio.resolution() == (4.0, -4.0)
    assert coarse.rio.bounds() == pytest.approx(fine.rio.bounds())
    assert float(coarse.isel(x=0, y=0)) == pytest.approx(float(fine.isel(x=slice(0, 2), y=slice(0, 2)).mean()))
    house = F._burn(F._layers_of(scene, "buildings", coarse), coarse)
    assert house.sum() == 6                        # 8 m x 12 m at 4 m cells: 2 x 3 cell centres inside
    fc = F.forecast(scene, rainfall=100.0, duration=300.0, resolution=4.0, write=False)
    assert int(np.isnan(fc.dataset["max_depth"]).sum()) == 6
    with pytest.raises(cim.ValidationError, match="not a multiple"):
        F.terrain(scene, resolution=3.0)


def test_timestamped_rain_on_a_scene_with_nothing_to_warn(tmp_path):
    # gauges or radar give a start time; with no roads, buildings or hotspots the warnings table is empty but
    # has the columns and dtypes of a full one (it used to lose time_first_warning: KeyError, a 500 in the API)
    t0 = pd.Timestamp("2024-07-01T12:00")
    rain = xr.DataArray([200.0, 0.0], coords={"time": pd.DatetimeIndex([t0, t0 + pd.Timedelta("5min")])},
                        dims="time", attrs={"units": "mm/h"})
    full = F.forecast(bowl_scene(tmp_path / "full.cim"), rainfall=rain, duration=600.0, write=False)
    assert len(full.warnings) == 3
    fc = F.forecast(bowl_scene(tmp_path / "bare.cim", features=False), rainfall=rain, duration=600.0, name="bare")
    assert len(fc.warnings) == 0 and fc.start == pd.Timestamp("2024-07-01T12:00", tz="UTC")
    assert dict(fc.warnings.dtypes.astype(str)) == dict(full.warnings.dtypes.astype(str))
    assert "time_first_warning_utc" in fc.warnings
    assert fc.warnings.crs == fc.dem.rio.crs
    # the regions still get their depths, with nothing warned in them
    regions = fc.regions.set_index("region")
    assert set(regions.index) == {"Town", "West", "East"}
    assert (regions["buildings_affected"] == 0).all() and regions["time_first_warning"].isna().all()
    assert regions.loc["Town", "max_depth"] == pytest.approx(float(fc.dataset["max_depth"].max()), abs=1e-4)


def test_to_files_on_a_scene_without_regions(tmp_path):
    # the region summary is empty with the summary's columns, written as an empty FeatureCollection (GeoJSON has
    # no schema without features), so a scene always yields the same files
    fc = F.forecast(bowl_scene(tmp_path / "s.cim", features=False, regions=False), rainfall=100.0, duration=300.0, write=False)
    with_regions = F.forecast(bowl_scene(tmp_path / "r.cim"), rainfall=100.0, duration=300.0, write=False)
    assert len(fc.regions) == 0 and list(fc.regions.columns) == list(with_regions.regions.columns)
    paths = fc.to_files(tmp_path / "out")
    assert sorted(paths) == ["arrival_time", "max_depth", "regions", "time_of_max", "warnings"]
    assert len(gpd.read_file(paths["regions"])) == 0
    assert gpd.read_file(paths["warnings"]).crs.to_string() == "OGC:CRS84"
    assert "forecast" in fc.summary()


def slope_scene(url) -> cim.Scene:
    """80 m x 12 m, 2 m cells, falling 2 % from west to east (closed: the water gathers at the east wall)."""
    scene = cim.Scene.create(url, crs=CRS, name="slope")
    nx, ny, dx = 40, 6, 2.0
    x = X0 + dx * (np.arange(nx) + 0.5)
    y = Y0 + ny * dx - dx * (np.arange(ny) + 0.5)
    z = np.broadcast_to(2.0 - 0.02 * (x - X0), (ny, nx)).astype("float32")
    dem = xr.DataArray(z, coords={"y": y, "x": x}, dims=("y", "x")).rio.write_crs(CRS)
    scene.add_layer("dem", dem.rio.write_nodata(np.nan), kind="terrain", units="m")
    return scene


def test_rougher_slope_delays_arrival_downstream(tmp_path):
    scene = slope_scene(tmp_path / "s.cim")
    rough = gpd.GeoDataFrame({"manning": [0.2]}, geometry=[box(X0, Y0, X0 + 70, Y0 + 12)], crs=CRS)
    base = F.forecast(scene, rainfall=60.0, duration=900.0, write=False)
    slow = F.forecast(scene, rainfall=60.0, duration=900.0, write=False, surfaces=rough.to_crs("EPSG:4326"))

    def arrival(fc):                               # 1 cm reached 5 m above the east wall
        return float(fc.dataset["arrival_time"].sel(x=X0 + 75, y=Y0 + 5, method="nearest"))

    # n 0.2 instead of the default 0.035 upslope: the sheet flow takes over twice as long to gather downstream
    assert arrival(base) == pytest.approx(238.0, abs=5.0)
    assert arrival(slow) > 2 * arrival(base)
    for fc in (base, slow):
        assert abs(fc.dataset.attrs["mass_error"]) < 1e-6
        assert fc.dataset.attrs["rain_volume"] == pytest.approx(base.dataset.attrs["rain_volume"], rel=1e-12)


@pytest.mark.parametrize(("props", "message"), [
    ({"manning": [0.0]}, "'manning' must be between 0"),
    ({"roughness": [0.1]}, "did you mean manning"),
    ({"dz": [1.0]}, "did you mean ground_delta"),
    ({"name": ["square"]}, "at least one of 'manning'"),
    ({"ground_delta": [1.0], "ground_level": [3.0]}, "not both"),
    ({"imperviousness": [0.5]}, "infiltration="),
    ({"ground_level": ["high"]}, "'ground_level' must be a number"),
])
def test_surface_changes_are_checked(props, message):
    surfaces = gpd.GeoDataFrame(props, geometry=[box(X0, Y0, X0 + 10, Y0 + 10)], crs=CRS)
    with pytest.raises(cim.ValidationError, match=message):
        F.check_surfaces(surfaces)


def test_buildings_raised_by_their_height_shed_roof_rain(store_url):
    scene = bowl_scene(store_url)
    blocked = F.forecast(scene, rainfall=200.0, duration=900.0, write=False)
    raised = F.forecast(scene, rainfall=200.0, duration=900.0, write=False, buildings="raised")
    house = F._burn(F._layers_of(scene, "buildings", blocked.dem), blocked.dem)
    # the rim house has no height: raised by the default 10 m, and the forecast says so
    np.testing.assert_allclose(raised.dem.values[house], blocked.dem.values[house] + F.DEFAULT_BUILDING_HEIGHT)
    np.testing.assert_array_equal(raised.dem.values[~house], blocked.dem.values[~house])
    assert any("1 without one raised by 10 m" in n for n in raised.notes) and not blocked.notes
    # no walls: rain falls on all 900 cells, roof included (blocked: only on the open ones)
    assert raised.dataset.attrs["rain_volume"] == pytest.approx(0.2 / 4 * 900 * 4.0, rel=1e-9)
    assert blocked.dataset.attrs["rain_volume"] == pytest.approx(0.2 / 4 * (900 - house.sum()) * 4.0, rel=1e-9)
    assert abs(raised.dataset.attrs["mass_error"]) < 1e-6
    # the roof sheds its 50 mm: a film stays on it, and the water against the walls is deeper than without it
    assert float(raised.dataset["max_depth"].values[house].max()) < 0.02
    wb, wr = (fc.warnings.set_index("name") for fc in (blocked, raised))
    assert wr.loc["rim house", "max_depth"] > wb.loc["rim house", "max_depth"]
    with pytest.raises(cim.ValidationError, match="choose 'blocked'"):
        F.forecast(scene, rainfall=200.0, duration=60.0, write=False, buildings="lifted")
    scene.close()


def test_bim_rooms_below_the_water_at_their_building(tmp_path):
    from tests.ingest.test_ifc import ifc_with_rooms

    scene = bowl_scene(tmp_path / "s.cim", features=False)
    rooms = {"Cellar": ("Ground Floor", -2.0), "Hall": ("Ground Floor", 0.0), "Attic": ("Level 1", 3.0)}
    ifc_with_rooms(tmp_path / "rooms.ifc", rooms)
    # in the bottom of the bowl (ground at 1.0-1.02 m there), its ground floor at 1.05 m
    ingest.ingest(scene, tmp_path / "rooms.ifc",
                  placement={"crs": CRS, "eastings": X0 + 28, "northings": Y0 + 28, "height": 1.05})
    fc = F.forecast(scene, rainfall=200.0, duration=900.0, write=False)
    (impacts,) = fc.bim.values()
    spaces, storeys = impacts["spaces"].set_index("name"), impacts["storeys"].set_index("storey")
    assert spaces["floor_elevation"].to_dict() == pytest.approx({"Cellar": -0.95, "Hall": 1.05, "Attic": 4.05})
    level = float(storeys.loc["Ground Floor", "max_water_level"])
    assert 1.05 < level < 4.05
    assert spaces["below_water"].to_dict() == {"Cellar": True, "Hall": True, "Attic": False}
    assert spaces["depth_over_floor"].to_dict() == pytest.approx({"Cellar": level + 0.95, "Hall": level - 1.05,
                                                                  "Attic": 0.0})
    # the hall floods when its storey does; the cellar no later; the attic never
    assert spaces.loc["Hall", "from_time"] == storeys.loc["Ground Floor", "from_time"]
    assert spaces.loc["Cellar", "from_time"] <= spaces.loc["Hall", "from_time"]
    assert np.isnan(spaces.loc["Attic", "from_time"])
    scene.close()


def test_raised_neighbours_roofs_are_not_water_at_a_bim_buildings_walls(tmp_path):
    from tests.ingest.test_ifc import ifc_with_rooms

    scene = bowl_scene(tmp_path / "s.cim", features=False, regions=False)
    ifc_with_rooms(tmp_path / "rooms.ifc", {"Hall": ("Ground Floor", 0.0), "Attic": ("Level 1", 3.0)})
    ingest.ingest(scene, tmp_path / "rooms.ifc",
                  placement={"crs": CRS, "eastings": X0 + 48, "northings": Y0 + 48, "height": 1.85})
    bim = next(i.name for i in scene.layers if i.kind == "bim")
    _, y0, x1, y1 = F.bim_footprint(scene.layer(bim).geometry.to_numpy()).bounds
    # a terraced neighbour half a metre away (10 m high once raised) and a house far off, on the dry rim
    scene.add_layer("buildings", gpd.GeoDataFrame({"name": ["neighbour", "far"]}, geometry=[
        box(x1 + 0.5, y0 - 2, x1 + 10, y1 + 2), box(X0 + 2, Y0 + 2, X0 + 8, Y0 + 8)], crs=CRS), kind="buildings")
    for mode in ("blocked", "raised"):
        fc = F.forecast(scene, rainfall=20.0, duration=900.0, write=False, buildings=mode)
        (impacts,) = fc.bim.values()
        assert not impacts["storeys"]["below_water"].any() and not impacts["spaces"]["below_water"].any(), mode
        # the water level next to it is the ground's (about 1.85 m here), not a roof 10 m up
        assert impacts["storeys"]["max_water_level"].max() < 1.9, mode
