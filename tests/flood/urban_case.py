"""The seeded urban rain-on-grid case used to compare with LISFLOOD-FP and SFINCS (tests and benchmark).

It regenerates, bit for bit, the DEM of the shared benchmark case (a tilted plane falling ~0.2 % to the south-east,
eight Gaussian hills and pits, and one 10 m high rectangular building per 100 m city block with 20 m streets): the
numpy random generator is drawn in the same order with the same distributions, and the ground is rounded to
1 mm before the buildings are added. ``tests/data/flood/make_dem_checksums.json`` pins the result.

>>> dem = urban_dem(40, 5.0, seed=1)
>>> dem.shape, str(dem.dtype), float(dem.x[0]), float(dem.y[0])
((40, 40), 'float32', 2.5, 197.5)
"""

from __future__ import annotations

import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

BUILDING_HEIGHT = 10.0
BLOCK = 100.0
STREET = 20.0
BUILDING_SIDE = (20.0, 55.0)
HILLS = 8
REFERENCE_CASE = {"dx": 5.0, "seed": 1, "rain_mm_h": 100.0, "rain_s": 1800.0, "sim_s": 3600.0, "manning": 0.03}


def _ground(n: int, dx: float, rng: np.random.Generator) -> np.ndarray:
    """Tilted plane plus Gaussian bumps, float64, rounded to the millimetre; row 0 is north."""
    length = n * dx
    east = (np.arange(n) + 0.5) * dx
    north = (n - np.arange(n) - 0.5) * dx
    xx, yy = np.meshgrid(east, north)
    z = 10.0 + 0.0012 * (length - xx) + 0.0016 * yy
    for _ in range(HILLS):
        centre_x, centre_y = rng.uniform(0.0, length, 2)
        sigma = rng.uniform(0.05, 0.15) * length
        amplitude = rng.uniform(1.0, 3.0) * rng.choice([-1.0, 1.0])
        z += amplitude * np.exp(-((xx - centre_x) ** 2 + (yy - centre_y) ** 2) / (2.0 * sigma * sigma))
    return np.round(z, 3)


def _buildings(n: int, dx: float, rng: np.random.Generator) -> np.ndarray:
    """One random rectangle per city block (bool mask)."""
    block = max(round(BLOCK / dx), 3)
    street = max(round(STREET / dx), 1)
    smallest = max(round(BUILDING_SIDE[0] / dx), 1)
    largest = min(max(round(BUILDING_SIDE[1] / dx), smallest), block - street)
    nblocks = -(-n // block)
    widths = rng.integers(smallest, largest + 1, size=(nblocks, nblocks))
    heights = rng.integers(smallest, largest + 1, size=(nblocks, nblocks))
    shift_x = rng.random((nblocks, nblocks))
    shift_y = rng.random((nblocks, nblocks))
    inner = block - street
    mask = np.zeros((n, n), dtype=bool)
    for i, j in np.ndindex(nblocks, nblocks):
        top = i * block + street // 2 + int(shift_y[i, j] * (inner - heights[i, j] + 1))
        left = j * block + street // 2 + int(shift_x[i, j] * (inner - widths[i, j] + 1))
        mask[top:top + heights[i, j], left:left + widths[i, j]] = True
    return mask


def urban_array(n: int, dx: float = 5.0, seed: int = 1) -> np.ndarray:
    """The case DEM as a float32 (n, n) array (m), row 0 north."""
    rng = np.random.default_rng(seed)
    ground = _ground(n, dx, rng)
    return (ground + BUILDING_HEIGHT * _buildings(n, dx, rng)).astype(np.float32)


def urban_dem(n: int, dx: float = 5.0, seed: int = 1, crs: str | None = "EPSG:28992") -> xr.DataArray:
    """The case DEM as a DataArray with cell-centre coordinates (lower-left corner at 0, 0) and a CRS."""
    z = urban_array(n, dx, seed)
    da = xr.DataArray(
        z,
        coords={"y": (n - np.arange(n) - 0.5) * dx, "x": (np.arange(n) + 0.5) * dx},
        dims=("y", "x"),
        name="elevation",
        attrs={"units": "m"},
    )
    if crs is not None:
        da = da.rio.write_crs(crs)
    return da


def urban_rain(rate_mm_h: float = 100.0, rain_s: float = 1800.0) -> xr.DataArray:
    """Uniform rain ``rate_mm_h`` from 0 to ``rain_s`` then none, as a 1-D series over time (s)."""
    return xr.DataArray([rate_mm_h, 0.0], coords={"time": [0.0, rain_s]}, dims="time", attrs={"units": "mm/h"})


def agreement(ours: np.ndarray, ref: np.ndarray, *, wet: float = 0.01, deep: float = 0.10) -> tuple[float, float]:
    """(RMSE over cells wetter than ``wet`` in either, share of cells deeper than ``deep`` in either that are in both)."""
    a = np.nan_to_num(np.asarray(ours, dtype=np.float64))
    b = np.nan_to_num(np.asarray(ref, dtype=np.float64))
    either = (a > wet) | (b > wet)
    rmse = float(np.sqrt(np.mean((a[either] - b[either]) ** 2)))
    deep_either = (a > deep) | (b > deep)
    share = float(((a > deep) & (b > deep)).sum() / max(deep_either.sum(), 1))
    return rmse, share
