"""Buildings to 3D Tiles: LoD1 blocks extruded from footprints, or the LoD2 surfaces kept by ingest.

>>> import geopandas as gpd, shapely, tempfile, json
>>> gdf = gpd.GeoDataFrame({"height": [10.0, 20.0]},
...     geometry=[shapely.box(85000, 446000, 85010, 446010), shapely.box(85020, 446000, 85030, 446010)],
...     crs="EPSG:28992")
>>> path = buildings_to_3dtiles(gdf, tempfile.mkdtemp())
>>> json.loads(path.read_text())["asset"]["version"]
'1.1'
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import shapely

from cim.errors import DataError, ValidationError
from tiles import _geo
from tiles._extrude import FeatureMeshes, extrude, from_triangle_soup
from tiles._tiler import Tiler

__all__ = ["buildings_to_3dtiles", "metadata_table"]

log = logging.getLogger(__name__)

_RESERVED = ("id", "name", "class", "height", "cim_level")


def _safe_name(name: str, taken: set[str]) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", str(name)) or "_"
    if s[0].isdigit():
        s = "_" + s
    base, i = s, 1
    while s in taken:
        s, i = f"{base}_{i}", i + 1
    taken.add(s)
    return s


def metadata_table(gdf, *, id_column: str | None, name_column: str | None, class_column: str | None,
                   default_class: str, height: np.ndarray | None, cim_level: int | np.ndarray,
                   attributes: list[str] | None) -> pd.DataFrame:
    """The per-feature metadata: id, name, class, height, cim_level, then the layer's attributes (typed).

    Column names are made valid metadata identifiers (``[A-Za-z_][A-Za-z0-9_]*``)."""
    n = len(gdf)
    ids = gdf[id_column] if id_column else pd.Series(gdf.index, index=gdf.index)
    out = {
        "id": ids.astype(str).to_numpy(),
        "name": (gdf[name_column].fillna("").astype(str).to_numpy() if name_column else np.full(n, "", object)),
        "class": (gdf[class_column].fillna(default_class).astype(str).to_numpy() if class_column
                  else np.full(n, default_class, object)),
    }
    if height is not None:
        out["height"] = np.asarray(height, np.float64)
    if isinstance(cim_level, int):
        out["cim_level"] = np.full(n, cim_level, np.int32)
    else:
        out["cim_level"] = np.asarray(cim_level, np.int32)
    table = pd.DataFrame(out)
    taken = set(table.columns)
    used = {id_column, name_column, class_column, gdf.geometry.name}
    cols = attributes if attributes is not None else [c for c in gdf.columns if c not in used]
    for c in cols:
        if c not in gdf.columns:
            raise ValidationError(f"attribute {c!r} is not a column of the layer; columns are {list(gdf.columns)}")
        if c in used or c in _RESERVED:
            continue
        col = gdf[c]
        if col.dtype.kind == "M":
            col = col.astype(str)
        elif col.dtype.kind == "O" and len(col) and isinstance(col.dropna().iloc[0] if col.notna().any() else "",
                                                                   shapely.Geometry):
            continue
        table[_safe_name(c, taken)] = col.to_numpy()
    return table


def _pick(gdf, given: str | None, candidates: tuple[str, ...], what: str) -> str | None:
    if given is not None:
        if given not in gdf.columns:
            raise ValidationError(f"{what} column {given!r} is not in the buildings layer; columns are "
                                  f"{list(gdf.columns)}")
        return given
    return next((c for c in candidates if c in gdf.columns), None)


def buildings_to_3dtiles(gdf, out_dir, height: str = "height", *, ground: str | None = None,
                         surfaces=None, id_column: str | None = None, name_column: str | None = None,
                         class_column: str | None = None, attributes: list[str] | None = None,
                         cim_level: int | None = None, format: Literal["glb", "b3dm"] = "glb",
                         max_features: int = 1000, floor: bool = False, quantize: bool = False,
                         color=(0.85, 0.82, 0.76, 1.0)) -> Path:
    """Write buildings as a 3D Tiles tileset and return the path of its ``tileset.json``.

    Parameters
    ----------
    gdf : GeoDataFrame
        Building footprints (Polygon/MultiPolygon) in a projected CRS, one row per building.
    out_dir : path
        Folder for ``tileset.json`` and ``tiles/``.
    height : str
        Column with the building height above its base (metres).
    ground : str, optional
        Column with the base elevation; default ``ground``, ``ground_z`` or ``z`` if present, else the lowest z of a 3D
        footprint, else 0.
    surfaces : GeoDataFrame or dict, optional
        LoD2 surfaces kept by ingest (layer kind ``building_surfaces``: ``building_id`` + MultiPolygon Z of
        triangles), or a mapping of building id -> `cim.mesh.TriangleMesh`. Buildings with surfaces use them;
        the others are extruded.
    format : {"glb", "b3dm"}
        3D Tiles 1.1 glb with EXT_mesh_features/EXT_structural_metadata, or 3D Tiles 1.0 b3dm with a batch table.
    max_features : int
        At most this many buildings per tile; inner tiles hold the largest buildings as simplified blocks.
    quantize : bool
        Compress vertices with KHR_mesh_quantization (int16 positions, int8 normals): about half the vertex data,
        positions to the tile's extent / 65534.
    """
    import geopandas as gpd

    if not isinstance(gdf, gpd.GeoDataFrame):
        raise ValidationError("buildings_to_3dtiles needs a GeoDataFrame of footprints (geopandas.read_file(...))")
    if format not in ("glb", "b3dm"):
        raise ValidationError(f"format must be 'glb' (3D Tiles 1.1) or 'b3dm' (3D Tiles 1.0), not {format!r}")
    if len(gdf) == 0:
        raise DataError("the buildings layer is empty: nothing to tile")
    crs = _geo.check_crs(gdf.crs, "the buildings layer")
    if height not in gdf.columns:
        raise ValidationError(f"height column {height!r} is not in the buildings layer; pass height=<column> "
                              f"(columns: {list(gdf.columns)})")
    geoms = gdf.geometry.to_numpy()
    bad = shapely.is_empty(geoms) | ~np.isin(shapely.get_type_id(geoms), [3, 6])
    if bad.any():
        raise DataError(f"{int(bad.sum())} buildings have no Polygon/MultiPolygon footprint (first at row "
                        f"{int(np.flatnonzero(bad)[0])}): drop or repair them before tiling")
    h = pd.to_numeric(gdf[height], errors="coerce").to_numpy(np.float64)
    if not np.isfinite(h).all() or (h < 0).any():
        raise DataError(f"column {height!r} has {int((~np.isfinite(h) | (h < 0)).sum())} missing or negative "
                        "heights: fill them (e.g. with a default storey height) before tiling")
    gcol = _pick(gdf, ground, ("ground", "ground_z", "z"), "ground")
    if gcol is not None:
        base = pd.to_numeric(gdf[gcol], errors="coerce").to_numpy(np.float64)
    elif shapely.has_z(geoms).any():
        coords, which = shapely.get_coordinates(geoms, include_z=True, return_index=True)
        base = np.full(len(geoms), np.inf)
        np.minimum.at(base, which, np.nan_to_num(coords[:, 2], nan=np.inf))
        base[~np.isfinite(base)] = 0.0
    else:
        base = np.zeros(len(geoms))
    base = np.nan_to_num(base, nan=0.0)

    lod2 = _surfaces_by_row(gdf, surfaces, id_column)
    if cim_level is not None:
        level = int(cim_level)
    elif "cim_level" in gdf.columns and gdf["cim_level"].notna().all():
        level = gdf["cim_level"].astype(int).to_numpy()      # as ingest set it per building
        if lod2:
            rows = np.fromiter(lod2, int)
            level = level.copy()
            level[rows] = np.maximum(level[rows], 3)
    else:
        level = 3 if lod2 else 2
        if lod2:
            level = np.full(len(gdf), 2, np.int32)
            level[np.fromiter(lod2, int)] = 3
    props = metadata_table(gdf, id_column=_pick(gdf, id_column, ("id", "identificatie"), "id"),
                           name_column=_pick(gdf, name_column, ("name", "naam"), "name"),
                           class_column=_pick(gdf, class_column, ("class", "type", "function"), "class"),
                           default_class="building", height=h, cim_level=level, attributes=attributes)
    anchors = shapely.get_coordinates(shapely.point_on_surface(geoms))
    top = base + h

    def make_mesh(order: np.ndarray) -> FeatureMeshes:
        blocks = extrude(geoms[order], base[order], top[order], floor=floor)
        if not lod2:
            return blocks
        return _replace_with_surfaces(blocks, order, lod2)

    # inner tiles: the largest buildings as oriented boxes
    env = shapely.oriented_envelope(geoms)
    env = np.where(shapely.get_type_id(env) == 3, env, shapely.envelope(geoms))
    simpl_err = shapely.hausdorff_distance(geoms, env)
    volume = shapely.area(geoms) * np.maximum(h, 0.1)

    def coarse(features: np.ndarray, depth: int):
        k = min(max_features, len(features))
        kept = features[np.argsort(-volume[features], kind="stable")[:k]]
        kept.sort()
        dropped = np.setdiff1d(features, kept, assume_unique=True)
        err = max(float(simpl_err[kept].max(initial=0.0)), float(h[dropped].max(initial=0.0)))
        return extrude(env[kept], base[kept], top[kept]), kept, err

    tiler = Tiler(crs, Path(out_dir), fmt=format, class_name="building", color=color, quantize=quantize)
    path = tiler.write(anchors, props, make_mesh, max_features=max_features, coarse=coarse)
    log.info("wrote %d buildings in %d tiles to %s", len(gdf), len(tiler.files), path)
    return path


def _surfaces_by_row(gdf, surfaces, id_column) -> dict[int, np.ndarray]:
    """Row number -> (m, 3, 3) triangles from LoD2 surfaces, for buildings that have them."""
    if surfaces is None:
        return {}
    from cim.mesh import TriangleMesh

    ids = (gdf[id_column] if id_column else (gdf["id"] if "id" in gdf.columns else pd.Series(gdf.index)))
    row_of = {str(v): i for i, v in enumerate(ids.tolist())}
    out: dict[int, list] = {}
    if isinstance(surfaces, dict):
        items = ((str(k), m) for k, m in surfaces.items())
    else:
        if "building_id" not in surfaces.columns:
            raise ValidationError("surfaces need a 'building_id' column naming the building of each surface "
                                  "(the building_surfaces layer written by ingest)")
        items = ((str(b), TriangleMesh.from_multipolygon(g))
                 for b, g in zip(surfaces["building_id"], surfaces.geometry, strict=True))
    for key, m in items:
        if key in row_of and m.n_triangles:
            out.setdefault(row_of[key], []).append(m.vertices[m.triangles])
    return {k: np.concatenate(v) for k, v in out.items()}


def _replace_with_surfaces(blocks: FeatureMeshes, order: np.ndarray, lod2: dict[int, np.ndarray]) -> FeatureMeshes:
    """Swap the blocks of buildings that have LoD2 surfaces for those surfaces (same feature numbering)."""
    rank = {int(r): i for i, r in enumerate(order)}
    tri_list, feat_list = [], []
    with_surf = np.zeros(blocks.n_features, bool)
    for row, tris in lod2.items():
        if row in rank:
            with_surf[rank[row]] = True
            tri_list.append(tris)
            feat_list.append(np.full(len(tris), rank[row]))
    # keep the block triangles of the others
    vt = blocks.vertex_feature[blocks.triangles[:, 0]]
    keep = ~with_surf[vt]
    bt = blocks.points[blocks.vertex_point[blocks.triangles[keep]]]
    # block walls keep their exact normals only through the triangle normals: fine for flat faces
    tri_list.append(bt)
    feat_list.append(vt[keep])
    return from_triangle_soup(np.concatenate(tri_list), np.concatenate(feat_list), blocks.n_features)
