"""CRS helpers shared by the readers: parse what a file or a caller gives, refuse what is missing or ambiguous."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pyproj import CRS
from pyproj.exceptions import CRSError as _ProjCRSError

from cim.errors import CRSError, ValidationError

__all__: list[str] = []

_OGC_URL = re.compile(r"(?:https?://www\.opengis\.net/def/crs/|urn:ogc:def:crs:)(?P<auth>[A-Za-z]+)[/:]+"
                      r"(?:[^/:]*[/:]+)?(?P<code>\d+)$")


def parse_crs(value: Any, path: str | Path, field: str) -> CRS:
    """A pyproj CRS from an EPSG code, 'EPSG:n', an OGC URL/URN, WKT or a pyproj CRS; CRSError naming the field."""
    if isinstance(value, CRS):
        return value
    text = str(value).strip()
    m = _OGC_URL.match(text)
    if m:
        text = f"{m['auth'].upper()}:{m['code']}"
    try:
        return CRS.from_user_input(int(text) if text.isdigit() else text)
    except (_ProjCRSError, ValueError, TypeError) as exc:
        raise CRSError(f"{Path(path).name}: {field} {str(value)[:80]!r} is not a CRS pyproj understands ({exc}); "
                       "give an EPSG code such as crs='EPSG:7415'") from None


def resolve_crs(file_crs: Any, given: Any, path: str | Path, field: str) -> CRS:
    """The file's CRS, or the caller's when the file has none; refuse neither, and refuse a conflict."""
    name = Path(path).name
    fcrs = parse_crs(file_crs, path, field) if file_crs not in (None, "") else None
    gcrs = parse_crs(given, path, "crs option") if given not in (None, "") else None
    if fcrs is None and gcrs is None:
        raise CRSError(f"{name}: the file gives no CRS ({field} is missing) and none was given; pass "
                       "crs='EPSG:…' (CLI: --crs EPSG:…) naming the CRS its coordinates are in")
    if fcrs is not None and gcrs is not None and not fcrs.equals(gcrs, ignore_axis_order=True):
        raise CRSError(f"{name}: the file says {field} = {fcrs.to_string()} but crs={gcrs.to_string()} was given; "
                       "drop the crs option to use the file's CRS")
    return fcrs if fcrs is not None else gcrs


def require_projected(crs: CRS, path: str | Path, what: str) -> None:
    """Refuse a geographic CRS where footprints, areas and heights need metres (city models)."""
    if not crs.is_projected:
        raise ValidationError(f"{Path(path).name}: CRS {crs.to_string()} is not projected; {what} heights and "
                              "footprints need a projected CRS in metres (e.g. EPSG:7415): reproject the file first "
                              "(e.g. citygml-tools reproject, cjio crs_reproject)")
