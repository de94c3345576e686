"""IFC (IFC2X3, IFC4, IFC4X3) building models through ifcopenshell, placed in a projected CRS.

Placement: the model's IfcMapConversion + IfcProjectedCRS (IFC2X3: ePSet_MapConversion / ePSet_ProjectedCRS),
read with ``ifcopenshell.util.geolocation``; an IfcProjectedCRS without a usable name needs ``crs=``; a model
without a map conversion needs ``placement={"crs": ..., "eastings": ..., "northings": ..., "height": ...,
"rotation_deg": ...}``. IfcSite's latitude/longitude are not used (too coarse to place a building).

What a read gives: ``result.bim`` (a `cim.bim.BIMModel`) and its elements as the layer ``bim_<model>`` (kind
bim, CIM level 6): per element GUID, IFC class, name, storey, storey elevation, property sets (JSON) and the
triangle mesh from ``ifcopenshell.geom`` (world coordinates) placed in the CRS; rooms (IfcSpace) too unless
``spaces=False``. Per building: the lowest floor
elevation, the storey elevations, and the ground-floor doors with their sill elevations and heights.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from cim.errors import CRSError, DataError, ValidationError, require
from ingest._crs import parse_crs
from ingest.base import LayerItem, Reader, ReadResult, Skipped, register

__all__ = ["IFCReader"]

_GROUND_NAMES = re.compile(r"(ground|begane\s*grond|\bbg\b|erdgeschoss|\beg\b|rez|\brdc\b|首层|一层|地面)", re.I)
_SKIP_CLASSES = ("IfcOpeningElement", "IfcVirtualElement")


def _open(path: Path):
    ifcopenshell = require("ifcopenshell", "io")
    head = path.read_bytes()[:64]
    if not head.lstrip().startswith(b"ISO-10303-21"):
        raise DataError(f"{path.name}: not an IFC STEP file (no ISO-10303-21 header); export it again as .ifc")
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 2048))
        tail = fh.read()
    if b"END-ISO-10303-21" not in tail:
        raise DataError(f"{path.name}: the STEP file does not end with END-ISO-10303-21; it is truncated — export "
                        "or download it again")
    try:
        model = ifcopenshell.open(str(path))
    except Exception as exc:  # ifcopenshell raises plain Exceptions/RuntimeErrors for corrupt files
        raise DataError(f"{path.name}: ifcopenshell cannot parse it ({type(exc).__name__}: {exc}); the file is "
                        "truncated or corrupt — export it again") from None
    if not model.by_type("IfcProject"):
        raise DataError(f"{path.name}: no IfcProject; the file is truncated or not a building model")
    return model


def _length_unit_m(model) -> float:
    import ifcopenshell.util.unit as unit

    return float(unit.calculate_unit_scale(model))


def _named_unit_m(u) -> float | None:
    if u is None:
        return None
    prefixes = {"MILLI": 1e-3, "CENTI": 1e-2, "DECI": 1e-1, "KILO": 1e3, None: 1.0}
    if u.is_a("IfcSIUnit"):
        return prefixes.get(u.Prefix, 1.0)
    if u.is_a("IfcConversionBasedUnit"):
        return float(u.ConversionFactor.ValueComponent.wrappedValue) * (_named_unit_m(u.ConversionFactor.UnitComponent) or 1)
    return None


def _georeference(model, path: Path, crs: Any, placement: dict | None):
    """(Georeference in metres, map CRS) from the file, or from the caller's placement."""
    import ifcopenshell.util.geolocation as geo

    from cim.bim import Georeference

    unit_m = _length_unit_m(model)
    params = geo.get_helmert_transformation_parameters(model)
    if params is None or (model.schema == "IFC2X3" and not _ifc2x3_has_conversion(model)):
        if placement is None:
            raise CRSError(
                f"{path.name}: the model has no IfcMapConversion/IfcProjectedCRS, so it cannot be placed. Fix one "
                "of: (1) georeference it in the authoring tool or with IfcOpenShell/Bonsai or ifcgref (add "
                "IfcMapConversion + IfcProjectedCRS), or (2) pass placement={'crs': 'EPSG:28992', 'eastings': …, "
                "'northings': …, 'height': …, 'rotation_deg': …} giving where its local origin lies")
        return Georeference.from_mapping(placement, crs), "caller"
    if placement is not None:
        raise ValidationError(f"{path.name}: the model has its own IfcMapConversion; drop placement= (or remove the "
                              "map conversion from the model) — two placements would conflict")
    info = geo.get_crs(model) or {}
    name = (info.get("Name") or "").strip()
    map_unit_m = unit_m
    if model.schema != "IFC2X3":
        op = model.by_type("IfcCoordinateOperation")[0]
        target = op.TargetCRS
        if target is not None and target.is_a("IfcProjectedCRS") and target.MapUnit is not None:
            map_unit_m = _named_unit_m(target.MapUnit) or unit_m
    if name:
        file_crs = parse_crs(name, path, "IfcProjectedCRS.Name")
        if crs is not None and not parse_crs(crs, path, "crs option").equals(file_crs, ignore_axis_order=True):
            raise CRSError(f"{path.name}: IfcProjectedCRS.Name is {name!r} but crs={crs!r} was given; drop crs=")
    elif crs is not None:
        file_crs = parse_crs(crs, path, "crs option")
    else:
        raise CRSError(f"{path.name}: IfcProjectedCRS.Name is empty, so the map CRS of its IfcMapConversion is "
                       "unknown; pass crs='EPSG:…' naming it (or fill IfcProjectedCRS.Name in the model)")
    if not file_crs.is_projected:
        raise CRSError(f"{path.name}: CRS {file_crs.to_string()} is not projected; IfcMapConversion needs a projected CRS")
    # local (project units) -> map units: scale; map units -> metres: map_unit_m; local metres = project * unit_m
    scale_m = float(params.scale) * map_unit_m / unit_m
    rot = math.degrees(math.atan2(float(params.xao), float(params.xaa)))
    if not (float(params.factor_x) == float(params.factor_y) == float(params.factor_z) == 1.0):
        raise ValidationError(f"{path.name}: IfcMapConversionScaled with FactorX/Y/Z "
                              f"{params.factor_x}/{params.factor_y}/{params.factor_z} is not supported (only one "
                              "scale for all axes); pass placement= with the local origin's map coordinates instead "
                              "after removing the map conversion")
    g = Georeference(crs=file_crs.to_wkt() if file_crs.to_epsg() is None else f"EPSG:{file_crs.to_epsg()}",
                     eastings=float(params.e) * map_unit_m, northings=float(params.n) * map_unit_m,
                     height=float(params.h) * map_unit_m, rotation_deg=rot, scale=scale_m,
                     source="ePSet_MapConversion" if model.schema == "IFC2X3" else "IfcMapConversion")
    return g, "file"


