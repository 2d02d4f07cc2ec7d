"""Minimum-curvature desurvey: downhole depths to (x, y, z) positions.

Conventions (SPEC section 6)
----------------------------
* Azimuth in degrees clockwise from grid north; dip in degrees, **negative down** (-90 is a
  vertical hole drilled down). The inclination from vertical is ``90 + dip``.
* Coordinates are ``(x, y, z) = (east, north, elevation)``; ``dz`` is the change in elevation,
  negative going down.
* Between two stations the hole follows the circular arc of minimum curvature. The first
  station extends straight (with its own direction) up to the collar, the last one straight to
  the end of hole and beyond; a single-station hole is straight.
* A position at any depth lies on the arc: inside a segment the direction at a fraction ``f``
  of the segment is the spherical interpolation (slerp) of the two station directions at angle
  ``f * dogleg``, and the position is the minimum-curvature step from the first station to
  that direction over ``f`` times the segment length. This is exactly the circular arc.

Depths and coordinates are in the units of the data (metres or feet).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["desurvey", "desurvey_stations", "direction_vectors", "dogleg", "ratio_factor"]

# Below this dogleg (radians) the arc is a straight line to double precision: the ratio
# factor 2/b tan(b/2) = 1 + b^2/12 + ... differs from 1 by less than 1e-17.
_TINY_DOGLEG = 1e-9


def direction_vectors(azimuth, dip) -> np.ndarray:
    """Unit tangent vectors of a hole, in (east, north, elevation).

    Parameters
    ----------
    azimuth : array_like
        Azimuth in degrees, clockwise from grid north.
    dip : array_like
        Dip in degrees, negative down.

    Returns
    -------
    numpy.ndarray
        ``(n, 3)`` unit vectors ``(sin I sin A, sin I cos A, -cos I)`` with ``I = 90 + dip``
        the inclination from vertical.

    Examples
    --------
    >>> direction_vectors([0.0], [-90.0]).round(12).tolist()
    [[0.0, 0.0, -1.0]]
    """
    az = np.radians(np.atleast_1d(np.asarray(azimuth, dtype=float)))
    inc = np.radians(90.0 + np.atleast_1d(np.asarray(dip, dtype=float)))
    sin_inc = np.sin(inc)
    return np.column_stack((sin_inc * np.sin(az), sin_inc * np.cos(az), -np.cos(inc)))


def _angle_between(t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    # 2 atan2(|t1 - t2|, |t1 + t2|) is accurate for tiny and near-180 degree angles, where
    # arccos of the dot product loses half the digits.
    return 2.0 * np.arctan2(np.linalg.norm(t1 - t2, axis=-1), np.linalg.norm(t1 + t2, axis=-1))


def dogleg(azimuth1, dip1, azimuth2, dip2) -> np.ndarray:
    """Dogleg angle between two survey directions, in degrees.

    Parameters
    ----------
    azimuth1, dip1, azimuth2, dip2 : array_like
        Directions in degrees (azimuth clockwise from north, dip negative down).

    Returns
    -------
    numpy.ndarray or float
        The angle between the two unit tangents, in degrees.

    Examples
    --------
    >>> round(float(dogleg(20.0, -75.0, 45.0, -65.0)), 3)
    12.952
    """
    t1 = direction_vectors(azimuth1, dip1)
    t2 = direction_vectors(azimuth2, dip2)
    out = np.degrees(_angle_between(t1, t2))
    return out[0] if np.ndim(azimuth1) == 0 and np.ndim(azimuth2) == 0 else out


def _ratio_factor_rad(beta: np.ndarray) -> np.ndarray:
    beta = np.asarray(beta, dtype=float)
    small = beta < _TINY_DOGLEG
    safe = np.where(small, 1.0, beta)
    return np.where(small, 1.0, 2.0 / safe * np.tan(safe / 2.0))


def ratio_factor(dogleg_deg) -> np.ndarray:
    """Minimum-curvature ratio factor ``RF = 2 / b * tan(b / 2)`` (1 for a straight segment).

    Parameters
    ----------
    dogleg_deg : array_like
        Dogleg angle ``b`` in degrees.

    Returns
    -------
    numpy.ndarray or float

    Examples
    --------
    >>> round(float(ratio_factor(12.952)), 5)
    1.00428
    """
    out = _ratio_factor_rad(np.radians(dogleg_deg))
    return out[()] if np.ndim(dogleg_deg) == 0 else out


def _segment_steps(t1: np.ndarray, t2: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Minimum-curvature displacement over each segment, ``(n, 3)``."""
    rf = _ratio_factor_rad(_angle_between(t1, t2))
    return (0.5 * length * rf)[:, None] * (t1 + t2)


