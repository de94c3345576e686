"""A slow, obvious NumPy (float64) version of one local-inertial step, to check the numba kernels against."""

from __future__ import annotations

import numpy as np


def reference_step(z, h, n2, qx, qy, dt, dx, g=9.80665, theta=1.0, hmin=1e-3, rain=0.0, open_sides=(0, 0, 0, 0),
                   dt_prev=None):
    """One step on closed or open edges; returns (h, qx, qy) after it, all float64.

    The momentum update spans the mean of this and the previous step (``dt_prev``), continuity this step.

    Same conventions as flood._kernels: qx (ny, nx+1) west faces, qy (ny+1, nx) faces before each row.
    """
    z, h, n2, qx, qy = (np.asarray(a, dtype=np.float64) for a in (z, h, n2, qx, qy))
    dtc = dt
    dt = dt if not dt_prev else 0.5 * (dt + dt_prev)  # momentum step
    ny, nx = h.shape
    qxn = np.zeros_like(qx)
    qyn = np.zeros_like(qy)

    def face(za, zb, ha, hb, q0, qt, qc, n2f):
        hflow = max(za + ha, zb + hb) - max(za, zb)
        if hflow <= hmin:
            return 0.0
        dwse = (zb + hb) - (za + ha)
        if abs(dwse) <= np.finfo(np.float32).eps * (ha + hb):
            dwse = 0.0
        return (qt - g * dt * hflow * dwse / dx) / (1 + g * dt * n2f * np.hypot(q0, qc) / hflow ** (7 / 3))

    def free(ze, he, zi, hi, q0, qc, n2c):
        if he <= hmin:
            return 0.0
        slope = max(((zi + hi) - (ze + he)) / dx, 0.0) if zi < 5e5 else 0.0
        q0 = max(q0, 0.0)
        return max((q0 + g * dt * he * slope) / (1 + g * dt * n2c * np.hypot(q0, qc) / he ** (7 / 3)), 0.0)

    def blend(q, lo, hi):
        return theta * q + 0.5 * (1 - theta) * (lo + hi)

    for r in range(ny):
        for c in range(1, nx):
            qc = 0.25 * (qy[r, c - 1] + qy[r, c] + qy[r + 1, c - 1] + qy[r + 1, c])
            qt = blend(qx[r, c], qx[r, c - 1], qx[r, c + 1])
            qxn[r, c] = face(z[r, c - 1], z[r, c], h[r, c - 1], h[r, c], qx[r, c], qt, qc,
                             0.5 * (n2[r, c - 1] + n2[r, c]))
    for r in range(1, ny):
        for c in range(nx):
            qc = 0.25 * (qx[r - 1, c] + qx[r - 1, c + 1] + qx[r, c] + qx[r, c + 1])
            qt = blend(qy[r, c], qy[r - 1, c], qy[r + 1, c])
            qyn[r, c] = face(z[r - 1, c], z[r, c], h[r - 1, c], h[r, c], qy[r, c], qt, qc,
                             0.5 * (n2[r - 1, c] + n2[r, c]))
    first_row, last_col, last_row, first_col = open_sides
    for r in range(ny):
        if first_col:
            qxn[r, 0] = -free(z[r, 0], h[r, 0], z[r, 1], h[r, 1], -qx[r, 0], 0.5 * (qy[r, 0] + qy[r + 1, 0]), n2[r, 0])
        if last_col:
            qxn[r, nx] = free(z[r, -1], h[r, -1], z[r, -2], h[r, -2], qx[r, nx],
                              0.5 * (qy[r, -1] + qy[r + 1, -1]), n2[r, -1])
    for c in range(nx):
        if first_row:
            qyn[0, c] = -free(z[0, c], h[0, c], z[1, c], h[1, c], -qy[0, c], 0.5 * (qx[0, c] + qx[0, c + 1]), n2[0, c])
        if last_row:
            qyn[ny, c] = free(z[-1, c], h[-1, c], z[-2, c], h[-2, c], qy[ny, c],
                              0.5 * (qx[-1, c] + qx[-1, c + 1]), n2[-1, c])
    # scale the outflows of every cell so that it cannot go below zero
    out = (np.maximum(qxn[:, 1:], 0) - np.minimum(qxn[:, :-1], 0) + np.maximum(qyn[1:], 0) - np.minimum(qyn[:-1], 0))
    out = out * dtc / dx
    f = np.ones((ny + 2, nx + 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        f[1:-1, 1:-1] = np.where(out > h, h / out, 1.0)
    fx_up = np.where(qxn > 0, f[1:-1, :-1], f[1:-1, 1:])  # upstream cell of each x-face
    fy_up = np.where(qyn > 0, f[:-1, 1:-1], f[1:, 1:-1])
    qxn = qxn * fx_up
    qyn = qyn * fy_up
    hn = h + (qxn[:, :-1] - qxn[:, 1:] + qyn[:-1] - qyn[1:]) * dtc / dx + rain * dtc
    return np.maximum(hn, 0.0), qxn, qyn
