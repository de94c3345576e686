"""The static CesiumJS viewer page: copied next to the tilesets with the local Cesium build (no network)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from cim.errors import MissingDependencyError, ValidationError

__all__ = ["find_cesium", "write_viewer"]

PAGE_DIR = Path(__file__).parent / "viewer"
PAGE_FILES = ("index.html", "viewer.js", "viewer.css")
_CESIUM_SUBPATH = Path("node_modules", "cesium", "Build", "Cesium")


def find_cesium(cesium_dir: str | os.PathLike | None = None) -> Path:
    """The CesiumJS build folder (``node_modules/cesium/Build/Cesium``).

    Looked up in this order: the argument, ``$CIM_CESIUM_DIR``, ``tests/js/node_modules`` of the source tree,
    ``node_modules`` in the working directory and its parents."""
    candidates = []
    if cesium_dir is not None:
        candidates.append(Path(cesium_dir))
    if os.environ.get("CIM_CESIUM_DIR"):
        candidates.append(Path(os.environ["CIM_CESIUM_DIR"]))
    candidates.append(Path(__file__).resolve().parents[1] / "tests" / "js" / _CESIUM_SUBPATH)
    here = Path.cwd().resolve()
    candidates += [d / _CESIUM_SUBPATH for d in (here, *here.parents)]
    for c in candidates:
        if (c / "Cesium.js").is_file():
            return c
    raise MissingDependencyError(
        "CesiumJS was not found (looked for Build/Cesium/Cesium.js in: "
        + ", ".join(str(c) for c in candidates[:3])
        + "): install the npm package with `npm install cesium` (or `make js-deps`), or set CIM_CESIUM_DIR "
        "to its Build/Cesium folder")


def write_viewer(out_dir, tilesets: Sequence[str | os.PathLike] = (), *, frames: Sequence[str | os.PathLike] = (),
                 imagery: Sequence[str | os.PathLike] = (), frame_interval_ms: int = 1000, cesium_dir=None,
                 link: bool = True) -> Path:
    """Write the viewer page into ``out_dir`` and return the path of its ``index.html``.

    ``tilesets`` and ``frames`` (water surfaces, one tileset per output time, animated in order) are paths of
    ``tileset.json`` files inside ``out_dir`` (stored relative to the page) or URLs; ``imagery`` are the
    ``tiles.json`` (TileJSON) files of XYZ PNG map tiles (`raster_xyz_tiles`), draped on the globe with their
    legend. The Cesium build is
    symlinked (``link=True``) or copied to ``out_dir/cesium``. Serve ``out_dir`` over HTTP and open the page.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cesium = find_cesium(cesium_dir)
    for name in PAGE_FILES:
        shutil.copyfile(PAGE_DIR / name, out / name)
    target = out / "cesium"
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    if link:
        target.symlink_to(cesium.resolve(), target_is_directory=True)
    else:
        shutil.copytree(cesium, target)

    def url(t) -> str:
        s = str(t)
        if "://" in s:
            return s
        p = Path(t).resolve()
        if not p.is_relative_to(out.resolve()):
            raise ValidationError(f"tileset {s!r} is not inside the viewer folder {str(out)!r}: write it there "
                                  "(or pass its URL) so that one web server serves both")
        return p.relative_to(out.resolve()).as_posix()

    layers = []
    for tj in imagery:
        meta = json.loads(Path(tj).read_text())
        base = url(tj).rsplit("/", 1)[0] if "/" in url(tj) else "."
        entry = {"url": f"{base}/{meta['tiles'][0]}", "minzoom": meta["minzoom"], "maxzoom": meta["maxzoom"],
                 "bounds": meta["bounds"], "alpha": 0.8 if meta.get("name") == "depth" else 1.0}
        if (Path(tj).parent / "legend.png").is_file():
            entry["legend"] = f"{base}/legend.png"
        layers.append(entry)
    config = {"tilesets": [{"url": url(t), "name": Path(str(t)).parent.name} for t in tilesets],
              "frames": [url(t) for t in frames], "frameInterval": int(frame_interval_ms)}
    if layers:
        config["imagery"] = layers
    (out / "viewer-config.json").write_text(json.dumps(config, indent=1))
    return out / "index.html"
