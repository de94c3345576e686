"""IoT in the city model: the OGC SensorThings API v1.1 entities, their tables, and how to write and read them.

Entities are small frozen value objects, validated when built; a malformed one raises `cim.DataError` naming the
field and the fix. A `Datastream` may be linked to a city object (layer + feature id + attribute), which is what
CityGML 3.0's Dynamizer does: a water-level sensor to a low-lying street point, a rain gauge to a district.

Storage is SQLAlchemy Core on whatever Connection the caller gives (the scene store: SQLite or PostgreSQL). An
observation re-sent — same Datastream and phenomenonTime, or the same client-given ``@iot.id`` — is stored once.
Things, Sensors, ObservedProperties, Locations and FeaturesOfInterest are found again by their natural key (a
Thing by name, a Datastream by Thing and name, the others by their content), so loading a file twice adds
nothing. Malformed messages from streams go to a dead-letter table with the reason and the raw payload.

Writes: `add_thing` (a Thing with everything nested), `add_observations` (value objects; big numeric batches
take the bulk road), `add_observation_frame` (a DataFrame: COPY on PostgreSQL), `add_dead_letter`. Reads:
`observations` / `observation_series` (one Datastream, a ``[start, end)`` window, as pandas), `datastreams`
(also by linked city object), `get_datastream`, `dead_letters`. All run on the caller's Connection, inside the
caller's transaction.

>>> ds = Datastream(name="rain", unit_of_measurement=UnitOfMeasurement("millimetre", "mm"),
...                 sensor=Sensor("gauge"), observed_property=ObservedProperty("precipitation_amount"))
>>> ds.unit_of_measurement.symbol
'mm'
>>> Observation("2020-06-17T15:00:00Z", 51.3).phenomenon_time.isoformat()
'2020-06-17T15:00:00+00:00'
>>> UnitOfMeasurement("millimetre", "")
Traceback (most recent call last):
...
cim.errors.DataError: unitOfMeasurement.symbol is empty: give the unit's symbol, e.g. {"name": "millimetre", "symbol": "mm", "definition": "http://unitsofmeasure.org/ucum.html"}
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cim.errors import DataError, ValidationError
from cim.schema import insert_ignore, metadata

__all__ = [
    "OBSERVATION_TYPES",
    "OM_CATEGORY",
    "OM_COUNT",
    "OM_MEASUREMENT",
    "OM_OBSERVATION",
    "OM_TRUTH",
    "REGIONS_LAYER",
    "AddResult",
    "CityObjectRef",
    "Datastream",
    "FeatureOfInterest",
    "Location",
    "Observation",
    "ObservedProperty",
    "Sensor",
    "Thing",
    "UTCDateTime",
    "UnitOfMeasurement",
    "add_dead_letter",
    "add_observation_frame",
    "add_observations",
    "add_thing",
    "create_tables",
    "datastreams",
    "datastreams_table",
    "dead_letter_table",
    "dead_letters",
    "features_of_interest",
    "get_datastream",
    "link_city_object",
    "link_datastream",
    "locations",
    "observation_from_sta",
    "observation_series",
    "observations",
    "observations_table",
    "observed_properties",
    "parse_time",
    "sensor_locations",
    "sensors",
    "tables",
    "thing_from_sta",
    "thing_locations",
    "things",
]

_OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
OM_CATEGORY = _OM + "OM_CategoryObservation"
OM_COUNT = _OM + "OM_CountObservation"
OM_MEASUREMENT = _OM + "OM_Measurement"
OM_OBSERVATION = _OM + "OM_Observation"
OM_TRUTH = _OM + "OM_TruthObservation"
#: The observation types of SensorThings v1.1 (Table 12) and what a result of each must be.
OBSERVATION_TYPES: dict[str, str] = {
    OM_CATEGORY: "a string (a category or a URI)",
    OM_COUNT: "an integer",
    OM_MEASUREMENT: "a finite number",
    OM_OBSERVATION: "any JSON value",
    OM_TRUTH: "a boolean",
}
_UNIT_EXAMPLE = '{"name": "millimetre", "symbol": "mm", "definition": "http://unitsofmeasure.org/ucum.html"}'


# --------------------------------------------------------------------------------------------- validation helpers

def _text(value: Any, where: str, *, required: bool = True, fix: str = "", limit: int | None = 255) -> str:
    """A string field; ``limit`` is the length of its column (None for unbounded text)."""
    if value is None:
        if required:
            raise DataError(f"{where} is missing{': ' + fix if fix else ''}")
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where} must be a string, not {type(value).__name__} {value!r}{': ' + fix if fix else ''}")
    if required and not value.strip():
        raise DataError(f"{where} is empty{': ' + fix if fix else ''}")
    if limit is not None and len(value) > limit:
        raise DataError(f"{where} is {len(value)} characters long: shorten it to at most {limit}")
    return value


def _json_object(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DataError(f"{where} must be a JSON object, not {type(value).__name__}: give a mapping of names to values")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where} is not JSON-serialisable ({exc}): use strings, numbers, lists and objects") from None
    return dict(value)


def _optional_id(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DataError(f"{where} must be an integer id, not {value!r}")
    try:
        ident = int(value)
    except ValueError:
        raise DataError(f"{where} must be an integer id, not {value!r}: this store numbers entities 1, 2, ...") from None
    if not 0 < ident < 2**31:
        raise DataError(f"{where} {ident} is out of range: ids are integers from 1 to {2**31 - 1}")
    return ident


def _check_entity(entity: Any, kind: str, name_fix: str) -> None:
    """The checks every SensorThings entity shares: a name, an optional description, an optional @iot.id."""
    _text(entity.name, f"{kind}.name", fix=name_fix)
    _text(entity.description, f"{kind}.description", required=False, limit=None)
    object.__setattr__(entity, "id", _optional_id(entity.id, f"{kind}.@iot.id"))


def _check_geojson_entity(entity: Any, kind: str, attr: str, name_fix: str) -> None:
    """The checks of an entity with a place (Location, FeatureOfInterest): those of every entity, its encodingType,
    and its ``attr`` as a JSON object, with a GeoJSON ``type`` when the encoding says GeoJSON."""
    _check_entity(entity, kind, name_fix)
    _text(entity.encoding_type, f"{kind}.encodingType", fix="use 'application/geo+json'", limit=128)
    value = _json_object(getattr(entity, attr), f"{kind}.{attr}")
    if entity.encoding_type in ("application/geo+json", "application/vnd.geo+json") and "type" not in value:
        raise DataError(f"{kind}.{attr} has no GeoJSON 'type': write e.g. "
                        '{"type": "Point", "coordinates": [3.596, 51.442]}')
    object.__setattr__(entity, attr, value)


def parse_time(value: Any, where: str = "phenomenonTime") -> datetime:
    """An aware UTC datetime from an ISO 8601 string, a datetime or a pandas Timestamp (naive ones are refused).

    >>> parse_time("2020-06-17T17:00:00+02:00").isoformat()
    '2020-06-17T15:00:00+00:00'
    """
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise DataError(f"{where} {value!r} is not an ISO 8601 time: write e.g. 2020-06-17T15:00:00Z") from None
    if not isinstance(value, datetime):
        raise DataError(f"{where} must be an ISO 8601 time string, not {type(value).__name__} {value!r}: "
                        "write e.g. 2020-06-17T15:00:00Z")
    if value.tzinfo is None or value.utcoffset() is None:
        raise DataError(f"{where} {value.isoformat()} has no time zone: add one, e.g. 2020-06-17T15:00:00Z for UTC")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise DataError(f"{where} {value.isoformat()} is out of range in UTC: give a time between years 1 and "
                        "9999") from None


def _parse_period(value: Any, where: str) -> tuple[datetime, datetime | None]:
    """A time instant or an ISO 8601 interval ``start/end`` -> (start, end or None)."""
    if isinstance(value, str) and "/" in value:
        a, b = value.split("/", 1)
        start, end = parse_time(a, where + " (start)"), parse_time(b, where + " (end)")
        if end < start:
            raise DataError(f"{where} {value!r} ends before it starts: write start/end in that order")
        return start, end
    return parse_time(value, where), None


def _key(*parts: Any) -> str:
    """A stable content key (sha256 of canonical JSON) for entities found again by what they say."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------- entities

