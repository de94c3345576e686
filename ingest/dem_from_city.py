"""A DEM derived from the 3D ground surfaces of a city model.

The ground triangles (roads, land use, water, plant cover, TIN relief; never roofs) are rasterised at cell centres
by linear interpolation in each triangle; where triangles overlap the lowest surface wins (an elevated deck over a
road does not become ground). Cells no triangle covers — under buildings, in gaps — are filled by linear
interpolation from the surrounding ground, and beyond its hull by the nearest ground value.

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


def rasterise_triangles(tris: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Lowest z of the triangles at cell centres ``x`` (ascending) × ``y`` (descending); NaN where none."""
    out = np.full((len(y), len(x)), np.inf)
    res_x = x[1] - x[0] if len(x) > 1 else 1.0
    res_y = y[0] - y[1] if len(y) > 1 else 1.0
    x0, y0 = x[0], y[0]
    for t in tris:
        (ax, ay, az), (bx, by, bz), (cx, cy, cz) = t
        det = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
        if abs(det) < 1e-12:
            continue
        c0 = max(int(np.ceil((min(ax, bx, cx) - x0) / res_x - 1e-9)), 0)
        c1 = min(int(np.floor((max(ax, bx, cx) - x0) / res_x + 1e-9)), len(x) - 1)
        r0 = max(int(np.ceil((y0 - max(ay, by, cy)) / res_y - 1e-9)), 0)
        r1 = min(int(np.floor((y0 - min(ay, by, cy)) / res_y + 1e-9)), len(y) - 1)
        if c1 < c0 or r1 < r0:
            continue
        px = x[c0:c1 + 1][None, :]
        py = y[r0:r1 + 1][:, None]
        l1 = ((by - cy) * (px - cx) + (cx - bx) * (py - cy)) / det
        l2 = ((cy - ay) * (px - cx) + (ax - cx) * (py - cy)) / det
        l3 = 1.0 - l1 - l2
        inside = (l1 >= -1e-9) & (l2 >= -1e-9) & (l3 >= -1e-9)
        if not inside.any():
            continue
        z = np.where(inside, l1 * az + l2 * bz + l3 * cz, np.inf)
        block = out[r0:r1 + 1, c0:c1 + 1]
        np.minimum(block, z, out=block)
    out[np.isinf(out)] = np.nan
    return out


def _fill(grid: np.ndarray) -> np.ndarray:
    """Fill NaN cells: linear from the ground cells bordering them, nearest beyond."""
    from scipy import ndimage
    from scipy.interpolate import LinearNDInterpolator

    holes = np.isnan(grid)
    if not holes.any():
        return grid
    if holes.all():
        raise ValidationError("no ground cell to interpolate from")
    border = ndimage.binary_dilation(holes, structure=np.ones((3, 3), bool)) & ~holes
    rows, cols = np.nonzero(border)
    out = grid.copy()
    hr, hc = np.nonzero(holes)
    if len(rows) >= 3:
        try:
            interp = LinearNDInterpolator(np.column_stack([rows, cols]).astype(float), grid[rows, cols])
            out[hr, hc] = interp(np.column_stack([hr, hc]).astype(float))
        except Exception:   # a degenerate (collinear) border: nearest below
            pass
    still = np.isnan(out)
    if still.any():
        _, (ir, ic) = ndimage.distance_transform_edt(still, return_distances=True, return_indices=True)
        out[still] = out[ir[still], ic[still]]
    return out


def dem_from_triangles(tris: np.ndarray, *, resolution: float = 1.0, crs: Any,
                       bounds: tuple[float, float, float, float] | None = None, fill_under: Any = None):
    """A (y, x) DataArray of ground heights from triangles ``(n, 3, 3)``, on a grid aligned to ``resolution``.

    ``bounds`` (xmin, ymin, xmax, ymax) defaults to the triangles' extent (plus ``fill_under`` geometries'); all
    cells are filled (see the module docstring). The result carries the CRS and ``units = "m"``.
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
    grid = _fill(rasterise_triangles(tris, x, y))
    da = xr.DataArray(grid.astype(np.float32), coords={"y": y, "x": x}, dims=("y", "x"), name="elevation",
                      attrs={"units": "m", "long_name": "ground elevation derived from city model surfaces"})
    return da.rio.write_crs(crs).rio.write_nodata(np.nan, encoded=False)
