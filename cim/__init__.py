"""cim: the City Information Model — scenes of GIS, raster, BIM and IoT layers in an embedded or PostGIS store."""

import logging

from cim.errors import *  # noqa: F403
from cim.errors import __all__ as _errors_all

__version__ = "0.1.0"
__all__ = [*_errors_all, "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