@dataclass(frozen=True)
class UnitOfMeasurement:
    """SensorThings ``unitOfMeasurement``: name, symbol (UCUM where possible) and definition URI."""

    name: str
    symbol: str
    definition: str = ""

    def __post_init__(self) -> None:
        _text(self.name, "unitOfMeasurement.name", fix=f"give the unit's name, e.g. {_UNIT_EXAMPLE}")
        _text(self.symbol, "unitOfMeasurement.symbol", fix=f"give the unit's symbol, e.g. {_UNIT_EXAMPLE}", limit=64)
        _text(self.definition, "unitOfMeasurement.definition", required=False, limit=None)

    @classmethod
    def from_sta(cls, value: Any, where: str = "unitOfMeasurement") -> UnitOfMeasurement:
        if not isinstance(value, Mapping):
            raise DataError(f"{where} must be an object with name, symbol and definition, not {value!r}: "
                            f"write e.g. {_UNIT_EXAMPLE}")
        missing = [k for k in ("name", "symbol") if value.get(k) is None]
        if missing:
            raise DataError(f"{where}.{missing[0]} is missing: write e.g. {_UNIT_EXAMPLE}")
        return cls(value["name"], value["symbol"], value.get("definition") or "")

    def to_sta(self) -> dict:
        return {"name": self.name, "symbol": self.symbol, "definition": self.definition}


@dataclass(frozen=True)
class CityObjectRef:
    """A link from a Datastream to a city object: the scene layer, the feature's id, optionally its attribute."""

    layer: str
    feature_id: str
    attribute: str | None = None

    def __post_init__(self) -> None:
        _text(self.layer, "city object layer", fix="name the scene layer, e.g. 'buildings'", limit=128)
        _text(self.feature_id, "city object feature id", fix="give the feature's id, e.g. its gml:id")
        if self.attribute is not None:
            _text(self.attribute, "city object attribute")


@dataclass(frozen=True)
class Location:
    """Where a Thing is: ``location`` is GeoJSON (WGS84 lon/lat, as SensorThings says) for application/geo+json."""

    name: str
    location: Mapping[str, Any]
    encoding_type: str = "application/geo+json"
    description: str = ""
    id: int | None = None

    def __post_init__(self) -> None:
        _check_geojson_entity(self, "Location", "location", "give the location a name")

    @property
    def key(self) -> str:
        return _key("Location", self.name, self.encoding_type, self.location)


@dataclass(frozen=True)
class Sensor:
    """The instrument (or procedure) that makes the observations of a Datastream."""

    name: str
    description: str = ""
    encoding_type: str = "text/html"
    metadata: str = ""
    id: int | None = None

    def __post_init__(self) -> None:
        _check_entity(self, "Sensor", "give the sensor a name")
        _text(self.encoding_type, "Sensor.encodingType", fix="e.g. 'text/html' or 'application/pdf'", limit=128)
        if not isinstance(self.metadata, str):  # SensorML may come as an object: keep it as JSON text
            object.__setattr__(self, "metadata", json.dumps(self.metadata, sort_keys=True))

    @property
    def key(self) -> str:
        return _key("Sensor", self.name, self.encoding_type, self.metadata)


@dataclass(frozen=True)
class ObservedProperty:
    """The phenomenon observed, e.g. precipitation_amount with its definition URI."""

    name: str
    definition: str = ""
    description: str = ""
    id: int | None = None

    def __post_init__(self) -> None:
        _check_entity(self, "ObservedProperty", "name the phenomenon, e.g. 'precipitation_amount'")
        _text(self.definition, "ObservedProperty.definition", required=False, limit=None)

    @property
    def key(self) -> str:
        return _key("ObservedProperty", self.name, self.definition)


@dataclass(frozen=True)
class FeatureOfInterest:
    """What an observation is about (a point on a street, a catchment), as GeoJSON by default."""

    name: str
    feature: Mapping[str, Any]
    encoding_type: str = "application/geo+json"
    description: str = ""
    id: int | None = None

    def __post_init__(self) -> None:
        _check_geojson_entity(self, "FeatureOfInterest", "feature", "give the feature a name")

    @property
    def key(self) -> str:
        return _key("FeatureOfInterest", self.name, self.encoding_type, self.feature)


def _check_result(result: Any, observation_type: str, where: str) -> None:
    if observation_type == OM_MEASUREMENT:
        ok = isinstance(result, int | float) and not isinstance(result, bool) and math.isfinite(result)
    elif observation_type == OM_COUNT:
        ok = isinstance(result, int) and not isinstance(result, bool)
    elif observation_type == OM_TRUTH:
        ok = isinstance(result, bool)
    elif observation_type == OM_CATEGORY:
        ok = isinstance(result, str)
    else:
        ok = True
    if not ok:
        name = observation_type.rsplit("/", 1)[-1]
        raise DataError(f"{where} {result!r} does not fit the Datastream's observationType {name}: "
                        f"send {OBSERVATION_TYPES[observation_type]}")


