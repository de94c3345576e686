"""ANUGA (finite-volume shallow water, Geoscience Australia / ANU) on the seeded urban rain-on-grid case.

A third peer that installs offline (``pip install anuga``): it runs the same case as LISFLOOD-FP 8.1 and SFINCS 2.4
in ``tests/data/flood/reference`` (DEM from ``tests/flood/urban_case.py``, 100 mm/h for 1800 s, 3600 s simulated,
Manning 0.03, closed edges, depth threshold 0.001 m) on a mesh of 4 triangles per DEM cell (``rectangular_cross``),
each triangle taking its cell's elevation. A cell's depth is the mean of its four triangles (its volume over
its area); the maximum depth is the largest of that after every ANUGA step (above 0.001 m, as LISFLOOD-FP
records it). Writes
``anuga_maxdepth_n{N}_seed{S}.npy`` and ``anuga_finaldepth_n{N}_seed{S}.npy`` (float32, row 0 = north) and a JSON
line of figures to ``--out``.

    .venv/bin/python benchmarks/anuga_peer.py --n 500 --seed 1 --out tests/data/flood/reference
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.flood.urban_case import REFERENCE_CASE, urban_array


def run(n: int, seed: int, *, algorithm: str = "DE0", yieldstep: float = 60.0) -> dict:
    import anuga

    class CellMax(anuga.Operator):
        """After every step: the largest cell depth so far (triangle depths averaged per DEM cell)."""

        def __init__(self, domain, cell: np.ndarray, ncells: int) -> None:
            super().__init__(domain)
            self.cell = cell
            self.area = domain.areas
            self.cell_area = np.bincount(cell, self.area, ncells)
            self.max = np.zeros(ncells)

        def __call__(self) -> None:
            q = self.domain.quantities
            h = q["stage"].centroid_values - q["elevation"].centroid_values
            np.maximum(self.max, np.bincount(self.cell, h * self.area, self.cell_area.size) / self.cell_area,
                       out=self.max)

    c = REFERENCE_CASE
    dx = c["dx"]
    z = urban_array(n, dx, seed).astype(np.float64)
    domain = anuga.rectangular_cross_domain(n, n, len1=n * dx, len2=n * dx)
    domain.set_flow_algorithm(algorithm)
    domain.set_store(False)
    domain.set_minimum_allowed_height(0.001)
    cx = domain.centroid_coordinates[:, 0]
    cy = domain.centroid_coordinates[:, 1]
    col = np.clip(np.floor(cx / dx).astype(int), 0, n - 1)
    row = np.clip(n - 1 - np.floor(cy / dx).astype(int), 0, n - 1)
    ztri = z[row, col]
    domain.set_quantity("elevation", ztri, location="centroids")
    domain.set_quantity("stage", ztri, location="centroids")
    domain.set_quantity("friction", c["manning"], location="centroids")
    wall = anuga.Reflective_boundary(domain)
    domain.set_boundary(dict.fromkeys(domain.get_boundary_tags(), wall))
    rate = c["rain_mm_h"] / 3.6e6
    rain_s = c["rain_s"]
    anuga.Rate_operator(domain, rate=lambda t: rate if t < rain_s else 0.0)
    maxq = CellMax(domain, row * n + col, n * n)
    area = domain.areas
    t0 = time.perf_counter()
    steps = 0
    for _ in domain.evolve(yieldstep=yieldstep, finaltime=c["sim_s"]):
        steps += domain.number_of_steps  # counted per yield step
    wall_s = time.perf_counter() - t0
    stage = domain.quantities["stage"].centroid_values
    elev = domain.quantities["elevation"].centroid_values
    final = np.maximum(stage - elev, 0.0)

    def to_grid(values: np.ndarray) -> np.ndarray:
        s = np.zeros((n, n))
        np.add.at(s, (row, col), values * area)
        a = np.zeros((n, n))
        np.add.at(a, (row, col), area)
        return (s / a).astype(np.float32)

    max_grid = np.where(maxq.max > 0.001, maxq.max, 0.0).reshape(n, n).astype(np.float32)
    fin_grid = to_grid(final)
    return {
        "max": max_grid, "final": fin_grid,
        "figures": {"n": n, "seed": seed, "anuga": anuga.__version__, "algorithm": algorithm,
                    "triangles": int(area.size), "wall_seconds": wall_s, "steps": int(steps),
                    "final_volume_m3": float(np.sum(final * area)),
                    "rain_volume_m3": rate * rain_s * (n * dx) ** 2,
                    "max_depth_m": float(max_grid.max())},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--algorithm", default="DE0", help="ANUGA flow algorithm (DE0 first order, DE1 second)")
    ap.add_argument("--out", type=Path, default=Path("."))
    a = ap.parse_args()
    res = run(a.n, a.seed, algorithm=a.algorithm)
    a.out.mkdir(parents=True, exist_ok=True)
    tag = f"n{a.n}_seed{a.seed}"
    np.save(a.out / f"anuga_maxdepth_{tag}.npy", res["max"])
    np.save(a.out / f"anuga_finaldepth_{tag}.npy", res["final"])
    print(json.dumps(res["figures"]))


if __name__ == "__main__":
    main()
