"""Top-cut (capping) analysis: candidate caps by several rules and what each one does.

Four rules give candidate caps for one grade in one domain, and a table says, for each
candidate and for the configured cap, how many samples it caps, the mean and coefficient of
variation (CV) before and after, and the share of the metal it removes:

* **percentiles**: the grade at each percentile of the samples, computed as the pipeline's
  ``"pXX"`` capping rule computes it (:func:`estimator.capping.cap_value`: unweighted, linear
  interpolation between order statistics), so the table's ``p99`` row is exactly what
  ``capping: {domain: {grade: p99}}`` applies;
* **decile**: Parrish's decile analysis (Parrish, 1997, "Geologist's Gordian knot: to cut or not
  to cut", Mining Engineering 49, 45-49), see :func:`decile_analysis`;
* **log_probability_break**: the grade where the log-probability curve bends up away from the
  main population, see :func:`log_probability_break`;
* **cv_target**: the highest cap (the least capping) whose capped CV is at most the target,
  see :func:`cv_target_cap`.

Conventions
-----------
Weights (declustering weights or composite lengths) are optional; where given, means, CVs and
metal are weighted: mean ``m = sum(w v) / sum(w)``, CV ``= sqrt(sum(w (v - m)^2) / sum(w)) / m``
(population form, ``ddof = 0``, also without weights), metal ``= sum(w v)``, metal removed by a
cap ``c`` ``= 100 * sum(w max(v - c, 0)) / sum(w v)`` %. A sample is *capped* when its grade is
above the cap. Missing grades (NaN) are left out, with their weights, and counted (``n_missing``).
Grades must be >= 0 and weights finite and >= 0, with a positive total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.special import ndtri

from estimator.capping import cap_value
from estimator.errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CappingAnalysis",
    "DecileAnalysis",
    "capping_analysis",
    "capping_table",
    "cv_target_cap",
    "decile_analysis",
    "log_probability_break",
    "plot_log_probability",
]

DEFAULT_PERCENTILES = (90, 95, 97.5, 99, 99.5, 99.9)
TABLE_COLUMNS = [
    "rule", "cap", "n_capped", "pct_capped", "mean_before", "cv_before", "mean_after",
    "cv_after", "metal_removed_pct", "note",
]  # fmt: skip

# Parrish's thresholds (% of the metal).
TOP_DECILE_LIMIT = 40.0
PERCENTILE_LIMIT = 10.0


# ---------------------------------------------------------------------------------------------
# Input checks and weighted statistics
# ---------------------------------------------------------------------------------------------


def _check(values, weights, what: str = "capping analysis"):
    """Finite grades and their weights (None when unweighted), and the number of NaN grades."""
    try:
        values = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        msg = f"{what}: grades must be numbers ({exc})"
        raise DataError(msg) from None
    if values.size == 0:
        msg = f"{what}: no grades given; expected at least one sample"
        raise DataError(msg)
    keep = ~np.isnan(values)
    n_missing = int((~keep).sum())
    if not keep.any():
        msg = f"{what}: all {values.size} grades are missing (NaN); nothing to analyse"
        raise DataError(msg)
    if np.isinf(values[keep]).any():
        i = int(np.flatnonzero(np.isinf(values))[0])
        msg = f"{what}: sample {i} has an infinite grade ({values[i]}); expected a number"
        raise DataError(msg)
    neg = keep & (values < 0)
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        msg = (
            f"{what}: sample {i} has a negative grade ({values[i]:g}) and "
            f"{int(neg.sum()) - 1} more; grades must be >= 0"
        )
        raise DataError(msg)
    w = None
    if weights is not None:
        try:
            w = np.asarray(weights, dtype=float).ravel()
        except (TypeError, ValueError) as exc:
            msg = f"{what}: weights must be numbers ({exc})"
            raise DataError(msg) from None
        if w.shape != values.shape:
            msg = f"{what}: {w.size} weights for {values.size} grades; expected one per sample"
            raise DataError(msg)
        w = w[keep]
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            i = int(np.flatnonzero(keep)[np.flatnonzero(bad)[0]])
            msg = (
                f"{what}: sample {i} has weight {weights[i]!r}; weights (declustering weights "
                f"or lengths) must be finite and >= 0"
            )
            raise DataError(msg)
        if w.sum() <= 0:
            msg = f"{what}: the weights of the samples with a grade sum to 0; nothing to weight"
            raise DataError(msg)
    v = values[keep]
    if not (v > 0).any():
        msg = f"{what}: every grade is 0; there is no metal to cap"
        raise DataError(msg)
    return v, w, n_missing


def _wmean(v, w):
    return float(np.mean(v)) if w is None else float(np.sum(w * v) / np.sum(w))


def _wcv(v, w):
    m = _wmean(v, w)
    var = float(np.mean((v - m) ** 2)) if w is None else float(np.sum(w * (v - m) ** 2) / np.sum(w))
    return float(np.sqrt(var) / m) if m > 0 else float("nan")


def _effect(v, w, cap: float | None) -> dict:
    """The table's numeric columns for one cap (None: no cap, every column describes no change)."""
    mean0, cv0 = _wmean(v, w), _wcv(v, w)
    if cap is None or not np.isfinite(cap):
        return {"cap": np.nan, "n_capped": 0, "pct_capped": 0.0, "mean_before": mean0,
                "cv_before": cv0, "mean_after": mean0, "cv_after": cv0,
                "metal_removed_pct": 0.0}  # fmt: skip
    capped = np.minimum(v, cap)
    over = v > cap
    ww = np.ones_like(v) if w is None else w
    removed = float(np.sum(ww * (v - capped)) / np.sum(ww * v))
    return {
        "cap": float(cap),
        "n_capped": int(over.sum()),
        "pct_capped": 100.0 * float(over.sum()) / v.size,
        "mean_before": mean0,
        "cv_before": cv0,
        "mean_after": _wmean(capped, w),
        "cv_after": _wcv(capped, w),
        "metal_removed_pct": 100.0 * removed,
    }


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecileAnalysis:
    """Parrish decile analysis (see :func:`decile_analysis`).

    Attributes
    ----------
    deciles : pandas.DataFrame
        ``decile`` (1..10), ``from_pct, to_pct`` (cumulative share of the samples, %), ``n``,
        ``min_grade, max_grade, mean_grade, metal_pct`` (share of the total metal, %).
    top_decile : pandas.DataFrame
        The same columns for the ten percentiles of the top decile (``percentile`` 91..100).
    warranted : bool
        Whether the rule says to cap.
    cap : float or None
        The rule's cap (None when capping is not warranted).
    reason : str
        The rule's verdict in words.
    """

    deciles: pd.DataFrame
    top_decile: pd.DataFrame
    warranted: bool
    cap: float | None
    reason: str


