"""OGC API - Processes: flood forecasts and planning what-ifs as jobs, kept in the scene store.

``POST /processes/{id}/execution`` runs at once (the response is the results) or, with ``Prefer: respond-async``,
answers 201 with the job's Location. Jobs run on a small thread pool of ``max_concurrent_jobs`` workers; the rest
wait ``accepted``. A job's results (warnings as GeoJSON in CRS84, regions summary, GeoTIFF COGs) are written to
its own folder under the store's files root, and served by a route that never leaves that folder. Jobs left
``running`` or ``accepted`` by a server that stopped are marked failed when the next one starts.

Scopes: executing needs ``run``; reading processes, jobs and results needs ``read``; dismissing a job
(``DELETE /jobs/{id}``) needs ``run`` and is allowed to the key that started the job, or to an ``admin`` key. A
dismissed job is gone: its status and results answer 404 afterwards.

Bounds that keep a job cheap enough to serve: at most `MAX_DURATION` seconds of simulated time (one day), rain
rates up to `MAX_RAIN` mm/h, a model grid of at least 2 x 2 cells, and at most `MAX_FRAMES` output times (the
output interval grows with the duration) so that a long run does not hold thousands of depth grids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

import cim
from api.deps import Caller, ReadCaller, SceneDep, SettingsDep, require
from api.errors import BadRequest, NotFound, UnsupportedMediaType
from api.openapi import ERRORS
from api.tiles3d import Col, Row, Z, tiles_root
from cim import jobs as J
from cim.security import AuthorizationError

__all__ = ["MAX_DURATION", "MAX_FRAMES", "MAX_RAIN", "MAX_RAIN_VALUES", "PROCESSES", "UPLOAD_DAYS", "JobRunner", "install", "router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["Processes"])
MAX_DURATION = 86400.0     #: longest simulated time of a job, seconds
MAX_RAIN = 500.0           #: highest uniform rain rate, mm/h (above the 305 mm/h world record)
MAX_FRAMES = 120           #: most output times of a job's depth series
MAX_GAUGES = 1000          #: most rain gauges named in one job
MAX_RAIN_VALUES = 20_000_000  #: largest rainfall grid read from a file (time x y x x, after cropping to the scene)
RAIN_MARGIN = 10_000.0     #: a NetCDF rainfall file is read within this many metres around the scene
UPLOAD_DAYS = 7            #: uploaded files are kept this long (swept at each new upload)
RunCaller = Annotated[Caller, Depends(require("run"))]
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="A job id")]
FileName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", description="A result file")]
_MEDIA = {".tif": "image/tiff; application=geotiff; profile=cloud-optimized", ".geojson": "application/geo+json",
          ".json": "application/json"}


_UPLOAD_TYPES = {"application/x-netcdf": ".nc", "application/netcdf": ".nc", "image/tiff": ".tif"}
_UPLOAD_HREF = re.compile(r"^(?:https?://[^/?#]+)?/uploads/([0-9a-f]{32})$")


class FileInput(BaseModel):
    """A file: a reference to one uploaded with ``POST /uploads`` (``href``), or inline (OGC qualified value:
    base64 ``value`` and its ``mediaType``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"href": "/uploads/0123456789abcdef0123456789abcdef"}]})
    href: str | None = Field(None, max_length=512, description="An uploaded file: the href POST /uploads gave")
    value: str | None = Field(None, description="The file's bytes, base64")
    mediaType: Literal["application/x-netcdf", "application/netcdf", "image/tiff"] | None = Field(
        None, description="NetCDF (CF rainfall grid) or GeoTIFF (one band of mm/h)")


class Inputs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rainfall: float | None = Field(None, ge=0, le=MAX_RAIN, description="Uniform rain rate, mm/h")
    storm: str | None = Field(None, max_length=64, description="Design storm CITY:RETURN_PERIOD:MINUTES[:PEAK]")
    rainfallFile: FileInput | None = Field(None, description="A rainfall grid (NetCDF or GeoTIFF, mm/h)")
    gauges: str | None = Field(None, max_length=80, description="The scene's rain gauges over START/END (UTC)")
    datastreams: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        None, min_length=1, max_length=MAX_GAUGES, description="With gauges: the rain-gauge Datastream ids to use "
        "(default: all the scene's rain gauges)")
    gaugeMethod: Literal["idw", "nearest"] | None = Field(
        None, description="With several gauges: inverse distance weighting (default) or nearest gauge")
    duration: float = Field(gt=0, le=MAX_DURATION, description="Simulated time, seconds (at most one day)")
    resolution: float | None = Field(None, gt=0, le=1000, description="Model cell size (m), coarser than the DEM")
    drainage: float | None = Field(None, ge=0, le=2000, description="Sewer capacity as a loss rate (mm/h)")
    infiltration: float | None = Field(None, ge=0, le=2000, description="Soil infiltration as a loss rate (mm/h)")
    buildings: Literal["blocked", "raised"] | None = Field(
        None, description="Buildings as walls (blocked, the default) or raised by their height (roofs shed rain)")
    planned: dict[str, Any] | None = Field(None, description="Planned buildings: a GeoJSON FeatureCollection "
                                           "(CRS84 unless it names another CRS)")
    surfaces: dict[str, Any] | None = Field(None, description="Surface changes: a GeoJSON FeatureCollection of "
                                            "polygons, each with one or more of 'imperviousness' (0..1), "
                                            "'manning', 'ground_delta' (m) or 'ground_level' (m)")
    compare: bool = Field(False, description="With planned: compare with the city as it is (a what-if)")


