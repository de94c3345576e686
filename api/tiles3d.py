"""3D Tiles: tilesets and their content served from the tiles root, with ETag (304 on If-None-Match),
Cache-Control and CORS. Paths are resolved and must stay inside the root; anything else is 404."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import mimetypes
import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path as FsPath
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, Response

import cim
from api.deps import ReadCaller, SceneDep, SettingsDep
from api.errors import NotFound
from api.openapi import ERRORS

__all__ = ["resolve", "router", "tiles_root", "viewer"]

router = APIRouter()      # 3D Tiles and map tiles: the most requested routes, matched first
viewer = APIRouter()      # /viewer/{path}: after the routes that serve files under /viewer themselves
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css",
          ".wasm": "application/wasm", ".json": "application/json", ".glb": "model/gltf-binary", ".gltf": "model/gltf+json",
          ".b3dm": "application/octet-stream", ".pnts": "application/octet-stream",
          ".i3dm": "application/octet-stream", ".cmpt": "application/octet-stream",
          ".subtree": "application/octet-stream", ".png": "image/png", ".jpg": "image/jpeg", ".ktx2": "image/ktx2"}
Tileset = Annotated[str, Path(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$", description="A tileset's directory")]
FilePath = Annotated[str, Path(min_length=1, max_length=1024, description="A file inside the tileset")]


def tiles_root(scene, settings) -> FsPath:
    return _resolved(str(settings.tiles_root or FsPath(scene.store.files_root) / "tiles"))


@functools.lru_cache(maxsize=64)
def _resolved(root: str) -> FsPath:       # once per root, not per request (realpath is a stat per component)
    return FsPath(root).resolve()


def resolve(root: FsPath, *parts: str, also: tuple[FsPath, ...] = ()) -> FsPath:
    """The file ``root/parts...``, or NotFound when it is missing, not a file, or outside ``root`` (and the
    directories in ``also``)."""
    if any("\x00" in p or "\\" in p for p in parts):
        raise NotFound("no such tile file")
    path = root.joinpath(*parts).resolve()
    if not any(path.is_relative_to(r) for r in (root, *also)) or not path.is_file():
        raise NotFound("no such tile file")
    return path


def _serve(request: Request, path: FsPath, max_age: int) -> Response:
    etag = _etag(path, path.stat())
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    inm = request.headers.get("if-none-match")
    if inm and etag in [t.strip() for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    media = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers=headers)


class FileCache:
    """Static files kept in memory with their ETag, so a tile is one stat and one write: an LRU of at most
    ``max_bytes``, files up to ``max_file`` bytes (larger ones are streamed from disk). An entry is valid while
    the file's inode, size and mtime are those it was read with. Thread-safe; one per app (per worker)."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024, max_file: int = 16 * 1024 * 1024) -> None:
        self.max_bytes, self.max_file = max_bytes, max_file
        self._lock = threading.Lock()
        self._files: OrderedDict[FsPath, tuple[tuple, str, bytes]] = OrderedDict()
        self._size = 0
        self._resolved: dict[tuple, FsPath] = {}       # (root, *parts) -> the file `resolve` found inside root

    def resolve(self, root: FsPath, *parts: str) -> FsPath:
        """`resolve` once per address (realpath is a system call per path component). What is remembered is a
        path that was inside the root when found; a file gone since is NotFound (and resolved afresh next time)."""
        key = (root, *parts)
        path = self._resolved.get(key)
        if path is None:
            path = resolve(root, *parts)
            with self._lock:
                if len(self._resolved) >= 65536:
                    self._resolved.clear()
                self._resolved[key] = path
        return path

    def forget(self, root: FsPath, *parts: str) -> None:
        with self._lock:
            self._resolved.pop((root, *parts), None)

    def get(self, path: FsPath, st: os.stat_result) -> tuple[str, bytes] | None:
        version = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            entry = self._files.get(path)
            if entry is None or entry[0] != version:
                return None
            self._files.move_to_end(path)
            return entry[1], entry[2]

    def load(self, path: FsPath) -> tuple[str, bytes] | None:
        """Read ``path`` into the cache (None when it is too large or changed while read)."""
        st = path.stat()
        if st.st_size > self.max_file:
            return None
        data = path.read_bytes()
        st2 = path.stat()
        if (st.st_ino, st.st_size, st.st_mtime_ns) != (st2.st_ino, st2.st_size, st2.st_mtime_ns):
            return None
        etag = _etag(path, st)
        with self._lock:
            old = self._files.pop(path, None)
            self._size += len(data) - (len(old[2]) if old else 0)
            self._files[path] = ((st.st_ino, st.st_size, st.st_mtime_ns), etag, data)
            while self._size > self.max_bytes:
                self._size -= len(self._files.popitem(last=False)[1][2])
        return etag, data