def _bins(v, w, lo: float, hi: float, n_bins: int):
    """Index of each sorted sample's class among ``n_bins`` equal classes of [lo, hi) (fractions
    of the cumulative weight at the sample's mid-point); -1 below ``lo``."""
    ww = np.ones_like(v) if w is None else w
    mid = (np.cumsum(ww) - 0.5 * ww) / ww.sum()
    k = np.floor((mid - lo) / (hi - lo) * n_bins).astype(int)
    k[mid < lo] = -1
    return np.minimum(k, n_bins - 1)


def _class_table(v, w, k, n_bins, label, first, step):
    ww = np.ones_like(v) if w is None else w
    metal = ww * v
    total = metal.sum()
    rows = []
    for b in range(n_bins):
        sel = k == b
        wsum = float(np.sum(ww[sel]))
        rows.append({
            label: first + b,
            "from_pct": (first - 1 + b) * step,
            "to_pct": (first + b) * step,
            "n": int(sel.sum()),
            "min_grade": float(v[sel].min()) if sel.any() else np.nan,
            "max_grade": float(v[sel].max()) if sel.any() else np.nan,
            "mean_grade": float(np.sum(metal[sel])) / wsum if wsum > 0 else np.nan,
            "metal_pct": 100.0 * float(metal[sel].sum()) / total,
        })  # fmt: skip
    return pd.DataFrame(rows)


