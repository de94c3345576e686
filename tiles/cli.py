"""``cim tiles build SCENE OUT [--layers a,b]``: a scene's layers to 3D Tiles, map tiles and the viewer page."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``tiles`` sub-commands to the ``cim`` command line."""
    tiles_app = typer.Typer(help="3D Tiles and map tiles of a scene, and the CesiumJS viewer page.",
                            no_args_is_help=True)

    @tiles_app.command("build")
    def build(
        scene_url: str = typer.Argument(..., metavar="SCENE", help="Scene directory or PostGIS URL"),
        out: str = typer.Argument(..., metavar="OUT", help="Output folder (serve it over HTTP and open index.html)"),
        layers: str = typer.Option("", "--layers", help="Comma-separated layer names (default: every tileable layer)"),
        format: str = typer.Option("glb", "--format", help="glb (3D Tiles 1.1) or b3dm (3D Tiles 1.0)"),
        viewer: bool = typer.Option(True, "--viewer/--no-viewer", help="Write the CesiumJS viewer page"),
    ) -> None:
        """Write 3D Tiles (buildings, BIM, terrain, water, point clouds), map tiles and the viewer for SCENE."""
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        import cim
        from tiles.scene import build_scene_tiles

        console = Console(stderr=True)
        scene = cim.open_scene(scene_url)
        names = [n.strip() for n in layers.split(",") if n.strip()] or None
        todo = names or [i.name for i in scene.layers if i.kind != "building_surfaces"]
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=False) as bar:
            task = bar.add_task("tiles", total=len(todo))
            seen: list[str] = []

            def step(name: str) -> None:
                if seen:
                    bar.advance(task)
                seen.append(name)
                bar.update(task, description=f"tiles: {name}")

            result = build_scene_tiles(scene, out, layers=names, format=format, viewer=viewer, progress=step)
            bar.update(task, completed=len(todo), description="tiles: done")
        out_console = Console()
        for name, paths in result.outputs.items():
            out_console.print(f"{name}: " + ", ".join(str(p) for p in paths))
        for name, why in result.skipped.items():
            out_console.print(f"[yellow]skipped[/] {name}: {why}")
        if result.viewer:
            out_console.print(f"viewer: {result.viewer}  (serve with: python -m http.server -d {out})")

    app.add_typer(tiles_app, name="tiles")
