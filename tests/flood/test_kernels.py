"""The numba kernels against the slow, obvious NumPy step in reference_step.py (property tests, JIT on)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import flood
from flood import _kernels as K
from tests.flood.reference_step import reference_step


def _dem(z, dx):
    ny, nx = z.shape
    return xr.DataArray(z, dims=("y", "x"), coords={"y": (np.arange(ny)[::-1] + 0.5) * dx,
                                                     "x": (np.arange(nx) + 0.5) * dx})


@st.composite
def states(draw):
    ny = draw(st.integers(2, 9))
    nx = draw(st.integers(2, 9))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.0, 0.5, (ny, nx)).astype(np.float32)
    h = np.where(rng.random((ny, nx)) < 0.3, 0.0, rng.uniform(0.0, 0.4, (ny, nx))).astype(np.float32)
    n = rng.uniform(0.01, 0.08, (ny, nx))
    theta = draw(st.sampled_from([1.0, 0.8]))
    sides = draw(st.lists(st.booleans(), min_size=4, max_size=4))
    dx = draw(st.sampled_from([1.0, 5.0]))
    return z, h, n, theta, np.array(sides, np.uint8), dx


@settings(max_examples=60, deadline=None)
@given(states(), st.integers(1, 6))
def test_steps_match_the_numpy_reference(state, nsteps):
    z, h, n, theta, sides, dx = state
    dem = _dem(z, dx)
    names = ("north", "east", "south", "west")  # row 0 is north here, so kernel order (N, E, S, W)
    model = flood.Model(dem, initial_depth=_dem(h, dx), manning=_dem(n, dx), theta=theta, alpha=0.5,
                        boundary={s: ("open" if o else "closed") for s, o in zip(names, sides, strict=True)})
    hr, qxr, qyr = model.h.astype(np.float64), model.qx.astype(np.float64), model.qy.astype(np.float64)
    prev = None
    for _ in range(nsteps):
        dt = model.calc_time_step()
        model.run_one_step(dt)
        hr, qxr, qyr = reference_step(model.z, hr, model.n2, qxr, qyr, dt, dx, theta=theta, open_sides=tuple(sides),
                                      dt_prev=prev)
        prev = dt
        np.testing.assert_allclose(model.h, hr, atol=2e-6)
        np.testing.assert_allclose(model.qx, qxr, atol=2e-6)
        np.testing.assert_allclose(model.qy, qyr, atol=2e-6)
    assert (model.h >= 0).all()


@settings(max_examples=40, deadline=None)
@given(st.floats(1e-3, 1e3))
def test_reciprocal_cube_root_power(x):
    got = K._rcbrt7(np.float32(x))
    assert abs(got / np.float64(np.float32(x)) ** (-7.0 / 3.0) - 1) < 2e-6  # float32, 7 products


def test_limiter_never_lets_a_cell_go_negative():
    rng = np.random.default_rng(1)
    h = rng.uniform(0, 0.01, (20, 30)).astype(np.float32)
    qx = rng.normal(0, 0.5, (20, 31)).astype(np.float32)
    qy = rng.normal(0, 0.5, (21, 30)).astype(np.float32)
    qx[:, [0, -1]] = 0
    qy[[0, -1], :] = 0
    f = np.ones((22, 32), np.float32)
    K.limiter(h, qx, qy, 1.0, 1.0, f)
    fx = np.where(qx > 0, f[1:-1, :-1], f[1:-1, 1:])
    fy = np.where(qy > 0, f[:-1, 1:-1], f[1:, 1:-1])
    sx, sy = qx * fx, qy * fy
    out = np.maximum(sx[:, 1:], 0) - np.minimum(sx[:, :-1], 0) + np.maximum(sy[1:], 0) - np.minimum(sy[:-1], 0)
    assert (out <= h * (1 + 1e-6)).all()
    assert (f[1:-1, 1:-1] < 1).mean() > 0.5  # the case does limit most cells


def _checkerboard_envelope(theta, courant, steps=300, n=16, dx=5.0):
    """A 1 mm checkerboard on a 1 m deep frictionless lake, stepped at a constant Courant number: the largest
    surface deviation (rms, relative to 1 mm) over each block of 10 steps."""
    dem = _dem(np.zeros((n, n), np.float32), dx)
    sign = np.where(np.add.outer(np.arange(n), np.arange(n)) % 2 == 0, 1.0, -1.0)
    model = flood.Model(dem, initial_depth=_dem((1.0 + 1e-3 * sign).astype(np.float32), dx), manning=0.0,
                        theta=theta)
    dt = courant * dx / np.sqrt(flood.model.G * 1.001)
    rms = []
    for _ in range(steps):
        model.run_one_step(dt)
        rms.append(np.sqrt(np.mean((model.h - model.h.mean()) ** 2)) / 1e-3)
    return np.asarray(rms).reshape(-1, 10).max(axis=1)


def test_theta_damps_the_checkerboard_as_von_neumann_predicts():
    """Linearised, the 2-D scheme's (pi, pi) mode has an amplification matrix of determinant 2 theta - 1: with
    theta = 1 it is neutral (nothing but friction damps it), with theta < 1 it decays by sqrt(2 theta - 1) per
    step while alpha <= sqrt(theta / 2), and grows beyond that limit."""
    neutral = _checkerboard_envelope(1.0, 0.7)
    assert neutral[-1] / neutral[0] == pytest.approx(1.0, abs=0.02)  # measured 0.998
    damped = _checkerboard_envelope(None, 0.7)  # the default theta 0.99
    per_100 = np.sqrt(2 * 0.99 - 1) ** 100  # 0.364
    assert damped[-1] / damped[-11] == pytest.approx(per_100, rel=0.03)  # measured 0.357
    with pytest.warns(flood.FloodWarning, match="stability limit"):
        grows = _checkerboard_envelope(0.9, 0.7)  # beyond sqrt(0.9 / 2) = 0.671
    assert grows[-1] > 100  # 1 mm grew to ~1 m (measured 1010 relative to 1 mm)
