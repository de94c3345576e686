"""Every write is a transaction: a failure part-way leaves the scene exactly as it was."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import sqlalchemy as sa
import xarray as xr
from shapely import Point

import cim
from cim.stores.base import Store
from cim.testing import assert_layer_equal

CRS = "EPSG:28992"


def layer(n=5, v=1.0):
    return gpd.GeoDataFrame({"v": np.full(n, v)}, geometry=[Point(84000 + i, 446000) for i in range(n)], crs=CRS)


def dem():
    da = xr.DataArray(np.ones((4, 4), "float32"), dims=("y", "x"),
                      coords={"y": 446040 - 10 * np.arange(4), "x": 84000 + 10 * np.arange(4)})
    return da.rio.write_crs(CRS)


def store_state(scene: cim.Scene) -> dict:
    """Everything observable: catalogue, files on disk, and (PostGIS) the tables in the scene schema."""
    files = sorted(str(p.relative_to(scene.store.files_root)) for p in scene.store.files_root.rglob("*")
                   if p.is_file() and ".staging" not in p.parts and p.suffix not in {".sqlite-wal", ".sqlite-shm"}
                   and not p.name.endswith(("-wal", "-shm")))
    with scene.store.engine.connect() as conn:
        tables = sorted(sa.inspect(conn).get_table_names())
    return {"layers": [(i.name, i.info.get("count")) for i in scene.layers], "files": files, "tables": tables}


def test_failure_after_contents_written_leaves_nothing(store_url, monkeypatch):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    scene.add_layer("keep", layer(), kind="generic")
    before = store_state(scene)

    def boom(self, row):
        raise RuntimeError("disk full while writing the catalogue")

    monkeypatch.setattr(Store, "add_catalog_row", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        scene.add_layer("lost", layer(), kind="generic")
    with pytest.raises(RuntimeError, match="disk full"):
        scene.add_layer("lost_dem", dem(), kind="terrain")
    monkeypatch.undo()
    assert store_state(scene) == before
    assert not list((scene.store.files_root / ".staging").glob("*"))
    assert_layer_equal(scene.layer("keep"), layer())


def test_group_of_writes_is_all_or_nothing(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    before = store_state(scene)
    bad = layer()
    bad["obj"] = [{"a": 1}] * len(bad)          # not storable: raises after "first" was written
    with pytest.raises(cim.ValidationError, match="obj"):
        with scene.transaction():
            scene.add_layer("first", layer(), kind="generic")
            scene.add_layer("dem", dem(), kind="terrain")
            scene.add_region("R", "city", Point(84000, 446000).buffer(10))
            scene.add_layer("second", bad, kind="generic")
    assert store_state(scene) == before
    assert len(scene.regions) == 0


def test_failed_replace_keeps_the_old_layer(store_url):
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    scene.add_layer("b", layer(3, 7.0), kind="generic")
    bad = layer(4, 1.0)
    bad["obj"] = [[1]] * 4
    with pytest.raises(cim.ValidationError):
        scene.add_layer("b", bad, kind="generic", replace=True)
    assert_layer_equal(scene.layer("b"), layer(3, 7.0))
    scene.add_layer("b", layer(4, 2.0), kind="generic", replace=True)
    assert_layer_equal(scene.layer("b"), layer(4, 2.0))


def test_commit_failure_moves_files_back(store_url, monkeypatch):
    """Files are moved into place just before the database commits; if the commit fails they are moved back."""
    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    scene.add_layer("old", dem(), kind="terrain")
    before = store_state(scene)
    original = Store._apply_files

    def apply_then_fail(self, tx):
        original(self, tx)
        raise OSError("power cut between the file moves and the commit")

    monkeypatch.setattr(Store, "_apply_files", apply_then_fail)
    with pytest.raises(OSError, match="power cut"):
        with scene.transaction():
            scene.remove_layer("old")
            scene.add_layer("new", dem(), kind="terrain")
    monkeypatch.undo()
    assert store_state(scene) == before
    np.testing.assert_array_equal(scene.layer("old").values, dem().values)


def test_insert_ignore_counts_new_rows(store_url):
    """Re-sent rows are skipped and the count says how many were new, on both dialects."""
    from cim import schema

    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    rows = [{"key": f"k{i}", "value": str(i)} for i in range(3)]
    with scene.transaction() as conn:
        assert schema.insert_ignore(conn, schema.meta, rows) == 3
        assert schema.insert_ignore(conn, schema.meta, rows + [{"key": "k9", "value": "9"}]) == 1
        assert schema.insert_ignore(conn, schema.meta, []) == 0
    assert scene.store.meta()["k9"] == "9"


def test_a_transaction_belongs_to_its_thread(store_url):
    """Another thread neither joins an open transaction nor sees its uncommitted writes."""
    import threading

    scene = cim.Scene.create(store_url, crs=CRS, name="x")
    seen: dict[str, object] = {}
    with scene.transaction():
        scene.add_layer("pending", layer(), kind="generic")

        def other():
            seen["layers"] = [i.name for i in scene.layers]
            seen["joined"] = scene.store._tx is not None

        t = threading.Thread(target=other)
        t.start()
        t.join(30)
        assert "pending" in scene                           # this thread sees its own write
    assert seen == {"layers": [], "joined": False}
    assert [i.name for i in scene.layers] == ["pending"]
