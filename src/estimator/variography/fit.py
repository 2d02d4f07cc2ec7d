"""Fitting nested anisotropic variogram models, and the variography stage for one domain and grade.

The workflow is a resource geologist's: lags at the spacing between holes (:func:`default_lag`;
positioned samples without holes: the closest sample spacing); the nugget from the down-hole
variogram at short lags (a fitted nugget may not fall below it; without holes the first lags
decide it); the axes of continuity from the plane of a tabular domain (its major axis fitted on
the variogram map in the plane), or from direction fans refined on the 3D variogram map
(:mod:`estimator.variography.directions`), cross-validation choosing between the two when the
domain is only somewhat tabular; experimental variograms along the three principal axes (read
in the rotated frame of those axes); then 1 to 3 structures with one shared orientation and
ranges per axis, fitted jointly to the principal directions (and the down-hole variogram) by
pair-weighted least squares, with sills summing to the variance and ranges ordered major >=
semi-major >= minor (along found axes by the fit itself; along given axes by relabelling them,
:func:`~estimator.variography.directions.order_axes`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.spatial import cKDTree

from estimator.errors import DataError, EstimationWarning
from estimator.variography.directions import (
    free_orientation,
    nested_gamma,
    order_axes,
    plane_orientation,
    principal_axes,
)
from estimator.variography.experimental import (
    OMNI,
    direction_vector,
    downhole_variogram,
    experimental_variogram,
    normal_scores,
    sample_pairs,
)
from estimator.variography.models import Structure, VariogramModel
from estimator.variography.settings import (
    VariographySettings,
    _structure_types,
    principal_directions,
)


def nugget_from_downhole(
    table: pd.DataFrame, n_lags: int = 3, variance: float | None = None
) -> float:
    """Nugget as the intercept of a pair-weighted line through the first down-hole lags.

    Clipped to ``[0, variance]``; NaN when fewer than two lags have pairs.
    """
    t = table[(table["n_pairs"] > 0) & np.isfinite(table["gamma"])].head(n_lags)
    if len(t) < 2:
        return math.nan
    w = t["n_pairs"].to_numpy(float)
    x, y = t["distance"].to_numpy(float), t["gamma"].to_numpy(float)
    _slope, icpt = np.polyfit(x, y, 1, w=np.sqrt(w))
    hi = np.inf if variance is None else variance
    return float(np.clip(icpt, 0.0, hi))


def _window(x, k, prev, log_lo, log_max, span, ordered):
    """Log-range window ``(lo, hi)`` of axis ``k`` of a structure whose axes ``< k`` are ``x[:k]``.

    ``prev`` is the previous structure's log ranges (None for the first): ranges grow from one
    structure to the next, below ``log_max``. With a ``span`` (log of the largest anisotropy
    ratio) the axis stays within ``span`` of the axes before it; ``ordered`` keeps it at most
    the axis before it (major >= semi-major >= minor). The window is never empty: the previous
    structure met every bound, so its range fits below the axis before this one.
    """
    lo, hi = (prev[k] if prev is not None else log_lo), log_max
    if span is not None and k:
        lo = max(lo, x[:k].max() - span)
        hi = min(hi, x[:k].min() + span)
    if ordered and k:
        hi = min(hi, x[k - 1])
    return lo, hi


def _log_ranges(p, ns, log_lo, log_max, span=None, ordered=False):
    """Parameters -> log ranges (ns, 3).

    Structure ``i >= 1`` has, per axis, ``log r_i = lo + f (hi - lo)`` with ``f`` in [0, 1],
    ``lo`` the previous structure's log range and ``hi`` the bound ``log_max``: ranges grow from
    one structure to the next and stay below the bound. Structure 0's log ranges are parameters,
    except with a ``span`` or ``ordered``: then the semi-major and minor axes are fractions too,
    of windows narrowed by :func:`_window` (within ``span``, the log of the largest anisotropy
    ratio, of the axes before; at most the axis before when ``ordered``).
    """
    out, prev = np.empty((ns, 3)), None
    free = span is None and not ordered
    for i in range(ns):
        q = p[3 * i : 3 * i + 3]
        for k in range(3):
            if i == 0 and (k == 0 or free):
                out[i, k] = q[k]
                continue
            lo, hi = _window(out[i], k, prev, log_lo, log_max, span, ordered)
            out[i, k] = lo + q[k] * max(hi - lo, 0.0)
        prev = out[i]
    return out


def _range_params(r, ns, log_lo, log_max, span, ordered=False):
    """Inverse of :func:`_log_ranges` (with a span or ordered) for ranges ``r`` (ns, 3),
    clipped into their windows."""
    lr = np.log(np.asarray(r, float))
    x, q, prev = np.empty((ns, 3)), [], None
    for i in range(ns):
        for k in range(3):
            if i == 0 and k == 0:
                x[i, k] = float(np.clip(lr[i, k], log_lo, log_max))
                q.append(x[i, k])
                continue
            lo, hi = _window(x[i], k, prev, log_lo, log_max, span, ordered)
            x[i, k] = float(np.clip(lr[i, k], lo, max(hi, lo)))
            q.append((x[i, k] - lo) / (hi - lo) if hi > lo else 0.0)
        prev = x[i]
    return q


def _unpack(
    p, ns, variance, nugget, log_max, log_lo=-np.inf, span=None, tie_minor=False, ordered=False
):
    """Parameters -> (ranges (ns, 3), sills (ns,), nugget, total sill); see :func:`_log_ranges`.

    With ``tie_minor`` every structure's minor range is the shorter of its other two (the minor
    parameters are then unused).
    """
    r = np.exp(_log_ranges(p, ns, log_lo, log_max, span, ordered))
    if tie_minor:
        r[:, 2] = r[:, :2].min(axis=1)
    rest = list(p[3 * ns :])
    total = variance if variance is not None else rest.pop(0)
    nug = nugget if nugget is not None else rest.pop(0) * total
    w, left = [], 1.0
    for f in rest:
        w.append(left * f)
        left *= 1.0 - f
    w.append(left)
    return r, (total - nug) * np.asarray(w), nug, total


def fit_model(
    experimental: pd.DataFrame,
    angles,
    n_structures: int = 2,
    variance: float | None = None,
    nugget: float | None = None,
    types=("spherical",),
    *,
    min_pairs: int = 30,
    initial_ranges=None,
    initial_nugget: float | None = None,
    max_range: float | None = None,
    downhole_directions=None,
    pairs=None,
    nugget_floor: float = 0.0,
    max_anisotropy: float | None = None,
    tie_minor: bool = False,
    ordered: bool = False,
) -> tuple[VariogramModel, dict]:
    """Fit nugget + nested structures with one orientation to directional experimental variograms.

    Parameters
    ----------
    experimental : pandas.DataFrame
        Rows ``direction, azimuth, dip, distance, gamma, n_pairs`` (world azimuth and dip of each
        direction, e.g. the principal directions and the down-hole variogram). Rows without a
        direction (omnidirectional), without gamma or with fewer than ``min_pairs`` pairs are
        left out.
    angles : sequence of 3 floats
        GSLIB angles shared by every structure.
    n_structures : int
        1 to 3.
    variance : float, optional
        Total sill (nugget + sills); fitted when None (e.g. pairwise-relative measure).
    nugget : float, optional
        Fixed nugget; fitted in ``[0, variance]`` when None.
    types : sequence of str
        Structure types, repeated to ``n_structures``.
    min_pairs : int
        Smallest pair count of a lag used in the fit.
    initial_ranges : array_like, shape (n_structures, 3), optional
        Starting ranges [major, semi, minor] per structure.
    initial_nugget : float, optional
        Starting nugget when it is fitted (default: 10 % of the sill).
    max_range : float, optional
        Upper bound of every range (default: 1.5 times the largest lag distance; no lag
        constrains a range much beyond it, and a long low structure would otherwise soak up the
        drift of a single realisation's variogram at long lags).
    downhole_directions : tuple of (array (m, 3), array (m,)), optional
        Unit directions of the holes and their weights (e.g. samples per hole). Rows whose
        ``direction`` is ``"downhole"`` are then modelled as the weighted mean of the model along
        every hole, so holes of mixed orientation are fitted correctly; without it they are
        modelled along their ``azimuth`` and ``dip`` (the mean hole direction).
    pairs : tuple of (array (m,) int, array (m, 3)), optional
        A sample of the separation vectors behind the rows of ``experimental`` (row position,
        vector), e.g. from :func:`~estimator.variography.experimental.sample_pairs`. A row with
        sampled pairs is modelled as the mean of the model over them, which is what its
        experimental gamma estimates whatever the direction tolerances; other rows are modelled
        at ``distance`` along their direction.
    nugget_floor : float
        Lower bound of a fitted nugget (e.g. a fraction of the down-hole nugget), clipped to
        below the total sill.
    max_anisotropy : float, optional
        Largest ratio between two ranges of one structure (e.g. major / minor); 0 or None: no
        bound. Initial ranges are clipped to it.
    tie_minor : bool
        Give every structure's minor axis the shorter of its other two ranges instead of fitting
        it, for data in one plane (2-D data sets): no pair has a separation along the minor
        axis, so nothing else would decide its range, and this keeps it the minor axis.
    ordered : bool
        Keep every structure's ranges ordered along the axes of ``angles`` (major >= semi-major
        >= minor), for axes found from the data: the fit then cannot swap the major axis the
        orientation search found for another on a small difference in ranges.

    Returns
    -------
    model : VariogramModel
        Structures ordered short to long; ranges ``[major, semi, minor]`` along the axes of
        ``angles``; without ``ordered`` a fitted "semi" may exceed the "major" (see
        :func:`~estimator.variography.directions.order_axes`).
    info : dict
        ``cost``, ``n_lags_used``, ``warnings`` (list of str).

    Notes
    -----
    Residuals are ``sqrt(n_pairs) * (model - gamma)``, the model taken over the lag's sampled
    pairs or at the vector ``distance * u``.
    Sills are parametrised by stick-breaking fractions in [0, 1] so they always sum to
    ``variance - nugget``, and each structure's ranges are the previous one's times factors >= 1.
    """
    types = _structure_types(tuple(types), n_structures)
    info = {"warnings": []}
    for name, g in experimental.groupby("direction", sort=False):
        if (g["n_pairs"] >= min_pairs).sum() == 0 and not (tie_minor and name == "minor"):
            # (in 2-D data no pair is separated along the minor axis: nothing to say)
            info["warnings"].append(
                f"direction {name!r}: no lag with at least {min_pairs} pairs; left out of the fit"
            )
    use = (
        np.isfinite(experimental["azimuth"]).to_numpy()
        & np.isfinite(experimental["gamma"]).to_numpy()
        & (experimental["n_pairs"] >= min_pairs).to_numpy()
    )
    t = experimental[use]
    p_row, p_vec = _pairs_of_rows(pairs, use)
    vec = t["distance"].to_numpy()[:, None] * direction_vector(
        t["azimuth"].to_numpy(), t["dip"].to_numpy()
    )
    gam, wt = t["gamma"].to_numpy(), np.sqrt(t["n_pairs"].to_numpy(float))
    dh_rows = np.zeros(len(t), dtype=bool)
    if downhole_directions is not None:
        hole_u, hole_w = (np.asarray(a, float) for a in downhole_directions)
        hole_w = hole_w / hole_w.sum()
        dh_rows = (t["direction"] == "downhole").to_numpy()
        dh_vec = (t["distance"].to_numpy()[dh_rows, None, None] * hole_u[None, :, :]).reshape(-1, 3)

    p_n = np.bincount(p_row, minlength=len(t)).astype(float)
    p_has = p_n > 0

    def model_at(nug, sills, rng):
        g = nested_gamma(vec, nug, sills, rng, angles, types)
        if p_has.any():
            gp = nested_gamma(p_vec, nug, sills, rng, angles, types)
            g[p_has] = (np.bincount(p_row, weights=gp, minlength=len(t)) / np.maximum(p_n, 1))[
                p_has
            ]
        if dh_rows.any():
            gd = nested_gamma(dh_vec, nug, sills, rng, angles, types).reshape(-1, hole_u.shape[0])
            g[dh_rows] = gd @ hole_w
        return g

    info["n_lags_used"] = len(t)
    dmax = (
        float(np.nanmax(experimental["distance"]))
        if np.isfinite(experimental["distance"]).any()
        else 1.0
    )
    max_range = 1.5 * dmax if max_range is None else float(max_range)
    if initial_ranges is None:
        initial_ranges = [
            dmax * (i + 1) / (n_structures + 1) * np.array([1.0, 0.7, 0.4])
            for i in range(n_structures)
        ]
    r0 = np.maximum(np.asarray(initial_ranges, float).reshape(n_structures, 3), 1e-6 * dmax)
    if len(t) < n_structures + 2:
        info["warnings"].append(
            f"only {len(t)} lags with at least {min_pairs} pairs; ranges not fitted (initial values kept)"
        )
        total = variance if variance is not None else float(np.nanmax(experimental["gamma"]))
        nug = 0.0 if nugget is None else nugget
        sills = np.full(n_structures, (total - nug) / n_structures)
        info["cost"] = math.nan
        if ordered:
            r0 = np.minimum.accumulate(r0, axis=1)
        if tie_minor:
            r0[:, 2] = r0[:, :2].min(axis=1)
        return _model(nug, sills, r0, angles, types), info
    gmax = float(np.max(gam))
    log_max = np.log(max_range)
    log_lo = np.log(1e-3 * dmax)
    span = math.log(max_anisotropy) if max_anisotropy else None
    r0 = np.minimum(r0, max_range)
    if span is None and not ordered:
        q0 = np.log(r0[0]).tolist()
        for i in range(1, n_structures):
            lr = np.log(r0[i - 1])
            gap = np.maximum(log_max - lr, 1e-12)
            q0 += np.clip((np.log(np.maximum(r0[i], r0[i - 1])) - lr) / gap, 0.0, 1.0).tolist()
        lo = [log_lo] * 3 + [0.0] * 3 * (n_structures - 1)
        hi = [log_max] * 3 + [1.0] * 3 * (n_structures - 1)
        n_shift = 3
    else:
        q0 = _range_params(r0, n_structures, log_lo, log_max, span, ordered)
        lo = [log_lo] + [0.0] * (3 * n_structures - 1)
        hi = [log_max] + [1.0] * (3 * n_structures - 1)
        n_shift = 1
    extra0, elo, ehi = [], [], []
    if variance is None:
        extra0, elo, ehi = [gmax], [1e-9], [3.0 * gmax]
    if nugget is None:
        f0 = 0.1
        if initial_nugget is not None and np.isfinite(initial_nugget):
            f0 = initial_nugget / (variance if variance is not None else gmax)
        flo = float(np.clip(nugget_floor / (variance if variance is not None else gmax), 0, 0.95))
        f0 = float(np.clip(f0, flo, 1.0))
        extra0, elo, ehi = [*extra0, f0], [*elo, flo], [*ehi, 1.0]
    fr0 = [1.0 / (n_structures - i) for i in range(n_structures - 1)]
    p0 = np.array(q0 + extra0 + fr0)
    lo, hi = np.array(lo + elo + [0.0] * len(fr0)), np.array(hi + ehi + [1.0] * len(fr0))
    p0 = np.clip(p0, lo + 1e-9, hi - 1e-9)

    def resid(p):
        rng, sills, nug, _ = _unpack(
            p, n_structures, variance, nugget, log_max, log_lo, span, tie_minor, ordered
        )
        return wt * (model_at(nug, sills, rng) - gam)

    best = None
    for scale in (1.0, 0.5, 2.0):
        start = p0.copy()
        sl = slice(0, n_shift)
        start[sl] = np.clip(p0[sl] + np.log(scale), lo[sl] + 1e-9, hi[sl] - 1e-9)
        res = least_squares(resid, start, bounds=(lo, hi), max_nfev=100 * len(p0))
        if best is None or res.cost < best.cost:
            best = res
    rng, sills, nug, _ = _unpack(
        best.x, n_structures, variance, nugget, log_max, log_lo, span, tie_minor, ordered
    )
    info["cost"] = float(best.cost)
    return _model(nug, sills, rng, angles, types), info


def _pairs_of_rows(pairs, use) -> tuple[np.ndarray, np.ndarray]:
    """Sampled pairs of the rows kept (``use``), re-indexed to positions among those rows."""
    if pairs is None:
        return np.zeros(0, np.int64), np.zeros((0, 3))
    rows, vec = np.asarray(pairs[0], dtype=np.int64), np.asarray(pairs[1], dtype=float)
    new = np.cumsum(use) - 1
    keep = (rows >= 0) & (rows < use.size)
    keep[keep] = use[rows[keep]]
    return new[rows[keep]], vec[keep]


def _model(nugget, sills, ranges, angles, types) -> VariogramModel:
    ang = tuple(round(float(a), 6) for a in angles)
    return VariogramModel(
        float(nugget),
        tuple(
            Structure(k, float(c), tuple(float(x) for x in r), ang)
            for c, r, k in zip(sills, ranges, types, strict=True)
        ),
    )


def scale_model(model: VariogramModel, factor: float) -> VariogramModel:
    """Multiply the nugget and every sill by ``factor`` (normal scores back to grade units)."""
    return VariogramModel(
        model.nugget * factor,
        tuple(Structure(s.type, s.sill * factor, s.ranges, s.angles) for s in model.structures),
    )


def variography(
    xyz,
    values,
    hole_ids=None,
    settings: VariographySettings | dict | None = None,
    *,
    depths=None,
) -> tuple[VariogramModel, pd.DataFrame, dict]:
    """Fit the variogram model of one domain and grade from its composites.

    Parameters
    ----------
    xyz : array_like, shape (n, 3)
        Composite positions (x, y, z), data units.
    values : array_like, shape (n,)
        Grades; NaN rows are left out.
    hole_ids : array_like, shape (n,), optional
        Hole of each composite (samples of a hole in down-hole order); enables the down-hole
        variogram and the nugget from it. None: positioned samples, each its own hole (no
        down-hole variogram, no nugget floor; the lag is the closest sample spacing).
    settings : VariographySettings or dict, optional
        Stage settings (defaults when None).
    depths : array_like, shape (n,), optional
        Along-hole depth of each composite for the down-hole variogram.

    Returns
    -------
    model : VariogramModel
        In grade units (``model.to_dict()`` is the config's own format).
    table : pandas.DataFrame
        Experimental variograms (principal directions, down-hole, omnidirectional) with columns
        ``direction, azimuth, dip, lag, distance, gamma, n_pairs`` plus ``model`` (fitted gamma).
    diagnostics : dict
        ``warnings`` (list of str; also raised as one ``EstimationWarning``), ``n_samples``,
        ``variance``, ``lag``, ``angles`` (the axes of the structure with the largest sill, after
        :func:`~estimator.variography.directions.order_axes`), ``angles_fit`` (the shared frame
        the structures were fitted in), ``angles_fan``, ``nugget_downhole``, ``downhole``
        (whether there was a down-hole variogram), ``planar``, ``cost``,
        ``normal_score_factor``, ``settings``.

    Notes
    -----
    With ``normal_score``, variograms are computed and fitted on normal scores (total sill = the
    scores' variance) and the nugget and sills are multiplied by ``var(grade) / var(scores)``;
    ranges and the relative nugget are kept (see :func:`normal_scores`).

    Samples that share no hole with another (``hole_ids`` None, or every id distinct) have no
    down-hole variogram, so nothing floors the nugget: the first lags, at the closest sample
    spacing, decide it. Data in one plane (a 2-D data set) have no pair along the minor axis;
    its range is then the shorter in-plane range (``diagnostics["planar"]``).
    """
    s = (
        settings
        if isinstance(settings, VariographySettings)
        else VariographySettings.from_dict(settings)
    )
    xyz = np.asarray(xyz, dtype=float)
    values = np.asarray(values, dtype=float).ravel()
    keep = np.isfinite(values) & np.all(np.isfinite(xyz), axis=1)
    xyz, values = xyz[keep], values[keep]
    # Positioned samples without holes: each sample is its own hole (lag, cross-validation).
    hid = np.arange(values.size) if hole_ids is None else np.asarray(hole_ids)[keep]
    dep = None if depths is None else np.asarray(depths, float)[keep]
    diag = {"warnings": [], "n_samples": int(values.size), "settings": s.to_dict()}
    if values.size < 2:
        msg = f"variography needs at least 2 samples with values; got {values.size}"
        raise DataError(msg)
    types = _structure_types(s.types, s.n_structures)
    variance = float(values.var())
    diag["variance"] = variance
    axes, spread = principal_axes(xyz)
    planar = bool(spread[2] <= 1e-9 * max(spread[0], 1e-300))
    diag["planar"] = planar
    in_holes = _has_holes(hid)
    diag["downhole"] = False
    lag, n_lags = s.lag, int(s.n_lags)
    if lag is None:
        lag, n_lags = default_lag(xyz, hid, n_lags)
    diag["lag"], diag["n_lags"] = lag, n_lags
    if variance <= 1e-12 * max(1.0, float(np.mean(values)) ** 2):
        diag["warnings"].append(
            f"zero variance ({variance:g}): nominal unit-sill isotropic model, nothing fitted"
        )
        r = n_lags * lag
        model = VariogramModel(0.0, (Structure("spherical", 1.0, (r, r, r), (0.0, 0.0, 0.0)),))
        return (
            model,
            pd.DataFrame(
                columns=[
                    "direction",
                    "azimuth",
                    "dip",
                    "lag",
                    "distance",
                    "gamma",
                    "n_pairs",
                    "model",
                ]
            ),
            _warn(diag),
        )
    work, factor = values, 1.0
    if s.normal_score:
        work = normal_scores(values)
        factor = variance / float(work.var())
    diag["normal_score_factor"] = factor
    total = (
        None
        if s.measure == "pairwise_relative"
        else (1.0 if s.measure == "correlogram" else float(work.var()))
    )
    common = {"lag_tol": s.lag_tolerance, "measure": s.measure}
    # Down-hole variogram and nugget.
    tables, nugget = [], s.nugget
    nug_dh = math.nan
    if in_holes:
        step = _downhole_step(xyz, hid, dep)
        dlag = s.downhole_lag if s.downhole_lag is not None else step
        if np.isfinite(dlag) and dlag > 0:
            dh = downhole_variogram(
                work, hid, lag=dlag, n_lags=s.downhole_n_lags, xyz=xyz, depths=dep, **common
            )
            tables.append(dh)
            nug_dh = nugget_from_downhole(dh, s.nugget_lags, total)
            diag["downhole"] = True
        else:
            diag["warnings"].append(
                "the samples of each hole lie at one point: no down-hole variogram"
            )
    diag["nugget_downhole"] = nug_dh
    nug_floor = 0.0
    if nugget is None and s.nugget_method == "downhole" and np.isfinite(nug_dh):
        nugget = nug_dh
    elif nugget is not None:
        nugget = nugget / factor
    elif np.isfinite(nug_dh):
        nug_floor = s.nugget_floor * nug_dh
    # Orientation: the plane of a tabular domain, or fans refined on the variogram map; when the
    # composites are only somewhat tabular, both are fitted and cross-validation decides.
    ratio = spread[2] / spread[1] if spread[1] > 0 else 1.0
    candidates, labels, diag["angles_fan"] = [], [], None
    if s.angles is not None:
        candidates.append((s.angles, None, None))
        labels.append("given")
    else:
        if ratio < s.tabular_check or ratio < s.tabular:
            plane = plane_orientation(
                xyz, work, axes[2], lag, n_lags, s, total, nugget, types, diag
            )
            if plane is not None:
                candidates.append(plane)
                labels.append("plane")
        if not candidates or (ratio >= s.tabular and not planar):
            candidates.append(
                free_orientation(xyz, work, lag, n_lags, s, total, nugget, types, diag)
            )
            labels.append("free")

    def fit_at(angles, map_ranges, init_ranges):
        dirs = principal_directions(s, map_ranges)
        pr = experimental_variogram(
            xyz, work, lag=lag, n_lags=n_lags, directions=dirs, frame=angles, **common
        )
        pairs = None
        if s.pair_sample > 0:
            pairs = sample_pairs(
                xyz,
                lag=lag,
                n_lags=n_lags,
                directions=dirs,
                lag_tol=s.lag_tolerance,
                frame=angles,
                per_lag=s.pair_sample,
                n_pairs=pr["n_pairs"].to_numpy(),
            )
        fit_rows = [pr] + ([tables[0]] if tables and s.include_downhole else [])
        model, info = fit_model(
            pd.concat(fit_rows, ignore_index=True),
            angles,
            s.n_structures,
            total,
            nugget,
            types,
            min_pairs=s.min_pairs,
            initial_ranges=init_ranges,
            initial_nugget=nug_dh,
            nugget_floor=nug_floor,
            max_range=n_lags * lag if s.lag is None else None,
            downhole_directions=hole_directions(xyz, hid) if diag["downhole"] else None,
            pairs=pairs,
            max_anisotropy=s.max_anisotropy,
            tie_minor=planar,
            ordered=s.angles is None,
        )
        return model, info, pr

    fits = [fit_at(*c) for c in candidates]
    pick = 0
    if len(fits) > 1:
        scores = [_cv_rmse(xyz, work, hid, f[0], n_lags * lag) for f in fits]
        diag["orientation_cv"] = dict(zip(labels, scores, strict=True))
        pick = int(np.nanargmin(scores)) if np.isfinite(scores).any() else len(fits) - 1
    angles = candidates[pick][0]
    diag["orientation"] = labels[pick]
    diag["angles_fit"] = tuple(float(a) for a in angles)
    model, info, pr = fits[pick]
    # Ranges ordered major >= semi-major >= minor. Found axes were kept in order by the fit; a fit
    # along given angles may find a longer range on another axis: relabel (same function).
    model = order_axes(model)
    main = max(model.structures, key=lambda st: st.sill)
    diag["angles"] = tuple(float(a) for a in main.angles)
    omni = experimental_variogram(xyz, work, lag=lag, n_lags=n_lags, directions=[OMNI], **common)
    diag["warnings"].extend(info["warnings"])
    diag["cost"] = info["cost"]
    table = pd.concat([pr, *tables, omni], ignore_index=True)
    vec = table["distance"].to_numpy()[:, None] * direction_vector(
        table["azimuth"].to_numpy(), table["dip"].to_numpy()
    )
    table["model"] = np.where(
        np.isfinite(vec).all(axis=1), model.variogram(np.nan_to_num(vec)), np.nan
    )
    if factor != 1.0:
        model = scale_model(model, factor)
    return model, table, _warn(diag)


def _cv_rmse(xyz, values, hole_ids, model: VariogramModel, reach: float, folds: int = 10):
    """Leave-holes-out cross-validation RMSE of ``model`` by ordinary kriging.

    The search is the same for every model (a sphere of radius ``reach``, 16 samples, at most 4
    per hole), so models are compared on the same composites and neighbours.
    """
    from estimator.kriging.estimate import SearchPass
    from estimator.validation import cross_validate, summary

    spass = SearchPass(
        ranges=(reach, reach, reach),
        angles=(0.0, 0.0, 0.0),
        min_samples=4,
        max_samples=16,
        max_per_hole=4,
    )
    return float(
        summary(cross_validate(xyz, values, hole_ids, model, [spass], folds=folds))["rmse"]
    )


def default_lag(xyz, hole_ids=None, n_lags: int = 12) -> tuple[float, int]:
    """Lag and number of lags suited to drillhole data and to positioned samples.

    The lag is the median distance from a composite to the nearest composite of another hole (the
    scale at which holes are compared; lags shorter than it only see pairs down the holes), or
    half the longest principal extent of the composites over ``n_lags`` when that is shorter.
    The number of lags is raised, when needed, so the lags reach half that extent (at most
    ``2.5 * n_lags``). Positioned samples (``hole_ids`` None, or every id distinct) are each their
    own hole, so the lag is the closest sample spacing (median nearest-neighbour distance). All
    samples in one hole: half the diagonal / ``n_lags``.

    Parameters
    ----------
    xyz : array_like, shape (n, 3)
        Composite positions.
    hole_ids : array_like, shape (n,), optional
        Hole of each composite; None: each sample its own hole.
    n_lags : int
        Smallest number of lags.

    Returns
    -------
    lag : float
    n_lags : int
    """
    xyz = np.asarray(xyz, dtype=float)
    extent = float(np.linalg.norm(np.ptp(xyz, axis=0))) if len(xyz) else 0.0
    fallback = max(0.5 * extent / n_lags, 1e-9)
    if len(xyz) < 3:
        return fallback, int(n_lags)
    if hole_ids is None:
        hole_ids = np.arange(len(xyz))
    codes = pd.factorize(pd.Series(np.asarray(hole_ids)))[0]
    if codes.max() < 1:
        return fallback, int(n_lags)
    tree = cKDTree(xyz)
    nn = np.full(len(xyz), np.nan)
    todo = np.arange(len(xyz))
    k = 16
    while todo.size:
        kk = min(k, len(xyz))
        dist, idx = tree.query(xyz[todo], k=kk)
        other = codes[np.minimum(idx, len(xyz) - 1)] != codes[todo, None]
        other &= np.isfinite(dist)
        found = other.any(axis=1)
        nn[todo[found]] = dist[found, np.argmax(other[found], axis=1)]
        todo = todo[~found]
        if kk == len(xyz):
            break
        k *= 4
    lag = float(np.nanmedian(nn)) if np.isfinite(nn).any() else fallback
    axes, _ = principal_axes(xyz)
    reach = 0.5 * float(np.ptp(xyz @ axes[0]))
    lag = min(lag, reach / n_lags)
    if not lag > 0:
        return fallback, int(n_lags)
    n = int(np.clip(math.ceil(reach / lag), n_lags, math.ceil(2.5 * n_lags)))
    return lag, n


def hole_directions(xyz, hole_ids) -> tuple[np.ndarray, np.ndarray]:
    """Unit vector from first to last sample of each hole with two or more samples, and its sample count."""
    codes = pd.factorize(pd.Series(np.asarray(hole_ids)))[0]
    xyz = np.asarray(xyz, float)
    order = np.argsort(codes, kind="stable")
    c, p = codes[order], xyz[order]
    first = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    last = np.r_[first[1:] - 1, c.size - 1]
    d = p[last] - p[first]
    n = np.linalg.norm(d, axis=1)
    ok = n > 0
    return d[ok] / n[ok, None], (last - first + 1)[ok].astype(float)


def _has_holes(hole_ids) -> bool:
    """Whether some hole holds two or more samples (else: positioned samples, no holes)."""
    codes = pd.factorize(pd.Series(np.asarray(hole_ids)))[0]
    return bool(codes.size and np.bincount(codes).max() > 1)


def _downhole_step(xyz, hid, dep) -> float:
    """Median distance between consecutive samples of a hole (NaN if none)."""
    codes = pd.factorize(pd.Series(hid))[0]
    same = codes[1:] == codes[:-1]
    d = np.abs(np.diff(dep)) if dep is not None else np.linalg.norm(np.diff(xyz, axis=0), axis=1)
    d = d[same]
    d = d[d > 0]
    return float(np.median(d)) if d.size else math.nan


def _warn(diag: dict) -> dict:
    if diag["warnings"]:
        warnings.warn(
            "variography: " + "; ".join(diag["warnings"]), EstimationWarning, stacklevel=3
        )
    return diag
