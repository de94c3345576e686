"""A DEM derived from the 3D ground surfaces of a city model.

The ground triangles (roads, land use, water, plant cover, TIN relief; never roofs) are rasterised at cell centres
by linear interpolation in each triangle; where triangles overlap the lowest surface wins (an elevated deck over a
road does not become ground). Cells no triangle covers under buildings and in gaps enclosed by ground are filled
harmonically from the surrounding ground (a smooth surface that never rises above or dips below it); cells
outside the city model (no-data reaching the grid edge) stay NaN: there is no ground to tell their height.

>>> tri = np.array([[[0, 0, 1], [4, 0, 1], [0, 4, 5]], [[4, 0, 1], [4, 4, 5], [0, 4, 5]]], float)
>>> dem = dem_from_triangles(tri, resolution=1.0, crs="EPSG:28992")
>>> dem.shape, float(dem.sel(x=0.5, y=3.5))
((4, 4), 4.5)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cim.errors import ValidationError

__all__ = ["dem_from_triangles", "rasterise_triangles"]


def rasterise_triangles(tris: np.ndarray, x: np.ndarray, y: np.ndarray, *, chunk: int = 4_000_000) -> np.ndarray:
    """Lowest z of the triangles at cell centres ``x`` (ascending, regular) × ``y`` (descending); NaN where none.

    Vectorised over (triangle, cell-in-its-bounding-box) pairs, ``chunk`` pairs at a time.
    """
    tris = np.asarray(tris, float).reshape(-1, 3, 3)
    ny, nx = len(y), len(x)
    out = np.full(ny * nx, np.inf)
    if not len(tris) or not nx or not ny:
        return out.reshape(ny, nx) * np.nan
    res_x = x[1] - x[0] if nx > 1 else 1.0
    res_y = y[0] - y[1] if ny > 1 else 1.0
    a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
    det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    lo, hi = tris[:, :, :2].min(axis=1), tris[:, :, :2].max(axis=1)
    c0 = np.maximum(np.ceil((lo[:, 0] - x[0]) / res_x - 1e-9), 0).astype(np.int64)
    c1 = np.minimum(np.floor((hi[:, 0] - x[0]) / res_x + 1e-9), nx - 1).astype(np.int64)
    r0 = np.maximum(np.ceil((y[0] - hi[:, 1]) / res_y - 1e-9), 0).astype(np.int64)
    r1 = np.minimum(np.floor((y[0] - lo[:, 1]) / res_y + 1e-9), ny - 1).astype(np.int64)
    keep = np.nonzero((c1 >= c0) & (r1 >= r0) & (np.abs(det) > 1e-12))[0]
    ncols = (c1 - c0 + 1)[keep]
    counts = ncols * (r1 - r0 + 1)[keep]
    ends = np.cumsum(counts)
    start = 0
    while start < len(keep):
        stop = max(start + 1, int(np.searchsorted(ends, (ends[start - 1] if start else 0) + chunk, side="right")))
        idx, cnt, nc = keep[start:stop], counts[start:stop], ncols[start:stop]
        first = np.cumsum(cnt) - cnt
        t = np.repeat(np.arange(len(idx)), cnt)
        local = np.arange(int(cnt.sum())) - first[t]
        rr = r0[idx][t] + local // nc[t]
        cc = c0[idx][t] + local % nc[t]
        px, py = x[cc], y[rr]
        ti = idx[t]
        ax, ay, bx, by, cx, cy = a[ti, 0], a[ti, 1], b[ti, 0], b[ti, 1], c[ti, 0], c[ti, 1]
        l1 = ((by - cy) * (px - cx) + (cx - bx) * (py - cy)) / det[ti]
        l2 = ((cy - ay) * (px - cx) + (ax - cx) * (py - cy)) / det[ti]
        l3 = 1.0 - l1 - l2
        inside = (l1 >= -1e-9) & (l2 >= -1e-9) & (l3 >= -1e-9)
        z = l1 * a[ti, 2] + l2 * b[ti, 2] + l3 * c[ti, 2]
        np.minimum.at(out, (rr * nx + cc)[inside], z[inside])
        start = stop
    out[np.isinf(out)] = np.nan
    return out.reshape(ny, nx)


def _to_fill(grid: np.ndarray, under: np.ndarray | None = None) -> np.ndarray:
    """The NaN cells to fill: gaps enclosed by ground, and cells under buildings (``under``)."""
    from scipy import ndimage

    nan = np.isnan(grid)
    labels, _ = ndimage.label(nan)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = nan & ~np.isin(labels, edge[edge > 0])
    if under is not None:
        holes |= nan & under
    # only groups of holes that touch known ground can be interpolated
    groups, n = ndimage.label(holes)
    touching = np.unique(groups[ndimage.binary_dilation(~nan) & holes])
    return holes & np.isin(groups, touching[touching > 0]) if n else holes


def _fill(grid: np.ndarray, holes: np.ndarray | None = None) -> np.ndarray:
    """Fill the ``holes`` (default: every NaN cell) harmonically (Laplace's equation, the known cells as boundary
    values, no flow across the grid edge or into NaN cells left out): smooth, and never above or below the
    surrounding ground (maximum principle)."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    if np.isnan(grid).all():
        raise ValidationError("no ground cell to interpolate from")
    holes = np.isnan(grid) if holes is None else holes
    if not holes.any():
        return grid
    ny, nx = grid.shape
    idx = np.full(grid.shape, -1, np.int64)
    hr, hc = np.nonzero(holes)
    n = len(hr)
    idx[hr, hc] = np.arange(n)
    diag = np.zeros(n)
    rhs = np.zeros(n)
    rows, cols = [], []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r, c = hr + dr, hc + dc
        ok = (r >= 0) & (r < ny) & (c >= 0) & (c < nx)
        diag[ok] += 1.0
        rr, cc, me = r[ok], c[ok], np.nonzero(ok)[0]
        other = idx[rr, cc]
        known = (other < 0) & ~np.isnan(grid[rr, cc])
        outside = (other < 0) & np.isnan(grid[rr, cc])          # NaN left out: no flow across, like the edge
        diag[me[outside]] -= 1.0
        np.add.at(rhs, me[known], grid[rr[known], cc[known]])
        known |= outside
        rows.append(me[~known])
        cols.append(other[~known])
    rows_a, cols_a = np.concatenate(rows), np.concatenate(cols)
    a = sparse.csr_matrix((np.full(len(rows_a), -1.0), (rows_a, cols_a)), shape=(n, n)) + sparse.diags(diag)
    sol = spsolve(a.tocsc(), rhs)
    out = grid.copy()
    out[hr, hc] = sol
    return out


