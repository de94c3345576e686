"""Agreement with LISFLOOD-FP 8.1 (and SFINCS 2.4) on the seeded urban rain-on-grid case.

The two peers agree to a max-depth RMSE of 2-3 mm over cells wet in either and 98 % of the > 0.10 m area;
issue 5 asks for RMSE <= 1 cm and >= 95 % against LISFLOOD-FP.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import flood
from tests.flood.urban_case import REFERENCE_CASE, agreement, urban_dem, urban_rain

REF = Path(__file__).parents[1] / "data" / "flood" / "reference"


def _run(n: int):
    c = REFERENCE_CASE
    return flood.simulate(urban_dem(n, c["dx"], c["seed"]), rainfall=urban_rain(c["rain_mm_h"], c["rain_s"]),
                          duration=c["sim_s"], manning=c["manning"], output_interval=c["sim_s"])


@pytest.fixture(scope="module")
def n500():
    return _run(500)


def test_max_depth_matches_lisflood_n500(n500):
    ref = np.load(REF / "lisflood_maxdepth_n500.npy")
    rmse, share = agreement(n500.max_depth.values, ref)
    assert rmse <= 0.002  # measured 0.9 mm; the bar is 1 cm, the peers reach 2.7 mm
    assert share >= 0.99  # measured 99.9 %; the bar is 95 %, the peers reach 98.5 %
    assert float(n500.max_depth.max()) == pytest.approx(float(ref.max()), abs=0.005)


def test_final_depth_matches_lisflood_n500(n500):
    ref = np.load(REF / "lisflood_finaldepth_n500.npy")
    rmse, share = agreement(n500.depth.isel(time=-1).values, ref)
    assert rmse <= 0.005 and share >= 0.98


def test_closer_to_lisflood_than_sfincs_is(n500):
    lis = np.load(REF / "lisflood_maxdepth_n500.npy")
    sf = np.load(REF / "sfincs_maxdepth_n500.npy")
    ours, _ = agreement(n500.max_depth.values, lis)
    peers, _ = agreement(sf, lis)
    assert peers == pytest.approx(0.0027, abs=0.0005)  # the published peer agreement, recomputed
    assert ours < peers


def test_steps_volume_and_budget_like_lisflood_n500(n500):
    meta = json.loads((REF / "results.json").read_text())["cases"]["n500"]
    # same time-step rule: LISFLOOD-FP took 2072 steps; ours also lands on 1800 s and the output time
    assert abs(n500.attrs["steps"] - meta["steps"]) <= 0.01 * meta["steps"]
    assert n500.attrs["rain_volume"] == pytest.approx(meta["rain_volume_m3"], rel=1e-12)  # exact 1800 s of rain
    assert abs(n500.attrs["mass_error"]) < 1e-6
    assert n500.attrs["final_volume"] == pytest.approx(meta["rain_volume_m3"], rel=1e-6)
    assert n500.attrs["outflow_volume"] == 0.0


@pytest.mark.slow
def test_max_depth_matches_lisflood_n1000():
    ds = _run(1000)
    rmse, share = agreement(ds.max_depth.values, np.load(REF / "lisflood_maxdepth_n1000.npy"))
    assert rmse <= 0.002 and share >= 0.99
    assert abs(ds.attrs["mass_error"]) < 1e-6