def _ifc2x3_has_conversion(model) -> bool:
    import ifcopenshell.util.element as element

    project = model.by_type("IfcProject")[0]
    return bool(element.get_pset(project, "ePSet_MapConversion"))


def _wcs_inverse_m(model, unit_m: float) -> np.ndarray | None:
    import ifcopenshell.util.geolocation as geo

    wcs = geo.get_wcs(model)
    if wcs is None or np.allclose(wcs, np.eye(4)):
        return None
    w = np.array(wcs, float)
    w[:3, 3] *= unit_m
    return np.linalg.inv(w)


def _meshes(model, path: Path, threads: int, spaces: bool):
    """Yield (product, vertices (n,3) metres world, faces (m,3))."""
    import ifcopenshell.geom

    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    products = [p for p in model.by_type("IfcProduct")
                if (not p.is_a("IfcSpatialStructureElement") or (spaces and p.is_a("IfcSpace")))
                and not any(p.is_a(c) for c in _SKIP_CLASSES)]
    if not products:
        return
    it = ifcopenshell.geom.iterator(settings, model, max(1, threads), include=products)
    if not it.initialize():
        return
    while True:
        shape = it.get()
        verts = np.asarray(shape.geometry.verts, float).reshape(-1, 3)
        faces = np.asarray(shape.geometry.faces, np.int64).reshape(-1, 3)
        yield model.by_id(shape.id), verts, faces
        if not it.next():
            break


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items() if k != "id"}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return str(v)


