"""Vectorised mesh building: LoD1 extrusion of footprints and flat-shaded triangle meshes, as plain arrays.

Everything stays in the scene CRS (x east, y north, z up) and float64; placement on the globe happens in the tiler.
A `FeatureMeshes` keeps each feature's vertices contiguous and in feature order, so a tile's content is a slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely


@dataclass
class FeatureMeshes:
    """Triangles of many features. Vertex ``v`` sits at ``points[vertex_point[v]]`` and belongs to feature
    ``vertex_feature[v]`` (non-decreasing); triangles are sorted by feature."""

    points: np.ndarray          # (p, 3) float64, scene CRS
    vertex_point: np.ndarray    # (n,) int64
    normals: np.ndarray         # (n, 3) float32, scene CRS axes
    triangles: np.ndarray       # (m, 3) int64 vertex indices
    vertex_feature: np.ndarray  # (n,) int64, sorted
    n_features: int
    lift_from: np.ndarray | None = None   # (p,) for each point, a point straight below it (same x, y) or -1

    def ecef(self, crs) -> np.ndarray:
        """ECEF of the points (float64). Points with a point straight below them are placed along the ellipsoid
        normal from it (same x, y; z is a height above the same surface), which halves the PROJ calls."""
        from tiles import _geo

        if self.lift_from is None:
            return _geo.to_ecef(crs, self.points)
        base = self.lift_from < 0
        out = np.empty_like(self.points)
        out[base] = _geo.to_ecef(crs, self.points[base])
        src = self.lift_from[~base]
        dz = self.points[~base, 2] - self.points[src, 2]
        out[~base] = out[src] + dz[:, None] * _geo.up_vectors(out[src])
        return out

    def feature_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """Start offsets (n_features + 1) of each feature's vertices and triangles."""
        f = np.arange(self.n_features + 1)
        v = np.searchsorted(self.vertex_feature, f)
        tri_feat = self.vertex_feature[self.triangles[:, 0]] if len(self.triangles) else np.empty(0, np.int64)
        t = np.searchsorted(tri_feat, f)
        return v, t

    @classmethod
    def empty(cls) -> FeatureMeshes:
        return cls(np.empty((0, 3)), np.empty(0, np.int64), np.empty((0, 3), np.float32),
                   np.empty((0, 3), np.int64), np.empty(0, np.int64), 0)


def _sorted_by_feature(points, vertex_point, normals, triangles, vertex_feature, n_features,
                       lift_from=None) -> FeatureMeshes:
    order = np.argsort(vertex_feature, kind="stable")
    new_index = np.empty_like(order)
    new_index[order] = np.arange(len(order))
    tris = new_index[triangles]
    tri_feat = vertex_feature[triangles[:, 0]]
    tris = tris[np.argsort(tri_feat, kind="stable")]
    return FeatureMeshes(points, vertex_point[order], normals[order].astype(np.float32), tris,
                         vertex_feature[order], n_features, lift_from)


