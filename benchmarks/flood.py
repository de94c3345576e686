"""Flood solver benchmark: cell updates per second on the shared urban rain-on-grid case, against LISFLOOD-FP 8.1.

Both schemes: the local-inertial default (LISFLOOD-FP's ACC counterpart) at every size, and ``scheme="fv1"`` (the
finite-volume shallow-water solver, LISFLOOD-FP 8's FV1 counterpart) at ``--fv1-sizes``, with its max-depth
agreement with LISFLOOD-FP (ACC) and SFINCS.

The case (seeded urban DEM of n x n cells of 5 m, 100 mm/h for 30 min, 1 h simulated, Manning 0.03, closed
edges) is regenerated bit-identically by ``tests/flood/urban_case.py``; LISFLOOD-FP's and SFINCS's figures on the
same case and machine kind come from ``tests/data/flood/reference/``. Speed is ``cells x steps / wall seconds``
(JIT compilation excluded and reported separately), medians of ``--repeats`` runs per size and thread count.

    .venv/bin/python benchmarks/flood.py                       # 500² and 1000², 1 and 2 threads, 3 runs, scaling
    .venv/bin/python benchmarks/flood.py --sizes 500 --threads 2 --repeats 1 --no-scaling   # quick look
    .venv/bin/python benchmarks/flood.py --sizes --fv1-sizes 500 --no-scaling              # fv1 rows only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import flood  # noqa: E402
from tests.flood.urban_case import REFERENCE_CASE, agreement, urban_dem, urban_rain  # noqa: E402

REF = ROOT / "tests" / "data" / "flood" / "reference"
_TINY = (
    "import sys, time; sys.path.insert(0, {root!r}); t = time.perf_counter(); import flood; "
    "from tests.flood.urban_case import urban_dem; "
    "flood.simulate(urban_dem(32), rainfall=50.0, duration=60.0); print(time.perf_counter() - t)"
)


def jit_seconds() -> dict:
    """First-call time of a tiny run in fresh processes: with an empty numba cache (compile) and a warm one."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold_cache_s", "warm_cache_s"):
            res = subprocess.run([sys.executable, "-c", _TINY.format(root=str(ROOT))], env=env, check=True,
                                 capture_output=True, text=True)
            out[label] = round(float(res.stdout.strip().splitlines()[-1]), 2)
    out["compile_s"] = round(out["cold_cache_s"] - out["warm_cache_s"], 2)
    return out


def run_case(n: int, scheme: str = "inertial") -> tuple[dict, np.ndarray]:
    c = REFERENCE_CASE
    dem = urban_dem(n, c["dx"], c["seed"])
    t0 = time.perf_counter()
    c0 = time.process_time()
    ds = flood.simulate(dem, rainfall=urban_rain(c["rain_mm_h"], c["rain_s"]), duration=c["sim_s"],
                        manning=c["manning"], output_interval=c["sim_s"], scheme=scheme)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    a = ds.attrs
    return {"wall_s": wall, "cpu_s": cpu, "loop_s": a["loop_seconds"], "steps": a["steps"],
            "mass_error": a["mass_error"], "dt_min": a["dt_min"]}, ds.max_depth.values