def _slerp(t1: np.ndarray, t2: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Unit tangent at fraction ``frac`` of the arc from ``t1`` to ``t2``, ``(n, 3)``."""
    beta = _angle_between(t1, t2)
    straight = beta < _TINY_DOGLEG
    sb = np.where(straight, 1.0, np.sin(beta))
    w1 = np.where(straight, 1.0 - frac, np.sin((1.0 - frac) * beta) / sb)
    w2 = np.where(straight, frac, np.sin(frac * beta) / sb)
    t = w1[:, None] * t1 + w2[:, None] * t2
    return t / np.linalg.norm(t, axis=1)[:, None]


def desurvey_stations(depth, azimuth, dip) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative offsets from the collar at each survey station of one hole.

    Parameters
    ----------
    depth : array_like
        Station depths along the hole, increasing, ``>= 0`` (units of the data).
    azimuth : array_like
        Azimuth at each station, degrees clockwise from grid north.
    dip : array_like
        Dip at each station, degrees, negative down.

    Returns
    -------
    dx, dy, dz : numpy.ndarray
        East, north and elevation offsets of each station from the collar (``dz`` negative
        going down). The first station is reached by a straight line from the collar in the
        first station's direction.

    Raises
    ------
    ValueError
        If there is no station, the arrays differ in length or the depths are not increasing.

    Examples
    --------
    >>> dx, dy, dz = desurvey_stations([0.0, 100.0], [20.0, 45.0], [-75.0, -65.0])
    >>> [round(float(v), 2) for v in (dx[1], dy[1], -dz[1])]
    [19.45, 27.22, 94.01]
    """
    depth = np.atleast_1d(np.asarray(depth, dtype=float))
    azimuth = np.atleast_1d(np.asarray(azimuth, dtype=float))
    dip = np.atleast_1d(np.asarray(dip, dtype=float))
    if depth.size == 0:
        msg = "desurvey_stations needs at least one survey station, got none"
        raise ValueError(msg)
    if not (depth.shape == azimuth.shape == dip.shape):
        msg = (
            f"depth, azimuth and dip must have the same length, got {depth.size}, "
            f"{azimuth.size} and {dip.size}"
        )
        raise ValueError(msg)
    if np.any(np.diff(depth) < 0):
        msg = f"survey depths must be increasing, got {depth.tolist()}"
        raise ValueError(msg)
    t = direction_vectors(azimuth, dip)
    pos = np.empty_like(t)
    pos[0] = depth[0] * t[0]
    if depth.size > 1:
        steps = _segment_steps(t[:-1], t[1:], np.diff(depth))
        pos[1:] = pos[0] + np.cumsum(steps, axis=0)
    return pos[:, 0], pos[:, 1], pos[:, 2]


def _last_at_or_before(
    station_group: np.ndarray,
    station_depth: np.ndarray,
    query_group: np.ndarray,
    query_depth: np.ndarray,
) -> np.ndarray:
    """Index of the last station of the same group with depth ``<=`` the query (-1 if none).

    Stations must be sorted by (group, depth). Exact: one merged lexsort, no float keys.
    """
    n_st = station_depth.size
    groups = np.concatenate((station_group, query_group))
    depths = np.concatenate((station_depth, query_depth))
    is_query = np.concatenate((np.zeros(n_st, dtype=np.int8), np.ones(query_depth.size, np.int8)))
    # stations sort before queries at an equal depth, so "<=" picks them
    order = np.lexsort((is_query, depths, groups))
    stations_before = np.cumsum(is_query[order] == 0) - 1
    idx = np.empty(query_depth.size, dtype=np.int64)
    idx[order[is_query[order] == 1] - n_st] = stations_before[is_query[order] == 1]
    same = np.zeros(idx.size, dtype=bool)
    valid = idx >= 0
    same[valid] = station_group[idx[valid]] == query_group[valid]
    return np.where(same, idx, -1)


def desurvey(collars: pd.DataFrame, surveys: pd.DataFrame, hole_ids, depths) -> np.ndarray:
    """Positions of downhole depths by minimum curvature.

    Parameters
    ----------
    collars : pandas.DataFrame
        ``hole_id, x, y, z`` (other columns ignored), one row per hole.
    surveys : pandas.DataFrame
        ``hole_id, depth, azimuth, dip`` with dip negative down; any row order.
    hole_ids : array_like
        Hole of each query point.
    depths : array_like
        Depth along the hole of each query point (units of the data). Depths before the first
        station follow the first station's direction, depths past the last station the last
        station's direction.

    Returns
    -------
    numpy.ndarray
        ``(n, 3)`` float array of ``x, y, z`` (east, north, elevation).

    Raises
    ------
    ValueError
        If a queried hole has no collar or no survey station, naming the hole.

    Notes
    -----
    Vectorised over all holes: stations are desurveyed once (cumulative sums per hole), each
    query finds its segment with one merged sort, and its position is the minimum-curvature
    step from the segment's first station along the slerp-interpolated direction, which puts
    it exactly on the segment's circular arc.

    Examples
    --------
    >>> collars = pd.DataFrame({"hole_id": ["A"], "x": [0.0], "y": [0.0], "z": [100.0]})
    >>> surveys = pd.DataFrame({"hole_id": ["A"], "depth": [0.0], "azimuth": [0.0],
    ...                         "dip": [-90.0]})
    >>> desurvey(collars, surveys, ["A"], [10.0]).tolist()
    [[0.0, 0.0, 90.0]]
    """
    q_holes = np.asarray(hole_ids, dtype=object).ravel()
    q_depth = np.asarray(depths, dtype=float).ravel()
    if q_holes.size != q_depth.size:
        msg = (
            f"hole_ids and depths must have the same length, got {q_holes.size} and {q_depth.size}"
        )
        raise ValueError(msg)
    if q_depth.size == 0:
        return np.empty((0, 3))

    collar_xyz = collars[["x", "y", "z"]].to_numpy(dtype=float)
    collar_ids = collars["hole_id"].astype(str).to_numpy(dtype=object)
    # one integer code per hole: the collar's row
    collar_index = pd.Index(collar_ids)
    if not collar_index.is_unique:
        collar_index = collar_index.drop_duplicates()
        collar_xyz = collar_xyz[~pd.Index(collar_ids).duplicated()]
    q_code = collar_index.get_indexer(q_holes.astype(str))
    if np.any(q_code < 0):
        missing = sorted(set(q_holes[q_code < 0].astype(str)))
        msg = f"no collar for hole(s) {', '.join(missing[:10])}"
        raise ValueError(msg)

    s_code_all = collar_index.get_indexer(surveys["hole_id"].astype(str).to_numpy(dtype=object))
    keep = s_code_all >= 0
    s_code = s_code_all[keep]
    s_depth = surveys["depth"].to_numpy(dtype=float)[keep]
    s_az = surveys["azimuth"].to_numpy(dtype=float)[keep]
    s_dip = surveys["dip"].to_numpy(dtype=float)[keep]
    order = np.lexsort((s_depth, s_code))
    s_code, s_depth, s_az, s_dip = s_code[order], s_depth[order], s_az[order], s_dip[order]

    surveyed = np.zeros(len(collar_index), dtype=bool)
    surveyed[s_code] = True
    if not np.all(surveyed[q_code]):
        missing = sorted(set(collar_index[q_code[~surveyed[q_code]]]))
        msg = f"no survey station for hole(s) {', '.join(missing[:10])}"
        raise ValueError(msg)

    # --- stations: offsets from the collar --------------------------------------------------
    t = direction_vectors(s_az, s_dip)
    n_st = s_depth.size
    first = np.ones(n_st, dtype=bool)
    first[1:] = s_code[1:] != s_code[:-1]
    last = np.ones(n_st, dtype=bool)
    last[:-1] = first[1:]
    steps = np.zeros((n_st, 3))
    steps[first] = s_depth[first, None] * t[first]  # straight from the collar
    inner = ~first
    if np.any(inner):
        prev = np.flatnonzero(inner) - 1
        steps[inner] = _segment_steps(t[prev], t[inner], s_depth[inner] - s_depth[prev])
    # cumulative sum restarted at each hole (per group, so no rounding carries across holes)
    pos = pd.DataFrame(steps).groupby(s_code, sort=False).cumsum().to_numpy()

    # --- queries ------------------------------------------------------------------------------
    j = _last_at_or_before(s_code, s_depth, q_code, q_depth)
    first_of_code = np.full(len(collar_index), -1, dtype=np.int64)
    first_of_code[s_code[first]] = np.flatnonzero(first)
    before_first = j < 0
    j = np.where(before_first, first_of_code[q_code], j)
    straight = before_first | last[j]
    out = pos[j] + (q_depth - s_depth[j])[:, None] * t[j]  # straight extension (exact there)
    arc = ~straight
    if np.any(arc):
        ja = j[arc]
        seg_len = s_depth[ja + 1] - s_depth[ja]
        frac = (q_depth[arc] - s_depth[ja]) / seg_len
        t_mid = _slerp(t[ja], t[ja + 1], frac)
        out[arc] = pos[ja] + _segment_steps(t[ja], t_mid, frac * seg_len)
    return out + collar_xyz[q_code]
