"""Terrain and flood water surfaces to 3D Tiles, from grids (xarray DataArrays with a CRS).

Terrain: the DEM's cell centres are the mesh nodes; features are blocks of ``block x block`` cells (min/max/mean
elevation each); inner tiles hold the same surface decimated, with the largest height difference to the full grid
as their geometric error.
Water: wet cells only (depth >= ``min_depth``), one flat square per cell at ground + depth, features are the wet
cells of a block with their maximum/mean depth, wet area and warning level, and a per-vertex ``_DEPTH``. A depth
grid with a ``time`` dimension gives one tileset per output time (frames a viewer can animate).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from cim.errors import DataError, ValidationError
from tiles import _geo
from tiles._extrude import FeatureMeshes, _sorted_by_feature, grid_surface
from tiles._tiler import Tiler

__all__ = ["DEFAULT_WARNING_LEVELS", "flood_to_3dtiles", "terrain_to_3dtiles"]

log = logging.getLogger(__name__)

#: depth thresholds (m) and names of the warning levels, below the first: level 0 "none"; the project's levels
#: (as flood.WarningLevels: blue 0.15, yellow 0.30, orange 0.50, red 1.00 m)
DEFAULT_WARNING_LEVELS: tuple[tuple[float, str], ...] = ((0.15, "blue"), (0.30, "yellow"), (0.50, "orange"),
                                                         (1.00, "red"))


def _grid(da, what: str):
    """(x, y, values float64, pyproj CRS) of a 2D (y, x) DataArray with a CRS."""
    import xarray as xr

    if not isinstance(da, xr.DataArray):
        raise ValidationError(f"{what} must be an xarray DataArray on (y, x) with a CRS (rioxarray), got "
                              f"{type(da).__name__}")
    if set(da.dims) != {"y", "x"}:
        raise ValidationError(f"{what} must have dims ('y', 'x'), got {da.dims}: select one time step first "
                              "(da.isel(time=i)) or rename the dims")
    da = da.transpose("y", "x")
    crs = None
    try:
        import rioxarray  # noqa: F401

        crs = da.rio.crs
    except ImportError:
        pass
    crs = crs if crs is not None else da.attrs.get("crs")
    crs = _geo.check_crs(crs.to_wkt() if hasattr(crs, "to_wkt") else crs, what)
    x, y = da["x"].to_numpy().astype(np.float64), da["y"].to_numpy().astype(np.float64)
    if len(x) < 2 or len(y) < 2:
        raise DataError(f"{what} needs at least 2 x 2 cells, got {len(y)} x {len(x)}")
    return x, y, da.to_numpy().astype(np.float64), crs


def terrain_to_3dtiles(dem, out_dir, *, block: int = 32, max_features: int = 16,
                       format: Literal["glb", "b3dm"] = "glb", color=(0.55, 0.62, 0.45, 1.0)) -> Path:
    """A DEM (xr.DataArray (y, x), NaN = no data, CRS) as terrain mesh tiles; returns the tileset.json path."""
    if block < 2 or block & (block - 1):
        raise ValidationError(f"block must be a power of two >= 2, got {block}")
    x, y, z, crs = _grid(dem, "the DEM")
    ny, nx = z.shape
    nby, nbx = -(-(ny - 1) // block), -(-(nx - 1) // block)
    cy, cx = np.mgrid[0:ny - 1, 0:nx - 1]
    cell_block = (cy // block) * nbx + cx // block
    fin = np.isfinite(z)
    valid = fin[:-1, :-1] & fin[1:, :-1] & fin[:-1, 1:] & fin[1:, 1:]
    blocks = np.unique(cell_block[valid])
    if not len(blocks):
        raise DataError("the DEM has no cell with four valid corners: nothing to tile")
    br, bc = blocks // nbx, blocks % nbx
    # statistics per block over its nodes (incl. the shared edge)
    stats = []
    for r, c in zip(br, bc, strict=True):
        win = z[r * block: (r + 1) * block + 1, c * block: (c + 1) * block + 1]
        stats.append((np.nanmin(win), np.nanmax(win), np.nanmean(win)))
    stats = np.array(stats)
    props = pd.DataFrame({"id": [f"r{r}c{c}" for r, c in zip(br, bc, strict=True)], "class": "terrain",
                          "min_elevation": stats[:, 0], "max_elevation": stats[:, 1],
                          "mean_elevation": stats[:, 2], "cim_level": np.int32(1)})
    mid = lambda idx, coords, n: coords[np.minimum(idx * block + block // 2, n - 1)]  # noqa: E731
    anchors = np.column_stack([mid(bc, x, nx), mid(br, y, ny)])
    index_of_block = np.full(nby * nbx, -1, np.int64)
    index_of_block[blocks] = np.arange(len(blocks))
    cell_feature = np.where(valid, index_of_block[cell_block], -1)

    def make_mesh(order: np.ndarray) -> FeatureMeshes:
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        return grid_surface(x, y, z, np.where(cell_feature >= 0, rank[np.maximum(cell_feature, 0)], -1),
                            len(order))

    def coarse(features: np.ndarray, depth: int):
        fr, fc = br[features], bc[features]
        r0, r1 = fr.min() * block, min((fr.max() + 1) * block, ny - 1)
        c0, c1 = fc.min() * block, min((fc.max() + 1) * block, nx - 1)
        cells = len(features) * block * block
        s = 2
        while s < block and cells / (s * s) > max_features * block * block / 2:
            s *= 2
        rows = np.unique(np.r_[np.arange(r0, r1, s), r1])
        cols = np.unique(np.r_[np.arange(c0, c1, s), c1])
        zc = z[np.ix_(rows, cols)]
        keep = np.zeros(len(blocks), bool)
        keep[features] = True
        cb = cell_block[np.ix_(rows[:-1], cols[:-1])]
        cf = index_of_block[cb]
        cf = np.where((cf >= 0) & keep[np.maximum(cf, 0)], cf, -1)
        kept = np.unique(cf[cf >= 0])
        local = np.where(cf >= 0, np.searchsorted(kept, np.maximum(cf, 0)), -1)
        mesh = grid_surface(x[cols], y[rows], zc, local, len(kept))
        # error: the largest difference between the full grid and the coarse surface between its nodes (bilinear
        # across each coarse cell; the mesh's two triangles agree with it at the nodes and along the edges)
        full_r, full_c = np.arange(r0, r1 + 1), np.arange(c0, c1 + 1)
        along = np.array([np.interp(full_c, cols, row) for row in zc])                 # coarse rows, full columns
        between = np.array([np.interp(full_r, rows, col) for col in along.T]).T        # full rows and columns
        diff = np.abs(z[r0:r1 + 1, c0:c1 + 1] - between)
        err = float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0
        return mesh, kept, err

    tiler = Tiler(crs, Path(out_dir), fmt=format, class_name="terrain", color=color)
    return tiler.write(anchors, props, make_mesh, max_features=max_features, coarse=coarse)


def _warning(depth: np.ndarray, levels: Sequence[tuple[float, str]]) -> tuple[np.ndarray, np.ndarray]:
    thresholds = np.array([t for t, _ in levels])
    if np.any(np.diff(thresholds) <= 0):
        raise ValidationError(f"warning levels must have increasing depths, got {list(levels)}")
    level = np.searchsorted(thresholds, depth, side="right")
    names = np.array(["none", *[n for _, n in levels]], dtype=object)
    return level.astype(np.int32), names[level]


def flood_to_3dtiles(depth, dem, out_dir, *, min_depth: float = 0.01, block: int = 16, max_features: int = 256,
                     warning_levels: Sequence[tuple[float, str]] = DEFAULT_WARNING_LEVELS,
                     format: Literal["glb", "b3dm"] = "glb",
                     color=(0.15, 0.4, 0.85, 0.85)) -> list[Path]:
    """Flood water surfaces (wet cells only) as 3D Tiles; returns the tileset.json paths.

    ``depth``: water depth (m) on the DEM's grid, (y, x) or (time, y, x) (e.g. ``flood.simulate(...)["depth"]``
    or ``max_depth``); one tileset per time step in ``out_dir/t000``, ``t001``, ... A time step without wet
    cells gets a tileset with an empty root (so that frames stay aligned with the times).
    """
    import xarray as xr

    if not isinstance(depth, xr.DataArray):
        raise ValidationError("depth must be an xarray DataArray on (y, x) or (time, y, x)")
    x, y, ground, crs = _grid(dem, "the DEM")
    if "time" in depth.dims:
        frames = [(i, depth.isel(time=i)) for i in range(depth.sizes["time"])]
        times = depth["time"].to_numpy() if "time" in depth.coords else np.arange(depth.sizes["time"])
    else:
        frames, times = [(None, depth)], [None]
    out = Path(out_dir)
    paths = []
    for (i, d), t in zip(frames, times, strict=True):
        dx, dy, dv, _ = _grid(d.rio.write_crs(crs.to_wkt()) if hasattr(d, "rio") else d, "the depth grid")
        if dv.shape != ground.shape or not (np.allclose(dx, x) and np.allclose(dy, y)):
            raise ValidationError(f"the depth grid {dv.shape} is not on the DEM's grid {ground.shape}: "
                                  "regrid it (depth.interp_like(dem)) or pass the DEM the flood ran on")
        target = out if i is None else out / f"t{i:03d}"
        paths.append(_water_frame(x, y, ground, dv, crs, target, time=t, min_depth=min_depth, block=block,
                                  max_features=max_features, levels=warning_levels, fmt=format, color=color))
    return paths


def _water_frame(x, y, ground, depth, crs, out: Path, *, time, min_depth, block, max_features, levels, fmt,
                 color) -> Path:
    wet = np.isfinite(depth) & np.isfinite(ground) & (depth >= min_depth)
    iy, ix = np.nonzero(wet)
    time_str = "" if time is None else str(time)
    if not len(iy):
        return _empty_tileset(x, y, ground, crs, out, fmt, time_str)
    nbx = -(-len(x) // block)
    cell_block = (iy // block) * nbx + ix // block
    blocks, feat = np.unique(cell_block, return_inverse=True)
    d = depth[iy, ix]
    area = abs((x[1] - x[0]) * (y[1] - y[0]))
    n = len(blocks)
    max_d = np.full(n, -np.inf)
    np.maximum.at(max_d, feat, d)
    mean_d = np.bincount(feat, weights=d, minlength=n) / np.bincount(feat, minlength=n)
    level, name = _warning(max_d, levels)
    props = pd.DataFrame({"id": [f"r{b // nbx}c{b % nbx}" for b in blocks], "class": "flood_water",
                          "max_depth": max_d, "mean_depth": mean_d,
                          "wet_area": np.bincount(feat, minlength=n) * area,
                          "warning_level": level, "warning": name, "time": time_str, "cim_level": np.int32(1)})
    # one flat square per wet cell at the water surface
    hx, hy = abs(x[1] - x[0]) / 2, abs(y[1] - y[0]) / 2
    cxs, cys, zs = x[ix], y[iy], ground[iy, ix] + d
    m = len(iy)
    # four vertices per cell (counter-clockwise from above), two triangles
    corners = np.stack([np.column_stack([cxs - hx, cys - hy, zs]), np.column_stack([cxs + hx, cys - hy, zs]),
                        np.column_stack([cxs + hx, cys + hy, zs]), np.column_stack([cxs - hx, cys + hy, zs])], 1)
    points = corners.reshape(-1, 3)
    quad = np.arange(m)[:, None] * 4
    tris = np.concatenate([quad + [0, 1, 2], quad + [0, 2, 3]])
    anchors = np.column_stack([np.bincount(feat, weights=cxs) / np.bincount(feat),
                               np.bincount(feat, weights=cys) / np.bincount(feat)])
    vertex_depth = np.repeat(d, 4)
    state = {}

    def make_mesh(order: np.ndarray) -> FeatureMeshes:
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n)
        vfeat = np.repeat(rank[feat], 4)
        mesh = _sorted_by_feature(points, np.arange(4 * m), np.tile([0.0, 0.0, 1.0], (4 * m, 1)), tris, vfeat, n)
        state["depth"] = vertex_depth[np.argsort(vfeat, kind="stable")]     # the same (stable) vertex order
        return mesh

    tiler = Tiler(crs, out, fmt=fmt, class_name="flood_water", color=color)
    return tiler.write(anchors, props, make_mesh, max_features=max_features,
                       vertex_attributes=lambda mesh, order: {"_DEPTH": state["depth"]},
                       tileset_extras={"time": time_str})


def _empty_tileset(x, y, ground, crs, out: Path, fmt: str, time_str: str) -> Path:
    import json

    out.mkdir(parents=True, exist_ok=True)
    z = float(np.nanmean(ground)) if np.isfinite(ground).any() else 0.0
    centre = _geo.to_ecef(crs, np.array([[x.mean(), y.mean(), z]]))[0]
    frame = _geo.enu_matrix(centre)
    half = [abs(x[-1] - x[0]) / 2 + 1, abs(y[-1] - y[0]) / 2 + 1, 1.0]
    tileset = {"asset": {"version": "1.1" if fmt == "glb" else "1.0", "generator": "cim-twin tiles"},
               "geometricError": 0.0, "extras": {"time": time_str},
               "root": {"transform": [float(v) for v in frame.T.reshape(-1)],
                        "boundingVolume": {"box": [0.0, 0.0, 0.0, half[0], 0, 0, 0, half[1], 0, 0, 0, half[2]]},
                        "geometricError": 0.0, "refine": "REPLACE"}}
    path = out / "tileset.json"
    path.write_text(json.dumps(tileset, indent=1))
    return path
