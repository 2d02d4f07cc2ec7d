"""The drillhole tables that flow between stages (typed containers, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Drillholes:
    """Validated drillhole tables, canonical column names, units of the data.

    collars : ``hole_id, x, y, z, depth`` (+ ``_file, _line``); ``depth`` NaN when not given.
    surveys : ``hole_id, depth, azimuth, dip`` with dip **negative down** whatever the file
        used (+ ``_file, _line``), sorted by hole and depth.
    assays : ``hole_id, from, to, tranche, <grades>`` (+ ``_file, _line``), sorted by hole and
        from; grades float with NaN = not sampled.
    zones : ``hole_id, from, to, zone`` (+ ``_file, _line``) or ``None``.
    grades : grade column names, lower case, in config order.
    """

    collars: pd.DataFrame
    surveys: pd.DataFrame
    assays: pd.DataFrame
    zones: pd.DataFrame | None
    grades: tuple[str, ...]