@dataclass(frozen=True)
class Observation:
    """One observation: when the phenomenon happened (an instant, or an interval start..end), when the result was
    made, the result itself and free parameters. ``datastream_id`` is set when the Datastream is known by id (MQTT
    topics, CSV); ``id`` is a client-given identifier that makes a re-sent observation recognisable.
    """

    phenomenon_time: datetime
    result: Any
    result_time: datetime | None = None
    phenomenon_time_end: datetime | None = None
    parameters: Mapping[str, Any] | None = None
    datastream_id: int | None = None
    feature_of_interest: FeatureOfInterest | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if self.phenomenon_time is None:
            raise DataError("phenomenonTime is missing: give the time of the observation, e.g. 2020-06-17T15:00:00Z")
        start, end = _parse_period(self.phenomenon_time, "phenomenonTime")
        if self.phenomenon_time_end is not None:
            end = parse_time(self.phenomenon_time_end, "phenomenonTime (end)")
            if end < start:
                raise DataError("phenomenonTime ends before it starts: give start <= end")
        object.__setattr__(self, "phenomenon_time", start)
        object.__setattr__(self, "phenomenon_time_end", end)
        if self.result_time is not None:
            object.__setattr__(self, "result_time", parse_time(self.result_time, "resultTime"))
        if isinstance(self.result, float) and not math.isfinite(self.result):
            raise DataError(f"result is {self.result}: send a finite number, or leave the observation out")
        try:
            json.dumps(self.result, allow_nan=False)
        except (TypeError, ValueError):
            raise DataError(f"result {self.result!r} is not a JSON value: send a number, string, boolean, "
                            "list or object") from None
        if self.parameters is not None:
            object.__setattr__(self, "parameters", _json_object(self.parameters, "parameters"))
        object.__setattr__(self, "datastream_id", _optional_id(self.datastream_id, "Datastream.@iot.id"))
        if self.id is not None:
            if isinstance(self.id, bool) or not isinstance(self.id, int | str) or not str(self.id).strip():
                raise DataError(f"Observation @iot.id {self.id!r} must be a non-empty string or an integer")
            if len(str(self.id)) > 255:
                raise DataError(f"Observation @iot.id is {len(str(self.id))} characters long: use at most 255")
            object.__setattr__(self, "id", str(self.id))

    def to_sta(self) -> dict:
        """The SensorThings JSON of this observation (as POSTed or published over MQTT).

        >>> Observation("2020-06-17T15:00:00Z", 51.3, id="a1").to_sta()
        {'phenomenonTime': '2020-06-17T15:00:00Z', 'result': 51.3, '@iot.id': 'a1'}
        """
        def iso(t: datetime) -> str:
            return t.isoformat().replace("+00:00", "Z")

        d: dict[str, Any] = {"phenomenonTime": iso(self.phenomenon_time) if self.phenomenon_time_end is None
                             else f"{iso(self.phenomenon_time)}/{iso(self.phenomenon_time_end)}",
                             "result": self.result}
        if self.result_time is not None:
            d["resultTime"] = iso(self.result_time)
        if self.parameters is not None:
            d["parameters"] = dict(self.parameters)
        if self.id is not None:
            d["@iot.id"] = self.id
        if self.feature_of_interest is not None:
            f = self.feature_of_interest
            d["FeatureOfInterest"] = {"name": f.name, "description": f.description,
                                      "encodingType": f.encoding_type, "feature": dict(f.feature)}
        return d


@dataclass(frozen=True)
class Datastream:
    """A time series of observations of one property by one sensor, with its unit; optionally linked to a city
    object (``city_object``) as CityGML 3.0's Dynamizer does. ``observations`` are those that come with it in a
    file; observations streamed later refer to the Datastream by id.
    """

    name: str
    unit_of_measurement: UnitOfMeasurement
    sensor: Sensor
    observed_property: ObservedProperty
    observation_type: str = OM_MEASUREMENT
    description: str = ""
    properties: Mapping[str, Any] | None = None
    city_object: CityObjectRef | None = None
    observations: tuple[Observation, ...] = ()
    id: int | None = None

    def __post_init__(self) -> None:
        _check_entity(self, "Datastream", "give the datastream a name, e.g. 'Hourly precipitation 310'")
        if not isinstance(self.unit_of_measurement, UnitOfMeasurement):
            object.__setattr__(self, "unit_of_measurement",
                               UnitOfMeasurement.from_sta(self.unit_of_measurement, "Datastream.unitOfMeasurement"))
        for attr, cls, label in (("sensor", Sensor, "Sensor"), ("observed_property", ObservedProperty,
                                                                "ObservedProperty")):
            if not isinstance(getattr(self, attr), cls):
                raise DataError(f"Datastream '{self.name}' has no {label}: every Datastream needs one "
                                f"(give a {label} object or a nested {label} in the JSON)")
        if self.observation_type not in OBSERVATION_TYPES:
            raise DataError(f"Datastream '{self.name}' observationType {self.observation_type!r} is not a "
                            f"SensorThings observation type: use one of {sorted(OBSERVATION_TYPES)}")
        if self.city_object is not None and not isinstance(self.city_object, CityObjectRef):
            raise DataError(f"Datastream '{self.name}' city_object must be a CityObjectRef(layer, feature_id)")
        object.__setattr__(self, "properties", _json_object(self.properties, f"Datastream '{self.name}' properties"))
        obs = tuple(self.observations)
        for i, o in enumerate(obs):
            if not isinstance(o, Observation):
                raise DataError(f"Datastream '{self.name}' observation {i} is not an Observation")
            _check_result(o.result, self.observation_type, f"Datastream '{self.name}' observation {i} result")
        object.__setattr__(self, "observations", obs)


@dataclass(frozen=True)
class Thing:
    """A thing in the city that carries sensors (a gauge station, a pumping station, a building)."""

    name: str
    description: str = ""
    properties: Mapping[str, Any] | None = None
    locations: tuple[Location, ...] = ()
    datastreams: tuple[Datastream, ...] = ()
    id: int | None = None

    def __post_init__(self) -> None:
        _check_entity(self, "Thing", "give the thing a name, e.g. 'KNMI AWS 310 Vlissingen'")
        object.__setattr__(self, "properties", _json_object(self.properties, f"Thing '{self.name}' properties"))
        object.__setattr__(self, "locations", tuple(self.locations))
        object.__setattr__(self, "datastreams", tuple(self.datastreams))
        names = [d.name for d in self.datastreams]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise DataError(f"Thing '{self.name}' has two Datastreams named {sorted(dup)[0]!r}: names must differ")


# --------------------------------------------------------------------------------- SensorThings JSON (the wire)

def _sta_id(d: Mapping, where: str) -> int | None:
    return _optional_id(d.get("@iot.id"), f"{where}.@iot.id")


def _need(d: Any, key: str, where: str, fix: str) -> Any:
    if not isinstance(d, Mapping):
        raise DataError(f"{where} must be a JSON object, not {type(d).__name__}")
    if d.get(key) is None:
        raise DataError(f"{where}.{key} is missing: {fix}")
    return d[key]


def observation_from_sta(d: Any, *, datastream_id: int | None = None, where: str = "Observation") -> Observation:
    """An Observation from its SensorThings JSON (``phenomenonTime``, ``result``, optional ``resultTime``,
    ``parameters``, ``@iot.id``, ``FeatureOfInterest``, ``Datastream: {"@iot.id": n}``)."""
    if not isinstance(d, Mapping):
        raise DataError(f"{where} must be a JSON object with phenomenonTime and result, not {type(d).__name__}")
    if "result" not in d:
        raise DataError(f"{where}.result is missing: every observation needs a result, e.g. \"result\": 51.3")
    ptime = d.get("phenomenonTime")
    if ptime is None:
        if d.get("resultTime") is None:
            raise DataError(f"{where}.phenomenonTime is missing: give the time, e.g. \"2020-06-17T15:00:00Z\"")
        ptime = d["resultTime"]  # SensorThings: the server may take resultTime as phenomenonTime
    ds_ref = d.get("Datastream")
    if ds_ref is not None:
        ref = _optional_id(_need(ds_ref, "@iot.id", f"{where}.Datastream", "refer to it as {\"@iot.id\": n}"),
                           f"{where}.Datastream.@iot.id")
        if datastream_id is not None and ref != datastream_id:
            raise DataError(f"{where}.Datastream.@iot.id {ref} contradicts Datastream {datastream_id} of the topic "
                            "or URL: leave it out or make them agree")
        datastream_id = ref
    foi = d.get("FeatureOfInterest")
    try:
        return Observation(
            phenomenon_time=ptime, result=d["result"], result_time=d.get("resultTime"),
            parameters=d.get("parameters"), datastream_id=datastream_id, id=d.get("@iot.id"),
            feature_of_interest=None if foi is None else _foi_from_sta(foi, f"{where}.FeatureOfInterest"))
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None


