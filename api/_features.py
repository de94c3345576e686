"""OGC API - Features over a scene's vector layers: parameters in, a page of features (CRS84 or the scene CRS) out.

The layer is read through the scene (bbox pushed down to the store), reprojected to CRS84, then filtered with
pandas and shapely: bbox, datetime, property equality and CQL2 (text or JSON, parsed by pygeofilter and evaluated
here on the columns — nothing is ever turned into SQL text).
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

import cim
from api.errors import BadRequest, NotFound
from cim._dtypes import column_kind
from cim.crs import horizontal_epsg

__all__ = ["CRS84", "FeaturePage", "FrameCache", "Layer", "crs_uri", "dumps", "in_axis_order", "parse_bbox",
           "parse_bbox_in", "parse_datetime",
           "parse_filter", "query_items", "read_item", "vector_layers"]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84H = "http://www.opengis.net/def/crs/OGC/0/CRS84h"


def crs_uri(crs: CRS) -> str:
    epsg = crs.to_epsg() or horizontal_epsg(crs)
    return f"http://www.opengis.net/def/crs/EPSG/0/{epsg}" if epsg else crs.to_wkt()


@dataclass(frozen=True)
class Layer:
    """A vector layer as a collection: its catalogue entry plus what queries need."""

    info: cim.LayerInfo

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def dtypes(self) -> dict[str, str]:
        return dict(self.info.info.get("contract", {}).get("dtypes", {}))

    @property
    def id_column(self) -> str | None:
        col = self.info.attrs.get("id_column") or ("id" if "id" in self.dtypes else None)
        return col if col in self.dtypes else None

    @property
    def datetime_column(self) -> str | None:
        col = self.info.attrs.get("datetime_column")
        if col in self.dtypes:
            return col
        times = [c for c, dt in self.dtypes.items() if column_kind(dt) in {"datetime", "datetimetz"}]
        return times[0] if times else None


def vector_layers(scene: cim.Scene) -> list[Layer]:
    return [Layer(i) for i in scene.layers if i.storage == "vector"]


def get_layer(scene: cim.Scene, name: str) -> Layer:
    row = scene.store.catalog_row(name)       # one row, read on every request: a replaced layer is seen at once
    if row is not None and row["storage"] == "vector":
        return Layer(cim.LayerInfo.from_row(row))
    raise NotFound(f"no collection {name!r}: see /collections for those of this scene")


# ---------------------------------------------------------------------------------------------------- parameters

def parse_bbox(text: str | None, max_area_deg2: float = 360.0 * 180.0) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` (or 6 numbers with heights) in CRS84 -> 4 floats; BadRequest if not."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) not in (4, 6):
        raise BadRequest(f"bbox {text!r}: give 4 numbers (minlon,minlat,maxlon,maxlat) or 6 with heights")
    try:
        v = [float(p) for p in parts]
    except ValueError:
        raise BadRequest(f"bbox {text!r}: every value must be a number") from None
    if not all(math.isfinite(x) for x in v):
        raise BadRequest(f"bbox {text!r}: values must be finite")
    x0, y0, x1, y1 = (v[0], v[1], v[2], v[3]) if len(v) == 4 else (v[0], v[1], v[3], v[4])
    if len(v) == 6 and v[2] > v[5]:
        raise BadRequest(f"bbox {text!r}: the lower height is above the upper one")
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise BadRequest(f"bbox {text!r}: longitudes must be within -180..180 and latitudes -90..90 with "
                         "minlat <= maxlat (CRS84)")
    if x0 > x1:
        raise BadRequest(f"bbox {text!r}: boxes across the antimeridian are not supported; split the query")
    if (x1 - x0) * (y1 - y0) > max_area_deg2:
        raise BadRequest(f"bbox {text!r} is larger than this service allows")
    return x0, y0, x1, y1


def _instant(text: str, end: bool) -> pd.Timestamp | None:
    if text in ("..", ""):
        return None
    try:
        t = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise BadRequest(f"datetime {text!r} is not RFC 3339: write e.g. 2020-06-17T15:00:00Z") from None
    if t is pd.NaT:
        raise BadRequest(f"datetime {text!r} is not RFC 3339")
    if t.tzinfo is None:
        t = t.tz_localize(UTC)
    if len(text) == 10 and end:        # a date as the end of an interval covers the whole day
        t = t + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return t.tz_convert(UTC)


def parse_bbox_in(text: str, crs: Any) -> tuple[float, float, float, float]:
    """A bbox in ``crs`` (4 or 6 numbers in the CRS's axis order) -> the CRS84 box that covers it."""
    from pyproj import CRS, Transformer

    parts = text.split(",")
    try:
        v = [float(p) for p in parts]
    except ValueError:
        raise BadRequest(f"bbox {text!r}: every value must be a number") from None
    if len(v) not in (4, 6) or not all(math.isfinite(x) for x in v):
        raise BadRequest(f"bbox {text!r}: give 4 finite numbers (or 6 with heights) in the bbox-crs")
    a0, b0, a1, b1 = (v[0], v[1], v[2], v[3]) if len(v) == 4 else (v[0], v[1], v[3], v[4])
    the_crs = CRS.from_user_input(crs)
    if _northing_first(the_crs):
        a0, b0, a1, b1 = b0, a0, b1, a1
    if a0 > a1 or b0 > b1:
        raise BadRequest(f"bbox {text!r}: give the lower corner first")
    box = Transformer.from_crs(the_crs, "OGC:CRS84", always_xy=True).transform_bounds(a0, b0, a1, b1, densify_pts=21)
    if not all(math.isfinite(x) for x in box):
        raise BadRequest(f"bbox {text!r} lies outside the area of {the_crs.to_string()}")
    return parse_bbox(",".join(repr(float(x)) for x in box))


def parse_datetime(text: str | None) -> tuple[pd.Timestamp | None, pd.Timestamp | None] | None:
    """An instant or an interval ``start/end`` (``..`` or empty for open) -> (start, end), both inclusive."""
    if text is None:
        return None
    if "/" in text:
        a, b = text.split("/", 1)
        start, end = _instant(a, False), _instant(b, True)
        if start is None and end is None:
            raise BadRequest("datetime '../..' is not an interval: give at least one end")
        if start is not None and end is not None and end < start:
            raise BadRequest(f"datetime {text!r} ends before it starts")
        return start, end
    t = _instant(text, False)
    if t is None:
        raise BadRequest("datetime '..' alone is not an instant")
    if len(text) == 10:
        return t, _instant(text, True)
    return t, t


def parse_filter(text: str | None, lang: str | None):
    """A pygeofilter AST from CQL2 text or JSON; BadRequest on any parse error."""
    if text is None:
        if lang is not None:
            raise BadRequest("filter-lang is given without a filter")
        return None
    lang = lang or "cql2-text"
    try:
        if lang == "cql2-text":
            from pygeofilter.parsers.cql2_text import parse
            _quiet_cql2_text()
            return parse(text)
        if lang == "cql2-json":
            from pygeofilter.parsers.cql2_json import parse
            return parse(json.loads(text))
    except Exception as exc:      # pygeofilter raises lark and plain errors alike
        msg = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
        raise BadRequest(f"filter is not valid {lang}: {msg}; write e.g. {_EXAMPLES[lang]}") from None
    raise BadRequest(f"filter-lang {lang!r}: use cql2-text or cql2-json")


_EXAMPLES = {"cql2-text": "height > 15 AND name = 'Alpha'",
             "cql2-json": '{"op": ">", "args": [{"property": "height"}, 15]}'}


def _quiet_cql2_text() -> None:
    """pygeofilter builds its CQL2 text parser with lark's debug=True, which prints a state-stack dump to stdout
    whenever a literal fails to convert; a server must not write that on every bad request."""
    from pygeofilter.parsers.cql2_text import parser as module

    node, depth = getattr(module, "parser", None), 0
    while node is not None and depth < 5:
        if hasattr(node, "debug"):
            node.debug = False
        node, depth = getattr(node, "parser", None), depth + 1


# ------------------------------------------------------------------------------------------------ CQL2 evaluator

def _evaluate(node, df: gpd.GeoDataFrame, columns: dict[str, str]):
    """A boolean Series (or a value) for a pygeofilter AST node, over ``df`` (geometries in CRS84)."""
    from pygeofilter import ast, values

    def ev(n):
        return _evaluate(n, df, columns)

    if isinstance(node, ast.Attribute):
        if node.name in columns:
            return df[node.name]
        if node.name in ("geometry", "geom"):
            return df.geometry
        raise BadRequest(f"filter names {node.name!r}, not a property of this collection "
                         f"(queryables: {', '.join(columns) or 'none'})")
    if isinstance(node, bool | int | float | str):
        return node
    if isinstance(node, datetime):
        return pd.Timestamp(node if node.tzinfo else node.replace(tzinfo=UTC))
    if isinstance(node, date):
        return pd.Timestamp(node).tz_localize(UTC)
    if isinstance(node, values.Geometry):
        return shapely.geometry.shape(node)
    if isinstance(node, values.Envelope):
        return shapely.box(node.x1, node.y1, node.x2, node.y2)
    if isinstance(node, ast.Not):
        return ~_as_mask(ev(node.sub_node), df)
    if isinstance(node, ast.And | ast.Or):
        a, b = _as_mask(ev(node.lhs), df), _as_mask(ev(node.rhs), df)
        return (a & b) if isinstance(node, ast.And) else (a | b)
    if isinstance(node, ast.Comparison):
        import operator
        op = {"=": operator.eq, "<>": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
              ">=": operator.ge}[node.op.value]
        return _safe(lambda: op(ev(node.lhs), ev(node.rhs)))
    if isinstance(node, ast.Between):
        lhs = ev(node.lhs)
        r = _safe(lambda: (lhs >= ev(node.low)) & (lhs <= ev(node.high)))
        return ~r if node.not_ else r
    if isinstance(node, ast.Like):
        from pygeofilter.util import like_pattern_to_re
        lhs = ev(node.lhs)
        # CQL2 fixes the wildcards: % and _ (pygeofilter's parser reports '.' for the single character)
        regex = like_pattern_to_re(node.pattern, node.nocase, "%", "_", "\\")
        r = _safe(lambda: lhs.astype("string").str.fullmatch(regex).fillna(False).astype(bool))
        return ~r if node.not_ else r
    if isinstance(node, ast.In):
        r = _safe(lambda: ev(node.lhs).isin([ev(o) for o in node.sub_nodes]))
        return ~r if node.not_ else r
    if isinstance(node, ast.IsNull):
        r = pd.Series(pd.isna(ev(node.lhs)), index=df.index)
        return ~r if node.not_ else r
    if isinstance(node, ast.SpatialComparisonPredicate):
        fn = {"INTERSECTS": shapely.intersects, "DISJOINT": shapely.disjoint, "CONTAINS": shapely.contains,
              "WITHIN": shapely.within, "TOUCHES": shapely.touches, "CROSSES": shapely.crosses,
              "OVERLAPS": shapely.overlaps, "EQUALS": shapely.equals}[node.op.name]
        a, b = ev(node.lhs), ev(node.rhs)
        a = a.values if isinstance(a, gpd.GeoSeries) else a
        b = b.values if isinstance(b, gpd.GeoSeries) else b
        return pd.Series(np.asarray(fn(a, b), bool), index=df.index)
    if isinstance(node, ast.BBox):
        return pd.Series(np.asarray(shapely.intersects(
            ev(node.lhs).values, shapely.box(node.minx, node.miny, node.maxx, node.maxy)), bool), index=df.index)
    if isinstance(node, ast.Arithmetic):
        import operator
        op = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}[node.op.value]
        return _safe(lambda: op(ev(node.lhs), ev(node.rhs)))
    if isinstance(node, ast.TemporalPredicate):
        return _temporal(node, ev)
    if isinstance(node, time | timedelta):
        raise BadRequest("times of day and durations are not supported in filters")
    raise BadRequest(f"filter uses {type(node).__name__}, which this service does not support: use comparisons, "
                     "LIKE, IN, BETWEEN, IS NULL, arithmetic, S_* spatial and T_* temporal predicates")