def bench_case(n: int, threads: list[int], repeats: int, lisflood: dict, scheme: str = "inertial") -> dict:
    res: dict = {"n": n, "cells": n * n, "scheme": scheme, "runs": {}}
    maxd = None
    for t in threads:
        numba.set_num_threads(t)
        runs = []
        for _ in range(repeats):
            r, maxd = run_case(n, scheme)
            runs.append(r)
            print(f"  {scheme} n={n} threads={t}: {r['wall_s']:.1f} s wall, {r['steps']} steps", file=sys.stderr)
        wall = statistics.median(r["wall_s"] for r in runs)
        loop = statistics.median(r["loop_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        steps = runs[0]["steps"]
        lis = lisflood["runs"][f"omp{t}"]
        res["runs"][t] = {
            "walls_s": [round(r["wall_s"], 2) for r in runs],
            "wall_median_s": round(wall, 2),
            "loop_median_s": round(loop, 2),
            "cpu_median_s": round(cpu, 2),
            "walls_min_s": round(min(r["wall_s"] for r in runs), 2),
            "mcups_best": round(n * n * steps / min(r["wall_s"] for r in runs) / 1e6, 1),
            "steps": steps,
            "mcups": round(n * n * steps / wall / 1e6, 1),
            "mcups_loop": round(n * n * steps / loop / 1e6, 1),
            "lisflood_wall_median_s": lis["wall_median_s"],
            "lisflood_mcups": round(lis["cups_median"] / 1e6, 1),
            "speedup_vs_lisflood_wall": round(lis["wall_median_s"] / wall, 2),
            "speedup_vs_lisflood_cups": round(n * n * steps / wall / lis["cups_median"], 2),
        }
    rmse, share = agreement(maxd, np.load(REF / f"lisflood_maxdepth_n{n}.npy"))
    res["vs_lisflood"] = {"rmse_m": round(rmse, 5), "share_deep_both": round(share, 4),
                          "lisflood_steps": lisflood["steps"], "mass_error": runs[0]["mass_error"]}
    sf = REF / f"sfincs_maxdepth_n{n}.npy"
    if sf.exists():
        srmse, sshare = agreement(np.load(sf), np.load(REF / f"lisflood_maxdepth_n{n}.npy"))
        res["sfincs_vs_lisflood"] = {"rmse_m": round(srmse, 5), "share_deep_both": round(sshare, 4)}
        ormse, oshare = agreement(maxd, np.load(sf))
        res["vs_sfincs"] = {"rmse_m": round(ormse, 5), "share_deep_both": round(oshare, 4)}
    return res


def bench_scaling(sizes: list[int], duration: float) -> list[dict]:
    """Time per cell update and memory from 1e5 to 1e7 cells (the urban case, shorter run)."""
    out = []
    for n in sizes:
        dem = urban_dem(n)
        tracemalloc.start()
        t0 = time.perf_counter()
        ds = flood.simulate(dem, rainfall=100.0, duration=duration, output_interval=duration)
        wall = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        steps = ds.attrs["steps"]
        out.append({"n": n, "cells": n * n, "steps": steps, "wall_s": round(wall, 2),
                    "ns_per_cell_update": round(wall / (n * n * steps) * 1e9, 2),
                    "mcups": round(n * n * steps / wall / 1e6, 1),
                    "peak_traced_mb": round(peak / 2**20, 1), "bytes_per_cell": round(peak / (n * n), 1)})
        print(f"  scaling n={n}: {wall:.1f} s, {peak / 2**20:.0f} MB", file=sys.stderr)
        del ds
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[500, 1000])
    p.add_argument("--fv1-sizes", type=int, nargs="*", default=[500], help="sizes also run with scheme='fv1'")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--scaling-sizes", type=int, nargs="+", default=[316, 1000, 3162])
    p.add_argument("--scaling-duration", type=float, default=900.0)
    p.add_argument("--json", type=Path, help="write every figure here")
    a = p.parse_args(argv)
    lis = json.loads((REF / "results.json").read_text())["cases"]
    report: dict = {
        "command": "python benchmarks/flood.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                    "numba": numba.__version__, "numpy": np.__version__,
                    "threading_layer": None},
        "jit": jit_seconds(),
    }
    print(f"JIT: {report['jit']}", file=sys.stderr)
    for scheme in ("inertial", "fv1"):  # compile or load here, not in the timings
        flood.simulate(urban_dem(32), rainfall=50.0, duration=60.0, scheme=scheme)
    report["machine"]["threading_layer"] = numba.threading_layer()
    report["cases"] = [bench_case(n, a.threads, a.repeats, lis[f"n{n}"]) for n in a.sizes]
    report["cases"] += [bench_case(n, a.threads, a.repeats, lis[f"n{n}"], "fv1") for n in a.fv1_sizes]
    numba.set_num_threads(max(a.threads))
    if not a.no_scaling:
        report["scaling"] = bench_scaling(a.scaling_sizes, a.scaling_duration)
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["machine"]["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(markdown(report))
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))
    return report


def markdown(rep: dict) -> str:
    lines = ["| scheme | N | threads | steps (LISFLOOD-FP) | our wall s: median (best) [CPU s] | LISFLOOD-FP wall s | "
             "our M cell updates/s: median (best) | LISFLOOD-FP M/s | speed ratio (median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for case in rep["cases"]:
        for t, r in case["runs"].items():
            lines.append(f"| {case.get('scheme', 'inertial')} | {case['n']} | {t} | {r['steps']} "
                         f"({case['vs_lisflood']['lisflood_steps']}) | "
                         f"{r['wall_median_s']} ({r['walls_min_s']}) [{r['cpu_median_s']}] | "
                         f"{r['lisflood_wall_median_s']} | {r['mcups']} ({r['mcups_best']}) | "
                         f"{r['lisflood_mcups']} | {r['speedup_vs_lisflood_wall']}x |")
    lines.append("")
    for case in rep["cases"]:
        v = case["vs_lisflood"]
        s = case.get("sfincs_vs_lisflood", {})
        o = case.get("vs_sfincs", {})
        lines.append(f"- {case.get('scheme', 'inertial')} N={case['n']}: max depth vs LISFLOOD-FP RMSE "
                     f"{v['rmse_m'] * 1000:.2f} mm, {v['share_deep_both'] * 100:.2f} % of the >0.10 m area in both"
                     + (f"; vs SFINCS {o['rmse_m'] * 1000:.2f} mm, {o['share_deep_both'] * 100:.2f} %" if o else "")
                     + (f" (SFINCS vs LISFLOOD-FP: {s['rmse_m'] * 1000:.2f} mm, {s['share_deep_both'] * 100:.1f} %)"
                        if s else "") + f"; mass error {v['mass_error']:.1e}")
    if "scaling" in rep:
        lines += ["", "| cells | steps | wall s | ns per cell update | M cell updates/s | peak traced MB | bytes/cell |",
                  "|---|---|---|---|---|---|---|"]
        for s in rep["scaling"]:
            lines.append(f"| {s['cells']:.0e} | {s['steps']} | {s['wall_s']} | {s['ns_per_cell_update']} | "
                         f"{s['mcups']} | {s['peak_traced_mb']} | {s['bytes_per_cell']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
