"""Numba kernels of the local-inertial solver (private: plain arrays in, ``out=`` buffers, no I/O).

Grid layout (row 0 is the first row of the DEM, columns increase with x):

- cell arrays ``z``, ``h``, ``n2``, ``active``: shape ``(ny, nx)``, float32 (``active`` uint8);
- x-face discharges ``qx``: shape ``(ny, nx + 1)``, ``qx[r, c]`` is the face west of cell ``(r, c)``,
  positive towards increasing column; y-face discharges ``qy``: shape ``(ny + 1, nx)``, ``qy[r, c]`` is the
  face before cell ``(r, c)`` in row order, positive towards increasing row (unit discharge, m²/s);
- the limiter ``f`` is padded by one ghost cell on every side (value 1).

Walls (no-data and blocked cells) carry the bed ``WALL_Z`` and no water, so every face next to one is dry and
carries nothing without a branch in the inner loops.

One step is: :func:`momentum` (new face discharges), :func:`limiter` (scales outflows so that no cell goes
negative), :func:`continuity` (depth update, sources and sinks, running maxima and wet/dry bookkeeping).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from hydrology._kernels_runoff import green_ampt_increment, horton_increment, scs_excess_runoff_jit

__all__: list[str] = []

WALL_Z = np.float32(1.0e6)
# No fastmath: with it, the kernels numba compiled in a process and the same kernels loaded from its cache gave
# different depths (0.26 mm on a thin sheet; tests/flood/test_reproducible.py), for ~7 % of speed.
_THIRD = np.float32(1.0 / 3.0)
_F4 = np.float32(4.0)
_HALF = np.float32(0.5)
_QUARTER = np.float32(0.25)
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_EPS32 = np.float32(np.finfo(np.float32).eps)
# state-based infiltration (the ``soil`` tuple of the loss step)
SOIL_GREEN_AMPT = 1
SOIL_SCS_CN = 2
SOIL_HORTON = 3
_GA_TOL = 1e-10


@njit(cache=True, inline="always")
def _rcbrt7(x):
    """x ** (-7/3) for x > 0 (float32, ~1e-6 relative): magic-constant guess, three Newton steps."""
    y = np.int32(np.int32(0x54A21D2A) - np.float32(x).view(np.int32) // np.int32(3)).view(np.float32)
    y = y * (_F4 - x * y * y * y) * _THIRD
    y = y * (_F4 - x * y * y * y) * _THIRD
    y = y * (_F4 - x * y * y * y) * _THIRD
    y3 = y * y * y
    return y3 * y3 * y


@njit(cache=True, inline="always")
def _face(za, zb, ha, hb, q0, qt, qc, n2f, gdt, dtdx, hmin):
    """New unit discharge a -> b across one interior face (Bates et al. 2010, de Almeida et al. 2012)."""
    dz = zb - za
    dwse = dz + (hb - ha)  # water surface of b minus a, exact for close values
    # a difference within float32 rounding of the depths is no slope (keeps a lake at rest exactly at rest)
    dwse = dwse if abs(dwse) > _EPS32 * (ha + hb) else _ZERO
    hflow = max(ha - max(dz, _ZERO), hb - max(-dz, _ZERO))  # max surface minus max bed
    hf = max(hflow, hmin)
    qmag = np.sqrt(q0 * q0 + qc * qc)
    q = (qt - gdt * hf * dwse / dtdx) / (_ONE + gdt * n2f * qmag * _rcbrt7(hf))
    return q if hflow > hmin else _ZERO


@njit(cache=True, inline="always")
def _free(ze, he, zi, hi, q0, qc, n2, gdt, dx, hmin):
    """Outflow (>= 0) across an open domain edge: local-inertial flow driven by the outward surface slope.

    ``ze, he`` belong to the edge cell, ``zi, hi`` to its inward neighbour (``zi = WALL_Z`` for none).
    """
    slope = ((zi - ze) + (hi - he)) / dx if zi < _HALF * WALL_Z else _ZERO
    slope = max(slope, _ZERO)
    hf = max(he, hmin)
    q0 = max(q0, _ZERO)
    q = (q0 + gdt * hf * slope) / (_ONE + gdt * n2 * np.sqrt(q0 * q0 + qc * qc) * _rcbrt7(hf))
    return max(q, _ZERO) if he > hmin else _ZERO


@njit(cache=True, inline="always")
def step_scalars(dt, dx, t_new, hmin, wet, rain, loss_i, loss_d):
    """The constants of one depth update (shared by the schemes): dt (float32), dt / dx, the cell area and
    dt x face width (float64), the new time, ``hmin`` and ``wet`` (float32), and the step's uniform rain and
    infiltration and drainage losses (m, float32)."""
    dt32 = np.float32(dt)
    return (dt32, dt32 / np.float32(dx), np.float64(dx) * np.float64(dx), np.float64(dt) * np.float64(dx),
            np.float32(t_new), np.float32(hmin), np.float32(wet), np.float32(rain * dt), np.float32(loss_i * dt),
            np.float32(loss_d * dt))


@njit(cache=True, inline="always")
def rain_source(rain_grid, r, c, grid_rain, dt, dt32, rain_d, rain_res):
    """The step's rain depth at cell ``(r, c)`` (float32; ``rain_grid`` m/s per cell when ``grid_rain``, else the
    uniform ``rain_d``) and what float32 rounding left out of it (float32, for the Kahan carry; ``rain_res`` is the
    uniform one, see :func:`rain_residual`): carried, the rounding of a constant step's rain does not pile up."""
    if grid_rain:
        src = rain_grid[r, c] * dt32
        return src, np.float32(np.float64(rain_grid[r, c]) * np.float64(dt) - np.float64(src))
    return rain_d, rain_res


