"""CityJSON 1.0/1.1/2.0 city models (and CityJSON Text Sequences, .city.jsonl): buildings, their 3D surfaces, other city objects, and a DEM from the ground.

What a read gives (layer names):

- ``buildings`` (kind buildings): one row per Building (its BuildingParts and other children folded in) with
  ``id, lod, lods, ground_z, roof_z, eaves_z, height, n_parts, cim_level, attributes`` (JSON text; the parts'
  own attributes under ``"parts"``, a CityJSON 2.0 ``address`` under ``"address"``) and the 2D
  footprint (from GroundSurface semantics, else the union of the surfaces seen from above).
- ``building_surfaces`` (kind building_surfaces): triangle meshes (MultiPolygon Z) per building, object
  (building or part), semantic surface type and LoD.
- one layer per other object type (``roads``, ``water``, ``land_use``, ``plant_cover``, ``generic``, ``relief``,
  ``bridges``, ...): ``id, type, lod, z_min, z_max, attributes`` and the 3D surfaces as a MultiPolygon Z mesh.
- ``dem`` (kind terrain, unless ``dem=False``): the ground rasterised from roads, land use, water, plant cover and
  TIN relief at ``dem_resolution`` metres, ground under buildings interpolated (`ingest.dem_from_city`).

Options: ``crs`` (when the file has no ``metadata.referenceSystem``), ``lod`` (a building LoD such as "2.2"
instead of the highest per building; other objects always use their highest), ``dem``, ``dem_resolution``, ``dem_types``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from cim.errors import DataError, ValidationError
from ingest._crs import require_projected, resolve_crs
from ingest.base import CORRUPT, LayerItem, Reader, ReadResult, Skipped, register

__all__ = ["OBJECT_LAYERS", "CityJSONReader", "lod_cim_level"]

#: CityJSON object type -> (layer name, layer kind) for everything that is not a building.
OBJECT_LAYERS: dict[str, tuple[str, str]] = {
    "Road": ("roads", "roads"),
    "Railway": ("railways", "roads"),
    "TransportSquare": ("transport_squares", "roads"),
    "Waterway": ("waterways", "water"),
    "WaterBody": ("water", "water"),
    "LandUse": ("land_use", "land_use"),
    "PlantCover": ("plant_cover", "vegetation"),
    "SolitaryVegetationObject": ("vegetation", "vegetation"),
    "GenericCityObject": ("generic", "generic"),
    "TINRelief": ("relief", "terrain"),
    "CityFurniture": ("city_furniture", "city_furniture"),
    "OtherConstruction": ("other_constructions", "other"),
}
_PREFIX_LAYERS = {"Bridge": ("bridges", "bridges"), "Tunnel": ("tunnels", "other")}
_BUILDING_CHILDREN = ("BuildingPart", "BuildingInstallation", "BuildingConstructiveElement", "BuildingRoom",
                      "BuildingStorey", "BuildingUnit", "BuildingFurniture")
#: object types whose surfaces make the ground of the derived DEM
DEM_TYPES = ("Road", "Railway", "TransportSquare", "LandUse", "PlantCover", "WaterBody", "TINRelief")


def lod_cim_level(lod: str | float | None) -> int:
    """CIM level for a building LoD: LoD0-1 -> 2 (framework), LoD2 -> 3 (standard), LoD3+ -> 4 (fine)."""
    if lod is None:
        return 2
    value = float(lod)
    return 2 if value < 2 else 3 if value < 3 else 4


# ---------------------------------------------------------------------------------------------- geometry


def _flat_values(values: Any, depth: int, n: list[int]) -> list:
    """Flatten semantics ``values`` nested ``depth`` levels (None anywhere means no semantics below)."""
    if depth == 0:
        return [values] if not isinstance(values, list) else values
    out: list = []
    for i, count in enumerate(n):
        sub = values[i] if isinstance(values, list) and i < len(values) else None
        out.extend([None] * count if sub is None else sub)
    return out


def _surfaces(geom: dict) -> tuple[list, list] | None:
    """(surfaces, semantic indices) of a geometry; surfaces are lists of rings of vertex indices."""
    t, b = geom.get("type"), geom.get("boundaries")
    sem = geom.get("semantics") or {}
    vals = sem.get("values")
    if t in ("MultiSurface", "CompositeSurface"):
        surfs = b
        svals = vals if isinstance(vals, list) else [None] * len(b)
    elif t == "Solid":
        surfs = [s for shell in b for s in shell]
        svals = _flat_values(vals, 1, [len(sh) for sh in b]) if vals is not None else [None] * len(surfs)
    elif t in ("MultiSolid", "CompositeSolid"):
        shells = [sh for solid in b for sh in solid]
        surfs = [s for sh in shells for s in sh]
        if vals is None:
            svals = [None] * len(surfs)
        else:
            per_solid = [_flat_values(v, 1, [len(sh) for sh in solid]) if v is not None
                         else [None] * sum(len(sh) for sh in solid) for v, solid in zip(vals, b, strict=False)]
            svals = [x for p in per_solid for x in p]
    else:
        return None
    if len(svals) != len(surfs):
        svals = [None] * len(surfs)
    return surfs, svals


def _triangulate(surfs: list, verts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangles ``(n, 3, 3)`` and, per triangle, the index of its surface."""
    import shapely

    from cim.mesh import triangulate_polygon

    tri_idx, tri_surf, others = [], [], []
    for i, s in enumerate(surfs):
        if len(s) == 1 and len(s[0]) == 3:
            tri_idx.append(s[0])
            tri_surf.append(i)
        elif s and len(s[0]) >= 3:
            others.append(i)
    parts = [verts[np.asarray(tri_idx, dtype=np.int64)].reshape(-1, 3, 3)] if tri_idx else []
    owners = [np.asarray(tri_surf, dtype=np.int64)] if tri_surf else []
    for i in others:
        rings = [verts[np.asarray(r, dtype=np.int64)] for r in surfs[i] if len(r) >= 3]
        poly = shapely.Polygon(rings[0], rings[1:])
        m = triangulate_polygon(poly)
        if m.n_triangles:
            parts.append(m.vertices[m.triangles])
            owners.append(np.full(m.n_triangles, i, dtype=np.int64))
    if not parts:
        return np.empty((0, 3, 3)), np.empty(0, np.int64)
    return np.concatenate(parts), np.concatenate(owners)


