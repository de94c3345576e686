"""`cim forecast`: run a flood forecast on a scene from the shell, with a progress bar and warning tables."""

from __future__ import annotations

import typing
from pathlib import Path

import typer

__all__ = ["register"]


def _storm(spec: str):
    """'beijing:100:60[:0.4]' -> a Chicago hyetograph of that city's formula, return period and minutes."""
    import hydrology

    try:
        city, period, minutes, *rest = spec.split(":")
        r = float(rest[0]) if rest else 0.4
        idf = hydrology.chinese_storm_formula(city).idf(float(period))
        return hydrology.chicago_hyetograph(idf, duration=float(minutes), dt=5.0, r=r)
    except ValueError as exc:
        raise typer.BadParameter(f"--storm {spec!r}: use CITY:RETURN_PERIOD:MINUTES[:PEAK], e.g. beijing:50:60 "
                                 f"({exc})") from None


def register(app: typer.Typer) -> None:
    @app.command("forecast")
    def forecast_cmd(
        scene_url: str = typer.Argument(..., metavar="SCENE", help="Scene directory or PostGIS URL"),
        duration: float = typer.Option(..., "--duration", help="Simulated time in seconds"),
        rain: float = typer.Option(None, "--rain", help="Uniform rain rate (mm/h) for the whole run"),
        # (no ":100:" in texts rich renders: it becomes an emoji)
        storm: str = typer.Option(None, "--storm", help="Design storm CITY:RETURN_PERIOD:MINUTES[:PEAK], e.g. "
                                  "beijing:50:60 (a Chicago hyetograph of the city's GB 50014 storm formula)"),
        layer: str = typer.Option(None, "--layer", help="A rainfall layer of the scene (radar, nowcast)"),
        gauges: str = typer.Option(None, "--gauges", help="The scene's rain gauges over START/END (UTC), "
                                   "e.g. 2020-06-17T14:00/2020-06-17T17:00; several are gridded over the domain"),
        datastream: list[int] = typer.Option(None, "--datastream", help="With --gauges: a rain-gauge Datastream "
                                             "id to use (repeat the option; default: all rain gauges)"),
        gauge_method: str = typer.Option("idw", "--gauge-method", help="With several gauges: 'idw' (inverse "
                                         "distance weighting) or 'nearest' (Thiessen polygons)"),
        name: str = typer.Option("forecast", "--name", help="Results are stored as layers flood_NAME_*"),
        resolution: float = typer.Option(None, "--resolution", help="Model cell size (m), coarser than the DEM"),
        drainage: float = typer.Option(None, "--drainage", help="Sewer capacity as a loss rate (mm/h)"),
        buildings: str = typer.Option("blocked", "--buildings", help="'blocked' (walls, the default) or 'raised' "
                                      "(by their height: roofs shed their rain around them)"),
        out: Path = typer.Option(None, "--out", help="Also write GeoTIFF and GeoJSON results here"),
        scheme: str = typer.Option("inertial", "--scheme", help="Solver: 'inertial' (local inertial, the default: "
                                   "right for pluvial flooding, slow shallow subcritical flow) or 'fv1' (finite "
                                   "volume with a Riemann solver: dam breaks, fast supercritical flow)"),
    ) -> None:
        """Run a flood forecast on SCENE and show warnings by region; results are stored in the scene.

        Give exactly one rainfall source: --rain, --storm, --layer or --gauges.
        """
        import pandas as pd
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Table

        import cim
        from cim.cli import console
        from flood.forecasting import forecast
        from flood.gauges import parse_window
        from flood.model import Scheme

        schemes = typing.get_args(Scheme)
        if scheme not in schemes:
            raise typer.BadParameter(f"--scheme {scheme!r}: choose one of {', '.join(schemes)}")
        sources = {"--rain": rain, "--storm": storm, "--layer": layer, "--gauges": gauges}
        given = [k for k, v in sources.items() if v is not None]
        if len(given) != 1:
            raise typer.BadParameter(f"give exactly one rainfall source of --rain, --storm, --layer, --gauges "
                                     f"(got {', '.join(given) or 'none'})")
        window = None
        rainfall = rain if rain is not None else _storm(storm) if storm else layer
        if buildings not in ("blocked", "raised"):
            raise typer.BadParameter(f"--buildings {buildings!r}: choose blocked or raised")
        if gauge_method not in ("idw", "nearest"):
            raise typer.BadParameter(f"--gauge-method {gauge_method!r}: choose idw or nearest")
        if gauges is not None:
            try:
                rainfall, window = "gauges", parse_window(gauges)
            except cim.ValidationError as exc:
                raise typer.BadParameter(f"--gauges: {exc}") from None
        elif datastream:
            raise typer.BadParameter("--datastream goes with --gauges START/END")
        scene = cim.open_scene(scene_url)
        with Progress(TextColumn("[bold]simulating"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("sim", total=duration)
            fc = forecast(scene, rainfall=rainfall, duration=duration, name=name, window=window,
                          gauges=datastream or None, gauge_method=gauge_method, buildings=buildings,
                          resolution=resolution, drainage=drainage, scheme=scheme,
                          progress=lambda t, total: bar.update(task, completed=t))
        console.print(fc.summary())
        if len(fc.regions):
            table = Table(title="warnings by region")
            for col in ("region", "level", "max depth (m)", "road flooded (m)", "buildings", "first warning (s)"):
                table.add_column(col)
            for r in fc.regions.itertuples():
                table.add_row(str(r.region), r.level_name, f"{r.max_depth:.2f}", f"{r.road_length_flooded_m:.0f}",
                              str(r.buildings_affected), "" if pd.isna(r.time_first_warning) else f"{r.time_first_warning:.0f}")
            console.print(table)
        if out is not None:
            for key, path in fc.to_files(out).items():
                console.print(f"wrote {key}: {path}")
        console.print(f"stored as layers flood_{name}_* in {scene.url}")
