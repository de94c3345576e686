"""Layer kinds and CIM levels, as data, validated when a layer is added.

CIM levels follow CJJ/T 315-2022 (城市信息模型基础平台技术标准) and the MOHURD CIM guideline:

>>> CIM_LEVELS[3].name
'standard'
>>> check_kind("buildings").storage
('vector',)
>>> check_cim_level("CIM3")
3
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from cim.errors import ValidationError

__all__ = ["CIM_LEVELS", "KINDS", "CIMLevel", "LayerKind", "check_cim_level", "check_kind"]


@dataclass(frozen=True)
class CIMLevel:
    level: int
    name: str
    name_zh: str
    content: str


CIM_LEVELS: dict[int, CIMLevel] = {lv.level: lv for lv in [
    CIMLevel(1, "ground surface", "地表模型", "terrain, imagery, administrative and planning boundaries"),
    CIMLevel(2, "framework", "框架模型", "terrain plus block (LoD1) buildings, roads, water and vegetation"),
    CIMLevel(3, "standard", "标准模型", "buildings with roof forms and facade structure (LoD2)"),
    CIMLevel(4, "fine", "精细模型", "detailed exteriors and main interior structure (LoD3-4)"),
    CIMLevel(5, "functional", "功能模型", "interior spaces and functional zones (storeys, rooms)"),
    CIMLevel(6, "component", "构件模型", "BIM components: walls, slabs, doors, windows, MEP elements"),
    CIMLevel(7, "part", "零件模型", "parts of components and equipment"),
]}


@dataclass(frozen=True)
class LayerKind:
    name: str
    storage: tuple[str, ...]            # which of vector / raster / file it may be
    description: str
    default_level: int | None = None


KINDS: dict[str, LayerKind] = {k.name: k for k in [
    LayerKind("terrain", ("raster", "vector"), "ground elevation (DEM, TIN relief)", 1),
    LayerKind("imagery", ("raster",), "orthophotos and satellite imagery", 1),
    LayerKind("land_cover", ("raster", "vector"), "land cover classes", 1),
    LayerKind("land_use", ("vector", "raster"), "land use parcels", 2),
    LayerKind("admin_regions", ("vector",), "administrative regions (city > district > subdistrict)", 1),
    LayerKind("planning_zones", ("vector",), "planning control zones and plots", 1),
    LayerKind("buildings", ("vector",), "buildings: footprint, heights, LoD, attributes", 2),
    LayerKind("building_surfaces", ("vector",), "3D building surfaces as triangle meshes (MultiPolygon Z)", 3),
    LayerKind("bim", ("vector",), "BIM elements: GUID, IFC class, storey, properties, mesh", 6),
    LayerKind("roads", ("vector",), "road surfaces and centre lines", 2),
    LayerKind("bridges", ("vector",), "bridges", 2),
    LayerKind("water", ("vector", "raster"), "water bodies and rivers", 2),
    LayerKind("vegetation", ("vector",), "plant cover and trees", 2),
    LayerKind("city_furniture", ("vector",), "street furniture", 4),
    LayerKind("generic", ("vector",), "other city objects", 2),
    LayerKind("drainage_network", ("vector",), "pipes, manholes, inlets, outfalls, pumps", 2),
    LayerKind("hotspots", ("vector",), "low-lying points prone to waterlogging", 1),
    LayerKind("sensors", ("vector",), "sensor locations (SensorThings Things/Locations)", None),
    LayerKind("point_cloud", ("file",), "LAS/LAZ point clouds kept as files", 1),
    LayerKind("tileset", ("file",), "OGC 3D Tiles tilesets (tileset.json and content) kept as files", None),
    LayerKind("rainfall", ("raster",), "rainfall rates (mm/h) on a (time, y, x) grid", None),
    LayerKind("flood_result", ("raster", "vector"), "flood model outputs: depths, times, warnings", None),
    LayerKind("soil", ("raster", "vector"), "soil and infiltration properties", 1),
    LayerKind("other", ("vector", "raster", "file"), "anything else", None),
]}


def _unknown(what: str, value: object, choices: list[str]) -> ValidationError:
    near = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    return ValidationError(f"unknown {what} {value!r}.{hint} Choose one of: {', '.join(choices)}")


def check_kind(kind: str) -> LayerKind:
    """Return the LayerKind for a name, or raise a ValidationError listing the valid kinds."""
    try:
        return KINDS[kind]
    except (KeyError, TypeError):
        raise _unknown("layer kind", kind, sorted(KINDS)) from None


def check_cim_level(level: int | str | None) -> int | None:
    """Accept 1..7, "CIM1".."CIM7" or None; raise a ValidationError otherwise."""
    if level is None:
        return None
    value = level
    if isinstance(level, str) and level.upper().startswith("CIM"):
        value = level[3:]
    try:
        n = int(value)
        if isinstance(level, float) or not 1 <= n <= 7:
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationError(f"invalid CIM level {level!r}: use an integer 1..7 or 'CIM1'..'CIM7' "
                              "(CJJ/T 315-2022: 1 ground surface ... 3 standard ... 6 component, 7 part)") from None
    return n
