"""SensorThings API v1.1: read every entity set with query options, create Things (deep insert) and Observations
(one, or a JSON list as a batch; re-sent ones are not duplicated); new observations go out over MQTT.

(No ``from __future__ import annotations`` here: the query options' patterns are per entity set, built in closures,
and FastAPI must see those annotations as objects.)"""


import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api import _sta as S
from api.deps import IngestCaller, ReadCaller, SceneDep, SettingsDep
from api.errors import PayloadTooLarge
from api.openapi import ERRORS

__all__ = ["router"]

router = APIRouter()
Id = Annotated[int, Path(ge=1, le=2**53, description="@iot.id")]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/v1.1"


class StaQuery(BaseModel):
    top: int | None = None
    skip: int | None = None
    count: str | None = None
    orderby: str | None = None
    select: str | None = None
    expand: str | None = None
    filter: str | None = None


def _alternatives(names) -> str:
    return "(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + ")"


def _patterns(es: S.EntitySet) -> tuple[str, str, str | None]:
    """Regular expressions of $orderby, $select and $expand for an entity set (so the OpenAPI document says
    exactly which names are accepted)."""
    order = _alternatives(es.props) + "( (asc|desc))?"
    select = _alternatives({"id", *S.select_names(es)})
    expand = _alternatives(es.nav) if es.nav else None
    return (f"^{order}(,{order})*$", f"^{select}(,{select})*$", f"^{expand}(,{expand})*$" if expand else None)


def sta_query(es: S.EntitySet):
    """The query options of a collection of ``es``, as a typed dependency."""
    order_p, select_p, expand_p = _patterns(es)

    def dependency(
        top: Annotated[int | None, Query(alias="$top", ge=0, le=10_000, description="Entities per page")] = None,
        skip: Annotated[int | None, Query(alias="$skip", ge=0, le=10_000_000)] = None,
        count: Annotated[Literal["true", "false"] | None, Query(alias="$count")] = None,
        orderby: Annotated[str | None, Query(alias="$orderby", max_length=500, pattern=order_p,
                                             description="e.g. phenomenonTime desc")] = None,
        select: Annotated[str | None, Query(alias="$select", max_length=500, pattern=select_p,
                                            description="e.g. id,result")] = None,
        expand: Annotated[str | None, Query(alias="$expand", max_length=500, pattern=expand_p,
                                            description="Navigation properties, one level")] = None,
        filter: Annotated[str | None, Query(
            alias="$filter", max_length=2000,
            description="Comparisons (eq ne gt ge lt le) of properties with numbers, 'text' or times, with "
                        "and/or/not and parentheses, e.g. result gt 5 and phenomenonTime ge 2020-06-17T00:00:00Z")
        ] = None,
    ) -> StaQuery:
        return StaQuery(top=top, skip=skip, count=count, orderby=orderby, select=select, expand=expand,
                        filter=filter)
    return dependency


def sta_entity_query(es: S.EntitySet):
    """$select and $expand of a single entity of ``es``."""
    _, select_p, expand_p = _patterns(es)

    def dependency(
        select: Annotated[str | None, Query(alias="$select", max_length=500, pattern=select_p)] = None,
        expand: Annotated[str | None, Query(alias="$expand", max_length=500, pattern=expand_p)] = None,
    ) -> StaQuery:
        return StaQuery(select=select, expand=expand)
    return dependency


def _options(es: S.EntitySet, q: StaQuery, settings) -> S.QueryOptions:
    return S.parse_options(es, top=q.top, skip=q.skip, count=q.count, orderby=q.orderby, select=q.select,
                           expand=q.expand, filter=q.filter, max_top=settings.max_items)


def _skip_link(request: Request):
    return lambda skip: str(request.url.include_query_params(**{"$skip": skip}))


@router.get("", summary="SensorThings service root", responses=ERRORS)
def root(request: Request) -> dict:
    b = _base(request)
    return {"value": [{"name": n, "url": f"{b}/{n}"} for n in S.ENTITY_SETS],
            "serverSettings": {"conformance": [
                "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
                "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
                "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete/create-entity",
                "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations-creation",
                "http://www.opengis.net/spec/iot_sensing/1.1/req/receive-updates-via-mqtt/receive-updates"]}}


def _list_endpoint(es: S.EntitySet):
    def endpoint(request: Request, scene: SceneDep, settings: SettingsDep, _: ReadCaller,
                 q: Annotated[StaQuery, Depends(sta_query(es))]) -> dict:
        opts = _options(es, q, settings)
        with scene.store.engine.connect() as conn:
            return S.list_entities(conn, es, opts, _base(request), _skip_link(request))
    endpoint.__name__ = f"list_{es.name}"
    return endpoint


def _get_endpoint(es: S.EntitySet):
    def endpoint(request: Request, scene: SceneDep, settings: SettingsDep, _: ReadCaller, id: Id,
                 q: Annotated[StaQuery, Depends(sta_entity_query(es))]) -> dict:
        opts = _options(es, q, settings)
        with scene.store.engine.connect() as conn:
            return S.get_entity(conn, es, id, _base(request), opts)
    endpoint.__name__ = f"get_{es.name}"
    return endpoint


