"""`cim demo`: the main job, end to end on the Delft sample data shipped in ``data/demo``.

It lives in `api` because it is an application of every package (DESIGN.md: only `api` may import them all).
Each step is a small function of the scene; `run_demo` runs them in order with a progress display and returns
a summary. Steps are added here as the packages behind them land.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import typer
from shapely import box

import cim
import ingest

__all__ = ["DEMO_DATA", "DemoResult", "register", "run_demo"]

DEMO_DATA = Path(__file__).resolve().parent.parent / "data" / "demo"
SCENE_CRS = "EPSG:7415"          # Amersfoort / RD New + NAP height


@dataclass
class DemoResult:
    scene: cim.Scene
    out: Path
    timings: dict[str, float] = field(default_factory=dict)
    reports: list = field(default_factory=list)


def _data(name: str) -> Path:
    path = DEMO_DATA / name
    if not path.is_file():
        raise cim.StoreNotFoundError(f"{path}: demo data file missing; the checkout is incomplete (git status)")
    return path


def step_scene(res: DemoResult) -> None:
    """Create the scene (RD New + NAP heights)."""
    res.scene = cim.Scene.create(res.out / "delft.cim", crs=SCENE_CRS, name="Delft",
                                 description="Delft centre: 3D city model, BIM, rain gauge and radar (demo)")


def step_city_model(res: DemoResult) -> None:
    """Ingest the CityJSON city model: buildings, roads, water, land use, plant cover and the derived DEM."""
    res.reports.append(ingest.ingest(res.scene, _data("delft_lod1.city.json")))
    res.scene.extent = res.scene.layer_info("dem").bounds      # the city model's ground defines the scene


def step_regions(res: DemoResult) -> None:
    """Administrative regions: Delft (city) > Binnenstad (district) > north and south halves (demo subdivisions).

    The sample covers part of Delft's historic centre; the polygons are drawn around the data for the demo and
    are not official boundaries.
    """
    x0, y0, x1, y1 = res.scene.extent
    scene = res.scene
    scene.add_region("Delft", "city", box(x0 - 200, y0 - 200, x1 + 200, y1 + 200), code="GM0503")
    scene.add_region("Binnenstad", "district", box(x0, y0, x1, y1), parent="Delft")
    ymid = round((y0 + y1) / 2, 1)
    scene.add_region("Binnenstad-Noord", "subdistrict", box(x0, ymid, x1, y1), parent="Binnenstad")
    scene.add_region("Binnenstad-Zuid", "subdistrict", box(x0, y0, x1, ymid), parent="Binnenstad")


def step_sensors(res: DemoResult) -> None:
    """The KNMI 310 rain gauge as a SensorThings Thing/Datastream with its 2020-06-17 observations."""
    res.reports.append(ingest.ingest(res.scene, _data("sta_thing_knmi310_precip_20200617.json")))


def step_radar(res: DemoResult) -> None:
    """The KNMI radar event of 2010-08-26 (5-minute accumulations -> mm/h), clipped to 15 km around Delft."""
    path = _data("knmi_radar_5min_20100826.nc")
    res.reports.append(ingest.ingest(res.scene, path, name="radar_20100826",
                                     bbox=_bbox_in_file_crs(res.scene, path, margin=15_000)))


def _bbox_in_file_crs(scene: cim.Scene, path: Path, margin: float) -> tuple[float, float, float, float]:
    """The scene extent plus a margin, in the CRS of a gridded file (so that only that part is read)."""
    import rioxarray  # noqa: F401
    import xarray as xr
    from rasterio.warp import transform_bounds

    with xr.open_dataset(path, decode_coords="all") as ds:
        file_crs = next(ds[v].rio.crs for v in ds.data_vars if ds[v].rio.crs is not None)
    x0, y0, x1, y1 = scene.extent
    return transform_bounds(scene.crs, file_crs, x0 - margin, y0 - margin, x1 + margin, y1 + margin)


STEPS: list[tuple[str, Callable[[DemoResult], None]]] = [
    ("scene", step_scene),
    ("city model", step_city_model),
    ("regions", step_regions),
    ("rain gauge", step_sensors),
    ("radar", step_radar),
]


def run_demo(out: Path, *, progress: Callable[[str, int, int], None] | None = None) -> DemoResult:
    """Run every step into a fresh ``out`` directory; ``progress(step, i, n)`` is called before each step."""
    out = Path(out)
    if (out / "delft.cim").exists():
        shutil.rmtree(out / "delft.cim")
    out.mkdir(parents=True, exist_ok=True)
    res = DemoResult(scene=None, out=out)  # type: ignore[arg-type]
    for i, (label, fn) in enumerate(STEPS):
        if progress:
            progress(label, i, len(STEPS))
        t = time.perf_counter()
        fn(res)
        res.timings[label] = time.perf_counter() - t
    return res


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(out: Path = typer.Option(Path("demo-output"), "--out", help="Output folder (recreated)")) -> None:
        """Build the Delft scene from the bundled sample data and run the main job end to end."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from cim.cli import console, print_scene

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=False) as bar:
            task = bar.add_task("demo", total=len(STEPS))

            def report(label: str, i: int, n: int) -> None:
                bar.update(task, completed=i, description=label)

            res = run_demo(out, progress=report)
            bar.update(task, completed=len(STEPS), description="done")
        for r in res.reports:
            console.print(r)
        print_scene(res.scene)
        total = sum(res.timings.values())
        console.print(f"demo finished in {total:.1f} s; scene at {res.scene.url}")
        console.print(f"inspect it with:  cim scene info {res.scene.url}")
