"""Numba kernels of rainfall-runoff shared with other kernels (flood's loss step): Green-Ampt and SCS-CN.

Private: scalars in, scalars out, no I/O. :mod:`hydrology.runoff` vectorises them for users; the flood solver
calls them per cell and step, so both use one formula.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__: list[str] = []


@njit(cache=True)
def green_ampt_increment(f0, dt, k, pd, tol):
    """Green-Ampt infiltration over ``dt`` under ponding, from cumulative infiltration ``f0``.

    The increment ``x >= 0`` solves ``x - pd ln(1 + x / (pd + f0)) = k dt``, the capacity
    ``f = k (1 + pd / F)`` integrated exactly from ``F = f0`` (Chow, Maidment & Mays 1988, eq. 4.3.8 and
    4.4.5); ``pd`` is suction head times moisture deficit. Newton from above the root, where the residual is
    convex and increasing, so the iterates fall monotonically onto it; ``tol`` is relative to ``max(x, 1)``.
    """
    kt = k * dt
    if kt <= 0.0:
        return 0.0
    if pd <= 0.0:
        return kt  # no suction: the capacity is k
    a = pd + f0
    x = kt + math.sqrt(2.0 * pd * kt)  # the increment from F = 0, an upper bound for any f0 >= 0
    if f0 > 0.0:
        x = min(x, kt * (1.0 + pd / f0))  # the capacity at the start held for dt: also an upper bound
    for _ in range(100):
        step = (x - pd * math.log1p(x / a) - kt) * (a + x) / (f0 + x)
        x -= step
        if abs(step) <= tol * max(x, 1.0):
            break
    return x


@njit(cache=True)
def green_ampt_increments(f0, dt, k, pd, tol, out):
    """:func:`green_ampt_increment` over flat float64 arrays of one size, into ``out``."""
    for i in range(out.size):
        out[i] = green_ampt_increment(f0[i], dt[i], k[i], pd[i], tol)


def scs_excess_runoff(excess, s):
    """SCS runoff ``Q = (P - Ia)^2 / (P - Ia + S)`` from the excess ``P - Ia`` (> 0) and the retention ``S``.

    Plain arithmetic, so it works on numbers, NumPy, xarray and dask arrays (used so by
    :func:`hydrology.scs_runoff`); :data:`scs_excess_runoff_jit` is the same function compiled for kernels.
    """
    return excess * excess / (excess + s)


scs_excess_runoff_jit = njit(cache=True, inline="always")(scs_excess_runoff)


def horton_curve(t, f0, fc, k):
    """Cumulative Horton infiltration under ponding ``F = fc t + (f0 - fc)(1 - exp(-k t)) / k`` (k > 0).

    Plain arithmetic for numbers, NumPy, xarray and dask (:func:`hydrology.horton_cumulative`);
    :data:`horton_curve_jit` is the same function compiled for kernels.
    """
    return fc * t + (f0 - fc) * (1.0 - np.exp(-k * t)) / k


horton_curve_jit = njit(cache=True, inline="always")(horton_curve)


@njit(cache=True)
def horton_increment(f_cum, dt, f0, fc, k, tol):
    """Horton infiltration over ``dt`` under ponding, from cumulative infiltration ``f_cum``.

    The capacity depends on the infiltrated depth, not on the clock (the infiltrated-depth form, as in SWMM's
    Horton): the time ``te`` at which the ponded curve :func:`horton_curve` holds ``f_cum`` is found by Newton
    from below (the curve is increasing and concave, so the iterates rise monotonically onto the root), and
    the result is ``F(te + dt) - f_cum``. Zero when the soil can take no more (``fc = 0`` and ``f_cum`` at
    ``f0 / k``).
    """
    if dt <= 0.0 or f0 <= 0.0:
        return 0.0
    if k <= 0.0 or f0 == fc:
        return f0 * dt  # no decay: the capacity stays f0
    if fc <= 0.0 and f_cum >= f0 / k * (1.0 - 1e-12):
        return 0.0
    te = f_cum / f0  # F(t) <= f0 t, so this lies below the root
    for _ in range(100):
        step = (horton_curve_jit(te, f0, fc, k) - f_cum) / (fc + (f0 - fc) * math.exp(-k * te))
        te -= step
        if abs(step) <= tol * max(te, 1.0):
            break
    return max(horton_curve_jit(te + dt, f0, fc, k) - f_cum, 0.0)


@njit(cache=True)
def horton_increments(f_cum, dt, f0, fc, k, tol, out):
    """:func:`horton_increment` over flat float64 arrays of one size, into ``out``."""
    for i in range(out.size):
        out[i] = horton_increment(f_cum[i], dt[i], f0[i], fc[i], k[i], tol)
