"""Triangle meshes: the 3D surfaces of city objects and BIM elements, in the scene CRS (x east, y north, z up).

A mesh is stored in a vector layer as a MultiPolygon Z of triangles (one polygon per triangle), which round-trips
through GeoPackage and PostGIS; `TriangleMesh` is the array form that tiles and analyses work with.

>>> from shapely import Polygon
>>> square = Polygon([(0, 0, 1), (2, 0, 1), (2, 2, 1), (0, 2, 1)])
>>> m = TriangleMesh.from_polygons([square])
>>> m.n_triangles, float(m.area())
(2, 4.0)
>>> TriangleMesh.from_multipolygon(m.to_multipolygon()).n_triangles
2
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from cim.errors import ValidationError

__all__ = ["TriangleMesh", "triangulate_polygon"]


@dataclass(frozen=True, eq=False)
class TriangleMesh:
    """Vertices ``(n, 3)`` float64 and triangles ``(m, 3)`` int64 (counter-clockwise seen from outside)."""

    vertices: np.ndarray
    triangles: np.ndarray

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        t = np.ascontiguousarray(self.triangles, dtype=np.int64).reshape(-1, 3)
        if t.size and (t.min() < 0 or t.max() >= len(v)):
            raise ValidationError(f"TriangleMesh: triangle indices must lie in 0..{len(v) - 1}")
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "triangles", t)

    @property
    def n_triangles(self) -> int:
        return len(self.triangles)

    @property
    def bounds(self) -> tuple[float, float, float, float, float, float]:
        """(xmin, ymin, zmin, xmax, ymax, zmax)."""
        if not len(self.vertices):
            return (np.nan,) * 6
        return (*self.vertices.min(axis=0), *self.vertices.max(axis=0))

    def normals(self) -> np.ndarray:
        """Unit normal per triangle, ``(m, 3)`` (zero for degenerate triangles)."""
        a, b, c = (self.vertices[self.triangles[:, i]] for i in range(3))
        n = np.cross(b - a, c - a)
        length = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, length, out=np.zeros_like(n), where=length > 0)

    def area(self) -> float:
        a, b, c = (self.vertices[self.triangles[:, i]] for i in range(3))
        return float(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())

    def translated(self, dx: float, dy: float, dz: float = 0.0) -> TriangleMesh:
        return TriangleMesh(self.vertices + np.array([dx, dy, dz]), self.triangles)

    @classmethod
    def merge(cls, meshes: Sequence[TriangleMesh]) -> TriangleMesh:
        """One mesh from many (vertex indices offset)."""
        if not meshes:
            return cls(np.empty((0, 3)), np.empty((0, 3), np.int64))
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        return cls(np.vstack([m.vertices for m in meshes]),
                   np.vstack([m.triangles + o for m, o in zip(meshes, offsets, strict=True)]))

    @classmethod
    def from_polygons(cls, polygons: Iterable[BaseGeometry]) -> TriangleMesh:
        """Triangulate planar 3D polygons (with holes) into one mesh; orientation follows each outer ring."""
        parts = [triangulate_polygon(p) for p in polygons]
        return cls.merge([p for p in parts if p.n_triangles])

    def to_multipolygon(self) -> shapely.MultiPolygon:
        """A MultiPolygon Z with one closed triangular polygon per triangle."""
        tri = self.vertices[self.triangles]                       # (m, 3, 3)
        rings = np.concatenate([tri, tri[:, :1]], axis=1)         # close each ring
        return shapely.MultiPolygon(list(shapely.polygons(rings)))

    @classmethod
    def from_multipolygon(cls, geom: BaseGeometry) -> TriangleMesh:
        """Inverse of `to_multipolygon`; polygons that are not triangles are triangulated."""
        polys = list(shapely.get_parts(geom))
        coords = [shapely.get_coordinates(shapely.get_exterior_ring(p), include_z=True) for p in polys]
        if polys and all(len(c) == 4 for c in coords) and not any(shapely.get_num_interior_rings(polys)):
            v = np.stack([c[:3] for c in coords]).reshape(-1, 3)
            return cls(v, np.arange(len(v)).reshape(-1, 3))
        return cls.from_polygons(polys)


def triangulate_polygon(polygon: BaseGeometry) -> TriangleMesh:
    """Triangulate one planar polygon in 3D (holes kept) by ear clipping in its own plane.

    The plane's normal comes from Newell's method on the outer ring; triangles keep the outer ring's orientation.
    """
    import mapbox_earcut as earcut

    if polygon.is_empty:
        return TriangleMesh(np.empty((0, 3)), np.empty((0, 3), np.int64))
    rings = [polygon.exterior, *polygon.interiors]
    pts, ends = [], []
    for ring in rings:
        c = shapely.get_coordinates(ring, include_z=True)[:-1]
        if c.shape[1] == 2 or np.isnan(c[:, 2]).all():
            c = np.column_stack([c[:, :2], np.zeros(len(c))])
        pts.append(c)
        ends.append(sum(len(p) for p in pts))
    v = np.vstack(pts)
    outer = pts[0]
    normal = np.zeros(3)
    for i in range(len(outer)):                                    # Newell's method
        a, b = outer[i], outer[(i + 1) % len(outer)]
        normal += [(a[1] - b[1]) * (a[2] + b[2]), (a[2] - b[2]) * (a[0] + b[0]), (a[0] - b[0]) * (a[1] + b[1])]
    drop = int(np.argmax(np.abs(normal)))
    keep = [i for i in range(3) if i != drop]
    flat = np.ascontiguousarray(v[:, keep])
    idx = np.asarray(earcut.triangulate_float64(flat, np.asarray(ends, np.uint32)), np.int64).reshape(-1, 3)
    if len(idx):
        a, b, c = v[idx[:, 0]], v[idx[:, 1]], v[idx[:, 2]]
        flip = np.einsum("ij,j->i", np.cross(b - a, c - a), normal) < 0
        idx[flip] = idx[flip][:, ::-1]
    return TriangleMesh(v, idx)
