"""Binary glTF (glb) and Batched 3D Model (b3dm) encoding with plain struct/NumPy, no I/O.

Positions come in a tile's local east-north-up frame (z up) and are turned to glTF's y up here, once:
``(e, n, u) -> (e, u, -n)``; 3D Tiles rotates them back when it loads the content.
Per-feature metadata goes into EXT_structural_metadata property tables referenced from EXT_mesh_features feature
ids (3D Tiles 1.1), or into a b3dm batch table with a ``_BATCHID`` vertex attribute (3D Tiles 1.0).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cim.errors import DataError

GLB_MAGIC = 0x46546C67
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942
ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963
FLOAT, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5123, 5125

# pandas/numpy dtype kind -> (EXT_structural_metadata type, componentType, numpy dtype)
_INT_TYPES = [("INT32", np.int32), ("INT64", np.int64)]


@dataclass
class MeshData:
    """One tile's triangles: positions in the tile's local ENU frame (z up), per-vertex feature index."""

    positions: np.ndarray            # (n, 3) float32/64, local ENU, z up
    normals: np.ndarray              # (n, 3) unit vectors, local ENU
    indices: np.ndarray              # (m, 3) vertex indices
    feature_ids: np.ndarray          # (n,) feature index 0..k-1 into `properties`
    properties: pd.DataFrame         # k rows, one per feature
    color: tuple[float, float, float, float] = (0.85, 0.82, 0.76, 1.0)
    class_name: str = "building"
    extra_vertex: dict[str, np.ndarray] = field(default_factory=dict)


def _pad(b: bytes, n: int, fill: bytes = b"\0") -> bytes:
    return b + fill * (-len(b) % n)


class _Bin:
    """Accumulates buffer views in one binary buffer, each aligned to 8 bytes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.length = 0
        self.views: list[dict] = []

    def add(self, data: bytes, target: int | None = None, stride: int | None = None) -> int:
        pad = -self.length % 8
        if pad:
            self.parts.append(b"\0" * pad)
            self.length += pad
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        if stride is not None:
            view["byteStride"] = stride
        self.parts.append(data)
        self.length += len(data)
        self.views.append(view)
        return len(self.views) - 1

    def bytes(self) -> bytes:
        return _pad(b"".join(self.parts), 8)


def _metadata_type(col: pd.Series) -> dict:
    """EXT_structural_metadata class property for a column (typed; strings for anything else)."""
    kind = col.dtype.kind
    if kind == "b":
        return {"type": "BOOLEAN"}
    if kind in "iu" or str(col.dtype) in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32"):
        vals = col.dropna().astype("int64")
        lo, hi = (int(vals.min()), int(vals.max())) if len(vals) else (0, 0)
        comp = "INT32" if -(2**31) < lo and hi < 2**31 - 1 else "INT64"
        prop = {"type": "SCALAR", "componentType": comp}
        if col.isna().any():
            prop["noData"] = -(2**31) + 1 if comp == "INT32" else -(2**63) + 1
        return prop
    if kind == "f":
        return {"type": "SCALAR", "componentType": "FLOAT64"}
    return {"type": "STRING"}


def _column_values(col: pd.Series, prop: dict) -> tuple[bytes, bytes | None]:
    """(values bytes, string offsets bytes or None) for one property table column."""
    t = prop["type"]
    if t == "BOOLEAN":
        bits = np.packbits(col.fillna(False).to_numpy(bool), bitorder="little")
        return bits.tobytes(), None
    if t == "SCALAR":
        if prop["componentType"] == "FLOAT64":
            return col.to_numpy(np.float64, na_value=np.nan).tobytes(), None
        dt = np.int32 if prop["componentType"] == "INT32" else np.int64
        vals = col.astype("float64").fillna(prop.get("noData", 0)).to_numpy()
        return vals.astype(dt).tobytes(), None
    text = [v if isinstance(v, str) else str(v) for v in col.astype(object).where(col.notna(), "").tolist()]
    joined = "".join(text)
    offsets = np.zeros(len(text) + 1, np.uint32)
    if joined.isascii():                # one byte per character: lengths without encoding each value
        np.cumsum(np.fromiter(map(len, text), np.int64, len(text)), out=offsets[1:])
        return joined.encode("ascii"), offsets.tobytes()
    encoded = [v.encode("utf-8") for v in text]
    np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), out=offsets[1:])
    return b"".join(encoded), offsets.tobytes()


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _json_value(v):
    if _isna(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (int, float, bool, str)):
        return v
    return str(v)


