"""`cim forecast` from the shell: progress, warnings by region, results stored; bad usage is a clean error."""

from __future__ import annotations

import pytest

import cim
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


@pytest.mark.parametrize(("args", "message"), [
    (["--rain", "5", "--storm", "beijing:1:30"], "exactly one rainfall source"),
    ([], "exactly one rainfall source"),
    (["--storm", "atlantis:100:60"], "atlantis"),
    (["--gauges", "yesterday"], "START/END"),
    (["--rain", "5", "--scheme", "fv2"], "choose one of inertial, fv1"),
])
def test_forecast_command_usage_errors(tmp_path, capsys, args, message):
    bowl_scene(tmp_path / "s.cim")
    rc = main(["forecast", str(tmp_path / "s.cim"), "--duration", "60", *args])
    captured = capsys.readouterr()
    assert rc in (1, 2) and message in " ".join((captured.err + captured.out).split())
    assert "Traceback" not in captured.err


def test_forecast_command_with_the_fv1_scheme(tmp_path, capsys):
    scene = bowl_scene(tmp_path / "s.cim")
    rc = main(["forecast", str(tmp_path / "s.cim"), "--duration", "300", "--rain", "100", "--scheme", "fv1",
               "--name", "fv"])
    out = capsys.readouterr().out
    assert rc == 0, out
    # the finite-volume run is stored and keeps the rain on the closed bowl
    stored = cim.open_scene(tmp_path / "s.cim").layer("flood_fv_max_depth")
    assert float(stored.max()) > 0 and "mass error" in out
    scene.close()
