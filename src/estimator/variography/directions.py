"""Finding the axes of continuity: direction fans and an anisotropic fit to the 3D variogram map.

A geologist looks for the direction of greatest continuity (the major axis), then the best
direction in the plane perpendicular to it (semi-major); the minor axis is perpendicular to both.
:func:`find_axes_fan` does that on fans of directional variograms, scoring each direction by the
pair-weighted mean gamma over the short lags (lower = more continuous). :func:`fit_orientation`
then refines the orientation by fitting a nested anisotropic model, free angles included, to the
3D variogram map (bins by separation vector), which uses every pair and is not smeared by
direction tolerances. Orientations are GSLIB angles (SPEC section 6), as
:func:`estimator.variography.models.rotation_matrix` reads them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from estimator.variography.experimental import (
    Direction,
    experimental_variogram,
    variogram_map,
    vector_to_azimuth_dip,
)
from estimator.variography.models import correlation, rotation_matrix


def axes_to_gslib_angles(major, semi) -> tuple[float, float, float]:
    """GSLIB angles ``(ang1, ang2, ang3)`` whose rotation matrix has rows ``major, semi, minor``.

    Parameters
    ----------
    major, semi : array_like, shape (3,)
        Major and semi-major axes in (x, y, z); signs are free and ``semi`` need only not be
        parallel to ``major`` (its part along ``major`` is removed).

    Returns
    -------
    tuple of 3 floats
        ``ang1`` in [0, 360), ``ang2`` in [-90, 0], ``ang3`` in (-90, 90]; ``rotation_matrix`` of
        them gives back the axes up to sign.

    Examples
    --------
    >>> R = rotation_matrix([30.0, -20.0, 15.0])
    >>> [round(a, 6) for a in axes_to_gslib_angles(R[0], R[1])]
    [30.0, -20.0, 15.0]
    """
    m = np.asarray(major, dtype=float)
    m = m / np.linalg.norm(m)
    if m[2] > 0:
        m = -m
    ang1, ang2 = vector_to_azimuth_dip(m)
    s = np.asarray(semi, dtype=float)
    s = s - (s @ m) * m
    if np.linalg.norm(s) < 1e-12:
        msg = "semi-major axis is parallel to the major axis"
        raise ValueError(msg)
    s = s / np.linalg.norm(s)
    r0 = rotation_matrix([ang1, ang2, 0.0])
    theta = np.rad2deg(np.arctan2(s @ r0[2], s @ r0[1]))
    # The axis is a line: theta and theta +- 180 are the same; keep (-90, 90].
    if theta <= -90.0:
        theta += 180.0
    elif theta > 90.0:
        theta -= 180.0
    return float(ang1), float(ang2), float(theta)


def order_axes(model):
    """The same model with each structure's axes relabelled so ranges are major >= semi >= minor.

    A fit with one shared orientation may find a longer range along the axis it calls semi-major
    (or minor). Sorting the numbers alone would change the model; here the axes are permuted with
    their ranges and the GSLIB angles recomputed from the permuted axes, so every structure is
    the same function of the separation vector (up to rounding). Structures already in order are
    returned unchanged; structures ordered differently end with different angles.

    Examples
    --------
    >>> from estimator.variography.models import Structure, VariogramModel
    >>> m = VariogramModel(0.1, (Structure("spherical", 0.9, (50.0, 80.0, 10.0), (30.0, 0, 0)),))
    >>> st = order_axes(m).structures[0]
    >>> st.ranges, [round(a, 6) for a in st.angles]
    ((80.0, 50.0, 10.0), [300.0, 0.0, 0.0])
    """
    from estimator.variography.models import Structure, VariogramModel

    out = []
    for st in model.structures:
        r = np.asarray(st.ranges, dtype=float)
        order = np.argsort(-r, kind="stable")
        if np.all(order == np.arange(3)):
            out.append(st)
            continue
        axes = rotation_matrix(st.angles)[order]
        angles = axes_to_gslib_angles(axes[0], axes[1])
        out.append(Structure(st.type, st.sill, tuple(float(x) for x in r[order]), angles))
    return VariogramModel(model.nugget, tuple(out))


def fan_directions(step: float = 15.0, tolerance: float = 22.5, **kwargs) -> list[Direction]:
    """Directions on the lower hemisphere: azimuth every ``step`` for dips 0, -step, ..., -90.

    Extra keyword arguments go to every :class:`Direction` (e.g. bandwidths).
    """
    dirs = []
    dips = np.arange(0.0, 90.0 + 1e-9, step)
    for dip in dips:
        if dip >= 90.0 - 1e-9:
            dirs.append(Direction(0.0, -90.0, tolerance=90.0, dip_tolerance=tolerance, **kwargs))
            continue
        stop = 180.0 if dip == 0.0 else 360.0
        for az in np.arange(0.0, stop - 1e-9, step):
            dirs.append(Direction(float(az), -float(dip), tolerance=tolerance, **kwargs))
    return dirs


def _scores(table: pd.DataFrame, labels, max_lag: float) -> np.ndarray:
    """Pair-weighted mean gamma over lags up to ``max_lag`` for each direction label."""
    t = table[(table["lag"] <= max_lag) & (table["n_pairs"] > 0)]
    g = (t["gamma"] * t["n_pairs"]).groupby(t["direction"]).sum()
    n = t["n_pairs"].groupby(t["direction"]).sum()
    score = (g / n).reindex(labels)
    return score.to_numpy(dtype=float)


def find_axes_fan(
    xyz,
    values,
    *,
    lag: float,
    n_lags: int,
    step: float = 15.0,
    tolerance: float = 22.5,
    reference_lag: float | None = None,
    min_pairs: int = 30,
    measure: str = "semivariogram",
) -> tuple[tuple[float, float, float], pd.DataFrame]:
    """Major, semi-major and minor axes from fans of directional variograms.

    Parameters
    ----------
    xyz, values
        Samples, as :func:`~estimator.variography.experimental.experimental_variogram`.
    lag, n_lags
        Lags of the fan variograms.
    step : float
        Angular spacing of the fans, degrees.
    tolerance : float
        Angular tolerance of each fan direction, degrees.
    reference_lag : float, optional
        Directions are scored on lags up to this distance (default: half the largest lag).
    min_pairs : int
        Directions with fewer pairs up to the reference lag are not candidates.
    measure : str
        Variogram measure.

    Returns
    -------
    angles : tuple of 3 floats
        GSLIB angles of the axes found.
    fan : pandas.DataFrame
        ``direction, azimuth, dip, score, n_pairs, fan`` (``fan`` = "major" or "semi").
    """
    ref = 0.5 * n_lags * lag if reference_lag is None else float(reference_lag)
    kmax = max(1, int(np.floor(ref / lag)))

    def run(dirs, fan):
        t = experimental_variogram(
            xyz, values, lag=lag, n_lags=kmax, directions=dirs, measure=measure
        )
        labels = [d.label for d in dirs]
        npair = t.groupby("direction")["n_pairs"].sum().reindex(labels).to_numpy()
        score = _scores(t, labels, ref)
        score = np.where(npair >= min_pairs, score, np.nan)
        return pd.DataFrame(
            {
                "direction": labels,
                "azimuth": [d.azimuth for d in dirs],
                "dip": [d.dip for d in dirs],
                "score": score,
                "n_pairs": npair,
                "fan": fan,
            }
        )

    fan1 = run(fan_directions(step, tolerance), "major")
    if not np.isfinite(fan1["score"]).any():
        msg = "no direction of the fan has enough pairs to find the axes of continuity"
        raise ValueError(msg)
    best = fan1.loc[fan1["score"].idxmin()]
    r0 = rotation_matrix([best["azimuth"], best["dip"], 0.0])
    thetas = np.arange(0.0, 180.0 - 1e-9, step)
    vecs = np.cos(np.deg2rad(thetas))[:, None] * r0[1] + np.sin(np.deg2rad(thetas))[:, None] * r0[2]
    dirs = []
    for i, v in enumerate(vecs):
        az, dp = vector_to_azimuth_dip(v)
        atol = 90.0 if dp < -90.0 + tolerance else tolerance
        dirs.append(Direction(az, dp, tolerance=atol, dip_tolerance=tolerance, name=f"semi{i}"))
    fan2 = run(dirs, "semi")
    if np.isfinite(fan2["score"]).any():
        semi = vecs[int(np.nanargmin(fan2["score"].to_numpy()))]
    else:
        semi = r0[1]
    return axes_to_gslib_angles(r0[0], semi), pd.concat([fan1, fan2], ignore_index=True)


# -- model evaluation shared with fit.py ------------------------------------------------------
def nested_gamma(vectors, nugget, sills, ranges, angles, types) -> np.ndarray:
    """Semivariogram of a nested model with one orientation, at separation ``vectors`` (> 0).

    ``ranges`` is ``(ns, 3)`` [major, semi, minor]; the nugget is added in full (no zero lag).
    """
    u = np.asarray(vectors, float) @ rotation_matrix(angles).T
    g = np.full(u.shape[0], float(nugget))
    for c, r, kind in zip(sills, ranges, types, strict=True):
        h = np.sqrt(np.sum((u / np.asarray(r, float)) ** 2, axis=1))
        g += c * (1.0 - correlation(kind, h))
    return g


def _unpack(p, ns, variance, nugget):
    """Parameters -> (angles, ranges (ns,3), sills (ns,), nugget). See :func:`fit_orientation`."""
    angles = p[:3]
    ranges = np.exp(p[3 : 3 + 3 * ns]).reshape(ns, 3)
    rest = p[3 + 3 * ns :]
    i = 0
    if nugget is None:
        nug = rest[0] * variance
        i = 1
    else:
        nug = nugget
    fr = rest[i : i + ns - 1]
    w, left = [], 1.0
    for f in fr:
        w.append(left * f)
        left *= 1.0 - f
    w.append(left)
    return angles, ranges, (variance - nug) * np.asarray(w), nug


def fit_orientation(
    xyz,
    values,
    *,
    lag: float,
    n_lags: int,
    variance: float,
    starts,
    n_structures: int = 1,
    types=("spherical",),
    nugget: float | None = None,
    min_pairs: int = 5,
    measure: str = "semivariogram",
) -> dict:
    """Fit a nested model with free orientation to the 3D variogram map.

    Parameters
    ----------
    xyz, values
        Samples.
    lag : float
        Bin size of the map (data units); bins reach ``n_lags * lag``.
    n_lags : int
        Bins from the centre to the edge of the map.
    variance : float
        Total sill (nugget plus structures sum to it).
    starts : sequence of angle triples
        Starting orientations; the fit with the lowest cost wins.
    n_structures : int
        Number of nested structures (sharing the orientation).
    types : sequence of str
        Structure types, repeated to ``n_structures``.
    nugget : float, optional
        Fixed nugget; fitted when None.
    min_pairs : int
        Bins with fewer pairs are left out.
    measure : str
        ``semivariogram`` or ``pairwise_relative``.

    Returns
    -------
    dict
        ``angles, ranges (ns, 3), sills (ns,), nugget, cost, n_bins``; ranges are sorted by
        structure (short first) and within a structure as [major >= semi >= minor].
    """
    types = tuple(types[i % len(types)] for i in range(n_structures))
    vm = variogram_map(xyz, values, cell=lag, n_cells=n_lags, measure=measure)
    vm = vm[vm["n_pairs"] >= min_pairs]
    if len(vm) < 3 * n_structures + 5:
        msg = f"variogram map has only {len(vm)} bins with >= {min_pairs} pairs; cannot fit orientation"
        raise ValueError(msg)
    vec = vm[["dx", "dy", "dz"]].to_numpy()
    gam = vm["gamma"].to_numpy()
    wt = np.sqrt(vm["n_pairs"].to_numpy(dtype=float))
    rmax = n_lags * lag
    lo_r, hi_r = np.log(lag / 4.0), np.log(rmax * 3.0)

    def resid(p):
        ang, rng, sills, nug = _unpack(p, n_structures, variance, nugget)
        return wt * (nested_gamma(vec, nug, sills, rng, ang, types) - gam)

    best = None
    for a in starts:
        r0 = [
            np.log(rmax * (i + 1) / (2.0 * n_structures) * np.array([1.0, 0.7, 0.4]))
            for i in range(n_structures)
        ]
        p0 = np.concatenate([np.asarray(a, float), np.concatenate(r0)])
        lo = np.concatenate([[-np.inf] * 3, [lo_r] * 3 * n_structures])
        hi = np.concatenate([[np.inf] * 3, [hi_r] * 3 * n_structures])
        extra = ([0.2] if nugget is None else []) + [0.5] * (n_structures - 1)
        p0 = np.clip(
            np.concatenate([p0, extra]),
            np.r_[lo, [0.0] * len(extra)] + 1e-9,
            np.r_[hi, [1.0] * len(extra)] - 1e-9,
        )
        res = least_squares(
            resid,
            p0,
            bounds=(np.r_[lo, [0.0] * len(extra)], np.r_[hi, [1.0] * len(extra)]),
            x_scale=np.r_[[30.0] * 3, [0.5] * 3 * n_structures, [0.2] * len(extra)],
            max_nfev=50 * len(p0),
            ftol=1e-6,
            xtol=1e-6,
        )
        if best is None or res.cost < best.cost:
            best = res
    ang, rng, sills, nug = _unpack(best.x, n_structures, variance, nugget)
    # One orientation for all structures: order the axes by the dominant structure's ranges.
    dom = int(np.argmax(sills))
    axes = rotation_matrix(ang)
    order = np.argsort(-rng[dom])
    ang = axes_to_gslib_angles(axes[order[0]], axes[order[1]])
    rng = rng[:, order]
    srt = np.argsort(rng[:, 0])
    return {
        "angles": ang,
        "ranges": rng[srt],
        "sills": sills[srt],
        "nugget": float(nug),
        "types": tuple(types[i] for i in srt),
        "cost": float(best.cost),
        "n_bins": len(vm),
    }


# -- geometry priors --------------------------------------------------------------------------
def principal_axes(xyz) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes of a point cloud (PCA of the positions), longest first.

    Parameters
    ----------
    xyz : array_like, shape (n, 3)
        Positions.

    Returns
    -------
    axes : numpy.ndarray, shape (3, 3)
        Rows are unit axes, by decreasing spread.
    spread : numpy.ndarray, shape (3,)
        Standard deviation of the positions along each axis.
    """
    xyz = np.asarray(xyz, dtype=float)
    if xyz.shape[0] < 3:
        return np.eye(3), np.zeros(3)
    w, v = np.linalg.eigh(np.cov(xyz.T))
    order = np.argsort(-w)
    return v[:, order].T, np.sqrt(np.maximum(w[order], 0.0))