def schema_for(properties: pd.DataFrame, class_name: str) -> dict:
    """The EXT_structural_metadata schema of a property table (one class)."""
    return {"id": f"cim_{class_name}", "classes": {class_name: {
        "properties": {str(c): _metadata_type(properties[c]) for c in properties.columns}}}}


def encode_glb(mesh: MeshData, *, metadata: bool = True, batch_id: bool = False, quantize: bool = False) -> bytes:
    """Encode one mesh as glb (glTF 2.0 binary).

    ``metadata=True`` adds EXT_mesh_features + EXT_structural_metadata (3D Tiles 1.1); ``batch_id=True`` adds a
    FLOAT ``_BATCHID`` attribute for a b3dm batch table (3D Tiles 1.0). ``quantize=True`` stores positions as
    normalized int16 (de-quantized by the node's translation and scale) and normals as normalized int8
    (KHR_mesh_quantization): about half the vertex bytes, positions to extent/65534 (9 mm on a 600 m tile).
    """
    p = np.asarray(mesh.positions, np.float64)
    pos = np.empty((len(p), 3), np.float32)          # z up -> y up: (e, n, u) -> (e, u, -n)
    pos[:, 0], pos[:, 1], pos[:, 2] = p[:, 0], p[:, 2], -p[:, 1]
    nrm = np.empty((len(p), 3), np.float32)
    nv = np.asarray(mesh.normals, np.float64)
    nrm[:, 0], nrm[:, 1], nrm[:, 2] = nv[:, 0], nv[:, 2], -nv[:, 1]
    idx = np.asarray(mesh.indices).reshape(-1)
    small = len(p) < 65535
    idx = idx.astype(np.uint16 if small else np.uint32)
    fid = np.asarray(mesh.feature_ids, np.float32)
    nfeat = len(mesh.properties)

    binbuf = _Bin()
    accessors: list[dict] = []

    def accessor(view: int, comp: int, count: int, typ: str, **kw) -> int:
        accessors.append({"bufferView": view, "componentType": comp, "count": int(count), "type": typ, **kw})
        return len(accessors) - 1

    node: dict = {"mesh": 0}
    if quantize:
        lo, hi = pos.astype(np.float64).min(axis=0), pos.astype(np.float64).max(axis=0)
        # one scale for all axes (as gltf-transform's quantize): glTF turns normals by the inverse transpose of
        # the node's scale, which a non-uniform scale would bend
        centre, half = (lo + hi) / 2, np.full(3, max(float(np.max(hi - lo)) / 2, 1e-6))
        q = np.zeros((len(pos), 4), np.int16)                  # 8-byte stride keeps 4-byte alignment
        q[:, :3] = np.clip(np.round((pos - centre) / half * 32767), -32767, 32767)
        node.update(translation=[float(v) for v in centre], scale=[float(v) for v in half])
        a_pos = accessor(binbuf.add(q.tobytes(), ARRAY_BUFFER, stride=8), 5122, len(q), "VEC3", normalized=True,
                         min=[int(v) for v in q[:, :3].min(axis=0)], max=[int(v) for v in q[:, :3].max(axis=0)])
        qn = np.zeros((len(nrm), 4), np.int8)
        qn[:, :3] = np.clip(np.round(nrm * 127), -127, 127)
        a_nrm = accessor(binbuf.add(qn.tobytes(), ARRAY_BUFFER, stride=4), 5120, len(qn), "VEC3", normalized=True)
    else:
        a_pos = accessor(binbuf.add(pos.tobytes(), ARRAY_BUFFER), FLOAT, len(pos), "VEC3",
                         min=[float(v) for v in pos.min(axis=0)], max=[float(v) for v in pos.max(axis=0)])
        a_nrm = accessor(binbuf.add(nrm.tobytes(), ARRAY_BUFFER), FLOAT, len(nrm), "VEC3")
    attributes = {"POSITION": a_pos, "NORMAL": a_nrm}
    if metadata:
        attributes["_FEATURE_ID_0"] = accessor(binbuf.add(fid.tobytes(), ARRAY_BUFFER), FLOAT, len(fid), "SCALAR")
    if batch_id:
        attributes["_BATCHID"] = accessor(binbuf.add(fid.tobytes(), ARRAY_BUFFER), FLOAT, len(fid), "SCALAR")
    for name, arr in mesh.extra_vertex.items():
        attributes[name] = accessor(binbuf.add(np.asarray(arr, np.float32).tobytes(), ARRAY_BUFFER),
                                    FLOAT, len(arr), "SCALAR")
    a_idx = accessor(binbuf.add(idx.tobytes(), ELEMENT_ARRAY_BUFFER), UNSIGNED_SHORT if small else UNSIGNED_INT,
                     len(idx), "SCALAR")

    primitive: dict = {"attributes": attributes, "indices": a_idx, "material": 0, "mode": 4}
    gltf: dict = {
        "asset": {"version": "2.0", "generator": "cim-twin tiles"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [node],
        "meshes": [{"primitives": [primitive]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": list(mesh.color), "metallicFactor": 0.0,
                                                "roughnessFactor": 1.0},
                       "doubleSided": False}],
        "accessors": accessors,
    }
    if metadata:
        primitive["extensions"] = {"EXT_mesh_features": {"featureIds": [
            {"featureCount": nfeat, "attribute": 0, "propertyTable": 0}]}}
        schema = schema_for(mesh.properties, mesh.class_name)
        table_props = {}
        for name, prop in schema["classes"][mesh.class_name]["properties"].items():
            values, offsets = _column_values(mesh.properties[name], prop)
            entry = {"values": binbuf.add(values or b"\0")}      # a buffer view is never empty (all "")
            if offsets is not None:
                entry["stringOffsets"] = binbuf.add(offsets)
                entry["stringOffsetType"] = "UINT32"
            table_props[name] = entry
        gltf["extensions"] = {"EXT_structural_metadata": {
            "schema": schema,
            "propertyTables": [{"class": mesh.class_name, "count": nfeat, "properties": table_props}]}}
        gltf["extensionsUsed"] = ["EXT_mesh_features", "EXT_structural_metadata"]
    if quantize:
        gltf["extensionsUsed"] = [*gltf.get("extensionsUsed", []), "KHR_mesh_quantization"]
        gltf["extensionsRequired"] = ["KHR_mesh_quantization"]
    bin_bytes = binbuf.bytes()
    gltf["bufferViews"] = binbuf.views
    gltf["buffers"] = [{"byteLength": len(bin_bytes)}]
    return _glb_container(gltf, bin_bytes)


