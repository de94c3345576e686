"""Independent checks of what tiles writes: the Khronos glTF validator, tileset.json structure, placement maths."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import struct
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

JS = Path(__file__).resolve().parents[1] / "js"
CHROMIUM = Path("/usr/bin/chromium")


def require_node() -> str:
    """node and the npm packages of tests/js; a missing piece fails the test (make test installs them)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run `make system-deps` (Debian nodejs + npm)")
    if not (JS / "node_modules" / "gltf-validator").is_dir():
        pytest.fail("tests/js/node_modules is missing: run `make js-deps` (npm ci in tests/js)")
    return node


def validate(files) -> dict[str, dict]:
    """Run the Khronos glTF validator on glb/b3dm files; {file: report summary}."""
    node = require_node()
    files = [str(f) for f in files]
    assert files, "nothing to validate"
    out: dict[str, dict] = {}
    for i in range(0, len(files), 200):
        r = subprocess.run([node, str(JS / "validate.mjs"), *files[i:i + 200]], capture_output=True, text=True,
                           timeout=600, check=False)
        assert r.returncode == 0, r.stderr
        for line in r.stdout.splitlines():
            d = json.loads(line)
            out[d["file"]] = d
    assert set(out) == set(files)
    return out


def assert_valid(files) -> None:
    reports = validate(files)
    bad = {f: r["messages"][:5] for f, r in reports.items() if r["numErrors"]}
    assert not bad, bad


def glb_parts(data: bytes) -> tuple[dict, bytes]:
    """Parse a glb (or the glb inside a b3dm) with struct only: (json, bin)."""
    if data[:4] == b"b3dm":
        ft_j, ft_b, bt_j, bt_b = struct.unpack_from("<IIII", data, 12)
        data = data[28 + ft_j + ft_b + bt_j + bt_b:]
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2 and length == len(data)
    jlen, jtype = struct.unpack_from("<II", data, 12)
    assert jtype == 0x4E4F534A
    gltf = json.loads(data[20:20 + jlen])
    blen, btype = struct.unpack_from("<II", data, 20 + jlen)
    assert btype == 0x004E4942
    return gltf, data[28 + jlen: 28 + jlen + blen]


def accessor(gltf: dict, binary: bytes, i: int) -> np.ndarray:
    """An accessor's values (strided views and normalized integers decoded as the glTF spec says)."""
    a = gltf["accessors"][i]
    v = gltf["bufferViews"][a["bufferView"]]
    dt = np.dtype({5126: np.float32, 5123: np.uint16, 5125: np.uint32, 5122: np.int16, 5120: np.int8}[a["componentType"]])
    n = {"SCALAR": 1, "VEC3": 3}[a["type"]]
    stride = v.get("byteStride", n * dt.itemsize) // dt.itemsize
    start = v.get("byteOffset", 0) + a.get("byteOffset", 0)
    arr = np.frombuffer(binary, dt, a["count"] * stride, start).reshape(-1, stride)[:, :n]
    if a.get("normalized"):
        arr = np.maximum(arr / float(np.iinfo(dt).max), -1.0)
    return arr if n > 1 else arr[:, 0]


def mesh_of(path: Path) -> dict:
    """Positions (glTF y-up), normals, triangles, per-vertex feature ids of a content file."""
    gltf, binary = glb_parts(Path(path).read_bytes())
    prim = gltf["meshes"][0]["primitives"][0]
    att = prim["attributes"]
    fid_name = "_FEATURE_ID_0" if "_FEATURE_ID_0" in att else "_BATCHID"
    node = gltf["nodes"][0]
    assert "matrix" not in node and "rotation" not in node
    positions = accessor(gltf, binary, att["POSITION"]).astype(np.float64) * node.get("scale", [1, 1, 1]) \
        + node.get("translation", [0, 0, 0])
    return {
        "gltf": gltf, "bin": binary,
        "positions": positions,
        "normals": accessor(gltf, binary, att["NORMAL"]).astype(np.float64),
        "triangles": accessor(gltf, binary, prim["indices"]).astype(np.int64).reshape(-1, 3),
        "feature": accessor(gltf, binary, att[fid_name]).astype(np.int64),
        "feature_accessor": gltf["accessors"][att[fid_name]],
    }