@njit(cache=True, inline="always")
def rain_residual(rain, dt, rain_d):
    """The part of the uniform rain depth ``rain * dt`` (m, float64) that its float32 ``rain_d`` leaves out."""
    return np.float32(np.float64(rain) * np.float64(dt) - np.float64(rain_d))


@njit(cache=True, inline="always")
def record_stats(stats, t, steps, dt_lo, dt_hi, hmax, added, dt_prev):
    """What a time loop reports (shared by the schemes): the time reached, steps taken, smallest and largest
    stable step, the deepest cell, the source depth added and the last step, into ``stats[0:7]``."""
    stats[0] = t
    stats[1] = steps
    stats[2] = dt_lo
    stats[3] = dt_hi
    stats[4] = hmax
    stats[5] = added
    stats[6] = dt_prev


@njit(cache=True, inline="always")
def loss_row(h, r, li, ld, loss_grid_i, loss_grid_d, loss_mode, dt32, area, row_vol):
    """Infiltration and drainage of row ``r`` over one step, taken from the water present (shared by the schemes).

    ``li``/``ld`` are the uniform losses of the step (m, ``loss_mode`` 1), ``loss_grid_i``/``loss_grid_d`` rates
    per cell (m/s, ``loss_mode`` 2); the volumes float32 really removed go to ``row_vol[r, 1]`` and ``[r, 2]``.
    """
    nx = h.shape[1]
    inf_v = 0.0
    drn_v = 0.0
    for c in range(nx):
        pi = li
        pd = ld
        if loss_mode == 2:
            pi = loss_grid_i[r, c] * dt32
            pd = loss_grid_d[r, c] * dt32
        tot = pi + pd
        hn = h[r, c]
        if tot > _ZERO and hn > _ZERO:
            s = min(_ONE, hn / tot)
            h[r, c] = max(hn - tot * s, _ZERO)
            # book what float32 really removed, split between the two losses
            removed = np.float64(hn) - np.float64(h[r, c])
            inf_v += removed * (np.float64(pi) / np.float64(tot))
            drn_v += removed * (np.float64(pd) / np.float64(tot))
    row_vol[r, 1] += inf_v * area
    row_vol[r, 2] += drn_v * area


