"""LAS/LAZ point clouds to 3D Tiles 1.0 pnts through py3dtiles' converter, with the CRS read from the file.

py3dtiles' 1.1 point-cloud glb does not pass the glTF validator (colours not normalised, vertex data not 4-byte
aligned), so the pnts (3D Tiles 1.0) output is used.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from cim.errors import CRSError, DataError, require

__all__ = ["pointcloud_to_3dtiles"]

log = logging.getLogger(__name__)


def pointcloud_to_3dtiles(path, out_dir, *, crs=None, jobs: int = 1, overwrite: bool = True) -> Path:
    """Convert a LAS/LAZ file to a pnts tileset placed in ECEF; returns the tileset.json path.

    The CRS comes from the file (GeoTIFF keys or WKT VLRs); a file without one needs ``crs=`` (e.g. "EPSG:2992").
    Axis order is easting, northing (``always_xy``) whatever the CRS's definition says.
    """
    laspy = require("laspy", "io")
    convert = require("py3dtiles.convert", "tiles")
    from pyproj import CRS

    path = Path(path)
    if not path.is_file():
        raise DataError(f"point cloud {str(path)!r} does not exist")
    try:
        with laspy.open(path) as fh:
            try:
                file_crs = fh.header.parse_crs()
            except Exception:       # malformed GeoTIFF keys
                file_crs = None
            n = fh.header.point_count
            dims = set(fh.header.point_format.dimension_names)
            color_scale = None
            if {"red", "green", "blue"} <= dims and n:
                pts = fh.read_points(min(n, 100_000))
                if max(int(pts.red.max()), int(pts.green.max()), int(pts.blue.max())) <= 255:
                    color_scale = 256.0        # 8-bit colours stored in the 16-bit fields
    except Exception as exc:
        raise DataError(f"{str(path)!r} is not a readable LAS/LAZ file ({exc})") from None
    if crs is not None:
        crs_in = CRS.from_user_input(crs)
    elif file_crs is not None:
        crs_in = CRS.from_user_input(file_crs.to_wkt() if hasattr(file_crs, "to_wkt") else file_crs)
    else:
        raise CRSError(f"{str(path)!r} has no CRS in its VLRs: pass crs=... (the CRS the points are in)")
    if n == 0:
        raise DataError(f"{str(path)!r} has no points")
    out = Path(out_dir)
    if out.exists() and overwrite:
        shutil.rmtree(out)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cim-tiles-") as tmp:
        source = path
        if path.suffix.lower() == ".laz":
            # py3dtiles 12's reader workers hang on LAZ input (seen with autzen_trim.laz): decompress first
            source = Path(tmp) / (path.stem + ".las")
            laspy.read(path).write(source)
        convert.convert(source, outfolder=out, crs_in=CRS.from_user_input(crs_in.to_wkt()), force_crs_in=True,
                        crs_out=CRS.from_epsg(4978), pyproj_always_xy=True, jobs=jobs, use_process_pool=False,
                        overwrite=overwrite, color_scale=color_scale)
    log.info("converted %d points of %s to %s", n, path, out)
    return out / "tileset.json"