def dem_from_triangles(tris: np.ndarray, *, resolution: float = 1.0, crs: Any,
                       bounds: tuple[float, float, float, float] | None = None, fill_under: Any = None):
    """A (y, x) DataArray of ground heights from triangles ``(n, 3, 3)``, on a grid aligned to ``resolution``.

    ``bounds`` (xmin, ymin, xmax, ymax) defaults to the triangles' extent (plus ``fill_under`` geometries'); gaps
    enclosed by ground and cells under ``fill_under`` footprints are filled, cells outside the model stay NaN (see
    the module docstring). The result carries the CRS and ``units = "m"``.
    """
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    if not resolution > 0:
        raise ValidationError(f"dem_resolution must be a positive number of metres, got {resolution!r}")
    tris = np.asarray(tris, float).reshape(-1, 3, 3)
    if bounds is None:
        xy = tris[:, :, :2].reshape(-1, 2)
        bounds = (*xy.min(axis=0), *xy.max(axis=0))
        if fill_under is not None and len(fill_under):
            fb = fill_under.total_bounds
            bounds = (min(bounds[0], fb[0]), min(bounds[1], fb[1]), max(bounds[2], fb[2]), max(bounds[3], fb[3]))
    xmin = np.floor(bounds[0] / resolution) * resolution
    ymin = np.floor(bounds[1] / resolution) * resolution
    xmax = np.ceil(bounds[2] / resolution) * resolution
    ymax = np.ceil(bounds[3] / resolution) * resolution
    nx, ny = round((xmax - xmin) / resolution), round((ymax - ymin) / resolution)
    if nx * ny > 50_000_000:
        raise ValidationError(f"a {nx} x {ny} DEM at {resolution} m is too large; choose a coarser dem_resolution")
    x = xmin + resolution * (np.arange(nx) + 0.5)
    y = ymax - resolution * (np.arange(ny) + 0.5)
    raw = rasterise_triangles(tris, x, y)
    under = None
    if fill_under is not None and len(fill_under):
        from rasterio import features
        from rasterio.transform import from_origin

        shapes = [g for g in getattr(fill_under, "geometry", fill_under) if g is not None and not g.is_empty]
        under = features.rasterize(((g, 1) for g in shapes), out_shape=raw.shape, fill=0, dtype="uint8",
                                   transform=from_origin(xmin, ymax, resolution, resolution)).astype(bool)
    grid = _fill(raw, _to_fill(raw, under))
    da = xr.DataArray(grid.astype(np.float32), coords={"y": y, "x": x}, dims=("y", "x"), name="elevation",
                      attrs={"units": "m", "long_name": "ground elevation derived from city model surfaces"})
    return da.rio.write_crs(crs).rio.write_nodata(np.nan, encoded=False)
