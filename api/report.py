"""The demo's HTML report: maps and plots people would rather look at than read, in one self-contained file.

Figures are drawn with matplotlib (Agg) and embedded as PNG data URIs; nothing loads from the network.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

__all__ = ["write_report"]

ATTRIBUTION = (
    "Data: Delft city model (CityJSON via cityjson/cjio, MIT; BGT/AHN open data); TU Delft Bouwkunde IFC "
    "(tudelft3d/ifcgref, MIT); KNMI radar 2010-08-26 (via pySTEPS, KNMI open data); KNMI rain gauge 310 "
    "Vlissingen (via pastas, MIT; KNMI open data). Design storm: Beijing storm-intensity formula (GB 50014 form; "
    "Water Supply and Drainage Design Handbook vol. 5) as a Chicago hyetograph."
)


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def depth_map(fc, buildings: gpd.GeoDataFrame, regions: gpd.GeoDataFrame, hotspots: gpd.GeoDataFrame,
              water: gpd.GeoDataFrame | None = None) -> str:
    """Maximum depth over the terrain with water bodies, buildings, region outlines and hotspots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap

    ds, lv = fc.dataset, fc.levels
    x0, y0, x1, y1 = fc.dem.rio.bounds()
    fig, ax = plt.subplots(figsize=(9, 6))
    ax.imshow(fc.dem.to_numpy(), extent=(x0, x1, y0, y1), cmap="Greys_r", alpha=0.6)
    depth = np.where(ds["max_depth"].to_numpy() >= 0.05, ds["max_depth"].to_numpy(), np.nan)
    bounds = [0.05, *lv.thresholds, max(2.0, lv.thresholds[-1] * 2)]
    cmap = ListedColormap(["#9ecae1", *lv.colours])
    im = ax.imshow(depth, extent=(x0, x1, y0, y1), cmap=cmap, norm=BoundaryNorm(bounds, cmap.N))
    if water is not None and len(water):
        outline = gpd.GeoSeries([water.geometry.buffer(0.01).union_all()], crs=water.crs)   # meshes -> areas
        outline.plot(ax=ax, facecolor="#c6dbef", edgecolor="#6baed6", linewidth=0.6, hatch="~~")
    if len(buildings):
        buildings.plot(ax=ax, facecolor="#f0ece2", edgecolor="#555", linewidth=0.4)
    if len(regions):
        regions.boundary.plot(ax=ax, color="black", linewidth=0.8, linestyle="--")
    if len(hotspots):
        hotspots.plot(ax=ax, color="magenta", markersize=18, marker="v")
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("maximum depth (m): " + ", ".join(f"{n} ≥ {t} m" for n, t in zip(lv.names, lv.thresholds, strict=True)))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(f"{fc.name}: maximum water depth (water bodies hatched)")
    ax.set_xlabel("easting (m)")
    ax.set_ylabel("northing (m)")
    return _png(fig)


