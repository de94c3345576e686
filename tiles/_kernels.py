"""Numba kernels of the map tiles (private): plain arrays in, plain arrays out."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__: list[str] = []


@njit(cache=True, nogil=True)
def depth_tile(data, ccol, crow, ctrl_i, ctrl_f, max_depth, min_depth, out):
    """Fill ``out`` (n x n uint8) with the depth bytes of the cell nearest each pixel centre; return whether any
    pixel is wet.

    ``ccol`` / ``crow`` are the fractional column / row in ``data`` of a k x k grid of control pixels; pixel
    ``(r, c)`` lies between control rows ``ctrl_i[r]`` and ``ctrl_i[r] + 1`` at weight ``ctrl_f[r]`` (columns
    alike), so its position is the bilinear blend of the four. Bytes are those of `tiles.maptiles._depth_bytes`:
    0 for dry, outside or NaN, else ``1 + round(clip(depth, 0, max_depth) / max_depth * 254)`` in float32.
    """
    h, w = data.shape
    n = out.shape[0]
    top = np.float32(max_depth)
    low = np.float32(min_depth)
    wet = False
    for r in range(n):
        i, fr = ctrl_i[r], ctrl_f[r]
        for c in range(n):
            j, fc = ctrl_i[c], ctrl_f[c]
            col = (1 - fr) * ((1 - fc) * ccol[i, j] + fc * ccol[i, j + 1]) + \
                fr * ((1 - fc) * ccol[i + 1, j] + fc * ccol[i + 1, j + 1])
            row = (1 - fr) * ((1 - fc) * crow[i, j] + fc * crow[i, j + 1]) + \
                fr * ((1 - fc) * crow[i + 1, j] + fc * crow[i + 1, j + 1])
            out[r, c] = 0
            if not (0 <= col < w and 0 <= row < h):
                continue
            d = data[int(row), int(col)]
            if not (d >= low):             # NaN or too shallow
                continue
            d = min(max(d, np.float32(0)), top)
            out[r, c] = 1 + round(d / top * np.float32(254))
            wet = True
    return wet
