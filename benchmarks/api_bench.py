"""Helper of ``benchmarks/api.sh`` (the HTTP benchmark, issue 7): set-up and the results table.

    .venv/bin/python benchmarks/api_bench.py setup WORK_DIR DEMO_DIR [--workers N]
        writes, under WORK_DIR, the request lists the wrk Lua script cycles over (one path a line) and the
        nginx configuration that serves the same 3D Tiles files under the same paths;
    .venv/bin/python benchmarks/api_bench.py table RESULTS.jsonl
        prints the medians (req/s, p50, p99) per target and server and the ratios the issue asks for;
    .venv/bin/python benchmarks/api_bench.py settle SESSION_ID...
        waits until the servers started in those sessions (setsid) are idle, between runs.

Lists written by ``setup`` (paths relative to each server's root URL):
- ``static.txt``: every .glb content file of the demo's tilesets (buildings, terrain, BIM, 19 water frames),
  as ``/3dtiles/<tileset>/<file>`` (the same path on ``cim serve`` and on nginx);
- ``raster_ours.txt`` / ``raster_titiler.txt``: the WebMercatorQuad tiles z 13-18 over the design storm's
  max-depth layer (``flood_design_100y_max_depth``, a COG in the scene store), ours in the OGC API - Tiles form
  ``{z}/{y}/{x}``, TiTiler's ``/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url=<the same COG>``;
- ``raster_cold_ours.txt`` / ``raster_cold_titiler.txt``: 27,570 tiles at z 20-23 over the same layer, more
  than our tile cache keeps (8,192 per worker), so that every request of ours renders its tile;
- ``raster_titiler_28992.txt``: the same for TiTiler on a copy of the COG labelled EPSG:28992 instead of the
  scene's compound EPSG:7415 (GDAL warps a 2-D CRS faster);
- ``features.txt``: ``/collections/buildings/items`` with ``bbox`` (a grid of boxes over the scene) and
  ``limit`` 10, 100 or 500.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from urllib.parse import quote

LAYER = "flood_design_100y_max_depth"
ZOOMS = range(13, 19)
COLD_ZOOMS = range(20, 24)
MAX_DEPTH = 2.0


def _setup(work: Path, demo: Path, workers: int) -> None:
    import morecantile
    from pyproj import Transformer

    import cim

    tiles_root = (demo / "tiles").resolve()
    static = sorted(p.relative_to(tiles_root).as_posix() for p in tiles_root.glob("*/**/*.glb")
                    if not p.relative_to(tiles_root).as_posix().startswith("cesium"))
    if not static:
        sys.exit(f"no .glb files under {tiles_root}: run `cim demo --out {demo}` first")
    (work / "static.txt").write_text("".join(f"/3dtiles/{p}\n" for p in static))

    scene = cim.open_scene(demo / "delft.cim")
    try:
        info = scene.layer_info(LAYER)
        cog = scene.store.path(info.location)
        x0, y0, x1, y1 = info.bounds
        to84 = Transformer.from_crs(scene.crs, "OGC:CRS84", always_xy=True)
        (w, e), (s, n) = sorted(to84.transform([x0, x1], [y0, y1])[0]), sorted(to84.transform([x0, x1], [y0, y1])[1])
        ext = scene.layer_info("buildings").bounds
        bx = to84.transform([ext[0], ext[2]], [ext[1], ext[3]])
    finally:
        scene.close()
    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = list(tms.tiles(w, s, e, n, zooms=list(ZOOMS)))
    (work / "raster_ours.txt").write_text("".join(
        f"/collections/{LAYER}/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}\n" for t in tiles))
    # TiTiler: the same COG, scaled 0..MAX_DEPTH m to the 256 colours of a built-in blue ramp, nearest resampling
    q = f"url={quote(str(cog), safe='')}&rescale=0,{MAX_DEPTH:g}&colormap_name=blues&resampling=nearest"
    (work / "raster_titiler.txt").write_text("".join(
        f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?{q}\n" for t in tiles))
    # cold: 27,570 tiles at z 20-23, more than the 8,192 our LRU keeps, so that every request is rendered
    cold = list(tms.tiles(w, s, e, n, zooms=list(COLD_ZOOMS)))
    (work / "raster_cold_ours.txt").write_text("".join(
        f"/collections/{LAYER}/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}\n" for t in cold))
    (work / "raster_cold_titiler.txt").write_text("".join(
        f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?{q}\n" for t in cold))
    # the scene's CRS is compound (RD New + NAP height), which makes GDAL's warper slower: TiTiler also gets a copy
    # of the COG labelled with the horizontal CRS alone (EPSG:28992), the same cells
    import rasterio

    flat = work / "max_depth_28992.tif"
    with rasterio.open(cog) as src:
        profile, data = src.profile, src.read()
    profile.update(driver="COG", crs="EPSG:28992")
    profile.pop("blockxsize", None), profile.pop("blockysize", None), profile.pop("tiled", None)
    with rasterio.open(flat, "w", **profile) as dst:
        dst.write(data)
    q2 = q.replace(quote(str(cog), safe=""), quote(str(flat), safe=""))
    (work / "raster_titiler_28992.txt").write_text("".join(
        f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?{q2}\n" for t in tiles))

    (bw, be), (bs, bn) = sorted(bx[0]), sorted(bx[1])
    feats = []
    for i in range(4):
        for j in range(4):
            cw, cs = bw + (be - bw) * i / 4, bs + (bn - bs) * j / 4
            for k, limit in enumerate((10, 100, 500)):
                size = (be - bw) / 4 * (1 + k)          # larger boxes with larger limits
                feats.append(f"/collections/buildings/items?bbox={cw:.6f},{cs:.6f},{cw + size:.6f},"
                             f"{cs + size * (bn - bs) / (be - bw):.6f}&limit={limit}\n")
    (work / "features.txt").write_text("".join(feats))

    # run as root (this script's usual case), nginx's workers would drop to "nobody" and miss files under /root
    user = "user root;\n" if os.geteuid() == 0 else ""
    (work / "nginx.conf").write_text(f"""\
{user}worker_processes {workers};
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    types {{ model/gltf-binary glb; }}
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {work}/nginx-tmp;
    proxy_temp_path {work}/nginx-tmp;
    fastcgi_temp_path {work}/nginx-tmp;
    uwsgi_temp_path {work}/nginx-tmp;
    scgi_temp_path {work}/nginx-tmp;
    server {{
        listen 127.0.0.1:__PORT__;
        location /3dtiles/ {{
            alias {tiles_root}/;
            etag on;
            add_header Cache-Control "public, max-age=3600";
            add_header Access-Control-Allow-Origin "*";
        }}
    }}
}}
""")
    (work / "nginx-tmp").mkdir(exist_ok=True)
    print(f"{len(static)} static files, {len(tiles)} raster tiles (z {ZOOMS.start}-{ZOOMS.stop - 1}), "
          f"{len(feats)} features queries; COG {cog}")


def _table(results: Path) -> None:
    rows: dict[tuple[str, str], list[dict]] = {}
    for line in results.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows.setdefault((r["target"], r["server"]), []).append(r)
    med: dict[tuple[str, str], dict[str, float]] = {}
    print("| target | server | runs | req/s (median; min-max) | p50 ms | p99 ms | errors / non-2xx | MB/s |")
    print("|---|---|---|---|---|---|---|---|")
    for (target, server), runs in rows.items():
        rps = [r["requests"] / r["duration_s"] for r in runs]
        m = {"rps": statistics.median(rps), "p50": statistics.median(r["p50_ms"] for r in runs),
             "p99": statistics.median(r["p99_ms"] for r in runs)}
        med[target, server] = m
        errs = sum(r["errors"] for r in runs)
        mbs = statistics.median(r["bytes"] / r["duration_s"] / 1e6 for r in runs)
        print(f"| {target} | {server} | {len(runs)} | {m['rps']:,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) | "
              f"{m['p50']:.1f} | {m['p99']:.1f} | {errs} | {mbs:,.0f} |")
    print()
    goals = [("static", "nginx", 0.70, "ours >= 70 % of nginx"), ("raster", "titiler", 2.0, "ours >= 2x TiTiler"),
             ("raster-cold", "titiler", 2.0, "ours >= 2x TiTiler")]
    for target, anchor, goal, what in goals:
        for (t, s), m in med.items():
            for (ta, a), ma in med.items():
                if t == ta == target and s.startswith("ours") and a.startswith(anchor):
                    ratio = m["rps"] / ma["rps"]
                    print(f"{target}: {s} / {a} = {ratio:.2f} ({what}: {'met' if ratio >= goal else 'NOT met'})")
    worst = max(med.items(), key=lambda kv: kv[1]["p99"]) if med else None
    for (t, s), m in med.items():
        if s.startswith("ours"):
            print(f"{t}: {s} p99 {m['p99']:.1f} ms (goal < 50 ms: {'met' if m['p99'] < 50 else 'NOT met'})")
    if worst:
        print(f"highest median p99: {worst[0][0]} on {worst[0][1]}, {worst[1]['p99']:.1f} ms")


def _cpu_ticks(sessions: set[int]) -> int:
    """CPU time (clock ticks) used so far by every process in the given sessions."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in sessions:          # field 6 of proc(5), the session id
            total += int(fields[11]) + int(fields[12])
    return total