def hydrographs(fc, rain=None) -> str:
    """Depth over time at the hotspots, with the rain rate above."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = fc.dataset
    fig, (ax_r, ax) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, height_ratios=(1, 2.5))
    if rain is not None and "time" in getattr(rain, "dims", ()):
        t = rain["time"].to_numpy()
        t = (t - t[0]) / np.timedelta64(1, "s") if np.issubdtype(t.dtype, np.datetime64) else t.astype(float)
        ax_r.step(t / 60, rain.to_numpy(), where="post", color="#2171b5")
    ax_r.set_ylabel("rain (mm/h)")
    if "point_depth" in ds:
        for p in ds["point"].to_numpy():
            ax.plot(ds["point_time"].to_numpy() / 60, ds["point_depth"].sel(point=p).to_numpy(), label=str(p))
        ax.legend(fontsize=7, ncol=2)
    for thr, colour in zip(fc.levels.thresholds, fc.levels.colours, strict=True):
        ax.axhline(thr, color=colour, linewidth=0.8, linestyle=":")
    ax.set_xlabel("minutes from the start")
    ax.set_ylabel("depth (m)")
    ax.set_title("hydrographs at low-lying hotspots")
    return _png(fig)


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, border=0, classes="t", float_format=lambda v: f"{v:,.2f}", na_rep="")


def write_report(path: Path, *, scene, forecasts: list, rains: dict, timings: dict[str, float],
                 extra: list[str] | None = None) -> Path:
    """Write the report: scene summary, one section per forecast, timings and attributions."""
    buildings = scene.layer("buildings") if "buildings" in scene else gpd.GeoDataFrame(geometry=[])
    hotspots = scene.layer("hotspots") if "hotspots" in scene else gpd.GeoDataFrame(geometry=[])
    water = scene.layer("water") if "water" in scene else None
    regions = scene.regions
    parts = [f"<h1>{html.escape(scene.name)}: flood forecast report</h1>",
             f"<p>Scene CRS {html.escape(scene.crs.name)}; {len(scene.layers)} layers; regions: "
             f"{html.escape(', '.join(regions['name']))}.</p>"]
    layers = pd.DataFrame([{"layer": i.name, "kind": i.kind, "CIM level": f"CIM{i.cim_level}" if i.cim_level else "",
                            "contents": i.summary()}
                           for i in scene.layers])
    parts += ["<h2>Layers</h2>", _table(layers)]
    for fc in forecasts:
        ds = fc.dataset
        cols = ["region", "level_name", "max_depth", "flooded_area_m2", "road_length_flooded_m",
                "buildings_affected", "hotspots_warned", "time_first_warning"]
        regions_table = pd.DataFrame(fc.regions.drop(columns="geometry"))[[c for c in cols if c in fc.regions]]
        warned = fc.warnings[fc.warnings["level"] > 0].sort_values(["level", "max_depth"], ascending=False)
        wcols = [c for c in ("object_type", "object_id", "name", "level_name", "max_depth", "time_first_warning",
                             "time_level", "time_level_utc") if c in warned]
        parts += [f"<h2>Forecast: {html.escape(fc.name)}</h2>",
                  f"<p>{ds.attrs['steps']} time steps in {ds.attrs['wall_seconds']:.1f} s "
                  f"({ds.attrs['duration'] / max(ds.attrs['wall_seconds'], 1e-9):.0f}x faster than real time); "
                  f"rain {ds.attrs['rain_volume']:.0f} m³, relative mass error {ds.attrs['mass_error']:.1e}.</p>",
                  f"<img src='{depth_map(fc, buildings, regions, hotspots, water)}' alt='max depth map'>",
                  f"<img src='{hydrographs(fc, rains.get(fc.name))}' alt='hydrographs'>",
                  "<h3>Warnings by region</h3>", _table(regions_table),
                  f"<h3>Objects with a warning ({len(warned)})</h3>", _table(warned[wcols].head(60))]
        for building, frames in fc.bim.items():
            parts += [f"<h3>BIM building {html.escape(building)}</h3>", _table(frames["storeys"]),
                      _table(frames["doors"])]
            if len(frames["spaces"]):
                parts += [_table(frames["spaces"].head(60))]
        parts += [f"<p class='note'>{html.escape(n)}</p>" for n in fc.notes]
    parts += ["<h2>Run</h2>", _table(pd.DataFrame({"step": list(timings), "seconds": list(timings.values())}))]
    parts += [f"<p>{html.escape(e)}</p>" for e in extra or []]
    parts += [f"<p class='note'>{html.escape(ATTRIBUTION)}</p>"]
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table.t{border-collapse:collapse;font-size:13px}table.t td,table.t th{padding:2px 8px;"
             "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}.note{color:#666;font-size:12px}")
    path = Path(path)
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(scene.name)} flood "
                    f"report</title><style>{style}</style></head><body>{''.join(parts)}</body></html>",
                    encoding="utf-8")
    return path