def _foi_from_sta(d: Any, where: str) -> FeatureOfInterest:
    return FeatureOfInterest(
        name=_need(d, "name", where, "give the feature a name"),
        feature=_need(d, "feature", where, "give the feature as GeoJSON"),
        encoding_type=d.get("encodingType") or "application/geo+json",
        description=d.get("description") or "", id=_sta_id(d, where))


def thing_from_sta(d: Any, *, where: str = "Thing") -> Thing:
    """A Thing with its nested Locations and Datastreams (each with Sensor, ObservedProperty and Observations),
    from SensorThings JSON as POSTed to ``/Things`` (deep insert)."""
    name = _need(d, "name", where, "give the Thing a name")
    locations = []
    for i, loc in enumerate(d.get("Locations") or ()):
        w = f"{where}.Locations[{i}]"
        locations.append(Location(
            name=_need(loc, "name", w, "give the location a name"),
            location=_need(loc, "location", w, 'give GeoJSON, e.g. {"type": "Point", "coordinates": [lon, lat]}'),
            encoding_type=loc.get("encodingType") or "application/geo+json",
            description=loc.get("description") or "", id=_sta_id(loc, w)))
    streams = []
    for i, ds in enumerate(d.get("Datastreams") or ()):
        w = f"{where}.Datastreams[{i}]"
        sen = _need(ds, "Sensor", w, "nest the Sensor that makes the observations")
        op = _need(ds, "ObservedProperty", w, "nest the ObservedProperty, e.g. {\"name\": \"precipitation_amount\"}")
        sensor = Sensor(name=_need(sen, "name", w + ".Sensor", "give the sensor a name"),
                        description=sen.get("description") or "",
                        encoding_type=sen.get("encodingType") or "text/html",
                        metadata=sen.get("metadata") or "", id=_sta_id(sen, w + ".Sensor"))
        prop = ObservedProperty(name=_need(op, "name", w + ".ObservedProperty", "name the phenomenon"),
                                definition=op.get("definition") or "", description=op.get("description") or "",
                                id=_sta_id(op, w + ".ObservedProperty"))
        obs_type = ds.get("observationType") or OM_MEASUREMENT
        obs = tuple(observation_from_sta(o, where=f"{w}.Observations[{j}]")
                    for j, o in enumerate(ds.get("Observations") or ()))
        streams.append(Datastream(
            name=_need(ds, "name", w, "give the datastream a name"),
            unit_of_measurement=UnitOfMeasurement.from_sta(
                _need(ds, "unitOfMeasurement", w, f"give the unit, e.g. {_UNIT_EXAMPLE}"), w + ".unitOfMeasurement"),
            sensor=sensor, observed_property=prop, observation_type=obs_type,
            description=ds.get("description") or "", properties=ds.get("properties"),
            observations=obs, id=_sta_id(ds, w)))
    return Thing(name=name, description=d.get("description") or "", properties=d.get("properties"),
                 locations=tuple(locations), datastreams=tuple(streams), id=_sta_id(d, where))


# -------------------------------------------------------------------------------------------------------- tables

class UTCDateTime(sa.TypeDecorator):
    """Timestamps in UTC: ``timestamptz`` on PostgreSQL, fixed-width ISO text (sortable) on SQLite; aware out."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = parse_time(value, "time")
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")   # SQLite autoincrements INTEGER PRIMARY KEY only

things = sa.Table(
    "iot_things", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("properties", sa.Text, nullable=False, default="{}"),
)
locations = sa.Table(
    "iot_locations", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("encoding_type", sa.String(128), nullable=False),
    sa.Column("location", sa.Text, nullable=False),             # GeoJSON (WGS84 lon/lat)
)
thing_locations = sa.Table(
    "iot_thing_locations", metadata,
    sa.Column("thing_id", sa.Integer, sa.ForeignKey("iot_things.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("location_id", sa.Integer, sa.ForeignKey("iot_locations.id", ondelete="CASCADE"), primary_key=True),
)
sensors = sa.Table(
    "iot_sensors", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("encoding_type", sa.String(128), nullable=False),
    sa.Column("metadata", sa.Text, nullable=False, default=""),
)
observed_properties = sa.Table(
    "iot_observed_properties", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("definition", sa.Text, nullable=False, default=""),
    sa.Column("description", sa.Text, nullable=False, default=""),
)
features_of_interest = sa.Table(
    "iot_features_of_interest", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("encoding_type", sa.String(128), nullable=False),
    sa.Column("feature", sa.Text, nullable=False),
)
datastreams_table = sa.Table(
    "iot_datastreams", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("thing_id", sa.Integer, sa.ForeignKey("iot_things.id"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("observation_type", sa.String(255), nullable=False),
    sa.Column("unit_name", sa.String(255), nullable=False),
    sa.Column("unit_symbol", sa.String(64), nullable=False),
    sa.Column("unit_definition", sa.Text, nullable=False, default=""),
    sa.Column("sensor_id", sa.Integer, sa.ForeignKey("iot_sensors.id"), nullable=False),
    sa.Column("observed_property_id", sa.Integer, sa.ForeignKey("iot_observed_properties.id"), nullable=False),
    sa.Column("properties", sa.Text, nullable=False, default="{}"),
    sa.Column("city_layer", sa.String(128), nullable=True),      # link to a city object (CityGML 3.0 Dynamizer)
    sa.Column("city_feature_id", sa.String(255), nullable=True),
    sa.Column("city_attribute", sa.String(255), nullable=True),
    sa.UniqueConstraint("thing_id", "name", name="uq_iot_datastreams_thing_name"),
    sa.Index("ix_iot_datastreams_city", "city_layer", "city_feature_id"),
)
observations_table = sa.Table(
    "iot_observations", metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("datastream_id", sa.Integer, sa.ForeignKey("iot_datastreams.id"), nullable=False),
    sa.Column("phenomenon_time", UTCDateTime, nullable=False),
    sa.Column("phenomenon_time_end", UTCDateTime, nullable=True),  # set for interval phenomenonTimes
    sa.Column("result_time", UTCDateTime, nullable=True),
    sa.Column("result", sa.Float, nullable=True),                  # numeric results (measurements, counts)
    sa.Column("result_json", sa.Text, nullable=True),              # any other result, as JSON
    sa.Column("parameters", sa.Text, nullable=True),
    sa.Column("feature_of_interest_id", sa.Integer, sa.ForeignKey("iot_features_of_interest.id"), nullable=True),
    sa.Column("client_id", sa.String(255), nullable=True),     # a client-given @iot.id
    # one observation per datastream and time: a re-sent one is ignored; also the index of time-window queries
    sa.UniqueConstraint("datastream_id", "phenomenon_time", name="uq_iot_observations_stream_time"),
)
# a client-given @iot.id identifies an observation once; most have none, so only those with one are indexed
sa.Index("ux_iot_observations_client_id", observations_table.c.client_id, unique=True,
         postgresql_where=observations_table.c.client_id.isnot(None),
         sqlite_where=observations_table.c.client_id.isnot(None))
dead_letter_table = sa.Table(
    "iot_dead_letters", metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("received", UTCDateTime, nullable=False, index=True),
    sa.Column("source", sa.String(255), nullable=False),      # "mqtt://host:port", a file path, "http"
    sa.Column("topic", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),     # the raw bytes, as received
)

#: Every IoT table, in creation order.
tables: tuple[sa.Table, ...] = (things, locations, thing_locations, sensors, observed_properties,
                                features_of_interest, datastreams_table, observations_table, dead_letter_table)


def create_tables(bind: sa.Engine | sa.Connection) -> None:
    """Create the IoT tables where missing (a scene store does this itself for all of `cim.schema.metadata`)."""
    metadata.create_all(bind, tables=list(tables), checkfirst=True)


# --------------------------------------------------------------------------------------------------------- write

@dataclass
class AddResult:
    """What `add_thing` wrote: ids of the Thing and its Datastreams (by name), and how many observations were new
    (in all, and per Datastream name)."""

    thing_id: int
    datastream_ids: dict[str, int] = field(default_factory=dict)
    observations_new: int = 0
    observations_total: int = 0
    new_by_datastream: dict[str, int] = field(default_factory=dict)


def _bump_sequence(conn: sa.Connection, table: sa.Table) -> None:
    """After inserting an explicit id on PostgreSQL, move the serial past it so generated ids never collide."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                             f"(SELECT max(id) FROM {table.name}))"))


