"""Agreement with LISFLOOD-FP 8.1 (and SFINCS 2.4) on the seeded urban rain-on-grid case, and with ANUGA on other
seeds.

The two peers agree to a max-depth RMSE of 2-3 mm over cells wet in either and 98 % of the > 0.10 m area;
issue 5 asks for RMSE <= 1 cm and >= 95 % against LISFLOOD-FP, on these cases and on other seeds.

Other seeds need a peer that runs here. LISFLOOD-FP and SFINCS are not on PyPI or Debian. Of the installable ones
(checked 2026-11-22, Python 3.11 venv, Debian 12):

- itzi-core (0.1.0 ... 0.8.0, the local-inertial "API-first" itzi): every release requires Python >= 3.12
  (``pip install itzi-core``: "Ignored the following versions that require a different python version ...
  0.8.0 Requires-Python >=3.12"); the project runs on 3.11 and Debian 12 has no python3.12. The full ``itzi``
  (25.8, a cp311 wheel) installs but runs inside a GRASS GIS session; not tried.
- ANUGA 4.1.0 (``pip install anuga``, Apache-2.0; finite-volume shallow water on triangles, DE0) installs and
  runs the case: ``benchmarks/anuga_peer.py`` (4 triangles per DEM cell, the cell's depth = the mean of its
  triangles). It costs ~0.26 µs of CPU per triangle and step; the 500² seed-1 case (1 M triangles, ~14,000
  steps) is ~1 CPU-hour, more than this shared machine gave, so ANUGA's own agreement with LISFLOOD-FP is not yet
  measured (the script's docstring has the command). What runs here: seeds 1-3 at 60² (14,400 triangles) and
  seeds 2 and 3 at 300² (360,000 triangles, 25-28 min each), ``tests/data/flood/reference/ANUGA_README.md``.
  Ours agrees with ANUGA to the issue's measures everywhere: RMSE 7.4, 5.4, 7.2 mm and 98.9, 96.8, 98.1 % at
  60²; 5.1 and 4.2 mm, 96.7 and 96.7 % at 300² (ANUGA's max depths a few mm deeper on average in the thin
  flows: full shallow water with advection against local inertial). Seed 3 found a defect: with theta 1 (no de Almeida weighting, the default until
  then) the grid-scale mode of its 1.4 m pond, undamped by the scheme, was pumped by the adaptive step that the
  pond itself set, to a max depth of 3.05 m; the default is now theta 0.99 (see ``flood.model``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import flood
from tests.flood.urban_case import REFERENCE_CASE, agreement, urban_dem, urban_rain

REF = Path(__file__).parents[1] / "data" / "flood" / "reference"


def _run(n: int, seed: int = REFERENCE_CASE["seed"], **options):
    c = REFERENCE_CASE
    return flood.simulate(urban_dem(n, c["dx"], seed), rainfall=urban_rain(c["rain_mm_h"], c["rain_s"]),
                          duration=c["sim_s"], manning=c["manning"], output_interval=c["sim_s"], **options)


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


ANUGA_N = 60
# ours against ANUGA (RMSE m, share) by (N, seed), measured at the defaults
MEASURED_ANUGA = {(60, 1): (0.0074, 0.989), (60, 2): (0.0054, 0.968), (60, 3): (0.0072, 0.981),
                  (300, 2): (0.0051, 0.967), (300, 3): (0.0042, 0.967)}


def _agree_with_anuga(n: int, seed: int, **options) -> tuple[float, float, float]:
    ds = _run(n, seed, **options)
    rmse, share = agreement(ds.max_depth.values, np.load(REF / f"anuga_maxdepth_n{n}_seed{seed}.npy"))
    final_rmse, _ = agreement(ds.depth.isel(time=-1).values, np.load(REF / f"anuga_finaldepth_n{n}_seed{seed}.npy"))
    return rmse, share, final_rmse


def test_anuga_references_are_closed_rain_runs():
    runs = json.loads((REF / "anuga_results.json").read_text())["runs"]
    assert sorted((r["n"], r["seed"]) for r in runs) == sorted(MEASURED_ANUGA)
    for r in runs:
        n = r["n"]
        assert r["anuga"] == "4.1.0" and r["triangles"] == 4 * n ** 2
        assert r["rain_volume_m3"] == pytest.approx(0.05 * (n * 5.0) ** 2)  # 100 mm/h for 30 min
        assert r["final_volume_m3"] == pytest.approx(r["rain_volume_m3"], rel=1e-9)  # closed edges, all kept
        final = np.load(REF / f"anuga_finaldepth_n{n}_seed{r['seed']}.npy").astype(np.float64)
        assert final.sum() * 25.0 == pytest.approx(r["final_volume_m3"], rel=1e-6)


@pytest.mark.parametrize(("n", "seed"), sorted(MEASURED_ANUGA))
def test_max_depth_matches_anuga_on_other_seeds(n, seed):
    rmse, share, final_rmse = _agree_with_anuga(n, seed)
    assert rmse <= 0.01 and share >= 0.95  # the measures
    assert rmse <= MEASURED_ANUGA[n, seed][0] + 0.001 and share >= MEASURED_ANUGA[n, seed][1] - 0.01
    assert final_rmse <= 0.01


def test_seed3_pond_oscillates_without_theta_weighting():
    # the defect seed 3 found, kept as the reason for the default theta 0.99: with theta 1 the 1.4 m pond's
    # grid-scale mode grows (max depth 3.05 m against ANUGA's 1.44 m, its surface 1.2 m out of level)
    ds = _run(ANUGA_N, 3, theta=1.0)
    ref = np.load(REF / f"anuga_maxdepth_n{ANUGA_N}_seed3.npy")
    assert float(ds.max_depth.max()) > 2.0 > 1.5 > float(ref.max())
    rmse, _ = agreement(ds.max_depth.values, ref)
    assert rmse > 0.05
