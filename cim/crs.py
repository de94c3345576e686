"""Coordinate reference systems: a scene needs a projected CRS in metres.

>>> scene_crs("EPSG:7415").name
'Amersfoort / RD New + NAP height'
"""

from __future__ import annotations

from pyproj import CRS
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

from cim.errors import CRSError

__all__ = ["crs_string", "horizontal_epsg", "same_horizontal", "scene_crs", "suggest_projected"]


def suggest_projected(lon: float, lat: float) -> str:
    """A projected CRS in metres for a location: the WGS 84 UTM zone, plus CGCS2000 Gauss-Krüger in China."""
    infos = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))
    utm = f"EPSG:{infos[0].code} ({infos[0].name})" if infos else "the UTM zone of the area"
    if 73 <= lon <= 135 and 18 <= lat <= 54:
        zone = round(lon / 3.0)
        return f"{utm}, or CGCS2000 3-degree Gauss-Kruger EPSG:{4534 + zone - 25} (CM {3 * zone}E)"
    return utm


def scene_crs(crs, where: str = "scene") -> CRS:
    """Validate a scene CRS: it must be projected (or compound with a projected part) with metre axes."""
    if crs is None:
        raise CRSError(f"{where}: a CRS is required, e.g. crs='EPSG:7415' (RD New + NAP) or a UTM zone 'EPSG:326NN'")
    try:
        c = CRS.from_user_input(crs)
    except Exception as exc:
        raise CRSError(f"{where}: {crs!r} is not a CRS pyproj knows ({exc}); give an EPSG code such as 'EPSG:28992'") from None
    horiz = c.sub_crs_list[0] if c.is_compound else c
    if not horiz.is_projected:
        hint = "the UTM zone of your city (EPSG:326NN north / 327NN south)"
        if c.area_of_use is not None:
            aou = c.area_of_use
            if (aou.east - aou.west) < 30:
                hint = suggest_projected((aou.west + aou.east) / 2, (aou.south + aou.north) / 2)
        raise CRSError(f"{where}: {c.name} ({crs_string(c)}) is geographic (degrees); a scene needs a projected CRS in "
                       f"metres, e.g. {hint}; in the Netherlands EPSG:28992/7415, in China CGCS2000 Gauss-Kruger "
                       "(EPSG:4534-4554)")
    units = {ax.unit_name for ax in horiz.axis_info}
    if units != {"metre"}:
        raise CRSError(f"{where}: {c.name} has axes in {', '.join(sorted(units))}; use a projected CRS in metres")
    return c


def crs_string(crs: CRS) -> str:
    """'AUTH:CODE' when the CRS has one, else its WKT2."""
    auth = crs.to_authority(min_confidence=100)
    return f"{auth[0]}:{auth[1]}" if auth else crs.to_wkt()


def horizontal_epsg(crs: CRS) -> int | None:
    """The EPSG code of the horizontal part (used as the SRID of geometry columns)."""
    horiz = crs.sub_crs_list[0] if crs.is_compound else crs
    return horiz.to_epsg()


def same_horizontal(a: CRS, b: CRS) -> bool:
    """True when two CRSs are equal, or one is the other's horizontal part (e.g. EPSG:28992 and 7415)."""
    if a == b:
        return True
    ha = a.sub_crs_list[0] if a.is_compound else a
    hb = b.sub_crs_list[0] if b.is_compound else b
    return ha == hb