def extrude(geoms: np.ndarray, base: np.ndarray, top: np.ndarray, *, floor: bool = False) -> FeatureMeshes:
    """LoD1 blocks: footprint (Multi)Polygons extruded from ``base`` to ``top`` (one value per feature).

    Roofs are ear-clipped with their holes, walls are one quad per ring edge with outward normals (exterior
    rings counter-clockwise, holes clockwise), and ``floor=True`` also closes the bottom.
    """
    import mapbox_earcut as earcut

    geoms = np.asarray(geoms, dtype=object)
    if (shapely.get_type_id(geoms) == 3).all():          # only Polygons: no need to split multi-parts
        parts, part_feature = geoms, np.arange(len(geoms))
    else:
        parts, part_feature = shapely.get_parts(geoms, return_index=True)
        keep = shapely.get_type_id(parts) == 3
        parts, part_feature = parts[keep], part_feature[keep]
    parts = shapely.orient_polygons(parts, exterior_cw=False)     # z is ignored below (get_coordinates 2D)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    # drop each ring's closing vertex and repeated consecutive vertices
    last = np.r_[coord_ring[1:] != coord_ring[:-1], True]
    dup = np.r_[False, (coord_ring[1:] == coord_ring[:-1]) & (np.abs(np.diff(coords, axis=0)).sum(axis=1) == 0)]
    keepc = ~last & ~dup
    coords, coord_ring = coords[keepc], coord_ring[keepc]
    n_rings = len(rings)
    ring_len = np.bincount(coord_ring, minlength=n_rings)
    ring_start = np.r_[0, np.cumsum(ring_len)[:-1]]
    r = len(coords)
    feat_of_coord = part_feature[ring_part[coord_ring]]
    b, t = np.asarray(base, np.float64), np.asarray(top, np.float64)
    points = np.empty((2 * r, 3))
    points[:r, :2] = coords
    points[r:, :2] = coords
    points[:r, 2] = b[feat_of_coord]
    points[r:, 2] = t[feat_of_coord]

    # walls: edge i -> next(i) within the ring
    idx = np.arange(r)
    nxt = idx + 1
    ring_end = ring_start + ring_len
    wrap = nxt == ring_end[coord_ring]
    nxt[wrap] = ring_start[coord_ring[wrap]]
    d = coords[nxt] - coords[idx]
    length = np.hypot(d[:, 0], d[:, 1])
    ok = (length > 0) & (ring_len[coord_ring] >= 3)
    i, j, d, length = idx[ok], nxt[ok], d[ok], length[ok]
    nw = len(i)
    wall_vp = np.column_stack([i, j, r + j, r + i]).reshape(-1)
    wn = np.column_stack([d[:, 1] / length, -d[:, 0] / length, np.zeros(nw)])
    wall_normals = np.repeat(wn, 4, axis=0)
    q = np.arange(nw)[:, None] * 4
    wall_tris = np.vstack([np.column_stack([q, q + 1, q + 2]), np.column_stack([q, q + 2, q + 3])]).reshape(2, nw, 3)
    wall_tris = wall_tris.transpose(1, 0, 2).reshape(-1, 3)
    wall_feat = np.repeat(feat_of_coord[i], 4)

    # roofs: convex single-ring footprints (most of them) as fans, vectorised; the rest by ear clipping in 2D
    # with their holes kept
    rings_per_part = np.bincount(ring_part, minlength=len(parts))
    first_ring = np.r_[0, np.cumsum(rings_per_part)[:-1]]
    prv = idx - 1
    first = idx == ring_start[coord_ring]
    prv[first] = (ring_end - 1)[coord_ring[first]]
    e1, e2 = coords[idx] - coords[prv], coords[nxt] - coords[idx]
    turn = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    concave = np.bincount(coord_ring, weights=(turn < 0), minlength=n_rings) > 0
    fan_part = (rings_per_part == 1) & (ring_len[first_ring] >= 3) & ~concave[first_ring]
    fr = first_ring[fan_part]
    n_tri = ring_len[fr] - 2
    start = np.repeat(ring_start[fr], n_tri)
    k = np.arange(n_tri.sum()) - np.repeat(np.cumsum(n_tri) - n_tri, n_tri) + 1
    roof_tris = [np.column_stack([start, start + k, start + k + 1])]
    for p in np.flatnonzero(~fan_part).tolist():
        r0, nr = int(first_ring[p]), int(rings_per_part[p])
        if nr == 0 or ring_len[r0] < 3:
            continue
        v0 = int(ring_start[r0])
        ends = np.cumsum(ring_len[r0:r0 + nr]).astype(np.uint32)
        tri = earcut.triangulate_float64(coords[v0:v0 + int(ends[-1])], ends)
        if len(tri):
            roof_tris.append(np.asarray(tri, np.int64).reshape(-1, 3) + v0)
    roof_tris = np.concatenate(roof_tris).reshape(-1, 3).astype(np.int64)
    a, bb, c = coords[roof_tris[:, 0]], coords[roof_tris[:, 1]], coords[roof_tris[:, 2]]
    cross = (bb[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (bb[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    roof_tris[cross < 0] = roof_tris[cross < 0][:, ::-1]           # counter-clockwise from above: normal +z
    roof_tris = roof_tris[cross != 0]

    # assemble: roof vertices (one per ring vertex, at the top), walls, optional floor
    vp = [r + idx, wall_vp]
    nrm = [np.tile([0.0, 0.0, 1.0], (r, 1)), wall_normals]
    tris = [roof_tris, wall_tris + r]
    vfeat = [feat_of_coord, wall_feat]
    if floor:
        off = r + 4 * nw
        vp.append(idx)
        nrm.append(np.tile([0.0, 0.0, -1.0], (r, 1)))
        tris.append(roof_tris[:, ::-1] + off)
        vfeat.append(feat_of_coord)
    lift = np.r_[np.full(r, -1), np.arange(r)]           # roof/top points stand on the base points
    return _sorted_by_feature(points, np.concatenate(vp), np.vstack(nrm), np.vstack(tris),
                              np.concatenate(vfeat), len(geoms), lift)


def from_triangle_soup(tri_xyz: np.ndarray, tri_feature: np.ndarray, n_features: int,
                       *, smooth_normals: np.ndarray | None = None) -> FeatureMeshes:
    """Flat-shaded meshes from triangles ``(m, 3, 3)`` (counter-clockwise seen from outside) and their features."""
    tri_xyz = np.asarray(tri_xyz, np.float64).reshape(-1, 3, 3)
    a, b, c = tri_xyz[:, 0], tri_xyz[:, 1], tri_xyz[:, 2]
    n = np.cross(b - a, c - a)
    ln = np.linalg.norm(n, axis=1, keepdims=True)
    good = ln[:, 0] > 0
    tri_xyz, n, ln = tri_xyz[good], n[good], ln[good]
    tri_feature = np.asarray(tri_feature, np.int64)[good]
    m = len(tri_xyz)
    normals = np.repeat(n / ln, 3, axis=0)
    points = tri_xyz.reshape(-1, 3)
    vp = np.arange(3 * m)
    return _sorted_by_feature(points, vp, normals, vp.reshape(-1, 3), np.repeat(tri_feature, 3), n_features)


def grid_surface(x: np.ndarray, y: np.ndarray, z: np.ndarray, cell_feature: np.ndarray,
                 n_features: int) -> FeatureMeshes:
    """A height-field surface over grid nodes ``z (ny, nx)`` at ``x (nx,)``, ``y (ny,)``; cells whose four corners
    are finite and whose ``cell_feature (ny-1, nx-1)`` is >= 0 become two triangles of that feature.

    Vertices are shared within a feature, so normals are smooth (from the grid's gradient)."""
    z = np.asarray(z, np.float64)
    ny, nx = z.shape
    gy, gx = np.gradient(z, y, x) if ny > 1 and nx > 1 else (np.zeros_like(z), np.zeros_like(z))
    nrm = np.stack([-gx, -gy, np.ones_like(z)], axis=-1)
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    nrm[~np.isfinite(nrm).all(axis=-1)] = (0.0, 0.0, 1.0)       # next to no-data: gradient unknown, face up
    fin = np.isfinite(z)
    ok = fin[:-1, :-1] & fin[1:, :-1] & fin[:-1, 1:] & fin[1:, 1:] & (cell_feature >= 0)
    cy, cx = np.nonzero(ok)
    feat = cell_feature[cy, cx]
    # node ids of the four corners
    n00, n01 = cy * nx + cx, cy * nx + cx + 1
    n10, n11 = (cy + 1) * nx + cx, (cy + 1) * nx + cx + 1
    # vertices are (feature, node) pairs so that each feature's vertices are its own
    corners = np.column_stack([n00, n01, n11, n10])
    keys = feat[:, None].astype(np.int64) * (nx * ny) + corners
    uniq, inv = np.unique(keys.reshape(-1), return_inverse=True)
    inv = inv.reshape(-1, 4)
    node = uniq % (nx * ny)
    vfeat = uniq // (nx * ny)
    xx, yy = np.meshgrid(x, y)
    points = np.column_stack([xx.reshape(-1), yy.reshape(-1), np.where(fin, z, 0).reshape(-1)])
    # counter-clockwise from above, whatever the sign of the grid spacing
    dx = np.sign(x[1] - x[0]) if nx > 1 else 1.0
    dy = np.sign(y[1] - y[0]) if ny > 1 else 1.0
    t1 = inv[:, [0, 1, 2]]
    t2 = inv[:, [0, 2, 3]]
    tris = np.vstack([t1, t2])
    if dx * dy < 0:
        tris = tris[:, ::-1]
    return _sorted_by_feature(points, node, nrm.reshape(-1, 3)[node], tris, vfeat, n_features)