def _nav_endpoint(es: S.EntitySet, name: str, nav: S.Nav):
    target = S.ENTITY_SETS[nav.target]
    options = sta_query(target) if nav.many else sta_entity_query(target)

    def endpoint(request: Request, scene: SceneDep, settings: SettingsDep, _: ReadCaller, id: Id,
                 q: Annotated[StaQuery, Depends(options)]) -> dict:
        opts = _options(target, q, settings)
        with scene.store.engine.connect() as conn:
            S.require_entity(conn, es, id)
            if nav.many:
                return S.list_entities(conn, target, opts, _base(request), _skip_link(request), where=nav.where(id))
            row = conn.execute(S.sa.select(target.table.c.id).where(nav.where(id))).first()
            if row is None:
                raise S.NotFound(f"{es.name}({id}) has no {name}")
            return S.get_entity(conn, target, row.id, _base(request), opts)
    endpoint.__name__ = f"get_{es.name}_{name}"
    return endpoint


for _es in S.ENTITY_SETS.values():
    router.add_api_route(f"/{_es.name}", _list_endpoint(_es), methods=["GET"], summary=f"List {_es.name}",
                         responses=ERRORS)
    router.add_api_route(f"/{_es.name}({{id}})", _get_endpoint(_es), methods=["GET"],
                         summary=f"One of {_es.name}", responses=ERRORS)
    for _name, _nav in _es.nav.items():
        router.add_api_route(f"/{_es.name}({{id}})/{_name}", _nav_endpoint(_es, _name, _nav), methods=["GET"],
                             summary=f"The {_name} of one of {_es.name}", responses=ERRORS)


# ------------------------------------------------------------------------------------------------------ create

class Ref(BaseModel):
    iot_id: int = Field(alias="@iot.id", ge=1, le=2**53)


class ObservationIn(BaseModel):
    """An Observation as POSTed (SensorThings JSON)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    phenomenonTime: AwareDatetime | Annotated[str, Field(pattern=r"^[0-9T:.Z+-]+/[0-9T:.Z+-]+$")] | None = None
    resultTime: AwareDatetime | None = None
    result: int | float | bool | str | dict[str, Any] | list[Any] | None = Field(..., description="The result")
    parameters: dict[str, Any] | None = None
    iot_id: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(None, alias="@iot.id")
    Datastream: Ref | None = None
    FeatureOfInterest: dict[str, Any] | None = None


def _doc(o: ObservationIn) -> dict:
    return o.model_dump(by_alias=True, exclude_none=True, mode="json") | {"result": o.result}


def _post_observations(request: Request, scene, settings, body, datastream_id: int | None) -> JSONResponse:
    docs = [_doc(o) for o in (body if isinstance(body, list) else [body])]
    if len(docs) > settings.max_batch:
        raise PayloadTooLarge(f"{len(docs)} observations in one request; this service takes at most "
                              f"{settings.max_batch}: split the batch")
    if not docs:
        raise S.BadRequest("the batch is empty: send an Observation or a non-empty list of them")
    with scene.store.engine.begin() as conn:
        if datastream_id is not None:
            S.require_entity(conn, S.ENTITY_SETS["Datastreams"], datastream_id)
        results = S.create_observations(conn, docs, datastream_id)
    new = sum(created for _, created in results)
    request.state.audit_detail = f"{new} new of {len(results)} observations"
    base = _base(request)
    es = S.ENTITY_SETS["Observations"]
    with scene.store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(S.sa.select(es.table).where(
            es.table.c.id.in_([i for i, _ in results]))).all()}
    bridge = request.app.state.mqtt
    if bridge is not None:
        for ident, created in results:
            if created:
                r = rows[ident]
                bridge.publish(r.datastream_id, S.entity_json(es, r, base))
    if not isinstance(body, list):
        ident, created = results[0]
        return JSONResponse(S.entity_json(es, rows[ident], base), status_code=201 if created else 200,
                            headers={"Location": f"{base}/Observations({ident})"})
    return JSONResponse({"value": [f"{base}/Observations({i})" for i, _ in results],
                         "created": new, "duplicates": len(results) - new}, status_code=201)


_CREATED = {201: {"description": "Created"}, 200: {"description": "Already stored (a re-sent observation)"}}
ObservationBody = Annotated[ObservationIn | list[ObservationIn], Body(description="An Observation or a list")]


@router.post("/Observations", summary="Create observations (one, or a list as a batch)", status_code=201,
             responses={**ERRORS, **_CREATED})
def post_observations(request: Request, scene: SceneDep, settings: SettingsDep, _: IngestCaller,
                      body: ObservationBody) -> JSONResponse:
    return _post_observations(request, scene, settings, body, None)


@router.post("/Datastreams({id})/Observations", summary="Create observations of a Datastream", status_code=201,
             responses={**ERRORS, **_CREATED})
def post_datastream_observations(request: Request, scene: SceneDep, settings: SettingsDep, _: IngestCaller,
                                 id: Id, body: ObservationBody) -> JSONResponse:
    return _post_observations(request, scene, settings, body, id)


@router.post("/Things", summary="Create a Thing with its Locations, Datastreams and Observations (deep insert)",
             status_code=201, responses=ERRORS)
def post_thing(request: Request, scene: SceneDep, _: IngestCaller,
               body: Annotated[dict[str, Any], Body(description="A Thing (SensorThings JSON)")]) -> JSONResponse:
    with scene.store.engine.begin() as conn:
        ident = S.create_thing(conn, body)
    base = _base(request)
    request.state.audit_detail = f"Thing {ident}"
    with scene.store.engine.connect() as conn:
        doc = S.get_entity(conn, S.ENTITY_SETS["Things"], ident, base)
    return JSONResponse(doc, status_code=201, headers={"Location": f"{base}/Things({ident})"})
