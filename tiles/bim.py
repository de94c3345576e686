"""BIM elements (and any triangle-mesh features) to 3D Tiles: one feature per element with its metadata.

The input is the ``elements`` GeoDataFrame of a `cim.bim.BIMModel` (or a layer of kind ``bim``): ``guid``,
``ifc_class``, ``name``, ``storey``, ``storey_elevation``, ``properties`` and a MultiPolygon Z triangle mesh per
element, already placed in a projected CRS by the model's georeference.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import shapely

from cim.errors import DataError, ValidationError
from tiles import _geo
from tiles._extrude import FeatureMeshes, from_triangle_soup
from tiles._tiler import Tiler
from tiles.buildings import _safe_name

__all__ = ["bim_to_3dtiles", "meshes_to_3dtiles"]

log = logging.getLogger(__name__)


def _triangles(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All triangles ``(m, 3, 3)`` of MultiPolygon Z meshes and the row of each (polygons that are not triangles
    are ear-clipped in their plane)."""
    from cim.mesh import TriangleMesh

    parts, row = shapely.get_parts(geoms, return_index=True)
    n_coords = shapely.get_num_coordinates(parts)
    simple = (n_coords == 4) & (shapely.get_num_interior_rings(parts) == 0)
    tris, rows = [], []
    if simple.any():
        c = shapely.get_coordinates(shapely.get_exterior_ring(parts[simple]), include_z=True).reshape(-1, 4, 3)
        tris.append(c[:, :3])
        rows.append(row[simple])
    for p, r in zip(parts[~simple], row[~simple], strict=True):
        m = TriangleMesh.from_polygons([p])
        if m.n_triangles:
            tris.append(m.vertices[m.triangles])
            rows.append(np.full(m.n_triangles, r))
    if not tris:
        return np.empty((0, 3, 3)), np.empty(0, np.int64)
    t = np.concatenate(tris)
    t[~np.isfinite(t)] = 0.0
    return t, np.concatenate(rows)


def meshes_to_3dtiles(gdf, out_dir, *, properties: pd.DataFrame, class_name: str,
                      format: Literal["glb", "b3dm"] = "glb", max_features: int = 2000,
                      color=(0.8, 0.8, 0.85, 1.0), what: str = "the layer") -> Path:
    """Triangle-mesh features (MultiPolygon Z) to a tileset, one feature per row with ``properties``."""
    crs = _geo.check_crs(gdf.crs, what)
    geoms = gdf.geometry.to_numpy()
    if len(geoms) == 0:
        raise DataError(f"{what} is empty: nothing to tile")
    if not shapely.has_z(geoms).all():
        raise DataError(f"{what} needs 3D meshes (MultiPolygon Z of triangles); "
                        f"{int((~shapely.has_z(geoms)).sum())} rows are 2D: use buildings_to_3dtiles for footprints")
    tri, row = _triangles(geoms)
    anchors = shapely.get_coordinates(shapely.centroid(geoms))
    rank = np.empty(len(geoms), np.int64)

    def make_mesh(order: np.ndarray) -> FeatureMeshes:
        rank[order] = np.arange(len(order))
        return from_triangle_soup(tri, rank[row], len(order))

    tiler = Tiler(crs, Path(out_dir), fmt=format, class_name=class_name, color=color)
    return tiler.write(anchors, properties.reset_index(drop=True), make_mesh, max_features=max_features)


def bim_to_3dtiles(elements, out_dir, *, properties: list[str] | None = None,
                   format: Literal["glb", "b3dm"] = "glb", max_features: int = 2000) -> Path:
    """BIM elements to 3D Tiles: one feature per element with ``guid``, ``ifc_class``, ``name``, ``storey``,
    ``storey_elevation``, ``cim_level`` (6, component) and the chosen ``properties`` (keys of the JSON
    ``properties`` column, flattened as ``Pset.Name``, or other columns).

    ``elements`` is a `cim.bim.BIMModel` or its ``elements`` GeoDataFrame (MultiPolygon Z meshes, placed)."""
    import json

    gdf = getattr(elements, "elements", elements)
    missing = [c for c in ("guid", "ifc_class") if c not in gdf.columns]
    if missing:
        raise ValidationError(f"BIM elements need columns {missing}: pass a cim.bim.BIMModel (ingest.read of an "
                              "IFC file) or its elements GeoDataFrame")
    n = len(gdf)
    props = pd.DataFrame({
        "guid": gdf["guid"].astype(str).to_numpy(),
        "ifc_class": gdf["ifc_class"].astype(str).to_numpy(),
        "name": gdf["name"].fillna("").astype(str).to_numpy() if "name" in gdf else np.full(n, ""),
        "storey": gdf["storey"].fillna("").astype(str).to_numpy() if "storey" in gdf else np.full(n, ""),
        "storey_elevation": (pd.to_numeric(gdf["storey_elevation"], errors="coerce").to_numpy(np.float64)
                             if "storey_elevation" in gdf else np.full(n, np.nan)),
        "cim_level": np.full(n, 6, np.int32),
    })
    taken = set(props.columns)
    psets = None
    for key in properties or []:
        if key in gdf.columns:
            props[_safe_name(key, taken)] = gdf[key].to_numpy()
            continue
        if psets is None:
            if "properties" not in gdf.columns:
                raise ValidationError(f"property {key!r} is neither a column nor in a 'properties' JSON column")
            psets = [json.loads(p) if isinstance(p, str) and p else (p or {}) for p in gdf["properties"]]
        pset, _, name = key.partition(".")
        vals = [(d.get(pset, {}) or {}).get(name) if name else d.get(key) for d in psets]
        if all(v is None for v in vals):
            raise ValidationError(f"property {key!r} is not in any element's property sets; use 'Pset.Name', "
                                  "e.g. 'Pset_WallCommon.IsExternal'")
        col = pd.Series(vals, dtype=object)
        if all(isinstance(v, bool) or v is None for v in vals) and col.notna().all():
            col = col.astype(bool)
        elif all((isinstance(v, int | float) and not isinstance(v, bool)) or v is None for v in vals):
            col = col.astype(float)
        props[_safe_name(key, taken)] = col.to_numpy()
    return meshes_to_3dtiles(gdf, out_dir, properties=props, class_name="bim_element", format=format,
                             max_features=max_features, what="the BIM elements")
