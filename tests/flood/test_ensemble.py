"""flood.ensemble on a real Dask LocalCluster: the same answers as running the members one by one."""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr

import flood
from flood.levels import WarningLevels
from tests.flood.test_forecast import bowl_scene


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                           dashboard_address=None, host="127.0.0.1")
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def tilted_dem() -> xr.DataArray:
    y, x = 2.0 * (np.arange(16)[::-1] + 0.5), 2.0 * (np.arange(24) + 0.5)
    z = 0.02 * x[None, :] + 0.0 * y[:, None]
    return xr.DataArray(z, coords={"y": y, "x": x}, dims=("y", "x")).rio.write_crs("EPSG:28992")


def test_dask_matches_serial_and_exceedance_is_the_share(client):
    dem = tilted_dem()
    members = {f"P{p}": rate for p, rate in ((2, 30.0), (10, 80.0), (50, 150.0), (100, 220.0))}
    ens = flood.ensemble(dem, members, duration=600.0, client=client)
    serial = flood.ensemble(dem, members, duration=600.0, client="serial")
    # workers run the kernels on one thread, this process on two: float32 sums differ in the last digits
    np.testing.assert_allclose(ens["max_depth"].values, serial["max_depth"].values, atol=1e-5, rtol=0)
    for name, rate in members.items():
        alone = flood.simulate(dem, rainfall=rate, duration=600.0)
        np.testing.assert_array_equal(serial["max_depth"].sel(member=name).values, alone["max_depth"].values)
    levels = WarningLevels()
    for k, thr in enumerate(levels.thresholds):
        for result in (ens, serial):
            share = (result["max_depth"].values >= thr).mean(axis=0)
            np.testing.assert_array_equal(result["exceedance"].isel(level=k).values, share)
    # heavier storms flood more
    depth_by_member = ens["max_depth"].max(dim=("y", "x")).values
    assert (np.diff(depth_by_member) > 0).all()
    assert ens.attrs["mass_error_max"] < 1e-6 and ens.rio.crs.to_epsg() == 28992


def test_scene_ensemble_blocks_buildings(tmp_path, client):
    scene = bowl_scene(tmp_path / "s.cim")
    ens = flood.ensemble(scene, {"a": 100.0, "b": 300.0}, duration=600.0, client=client)
    house = ens["max_depth"].sel(x=slice(85046, 85050), y=slice(447034, 447026))
    assert house.size and bool(np.isnan(house).all())              # the building's cells are walls
    assert float(ens["max_depth"].sel(member="b").max()) > float(ens["max_depth"].sel(member="a").max())


def test_needs_members():
    with pytest.raises(ValueError, match="at least one member"):
        flood.ensemble(tilted_dem(), {}, duration=60.0, client="serial")
