"""cim: the City Information Model — scenes of GIS, raster, BIM and IoT layers in an embedded or PostGIS store.

>>> import cim
>>> cim.CIM_LEVELS[6].name
'component'
"""

import logging

from cim.errors import *  # noqa: F403
from cim.errors import __all__ as _errors_all
from cim.kinds import CIM_LEVELS, KINDS
from cim.layers import LayerInfo
from cim.mesh import TriangleMesh
from cim.regions import REGION_LEVELS, Region
from cim.scene import Scene, open_scene

__version__ = "0.1.0"
__all__ = [*_errors_all, "CIM_LEVELS", "KINDS", "REGION_LEVELS", "LayerInfo", "Region", "Scene", "TriangleMesh",
           "__version__", "open_scene"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
