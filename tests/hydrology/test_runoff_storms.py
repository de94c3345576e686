"""Rainfall-runoff and design storms: published worked examples, analytic identities, xarray/dask behaviour."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import hydrology
from hydrology import runoff, storms
from hydrology.errors import ParameterError
from tests.hydrology.references import grid

# ------------------------------------------------------------------------------------------------ SCS-CN


def test_tr55_example_2_2():
    # USDA-SCS (1986) TR-55, example 2-2: CN 75, P = 6.0 in -> Q = 3.28 in
    assert round(float(hydrology.scs_runoff(6.0, 75, units="in")), 2) == 3.28


def test_metric_example():
    # P = 120 mm, CN 85: S = 44.82 mm, Ia = 8.96 mm, Q = 79.1 mm
    assert round(float(hydrology.scs_runoff(120.0, 85, units="mm")), 1) == 79.1
    # the same storm in inches gives the same depth
    q_in = float(hydrology.scs_runoff(120.0 / 25.4, 85, units="in"))
    assert math.isclose(q_in * 25.4, float(hydrology.scs_runoff(120.0, 85)), rel_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.just(0.0), st.floats(1e-3, 500)), st.floats(30, 100), st.floats(0, 50))
def test_scs_bounds_and_monotonicity(p, cn, dp):
    q = float(hydrology.scs_runoff(p, cn))
    s = 25400 / cn - 254
    assert 0 <= q <= p + 1e-12
    assert (q == 0) == (p <= 0.2 * s)
    assert float(hydrology.scs_runoff(p + dp, cn)) >= q - 1e-12
    assert float(hydrology.scs_runoff(p, min(cn + 5, 100))) >= q - 1e-12
    if cn == 100:
        assert math.isclose(q, p, abs_tol=1e-9)  # impervious: everything runs off


def test_scs_on_grids_keeps_coords_and_stays_lazy_with_dask():
    cn = grid(np.array([[75.0, 85.0], [98.0, np.nan]]))
    rain = xr.DataArray([10.0, 60.0, 120.0], dims="time").chunk({"time": 1})
    q = hydrology.scs_runoff(rain, cn)
    assert q.chunks is not None  # still a dask array
    q = q.compute()
    assert q.dims == ("time", "y", "x") and q.rio.crs.to_epsg() == 32631
    assert round(float(q.sel(time=2)[0, 1]), 1) == 79.1
    assert np.isnan(q.values[:, 1, 1]).all()
    assert float(q[0, 0, 0]) == 0.0  # 10 mm < Ia = 16.9 mm for CN 75


def test_scs_rejects_bad_inputs():
    with pytest.raises(ParameterError, match="curve_number"):
        hydrology.scs_runoff(10.0, 120)
    with pytest.raises(ParameterError, match="precipitation"):
        hydrology.scs_runoff(-1.0, 80)
    with pytest.raises(ParameterError, match="units"):
        hydrology.scs_runoff(1.0, 80, units="cm")


def test_amc_adjustment_matches_neh4_table():
    # Chow et al. (1988) eq. 5.5.6-5.5.7; NEH-4 table 10.1 lists CN(II) 75 -> 57 (I) and 88 (III),
    # 50 -> 31 and 70, 90 -> 78 and 96
    for cn2, dry, wet in [(75, 57, 88), (50, 31, 70), (90, 78, 96)]:
        assert abs(float(hydrology.amc_adjust(cn2, "I")) - dry) <= 2
        assert abs(float(hydrology.amc_adjust(cn2, "III")) - wet) <= 2
    assert round(float(hydrology.amc_adjust(75, "I")), 2) == 55.75
    assert round(float(hydrology.amc_adjust(75, "III")), 2) == 87.34
    assert hydrology.amc_adjust(75, "II") == 75
    with pytest.raises(ParameterError):
        hydrology.amc_adjust(75, "IV")


def test_curve_number_grid_from_tables():
    lc = grid(np.array([[1, 2, 3], [3, 2, 7]]))
    hsg = grid(np.array([[1, 4, 2], [np.nan, 3, 1]]))
    cn = hydrology.curve_number_grid(lc, hsg, {1: "residential_1_4_acre", 2: "woods_good", 3: (49, 69, 79, 84)})
    np.testing.assert_array_equal(cn.values, [[61, 77, 69], [np.nan, 70, np.nan]])
    assert cn.rio.crs.to_epsg() == 32631
    with pytest.raises(ParameterError, match="unknown cover"):
        hydrology.curve_number_grid(lc, hsg, {1: "forest"})


# ------------------------------------------------------------------------------------------------ rational, UH


def test_scs_runoff_with_the_005_initial_abstraction_converts_the_retention():
    # CN 75 (TR-55, 0.2-based), P = 2 in: S = 3.333 in; Woodward et al. (2003): S_0.05 = 1.33 S^1.15 = 5.311 in,
    # Ia = 0.266 in, Q = (2 - 0.266)^2 / (2 - 0.266 + 5.311) = 0.427 in (0.381 in with Ia = 0.2 S)
    s05 = 1.33 * (1000 / 75 - 10) ** 1.15
    q = (2.0 - 0.05 * s05) ** 2 / (2.0 - 0.05 * s05 + s05)
    assert float(hydrology.scs_runoff(2.0, 75, units="in", ia_ratio=0.05)) == pytest.approx(q, rel=1e-12)
    assert q == pytest.approx(0.427, abs=5e-4)
    assert float(hydrology.scs_runoff(2.0, 75, units="in")) == pytest.approx(0.381, abs=5e-4)
    # the same in millimetres
    assert float(hydrology.scs_runoff(50.8, 75, units="mm", ia_ratio=0.05)) == pytest.approx(q * 25.4, rel=1e-9)


def test_rational_method_example():
    # C = 0.11, i = 1.25 in/h, A = 30 ac -> 4.125 cfs
    assert math.isclose(hydrology.rational_peak(0.11, 1.25, 30.0), 4.125)
    # SI: the same catchment in m2 and mm/h gives the same discharge in m3/s (1 cfs = 0.0283168 m3/s)
    q_si = hydrology.rational_peak(0.11, 1.25 * 25.4, 30.0 * 4046.8564224, units="si")
    assert math.isclose(q_si, 4.125 * 0.028316846592, rel_tol=1e-2)  # 1.008 factor taken as 1 in US units
    assert q_si == pytest.approx(0.11 * 31.75 * 121405.692672 / 3.6e6, rel=1e-12)  # Q = C i A / 3.6e6 exactly


def test_nrcs_unit_hydrograph_example_and_volume():
    uh = hydrology.nrcs_unit_hydrograph(1.0, tc=1.5, duration=0.2)
    assert uh.attrs["tp_hours"] == 1.0
    k = int(np.argmax(uh.values))
    assert round(float(uh[k]), 6) == 484.0 and float(uh.time[k]) == 3600.0
    # the hydrograph carries 1 inch over 1 mi2 = 2,323,200 ft3 (484 is built so: within the table's rounding)
    volume = np.trapezoid(uh.values, uh.time.values)
    assert abs(volume / 2_323_200.0 - 1) < 0.01
    si = hydrology.nrcs_unit_hydrograph(2.59, tc=1.5, duration=0.2, runoff=25.4, units="si")
    assert math.isclose(float(si.max()), 0.208 * 2.59 * 25.4, rel_tol=1e-12)
    assert math.isclose(float(si.max()) / 0.0283168, 484.0, rel_tol=0.01)  # same catchment, same peak
    # Tp = D/2 + 0.6 Tc = 0.25 + 1.8 = 2.05 h, qp = 484 A Q / Tp = 236.0976 cfs at t = Tp (a step lands on it)
    slow = hydrology.nrcs_unit_hydrograph(1.0, tc=3.0, duration=0.5, dt=0.05)
    assert slow.attrs["tp_hours"] == 2.05
    assert slow.attrs["qp"] == pytest.approx(484.0 / 2.05, rel=1e-12)
    k = int(np.argmax(slow.values))
    assert float(slow[k]) == pytest.approx(484.0 / 2.05, rel=1e-12) and float(slow.time[k]) == pytest.approx(7380.0)
    assert abs(np.trapezoid(slow.values, slow.time.values) / 2_323_200.0 - 1) < 0.01


# ------------------------------------------------------------------------------------------------ infiltration


def test_green_ampt_chow_example_4_3_1():
    # silt loam: K = 0.65 cm/h, psi = 16.7 cm, dtheta = 0.340; after 1 h F = 3.17 cm and f = 1.81 cm/h
    f_cum = float(hydrology.green_ampt_cumulative(1.0, 0.65, 16.7, 0.340))
    assert round(f_cum, 2) == 3.17
    # the book evaluates f with the rounded F = 3.17 cm
    assert round(float(hydrology.green_ampt_rate(3.17, 0.65, 16.7, 0.340)), 2) == 1.81
    assert abs(float(hydrology.green_ampt_rate(f_cum, 0.65, 16.7, 0.340)) - 1.81) < 0.01


@settings(max_examples=100, deadline=None)
@given(st.floats(0.01, 20), st.floats(0.05, 10), st.floats(1, 30), st.floats(0.05, 0.5))
def test_green_ampt_solves_its_equation_and_rate_is_derivative(t, k, psi, dth):
    f = float(hydrology.green_ampt_cumulative(t, k, psi, dth))
    pd = psi * dth
    assert math.isclose(f - pd * math.log1p(f / pd), k * t, rel_tol=1e-9, abs_tol=1e-12)
    h = 1e-5 * t
    dfdt = (float(hydrology.green_ampt_cumulative(t + h, k, psi, dth))
            - float(hydrology.green_ampt_cumulative(t - h, k, psi, dth))) / (2 * h)
    assert math.isclose(dfdt, float(hydrology.green_ampt_rate(f, k, psi, dth)), rel_tol=1e-4)


def test_horton_rate_limits_and_cumulative_derivative():
    assert float(hydrology.horton_rate(0.0, 75.0, 10.0, 2.0)) == 75.0
    assert math.isclose(float(hydrology.horton_rate(50.0, 75.0, 10.0, 2.0)), 10.0)
    t = np.linspace(0.1, 3, 7)
    h = 1e-6
    num = (hydrology.horton_cumulative(t + h, 75, 10, 2) - hydrology.horton_cumulative(t - h, 75, 10, 2)) / (2 * h)
    np.testing.assert_allclose(num, hydrology.horton_rate(t, 75, 10, 2), rtol=1e-6)


# ------------------------------------------------------------------------------------------------ design storms


@settings(max_examples=100, deadline=None)
@given(st.floats(100, 5000), st.floats(0, 30), st.floats(0.3, 0.95), st.floats(0, 1),
       st.sampled_from([(60, 5), (120, 10), (180, 1), (90, 15)]))
def test_chicago_total_depth_equals_idf_depth(a, b, n, r, timing):
    duration, dt = timing
    s = hydrology.chicago_hyetograph(hydrology.IDF(a, b, n), duration, dt, r=r)
    total = float((s * dt / 60.0).sum())
    assert math.isclose(total, a * duration / (duration + b) ** n / 60.0, rel_tol=1e-10)
    assert (s.values >= 0).all()
    assert s.time.values[0] == 0 and np.allclose(np.diff(s.time.values), dt * 60.0)


def test_chicago_bursts_around_the_peak_match_the_idf():
    idf = hydrology.IDF(a=2000.0, b=8.0, n=0.711)
    s = hydrology.chicago_hyetograph(idf, 120, 5, r=0.5)  # peak at 60 min, on an interval boundary
    depth = s.values * 5 / 60
    for k in range(1, 13):  # window of 2k intervals centred on the peak = burst of 10k minutes
        assert math.isclose(depth[12 - k : 12 + k].sum(), float(idf.depth(10.0 * k)), rel_tol=1e-12)
    assert s.attrs["units"] == "mm/h" and s.time.attrs["units"] == "s"


def test_alternating_block_properties():
    idf = hydrology.IDF(a=1500.0, b=10.0, n=0.7)
    s = hydrology.alternating_block(idf, 120, 10)
    depth = s.values * 10 / 60
    assert math.isclose(depth.sum(), float(idf.depth(120.0)))
    assert math.isclose(depth.max(), float(idf.depth(10.0)))
    # the k largest blocks are adjacent and hold the IDF depth of k*dt
    order = np.argsort(-depth)
    for k in range(1, 13):
        idx = np.sort(order[:k])
        assert idx[-1] - idx[0] == k - 1
        assert math.isclose(depth[idx].sum(), float(idf.depth(10.0 * k)))
    assert int(np.argmax(depth)) == 6  # floor(0.5 * 11 + 0.5)
    with pytest.raises(ParameterError, match="whole number"):
        hydrology.alternating_block(idf, 125, 10)


def test_chinese_storm_formula_beijing():
    bj = hydrology.chinese_storm_formula("Beijing")
    # q = 2001 (1 + 0.811 lg P) / (t + 8)^0.711: P = 1, t = 10 min -> 2001 / 18^0.711 = 256.30 L/(s ha)
    assert round(float(bj.q(10.0, 1.0)), 2) == 256.30
    # P = 10 multiplies by 1 + 0.811
    assert math.isclose(float(bj.q(10.0, 10.0)), 1.811 * float(bj.q(10.0, 1.0)))
    # 1 mm/min = 166.67 L/(s ha): the printed 167 is that conversion
    assert math.isclose(float(bj.intensity(10.0, 1.0)), 256.30 * 0.36, rel_tol=1e-4)
    assert "Handbook" in bj.source
    # its IDF gives the same intensities and drives a Chicago storm with the right total
    idf = bj.idf(3.0)
    assert math.isclose(float(idf.intensity(45.0)), float(bj.intensity(45.0, 3.0)))
    storm = hydrology.chicago_hyetograph(idf, 120, 5, r=0.4)
    assert math.isclose(float(storm.sum()) * 5 / 60, float(bj.intensity(120.0, 3.0)) * 2.0, rel_tol=1e-10)
    # the other cities, written out from the handbook's printed formulas (not read from our JSON)
    printed = {
        "tianjin": lambda t, p: 3833.34 * (1 + 0.85 * math.log10(p)) / (t + 17) ** 0.85,
        "nanjing": lambda t, p: 2989.3 * (1 + 0.671 * math.log10(p)) / (t + 13.3) ** 0.8,
        "guangzhou": lambda t, p: 2424.17 * (1 + 0.533 * math.log10(p)) / (t + 11.0) ** 0.668,
    }
    for city, q in printed.items():
        f = hydrology.chinese_storm_formula(city)
        for t, p in ((10.0, 1.0), (60.0, 2.0), (120.0, 50.0)):
            assert float(f.q(t, p)) == pytest.approx(q(t, p), rel=1e-12), (city, t, p)
            assert float(f.intensity(t, p)) == pytest.approx(q(t, p) * 0.36, rel=1e-4)  # L/(s ha) -> mm/h
    assert round(float(hydrology.chinese_storm_formula("tianjin").q(10.0, 1.0)), 3) == 232.765
    with pytest.raises(ParameterError, match="known"):
        hydrology.chinese_storm_formula("atlantis")


def test_sewer_capacity_of_a_design_return_period():
    bj = hydrology.chinese_storm_formula("beijing")
    # a network designed for P = 3 years with 15 minutes to concentrate and psi = 0.9:
    # 0.9 x 0.36 x 2001 (1 + 0.811 lg 3) / (15 + 8)^0.711 = 96.75 mm/h
    expected = 0.9 * 0.36 * 2001 * (1 + 0.811 * math.log10(3)) / 23**0.711
    assert hydrology.sewer_capacity(bj, 3, concentration_time=15, runoff_coefficient=0.9) == \
        pytest.approx(expected, rel=1e-12) == pytest.approx(96.75, abs=0.01)
    # the same from the IDF of that return period; longer concentration and rarer design change it as they should
    assert hydrology.sewer_capacity(bj.idf(3), concentration_time=15, runoff_coefficient=0.9) == \
        pytest.approx(expected, rel=1e-12)
    assert hydrology.sewer_capacity(bj, 3, concentration_time=30) < hydrology.sewer_capacity(bj, 3) < \
        hydrology.sewer_capacity(bj, 5)
    for kw, msg in (({"return_period": None}, "design return period"), ({"runoff_coefficient": 1.5}, r"\(0, 1\]"),
                    ({"concentration_time": 0}, "positive")):
        with pytest.raises(ParameterError, match=msg):
            hydrology.sewer_capacity(bj, **{"return_period": 3, **kw})
    with pytest.raises(ParameterError, match="leave return_period out"):
        hydrology.sewer_capacity(bj.idf(3), 3)


def test_docstring_examples():
    for mod in (runoff, storms):
        res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.attempted > 0 and res.failed == 0, mod.__name__
