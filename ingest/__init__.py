"""ingest: readers that turn files into cim objects, and loading them into a scene safely.

``ingest.read(path, **options)`` detects the format and returns a `ReadResult` (layers by name, files, BIM model,
repairs, skipped) without any scene; ``ingest.ingest(scene, path, **options)`` writes it into a scene
all-or-nothing inside ``scene.transaction()`` and returns an `IngestReport`. Readers are found through the
registry in `ingest.base` (see its docstring for the contract).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from ingest.base import (
    FileItem,
    InputNotFoundError,
    LayerItem,
    Reader,
    ReadResult,
    Repair,
    Skipped,
    find_reader,
    readers,
    register,
)
from ingest.report import IngestReport

__all__ = [
    "FileItem",
    "IngestReport",
    "InputNotFoundError",
    "LayerItem",
    "ReadResult",
    "Reader",
    "Repair",
    "Skipped",
    "find_reader",
    "ingest",
    "read",
    "readers",
    "register",
]

log = logging.getLogger(__name__)
logging.getLogger(__name__).addHandler(logging.NullHandler())


def read(path: str | Path, *, format: str | None = None, **options: Any) -> ReadResult:
    """Read a file into cim objects (no scene). ``format`` forces a reader; other options go to the reader.

    >>> import ingest
    >>> {"cityjson", "ifc", "rainfall_netcdf", "vector"} <= set(ingest.readers())
    True
    """
    return _read(Path(path), format, options)[1]


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    """Options as JSON-friendly values for the provenance record (anything else as its repr)."""
    import json

    out = {}
    for k, v in options.items():
        v = list(v) if isinstance(v, tuple) else v
        try:
            json.dumps(v)
            out[k] = v
        except (TypeError, ValueError):
            out[k] = repr(v)[:200]
    return out


def _read(path: Path, format: str | None, options: dict[str, Any]) -> tuple[Reader, ReadResult]:
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such file; check the path")
    reader = find_reader(path, format)
    reader.check_options(path, options)
    log.info("reading %s with the %s reader", path, reader.name)
    result = reader.read(path, **options)
    for r in result.repairs:
        log.info("%s: repaired %s %s", path.name, r.count, r.what)
    return reader, result


def ingest(scene: Any, path: str | Path, *, format: str | None = None, report: IngestReport | None = None,
           prefix: str | None = None, replace: bool = False, **options: Any) -> IngestReport:
    """Read ``path`` and load it into ``scene`` all-or-nothing (one ``scene.transaction()``); return the report.

    Options go to the reader, as for `read`; nothing is taken from the scene implicitly (a file without a CRS
    needs ``crs=``). ``prefix`` is put before every layer name (two city models in one scene: ``prefix="rdam_"``);
    ``replace=True`` swaps layers of the same name (still all-or-nothing: a failure restores them).
    With ``report=`` the outcome is added to an existing report (several files, one table).
    """
    path = Path(path)
    report = report if report is not None else IngestReport()
    reader, result = _read(path, format, options)
    if prefix:
        result.layers = {f"{prefix}{n}": dataclasses.replace(item, name=f"{prefix}{n}")
                         for n, item in result.layers.items()}
        result.files = [dataclasses.replace(f, name=f"{prefix}{f.name}") for f in result.files]
    result.extra["replace"] = bool(replace)
    provenance = {"reader": reader.name, "file": path.name, "options": _plain(options)}
    for item in [*result.layers.values(), *result.files]:
        item.attrs = {**item.attrs, "ingest": provenance}
    part = IngestReport()
    with scene.transaction():
        reader.write(scene, result, part)
    for r in result.repairs:
        part.repair(path, r.what, r.count, r.detail)
    for s in result.skipped:
        part.skip(path, s.item, s.reason)
    report.extend(part)
    return report