def _etag(path: FsPath, st: os.stat_result) -> str:
    return '"' + hashlib.sha256(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:32] + '"'


def _state_cache(request: Request, name: str, factory):
    state = request.app.state
    cache = getattr(state, name, None)
    if cache is None:
        with _STATE_LOCK:
            cache = getattr(state, name, None)
            if cache is None:
                cache = factory()
                setattr(state, name, cache)
    return cache


_STATE_LOCK = threading.Lock()


async def _serve_cached(request: Request, path: FsPath, max_age: int) -> Response:
    """`_serve` for the hot paths (tile content): from memory when the file is cached and unchanged."""
    cache: FileCache = _state_cache(request, "static_files", FileCache)
    try:
        st = os.lstat(path)                 # resolved paths are never links: a link here was swapped in since
    except FileNotFoundError:               # removed since it was resolved
        raise NotFound("no such tile file") from None
    if not stat.S_ISREG(st.st_mode):
        raise NotFound("no such tile file")
    hit = cache.get(path, st) or await anyio.to_thread.run_sync(cache.load, path)
    if hit is None:
        return _serve(request, path, max_age)
    etag, data = hit
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    inm = request.headers.get("if-none-match")
    if inm and etag in [t.strip() for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    media = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(data, media_type=media, headers=headers)


_FILE = {200: {"description": "The file", "content": {"application/json": {}, "model/gltf-binary": {},
                                                      "application/octet-stream": {}}},
         304: {"description": "Not modified (ETag matches If-None-Match)"}}


@router.get("/3dtiles", summary="The 3D Tiles tilesets of this scene", responses=ERRORS)
def tilesets(request: Request, scene: SceneDep, settings: SettingsDep, _: ReadCaller) -> dict:
    root = tiles_root(scene, settings)
    names = sorted(p.parent.name for p in root.glob("*/tileset.json")) if root.is_dir() else []
    b = str(request.base_url).rstrip("/")
    return {"tilesets": [{"id": n, "href": f"{b}/3dtiles/{n}/tileset.json", "type": "application/json"}
                         for n in names]}


@router.get("/3dtiles/{tileset}/{path:path}", summary="A tileset.json or content file",
            response_class=FileResponse, responses={**ERRORS, **_FILE})
async def tile_file(request: Request, _: ReadCaller, tileset: Tileset, path: FilePath) -> Response:
    settings = request.app.state.settings
    root = tiles_root(request.app.state.scene, settings)
    cache: FileCache = _state_cache(request, "static_files", FileCache)
    try:
        return await _serve_cached(request, cache.resolve(root, tileset, path), settings.cache_max_age)
    except NotFound:                # gone, or no longer a plain file: resolve afresh (NotFound if outside)
        cache.forget(root, tileset, path)
        return await _serve_cached(request, cache.resolve(root, tileset, path), settings.cache_max_age)


tile_file.open_query = True      # static files: clients add their own query strings (cache busting, page options)


# ----------------------------------------------------------------------------------------- 2D map tiles (XYZ)
#
# Pyramids written by `tiles.raster_xyz_tiles` / `tiles.vector_tiles` under <tiles root>/maps/<id>/{z}/{x}/{y}.png
# or .mvt (with tiles.json) are served in the OGC API - Tiles form; z, y and x are typed integers.

MapId = Annotated[str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", description="A map tile set (layer) id")]
Z = Annotated[int, Path(ge=0, le=24, description="Zoom level (tile matrix)")]
Row = Annotated[int, Path(ge=0, le=2**24 - 1, description="Tile row (y), 0 at the north")]
Col = Annotated[int, Path(ge=0, le=2**24 - 1, description="Tile column (x), 0 at the west")]
_MEDIA = {"png": "image/png", "mvt": "application/vnd.mapbox-vector-tile"}
_TILE = {200: {"description": "The tile", "content": {"image/png": {}, "application/vnd.mapbox-vector-tile": {}}},
         204: {"description": "No data in this tile"}, 304: {"description": "Not modified"}}


#: where a layer's pyramid may be, under the tiles root: maps/<id>, or as `cim tiles build` writes them (a
#: buildings layer's vector tiles in <id>/mvt, a terrain's hillshade in <id>/hillshade, other vector layers in <id>)
_PYRAMID_PLACES = ("maps/{}", "{}/mvt", "{}/hillshade", "{}")


def _pyramid(scene, settings, map_id: str) -> FsPath | None:
    root = tiles_root(scene, settings)
    for place in _PYRAMID_PLACES:
        folder = root / place.format(map_id)
        if not os.path.isfile(folder / "tiles.json"):      # one stat each; realpath only for pyramids
            continue
        path = folder.resolve()
        if path.is_relative_to(root) and (path / "tiles.json").is_file():
            return path
        return None
    return None


def _plain_dirs(folder: FsPath, *parts: str) -> bool:
    """True when each of ``folder/parts[0]``, ``folder/parts[0]/parts[1]``, ... is a directory and not a link, so
    that a file below them (itself checked by `_serve_cached`) lies in ``folder``, which is resolved."""
    path = folder
    for part in parts:
        path = path / part
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return False
        except OSError:
            return False
    return True


class RasterTiles:
    """Map tiles of the scene's raster flood-depth layers (kind ``flood_result``, units m, a GeoTIFF), rendered
    on request by `tiles.maptiles.DepthTiles` and kept in an LRU cache of PNG bytes keyed by the layer's version
    (the file's inode, size and mtime) and z/y/x. Replacing the layer makes a new version: its old tiles are never
    served again and age out of the cache. Thread-safe; one per app (each worker process has its own)."""

    def __init__(self, max_tiles: int = 8192, max_layers: int = 8) -> None:
        self.max_tiles, self.max_layers = max_tiles, max_layers
        self._lock = threading.Lock()
        self._layers: dict[str, tuple[tuple, object]] = {}          # name -> (version, DepthTiles)
        self._tiles: OrderedDict[tuple, tuple[bytes, str] | None] = OrderedDict()
        self._pending: dict[tuple, asyncio.Future] = {}           # loads and renders under way (event loop only)

    @staticmethod
    def _version(path: FsPath) -> tuple | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def cached(self, name: str):
        """``(version, DepthTiles)`` of layer ``name`` if loaded and its file unchanged (a stat, no database)."""
        cached = self._layers.get(name)
        if cached is not None and self._version(cached[1].path) == cached[0]:
            return cached
        return None

    def layer(self, scene, name: str):
        """``(version, DepthTiles)`` of layer ``name``, or None when it is not a raster depth layer."""
        cached = self.cached(name)
        if cached is not None:
            return cached
        try:
            info = scene.layer_info(name)
        except cim.LayerNotFoundError:
            return None
        if info.storage != "raster" or info.kind != "flood_result" or info.units != "m" or \
                not str(info.location).endswith(".tif"):
            return None
        from tiles.maptiles import DepthTiles

        path = scene.store.path(info.location)
        version = self._version(path)
        if version is None:
            return None
        entry = (version, DepthTiles(path))
        with self._lock:
            self._layers[name] = entry
            while len(self._layers) > self.max_layers:
                self._layers.pop(next(iter(self._layers)))
        return entry

    async def once(self, key: tuple, fn, *args):
        """``fn(*args)`` in a worker thread, once for all the requests that want ``key`` at the same time (64
        clients asking for a new layer's tiles make one load and one render per tile, not 64)."""
        while (pending := self._pending.get(key)) is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():     # this request was cancelled, not the one doing the work
                    raise
        pending = self._pending[key] = asyncio.get_running_loop().create_future()
        try:
            result = await anyio.to_thread.run_sync(fn, *args)
        except asyncio.CancelledError:
            pending.cancel()                    # the waiters do the work themselves
            raise
        except Exception as exc:
            pending.set_exception(exc)
            pending.exception()                 # retrieved: waiters re-raise it, nobody else has to
            raise
        finally:
            self._pending.pop(key, None)
        pending.set_result(result)
        return result

    def get(self, key: tuple) -> tuple[bytes, str] | bool | None:
        """The cached ``(png, etag)`` (None for an empty tile), or False when not cached."""
        with self._lock:
            try:
                self._tiles.move_to_end(key)
                return self._tiles[key]
            except KeyError:
                return False

    def put(self, key: tuple, value: tuple[bytes, str] | None) -> None:
        with self._lock:
            self._tiles[key] = value
            while len(self._tiles) > self.max_tiles:
                self._tiles.popitem(last=False)


def _raster_tiles(request: Request) -> RasterTiles:
    return _state_cache(request, "raster_tiles", RasterTiles)


def _render(depth_tiles, z: int, x: int, y: int) -> tuple[bytes, str] | None:
    png = depth_tiles.tile(z, x, y)
    return None if png is None else (png, '"' + hashlib.sha256(png).hexdigest()[:32] + '"')


@router.get("/collections/{collectionId}/tiles", summary="Map tile sets of a collection", responses=ERRORS)
def map_tilesets(request: Request, scene: SceneDep, settings: SettingsDep, _: ReadCaller,
                 collectionId: MapId) -> dict:
    import json

    folder = _pyramid(scene, settings, collectionId)
    if folder is not None:
        meta = json.loads((folder / "tiles.json").read_text())
        ext = "mvt" if str(meta.get("tiles", [""])[0]).endswith(".mvt") else "png"
    else:
        layer = _raster_tiles(request).layer(scene, collectionId)
        if layer is None:
            raise NotFound(f"no map tiles for {collectionId!r}: see /collections/{collectionId}/tiles")
        meta = {"minzoom": 0, "maxzoom": layer[1].max_zoom, "bounds": list(layer[1].lonlat_bounds())}
        ext = "png"
    b = str(request.base_url).rstrip("/")
    return {"tilesets": [{
        "title": collectionId, "tileMatrixSetURI": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857", "dataType": "vector" if ext == "mvt" else "map",
        "minzoom": meta.get("minzoom"), "maxzoom": meta.get("maxzoom"), "bounds": meta.get("bounds"),
        "links": [{"href": f"{b}/collections/{collectionId}/tiles/WebMercatorQuad/{{tileMatrix}}/{{tileRow}}/"
                           f"{{tileCol}}", "rel": "item", "type": _MEDIA[ext], "templated": True}]}]}


@router.get("/collections/{collectionId}/tiles/WebMercatorQuad/{z}/{y}/{x}", summary="A map tile (PNG or MVT)",
            response_class=Response, responses={**ERRORS, **_TILE})
async def map_tile(request: Request, _: ReadCaller, collectionId: MapId, z: Z, y: Row, x: Col) -> Response:
    if x >= 2**z or y >= 2**z:
        raise NotFound(f"tile {z}/{y}/{x} is outside the WebMercatorQuad matrix {z} (0..{2**z - 1})")
    scene, settings = request.app.state.scene, request.app.state.settings
    max_age = settings.cache_max_age
    cache = _raster_tiles(request)
    layer = cache.cached(collectionId)              # a flood layer already rendering: no file lookups
    folder = _pyramid(scene, settings, collectionId) if layer is None else None
    if folder is not None:                          # a pyramid written by `tiles` (e.g. `cim tiles build`)
        for ext in ("png", "mvt"):
            path = folder / str(z) / str(x) / f"{y}.{ext}"
            if path.is_file():
                if not _plain_dirs(folder, str(z), str(x)):
                    raise NotFound("no such tile file")
                response = await _serve_cached(request, path, max_age)
                if response.status_code == 200:
                    response.headers["content-type"] = _MEDIA[ext]
                return response
        return Response(status_code=204, headers={"Cache-Control": f"public, max-age={max_age}"})
    if layer is None:
        layer = await cache.once(("layer", collectionId), cache.layer, scene, collectionId)
        if layer is None:
            raise NotFound(f"no map tiles for {collectionId!r}: see /collections/{collectionId}/tiles")
    key = (collectionId, layer[0], z, y, x)
    tile = cache.get(key)
    if tile is False:
        if layer[1].in_memory:          # well under a millisecond: cheaper than a hop to a worker thread
            tile = _render(layer[1], z, x, y)
        else:
            tile = await cache.once(key, _render, layer[1], z, x, y)
        cache.put(key, tile)
    if tile is None:
        return Response(status_code=204, headers={"Cache-Control": f"public, max-age={max_age}"})
    png, etag = tile
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    inm = request.headers.get("if-none-match")
    if inm and etag in [t.strip() for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(png, media_type="image/png", headers=headers)


# ----------------------------------------------------------------------------------------------------- viewer
#
# The CesiumJS page written by `tiles.write_viewer` into the tiles root (index.html, viewer.js, its config and a
# `cesium` link to the Cesium build). Browsers load it without headers: enable CIM_ANONYMOUS_READ to use it.

ViewerPath = Annotated[str, Path(max_length=1024, description="A file of the viewer page")]


@viewer.get("/viewer", summary="The 3D viewer (CesiumJS)", include_in_schema=False)
def viewer_root() -> Response:
    return Response(status_code=308, headers={"Location": "/viewer/"})


@viewer.get("/viewer/{path:path}", summary="The 3D viewer page and its files", response_class=FileResponse,
            responses={**ERRORS, **_FILE})
def viewer_file(request: Request, scene: SceneDep, settings: SettingsDep, _: ReadCaller, path: ViewerPath) -> Response:
    root = tiles_root(scene, settings)
    cesium = (root / "cesium").resolve()        # a link to the Cesium build outside the root is allowed, nothing else
    target = resolve(root, path or "index.html", also=(cesium,) if cesium.is_dir() else ())
    return _serve(request, target, settings.cache_max_age)


viewer_file.open_query = True    # the page reads its own options from the query string (?sse=0&pitch=-70)
