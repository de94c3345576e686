"""Ingest 100,000 building footprints from a file into both scene stores, side by side with geopandas.

Ours: ``ingest.ingest(scene, "footprints.gpkg")`` — detect the format, read through pyogrio, check the CRS and the
coordinates, validate (and count/repair) every geometry, then write all-or-nothing through the scene store.
Anchors, on the same file in the same process: geopandas ``read_file`` + ``to_file`` (GeoPackage) for the
embedded store, ``read_file`` + ``to_postgis`` for PostGIS. Also the CityJSON reader on the Delft sample (with
and without the derived DEM), as throughput of our own. A throwaway PostGIS cluster is started for the run.

    .venv/bin/python benchmarks/ingest.py --n 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import geopandas as gpd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cim  # noqa: E402
import ingest  # noqa: E402
from benchmarks._timing import Timings  # noqa: E402
from benchmarks.stores import CRS, footprints  # noqa: E402
from tests.services import PostgisCluster  # noqa: E402

DELFT = ROOT / "tests" / "data" / "ingest" / "delft_lod1.city.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cim-bench-ingest-"))
    src = tmp / "footprints.gpkg"
    footprints(args.n).to_file(src)
    cluster = PostgisCluster().start()
    import sqlalchemy as sa

    engine = sa.create_engine(cluster.url())
    timings = Timings()
    measure = timings.measure

    def gpd_to_file(r: int) -> None:
        gpd.read_file(src).to_file(tmp / f"copy{r}.gpkg")

    def gpd_to_postgis(r: int) -> None:
        gpd.read_file(src).to_postgis(f"g{r}", engine, index=False)

    try:
        for r in range(args.repeat):
            scene = cim.Scene.create(tmp / f"s{r}.cim", crs=CRS, name="bench")
            rep = measure("ingest embedded", ingest.ingest, scene, src, kind="buildings")
            assert rep.added_count("footprints") == args.n
            measure("geopandas read_file + to_file", gpd_to_file, r)
            pg = cim.Scene.create(cluster.url(schema=f"s{r}"), crs=CRS, name="bench")
            measure("ingest postgis", ingest.ingest, pg, src, kind="buildings")
            measure("geopandas read_file + to_postgis", gpd_to_postgis, r)
            shutil.rmtree(pg.store.files_root, ignore_errors=True)
            measure("read Delft CityJSON (no DEM)", ingest.read, DELFT, dem=False)
            measure("read Delft CityJSON + 1 m DEM", ingest.read, DELFT)
    finally:
        engine.dispose()
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    timings.report(f"{args.n} footprints from a GeoPackage, median of {args.repeat} runs (seconds)",
                   [("ingest embedded", "geopandas read_file + to_file"),
                    ("ingest postgis", "geopandas read_file + to_postgis")])


if __name__ == "__main__":
    main()