def plane_basis(normal) -> np.ndarray:
    """Rows: two unit axes in the plane normal to ``normal``, then the unit normal.

    The first in-plane axis is horizontal (the strike line) unless the plane is horizontal, when
    it is east-west; the three rows are orthonormal.
    """
    n = np.asarray(normal, dtype=float)
    n = n / np.linalg.norm(n)
    a = np.cross(n, [0.0, 0.0, 1.0])
    if np.linalg.norm(a) < 1e-6:
        a = np.cross(n, [0.0, 1.0, 0.0])
    a = a / np.linalg.norm(a)
    return np.array([a, np.cross(n, a), n])


def fit_plane_orientation(
    xyz,
    values,
    normal,
    *,
    lag: float,
    n_lags: int,
    variance: float,
    types=("spherical",),
    nugget: float | None = None,
    min_pairs: int = 5,
    measure: str = "semivariogram",
    step: float = 30.0,
) -> dict:
    """Major and semi-major axes in the plane normal to ``normal``, fitted on the variogram map.

    A tabular domain's plane fixes its minor axis; what is left is one angle, the direction of
    the major axis in the plane. A fan of directional variograms scored over the short lags
    (:func:`find_axes_plane`) hardly tells 1.5:1 from isotropy and is quantised by its step. Here
    a one-structure model with ranges along an in-plane major axis, the in-plane axis across it
    and the normal, and a nugget, is fitted by least squares to the variogram map (bins by
    separation vector, so every pair counts once and no tolerance cone smears the directions),
    from starts every ``step`` degrees in the plane; the lowest cost wins and the longer in-plane
    range names the major axis.

    The map reaches half the lags (``(n_lags + 1) // 2`` cells of ``lag``) and each bin weighs
    ``n_pairs / h^2`` (``h`` its in-plane separation in lags, at least 1; gstat's default
    weights): the anisotropy shows at short separations, and with equal weights the many bins
    near the sill, fitting the drift of one realisation, can win with a long-range, high-nugget
    model. Cells across the plane are thinner (``lag`` times the ratio of the spread across the
    plane to the smaller spread in it, at least ``lag / 20``), so pairs at different depths in a
    thin lens are told apart. Bins whose in-plane separation is under half a cell (pairs down
    the same hole, mostly) are left out: they say nothing about the direction in the plane.

    Parameters
    ----------
    xyz, values
        Samples, as :func:`~estimator.variography.experimental.experimental_variogram`.
    normal : array_like, shape (3,)
        Normal of the plane (the minor axis).
    lag : float
        In-plane size of a map cell (data units).
    n_lags : int
        Number of lags of the experimental variograms; the map reaches half of them.
    variance : float
        Total sill (nugget plus structure).
    types : sequence of str
        The last one is the structure type.
    nugget : float, optional
        Fixed nugget; fitted in ``[0, variance]`` when None.
    min_pairs : int
        Bins with fewer pairs are left out.
    measure : str
        ``semivariogram`` or ``pairwise_relative``.
    step : float
        Spacing of the starting in-plane angles, degrees.

    Returns
    -------
    dict
        ``angles`` (GSLIB, minor axis along ``normal``), ``ranges`` (major >= semi-major, then
        across the plane), ``nugget``, ``cost``, ``n_bins``.

    Raises
    ------
    ValueError
        When the map has too few bins to fit.
    """
    kind = tuple(types)[-1]
    basis = plane_basis(normal)
    local = np.asarray(xyz, dtype=float) @ basis.T
    spread = local.std(axis=0)
    thin = spread[2] / min(spread[0], spread[1]) if min(spread[0], spread[1]) > 0 else 1.0
    squeeze = 1.0 / float(np.clip(thin, 0.05, 1.0))  # across-plane cells = lag / squeeze
    local[:, 2] *= squeeze
    nmap = max(2, (n_lags + 1) // 2)
    vm = variogram_map(local, values, cell=lag, n_cells=nmap, measure=measure)
    centre = (np.abs(vm["dx"]) < 0.5 * lag) & (np.abs(vm["dy"]) < 0.5 * lag)
    vm = vm[(vm["n_pairs"] >= min_pairs) & ~centre]
    if len(vm) < 10:
        msg = f"variogram map in the plane has only {len(vm)} bins with >= {min_pairs} pairs"
        raise ValueError(msg)
    d = vm[["dx", "dy", "dz"]].to_numpy(dtype=float, copy=True)
    d[:, 2] /= squeeze
    gam = vm["gamma"].to_numpy(dtype=float)
    # Squared weights n / h^2 (gstat's default): the cells at short separations, where the
    # anisotropy shows, are not outvoted by the many cells near the sill.
    wt = np.sqrt(vm["n_pairs"].to_numpy(dtype=float)) / np.maximum(
        np.hypot(d[:, 0], d[:, 1]) / lag, 1.0
    )
    rmax = nmap * lag
    lo = np.array([-np.inf, np.log(lag / 4.0), np.log(lag / 4.0), np.log(lag / 4.0 / squeeze)])
    hi = np.array([np.inf, *[np.log(3.0 * n_lags * lag)] * 3])
    if nugget is None:
        lo, hi = np.r_[lo, 0.0], np.r_[hi, 1.0]

    def unpack(p):
        nug = p[4] * variance if nugget is None else nugget
        return p[0], np.exp(p[1:4]), nug

    def resid(p):
        phi, r, nug = unpack(p)
        c, s = np.cos(np.deg2rad(phi)), np.sin(np.deg2rad(phi))
        h = np.sqrt(
            ((d[:, 0] * c + d[:, 1] * s) / r[0]) ** 2
            + ((d[:, 1] * c - d[:, 0] * s) / r[1]) ** 2
            + (d[:, 2] / r[2]) ** 2
        )
        return wt * (nug + (variance - nug) * (1.0 - correlation(kind, h)) - gam)

    best = None
    r0 = np.log([0.5 * rmax, 0.3 * rmax, 0.3 * rmax / squeeze])
    for phi0 in np.arange(0.0, 180.0 - 1e-9, step):
        p0 = np.r_[phi0, r0, [0.2] if nugget is None else []]
        p0 = np.clip(p0, lo + 1e-9, hi - 1e-9)
        res = least_squares(
            resid,
            p0,
            bounds=(lo, hi),
            x_scale=np.r_[30.0, [0.5] * 3, [0.2] if nugget is None else []],
            max_nfev=50 * len(p0),
        )
        if best is None or res.cost < best.cost:
            best = res
    phi, r, nug = unpack(best.x)
    if r[1] > r[0]:
        phi, r = phi + 90.0, r[[1, 0, 2]]
    c, s = np.cos(np.deg2rad(phi)), np.sin(np.deg2rad(phi))
    major, semi = c * basis[0] + s * basis[1], c * basis[1] - s * basis[0]
    return {
        "angles": axes_to_gslib_angles(major, semi),
        "ranges": r,
        "nugget": float(nug),
        "cost": float(best.cost),
        "n_bins": len(vm),
    }


def find_axes_plane(
    xyz,
    values,
    normal,
    *,
    lag: float,
    n_lags: int,
    step: float = 15.0,
    tolerance: float = 22.5,
    min_pairs: int = 30,
    measure: str = "semivariogram",
) -> tuple[tuple[float, float, float], pd.DataFrame]:
    """Major and semi-major axes in the plane normal to ``normal`` (the minor axis), by a fan.

    Directions every ``step`` degrees in the plane are scored as in :func:`find_axes_fan` (the
    pair-weighted mean gamma up to half the largest lag); the most continuous one is the major
    axis. Meant for tabular domains, whose plane (from :func:`principal_axes`) is a sturdier
    estimate of the minor axis than a 3D fan on sparse drilling.

    Returns
    -------
    angles : tuple of 3 floats
        GSLIB angles; the minor axis is ``normal``.
    fan : pandas.DataFrame
        ``direction, azimuth, dip, score, n_pairs`` of the in-plane directions.
    """
    a, b, n = plane_basis(normal)
    thetas = np.deg2rad(np.arange(0.0, 180.0 - 1e-9, step))
    vecs = np.cos(thetas)[:, None] * a + np.sin(thetas)[:, None] * b
    dirs = []
    for i, v in enumerate(vecs):
        az, dp = vector_to_azimuth_dip(v)
        atol = 90.0 if dp < -90.0 + tolerance else tolerance
        dirs.append(Direction(az, dp, tolerance=atol, dip_tolerance=tolerance, name=f"plane{i}"))
    ref = 0.5 * n_lags * lag
    kmax = max(1, int(np.floor(ref / lag)))
    t = experimental_variogram(xyz, values, lag=lag, n_lags=kmax, directions=dirs, measure=measure)
    labels = [d.label for d in dirs]
    npair = t.groupby("direction")["n_pairs"].sum().reindex(labels).to_numpy()
    score = np.where(npair >= min_pairs, _scores(t, labels, ref), np.nan)
    fan = pd.DataFrame(
        {
            "direction": labels,
            "azimuth": [d.azimuth for d in dirs],
            "dip": [d.dip for d in dirs],
            "score": score,
            "n_pairs": npair,
        }
    )
    if not np.isfinite(score).any():
        msg = "no in-plane direction has enough pairs to find the major axis"
        raise ValueError(msg)
    major = vecs[int(np.nanargmin(score))]
    return axes_to_gslib_angles(major, np.cross(n, major)), fan


def plane_orientation(xyz, work, normal, lag, n_lags, s, total, nugget, types, diag):
    """(angles, None, initial ranges) with the minor axis along ``normal``, or None.

    The major axis in the plane comes from :func:`fit_plane_orientation`; when the map has too
    few bins, from the fan of :func:`find_axes_plane` (no initial ranges then).
    """
    # The map has no correlogram: that measure's orientation comes from the semivariogram.
    corr = s.measure == "correlogram"
    try:
        fo = fit_plane_orientation(
            xyz,
            work,
            normal,
            lag=lag,
            n_lags=n_lags,
            variance=total if total is not None and not corr else float(work.var()),
            types=types,
            nugget=None if corr else nugget,
            measure="semivariogram" if corr else s.measure,
        )
    except ValueError:
        fo = None
    if fo is not None:
        diag["orientation_fit"] = {k: fo[k] for k in ("angles", "ranges", "nugget", "cost")}
        r = np.array(fo["ranges"], dtype=float)
        r[2] = min(r[2], r[1])
        grow = {1: [1.0], 2: [0.5, 1.5], 3: [0.3, 1.0, 2.0]}[s.n_structures]
        return fo["angles"], None, np.array([f * r for f in grow])
    try:
        angles, _ = find_axes_plane(
            xyz,
            work,
            normal,
            lag=lag,
            n_lags=n_lags,
            step=s.fan_step,
            tolerance=s.tolerance,
            min_pairs=s.min_pairs,
            measure=s.measure,
        )
    except ValueError:
        return None
    return angles, None, None


def free_orientation(xyz, work, lag, n_lags, s, total, nugget, types, diag):
    """(angles, map ranges, initial ranges) from the fans, refined on the variogram map."""
    init_ranges, map_ranges = None, None
    try:
        angles, _ = find_axes_fan(
            xyz,
            work,
            lag=lag,
            n_lags=n_lags,
            step=s.fan_step,
            tolerance=s.tolerance,
            min_pairs=s.min_pairs,
            measure=s.measure,
        )
        diag["angles_fan"] = angles
        if s.refine_orientation and s.measure != "correlogram":
            # One structure is enough to place the axes, and is far more stable than a nested fit.
            fo = fit_orientation(
                xyz,
                work,
                lag=lag,
                n_lags=n_lags,
                variance=total if total is not None else float(work.var()),
                starts=[angles, (0.0, 0.0, 0.0)],
                n_structures=1,
                types=types[-1:],
                nugget=nugget,
                measure=s.measure,
            )
            angles, map_ranges = fo["angles"], fo["ranges"][0]
            diag["orientation_fit"] = {
                k: fo[k] for k in ("angles", "ranges", "sills", "nugget", "cost")
            }
            grow = {1: [1.0], 2: [0.5, 1.5], 3: [0.3, 1.0, 2.0]}[s.n_structures]
            init_ranges = np.array([f * fo["ranges"][0] for f in grow])
    except ValueError as exc:
        diag["warnings"].append(
            f"axes of continuity not found ({exc}); isotropic orientation (0, 0, 0) used"
        )
        angles = (0.0, 0.0, 0.0)
    return angles, map_ranges, init_ranges
