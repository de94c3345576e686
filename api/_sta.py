"""SensorThings API v1.1 over the `cim.iot` tables: entity sets as data, OData-style query options parsed into
SQLAlchemy expressions with bound parameters (nothing from the request is ever spliced into SQL text).

>>> str(parse_filter("result gt 5 and not (phenomenonTime lt 2020-01-01T00:00:00Z)", ENTITY_SETS["Observations"]))
'iot_observations.result > :result_1 AND iot_observations.phenomenon_time >= :phenomenon_time_1'
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from api.errors import BadRequest, NotFound
from cim import iot
from cim.errors import DataError

__all__ = ["ENTITY_SETS", "EntitySet", "Nav", "QueryOptions", "get_entity", "list_entities", "parse_filter",
           "parse_options"]

T = iot  # tables: iot.things, iot.locations, ...
_OBS = iot.observations_table
_DS = iot.datastreams_table


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Nav:
    """A navigation property: the target set, one or many, and the condition on the target for a parent id."""

    target: str
    many: bool
    where: Callable[[Any], Any]


@dataclass(frozen=True)
class EntitySet:
    name: str
    table: sa.Table
    props: dict[str, Any]                       # STA property -> column, for $filter / $orderby
    times: frozenset[str]                       # properties holding times
    render: Callable[[Any], dict]               # row -> properties (no links)
    nav: dict[str, Nav] = field(default_factory=dict)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _render_obs(r) -> dict:
    pt = _iso(r.phenomenon_time) if r.phenomenon_time_end is None else \
        f"{_iso(r.phenomenon_time)}/{_iso(r.phenomenon_time_end)}"
    return {"phenomenonTime": pt, "resultTime": _iso(r.result_time),
            "result": r.result if r.result_json is None else json.loads(r.result_json),
            "parameters": _loads(r.parameters)}


def _in(col, sub):
    return col.in_(sub)


ENTITY_SETS: dict[str, EntitySet] = {es.name: es for es in [
    EntitySet("Things", T.things, {"id": T.things.c.id, "name": T.things.c.name,
                                    "description": T.things.c.description}, frozenset(),
              lambda r: {"name": r.name, "description": r.description, "properties": _loads(r.properties)},
              {"Datastreams": Nav("Datastreams", True, lambda i: _DS.c.thing_id == i),
               "Locations": Nav("Locations", True, lambda i: T.locations.c.id.in_(
                   sa.select(T.thing_locations.c.location_id).where(T.thing_locations.c.thing_id == i)))}),
    EntitySet("Locations", T.locations, {"id": T.locations.c.id, "name": T.locations.c.name,
                                          "description": T.locations.c.description,
                                          "encodingType": T.locations.c.encoding_type}, frozenset(),
              lambda r: {"name": r.name, "description": r.description, "encodingType": r.encoding_type,
                         "location": _loads(r.location)},
              {"Things": Nav("Things", True, lambda i: T.things.c.id.in_(
                  sa.select(T.thing_locations.c.thing_id).where(T.thing_locations.c.location_id == i)))}),
    EntitySet("Sensors", T.sensors, {"id": T.sensors.c.id, "name": T.sensors.c.name,
                                      "description": T.sensors.c.description,
                                      "encodingType": T.sensors.c.encoding_type}, frozenset(),
              lambda r: {"name": r.name, "description": r.description, "encodingType": r.encoding_type,
                         "metadata": r.metadata},
              {"Datastreams": Nav("Datastreams", True, lambda i: _DS.c.sensor_id == i)}),
    EntitySet("ObservedProperties", T.observed_properties,
              {"id": T.observed_properties.c.id, "name": T.observed_properties.c.name,
               "definition": T.observed_properties.c.definition,
               "description": T.observed_properties.c.description}, frozenset(),
              lambda r: {"name": r.name, "definition": r.definition, "description": r.description},
              {"Datastreams": Nav("Datastreams", True, lambda i: _DS.c.observed_property_id == i)}),
    EntitySet("Datastreams", _DS, {"id": _DS.c.id, "name": _DS.c.name, "description": _DS.c.description,
                                    "observationType": _DS.c.observation_type,
                                    "unitOfMeasurement/symbol": _DS.c.unit_symbol,
                                    "Thing/id": _DS.c.thing_id, "Sensor/id": _DS.c.sensor_id,
                                    "ObservedProperty/id": _DS.c.observed_property_id}, frozenset(),
              lambda r: {"name": r.name, "description": r.description, "observationType": r.observation_type,
                         "unitOfMeasurement": {"name": r.unit_name, "symbol": r.unit_symbol,
                                               "definition": r.unit_definition},
                         "properties": _loads(r.properties)},
              {"Thing": Nav("Things", False, lambda i: T.things.c.id.in_(
                  sa.select(_DS.c.thing_id).where(_DS.c.id == i))),
               "Sensor": Nav("Sensors", False, lambda i: T.sensors.c.id.in_(
                   sa.select(_DS.c.sensor_id).where(_DS.c.id == i))),
               "ObservedProperty": Nav("ObservedProperties", False, lambda i: T.observed_properties.c.id.in_(
                   sa.select(_DS.c.observed_property_id).where(_DS.c.id == i))),
               "Observations": Nav("Observations", True, lambda i: _OBS.c.datastream_id == i)}),
    EntitySet("Observations", _OBS, {"id": _OBS.c.id, "phenomenonTime": _OBS.c.phenomenon_time,
                                      "resultTime": _OBS.c.result_time, "result": _OBS.c.result,
                                      "Datastream/id": _OBS.c.datastream_id,
                                      "FeatureOfInterest/id": _OBS.c.feature_of_interest_id},
              frozenset({"phenomenonTime", "resultTime"}), _render_obs,
              {"Datastream": Nav("Datastreams", False, lambda i: _DS.c.id.in_(
                  sa.select(_OBS.c.datastream_id).where(_OBS.c.id == i))),
               "FeatureOfInterest": Nav("FeaturesOfInterest", False, lambda i: T.features_of_interest.c.id.in_(
                   sa.select(_OBS.c.feature_of_interest_id).where(_OBS.c.id == i)))}),
    EntitySet("FeaturesOfInterest", T.features_of_interest,
              {"id": T.features_of_interest.c.id, "name": T.features_of_interest.c.name,
               "description": T.features_of_interest.c.description,
               "encodingType": T.features_of_interest.c.encoding_type}, frozenset(),
              lambda r: {"name": r.name, "description": r.description, "encodingType": r.encoding_type,
                         "feature": _loads(r.feature)},
              {"Observations": Nav("Observations", True, lambda i: _OBS.c.feature_of_interest_id == i)}),
]}


# ------------------------------------------------------------------------------------------------ $filter parser

_TOKEN = re.compile(r"""\s*(?:
    (?P<lp>\() | (?P<rp>\)) |
    (?P<str>'(?:[^']|'')*') |
    (?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})) |
    (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?) |
    (?P<name>[A-Za-z@][A-Za-z0-9_@./]*)
)""", re.VERBOSE)
_OPS = {"eq": "__eq__", "ne": "__ne__", "gt": "__gt__", "ge": "__ge__", "lt": "__lt__", "le": "__le__"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise BadRequest(f"$filter: cannot read {text[pos:pos + 20]!r}: write e.g. "
                             "\"result gt 5 and phenomenonTime ge 2020-06-17T00:00:00Z\"")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, es: EntitySet) -> None:
        if len(text) > 2000:
            raise BadRequest("$filter is longer than 2000 characters")
        self.toks, self.i, self.es, self.depth = _tokens(text), 0, es, 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise BadRequest("$filter ends too early: complete the expression")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "name" and tok[1] == word:
            self.i += 1
            return True
        return False

    def parse(self):
        expr = self.or_()
        if self.peek() is not None:
            raise BadRequest(f"$filter: unexpected {self.peek()[1]!r}")
        return expr

    def or_(self):
        parts = [self.and_()]
        while self.keyword("or"):
            parts.append(self.and_())
        return sa.or_(*parts) if len(parts) > 1 else parts[0]

    def and_(self):
        parts = [self.not_()]
        while self.keyword("and"):
            parts.append(self.not_())
        return sa.and_(*parts) if len(parts) > 1 else parts[0]

    def not_(self):
        if self.keyword("not"):
            return sa.not_(self.not_())
        tok = self.peek()
        if tok and tok[0] == "lp":
            self.depth += 1
            if self.depth > 20:
                raise BadRequest("$filter nests too deeply")
            self.take()
            expr = self.or_()
            if self.take()[0] != "rp":
                raise BadRequest("$filter: a '(' is not closed")
            self.depth -= 1
            return expr
        return self.comparison()

    def comparison(self):
        kind, name = self.take()
        if kind != "name" or name not in self.es.props:
            raise BadRequest(f"$filter: {name!r} is not a property of {self.es.name} that can be filtered "
                             f"(use {', '.join(self.es.props)})")
        kind, op = self.take()
        if kind != "name" or op not in _OPS:
            raise BadRequest(f"$filter: {op!r} is not an operator: use eq, ne, gt, ge, lt or le")
        value = self.literal(name)
        col = self.es.props[name]
        if value is None:
            if op not in ("eq", "ne"):
                raise BadRequest("$filter: null can only be compared with eq or ne")
            return col.is_(None) if op == "eq" else col.is_not(None)
        return getattr(col, _OPS[op])(value)

    def literal(self, prop: str) -> Any:
        kind, text = self.take()
        if kind == "str":
            value: Any = text[1:-1].replace("''", "'")
        elif kind == "num":
            value = float(text) if any(c in text for c in ".eE") else int(text)
        elif kind == "time":
            value = iot.parse_time(text, "$filter time")
        elif kind == "name" and text in ("true", "false"):
            value = text == "true"
        elif kind == "name" and text == "null":
            return None
        else:
            raise BadRequest(f"$filter: {text!r} is not a value: write a number, 'text', a time or null")
        if prop in self.es.times and not isinstance(value, datetime):
            raise BadRequest(f"$filter: {prop} is compared with a time, e.g. 2020-06-17T15:00:00Z")
        if prop not in self.es.times and isinstance(value, datetime):
            raise BadRequest(f"$filter: {prop} is not a time")
        if ((prop == "id" or prop.endswith("/id") or prop == "result") and not isinstance(value, int | float)) \
                or (isinstance(value, bool) and prop == "result"):
            raise BadRequest(f"$filter: {prop} is compared with a number, e.g. {prop} gt 5")
        return value


def parse_filter(text: str, es: EntitySet):
    """A SQLAlchemy boolean expression for an OData ``$filter`` on ``es`` (values become bound parameters)."""
    return _Parser(text, es).parse()


# ---------------------------------------------------------------------------------------------- query options

#: most entities in one page when ``$expand`` is given (each expanded entity costs a query per navigation
#: property); a larger ``$top`` is served in pages of this size, linked by ``@iot.nextLink``
EXPAND_PAGE = 200


@dataclass
class QueryOptions:
    top: int = 100
    skip: int = 0
    count: bool = False
    orderby: list[tuple[Any, bool]] = field(default_factory=list)
    select: list[str] | None = None
    expand: list[str] = field(default_factory=list)
    filter: Any = None


def parse_options(es: EntitySet, *, top: int | None, skip: int | None, count: str | None, orderby: str | None,
                  select: str | None, expand: str | None, filter: str | None, max_top: int) -> QueryOptions:
    o = QueryOptions()
    if top is not None:
        if top > max_top:
            raise BadRequest(f"$top {top} is above this service's maximum {max_top}")
        o.top = top
    o.skip = skip or 0
    if count is not None:
        o.count = count == "true"
    if orderby:
        for part in orderby.split(","):
            words = part.split()
            if not words or len(words) > 2 or words[0] not in es.props or \
                    (len(words) == 2 and words[1] not in ("asc", "desc")):
                raise BadRequest(f"$orderby {part.strip()!r}: write a property of {es.name} "
                                 f"({', '.join(es.props)}) and optionally asc or desc")
            o.orderby.append((es.props[words[0]], len(words) == 2 and words[1] == "desc"))
    if select:
        names = [s.strip() for s in select.split(",")]
        allowed = {"id", *select_names(es)}
        for n in names:
            if n not in allowed:
                raise BadRequest(f"$select {n!r} is not a property of {es.name}")
        o.select = names
    if expand:
        for n in (s.strip() for s in expand.split(",")):
            if n not in es.nav:
                raise BadRequest(f"$expand {n!r}: {es.name} can expand {', '.join(es.nav)} (one level, "
                                 "no nested options)")
            if n in o.expand:
                raise BadRequest(f"$expand names {n!r} twice: name each navigation property once")
            o.expand.append(n)
        o.top = min(o.top, EXPAND_PAGE)       # server-driven paging: @iot.nextLink continues
    if filter:
        o.filter = parse_filter(filter, es)
    return o


_KEYS: dict[str, frozenset[str]] = {
    "Things": frozenset({"name", "description", "properties"}),
    "Locations": frozenset({"name", "description", "encodingType", "location"}),
    "Sensors": frozenset({"name", "description", "encodingType", "metadata"}),
    "ObservedProperties": frozenset({"name", "definition", "description"}),
    "Datastreams": frozenset({"name", "description", "observationType", "unitOfMeasurement", "properties"}),
    "Observations": frozenset({"phenomenonTime", "resultTime", "result", "parameters"}),
    "FeaturesOfInterest": frozenset({"name", "description", "encodingType", "feature"}),
}


def select_names(es: EntitySet) -> frozenset[str]:
    """What ``$select`` may name (besides ``id``): the properties and the navigation properties."""
    return _KEYS[es.name] | frozenset(es.nav)


# --------------------------------------------------------------------------------------------------- queries

def entity_json(es: EntitySet, row, base: str, select: list[str] | None = None) -> dict:
    self_link = f"{base}/{es.name}({row.id})"
    out = {"@iot.id": row.id, "@iot.selfLink": self_link, **es.render(row)}
    for nav in es.nav:
        out[f"{nav}@iot.navigationLink"] = f"{self_link}/{nav}"
    if select is not None:
        keep = set()
        for s in select:
            keep |= {"@iot.id"} if s == "id" else {s, f"{s}@iot.navigationLink"}
        out = {k: v for k, v in out.items() if k in keep}
    return out


def list_entities(conn: sa.Connection, es: EntitySet, opts: QueryOptions, base: str, url_for_skip,
                  where=None) -> dict:
    """A page of ``es`` (optionally restricted by ``where``), as SensorThings JSON with count and next link."""
    q = sa.select(es.table)
    if where is not None:
        q = q.where(where)
    if opts.filter is not None:
        q = q.where(opts.filter)
    out: dict[str, Any] = {}
    if opts.count:
        out["@iot.count"] = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
    order = [c.desc() if desc else c.asc() for c, desc in opts.orderby] + [es.table.c.id.asc()]
    rows = conn.execute(q.order_by(*order).offset(opts.skip).limit(opts.top + 1)).all()
    more = len(rows) > opts.top
    rows = rows[:opts.top]
    out["value"] = [_with_expand(conn, es, r, opts, base) for r in rows]
    if more:
        out["@iot.nextLink"] = url_for_skip(opts.skip + opts.top)
    return out


def _with_expand(conn, es: EntitySet, row, opts: QueryOptions, base: str) -> dict:
    d = entity_json(es, row, base, opts.select)
    for name in opts.expand:
        nav = es.nav[name]
        target = ENTITY_SETS[nav.target]
        rows = conn.execute(sa.select(target.table).where(nav.where(row.id)).order_by(target.table.c.id)
                            .limit(100 if nav.many else 1)).all()
        items = [entity_json(target, r, base) for r in rows]
        d[name] = items if nav.many else (items[0] if items else None)
    return d


def get_entity(conn: sa.Connection, es: EntitySet, ident: int, base: str, opts: QueryOptions | None = None,
               where=None) -> dict:
    q = sa.select(es.table).where(es.table.c.id == ident)
    if where is not None:
        q = q.where(where)
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"no {es.name}({ident})")
    return _with_expand(conn, es, row, opts or QueryOptions(), base)


def require_entity(conn: sa.Connection, es: EntitySet, ident: int) -> None:
    if conn.execute(sa.select(es.table.c.id).where(es.table.c.id == ident)).first() is None:
        raise NotFound(f"no {es.name}({ident})")


# ---------------------------------------------------------------------------------------------------- create

def create_observations(conn: sa.Connection, docs: list, datastream_id: int | None) -> list[tuple[int, bool]]:
    """Store SensorThings Observation JSON documents; return (observation id, created) for each, in order.

    A re-sent observation (same Datastream and phenomenonTime, or same client ``@iot.id``) is not stored again:
    its existing id comes back with ``created`` False. All or nothing: any invalid document fails the batch.
    """
    parsed = []
    for i, d in enumerate(docs):
        where = "Observation" if len(docs) == 1 else f"Observation[{i}]"
        try:
            o = iot.observation_from_sta(d, datastream_id=datastream_id, where=where)
        except DataError as exc:
            raise BadRequest(str(exc)) from None
        if o.datastream_id is None:
            raise BadRequest(f"{where} names no Datastream: POST to /Datastreams(id)/Observations or give "
                             "\"Datastream\": {\"@iot.id\": n}")
        parsed.append(o)
    out = []
    for i, o in enumerate(parsed):
        try:
            new = iot.add_observations(conn, [o])
        except DataError as exc:
            raise BadRequest(str(exc) if len(parsed) == 1 else f"Observation[{i}]: {exc}") from None
        by_time = sa.and_(_OBS.c.datastream_id == o.datastream_id, _OBS.c.phenomenon_time == o.phenomenon_time)
        ident = None
        if not new and o.id is not None:      # re-sent with its client id: that id decides
            ident = conn.execute(sa.select(_OBS.c.id).where(_OBS.c.client_id == o.id)).scalar()
        if ident is None:
            ident = conn.execute(sa.select(_OBS.c.id).where(by_time)).scalar()
        out.append((int(ident), bool(new)))
    return out


def create_thing(conn: sa.Connection, doc: Any) -> int:
    try:
        thing = iot.thing_from_sta(doc)
        return iot.add_thing(conn, thing).thing_id
    except DataError as exc:
        raise BadRequest(str(exc)) from None
