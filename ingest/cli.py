"""`cim ingest SCENE FILE... [--crs EPSG:…] [--format NAME] [-o KEY=VALUE ...] [--mqtt HOST:PORT]`.

Each file is ingested all-or-nothing; a refused file is reported (red row) and the others still go in; the exit
code is 1 when any file was refused. ``--mqtt`` then runs the live SensorThings subscriber until interrupted.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from cim.errors import CIMError, DataError, ValidationError

__all__ = ["IngestRefusedError", "ingest_command", "parse_options", "register"]

log = logging.getLogger(__name__)


class IngestRefusedError(DataError):
    """One or more files given to `cim ingest` were refused (each is in the report with its reason)."""


def parse_options(pairs: list[str]) -> dict:
    """``["dem_resolution=2", "units=m", "bbox=[0,0,1,1]"]`` -> options (values parsed as JSON when they can be)."""
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise ValidationError(f"option {p!r} must look like KEY=VALUE, e.g. -o dem_resolution=2")
        k, v = p.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValidationError(f"--mqtt {text!r}: use HOST:PORT, e.g. --mqtt 127.0.0.1:1883")
    return host, int(port)


def ingest_command(
    scene_url: str = typer.Argument(..., metavar="SCENE", help="Scene directory or PostGIS URL"),
    files: list[Path] = typer.Argument(None, metavar="FILE...", help="Files to ingest (format detected)"),
    crs: str | None = typer.Option(None, "--crs", help="CRS of files that carry none, e.g. EPSG:7415"),
    format: str | None = typer.Option(None, "--format", help="Force a reader: cityjson, citygml, vector, raster, rainfall_netcdf, "
                                "rainfall_stack, gauge_csv, ifc, pointcloud, sensorthings, observations_csv, "
                                "citygml3_dynamizer, 3dtiles (ingest.readers() lists them)"),
    option: list[str] = typer.Option(None, "--option", "-o", help="Reader option KEY=VALUE (repeatable)"),
    prefix: str | None = typer.Option(None, "--prefix", help="Put this before every layer name, e.g. rdam_"),
    replace: bool = typer.Option(False, "--replace", help="Swap layers that exist already (all-or-nothing)"),
    mqtt: str | None = typer.Option(None, "--mqtt", help="Then subscribe to SensorThings MQTT at HOST:PORT"),
) -> None:
    """Ingest files into a scene (city models, vectors, rasters, rainfall, IFC, point clouds, 3D Tiles, SensorThings)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    import cim
    import ingest

    console = Console()
    if not files and not mqtt:
        raise ValidationError("give at least one FILE, or --mqtt HOST:PORT")
    host_port = _host_port(mqtt) if mqtt else None
    options = parse_options(option)
    scene = cim.open_scene(scene_url)
    report = ingest.IngestReport()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("ingesting", total=len(files or []))
        for f in files or []:
            progress.update(task, description=f"ingesting {f.name}")
            opts = dict(options)
            try:
                reader = ingest.find_reader(f, format)
                if crs is not None and "crs" in reader.options:
                    opts.setdefault("crs", crs)
                ingest.ingest(scene, f, format=format, report=report, prefix=prefix, replace=replace,
                              **opts)
            except CIMError as exc:
                report.fail(f, str(exc))
                log.debug("refused %s", f, exc_info=True)
            progress.advance(task)
    if files:
        console.print(report)
    if host_port is not None:
        from ingest.mqtt import run_subscriber

        console.print(f"subscribing to SensorThings observations at {host_port[0]}:{host_port[1]} (Ctrl-C stops)")
        try:
            stats = run_subscriber(scene, *host_port)
            console.print(stats)
        except KeyboardInterrupt:
            console.print("stopped")
    if not report.ok:
        raise IngestRefusedError(f"{len(report.failed)} of {len(files)} file(s) refused, nothing of them was "
                                 "written (see the report above)")


def register(app: typer.Typer) -> None:
    """Add `cim ingest` to the `cim` command line (entry point "cim_twin.cli")."""
    app.command("ingest")(ingest_command)
