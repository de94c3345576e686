"""Rasters (GeoTIFF/COG DEMs, land cover) through rioxarray: nodata to NaN, CRS kept, optional regridding.

A single-band file becomes a ``(y, x)`` DataArray (multi-band: ``(band, y, x)``) with its CRS and ``nodata``
masked to NaN (integer rasters are promoted to float to hold NaN). ``crs=`` names the CRS of a file without one;
``to_crs=`` reprojects; ``match=`` (a DataArray
with a CRS) reprojects and resamples onto its grid; ``resolution=`` resamples; ``resampling`` is a
rasterio.enums.Resampling name ("bilinear" by default for continuous data, "nearest" for ``kind="land_cover"``).
``nodata=`` masks a value the file uses for no data without saying so (pyflwdir's D8 grids use 247 untagged).
``kind=`` (default "terrain"), ``units=`` (default "m" for terrain) and ``name=`` describe the layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cim.errors import CRSError, DataError, ValidationError
from ingest._crs import parse_crs
from ingest.base import CORRUPT, LayerItem, Reader, ReadResult, check_size, register

__all__ = ["RasterReader"]


@register
class RasterReader(Reader):
    name = "raster"
    extensions = (".tif", ".tiff", ".vrt", ".asc", ".img")
    options = frozenset({"crs", "to_crs", "match", "resolution", "resampling", "kind", "units", "name",
                         "cim_level", "nodata", "max_values"})
    description = "GeoTIFF/COG rasters through rioxarray"

    def read(self, path: Path, *, crs: Any = None, to_crs: Any = None, match: Any = None,
             resolution: float | None = None, resampling: str | None = None, kind: str = "terrain",
             units: str | None = None, name: str | None = None, cim_level: int | None = None,
             nodata: float | None = None, max_values: int | None = None) -> ReadResult:
        """``max_values`` refuses a raster of more values (bands x rows x columns), before reading any."""
        import rioxarray
        from rasterio.enums import Resampling

        from cim.kinds import check_cim_level, check_kind

        path = Path(path)
        k = check_kind(kind)
        if "raster" not in k.storage:
            raise ValidationError(f"kind {kind!r} is not a raster kind; choose one of terrain, land_cover, water, ...")
        method = resampling or ("nearest" if kind in ("land_cover", "land_use") else "bilinear")
        try:
            rs = Resampling[method]
        except KeyError:
            raise ValidationError(f"resampling {method!r} unknown; use one of {[m.name for m in Resampling][:8]}…") from None
        try:
            da = rioxarray.open_rasterio(path, mask_and_scale=True)     # nodata masked, scale and offset applied
        except Exception as exc:  # rasterio.errors.RasterioIOError and friends
            raise DataError(f"{path.name}: cannot read as a raster ({type(exc).__name__}); {CORRUPT}") from None
        check_size(path, "the raster", da.shape, max_values)
        try:
            da = da.load()
        except Exception as exc:
            raise DataError(f"{path.name}: cannot read as a raster ({type(exc).__name__}); {CORRUPT}") from None
        if da.rio.crs is None:
            if crs is None:
                raise CRSError(f"{path.name}: the raster has no CRS; pass crs='EPSG:…' (CLI: --crs)")
            da = da.rio.write_crs(parse_crs(crs, path, "crs option"))
        elif crs is not None and not parse_crs(crs, path, "crs option").equals(
                parse_crs(da.rio.crs.to_wkt(), path, "file CRS"), ignore_axis_order=True):
            raise CRSError(f"{path.name}: the raster says {da.rio.crs} but crs={crs!r} was given; drop crs "
                           "(use to_crs= to reproject)")
        file_nodata = da.rio.encoded_nodata
        if da.sizes.get("band", 1) == 1 and "band" in da.dims:
            da = da.squeeze("band", drop=True)
        if not np.issubdtype(da.dtype, np.floating):
            da = da.astype(np.float32)
        if nodata is not None:
            da = da.where(da != float(nodata))
        if match is not None:
            if getattr(match, "rio", None) is None or match.rio.crs is None:
                raise ValidationError("match= must be a DataArray with a CRS (rioxarray)")
            da = da.rio.reproject_match(match, resampling=rs)
        elif to_crs is not None or resolution is not None:
            target = parse_crs(to_crs, path, "to_crs option") if to_crs is not None else da.rio.crs
            kw = {"resolution": float(resolution)} if resolution is not None else {}
            da = da.rio.reproject(target, resampling=rs, nodata=np.nan, **kw)
        # the file's encoding (scale, offset, fill value) is spent: the values are decoded, nodata is NaN
        da.encoding = {}
        da.attrs = {k: v for k, v in da.attrs.items() if k not in ("_FillValue", "scale_factor", "add_offset",
                                                                    "missing_value")}
        da = da.rio.write_nodata(np.nan, encoded=False)
        if bool(da.isnull().all()):
            raise DataError(f"{path.name}: every cell is nodata")
        lname = name or path.name.split(".")[0]
        units = units if units is not None else ("m" if kind == "terrain" else None)
        if units:
            da.attrs["units"] = units
        da.name = lname
        result = ReadResult(source=path, format=self.name, crs=da.rio.crs)
        result.add_layer(LayerItem(lname, da, kind, check_cim_level(cim_level) if cim_level is not None
                                   else k.default_level, units,
                                   attrs={"source_nodata": float(file_nodata) if file_nodata is not None
                                          else (None if nodata is None else float(nodata))}))
        return result