def _glb_container(gltf: dict, bin_bytes: bytes) -> bytes:
    js = _pad(json.dumps(gltf, separators=(",", ":")).encode("utf-8"), 4, b" ")
    if (28 + len(js)) % 8:              # BIN chunk data and the end of the glb on 8-byte boundaries
        js += b"    "
    total = 12 + 8 + len(js) + 8 + len(bin_bytes)
    return b"".join([struct.pack("<III", GLB_MAGIC, 2, total), struct.pack("<II", len(js), CHUNK_JSON), js,
                     struct.pack("<II", len(bin_bytes), CHUNK_BIN), bin_bytes])


def encode_b3dm(mesh: MeshData, *, quantize: bool = False) -> bytes:
    """A 3D Tiles 1.0 b3dm: feature table with BATCH_LENGTH, JSON batch table, glb with a FLOAT ``_BATCHID``."""
    glb = encode_glb(mesh, metadata=False, batch_id=True, quantize=quantize)
    # the header is 28 bytes; each JSON part is padded with spaces to end on an 8-byte boundary of the file
    ft = json.dumps({"BATCH_LENGTH": len(mesh.properties)}).encode("utf-8")
    ft = ft + b" " * (-(28 + len(ft)) % 8)
    table = {str(c): [_json_value(v) for v in mesh.properties[c].tolist()] for c in mesh.properties.columns}
    bt = json.dumps(table, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    bt = bt + b" " * (-(28 + len(ft) + len(bt)) % 8)
    total = 28 + len(ft) + len(bt) + len(glb)
    header = struct.pack("<4sIIIIII", b"b3dm", 1, total, len(ft), 0, len(bt), 0)
    return header + ft + bt + glb


# --------------------------------------------------------------------------- reading (tests, inspection)

def split_glb(data: bytes) -> tuple[dict, bytes]:
    """(JSON dict, binary chunk) of a glb, or of the glb inside a b3dm."""
    if data[:4] == b"b3dm":
        ft_j, ft_b, bt_j, bt_b = struct.unpack_from("<IIII", data, 12)
        data = data[28 + ft_j + ft_b + bt_j + bt_b:]
    magic, _version, _total = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC:
        raise DataError("not a glb or b3dm: the content does not start with the glTF magic 'glTF'")
    jlen, _ = struct.unpack_from("<II", data, 12)
    gltf = json.loads(data[20:20 + jlen])
    off = 20 + jlen
    blen, _ = struct.unpack_from("<II", data, off)
    return gltf, bytes(data[off + 8: off + 8 + blen])


_NP = {5126: np.float32, 5123: np.uint16, 5125: np.uint32, 5121: np.uint8, 5122: np.int16, 5120: np.int8}
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def read_accessor(gltf: dict, binary: bytes, index: int) -> np.ndarray:
    acc = gltf["accessors"][index]
    view = gltf["bufferViews"][acc["bufferView"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    n, dtype = _NCOMP[acc["type"]], np.dtype(_NP[acc["componentType"]])
    size = n * dtype.itemsize
    stride = view.get("byteStride", size)             # interleaved or padded (quantized) vertex data
    raw = np.frombuffer(binary, np.uint8, count=(acc["count"] - 1) * stride + size, offset=start)
    rows = np.lib.stride_tricks.as_strided(raw, shape=(acc["count"], size), strides=(stride, 1))
    arr = np.ascontiguousarray(rows).view(dtype).reshape(acc["count"], n)
    return arr if n > 1 else arr[:, 0]


def read_property_table(gltf: dict, binary: bytes) -> pd.DataFrame:
    """The first EXT_structural_metadata property table of a glb as a DataFrame (one row per feature)."""
    ext = gltf["extensions"]["EXT_structural_metadata"]
    table = ext["propertyTables"][0]
    props = ext["schema"]["classes"][table["class"]]["properties"]
    count = table["count"]

    def view_bytes(i: int) -> bytes:
        v = gltf["bufferViews"][i]
        return binary[v.get("byteOffset", 0): v.get("byteOffset", 0) + v["byteLength"]]

    out = {}
    for name, spec in table["properties"].items():
        p = props[name]
        raw = view_bytes(spec["values"])
        if p["type"] == "STRING":
            offs = np.frombuffer(view_bytes(spec["stringOffsets"]), np.uint32)
            out[name] = [raw[offs[i]:offs[i + 1]].decode("utf-8") for i in range(count)]
        elif p["type"] == "BOOLEAN":
            out[name] = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")[:count].astype(bool)
        else:
            dt = {"FLOAT64": np.float64, "FLOAT32": np.float32, "INT32": np.int32, "INT64": np.int64,
                  "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32}[p["componentType"]]
            out[name] = np.frombuffer(raw, dt, count=count)
    return pd.DataFrame(out)