class Execute(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"inputs": {"rainfall": 60.0, "duration": 600.0}},
        {"inputs": {"storm": "beijing:100:60", "duration": 3600.0, "drainage": 20.0}},
        {"inputs": {"gauges": "2020-06-17T10:00/2020-06-17T14:00", "duration": 1800.0}},
        {"inputs": {"gauges": "2020-06-17T10:00/2020-06-17T14:00", "datastreams": [1, 3], "gaugeMethod": "nearest",
                    "duration": 1800.0}},
    ]})
    inputs: Inputs
    outputs: dict[str, Any] | None = None
    response: Literal["document", "raw"] | None = None


def _input_descriptions(what_if: bool) -> dict:
    d = {
        "rainfall": {"title": "Rain rate", "description": "Uniform rain, mm/h (one rainfall source of rainfall, "
                     "storm, rainfallFile, gauges)", "schema": {"type": "number", "minimum": 0}, "minOccurs": 0},
        "storm": {"title": "Design storm", "description": "CITY:RETURN_PERIOD:MINUTES[:PEAK], e.g. beijing:100:60 "
                  "(a Chicago hyetograph of the city's storm formula)", "schema": {"type": "string"}, "minOccurs": 0},
        "rainfallFile": {"title": "Rainfall grid", "description": "A rainfall NetCDF (time, y, x) or GeoTIFF "
                         "(one band, a constant rate) in mm/h: {\"href\": ...} to a file sent to POST /uploads, or "
                         "inline {\"value\": base64, \"mediaType\": ...}",
                         "schema": {"oneOf": [
                             {"type": "object", "required": ["href"], "properties": {"href": {
                                 "type": "string", "format": "uri-reference"}}},
                             {"type": "string", "contentEncoding": "base64",
                              "contentMediaType": "application/x-netcdf"}]}, "minOccurs": 0},
        "gauges": {"title": "Rain gauge window", "description": "The scene's rain gauges over START/END (UTC), e.g. "
                   "2020-06-17T14:00/2020-06-17T17:00: one gauge rains uniformly, several are gridded over the "
                   "model domain", "schema": {"type": "string"}, "minOccurs": 0},
        "datastreams": {"title": "Rain gauges", "description": "With gauges: the ids of the rain-gauge Datastreams "
                        "to use (default: all the scene's rain gauges)",
                        "schema": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                                   "maxItems": MAX_GAUGES}, "minOccurs": 0},
        "gaugeMethod": {"title": "Gauge interpolation", "description": "With several gauges: idw (inverse distance "
                        "weighting, the default) or nearest (Thiessen polygons)",
                        "schema": {"type": "string", "enum": ["idw", "nearest"]}, "minOccurs": 0},
        "duration": {"title": "Duration", "description": "Simulated time in seconds",
                     "schema": {"type": "number", "exclusiveMinimum": 0}},
        "resolution": {"title": "Cell size", "description": "Model cells in metres (a multiple of the DEM's)",
                       "schema": {"type": "number", "exclusiveMinimum": 0}, "minOccurs": 0},
        "drainage": {"title": "Drainage", "description": "Sewer capacity as a loss rate, mm/h",
                     "schema": {"type": "number", "minimum": 0}, "minOccurs": 0},
        "buildings": {"title": "Buildings", "description": "blocked: walls (the default); raised: their cells raised "
                      "by the building's height, so roofs shed their rain", "schema": {"type": "string", "enum": [
                          "blocked", "raised"]}, "minOccurs": 0},
        "infiltration": {"title": "Infiltration", "description": "Soil infiltration as a loss rate, mm/h",
                         "schema": {"type": "number", "minimum": 0}, "minOccurs": 0},
        "planned": {"title": "Planned buildings", "description": "GeoJSON FeatureCollection of footprints"
                    + (" (planned buildings, surface changes or both)" if what_if else ""),
                    "schema": {"type": "object", "contentMediaType": "application/geo+json"}, "minOccurs": 0},
        "surfaces": {"title": "Surface changes", "description": "GeoJSON FeatureCollection of polygons, each with "
                     "one or more of 'imperviousness' (0..1: the share of the soil's infiltration sealed; needs "
                     "infiltration), 'manning' (a new roughness, 0 < n <= 1), 'ground_delta' (metres added to the "
                     "ground) or 'ground_level' (a new ground elevation, m)" + ("" if what_if else "; needs compare"),
                     "schema": {"type": "object", "contentMediaType": "application/geo+json"}, "minOccurs": 0},
    }
    if not what_if:
        d["compare"] = {"title": "Compare", "description": "With planned: run the what-if instead",
                        "schema": {"type": "boolean", "default": False}, "minOccurs": 0}
    return d


_GEOJSON_OUT = {"schema": {"type": "object", "contentMediaType": "application/geo+json"}}
_COG_OUT = {"schema": {"type": "string", "contentMediaType": _MEDIA[".tif"]}}
_TABLE_OUT = {"schema": {"type": "array"}}


def _process(pid: str, title: str, description: str, *, what_if: bool, outputs: dict) -> dict:
    """An OGC API Processes description of one of our processes (both run as sync or async jobs)."""
    return {"id": pid, "title": title, "version": "1.0.0", "description": description,
            "jobControlOptions": ["sync-execute", "async-execute", "dismiss"],
            "outputTransmission": ["value", "reference"],
            "inputs": _input_descriptions(what_if), "outputs": outputs}


