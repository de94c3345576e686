"""BIM value objects: a placed building model with its elements, storeys, georeference and what floods need.

A `BIMModel` holds one IFC model placed in a projected CRS: an ``elements`` GeoDataFrame (``guid, ifc_class,
name, storey, storey_elevation, properties`` as JSON text, and the element's triangle mesh as a MultiPolygon Z in
the CRS), its `Storey` list, the `Georeference` used to place it, and per building a `BuildingFloodInfo`: the
lowest floor elevation, the storey elevations and the ground-floor entrances (doors) with their sill heights.
Elevations are in metres in the vertical of the CRS (e.g. NAP for EPSG:7415).

>>> g = Georeference(crs="EPSG:28992", eastings=85000.0, northings=446000.0, rotation_deg=90.0)
>>> g.apply([[1.0, 0.0, 2.0]]).round(6).tolist()
[[85000.0, 446001.0, 2.0]]
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cim.errors import ValidationError

__all__ = ["BIMModel", "BuildingFloodInfo", "Entrance", "Georeference", "Storey"]


@dataclass(frozen=True)
class Georeference:
    """Local engineering metres -> map metres: rotate by ``rotation_deg`` (anticlockwise, local x axis from map
    east), scale, then shift by (``eastings``, ``northings``, ``height``). ``source`` says where it came from
    ("IfcMapConversion", "ePSet_MapConversion" or "caller")."""

    crs: str
    eastings: float = 0.0
    northings: float = 0.0
    height: float = 0.0
    rotation_deg: float = 0.0
    scale: float = 1.0
    source: str = "caller"

    def __post_init__(self) -> None:
        for name in ("eastings", "northings", "height", "rotation_deg", "scale"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ValidationError(f"Georeference.{name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.scale <= 0:
            raise ValidationError(f"Georeference.scale must be positive, got {self.scale}")
        from pyproj import CRS

        try:
            crs = CRS.from_user_input(self.crs)
        except Exception as exc:  # pyproj raises its own CRSError
            raise ValidationError(f"Georeference.crs {self.crs!r} is not a CRS ({exc}); use e.g. 'EPSG:28992'") from None
        if not crs.is_projected:
            raise ValidationError(f"Georeference.crs {self.crs!r} must be a projected CRS in metres")

    def apply(self, xyz: Any) -> np.ndarray:
        """Transform ``(n, 3)`` local metres to map metres."""
        v = np.asarray(xyz, float).reshape(-1, 3)
        t = math.radians(self.rotation_deg)
        c, s = math.cos(t), math.sin(t)
        out = np.empty_like(v)
        out[:, 0] = self.scale * (c * v[:, 0] - s * v[:, 1]) + self.eastings
        out[:, 1] = self.scale * (s * v[:, 0] + c * v[:, 1]) + self.northings
        out[:, 2] = self.scale * v[:, 2] + self.height
        return out

    @classmethod
    def from_mapping(cls, placement: dict[str, Any], crs: Any = None) -> Georeference:
        """From a caller's dict: eastings, northings, optional height, rotation_deg, scale, crs."""
        allowed = {"eastings", "northings", "height", "rotation_deg", "scale", "crs"}
        if not isinstance(placement, dict):
            raise ValidationError("placement must be a dict like {'crs': 'EPSG:28992', 'eastings': 85104.7, "
                                  "'northings': 446805.1, 'height': 0, 'rotation_deg': 0}")
        unknown = set(placement) - allowed
        if unknown:
            raise ValidationError(f"placement has unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        missing = {"eastings", "northings"} - set(placement)
        if missing:
            raise ValidationError(f"placement needs {sorted(missing)}")
        the_crs = placement.get("crs", crs)
        if the_crs is None:
            raise ValidationError("placement needs a 'crs' (or pass crs=) naming the projected CRS of its eastings "
                                  "and northings")
        kw = {k: placement[k] for k in ("eastings", "northings", "height", "rotation_deg", "scale") if k in placement}
        return cls(crs=str(the_crs), source="caller", **kw)

    def as_dict(self) -> dict[str, Any]:
        return {"crs": self.crs, "eastings": self.eastings, "northings": self.northings, "height": self.height,
                "rotation_deg": self.rotation_deg, "scale": self.scale, "source": self.source}


@dataclass(frozen=True)
class Storey:
    guid: str
    name: str
    elevation: float            # metres, map vertical
    building: str | None = None


@dataclass(frozen=True)
class Entrance:
    """A ground-floor door: where water gets in first. ``external`` is Pset_DoorCommon.IsExternal (None when the
    model does not say; doors the model marks as internal are not entrances)."""

    guid: str
    name: str
    storey: str
    sill_elevation: float       # metres, map vertical: lowest point of the door
    sill_height: float          # metres above its storey's floor
    x: float
    y: float
    external: bool | None = None


@dataclass(frozen=True)
class BuildingFloodInfo:
    guid: str
    name: str
    lowest_floor_elevation: float
    storey_elevations: tuple[float, ...]
    ground_floor: str | None
    entrances: tuple[Entrance, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"guid": self.guid, "name": self.name, "lowest_floor_elevation": self.lowest_floor_elevation,
                "storey_elevations": list(self.storey_elevations), "ground_floor": self.ground_floor,
                "entrances": [e.__dict__ for e in self.entrances]}


@dataclass
class BIMModel:
    """A placed IFC model; ``elements`` is a GeoDataFrame in ``georeference.crs``."""

    name: str
    schema: str
    elements: Any
    storeys: tuple[Storey, ...]
    georeference: Georeference
    buildings: tuple[BuildingFloodInfo, ...] = ()
    source: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    COLUMNS = ("guid", "ifc_class", "name", "storey", "storey_elevation", "properties", "geometry")

    def __post_init__(self) -> None:
        missing = [c for c in self.COLUMNS if c not in self.elements.columns]
        if missing:
            raise ValidationError(f"BIMModel.elements lacks column(s) {missing}")
        if self.elements.crs is None:
            raise ValidationError("BIMModel.elements must have a CRS")

    @property
    def crs(self):
        return self.elements.crs

    @property
    def lowest_floor_elevation(self) -> float:
        vals = [b.lowest_floor_elevation for b in self.buildings]
        return min(vals) if vals else float("nan")

    @property
    def entrances(self) -> list[Entrance]:
        return [e for b in self.buildings for e in b.entrances]

    def element(self, guid: str):
        rows = self.elements[self.elements["guid"] == guid]
        if rows.empty:
            raise KeyError(f"no element with GUID {guid!r}")
        return rows.iloc[0]

    def properties(self, guid: str) -> dict[str, Any]:
        return json.loads(self.element(guid)["properties"])

    @classmethod
    def from_layer(cls, elements: Any, attrs: dict[str, Any], *, source: str | None = None) -> BIMModel:
        """Rebuild a model from its elements layer and the attrs stored with it (the inverse of `attrs`):

        ``BIMModel.from_layer(scene.layer(name), scene.layer_info(name).info["attrs"])``.
        """
        try:
            g = dict(attrs["georeference"])
            georef = Georeference(**{k: g[k] for k in ("crs", "eastings", "northings", "height", "rotation_deg",
                                                       "scale", "source")})
            storeys = tuple(Storey(**st) for st in attrs["storeys"])
            buildings = tuple(
                BuildingFloodInfo(b["guid"], b["name"], b["lowest_floor_elevation"], tuple(b["storey_elevations"]),
                                  b["ground_floor"], tuple(Entrance(**e) for e in b["entrances"]))
                for b in attrs["buildings"])
            return cls(name=attrs["model_name"], schema=attrs["ifc_schema"], elements=elements, storeys=storeys,
                       georeference=georef, buildings=buildings, source=source)
        except (KeyError, TypeError) as exc:
            raise ValidationError(f"the layer's attrs are not those of a BIM model ({exc}); read BIM layers that "
                                  "ingest wrote (kind 'bim')") from None

    def attrs(self) -> dict[str, Any]:
        """What a scene keeps next to the elements layer (JSON-friendly)."""
        return {"ifc_schema": self.schema, "model_name": self.name, "georeference": self.georeference.as_dict(),
                "storeys": [s.__dict__ for s in self.storeys], "buildings": [b.as_dict() for b in self.buildings],
                "lowest_floor_elevation": self.lowest_floor_elevation}
