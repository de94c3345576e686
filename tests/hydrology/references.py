"""Slow, obvious NumPy references for the hydrology kernels, and helpers to build test grids."""

from __future__ import annotations

import numpy as np
import rioxarray  # noqa: F401
import xarray as xr

# neighbour order NE, E, SE, S, SW, W, NW, N and their ESRI codes (same tie order as the kernels)
DR = [-1, 0, 1, 1, 1, 0, -1, -1]
DC = [1, 1, 1, 0, -1, -1, -1, 0]
CODES = [128, 1, 2, 4, 8, 16, 32, 64]
OFFSET = {code: (dr, dc) for code, dr, dc in zip(CODES, DR, DC, strict=True)}


def grid(values, *, dx=10.0, dy=10.0, crs="EPSG:32631", x0=500000.0, y0=4000000.0, south_up=False):
    """A DataArray on a regular grid with a CRS (north-up unless ``south_up``)."""
    values = np.asarray(values)
    ny, nx = values.shape
    y = y0 - (np.arange(ny) + 0.5) * dy
    if south_up:
        values = values[::-1]
        y = y[::-1]
    x = x0 + (np.arange(nx) + 0.5) * dx
    da = xr.DataArray(values, dims=("y", "x"), coords={"y": y, "x": x})
    return da.rio.write_crs(crs) if crs else da


def _neighbours(a, fill):
    """Stack of the 8 shifted copies of ``a`` (k, r, c) = a[r + DR[k], c + DC[k]], ``fill`` outside."""
    ny, nx = a.shape
    p = np.full((ny + 2, nx + 2), fill, dtype=np.float64)
    p[1:-1, 1:-1] = a
    return np.stack([p[1 + dr : 1 + dr + ny, 1 + dc : 1 + dc + nx] for dr, dc in zip(DR, DC, strict=True)])


def outlet_mask(z):
    """Valid cells on the grid edge or next to no-data."""
    valid = ~np.isnan(z)
    nb = _neighbours(np.where(valid, 0.0, 1.0), 1.0)
    return valid & (nb.max(axis=0) > 0)


def fill_reference(z):
    """Minimax relaxation (Planchon & Darboux 2001 without epsilon): W = max(z, min neighbour W) to a fixpoint."""
    z = np.asarray(z, dtype=np.float64)
    valid = ~np.isnan(z)
    seed = outlet_mask(z)
    w = np.where(seed, z, np.inf)
    w[~valid] = np.nan
    while True:
        nb = _neighbours(np.where(valid, w, np.inf), np.inf).min(axis=0)
        new = np.where(seed, z, np.maximum(z, np.minimum(w, nb)))
        new[~valid] = np.nan
        if np.array_equal(new, w, equal_nan=True):
            return new
        w = new


def d8_reference(z, dx=10.0, dy=10.0):
    """Steepest drop / distance; 0 where no neighbour is lower, 255 for no-data. dx/dy scalars or per-row."""
    z = np.asarray(z, dtype=np.float64)
    ny, _ = z.shape
    dx = np.broadcast_to(np.asarray(dx, dtype=np.float64), (ny,))[:, None]
    dy = np.broadcast_to(np.asarray(dy, dtype=np.float64), (ny,))[:, None]
    nb = _neighbours(z, np.nan)
    dist = [dx if dr == 0 else dy if dc == 0 else np.hypot(dx, dy) for dr, dc in zip(DR, DC, strict=True)]
    slope = np.stack([(z - nb[k]) * (1.0 / dist[k]) for k in range(8)])  # as the kernel rounds it
    slope = np.where(np.isnan(slope) | (slope <= 0), -np.inf, slope)
    best = np.argmax(slope, axis=0)  # first maximum = tie order
    out = np.asarray(CODES, dtype=np.uint8)[best]
    out[np.max(slope, axis=0) == -np.inf] = 0
    out[np.isnan(z)] = 255
    return out


def receivers(fdir):
    """Flat index of each cell's receiver, -1 when it leaves the grid, enters no-data or is 0/255."""
    ny, nx = fdir.shape
    rec = np.full(fdir.size, -1)
    for r in range(ny):
        for c in range(nx):
            d = int(fdir[r, c])
            if d in OFFSET:
                rr, cc = r + OFFSET[d][0], c + OFFSET[d][1]
                if 0 <= rr < ny and 0 <= cc < nx and fdir[rr, cc] != 255:
                    rec[r * nx + c] = rr * nx + cc
    return rec


def accumulation_reference(fdir, weights=None):
    """Walk every cell's path to its outlet and add its weight to each cell on the way (O(n * path))."""
    rec = receivers(fdir)
    w = np.ones(fdir.size) if weights is None else np.nan_to_num(np.asarray(weights, float).ravel())
    acc = np.zeros(fdir.size)
    for s in range(fdir.size):
        if fdir.flat[s] == 255:
            continue
        i, steps = s, 0
        while i >= 0:
            acc[i] += w[s]
            i = rec[i]
            steps += 1
            assert steps <= fdir.size, "cycle"
        assert steps <= fdir.size
    acc[fdir.ravel() == 255] = np.nan
    return acc.reshape(fdir.shape)


def path_lengths(fdir):
    """Steps from each valid cell to the end of its flow path; raises AssertionError on a cycle."""
    rec = receivers(fdir)
    out = np.zeros(fdir.size, dtype=np.int64)
    for s in range(fdir.size):
        i, steps = s, 0
        while rec[i] >= 0:
            i = rec[i]
            steps += 1
            assert steps <= fdir.size, f"cycle through cell {s}"
        out[s] = steps
    return out.reshape(fdir.shape)
