"""The `cim` command line: help, scene commands, and errors as clean messages with exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cim.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cim.cli", *args], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_help_lists_commands():
    out = run("--help")
    assert out.returncode == 0
    for cmd in ("scene", "demo"):
        assert cmd in out.stdout
    assert "--crs" in run("scene", "create", "--help").stdout


def test_create_and_info(tmp_path, capsys):
    path = str(tmp_path / "d.cim")
    assert main(["scene", "create", path, "--crs", "EPSG:7415", "--name", "Delft"]) == 0
    assert main(["scene", "info", path]) == 0
    out = capsys.readouterr().out
    assert "created scene Delft" in out and "EPSG:7415" in out and "0 layers" in out


@pytest.mark.parametrize(("args", "message"), [
    (["scene", "create", "{tmp}/g.cim", "--crs", "EPSG:4326", "--name", "X"], "projected CRS in metres"),
    (["scene", "info", "{tmp}/missing.cim"], "cim scene create"),
    (["scene", "info", "postgresql+psycopg://u@127.0.0.1:1/db"], "server is running"),
])
def test_errors_are_clean(tmp_path, args, message):
    out = run(*[a.format(tmp=tmp_path) for a in args])
    assert out.returncode == 1
    assert "error:" in out.stderr and message in " ".join(out.stderr.split())
    assert "Traceback" not in out.stderr


def test_usage_error_exit_code():
    out = run("scene", "create")
    assert out.returncode == 2 and "Missing argument" in out.stderr and "Traceback" not in out.stderr
