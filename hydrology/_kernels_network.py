"""Numba kernels on D8 trees: watershed labels, Strahler order, height above nearest drainage, MFD routing.

Private: plain arrays in, no I/O. ``rec`` arrays hold each cell's receiver as a flat index (-1: none), as made
by ``_kernels_terrain.downstream_index``. No recursion: paths are walked with explicit buffers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hydrology._kernels_terrain import CODES, DC, DR, _append_i64

__all__: list[str] = []


@njit(cache=True)
def label_upstream(rec, seeds, seed_labels, out):
    """Label every cell with the label of the first seed cell on its downstream path (0: reaches none).

    O(n): each cell's path is walked only until a cell with a known label, then the label is written back
    along the walked part (a path buffer, no recursion). ``out`` (int32, flat) is overwritten.
    Memory: ``out`` plus one buffer of the longest walked path.
    """
    n = rec.size
    for i in range(n):
        out[i] = -1
    for a in range(seeds.size):
        out[seeds[a]] = seed_labels[a]
    path = np.empty(1024, dtype=np.int64)
    for s in range(n):
        if out[s] >= 0:
            continue
        m = 0
        i = s
        lab = 0
        while True:
            if out[i] >= 0:
                lab = out[i]
                break
            path = _append_i64(path, m, i)
            m += 1
            j = rec[i]
            if j < 0:
                lab = 0
                break
            i = j
        for a in range(m):
            out[path[a]] = lab
    return 0


@njit(cache=True)
def strahler(rec, stream, order):
    """Strahler order of stream cells (uint8 ``order``, 0 off-stream), upstream cells first via in-degrees.

    A source has order 1; below a confluence the order is the largest inflowing order, plus one when two or
    more inflows share it. Memory: 3 bytes per cell.
    """
    n = rec.size
    indeg = np.zeros(n, dtype=np.uint8)
    best = np.zeros(n, dtype=np.uint8)
    nbest = np.zeros(n, dtype=np.uint8)
    for i in range(n):
        order[i] = 0
        if stream[i] and rec[i] >= 0 and stream[rec[i]]:
            indeg[rec[i]] += 1
    for s in range(n):
        if not stream[s] or indeg[s] != 0:
            continue
        i = s
        indeg[i] = 255
        while True:
            o = 1 if best[i] == 0 else best[i] + (1 if nbest[i] >= 2 else 0)
            order[i] = o
            j = rec[i]
            if j < 0 or not stream[j]:
                break
            if o > best[j]:
                best[j] = o
                nbest[j] = 1
            elif o == best[j]:
                nbest[j] += 1
            indeg[j] -= 1
            if indeg[j] != 0:
                break
            indeg[j] = 255
            i = j
    return 0


@njit(cache=True)
def drainage_height(rec, z, stream, out):
    """Height above the nearest drainage: z minus the elevation of the first stream cell downstream.

    Stream cells get 0; cells whose path reaches no stream get NaN. Same path-compression walk as
    :func:`label_upstream`. Memory: ``out`` (float64) plus 1 byte per cell and the path buffer.
    """
    n = rec.size
    done = np.zeros(n, dtype=np.uint8)
    base = np.empty(n, dtype=np.float64)  # elevation of the drainage cell each cell ends at
    for i in range(n):
        if stream[i]:
            done[i] = 1
            base[i] = z[i]
    path = np.empty(1024, dtype=np.int64)
    for s in range(n):
        if done[s] or z[s] != z[s]:
            continue
        m = 0
        i = s
        b = np.nan
        while True:
            if done[i]:
                b = base[i]
                break
            path = _append_i64(path, m, i)
            m += 1
            j = rec[i]
            if j < 0:
                break
            i = j
        for a in range(m):
            base[path[a]] = b
            done[path[a]] = 1
    for i in range(n):
        out[i] = z[i] - base[i] if z[i] == z[i] else np.nan
    return 0


@njit(cache=True)
def mfd_fractions(z, dx, dy, d8, exponent, contour, out):
    """Multiple-flow-direction fractions (Freeman 1991 / Quinn et al. 1991) to the 8 neighbours.

    out[k, r, c] is the share of cell (r, c) sent to neighbour k (NE, E, SE, S, SW, W, NW, N): proportional to
    ``tan(beta_k)^exponent`` times, when ``contour`` is set, the contour length (0.5 cardinal, 0.354
    diagonal, Quinn). Cells without a lower neighbour send everything along their D8 code ``d8`` (flats
    resolved), so the routing stays acyclic; outlets send nothing; no-data cells get NaN. Memory: 32 bytes per cell.
    """
    nr, nc = z.shape
    w = np.empty(8, dtype=np.float64)
    for r in range(nr):
        diag = np.sqrt(dx[r] * dx[r] + dy[r] * dy[r])
        for c in range(nc):
            zc = z[r, c]
            for k in range(8):
                out[k, r, c] = np.nan if zc != zc else 0.0
            if zc != zc:
                continue
            tot = 0.0
            for k in range(8):
                w[k] = 0.0
                rr = r + DR[k]
                cc = c + DC[k]
                if rr < 0 or rr >= nr or cc < 0 or cc >= nc:
                    continue
                zn = z[rr, cc]
                if zn != zn or zn >= zc:
                    continue
                cardinal = DR[k] == 0 or DC[k] == 0
                dist = dx[r] if DR[k] == 0 else (dy[r] if DC[k] == 0 else diag)
                v = ((zc - zn) / dist) ** exponent
                if contour:
                    v *= 0.5 if cardinal else 0.354
                w[k] = v
                tot += v
            if tot > 0:
                for k in range(8):
                    out[k, r, c] = w[k] / tot
            else:
                code = d8[r, c]
                for k in range(8):
                    if CODES[k] == code:
                        out[k, r, c] = 1.0
    return 0


@njit(cache=True)
def mfd_accumulate(frac, weights, acc):
    """Accumulate along MFD fractions in topological order (in-degrees over edges with a positive share).

    ``acc`` (float64, 2-D) receives weights plus everything received from upstream; returns the number of
    cells never finished (0 unless the fractions form a cycle). Memory: 1 byte per cell plus a queue.
    """
    _, nr, nc = frac.shape
    n = nr * nc
    indeg = np.zeros(n, dtype=np.uint8)
    for r in range(nr):
        for c in range(nc):
            acc[r, c] = weights[r, c]
            for k in range(8):
                if frac[k, r, c] > 0:
                    indeg[(r + DR[k]) * nc + c + DC[k]] += 1
    q = np.empty(n, dtype=np.int64)
    qt = 0
    for i in range(n):
        if indeg[i] == 0:
            q[qt] = i
            qt += 1
    qh = 0
    while qh < qt:
        i = q[qh]
        qh += 1
        r = i // nc
        c = i - r * nc
        a = acc[r, c]
        for k in range(8):
            f = frac[k, r, c]
            if f > 0:
                rr = r + DR[k]
                cc = c + DC[k]
                acc[rr, cc] += a * f
                j = rr * nc + cc
                indeg[j] -= 1
                if indeg[j] == 0:
                    q[qt] = j
                    qt += 1
    return n - qt


@njit(cache=True)
def path_sum(rec, cost, out):
    """Sum of ``cost`` along each cell's downstream path, the end cell excluded (0 at outlets and pits).

    ``out[i] = cost[i] + out[rec[i]]`` for cells with a receiver, computed with the same path-buffer walk as
    :func:`label_upstream` (each cell is finished once; no recursion). Memory: ``out`` plus 1 byte per cell.
    """
    n = rec.size
    done = np.zeros(n, dtype=np.uint8)
    path = np.empty(1024, dtype=np.int64)
    for s in range(n):
        if done[s]:
            continue
        m = 0
        i = s
        while True:
            if done[i]:
                break
            path = _append_i64(path, m, i)
            m += 1
            j = rec[i]
            if j < 0:
                out[i] = 0.0
                done[i] = 1
                m -= 1
                break
            i = j
        for a in range(m - 1, -1, -1):
            k = path[a]
            out[k] = cost[k] + out[rec[k]]
            done[k] = 1
    return 0