class _Model:
    """The parsed file: vertices in real coordinates, objects, templates."""

    def __init__(self, path: Path, doc: dict):
        self.path = path
        self.doc = doc
        try:
            raw = np.asarray(doc.get("vertices", []), dtype=np.float64).reshape(-1, 3)
        except (ValueError, TypeError):
            raise DataError(f"{path.name}: 'vertices' must be a list of [x, y, z] numbers; the file is corrupt "
                            "(re-export it or validate it with cjval)") from None
        tf = doc.get("transform")
        if tf is not None:
            try:
                raw = raw * np.asarray(tf["scale"], float) + np.asarray(tf["translate"], float)
            except (KeyError, ValueError, TypeError):
                raise DataError(f"{path.name}: 'transform' needs 'scale' and 'translate' of 3 numbers each") from None
        self.vertices = raw
        tpl = doc.get("geometry-templates") or {}
        self.templates = tpl.get("templates", [])
        self.template_vertices = np.asarray(tpl.get("vertices-templates", []), float).reshape(-1, 3)
        for obj in (doc.get("CityObjects") or {}).values():        # an instance's LoD is its template's
            for g in obj.get("geometry") or []:
                if g.get("type") == "GeometryInstance" and "lod" not in g:
                    try:
                        g["lod"] = self.templates[g["template"]].get("lod")
                    except (IndexError, KeyError, TypeError):
                        raise DataError(f"{path.name}: a GeometryInstance refers to template {g.get('template')!r} "
                                        f"but 'geometry-templates' has {len(self.templates)}") from None

    def triangles(self, geom: dict) -> tuple[np.ndarray, list[str | None]]:
        """Triangles of one geometry and the semantic surface type of each (None when not given)."""
        verts = self.vertices
        if geom.get("type") == "GeometryInstance":
            tpl = self.templates[geom["template"]]
            m = np.asarray(geom.get("transformationMatrix", np.eye(4).ravel()), float).reshape(4, 4)
            ref = self.vertices[geom["boundaries"][0]]
            h = np.column_stack([self.template_vertices, np.ones(len(self.template_vertices))]) @ m.T
            verts = h[:, :3] + ref
            geom = {**tpl, "lod": geom.get("lod", tpl.get("lod"))}
        got = _surfaces(geom)
        if got is None:
            return np.empty((0, 3, 3)), []
        surfs, svals = got
        try:
            tris, owner = _triangulate(surfs, verts)
        except IndexError:
            raise DataError(f"{self.path.name}: a surface refers to a vertex index beyond the {len(verts)} "
                            f"vertices; {CORRUPT}") from None
        sem_surfaces = (geom.get("semantics") or {}).get("surfaces", [])
        names = []
        for o in owner:
            v = svals[o]
            names.append(sem_surfaces[v].get("type") if isinstance(v, int) and v < len(sem_surfaces) else None)
        return tris, names


