"""Numba kernels for least-cost depression breaching (Lindsay 2016; WhiteboxTools' BreachDepressionsLeastCost).

Private: plain arrays and scalars in, no I/O, no xarray. The public wrapper is :func:`hydrology.breaching.
breach_depressions`. Grids are north-up, no-data is NaN, neighbour order and offsets are those of
:mod:`hydrology._kernels_terrain`. No recursion: every traversal uses explicit, growable queues and heaps.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hydrology._kernels_terrain import DC, DR, _append_i64, _grow_i64, _neighbour, _next_up

__all__: list[str] = []

_PIT = np.uint8(9)  # ``back`` of the pit cells themselves (elsewhere 1 + the index of the step's neighbour)


# ----------------------------------------------------------------------------------------------------------
# a binary min-heap over (cost, cell) in two parallel arrays; functions return the possibly grown arrays


@njit(cache=True)
def _heap_push(keys, vals, n, key, val):
    """Add (key, val) to a heap holding ``n`` items."""
    if n == keys.size:
        k2 = np.empty(2 * n, dtype=keys.dtype)
        v2 = np.empty(2 * n, dtype=vals.dtype)
        k2[:n] = keys
        v2[:n] = vals
        keys, vals = k2, v2
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= key:
            break
        keys[i] = keys[parent]
        vals[i] = vals[parent]
        i = parent
    keys[i] = key
    vals[i] = val
    return keys, vals


@njit(cache=True)
def _heap_pop(keys, vals, n):
    """Remove the smallest item of a heap holding ``n >= 1`` items (read ``keys[0]``, ``vals[0]`` first)."""
    n -= 1
    key = keys[n]
    val = vals[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and keys[c + 1] < keys[c]:
            c += 1
        if keys[c] >= key:
            break
        keys[i] = keys[c]
        vals[i] = vals[c]
        i = c
    keys[i] = key
    vals[i] = val


# ----------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _lowered(x, step, fbuf, ibuf):
    """``x - step`` in ``fbuf``'s dtype, and at least one representable step below ``x``."""
    fbuf[0] = x - step
    y = fbuf[0]
    if y >= x:
        y = -_next_up(-x, fbuf, ibuf)
    return y


@njit(cache=True)
def _drains_out(zf, r, c, nr, nc):
    """True for a valid cell on the grid edge or next to no-data: water can leave the domain there."""
    if r == 0 or c == 0 or r == nr - 1 or c == nc - 1:
        return True
    for k in range(8):
        v = zf[(r + DR[k]) * nc + c + DC[k]]
        if v != v:
            return True
    return False


@njit(cache=True)
def find_pits(out, step, fbuf, ibuf):
    """Find the undrained pits of ``out`` (north-up, NaN = no data) and raise the single-cell ones.

    A pit is an interior cell (not on the grid edge, not next to no-data) without a lower neighbour: either a
    single cell whose neighbours are all higher, or a flat (a connected set of equal cells) of which no cell has
    a lower neighbour or lies on the edge. Flats that have such a cell drain and are left to flow_direction's
    flat resolution. Single-cell pits are raised to just below their lowest neighbour (``_lowered(min, step)``,
    never below their own height), which shortens the breach channel (Lindsay 2016).

    Returns ``(cells, starts, count)``: pit ``p`` holds ``cells[starts[p]:starts[p + 1]]``, ``p < count``.
    Memory: 1 byte per cell (flat visited flags) plus the lists.
    """
    nr, nc = out.shape
    n = nr * nc
    of = out.ravel()
    seen = np.zeros(n, dtype=np.uint8)
    cells = np.empty(1024, dtype=np.int64)
    starts = np.zeros(1024, dtype=np.int64)
    queue = np.empty(256, dtype=np.int64)
    ncell = 0
    count = 0
    for i in range(n):
        zi = of[i]
        if zi != zi or seen[i]:
            continue
        r = i // nc
        c = i - r * nc
        if r == 0 or c == 0 or r == nr - 1 or c == nc - 1:
            continue
        lower = False  # also when a neighbour is no-data: the cell drains out of the domain there
        equal = False
        zmin = np.inf
        for k in range(8):
            zj = of[i + DR[k] * nc + DC[k]]
            if zj < zi or zj != zj:
                lower = True
                break
            if zj == zi:
                equal = True
            elif zj < zmin:
                zmin = zj
        if lower:
            continue
        if equal:
            # a flat: it is a pit only if none of its cells has a lower neighbour or drains out of the domain
            seen[i] = 1
            queue[0] = i
            qn = 1
            qh = 0
            drains = False
            while qh < qn:
                a = queue[qh]
                qh += 1
                ra = a // nc
                ca = a - ra * nc
                if _drains_out(of, ra, ca, nr, nc):
                    drains = True
                for k in range(8):
                    j = _neighbour(ra, ca, k, nr, nc)
                    if j < 0:
                        continue
                    zj = of[j]
                    if zj < zi:
                        drains = True
                    elif zj == zi and not seen[j]:
                        seen[j] = 1
                        queue = _append_i64(queue, qn, j)
                        qn += 1
            if drains:
                continue
            members = queue[:qn]
        else:
            raised = _lowered(zmin, step, fbuf, ibuf)
            if raised > zi:
                of[i] = raised
            members = queue[:1]
            members[0] = i
        while ncell + members.size > cells.size:
            cells = _grow_i64(cells)
        cells[ncell : ncell + members.size] = members
        ncell += members.size
        count += 1
        if count + 1 > starts.size:
            starts = _grow_i64(starts)
        starts[count] = ncell
    return cells, starts, count