@njit(cache=True, inline="always")
def soil_row(h, r, rain_d, rain_grid, active, soil, dt, area, row_vol):
    """State-based infiltration of row ``r`` over one step, from the water present (shared by the schemes; run
    it after the depth update and before :func:`loss_row`).

    ``soil = (mode, par, state)``: with ``SOIL_GREEN_AMPT``, ``par[0]`` is K (m/s), ``par[1]`` suction head
    times moisture deficit (m) and ``state`` the cumulative infiltration F (m); the step takes the Green-Ampt
    capacity integrated exactly from F (:func:`hydrology._kernels_runoff.green_ampt_increment`), limited to
    the depth present (ponded water and this step's rain). With ``SOIL_SCS_CN``, ``par[0]`` is the retention S
    (m), ``par[1]`` the initial abstraction Ia (m) and ``state`` the cumulative rain P (m); the step removes
    ``dP - (Q(P + dP) - Q(P))`` of this step's rain ``dP`` (``rain_d`` uniform, or ``rain_grid`` m/s per cell
    when it has the grid's shape), so only the SCS runoff stays on the surface. The volume float32 really
    removed goes to ``row_vol[r, 1]`` (infiltration). With ``SOIL_HORTON``, ``par[0..2]`` are f0, fc (m/s) and
    k (1/s) and ``state`` is F (m); the step takes the Horton capacity from F
    (:func:`hydrology._kernels_runoff.horton_increment`), limited to the depth present.
    """
    mode, par, state = soil
    ny, nx = h.shape
    grid_rain = rain_grid.shape[0] == ny and rain_grid.shape[1] == nx
    dt32 = np.float32(dt)
    dt64 = np.float64(dt)
    inf_v = 0.0
    for c in range(nx):
        if active[r, c] == 0:
            continue
        w = np.float64(h[r, c])
        if mode == SOIL_GREEN_AMPT:
            if w <= 0.0:
                continue
            f0 = state[r, c]
            k = par[0, r, c]
            pd = par[1, r, c]
            # the capacity over the step is at least dt f(F + w): when that covers w, all of it soaks in
            if w * (f0 + w) <= dt64 * k * (f0 + w + pd):
                take = w
            else:
                take = min(w, green_ampt_increment(f0, dt64, k, pd, _GA_TOL))
        elif mode == SOIL_HORTON:
            if w <= 0.0:
                continue
            if w <= dt64 * par[1, r, c]:  # within the final capacity fc: all of it soaks in
                take = w
            else:
                take = min(w, horton_increment(state[r, c], dt64, par[0, r, c], par[1, r, c], par[2, r, c],
                                               _GA_TOL))
        else:
            dp = np.float64(rain_grid[r, c] * dt32 if grid_rain else rain_d)
            if dp <= 0.0:
                continue
            p0 = state[r, c]
            s = par[0, r, c]
            ia = par[1, r, c]
            p1 = p0 + dp
            q0 = scs_excess_runoff_jit(p0 - ia, s) if p0 > ia else 0.0
            q1 = scs_excess_runoff_jit(p1 - ia, s) if p1 > ia else 0.0
            state[r, c] = p1  # the rain counts whether or not water is left to take (flow may have moved it)
            take = min(max(dp - (q1 - q0), 0.0), w)
            if take <= 0.0:
                continue
        new = np.float32(max(w - take, 0.0))
        h[r, c] = new
        removed = w - np.float64(new)  # what float32 really removed
        if mode != SOIL_SCS_CN:
            state[r, c] += removed  # cumulative infiltration
        inf_v += removed
    row_vol[r, 1] += inf_v * area


@njit(cache=True, inline="always")
def track_cell(r, c, hn, t32, hmin, wet, max_depth, time_of_max, arrival, wet_since, duration_wet):
    """Running outputs of one cell after a step (shared by the schemes): the maximum depth above ``hmin`` and
    its time; above ``wet`` the arrival time and wet spells. Returns whether the cell is wet (the caller then
    updates ``max_speed2`` from its own velocities)."""
    if hn > hmin and hn > max_depth[r, c]:
        max_depth[r, c] = hn
        time_of_max[r, c] = t32
    if hn > wet:
        if wet_since[r, c] < _ZERO:
            wet_since[r, c] = t32
            if arrival[r, c] < _ZERO:
                arrival[r, c] = t32
        return True
    if wet_since[r, c] >= _ZERO:
        duration_wet[r, c] += t32 - wet_since[r, c]
        wet_since[r, c] = -_ONE
    return False


@njit(cache=True, inline="always")
def next_step(t, t1, dt, tol):
    """The step to take from ``t`` towards ``t1`` given the stable ``dt`` (shared by the schemes): ``t1 - t`` if
    it is within reach, half of it if two steps would reach it (a smoother dt sequence than a step and a
    sliver). Returns the step, whether it lands on ``t1`` and whether it is the uncut stable step."""
    if t + dt >= t1 - tol:
        return t1 - t, True, False
    if t + 2.0 * dt >= t1 - tol:
        return 0.5 * (t1 - t), False, False
    return dt, False, True


