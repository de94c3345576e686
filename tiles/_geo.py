"""Placement on the globe: scene CRS -> ECEF (EPSG:4978) through pyproj in float64, local east-north-up frames.

Axis order is always x = easting, y = northing (``always_xy=True``), also for northing-first CRSs such as
CGCS2000 Gauss-Krüger (EPSG:4547). Heights are passed to PROJ as they are; where PROJ has no geoid grid for a
compound CRS (e.g. NAP in EPSG:7415 offline) they end up as ellipsoidal heights, which keeps placement exact
relative to the CRS and consistent in both directions.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pyproj import CRS, Transformer

from cim.errors import CRSError


def check_crs(crs, what: str) -> CRS:
    """A projected CRS in metres, or a CRSError naming the input and the fix."""
    if crs is None:
        raise CRSError(f"{what} has no CRS: set one first (e.g. gdf.set_crs('EPSG:28992'))")
    crs = CRS.from_user_input(crs)
    horizontal = crs.sub_crs_list[0] if crs.is_compound else crs
    if not horizontal.is_projected:
        raise CRSError(f"{what} is in {crs.name!r}, not a projected CRS: reproject it to a projected CRS in metres "
                       "(gdf.to_crs(...), e.g. the scene CRS) before tiling")
    return crs


@lru_cache(maxsize=16)
def _to_ecef(crs_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(crs_wkt), "EPSG:4978", always_xy=True)


@lru_cache(maxsize=16)
def _from_ecef(crs_wkt: str) -> Transformer:
    return Transformer.from_crs("EPSG:4978", CRS.from_wkt(crs_wkt), always_xy=True)


_ECEF_TO_GEODETIC = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


def to_ecef(crs: CRS, xyz: np.ndarray) -> np.ndarray:
    """(n, 3) float64 scene coordinates -> (n, 3) float64 ECEF."""
    xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
    out = _transform(_to_ecef(crs.to_wkt()), xyz)
    if not np.isfinite(out).all():
        raise CRSError(f"coordinates could not be transformed from {crs.name!r} to ECEF (EPSG:4978): check that the "
                       "data really is in this CRS (axis order x=easting, y=northing)")
    return out


def from_ecef(crs: CRS, ecef: np.ndarray) -> np.ndarray:
    """Inverse of `to_ecef`."""
    return _transform(_from_ecef(crs.to_wkt()), np.asarray(ecef, np.float64).reshape(-1, 3))


def _transform(t: Transformer, xyz: np.ndarray) -> np.ndarray:
    if len(xyz) == 1:           # pyproj's single-point path wants Python floats
        return np.array([t.transform(*(float(v) for v in xyz[0]))], np.float64)
    x, y, z = t.transform(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    return np.column_stack([x, y, z])


def up_vectors(ecef: np.ndarray) -> np.ndarray:
    """Unit ellipsoid normals (WGS 84) at ECEF points (geodetic up)."""
    a2, b2 = 6378137.0**2, (6378137.0 * (1 - 1 / 298.257223563)) ** 2
    g = ecef / np.array([a2, a2, b2])
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def enu_matrix(origin_ecef: np.ndarray) -> np.ndarray:
    """4x4 float64 transform from the local east-north-up frame at a point to ECEF (column vectors)."""
    origin_ecef = np.asarray(origin_ecef, np.float64).reshape(3)
    lon, lat, _ = _ECEF_TO_GEODETIC.transform(*(float(v) for v in origin_ecef))
    lo, la = np.radians(lon), np.radians(lat)
    east = np.array([-np.sin(lo), np.cos(lo), 0.0])
    north = np.array([-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)])
    up = np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = east, north, up, origin_ecef
    return m


def to_local(frame: np.ndarray, ecef: np.ndarray) -> np.ndarray:
    """ECEF points -> coordinates in a frame (4x4, local -> ECEF), float64."""
    return (ecef - frame[:3, 3]) @ frame[:3, :3]


def crs_axes_in_frame(crs: CRS, point: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """3x3 matrix turning a direction in CRS axes (x, y, z) at `point` into the frame's axes (meridian convergence)."""
    d = 1.0
    pts = np.asarray(point, np.float64) + np.vstack([np.zeros(3), np.eye(3) * d])
    loc = to_local(frame, to_ecef(crs, pts))
    jac = (loc[1:] - loc[0]).T / d
    return jac / np.linalg.norm(jac, axis=0, keepdims=True)
