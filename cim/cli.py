"""The `cim` command line: scenes here; other packages add sub-commands through the "cim_twin.cli" entry points.

Library errors become one clean line on stderr and exit code 1 (2 for an unexpected failure); `--debug` shows
the traceback.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

import cim
from cim.crs import crs_string
from cim.errors import CIMError

__all__ = ["app", "console", "main"]

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="cim",
    help="CIM Twin: city information models (GIS + BIM + IoT), 3D Tiles, hydrology and flood forecasts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
scene_app = typer.Typer(help="Create and inspect scenes (embedded directory or PostGIS URL).", no_args_is_help=True)
app.add_typer(scene_app, name="scene")

_state = {"debug": False}


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    """CIM Twin command line. Every command has --help."""
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@scene_app.command("create")
def scene_create(
    url: str = typer.Argument(..., help="Directory for an embedded store, or postgresql+psycopg://user@host/db?schema=NAME"),
    crs: str = typer.Option(..., "--crs", help="Projected CRS in metres, e.g. EPSG:7415 (RD New + NAP) or EPSG:4547"),
    name: str = typer.Option(..., "--name", help="Scene name, e.g. Delft"),
    description: str = typer.Option("", "--description", help="Free text"),
) -> None:
    """Create an empty scene."""
    scene = cim.Scene.create(url, crs=crs, name=name, description=description)
    console.print(f"created scene [bold]{scene.name}[/] ({scene.crs.name}) at {scene.store.display_url}")


@scene_app.command("info")
def scene_info(url: str = typer.Argument(..., help="Scene directory or PostGIS URL")) -> None:
    """Show a scene's CRS, extent, administrative regions and a table of its layers."""
    scene = cim.open_scene(url)
    print_scene(scene)


def print_scene(scene: cim.Scene) -> None:
    """Render a scene summary (regions as a tree, layers as a table)."""
    console.print(f"[bold]{scene.name}[/]  {scene.crs.name} ({crs_string(scene.crs)})  {scene.store.display_url}")
    if scene.extent:
        x0, y0, x1, y1 = scene.extent
        console.print(f"extent: {x0:.1f}, {y0:.1f} - {x1:.1f}, {y1:.1f}  ({x1 - x0:.0f} x {y1 - y0:.0f} m)")
    regions = scene.regions
    if len(regions):
        tree = Tree("regions")
        nodes = {}
        for r in regions.itertuples():
            label = f"{r.name} [dim]({r.level}, {r.geometry.area / 1e6:.2f} km²)[/]"
            parent = nodes.get(r.parent) if isinstance(r.parent, str) else None
            nodes[r.name] = (parent or tree).add(label)
        console.print(tree)
    table = Table(title=f"{len(scene.layers)} layers")
    for col in ("name", "kind", "CIM", "storage", "contents", "units", "source"):
        table.add_column(col)
    for info in scene.layers:
        table.add_row(info.name, info.kind, f"CIM{info.cim_level}" if info.cim_level else "", info.storage,
                      info.summary(), info.units or "", Path(info.source).name if info.source else "")
    console.print(table)


def _load_plugins() -> None:
    for ep in sorted(entry_points(group="cim_twin.cli"), key=lambda e: e.name):
        try:
            ep.load()(app)
        except ImportError as exc:      # an extra that is not installed: the rest of the CLI still works
            logging.getLogger(__name__).debug("sub-command %s unavailable: %s", ep.name, exc)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cim` script."""
    _load_plugins()
    try:
        rc = app(args=argv, standalone_mode=False)      # without standalone mode, click returns ctx.exit codes
    except (CIMError, ValueError, TypeError, OSError) as exc:
        # hydrology and flood may not import cim, so their errors are not CIMErrors: any error of our
        # packages (or a CIMError) is the user's to fix and gets one clean line; anything else is internal
        if not (isinstance(exc, CIMError) or type(exc).__module__.split(".")[0] in _OUR_PACKAGES):
            return _internal(exc)
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 1
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):     # click/typer usage errors
            exc.show()
            return exc.exit_code
        return _internal(exc)
    return rc if isinstance(rc, int) else 0


_OUR_PACKAGES = {"cim", "ingest", "hydrology", "flood", "tiles", "api"}


def _internal(exc: BaseException) -> int:
    if _state["debug"]:
        raise exc
    err_console.print(f"[red]internal error:[/] {exc.__class__.__name__}: {exc} (run with --debug for details)",
                      highlight=False)
    return 2


def _script() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _script()
