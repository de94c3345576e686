"""Hotspots: depressions found by filling the terrain, with exact depth, area and storage volume."""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr

from flood.hotspots import find_hotspots


def test_two_pits_exact_measures():
    z = np.full((12, 20), 5.0)
    z[2:6, 2:6] = 4.6                       # 16 cells, 0.4 m deep
    z[8:10, 14:17] = 4.9                    # 6 cells, 0.1 m deep
    z[8, 15] = 4.7                          # its deepest cell, 0.3 m
    x = 2.0 * (np.arange(20) + 0.5)
    y = 2.0 * (np.arange(12) + 0.5)[::-1]
    dem = xr.DataArray(z, coords={"y": y, "x": x}, dims=("y", "x")).rio.write_crs("EPSG:28992")
    h = find_hotspots(dem, min_depth=0.05)
    assert h["depth"].tolist() == pytest.approx([0.4, 0.3])
    assert h["area_m2"].tolist() == pytest.approx([64.0, 24.0])
    assert h["volume_m3"].tolist() == pytest.approx([16 * 0.4 * 4, (5 * 0.1 + 0.3) * 4])
    assert h.geometry.iloc[1].coords[0] == (31.0, float(y[8]))
    assert len(find_hotspots(dem, min_depth=0.05, min_area=30.0)) == 1
    assert len(find_hotspots(dem, min_depth=0.35)) == 1
    assert len(find_hotspots(dem, max_count=1)) == 1
    flat = dem.copy(data=np.full_like(z, 5.0))
    assert len(find_hotspots(flat)) == 0


def test_a_depression_with_a_wide_shallow_rim_counts_all_of_it():
    # a square bowl: 0.5 m deep in the middle, 0.02 m shallower per ring of cells, 25 rings (the outer ones
    # shallower than min_depth); 1 m cells
    n, c = 61, 30
    yy, xx = np.mgrid[0:n, 0:n]
    ring = np.maximum(abs(yy - c), abs(xx - c))
    fill = np.where(ring < 25, 0.5 - 0.02 * ring, 0.0)
    dem = xr.DataArray(2.0 - fill, coords={"y": np.arange(n)[::-1] + 0.5, "x": np.arange(n) + 0.5},
                       dims=("y", "x")).rio.write_crs("EPSG:28992")
    (h,) = find_hotspots(dem, min_depth=0.05).itertuples()
    assert h.depth == pytest.approx(0.5)
    assert h.area_m2 == 49 * 49                                        # every raised cell, the 0.02-0.04 m rim too
    assert h.volume_m3 == pytest.approx(fill.sum(), abs=1e-3)           # 416.5 m3
    assert h.geometry.coords[0] == (30.5, 30.5)
