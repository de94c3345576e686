"""Spatial quadtree tiling of feature meshes into a 3D Tiles tileset (explicit tiling).

Each tile gets a transform to the local east-north-up frame at its centre (float64 in tileset.json, relative to its
parent's), content vertices in float32 relative to that frame, and an oriented box in the same frame that contains
its content and its children's boxes. Leaves hold the full-detail meshes (geometric error 0); inner tiles hold a
coarser representation given by the caller (``refine: REPLACE``) with a geometric error that is at least the error
the caller reports and strictly larger than their children's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pyproj import CRS

from tiles import _geo
from tiles._extrude import FeatureMeshes
from tiles._glb import MeshData, encode_b3dm, encode_glb

log = logging.getLogger(__name__)

Format = Literal["glb", "b3dm"]
MIN_HALF = 0.05          # metres: boxes never collapse to zero thickness (flat water, terrain)


@dataclass
class Node:
    depth: int
    ix: int
    iy: int
    bounds: tuple[float, float, float, float]
    features: np.ndarray                    # global feature indices in this subtree
    children: list[Node] = field(default_factory=list)
    start: int = 0                          # leaves: range in the leaf order
    stop: int = 0
    frame: np.ndarray | None = None         # 4x4 local -> ECEF
    box_min: np.ndarray | None = None
    box_max: np.ndarray | None = None
    error: float = 0.0
    content: str | None = None
    n_features: int = 0

    @property
    def name(self) -> str:
        return f"{self.depth}-{self.ix}-{self.iy}"


def quadtree(anchors: np.ndarray, max_features: int, max_depth: int = 12) -> tuple[Node, np.ndarray]:
    """Split the anchors' extent into quadrants until each leaf has at most ``max_features``.

    Returns the root and the order of features (leaves' features are contiguous, in depth-first order)."""
    xy = np.asarray(anchors, np.float64)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    size = max(float((hi - lo).max()), 1e-6) * (1 + 1e-9)
    root = Node(0, 0, 0, (lo[0], lo[1], lo[0] + size, lo[1] + size), np.arange(len(xy)))
    order: list[np.ndarray] = []
    stack = [root]
    pos = 0
    while stack:
        node = stack.pop()
        x0, y0, x1, y1 = node.bounds
        if len(node.features) <= max_features or node.depth >= max_depth:
            node.start, node.stop = pos, pos + len(node.features)
            pos = node.stop
            order.append(node.features)
            continue
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        p = xy[node.features]
        right, top = p[:, 0] >= mx, p[:, 1] >= my
        for qx in (0, 1):
            for qy in (0, 1):
                sel = node.features[(right == bool(qx)) & (top == bool(qy))]
                if len(sel):
                    b = (mx if qx else x0, my if qy else y0, x1 if qx else mx, y1 if qy else my)
                    node.children.append(Node(node.depth + 1, node.ix * 2 + qx, node.iy * 2 + qy, b, sel))
        stack.extend(reversed(node.children))
    return root, (np.concatenate(order) if order else np.empty(0, np.int64))


def _walk(node: Node):
    for c in node.children:
        yield from _walk(c)
    yield node


class Tiler:
    """Writes one tileset from feature meshes. See `write`."""

    def __init__(self, crs: CRS, out_dir: Path, *, fmt: Format = "glb", class_name: str = "building",
                 color=(0.85, 0.82, 0.76, 1.0), quantize: bool = False) -> None:
        self.crs, self.out, self.fmt, self.class_name, self.color = crs, Path(out_dir), fmt, class_name, color
        self.quantize = quantize
        self.files: list[Path] = []

    def _content(self, node: Node, mesh: FeatureMeshes, ecef: np.ndarray, vsl: slice, tsl: slice,
                 props: pd.DataFrame, first_feature: int, extra: dict[str, np.ndarray] | None = None) -> None:
        """Place one tile's content in its frame and write it."""
        vp = mesh.vertex_point[vsl]
        pe = ecef[vp]
        lo, hi = pe.min(axis=0), pe.max(axis=0)
        node.frame = _geo.enu_matrix((lo + hi) / 2)
        local = _geo.to_local(node.frame, pe)
        rot = _geo.crs_axes_in_frame(self.crs, _geo.from_ecef(self.crs, node.frame[:3, 3])[0], node.frame)
        normals = mesh.normals[vsl].astype(np.float64) @ rot.T
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        tris = mesh.triangles[tsl] - vsl.start
        data = MeshData(local, normals, tris, mesh.vertex_feature[vsl] - first_feature,
                        props.reset_index(drop=True), color=self.color, class_name=self.class_name,
                        extra_vertex={k: v[vsl] for k, v in (extra or {}).items()})
        node.box_min, node.box_max = local.min(axis=0), local.max(axis=0)
        node.n_features = len(props)
        node.content = f"tiles/{node.name}.{self.fmt}"
        path = self.out / node.content
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_glb(data, quantize=self.quantize) if self.fmt == "glb"
                         else encode_b3dm(data, quantize=self.quantize))
        self.files.append(path)

    def write(self, anchors: np.ndarray, properties: pd.DataFrame,
              make_mesh: Callable[[np.ndarray], FeatureMeshes], *,
              max_features: int = 1000,
              coarse: Callable[[np.ndarray, int], tuple[FeatureMeshes, np.ndarray, float] | None] | None = None,
              vertex_attributes: Callable[[FeatureMeshes, np.ndarray], dict[str, np.ndarray]] | None = None,
              tileset_extras: dict | None = None) -> Path:
        """Tile features.

        anchors: (F, 2) a point per feature (where it is binned); properties: F rows of metadata;
        make_mesh(order): the meshes of features ``order`` renumbered 0..len(order)-1;
        coarse(features, depth): ``(meshes, kept_features, geometric_error)`` for an inner tile, or None.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        root, order = quadtree(anchors, max_features)
        mesh = make_mesh(order)
        ecef = mesh.ecef(self.crs)
        vstart, tstart = mesh.feature_ranges()
        extra = vertex_attributes(mesh, order) if vertex_attributes else None
        for node in _walk(root):
            if not node.children:
                a, b = node.start, node.stop
                self._content(node, mesh, ecef, slice(vstart[a], vstart[b]), slice(tstart[a], tstart[b]),
                              properties.iloc[order[a:b]], a, extra)
                node.error = 0.0
                continue
            child_error = max(c.error for c in node.children)
            own = 0.0
            made = coarse(node.features, node.depth) if coarse else None
            if made is not None and made[0].n_features:
                cm, kept, own = made
                cecef = cm.ecef(self.crs)
                cv, ct = cm.feature_ranges()
                self._content(node, cm, cecef, slice(0, cv[-1]), slice(0, ct[-1]), properties.iloc[kept], 0)
            else:
                # no content: frame at the centre of the children
                centres = np.array([c.frame[:3, 3] for c in node.children])
                node.frame = _geo.enu_matrix(centres.mean(axis=0))
            node.error = float(max(own, 2.0 * child_error, 1.0))
            # the box contains the children's boxes
            corners = []
            for c in node.children:
                cc = _box_corners(c.box_min, c.box_max)
                world = cc @ c.frame[:3, :3].T + c.frame[:3, 3]
                corners.append(_geo.to_local(node.frame, world))
            corners = np.vstack(corners)
            lo, hi = corners.min(axis=0), corners.max(axis=0)
            if node.box_min is not None:
                lo, hi = np.minimum(lo, node.box_min), np.maximum(hi, node.box_max)
            node.box_min, node.box_max = lo, hi
        tileset = {
            "asset": {"version": "1.1" if self.fmt == "glb" else "1.0", "generator": "cim-twin tiles"},
            "geometricError": max(2.0 * root.error, float(np.linalg.norm(root.box_max - root.box_min))),
            "root": self._tile_json(root, None),
        }
        tileset["root"]["refine"] = "REPLACE"
        if tileset_extras:
            tileset["extras"] = tileset_extras
        path = self.out / "tileset.json"
        path.write_text(json.dumps(tileset, indent=1))
        return path

    def _tile_json(self, node: Node, parent: Node | None) -> dict:
        rel = node.frame if parent is None else np.linalg.solve(parent.frame, node.frame)
        rel[3] = [0.0, 0.0, 0.0, 1.0]
        centre = (node.box_min + node.box_max) / 2
        half = np.maximum((node.box_max - node.box_min) / 2, MIN_HALF)
        tile = {
            "transform": [float(v) for v in rel.T.reshape(-1)],       # column-major
            "boundingVolume": {"box": [*map(float, centre), float(half[0]), 0.0, 0.0, 0.0, float(half[1]), 0.0,
                                       0.0, 0.0, float(half[2])]},
            "geometricError": float(node.error),
        }
        if node.content:
            tile["content"] = {"uri": node.content}
        if node.children:
            tile["children"] = [self._tile_json(c, node) for c in node.children]
        return tile


def _box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    lo, hi = lo - MIN_HALF, hi + MIN_HALF
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