@register
class IFCReader(Reader):
    name = "ifc"
    extensions = (".ifc",)
    options = frozenset({"crs", "placement", "threads", "spaces"})
    description = "IFC2X3/IFC4 building models (ifcopenshell)"

    def read(self, path: Path, *, crs: Any = None, placement: dict | None = None,
             threads: int | None = None, spaces: bool = True) -> ReadResult:
        import geopandas as gpd
        import ifcopenshell.util.element as element
        import ifcopenshell.util.placement as uplacement

        from cim.bim import BIMModel, BuildingFloodInfo, Entrance, Storey
        from cim.mesh import TriangleMesh

        path = Path(path)
        model = _open(path)
        georef, _ = _georeference(model, path, crs, placement)
        unit_m = _length_unit_m(model)
        inv_wcs = _wcs_inverse_m(model, unit_m)

        def to_map(v: np.ndarray) -> np.ndarray:
            if inv_wcs is not None:
                v = (np.column_stack([v, np.ones(len(v))]) @ inv_wcs.T)[:, :3]
            return georef.apply(v)

        # storeys: elevation from the storey's placement (world), in map heights
        storeys: dict[int, Storey] = {}
        for s in model.by_type("IfcBuildingStorey"):
            if s.ObjectPlacement is not None:
                z_local = float(uplacement.get_local_placement(s.ObjectPlacement)[2, 3]) * unit_m
            else:
                z_local = float(s.Elevation or 0.0) * unit_m
            z = float(to_map(np.array([[0.0, 0.0, z_local]]))[0, 2])
            b = element.get_aggregate(s)
            storeys[s.id()] = Storey(s.GlobalId, s.Name or "", z, b.GlobalId if b is not None else None)

        rows, skipped = [], []
        threads = threads or min(2, os.cpu_count() or 1)
        meshes: dict[int, np.ndarray] = {}
        for product, verts, faces in _meshes(model, path, threads, spaces):
            if not len(faces):
                skipped.append(Skipped(product.GlobalId, f"{product.is_a()} has no surface geometry"))
                continue
            v = to_map(verts)
            container = element.get_container(product)
            if container is None and product.is_a("IfcSpace"):        # rooms are aggregated into their storey
                container = element.get_aggregate(product)
            storey = storeys.get(container.id()) if container is not None and container.is_a("IfcBuildingStorey") else None
            props = _jsonable(element.get_psets(product))
            meshes[product.id()] = v[faces]
            rows.append({"guid": product.GlobalId, "ifc_class": product.is_a(), "name": product.Name or "",
                         "storey": storey.name if storey else None,
                         "storey_elevation": storey.elevation if storey else np.nan,
                         "properties": json.dumps(props, ensure_ascii=False, sort_keys=True),
                         "geometry": TriangleMesh(v, faces).to_multipolygon()})
        placed = {r["guid"] for r in rows} | {s.item for s in skipped}
        for product in model.by_type("IfcElement"):
            if product.GlobalId not in placed and not any(product.is_a(c) for c in _SKIP_CLASSES):
                skipped.append(Skipped(product.GlobalId, f"{product.is_a()} {product.Name or ''!s} has no geometric "
                                                         "representation".replace("  ", " ")))
        if not rows:
            raise DataError(f"{path.name}: no element with geometry; nothing to place (is it an empty model?)")
        the_crs = parse_crs(georef.crs, path, "georeference")
        elements = gpd.GeoDataFrame(rows, geometry="geometry", crs=the_crs)

        buildings = []
        for b in model.by_type("IfcBuilding"):
            bst = sorted((st for st in storeys.values() if st.building == b.GlobalId), key=lambda st: st.elevation)
            if not bst:
                continue
            ground = next((st for st in bst if _GROUND_NAMES.search(st.name)), None)
            if ground is None:
                above = [st for st in bst if st.elevation >= bst[0].elevation and st.elevation - georef.height >= -0.5]
                ground = above[0] if above else bst[0]
            entrances = []
            for d in model.by_type("IfcDoor"):
                cont = element.get_container(d)
                if cont is None or cont.GlobalId != ground.guid or d.id() not in meshes:
                    continue
                external = (element.get_pset(d, "Pset_DoorCommon") or {}).get("IsExternal")
                if external is False:
                    continue                                    # an internal door is no entrance
                tri = meshes[d.id()]
                sill = float(tri[:, :, 2].min())
                cx, cy = tri[:, :, :2].reshape(-1, 2).mean(axis=0)
                entrances.append(Entrance(d.GlobalId, d.Name or "", ground.name, sill, sill - ground.elevation,
                                          float(cx), float(cy), None if external is None else bool(external)))
            buildings.append(BuildingFloodInfo(b.GlobalId, b.Name or "", bst[0].elevation,
                                               tuple(st.elevation for st in bst), ground.name, tuple(entrances)))
        project = model.by_type("IfcProject")[0]
        name = _slug(project.Name or path.stem)
        bim = BIMModel(name=name, schema=model.schema, elements=elements, storeys=tuple(storeys.values()),
                       georeference=georef, buildings=tuple(buildings), source=path.name)
        result = ReadResult(source=path, format=self.name, crs=the_crs, bim=bim, skipped=skipped)
        result.add_layer(LayerItem(f"bim_{name}", elements, "bim", 6, "m", path.name, bim.attrs()))
        return result


def _slug(text: str) -> str:
    s = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    return s or "model"
