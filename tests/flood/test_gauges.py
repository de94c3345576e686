"""Rain gauges as forecast rainfall: several gauges gridded over the domain (IDW, nearest), mixed reporting
intervals put on the finest one without losing depth, picking gauges by Datastream, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

import cim
import flood.forecasting as F
from cim import iot
from flood.gauges import _common_steps, gauge_rainfall, parse_window
from tests.flood.test_forecast import CRS, X0, Y0, bowl_scene

T0 = pd.Timestamp("2020-06-17T10:00", tz="UTC")
WINDOW = (T0, T0 + pd.Timedelta(hours=2))
TO_WGS84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def _gauge(name: str, x: float, y: float, depths, *, minutes: int = 60, unit: str = "mm",
           prop: str = "precipitation_amount", located: bool = True) -> iot.Thing:
    """A Thing at (x, y) in the scene CRS whose Datastream reports ``depths`` per ``minutes`` from T0 (stamped at
    the end of each interval, as KNMI does)."""
    lon, lat = TO_WGS84.transform(x, y)
    obs = tuple(iot.Observation((T0 + pd.Timedelta(minutes=minutes * (i + 1))).isoformat(), float(v))
                for i, v in enumerate(depths) if v is not None)
    ds = iot.Datastream(name=f"{name} rain", unit_of_measurement=iot.UnitOfMeasurement(unit, unit),
                        sensor=iot.Sensor("tipping bucket"), observed_property=iot.ObservedProperty(prop),
                        observations=obs)
    where = (iot.Location(name, {"type": "Point", "coordinates": [lon, lat]}),) if located else ()
    return iot.Thing(name=name, description="rain gauge", locations=where, datastreams=(ds,))


def _scene(store_url, *gauges: iot.Thing) -> cim.Scene:
    scene = bowl_scene(store_url, features=False, regions=False)
    with scene.store.engine.begin() as conn:
        for g in gauges:
            iot.add_thing(conn, g)
    return scene


def _ids(scene) -> dict[str, int]:
    with scene.transaction() as conn:
        streams = iot.datastreams(conn)
    return dict(zip(streams["thing"], streams["id"].astype(int), strict=True))


# gauges on the centres of cells (row, col) of the bowl's 2 m grid, 30 x 30 cells from (X0, Y0 + 60)
CELLS = {"west": (5, 3), "east": (12, 26), "south": (27, 14)}


def _at(row: int, col: int) -> tuple[float, float]:
    return X0 + 2.0 * (col + 0.5), Y0 + 60.0 - 2.0 * (row + 0.5)


def test_mixed_intervals_keep_every_gauges_depth():
    hours = pd.DatetimeIndex([T0, T0 + pd.Timedelta(hours=1)])
    tens = pd.DatetimeIndex([T0 + pd.Timedelta(minutes=10 * i) for i in range(12) if i != 3])  # 10:30 missing
    values = _common_steps([(hours, hours + pd.Timedelta(hours=1), np.array([6.0, 12.0])),
                            (tens, tens + pd.Timedelta(minutes=10), np.ones(11))], ["hourly", "ten"])
    assert values.sizes == {"time": 12, "gauge": 2}
    assert values["time"].values[3] == np.datetime64("2020-06-17T10:30")
    # 6 mm in an hour is 6 mm/h in each of its 10-minute steps; 1 mm in 10 minutes is 6 mm/h too
    np.testing.assert_allclose(values.sel(gauge="hourly"), [6.0] * 6 + [12.0] * 6)
    ten = values.sel(gauge="ten").values
    assert np.isnan(ten[3]) and np.allclose(np.delete(ten, 3), 6.0)
    # depth kept: rate x step sums to each gauge's total
    assert float(values.sel(gauge="hourly").sum()) / 6 == pytest.approx(18.0)
    assert float(np.nansum(ten)) / 6 == pytest.approx(11.0)


def test_a_step_half_reported_keeps_the_rate_of_the_reported_half():
    t = pd.DatetimeIndex([T0, T0 + pd.Timedelta(minutes=20)])
    values = _common_steps([(t, t + pd.Timedelta(minutes=10), np.array([2.0, 4.0])),
                            (pd.DatetimeIndex([T0]), pd.DatetimeIndex([T0 + pd.Timedelta(minutes=5)]),
                             np.array([1.0]))], ["a", "b"])
    # the finest interval is 5 minutes; gauge a: 12 mm/h in its first 10 minutes, silent 10:10-10:20, 24 mm/h
    a = values.sel(gauge="a").values
    np.testing.assert_allclose(a[[0, 1, 4, 5]], [12.0, 12.0, 24.0, 24.0])
    assert np.isnan(a[2]) and np.isnan(a[3])


def test_nearest_gauge_grid_is_thiessen(store_url):
    rates = {"west": 12.0, "east": 30.0, "south": 3.0}
    scene = _scene(store_url, *(_gauge(k, *_at(*CELLS[k]), [rates[k], 0.0]) for k in CELLS))
    rain = gauge_rainfall(scene, WINDOW, method="nearest", cell=2.0)
    assert rain.dims == ("time", "y", "x") and rain.shape == (2, 30, 30) and rain.attrs["units"] == "mm/h"
    assert rain.rio.crs == scene.crs and rain.attrs["steps_without_gauges"] == 0
    yy, xx = np.meshgrid(rain["y"].values, rain["x"].values, indexing="ij")
    names = list(CELLS)
    d = np.stack([np.hypot(xx - _at(*CELLS[k])[0], yy - _at(*CELLS[k])[1]) for k in names])
    expected = np.array([rates[k] for k in names])[np.argmin(d, axis=0)]
    np.testing.assert_array_equal(rain.isel(time=0).values, expected)
    assert float(rain.isel(time=1).max()) == 0.0
    scene.close()


def test_idw_grid_takes_each_gauge_at_its_cell_and_stays_between_them(store_url):
    rates = {"west": 12.0, "east": 30.0, "south": 3.0}
    scene = _scene(store_url, *(_gauge(k, *_at(*CELLS[k]), [rates[k], 0.0]) for k in CELLS))
    field = gauge_rainfall(scene, WINDOW, cell=2.0).isel(time=0).values
    for k, (r, c) in CELLS.items():
        assert field[r, c] == pytest.approx(rates[k], rel=1e-6)
    assert 3.0 <= field.min() and field.max() <= 30.0
    # between west and east the field rises from west's rate to east's
    row = field[8, 3:27]
    assert row[0] < row[-1]
    scene.close()


def test_forecast_with_identical_gauges_equals_one_gauge(store_url):
    depths = [20.0, 40.0]
    scene = _scene(store_url, *(_gauge(k, *_at(*CELLS[k]), depths) for k in CELLS))
    ids = _ids(scene)
    one = F.forecast(scene, rainfall="gauges", window=WINDOW, gauges=[ids["east"]], duration=3600.0, write=False)
    three = F.forecast(scene, rainfall="gauges", window=WINDOW, duration=3600.0, write=False)
    nearest = F.forecast(scene, rainfall="gauges", window=WINDOW, duration=3600.0, gauge_method="nearest",
                         gauges=["west rain", "south rain"], write=False)
    # one gauge rains uniformly; three identical ones give the same uniform field, gridded or not
    assert one.dataset.attrs["rain_volume"] == pytest.approx(0.02 * 60 * 60, rel=1e-9)
    grid = gauge_rainfall(scene, WINDOW, cell=2.0)
    np.testing.assert_allclose(grid.values, np.array([20.0, 40.0])[:, None, None] + 0 * grid.values, rtol=1e-12)
    for fc in (three, nearest):
        # (rain grids are applied per cell in float32: 1e-8 relative, where uniform rain carries its rounding)
        assert fc.dataset.attrs["rain_volume"] == pytest.approx(one.dataset.attrs["rain_volume"], rel=1e-7)
        assert abs(fc.dataset.attrs["mass_error"]) < 1e-7
        # the thin sheet on the bowl's flanks amplifies last-bit differences of the rain (the IDW's rounding, the
        # float32 rate grid): 1e-7 more uniform rain moves its max depths by 5e-6 m
        np.testing.assert_allclose(fc.dataset["max_depth"], one.dataset["max_depth"], atol=2e-5)
        assert fc.start == T0
    scene.close()


def test_a_gauge_of_hourly_and_one_of_ten_minute_depths_grid_on_ten_minutes(store_url):
    scene = _scene(store_url, _gauge("west", *_at(*CELLS["west"]), [6.0, 12.0]),
                   _gauge("east", *_at(*CELLS["east"]), [1.0] * 12, minutes=10))
    rain = gauge_rainfall(scene, WINDOW, cell=2.0)
    assert rain.sizes["time"] == 12
    west = rain.isel(y=CELLS["west"][0], x=CELLS["west"][1]).values
    east = rain.isel(y=CELLS["east"][0], x=CELLS["east"][1]).values
    assert west.sum() / 6 == pytest.approx(18.0, rel=1e-6) and east.sum() / 6 == pytest.approx(12.0, rel=1e-6)
    scene.close()


def test_the_window_takes_the_intervals_starting_in_it(store_url):
    # stamped at interval ends (10-11 at 11:00, ...): 11:00-12:00 is the interval stamped 12:00
    scene = _scene(store_url, _gauge("west", *_at(*CELLS["west"]), [6.0, 12.0, 18.0]))
    rain = gauge_rainfall(scene, (T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=2)))
    # (a step function: 12 mm/h from 11:00, dry from 12:00 when the interval ends)
    assert rain.values.tolist() == [12.0, 0.0]
    assert rain["time"].values.tolist() == pd.DatetimeIndex(["2020-06-17T11:00", "2020-06-17T12:00"]).to_numpy().tolist()
    whole = gauge_rainfall(scene, ("2020-06-17T10:00Z", "2020-06-17T13:00Z"))
    assert whole.values.tolist() == [6.0, 12.0, 18.0, 0.0]
    assert gauge_rainfall(scene).values.tolist() == [6.0, 12.0, 18.0, 0.0]
    with pytest.raises(cim.ValidationError, match="no observations"):
        gauge_rainfall(scene, (T0 + pd.Timedelta(hours=3), T0 + pd.Timedelta(hours=4)))
    scene.close()


def test_a_gauge_that_moved_rains_from_where_it_is(store_url):
    scene = _scene(store_url, _gauge("west", *_at(*CELLS["west"]), [12.0, 0.0]),
                   _gauge("south", *_at(*CELLS["south"]), [3.0, 0.0]))
    r, c = CELLS["east"]
    assert gauge_rainfall(scene, WINDOW, method="nearest", cell=2.0).values[0, r, c] == 3.0  # south is nearer
    with scene.store.engine.begin() as conn:  # the west gauge is moved to the east cell: a second Location
        iot.add_thing(conn, _gauge("west", *_at(r, c), [12.0, 0.0]))
    assert gauge_rainfall(scene, WINDOW, method="nearest", cell=2.0).values[0, r, c] == 12.0
    scene.close()


def test_bad_gauge_choices_are_clear_errors(store_url):
    level = _gauge("level", X0 + 30, Y0 + 30, [0.1], unit="m", prop="water_level")
    scene = _scene(store_url, _gauge("west", *_at(*CELLS["west"]), [5.0, 1.0]),
                   _gauge("nowhere", X0, Y0, [5.0, 1.0], located=False), level)
    ids = _ids(scene)
    with pytest.raises(cim.ValidationError, match="no Datastream 9999"):
        gauge_rainfall(scene, WINDOW, datastreams=[9999])
    with pytest.raises(cim.ValidationError, match="observes 'water_level', not rain"):
        gauge_rainfall(scene, WINDOW, datastreams=[ids["level"]])
    with pytest.raises(cim.ValidationError, match=r"\['nowhere'\] have no GeoJSON point Location"):
        gauge_rainfall(scene, WINDOW)
    with pytest.raises(cim.ValidationError, match="'idw' or 'nearest'"):
        gauge_rainfall(scene, WINDOW, method="kriging")
    # one gauge picked by name: uniform rain, no location needed
    assert gauge_rainfall(scene, WINDOW, datastreams=["nowhere rain"]).dims == ("time",)
    scene.close()


def test_windows_parse_or_say_how():
    assert parse_window("2020-06-17T14:00+02:00/2020-06-17T17:00Z") == (
        pd.Timestamp("2020-06-17T12:00", tz="UTC"), pd.Timestamp("2020-06-17T17:00", tz="UTC"))
    for bad, msg in (("yesterday", "give START/END"), ("2020-06-17T17:00/2020-06-17T14:00", "before END"),
                     ("2020-06-17", "give START/END")):
        with pytest.raises(cim.ValidationError, match=msg):
            parse_window(bad)


def test_a_silent_gauge_does_not_keep_raining(store_url):
    from flood.forcing import rainfall_series

    # 10-minute depths of 6 mm, nothing sent 10:20-10:50: the model rains the 30 mm the gauge measured
    depths = [6.0, 6.0, None, None, None, 6.0, 6.0, 6.0]
    scene = _scene(store_url, _gauge("solo", *_at(5, 3), depths, minutes=10))
    series = rainfall_series(gauge_rainfall(scene, WINDOW))
    assert series.integral(0, 1e9) * 1000 == pytest.approx(30.0, rel=1e-12)
    assert series.rate_at(30 * 60) == 0.0 and series.rate_at(55 * 60) * 3.6e6 == pytest.approx(36.0)
    scene.close()