PROCESSES = {
    "flood-forecast": _process(
        "flood-forecast", "Flood forecast",
        "Simulate surface flooding of the scene under a rainfall and warn roads, buildings and hotspots; summaries "
        "by region; maximum depth as a Cloud Optimized GeoTIFF.",
        what_if=False, outputs={"warnings": _GEOJSON_OUT, "regions": _TABLE_OUT, "max_depth": _COG_OUT}),
    "what-if": _process(
        "what-if", "Planning what-if",
        "The same rainfall on the city as it is and with planned buildings: the roads, buildings and hotspots "
        "whose warning changes (newly flooded ones marked) and depth changes by region.",
        what_if=True, outputs={"changed": _GEOJSON_OUT, "by_region": _TABLE_OUT, "depth_change": _COG_OUT}),
}


class _Dismissed(Exception):
    """Raised in a job's progress callback when the job was dismissed."""


class JobRunner:
    """Runs jobs on ``workers`` threads; each job's status and progress are written to the store as they change."""

    def __init__(self, scene: cim.Scene, workers: int) -> None:
        self.scene = scene
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cim-job")
        self._lock = threading.Lock()
        self._cancel: dict[str, threading.Event] = {}
        self._futures: dict[str, Future] = {}

    def _update(self, job_id: str, *, audit: str | None = None, **values) -> bool:
        """Write a job's status; with ``audit``, also record the job's end (that outcome) in the audit table, in
        the same transaction: who started it, which process, and the message of a failure."""
        with self.scene.store.engine.begin() as conn:
            done = J.update_job(conn, job_id, **values)
            if audit is not None and done:
                J.record_end(conn, job_id, audit, values.get("message"))
            return done

    def submit(self, job_id: str, work: Callable[[str, Callable[[float, float], None]], str]) -> Future:
        with self._lock:
            self._cancel[job_id] = threading.Event()
            fut = self.pool.submit(self._run, job_id, work)
            self._futures[job_id] = fut
        return fut

    def _run(self, job_id: str, work) -> None:
        cancel = self._cancel[job_id]
        if cancel.is_set() or not self._update(job_id, status="running", progress=0, message=J.holder(),
                                               only_if=("accepted",)):
            return
        last = [0]

        def progress(t: float, total: float) -> None:
            if cancel.is_set():
                raise _Dismissed
            pct = min(99, int(100 * t / total)) if total else 0
            if pct > last[0]:
                last[0] = pct
                if not self._update(job_id, progress=pct, only_if=("running",)):
                    raise _Dismissed         # dismissed through another server process sharing the store

        try:
            location = work(job_id, progress)
        except _Dismissed:
            shutil.rmtree(self.scene.store.path(f"jobs/{job_id}"), ignore_errors=True)     # what it had written
            return                                               # (the DELETE that dismissed it is audited)
        except BaseException as exc:
            if isinstance(exc, cim.CIMError):
                message = str(exc)
            else:
                log.error("job %s failed", job_id, exc_info=exc)
                message = f"the job failed (job {job_id} in the server log)"
            self._update(job_id, status="failed", message=message, only_if=("running",), audit="failed")
            raise
        finally:
            with self._lock:
                self._futures.pop(job_id, None)
                self._cancel.pop(job_id, None)
        if not self._update(job_id, status="successful", progress=100, results=location, message=None,
                            only_if=("running",), audit="successful"):
            shutil.rmtree(self.scene.store.path(location), ignore_errors=True)     # dismissed at the end

    def dismiss(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._cancel:
                self._cancel[job_id].set()
            fut = self._futures.get(job_id)
        if fut is not None:
            fut.cancel()

    def shutdown(self) -> None:
        with self._lock:
            for ev in self._cancel.values():
                ev.set()
        self.pool.shutdown(wait=True, cancel_futures=True)


def install(app: FastAPI, scene: cim.Scene, workers: int) -> None:
    """Mark the jobs a stopped server left running as failed, and start the job runner."""
    with scene.store.engine.begin() as conn:
        n = J.fail_interrupted(conn)
    if n:
        log.warning("%d job(s) were running when the server stopped: marked failed", n)
    app.state.jobs = JobRunner(scene, workers)
    app.include_router(router)


# -- inputs ------------------------------------------------------------------------------------------------------
def _storm(spec: str):
    import hydrology

    try:
        city, period, minutes, *rest = spec.split(":")
        if len(rest) > 1:
            raise ValueError("too many parts")
        r = float(rest[0]) if rest else 0.4
        if not (0 < float(period) <= 1000 and 0 < float(minutes) <= 1440 and 0 < r < 1):
            raise ValueError("out of range")
        idf = hydrology.chinese_storm_formula(city).idf(float(period))
        return hydrology.chicago_hyetograph(idf, duration=float(minutes), dt=5.0, r=r)
    except (ValueError, KeyError, LookupError, cim.CIMError) as exc:
        raise BadRequest(f"storm {spec!r}: use CITY:RETURN_PERIOD:MINUTES[:PEAK], e.g. beijing:100:60 ({exc})") \
            from None


def _read_rainfall(scene: cim.Scene, path: FsPath, field: str):
    """The rain-rate grid (mm/h) of a NetCDF or GeoTIFF file: (time, y, x), or (y, x) as a constant rate.

    A NetCDF file is read within `RAIN_MARGIN` of the scene only, and no file may give more than
    `MAX_RAIN_VALUES` values: a small file can declare a grid far larger than memory."""
    import ingest

    options: dict[str, Any] = {"max_values": MAX_RAIN_VALUES}
    if path.suffix == ".nc" and scene.extent is not None:
        x0, y0, x1, y1 = scene.extent
        options |= {"bbox": (x0 - RAIN_MARGIN, y0 - RAIN_MARGIN, x1 + RAIN_MARGIN, y1 + RAIN_MARGIN),
                    "bbox_crs": scene.crs}
    try:
        result = ingest.read(path, **options)
    except cim.CIMError as exc:
        raise BadRequest(f"{field}: {exc}".replace(str(path.parent), "").replace(path.name, "the file")) from None
    except Exception as exc:       # a reader library's own error on a malformed file: say what, not where
        raise BadRequest(f"{field}: not a readable NetCDF or GeoTIFF file ({type(exc).__name__})") from None
    grids = [item.data for item in result.layers.values() if hasattr(item.data, "dims")]
    if not grids:
        raise BadRequest(f"{field} holds no rainfall grid")
    grid = grids[0].load()
    if set(grid.dims) == {"y", "x"}:            # one GeoTIFF band: a constant rate in mm/h (not a terrain's m)
        grid = grid.expand_dims(time=[0.0]).assign_attrs(units="mm/h")
    if set(grid.dims) != {"time", "y", "x"} or grid.sizes["y"] < 1 or grid.sizes["x"] < 1 or grid.rio.crs is None:
        raise BadRequest(f"{field}: give rain rates in mm/h on (time, y, x) or one band on (y, x), with a CRS "
                         f"(got dims {', '.join(map(str, grid.dims))})")
    import numpy as np

    values = grid.to_numpy()
    if not np.isfinite(values).any() or np.nanmin(values) < 0 or np.nanmax(values) > MAX_RAIN:
        raise BadRequest(f"{field}: rain rates must lie in 0..{MAX_RAIN:g} mm/h")
    return grid


def _uploads(scene: cim.Scene) -> FsPath:
    return scene.store.path("uploads")


def _uploaded(scene: cim.Scene, upload_id: str) -> FsPath:
    path = next((p for p in _uploads(scene).glob(f"{upload_id}.*") if p.suffix in (".nc", ".tif")), None) \
        if re.fullmatch(r"[0-9a-f]{32}", upload_id) else None
    if path is None:
        raise NotFound(f"no uploaded file {upload_id!r}: send it with POST /uploads first")
    return path


def _rainfall_file(scene: cim.Scene, f: FileInput):
    if (f.href is None) == (f.value is None):
        raise BadRequest("rainfallFile: give either href (a file sent to POST /uploads) or value and mediaType")
    if f.href is not None:
        m = _UPLOAD_HREF.match(f.href)
        if m is None:
            raise BadRequest("rainfallFile.href: only files sent to this service are read: the href POST /uploads "
                             "gave (/uploads/<id>)")
        try:
            return _read_rainfall(scene, _uploaded(scene, m.group(1)), "rainfallFile.href")
        except NotFound as exc:
            raise BadRequest(f"rainfallFile.href: {exc}") from None
    if f.mediaType is None:
        raise BadRequest("rainfallFile.mediaType: say which file value holds (application/x-netcdf or image/tiff)")
    try:
        data = base64.b64decode(f.value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("rainfallFile.value is not valid base64") from None
    with tempfile.TemporaryDirectory() as tmp:
        path = FsPath(tmp) / f"rainfall{_UPLOAD_TYPES[f.mediaType]}"
        path.write_bytes(data)
        return _read_rainfall(scene, path, "rainfallFile.value")


def _polygons(fc: dict[str, Any], field: str):
    import geopandas as gpd

    if fc.get("type") != "FeatureCollection" or not isinstance(fc.get("features"), list) or not fc["features"]:
        raise BadRequest(f"{field}: give a GeoJSON FeatureCollection with at least one feature")
    crs = ((fc.get("crs") or {}).get("properties") or {}).get("name") or "OGC:CRS84"
    try:
        gdf = gpd.GeoDataFrame.from_features(fc["features"], crs=crs)
    except Exception as exc:         # malformed GeoJSON: say what, not where in our code
        raise BadRequest(f"{field}: not valid GeoJSON features ({type(exc).__name__})") from None
    if gdf.geometry.isna().any() or not gdf.geom_type.isin(["Polygon", "MultiPolygon"]).all():
        raise BadRequest(f"{field}: every feature needs a Polygon or MultiPolygon")
    return gdf


def _check_grid(scene: cim.Scene, resolution: float | None) -> None:
    """The model grid the terrain gives at ``resolution`` has at least 2 x 2 cells (400 otherwise)."""
    info = next((i for i in scene.layers if i.kind == "terrain" and i.storage == "raster"), None)
    if info is None:
        raise BadRequest(f"scene {scene.name!r} has no terrain raster to run a flood model on")
    shape, transform = info.info.get("shape"), info.info.get("transform")
    if resolution is None or not shape or not transform:
        return
    factor = max(1, round(resolution / abs(float(transform[0]))))
    if min(shape[-2:]) // factor < 2:
        raise BadRequest(f"resolution {resolution:g} m leaves fewer than 2 x 2 model cells on the terrain's "
                         f"{shape[-1]} x {shape[-2]} cells of {abs(float(transform[0])):g} m: choose a finer one")


def _resolve(scene: cim.Scene, process: str, x: Inputs) -> dict[str, Any]:
    """Check the inputs and turn them into keyword arguments of flood.forecast / flood.what_if (400 otherwise)."""
    sources = {k: getattr(x, k) for k in ("rainfall", "storm", "rainfallFile", "gauges")}
    given = [k for k, v in sources.items() if v is not None]
    if len(given) != 1:
        raise BadRequest(f"give exactly one rainfall source of rainfall, storm, rainfallFile, gauges "
                         f"(got {', '.join(given) or 'none'})")
    _check_grid(scene, x.resolution)
    kw: dict[str, Any] = {"duration": x.duration, "resolution": x.resolution, "drainage": x.drainage,
                          "output_interval": max(60.0, x.duration / MAX_FRAMES)}
    if x.rainfall is not None:
        kw["rainfall"] = x.rainfall
    elif x.storm is not None:
        kw["rainfall"] = _storm(x.storm)
    elif x.rainfallFile is not None:
        kw["rainfall"] = _rainfall_file(scene, x.rainfallFile)
    else:
        from flood.gauges import parse_window

        kw["rainfall"], kw["window"] = "gauges", parse_window(x.gauges)
        kw["gauges"], kw["gauge_method"] = x.datastreams, x.gaugeMethod or "idw"
    if x.gauges is None and (x.datastreams is not None or x.gaugeMethod is not None):
        raise BadRequest("datastreams and gaugeMethod go with gauges (a START/END window)")
    what_if = process == "what-if" or x.compare
    if x.compare and x.planned is None and x.surfaces is None:
        raise BadRequest("compare needs planned buildings or surface changes")
    if what_if and x.planned is None and x.surfaces is None:
        raise BadRequest("the what-if process needs planned buildings or surface changes (GeoJSON "
                         "FeatureCollections)")
    if x.surfaces is not None and not what_if:
        raise BadRequest("surfaces: surface changes are a what-if: use the what-if process (or compare)")
    if x.infiltration is not None:
        kw["infiltration"] = x.infiltration
    if x.buildings is not None:
        kw["buildings"] = x.buildings
    if x.planned is not None:
        kw["planned"] = _polygons(x.planned, "planned")
    if x.surfaces is not None:
        import flood.forecasting

        surfaces = _polygons(x.surfaces, "surfaces")
        try:                     # checked now, so that a bad plan is a 400 before a job exists
            flood.forecasting.check_surfaces(surfaces, infiltration=x.infiltration)
        except cim.ValidationError as exc:
            raise BadRequest(str(exc)) from None
        kw["surfaces"] = surfaces
    kw["what_if"] = what_if
    return kw


def _stored_inputs(x: Inputs) -> dict[str, Any]:
    d = x.model_dump(exclude_none=True)
    if x.rainfallFile is not None and x.rainfallFile.value is not None:
        d["rainfallFile"] = {"mediaType": x.rainfallFile.mediaType, "bytes": len(x.rainfallFile.value) * 3 // 4}
    return d


# -- work ----------------------------------------------------------------------------------------------------------
def _geojson(gdf) -> dict:
    import pandas as pd

    out = gdf.copy()
    for col in out.columns:
        if col != out.geometry.name and (pd.api.types.is_datetime64_any_dtype(out[col]) or out[col].dtype == object):
            out[col] = out[col].map(lambda v: None if v is None or (not isinstance(v, str) and pd.isna(v))
                                    else v.isoformat() if hasattr(v, "isoformat") else v)
    if out.crs is not None and len(out):
        out = out.to_crs("OGC:CRS84")
    doc = json.loads(out.to_json(na="null", drop_id=True))
    doc.pop("crs", None)
    return doc


def _records(df) -> list[dict]:
    import pandas as pd

    df = pd.DataFrame(df).drop(columns="geometry", errors="ignore")
    return json.loads(df.to_json(orient="records", date_format="iso"))


def _work(scene: cim.Scene, kw: dict[str, Any]):
    kw = dict(kw)
    what_if = kw.pop("what_if")

    def run(job_id: str, progress) -> str:
        import flood.forecasting
        import flood.whatif

        location = f"jobs/{job_id}"
        folder = scene.store.path(location)
        folder.mkdir(parents=True, exist_ok=True)
        if not what_if:
            fc = flood.forecasting.forecast(scene, name="forecast", write=False, progress=progress, **kw)
            files = fc.to_files(folder)
            doc = {"warnings": _geojson(fc.warnings), "regions": _records(fc.regions),
                   "files": sorted(p.name for p in files.values())}
        else:
            phase = {"n": 0, "last": -1.0}

            def two_runs(t: float, total: float) -> None:      # baseline then scenario: 0-50 %, 50-100 %
                if t < phase["last"]:
                    phase["n"] = 1
                phase["last"] = t
                progress(phase["n"] * total + t, 2 * total)

            wi = flood.whatif.what_if(scene, progress=two_runs, **kw)
            change = wi.depth_change.astype("float32").rio.write_crs(scene.crs)
            change.rio.to_raster(folder / "depth_change.tif", driver="COG", compress="DEFLATE")
            wi.scenario.dataset["max_depth"].rio.write_crs(scene.crs).rio.to_raster(
                folder / "planned_max_depth.tif", driver="COG", compress="DEFLATE")
            by_region = wi.by_region.reset_index().rename(columns={"index": "region"})
            changed = wi.changed
            newly = changed[changed["newly_flooded"]] if len(changed) else changed
            volumes = {k: {"before": float(wi.baseline.dataset.attrs[k]), "after": float(wi.scenario.dataset.attrs[k])}
                       for k in ("rain_volume", "infiltration_volume", "final_volume")}
            doc = {"changed": _geojson(changed), "by_region": _records(by_region), "volumes_m3": volumes,
                   "newly_flooded": {k: sorted(newly.loc[newly["object_type"] == k, "name"].astype(str))
                                     for k in ("road", "building", "hotspot")} if len(newly) else
                   {"road": [], "building": [], "hotspot": []},
                   "planned_flooded": sorted(changed.loc[changed["planned"], "name"].astype(str)) if len(changed)
                   else [],
                   "max_depth_change": float(change.max()) if change.notnull().any() else 0.0,
                   "files": ["depth_change.tif", "planned_max_depth.tif"]}
        (folder / "results.json").write_text(json.dumps(doc, allow_nan=False, default=str))
        return location

    return run


# -- routes --------------------------------------------------------------------------------------------------------
def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _status(request: Request, job: J.Job) -> dict:
    b = _base(request)
    links = [{"href": f"{b}/jobs/{job.id}", "rel": "self", "type": "application/json"}]
    if job.status == "successful":
        links.append({"href": f"{b}/jobs/{job.id}/results", "type": "application/json",
                      "rel": "http://www.opengis.net/def/rel/ogc/1.0/results"})
    return {"jobID": job.id, "processID": job.process, "type": "process", "status": job.status,
            "progress": job.progress, "message": None if J.held_by(job.message) else job.message,
            "created": job.created, "started": job.started,
            "finished": job.finished, "links": links}


def _job(scene: cim.Scene, job_id: str) -> J.Job:
    with scene.store.engine.connect() as conn:
        job = J.get_job(conn, job_id)
    if job is None or job.status == "dismissed":
        raise NotFound(f"no job {job_id!r}: see /jobs")
    return job


#: the maximum-depth COG of a job, served as map tiles: the forecast's, or the planned city's in a what-if
_DEPTH_FILES = ("forecast_max_depth.tif", "planned_max_depth.tif")
_TILESETS_REL = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-map"


def _tile_links(base: str, job_id: str) -> list[dict]:
    tiles = f"{base}/jobs/{job_id}/results/max_depth/tiles"
    return [{"href": tiles, "rel": _TILESETS_REL, "type": "application/json", "title": "max depth tiles"},
            {"href": f"{tiles}/WebMercatorQuad/{{tileMatrix}}/{{tileRow}}/{{tileCol}}", "rel": "item",
             "type": "image/png", "templated": True, "title": "max depth tile"}]


def _results(request: Request, scene: cim.Scene, job: J.Job) -> dict:
    folder = scene.store.path(job.results)
    doc = json.loads((folder / "results.json").read_text())
    b = _base(request)
    files = doc.pop("files")
    doc["links"] = [{"href": f"{b}/jobs/{job.id}/results/{name}", "rel": "enclosure",
                     "type": _MEDIA.get(FsPath(name).suffix, "application/octet-stream"), "title": name}
                    for name in files]
    if any(name in _DEPTH_FILES for name in files):
        doc["links"] += _tile_links(b, job.id)
    return doc


@router.get("/processes", summary="The processes this service runs", responses=ERRORS)
def processes(request: Request, _: ReadCaller) -> dict:
    b = _base(request)
    return {"processes": [{k: v for k, v in p.items() if k not in ("inputs", "outputs")} | {"links": [
        {"href": f"{b}/processes/{pid}", "rel": "self", "type": "application/json"}]} for pid, p in PROCESSES.items()],
        "links": [{"href": f"{b}/processes", "rel": "self", "type": "application/json"}]}


def _process(process_id: str) -> dict:
    if process_id not in PROCESSES:
        raise NotFound(f"no process {process_id!r}: this service runs {', '.join(PROCESSES)}")
    return PROCESSES[process_id]


#: a plain pattern here (an unknown process is a 404, as OGC API - Processes asks); /openapi.json lists the ids
ProcessId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="flood-forecast or what-if")]


@router.get("/processes/{processId}", summary="A process's description", responses=ERRORS)
def process(request: Request, _: ReadCaller, processId: ProcessId) -> dict:
    b = _base(request)
    return _process(processId) | {"links": [
        {"href": f"{b}/processes/{processId}", "rel": "self", "type": "application/json"},
        {"href": f"{b}/processes/{processId}/execution", "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
         "type": "application/json"}]}


_EXECUTED = {200: {"description": "The results (synchronous execution)"},
             201: {"description": "The job's status (with Prefer: respond-async); its URL in Location"}}


@router.post("/processes/{processId}/execution", summary="Run a process (Prefer: respond-async for a job)",
             responses={**ERRORS, **_EXECUTED})
def execute(request: Request, scene: SceneDep, caller: RunCaller, processId: ProcessId, body: Execute,
            prefer: Annotated[str | None, Header()] = None):
    _process(processId)
    kw = _resolve(scene, processId, body.inputs)
    with scene.store.engine.begin() as conn:
        job = J.create_job(conn, processId, _stored_inputs(body.inputs), who=caller.who,
                           message=J.holder("queued by"))
    request.state.audit_detail = f"job {job.id}"
    runner: JobRunner = request.app.state.jobs
    fut = runner.submit(job.id, _work(scene, kw))
    if prefer and "respond-async" in prefer.lower():
        return JSONResponse(_status(request, _job(scene, job.id)), status_code=201,
                            headers={"Location": f"{_base(request)}/jobs/{job.id}",
                                     "Preference-Applied": "respond-async"})
    fut.result()                    # a failure raises here: its status comes from the error table
    job = _job(scene, job.id)
    if job.status != "successful":
        raise NotFound(f"job {job.id} was {job.status}")
    return JSONResponse(_results(request, scene, job) | {"jobID": job.id},
                        headers={"Location": f"{_base(request)}/jobs/{job.id}"})


Visible = Literal["accepted", "running", "successful", "failed"]
ProcessName = Literal[tuple(PROCESSES)]


@router.get("/jobs", summary="Jobs, most recent first (OGC job list filters)", responses=ERRORS)
def jobs_list(request: Request, scene: SceneDep, _: ReadCaller,
              status: Annotated[list[Visible] | None, Query(description="Only jobs in these statuses")] = None,
              processID: Annotated[list[ProcessName] | None, Query(description="Only jobs of these processes")] = None,
              limit: Annotated[int, Query(ge=1, le=1000, description="At most this many jobs")] = 100) -> dict:
    with scene.store.engine.connect() as conn:
        jobs = J.list_jobs(conn, statuses=tuple(status or (s for s in J.STATUSES if s != "dismissed")),
                           processes=tuple(processID) if processID else None, limit=limit)
    return {"jobs": [_status(request, j) for j in jobs],
            "links": [{"href": f"{_base(request)}/jobs", "rel": "self", "type": "application/json"}]}


@router.get("/jobs/{jobId}", summary="A job's status and progress", responses=ERRORS)
def job_status(request: Request, scene: SceneDep, _: ReadCaller, jobId: JobId) -> dict:
    return _status(request, _job(scene, jobId))


@router.delete("/jobs/{jobId}", summary="Dismiss a job (cancel it, delete its results); its owner or an admin",
               responses=ERRORS)
def dismiss(request: Request, scene: SceneDep, caller: RunCaller, jobId: JobId) -> dict:
    job = _job(scene, jobId)
    request.state.audit_detail = f"job {jobId}"
    if job.who != caller.who and not (caller.key and caller.key.allows("admin")):
        raise AuthorizationError(f"job {jobId} was started by another key: only it or an admin key may dismiss it")
    request.app.state.jobs.dismiss(jobId)
    with scene.store.engine.begin() as conn:
        J.update_job(conn, jobId, status="dismissed", message="dismissed", only_if=("accepted", "running",
                                                                                    "successful", "failed"))
    if job.results:
        shutil.rmtree(scene.store.path(job.results), ignore_errors=True)
    with scene.store.engine.connect() as conn:
        return _status(request, J.get_job(conn, jobId))


def _finished(scene: cim.Scene, jobId: str) -> J.Job:
    job = _job(scene, jobId)
    if job.status != "successful" or not job.results:
        raise NotFound(f"job {jobId} is {job.status}: results are there once it is successful"
                       + (f" ({job.message})" if job.message else ""))
    return job


@router.get("/jobs/{jobId}/results", summary="A successful job's results", responses=ERRORS)
def results(request: Request, scene: SceneDep, _: ReadCaller, jobId: JobId) -> dict:
    return _results(request, scene, _finished(scene, jobId))


_RESULT_FILE = {200: {"description": "The file", "content": {_MEDIA[".tif"]: {}, _MEDIA[".geojson"]: {},
                                                                _MEDIA[".json"]: {}}}}


@router.get("/jobs/{jobId}/results/{name}", summary="A result file of a job (GeoTIFF COG, GeoJSON)",
            response_class=FileResponse, responses={**ERRORS, **_RESULT_FILE})
def result_file(scene: SceneDep, _: ReadCaller, jobId: JobId, name: FileName) -> FileResponse:
    folder = scene.store.path(_finished(scene, jobId).results).resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder) or not path.is_file() or path.name == "results.json":
        raise NotFound(f"job {jobId} has no result file {name!r}: see /jobs/{jobId}/results")
    return FileResponse(path, media_type=_MEDIA.get(path.suffix, "application/octet-stream"))