def _get_or_create(conn: sa.Connection, table: sa.Table, row: dict, natural: Mapping[str, Any], label: str) -> int:
    """The id of the row found by its natural key, or of the row inserted; an explicit id must agree."""
    def find() -> int | None:
        cond = sa.and_(*(table.c[k] == v for k, v in natural.items()))
        return conn.execute(sa.select(table.c.id).where(cond)).scalar()

    explicit = row.get("id")
    if explicit is not None:
        stored = conn.execute(sa.select(*(table.c[k] for k in natural)).where(table.c.id == explicit)).first()
        if stored is not None:
            if tuple(stored) != tuple(natural.values()):
                raise DataError(f"{label} has @iot.id {explicit}, which is stored for another entity "
                                f"({', '.join(f'{k}={v!r}' for k, v in zip(natural, stored, strict=True))}): "
                                "leave the id out or use the stored entity's id")
            return explicit
        other = find()
        if other is not None:
            raise DataError(f"{label} with @iot.id {explicit} is already stored as @iot.id {other}: "
                            f"send @iot.id {other} or leave the id out")
        conn.execute(table.insert().values(row))
        _bump_sequence(conn, table)
        return explicit
    found = find()
    if found is not None:
        return found
    row = {k: v for k, v in row.items() if k != "id"}
    insert_ignore(conn, table, [row])       # safe against a concurrent writer of the same entity
    return find()


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _sensor_id(conn: sa.Connection, s: Sensor) -> int:
    return _get_or_create(conn, sensors, {"id": s.id, "key": s.key, "name": s.name, "description": s.description,
                                          "encoding_type": s.encoding_type, "metadata": s.metadata},
                          {"key": s.key}, f"Sensor '{s.name}'")


def _property_id(conn: sa.Connection, p: ObservedProperty) -> int:
    return _get_or_create(conn, observed_properties,
                          {"id": p.id, "key": p.key, "name": p.name, "definition": p.definition,
                           "description": p.description}, {"key": p.key}, f"ObservedProperty '{p.name}'")


def _foi_id(conn: sa.Connection, f: FeatureOfInterest) -> int:
    return _get_or_create(conn, features_of_interest,
                          {"id": f.id, "key": f.key, "name": f.name, "description": f.description,
                           "encoding_type": f.encoding_type, "feature": _dumps(f.feature)},
                          {"key": f.key}, f"FeatureOfInterest '{f.name}'")


def add_thing(conn: sa.Connection, thing: Thing) -> AddResult:
    """Write a Thing with its Locations, Datastreams (with Sensor and ObservedProperty) and their Observations.

    Entities already stored (same natural key or id) are reused; observations already stored are skipped.
    Run it inside the caller's transaction (``scene.transaction()`` or ``engine.begin()``) so a failure leaves
    nothing behind.
    """
    if not isinstance(thing, Thing):
        raise ValidationError(f"add_thing expects a cim.iot.Thing, not {type(thing).__name__}")
    thing_id = _get_or_create(conn, things, {"id": thing.id, "name": thing.name, "description": thing.description,
                                             "properties": _dumps(thing.properties)},
                              {"name": thing.name}, f"Thing '{thing.name}'")
    for loc in thing.locations:
        loc_id = _get_or_create(conn, locations, {"id": loc.id, "key": loc.key, "name": loc.name,
                                                  "description": loc.description, "encoding_type": loc.encoding_type,
                                                  "location": _dumps(loc.location)},
                                {"key": loc.key}, f"Location '{loc.name}'")
        insert_ignore(conn, thing_locations, [{"thing_id": thing_id, "location_id": loc_id}])
    out = AddResult(thing_id=thing_id)
    for ds in thing.datastreams:
        ds_id = _add_datastream(conn, ds, thing_id)
        out.datastream_ids[ds.name] = ds_id
        new = add_observations(conn, ds.observations, datastream_id=ds_id) if ds.observations else 0
        out.new_by_datastream[ds.name] = new
        out.observations_total += len(ds.observations)
        out.observations_new += new
    return out


def _add_datastream(conn: sa.Connection, ds: Datastream, thing_id: int) -> int:
    u, c = ds.unit_of_measurement, ds.city_object
    row = {"id": ds.id, "thing_id": thing_id, "name": ds.name, "description": ds.description,
           "observation_type": ds.observation_type, "unit_name": u.name, "unit_symbol": u.symbol,
           "unit_definition": u.definition, "sensor_id": _sensor_id(conn, ds.sensor),
           "observed_property_id": _property_id(conn, ds.observed_property), "properties": _dumps(ds.properties),
           "city_layer": c and c.layer, "city_feature_id": c and c.feature_id, "city_attribute": c and c.attribute}
    ds_id = _get_or_create(conn, datastreams_table, row, {"thing_id": thing_id, "name": ds.name},
                           f"Datastream '{ds.name}'")
    stored = conn.execute(sa.select(datastreams_table.c.unit_symbol, datastreams_table.c.observation_type)
                          .where(datastreams_table.c.id == ds_id)).one()
    if tuple(stored) != (u.symbol, ds.observation_type):
        raise DataError(f"Datastream '{ds.name}' (@iot.id {ds_id}) is stored with unit {stored[0]!r} and type "
                        f"{stored[1].rsplit('/', 1)[-1]}, the input says {u.symbol!r} and "
                        f"{ds.observation_type.rsplit('/', 1)[-1]}: convert the values or name a new Datastream")
    if c is not None:
        link_datastream(conn, ds_id, c)
    return ds_id


def link_datastream(conn: sa.Connection, datastream_id: int, city_object: CityObjectRef | None) -> None:
    """Link a stored Datastream to a city object (or unlink it with None)."""
    c = city_object
    n = conn.execute(datastreams_table.update().where(datastreams_table.c.id == datastream_id).values(
        city_layer=c and c.layer, city_feature_id=c and c.feature_id, city_attribute=c and c.attribute)).rowcount
    if n == 0:
        raise DataError(f"Datastream {datastream_id} is not in the store: load its Thing first")


