"""A whole scene to tiles: each layer by its kind, plus the viewer page (used by ``cim tiles build``).

| kind | written |
|---|---|
| buildings (+ building_surfaces) | 3D Tiles (LoD2 surfaces where ingest kept them, else LoD1 blocks) and MVT footprints |
| bim | 3D Tiles, one feature per element |
| terrain (raster) | terrain mesh 3D Tiles and hillshade XYZ PNG tiles |
| flood_result (raster depth on the terrain grid) | water-surface 3D Tiles per time step and depth XYZ PNG |
| point_cloud (file) | pnts 3D Tiles through py3dtiles |
| other vector layers | 3D Tiles when they hold 3D meshes (roads, water, land use, ...), else MVT |
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cim.errors import LayerNotFoundError, ValidationError

__all__ = ["SceneTiles", "build_scene_tiles"]

log = logging.getLogger(__name__)

_MESH_KINDS = {"roads", "water", "land_use", "vegetation", "generic", "bridges", "city_furniture"}
_COLORS = {"roads": (0.45, 0.45, 0.45, 1.0), "water": (0.3, 0.5, 0.8, 1.0), "land_use": (0.6, 0.7, 0.45, 1.0),
           "vegetation": (0.3, 0.6, 0.3, 1.0), "bridges": (0.6, 0.55, 0.5, 1.0)}


@dataclass
class SceneTiles:
    """What `build_scene_tiles` wrote: per layer the main output path; the viewer page; skipped layers."""

    outputs: dict[str, list[Path]] = field(default_factory=dict)
    viewer: Path | None = None
    skipped: dict[str, str] = field(default_factory=dict)


def build_scene_tiles(scene, out_dir, *, layers: Sequence[str] | None = None, format: str = "glb",
                      viewer: bool = True, progress: Callable[[str], None] | None = None) -> SceneTiles:
    """Write tiles for the scene's layers (all that can be tiled, or ``layers``) under ``out_dir/<layer>/``."""
    from tiles import (
        bim_to_3dtiles,
        buildings_to_3dtiles,
        flood_to_3dtiles,
        layer_vector_tiles,
        meshes_to_3dtiles,
        pointcloud_to_3dtiles,
        raster_xyz_tiles,
        terrain_to_3dtiles,
        write_viewer,
    )

    out = Path(out_dir)
    infos = {i.name: i for i in scene.layers}
    if layers:
        unknown = [n for n in layers if n not in infos]
        if unknown:
            raise LayerNotFoundError(f"layers {unknown} are not in scene {scene.name!r}; it has {sorted(infos)}")
        names = list(layers)
    else:
        names = [n for n, i in infos.items() if i.kind != "building_surfaces"]
    result = SceneTiles()
    terrain_name = next((n for n, i in infos.items() if i.kind == "terrain" and i.storage == "raster"), None)
    surfaces_name = next((n for n, i in infos.items() if i.kind == "building_surfaces"), None)
    frames: list[Path] = []
    for name in names:
        info = infos[name]
        if progress:
            progress(name)
        target = out / name
        try:
            if info.kind == "buildings":
                gdf = scene.layer(name)
                surfaces = scene.layer(surfaces_name) if surfaces_name else None
                result.outputs[name] = [buildings_to_3dtiles(gdf, target, surfaces=surfaces, format=format),
                                        layer_vector_tiles(scene, name, target / "mvt", zooms=(13, 16),
                                                           properties=[c for c in ("id", "height") if c in gdf])]
            elif info.kind == "bim":
                result.outputs[name] = [bim_to_3dtiles(scene.layer(name), target, format=format)]
            elif info.kind == "terrain" and info.storage == "raster":
                dem = scene.layer(name)
                result.outputs[name] = [terrain_to_3dtiles(dem, target, format=format),
                                        raster_xyz_tiles(dem, target / "hillshade", kind="hillshade")]
            elif info.kind == "flood_result" and info.storage == "raster":
                if terrain_name is None:
                    raise ValidationError("water surfaces need the terrain the flood ran on: add a terrain layer")
                depth = scene.layer(name)
                paths = flood_to_3dtiles(depth, scene.layer(terrain_name), target, format=format)
                frames += paths
                peak = depth.max("time") if "time" in depth.dims else depth
                result.outputs[name] = [*paths, raster_xyz_tiles(peak.rio.write_crs(depth.rio.crs),
                                                                 target / "depth", kind="depth")]
            elif info.kind == "point_cloud" and info.storage == "file":
                result.outputs[name] = [pointcloud_to_3dtiles(scene.file_path(name), target)]
            elif info.storage == "vector":
                gdf = scene.layer(name)
                import shapely

                if info.kind in _MESH_KINDS and len(gdf) and shapely.has_z(gdf.geometry.to_numpy()).all():
                    props = pd.DataFrame({
                        "id": gdf["id"].astype(str) if "id" in gdf else pd.Series(np.arange(len(gdf))).astype(str),
                        "class": gdf["type"].fillna(info.kind).astype(str) if "type" in gdf else info.kind,
                        "cim_level": np.int32(info.cim_level or 2)})
                    result.outputs[name] = [meshes_to_3dtiles(gdf, target, properties=props, class_name=info.kind,
                                                              format=format, what=f"layer {name!r}",
                                                              color=_COLORS.get(info.kind, (0.7, 0.7, 0.7, 1.0)))]
                else:
                    result.outputs[name] = [layer_vector_tiles(scene, name, target, zooms=(12, 16))]
            else:
                result.skipped[name] = f"kind {info.kind!r} ({info.storage}) has no tile writer"
        except ValidationError as exc:
            result.skipped[name] = str(exc)
            log.warning("layer %s not tiled: %s", name, exc)
    if viewer:
        tilesets = [p for ps in result.outputs.values() for p in ps if p.name == "tileset.json" and p not in frames]
        imagery = [p for ps in result.outputs.values() for p in ps
                   if p.name == "tiles.json" and p.parent.name in ("hillshade", "depth")]
        if tilesets or frames:
            result.viewer = write_viewer(out, tilesets, frames=frames, imagery=imagery)
    return result
