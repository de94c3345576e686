"""The same inputs give the same depths to the last bit whether numba compiles the kernels in this process or
loads them from its cache (once, fastmath flags made the two differ by 0.26 mm on a bowl's thin sheet)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = """
import sys
import numpy as np, xarray as xr
import flood
n, dx = 30, 2.0
x = dx * (np.arange(n) + 0.5)
X, Y = np.meshgrid(x - 30, x[::-1] - 30)
z = (np.minimum(0.8, 0.8 * (X ** 2 + Y ** 2) / 30 ** 2) + 1.0).astype("float32")
dem = xr.DataArray(z, coords={"y": x[::-1], "x": x}, dims=("y", "x"))
ds = flood.simulate(dem, rainfall=20.0, duration=3600.0, manning=0.035)
np.save(sys.argv[1], ds["max_depth"].to_numpy())
np.save(sys.argv[2], ds["depth"].isel(time=-1).to_numpy())
"""


@pytest.mark.slow
def test_compiled_and_cached_kernels_give_the_same_depths(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"), "PYTHONPATH": str(ROOT)}
    runs = []
    for label in ("compiled", "cached"):  # the first run compiles and fills the empty cache, the second loads it
        out = [tmp_path / f"{label}_{k}.npy" for k in ("max", "final")]
        subprocess.run([sys.executable, "-c", RUN, *map(str, out)], env=env, check=True, timeout=600,
                       capture_output=True)
        runs.append([np.load(p) for p in out])
    assert any((tmp_path / "numba-cache").rglob("*.nbc")), "the first run filled the cache"
    for compiled, cached in zip(*runs, strict=True):
        assert float(compiled.max()) > 0.01
        np.testing.assert_array_equal(compiled, cached)
