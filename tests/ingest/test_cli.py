"""`cim ingest`: files into a scene with a report table; refused files named with their fix, exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest

import cim
from cim.cli import main
from ingest.cli import parse_options

DATA = Path(__file__).parents[1] / "data" / "ingest"


@pytest.fixture
def scene_dir(tmp_path):
    url = str(tmp_path / "s.cim")
    cim.Scene.create(url, crs="EPSG:7415", name="T").close()
    return url


def test_cli_ingests_files_and_prints_the_report(scene_dir, capsys):
    code = main(["ingest", scene_dir, str(DATA / "3dbag_multi_lod.city.json"),
                 str(DATA / "three_buildings_citygml2.gml"), "--crs", "EPSG:7415", "-o", "lod=2.2"])
    out = capsys.readouterr().out
    assert code == 1          # the CityGML file has no LoD2.2: refused, the CityJSON went in
    assert "Ingest report" in out and "added" in out and "failed" in out
    scene = cim.open_scene(scene_dir)
    assert sorted(i.name for i in scene.layers) == ["building_surfaces", "buildings"]
    assert len(scene.layer("buildings")) == 10 and set(scene.layer("buildings")["lod"]) == {"2.2"}


def test_cli_refused_file_exit_code_and_message(scene_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")                 # one table row per line
    code = main(["ingest", scene_dir, str(DATA / "simple.las")])
    captured = capsys.readouterr()
    assert code == 1
    assert "simple.las: no CRS in the file's VLRs; pass crs=" in captured.out
    assert "1 of 1 file(s) refused" in captured.err.replace("\n", " ")
    assert cim.open_scene(scene_dir).layers == []


def test_cli_needs_a_file_or_mqtt(scene_dir, capsys):
    assert main(["ingest", scene_dir]) == 1
    assert "give at least one FILE, or --mqtt" in capsys.readouterr().err


def test_parse_options():
    assert parse_options(["dem_resolution=2", "units=m", "bbox=[1, 2, 3, 4]", "dem=false"]) == {
        "dem_resolution": 2, "units": "m", "bbox": [1, 2, 3, 4], "dem": False}
    with pytest.raises(cim.ValidationError, match="KEY=VALUE"):
        parse_options(["oops"])


@pytest.mark.mqtt
def test_cli_mqtt_subscribes_until_interrupted(scene_dir, mqtt_broker):
    """`cim ingest SCENE FILE --mqtt HOST:PORT`: the file goes in, then live observations are stored until Ctrl-C."""
    import signal
    import subprocess
    import sys
    import time

    from cim.iot import datastreams, observations
    from ingest.mqtt import publish_observations

    cmd = [sys.executable, "-c", "import sys; from cim.cli import main; sys.exit(main(sys.argv[1:]))",
           "ingest", scene_dir, str(DATA / "sta_thing_knmi310_precip_20200617.json"),
           "--mqtt", f"127.0.0.1:{mqtt_broker.port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        scene = cim.open_scene(scene_dir)
        deadline = time.monotonic() + 60
        ds_id = None
        while time.monotonic() < deadline and ds_id is None:            # the file is in once its Datastream is
            time.sleep(0.5)
            with scene.transaction() as conn:
                d = datastreams(conn)
            ds_id = int(d["id"].iloc[0]) if len(d) else None
        assert ds_id is not None, proc.stderr.read() if proc.poll() is not None else "file not ingested in 60 s"
        obs = {"phenomenonTime": "2020-06-18T00:00:00Z", "result": 4.2}
        found = None
        while time.monotonic() < deadline and found is None:            # resend until the subscriber is up
            publish_observations("127.0.0.1", mqtt_broker.port, ds_id, [obs])
            time.sleep(1.0)
            with scene.transaction() as conn:
                o = observations(conn, ds_id, start="2020-06-18T00:00:00Z")
            found = o if len(o) else None
        assert found is not None and found["result"].tolist() == [4.2]   # stored once, however often resent
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Ingest report" in out and "subscribing to SensorThings observations" in out


def test_format_help_names_every_registered_reader():
    import inspect

    import ingest
    from ingest.cli import ingest_command

    text = inspect.signature(ingest_command).parameters["format"].default.help
    assert [n for n in ingest.readers() if n not in text] == []
