"""tiles: 3D Tiles (buildings, BIM, point clouds, terrain, water surfaces) and 2D map tiles (raster XYZ, MVT).

Every writer returns the path of what it wrote (``tileset.json`` for 3D Tiles); content is valid glTF 2.0 (glb)
with EXT_mesh_features + EXT_structural_metadata per-feature metadata, or 3D Tiles 1.0 b3dm with a batch table.
"""

import logging

from tiles._viewer import find_cesium, write_viewer
from tiles.buildings import buildings_to_3dtiles

__all__ = ["buildings_to_3dtiles", "find_cesium", "write_viewer"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