def decile_analysis(values, weights=None) -> DecileAnalysis:
    """Parrish's decile analysis and the cap it indicates.

    The samples are sorted by grade and split into ten classes of equal share of the samples
    (of the weight, when weights are given: a sample belongs to the class holding the mid-point
    of its cumulative weight); the top class is split again into ten percentiles (91st .. 100th).
    Each class's metal (``sum(w v)``) is given as a share of the total.

    Rule (exact): capping is **warranted** when the top decile holds more than 40 % of the metal
    or the top percentile more than 10 %. The cap is then found by walking down the percentiles
    from the 100th while each holds more than 10 % of the metal; the cap is the highest grade
    *below* the lowest percentile of that run (the maximum grade of the percentile under it), so
    every sample of the over-rich percentiles is cut to the grade where the share drops to 10 %
    or less. When only the 40 % decile test fires (no percentile holds more than 10 %), the run
    is the top percentile alone and the cap is the highest grade below it.

    Returns
    -------
    DecileAnalysis
    """
    v, w, _ = _check(values, weights, "decile analysis")
    order = np.argsort(v, kind="stable")
    v = v[order]
    w = None if w is None else w[order]
    deciles = _class_table(v, w, _bins(v, w, 0.0, 1.0, 10), 10, "decile", 1, 10.0)
    kp = _bins(v, w, 0.9, 1.0, 10)
    top = _class_table(v, w, kp, 10, "percentile", 91, 1.0)
    d10 = float(deciles["metal_pct"].iloc[-1])
    shares = top["metal_pct"].to_numpy()
    p100 = float(shares[-1])
    fires = []
    if d10 > TOP_DECILE_LIMIT:
        fires.append(f"the top decile holds {d10:.1f} % of the metal (> {TOP_DECILE_LIMIT:g} %)")
    if p100 > PERCENTILE_LIMIT:
        fires.append(f"the top percentile holds {p100:.1f} % (> {PERCENTILE_LIMIT:g} %)")
    if not fires:
        reason = (
            f"no cap indicated: the top decile holds {d10:.1f} % of the metal "
            f"(<= {TOP_DECILE_LIMIT:g} %) and the top percentile {p100:.1f} % "
            f"(<= {PERCENTILE_LIMIT:g} %)"
        )
        return DecileAnalysis(deciles, top, False, None, reason)
    j = 9
    while j > 0 and shares[j - 1] > PERCENTILE_LIMIT:
        j -= 1
    below = kp < j  # every sample under the lowest over-rich percentile (incl. lower deciles)
    if not below.any():
        reason = "capping warranted (" + "; ".join(fires) + ") but no sample lies below the cut"
        return DecileAnalysis(deciles, top, True, None, reason)
    cap = float(v[below].max())
    reason = (
        "capping warranted: " + "; ".join(fires) + f"; cap at {cap:g}, the highest grade below "
        f"the {91 + j}th percentile"
    )
    return DecileAnalysis(deciles, top, True, cap, reason)


