"""Vector files through pyogrio: GeoJSON, GeoPackage, Shapefile, FlatGeobuf, GeoParquet (and whatever GDAL reads).

Every layer of the file becomes a layer (``layer=`` picks one); ``crs=`` names the CRS of a file that has none
(a conflict with the file's own is refused); ``to_crs=`` reprojects with pyproj (always_xy, as geopandas does). Invalid geometries are
repaired with shapely ``make_valid`` and counted in ``repairs``; empty and null geometries are dropped and counted
in ``skipped``. ``kind=`` and ``cim_level=`` say what the layer is (default: "other").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cim.errors import CRSError, DataError, ValidationError, require
from ingest._crs import parse_crs
from ingest.base import CORRUPT, LayerItem, Reader, ReadResult, Repair, Skipped, register

__all__ = ["VectorReader"]


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower() or "layer"


@register
class VectorReader(Reader):
    name = "vector"
    extensions = (".geojson", ".gpkg", ".shp", ".fgb", ".parquet", ".geoparquet", ".gml", ".kml", ".zip")
    options = frozenset({"layer", "crs", "to_crs", "kind", "cim_level", "name", "repair"})
    priority = -1
    description = "vector layers through pyogrio (GeoJSON, GPKG, Shapefile, FlatGeobuf, GeoParquet)"

    def guess_can_open(self, path: Path) -> bool:
        name = Path(path).name.lower()
        if name.endswith(".gml"):
            return False                      # CityGML goes to its own reader
        return super().guess_can_open(path) or name.endswith(".json")

    def read(self, path: Path, *, layer: str | None = None, crs: Any = None, to_crs: Any = None,
             kind: str = "other", cim_level: int | None = None, name: str | None = None,
             repair: bool = True) -> ReadResult:
        import geopandas as gpd
        import pyogrio
        import shapely

        from cim.kinds import check_cim_level, check_kind

        path = Path(path)
        check_kind(kind)
        cim_level = check_cim_level(cim_level)
        is_parquet = path.suffix.lower() in (".parquet", ".geoparquet")
        if is_parquet:
            require("pyarrow", "io")
        try:
            names = [path.name.split(".")[0]] if is_parquet else [str(n) for n in pyogrio.list_layers(path)[:, 0]]
        except Exception as exc:  # pyogrio.errors.DataSourceError and GDAL errors
            raise DataError(f"{path.name}: cannot open as a vector file ({exc}); {CORRUPT}") from None
        if layer is not None:
            if layer not in names:
                raise ValidationError(f"{path.name}: no layer {layer!r}; it has {names}")
            names = [layer]
        target = parse_crs(to_crs, path, "to_crs option") if to_crs is not None else None
        result = ReadResult(source=path, format=self.name, crs=target)
        for lname in names:
            try:
                gdf = gpd.read_parquet(path) if is_parquet else pyogrio.read_dataframe(path, layer=lname)
            except Exception as exc:
                raise DataError(f"{path.name}: layer {lname!r} cannot be read ({exc}); the file is corrupt") from None
            if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None:
                result.skipped.append(Skipped(lname, "no geometry column (a plain table)"))
                continue
            if gdf.crs is None:
                if crs is None:
                    raise CRSError(f"{path.name}: layer {lname!r} has no CRS (no .prj / no crs member); pass "
                                   "crs='EPSG:…' (CLI: --crs) naming the CRS its coordinates are in")
                gdf = gdf.set_crs(parse_crs(crs, path, "crs option"))
            elif crs is not None and not gdf.crs.equals(parse_crs(crs, path, "crs option")):
                raise CRSError(f"{path.name}: layer {lname!r} says its CRS is {gdf.crs.to_string()} but "
                               f"crs={crs!r} was given; drop crs (use to_crs= to reproject)")
            _check_coordinates(gdf, path, lname)
            empty = gdf.geometry.isna() | gdf.geometry.is_empty
            if empty.any():
                result.skipped.append(Skipped(lname, f"{int(empty.sum())} feature(s) with null or empty geometry"))
                gdf = gdf[~empty].copy()
            invalid = ~gdf.geometry.is_valid
            if invalid.any():
                if not repair:
                    reason = shapely.is_valid_reason(gdf.geometry[invalid].iloc[0])
                    raise DataError(f"{path.name}: layer {lname!r} has {int(invalid.sum())} invalid geometries "
                                    f"(first: {reason}); pass repair=True to fix them with make_valid")
                reasons = sorted({shapely.is_valid_reason(g).split("[")[0] for g in gdf.geometry[invalid]})
                gdf.loc[invalid, gdf.geometry.name] = shapely.make_valid(gdf.geometry[invalid].to_numpy())
                result.repairs.append(Repair(f"invalid geometries in {lname}", int(invalid.sum()),
                                             f"fixed with shapely make_valid ({'; '.join(reasons)})"))
            if target is not None:
                gdf = gdf.to_crs(target)              # pyproj transformer, always_xy
            if result.crs is None:
                result.crs = gdf.crs
            if len(names) == 1:
                lname_out = name or _slug(path.name.split(".")[0])
            else:
                lname_out = f"{name}_{_slug(lname)}" if name else _slug(lname)
            result.add_layer(LayerItem(lname_out, gdf, kind, cim_level if cim_level is not None
                                       else check_kind(kind).default_level, None))
        return result


def _check_coordinates(gdf, path: Path, lname: str) -> None:
    """Refuse coordinates impossible in the stated CRS (a wrong CRS), e.g. RD metres labelled as WGS84."""
    if not len(gdf) or not gdf.crs.is_geographic:
        return
    xmin, ymin, xmax, ymax = gdf.total_bounds
    if xmin < -180.0001 or xmax > 360.0001 or ymin < -90.0001 or ymax > 90.0001:
        raise CRSError(f"{path.name}: layer {lname!r} says its CRS is {gdf.crs.to_string()} (degrees) but its "
                       f"coordinates reach ({xmin:.1f}, {ymin:.1f}, {xmax:.1f}, {ymax:.1f}); the CRS is wrong — fix "
                       "the file's CRS")
