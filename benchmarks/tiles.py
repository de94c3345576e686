"""Benchmark: 100,000 LoD1 buildings to 3D Tiles, tiles.buildings_to_3dtiles vs py3dtiles' B3dm.from_meshes.

Both sides get the same seeded footprints and heights (10 km x 10 km, EPSG:28992) and the same quadtree leaves.
- ours: `tiles.buildings_to_3dtiles` -> 3D Tiles 1.1 glb with EXT_mesh_features/EXT_structural_metadata, plus
  the coarser inner-tile LODs;
- baseline: per building, ear-clip the roof, build walls, transform to ECEF with pyproj and make one
  `py3dtiles...gltf_utils.GltfMesh`; per leaf tile one `B3dm.from_meshes(meshes, batch_table, feature_table)`
  (BATCH_LENGTH set, a batch table with the same attributes). It writes leaves only (no LODs).
Each side runs in a fresh Python process (peak RSS is per process); output is checked with the Khronos validator.

    .venv/bin/python benchmarks/tiles.py [--n 100000] [--repeat 1] [--out /tmp/cim-bench-tiles] [--quantize]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = (80_000.0, 440_000.0)      # RD New, around Delft


def synthetic_buildings(n: int, seed: int = 42):
    """Seeded footprints over 10 km x 10 km: rotated rectangles, L shapes and a few courtyards."""
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(seed)
    cx = ORIGIN[0] + rng.uniform(0, 10_000, n)
    cy = ORIGIN[1] + rng.uniform(0, 10_000, n)
    w, d = rng.uniform(6, 25, n), rng.uniform(6, 20, n)
    kind = rng.choice(3, n, p=[0.8, 0.15, 0.05])
    ang = rng.uniform(0, np.pi, n)
    # template rings in unit coordinates, then scaled, rotated and moved (vectorised per kind)
    rect = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    ell = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.0], [0.0, 0.0], [0.0, 0.5], [-0.5, 0.5]])
    geoms = np.empty(n, object)
    for k, tpl in ((0, rect), (1, ell), (2, rect)):
        idx = np.flatnonzero(kind == k)
        pts = tpl[None] * np.stack([w[idx], d[idx]], axis=1)[:, None, :]
        c, s = np.cos(ang[idx])[:, None], np.sin(ang[idx])[:, None]
        x = pts[..., 0] * c - pts[..., 1] * s + cx[idx, None]
        y = pts[..., 0] * s + pts[..., 1] * c + cy[idx, None]
        rings = np.concatenate([np.stack([x, y], -1), np.stack([x[:, :1], y[:, :1]], -1)], axis=1)
        if k == 2:
            hole = rings[:, ::-1] * 0.3 + np.stack([cx[idx], cy[idx]], -1)[:, None, :] * 0.7
            geoms[idx] = [shapely.Polygon(r, [h]) for r, h in zip(rings, hole, strict=True)]
        else:
            geoms[idx] = shapely.polygons(rings)
    return gpd.GeoDataFrame({
        "id": [f"BAG.{i:07d}" for i in range(n)],
        "name": [f"building {i}" for i in range(n)],
        "height": rng.gamma(2.0, 6.0, n).round(2) + 3.0,
        "ground": rng.normal(0.0, 1.5, n).round(2),
        "year": rng.integers(1600, 2025, n),
        "function": rng.choice(["residential", "office", "industry", "school"], n),
    }, geometry=geoms, crs="EPSG:28992")


def run_ours(gdf, out: Path, quantize: bool = False) -> dict:
    import tiles

    t = time.perf_counter()
    path = tiles.buildings_to_3dtiles(gdf, out, max_features=1000, quantize=quantize)
    return {"seconds": time.perf_counter() - t, "tileset": str(path)}


def run_baseline(gdf, out: Path) -> dict:
    """One GltfMesh per building through py3dtiles' B3dm.from_meshes, per leaf tile of the same quadtree."""
    import mapbox_earcut as earcut
    import shapely
    from py3dtiles.tileset.content import B3dm
    from py3dtiles.tileset.content.b3dm_feature_table import B3dmFeatureTable
    from py3dtiles.tileset.content.batch_table import BatchTable
    from py3dtiles.tileset.content.gltf_utils import GltfMesh, GltfPrimitive
    from pyproj import Transformer

    from tiles._geo import enu_matrix
    from tiles._tiler import _walk, quadtree

    t0 = time.perf_counter()
    to_ecef = Transformer.from_crs(gdf.crs, "EPSG:4978", always_xy=True)
    geoms = gdf.geometry.to_numpy()
    anchors = shapely.get_coordinates(shapely.point_on_surface(geoms))
    root, order = quadtree(anchors, 1000)
    heights, grounds = gdf["height"].to_numpy(), gdf["ground"].to_numpy()
    cols = ["id", "name", "height", "year", "function"]
    (out / "tiles").mkdir(parents=True, exist_ok=True)
    children = []
    for node in _walk(root):
        if node.children:
            continue
        rows = order[node.start:node.stop]
        centre = np.array(to_ecef.transform(*anchors[rows].mean(axis=0), 0.0))
        rot = enu_matrix(centre)[:3, :3]          # scene axes ~ east, north, up at the tile: normals to ECEF
        meshes = []
        for k, i in enumerate(rows):
            poly = shapely.orient_polygons(geoms[i])
            rings = [np.asarray(poly.exterior.coords)[:-1]] + [np.asarray(r.coords)[:-1] for r in poly.interiors]
            flat = np.vstack(rings)
            ends = np.cumsum([len(r) for r in rings]).astype(np.uint32)
            roof = np.asarray(earcut.triangulate_float64(flat, ends), np.uint32).reshape(-1, 3)
            g, h = grounds[i], grounds[i] + heights[i]
            verts, normals, tris = [np.column_stack([flat, np.full(len(flat), h)])], [np.tile([0, 0, 1.0], (len(flat), 1))], [roof]
            base = len(flat)
            for ring in rings:
                nxt = np.roll(ring, -1, axis=0)
                for a, b in zip(ring, nxt, strict=True):
                    dx, dy = b - a
                    ln = np.hypot(dx, dy)
                    verts.append(np.array([[*a, g], [*b, g], [*b, h], [*a, h]]))
                    normals.append(np.tile([dy / ln, -dx / ln, 0.0], (4, 1)))
                    tris.append(np.array([[base, base + 1, base + 2], [base, base + 2, base + 3]], np.uint32))
                    base += 4
            v = np.vstack(verts)
            x, y, z = to_ecef.transform(v[:, 0], v[:, 1], v[:, 2])
            local = np.column_stack([x, y, z]) - centre
            local = np.column_stack([local[:, 0], local[:, 2], -local[:, 1]]).astype(np.float32)   # y up
            nrm = np.vstack(normals) @ rot.T
            nrm = np.column_stack([nrm[:, 0], nrm[:, 2], -nrm[:, 1]]).astype(np.float32)
            meshes.append(GltfMesh(local, normals=nrm,
                                   primitives=[GltfPrimitive(triangles=np.vstack(tris).astype(np.uint32))],
                                   batchids=np.full(len(v), k, np.uint32)))
        bt = BatchTable()
        for c in cols:
            bt.add_property_as_json(c, gdf[c].iloc[rows].tolist())
        ft = B3dmFeatureTable()
        ft.set_batch_length(len(rows))
        tile = B3dm.from_meshes(meshes, batch_table=bt, feature_table=ft)
        name = f"tiles/{node.name}.b3dm"
        tile.save_as(out / name)
        children.append({"boundingVolume": {"sphere": [*centre, 1000.0]}, "geometricError": 0.0,
                         "content": {"uri": name}, "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, *centre, 1]})
    tileset = {"asset": {"version": "1.0"}, "geometricError": 500.0,
               "root": {"boundingVolume": {"sphere": [*to_ecef.transform(*anchors.mean(axis=0), 0.0), 8000.0]},
                        "geometricError": 100.0, "refine": "REPLACE", "children": children}}
    (out / "tileset.json").write_text(json.dumps(tileset))
    return {"seconds": time.perf_counter() - t0, "tileset": str(out / "tileset.json")}


def _child(which: str, n: int, out: Path, quantize: bool = False) -> None:
    sys.path.insert(0, str(ROOT))
    gdf = synthetic_buildings(n)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    res = run_ours(gdf, out, quantize) if which == "ours" else run_baseline(gdf, out)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["mb_written"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    res["files"] = sum(1 for f in out.rglob("*") if f.is_file())
    print(json.dumps(res))


def measure(which: str, n: int, out: Path, quantize: bool = False) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", which, "--n", str(n), "--out", str(out),
                        *(["--quantize"] if quantize else [])],
                       capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(r.stdout.strip().splitlines()[-1])


def validate(folder: Path) -> tuple[int, int, int]:
    """(files, files with errors, total errors) from the Khronos validator (tests/js/validate.mjs)."""
    files = sorted(str(p) for p in folder.rglob("*") if p.suffix in (".glb", ".b3dm"))
    errors = bad = 0
    for i in range(0, len(files), 100):
        r = subprocess.run(["node", str(ROOT / "tests" / "js" / "validate.mjs"), *files[i:i + 100]],
                           capture_output=True, text=True, check=True)
        for line in r.stdout.splitlines():
            d = json.loads(line)
            errors += d["numErrors"]
            bad += d["numErrors"] > 0
    return len(files), bad, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/cim-bench-tiles"))
    ap.add_argument("--child", choices=["ours", "baseline"])
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--quantize", action="store_true", help="ours with KHR_mesh_quantization")
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.n, args.out, args.quantize)
        return
    sides = ["ours"] if args.skip_baseline else ["ours", "baseline"]
    runs: dict[str, list[dict]] = {w: [] for w in sides}
    for _ in range(args.repeat):              # interleaved, so that both sides see the same machine load
        for which in sides:
            runs[which].append(measure(which, args.n, args.out / which, args.quantize))
            print(f"{which:9s} {runs[which][-1]['seconds']:8.2f} s", flush=True)
    results = {}
    for which in sides:
        best = runs[which][-1]
        best["seconds_median"] = statistics.median(r["seconds"] for r in runs[which])
        best["seconds_all"] = [round(r["seconds"], 2) for r in runs[which]]
        best["validation"] = dict(zip(("files", "files_with_errors", "errors"), validate(args.out / which),
                                      strict=True))
        results[which] = best
        print(f"{which:9s} median {best['seconds_median']:8.2f} s  peak RSS {best['peak_rss_mb']:7.0f} MB  "
              f"written {best['mb_written']:7.1f} MB in {best['files']} files  "
              f"validator: {best['validation']}", flush=True)
    if "baseline" in results:
        print(f"speed-up: {results['baseline']['seconds_median'] / results['ours']['seconds_median']:.1f}x")
    print(json.dumps({"n": args.n, "cpu_count": os.cpu_count(), **results}, indent=1))


if __name__ == "__main__":
    main()