def log_probability_break(values, *, min_points: int = 5) -> float | None:
    """The grade where the log-probability curve breaks: the top of the main population.

    Method (segmented regression): the positive grades are sorted and given normal scores
    ``z_i = Phi^-1((i - 0.5) / n)`` (Hazen plotting positions). The upper half of the curve
    (z >= 0) is split at every sample ``k`` leaving at least ``min_points`` samples on each
    side, a straight line of log grade against z is fitted by least squares to each side, and
    the split with the smallest total squared error is kept. The two lines are not joined, so
    the split falls where the slope changes most sharply, including the jump across the gap
    between two populations (Sinclair, 1976, *Applications of probability graphs in mineral
    exploration*). The returned grade is the highest sample of the lower line: the top of the
    main population, the natural cap. Fitting lines to every sample on each side, rather than
    differencing neighbours, keeps one erratic value from making a break by itself.

    Returns None when the upper half has fewer than ``2 * min_points`` samples. A single
    lognormal has no real break: the split then falls where chance puts it, and the analyst
    should judge it on the plot (:func:`plot_log_probability`).
    """
    v, _, _ = _check(values, None, "log-probability break")
    v = np.sort(v[v > 0])
    n = v.size
    m = max(int(min_points), 2)
    z = ndtri((np.arange(1, n + 1) - 0.5) / n)
    start = int(np.searchsorted(z, 0.0))
    x, y = z[start:], np.log(v[start:])
    nu = x.size
    if nu < 2 * m:
        return None

    def prefix(a):
        return np.concatenate([[0.0], np.cumsum(a)])

    # centre on the upper half's mean to keep the sums well conditioned
    x, y = x - x.mean(), y - y.mean()
    sx, sy, sxx, syy, sxy = prefix(x), prefix(y), prefix(x * x), prefix(y * y), prefix(x * y)

    def sse(lo, hi):  # residual sum of squares of the line fitted to samples lo .. hi-1
        cnt = hi - lo
        mx = (sx[hi] - sx[lo]) / cnt
        my = (sy[hi] - sy[lo]) / cnt
        cxx = sxx[hi] - sxx[lo] - cnt * mx * mx
        cyy = syy[hi] - syy[lo] - cnt * my * my
        cxy = sxy[hi] - sxy[lo] - cnt * mx * my
        return cyy - np.divide(cxy * cxy, cxx, out=np.zeros_like(cxx), where=cxx > 0)

    ks = np.arange(m, nu - m + 1)  # the upper line starts at sample k
    total = sse(np.zeros_like(ks), ks) + sse(ks, np.full_like(ks, nu))
    k = int(ks[np.argmin(total)])
    return float(v[start + k - 1])


def cv_target_cap(values, weights=None, *, target: float) -> float | None:
    """The highest cap (the least capping) whose capped CV is at most ``target``.

    The CV of ``min(v, c)`` never decreases as ``c`` rises (for grades >= 0: its derivative has
    the sign of ``E[min(v, c) (c - min(v, c))] >= 0``), so the cap is found exactly: the
    bracketing pair of sorted grades is located, then the root of ``CV(c) = target`` between
    them by Brent's method. When the uncapped CV is already at most the target, the answer is
    the highest grade (nothing is capped). None when no cap reaches the target: with zero
    grades the CV cannot fall below ``sqrt((1 - p) / p)``, ``p`` the weight share of the
    positive grades.
    """
    from scipy.optimize import brentq

    v, w, _ = _check(values, weights, "CV-target cap")
    try:
        target = float(target)
    except (TypeError, ValueError):
        msg = f"CV-target cap: the target CV must be a number; got {target!r}"
        raise DataError(msg) from None
    if not np.isfinite(target) or target <= 0:
        msg = f"CV-target cap: the target CV must be > 0; got {target!r}"
        raise DataError(msg)
    if _wcv(v, w) <= target:
        return float(v.max())
    grades = np.unique(v[v > 0])

    def cv(c):
        return _wcv(np.minimum(v, c), w)

    if cv(grades[0]) > target:
        # below the smallest positive grade the CV no longer falls (zeros stay zero)
        return None
    lo, hi = 0, grades.size - 1  # cv(grades[lo]) <= target < cv(grades[hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cv(grades[mid]) <= target else (lo, mid)
    a, b = float(grades[lo]), float(grades[hi])
    if cv(a) == target:
        return a
    return float(brentq(lambda c: cv(c) - target, a, b, xtol=1e-12 * b, rtol=1e-14))