@njit(cache=True, inline="always")
def add_sources(h, src_rows, src_cols, src_rate, dt):
    """Adds ``src_rate[i] * dt`` (m) to cell ``(src_rows[i], src_cols[i])``; returns the depth float32 really
    added (m, summed over cells)."""
    added = 0.0
    for i in range(src_rows.size):
        old = h[src_rows[i], src_cols[i]]
        new = old + np.float32(src_rate[i] * dt)
        h[src_rows[i], src_cols[i]] = new
        added += np.float64(new) - np.float64(old)
    return added


@njit(cache=True, parallel=True)
def momentum(z, h, n2, qx, qy, qx_out, qy_out, dt, dx, g, theta, hmin, open_sides):
    """Face discharges after one step into ``qx_out``/``qy_out`` from the state ``z, h, qx, qy``.

    ``open_sides`` is a uint8 array (first row, last column, last row, first column) with 1 for an open edge.
    ``theta`` < 1 blends the neighbouring faces' discharges into the inertia term (de Almeida et al. 2012).
    """
    ny, nx = h.shape
    dt = np.float32(dt)
    gdt = np.float32(g) * dt
    dtdx = np.float32(dx)  # slope = dwse / dx
    hmin = np.float32(hmin)
    th = np.float32(theta)
    wt = np.float32(0.5 * (1.0 - theta))
    blend = theta < 1.0
    for r in prange(ny):
        # x-faces of row r
        for c in range(1, nx):
            q0 = qx[r, c]
            qt = q0
            if blend:
                qt = th * q0 + wt * (qx[r, c - 1] + qx[r, c + 1])
            qc = _QUARTER * (qy[r, c - 1] + qy[r, c] + qy[r + 1, c - 1] + qy[r + 1, c])
            n2f = _HALF * (n2[r, c - 1] + n2[r, c])
            qx_out[r, c] = _face(z[r, c - 1], z[r, c], h[r, c - 1], h[r, c], q0, qt, qc, n2f, gdt, dtdx, hmin)
        # y-face before row r (r >= 1)
        if r >= 1:
            for c in range(nx):
                q0 = qy[r, c]
                qt = q0
                if blend:
                    qt = th * q0 + wt * (qy[r - 1, c] + qy[r + 1, c])
                qc = _QUARTER * (qx[r - 1, c] + qx[r - 1, c + 1] + qx[r, c] + qx[r, c + 1])
                n2f = _HALF * (n2[r - 1, c] + n2[r, c])
                qy_out[r, c] = _face(z[r - 1, c], z[r, c], h[r - 1, c], h[r, c], q0, qt, qc, n2f, gdt, dtdx,
                                     hmin)
        # domain edges of this row: first and last column
        zin = z[r, 1] if nx > 1 else WALL_Z
        hin = h[r, 1] if nx > 1 else _ZERO
        qc = _HALF * (qy[r, 0] + qy[r + 1, 0])
        qx_out[r, 0] = -_free(z[r, 0], h[r, 0], zin, hin, -qx[r, 0], qc, n2[r, 0], gdt, dtdx,
                              hmin) if open_sides[3] else _ZERO
        zin = z[r, nx - 2] if nx > 1 else WALL_Z
        hin = h[r, nx - 2] if nx > 1 else _ZERO
        qc = _HALF * (qy[r, nx - 1] + qy[r + 1, nx - 1])
        qx_out[r, nx] = _free(z[r, nx - 1], h[r, nx - 1], zin, hin, qx[r, nx], qc, n2[r, nx - 1], gdt, dtdx,
                              hmin) if open_sides[1] else _ZERO
    # domain edges: first and last row
    for c in range(nx):
        zin = z[1, c] if ny > 1 else WALL_Z
        hin = h[1, c] if ny > 1 else _ZERO
        qc = _HALF * (qx[0, c] + qx[0, c + 1])
        qy_out[0, c] = -_free(z[0, c], h[0, c], zin, hin, -qy[0, c], qc, n2[0, c], gdt, dtdx,
                              hmin) if open_sides[0] else _ZERO
        zin = z[ny - 2, c] if ny > 1 else WALL_Z
        hin = h[ny - 2, c] if ny > 1 else _ZERO
        qc = _HALF * (qx[ny - 1, c] + qx[ny - 1, c + 1])
        qy_out[ny, c] = _free(z[ny - 1, c], h[ny - 1, c], zin, hin, qy[ny, c], qc, n2[ny - 1, c], gdt, dtdx,
                              hmin) if open_sides[2] else _ZERO


