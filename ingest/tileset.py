"""OGC 3D Tiles tilesets (1.0 and 1.1), checked and kept in the scene as files.

The reader walks the tile tree (following external tilesets), checks that every content and subtree file it
names exists, counts tiles and contents by type, and finds where the tileset lies (a ``region`` bounding volume
in radians, or a ``box``/``sphere`` placed by the root ``transform`` in ECEF) as WGS84 lon/lat bounds. A tileset
whose root volume is not placed on the globe is reported as local. The whole folder is kept in the store.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from cim.errors import DataError
from ingest.base import FileItem, Reader, ReadResult, register

__all__ = ["TilesetReader", "summarise_tileset"]


def _load(path: Path, where: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{where}: cannot read {path.name} as JSON ({exc.__class__.__name__}: {exc}); the "
                        "tileset is truncated or not 3D Tiles: download or export it again") from None
    version = (data.get("asset") or {}).get("version") if isinstance(data, dict) else None
    if version not in ("1.0", "1.1") or not isinstance(data.get("root"), dict):
        raise DataError(f"{where}: {path.name} is not a 3D Tiles tileset (needs asset.version 1.0 or 1.1 and a "
                        f"root tile; found version {version!r})")
    return data


def _lonlat_bounds(tile: dict, transform: list | None) -> list[float] | None:
    """WGS84 (west, south, east, north) degrees of a tile's bounding volume, or None when it is not on the globe."""
    bv = tile.get("boundingVolume") or {}
    if "region" in bv:
        w, s, e, n = bv["region"][:4]
        return [math.degrees(w), math.degrees(s), math.degrees(e), math.degrees(n)]
    if transform is None:
        return None
    m = np.asarray(transform, float).reshape(4, 4).T
    if "box" in bv:
        b = np.asarray(bv["box"], float)
        c, axes = b[:3], b[3:].reshape(3, 3)
        corners = np.array([c + sx * axes[0] + sy * axes[1] + sz * axes[2]
                            for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    elif "sphere" in bv:
        c, r = np.asarray(bv["sphere"][:3], float), float(bv["sphere"][3])
        corners = np.array([c + r * np.array(d) for d in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0))])
    else:
        return None
    ecef = (m @ np.column_stack([corners, np.ones(len(corners))]).T).T[:, :3]
    if np.linalg.norm(ecef, axis=1).min() < 6.0e6:          # not near the Earth's surface: a local frame
        return None
    from pyproj import Transformer

    lon, lat, _ = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True).transform(*ecef.T)
    return [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())]


def _implicit_files(root: Path, tile: dict, where: str) -> tuple[int, int]:
    """(subtree files, content files) present for an implicitly tiled tile, matched by their URI templates."""
    def matching(template: str) -> int:
        pattern = re.escape(template)
        for key in ("level", "x", "y", "z"):
            pattern = pattern.replace(re.escape("{" + key + "}"), r"\d+")
        folder = (root / template).parent
        rx = re.compile(pattern.rsplit("/", 1)[-1] + "$")
        return sum(1 for p in folder.glob("*") if rx.match(p.name)) if folder.is_dir() else 0

    subtrees = tile["implicitTiling"].get("subtrees", {}).get("uri")
    content = (tile.get("content") or {}).get("uri")
    n_sub = matching(subtrees) if subtrees else 0
    if subtrees and n_sub == 0:
        raise DataError(f"{where}: no subtree files match {subtrees!r}; copy the whole tileset folder")
    return n_sub, matching(content) if content else 0


def summarise_tileset(path: str | Path) -> dict[str, Any]:
    """Version, tile and content counts (by file type), implicit subtrees, and lon/lat bounds of a tileset."""
    path = Path(path)
    root_dir = path.parent
    data = _load(path, str(path))
    tiles, contents, subtrees, implicit = 0, Counter(), 0, False
    stack = [(data["root"], path.parent, data["root"].get("transform"))]
    bounds = _lonlat_bounds(data["root"], data["root"].get("transform"))
    while stack:
        tile, base, transform = stack.pop()
        tiles += 1
        if "implicitTiling" in tile:
            implicit = True
            n_sub, n_content = _implicit_files(base, tile, str(path))
            subtrees += n_sub
            contents[Path((tile.get("content") or {}).get("uri", "")).suffix.lower() or "?"] += n_content
        else:
            for content in [tile.get("content")] + list(tile.get("contents") or []):
                if not content:
                    continue
                uri = content.get("uri", content.get("url"))
                target = (base / uri).resolve()
                if not target.is_relative_to(root_dir.resolve()) or not target.is_file():
                    raise DataError(f"{path}: tile content {uri!r} is missing or outside the tileset folder; copy "
                                    "the whole tileset")
                if target.suffix.lower() == ".json":
                    sub = _load(target, f"{path} -> {uri}")
                    stack.append((sub["root"], target.parent, sub["root"].get("transform")))
                else:
                    contents[target.suffix.lower()] += 1
        for child in tile.get("children") or []:
            stack.append((child, base, child.get("transform", transform)))
    return {"version": data["asset"]["version"], "tiles": tiles, "contents": dict(contents), "implicit": implicit,
            "subtrees": subtrees, "geometric_error": float(data.get("geometricError", 0.0)),
            "bounds_lonlat": bounds, "placement": "globe" if bounds else "local"}


@register
class TilesetReader(Reader):
    name = "3dtiles"
    extensions = (".json",)
    options = frozenset({"name"})
    priority = 5
    description = "OGC 3D Tiles tilesets (tileset.json with its content), kept as files"

    def guess_can_open(self, path: Path) -> bool:
        path = Path(path)
        if path.name.lower() == "tileset.json":
            return True
        if path.suffix.lower() != ".json" or path.name.lower().endswith((".city.json", ".geojson")):
            return False
        try:
            head = path.read_text(encoding="utf-8", errors="replace")[:2048]
        except OSError:
            return False
        return '"asset"' in head and '"geometricError"' in head

    def read(self, path: Path, *, name: str | None = None) -> ReadResult:
        path = Path(path)
        summary = summarise_tileset(path)
        result = ReadResult(source=path, format=self.name)
        layer = name or re.sub(r"[^A-Za-z0-9_]", "_", f"tiles_{path.parent.name}")[:63]
        result.files.append(FileItem(layer, path.parent, "tileset", path.name, {**summary, "entry": path.name}))
        return result
