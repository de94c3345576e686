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

import pandas as pd
import typer
from shapely import box

import cim
import flood
import hydrology
import ingest
import tiles
from flood.forecasting import forecast, terrain
from flood.hotspots import find_hotspots

__all__ = ["DEMO_DATA", "DemoResult", "register", "run_demo"]

DEMO_DATA = Path(__file__).resolve().parent.parent / "data" / "demo"
SCENE_CRS = "EPSG:7415"          # Amersfoort / RD New + NAP height
RESOLUTION = 2.0                 # flood model cells (m); the city model's DEM is 1 m
SEWER_CAPACITY = 20.0            # mm/h taken by the sewers (the order of Dutch design storms for sewer systems)
#: the gauge event: KNMI 310 stamps hourly sums at the end of the hour; 51.3 mm fell 14:00-15:00 UTC
GAUGE_WINDOW = (pd.Timestamp("2020-06-17T14:00", tz="UTC"), pd.Timestamp("2020-06-17T17:00", tz="UTC"))


@dataclass
class DemoResult:
    scene: cim.Scene
    out: Path
    timings: dict[str, float] = field(default_factory=dict)
    reports: list = field(default_factory=list)
    forecasts: list = field(default_factory=list)
    rains: dict = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    simulating: Callable[[float, float], None] | None = None      # progress inside a forecast (s, of s)


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


def step_bim(res: DemoResult) -> None:
    """The TU Delft Bouwkunde IFC model, placed by its IfcMapConversion."""
    res.reports.append(ingest.ingest(res.scene, _data("bouwkunde_georeferenced.ifc")))


def step_hotspots(res: DemoResult) -> None:
    """Low-lying points from the terrain's depressions (hydrology), outside buildings and water bodies."""
    dem = terrain(res.scene, resolution=RESOLUTION)
    spots = find_hotspots(dem, min_depth=0.05, min_area=4 * RESOLUTION**2)
    covered = pd.concat([res.scene.layer("buildings").geometry, res.scene.layer("water").geometry])
    inside = spots.geometry.apply(lambda p: bool(covered.intersects(p).any()))
    spots = spots[~inside.to_numpy()].head(8).reset_index(drop=True)
    spots.insert(0, "name", [f"low point {i + 1}" for i in range(len(spots))])
    res.scene.add_layer("hotspots", spots, kind="hotspots", units="m", source="flood.hotspots on the DEM")


def design_storm():
    """A 100-year, 60-minute Chicago storm (peak at 40 %) from Beijing's storm-intensity formula."""
    idf = hydrology.chinese_storm_formula("beijing").idf(100.0)
    return hydrology.chicago_hyetograph(idf, duration=60.0, dt=5.0, r=0.4)


def step_forecast_design(res: DemoResult) -> None:
    """Forecast for the 100-year design storm: 60 min of rain, 90 min simulated."""
    rain = design_storm()
    res.rains["design_100y"] = rain
    res.forecasts.append(forecast(res.scene, rainfall=rain, duration=5400.0, name="design_100y",
                                  resolution=RESOLUTION, output_interval=300.0, drainage=SEWER_CAPACITY,
                                  progress=res.simulating))


def step_forecast_gauge(res: DemoResult) -> None:
    """Forecast for the real 2020-06-17 gauge event (KNMI 310 Vlissingen, transposed onto Delft)."""
    res.forecasts.append(forecast(res.scene, rainfall="gauges", window=GAUGE_WINDOW, duration=9000.0,
                                  name="gauge_20200617", resolution=RESOLUTION, output_interval=300.0,
                                  drainage=SEWER_CAPACITY, progress=res.simulating))
    res.rains["gauge_20200617"] = flood.gauge_rainfall(res.scene, GAUGE_WINDOW)


def step_outputs(res: DemoResult) -> None:
    """GeoTIFF and GeoJSON results of each forecast."""
    for fc in res.forecasts:
        for key, path in fc.to_files(res.out / "results").items():
            res.outputs[f"{fc.name} {key}"] = path