# ---------------------------------------------------------------------------------------------
# Table and analysis
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CappingAnalysis:
    """Candidate caps by rule and their effect (see the module docstring).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate (columns ``TABLE_COLUMNS``): ``rule`` is ``pXX``, ``decile``,
        ``log_probability_break``, ``cv_target`` or ``configured``; ``cap`` is NaN where the rule
        gives no cap, with the reason in ``note``.
    percentiles : dict
        ``{percentile: grade}``.
    decile : float or None
        Parrish's cap (:func:`decile_analysis`); None when not warranted.
    log_probability_break : float or None
    cv_target : float or None
        None when no target was asked.
    configured : float or None
        The configured cap, as a grade (a ``"pXX"`` rule resolved).
    decile_analysis : DecileAnalysis
    n : int
        Samples with a grade.
    n_missing : int
        Samples left out because their grade is missing.
    """

    table: pd.DataFrame
    percentiles: dict
    decile: float | None
    log_probability_break: float | None
    cv_target: float | None
    configured: float | None
    decile_analysis: DecileAnalysis
    n: int
    n_missing: int
    candidates: dict = field(default_factory=dict)


def _pct_label(p: float) -> str:
    return f"p{p:g}"


def capping_analysis(
    values,
    weights=None,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    cv_target: float | None = None,
    configured: float | str | None = None,
) -> CappingAnalysis:
    """Candidate caps for one grade by every rule, and the effect of each (see module docstring).

    Parameters
    ----------
    values : array_like
        Grades (NaN = not sampled, left out and counted).
    weights : array_like, optional
        Declustering weights or composite lengths, one per grade.
    percentiles : sequence of float
        Percentiles (0-100) to offer as caps.
    cv_target : float, optional
        Target coefficient of variation for the ``cv_target`` rule.
    configured : float or str, optional
        The configured cap: a grade, or a rule ``"pXX"`` as in the config's ``capping`` section.

    Raises
    ------
    DataError
        No grades, all missing, negative or infinite grades, all zero, or weights that are
        negative, not finite, of the wrong length or summing to 0; a percentile outside 0-100;
        a configured cap that is neither a number nor ``"pXX"``.
    """
    v, w, n_missing = _check(values, weights)
    pct = {}
    for p in percentiles:
        try:
            pf = float(p)
        except (TypeError, ValueError):
            msg = f"capping analysis: percentile {p!r} is not a number; expected 0-100"
            raise DataError(msg) from None
        if not 0 <= pf <= 100:
            msg = f"capping analysis: percentile {p!r} is outside 0-100"
            raise DataError(msg)
        pct[pf] = cap_value(v, f"p{pf:g}")
    dec = decile_analysis(v, w)
    brk = log_probability_break(v)
    cvt = None if cv_target is None else cv_target_cap(v, w, target=cv_target)
    conf = None
    if configured is not None:
        conf = _resolve_configured(v, configured)

    rows = []
    for p, c in pct.items():
        rows.append({"rule": _pct_label(p), **_effect(v, w, c), "note": f"{p:g}th percentile"})
    rows.append({"rule": "decile", **_effect(v, w, dec.cap), "note": dec.reason})
    note = (
        "top of the main population on the log-probability plot"
        if brk is not None
        else "no break found (too few samples above the median, or no upward bend)"
    )
    rows.append({"rule": "log_probability_break", **_effect(v, w, brk), "note": note})
    if cv_target is not None:
        rows.append({"rule": "cv_target", **_effect(v, w, cvt),
                     "note": f"highest cap giving CV <= {float(cv_target):g}"})  # fmt: skip
    if configured is not None:
        rows.append({"rule": "configured", **_effect(v, w, conf), "note": f"config: {configured}"})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    candidates = {r["rule"]: r["cap"] for r in rows if np.isfinite(r["cap"])}
    return CappingAnalysis(
        table=table,
        percentiles=pct,
        decile=dec.cap,
        log_probability_break=brk,
        cv_target=cvt,
        configured=conf,
        decile_analysis=dec,
        n=int(v.size),
        n_missing=n_missing,
        candidates=candidates,
    )


