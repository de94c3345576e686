"""Administrative regions: a tree such as city > district > subdistrict, each a polygon in the scene CRS.

>>> level_rank("district") > level_rank("city")
True
"""

from __future__ import annotations

from dataclasses import dataclass

from shapely.geometry.base import BaseGeometry

from cim.errors import ValidationError

__all__ = ["REGION_LEVELS", "Region", "level_rank"]

#: Levels from the largest to the smallest (省 > 市 > 区/县 > 街道/乡镇 > 社区/村).
REGION_LEVELS: tuple[str, ...] = ("country", "province", "city", "district", "subdistrict", "community")


def level_rank(level: str) -> int:
    try:
        return REGION_LEVELS.index(level)
    except ValueError:
        raise ValidationError(f"unknown region level {level!r}; use one of: {', '.join(REGION_LEVELS)}") from None


@dataclass(frozen=True)
class Region:
    """One administrative region."""

    name: str
    level: str
    geometry: BaseGeometry
    parent: str | None = None
    code: str | None = None