@njit(cache=True)
def _doubled(a):
    """``a`` copied into an array of twice its size (any dtype)."""
    b = np.empty(2 * a.size, dtype=a.dtype)
    b[: a.size] = a
    return b


@njit(cache=True)
def _grow_workspace(wcell, wcost, wzo, wlen, wback, wdone):
    """The search workspace of :func:`breach`, twice as large, its contents kept."""
    return _doubled(wcell), _doubled(wcost), _doubled(wzo), _doubled(wlen), _doubled(wback), _doubled(wdone)


@njit(cache=True)
def breach(z0, out, cells, starts, order, step, max_depth, max_length, max_cost, fbuf, ibuf, lowered):
    """Breach the pits found by :func:`find_pits`, lowest first, along least-cost channels (Lindsay 2016).

    z0 : the input elevations (north-up, NaN = no data); out : the working surface (from find_pits), lowered
    in place. order : pit numbers sorted by their height in ``out``. step : the channel's drop per cell
    (0 = one representable step). max_depth / max_length / max_cost : the limits (inf / a huge int when off).
    lowered : an int32 grid of zeros of ``out``'s shape, or any array of another size to skip this record;
    receives, for each lowered cell, the number of the channel (1-based, in processing order) that lowered it
    last.

    For each pit still undrained when its turn comes, a Dijkstra search grows from the pit's cells. A cell
    ``v`` reached from ``u`` lies ``length(u) + 1`` cells down the channel, whose floor there is
    ``zo(v) = zo(u) - step`` (``zo`` = the pit's height at the pit); its cost is the lowering it needs,
    ``out[v] - zo(v)``, and a channel's cost is the sum over its cells (WhiteboxTools' default, minimise the
    elevation change). Cells lowered by more than ``max_depth`` from ``z0`` or further than ``max_length``
    cells from the pit are not entered; the search fails when the cheapest open channel costs more than
    ``max_cost``. It ends at the first settled cell ``u`` that has a neighbour lower than ``zo(u)`` or that
    drains out of the domain (grid edge, next to no-data); the channel's cells are then lowered to ``zo``, so
    that it descends strictly from the pit to its end. A single-cell pit whose lowest neighbour then drains
    skips the search: that one-cell channel is the cheapest, since every channel's first cell needs at least
    as much lowering (the search would find it too, or an equally cheap one).

    Returns ``(breached, solved_before, unsolved)``: pits breached by their own channel, pits drained by an
    earlier channel before their turn, pits left undrained. Memory: 4 bytes per cell (the workspace slot) plus
    the heap and the workspace of one search (30 bytes per cell it reaches).
    """
    nr, nc = out.shape
    n = nr * nc
    zf = z0.ravel()
    of = out.ravel()
    lf = lowered.ravel()
    record = lf.size == n
    # one search's cells live in a small workspace, found from the grid by ``slot`` (0: not in this search,
    # else 1 + the cell's workspace index): 4 bytes per grid cell instead of five grid-sized arrays (cost,
    # floor, length, step back, state: 22 bytes per cell)
    slot = np.zeros(n, dtype=np.int32)
    wcell = np.empty(1024, dtype=np.int64)
    wcost = np.empty(1024, dtype=np.float64)
    wzo = np.empty(1024, dtype=np.float64)
    wlen = np.empty(1024, dtype=np.int32)
    wback = np.empty(1024, dtype=np.uint8)
    wdone = np.empty(1024, dtype=np.uint8)
    check_depth = max_depth < np.inf
    off = np.empty(8, dtype=np.int64)
    for k in range(8):
        off[k] = DR[k] * nc + DC[k]
    has_nan = False
    for i in range(n):
        if zf[i] != zf[i]:
            has_nan = True
            break
    keys = np.empty(1024, dtype=np.float64)
    vals = np.empty(1024, dtype=np.int64)
    breached = 0
    solved_before = 0
    unsolved = 0
    for p in order:
        s0 = starts[p]
        s1 = starts[p + 1]
        zp = of[cells[s0]]
        # drained already by an earlier channel? (one of its cells lowered, or one with a lower neighbour)
        solved = False
        for a in range(s0, s1):
            i = cells[a]
            if of[i] != zp:
                solved = True
                break
            for k in range(8):
                if of[i + off[k]] < zp:
                    solved = True
                    break
            if solved:
                break
        if solved:
            solved_before += 1
            continue
        if s1 - s0 == 1:
            # fast path for a single-cell pit: a channel through its lowest neighbour alone, when that neighbour
            # then drains, is optimal (any channel's first cell needs at least as much lowering)
            i = cells[s0]
            best = 0
            for k in range(1, 8):
                if of[i + off[k]] < of[i + off[best]]:
                    best = k
            v = i + off[best]
            zv = of[v]
            znext = _lowered(zp, step, fbuf, ibuf)
            if zv - znext <= max_cost and zf[v] - znext <= max_depth:
                rv = v // nc
                cv = v - rv * nc
                ends = (
                    rv == 0
                    or cv == 0
                    or rv == nr - 1
                    or cv == nc - 1
                    or (has_nan and _drains_out(of, rv, cv, nr, nc))
                )
                if not ends:
                    for k in range(8):
                        if of[v + off[k]] < znext:
                            ends = True
                            break
                if ends:
                    breached += 1
                    of[v] = znext
                    if record:
                        lf[v] = breached
                    continue
        nh = 0
        nt = 0
        for a in range(s0, s1):
            if nt == wcell.size:
                wcell, wcost, wzo, wlen, wback, wdone = _grow_workspace(wcell, wcost, wzo, wlen, wback, wdone)
            i = cells[a]
            slot[i] = nt + 1
            wcell[nt] = i
            wcost[nt] = 0.0
            wzo[nt] = zp
            wlen[nt] = 0
            wback[nt] = _PIT
            wdone[nt] = 0
            keys, vals = _heap_push(keys, vals, nh, 0.0, nt)
            nh += 1
            nt += 1
        end = -1
        while nh > 0:
            acc = keys[0]
            lu = vals[0]
            _heap_pop(keys, vals, nh)
            nh -= 1
            if wdone[lu] or acc > wcost[lu]:
                continue  # a stale heap entry
            if acc > max_cost:
                break
            wdone[lu] = 1
            u = wcell[lu]
            ru = u // nc
            cu = u - ru * nc
            if (
                ru == 0
                or cu == 0
                or ru == nr - 1
                or cu == nc - 1
                or (has_nan and _drains_out(of, ru, cu, nr, nc))
            ):
                end = lu  # (never a pit cell: pits are interior)
                break
            zou = wzo[lu]
            for k in range(8):
                if of[u + off[k]] < zou:
                    end = lu
            if end >= 0:
                break
            znext = _lowered(zou, step, fbuf, ibuf)
            lnext = wlen[lu] + 1
            if lnext > max_length:
                continue
            for k in range(8):
                v = u + off[k]  # u is interior here: its neighbours exist and are valid
                sv = slot[v]
                if (sv != 0 and wdone[sv - 1]) or (check_depth and zf[v] - znext > max_depth):
                    continue
                c2 = acc + (of[v] - znext)
                if sv == 0:
                    if nt == wcell.size:
                        wcell, wcost, wzo, wlen, wback, wdone = _grow_workspace(wcell, wcost, wzo, wlen, wback,
                                                                                 wdone)
                    lv = nt
                    nt += 1
                    slot[v] = nt
                    wcell[lv] = v
                    wdone[lv] = 0
                elif c2 < wcost[sv - 1]:
                    lv = sv - 1
                else:
                    continue
                wcost[lv] = c2
                wzo[lv] = znext
                wlen[lv] = lnext
                wback[lv] = k + 1
                keys, vals = _heap_push(keys, vals, nh, c2, lv)
                nh += 1
        if end >= 0:
            breached += 1
            lu = end
            while wback[lu] != _PIT:
                i = wcell[lu]
                if wzo[lu] < of[i]:
                    of[i] = wzo[lu]
                    if record:
                        lf[i] = breached
                lu = slot[i - off[wback[lu] - 1]] - 1
        else:
            unsolved += 1
        for a in range(nt):
            slot[wcell[a]] = 0
    return breached, solved_before, unsolved
