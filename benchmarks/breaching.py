"""Least-cost depression breaching, side by side with whitebox-workflows' breach_depressions_least_cost.

Both tools breach the seeded benchmark DEM of ``benchmarks/hydrology.py`` (a tilted plane, 0.1 m per cell both
ways, plus uniform noise in [0, 1) m, float32, 10 m cells) with the same limits: channels of at most
``--dist`` cells, unbreached depressions filled, each tool's default flat increment (ours: one representable
step per cell, float32 kept; whitebox-workflows: a step derived from the elevation range, output in float64).
Times run from the DEM in memory to the result in memory (whitebox-workflows reads its raster once, before the
runs), runs alternate between the tools, medians of ``--repeat``. Our JIT compilation is excluded: a warm-up
call on a 100 x 100 DEM is timed separately (numba's on-disk cache makes it small after the first ever run).
Also printed: CPU seconds over all threads (whitebox-workflows uses both cores for parts of its work, we use one),
how many cells each tool changes, the total |change|, and how many cells both change.

    .venv/bin/python benchmarks/breaching.py --sizes 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import rioxarray  # noqa: E402, F401
import whitebox_workflows as wbw  # noqa: E402
import xarray as xr  # noqa: E402

import hydrology  # noqa: E402
from benchmarks._timing import Timings  # noqa: E402
from benchmarks.hydrology import make_dem  # noqa: E402


def as_dem(z: np.ndarray) -> xr.DataArray:
    n = z.shape[0]
    return xr.DataArray(
        z, dims=("y", "x"), coords={"y": 10.0 * (n - np.arange(n)) - 5, "x": 10.0 * np.arange(n) + 5}
    ).rio.write_crs("EPSG:32631")


def run(n: int, repeat: int, dist: int) -> None:
    z = make_dem(n)
    dem = as_dem(z)
    t = time.perf_counter()
    hydrology.breach_depressions(as_dem(make_dem(100)), max_length=dist)
    print(f"cim-twin first call (JIT, 100²): {time.perf_counter() - t:.2f} s")
    path = Path(tempfile.mkdtemp(prefix="breach-bench-")) / "dem.tif"
    dem.rio.to_raster(path)
    wbe = wbw.WbEnvironment()
    raster = wbe.read_raster(str(path))
    timings = Timings()
    cpu: dict[str, list[float]] = {}
    for _ in range(repeat):
        c = time.process_time()
        ours = timings.measure("cim-twin", hydrology.breach_depressions, dem, max_length=dist).values
        cpu.setdefault("cim-twin", []).append(time.process_time() - c)
        c = time.process_time()
        wb = timings.measure(
            "whitebox-workflows",
            wbe.hydrology.breach_depressions_least_cost,
            dem=raster,
            max_dist=dist,
            fill_deps=True,
        )
        cpu.setdefault("whitebox-workflows", []).append(time.process_time() - c)
        wb = wb.to_numpy()
    path.unlink()
    timings.report(
        f"{n}² breach + fill (dist {dist}), median of {repeat} (s)", [("cim-twin", "whitebox-workflows")]
    )
    print(
        "  CPU seconds (all threads), median: "
        + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in cpu.items())
    )
    print(f"  wall runs: {timings.runs}")
    filled = hydrology.fill_depressions(dem).values
    z64 = z.astype(np.float64)
    for name, out in (("cim-twin", ours), ("whitebox-workflows", wb), ("fill_depressions", filled)):
        d = np.abs(out.astype(np.float64) - z64)
        print(f"  {name:20s} cells changed {np.mean(d > 0):7.2%}   sum |change| {d.sum():10.1f} m")
    mo = ours != z
    mw = wb != z64
    print(f"  cells both change / either changes: {np.sum(mo & mw) / np.sum(mo | mw):.4f}")
    close = np.abs(ours.astype(np.float64) - wb) <= 1e-3
    print(f"  cells within 1 mm of each other: {close.mean():.4%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dist", type=int, default=100, help="longest channel, cells (max_length / max_dist)")
    args = ap.parse_args()
    for n in args.sizes:
        run(n, args.repeat, args.dist)


if __name__ == "__main__":
    main()