def _lod_key(lod: Any) -> float:
    try:
        return float(lod)
    except (TypeError, ValueError):
        return -1.0


def _pick_geometries(obj: dict, lod: str | None) -> list[dict]:
    geoms = [g for g in obj.get("geometry") or [] if g.get("type") not in ("MultiPoint", "MultiLineString")]
    if not geoms:
        return []
    if lod is not None:
        return [g for g in geoms if str(g.get("lod")) == str(lod) or _lod_key(g.get("lod")) == _lod_key(lod)]
    best = max(_lod_key(g.get("lod")) for g in geoms)
    return [g for g in geoms if _lod_key(g.get("lod")) == best]


def _mesh_geometry(tris: np.ndarray):
    from cim.mesh import TriangleMesh

    return TriangleMesh(tris.reshape(-1, 3), np.arange(len(tris) * 3).reshape(-1, 3)).to_multipolygon()


def _footprint(tris: np.ndarray, types: list[str | None]):
    import shapely

    ground = np.array([t == "GroundSurface" for t in types], bool)
    use = tris[ground] if ground.any() else tris
    flat = use[:, :, :2]
    area = 0.5 * np.abs((flat[:, 1, 0] - flat[:, 0, 0]) * (flat[:, 2, 1] - flat[:, 0, 1])
                        - (flat[:, 2, 0] - flat[:, 0, 0]) * (flat[:, 1, 1] - flat[:, 0, 1]))
    flat = flat[area > 1e-6]
    if not len(flat):
        return None
    rings = np.concatenate([flat, flat[:, :1]], axis=1)
    polys = shapely.polygons(rings)
    # snap to a millimetre grid so that shared triangle edges dissolve
    return shapely.make_valid(shapely.union_all(polys, grid_size=0.001))


