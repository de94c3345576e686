"""Fill + D8 + flow accumulation, side by side with pyflwdir, whitebox-workflows and richdem2.

Every timed run is a fresh subprocess on the same seeded DEM (a tilted plane, 0.1 m per cell in both
directions, plus uniform noise in [0, 1) m, float32, 10 m cells), so that its peak RSS is that tool's own for
one run (allocator reuse across runs in one process would blur it). Times are medians of --repeat runs from
the DEM in memory to the accumulation in memory (input reading excluded), each after a warm-up run on a
300 x 300 DEM in the same process (every tool alike; large enough for our parallel strip fill, which needs 256
rows, so that the timed run loads no kernel and starts no thread pool: JIT and cache loading are reported
separately); "RSS warm" is the peak RSS after the warm-up and building the DEM.
"cim-twin" resolves flats after filling (Barnes et al. 2014, the default); "cim-twin-epsilon" fills with the
smallest gradient instead (like whitebox-workflows' default ``fix_flats``), leaving no flats. Both get the DEM
as a DataArray whose CRS is a CF grid-mapping coordinate built with pyproj (what ``xr.open_dataset`` of a CF
NetCDF gives), so rioxarray is never imported; "cim-twin-rioxarray" is "cim-twin" with the CRS written by
rioxarray's ``.rio.write_crs`` (rioxarray, rasterio and dask.array loaded: about 45 MB more). Ours uses numba's
default thread count (all cores): the flat fill runs over strips in parallel (two per thread), D8 and flat
resolution over rows, the accumulation over two strips; epsilon filling is sequential. Our JIT cost is measured
separately: the first call (on the warm-up DEM) in a fresh process, once with numba's on-disk cache warm and
once with an empty cache directory.
The start time and load average are printed first.

    .venv/bin/python benchmarks/hydrology.py --sizes 2000 4000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("cim-twin", "cim-twin-epsilon", "cim-twin-rioxarray", "whitebox-workflows", "richdem2", "pyflwdir")
WARMUP_N = 300  # warm-up DEM size: >= 256 rows so that our parallel strip fill runs in the warm-up too


def make_dem(n: int, seed: int = 42):
    """The benchmark DEM, built row-block-wise in float32 so that building it costs little memory."""
    import numpy as np

    rng = np.random.default_rng(seed)
    z = rng.random((n, n), dtype=np.float32)
    ramp = (0.1 * np.arange(n, dtype=np.float32))[::-1]
    for r0 in range(0, n, 512):
        z[r0 : r0 + 512] += ramp[r0 : r0 + 512, None] + ramp[None, :]
    return z


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _dem_array(z, rio: bool):
    """``z`` as a DataArray in EPSG:32631, the CRS written by rioxarray or as a CF coordinate by pyproj."""
    import numpy as np
    import xarray as xr

    n = z.shape[0]
    dem = xr.DataArray(z, dims=("y", "x"), coords={"y": 10.0 * (n - np.arange(n)) - 5, "x": 10.0 * np.arange(n) + 5})
    if rio:
        import rioxarray  # noqa: F401

        return dem.rio.write_crs("EPSG:32631")
    from pyproj import CRS

    return dem.assign_coords(spatial_ref=xr.Variable((), 0, CRS("EPSG:32631").to_cf()))


def _run_ours(z, repeat, epsilon=False, rio=False):
    sys.path.insert(0, str(ROOT))
    import hydrology

    dem = _dem_array(z, rio)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        acc = hydrology.flow_accumulation(
            hydrology.flow_direction(hydrology.fill_depressions(dem, epsilon=epsilon))
        )
        times.append(time.perf_counter() - t0)
        del acc
    return times


def _run_whitebox(z, repeat):
    import numpy as np
    import rioxarray  # noqa: F401
    import whitebox_workflows as wbw
    import xarray as xr

    n = z.shape[0]
    path = Path(tempfile.mkdtemp(prefix="hyd-bench-")) / "dem.tif"
    xr.DataArray(
        z, dims=("y", "x"), coords={"y": 10.0 * (n - np.arange(n)) - 5, "x": 10.0 * np.arange(n) + 5}
    ).rio.write_crs("EPSG:32631").rio.to_raster(path)
    wbe = wbw.WbEnvironment()
    h = wbe.hydrology
    raster = wbe.read_raster(str(path))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        filled = h.fill_depressions(dem=raster)  # default: flats fixed with a small increment
        ptr = h.d8_pointer(dem=filled, esri_pntr=True)
        acc = h.d8_flow_accum(input=ptr, out_type="cells", input_is_pointer=True, esri_pntr=True)
        times.append(time.perf_counter() - t0)
        del filled, ptr, acc
        wbe.clear_raster_memory() if hasattr(wbe, "clear_raster_memory") else None
        raster = wbe.read_raster(str(path))
    path.unlink()
    return times


def _run_richdem(z, repeat):
    import richdem as rd

    times = []
    for _ in range(repeat):
        dem = rd.rdarray(z.copy(), no_data=-9999.0, geotransform=[0.0, 10.0, 0.0, 0.0, 0.0, -10.0])
        t0 = time.perf_counter()
        rd.FillDepressions(dem, epsilon=False, in_place=True)
        rd.ResolveFlats(dem, in_place=True)
        acc = rd.FlowAccumulation(dem, method="D8")
        times.append(time.perf_counter() - t0)
        del dem, acc
    return times


def _run_pyflwdir(z, repeat):
    import pyflwdir
    from affine import Affine

    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        flw = pyflwdir.from_dem(z, nodata=-9999.0, transform=Affine(10.0, 0, 0, 0, -10.0, 0))
        acc = flw.upstream_area(unit="cell")
        times.append(time.perf_counter() - t0)
        del flw, acc
    return times


def _run_ours_epsilon(z, repeat):
    return _run_ours(z, repeat, epsilon=True)


def _run_ours_rio(z, repeat):
    return _run_ours(z, repeat, rio=True)


RUNNERS = {"cim-twin": _run_ours, "cim-twin-epsilon": _run_ours_epsilon, "cim-twin-rioxarray": _run_ours_rio,
           "whitebox-workflows": _run_whitebox, "richdem2": _run_richdem, "pyflwdir": _run_pyflwdir}


def child(tool: str, n: int, repeat: int) -> None:
    """Run one tool in this (fresh) process and print a JSON line."""
    import logging

    logging.disable(logging.WARNING)
    RUNNERS[tool](make_dem(WARMUP_N), 1)  # warm-up: imports, JIT (pyflwdir is numba too), caches, threads
    z = make_dem(n)
    base = _peak_rss_mb()
    times = RUNNERS[tool](z, repeat)
    print(json.dumps({"tool": tool, "n": n, "times": times, "median": statistics.median(times),
                      "peak_rss_mb": _peak_rss_mb(), "rss_after_dem_mb": base}))


def jit_child() -> None:
    """First call of fill + D8 + accumulation on the warm-up DEM in a fresh process (compile or cache load)."""
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    import hydrology

    t_import = time.perf_counter() - t0
    dem = _dem_array(make_dem(WARMUP_N), rio=False)  # every kernel of the timed runs (the strip fill too)
    t1 = time.perf_counter()
    hydrology.flow_accumulation(hydrology.flow_direction(hydrology.fill_depressions(dem)))
    print(json.dumps({"import_s": t_import, "first_call_s": time.perf_counter() - t1}))


def _spawn(args: list[str], env=None) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    ap.add_argument("--child", nargs=3, metavar=("TOOL", "N", "REPEAT"), help=argparse.SUPPRESS)
    ap.add_argument("--jit-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    if args.jit_child:
        jit_child()
        return
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load}, "
          f"{os.cpu_count()} CPUs, NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}")
    with tempfile.TemporaryDirectory() as cold:
        env = dict(os.environ, NUMBA_CACHE_DIR=cold)
        cold_jit = _spawn(["--jit-child"], env=env)
    warm_jit = _spawn(["--jit-child"])
    print(f"JIT, first call in a fresh process: {cold_jit['first_call_s']:.2f} s with an empty numba cache, "
          f"{warm_jit['first_call_s']:.2f} s with the cache warm (import hydrology {warm_jit['import_s']:.2f} s)")
    for n in args.sizes:
        rows = []
        for tool in args.tools:
            runs = [_spawn(["--child", tool, str(n), "1"]) for _ in range(args.repeat)]
            times = [r["times"][0] for r in runs]
            rows.append({"tool": tool, "times": times, "median": statistics.median(times),
                         "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                         "rss_after_dem_mb": max(r["rss_after_dem_mb"] for r in runs)})
        print(f"\n{n} x {n} cells, fill + D8 + accumulation, median of {args.repeat} runs (one per process)")
        print(f"{'tool':<20} {'median s':>9} {'runs s':<24} {'peak RSS MB':>11} {'RSS warm MB':>11}")
        for r in rows:
            runs = " ".join(f"{t:.2f}" for t in r["times"])
            print(f"{r['tool']:<20} {r['median']:>9.2f} {runs:<24} {r['peak_rss_mb']:>11.0f} "
                  f"{r['rss_after_dem_mb']:>11.0f}")
        for ours in (r for r in rows if r["tool"].startswith("cim-twin")):
            anchors = [r for r in rows if not r["tool"].startswith("cim-twin")]
            if anchors:
                fastest = min(anchors, key=lambda r: r["median"])
                print(f"{ours['tool']}: speed-up over the fastest anchor ({fastest['tool']}): "
                      f"{fastest['median'] / ours['median']:.2f}x")
            pf = next((r for r in rows if r["tool"] == "pyflwdir"), None)
            if pf:
                print(f"{ours['tool']}: peak RSS relative to pyflwdir: {ours['peak_rss_mb'] / pf['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
