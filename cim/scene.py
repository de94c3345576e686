"""The Scene: a named city model with one projected CRS, administrative regions and layers, kept in a store.

>>> import tempfile, geopandas as gpd
>>> from shapely import box
>>> scene = Scene.create(tempfile.mkdtemp() + "/demo.cim", crs="EPSG:28992", name="Demo")
>>> gdf = gpd.GeoDataFrame({"height": [12.5]}, geometry=[box(85000, 446000, 85010, 446010)], crs="EPSG:28992")
>>> scene.add_layer("buildings", gdf, kind="buildings").count
1
>>> float(scene.layer("buildings").height.iloc[0])
12.5
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
import sqlalchemy as sa
import xarray as xr
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from cim import _dtypes, schema
from cim.crs import crs_string, horizontal_epsg, same_horizontal, scene_crs
from cim.errors import (
    CRSError,
    LayerExistsError,
    LayerNotFoundError,
    RegionNotFoundError,
    StoreNotFoundError,
    ValidationError,
)
from cim.kinds import check_cim_level, check_kind
from cim.layers import LayerInfo
from cim.regions import Region, level_rank
from cim.stores import Store, check_layer_name, create_store, open_store

__all__ = ["Scene", "open_scene"]

BBox = tuple[float, float, float, float]


def _version() -> str:
    from cim import __version__

    return f"cim-twin {__version__}"


class Scene:
    """A city scene. Create with `Scene.create`, open with `open_scene`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        meta = store.meta()
        self.name: str = meta["name"]
        self.crs: CRS = CRS.from_user_input(meta["crs"])
        self._srid = horizontal_epsg(self.crs)

    # -- life cycle ---------------------------------------------------------------------------------------
    @classmethod
    def create(cls, url: str | Path, *, crs: Any, name: str, description: str = "",
               extent: BBox | None = None) -> Scene:
        """Create an empty scene at ``url`` (a directory path, or a ``postgresql+psycopg://`` URL)."""
        c = scene_crs(crs, where=f"scene {name!r}")
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("a scene needs a name, e.g. name='Delft'")
        meta = {"name": name, "crs": crs_string(c), "description": description,
                "created": datetime.now(UTC).isoformat(timespec="seconds"), "tool_version": _version()}
        if extent is not None:
            meta["extent"] = json.dumps([float(v) for v in _check_bbox(extent)])
        return cls(create_store(str(url), meta))

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def description(self) -> str:
        return self.store.meta().get("description", "")

    @property
    def extent(self) -> BBox | None:
        """The extent given at creation, else the union of the layers' bounds (None for an empty scene)."""
        meta = self.store.meta()
        if "extent" in meta:
            return tuple(json.loads(meta["extent"]))
        bounds = np.array([i.bounds for i in self.layers if i.bounds], dtype=float).reshape(-1, 4)
        if not len(bounds):
            return None
        return (*bounds[:, :2].min(axis=0).tolist(), *bounds[:, 2:].max(axis=0).tolist())

    @extent.setter
    def extent(self, bbox: BBox | None) -> None:
        """Fix the scene's extent (e.g. the city model's), so that larger grids such as radar do not widen it."""
        if bbox is None:
            with self.store.transaction() as conn:
                conn.execute(sa.delete(schema.meta).where(schema.meta.c.key == "extent"))
        else:
            self.store.set_meta("extent", json.dumps([float(v) for v in _check_bbox(bbox)]))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Scene {self.name!r} {crs_string(self.crs)} at {self.store.display_url}: {len(self.layers)} layers>"

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """Group writes: all commit together or none does. Yields the store's SQLAlchemy connection."""
        with self.store.transaction() as conn:
            yield conn

    # -- layers -------------------------------------------------------------------------------------------
    @property
    def layers(self) -> list[LayerInfo]:
        return [LayerInfo.from_row(r) for r in self.store.catalog()]

    def layer_info(self, name: str) -> LayerInfo:
        row = self.store.catalog_row(name)
        if row is None:
            names = ", ".join(i.name for i in self.layers) or "none"
            raise LayerNotFoundError(f"no layer {name!r} in scene {self.name!r} (layers: {names}); "
                                     "add it with scene.add_layer or `cim ingest`")
        return LayerInfo.from_row(row)

    def __contains__(self, name: str) -> bool:
        return self.store.catalog_row(name) is not None

    def add_layer(self, name: str, data: gpd.GeoDataFrame | xr.DataArray, *, kind: str,
                  cim_level: int | str | None = None, units: str | None = None, source: str | None = None,
                  reproject: bool = True, resampling: str = "nearest", replace: bool = False,
                  attrs: dict[str, Any] | None = None) -> LayerInfo:
        """Add a GeoDataFrame or a DataArray (with a CRS) as a layer, reprojected to the scene CRS.

        With ``reproject=False`` a CRS other than the scene's is refused. ``replace=True`` swaps an existing
        layer of that name in the same transaction. Returns the layer's catalogue entry.
        """
        check_layer_name(name)
        k = check_kind(kind)
        level = check_cim_level(cim_level) if cim_level is not None else k.default_level
        if isinstance(data, gpd.GeoDataFrame):
            storage = "vector"
        elif isinstance(data, xr.DataArray):
            storage = "raster"
        else:
            raise ValidationError(f"layer {name!r}: data must be a GeoDataFrame or an xarray DataArray, "
                                  f"not {type(data).__name__} (wrap points/lines in geopandas.GeoDataFrame)")
        if storage not in k.storage:
            raise ValidationError(f"layer {name!r}: kind {kind!r} holds {' or '.join(k.storage)} data, not {storage}")
        where = f"layer {name!r}" + (f" from {source}" if source else "")
        with self.store.transaction():
            self._free_name(name, replace, where)
            if storage == "vector":
                location, info = self._write_vector(name, data, reproject, where)
            else:
                location, info = self._write_raster(name, data, reproject, resampling, where)
            info["attrs"] = {**(info.get("attrs") or {}), **(attrs or {})}
            row = dict(name=name, kind=kind, cim_level=level, storage=storage, location=location,
                       crs=crs_string(self.crs), units=units, source=source, tool_version=_version(), info=info)
            self.store.add_catalog_row(row)
        return self.layer_info(name)

    def _free_name(self, name: str, replace: bool, where: str) -> None:
        """Inside a transaction: make ``name`` free, removing an existing layer only when ``replace``."""
        if self.store.catalog_row(name) is None:
            return
        if not replace:
            raise LayerExistsError(f"{where}: scene {self.name!r} has a layer {name!r} already; choose another name, "
                                   "remove it with scene.remove_layer, or pass replace=True")
        self.remove_layer(name)

    def _to_scene_crs(self, crs: CRS | None, reproject: bool, where: str, fix: str) -> bool:
        """Whether data in ``crs`` must be transformed; raise when it cannot or may not be."""
        if crs is None:
            raise CRSError(f"{where} has no CRS: set the CRS its coordinates are in, e.g. {fix}")
        if same_horizontal(CRS.from_user_input(crs), self.crs):
            return False
        if not reproject:
            raise CRSError(f"{where} is in {CRS.from_user_input(crs).name}, the scene in {self.crs.name}; pass "
                           "reproject=True (the default) to transform it, or reproject it yourself")
        return True

    def _write_vector(self, name: str, gdf: gpd.GeoDataFrame, reproject: bool, where: str) -> tuple[str, dict]:
        if gdf.geometry.name not in gdf.columns:
            raise ValidationError(f"{where}: the GeoDataFrame has no active geometry column; call set_geometry")
        if self._to_scene_crs(gdf.crs, reproject, where, "gdf.set_crs('EPSG:28992')"):
            gdf = gdf.to_crs(self.crs)
        geom_name = gdf.geometry.name
        frame, contract = _dtypes.capture(gdf, geom_name, where)
        contract["geometry"] = geom_name
        frame = gpd.GeoDataFrame(frame, geometry=geom_name, crs=self.crs)
        if geom_name != "geometry":
            frame = frame.rename_geometry("geometry")
        location = self.store.write_vector(name, frame, contract, self._srid)
        geoms = frame.geometry.values
        present = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
        bounds = shapely.total_bounds(present).tolist() if len(present) else None
        info = {"contract": contract, "count": len(frame), "bounds": bounds,
                "geometry_types": sorted(set(shapely.get_type_id(present).tolist())),
                "has_z": bool(shapely.has_z(present).any()) if len(present) else False}
        return location, info

    def _write_raster(self, name: str, da: xr.DataArray, reproject: bool, resampling: str,
                      where: str) -> tuple[str, dict]:
        import rioxarray  # noqa: F401  (registers .rio)
        from rasterio.enums import Resampling

        try:
            da.rio.x_dim, da.rio.y_dim  # noqa: B018
        except Exception:
            raise ValidationError(f"{where}: the DataArray has no x/y dimensions rioxarray recognises "
                                  f"(dims {da.dims}); name them 'x' and 'y'") from None
        if self._to_scene_crs(da.rio.crs, reproject, where, "da.rio.write_crs('EPSG:28992')"):
            try:
                method = Resampling[resampling]
            except KeyError:
                raise ValidationError(f"{where}: unknown resampling {resampling!r}; use e.g. nearest, bilinear, "
                                      "average") from None
            da = da.rio.reproject(self.crs, resampling=method)
        da = da.rio.write_crs(self.crs)
        nodata = da.rio.nodata if da.rio.nodata is not None else da.rio.encoded_nodata
        attrs = {k: v for k, v in da.attrs.items() if k not in {"_FillValue", "grid_mapping"}}
        info: dict[str, Any] = {"shape": list(da.shape), "dims": list(da.dims), "dtype": str(da.dtype),
                                "nodata": None if nodata is None else float(nodata), "bounds": list(da.rio.bounds()),
                                "count": int(da.size), "name": da.name, "attrs_raster": _jsonable(attrs),
                                "transform": list(da.rio.transform())[:6]}
        if da.ndim == 2:
            location = self.store.file_location(name, ".tif")
            staged = self.store.stage_path(self.store.path(location))
            out = da.copy()
            out.attrs = {}
            if nodata is not None:
                out = out.rio.write_nodata(nodata, encoded=False)
            out.rio.to_raster(staged, driver="COG", compress="DEFLATE")
        else:
            location = self.store.file_location(name, ".zarr")
            staged = self.store.stage_path(self.store.path(location))
            out = da.copy()
            out.attrs = {}
            out.encoding = {}
            out.to_dataset(name="data").to_zarr(staged, mode="w-", consolidated=False)
        return location, info

    def layer(self, name: str, *, region: str | BaseGeometry | None = None,
              bbox: BBox | None = None) -> gpd.GeoDataFrame | xr.DataArray:
        """Read a layer back exactly as stored, optionally limited to a region (name or polygon) or a bbox."""
        info = self.layer_info(name)
        mask = self._region_geometry(region) if region is not None else None
        if bbox is not None:
            bbox = _check_bbox(bbox)
        if info.storage == "vector":
            contract = info.info["contract"]
            gdf = self.store.read_vector(info.location, contract, bbox=bbox, mask=mask, srid=self._srid)
            gdf = gdf.set_crs(self.crs, allow_override=True)
            if contract.get("geometry", "geometry") != "geometry":
                gdf = gdf.rename_geometry(contract["geometry"])
            return gdf
        if info.storage == "raster":
            return self._read_raster(info, bbox, mask)
        raise ValidationError(f"layer {name!r} is a referenced file; use scene.file_path({name!r})")

    def _read_raster(self, info: LayerInfo, bbox: BBox | None, mask: BaseGeometry | None) -> xr.DataArray:
        import rioxarray

        path = self.store.path(info.location)
        meta = info.info
        if path.suffix == ".tif":
            with rioxarray.open_rasterio(path, masked=False, cache=False) as src:
                da = src.squeeze("band", drop=True).load()
            da = da.astype(meta["dtype"], copy=False)
        else:
            with xr.open_zarr(path, mask_and_scale=False, consolidated=False) as ds:
                da = ds["data"].load()
        dims = meta.get("dims")
        if dims and list(da.dims) != dims and len(dims) == da.ndim:
            da = da.rename(dict(zip(da.dims, dims, strict=True)))
        da.attrs = dict(meta.get("attrs_raster") or {})
        da.name = meta.get("name")
        da = da.rio.write_crs(self.crs)
        if meta.get("nodata") is not None:
            da = da.rio.write_nodata(meta["nodata"], encoded=False)
        if bbox is not None or mask is not None:
            box = bbox if bbox is not None else mask.bounds
            x, y = da.rio.x_dim, da.rio.y_dim
            ys = slice(box[3], box[1]) if da[y][0] > da[y][-1] else slice(box[1], box[3])
            da = da.sel({x: slice(box[0], box[2]), y: ys})
            if mask is not None and da.size:
                da = da.rio.clip([mask], drop=False)
        return da

    def remove_layer(self, name: str) -> None:
        """Remove a layer and its contents (in one transaction)."""
        info = self.layer_info(name)
        with self.store.transaction():
            if info.storage == "vector":
                self.store.drop_vector(info.location)
            else:
                self.store.remove_on_commit(self.store.path(info.location))
            self.store.delete_catalog_row(name)

    def add_file(self, name: str, path: str | Path, *, kind: str, cim_level: int | str | None = None,
                 source: str | None = None, replace: bool = False, attrs: dict[str, Any] | None = None) -> LayerInfo:
        """Copy a file (a point cloud, an IFC model) or a directory (a 3D Tiles tileset) into the store as a
        referenced-file layer; `file_path` gives its path in the store."""
        check_layer_name(name)
        k = check_kind(kind)
        if "file" not in k.storage and kind != "other":
            raise ValidationError(f"file layer {name!r}: kind {kind!r} is not kept as a file; use e.g. 'point_cloud'")
        src = Path(path)
        if not src.exists():
            raise StoreNotFoundError(f"{src}: no such file or directory to add as layer {name!r}")
        with self.store.transaction():
            self._free_name(name, replace, f"file layer {name!r}")
            location = f"files/{name}/{src.name}"
            staged = self.store.stage_path(self.store.path(location))
            if src.is_dir():
                shutil.copytree(src, staged)
                files = [p for p in src.rglob("*") if p.is_file()]
                size = sum(p.stat().st_size for p in files)
            else:
                shutil.copy2(src, staged)
                files, size = [src], src.stat().st_size
            info = {"filename": src.name, "bytes": size, "files": len(files), "attrs": attrs or {}}
            if attrs and "bounds" in attrs:
                info["bounds"] = attrs["bounds"]
            self.store.add_catalog_row(dict(name=name, kind=kind, cim_level=check_cim_level(cim_level)
                                            if cim_level is not None else k.default_level, storage="file",
                                            location=location, crs=crs_string(self.crs), units=None,
                                            source=source or str(src), tool_version=_version(), info=info))
        return self.layer_info(name)

    def file_path(self, name: str) -> Path:
        info = self.layer_info(name)
        if info.storage != "file":
            raise ValidationError(f"layer {name!r} is a {info.storage} layer, not a file; read it with scene.layer")
        return self.store.path(info.location)

    # -- regions ------------------------------------------------------------------------------------------
    def add_region(self, name: str, level: str, geometry: BaseGeometry, *, parent: str | None = None,
                   code: str | None = None, crs: Any = None) -> Region:
        """Add an administrative region (polygon in the scene CRS, or in ``crs``) under an optional parent."""
        rank = level_rank(level)
        if not isinstance(geometry, BaseGeometry) or geometry.geom_type not in {"Polygon", "MultiPolygon"}:
            raise ValidationError(f"region {name!r}: geometry must be a shapely Polygon or MultiPolygon")
        if crs is not None and self._to_scene_crs(crs, True, f"region {name!r}", ""):
            geometry = gpd.GeoSeries([geometry], crs=crs).to_crs(self.crs).iloc[0]
        if not geometry.is_valid:
            raise ValidationError(f"region {name!r}: the polygon is invalid ({shapely.is_valid_reason(geometry)}); "
                                  "repair it with shapely.make_valid")
        with self.store.transaction() as conn:
            t = schema.regions
            if conn.execute(sa.select(t.c.name).where(t.c.name == name)).first():
                raise ValidationError(f"scene {self.name!r} has a region {name!r} already; region names are unique")
            if parent is not None:
                prow = conn.execute(sa.select(t.c.level).where(t.c.name == parent)).first()
                if prow is None:
                    raise RegionNotFoundError(f"parent region {parent!r} of {name!r} does not exist; add it first")
                if level_rank(prow.level) >= rank:
                    raise ValidationError(f"region {name!r} ({level}) cannot lie under {parent!r} ({prow.level}): "
                                          "a child's level must be below its parent's")
            x0, y0, x1, y1 = geometry.bounds
            conn.execute(sa.insert(t).values(name=name, level=level, parent=parent, code=code,
                                             geometry=shapely.to_wkb(geometry), bbox_xmin=x0, bbox_ymin=y0,
                                             bbox_xmax=x1, bbox_ymax=y1))
        return Region(name, level, geometry, parent, code)

    def region(self, name: str) -> Region:
        with self.store.connection() as conn:
            row = conn.execute(sa.select(schema.regions).where(schema.regions.c.name == name)).first()
        if row is None:
            known = ", ".join(self.regions["name"]) or "none"
            raise RegionNotFoundError(f"no region {name!r} in scene {self.name!r} (regions: {known})")
        return Region(row.name, row.level, shapely.from_wkb(row.geometry), row.parent, row.code)

    @property
    def regions(self) -> gpd.GeoDataFrame:
        """All regions, parents before children: name, level, parent, code, geometry."""
        with self.store.connection() as conn:
            rows = conn.execute(sa.select(schema.regions)).fetchall()
        rows = sorted(rows, key=lambda r: (level_rank(r.level), r.name))
        return gpd.GeoDataFrame({"name": [r.name for r in rows], "level": [r.level for r in rows],
                                 "parent": [r.parent for r in rows], "code": [r.code for r in rows]},
                                geometry=[shapely.from_wkb(r.geometry) for r in rows], crs=self.crs)

    def _region_geometry(self, region: str | BaseGeometry) -> BaseGeometry:
        return region if isinstance(region, BaseGeometry) else self.region(region).geometry


def open_scene(url: str | Path) -> Scene:
    """Open an existing scene (a directory path or a ``postgresql+psycopg://`` URL)."""
    return Scene(open_store(str(url)))


def _check_bbox(bbox) -> BBox:
    try:
        x0, y0, x1, y1 = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValidationError(f"bbox must be 4 numbers (xmin, ymin, xmax, ymax), got {bbox!r}") from None
    if not (x0 <= x1 and y0 <= y1) or not np.isfinite([x0, y0, x1, y1]).all():
        raise ValidationError(f"bbox {bbox!r}: need finite xmin <= xmax and ymin <= ymax")
    return (x0, y0, x1, y1)


def _jsonable(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        try:
            json.dumps(v)
        except TypeError:
            v = str(v)
        out[str(k)] = v
    return out