#: The pseudo-layer name that links a Datastream to an administrative region of the scene (by region name).
REGIONS_LAYER = "regions"


def link_city_object(scene: Any, datastream_id: int, city_object: CityObjectRef, *, id_column: str = "id") -> None:
    """Link a stored Datastream to a city object of ``scene``, after checking that the object is there: a feature
    of a vector layer (found by its ``id_column``) or, with layer ``"regions"``, an administrative region (by
    name) — a water-level sensor to a low-lying street point, a rain gauge to a district. A feature found by
    another column (``id_column="name"``) is linked by its ``id`` when the layer has one, so the link names one
    feature whatever the column; a value that several features share is refused.
    """
    ref = city_object
    if not isinstance(ref, CityObjectRef):
        raise ValidationError(f"city_object must be a cim.iot.CityObjectRef, not {type(ref).__name__}")
    if ref.layer == REGIONS_LAYER:
        ids = [str(n) for n in scene.regions["name"]]
        what = "region"
    else:
        data = scene.layer(ref.layer)
        if not hasattr(data, "columns"):
            raise ValidationError(f"layer {ref.layer!r} is a raster: link Datastreams to features of vector layers "
                                  "or to regions")
        if id_column not in data.columns:
            raise DataError(f"layer {ref.layer!r} has no {id_column!r} column: pass id_column= one of "
                            f"{[c for c in data.columns if c != 'geometry']}")
        ids = data[id_column].astype(str).tolist()
        what = f"feature with {id_column}"
    if ref.feature_id not in set(ids):
        raise DataError(f"no {what} {ref.feature_id!r} in {ref.layer!r} ({len(ids)} there, e.g. {ids[:3]}): "
                        "check the id")
    if ref.layer != REGIONS_LAYER and id_column != "id" and "id" in data.columns:
        found = data.loc[data[id_column].astype(str) == ref.feature_id, "id"].astype(str).tolist()
        if len(found) > 1:
            raise DataError(f"{len(found)} features of {ref.layer!r} have {id_column} {ref.feature_id!r} "
                            f"(ids {found[:5]}): link by id instead")
        ref = CityObjectRef(ref.layer, found[0], ref.attribute)
    with scene.transaction() as conn:
        link_datastream(conn, datastream_id, ref)


def _stream_types(conn: sa.Connection, ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(ids))
    for i in ids:
        _optional_id(i, "Datastream.@iot.id")
    found: dict[int, str] = {}
    for i in range(0, len(ids), 500):
        q = sa.select(datastreams_table.c.id, datastreams_table.c.observation_type).where(
            datastreams_table.c.id.in_(ids[i:i + 500]))
        found.update(dict(conn.execute(q).all()))
    return found


def add_observations(conn: sa.Connection, observations: Iterable[Observation], *,
                     datastream_id: int | None = None, chunk_size: int = 10_000) -> int:
    """Store observations, skipping those already stored (same Datastream and phenomenonTime, or same client
    ``id``); return how many were new.

    Each observation names its Datastream (``Observation.datastream_id``) unless ``datastream_id`` is given for
    all. Every observation is checked first — unknown Datastream, result not fitting the observationType — and a
    `cim.DataError` naming the observation and the fix is raised before anything is written.
    """
    obs = list(observations)
    if not obs:
        return 0
    for i, o in enumerate(obs):
        if not isinstance(o, Observation):
            raise ValidationError(f"observation {i} is a {type(o).__name__}, not a cim.iot.Observation")
        if datastream_id is not None and o.datastream_id not in (None, datastream_id):
            raise DataError(f"observation {i} belongs to Datastream {o.datastream_id}, not {datastream_id}: "
                            "send it to its own Datastream")
        if datastream_id is None and o.datastream_id is None:
            raise DataError(f"observation {i} names no Datastream: give Observation.datastream_id or "
                            "add_observations(..., datastream_id=n)")
    types = _stream_types(conn, {datastream_id} if datastream_id is not None else {o.datastream_id for o in obs})
    rows = []
    for i, o in enumerate(obs):
        ds = datastream_id if datastream_id is not None else o.datastream_id
        if ds not in types:
            raise DataError(f"observation {i}: Datastream {ds} is not in the store: create it (load its Thing) "
                            "before sending observations to it")
        _check_result(o.result, types[ds], f"observation {i} result")
        numeric = isinstance(o.result, int | float) and not isinstance(o.result, bool)
        rows.append({
            "datastream_id": ds, "phenomenon_time": o.phenomenon_time, "phenomenon_time_end": o.phenomenon_time_end,
            "result_time": o.result_time, "result": float(o.result) if numeric else None,
            "result_json": None if numeric else _dumps(o.result),
            "parameters": None if o.parameters is None else _dumps(o.parameters),
            "feature_of_interest_id": None if o.feature_of_interest is None else _foi_id(conn, o.feature_of_interest),
            "client_id": o.id})
    if len(rows) >= _BULK_FROM and all(r["result_json"] is None and r["parameters"] is None
                                       and r["feature_of_interest_id"] is None for r in rows):
        return _bulk_new(conn, pd.DataFrame({
            "datastream_id": [r["datastream_id"] for r in rows],
            **{c: _utc([r[c] for r in rows]) for c in ("phenomenon_time", "phenomenon_time_end", "result_time")},
            "result": [r["result"] for r in rows], "client_id": [r["client_id"] for r in rows]}))
    return sum(_insert_new(conn, observations_table, rows[i:i + chunk_size])
               for i in range(0, len(rows), chunk_size))


_BULK_FROM = 200   # from this many plain numeric observations on, add_observations takes the bulk (COPY) road


_FRAME_COLUMNS = ("datastream_id", "phenomenon_time", "phenomenon_time_end", "result_time", "result", "client_id")


def _frame_times(frame: pd.DataFrame, col: str, required: bool) -> pd.Series:
    if col not in frame:
        if required:
            raise DataError(f"observation frame has no {col!r} column: give the times (timezone-aware)")
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    s = frame[col]
    if not isinstance(s.dtype, pd.DatetimeTZDtype):
        raise DataError(f"observation frame column {col!r} is {s.dtype}, not timezone-aware datetimes: "
                        "use pd.to_datetime(..., utc=True) or .dt.tz_localize(zone)")
    s = s.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    if required and s.isna().any():
        raise DataError(f"observation frame column {col!r} has {int(s.isna().sum())} missing times: "
                        "drop those rows or fill them")
    return s


