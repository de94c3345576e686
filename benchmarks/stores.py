"""Write and read 100,000 building footprints through both scene stores, side by side with geopandas.

Anchors, in the same process on the same data: geopandas ``to_file`` (GeoPackage through pyogrio) for the
embedded store, and ``to_postgis`` (pandas ``to_sql`` through GeoAlchemy2) for PostGIS; reads against
``read_file`` and ``read_postgis``. A throwaway PostGIS cluster is started for the run. Medians of --repeat runs.

    .venv/bin/python benchmarks/stores.py --n 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cim
from benchmarks._timing import Timings
from tests.services import PostgisCluster

CRS = "EPSG:28992"


def footprints(n: int, seed: int = 1) -> gpd.GeoDataFrame:
    """Seeded rectangles over 10 km x 10 km with a few typed attributes."""
    rng = np.random.default_rng(seed)
    x = 80_000 + rng.uniform(0, 10_000, n)
    y = 440_000 + rng.uniform(0, 10_000, n)
    w, h = rng.uniform(6, 40, n), rng.uniform(6, 40, n)
    return gpd.GeoDataFrame({
        "height": rng.uniform(3, 60, n).round(2),
        "storeys": rng.integers(1, 20, n).astype("int32"),
        "name": pd.array([f"building {i}" for i in range(n)], dtype="str"),
        "built": pd.Timestamp("1900-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 4e9, n), unit="s"),
    }, geometry=shapely.box(x, y, x + w, y + h), crs=CRS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    gdf = footprints(args.n)
    tmp = Path(tempfile.mkdtemp(prefix="cim-bench-"))
    cluster = PostgisCluster().start()
    import sqlalchemy as sa

    engine = sa.create_engine(cluster.url())
    timings = Timings()
    measure = timings.measure

    try:
        for r in range(args.repeat):
            scene = cim.Scene.create(tmp / f"s{r}.cim", crs=CRS, name="bench")
            measure("embedded add_layer", scene.add_layer, "b", gdf, kind="buildings")
            measure("embedded layer()", scene.layer, "b")
            measure("geopandas to_file (GPKG)", gdf.to_file, tmp / f"g{r}.gpkg")
            measure("geopandas read_file (GPKG)", gpd.read_file, tmp / f"g{r}.gpkg")
            pg = cim.Scene.create(cluster.url(schema=f"s{r}"), crs=CRS, name="bench")
            measure("postgis add_layer", pg.add_layer, "b", gdf, kind="buildings")
            measure("postgis layer()", pg.layer, "b")
            measure("geopandas to_postgis", gdf.to_postgis, f"g{r}", engine, index=False)
            measure("geopandas read_postgis", gpd.read_postgis, f"SELECT * FROM g{r}", engine, geom_col="geometry")
            shutil.rmtree(pg.store.files_root, ignore_errors=True)
    finally:
        engine.dispose()
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    timings.report(f"{args.n} footprints, median of {args.repeat} runs (seconds)",
                   [("embedded add_layer", "geopandas to_file (GPKG)"), ("embedded layer()", "geopandas read_file (GPKG)"),
                    ("postgis add_layer", "geopandas to_postgis"), ("postgis layer()", "geopandas read_postgis")])


if __name__ == "__main__":
    main()
