"""SensorThings input: Things as SensorThings JSON (nested Locations, Datastreams, Observations) and observations as
CSV, read into `cim.iot` objects and written to a scene's tables.

>>> import json, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "obs.csv"
>>> _ = p.write_text("phenomenonTime,result\\n2020-06-17T15:00:00Z,51.3\\n")
>>> [o.result for o in read_observations_csv(p, datastream_id=1)]
[51.3]
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from cim.errors import DataError, ValidationError
from cim.iot import AddResult, Observation, Thing, add_observations, add_thing, thing_from_sta
from ingest.base import CORRUPT, Reader, ReadResult, register, utc_times

__all__ = [
    "ObservationsCSVReader",
    "SensorThingsReader",
    "begin",
    "engine_of",
    "guess_can_open_csv",
    "guess_can_open_json",
    "load_observations",
    "load_things",
    "read_observations_csv",
    "read_sensorthings",
]

log = logging.getLogger(__name__)

#: Length units the CSV reader converts between (factor to metres).
LENGTH_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
_TIME_NAMES = ("phenomenontime", "phenomenon_time", "time", "timestamp", "datetime", "date")
_RESULT_NAMES = ("result", "value")
_STREAM_NAMES = ("datastream_id", "datastream", "datastream@iot.id")


@contextlib.contextmanager
def begin(target: Any) -> Iterator[sa.Connection]:
    """A Connection in a transaction on a scene (``scene.transaction()``), an Engine, or an open Connection
    (a nested savepoint when it is already in a transaction). Commits on success, rolls back on error."""
    if hasattr(target, "transaction"):
        with target.transaction() as conn:
            yield conn
    elif isinstance(target, sa.Engine):
        with target.begin() as conn:
            yield conn
    elif isinstance(target, sa.Connection):
        if target.in_transaction():
            with target.begin_nested():
                yield target
        else:
            with target.begin():
                yield target
    else:
        raise ValidationError(f"expected a cim Scene, a SQLAlchemy Engine or Connection, not {type(target).__name__}")


# ------------------------------------------------------------------------------------------------- JSON (Things)

def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
                        f"{CORRUPT}") from None


def read_sensorthings(source: str | Path | dict | list) -> list[Thing]:
    """Things from SensorThings JSON: one Thing, a list of Things, or a collection ``{"value": [...]}``.

    Each Thing may nest Locations and Datastreams, each Datastream its Sensor, ObservedProperty and Observations
    (the deep-insert form of SensorThings v1.1). A malformed file raises `cim.DataError` naming the file, the
    field (e.g. ``Thing.Datastreams[0].unitOfMeasurement.symbol``) and the fix.
    """
    where = "input"
    if isinstance(source, str | Path):
        path = Path(source)
        where, doc = str(path), _load_json(path)
    else:
        doc = source
    items = doc.get("value") if isinstance(doc, dict) and isinstance(doc.get("value"), list) else doc
    items = items if isinstance(items, list) else [items]
    things = []
    for i, item in enumerate(items):
        label = "Thing" if len(items) == 1 else f"Thing[{i}]"
        try:
            things.append(thing_from_sta(item, where=label))
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
    if not things:
        raise DataError(f"{where}: no Thing in the file: give a Thing object or a list of them")
    return things


def guess_can_open_json(path: str | Path) -> bool:
    """True for a .json file whose start looks like a SensorThings Thing (it mentions Datastreams or Locations)."""
    path = Path(path)
    if path.suffix.lower() != ".json" or path.name.lower().endswith((".city.json", ".geojson")):
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return '"Datastreams"' in head or '"Locations"' in head or '"@iot.id"' in head


def load_things(target: Any, things: Sequence[Thing]) -> list[AddResult]:
    """Write Things (with everything nested) in one transaction: all of them or, on an error, nothing."""
    with begin(target) as conn:
        return [add_thing(conn, t) for t in things]


# ------------------------------------------------------------------------------------------ CSV (observations)

def _pick(columns: Sequence[str], wanted: str | None, names: tuple[str, ...], what: str, path: Path) -> str | None:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{path}: no column {wanted!r} for the {what}; columns are {list(columns)}")
        return wanted
    for c in columns:
        if str(c).strip().lower() in names:
            return c
    return None


def read_observations_csv(path: str | Path, *, datastream_id: int | None = None, time_column: str | None = None,
                          result_column: str | None = None, tz: str | None = None, unit: str | None = None,
                          to_unit: str | None = None) -> list[Observation]:
    """Observations from a CSV with a time column and a result column (and optionally a Datastream column).

    Columns are found by name — time: ``phenomenonTime``/``time``/``timestamp``/``datetime``; result:
    ``result``/``value``; Datastream: ``datastream_id`` — or, for a two-column file, the first is the time and the
    second the result (as in the KNMI gauge CSV). Times without a zone are refused unless ``tz`` says which zone
    they are in. ``unit`` and ``to_unit`` convert lengths (m, cm, mm): the Vlissingen gauge file is in metres,
    its Datastream in millimetres, so ``unit="m", to_unit="mm"``. Empty results are skipped; other non-numeric
    results raise `cim.DataError` naming the row.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    cols = list(df.columns)
    tcol = _pick(cols, time_column, _TIME_NAMES, "time", path)
    rcol = _pick(cols, result_column, _RESULT_NAMES, "result", path)
    scol = _pick(cols, None, _STREAM_NAMES, "datastream", path)
    if (tcol is None or rcol is None) and len(cols) == 2:
        tcol, rcol = cols
    if tcol is None or rcol is None:
        raise DataError(f"{path}: cannot tell the time and result columns among {cols}: name them "
                        "phenomenonTime and result, or pass time_column= and result_column=")
    if scol is None and datastream_id is None:
        raise DataError(f"{path}: no datastream_id column: pass datastream_id= for the whole file")
    if (unit is None) != (to_unit is None):
        raise ValidationError("give both unit= (of the file) and to_unit= (of the Datastream), or neither")
    factor = 1.0
    if unit is not None:
        for u in (unit, to_unit):
            if u not in LENGTH_UNITS:
                raise ValidationError(f"unit {u!r} is not one this reader converts: use one of {list(LENGTH_UNITS)}")
        factor = LENGTH_UNITS[unit] / LENGTH_UNITS[to_unit]
    df = df[df[rcol].str.strip() != ""]
    if df.empty:
        return []
    text_times = df[tcol].str.strip()
    times, bad = utc_times(text_times, tz)       # offsets may change within the file (daylight saving)
    if bad is not None:
        raise DataError(f"{path}: row {text_times.index[bad] + 2} column {tcol!r}: {text_times.iloc[bad]!r} is not "
                        "a time: write ISO 8601, e.g. 2020-06-17T15:00:00Z")
    if times.isna().any():                       # tz None: times without a zone are not read
        naive = text_times[times.isna().to_numpy()].iloc[0]
        raise DataError(f"{path}: column {tcol!r} has times without a zone (e.g. {naive!r}): "
                        "pass tz='UTC' (or the zone they are in)")
    values = pd.to_numeric(df[rcol], errors="coerce")
    if values.isna().any():
        bad = values.index[values.isna()][0]
        raise DataError(f"{path}: row {bad + 2} column {rcol!r}: {df[rcol][bad]!r} is not a number: "
                        "fix the value or leave the cell empty")
    values = values.to_numpy(dtype="float64") * factor
    streams = [datastream_id] * len(df) if scol is None else df[scol].tolist()
    try:
        return [Observation(t, float(v), datastream_id=s)
                for t, v, s in zip(times.dt.tz_convert("UTC"), values, streams, strict=True)]
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def guess_can_open_csv(path: str | Path) -> bool:
    """True for a .csv whose header names a time and a result column the way SensorThings does."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        return False
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            header = [c.strip().lower() for c in f.readline().split(",")]
    except OSError:
        return False
    return "phenomenontime" in header and "result" in header


def load_observations(target: Any, observations: Sequence[Observation], *, datastream_id: int | None = None) -> int:
    """Write observations in one transaction; return how many were new (re-sent ones are skipped)."""
    with begin(target) as conn:
        return add_observations(conn, observations, datastream_id=datastream_id)


# ------------------------------------------------------------------------------------------- registry readers

def engine_of(target: Any) -> Any:
    """The Engine behind a scene (its store's), or the target itself."""
    store = getattr(target, "store", None)
    return getattr(store, "engine", target)


@register
class SensorThingsReader(Reader):
    """SensorThings JSON: Things with nested Locations, Datastreams and Observations."""

    name = "sensorthings"
    extensions = (".json",)
    options = frozenset()
    priority = 5
    description = "OGC SensorThings v1.1 JSON (Thing with nested Locations, Datastreams, Observations)"

    def guess_can_open(self, path: Path) -> bool:
        return guess_can_open_json(path)

    def read(self, path: Path, **options: Any) -> ReadResult:
        self.check_options(path, options)
        return ReadResult(source=Path(path), format=self.name, extra={"things": read_sensorthings(path)})

    def write(self, scene: Any, result: ReadResult, report: Any) -> None:
        with begin(scene) as conn:
            for thing in result.extra["things"]:
                added = add_thing(conn, thing)
                for ds in thing.datastreams:
                    report.add(result.source, f"{thing.name} / {ds.name}", "sensors", added.new_by_datastream[ds.name])
                if added.observations_new < added.observations_total:
                    report.skip(result.source, thing.name,
                                f"{added.observations_total - added.observations_new} observations were stored "
                                "already (same Datastream and phenomenonTime)")


@register
class ObservationsCSVReader(Reader):
    """Observation CSV: phenomenonTime and result columns (and datastream_id, or the option)."""

    name = "observations_csv"
    extensions = (".csv",)
    options = frozenset({"datastream_id", "time_column", "result_column", "tz", "unit", "to_unit"})
    priority = 5
    description = "SensorThings observations as CSV (phenomenonTime, result[, datastream_id])"

    def guess_can_open(self, path: Path) -> bool:
        return guess_can_open_csv(path)

    def read(self, path: Path, **options: Any) -> ReadResult:
        self.check_options(path, options)
        return ReadResult(source=Path(path), format=self.name,
                          extra={"observations": read_observations_csv(path, **options)})

    def write(self, scene: Any, result: ReadResult, report: Any) -> None:
        obs = result.extra["observations"]
        with begin(scene) as conn:
            new = add_observations(conn, obs)
        report.add(result.source, "observations", "sensors", new)
        if new < len(obs):
            report.skip(result.source, "observations",
                        f"{len(obs) - new} were stored already (same Datastream and phenomenonTime)")
