"""CityGML 2.0 buildings (LoD1/LoD2) with lxml: the same ``buildings`` and ``building_surfaces`` layers as CityJSON.

Every ``gml:Polygon`` inside a ``bldg:Building`` (its BuildingParts folded in) is read with its LoD (from the
``lodN…`` property it sits under) and its semantic surface (``bldg:RoofSurface``, ``WallSurface``,
``GroundSurface``, …); the highest LoD per building is used unless ``lod=`` says otherwise. ``measuredHeight``
(converted to metres from its ``uom``) and the other simple attributes (bldg:function, yearOfConstruction,
roofType, gen:*Attribute) are kept; BuildingParts' own attributes go under ``"parts"``. The CRS comes from the first ``srsName`` (OGC URN/URL or EPSG:n), or ``crs=``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from cim.errors import DataError, ValidationError, require
from ingest._crs import require_projected, resolve_crs
from ingest.base import CORRUPT, LayerItem, Reader, ReadResult, Skipped, register
from ingest.cityjson import _footprint, _mesh_geometry, lod_cim_level

__all__ = ["CityGMLReader"]

GML = "http://www.opengis.net/gml"
BLDG = "http://www.opengis.net/citygml/building/2.0"
XLINK = "http://www.w3.org/1999/xlink"
_SURFACES = {"RoofSurface", "WallSurface", "GroundSurface", "ClosureSurface", "OuterCeilingSurface",
             "OuterFloorSurface", "FloorSurface", "InteriorWallSurface", "CeilingSurface"}
_LOD = re.compile(r"^lod(\d)")
_NUMERIC = {"yearOfConstruction", "yearOfDemolition", "storeysAboveGround", "storeysBelowGround"}
_UOM_M = {"m": 1.0, "#m": 1.0, "urn:adv:uom:m": 1.0, "metre": 1.0, "meter": 1.0, "ft": 0.3048, "cm": 0.01, "mm": 0.001}


def _local(tag: Any) -> str:
    return tag.split("}", 1)[1] if isinstance(tag, str) and "}" in tag else str(tag)


def _ring(el, dim: int) -> np.ndarray:
    pos_list = el.find(f"{{{GML}}}posList")
    if pos_list is not None:
        d = int(pos_list.get("srsDimension") or dim)
        vals = np.array(pos_list.text.split(), float)
    else:
        pts = [p.text.split() for p in el.iter(f"{{{GML}}}pos")]
        d = len(pts[0]) if pts else dim
        vals = np.array([float(v) for p in pts for v in p], float)
    if d != 3 or vals.size % 3:
        raise ValueError(f"expected 3D coordinates (srsDimension 3), got dimension {d}")
    return vals.reshape(-1, 3)


def _polygon(poly, dim: int):
    import shapely

    ext = poly.find(f"{{{GML}}}exterior/{{{GML}}}LinearRing")
    if ext is None:
        raise ValueError("polygon without gml:exterior/gml:LinearRing")
    holes = [_ring(r, dim) for r in poly.findall(f"{{{GML}}}interior/{{{GML}}}LinearRing")]
    return shapely.Polygon(_ring(ext, dim), holes)


@register
class CityGMLReader(Reader):
    name = "citygml"
    extensions = (".gml", ".citygml", ".xml")
    options = frozenset({"crs", "lod"})
    description = "CityGML 2.0 buildings (LoD1/LoD2) via lxml"

    def guess_can_open(self, path: Path) -> bool:
        if not super().guess_can_open(path):
            return False
        try:
            with open(path, "rb") as fh:
                head = fh.read(8192)
        except OSError:
            return False
        return b"citygml" in head.lower()

    def read(self, path: Path, *, crs: Any = None, lod: str | int | None = None) -> ReadResult:
        etree = require("lxml.etree", "io")
        import geopandas as gpd

        from cim.mesh import triangulate_polygon

        path = Path(path)
        try:
            tree = etree.parse(str(path), etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError as exc:
            raise DataError(f"{path.name}: not well-formed XML ({exc}); {CORRUPT}") from None
        root = tree.getroot()
        if "citygml/2.0" not in (root.nsmap.get(None, "") + " ".join(v for v in root.nsmap.values() if v)):
            if any("citygml/3.0" in (v or "") for v in root.nsmap.values()):
                raise DataError(f"{path.name}: CityGML 3.0 is not supported by this reader (only 2.0 buildings); "
                                "convert it with citygml-tools")
            raise DataError(f"{path.name}: no CityGML 2.0 namespace on the root element; not CityGML 2.0")
        srs = next((el.get("srsName") for el in root.iter() if el.get("srsName")), None)
        the_crs = resolve_crs(srs, crs, path, "srsName")
        require_projected(the_crs, path, "CityGML")     # (a geographic posList is also lat, lon: not x, y)
        dim = int(next((el.get("srsDimension") for el in root.iter() if el.get("srsDimension")), 3))
        want = None if lod is None else int(float(lod))
        result = ReadResult(source=path, format=self.name, crs=the_crs)
        rows, surf_rows = [], []
        buildings = root.iter(f"{{{BLDG}}}Building")
        for b in buildings:
            if any(_local(a.tag) == "Building" for a in b.iterancestors()):
                continue                     # a nested Building inside another: folded into its parent
            bid = b.get(f"{{{GML}}}id") or f"building_{len(rows) + len(result.skipped)}"
            by_lod: dict[int, list] = defaultdict(list)
            linked = _linked_surfaces(b)
            for poly in b.iter(f"{{{GML}}}Polygon"):
                plod, sem, obj = None, linked.get(poly.get(f"{{{GML}}}id")), bid
                for a in poly.iterancestors():
                    name = _local(a.tag)
                    m = _LOD.match(name)
                    if m and plod is None:
                        plod = int(m.group(1))
                    if name in _SURFACES and sem is None:
                        sem = name
                    if sem is None and a.get(f"{{{GML}}}id") in linked:
                        sem = linked[a.get(f"{{{GML}}}id")]
                    if name == "BuildingPart" and obj == bid:
                        obj = a.get(f"{{{GML}}}id") or bid
                    if a is b:
                        break
                if plod is None:
                    continue
                try:
                    by_lod[plod].append((_polygon(poly, dim), sem, obj))
                except (ValueError, AttributeError) as exc:
                    raise DataError(f"{path.name}: building {bid!r} has a polygon that cannot be read ({exc}); "
                                    "fix the file (gml:posList with 3D coordinates)") from None
            if not by_lod:
                result.skipped.append(Skipped(bid, "Building without LoD1/LoD2 polygon geometry"))
                continue
            use = want if want is not None else max(by_lod)
            if use not in by_lod:
                result.skipped.append(Skipped(bid, f"Building has no LoD{use} (has {sorted(by_lod)})"))
                continue
            tris, types, parts = [], [], defaultdict(list)
            for poly, sem, obj in by_lod[use]:
                m = triangulate_polygon(poly)
                t = m.vertices[m.triangles]
                tris.append(t)
                types += [sem] * len(t)
                parts[(obj, sem)].append(t)
            tri = np.concatenate(tris)
            fp = _footprint(tri, types)
            if fp is None or fp.is_empty:
                result.skipped.append(Skipped(bid, "Building footprint is empty"))
                continue
            attrs = _attributes(b)
            mh = attrs.pop("measuredHeight", None)
            part_attrs = {pt.get(f"{{{GML}}}id") or f"part_{i}": a
                          for i, pt in enumerate(b.iter(f"{{{BLDG}}}BuildingPart")) if (a := _attributes(pt))}
            if part_attrs:
                attrs["parts"] = part_attrs
            ground_z, roof_z = float(tri[:, :, 2].min()), float(tri[:, :, 2].max())
            roof = [i for i, s in enumerate(types) if s == "RoofSurface"]
            rows.append({"id": bid, "lod": str(use), "lods": ",".join(str(k) for k in sorted(by_lod)),
                         "ground_z": ground_z, "roof_z": roof_z,
                         "eaves_z": float(tri[roof][:, :, 2].min()) if roof else np.nan,
                         "height": roof_z - ground_z, "measured_height": np.nan if mh is None else mh,
                         "n_parts": len({o for (o, _s) in parts if o != bid}), "cim_level": lod_cim_level(use),
                         "attributes": json.dumps(attrs, ensure_ascii=False, sort_keys=True), "geometry": fp})
            for (obj, sem), ts in parts.items():
                surf_rows.append({"building_id": bid, "object_id": obj, "surface": sem or "unknown", "lod": str(use),
                                  "geometry": _mesh_geometry(np.concatenate(ts))})
        if not rows:
            raise DataError(f"{path.name}: no bldg:Building with LoD1/LoD2 geometry found; nothing to read")
        gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=the_crs)
        result.add_layer(LayerItem("buildings", gdf, "buildings", int(gdf["cim_level"].max()), "m"))
        result.add_layer(LayerItem("building_surfaces", gpd.GeoDataFrame(surf_rows, geometry="geometry", crs=the_crs),
                                   "building_surfaces", max(3, int(gdf["cim_level"].max())), "m"))
        return result


def _linked_surfaces(building) -> dict[str, str]:
    """gml:id -> semantic surface type for geometry that thematic surfaces reference by ``xlink:href="#id"``
    (exporters often keep the polygons in ``lod2Solid`` and point ``RoofSurface`` etc. at them)."""
    out: dict[str, str] = {}
    for el in building.iter():
        if isinstance(el.tag, str) and _local(el.tag) in _SURFACES:
            for ref in el.iter():
                href = ref.get(f"{{{XLINK}}}href") if isinstance(ref.tag, str) else None
                if href and href.startswith("#"):
                    out.setdefault(href[1:], _local(el.tag))
    return out


def _attributes(b) -> dict[str, Any]:
    """Simple attributes of a building: text-only children, generic attributes, measuredHeight in metres."""
    out: dict[str, Any] = {}
    for child in b:
        name = _local(child.tag)
        if name.endswith("Attribute") and child.get("name"):          # gen:stringAttribute etc.
            val = child.find("{*}value")
            text = val.text if val is not None else None
            out[child.get("name")] = _number(text) if name in ("intAttribute", "doubleAttribute") else text
        elif name == "measuredHeight":
            uom = (child.get("uom") or "m").strip()
            factor = _UOM_M.get(uom.lower())
            if factor is None:
                raise ValidationError(f"measuredHeight of {b.get(f'{{{GML}}}id')!r} has uom {uom!r}; use metres ('m')")
            out["measuredHeight"] = float(child.text) * factor
        elif len(child) == 0 and child.text and child.text.strip() and not name.startswith("lod"):
            out[name] = _number(child.text.strip()) if name in _NUMERIC else child.text.strip()
    return out


def _number(text: str | None) -> Any:
    if text is None:
        return None
    try:
        v = float(text)
        return int(v) if v.is_integer() and "." not in text else v
    except ValueError:
        return text