class _JobTiles:
    """`tiles.maptiles.DepthTiles` of the jobs' maximum-depth COGs, the last few kept (keyed by the file's version,
    so a job folder written again is read again). Thread-safe; one per app."""

    def __init__(self, max_jobs: int = 8) -> None:
        self.max_jobs = max_jobs
        self._lock = threading.Lock()
        self._tiles: dict[str, tuple[tuple, Any]] = {}

    def get(self, scene: cim.Scene, job: J.Job):
        from tiles.maptiles import DepthTiles

        folder = scene.store.path(job.results)
        path = next((folder / n for n in _DEPTH_FILES if (folder / n).is_file()), None)
        if path is None:
            raise NotFound(f"job {job.id} has no maximum depth grid to draw: see /jobs/{job.id}/results")
        st = os.stat(path)
        version = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._tiles.get(job.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        tiles = DepthTiles(path)
        with self._lock:
            self._tiles[job.id] = (version, tiles)
            while len(self._tiles) > self.max_jobs:
                self._tiles.pop(next(iter(self._tiles)))
        return tiles


def _depth_tiles(request: Request, scene: cim.Scene, job_id: str):
    cache = getattr(request.app.state, "job_tiles", None)
    if cache is None:
        cache = request.app.state.job_tiles = _JobTiles()
    return cache.get(scene, _finished(scene, job_id))


_TILE = {200: {"description": "The tile", "content": {"image/png": {}}},
         204: {"description": "The tile does not touch the grid"}, 304: {"description": "Not modified"}}


@router.get("/jobs/{jobId}/results/max_depth/tiles", summary="The map tile set of a job's maximum depth",
            responses=ERRORS)
def depth_tilesets(request: Request, scene: SceneDep, _: ReadCaller, jobId: JobId) -> dict:
    tiles = _depth_tiles(request, scene, jobId)
    from tiles.maptiles import DEPTH_RAMP

    item = _tile_links(_base(request), jobId)[1]
    return {"tilesets": [{
        "title": f"maximum depth of job {jobId}", "dataType": "map",
        "tileMatrixSetURI": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857", "minzoom": 0, "maxzoom": tiles.max_zoom,
        "bounds": list(tiles.lonlat_bounds()),
        "legend": {"unit": "m", "max_depth": tiles.max_depth, "min_depth": tiles.min_depth,
                   "stops": [{"depth": d, "color": "#" + "".join(f"{round(255 * v):02x}" for v in c)}
                             for d, c in DEPTH_RAMP[1:]]},
        "links": [{k: v for k, v in item.items() if k != "title"}]}]}


@router.get("/jobs/{jobId}/results/max_depth/tiles/WebMercatorQuad/{z}/{y}/{x}",
            summary="A map tile of a job's maximum depth (PNG, coloured by depth)", response_class=Response,
            responses={**ERRORS, **_TILE})
def depth_tile(request: Request, scene: SceneDep, settings: SettingsDep, _: ReadCaller, jobId: JobId, z: Z, y: Row,
               x: Col) -> Response:
    if x >= 2**z or y >= 2**z:
        raise NotFound(f"tile {z}/{y}/{x} is outside the WebMercatorQuad matrix {z} (0..{2**z - 1})")
    png = _depth_tiles(request, scene, jobId).tile(z, x, y)
    headers = {"Cache-Control": f"private, max-age={settings.cache_max_age}"}
    if png is None:
        return Response(status_code=204, headers=headers)
    headers["ETag"] = '"' + hashlib.sha256(png).hexdigest()[:32] + '"'
    inm = request.headers.get("if-none-match")
    if inm and headers["ETag"] in [t.strip() for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(png, media_type="image/png", headers=headers)


# ----------------------------------------------------------------------------------------------------- viewer
def _latest_water(request: Request, scene: cim.Scene) -> dict | None:
    """The viewer's imagery layer of the latest successful forecast's maximum depth (None without one)."""
    with scene.store.engine.connect() as conn:
        job = J.latest_job(conn, "flood-forecast")
    if job is None or not job.results:
        return None
    try:
        tiles = _depth_tiles(request, scene, job.id)
    except NotFound:
        return None
    template = _tile_links(_base(request), job.id)[1]["href"]
    url = template.replace("{tileMatrix}", "{z}").replace("{tileRow}", "{y}").replace("{tileCol}", "{x}")
    return {"url": url, "minzoom": max(0, tiles.max_zoom - 3), "maxzoom": tiles.max_zoom,
            "bounds": list(tiles.lonlat_bounds()), "alpha": 0.8, "name": "water", "job": job.id,
            "finished": job.finished}


@router.get("/viewer/viewer-config.json", tags=["3D Tiles"], responses=ERRORS,
            summary="The viewer's configuration: the scene's tilesets and the latest forecast's water")
def viewer_config(request: Request, scene: SceneDep, settings: SettingsDep, _: ReadCaller) -> Response:
    """The config `tiles.write_viewer` wrote into the tiles root (or, without one, every tileset there), with the
    maximum depth of the latest successful flood-forecast job draped as imagery. That water replaces the water
    frames of the written config (e.g. those of `cim demo`), which are older."""
    root = tiles_root(scene, settings)
    written = root / "viewer-config.json"
    try:
        config = json.loads(written.read_text())
    except (OSError, ValueError):
        config = {"tilesets": [{"url": f"{p.parent.name}/tileset.json", "name": p.parent.name}
                               for p in sorted(root.glob("*/tileset.json"))], "frames": []}
    water = _latest_water(request, scene)
    if water is not None:
        config["frames"] = []
        config["imagery"] = [layer for layer in config.get("imagery", []) if layer.get("name") != "water"] + [water]
    body = json.dumps(config).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    inm = request.headers.get("if-none-match")
    if inm and etag in [t.strip() for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


# ----------------------------------------------------------------------------------------------------- uploads
UploadId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="An uploaded file's id")]
_UPLOAD_BODY = {"requestBody": {"required": True, "description": "The file's bytes", "content": {
    media: {"schema": {"type": "string", "format": "binary"}} for media in _UPLOAD_TYPES}}}


def _upload_doc(request: Request, path: FsPath) -> dict:
    media = next(m for m, suffix in _UPLOAD_TYPES.items() if suffix == path.suffix)
    return {"id": path.stem, "href": f"{_base(request)}/uploads/{path.stem}", "mediaType": media,
            "bytes": path.stat().st_size}


@router.post("/uploads", status_code=201, openapi_extra=_UPLOAD_BODY,
             summary="Upload a rainfall grid (NetCDF or GeoTIFF) to pass as rainfallFile {\"href\": ...}",
             responses={**ERRORS, 201: {"description": "The file was checked and kept; its href in Location"}})
async def upload(request: Request, scene: SceneDep, caller: RunCaller) -> JSONResponse:
    import anyio

    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _UPLOAD_TYPES:
        raise UnsupportedMediaType(f"send the file as {', '.join(_UPLOAD_TYPES)} (Content-Type), not {media!r}")
    data = await request.body()           # within the service's body limit (the middleware refuses more)
    if not data:
        raise BadRequest("the request body is empty: send the file's bytes")
    folder = _uploads(scene)
    path = folder / f"{uuid.uuid4().hex}{_UPLOAD_TYPES[media]}"

    def keep() -> None:
        import time

        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():                  # jobs read them when they start: a week is plenty
            if old.stat().st_mtime < time.time() - UPLOAD_DAYS * 86400:
                old.unlink(missing_ok=True)
        path.write_bytes(data)
        try:
            _read_rainfall(scene, path, "the uploaded file")
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    await anyio.to_thread.run_sync(keep)
    request.state.audit_detail = f"upload {path.stem}"
    doc = _upload_doc(request, path)
    return JSONResponse(doc, status_code=201, headers={"Location": doc["href"]})


@router.get("/uploads/{uploadId}", summary="An uploaded file's description", responses=ERRORS)
def uploaded(request: Request, scene: SceneDep, _: ReadCaller, uploadId: UploadId) -> dict:
    return _upload_doc(request, _uploaded(scene, uploadId))