@njit(cache=True, parallel=True)
def limiter(h, qx, qy, dt, dx, f_out):
    """Outflow factor per cell into the padded ``f_out``: 1, or less where the outflows would empty the cell."""
    ny, nx = h.shape
    k = np.float32(dt) / np.float32(dx)
    tiny = np.float32(1e-30)
    for r in prange(ny):
        for c in range(nx):
            # x and y parts summed apart: a transposed grid gives the same factors, bit for bit
            out = ((max(qx[r, c + 1], _ZERO) - min(qx[r, c], _ZERO))
                   + (max(qy[r + 1, c], _ZERO) - min(qy[r, c], _ZERO))) * k
            f_out[r + 1, c + 1] = min(_ONE, h[r, c] / max(out, tiny))


@njit(cache=True, parallel=True)
def continuity(h, carry, qx_new, qy_new, f, qx, qy, active, rain, rain_grid, loss_i, loss_d, loss_grid_i, loss_grid_d,
               loss_mode, dt, dx, t_new, hmin, wet, max_depth, time_of_max, max_speed2, arrival, wet_since,
               duration_wet, row_hmax, row_vol, soil=None):
    """Depth update of one step, in place on ``h`` (with the Kahan ``carry``); scaled discharges go back to
    ``qx``/``qy``.

    Sources: ``rain`` (m/s, uniform) or ``rain_grid`` (m/s per cell) when it has the grid's shape. Sinks:
    state-based infiltration when ``soil`` is given (see :func:`soil_row`), then infiltration and drainage
    rates (m/s), uniform (``loss_mode`` 1) or per cell (2), taken from the water present. Per row, ``row_vol[:, 0..2]`` accumulate the boundary outflow, infiltration and drainage volumes
    (m³, float64); ``row_hmax`` receives the deepest cell.

    Running outputs: ``max_depth``/``time_of_max`` above ``hmin``; above ``wet``: ``max_speed2`` (speed
    squared), ``arrival`` (-1 = never), ``wet_since`` (start of the current wet spell, -1 = dry) and
    ``duration_wet``.
    """
    ny, nx = h.shape
    dt32, k, area, face_vol, t32, hmin, wet, rain_d, li, ld = step_scalars(dt, dx, t_new, hmin, wet, rain, loss_i,
                                                                            loss_d)
    grid_rain = rain_grid.shape[0] == ny and rain_grid.shape[1] == nx
    rain_res = rain_residual(rain, dt, rain_d)
    for r in prange(ny):
        # 1. scaled fluxes and the compensated depth update: branch-free, so that it vectorises
        for c in range(nx):
            qw = qx_new[r, c]
            qe = qx_new[r, c + 1]
            qn = qy_new[r, c]
            qs = qy_new[r + 1, c]
            fc = f[r + 1, c + 1]
            sw = qw * (f[r + 1, c] if qw > _ZERO else fc)
            se = qe * (fc if qe > _ZERO else f[r + 1, c + 2])
            sn = qn * (f[r, c + 1] if qn > _ZERO else fc)
            ss = qs * (fc if qs > _ZERO else f[r + 2, c + 1])
            qx[r, c + 1] = se
            qy[r + 1, c] = ss
            ho = h[r, c]
            src, res = rain_source(rain_grid, r, c, grid_rain, dt, dt32, rain_d, rain_res)
            # Kahan: increments below the float32 resolution of h (and the rain's own rounding) are carried to the
            # next step, not lost
            y = (sw - se + sn - ss) * k + src * active[r, c] + carry[r, c]
            hn = ho + y
            cr = y - (hn - ho) + res * active[r, c]
            neg = hn < _ZERO  # only by rounding: the limiter keeps outflows within the water present
            h[r, c] = _ZERO if neg else hn
            carry[r, c] = _ZERO if neg else cr
        qx[r, 0] = qx_new[r, 0] * f[r + 1, 1]  # the first column's west face belongs to this row too
        row_vol[r, 0] += (max(-qx[r, 0], _ZERO) + max(qx[r, nx], _ZERO)) * face_vol
        # 2. infiltration and drainage, from the water present
        if soil is not None:
            soil_row(h, r, rain_d, rain_grid, active, soil, dt, area, row_vol)
        if loss_mode > 0:
            loss_row(h, r, li, ld, loss_grid_i, loss_grid_d, loss_mode, dt32, area, row_vol)
        # 3. running outputs
        hmx = _ZERO
        for c in range(nx):
            hn = h[r, c]
            hmx = max(hmx, hn)
            if track_cell(r, c, hn, t32, hmin, wet, max_depth, time_of_max, arrival, wet_since, duration_wet):
                qn = qy_new[r, c]
                sn = qn * (f[r, c + 1] if qn > _ZERO else f[r + 1, c + 1])  # the north face is another row's
                ux = _HALF * (qx[r, c] + qx[r, c + 1])
                uy = _HALF * (sn + qy[r + 1, c])
                s2 = ux * ux + uy * uy
                if s2 > max_speed2[r, c] * hn * hn:
                    max_speed2[r, c] = s2 / (hn * hn)
        row_hmax[r] = hmx
    edge = 0.0
    for c in range(nx):
        qy[0, c] = qy_new[0, c] * f[1, c + 1]
        edge += max(-qy[0, c], _ZERO) + max(qy[ny, c], _ZERO)
    row_vol[0, 0] += edge * face_vol


