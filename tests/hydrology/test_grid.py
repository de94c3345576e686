"""CRS and no-data handling with and without rioxarray loaded: the CF grid-mapping path gives what `.rio` gives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from pyproj import CRS

import hydrology
from hydrology import _grid
from tests.hydrology.references import grid

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_rio(monkeypatch):
    """Read and write CRS / no-data as if rioxarray had not been imported."""
    monkeypatch.setattr(_grid, "_rio_loaded", lambda: False)


def cf_grid(values, crs="EPSG:32631", **kw):
    """Like ``grid`` but with the CRS as a CF grid-mapping coordinate built by pyproj (no rioxarray)."""
    da = grid(values, crs=None, **kw)
    return da.assign_coords(spatial_ref=xr.Variable((), 0, CRS.from_user_input(crs).to_cf()))


@pytest.mark.parametrize("crs", ["EPSG:32631", "EPSG:28992", "EPSG:4326"])
def test_cf_crs_matches_rioxarray(no_rio, crs):
    rio = grid(np.ones((2, 2)), crs=crs)  # written by rioxarray: spatial_ref and crs_wkt attributes
    assert CRS.from_user_input(_grid.crs_of(rio)) == CRS.from_user_input(crs)
    assert _grid.crs_of(cf_grid(np.ones((2, 2)), crs)) == CRS.from_user_input(crs)  # CF parameters + crs_wkt
    if crs != "EPSG:28992":  # pyproj cannot read the oblique stereographic back from CF parameters alone
        params = {k: v for k, v in CRS.from_user_input(crs).to_cf().items() if k != "crs_wkt"}
        only_params = grid(np.ones((2, 2)), crs=None).assign_coords(spatial_ref=xr.Variable((), 0, params))
        assert _grid.crs_of(only_params).equals(CRS.from_user_input(crs), ignore_axis_order=True)
    assert _grid.crs_of(grid(np.ones((2, 2)), crs=None).assign_attrs(crs=crs)) == CRS.from_user_input(crs)
    assert _grid.crs_of(grid(np.ones((2, 2)), crs=None)) is None


@pytest.mark.parametrize("rio", [True, False])
def test_custom_grid_mapping_name_is_followed_and_kept(monkeypatch, rio):
    monkeypatch.setattr(_grid, "_rio_loaded", lambda: rio)
    da = grid(np.array([[3.0, 2.0], [2.0, 1.0]]), crs=None)
    da = da.assign_coords(crs_var=xr.Variable((), 0, CRS("EPSG:28992").to_cf()))
    da.encoding["grid_mapping"] = "crs_var"
    assert CRS.from_user_input(_grid.crs_of(da)).to_epsg() == 28992
    for out in (hydrology.flow_direction(da), hydrology.fill_depressions(da)):
        assert "crs_var" in out.coords and "spatial_ref" not in out.coords
        assert CRS.from_user_input(_grid.crs_of(out)).to_epsg() == 28992
        assert CRS.from_user_input(out.rio.crs).to_epsg() == 28992


def test_nodata_matches_rioxarray(no_rio):
    base = grid(np.array([[1.0, -9999.0]]))
    for da in (base.rio.write_nodata(-9999.0), base.assign_attrs(nodata=-9999), base.assign_attrs(missing_value=-9999.0)):
        assert _grid.nodata_of(da) == -9999.0 and _grid.nodata_of(da).dtype == np.float64
    masked = base.copy()
    masked.encoding["_FillValue"] = -9999.0  # what xr.open_dataset / open_rasterio(masked=True) leave
    assert np.isnan(_grid.nodata_of(masked))
    assert _grid.nodata_of(base) is None
    codes = grid(np.array([[1, 247]], np.uint8)).assign_attrs(_FillValue=247)
    assert _grid.nodata_of(codes) == 247 and _grid.nodata_of(codes).dtype == np.uint8


def test_pipeline_without_rioxarray_equals_the_rio_pipeline(no_rio):
    rng = np.random.default_rng(3)
    z = rng.random((30, 40)) * 5
    z[4, 5] = np.nan
    ref = hydrology.fill_depressions(grid(z))
    for da in (cf_grid(z), grid(z, crs=None).assign_attrs(crs="EPSG:32631"), cf_grid(z, south_up=True)):
        filled = hydrology.fill_depressions(da)
        fd = hydrology.flow_direction(filled)
        acc = hydrology.flow_accumulation(fd)
        flip = (slice(None, None, -1) if da.y[0] < da.y[-1] else slice(None), slice(None))
        np.testing.assert_array_equal(filled.values[flip], ref.values)
        assert fd.attrs["_FillValue"] == 255 and fd.attrs["_FillValue"].dtype == np.uint8
        for out in (filled, fd, acc):
            assert _grid.crs_of(out) == CRS("EPSG:32631")
            assert out.encoding.get("grid_mapping", "spatial_ref") in out.coords
    # a no-data value set as an attribute is read back on the next call
    fd = hydrology.flow_direction(cf_grid(z))
    np.testing.assert_array_equal(hydrology.flow_accumulation(fd).values, hydrology.flow_accumulation(
        hydrology.flow_direction(grid(z))).values)


def test_geographic_cf_grid_uses_true_cell_sizes(no_rio):
    z = np.array([[5, 5, 5], [5, 3, 2], [5, 1.5, 5]])
    da = xr.DataArray(z, dims=("y", "x"), coords={"y": [60.01, 60.0, 59.99], "x": [10.0, 10.01, 10.02]})
    da = da.assign_coords(spatial_ref=xr.Variable((), 0, CRS("EPSG:4326").to_cf()))
    g = _grid.check_grid(da, "dem")
    assert g.geographic
    np.testing.assert_allclose(g.dy[1], 1114.1, rtol=1e-4)
    assert hydrology.flow_direction(da, flats="keep").values[1, 1] == 1


def test_importing_hydrology_does_not_load_rioxarray():
    # rioxarray would bring rasterio (GDAL) and dask.array (~55 MB); xarray itself may import parts of dask
    code = (
        "import sys, json, numpy as np, xarray as xr; from pyproj import CRS; import hydrology; "
        "da = xr.DataArray(np.random.default_rng(0).random((300, 300)), dims=('y', 'x'), "
        "coords={'y': -np.arange(300.0), 'x': np.arange(300.0)}).assign_coords("
        "spatial_ref=xr.Variable((), 0, CRS('EPSG:32631').to_cf())); "
        "acc = hydrology.flow_accumulation(hydrology.flow_direction(hydrology.fill_depressions(da))); "
        "print(json.dumps({'loaded': [m for m in ('rioxarray', 'rasterio') if m in sys.modules], "
        "'wkt': acc.spatial_ref.attrs['crs_wkt'], 'total': float(np.nansum(acc.values))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["loaded"] == []
    assert CRS.from_wkt(res["wkt"]) == CRS("EPSG:32631")