def _temporal(node, ev):
    from pygeofilter import values

    lhs = ev(node.lhs)
    rhs = node.rhs
    if isinstance(rhs, values.Interval):
        start, end = ev(rhs.start) if rhs.start is not None else None, ev(rhs.end) if rhs.end is not None else None
    else:
        start = end = ev(rhs)
    name = node.op.name
    inside = pd.Series(True, index=lhs.index)
    if start is not None:
        inside &= _safe(lambda: lhs >= start)
    if end is not None:
        inside &= _safe(lambda: lhs <= end)
    if name in ("TINTERSECTS", "TEQUALS", "TDURING", "TCONTAINS"):
        return inside.fillna(False) if hasattr(inside, "fillna") else inside
    if name == "TBEFORE":
        return _safe(lambda: lhs < start)
    if name == "TAFTER":
        return _safe(lambda: lhs > (end if end is not None else start))
    if name == "TDISJOINT":
        return ~inside
    raise BadRequest(f"temporal operator {name} is not supported; use T_INTERSECTS, T_BEFORE, T_AFTER, T_DISJOINT")


def _safe(fn):
    try:
        return fn()
    except BadRequest:
        raise
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"filter compares values of different types ({str(exc).splitlines()[0][:120]}): quote "
                         "text values (name = 'Alpha') and leave numbers bare (height > 15)") from None


