"""What the catalogue says about a layer.

>>> info = LayerInfo(name="dem", kind="terrain", cim_level=1, storage="raster", crs="EPSG:7415", units="m")
>>> info.kind, info.storage
('terrain', 'raster')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LayerInfo"]


@dataclass(frozen=True)
class LayerInfo:
    """A layer's catalogue entry: identity, contract and provenance."""

    name: str
    kind: str
    cim_level: int | None
    storage: str                       # "vector" | "raster" | "file"
    crs: str | None
    units: str | None = None
    source: str | None = None
    created: str | None = None         # ISO 8601 UTC
    tool_version: str | None = None
    location: str | None = None
    info: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: dict) -> LayerInfo:
        info = row.get("info") or {}
        if isinstance(info, str):
            info = json.loads(info)
        return cls(name=row["name"], kind=row["kind"], cim_level=row["cim_level"], storage=row["storage"],
                   crs=row["crs"], units=row["units"], source=row["source"], created=row["created"],
                   tool_version=row["tool_version"], location=row["location"], info=info)

    @property
    def count(self) -> int | None:
        """Features of a vector layer, cells of a raster, None for files."""
        return self.info.get("count")

    @property
    def bounds(self) -> tuple[float, float, float, float] | None:
        b = self.info.get("bounds")
        return tuple(b) if b else None

    @property
    def attrs(self) -> dict[str, Any]:
        return self.info.get("attrs", {})

    def summary(self) -> str:
        """One line for tables: counts or shape."""
        if self.storage == "raster":
            return "x".join(map(str, self.info.get("shape", []))) + f" {self.info.get('dtype', '')}"
        if self.storage == "file":
            return self.info.get("filename", "")
        return f"{self.count} features"