def step_tiles(res: DemoResult) -> None:
    """3D Tiles: buildings (LoD from the city model), the BIM model, terrain, and the design storm's water."""
    scene, out = res.scene, res.out / "tiles"
    fc = res.forecasts[0]
    sets = [tiles.buildings_to_3dtiles(scene.layer("buildings"), out / "buildings", height="height",
                                       ground="ground_z", surfaces=scene.layer("building_surfaces"),
                                       id_column="id", cim_level=2),
            tiles.terrain_to_3dtiles(fc.dem, out / "terrain")]
    for info in scene.layers:
        if info.kind == "bim":
            sets.append(tiles.bim_to_3dtiles(scene.layer(info.name), out / info.name))
    levels = tuple(zip(fc.levels.thresholds, fc.levels.names, strict=True))
    frames = tiles.flood_to_3dtiles(fc.dataset["depth"], fc.dem, out / "water", warning_levels=levels)
    res.outputs.update({p.parent.name: p for p in sets})
    try:
        res.outputs["viewer"] = tiles.write_viewer(out, sets, frames=frames)
    except cim.MissingDependencyError as exc:
        res.notes.append(f"3D viewer not written: {exc}")


def step_report(res: DemoResult) -> None:
    """The HTML report: maps, hydrographs, warnings by region, timings and attributions."""
    from api.report import write_report

    extra = [f"Sewer capacity modelled as a loss of {SEWER_CAPACITY:.0f} mm/h from standing water; model cells "
             f"{RESOLUTION:.0f} m; buildings are walls.", f"Serve the scene and its tiles: cim serve {res.scene.url}"]
    extra += res.notes
    res.outputs["report"] = write_report(res.out / "report.html", scene=res.scene, forecasts=res.forecasts,
                                         rains=res.rains, timings=res.timings, extra=extra)


STEPS: list[tuple[str, Callable[[DemoResult], None]]] = [
    ("scene", step_scene),
    ("city model", step_city_model),
    ("regions", step_regions),
    ("BIM model", step_bim),
    ("rain gauge", step_sensors),
    ("radar", step_radar),
    ("hotspots", step_hotspots),
    ("forecast: 100-year design storm", step_forecast_design),
    ("forecast: 2020-06-17 gauge event", step_forecast_gauge),
    ("results", step_outputs),
    ("3D tiles", step_tiles),
    ("report", step_report),
]


def run_demo(out: Path, *, progress: Callable[[str, int, int], None] | None = None,
             simulating: Callable[[float, float], None] | None = None) -> DemoResult:
    """Run every step into a fresh ``out`` directory; ``progress(step, i, n)`` is called before each step and
    ``simulating(t, duration)`` as a forecast advances."""
    out = Path(out)
    if (out / "delft.cim").exists():
        shutil.rmtree(out / "delft.cim")
    out.mkdir(parents=True, exist_ok=True)
    res = DemoResult(scene=None, out=out, simulating=simulating)  # type: ignore[arg-type]
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
            sim = bar.add_task("simulated time (s)", total=1.0, visible=False)

            def report(label: str, i: int, n: int) -> None:
                bar.update(task, completed=i, description=label)
                bar.update(sim, visible=False)

            def simulating(t: float, duration: float) -> None:
                bar.update(sim, completed=t, total=duration, visible=True)

            res = run_demo(out, progress=report, simulating=simulating)
            bar.update(task, completed=len(STEPS), description="done")
        for r in res.reports:
            console.print(r)
        print_scene(res.scene)
        for fc in res.forecasts:
            console.print(fc.summary())
        for note in res.notes:
            console.print(f"[yellow]note:[/] {note}")
        total = sum(res.timings.values())
        console.print(f"demo finished in {total:.1f} s; scene at {res.scene.url}")
        console.print(f"report: {res.outputs['report']}")
        console.print(f"inspect it with:  cim scene info {res.scene.url}")
        console.print(f"serve it with:    cim serve {res.scene.url}")
