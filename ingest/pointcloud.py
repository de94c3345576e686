"""LAS/LAZ point clouds through laspy: kept as files in the scene, with CRS, bounds, count and classes learnt.

The CRS comes from the file's VLRs (GeoTIFF keys or OGC WKT, also WKT without an EPSG code, such as Autzen's
Oregon Lambert in feet); a file without one (``simple.las``) needs ``crs=``. The header's bounds and point count
are checked against the points; classification counts use the ASPRS codes (2 = ground, 6 = building, 9 = water).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cim.errors import CRSError, DataError, require
from ingest._crs import parse_crs
from ingest.base import CORRUPT, FileItem, Reader, ReadResult, register

__all__ = ["PointCloudReader"]


@register
class PointCloudReader(Reader):
    name = "pointcloud"
    extensions = (".las", ".laz")
    options = frozenset({"crs", "name"})
    description = "LAS/LAZ point clouds (laspy), kept as files"

    def read(self, path: Path, *, crs: Any = None, name: str | None = None) -> ReadResult:
        laspy = require("laspy", "io")
        path = Path(path)
        try:
            with laspy.open(path) as fh:
                header = fh.header
                try:
                    file_crs = header.parse_crs()
                except Exception:   # a malformed GeoTIFF key VLR: treat as no CRS, say so below
                    file_crs = None
                counts: dict[int, int] = {}
                n = 0
                for chunk in fh.chunk_iterator(1_000_000):
                    cls, cnt = np.unique(np.asarray(chunk.classification), return_counts=True)
                    for c, k in zip(cls.tolist(), cnt.tolist(), strict=True):
                        counts[int(c)] = counts.get(int(c), 0) + int(k)
                    n += len(chunk)
        except Exception as exc:  # laspy.errors.LaspyException, lazrs errors, OSError on truncation
            raise DataError(f"{path.name}: cannot read as LAS/LAZ ({type(exc).__name__}: {exc}); "
                            f"{CORRUPT}") from None
        if n != header.point_count:
            raise DataError(f"{path.name}: header says {header.point_count} points but {n} were read; the file is "
                            "truncated")
        if file_crs is None and crs is None:
            raise CRSError(f"{path.name}: no CRS in the file's VLRs; pass crs='EPSG:…' naming the CRS of its "
                           "coordinates")
        if file_crs is not None and crs is not None:
            given = parse_crs(crs, path, "crs option")
            if not given.equals(file_crs, ignore_axis_order=True):
                raise CRSError(f"{path.name}: the VLRs give {file_crs.name!r} but crs={crs!r} was given; drop crs=")
        the_crs = file_crs if file_crs is not None else parse_crs(crs, path, "crs option")
        mins, maxs = [float(v) for v in header.mins], [float(v) for v in header.maxs]
        attrs = {"point_count": int(n), "bounds_native": mins + maxs, "las_version": str(header.version),
                 "point_format": int(header.point_format.id), "classification_counts": counts,
                 "crs_wkt": the_crs.to_wkt(), "crs_from": "file" if file_crs is not None else "caller",
                 "horizontal_unit": the_crs.axis_info[0].unit_name if the_crs.axis_info else None}
        result = ReadResult(source=path, format=self.name, crs=the_crs)
        result.files.append(FileItem(name or path.name.split(".")[0], path, "point_cloud", path.name, attrs))
        return result
