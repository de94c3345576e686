"""Numba kernels of the first-order finite-volume shallow-water scheme ``scheme="fv1"`` (private).

The full 2-D shallow-water equations (advection included) on the inertial solver's grid, cell-centred:
depth ``h`` and unit discharges ``hu`` (towards increasing column) and ``hv`` (towards increasing row), float32,
shape ``(ny, nx)``; ``u``/``v`` hold the velocities of the last step. One step is:

1. :func:`fluxes`: per face, the hydrostatic reconstruction of Audusse et al. (2004) (depths re-based on the
   higher bed of the two cells, so a lake at rest over any bed gives no flux) and an HLL Riemann flux (Harten, Lax
   & van Leer 1983; the wave-speed estimates of Toro 2001 with the dry-bed speeds ``u -/+ 2 sqrt(g h)``), the
   transverse momentum carried upwind with the mass (as in HLLC). For the momentum the face stores the flux minus
   the pressure ``g h*^2 / 2`` of each side's reconstructed depth: the cell's own pressure ``g h^2 / 2`` cancels
   between its two faces, which is Audusse's bed-slope source written so that a lake at rest is exactly at rest
   in float32. Walls (``z >= WALL_Z / 2``) and closed domain edges reflect (the flux against a mirror state); open
   edges let water leave towards a ghost cell continuing the falling water surface (no inflow).
2. :func:`flood._kernels.limiter` (shared with the inertial scheme): the mass leaving a cell is scaled down where
   it would take more than the cell holds (near wet/dry fronts the HLL wave speed ``u + 2 sqrt(g h)`` can exceed
   the step's bound; cf. the draining time step of Bollermann et al. 2013), so depths stay >= 0 and mass exact.
3. :func:`update`: explicit Euler update of the three conserved quantities (the depth Kahan-compensated, as in the
   inertial scheme), rain, the shared loss steps (state-based infiltration, then rate losses), semi-implicit
   Manning friction ``q = q* / (1 + g dt n^2 |q*| / h^(7/3))`` (it slows the flow and never reverses it; Liang &
   Marche 2009 treat it in the same implicit spirit) and the shared running outputs.

The step is ``dt = min(max_dt, cfl dx / max(max(|u|, |v|) + sqrt(g h)))``, stable for ``cfl <= 0.5`` (2-D).
Velocities are zero where ``h <= HDRY`` (1e-10 m: water of any practical depth flows, so that thin fronts move).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from flood import _kernels as K
from flood._kernels import WALL_Z, _rcbrt7

__all__: list[str] = []

# no fastmath, as in flood._kernels: results must not depend on whether numba compiled or loaded the kernels
HDRY = np.float32(1e-10)
_WALL_HALF = np.float32(0.5) * WALL_Z
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_TWO = np.float32(2.0)
_EPS32 = np.float32(np.finfo(np.float32).eps)
#: depths up to this are dry for the HLL wave speeds: above the float32 rounding a drained cell keeps (~1e-8 m at
#: 0.4 m of water), so a rounding residue and an exact zero take the same (dry-bed) branch and the scheme does not
#: jump between its wet and dry wave speeds on noise
HWET = np.float32(1e-6)


@njit(cache=True, inline="always")
def _hll(hl, ul, vl, hr, ur, vr, g):
    """HLL flux across a face from the reconstructed left/right states (depth, normal and transverse velocity).

    Returns the mass flux, the normal-momentum flux minus the left pressure ``g hl^2 / 2``, the same minus the
    right pressure, and the transverse-momentum flux (upwind with the mass).
    """
    if hl <= HWET and hr <= HWET:
        return _ZERO, _ZERO, _ZERO, _ZERO
    cl = np.sqrt(g * hl)
    cr = np.sqrt(g * hr)
    if hl <= HWET:
        sl = ur - _TWO * cr
        sr = ur + cr
    elif hr <= HWET:
        sl = ul - cl
        sr = ul + _TWO * cl
    else:
        sl = min(ul - cl, ur - cr)
        sr = max(ul + cl, ur + cr)
    ql = hl * ul
    qr = hr * ur
    ml = ql * ul
    mr = qr * ur
    pl = _HALF * g * hl * hl
    pr = _HALF * g * hr * hr
    if sl >= _ZERO:
        fh = ql
        dl = ml
        dr = ml + (pl - pr)
    elif sr <= _ZERO:
        fh = qr
        dl = mr + (pr - pl)
        dr = mr
    else:
        inv = _ONE / (sr - sl)
        fh = (sr * ql - sl * qr + sl * sr * (hr - hl)) * inv
        # F = F_l + sl (U_hll - U_l) = F_r + sr (U_hll - U_r): written from each side, so that equal states
        # give exactly that side's flux (and a lake at rest exactly no momentum change)
        dfm = (mr - ml) + (pr - pl)
        dl = ml + sl * (sr * (qr - ql) - dfm) * inv
        dr = mr + sr * (sl * (qr - ql) - dfm) * inv
    ft = fh * (vl if fh > _ZERO else vr)
    return fh, dl, dr, ft


@njit(cache=True, inline="always")
def _wall(h, un, g):
    """Flux into a wall of a cell with velocity ``un`` towards it: the HLL flux between the cell and its mirror
    image, written out so that the mass and transverse fluxes are exactly zero; the momentum flux minus the cell's
    pressure is ``h un (un + |un| + sqrt(g h))`` (it stops flow into the wall and slows flow away from it)."""
    d = h * un * (un + abs(un) + np.sqrt(g * h))
    return _ZERO, d, d, _ZERO


@njit(cache=True, inline="always")
def _face(za, zb, ha, hb, ua, ub, va, vb, g):
    """Flux across the interior face from cell a to cell b (normal velocities ``u``, transverse ``v``)."""
    if zb >= _WALL_HALF:  # a wall beyond: it reflects a
        return _wall(ha, ua, g)
    if za >= _WALL_HALF:
        return _wall(hb, -ub, g)
    dz = zb - za
    hl = max(ha - max(dz, _ZERO), _ZERO)  # Audusse: depths above the higher bed
    hr = max(hb - max(-dz, _ZERO), _ZERO)
    if hl > _ZERO and hr > _ZERO and abs(hr - hl) <= _EPS32 * (ha + hb):
        hl = _HALF * (hl + hr)  # level within float32 rounding of the depths: level (a lake at rest stays still)
        hr = hl
    return _hll(hl, ua, va, hr, ub, vb, g)


@njit(cache=True, inline="always")
def _edge(z, h, un, vt, zi, hi, is_open, g):
    """Flux out across a domain edge of a cell (bed ``z``, depth ``h``, outward velocity ``un``) whose inward
    neighbour has bed ``zi`` and depth ``hi``: reflected when closed. When open, the flux towards a ghost cell
    that continues the water-surface slope falling towards the edge (level where it rises; the inertial scheme's
    free outflow is driven by the same slope), with the cell's depth and outward velocity (an inflowing
    velocity is cut to 0), so water leaves and none enters; a lake at rest beside an open edge stays at rest."""
    if not is_open:
        return _wall(h, un, g)
    drop = max((zi + hi) - (z + h), _ZERO) if zi < _WALL_HALF else _ZERO
    uo = max(un, _ZERO)
    fh, dl, dr, ft = _hll(h, uo, vt, max(h - drop, _ZERO), uo, vt, g)
    return max(fh, _ZERO), dl, dr, ft


@njit(cache=True, parallel=True)
def fluxes(z, h, u, v, fx, fy, g, open_sides):
    """Face fluxes of the state into ``fx`` (4, ny, nx + 1) and ``fy`` (4, ny + 1, nx).

    Per face: 0 mass (m²/s, towards increasing index), 1 normal momentum minus the pressure of the cell before
    the face, 2 the same minus the pressure of the cell after it, 3 transverse momentum. ``open_sides`` as in
    :func:`flood._kernels.momentum`.
    """
    ny, nx = h.shape
    g = np.float32(g)
    for r in prange(ny + 1):
        if r < ny:
            for c in range(1, nx):
                a, b, m, t = _face(z[r, c - 1], z[r, c], h[r, c - 1], h[r, c], u[r, c - 1], u[r, c], v[r, c - 1],
                                   v[r, c], g)
                fx[0, r, c] = a
                fx[1, r, c] = b
                fx[2, r, c] = m
                fx[3, r, c] = t
            # west edge: outward is -u; east edge: +u
            a, b, m, t = _edge(z[r, 0], h[r, 0], -u[r, 0], v[r, 0], z[r, 1], h[r, 1], open_sides[3] != 0, g)
            fx[0, r, 0] = -a
            fx[1, r, 0] = b
            fx[2, r, 0] = m
            fx[3, r, 0] = -t
            a, b, m, t = _edge(z[r, nx - 1], h[r, nx - 1], u[r, nx - 1], v[r, nx - 1], z[r, nx - 2], h[r, nx - 2],
                               open_sides[1] != 0, g)
            fx[0, r, nx] = a
            fx[1, r, nx] = b
            fx[2, r, nx] = m
            fx[3, r, nx] = t
        if 1 <= r < ny:
            for c in range(nx):
                a, b, m, t = _face(z[r - 1, c], z[r, c], h[r - 1, c], h[r, c], v[r - 1, c], v[r, c], u[r - 1, c],
                                   u[r, c], g)
                fy[0, r, c] = a
                fy[1, r, c] = b
                fy[2, r, c] = m
                fy[3, r, c] = t
        elif r == 0:
            for c in range(nx):
                a, b, m, t = _edge(z[0, c], h[0, c], -v[0, c], u[0, c], z[1, c], h[1, c], open_sides[0] != 0, g)
                fy[0, 0, c] = -a
                fy[1, 0, c] = b
                fy[2, 0, c] = m
                fy[3, 0, c] = -t
        else:
            for c in range(nx):
                a, b, m, t = _edge(z[ny - 1, c], h[ny - 1, c], v[ny - 1, c], u[ny - 1, c], z[ny - 2, c], h[ny - 2, c],
                                   open_sides[2] != 0, g)
                fy[0, ny, c] = a
                fy[1, ny, c] = b
                fy[2, ny, c] = m
                fy[3, ny, c] = t


@njit(cache=True, parallel=True)
def update(h, carry, hu, hv, u, v, fx, fy, f, n2, active, rain, rain_grid, loss_i, loss_d, loss_grid_i, loss_grid_d,
           loss_mode, dt, dx, g, t_new, hmin, wet, max_depth, time_of_max, max_speed2, arrival, wet_since,
           duration_wet, row_hmax, row_smax, row_vol, soil=None):
    """One explicit step from the face fluxes, in place; then losses, friction, velocities and running outputs.

    Forcing, ``soil``, ``row_vol``, the outflow factors ``f`` (padded) and the running outputs as in
    :func:`flood._kernels.continuity`; a face's mass and transverse fluxes are scaled by the factor of the cell
    they leave. ``row_smax`` receives the largest ``max(|u|, |v|) + sqrt(g h)`` of each row (for the next step).
    """
    ny, nx = h.shape
    dt32, k, area, face_vol, t32, hmin, wet, rain_d, li, ld = K.step_scalars(dt, dx, t_new, hmin, wet, rain, loss_i,
                                                                            loss_d)
    grid_rain = rain_grid.shape[0] == ny and rain_grid.shape[1] == nx
    rain_res = K.rain_residual(rain, dt, rain_d)
    g32 = np.float32(g)
    gdt = g32 * dt32
    for r in prange(ny):
        # 1. conservative update (walls keep nothing: active is 0 there)
        for c in range(nx):
            act = active[r, c]
            fc = f[r + 1, c + 1]
            w = fx[0, r, c]
            e = fx[0, r, c + 1]
            n = fy[0, r, c]
            s = fy[0, r + 1, c]
            fw = f[r + 1, c] if w > _ZERO else fc
            fe = fc if e > _ZERO else f[r + 1, c + 2]
            fn = f[r, c + 1] if n > _ZERO else fc
            fs = fc if s > _ZERO else f[r + 2, c + 1]
            src, res = K.rain_source(rain_grid, r, c, grid_rain, dt, dt32, rain_d, rain_res)
            y = ((w * fw - e * fe) + (n * fn - s * fs)) * k * act + src * act + carry[r, c]  # x, y apart
            ho = h[r, c]
            hn = ho + y
            cr = y - (hn - ho) + res * act  # Kahan, with the rain's rounding, as in the inertial scheme
            neg = hn < _ZERO
            h[r, c] = _ZERO if neg else hn
            carry[r, c] = _ZERO if neg else cr
            hu[r, c] -= ((fx[1, r, c + 1] - fx[2, r, c]) + (fy[3, r + 1, c] * fs - fy[3, r, c] * fn)) * k * act
            hv[r, c] -= ((fy[1, r + 1, c] - fy[2, r, c]) + (fx[3, r, c + 1] * fe - fx[3, r, c] * fw)) * k * act
        west = fx[0, r, 0] * f[r + 1, 1]  # edges carry outflow only
        east = fx[0, r, nx] * f[r + 1, nx]
        row_vol[r, 0] += (max(-west, _ZERO) + max(east, _ZERO)) * face_vol
        # 2. infiltration and drainage, from the water present (the scheme-independent steps)
        if soil is not None:
            K.soil_row(h, r, rain_d, rain_grid, active, soil, dt, area, row_vol)
        if loss_mode > 0:
            K.loss_row(h, r, li, ld, loss_grid_i, loss_grid_d, loss_mode, dt32, area, row_vol)
        # 3. friction and velocities, branch-free so that it vectorises (cells at most HDRY deep: at rest)
        hmx = _ZERO
        smx = _ZERO
        for c in range(nx):
            hn = h[r, c]
            hmx = max(hmx, hn)
            wetc = hn > HDRY
            hs = max(hn, HDRY)
            qx = hu[r, c]
            qy = hv[r, c]
            s = _ONE / (_ONE + gdt * n2[r, c] * np.sqrt(qx * qx + qy * qy) * _rcbrt7(hs))
            qx = qx * s if wetc else _ZERO
            qy = qy * s if wetc else _ZERO
            hu[r, c] = qx
            hv[r, c] = qy
            s = _ONE / hs
            ux = qx * s
            uy = qy * s
            u[r, c] = ux
            v[r, c] = uy
            smx = max(smx, max(abs(ux), abs(uy)) + (np.sqrt(g32 * hn) if wetc else _ZERO))
        # 4. running outputs
        for c in range(nx):
            hn = h[r, c]
            if K.track_cell(r, c, hn, t32, hmin, wet, max_depth, time_of_max, arrival, wet_since, duration_wet):
                qx = hu[r, c]
                qy = hv[r, c]
                s2 = qx * qx + qy * qy
                if s2 > max_speed2[r, c] * hn * hn:
                    max_speed2[r, c] = s2 / (hn * hn)
        row_hmax[r] = hmx
        row_smax[r] = smx
    edge = 0.0
    for c in range(nx):
        edge += max(-fy[0, 0, c] * f[1, c + 1], _ZERO) + max(fy[0, ny, c] * f[ny, c + 1], _ZERO)
    row_vol[0, 0] += edge * face_vol


@njit(cache=True)
def advance(z, h, carry, hu, hv, u, v, fx, fy, f, n2, active, open_sides, rain, rain_grid, loss_i, loss_d,
            loss_grid_i, loss_grid_d, loss_mode, src_rows, src_cols, src_rate, max_depth, time_of_max, max_speed2,
            arrival, wet_since, duration_wet, row_hmax, row_smax, row_vol, t0, t1, smax0, dx, g, cfl, max_dt, hmin,
            wet, max_steps, stats, soil=None):
    """Steps from ``t0`` to exactly ``t1`` with constant forcing, each ``min(max_dt, cfl dx / s_max)``.

    As :func:`flood._kernels.advance` (``soil`` too); ``stats`` (float64[8]) receives the same entries, 0 in place of the
    previous step, and the largest wave speed ``s_max`` (m/s) at the end.
    """
    t = t0
    smax = smax0
    hmax = 0.0
    steps = 0
    dt_lo = np.inf
    dt_hi = 0.0
    added = 0.0
    tol = 1e-9 * max(1.0, abs(t1))
    while t < t1 - tol and steps < max_steps:
        dt = max_dt
        if smax > 0.0:
            dt = min(dt, cfl * dx / smax)
        dt, last, stable = K.next_step(t, t1, dt, tol)
        if stable:
            dt_lo = min(dt_lo, dt)
            dt_hi = max(dt_hi, dt)
        added += K.add_sources(h, src_rows, src_cols, src_rate, dt)
        fluxes(z, h, u, v, fx, fy, g, open_sides)
        K.limiter(h, fx[0], fy[0], dt, dx, f)
        update(h, carry, hu, hv, u, v, fx, fy, f, n2, active, rain, rain_grid, loss_i, loss_d, loss_grid_i,
               loss_grid_d, loss_mode, dt, dx, g, t + dt, hmin, wet, max_depth, time_of_max, max_speed2, arrival,
               wet_since, duration_wet, row_hmax, row_smax, row_vol, soil)
        hmax = np.float64(row_hmax.max())
        smax = np.float64(row_smax.max())
        t = t1 if last else t + dt
        steps += 1
        if not (np.isfinite(hmax) and np.isfinite(smax)) or hmax > 1e5:
            hmax = np.inf if not np.isfinite(smax) else hmax
            break
    K.record_stats(stats, t, steps, dt_lo, dt_hi, hmax, added, 0.0)
    stats[7] = smax
