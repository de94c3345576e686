"""Timing for the side-by-side benchmarks: collect runs per label, report medians and ours-vs-anchor ratios.

>>> t = Timings()
>>> t.measure("ours", sum, [1, 2])
3
>>> sorted(t.runs)
['ours']
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


class Timings:
    """Wall-clock runs by label."""

    def __init__(self) -> None:
        self.runs: dict[str, list[float]] = {}

    def measure(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)``, record its wall time under ``label`` and return its result."""
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        self.runs.setdefault(label, []).append(time.perf_counter() - t)
        return out

    def report(self, title: str, pairs: Sequence[tuple[str, str]]) -> dict[str, float]:
        """Print the median of every label, then how many times faster ``ours`` is than ``anchor`` per pair."""
        med = {k: statistics.median(v) for k, v in self.runs.items()}
        width = max(map(len, med), default=0) + 2
        print(title)
        for k, v in med.items():
            print(f"  {k:{width}s} {v:7.3f}")
        for ours, anchor in pairs:
            print(f"  {ours} vs {anchor}: {med[anchor] / med[ours]:.2f}x")
        return med
