"""Our regenerated urban case DEM is bit-identical to the shared benchmark script's make_dem()."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tests.flood.urban_case import _buildings, _ground, urban_array, urban_dem

DATA = Path(__file__).parents[1] / "data" / "flood"
CHECKSUMS = json.loads((DATA / "make_dem_checksums.json").read_text())


def test_small_case_equals_the_shared_script_array():
    expected = np.load(DATA / "make_dem_n100_dx5_seed1.npy")
    got = urban_array(100, 5.0, 1)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("key", sorted(CHECKSUMS))
def test_case_checksums(key):
    n = int(key.split("_")[0][1:])
    seed = int(key.split("seed")[1])
    got = urban_array(n, 5.0, seed)
    ref = CHECKSUMS[key]
    assert hashlib.sha256(got.tobytes()).hexdigest() == ref["sha256"]
    assert got.min() == np.float32(ref["min"]) and got.max() == np.float32(ref["max"])


def test_dem_coordinates_and_crs():
    dem = urban_dem(40)
    assert dem.rio.crs.to_epsg() == 28992
    np.testing.assert_allclose(dem.x.values[:3], [2.5, 7.5, 12.5])
    assert dem.y.values[0] == 197.5 and dem.y.values[-1] == 2.5  # row 0 north


def test_building_fraction_matches_the_reference_case():
    # LISFLOOD-FP's results.json records the building fraction of the n = 500 and 1000 cases
    ref = json.loads((DATA / "reference" / "results.json").read_text())["cases"]
    for n in (500, 1000):
        rng = np.random.default_rng(1)
        _ground(n, 5.0, rng)
        assert _buildings(n, 5.0, rng).mean() == pytest.approx(ref[f"n{n}"]["case"]["building_fraction"], abs=1e-6)
