"""CityGML 3.0 Dynamizers: links from a city object's attribute to sensor data, as `cim.iot` Things.

A Dynamizer (CityGML 3.0 Dynamizer module) says that an attribute of a city object — a room's temperature, a
roof surface's irradiation — varies in time, and where its values come from:

- a ``SensorConnection`` to a SensorThings service (``connectionType`` ogc_sta_1.0, ``baseURL``,
  ``datastreamID``, ``observationProperty``, ``uom``): read as a Datastream linked to the city object; the remote
  service, its Datastream id and the resolved links are kept in the Datastream's properties (the remote id is
  not used as ours, it names a Datastream of another server);
- an inline ``GenericTimeseries`` of ``TimeValuePair`` s: read as a Datastream with its Observations. Timestamps
  without a zone are taken as UTC; a month (``2019-01``) or a day becomes an interval phenomenonTime.

Tabulated/standard file time series and composite time series are reported as skipped.

The city object is named by the gml:id in ``attributeRef`` (else the object holding the Dynamizer) and placed in
a scene layer by its class (`CLASS_LAYERS`, overridable with ``layers=``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cim.errors import DataError, require
from cim.iot import (
    OM_CATEGORY,
    OM_COUNT,
    OM_MEASUREMENT,
    OM_OBSERVATION,
    OM_TRUTH,
    CityObjectRef,
    Datastream,
    Observation,
    ObservedProperty,
    Sensor,
    Thing,
    UnitOfMeasurement,
    parse_time,
)
from ingest.base import CORRUPT, Reader, ReadResult, Skipped, register
from ingest.sensorthings import begin

__all__ = ["CLASS_LAYERS", "DynamizerReader", "DynamizerResult", "read_dynamizers"]

DYN = "http://www.opengis.net/citygml/dynamizer/3.0"
GML = "http://www.opengis.net/gml/3.2"
XLINK = "http://www.w3.org/1999/xlink"
_NS = {"dyn": DYN, "gml": GML}
_GML_ID = f"{{{GML}}}id"

#: City object class -> scene layer its features live in (the layer names of the city-model readers).
CLASS_LAYERS: dict[str, str] = {
    "Building": "buildings", "BuildingPart": "buildings",
    "RoofSurface": "building_surfaces", "WallSurface": "building_surfaces", "GroundSurface": "building_surfaces",
    "ClosureSurface": "building_surfaces", "OuterCeilingSurface": "building_surfaces",
    "OuterFloorSurface": "building_surfaces",
    "BuildingRoom": "building_rooms", "BuildingStorey": "building_rooms", "BuildingUnit": "building_rooms",
    "Road": "roads", "WaterBody": "water", "LandUse": "land_use", "PlantCover": "plant_cover",
    "GenericOccupiedSpace": "generic", "GenericUnoccupiedSpace": "generic", "GenericLogicalSpace": "generic",
}
_VALUE_TYPES = {  # TimeValuePair element -> (observationType, converter)
    "doubleValue": (OM_MEASUREMENT, float), "intValue": (OM_COUNT, int),
    "stringValue": (OM_CATEGORY, str), "boolValue": (OM_TRUTH, lambda s: s.strip().lower() in ("true", "1")),
    "uriValue": (OM_CATEGORY, str), "geometryValue": (OM_OBSERVATION, str), "implicitGeometryValue":
    (OM_OBSERVATION, str), "appearanceValue": (OM_OBSERVATION, str),
}


@dataclass
class DynamizerResult:
    """What a file's Dynamizers give: one Thing per Dynamizer, and those left out with the reason."""

    things: list[Thing]
    skipped: list[Skipped]


def _local(el) -> str:
    return el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""


def _child_text(el, name: str) -> str | None:
    found = el.find(f"dyn:{name}", _NS)
    return None if found is None or found.text is None else found.text.strip()


