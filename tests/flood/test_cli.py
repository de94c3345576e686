"""`cim forecast` from the shell: progress, warnings by region, results stored; bad usage is a clean error."""

from __future__ import annotations

import numpy as np
import pytest

import cim
import flood
import hydrology
from cim.cli import main
from tests.flood.test_forecast import bowl_scene


def test_forecast_command(tmp_path, capsys):
    bowl_scene(tmp_path / "s.cim")
    rc = main(["forecast", str(tmp_path / "s.cim"), "--duration", "600", "--storm", "beijing:50:10",
               "--name", "cli", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "warnings by region" in out and "Town" in out and "stored as layers flood_cli_*" in out
    scene = cim.open_scene(tmp_path / "s.cim")
    assert "flood_cli_max_depth" in scene and (tmp_path / "out" / "cli_warnings.geojson").is_file()
    # what was stored is the forecast of a 50-year, 10-minute Chicago storm of Beijing's formula (peak at 0.4)
    storm = hydrology.chicago_hyetograph(hydrology.chinese_storm_formula("beijing").idf(50.0), 10.0, 5.0, r=0.4)
    expected = flood.forecast(scene, rainfall=storm, duration=600, write=False).dataset.max_depth
    np.testing.assert_array_equal(scene.layer("flood_cli_max_depth").values, expected.values)
    other = hydrology.chicago_hyetograph(hydrology.chinese_storm_formula("beijing").idf(1.0), 10.0, 5.0, r=0.4)
    assert np.nanmax(flood.forecast(scene, rainfall=other, duration=600, write=False).dataset.max_depth.values) < \
        np.nanmax(expected.values) - 1e-3  # the return period matters


@pytest.mark.parametrize(("args", "message"), [
    (["--rain", "5", "--storm", "beijing:1:30"], "exactly one rainfall source"),
    ([], "exactly one rainfall source"),
    (["--storm", "atlantis:100:60"], "atlantis"),
    (["--gauges", "yesterday"], "START/END"),
    (["--rain", "5", "--scheme", "fv2"], "choose one of inertial, fv1"),
    (["--rain", "5", "--datastream", "3"], "--datastream goes with --gauges"),
    (["--rain", "5", "--buildings", "lifted"], "choose blocked or raised"),
    (["--gauges", "2020-06-17T10:00/2020-06-17T12:00", "--gauge-method", "kriging"], "choose idw or nearest"),
    (["--gauges", "2020-06-17T10:00/2020-06-17T12:00", "--datastream", "7"], "no Datastream 7"),
])
def test_forecast_command_usage_errors(tmp_path, capsys, args, message):
    bowl_scene(tmp_path / "s.cim")
    rc = main(["forecast", str(tmp_path / "s.cim"), "--duration", "60", *args])
    captured = capsys.readouterr()
    assert rc in (1, 2) and message in " ".join((captured.err + captured.out).split())
    assert "Traceback" not in captured.err


def test_forecast_help_shows_the_storm_example_as_typed(capsys):
    assert main(["forecast", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "beijing:50:60" in out and "--gauge-method" in out and "\U0001f4af" not in out


def test_forecast_command_with_the_fv1_scheme(tmp_path, capsys):
    scene = bowl_scene(tmp_path / "s.cim")
    rc = main(["forecast", str(tmp_path / "s.cim"), "--duration", "300", "--rain", "100", "--scheme", "fv1",
               "--name", "fv"])
    out = capsys.readouterr().out
    assert rc == 0, out
    # the finite-volume run is stored and keeps the rain on the closed bowl
    stored = cim.open_scene(tmp_path / "s.cim").layer("flood_fv_max_depth")
    assert float(stored.max()) > 0 and "mass error" in out
    fv = flood.forecast(scene, rainfall=100, duration=300, scheme="fv1", write=False).dataset.max_depth.values
    inertial = flood.forecast(scene, rainfall=100, duration=300, write=False).dataset.max_depth.values
    np.testing.assert_array_equal(stored.values, fv)  # the scheme reached the solver
    assert np.nanmax(np.abs(fv - inertial)) > 1e-4
    scene.close()


def test_forecast_command_with_two_rain_gauges(tmp_path, capsys):
    from cim import iot
    from tests.flood.test_gauges import CELLS, _at, _gauge

    scene = bowl_scene(tmp_path / "s.cim")
    with scene.store.engine.begin() as conn:
        for k in ("west", "east"):
            iot.add_thing(conn, _gauge(k, *_at(*CELLS[k]), [30.0, 10.0]))
    rc = main(["forecast", str(tmp_path / "s.cim"), "--duration", "600", "--gauges",
               "2020-06-17T10:00/2020-06-17T13:00", "--gauge-method", "nearest", "--datastream", "1",
               "--datastream", "2", "--name", "g"])
    out = capsys.readouterr().out
    assert rc == 0, out
    # both gauges rained 30 mm/h in the first hour: the gridded field is uniform, as --rain 30 is. (The pond
    # still filling against the house's east wall is sensitive: a change of 1e-7 in the rain, like float32
    # rounding, moves its maximum by ~0.2 mm; --rain 30.000003 does the same.)
    assert main(["forecast", str(tmp_path / "s.cim"), "--duration", "600", "--rain", "30", "--name", "u"]) == 0
    stored = cim.open_scene(tmp_path / "s.cim")
    gauged, uniform = stored.layer("flood_g_max_depth"), stored.layer("flood_u_max_depth")
    assert float(gauged.max()) > 0.03
    np.testing.assert_allclose(gauged.values, uniform.values, atol=5e-4)
    assert np.nanquantile(np.abs(gauged.values - uniform.values), 0.99) < 1e-6
    scene.close()