def _resolve_configured(v, configured) -> float:
    if isinstance(configured, str):
        text = configured.strip()
        try:
            q = float(text[1:]) if text[:1].lower() == "p" else None
        except ValueError:
            q = None
        if q is None or not 0 <= q <= 100:
            msg = (
                f"capping analysis: configured cap {configured!r} is not understood; expected "
                f"a grade (e.g. 30.0) or a percentile rule 'pXX' (e.g. 'p99.5')"
            )
            raise DataError(msg)
        return cap_value(v, f"p{q:g}")
    try:
        c = float(configured)
    except (TypeError, ValueError):
        msg = f"capping analysis: configured cap {configured!r} is not a number or 'pXX' rule"
        raise DataError(msg) from None
    if not c > 0:
        msg = f"capping analysis: configured cap must be a grade > 0; got {configured!r}"
        raise DataError(msg)
    return c


def capping_table(
    values,
    weights=None,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    cv_target: float | None = None,
    configured: float | str | None = None,
) -> pd.DataFrame:
    """The table of :func:`capping_analysis`: one row per candidate cap and its effect."""
    return capping_analysis(
        values, weights, percentiles=percentiles, cv_target=cv_target, configured=configured
    ).table


# ---------------------------------------------------------------------------------------------
# Plot
# ---------------------------------------------------------------------------------------------

_PROB_TICKS = (0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9)


def plot_log_probability(
    values,
    cap: float | None = None,
    candidates: Mapping[str, float | None] | None = None,
    title: str = "",
    unit: str = "",
) -> Figure:
    """Log-probability plot: grade (log scale) against cumulative probability (normal scale).

    Parameters
    ----------
    values : array_like
        Grades; NaN and zeros (which have no logarithm) are left out and counted in the legend.
    cap : float, optional
        The chosen cap, drawn as a horizontal line.
    candidates : mapping, optional
        ``{rule: cap}`` (e.g. ``CappingAnalysis.candidates``), each marked on the curve.
    title, unit : str
        Figure title and grade unit (e.g. ``g/t``) for the axis label.

    Returns
    -------
    matplotlib.figure.Figure
        Made without pyplot (works on any backend, e.g. Agg; save with ``fig.savefig``).
    """
    from matplotlib.figure import Figure

    v, _, n_missing = _check(values, None, "log-probability plot")
    n_zero = int((v <= 0).sum())
    v = np.sort(v[v > 0])
    n = v.size
    z = ndtri((np.arange(1, n + 1) - 0.5) / n)
    fig = Figure(figsize=(6.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(z, v, ls="none", marker=".", ms=4, color="C0",
            label=f"{n} samples" + (f" ({n_zero} zero, {n_missing} missing not shown)"
                                    if n_zero or n_missing else ""))  # fmt: skip
    ax.set_yscale("log")
    ticks = [p for p in _PROB_TICKS if z.min() - 0.5 <= ndtri(p / 100) <= z.max() + 0.5]
    ax.set_xticks([float(ndtri(p / 100)) for p in ticks], [f"{p:g}" for p in ticks])
    colours = [f"C{i}" for i in (1, 2, 4, 5, 6, 7, 8, 9)]  # C0 is the curve, C3 the cap
    for i, (rule, c) in enumerate((candidates or {}).items()):
        if c is None or not np.isfinite(c) or c <= 0:
            continue
        rank = np.searchsorted(v, c, side="right")  # plotted at the last sample <= c
        zc = float(ndtri(np.clip((rank - 0.5) / n, 0.5 / n, 1 - 0.5 / n)))
        ax.plot([zc], [c], marker="o", ms=7, mfc="none", ls="none", color=colours[i % len(colours)],
                label=f"{rule}: {c:.4g}")  # fmt: skip
    if cap is not None and np.isfinite(cap):
        ax.axhline(cap, color="C3", lw=1.5, label=f"cap {cap:.4g}" + (f" {unit}" if unit else ""))
    ax.set_xlabel("cumulative probability (%), normal scale")
    ax.set_ylabel(f"grade ({unit})" if unit else "grade")
    ax.set_title(title or "Log-probability plot")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    return fig
