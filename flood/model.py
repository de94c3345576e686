"""The flood model: :class:`Model` (step by step, for coupling) and :func:`simulate` (a whole run).

Two schemes on the same grid, forcing, boundaries and outputs: local inertial (the default, described here) and
``scheme="fv1"``, a first-order finite-volume solver of the full shallow-water equations for fast flows (dam
breaks), described in :mod:`flood._kernels_fv1`.

Scheme: Bates et al. (2010) local inertial momentum per cell face, with de Almeida et al. (2012) weighting of the
neighbouring faces (``theta``, default 0.99; LISFLOOD-FP's default 1 is no weighting), semi-implicit Manning
friction with the cross-direction discharge averaged from the four nearest faces, flow depth at a face = higher
water surface minus higher bed, no flow below ``depth_threshold``, outflows scaled so that no cell goes negative,
and the adaptive step ``dt = min(max_dt, alpha dx / sqrt(g h_max))``. Steps are cut to land on forcing changes and
output times (the last two before such a time are made equal), so rain volumes are exact.

Numerics worth knowing: state is float32, volumes are summed in float64, and the depth update is Kahan-compensated
so that slow fills lose nothing to float32 rounding (the carry also takes what rounding the step's rain depth to
float32 left out, and the budget counts the water it still owes the cells); water-surface differences within float32 rounding of the
depths count as level (a lake at rest stays exactly at rest); the momentum update spans the mean of the last two
steps (discharges live half a step off depths). Linearised without friction (von Neumann), the 2-D scheme is
stable for ``alpha <= sqrt(theta / 2)`` (a warning says so; the grid-scale mode at wavenumbers (pi, pi) binds)
and damps that mode by ``sqrt(2 theta - 1)`` per step. With ``theta = 1`` it is not damped at all, and the
adaptive step, which follows the deepest cell, lets it grow: a deep pond that sets ``h_max`` modulates its own
step (the map from one step to the next no longer preserves phase-space volume), and with the quadratic
friction vanishing at rest nothing takes that energy out (a 1.4 m pond of the 60² urban case reached 3 m with
theta 1, where ANUGA's stays level; with a constant step of the same Courant number it stays level too). The default theta 0.99
damps it by 1 % per step, keeps alpha 0.7 inside the limit (0.7036) and changes the 500² LISFLOOD-FP agreement
by less than 0.01 mm. The local-inertial equations have no advection: flows far
above Froude 1 (dam breaks onto dry beds) are out of their reach.
"""

from __future__ import annotations

import logging
import math
import os
import time as _time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numba
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from flood import _kernels as K
from flood import _kernels_fv1 as KF
from flood.errors import FloodTypeError, FloodValueError, FloodWarning, UnstableError
from flood.forcing import (
    Inlet,
    PointInflow,
    TimeSeries,
    _series_end,
    _times_to_seconds,
    aligned_grid,
    as_inflows,
    rainfall_series,
    rate_grid,
    regrid_conservative,
    soil_model,
    to_m_per_s,
)

__all__ = ["BoundarySpec", "G", "Model", "Scheme", "simulate"]

log = logging.getLogger(__name__)

# The solver launches three short parallel regions per step. With OpenMP's default active waiting, idle worker
# threads spin between them and take the cores from the working ones (3x slower here on 2 shared cores, even
# with one thread). Passive waiting is set unless the user chose a policy; it applies when the OpenMP runtime
# starts, i.e. if no numba parallel code has run in this process before flood is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

G = 9.80665
SIDES = ("north", "east", "south", "west")
BoundarySpec = Literal["closed", "open"] | Mapping[str, Literal["closed", "open"]]
Scheme = Literal["inertial", "fv1"]
# scheme -> (solver name in the outputs, default Courant number alpha)
_SCHEMES = {"inertial": ("local inertial (flood)", 0.7),
            "fv1": ("finite volume FV1: HLL, hydrostatic reconstruction (flood)", 0.5)}
# default de Almeida weighting of the inertial scheme: damps the grid-scale mode that theta = 1 leaves neutral
# (see the module notes) while alpha 0.7 stays within its stability limit sqrt(theta / 2)
_THETA = 0.99
_SERIAL_CELLS = 20_000
_CHUNK_CELL_UPDATES = 20_000_000  # between progress reports
_BUDGET = ("outflow_volume", "infiltration_volume", "drainage_volume")