def _attrs_json(obj: dict) -> str:
    return json.dumps(obj.get("attributes") or {}, ensure_ascii=False, sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------- reader


@register
class CityJSONReader(Reader):
    name = "cityjson"
    extensions = (".city.json", ".cityjson", ".json", ".city.jsonl")
    options = frozenset({"crs", "lod", "dem", "dem_resolution", "dem_types"})
    description = "CityJSON 1.0/1.1/2.0 city models and CityJSON Text Sequences (.city.jsonl)"

    def guess_can_open(self, path: Path) -> bool:
        path = Path(path)
        name = path.name.lower()
        if name.endswith((".city.json", ".cityjson", ".city.jsonl")):
            return True
        if name.endswith(".json"):
            try:
                with open(path, "rb") as fh:
                    head = fh.read(4096)
            except OSError:
                return False
            return b'"CityJSON"' in head or b'"CityObjects"' in head
        return False

    def read(self, path: Path, *, crs: Any = None, lod: str | float | None = None, dem: bool = True,
             dem_resolution: float = 1.0, dem_types: tuple[str, ...] = DEM_TYPES) -> ReadResult:
        path = Path(path)
        doc = _load(path)
        meta = doc.get("metadata") or {}
        ref = meta.get("referenceSystem") or meta.get("crs")
        the_crs = resolve_crs(ref, crs, path, "metadata.referenceSystem")
        require_projected(the_crs, path, "CityJSON")
        unknown = [t for t in dem_types if t not in OBJECT_LAYERS]
        if isinstance(dem_types, str) or unknown:
            raise ValidationError(f"dem_types must be a list of CityJSON object types from "
                                  f"{', '.join(OBJECT_LAYERS)}; got {dem_types!r}")
        result = ReadResult(source=path, format=self.name, crs=the_crs)
        model = _Model(path, doc)
        objects: dict[str, dict] = doc["CityObjects"]
        lod = None if lod is None else str(lod)

        def root_of(oid: str) -> str:
            seen = set()
            while True:
                parents = objects.get(oid, {}).get("parents") or []
                if not parents or oid in seen:
                    return oid
                seen.add(oid)
                oid = parents[0]

        buildings: dict[str, dict] = defaultdict(lambda: {"tris": [], "types": [], "objs": [], "lods": set()})
        surfaces_rows: list[dict] = []
        others: dict[str, list[dict]] = defaultdict(list)
        ground_tris: list[np.ndarray] = []
        for oid, obj in objects.items():
            otype = obj.get("type", "")
            root = root_of(oid)
            rtype = objects.get(root, {}).get("type", "")
            is_building = rtype == "Building" or otype == "Building" or otype in _BUILDING_CHILDREN
            all_lods = {str(g.get("lod")) for g in obj.get("geometry") or []}
            geoms = _pick_geometries(obj, lod if is_building else None)   # lod= chooses among building LoDs
            if not geoms:
                if is_building and lod is not None and obj.get("geometry"):
                    result.skipped.append(Skipped(oid, f"{otype} has no LoD {lod} (has {sorted(all_lods)})"))
                elif otype not in ("Building", "CityObjectGroup") and not obj.get("children"):
                    result.skipped.append(Skipped(oid, f"{otype} has no surface geometry"))
                if is_building and rtype == "Building":
                    buildings[root]["lods"] |= all_lods
                continue
            tri_list, type_list = [], []
            for g in geoms:
                t, names = model.triangles(g)
                tri_list.append(t)
                type_list += names
            tris = np.concatenate(tri_list) if tri_list else np.empty((0, 3, 3))
            glod = str(geoms[0].get("lod"))
            if not len(tris):
                result.skipped.append(Skipped(oid, f"{otype} geometry has no surfaces"))
                continue
            if is_building and rtype == "Building":
                b = buildings[root]
                b["tris"].append(tris)
                b["types"] += type_list
                b["objs"].append(oid)
                if oid != root and obj.get("attributes"):
                    b.setdefault("part_attrs", {})[oid] = obj["attributes"]
                b["lods"] |= all_lods
                b.setdefault("lod", glod)
                b["lod"] = max(b["lod"], glod, key=_lod_key)
                by_type: dict[str | None, list[int]] = defaultdict(list)
                for i, n in enumerate(type_list):
                    by_type[n].append(i)
                for n, idx in by_type.items():
                    surfaces_rows.append({"building_id": root, "object_id": oid, "surface": n or "unknown",
                                          "lod": glod, "geometry": _mesh_geometry(tris[idx])})
                continue
            layer = OBJECT_LAYERS.get(otype) or next(
                (v for k, v in _PREFIX_LAYERS.items() if otype.startswith(k)), ("generic", "generic"))
            others[layer[0]].append({"id": oid, "type": otype, "lod": glod, "z_min": float(tris[:, :, 2].min()),
                                     "z_max": float(tris[:, :, 2].max()), "attributes": _attrs_json(obj),
                                     "geometry": _mesh_geometry(tris), "_kind": layer[1]})
            if otype in dem_types:
                ground_tris.append(tris)

        import geopandas as gpd

        rows = []
        for bid, b in buildings.items():
            if not b["tris"]:
                result.skipped.append(Skipped(bid, "Building without geometry in it or its parts"))
                continue
            tris = np.concatenate(b["tris"])
            fp = _footprint(tris, b["types"])
            if fp is None or fp.is_empty:
                result.skipped.append(Skipped(bid, "Building footprint is empty (only vertical surfaces)"))
                continue
            ground_z = float(tris[:, :, 2].min())
            roof_z = float(tris[:, :, 2].max())
            roof = [i for i, n in enumerate(b["types"]) if n == "RoofSurface"]
            eaves_z = float(tris[roof][:, :, 2].min()) if roof else np.nan
            rows.append({"id": bid, "lod": b["lod"], "lods": ",".join(sorted(b["lods"], key=_lod_key)),
                         "ground_z": ground_z, "roof_z": roof_z, "eaves_z": eaves_z, "height": roof_z - ground_z,
                         "n_parts": len([o for o in b["objs"] if o != bid]),
                         "cim_level": lod_cim_level(b["lod"]),
                         "attributes": _attrs_json({"attributes": {
                             **(objects[bid].get("attributes") or {}),
                             **({"address": objects[bid]["address"]} if objects[bid].get("address") else {}),
                             **({"parts": b["part_attrs"]} if b.get("part_attrs") else {})}}),
                         "geometry": fp})
        if rows:
            gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=the_crs)
            result.add_layer(LayerItem("buildings", gdf, "buildings", int(gdf["cim_level"].max()), "m"))
            surf = gpd.GeoDataFrame(surfaces_rows, geometry="geometry", crs=the_crs)
            surf = surf[surf["building_id"].isin(gdf["id"])].reset_index(drop=True)    # of the buildings kept
            result.add_layer(LayerItem("building_surfaces", surf, "building_surfaces",
                                       max(3, int(gdf["cim_level"].max())), "m"))
        for name, lrows in others.items():
            kind = lrows[0]["_kind"]
            gdf = gpd.GeoDataFrame([{k: v for k, v in r.items() if k != "_kind"} for r in lrows],
                                   geometry="geometry", crs=the_crs)
            result.add_layer(LayerItem(name, gdf, kind, 1 if kind == "terrain" else 2, "m"))
        if dem:
            if not ground_tris:
                result.skipped.append(Skipped("dem", f"no ground surfaces ({', '.join(dem_types)}) to derive a "
                                                     "DEM from"))
            else:
                from ingest.dem_from_city import dem_from_triangles

                footprints = result.layers["buildings"].data.geometry if "buildings" in result.layers else None
                grid = dem_from_triangles(np.concatenate(ground_tris), resolution=float(dem_resolution),
                                          crs=the_crs, fill_under=footprints)
                result.add_layer(LayerItem("dem", grid, "terrain", 1, "m",
                                           attrs={"derived_from": f"CityJSON ground surfaces ({', '.join(dem_types)})",
                                                  "resolution": float(dem_resolution)}))
        return result