def add_observation_frame(conn: sa.Connection, frame: pd.DataFrame, *, datastream_id: int | None = None) -> int:
    """Store many numeric observations at once from a DataFrame; return how many were new.

    Columns: ``phenomenon_time`` (timezone-aware), ``result`` (numbers), optionally ``datastream_id`` (else the
    argument), ``phenomenon_time_end``, ``result_time``, ``client_id``. The same rules as `add_observations`
    (re-sent rows are skipped; unknown Datastreams and results not fitting the observationType raise before
    anything is written), checked column-wise; rows go in with COPY on PostgreSQL and a prepared executemany on
    SQLite. Non-numeric results (truth, category) go through `add_observations`.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(f"add_observation_frame expects a pandas DataFrame, not {type(frame).__name__}")
    if frame.empty:
        return 0
    if "result" not in frame:
        raise DataError("observation frame has no 'result' column")
    if datastream_id is not None:
        streams = pd.Series(int(datastream_id), index=frame.index, dtype="int64")
    elif "datastream_id" in frame:
        streams = pd.to_numeric(frame["datastream_id"], errors="coerce")
        if streams.isna().any():
            raise DataError("observation frame column 'datastream_id' has missing or non-integer ids")
        streams = streams.astype("int64")
    else:
        raise DataError("observation frame has no 'datastream_id' column: add one or pass datastream_id=n")
    result = pd.to_numeric(frame["result"], errors="coerce").astype("float64")
    bad = ~np.isfinite(result.to_numpy())
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value = frame["result"].iloc[i]
        value = value.item() if isinstance(value, np.generic) else value
        raise DataError(f"observation frame row {i}: result {value!r} is not a finite number: "
                        "fix or drop it (non-numeric results go through add_observations)")
    types = _stream_types(conn, streams.unique().tolist())
    for ds in streams.unique().tolist():
        if ds not in types:
            raise DataError(f"Datastream {ds} is not in the store: create it (load its Thing) before sending "
                            "observations to it")
        kind = types[ds]
        values = result[streams == ds].to_numpy()
        if kind in (OM_TRUTH, OM_CATEGORY) or (kind == OM_COUNT and (values != np.round(values)).any()):
            raise DataError(f"Datastream {ds} has observationType {kind.rsplit('/', 1)[-1]}: numeric results do "
                            f"not fit it; send {OBSERVATION_TYPES[kind]} through add_observations")
    out = pd.DataFrame({
        "datastream_id": streams, "phenomenon_time": _frame_times(frame, "phenomenon_time", True),
        "phenomenon_time_end": _frame_times(frame, "phenomenon_time_end", False),
        "result_time": _frame_times(frame, "result_time", False), "result": result,
        "client_id": frame["client_id"].astype(object).where(frame["client_id"].notna(), None)
        if "client_id" in frame else pd.Series(None, index=frame.index, dtype=object)})
    long_ids = out["client_id"].map(lambda v: v is not None and len(str(v)) > 255)
    if long_ids.any():
        raise DataError(f"observation frame row {int(np.flatnonzero(long_ids.to_numpy())[0])}: client_id is longer "
                        "than 255 characters: shorten it")
    if (out["phenomenon_time_end"].notna() & (out["phenomenon_time_end"] < out["phenomenon_time"])).any():
        raise DataError("observation frame has phenomenon_time_end before phenomenon_time: fix the intervals")
    return _bulk_new(conn, out)


def _bulk_new(conn: sa.Connection, out: pd.DataFrame) -> int:
    if conn.dialect.name == "postgresql":
        return _copy_new_postgresql(conn, out)
    return _executemany_new_sqlite(conn, out)


def _copy_text(out: pd.DataFrame) -> tuple[list[str], str]:
    """The columns that carry values and the frame as CSV text for COPY, built column-wise (NULL is \\N)."""
    cols, fields = [], []
    for c in _FRAME_COLUMNS:
        s = out[c]
        null = s.isna().to_numpy()
        if null.all():
            continue
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            arr = np.datetime_as_string(s.to_numpy(dtype="datetime64[us]"), unit="us").astype(object) + "Z"
        elif c == "client_id":
            arr = np.array(['"' + str(v).replace('"', '""') + '"' for v in s], dtype=object)
        else:   # integers, and floats in their shortest exact form
            arr = s.to_numpy().astype(str).astype(object)
        arr[null] = "\\N"
        cols.append(c)
        fields.append(arr)
    return cols, "\n".join(map(",".join, zip(*fields, strict=True))) + "\n"


def _copy_new_postgresql(conn: sa.Connection, out: pd.DataFrame) -> int:
    """COPY straight into the table (under a savepoint); if a row is there already, COPY into a temporary table
    and move the new rows with one INSERT ... SELECT ... ON CONFLICT DO NOTHING (whose rowcount is the count)."""
    import uuid

    from psycopg.errors import UniqueViolation

    cols, text = _copy_text(out)
    names = ", ".join(cols)
    raw = conn.connection.driver_connection
    try:
        with conn.begin_nested():
            with raw.cursor() as cur, cur.copy(f"COPY {observations_table.name} ({names}) "
                                               "FROM STDIN (FORMAT csv, NULL '\\N')") as copy:
                copy.write(text)
        return len(out)
    except UniqueViolation:
        pass                     # some rows were sent before: rolled back to the savepoint, take the slow road
    tmp = f"_iot_load_{uuid.uuid4().hex[:12]}"
    conn.exec_driver_sql(f"CREATE TEMP TABLE {tmp} (datastream_id integer, phenomenon_time timestamptz, "
                         "phenomenon_time_end timestamptz, result_time timestamptz, result double precision, "
                         "client_id text) ON COMMIT DROP")
    with raw.cursor() as cur, cur.copy(f"COPY {tmp} ({names}) FROM STDIN (FORMAT csv, NULL '\\N')") as copy:
        copy.write(text)
    res = conn.exec_driver_sql(f"INSERT INTO {observations_table.name} ({names}) SELECT {names} FROM {tmp} "
                               "ON CONFLICT DO NOTHING")
    conn.exec_driver_sql(f"DROP TABLE {tmp}")
    return res.rowcount


def _executemany_new_sqlite(conn: sa.Connection, out: pd.DataFrame) -> int:
    """INSERT OR IGNORE with the DB-API's executemany; times in the text form UTCDateTime writes."""
    def text(s: pd.Series) -> list:
        arr = np.datetime_as_string(s.to_numpy(dtype="datetime64[us]"), unit="us").astype("U26")
        arr.view(np.uint32).reshape(-1, 26)[:, 10] = ord(" ")      # 2024-01-01T00:00:00.000000 -> ... 00:00...
        arr = arr.astype(object)
        arr[s.isna().to_numpy()] = None
        return arr.tolist()

    rows = zip(out["datastream_id"].tolist(), text(out["phenomenon_time"]), text(out["phenomenon_time_end"]),
               text(out["result_time"]), out["result"].tolist(), out["client_id"].tolist(), strict=True)
    raw = conn.connection.driver_connection
    before = raw.total_changes
    cur = raw.cursor()
    try:
        cur.executemany(f"INSERT OR IGNORE INTO {observations_table.name} ({', '.join(_FRAME_COLUMNS)}) "
                        "VALUES (?, ?, ?, ?, ?, ?)", rows)
    finally:
        cur.close()
    return raw.total_changes - before


def _insert_new(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> int:
    """Insert rows, skipping those that clash with a unique key; count the new ones by what RETURNING gives back
    (a DBAPI's rowcount after executemany is -1 on psycopg, so it cannot be trusted for this)."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).on_conflict_do_nothing().returning(table.c.id)
    return len(conn.execute(stmt, rows).all())


def add_dead_letter(conn: sa.Connection, *, source: str, reason: str, payload: bytes | str,
                    topic: str | None = None, received: datetime | None = None) -> None:
    """Keep a message that could not be stored, with why, so that nothing received is silently lost."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogateescape")
    conn.execute(dead_letter_table.insert().values(
        received=received or datetime.now(UTC), source=source, topic=topic, reason=reason, payload=bytes(payload)))