def _timestamp(text: str, where: str) -> tuple[datetime, datetime | None]:
    """A CityGML timestamp: a dateTime (zone-less taken as UTC), a date (one day) or a gYearMonth (one month)."""
    t = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}", t):
        y, m = map(int, t.split("-"))
        return datetime(y, m, 1, tzinfo=UTC), datetime(y + m // 12, m % 12 + 1, 1, tzinfo=UTC)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
        start = datetime.fromisoformat(t).replace(tzinfo=UTC)
        return start, datetime.fromordinal(start.toordinal() + 1).replace(tzinfo=UTC)
    if re.fullmatch(r"[\d\-T:.]+", t):  # a dateTime without a zone
        t += "Z"
    return parse_time(t, where), None


def read_dynamizers(path: str | Path, *, layers: dict[str, str] | None = None) -> DynamizerResult:
    """Read the Dynamizers of a CityGML 3.0 file as Things with one Datastream each, linked to their city objects."""
    etree = require("lxml.etree", "io")
    path = Path(path)
    try:
        tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
    except etree.XMLSyntaxError as exc:
        raise DataError(f"{path}: not well-formed XML ({exc}); {CORRUPT}") from None
    root = tree.getroot()
    by_id = {el.get(_GML_ID): el for el in root.iter() if isinstance(el.tag, str) and el.get(_GML_ID)}
    class_layers = {**CLASS_LAYERS, **(layers or {})}
    things, skipped = [], []
    for dyn in root.iter(f"{{{DYN}}}Dynamizer"):
        dyn_id = dyn.get(_GML_ID) or f"Dynamizer at line {dyn.sourceline}"
        where = f"{path}: Dynamizer {dyn_id}"
        target, attribute = _target(dyn, by_id, where)
        cls = _local(target)
        parent = _top_level(target)
        ref = CityObjectRef(class_layers.get(cls, cls.lower()), target.get(_GML_ID), attribute)
        name = target.findtext(f"{{{GML}}}name") or target.get(_GML_ID)
        props: dict[str, Any] = {"dynamizer": dyn_id, "cityObjectClass": cls,
                                 "attributeRef": " ".join((_child_text(dyn, "attributeRef") or "").split())}
        if parent is not None and parent is not target:
            props["parentCityObject"] = parent.get(_GML_ID)
        for key in ("startTime", "endTime"):
            if _child_text(dyn, key):
                props[key] = parse_time(_child_text(dyn, key), f"{where} {key}").isoformat().replace("+00:00", "Z")
        conn = dyn.find("dyn:sensorConnection/dyn:SensorConnection", _NS)
        data = dyn.find("dyn:dynamicData", _NS)
        try:
            if conn is not None:
                stream = _sensor_connection(conn, ref, props, where)
            elif data is not None and data.find("dyn:GenericTimeseries", _NS) is not None:
                stream = _generic_timeseries(data.find("dyn:GenericTimeseries", _NS), ref, props, where)
            else:
                kind = _local(data[0]) if data is not None and len(data) else "nothing"
                skipped.append(Skipped(dyn_id, f"its dynamic data is {kind}, which this reader does not read "
                                                "(only SensorConnection and inline GenericTimeseries)"))
                continue
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        things.append(Thing(name=f"{cls} {target.get(_GML_ID)}", description=name, datastreams=(stream,),
                            properties={"source": path.name}))
    if not things and not skipped:
        raise DataError(f"{path}: no CityGML 3.0 Dynamizer in the file (namespace {DYN})")
    return DynamizerResult(things, skipped)


def _target(dyn, by_id: dict, where: str):
    """The city object and attribute name the Dynamizer's attributeRef points at (else its enclosing object)."""
    ref = _child_text(dyn, "attributeRef") or ""
    m_id = re.search(r"@gml:id\s*=\s*['\"]([^'\"]+)['\"]", ref)
    m_attr = re.search(r"\[\s*(?:gen:)?name\s*=\s*['\"]([^'\"]+)['\"]\s*\]", ref)
    if m_id:
        if m_id.group(1) not in by_id:
            raise DataError(f"{where}: attributeRef names gml:id {m_id.group(1)!r}, which is not in the file: "
                            "point it at a city object of this file")
        target = by_id[m_id.group(1)]
    else:  # the object that holds <dynamizer>
        holder = dyn.getparent()
        target = holder.getparent() if holder is not None else None
        if target is None or not target.get(_GML_ID):
            raise DataError(f"{where}: attributeRef names no gml:id and the Dynamizer is not inside a city object "
                            "with one: give attributeRef as //Class[@gml:id='...']/...")
    attribute = m_attr.group(1) if m_attr else (ref.rstrip("/").rsplit("/", 1)[-1].split(":")[-1] or None)
    return target, attribute


def _top_level(el):
    """The city object directly under cityObjectMember that contains ``el``."""
    node = el
    while node is not None:
        parent = node.getparent()
        if parent is not None and _local(parent) == "cityObjectMember":
            return node
        node = parent
    return None


def _sensor_connection(conn, ref: CityObjectRef, props: dict, where: str) -> Datastream:
    values = {_local(c): (c.text or "").strip() for c in conn if isinstance(c.tag, str)}
    for key in ("connectionType", "observationProperty", "uom"):
        if not values.get(key):
            raise DataError(f"SensorConnection.{key} is missing: the link to the sensor service needs it")
    subst = {"%baseURL%": values.get("baseURL", ""), "%datastreamID%": values.get("datastreamID", ""),
             "%startTime%": props.get("startTime", ""), "%endTime%": props.get("endTime", "")}

    def resolve(text: str) -> str:
        for k, v in subst.items():
            text = text.replace(k, v)
        return " ".join(text.split())

    sensor_url = resolve(values.get("linkToSensorDescription", ""))
    remote = {"connectionType": values["connectionType"], "baseURL": values.get("baseURL", ""),
              "datastreamID": values.get("datastreamID", ""), "authType": values.get("authType", ""),
              "linkToObservation": resolve(values.get("linkToObservation", "")),
              "linkToSensorDescription": sensor_url}
    loc = conn.find("dyn:sensorLocation", _NS)
    if loc is not None and loc.get(f"{{{XLINK}}}href"):
        remote["sensorLocation"] = loc.get(f"{{{XLINK}}}href").lstrip("#")
    label = values.get("sensorName") or f"{values['connectionType']} Datastream {values.get('datastreamID', '?')}"
    return Datastream(
        name=values["observationProperty"], description=f"linked by {props['dynamizer']} to {ref.feature_id}",
        unit_of_measurement=UnitOfMeasurement(values["uom"], values["uom"]),
        sensor=Sensor(label, encoding_type="text/html", metadata=sensor_url),
        observed_property=ObservedProperty(values["observationProperty"]),
        observation_type=OM_MEASUREMENT, properties={**props, "sensorConnection": remote}, city_object=ref)


def _generic_timeseries(ts, ref: CityObjectRef, props: dict, where: str) -> Datastream:
    prop = _child_text(ts, "observationProperty")
    uom = _child_text(ts, "uom") or "1"
    if not prop:
        raise DataError("GenericTimeseries.observationProperty is missing: name what the series measures")
    obs, obs_type = [], None
    for i, pair in enumerate(ts.iterfind("dyn:timeValuePair/dyn:TimeValuePair", _NS)):
        stamp = _child_text(pair, "timestamp")
        value_el = next((c for c in pair if isinstance(c.tag, str) and _local(c) in _VALUE_TYPES), None)
        if not stamp or value_el is None:
            raise DataError(f"TimeValuePair {i} needs a timestamp and a value (doubleValue, intValue, ...)")
        kind, convert = _VALUE_TYPES[_local(value_el)]
        if obs_type not in (None, kind):
            raise DataError(f"TimeValuePair {i} is a {_local(value_el)} among other value types: keep one type")
        obs_type = kind
        try:
            value = convert((value_el.text or "").strip())
        except ValueError:
            raise DataError(f"TimeValuePair {i}: {value_el.text!r} is not a {_local(value_el)}") from None
        start, end = _timestamp(stamp, f"TimeValuePair {i} timestamp")
        obs.append(Observation(start, value, phenomenon_time_end=end))
    if not obs:
        raise DataError("GenericTimeseries has no TimeValuePair: give the values or leave the Dynamizer out")
    return Datastream(
        name=prop, description=f"inline time series of {props['dynamizer']}",
        unit_of_measurement=UnitOfMeasurement(uom, uom), sensor=Sensor(f"CityGML Dynamizer {props['dynamizer']}"),
        observed_property=ObservedProperty(prop), observation_type=obs_type or OM_MEASUREMENT,
        properties={**props, "valueType": _child_text(ts, "valueType") or ""}, city_object=ref,
        observations=tuple(obs))


@register
class DynamizerReader(Reader):
    """The Dynamizers of a CityGML 3.0 file (the city objects themselves are left to a CityGML reader)."""

    name = "citygml3_dynamizer"
    extensions = (".gml", ".xml")
    options = frozenset({"layers"})
    priority = 10
    description = "CityGML 3.0 Dynamizers: sensor connections and inline time series of city objects"

    def guess_can_open(self, path: Path) -> bool:
        if not super().guess_can_open(path):
            return False
        try:
            with open(path, "rb") as f:
                head = f.read(8192)
        except OSError:
            return False
        return DYN.encode() in head

    def read(self, path: Path, **options: Any) -> ReadResult:
        self.check_options(path, options)
        res = read_dynamizers(path, **options)
        return ReadResult(source=Path(path), format=self.name, extra={"things": res.things},
                          skipped=[*res.skipped, Skipped(
                              "city objects", "this reader takes the Dynamizers of a CityGML 3.0 file only")])

    def write(self, scene: Any, result: ReadResult, report: Any) -> None:
        from cim.iot import add_thing

        with begin(scene) as conn:
            for thing in result.extra["things"]:
                added = add_thing(conn, thing)
                for ds in thing.datastreams:
                    report.add(result.source, f"{ds.city_object.feature_id} / {ds.name}", "sensors",
                               added.new_by_datastream[ds.name])
