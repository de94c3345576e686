"""Terrain mesh tiles and flood water surfaces (one tileset per output time)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr
from pyproj import Transformer

import cim
import tiles
from tests.tiles.helpers import assert_valid, check_tileset, mesh_of, yup_to_zup

X0, Y0 = 84_000.0, 447_000.0


def dem_grid(n: int = 65, res: float = 2.0) -> xr.DataArray:
    x = X0 + res * np.arange(n)
    y = Y0 + res * np.arange(n)[::-1]                    # north-up, y decreasing as rasters are
    xx, yy = np.meshgrid(x - X0, y - Y0)
    z = 0.02 * xx + 3 * np.sin(yy / 20.0) - 1.0
    z[:6, :6] = np.nan                                   # a no-data corner
    da = xr.DataArray(z, dims=("y", "x"), coords={"x": x, "y": y}, name="elevation")
    return da.rio.write_crs("EPSG:28992")


def leaf_points(ts, crs="EPSG:28992"):
    """Per leaf: (CRS xyz of every vertex, mesh dict, property table)."""
    back = Transformer.from_crs("EPSG:4978", crs, always_xy=True)
    out = []
    for t in check_tileset(ts):
        if t["tile"].get("children") or "content" not in t["tile"]:
            continue
        path = ts.parent / t["tile"]["content"]["uri"]
        m = mesh_of(path)
        w = yup_to_zup(m["positions"]) @ t["world"][:3, :3].T + t["world"][:3, 3]
        gltf, binary = tiles._glb.split_glb(path.read_bytes())
        out.append((np.column_stack(back.transform(*w.T)), m, tiles._glb.read_property_table(gltf, binary)))
    return out


def test_terrain_mesh_on_the_dem_nodes_with_coarser_inner_tiles(tmp_path):
    dem = dem_grid()
    ts = tiles.terrain_to_3dtiles(dem, tmp_path, block=16, max_features=4)
    tiles_ = check_tileset(ts, version="1.1")
    assert_valid(sorted((tmp_path / "tiles").iterdir()))
    leaves = leaf_points(ts)
    z = dem.to_numpy()
    x, y = dem["x"].to_numpy(), dem["y"].to_numpy()
    ids = []
    for pts, m, props in leaves:
        ix = np.rint((pts[:, 0] - X0) / 2.0).astype(int)
        iy = np.rint((Y0 + 128.0 - pts[:, 1]) / 2.0).astype(int)
        assert np.abs(pts[:, 0] - x[ix]).max() < 0.01 and np.abs(pts[:, 1] - y[iy]).max() < 0.01
        assert np.abs(pts[:, 2] - z[iy, ix]).max() < 0.01                 # on the DEM's values
        assert np.isfinite(z[iy, ix]).all()                                 # never a no-data node
        n = yup_to_zup(m["normals"])
        assert (n[:, 2] > 0.5).all()                                        # facing up
        ids += list(props["id"])
        assert (props["min_elevation"] <= props["max_elevation"]).all() and (props["cim_level"] == 1).all()
    assert len(ids) == len(set(ids)) == 16                                  # 4 x 4 blocks, each once
    # cells with four valid corners are all covered: 64 x 64 cells minus the no-data corner (6 x 6 nodes)
    tri = sum(len(m["triangles"]) for _, m, _ in leaves)
    assert tri == 2 * (64 * 64 - 6 * 6)
    inner = [t for t in tiles_ if t["tile"].get("children")]
    assert inner and all(t["tile"]["geometricError"] > 0 for t in inner)
    root = mesh_of(tmp_path / inner[0]["tile"]["content"]["uri"])
    assert 0 < len(root["triangles"]) < tri / 2                             # decimated


def depth_frames(dem: xr.DataArray) -> xr.DataArray:
    d = np.zeros((3, *dem.shape))
    d[1, 20:30, 20:40] = 0.2                               # a pond
    d[2, 20:30, 20:40] = 0.6
    d[2, 40:44, 10:12] = 0.005                             # below min_depth: dry
    d[2, 50, 50] = 0.35
    da = xr.DataArray(d, dims=("time", "y", "x"), coords={"time": [0.0, 600.0, 1200.0], "x": dem.x, "y": dem.y})
    return da.rio.write_crs("EPSG:28992")


def test_flood_water_surfaces_one_tileset_per_time(tmp_path):
    dem = dem_grid()
    depth = depth_frames(dem)
    paths = tiles.flood_to_3dtiles(depth, dem, tmp_path, block=16)
    assert [p.parent.name for p in paths] == ["t000", "t001", "t002"]
    for p in paths:
        check_tileset(p, version="1.1")
    assert "content" not in json.loads(paths[0].read_text())["root"]         # all dry at t=0
    assert json.loads(paths[2].read_text())["extras"]["time"] == "1200.0"
    assert_valid(sorted(tmp_path.glob("t*/tiles/*.glb")))
    z = dem.to_numpy()
    for p, frame, wet_cells in ((paths[1], 1, 200), (paths[2], 2, 201)):
        d = depth.isel(time=frame).to_numpy()
        leaves = leaf_points(p)
        assert sum(len(m["triangles"]) for _, m, _ in leaves) == 2 * wet_cells
        for pts, m, props in leaves:
            # each triangle is flat at ground + depth of its cell
            tri = m["triangles"]
            cx = pts[tri].mean(axis=1)
            cix = np.rint((cx[:, 0] - X0) / 2).astype(int)
            ciy = np.rint((Y0 + 128.0 - cx[:, 1]) / 2).astype(int)
            assert np.abs(pts[tri][:, :, 2] - (z[ciy, cix] + d[ciy, cix])[:, None]).max() < 0.01
            assert (d[ciy, cix] >= 0.01).all()
            extra = m["gltf"]["meshes"][0]["primitives"][0]["attributes"]["_DEPTH"]
            vd = tiles._glb.read_accessor(m["gltf"], m["bin"], extra)
            np.testing.assert_allclose(vd[tri[:, 0]], d[ciy, cix], atol=1e-6)
            for k, row in props.iterrows():
                cells = d[ciy[m["feature"][tri[:, 0]] == k], cix[m["feature"][tri[:, 0]] == k]]
                assert row["max_depth"] == pytest.approx(cells.max())
                want = {0.2: (1, "blue"), 0.6: (3, "orange"), 0.35: (2, "yellow")}[round(cells.max(), 2)]
                assert (row["warning_level"], row["warning"]) == want


def test_flood_grid_must_match_the_dem(tmp_path):
    dem = dem_grid()
    bad = depth_frames(dem).isel(x=slice(0, 40))
    with pytest.raises(cim.ValidationError, match="not on the DEM's grid"):
        tiles.flood_to_3dtiles(bad, dem, tmp_path)
    with pytest.raises(cim.ValidationError, match="increasing"):
        tiles.flood_to_3dtiles(depth_frames(dem), dem, tmp_path, warning_levels=((0.5, "a"), (0.1, "b")))
    with pytest.raises(cim.CRSError, match="no CRS"):
        tiles.terrain_to_3dtiles(xr.DataArray(dem.to_numpy(), dims=("y", "x"),
                                              coords={"x": dem.x.values, "y": dem.y.values}), tmp_path)


def test_an_inner_terrain_tiles_error_covers_its_surface_between_nodes(tmp_path):
    # a staircase along x (flat for two columns, then a 10 m step), 3 x 2 blocks of 8 cells: more than
    # max_features, so the root is a coarse inner tile keeping every second column; between its nodes the coarse
    # surface ramps where the full one is flat, 5 m off at worst
    nx, ny = 25, 17
    x = 85000 + 2.0 * np.arange(nx)
    y = 446000 + 2.0 * np.arange(ny)[::-1]
    zx = 10.0 * (np.arange(nx) // 2)
    dem = xr.DataArray(np.tile(zx, (ny, 1)), coords={"y": y, "x": x}, dims=("y", "x")).rio.write_crs("EPSG:28992")
    ts = json.loads(Path(tiles.terrain_to_3dtiles(dem, tmp_path, block=8, max_features=4)).read_text())
    assert ts["root"]["children"]                                   # an inner tile
    coarse = np.interp(np.arange(nx), np.arange(0, nx, 2), zx[::2])
    assert np.abs(coarse - zx).max() == pytest.approx(5.0)
    assert ts["root"]["geometricError"] >= 5.0 - 1e-6