def yup_to_zup(p: np.ndarray) -> np.ndarray:
    """glTF (x, y, z) with y up -> 3D Tiles local (x, -z, y) with z up."""
    return np.column_stack([p[:, 0], -p[:, 2], p[:, 1]])


def _box_corners(box) -> np.ndarray:
    c, h = np.array(box[:3]), np.array(box[3:]).reshape(3, 3)
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    return c + signs @ h


def _inside_box(points: np.ndarray, box, tol: float) -> bool:
    c, h = np.array(box[:3]), np.array(box[3:]).reshape(3, 3)
    # coordinates along each half axis, in units of that half axis
    u = np.linalg.solve(h.T, (points - c).T).T
    lengths = np.linalg.norm(h, axis=1)
    return bool((np.abs(u) <= 1 + tol / lengths).all())


def check_tileset(path: Path, *, version: str | None = None) -> list[dict]:
    """Structural checks of a tileset.json; returns all tiles with their world (ECEF) transforms and depth."""
    path = Path(path)
    ts = json.loads(path.read_text())
    assert ts["asset"]["version"] in ("1.0", "1.1")
    if version:
        assert ts["asset"]["version"] == version
    assert isinstance(ts["geometricError"], float | int) and ts["geometricError"] >= ts["root"]["geometricError"]
    assert ts["root"]["refine"] in ("ADD", "REPLACE")
    tiles = []

    def walk(tile, parent_world, parent, depth):
        m = np.array(tile.get("transform", np.eye(4).reshape(-1).tolist()), np.float64).reshape(4, 4).T
        assert np.allclose(m[3], [0, 0, 0, 1])
        world = parent_world @ m
        bv = tile["boundingVolume"]
        assert set(bv) == {"box"} and len(bv["box"]) == 12
        assert tile["geometricError"] >= 0
        if "refine" in tile:
            assert tile["refine"] in ("ADD", "REPLACE")
        if "content" in tile:
            content = path.parent / tile["content"]["uri"]
            assert content.is_file(), tile["content"]["uri"]
            if content.suffix in (".glb", ".b3dm"):      # the content lies inside its tile's box
                local = yup_to_zup(mesh_of(content)["positions"])
                assert _inside_box(local, bv["box"], tol=1e-3), tile["content"]["uri"]
        if parent is not None:
            assert tile["geometricError"] < parent["tile"]["geometricError"]
            corners = _box_corners(bv["box"])
            in_world = corners @ world[:3, :3].T + world[:3, 3]
            pw = parent["world"]
            in_parent = (in_world - pw[:3, 3]) @ pw[:3, :3]    # frames are orthonormal
            assert _inside_box(in_parent, parent["tile"]["boundingVolume"]["box"], tol=1e-3)
        entry = {"tile": tile, "world": world, "depth": depth}
        tiles.append(entry)
        children = tile.get("children", [])
        if not children:
            assert tile["geometricError"] == 0
        for c in children:
            walk(c, world, entry, depth + 1)

    walk(ts["root"], np.eye(4), None, 0)
    return tiles


class CORSHandler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, *args):
        pass


class Server:
    """A loopback HTTP server with CORS for a folder, in a thread."""

    def __init__(self, root: Path) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(CORSHandler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def run_viewer(url: str, screenshot: Path, picks=()) -> dict:
    """Open the viewer page in headless Chromium through tests/js/viewer_check.mjs."""
    node = require_node()
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is not installed at /usr/bin/chromium: run `make system-deps`")
    if not (JS / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is missing in tests/js/node_modules: run `make js-deps`")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([node, str(JS / "viewer_check.mjs"), url, str(screenshot),
                        json.dumps([list(map(float, p)) for p in picks])],
                       capture_output=True, text=True, timeout=400, check=False)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])
