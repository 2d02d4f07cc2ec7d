"""Experimental variograms in 3D: directional (GSLIB ``gamv`` style), omnidirectional, down-hole.

Definitions (every number in the output follows these; the tests check them against a plain
pair loop)
----------------------------------------------------------------------------------------------
* Each unordered pair of samples ``(i, j)`` is visited once, with separation ``d = x_j - x_i``
  and distance ``h = |d|``. Pairs closer than ``sqrt(ZERO_DISTANCE_SQ)`` (duplicates) are skipped.
* Lag ``k = 1 .. n_lags`` takes the pairs with ``|h - k * lag| <= lag_tol`` (default
  ``lag / 2``); with a larger tolerance, lags overlap and a pair counts in each, as in ``gamv``.
* A direction (azimuth clockwise from north, dip negative down) accepts a pair by the ``gamv``
  tests, in order: horizontal angle ``|cos| >= cos(tolerance)`` (a pair with no horizontal
  extent passes), horizontal bandwidth, dip angle ``|cos| >= cos(dip_tolerance)`` in the vertical
  plane of the direction, vertical bandwidth. A tolerance of 90 degrees or more accepts every
  pair for that test. The omnidirectional variogram accepts every pair.
* Measures, per lag, over its ``N`` pairs with values ``a, b``:

  - ``semivariogram``: ``sum (a - b)^2 / (2 N)``;
  - ``pairwise_relative``: ``sum (a - b)^2 / ((a + b) / 2)^2 / (2 N)``, pairs with
    ``|a + b| <= 1e-12`` left out (and not counted);
  - ``correlogram``: ``1 - rho`` with ``rho = cov(head, tail) / (s_head s_tail)``. In a direction,
    the head is the end further along the direction (``d . u >= 0`` makes ``j`` the head); the
    omnidirectional and down-hole measures are symmetric (each pair counts both ways, as
    ``gamv`` does for omnidirectional variograms).
* ``distance`` is the mean distance of the pairs in the lag, ``lag`` its nominal centre.
* Down-hole: pairs within the same hole only, ``h`` = along-hole distance (``|depth_i -
  depth_j|``, or the cumulative chord length down the hole in the order given).

Pair finding (:mod:`estimator.variography._pairs`) streams over a hashed grid of cells (numba), so
memory is O(n) for any number of pairs; the result does not depend on the number of threads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from estimator.variography._pairs import (
    NACC,
    direction_table,
    downhole_kernel,
    finish,
    run_pairs,
)
from estimator.variography.models import rotation_matrix

MEASURES = ("semivariogram", "correlogram", "pairwise_relative")
_MEASURE_CODES = {name: i for i, name in enumerate(MEASURES)}
COLUMNS = ["direction", "azimuth", "dip", "lag", "distance", "gamma", "n_pairs"]


@dataclass(frozen=True)
class Direction:
    """A direction of a directional variogram (GSLIB ``gamv`` parameters).

    Parameters
    ----------
    azimuth : float
        Degrees clockwise from north (+y).
    dip : float
        Degrees, negative down.
    tolerance : float
        Half-angle tolerance on azimuth, degrees; 90 or more accepts every azimuth.
    dip_tolerance : float or None
        Half-angle tolerance on dip, degrees; ``None`` means ``tolerance``.
    bandwidth_h, bandwidth_v : float
        Largest offset from the direction's line, horizontally and in its vertical plane, in data
        units; ``inf`` = no limit.
    name : str
        Label in the output's ``direction`` column; default ``"az{azimuth}_dip{dip}"``.
    """

    azimuth: float
    dip: float = 0.0
    tolerance: float = 22.5
    dip_tolerance: float | None = None
    bandwidth_h: float = math.inf
    bandwidth_v: float = math.inf
    name: str = ""

    @property
    def label(self) -> str:
        """The name used in output tables."""
        return self.name or f"az{self.azimuth:g}_dip{self.dip:g}"

    @property
    def vector(self) -> np.ndarray:
        """Unit vector (x, y, z) of the direction."""
        return direction_vector(self.azimuth, self.dip)


def direction_vector(azimuth, dip) -> np.ndarray:
    """Unit vector (x, y, z) for an azimuth (clockwise from north) and dip (negative down), degrees.

    Examples
    --------
    >>> np.round(direction_vector(90.0, -30.0), 4)
    array([ 0.866,  0.   , -0.5  ])
    """
    az, dp = np.deg2rad(np.asarray(azimuth, float)), np.deg2rad(np.asarray(dip, float))
    return np.stack([np.cos(dp) * np.sin(az), np.cos(dp) * np.cos(az), np.sin(dp)], axis=-1)


def vector_to_azimuth_dip(v) -> tuple[float, float]:
    """Azimuth [0, 360) and dip (negative down, in [-90, 0]) of the line along vector ``v``."""
    v = np.asarray(v, dtype=float)
    v = v / np.linalg.norm(v)
    if v[2] > 0:
        v = -v
    dip = float(np.rad2deg(np.arcsin(np.clip(v[2], -1.0, 1.0))))
    az = float(np.rad2deg(np.arctan2(v[0], v[1])) % 360.0) if np.hypot(v[0], v[1]) > 1e-12 else 0.0
    return az, dip


OMNI = Direction(0.0, 0.0, tolerance=90.0, dip_tolerance=90.0, name="omni")


def normal_scores(values) -> np.ndarray:
    """Normal-score transform: ``Phi^-1((rank - 0.5) / n)``, ties given their mean rank.

    Notes
    -----
    A model fitted to normal scores has a sill near 1. :func:`estimator.variography.fit.variography`
    takes it back to grade units by multiplying the nugget and every sill by the data variance
    divided by the normal-score variance (ranges and the relative nugget are kept). This is the
    usual practical shortcut; the exact back-transform of a variogram goes through a Hermite
    expansion of the anamorphosis and gives slightly different relative sills.
    """
    from scipy import stats  # imported here: scipy.stats takes a while to load

    v = np.asarray(values, dtype=float)
    ranks = stats.rankdata(v, method="average")
    return stats.norm.ppf((ranks - 0.5) / v.size)


# -- helpers ---------------------------------------------------------------------------------
def _check_inputs(xyz, values):
    xyz = np.ascontiguousarray(xyz, dtype=float)
    values = np.ascontiguousarray(values, dtype=float).ravel()
    if xyz.ndim != 2 or xyz.shape[1] != 3 or xyz.shape[0] != values.shape[0]:
        msg = f"xyz must have shape (n, 3) matching values (n,); got {xyz.shape} and {values.shape}"
        raise ValueError(msg)
    keep = np.isfinite(values) & np.all(np.isfinite(xyz), axis=1)
    return xyz[keep], values[keep], keep


def _check_lags(lag, n_lags, lag_tol):
    if not (lag > 0 and int(n_lags) >= 1):
        msg = f"lag must be > 0 and n_lags >= 1; got lag={lag!r}, n_lags={n_lags!r}"
        raise ValueError(msg)
    ltol = 0.5 * lag if lag_tol is None else float(lag_tol)
    if ltol <= 0:
        msg = f"lag_tol must be > 0; got {lag_tol!r}"
        raise ValueError(msg)
    return float(lag), int(n_lags), ltol


def _frame_matrix(frame) -> np.ndarray:
    """World -> frame coordinates: x' = semi-major, y' = major, z' = minor component."""
    return rotation_matrix(frame)[[1, 0, 2]]


