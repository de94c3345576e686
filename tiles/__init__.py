"""tiles: 3D Tiles (buildings, BIM, point clouds, terrain, water surfaces) and 2D map tiles (raster XYZ, MVT).

Every writer returns the path of what it wrote (``tileset.json`` for 3D Tiles); content is valid glTF 2.0 (glb)
with EXT_mesh_features + EXT_structural_metadata per-feature metadata, or 3D Tiles 1.0 b3dm with a batch table.
"""

import logging

from tiles._viewer import find_cesium, write_viewer
from tiles.bim import bim_to_3dtiles, meshes_to_3dtiles
from tiles.buildings import buildings_to_3dtiles
from tiles.maptiles import (
    DEPTH_RAMP,
    depth_colormap,
    hillshade,
    layer_vector_tiles,
    raster_xyz_tiles,
    vector_tiles,
)
from tiles.pointcloud import pointcloud_to_3dtiles
from tiles.surfaces import DEFAULT_WARNING_LEVELS, flood_to_3dtiles, terrain_to_3dtiles

__all__ = [
    "DEFAULT_WARNING_LEVELS",
    "DEPTH_RAMP",
    "bim_to_3dtiles",
    "buildings_to_3dtiles",
    "depth_colormap",
    "find_cesium",
    "flood_to_3dtiles",
    "hillshade",
    "layer_vector_tiles",
    "meshes_to_3dtiles",
    "pointcloud_to_3dtiles",
    "raster_xyz_tiles",
    "terrain_to_3dtiles",
    "vector_tiles",
    "write_viewer",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