def _settle(sessions: set[int], quiet_ticks: int = 2, timeout: float = 60.0) -> float:
    """Wait until the servers in ``sessions`` are idle (under ``quiet_ticks`` CPU ticks in 0.5 s): a server still
    working off the requests queued in the last run (TiTiler's take seconds each) would take CPU from the next
    run. Returns the seconds waited."""
    import time

    t0 = time.monotonic()
    before = _cpu_ticks(sessions)
    while time.monotonic() - t0 < timeout:
        time.sleep(0.5)
        now = _cpu_ticks(sessions)
        if now - before < quiet_ticks:
            break
        before = now
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("work", type=Path)
    s.add_argument("demo", type=Path)
    s.add_argument("--workers", type=int, default=1)
    t = sub.add_parser("table")
    t.add_argument("results", type=Path)
    w = sub.add_parser("settle")
    w.add_argument("sessions", type=int, nargs="+")
    a = p.parse_args(argv)
    if a.cmd == "setup":
        _setup(a.work, a.demo, a.workers)
    elif a.cmd == "settle":
        waited = _settle(set(a.sessions))
        if waited > 2:
            print(f"waited {waited:.1f} s for the servers to finish queued work", file=sys.stderr)
    else:
        _table(a.results)


if __name__ == "__main__":
    main()
