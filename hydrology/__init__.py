"""hydrology: terrain analysis and rainfall-runoff on xarray grids (see DESIGN.md).

Imports nothing else of the project. Numba kernels live in private ``_kernels*`` modules.

Memory: fill + D8 + accumulation of 10^8 cells (a float32 DEM of 10,000²) peaks at 1.7 GB, about 17 bytes per
cell with the DEM and the float64 accumulation (benchmarks/RESULTS.md); each function's docstring gives its
working memory per cell.
"""

from __future__ import annotations

import logging

from hydrology.breaching import breach_depressions
from hydrology.errors import CRSError, FlowDirectionError, GridError, HydrologyError, ParameterError
from hydrology.network import (
    flow_accumulation_mfd,
    flow_direction_mfd,
    hand,
    slope,
    snap_outlets,
    stream_lines,
    streams,
    watersheds,
)
from hydrology.rainfall import gauges_to_grid, mean_field_bias, merge_radar_gauges
from hydrology.routing import flow_length, time_area_hydrograph
from hydrology.runoff import (
    NRCS_DIMENSIONLESS_UH,
    TR55_CURVE_NUMBERS,
    amc_adjust,
    curve_number_grid,
    green_ampt_cumulative,
    green_ampt_rate,
    horton_cumulative,
    horton_rate,
    nrcs_unit_hydrograph,
    rational_peak,
    scs_runoff,
)
from hydrology.storms import (
    IDF,
    ChineseStormFormula,
    alternating_block,
    chicago_hyetograph,
    chinese_storm_formula,
    hyetograph,
    sewer_capacity,
)
from hydrology.terrain import D8_CODES, fill_depressions, flow_accumulation, flow_direction

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "D8_CODES",
    "IDF",
    "NRCS_DIMENSIONLESS_UH",
    "TR55_CURVE_NUMBERS",
    "CRSError",
    "ChineseStormFormula",
    "FlowDirectionError",
    "GridError",
    "HydrologyError",
    "ParameterError",
    "alternating_block",
    "amc_adjust",
    "breach_depressions",
    "chicago_hyetograph",
    "chinese_storm_formula",
    "curve_number_grid",
    "fill_depressions",
    "flow_accumulation",
    "flow_accumulation_mfd",
    "flow_direction",
    "flow_direction_mfd",
    "flow_length",
    "gauges_to_grid",
    "green_ampt_cumulative",
    "green_ampt_rate",
    "hand",
    "horton_cumulative",
    "horton_rate",
    "hyetograph",
    "mean_field_bias",
    "merge_radar_gauges",
    "nrcs_unit_hydrograph",
    "rational_peak",
    "scs_runoff",
    "sewer_capacity",
    "slope",
    "snap_outlets",
    "stream_lines",
    "streams",
    "time_area_hydrograph",
    "watersheds",
]