# ---------------------------------------------------------------------------------------------------------- read

def _window(q, col, start, end):
    if start is not None:
        q = q.where(col >= parse_time(start, "start"))
    if end is not None:
        q = q.where(col < parse_time(end, "end"))
    return q


def _utc(values) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype("datetime64[us, UTC]")


def observations(conn: sa.Connection, datastream_id: int, start: Any = None, end: Any = None) -> pd.DataFrame:
    """The observations of one Datastream with ``start <= phenomenonTime < end`` (either open), in time order.

    Columns: phenomenon_time, phenomenon_time_end, result_time (UTC), result (float for numeric results, else
    the decoded JSON value), parameters (dict or None), client_id.
    """
    t = observations_table
    q = _window(sa.select(t.c.phenomenon_time, t.c.phenomenon_time_end, t.c.result_time, t.c.result,
                          t.c.result_json, t.c.parameters, t.c.client_id)
                .where(t.c.datastream_id == int(datastream_id)), t.c.phenomenon_time, start, end)
    rows = conn.execute(q.order_by(t.c.phenomenon_time)).all()
    numeric = all(r.result_json is None for r in rows)
    return pd.DataFrame({
        "phenomenon_time": _utc([r.phenomenon_time for r in rows]),
        "phenomenon_time_end": _utc([r.phenomenon_time_end for r in rows]),
        "result_time": _utc([r.result_time for r in rows]),
        "result": (pd.Series([r.result for r in rows], dtype="float64") if numeric else
                   pd.Series([r.result if r.result_json is None else json.loads(r.result_json) for r in rows],
                             dtype=object)),
        "parameters": pd.Series([None if r.parameters is None else json.loads(r.parameters) for r in rows],
                                dtype=object),
        "client_id": pd.Series([r.client_id for r in rows], dtype=object),
    })


def observation_series(conn: sa.Connection, datastream_id: int, start: Any = None, end: Any = None) -> pd.Series:
    """The results of one Datastream as a Series indexed by phenomenonTime (UTC), named after the Datastream,
    with ``attrs["units"]`` the unit symbol."""
    ds = get_datastream(conn, datastream_id)
    df = observations(conn, datastream_id, start, end)
    s = pd.Series(df["result"].to_numpy(), index=pd.DatetimeIndex(df["phenomenon_time"], name="phenomenon_time"),
                  name=ds.name)
    s.attrs.update(units=ds.unit_of_measurement.symbol, datastream_id=int(datastream_id))
    return s


def get_datastream(conn: sa.Connection, datastream_id: int) -> Datastream:
    """The stored Datastream (without its observations), with Sensor, ObservedProperty and city-object link."""
    d, s, p = datastreams_table, sensors, observed_properties
    r = conn.execute(sa.select(d, s.c.name.label("s_name"), s.c.description.label("s_description"),
                               s.c.encoding_type.label("s_encoding"), s.c.metadata.label("s_metadata"),
                               p.c.name.label("p_name"), p.c.definition.label("p_definition"),
                               p.c.description.label("p_description"))
                     .join_from(d, s, d.c.sensor_id == s.c.id).join_from(d, p, d.c.observed_property_id == p.c.id)
                     .where(d.c.id == int(datastream_id))).one_or_none()
    if r is None:
        raise DataError(f"Datastream {datastream_id} is not in the store: load its Thing first")
    return Datastream(
        name=r.name, description=r.description, observation_type=r.observation_type,
        unit_of_measurement=UnitOfMeasurement(r.unit_name, r.unit_symbol, r.unit_definition),
        sensor=Sensor(r.s_name, r.s_description, r.s_encoding, r.s_metadata, id=r.sensor_id),
        observed_property=ObservedProperty(r.p_name, r.p_definition, r.p_description, id=r.observed_property_id),
        properties=json.loads(r.properties), id=r.id,
        city_object=(CityObjectRef(r.city_layer, r.city_feature_id, r.city_attribute)
                     if r.city_layer is not None else None))


def datastreams(conn: sa.Connection, *, thing: str | None = None, city_layer: str | None = None,
                feature_id: str | None = None) -> pd.DataFrame:
    """Stored Datastreams (id, thing, name, unit_symbol, observation_type, observed_property, city_layer,
    city_feature_id, city_attribute), optionally only those of a Thing or linked to a city layer / feature."""
    d, t, p = datastreams_table, things, observed_properties
    q = (sa.select(d.c.id, t.c.name.label("thing"), d.c.name, d.c.unit_symbol, d.c.observation_type,
                   p.c.name.label("observed_property"), d.c.city_layer, d.c.city_feature_id, d.c.city_attribute)
         .join_from(d, t, d.c.thing_id == t.c.id).join_from(d, p, d.c.observed_property_id == p.c.id))
    if thing is not None:
        q = q.where(t.c.name == thing)
    if city_layer is not None:
        q = q.where(d.c.city_layer == city_layer)
    if feature_id is not None:
        q = q.where(d.c.city_feature_id == str(feature_id))
    rows = conn.execute(q.order_by(d.c.id)).all()
    return pd.DataFrame(rows, columns=["id", "thing", "name", "unit_symbol", "observation_type",
                                       "observed_property", "city_layer", "city_feature_id", "city_attribute"])


def sensor_locations(conn: sa.Connection):
    """Where the Things are: a GeoDataFrame in WGS84 (EPSG:4326) with one row per Thing and GeoJSON Location
    (thing_id, thing, location, datastreams: their names joined by "; ") — ready for ``scene.add_layer(...,
    kind="sensors")`` or a map."""
    import geopandas as gpd
    import shapely

    t, tl, lo, d = things, thing_locations, locations, datastreams_table
    rows = conn.execute(sa.select(t.c.id, t.c.name, lo.c.name.label("location"), lo.c.encoding_type,
                                  lo.c.location.label("geojson"))
                        .join_from(t, tl, tl.c.thing_id == t.c.id).join_from(tl, lo, tl.c.location_id == lo.c.id)
                        .order_by(t.c.id, lo.c.id)).all()
    names: dict[int, list[str]] = {}
    for tid, name in conn.execute(sa.select(d.c.thing_id, d.c.name).order_by(d.c.id)):
        names.setdefault(tid, []).append(name)
    rows = [r for r in rows if r.encoding_type in ("application/geo+json", "application/vnd.geo+json")]
    return gpd.GeoDataFrame(
        {"thing_id": [r.id for r in rows], "thing": [r.name for r in rows], "location": [r.location for r in rows],
         "datastreams": ["; ".join(names.get(r.id, [])) for r in rows]},
        geometry=[shapely.from_geojson(r.geojson) for r in rows], crs="EPSG:4326")


def dead_letters(conn: sa.Connection, *, source: str | None = None) -> pd.DataFrame:
    """The dead-letter table (received, source, topic, reason, payload bytes), oldest first."""
    t = dead_letter_table
    q = sa.select(t.c.id, t.c.received, t.c.source, t.c.topic, t.c.reason, t.c.payload).order_by(t.c.id)
    if source is not None:
        q = q.where(t.c.source == source)
    rows = conn.execute(q).all()
    df = pd.DataFrame(rows, columns=["id", "received", "source", "topic", "reason", "payload"])
    df["received"] = _utc(df["received"].tolist())
    df["payload"] = [bytes(p) for p in df["payload"]]
    return df
