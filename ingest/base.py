"""The reader contract, the registry of readers, and what a read returns.

Contract for a reader (one module per format, e.g. ``ingest/cityjson.py``, ``ingest/sensorthings.py``)
----------------------------------------------------------------------------------------------------------
A reader is a subclass of `Reader` registered with the `register` decorator at import time of its module::

    from ingest.base import Reader, ReadResult, register

    @register
    class MyReader(Reader):
        name = "myformat"                    # unique; users may force it with ingest.read(path, format="myformat")
        extensions = (".my", ".my.json")     # lower-case suffixes (compound ones allowed), used for detection
        options = frozenset({"crs"})         # keyword options `read` accepts; anything else is refused
        priority = 0                         # higher wins when several readers claim a file

        def guess_can_open(self, path) -> bool:    # cheap: suffix and at most a peek at the first bytes
            ...
        def read(self, path, **options) -> ReadResult:   # no scene, no store: cim objects only
            ...
        # optional: how the result goes into a scene (default: its layers and files, see Reader.write)
        def write(self, scene, result, report) -> None:
            ...

Rules: `ingest.read` checks the options against ``options`` (a typo gets a "did you mean" error) before it calls
`read`, and `ingest.ingest` may rename ``result.layers``/``result.files`` (``prefix=``) before `write`, so
`write` must use the item names it is given. Conventions for options: ``crs`` is the CRS of a file that carries
none (a conflict with the file's own is refused), ``to_crs`` reprojects, ``name`` names the layer.
`read` never touches a scene and never writes anything; it raises `cim.CIMError` subclasses whose message
names the file, the field and the fix (`DataError` for malformed content, `CRSError` for a missing or unusable
CRS, `ValidationError` for bad options, `MissingDependencyError` via `cim.errors.require(module, "io")` for an
optional dependency). Repairs the reader made (e.g. invalid geometries fixed with make_valid) go to
`ReadResult.repairs`, objects it left out go to `ReadResult.skipped` with the reason. `write` is called by
`ingest.ingest` inside ``scene.transaction()``; anything it raises rolls the whole file back. It records what it
added with ``report.add(...)``.

The built-in reader modules are listed in `BUILTIN_MODULES` and imported lazily on first use of the registry;
third-party readers register through the entry-point group ``cim_twin.readers`` (value: the module to import).
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cim.errors import DataError, ValidationError

if TYPE_CHECKING:
    from ingest.report import IngestReport

__all__ = [
    "BUILTIN_MODULES",
    "CORRUPT",
    "FileItem",
    "InputNotFoundError",
    "LayerItem",
    "ReadResult",
    "Reader",
    "Repair",
    "Skipped",
    "check_size",
    "find_reader",
    "readers",
    "register",
    "utc_times",
]

log = logging.getLogger(__name__)

#: the end of every "cannot read this file" message: what happened and what to do
CORRUPT = "the file is truncated or corrupt: download or export it again"

BUILTIN_MODULES: tuple[str, ...] = (
    "ingest.cityjson",
    "ingest.citygml",
    "ingest.vector",
    "ingest.raster",
    "ingest.rainfall",
    "ingest.gauge_csv",
    "ingest.ifc",
    "ingest.pointcloud",
    "ingest.sensorthings",
    "ingest.dynamizer",
    "ingest.tileset",
)

def check_size(path: Path, what: str, shape: tuple[int, ...], max_values: int | None) -> None:
    """Refuse a grid of more than ``max_values`` values before reading it: a small file (compressed, or with a
    variable never written) can declare a grid far larger than memory. ``None``: no limit.

    >>> check_size(Path("radar.nc"), "'precip'", (92, 765, 700), 10_000_000)
    Traceback (most recent call last):
    ...
    cim.errors.ValidationError: radar.nc: 'precip' is 92 x 765 x 700 = 49,266,000 values, more than max_values=10,000,000: read only the area and times needed (bbox=) or raise max_values
    """
    if max_values is None:
        return
    n = math.prod(int(d) for d in shape)
    if n > max_values:
        raise ValidationError(f"{path.name}: {what} is {' x '.join(str(int(d)) for d in shape)} = {n:,} values, more "
                              f"than max_values={max_values:,}: read only the area and times needed (bbox=) or "
                              "raise max_values")


def utc_times(values: Any, naive_tz: str | None = "UTC") -> tuple[Any, int | None]:
    """Times as UTC (a tz-aware pandas Series) from ISO 8601 texts that may mix offsets (a gauge's local time
    across a daylight-saving change: +01:00 then +02:00) and times without one (taken in ``naive_tz``; None
    leaves them unparsed). Also the position of the first text that is not a time (or None).

    >>> t, bad = utc_times(["2020-03-29T01:00+01:00", "2020-03-29T03:00+02:00", "2020-03-29T02:00"])
    >>> [str(x) for x in t], bad
    (['2020-03-29 00:00:00+00:00', '2020-03-29 01:00:00+00:00', '2020-03-29 02:00:00+00:00'], None)
    """
    import pandas as pd

    text = pd.Series(values, dtype=object).astype(str).str.strip()
    zoned = text.str.contains(r"(?:[zZ]|[+-]\d\d(?::?\d\d)?)$", regex=True)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    if zoned.any():
        out[zoned] = pd.to_datetime(text[zoned], utc=True, errors="coerce", format="ISO8601")
    bad = (zoned & out.isna()).to_numpy().copy()
    if (~zoned).any():
        naive = pd.to_datetime(text[~zoned], errors="coerce", format="ISO8601")
        bad[~zoned.to_numpy()] = naive.isna().to_numpy()
        if naive_tz is not None:
            out[~zoned] = naive.dt.tz_localize(naive_tz).dt.tz_convert("UTC")
    return out, (int(np.argmax(bad)) if bad.any() else None)


class InputNotFoundError(DataError, FileNotFoundError):
    """The input file does not exist."""


_REGISTRY: dict[str, Reader] = {}
_loaded = False


@dataclass
class LayerItem:
    """One layer a reader produced: the data plus what `Scene.add_layer` needs."""

    name: str
    data: Any                                   # GeoDataFrame or xr.DataArray with a CRS
    kind: str
    cim_level: int | None = None
    units: str | None = None
    source: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        """Features of a vector layer, cells of a raster (as the scene catalogue counts them)."""
        import xarray as xr

        return int(self.data.size) if isinstance(self.data, xr.DataArray) else len(self.data)


@dataclass
class FileItem:
    """A file kept as a file in the scene store (point clouds), with what was learnt from it."""

    name: str
    path: Path
    kind: str
    source: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Repair:
    """Something the reader fixed: what, how many, and how."""

    what: str
    count: int
    detail: str = ""


@dataclass(frozen=True)
class Skipped:
    """Something the reader left out, and why."""

    item: str
    reason: str


@dataclass
class ReadResult:
    """What `ingest.read` returns: cim objects, no scene.

    ``layers`` by name (`LayerItem`), ``files`` kept as files (point clouds), ``bim`` (a `cim.bim.BIMModel`, whose elements are also in ``layers``),
    ``series`` (1-D time series such as gauge rainfall, by name), ``extra`` (reader-specific objects, e.g.
    SensorThings entities), and the ``repairs`` and ``skipped`` lists.
    """

    source: Path
    format: str
    crs: Any = None
    layers: dict[str, LayerItem] = field(default_factory=dict)
    files: list[FileItem] = field(default_factory=list)
    bim: Any = None
    series: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    repairs: list[Repair] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def add_layer(self, item: LayerItem) -> LayerItem:
        if item.name in self.layers:
            raise ValidationError(f"{self.source}: a reader produced two layers named {item.name!r}")
        if item.source is None:
            item.source = self.source.name
        self.layers[item.name] = item
        return item

    def __getitem__(self, name: str) -> Any:
        """The data of a layer (or series) by name."""
        if name in self.layers:
            return self.layers[name].data
        if name in self.series:
            return self.series[name]
        from cim.errors import LayerNotFoundError

        raise LayerNotFoundError(f"{self.source.name}: no layer or series {name!r}; have "
                                 f"{sorted(self.layers) + sorted(self.series)}")


class Reader:
    """Base of every reader; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[frozenset[str]] = frozenset()
    priority: ClassVar[int] = 0
    description: ClassVar[str] = ""

    def guess_can_open(self, path: Path) -> bool:
        """Whether this reader is likely to read ``path`` (by default: by its suffix)."""
        return _has_suffix(Path(path), self.extensions)

    def read(self, path: Path, **options: Any) -> ReadResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_options(self, path: Path, options: dict[str, Any]) -> None:
        """Refuse options this reader does not know (a typo must not be silently ignored)."""
        unknown = set(options) - set(self.options)
        if unknown:
            import difflib

            hints = []
            for u in sorted(unknown):
                near = difflib.get_close_matches(u, sorted(self.options), n=1)
                hints.append(f"{u!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
            raise ValidationError(
                f"{Path(path).name}: the {self.name} reader does not accept option(s) {', '.join(hints)}; "
                f"it accepts: {', '.join(sorted(self.options)) or 'none'}")

    def write(self, scene: Any, result: ReadResult, report: IngestReport) -> None:
        """Put a read result into a scene (called inside ``scene.transaction()`` by `ingest.ingest`);
        ``result.extra["replace"]`` says whether layers of the same name may be swapped."""
        replace = bool(result.extra.get("replace", False))
        for item in result.layers.values():
            scene.add_layer(item.name, item.data, kind=item.kind, cim_level=item.cim_level, units=item.units,
                            source=item.source, attrs=item.attrs or None, replace=replace)
            report.add(result.source, item.name, item.kind, len(item))
        for f in result.files:
            attrs = dict(f.attrs)
            if "bounds_native" in attrs and result.crs is not None:
                from pyproj import Transformer

                b = attrs["bounds_native"]
                tf = Transformer.from_crs(result.crs, scene.crs, always_xy=True)
                attrs["bounds"] = list(tf.transform_bounds(b[0], b[1], b[3], b[4]))
            scene.add_file(f.name, f.path, kind=f.kind, source=f.source, attrs=attrs or None, replace=replace)
            report.add(result.source, f.name, f.kind, 1)
        for name, series in result.series.items():
            report.skip(result.source, name,
                        "a 1-D time series has no place as a scene layer; load it as a SensorThings Datastream")
            del series


def _has_suffix(path: Path, suffixes: Iterable[str]) -> bool:
    lower = path.name.lower()
    return any(lower.endswith(s) for s in suffixes)


def register(cls: type[Reader]) -> type[Reader]:
    """Class decorator: add a reader to the registry under ``cls.name``."""
    if not cls.name:
        raise ValidationError(f"reader {cls.__qualname__} has no name")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and type(existing).__qualname__ != cls.__qualname__:
        raise ValidationError(f"two readers are named {cls.name!r}: {type(existing).__module__} and {cls.__module__}")
    _REGISTRY[cls.name] = cls()
    return cls


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:            # a missing dependency inside a reader: that is a real error
                raise
            log.debug("reader module %s is not present", mod)
    from importlib.metadata import entry_points

    for ep in entry_points(group="cim_twin.readers"):
        importlib.import_module(ep.value)


def readers() -> dict[str, Reader]:
    """All registered readers by name."""
    _load_builtin()
    return dict(_REGISTRY)


def find_reader(path: str | Path, format: str | None = None) -> Reader:
    """The reader for a path: the one named by ``format``, else the best of those whose `guess_can_open` is true."""
    regs = readers()
    path = Path(path)
    if format is not None:
        try:
            return regs[format]
        except KeyError:
            import difflib

            near = difflib.get_close_matches(str(format), sorted(regs), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValidationError(f"unknown format {format!r} for {path.name}{hint}; choose one of: "
                                  f"{', '.join(sorted(regs))}") from None
    candidates = [r for r in regs.values() if r.guess_can_open(path)]
    if not candidates:
        raise DataError(f"{path}: no reader recognises this file (suffix {''.join(path.suffixes) or 'none'}); "
                        f"pass format= one of {', '.join(sorted(regs))}")
    return max(candidates, key=lambda r: r.priority)