def _as_mask(value, df) -> pd.Series:
    if isinstance(value, pd.Series) and (value.dtype == bool or value.dtype == "boolean"):
        return value.fillna(False).astype(bool)
    raise BadRequest("filter: AND, OR and NOT need conditions on both sides")


# ---------------------------------------------------------------------------------------------------------- query

class FrameCache:
    """The last few layers read, as stored and in CRS84, keyed by the catalogue entry (a replaced layer gets a new
    ``created`` and so a new entry, with its own :class:`_Encoded`); thread-safe. Frames handed out must not be
    modified."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._frames: OrderedDict[tuple, tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, _Encoded]] = OrderedDict()

    def get(self, scene: cim.Scene, layer: Layer) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
        gdf, wgs, _ = self.entry(scene, layer)
        return gdf, wgs

    @staticmethod
    def _key(layer: Layer) -> tuple:
        return layer.name, layer.info.created, layer.info.location

    def holds(self, layer: Layer) -> bool:
        """Whether this layer version is loaded (so `entry` returns at once)."""
        return self._key(layer) in self._frames

    def entry(self, scene: cim.Scene, layer: Layer) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, _Encoded]:
        """The layer as stored, in CRS84, and its spatial index and encoded features."""
        key = self._key(layer)
        with self._lock:
            if key in self._frames:
                self._frames.move_to_end(key)
                return self._frames[key]
        gdf = scene.layer(layer.name).reset_index(drop=True)
        if len(gdf) == 1:     # two rows: pyproj's one-point path warns on NumPy >= 1.25 (through geopandas)
            wgs = pd.concat([gdf, gdf]).to_crs("OGC:CRS84").iloc[:1]
        else:
            wgs = gdf.to_crs("OGC:CRS84") if len(gdf) else gdf.set_crs("OGC:CRS84", allow_override=True)
        value = (gdf, wgs, _Encoded(layer, gdf, wgs))
        with self._lock:
            self._frames[key] = value
            while len(self._frames) > self.size:
                self._frames.popitem(last=False)
        return value


class _Encoded:
    """One layer version's spatial index (a shapely STRtree over the CRS84 geometries, built once) and its features
    as GeoJSON text, encoded on first use in each output CRS and kept, so that a page is a join of cached strings.

    Memory: the tree costs about 120 bytes per feature (measured on 1e6 boxes: GEOS envelopes and nodes; the
    geometries are the frame's own); each feature served costs its GeoJSON text once per output CRS (a Python
    ``str``, about 50 bytes plus one per character: 1.5 kB in CRS84 and 1.3 kB in the scene CRS on average for the
    Delft demo's buildings), plus 8 bytes per feature and CRS for the slot lists. Features never served cost nothing
    beyond their slots; the cache keeps at most ``FrameCache.size`` layer versions.
    """

    def __init__(self, layer: Layer, gdf: gpd.GeoDataFrame, wgs: gpd.GeoDataFrame) -> None:
        self._layer, self._frames = layer, {CRS84: wgs, "native": in_axis_order(gdf)}
        self.tree = shapely.STRtree(wgs.geometry.values)
        self._text: dict[str, list[str | None]] = {CRS84: [None] * len(wgs), "native": [None] * len(wgs)}

    def __len__(self) -> int:
        return len(self._frames[CRS84])

    def matching_bbox(self, bbox) -> np.ndarray:
        """Positions of the features intersecting a CRS84 box, in layer order."""
        return np.sort(self.tree.query(shapely.box(*bbox), predicate="intersects"))

    def features(self, positions, crs: str) -> list[str]:
        """The features at ``positions`` as GeoJSON text, in CRS84 or (any other ``crs``) the scene CRS."""
        key = CRS84 if crs == CRS84 else "native"
        text = self._text[key]
        positions = [int(i) for i in positions]
        missing = [i for i in positions if text[i] is None]
        if missing:           # a race only encodes the same text twice
            frame = self._frames[key]
            for i, feature in zip(missing, _features(self._layer, frame.iloc[missing]), strict=True):
                text[i] = dumps(feature)
        return [text[i] for i in positions]


def dumps(obj: Any) -> str:
    """JSON text as starlette's JSONResponse renders it."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


@dataclass
class FeaturePage:
    encoded: list[str]        # each feature as GeoJSON text (see dumps)
    number_matched: int
    number_returned: int
    crs: str

    @property
    def features(self) -> list[dict]:
        return [json.loads(f) for f in self.encoded]


def _jsonable(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, pd.Timestamp | datetime):
        return None if pd.isna(v) else v.isoformat().replace("+00:00", "Z")
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def _features(layer: Layer, gdf: gpd.GeoDataFrame) -> list[dict]:
    props = [c for c in gdf.columns if c != gdf.geometry.name]
    ids = gdf[layer.id_column].astype(str).tolist() if layer.id_column else [str(i) for i in gdf.index]
    geoms = [None if g is None or g.is_empty else json.loads(shapely.to_geojson(g)) for g in gdf.geometry.values]
    records = gdf[props].to_dict("records")
    return [{"type": "Feature", "id": fid, "geometry": geom,
             "properties": {k: _jsonable(v) for k, v in rec.items()}}
            for fid, geom, rec in zip(ids, geoms, records, strict=True)]


def indexed(interval=None, properties: dict[str, str] | None = None, cql=None) -> bool:
    """Whether `query_items` answers from the spatial index alone (a bbox or nothing): well under a millisecond
    once the layer version is loaded, against a pass over every feature for the other conditions."""
    return interval is None and not properties and cql is None


def query_items(scene: cim.Scene, layer: Layer, *, bbox=None, interval=None, properties: dict[str, str] | None = None,
                cql=None, limit: int = 10, offset: int = 0, crs: str = CRS84,
                cache: FrameCache | None = None) -> FeaturePage:
    """One page of a collection's features matching every condition, with the number matched.

    A bbox alone (or no condition) is answered from the layer version's spatial index; datetime, property and CQL2
    conditions are evaluated on the CRS84 frame. Either way the page is made of the cached feature texts."""
    _, wgs, enc = (cache or FrameCache(1)).entry(scene, layer)
    if indexed(interval, properties, cql):
        positions = np.arange(len(enc)) if bbox is None else enc.matching_bbox(bbox)
        page = positions[offset:offset + limit]
        return FeaturePage(enc.features(page, crs), len(positions), len(page), crs)
    mask = pd.Series(True, index=wgs.index)
    if bbox is not None:
        mask &= np.asarray(shapely.intersects(wgs.geometry.values, shapely.box(*bbox)), bool)
    if interval is not None:
        col = layer.datetime_column
        if col is None:
            raise BadRequest(f"collection {layer.name!r} has no time: the datetime parameter cannot apply")
        t = pd.to_datetime(wgs[col], utc=True)
        start, end = interval
        if start is not None:
            mask &= (t >= start).fillna(False)
        if end is not None:
            mask &= (t <= end).fillna(False)
    for name, text in (properties or {}).items():
        mask &= _property_equals(wgs[name], text, layer.dtypes[name], name)
    if cql is not None:
        try:
            result = _evaluate(cql, wgs, layer.dtypes)
        except RecursionError:
            raise BadRequest("filter nests too deeply: simplify the expression") from None
        mask &= _as_mask(result, wgs)
    positions = np.flatnonzero(mask.to_numpy())       # the frames' index is 0..n-1 (FrameCache resets it)
    page = positions[offset:offset + limit]
    return FeaturePage(enc.features(page, crs), len(positions), len(page), crs)


def _property_equals(series: pd.Series, text: str, dtype: str, name: str) -> pd.Series:
    kind = column_kind(dtype)
    try:
        if kind == "int":
            value: Any = int(text)
        elif kind == "float":
            value = float(text)
        elif kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError
            value = text.lower() == "true"
        elif kind in ("datetime", "datetimetz"):
            return (pd.to_datetime(series, utc=True) == _instant(text, False)).fillna(False)
        else:
            return (series.astype("string") == text).fillna(False).astype(bool)
    except ValueError:
        raise BadRequest(f"property {name!r} is {kind}: {text!r} is not a valid value") from None
    return (series == value).fillna(False).astype(bool)


def read_item(scene: cim.Scene, layer: Layer, feature_id: str, crs: str = CRS84,
              cache: FrameCache | None = None) -> dict:
    gdf, wgs = (cache or FrameCache(1)).get(scene, layer)
    if layer.id_column:
        hit = np.flatnonzero((gdf[layer.id_column].astype(str) == feature_id).to_numpy())[:1]
    else:
        hit = [int(feature_id)] if feature_id.isdigit() and int(feature_id) < len(gdf) else []
    if not len(hit):
        raise NotFound(f"collection {layer.name!r} has no feature {feature_id!r}")
    return _features(layer, wgs.iloc[list(hit)] if crs == CRS84 else in_axis_order(gdf.iloc[list(hit)]))[0]


def in_axis_order(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``gdf`` with coordinates in its CRS's axis order, as OGC API - Features Part 2 outputs them: northing first
    where the CRS says so (e.g. EPSG:4547, CGCS2000 / 3-degree Gauss-Kruger), else unchanged (EPSG:28992).

    >>> import geopandas as gpd
    >>> in_axis_order(gpd.GeoDataFrame(geometry=gpd.points_from_xy([528770.2], [3386666.3]), crs=4547)).geometry[0].wkt
    'POINT (3386666.3 528770.2)'
    """
    if gdf.crs is None or not _northing_first(gdf.crs):
        return gdf
    return gdf.set_geometry(shapely.transform(gdf.geometry.values, lambda c: c[:, ::-1]), crs=gdf.crs)


def _northing_first(crs: Any) -> bool:
    """True when the CRS's first axis points north or south (its coordinates are written y, x)."""
    from pyproj import CRS

    axes = CRS.from_user_input(crs).axis_info
    return len(axes) >= 2 and axes[0].direction.lower() in ("north", "south")
