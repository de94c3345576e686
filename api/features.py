"""OGC API - Features Part 1 (core, GeoJSON, OpenAPI 3.0), Part 2 (CRS by reference) and Part 3 (CQL2 filters)
over every vector layer of the scene; plus the landing page and conformance declaration."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api import _features as F
from api.deps import ReadCaller, SceneDep, SettingsDep
from api.errors import BadRequest
from api.openapi import ERRORS

__all__ = ["CONFORMANCE", "GeoJSONResponse", "router"]

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    "http://www.opengis.net/iot/sensorthings/1.1/conf/core",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete/create-entity",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations-creation",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/receive-updates-via-mqtt/receive-updates",
    # OGC API - Processes (api/processes.py: /processes, /jobs, DELETE /jobs/{id})
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
]

router = APIRouter()
CollectionId = Annotated[str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", description="A vector layer's name")]
FeatureId = Annotated[str, Path(min_length=1, max_length=255, description="The feature's id")]
CrsParam = Annotated[str | None, Query(description="Output CRS: CRS84 (default) or the scene CRS URI")]


class GeoJSONResponse(JSONResponse):
    media_type = "application/geo+json"


class _RenderedGeoJSON(Response):
    """A GeoJSON document already rendered, byte for byte as GeoJSONResponse would render it."""

    media_type = "application/geo+json"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/", summary="Landing page", responses=ERRORS)
def landing(request: Request, settings: SettingsDep, scene: SceneDep) -> dict:
    b = _base(request)
    return {"title": f"{settings.title}: {scene.name}", "description": "City information model: features, "
            "3D Tiles, SensorThings and flood processes", "links": [
                {"href": f"{b}/", "rel": "self", "type": "application/json", "title": "this document"},
                {"href": f"{b}/openapi.json", "rel": "service-desc",
                 "type": "application/vnd.oai.openapi+json;version=3.0", "title": "the API definition"},
                {"href": f"{b}/docs", "rel": "service-doc", "type": "text/html", "title": "the API documentation"},
                {"href": f"{b}/conformance", "rel": "conformance", "type": "application/json",
                 "title": "conformance classes"},
                {"href": f"{b}/collections", "rel": "data", "type": "application/json", "title": "collections"},
                {"href": f"{b}/v1.1", "rel": "http://www.opengis.net/def/rel/ogc/1.0/sensorthings",
                 "type": "application/json", "title": "SensorThings API v1.1"},
                {"href": f"{b}/processes", "rel": "http://www.opengis.net/def/rel/ogc/1.0/processes",
                 "type": "application/json", "title": "processes: flood forecasts and planning what-ifs"},
                {"href": f"{b}/jobs", "rel": "http://www.opengis.net/def/rel/ogc/1.0/job-list",
                 "type": "application/json", "title": "jobs"}]}


@router.get("/conformance", summary="Conformance classes", responses=ERRORS)
def conformance() -> dict:
    return {"conformsTo": CONFORMANCE}


def _collection(request: Request, scene, layer: F.Layer) -> dict:
    b = _base(request)
    extent = None
    if layer.info.bounds:
        from pyproj import Transformer

        t = Transformer.from_crs(scene.crs, "OGC:CRS84", always_xy=True)
        extent = {"spatial": {"bbox": [list(t.transform_bounds(*layer.info.bounds, densify_pts=21))],
                              "crs": F.CRS84}}
    out = {"id": layer.name, "title": layer.name, "description": f"{layer.info.kind} layer "
           f"({layer.info.count} features)", "itemType": "feature", "crs": [F.CRS84, F.crs_uri(scene.crs)],
           "storageCrs": F.crs_uri(scene.crs), "links": [
               {"href": f"{b}/collections/{layer.name}", "rel": "self", "type": "application/json"},
               {"href": f"{b}/collections/{layer.name}/items", "rel": "items", "type": "application/geo+json"},
               {"href": f"{b}/collections/{layer.name}/queryables",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables", "type": "application/schema+json"}]}
    if extent:
        out["extent"] = extent
    return out


@router.get("/collections", summary="The scene's vector layers", responses=ERRORS)
def collections(request: Request, scene: SceneDep, _: ReadCaller) -> dict:
    b = _base(request)
    return {"links": [{"href": f"{b}/collections", "rel": "self", "type": "application/json"}],
            "collections": [_collection(request, scene, layer) for layer in F.vector_layers(scene)]}


@router.get("/collections/{collectionId}", summary="One collection", responses=ERRORS)
def collection(request: Request, scene: SceneDep, _: ReadCaller, collectionId: CollectionId) -> dict:
    return _collection(request, scene, F.get_layer(scene, collectionId))


_JSON_TYPES = {"string": "string", "int": "integer", "float": "number", "bool": "boolean",
               "datetime": "string", "datetimetz": "string"}


_SCHEMA_JSON = {200: {"description": "A JSON Schema of the queryable properties",
                      "content": {"application/schema+json": {"schema": {"type": "object"}}}}}


@router.get("/collections/{collectionId}/queryables", summary="Properties a filter may use",
            response_class=JSONResponse, responses={**ERRORS, **_SCHEMA_JSON})
def queryables(request: Request, scene: SceneDep, _: ReadCaller, collectionId: CollectionId) -> JSONResponse:
    from cim._dtypes import column_kind

    layer = F.get_layer(scene, collectionId)
    props = {"geometry": {"format": "geometry-any"}}
    for col, dt in layer.dtypes.items():
        kind = column_kind(dt)
        props[col] = {"type": _JSON_TYPES.get(kind, "string")}
        if kind in ("datetime", "datetimetz"):
            props[col]["format"] = "date-time"
    return JSONResponse({"$schema": "https://json-schema.org/draft/2019-09/schema", "type": "object",
                         "$id": f"{_base(request)}/collections/{layer.name}/queryables", "properties": props},
                        media_type="application/schema+json")


def _out_crs(crs: str | None, scene) -> str:
    if crs in (None, F.CRS84):
        return F.CRS84
    if crs == F.crs_uri(scene.crs):
        return crs
    raise BadRequest(f"crs {crs!r} is not offered: use {F.CRS84} or {F.crs_uri(scene.crs)}")


_ITEMS_PARAMS = {"limit", "offset", "bbox", "bbox-crs", "datetime", "filter", "filter-lang", "filter-crs", "crs"}


def _bbox84(bbox: str | None, bbox_crs: str | None, scene) -> tuple[float, float, float, float] | None:
    """``bbox`` in CRS84, given in CRS84 (the default) or, with ``bbox-crs`` the storage CRS, in that CRS's axis
    order (OGC API - Features Part 2), e.g. northing first for EPSG:4547."""
    if bbox_crs in (None, F.CRS84):
        return F.parse_bbox(bbox)
    if bbox_crs != F.crs_uri(scene.crs):
        raise BadRequest(f"bbox-crs {bbox_crs!r} is not offered: use {F.CRS84} or {F.crs_uri(scene.crs)}")
    return F.parse_bbox_in(bbox, scene.crs)


@router.get("/collections/{collectionId}/items", summary="Features of a collection", response_class=GeoJSONResponse,
            responses=ERRORS)
async def items(request: Request, scene: SceneDep, settings: SettingsDep, _: ReadCaller,
                collectionId: CollectionId,
                limit: Annotated[int, Query(ge=1, le=10_000, description="Features per page")] = 10,
                offset: Annotated[int, Query(ge=0, le=10_000_000, description="Features to skip")] = 0,
                bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (CRS84), or 6 numbers")] = None,
                datetime: Annotated[str | None, Query(description="An instant or interval start/end, '..' open")] = None,
                filter: Annotated[str | None, Query(max_length=20_000, description="A CQL2 filter")] = None,
                filter_lang: Annotated[Literal["cql2-text", "cql2-json"] | None, Query(alias="filter-lang")] = None,
                filter_crs: Annotated[Literal["http://www.opengis.net/def/crs/OGC/1.3/CRS84"] | None,
                                      Query(alias="filter-crs")] = None,
                crs: CrsParam = None,
                bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description="CRS of bbox: CRS84 (default) "
                                                      "or the scene CRS URI (then in its axis order)")] = None,
                ) -> Response:
    """Async: a bbox query on a loaded layer version is answered on the event loop from the spatial index;
    loading a layer and the filters that visit every feature run in a worker thread, and so does the catalogue
    lookup unless the store reads local files (a primary-key read, cheaper than the hop to a thread)."""
    if scene.store.local_reads:
        layer = F.get_layer(scene, collectionId)
    else:
        layer = await anyio.to_thread.run_sync(F.get_layer, scene, collectionId)
    props = {k: v for k, v in request.query_params.items() if k not in _ITEMS_PARAMS}
    for k in props:
        if k not in layer.dtypes:
            raise BadRequest(f"unknown query parameter {k!r}: give limit, offset, bbox, bbox-crs, datetime, filter, "
                             f"filter-lang, crs or a property of the collection ({', '.join(layer.dtypes)})")
    if limit > settings.max_items:
        raise BadRequest(f"limit {limit} is above this service's maximum {settings.max_items}")
    out_crs = _out_crs(crs, scene)
    interval, frames = F.parse_datetime(datetime), request.app.state.frames
    box = _bbox84(bbox, bbox_crs, scene)

    def query() -> F.FeaturePage:
        return F.query_items(scene, layer, bbox=box, interval=interval, properties=props,
                             cql=F.parse_filter(filter, filter_lang), limit=limit, offset=offset, crs=out_crs,
                             cache=frames)

    if filter is None and frames.holds(layer) and F.indexed(interval, props):
        page = query()
    else:
        page = await anyio.to_thread.run_sync(query)
    url = request.url
    links = [{"href": str(url), "rel": "self", "type": "application/geo+json"},
             {"href": f"{_base(request)}/collections/{layer.name}", "rel": "collection", "type": "application/json"}]
    if offset + page.number_returned < page.number_matched:
        links.append({"href": str(url.include_query_params(offset=offset + limit)), "rel": "next",
                      "type": "application/geo+json"})
    if offset > 0:
        links.append({"href": str(url.include_query_params(offset=max(0, offset - limit))), "rel": "prev",
                      "type": "application/geo+json"})
    from datetime import UTC
    from datetime import datetime as dt

    rest = F.dumps({"numberMatched": page.number_matched, "numberReturned": page.number_returned,
                     "timeStamp": dt.now(UTC).isoformat(timespec="seconds"), "links": links})
    # the features are cached GeoJSON texts: joined, not encoded again (the same bytes as GeoJSONResponse's)
    body = '{"type":"FeatureCollection","features":[' + ",".join(page.encoded) + "]," + rest[1:]
    return _RenderedGeoJSON(body.encode("utf-8"), headers={"Content-Crs": f"<{out_crs}>"})


items.open_query = True    # property filters: checked against the collection's columns in the endpoint


@router.get("/collections/{collectionId}/items/{featureId}", summary="One feature", response_class=GeoJSONResponse,
            responses=ERRORS)
def item(request: Request, scene: SceneDep, _: ReadCaller, collectionId: CollectionId,
         featureId: FeatureId, crs: CrsParam = None) -> GeoJSONResponse:
    layer = F.get_layer(scene, collectionId)
    out_crs = _out_crs(crs, scene)
    feature = F.read_item(scene, layer, featureId, out_crs, cache=request.app.state.frames)
    b = _base(request)
    feature["links"] = [
        {"href": f"{b}/collections/{layer.name}/items/{quote(featureId, safe='')}", "rel": "self", "type": "application/geo+json"},
        {"href": f"{b}/collections/{layer.name}", "rel": "collection", "type": "application/json"}]
    return GeoJSONResponse(feature, headers={"Content-Crs": f"<{out_crs}>"})