def _shift(boundaries: Any, offset: int) -> Any:
    """Vertex indices in nested boundary lists, moved by ``offset``."""
    if isinstance(boundaries, list):
        return [_shift(b, offset) for b in boundaries]
    return boundaries + offset if isinstance(boundaries, int) else boundaries


def _load_seq(path: Path) -> dict:
    """CityJSON Text Sequences (.city.jsonl): the header line, then one CityJSONFeature per line, merged into one
    document (each feature's vertex indices moved past the vertices before it)."""
    objects: dict[str, Any] = {}
    vertices: list = []
    doc: dict | None = None
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path.name}: line {n} is not valid JSON ({exc.msg}); the sequence is truncated or "
                                "corrupt") from None
            if doc is None:
                if not isinstance(item, dict) or item.get("type") != "CityJSON":
                    raise DataError(f"{path.name}: the first line must be the CityJSON header (type \"CityJSON\")")
                doc = item
                continue
            if not isinstance(item, dict) or item.get("type") != "CityJSONFeature":
                raise DataError(f"{path.name}: line {n} is not a CityJSONFeature (field 'type')")
            offset = len(vertices)
            vertices.extend(item.get("vertices") or [])
            for oid, obj in (item.get("CityObjects") or {}).items():
                for g in obj.get("geometry") or []:
                    g["boundaries"] = _shift(g.get("boundaries"), offset)
                objects[oid] = obj
    if doc is None:
        raise DataError(f"{path.name}: empty CityJSON sequence")
    doc["CityObjects"] = {**(doc.get("CityObjects") or {}), **objects}
    doc["vertices"] = list(doc.get("vertices") or []) + vertices
    return doc


def _load(path: Path) -> dict:
    try:
        if path.name.lower().endswith(".jsonl"):
            doc = _load_seq(path)
        else:
            with open(path, "rb") as fh:
                doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path.name}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
                        f"{CORRUPT}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path.name}: not UTF-8 JSON; the file is corrupt or not CityJSON") from None
    if not isinstance(doc, dict) or doc.get("type") != "CityJSON":
        raise DataError(f"{path.name}: field 'type' must be \"CityJSON\"; this is not a CityJSON file (use format= "
                        "to pick another reader)")
    version = str(doc.get("version", ""))
    if version not in ("1.0", "1.1", "2.0"):
        raise DataError(f"{path.name}: CityJSON version {version!r} is not supported (field 'version'); "
                        "upgrade it to 2.0 with `cjio file.json upgrade save out.json`")
    if not isinstance(doc.get("CityObjects"), dict) or "vertices" not in doc:
        raise DataError(f"{path.name}: fields 'CityObjects' (an object) and 'vertices' are required")
    return doc