# -- public ----------------------------------------------------------------------------------
def experimental_variogram(
    xyz,
    values,
    *,
    lag: float,
    n_lags: int,
    directions=None,
    lag_tol: float | None = None,
    measure: str = "semivariogram",
    frame=None,
    parallel: bool = True,
) -> pd.DataFrame:
    """Directional and omnidirectional experimental variograms (see the module notes).

    Parameters
    ----------
    xyz : array_like, shape (n, 3)
        Sample coordinates (x, y, z), data units.
    values : array_like, shape (n,)
        Sample values; NaN rows are left out.
    lag : float
        Lag spacing, data units; lags are centred at ``k * lag``, ``k = 1 .. n_lags``.
    n_lags : int
        Number of lags.
    directions : sequence of Direction, optional
        Default: one omnidirectional variogram (:data:`OMNI`).
    lag_tol : float, optional
        Lag tolerance, default ``lag / 2``.
    measure : {"semivariogram", "correlogram", "pairwise_relative"}
        What is computed per lag.
    frame : sequence of 3 floats, optional
        GSLIB angles of a rotated frame in which the directions are read: azimuth 0 dip 0 is the
        frame's major axis, azimuth 90 dip 0 its semi-major axis, dip -90 its minor axis. The
        output's ``azimuth`` and ``dip`` are always the world orientation.
    parallel : bool
        Use the multi-threaded kernel (off inside an already parallel caller).

    Returns
    -------
    pandas.DataFrame
        Columns ``direction, azimuth, dip, lag, distance, gamma, n_pairs``; one row per direction
        and lag, empty lags with ``gamma`` and ``distance`` NaN.
    """
    if measure not in MEASURES:
        msg = f"measure {measure!r} is not one of {', '.join(MEASURES)}"
        raise ValueError(msg)
    lag, n_lags, ltol = _check_lags(lag, n_lags, lag_tol)
    directions = [OMNI] if directions is None else list(directions)
    xyz, values, _ = _check_inputs(xyz, values)
    if frame is not None:
        xyz = xyz @ _frame_matrix(frame).T
    if measure == "correlogram" and values.size:
        values = values - values.mean()  # invariant for the correlogram; less cancellation
    rmax = n_lags * lag + ltol
    dirs = direction_table(directions)
    par = [lag, ltol, rmax * rmax, 0.0, n_lags, _MEASURE_CODES[measure], 0]
    acc = run_pairs(xyz, values, rmax, 0, dirs, par, (len(directions), n_lags, NACC), parallel)
    gamma, dist, npairs = finish(acc, measure)
    rows = []
    for i, d in enumerate(directions):
        if frame is not None and d is not OMNI:
            az, dp = vector_to_azimuth_dip(_frame_matrix(frame).T @ d.vector)
        else:
            az, dp = d.azimuth, d.dip
        if d is OMNI:
            az, dp = np.nan, np.nan
        rows.append(
            pd.DataFrame(
                {
                    "direction": d.label,
                    "azimuth": az,
                    "dip": dp,
                    "lag": lag * np.arange(1, n_lags + 1),
                    "distance": dist[i],
                    "gamma": gamma[i],
                    "n_pairs": npairs[i],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)[COLUMNS]


def sample_pairs(
    xyz,
    *,
    lag: float,
    n_lags: int,
    directions,
    lag_tol: float | None = None,
    frame=None,
    per_lag: int = 200,
    n_pairs=None,
    parallel: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random sample of the pairs behind each row of :func:`experimental_variogram`.

    Fitting a model to a directional variogram by its value at ``distance`` along the nominal
    direction ignores that the pairs of a lag lie anywhere in the tolerance cone: off-axis pairs
    reach into the shorter axes and raise the experimental gamma. The model's exact counterpart of
    a lag is the mean of the model over the lag's own separation vectors, which this sample
    approximates (every pair is kept in lags with at most ``per_lag`` pairs).

    Parameters
    ----------
    xyz : array_like, shape (n, 3)
        Sample coordinates; rows with a non-finite coordinate are left out (rows with a missing
        value must be left out by the caller, as :func:`experimental_variogram` does).
    lag, n_lags, directions, lag_tol, frame, parallel
        As :func:`experimental_variogram` (same pairs, same rows).
    per_lag : int
        About how many pairs to keep per lag: each pair of a lag with ``N`` pairs is kept with
        probability ``min(1, per_lag / N)`` by a fixed hash of the pair, so the sample does not
        depend on threads or on the call.
    n_pairs : array_like, shape (len(directions) * n_lags,), optional
        Pair counts per row (the ``n_pairs`` column); computed when None.

    Returns
    -------
    rows : numpy.ndarray of int, shape (m,)
        Row of the :func:`experimental_variogram` table (direction-major, lag-minor) of each pair.
    vectors : numpy.ndarray, shape (m, 3)
        Separation vector ``x_j - x_i`` of each pair, world frame (its sign is arbitrary).
    """
    lag, n_lags, ltol = _check_lags(lag, n_lags, lag_tol)
    directions = list(directions)
    xyz = np.asarray(xyz, dtype=float)
    xyz = xyz[np.all(np.isfinite(xyz), axis=1)]
    fm = _frame_matrix(frame) if frame is not None else np.eye(3)
    xyz = xyz @ fm.T
    rmax = n_lags * lag + ltol
    dirs = direction_table(directions)
    shape = (len(directions), n_lags)
    if n_pairs is None:
        par = [lag, ltol, rmax * rmax, 0.0, n_lags, 0, 0]
        acc = run_pairs(xyz, np.zeros(len(xyz)), rmax, 0, dirs, par, (*shape, NACC), parallel)
        n_pairs = acc[..., 0]
    n_pairs = np.asarray(n_pairs, dtype=float).reshape(shape)
    prob = np.minimum(1.0, per_lag / np.maximum(n_pairs, 1.0))
    par = [lag, ltol, rmax * rmax, 0.0, n_lags, 0, 0]
    cap = int(min(2 * int(per_lag) + 16, max(n_pairs.max(), 1.0)))
    vbuf, vcnt = run_pairs(
        xyz, np.zeros(len(xyz)), rmax, 2, dirs, par, (1, 1, NACC), parallel, (prob, cap)
    )
    rows, vecs = [], []
    for r in range(shape[0] * shape[1]):
        i, k = divmod(r, n_lags)
        for ch in range(vcnt.shape[0]):
            m = vcnt[ch, i, k]
            if m:
                vecs.append(vbuf[ch, i, k, :m])
                rows.append(np.full(m, r, dtype=np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 3))
    return np.concatenate(rows), np.concatenate(vecs) @ fm


def along_hole(xyz, hole_codes) -> np.ndarray:
    """Cumulative chord length down each hole, in the order given (0 at each hole's first sample)."""
    xyz = np.asarray(xyz, float)
    step = np.zeros(xyz.shape[0])
    same = hole_codes[1:] == hole_codes[:-1]
    step[1:] = np.where(same, np.linalg.norm(np.diff(xyz, axis=0), axis=1), 0.0)
    s = np.cumsum(step)
    first = np.r_[True, ~same]
    return s - np.maximum.accumulate(np.where(first, s, -np.inf))


def downhole_variogram(
    values,
    hole_ids,
    *,
    lag: float,
    n_lags: int,
    xyz=None,
    depths=None,
    lag_tol: float | None = None,
    measure: str = "semivariogram",
) -> pd.DataFrame:
    """Down-hole experimental variogram: pairs in the same hole, by along-hole distance.

    Parameters
    ----------
    values : array_like, shape (n,)
        Sample values; NaN rows are left out.
    hole_ids : array_like, shape (n,)
        Hole of each sample (any hashable type).
    lag, n_lags, lag_tol, measure
        As :func:`experimental_variogram`; short lags (the composite length) suit the nugget.
    xyz : array_like, shape (n, 3), optional
        Sample positions, samples of a hole in down-hole order; used for the along-hole distance
        when ``depths`` is not given, and for the mean hole direction reported in ``azimuth`` and
        ``dip``.
    depths : array_like, shape (n,), optional
        Along-hole depth of each sample (e.g. composite mid-point ``(from + to) / 2``).

    Returns
    -------
    pandas.DataFrame
        As :func:`experimental_variogram`, with ``direction == "downhole"``.
    """
    if measure not in MEASURES:
        msg = f"measure {measure!r} is not one of {', '.join(MEASURES)}"
        raise ValueError(msg)
    if xyz is None and depths is None:
        msg = "downhole_variogram needs depths or xyz to measure along-hole distance"
        raise ValueError(msg)
    lag, n_lags, ltol = _check_lags(lag, n_lags, lag_tol)
    values = np.asarray(values, dtype=float).ravel()
    codes = pd.factorize(pd.Series(np.asarray(hole_ids)), sort=False)[0]
    if codes.shape[0] != values.shape[0]:
        msg = f"hole_ids has {codes.shape[0]} entries but values has {values.shape[0]}"
        raise ValueError(msg)
    az, dp = np.nan, np.nan
    if xyz is not None:
        xyz = np.asarray(xyz, dtype=float)
        s = along_hole(xyz, codes) if depths is None else np.asarray(depths, float)
        az, dp = mean_hole_direction(xyz, codes)
    else:
        s = np.asarray(depths, dtype=float)
    keep = np.isfinite(values) & np.isfinite(s)
    v, s, codes = values[keep], s[keep], codes[keep]
    if measure == "correlogram" and v.size:
        v = v - v.mean()
    order = np.lexsort((s, codes))
    v, s, codes = v[order], s[order], codes[order]
    hole_start = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True]).astype(np.int64)
    acc = np.zeros((n_lags, NACC))
    if v.size > 1:
        downhole_kernel(s, v, hole_start, lag, ltol, n_lags, _MEASURE_CODES[measure], acc)
    gamma, dist, npairs = finish(acc, measure)
    return pd.DataFrame(
        {
            "direction": "downhole",
            "azimuth": az,
            "dip": dp,
            "lag": lag * np.arange(1, n_lags + 1),
            "distance": dist,
            "gamma": gamma,
            "n_pairs": npairs,
        }
    )[COLUMNS]


def mean_hole_direction(xyz, hole_codes) -> tuple[float, float]:
    """Azimuth and dip of the mean down-hole step (NaN when no hole has two samples)."""
    xyz = np.asarray(xyz, float)
    hole_codes = np.asarray(hole_codes)
    same = hole_codes[1:] == hole_codes[:-1]
    steps = np.diff(xyz, axis=0)[same]
    if steps.shape[0] == 0:
        return np.nan, np.nan
    steps = np.where((steps[:, 2:3] > 0), -steps, steps)  # lines, not arrows: point them down
    m = steps.sum(axis=0)
    if np.linalg.norm(m) == 0:
        return np.nan, np.nan
    return vector_to_azimuth_dip(m)


def variogram_map(
    xyz,
    values,
    *,
    cell: float,
    n_cells: int,
    measure: str = "semivariogram",
    parallel: bool = True,
) -> pd.DataFrame:
    """3D variogram map: pairs binned by separation vector on a grid of cubic cells.

    Parameters
    ----------
    xyz, values
        As :func:`experimental_variogram`.
    cell : float
        Size of a bin in each axis, data units.
    n_cells : int
        Bins from the centre to the edge; pairs farther than ``n_cells * cell`` are left out.
    measure : {"semivariogram", "pairwise_relative"}
        Measure per bin.

    Returns
    -------
    pandas.DataFrame
        Non-empty bins only: ``dx, dy, dz`` (mean separation, ``dz >= 0``), ``distance``
        (norm of the mean separation), ``gamma``, ``n_pairs``.
    """
    if measure not in ("semivariogram", "pairwise_relative"):
        msg = f"variogram_map measure must be semivariogram or pairwise_relative, got {measure!r}"
        raise ValueError(msg)
    xyz, values, _ = _check_inputs(xyz, values)
    rmax = n_cells * cell
    w = 2 * n_cells + 1
    par = [cell, cell, rmax * rmax, cell, 1, _MEASURE_CODES[measure], n_cells]
    acc = run_pairs(
        xyz, values, rmax, 1, np.zeros((0, 12)), par, (1, w * w * (n_cells + 1), 5), parallel
    )[0]
    n = acc[:, 0]
    ok = n > 0
    d = acc[ok, 1:4] / n[ok, None]
    return pd.DataFrame(
        {
            "dx": d[:, 0],
            "dy": d[:, 1],
            "dz": d[:, 2],
            "distance": np.linalg.norm(d, axis=1),
            "gamma": acc[ok, 4] / n[ok],
            "n_pairs": n[ok].astype(np.int64),
        }
    )