@njit(cache=True, parallel=True)
def volume(h, active, dx):
    """Water volume (m³, float64 sum) over active cells."""
    ny, nx = h.shape
    tot = 0.0
    for r in prange(ny):
        s = 0.0
        for c in range(nx):
            s += np.float64(h[r, c]) * active[r, c]
        tot += s
    return tot * np.float64(dx) * np.float64(dx)


@njit(cache=True, parallel=True)
def close_wet_durations(wet_since, t_end, duration_wet):
    """Add the open wet spell of every cell still wet at ``t_end`` (into ``duration_wet``)."""
    ny, nx = wet_since.shape
    t32 = np.float32(t_end)
    for r in prange(ny):
        for c in range(nx):
            if wet_since[r, c] >= 0:
                duration_wet[r, c] += t32 - wet_since[r, c]


@njit(cache=True)
def advance(z, h, carry, n2, active, qx, qy, qx_new, qy_new, f, open_sides, rain, rain_grid, loss_i, loss_d,
            loss_grid_i, loss_grid_d, loss_mode, src_rows, src_cols, src_rate, max_depth, time_of_max, max_speed2,
            arrival, wet_since, duration_wet, row_hmax, row_vol, t0, t1, hmax0, dx, g, alpha, max_dt, theta, hmin,
            wet, dt_prev0, max_steps, stats, soil=None):
    """Steps from ``t0`` to exactly ``t1`` with constant forcing, each ``min(max_dt, alpha dx / sqrt(g h_max))``.

    ``soil`` (optional): the state-based infiltration of :func:`soil_row`, whose state it advances.
    Stops after ``max_steps`` steps if ``t1`` is not reached by then (no step is cut for it).
    ``src_rate[i]`` is the depth rate (m/s) added to cell ``(src_rows[i], src_cols[i])`` at each step start.
    ``stats`` (float64[6]) receives: time reached, steps, smallest and largest stable (uncut) step, the deepest
    cell, and the source depth actually added (m, summed over cells). Stops early on a non-finite depth.
    """
    t = t0
    hmax = hmax0
    steps = 0
    dt_lo = np.inf
    dt_hi = 0.0
    added = 0.0
    tol = 1e-9 * max(1.0, abs(t1))
    dt_prev = dt_prev0
    while t < t1 - tol and steps < max_steps:
        dt = max_dt
        if hmax > 0.0:
            dt = min(dt, alpha * dx / np.sqrt(g * hmax))
        dt, last, stable = next_step(t, t1, dt, tol)
        if stable:
            dt_lo = min(dt_lo, dt)
            dt_hi = max(dt_hi, dt)
        added += add_sources(h, src_rows, src_cols, src_rate, dt)
        dtm = dt if dt_prev <= 0.0 else 0.5 * (dt + dt_prev)
        dt_prev = dt
        momentum(z, h, n2, qx, qy, qx_new, qy_new, dtm, dx, g, theta, hmin, open_sides)
        limiter(h, qx_new, qy_new, dt, dx, f)
        continuity(h, carry, qx_new, qy_new, f, qx, qy, active, rain, rain_grid, loss_i, loss_d, loss_grid_i,
                   loss_grid_d, loss_mode, dt, dx, t + dt, hmin, wet, max_depth, time_of_max, max_speed2, arrival,
                   wet_since, duration_wet, row_hmax, row_vol, soil)
        hmax = np.float64(row_hmax.max())
        t = t1 if last else t + dt
        steps += 1
        if not np.isfinite(hmax) or hmax > 1e5:
            break
    record_stats(stats, t, steps, dt_lo, dt_hi, hmax, added, dt_prev)