def _number(value: Any, name: str, *, low: float = 0.0, low_open: bool = True, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise FloodTypeError(f"{name}: expected a number, got {type(value).__name__}")
    v = float(value)
    bad_low = v <= low if low_open else v < low
    if not math.isfinite(v) or bad_low or v > high:
        rng = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise FloodValueError(f"{name}: must be a finite number {rng}, got {value!r}")
    return v


def _check_dem(dem: Any) -> tuple[float, np.ndarray]:
    if not isinstance(dem, xr.DataArray):
        raise FloodTypeError(
            f"dem: expected an xarray.DataArray (y, x) with coordinates, got {type(dem).__name__}; "
            "wrap an array with xr.DataArray(z, coords={'y': ..., 'x': ...}, dims=('y', 'x'))"
        )
    if dem.dims != ("y", "x"):
        raise FloodValueError(f"dem: dims must be ('y', 'x'), got {dem.dims}; use dem.transpose('y', 'x') or rename")
    if dem.sizes["y"] < 2 or dem.sizes["x"] < 2:
        raise FloodValueError(f"dem: needs at least 2 x 2 cells, got {dem.shape}")
    sizes = []
    for d in ("y", "x"):
        if d not in dem.coords:
            raise FloodValueError(f"dem: the '{d}' coordinate is missing; give cell-centre coordinates")
        c = np.asarray(dem[d].values, dtype=np.float64)
        step = np.diff(c)
        if not (np.all(step > 0) or np.all(step < 0)) or not np.allclose(step, step[0], rtol=1e-6, atol=0):
            raise FloodValueError(f"dem: the '{d}' coordinate must be regular and monotonic")
        sizes.append(abs(step[0]))
    if not math.isclose(sizes[0], sizes[1], rel_tol=1e-6):
        raise FloodValueError(
            f"dem: cells must be square, got dy={sizes[0]:g} dx={sizes[1]:g}; resample it with dem.rio.reproject"
        )
    z = np.asarray(dem.values, dtype=np.float64)
    if not np.any(np.isfinite(z)):
        raise FloodValueError("dem: every cell is NaN (no data); give a DEM with elevations")
    return float(sizes[1]), z


def _open_sides(boundary: Any, dem: xr.DataArray) -> np.ndarray:
    """Boundary spec -> uint8 flags in kernel order (first row, last column, last row, first column)."""
    if isinstance(boundary, str):
        if boundary not in ("closed", "open"):
            raise FloodValueError(f"boundary: expected 'closed', 'open' or a dict per side, got {boundary!r}")
        spec = dict.fromkeys(SIDES, boundary)
    elif isinstance(boundary, Mapping):
        unknown = set(boundary) - set(SIDES)
        if unknown:
            raise FloodValueError(f"boundary: unknown side(s) {sorted(unknown)}; use {list(SIDES)}")
        spec = dict.fromkeys(SIDES, "closed")
        for k, v in boundary.items():
            if v not in ("closed", "open"):
                raise FloodValueError(f"boundary[{k!r}]: expected 'closed' or 'open', got {v!r}")
            spec[k] = v
    else:
        raise FloodTypeError(f"boundary: expected 'closed', 'open' or a dict per side, got {type(boundary).__name__}")
    y = dem["y"].values
    x = dem["x"].values
    first_row, last_row = ("north", "south") if y[0] > y[-1] else ("south", "north")
    first_col, last_col = ("west", "east") if x[0] < x[-1] else ("east", "west")
    return np.array([spec[s] == "open" for s in (first_row, last_col, last_row, first_col)], dtype=np.uint8)


class Model:
    """A 2D flood model on a DEM, advanced step by step (the BMI-like interface): local inertial by default, or
    the finite-volume shallow-water scheme with ``scheme="fv1"``.

    Parameters are those of :func:`simulate` that describe the domain, forcing and scheme; see there. The state
    is ``h`` (depth, m) and, for ``"inertial"``, the face unit discharges ``qx``/``qy``, for ``"fv1"`` the cell
    unit discharges ``hu``/``hv`` (m²/s).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> dem = xr.DataArray(np.zeros((20, 20), np.float32),
    ...                    coords={"y": np.arange(20)[::-1] + 0.5, "x": np.arange(20) + 0.5}, dims=("y", "x"))
    >>> m = Model(dem, rainfall=36.0)
    >>> m.calc_time_step()  # dry: the maximum step
    10.0
    >>> m.run_until(60.0)
    >>> round(float(m.depth.mean()), 6)  # 36 mm/h for 60 s
    0.0006
    >>> fv = Model(dem, initial_level=0.1, scheme="fv1")
    >>> round(fv.calc_time_step(), 4)  # still water 0.1 m deep: alpha dx / sqrt(g h), alpha 0.5
    0.5049
    """

    def __init__(
        self,
        dem: xr.DataArray,
        *,
        rainfall: Any = None,
        manning: Any = 0.03,
        boundary: BoundarySpec = "closed",
        blocked: Any = None,
        initial_depth: Any = None,
        initial_level: float | None = None,
        infiltration: Any = None,
        drainage: Any = None,
        inflows: Sequence[PointInflow] | PointInflow | None = None,
        scheme: Scheme = "inertial",
        alpha: float | None = None,
        theta: float | None = None,
        max_dt: float = 10.0,
        depth_threshold: float = 0.001,
        wet_depth: float = 0.01,
        start: Any = None,
    ) -> None:
        self.dx, z = _check_dem(dem)
        self.dem = dem
        if not isinstance(scheme, str) or scheme not in _SCHEMES:
            raise FloodValueError(f"scheme: expected one of {sorted(_SCHEMES)}, got {scheme!r}")
        self.scheme = scheme
        self.alpha = _number(_SCHEMES[scheme][1] if alpha is None else alpha, "alpha", high=1.0)
        default_theta = _THETA if scheme == "inertial" else 1.0  # fv1 has no face weighting
        self.theta = _number(default_theta if theta is None else theta, "theta", low=0.0, low_open=False, high=1.0)
        self.max_dt = _number(max_dt, "max_dt")
        self.depth_threshold = _number(depth_threshold, "depth_threshold")
        self.wet_depth = _number(wet_depth, "wet_depth")
        self.start = start
        if scheme == "inertial" and self.alpha > math.sqrt(self.theta / 2.0) + 1e-9:
            warnings.warn(
                f"alpha={self.alpha:g} exceeds the 2-D stability limit sqrt(theta/2)={math.sqrt(self.theta / 2):.3f} "
                f"of the theta={self.theta:g} weighting; grid-scale oscillations may grow: lower alpha",
                FloodWarning, stacklevel=2)
        if scheme == "fv1" and self.theta != 1.0:
            warnings.warn(f"theta={self.theta:g} has no effect with scheme='fv1' (it weights the inertial scheme's "
                          "face discharges); leave it at 1", FloodWarning, stacklevel=2)
        ny, nx = z.shape
        self.shape = (ny, nx)
        wall = ~np.isfinite(z)
        if blocked is not None:
            b = aligned_grid(blocked, dem, "blocked")
            wall |= np.nan_to_num(b, nan=0.0) != 0
        if wall.all():
            raise FloodValueError("blocked: every cell is blocked or no data; nothing can flood")
        self.wall = wall
        self.z = z.astype(np.float32)
        self.z[wall] = K.WALL_Z
        self.active = (~wall).astype(np.float32)
        self.n_active = int((~wall).sum())
        self.area = self.dx * self.dx

        # friction
        if isinstance(manning, int | float | np.integer | np.floating) and not isinstance(manning, bool):
            self.n2 = np.full(self.shape, _number(manning, "manning", low=0.0, low_open=False) ** 2, np.float32)
        else:
            n = aligned_grid(manning, dem, "manning")
            bad = ~wall & ~(np.isfinite(n) & (n >= 0))
            if bad.any():
                raise FloodValueError(f"manning: {int(bad.sum())} active cells have no finite value >= 0")
            n[wall] = 0.03
            self.n2 = (n * n).astype(np.float32)
            del n

        # boundaries
        self.open_sides = _open_sides(boundary, dem)

        # initial water
        h0 = np.zeros(self.shape)
        if initial_level is not None:
            lvl = _number(initial_level, "initial_level", low=-math.inf)
            h0 = np.maximum(lvl - np.where(wall, np.inf, z), 0.0)
        if initial_depth is not None:
            if isinstance(initial_depth, int | float | np.integer | np.floating) and not isinstance(initial_depth, bool):
                h0 += _number(initial_depth, "initial_depth", low=0.0, low_open=False)
            else:
                d = np.nan_to_num(aligned_grid(initial_depth, dem, "initial_depth"), nan=0.0)
                if np.any(d < 0):
                    raise FloodValueError("initial_depth: depths must be >= 0")
                h0 += d
        h0[wall] = 0.0
        self.h = h0.astype(np.float32)
        del h0, z  # the float64 set-up copies are not needed any more

        # forcing
        self._rain_grid_series: TimeSeries | None = None
        self._rain_series: TimeSeries | None = None
        self._rain_frame_sums = None
        if rainfall is not None:
            if isinstance(rainfall, xr.DataArray) and rainfall.ndim == 3:
                grids = regrid_conservative(rainfall, dem, name="rainfall")
                grids *= to_m_per_s(rainfall.attrs.get("units"), "rainfall")
                if not np.all(np.isfinite(grids)) or np.any(grids < 0):
                    raise FloodValueError("rainfall: rates must be finite and >= 0")
                grids[:, wall] = 0.0
                times, _ = _times_to_seconds(rainfall["time"].values, start, "rainfall")
                if np.any(np.diff(times) <= 0):
                    raise FloodValueError("rainfall: 'time' must increase strictly; sort it (rain.sortby('time'))")
                grids = grids.astype(np.float32)  # what the kernels rain, so the budget books it
                self._rain_grid_series = TimeSeries(times, grids, _series_end(times))
                self._rain_frame_sums = grids.sum(axis=(1, 2), dtype=np.float64) * self.area
            else:
                self._rain_series = rainfall_series(rainfall, start=start)
        self._rain_dummy = np.zeros((1, 1), np.float32)
        self._soil = soil_model(infiltration, dem, wall)  # Green-Ampt or SCS-CN: state-based losses
        self.infiltration_rate, inf_grid = rate_grid(None if self._soil else infiltration, dem, "infiltration")
        if isinstance(drainage, Inlet) or (isinstance(drainage, list | tuple) and drainage
                                           and all(isinstance(d, Inlet) for d in drainage)):
            self.drainage_rate, drn_grid = 0.0, self._inlet_grid([drainage] if isinstance(drainage, Inlet) else drainage)
        else:
            self.drainage_rate, drn_grid = rate_grid(drainage, dem, "drainage")
        if inf_grid is not None or drn_grid is not None:
            self._loss_mode = 2
            self._inf_grid = inf_grid if inf_grid is not None else np.full(self.shape, self.infiltration_rate, np.float32)
            self._drn_grid = drn_grid if drn_grid is not None else np.full(self.shape, self.drainage_rate, np.float32)
        else:
            self._loss_mode = 1 if (self.infiltration_rate > 0 or self.drainage_rate > 0) else 0
            self._inf_grid = self._drn_grid = self._rain_dummy
        self.inflows = as_inflows(inflows)
        self._inflow_cells = []
        self._inflow_series = []
        for i, p in enumerate(self.inflows):
            rows, cols = self._cells_near(p.x, p.y, p.radius, f"inflows[{i}]")
            self._inflow_cells.append((rows, cols))
            self._inflow_series.append(p.series(start))
        self._src_rows = np.concatenate([r for r, _ in self._inflow_cells]) if self.inflows else np.zeros(0, np.int64)
        self._src_cols = np.concatenate([c for _, c in self._inflow_cells]) if self.inflows else np.zeros(0, np.int64)
        self._src_depth = np.zeros(self._src_rows.size, np.float64)

        # state buffers (allocated once)
        if scheme == "fv1":  # cell-centred unit discharges and velocities, four fluxes per face
            self.hu = np.zeros(self.shape, np.float32)
            self.hv = np.zeros(self.shape, np.float32)
            self._u = np.zeros(self.shape, np.float32)
            self._v = np.zeros(self.shape, np.float32)
            self._fx = np.zeros((4, ny, nx + 1), np.float32)
            self._fy = np.zeros((4, ny + 1, nx), np.float32)
            self._row_smax = np.zeros(ny, np.float32)
        else:  # face discharges (and their next values)
            self.qx = np.zeros((ny, nx + 1), np.float32)
            self.qy = np.zeros((ny + 1, nx), np.float32)
            self._qx_new = np.zeros_like(self.qx)
            self._qy_new = np.zeros_like(self.qy)
        self._f = np.ones((ny + 2, nx + 2), np.float32)  # outflow limiter, padded
        self._carry = np.zeros(self.shape, np.float32)
        self._stats = np.zeros(8, np.float64)
        self._dt_prev = 0.0
        self._row_hmax = np.zeros(ny, np.float32)
        self._row_vol = np.zeros((ny, 3), np.float64)
        wet0 = self.h > self.wet_depth
        self.max_depth = np.where(self.h > self.depth_threshold, self.h, 0).astype(np.float32)
        self.time_of_max = np.where(self.h > self.depth_threshold, 0.0, np.nan).astype(np.float32)
        self._max_speed2 = np.zeros(self.shape, np.float32)
        self._arrival = np.where(wet0, 0.0, -1.0).astype(np.float32)
        self._wet_since = np.where(wet0, 0.0, -1.0).astype(np.float32)
        self._duration = np.zeros(self.shape, np.float32)

        self.time = 0.0
        self.steps = 0
        self.dt_min = math.inf
        self.dt_max = 0.0
        self.loop_seconds = 0.0
        self._hmax = float(self.h.max())
        self._smax = math.sqrt(G * self._hmax)  # fv1: the fastest wave (the water starts at rest)
        self.initial_volume = K.volume(self.h, self.active, self.dx)
        self.rain_volume = 0.0
        self.inflow_volume = 0.0
        self._events = self._forcing_breakpoints()

    # -- set-up helpers -------------------------------------------------------------------------------------
    def _cells_near(self, x: float, y: float, radius: float, name: str) -> tuple[np.ndarray, np.ndarray]:
        xs = np.asarray(self.dem["x"].values, dtype=np.float64)
        ys = np.asarray(self.dem["y"].values, dtype=np.float64)
        half = self.dx / 2
        if not (min(xs) - half <= x <= max(xs) + half and min(ys) - half <= y <= max(ys) + half):
            raise FloodValueError(f"{name}: point ({x:g}, {y:g}) lies outside the DEM; give coordinates in its CRS")
        dist2 = (ys[:, None] - y) ** 2 + (xs[None, :] - x) ** 2
        dist2 = np.where(self.wall, np.inf, dist2)
        sel = dist2 <= radius * radius
        if not sel.any():
            k = int(np.argmin(dist2))
            if not np.isfinite(dist2.flat[k]):
                raise FloodValueError(f"{name}: no active cell near ({x:g}, {y:g})")
            sel = np.zeros(self.shape, bool)
            sel.flat[k] = True
        rows, cols = np.nonzero(sel)
        return rows.astype(np.int64), cols.astype(np.int64)

    def _inlet_grid(self, inlets: Sequence[Inlet]) -> np.ndarray:
        """Inlet capacities (m³/s) -> drainage rates (m/s) on their cells."""
        grid = np.zeros(self.shape, np.float64)
        for i, inlet in enumerate(inlets):
            rows, cols = self._cells_near(inlet.x, inlet.y, inlet.radius, f"drainage[{i}]")
            np.add.at(grid, (rows, cols), inlet.capacity / (rows.size * self.area))
        return grid.astype(np.float32)

    def _forcing_breakpoints(self) -> np.ndarray:
        pts = [np.zeros(0)]
        for s in (self._rain_series, self._rain_grid_series, *self._inflow_series):
            if s is not None:
                pts.append(s.breakpoints())
        return np.unique(np.concatenate(pts))

    def cell_index(self, x: float, y: float, name: str = "point") -> tuple[int, int]:
        """Row and column of the cell holding ``(x, y)`` (DEM CRS)."""
        rows, cols = self._cells_near(x, y, 0.0, name)
        return int(rows[0]), int(cols[0])

    # -- stepping -------------------------------------------------------------------------------------------
    def calc_time_step(self) -> float:
        """The stable step now, cut at the next forcing change: ``min(max_dt, alpha dx / sqrt(g h_max))``
        (inertial) or ``min(max_dt, alpha dx / max(max(|u|, |v|) + sqrt(g h)))`` (fv1)."""
        dt = self.max_dt
        speed = self._smax if self.scheme == "fv1" else math.sqrt(G * self._hmax)
        if speed > 0:
            dt = min(dt, self.alpha * self.dx / speed)
        k = np.searchsorted(self._events, self.time * (1 + 1e-12) + 1e-9, side="right")
        if k < self._events.size:
            dt = min(dt, self._events[k] - self.time)
        return float(dt)

    def run_one_step(self, dt: float | None = None) -> float:
        """Advance one step of ``dt`` seconds (the stable step when None); returns the step taken."""
        if dt is None:
            dt = self.calc_time_step()
        dt = _number(dt, "dt")
        t0 = _time.perf_counter()
        self._advance(self.time + dt, alpha=math.inf, max_dt=dt)  # exactly one step of dt
        self.dt_min = min(self.dt_min, dt)
        self.dt_max = max(self.dt_max, dt)
        self.loop_seconds += _time.perf_counter() - t0
        return dt

    def _segments(self, t_end: float) -> np.ndarray:
        """Times at which forcing changes between now and ``t_end``, and ``t_end``."""
        tol = 1e-9 * max(1.0, t_end)
        inner = self._events[(self._events > self.time + tol) & (self._events < t_end - tol)]
        return np.append(inner, t_end)

    def run_until(self, t_end: float, progress: Callable[[float], None] | None = None) -> None:
        """Advance with stable steps until ``t_end`` (s), landing on it exactly (the loop runs in numba).

        ``progress(t)`` is called about every 2e7 cell updates (a few times a second) and at ``t_end``;
        the steps taken do not depend on it.
        """
        t_end = float(t_end)
        if t_end <= self.time + 1e-9 * max(1.0, t_end):
            return
        t0 = _time.perf_counter()
        threads = numba.get_num_threads()
        if self.h.size < _SERIAL_CELLS:
            numba.set_num_threads(1)  # launching threads costs more than it saves on small grids
        chunk = max(10, _CHUNK_CELL_UPDATES // self.h.size) if progress is not None else 2**62
        try:
            for seg_end in self._segments(t_end):
                seg_end = float(seg_end)
                while self.time < seg_end:
                    self._advance(seg_end, max_steps=chunk)
                    if not math.isfinite(self._hmax) or self._hmax > 1e5:
                        raise UnstableError(
                            f"the solution became unstable before t={self.time:g} s (max depth {self._hmax:g} m); "
                            f"lower alpha (now {self.alpha:g}, e.g. {0.6 * self.alpha:.2g}) or max_dt, or raise manning"
                        )
                    if progress is not None:
                        progress(self.time)
        finally:
            numba.set_num_threads(threads)
            self.loop_seconds += _time.perf_counter() - t0

    def _advance(self, t1: float, alpha: float | None = None, max_dt: float | None = None,
                 max_steps: int = 2**62) -> None:
        """Steps from now towards ``t1`` (reached unless ``max_steps`` stops it first) in one numba call, with
        the forcing of the current time (constant until ``t1``)."""
        t = self.time
        rain = 0.0
        rain_grid = self._rain_dummy
        rain_rate = 0.0  # m³/s over the grid
        if self._rain_series is not None:
            rain = self._rain_series.rate_at(t)
            rain_rate = rain * self.area * self.n_active
        elif self._rain_grid_series is not None:
            k = self._rain_grid_series.index(t)
            if k >= 0:
                rain_grid = self._rain_grid_series.values[k]
                rain_rate = float(self._rain_frame_sums[k])
        i0 = 0
        for (rows, _), s in zip(self._inflow_cells, self._inflow_series, strict=True):
            self._src_depth[i0:i0 + rows.size] = s.rate_at(t) / (rows.size * self.area)
            i0 += rows.size
        st = self._stats
        alpha = self.alpha if alpha is None else alpha
        max_dt = self.max_dt if max_dt is None else max_dt
        loss = (self.infiltration_rate, self.drainage_rate, self._inf_grid, self._drn_grid, self._loss_mode)
        sources = (self._src_rows, self._src_cols, self._src_depth)
        outputs = (self.max_depth, self.time_of_max, self._max_speed2, self._arrival, self._wet_since, self._duration)
        if self.scheme == "fv1":
            KF.advance(self.z, self.h, self._carry, self.hu, self.hv, self._u, self._v, self._fx, self._fy, self._f,
                       self.n2, self.active, self.open_sides, rain, rain_grid, *loss, *sources, *outputs,
                       self._row_hmax, self._row_smax, self._row_vol, t, t1, self._smax, self.dx, G, alpha, max_dt,
                       self.depth_threshold, self.wet_depth, max_steps, st, soil=self._soil)
            self._smax = float(st[7])
        else:
            K.advance(self.z, self.h, self._carry, self.n2, self.active, self.qx, self.qy, self._qx_new,
                      self._qy_new, self._f, self.open_sides, rain, rain_grid, *loss, *sources, *outputs,
                      self._row_hmax, self._row_vol, t, t1, self._hmax, self.dx, G, alpha, max_dt, self.theta,
                      self.depth_threshold, self.wet_depth, self._dt_prev, max_steps, st, soil=self._soil)
        self.time = t1 if st[0] >= t1 - 1e-9 * max(1.0, t1) else float(st[0])
        self.rain_volume += rain_rate * (self.time - t)
        self.steps += int(st[1])
        self.dt_min = min(self.dt_min, float(st[2]))
        self.dt_max = max(self.dt_max, float(st[3]))
        self._hmax = float(st[4])
        self._dt_prev = float(st[6])
        self.inflow_volume += float(st[5]) * self.area

    # -- state and results ----------------------------------------------------------------------------------
    def _grid(self, values: np.ndarray, name: str, attrs: dict) -> xr.DataArray:
        vals = np.where(self.wall, np.nan, values).astype(np.float32)
        da = xr.DataArray(vals, coords={"y": self.dem["y"], "x": self.dem["x"]}, dims=("y", "x"), name=name,
                          attrs=attrs)
        return da

    @property
    def depth(self) -> xr.DataArray:
        """Water depth now (m), NaN on walls (a copy)."""
        return self._grid(self.h, "depth", {"units": "m", "long_name": "water depth"})

    @property
    def max_speed(self) -> np.ndarray:
        """Largest flow speed so far (m/s) per cell, where deeper than ``wet_depth``."""
        return np.sqrt(self._max_speed2)

    @property
    def volume(self) -> float:
        """Water volume on the grid now (m³)."""
        return K.volume(self.h, self.active, self.dx)

    def budget(self) -> dict[str, float]:
        """The volume budget so far (m³) and the relative mass error."""
        sums = self._row_vol.sum(axis=0)
        b = dict(zip(_BUDGET, (float(v) for v in sums), strict=True))
        # the Kahan carry holds water owed to cells below their float32 resolution (up to half a unit in the last
        # place of each depth, ~3e-8 relative): it belongs to the final volume
        carried = K.volume(self._carry, self.active, self.dx)
        b.update(initial_volume=self.initial_volume, rain_volume=self.rain_volume, inflow_volume=self.inflow_volume,
                 final_volume=self.volume + carried)
        inputs = b["initial_volume"] + b["rain_volume"] + b["inflow_volume"]
        outputs = b["outflow_volume"] + b["infiltration_volume"] + b["drainage_volume"]
        err = b["final_volume"] - (inputs - outputs)
        b["mass_error"] = err / inputs if inputs > 0 else 0.0
        return {k: float(v) for k, v in b.items()}

    def result_maps(self) -> dict[str, xr.DataArray]:
        """Running maps so far: max_depth, time_of_max, max_speed, arrival_time, duration_wet."""
        dur = self._duration.copy()
        K.close_wet_durations(self._wet_since, self.time, dur)
        arrival = np.where(self._arrival < 0, np.nan, self._arrival)
        return {
            "max_depth": self._grid(self.max_depth, "max_depth", {
                "units": "m", "long_name": "maximum water depth",
                "description": f"maximum over all steps of depths above {self.depth_threshold:g} m (0 elsewhere)"}),
            "time_of_max": self._grid(self.time_of_max, "time_of_max", {
                "units": "s", "long_name": "time of maximum depth (s from the start)"}),
            "max_speed": self._grid(self.max_speed, "max_speed", {
                "units": "m s-1", "long_name": f"maximum flow speed where deeper than {self.wet_depth:g} m"}),
            "arrival_time": self._grid(arrival, "arrival_time", {
                "units": "s", "long_name": f"first time deeper than {self.wet_depth:g} m (NaN: never)"}),
            "duration_wet": self._grid(dur, "duration_wet", {
                "units": "s", "long_name": f"time deeper than {self.wet_depth:g} m"}),
        }


def _points(points: Any) -> dict[str, tuple[float, float]]:
    if points is None:
        return {}
    if isinstance(points, Mapping):
        out = {}
        for k, v in points.items():
            try:
                x, y = (float(v[0]), float(v[1]))
            except (TypeError, ValueError, IndexError) as exc:
                raise FloodTypeError(f"points[{k!r}]: expected an (x, y) pair, got {v!r}") from exc
            out[str(k)] = (x, y)
        return out
    geom = getattr(points, "geometry", None)
    if geom is not None:
        if not all(g is not None and g.geom_type == "Point" for g in geom):
            raise FloodValueError("points: every geometry must be a Point")
        names = points["name"] if "name" in getattr(points, "columns", ()) else points.index
        return {str(n): (float(g.x), float(g.y)) for n, g in zip(names, geom, strict=True)}
    raise FloodTypeError(f"points: expected a dict name -> (x, y) or a GeoDataFrame of points, got {type(points).__name__}")


def _sample_times(duration: float, interval: float) -> np.ndarray:
    n = math.floor(duration / interval + 1e-9)
    t = np.arange(n + 1) * interval
    if duration - t[-1] > 1e-9 * duration:
        t = np.append(t, duration)
    return t


def simulate(
    dem: xr.DataArray,
    *,
    rainfall: Any = None,
    duration: float,
    manning: Any = 0.03,
    boundary: BoundarySpec = "closed",
    blocked: Any = None,
    initial_depth: Any = None,
    initial_level: float | None = None,
    infiltration: Any = None,
    drainage: Any = None,
    inflows: Sequence[PointInflow] | PointInflow | None = None,
    points: Any = None,
    output_interval: float | None = None,
    point_interval: float | None = None,
    scheme: Scheme = "inertial",
    alpha: float | None = None,
    theta: float | None = None,
    max_dt: float = 10.0,
    depth_threshold: float = 0.001,
    wet_depth: float = 0.01,
    start: Any = None,
    progress: Callable[[float, float], None] | None = None,
) -> xr.Dataset:
    """Run the 2D flood model (local inertial, or ``scheme="fv1"``) over a DEM; return depth maps, maxima and the
    volume budget.

    Parameters
    ----------
    dem : xarray.DataArray
        Bed elevation (m) on ``(y, x)`` with regular, square cells; NaN cells are walls. Its CRS (rioxarray)
        is kept on the outputs.
    rainfall : number, DataArray or None
        Rain rate in mm/h (or the units in ``attrs['units']``): a number for the whole run, a 1-D DataArray over
        ``time`` (uniform, step function: each time starts an interval; the last lasts one typical spacing), or a
        ``(time, y, x)`` DataArray on any grid with a CRS, regridded once to the DEM, area-weighted.
    duration : float
        Simulated time (s).
    manning : number or grid
        Manning's n (s m^-1/3), a number or a grid aligned with the DEM.
    boundary : {"closed", "open"} or dict
        Domain edges: closed (no flow), open (free outflow driven by the local outward surface slope), or a dict
        per side ``{"north": "open", ...}`` (missing sides are closed).
    blocked : bool grid, optional
        Cells that water cannot enter (buildings); like NaN cells they are walls.
    initial_depth : number or grid, optional
        Water depth at the start (m), added to what ``initial_level`` (a water level, m) puts in every cell below
        it (lakes, ponds; hot starts from a previous run's depth).
    infiltration, drainage : number or grid, optional
        Loss rates in mm/h (constant or per cell), taken only from water present (e.g. sewer capacity);
        ``infiltration`` may also be a soil model with state, :class:`flood.GreenAmpt`, :class:`flood.Horton`
        or :class:`flood.SCSCurveNumber` (numbers or grids per cell; booked in ``infiltration_volume``);
        ``drainage`` may also be a list of :class:`flood.forcing.Inlet` (points with a capacity in m³/s).
    inflows : list of PointInflow, optional
        Discharges (m³/s) entering at points.
    scheme : {"inertial", "fv1"}
        ``"inertial"`` (default): the local-inertial scheme of LISFLOOD-FP's ACC solver (Bates et al. 2010; see
        the module notes), the right tool for pluvial and slow fluvial flooding (Froude number well below 1),
        the cheapest per cell update (~7 ns per cell update on one core of the benchmark machine) and with the
        longest steps. ``"fv1"``: the full shallow-water equations, advection included, by a first-order Godunov
        finite-volume scheme (as LISFLOOD-FP 8's FV1): HLL fluxes, the hydrostatic reconstruction of Audusse et
        al. (2004) (well balanced: a lake at rest stays at rest over any bed, with wet/dry shorelines),
        semi-implicit Manning friction, ``dt = alpha dx / max(|u| + sqrt(g h))``. Use it for dam breaks, levee
        breaches, steep streets and other fast, supercritical flows, which local inertial cannot represent (its
        Ritter dam-break front runs at ~40 % of the true speed; fv1's within 5 %). It costs about 3x the CPU
        per cell update and takes ~1.5x the steps (~5x per run), and its first-order upwinding over-conveys thin sheet flow
        on coarse cells (rain on a 0.2 % slope: depths 17 % low at 5 m cells, 1 % at 1.25 m), which is why
        local inertial stays the default for rain-on-grid. Forcing, boundaries, outputs and budget are the same.
    points : dict or GeoDataFrame, optional
        Named points (DEM CRS) where depth hydrographs are recorded every ``point_interval`` (default 60 s).
    output_interval : float, optional
        Seconds between depth maps (default ``duration / 12``); maps are also kept at 0 and at the end.
    alpha, theta, max_dt, depth_threshold : float
        Courant factor of the adaptive step (default 0.7 for ``"inertial"``, 0.5 for ``"fv1"``, its 2-D stability
        limit), de Almeida weighting (inertial only; default 0.99, 1 = none: see the module notes for why not 1;
        ``alpha <= sqrt(theta / 2)``), largest step (s), and the depth (m) below which a face carries no flow
        (LISFLOOD-FP: 0.7, 1, 10 s, 0.001 m; with ``"fv1"`` water of any depth flows and
        ``depth_threshold`` only bounds ``max_depth`` and ``time_of_max``).
    wet_depth : float
        Depth (m) for ``arrival_time``, ``duration_wet`` and ``max_speed``.
    start : datetime-like, optional
        What datetimes in the forcing count from (default: the first rainfall/inflow datetime).
    progress : callable, optional
        ``progress(t, duration)``, called about every 2e7 cell updates (a few times a second) and at every output
        or point time; it does not change the steps taken.

    Returns
    -------
    xarray.Dataset
        ``max_depth``, ``time_of_max``, ``max_speed``, ``arrival_time``, ``duration_wet`` (y, x);
        ``depth`` (time, y, x); ``point_depth`` (point_time, point) when ``points`` is given. ``attrs`` hold the
        volumes (m³) ``rain_volume``, ``inflow_volume``, ``infiltration_volume``, ``drainage_volume``,
        ``outflow_volume``, ``initial_volume``, ``final_volume``, the relative ``mass_error``, ``steps``,
        ``dt_min``, ``dt_max``, ``wall_seconds`` and ``loop_seconds``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> y, x = np.arange(30)[::-1] * 2.0 + 1.0, np.arange(40) * 2.0 + 1.0
    >>> dem = xr.DataArray(0.01 * x[None, :] + 0 * y[:, None], coords={"y": y, "x": x}, dims=("y", "x"))
    >>> ds = simulate(dem, rainfall=50.0, duration=600.0)
    >>> round(ds.attrs["rain_volume"], 9)  # 50 mm/h over 4800 m² for 10 min
    40.0
    >>> abs(ds.attrs["mass_error"]) < 1e-6
    True
    >>> bool(ds.max_depth[:, -1].mean() < ds.max_depth[:, 0].mean())  # water collects downhill (west)
    True
    """
    wall0 = _time.perf_counter()
    duration = _number(duration, "duration")
    model = Model(dem, rainfall=rainfall, manning=manning, boundary=boundary, blocked=blocked,
                  initial_depth=initial_depth, initial_level=initial_level, infiltration=infiltration,
                  drainage=drainage, inflows=inflows, scheme=scheme, alpha=alpha, theta=theta, max_dt=max_dt,
                  depth_threshold=depth_threshold, wet_depth=wet_depth, start=start)
    out_dt = duration / 12 if output_interval is None else _number(output_interval, "output_interval")
    out_times = _sample_times(duration, min(out_dt, duration))
    pts = _points(points)
    pt_cells = {name: model.cell_index(x, y, f"points[{name!r}]") for name, (x, y) in pts.items()}
    pt_dt = min(60.0, duration) if point_interval is None else _number(point_interval, "point_interval")
    pt_times = _sample_times(duration, min(pt_dt, duration)) if pts else np.zeros(0)
    samples = np.unique(np.concatenate([out_times, pt_times]))
    frames = np.empty((out_times.size, *model.shape), np.float32)
    pdepth = np.empty((pt_times.size, len(pts)), np.float32)
    prow = np.array([rc[0] for rc in pt_cells.values()], dtype=np.int64)
    pcol = np.array([rc[1] for rc in pt_cells.values()], dtype=np.int64)
    io = ip = 0
    report = None if progress is None else (lambda t: progress(float(t), duration))
    for ts in samples:
        model.run_until(ts, report)
        if io < out_times.size and math.isclose(ts, out_times[io], rel_tol=1e-12, abs_tol=1e-9):
            np.copyto(frames[io], model.h)
            frames[io][model.wall] = np.nan
            io += 1
        if ip < pt_times.size and math.isclose(ts, pt_times[ip], rel_tol=1e-12, abs_tol=1e-9):
            pdepth[ip] = model.h[prow, pcol]
            ip += 1

    maps = model.result_maps()
    data = dict(maps)
    data["depth"] = xr.DataArray(frames, coords={"time": out_times, "y": dem["y"], "x": dem["x"]},
                                 dims=("time", "y", "x"), attrs={"units": "m", "long_name": "water depth"})
    coords: dict[str, Any] = {}
    if pts:
        names = list(pts)
        data["point_depth"] = xr.DataArray(pdepth, dims=("point_time", "point"),
                                           attrs={"units": "m", "long_name": "water depth at named points"})
        coords.update(point=names, point_time=pt_times,
                      point_x=("point", [pts[n][0] for n in names]), point_y=("point", [pts[n][1] for n in names]))
    ds = xr.Dataset(data, coords=coords)
    ds["time"].attrs["units"] = "s"
    if "point_time" in ds.coords:
        ds["point_time"].attrs["units"] = "s"
    if dem.rio.crs is not None:
        ds = ds.rio.write_crs(dem.rio.crs)
    budget = model.budget()
    ds.attrs.update(budget)
    ds.attrs.update(
        steps=model.steps, dt_min=model.dt_min, dt_max=model.dt_max, duration=duration,
        cells=int(np.prod(model.shape)), alpha=model.alpha, theta=model.theta, max_dt=model.max_dt,
        depth_threshold=model.depth_threshold, wet_depth=model.wet_depth, solver=_SCHEMES[model.scheme][0],
        scheme=model.scheme,
        loop_seconds=model.loop_seconds, wall_seconds=_time.perf_counter() - wall0,
    )
    log.debug("flood.simulate: %d steps, mass error %.2e", model.steps, budget["mass_error"])
    return ds
