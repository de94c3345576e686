"""Ensembles: many rainfall members through the solver in parallel on Dask, summarised as exceedance probabilities.

Members are rainfall inputs by name (scaled radar, design storms of several return periods, nowcast members);
each runs `flood.simulate` on a worker, and only its maximum depth comes back. With a scene, the terrain,
buildings and roughness come from it as in `flood.forecast`.

>>> import numpy as np, rioxarray, xarray as xr
>>> y, x = np.arange(10)[::-1] * 2.0 + 1.0, np.arange(10) * 2.0 + 1.0
>>> dem = xr.DataArray(np.zeros((10, 10)), coords={"y": y, "x": x}, dims=("y", "x")).rio.write_crs("EPSG:28992")
>>> ens = ensemble(dem, {"light": 20.0, "heavy": 600.0}, duration=900.0, client="serial")
>>> ens["exceedance"].sel(level="blue").values.mean()   # 600 mm/h for 15 min puts 0.15 m everywhere
np.float64(0.5)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from flood.levels import WarningLevels
from flood.model import simulate

__all__ = ["ensemble"]


def _member(dem: xr.DataArray, rainfall: Any, kwargs: dict) -> tuple[np.ndarray, dict]:
    """One member on a worker: its maximum depth and budget (small to send back)."""
    ds = simulate(dem, rainfall=rainfall, **kwargs)
    keep = ("rain_volume", "final_volume", "outflow_volume", "mass_error", "steps", "wall_seconds")
    return ds["max_depth"].to_numpy().astype(np.float32), {k: float(ds.attrs[k]) for k in keep}


def ensemble(source: Any, members: Mapping[str, Any], *, duration: float, client: Any = None,
             levels: WarningLevels | None = None, resolution: float | None = None, **simulate_kw: Any) -> xr.Dataset:
    """Run every rainfall member and return ``max_depth(member, y, x)`` and ``exceedance(level, y, x)``.

    ``source`` is a DEM (`xarray.DataArray` with a CRS; ``simulate_kw`` go to `flood.simulate`) or a
    `cim.Scene` (terrain at ``resolution``, blocked buildings and roughness taken from it). ``client`` is a
    ``distributed.Client``; None starts a LocalCluster of 2 single-threaded worker processes for the call;
    ``"serial"`` runs in this process (for small cases and doctests).
    """
    if not members:
        from flood.errors import FloodValueError

        raise FloodValueError("ensemble needs at least one member, e.g. {'P10': rain10, 'P100': rain100}")
    levels = levels or WarningLevels()
    dem, kwargs = _inputs(source, resolution, simulate_kw)
    kwargs["duration"] = float(duration)
    names = list(members)
    if client == "serial":
        results = [_member(dem, members[n], kwargs) for n in names]
    else:
        results = _run_dask(client, dem, [members[n] for n in names], kwargs)
    stack = np.stack([r[0] for r in results])
    thresholds = np.asarray(levels.thresholds, np.float32)
    exceed = (stack[None, :, :, :] >= thresholds[:, None, None, None]).mean(axis=1)
    ds = xr.Dataset(
        {"max_depth": (("member", "y", "x"), stack, {"units": "m"}),
         "exceedance": (("level", "y", "x"), exceed, {"units": "1", "long_name": "share of members at or above"})},
        coords={"member": names, "level": list(levels.names), "threshold": ("level", list(levels.thresholds)),
                "y": dem["y"], "x": dem["x"]})
    ds.attrs["members"] = len(names)
    ds.attrs["mass_error_max"] = max(abs(r[1]["mass_error"]) for r in results)
    ds["budget"] = (("member", "quantity"), np.array([[r[1][k] for k in sorted(r[1])] for r in results]))
    ds = ds.assign_coords(quantity=sorted(results[0][1]))
    return ds.rio.write_crs(dem.rio.crs) if dem.rio.crs is not None else ds


def _run_dask(client: Any, dem: xr.DataArray, rains: list, kwargs: dict) -> list:
    from distributed import Client, LocalCluster

    own = None
    if client is None:
        own = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                           dashboard_address=None, host="127.0.0.1")
        client = Client(own)
    try:
        dem_f = client.scatter(dem, broadcast=True)
        futures = [client.submit(_member, dem_f, rain, kwargs, pure=False) for rain in rains]
        return client.gather(futures)
    finally:
        if own is not None:
            client.close()
            own.close()


def _inputs(source: Any, resolution: float | None, simulate_kw: dict) -> tuple[xr.DataArray, dict]:
    if isinstance(source, xr.DataArray):
        return source, dict(simulate_kw)
    from flood.forecasting import _burn, _layers_of, roughness, terrain

    dem = terrain(source, resolution=resolution)
    kw = {"manning": roughness(source, dem), **simulate_kw}
    buildings = _layers_of(source, "buildings", dem)
    if len(buildings):
        kw.setdefault("blocked", _burn(buildings, dem))
    return dem, kw
