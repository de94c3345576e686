"""Warning levels by water depth, and when each level is first reached.

Defaults follow common urban waterlogging practice: blue 0.15 m, yellow 0.30 m, orange 0.50 m, red 1.00 m.

>>> levels = WarningLevels()
>>> levels.classify([0.1, 0.2, 0.45, 2.0]).tolist()
[0, 1, 2, 4]
>>> levels.name(3)
'orange'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from flood.errors import FloodValueError

__all__ = ["WarningLevels", "first_exceedance"]


@dataclass(frozen=True)
class WarningLevels:
    """Ordered depth thresholds (m) with names and display colours; level 0 means below the first threshold."""

    thresholds: tuple[float, ...] = (0.15, 0.30, 0.50, 1.00)
    names: tuple[str, ...] = ("blue", "yellow", "orange", "red")
    colours: tuple[str, ...] = ("#1f78b4", "#ffd92f", "#ff7f00", "#e31a1c")

    def __post_init__(self) -> None:
        t = tuple(float(v) for v in self.thresholds)
        if not t or any(b <= a for a, b in pairwise(t)) or t[0] <= 0:
            raise FloodValueError(f"warning thresholds must be positive and increasing, got {self.thresholds}")
        if len(self.names) != len(t) or len(self.colours) != len(t):
            raise FloodValueError("warning levels need one name and one colour per threshold")
        object.__setattr__(self, "thresholds", t)

    @classmethod
    def from_mapping(cls, levels: dict[str, float]) -> WarningLevels:
        """``{"blue": 0.15, "yellow": 0.3, ...}`` in increasing order of depth."""
        items = sorted(levels.items(), key=lambda kv: kv[1])
        palette = dict(zip(cls.names, cls.colours, strict=True))
        return cls(tuple(v for _, v in items), tuple(k for k, _ in items),
                   tuple(palette.get(k, "#888888") for k, _ in items))

    def classify(self, depth) -> np.ndarray:
        """Level per value: 0 below the first threshold, i for thresholds[i-1] <= depth < thresholds[i]."""
        d = np.nan_to_num(np.asarray(depth, dtype=np.float64), nan=0.0)
        return np.searchsorted(np.asarray(self.thresholds), d, side="right").astype(np.uint8)

    def name(self, level: int) -> str:
        return "none" if level == 0 else self.names[level - 1]


def first_exceedance(depth: np.ndarray, times: Sequence[float], thresholds: Sequence[float]) -> np.ndarray:
    """First time each cell's depth reaches each threshold: ``(len(thresholds), *depth.shape[1:])``, NaN if never.

    ``depth`` is a ``(time, ...)`` series sampled at ``times`` (s).

    >>> d = np.array([[0.0], [0.2], [0.6]])
    >>> first_exceedance(d, [0, 60, 120], [0.15, 0.5, 1.0])[:, 0].tolist()
    [60.0, 120.0, nan]
    """
    d = np.nan_to_num(np.asarray(depth, dtype=np.float32), nan=0.0)
    t = np.asarray(times, dtype=np.float64)
    out = np.full((len(thresholds), *d.shape[1:]), np.nan)
    for k, thr in enumerate(thresholds):
        hit = d >= thr
        ever = hit.any(axis=0)
        out[k][ever] = t[hit.argmax(axis=0)[ever]]
    return out
