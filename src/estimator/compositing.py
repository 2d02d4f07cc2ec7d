"""Downhole compositing: equal-length, length-weighted composites per domain run.

Rules (SPEC section 6), as a geologist reads them:

* Per hole, the intervals are taken in depth order and cut into **runs**: maximal sequences
  of consecutive intervals of the same domain. A domain change (including a stretch outside
  every domain, ``domain == ""``) ends a run, and compositing restarts at the next run. A gap
  between two intervals of the same domain does not: compositing continues through it.
* Within a run, composites of ``length`` are laid from the start of the run's first interval.
  A gap simply reduces the sampled length behind a composite.
* Each grade is the length-weighted mean of the **sampled** (non-NaN) parts of the intervals
  inside the composite; ``covered_<grade>`` is that sampled length. Missing assays are never
  zeros. A composite with no sampled length for a grade has NaN for it.
* The residual at the end of a run, when shorter than ``min_length`` (default ``length / 2``),
  is merged into the previous composite of the same run (``residual="merge"``, that composite
  is then longer than ``length``) or dropped (``residual="drop"``; ask for the dropped pieces
  with ``return_dropped=True`` to report them). A residual of at least ``min_length`` is a
  composite of its own. A whole run shorter than ``length`` is one short composite, whatever
  its length (it is never lost).
* A composite that overlaps no interval at all (it lies wholly in a gap) is not output.
* ``tranche`` of a composite is the latest tranche among the intervals that contribute to it
  (those overlapping it with at least one sampled grade; if none is sampled, all that overlap
  it), "latest" being the highest position in ``tranche_order`` (default: lexical order).

Lengths are in the units of the data (metres or feet).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["composite"]

_REL_TOL = 1e-9  # lengths closer than this fraction of the composite length are equal


def _check_args(intervals, grades, length, min_length, residual, include_unflagged) -> float:
    if not np.isfinite(length) or length <= 0:
        msg = f"composite length must be a positive number, got {length!r}"
        raise ValueError(msg)
    min_length = 0.5 * length if min_length is None else float(min_length)
    if not np.isfinite(min_length) or min_length < 0:
        msg = f"composite min_length must be zero or positive, got {min_length!r}"
        raise ValueError(msg)
    if residual not in ("merge", "drop"):
        msg = f"residual must be 'merge' or 'drop', got {residual!r}"
        raise ValueError(msg)
    required = ["hole_id", "from", "to", *grades]
    if not include_unflagged:
        required.append("domain")
    missing = [c for c in required if c not in intervals.columns]
    if missing:
        msg = (
            f"intervals lack column(s) {missing}; flag domains first or pass include_unflagged=True"
        )
        raise ValueError(msg)
    return min_length


def _tranche_keys(tranche: np.ndarray, order: Sequence[str] | None) -> tuple[np.ndarray, list]:
    """Rank of each tranche (higher = later) and the label of each rank."""
    present = sorted(set(tranche.tolist()))
    if order is None:
        labels = present
    else:
        listed = [str(t) for t in order]
        labels = sorted(t for t in present if t not in set(listed)) + listed
    lookup = {t: i for i, t in enumerate(labels)}
    return np.array([lookup[t] for t in tranche], dtype=np.int64), labels


def composite(
    intervals: pd.DataFrame,
    grades: Sequence[str],
    length: float,
    min_length: float | None = None,
    residual: str = "merge",
    *,
    tranche_order: Sequence[str] | None = None,
    include_unflagged: bool = False,
    return_dropped: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Composite downhole intervals to a fixed length, restarting at every domain boundary.

    Parameters
    ----------
    intervals : pandas.DataFrame
        ``hole_id, from, to, domain, <grades>`` and optionally ``tranche`` (other columns
        ignored). Grades are floats with NaN = not sampled. ``domain == ""`` marks intervals
        outside every domain.
    grades : sequence of str
        Grade columns to composite.
    length : float
        Composite length (units of the data), ``> 0``.
    min_length : float, optional
        Shortest residual kept as a composite of its own; default ``length / 2``.
    residual : {"merge", "drop"}
        What to do with a residual shorter than ``min_length`` at the end of a run.
    tranche_order : sequence of str, optional
        Tranches from oldest to newest; default lexical order (ISO dates sort correctly).
    include_unflagged : bool
        Also composite intervals with ``domain == ""`` (or all intervals when there is no
        ``domain`` column, as one domain ``""``). Default: only flagged domains.
    return_dropped : bool
        Also return the residuals dropped with ``residual="drop"``.

    Returns
    -------
    composites : pandas.DataFrame
        ``hole_id, from, to, length, domain, tranche, <grades>, covered_<grade>``, in hole
        (first-appearance) and depth order.
    dropped : pandas.DataFrame
        Only with ``return_dropped=True``: ``hole_id, domain, from, to, length`` of each
        dropped residual (empty with ``residual="merge"``).

    Raises
    ------
    ValueError
        For a non-positive length, a negative min_length, an unknown ``residual``, missing
        columns, or an interval with ``to < from``.

    Notes
    -----
    Vectorised: each interval is expanded to the composites it may overlap (index range
    from its depth relative to the run start, widened by one either side so rounding cannot
    lose a piece), overlaps are cut exactly with ``min``/``max`` and summed with
    ``numpy.bincount``.

    Examples
    --------
    >>> iv = pd.DataFrame({"hole_id": "A", "from": [0.0, 1.0, 2.0], "to": [1.0, 2.0, 3.0],
    ...                    "domain": "ore", "cu": [1.0, 3.0, float("nan")]})
    >>> out = composite(iv, ["cu"], 2.0, min_length=1.5)  # the 1 m residual is merged
    >>> out[["from", "to", "cu", "covered_cu"]].to_numpy().tolist()
    [[0.0, 3.0, 2.0, 2.0]]
    """
    grades = list(grades)
    min_length = _check_args(intervals, grades, length, min_length, residual, include_unflagged)
    length = float(length)
    tol = _REL_TOL * length

    # --- sort and cut into runs (before leaving out unflagged intervals: they end runs) -----
    hole_code, _ = pd.factorize(intervals["hole_id"], sort=False)
    frm_all = intervals["from"].to_numpy(dtype=float)
    to_all = intervals["to"].to_numpy(dtype=float)
    if np.any(to_all < frm_all):
        bad = int(np.flatnonzero(to_all < frm_all)[0])
        msg = (
            f"interval with to < from in hole {intervals['hole_id'].iat[bad]}: "
            f"{frm_all[bad]:g}-{to_all[bad]:g}"
        )
        raise ValueError(msg)
    if "domain" in intervals.columns:
        dom_all = intervals["domain"].astype(str).to_numpy(dtype=object)
    else:
        dom_all = np.full(len(intervals), "", dtype=object)
    order = np.lexsort((to_all, frm_all, hole_code))
    hole_code, dom_all = hole_code[order], dom_all[order]
    new_run = np.ones(order.size, dtype=bool)
    new_run[1:] = (hole_code[1:] != hole_code[:-1]) | (dom_all[1:] != dom_all[:-1])
    run_all = np.cumsum(new_run) - 1
    keep = np.ones(order.size, dtype=bool) if include_unflagged else dom_all != ""
    rows = order[keep]
    _, run = np.unique(run_all[keep], return_inverse=True)
    run = run.ravel()
    frm, to = frm_all[rows], to_all[rows]
    values = intervals[grades].to_numpy(dtype=float)[rows] if grades else np.empty((rows.size, 0))
    hole_vals = intervals["hole_id"].to_numpy()[rows]
    dom = dom_all[keep]

    n_runs = int(run.max()) + 1 if run.size else 0
    run_start = np.full(n_runs, np.inf)
    np.minimum.at(run_start, run, frm)
    run_end = np.full(n_runs, -np.inf)
    np.maximum.at(run_end, run, to)
    first_row = np.full(n_runs, rows.size, dtype=np.int64)
    np.minimum.at(first_row, run, np.arange(rows.size))

    # --- composite boundaries per run ---------------------------------------------------------
    span = run_end - run_start
    n_full = np.floor(span / length + _REL_TOL).astype(np.int64)
    resid = span - n_full * length
    resid = np.where(resid <= tol, 0.0, resid)
    own = (resid > 0) & (resid >= min_length - tol)  # residual is a composite of its own
    short_run = n_full == 0
    n_comp = np.where(short_run | own, n_full + 1, n_full)
    n_comp = np.maximum(n_comp, 1)
    dropping = (residual == "drop") & (resid > 0) & ~own & ~short_run
    last_to = np.where(dropping, run_start + n_full * length, run_end)

    comp_first = np.concatenate(([0], np.cumsum(n_comp)[:-1])).astype(np.int64)
    n_total = int(n_comp.sum())
    comp_run = np.repeat(np.arange(n_runs), n_comp)
    k = np.arange(n_total) - comp_first[comp_run]
    comp_from = run_start[comp_run] + k * length
    comp_to = comp_from + length
    is_last = k == n_comp[comp_run] - 1
    comp_to[is_last] = last_to[comp_run[is_last]]

    # --- interval pieces inside composites -----------------------------------------------------
    s = run_start[run]
    k_lo = np.clip(np.floor((frm - s) / length).astype(np.int64) - 1, 0, n_comp[run] - 1)
    k_hi = np.clip(np.floor((to - s) / length).astype(np.int64) + 1, 0, n_comp[run] - 1)
    count = k_hi - k_lo + 1
    piece_iv = np.repeat(np.arange(rows.size), count)
    piece_off = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    piece_comp = comp_first[run[piece_iv]] + k_lo[piece_iv] + piece_off
    overlap = np.minimum(to[piece_iv], comp_to[piece_comp]) - np.maximum(
        frm[piece_iv], comp_from[piece_comp]
    )
    inside = overlap > 0
    piece_iv, piece_comp, overlap = piece_iv[inside], piece_comp[inside], overlap[inside]

    total = np.bincount(piece_comp, overlap, minlength=n_total)
    pv = values[piece_iv]
    sampled = ~np.isnan(pv)
    w = overlap[:, None] * sampled
    out_grades, out_cov = {}, {}
    for j, g in enumerate(grades):
        cov = np.bincount(piece_comp, w[:, j], minlength=n_total)
        acc = np.bincount(piece_comp, w[:, j] * np.where(sampled[:, j], pv[:, j], 0.0), n_total)
        with np.errstate(invalid="ignore", divide="ignore"):
            out_grades[g] = np.where(cov > 0, acc / np.where(cov > 0, cov, 1.0), np.nan)
        out_cov[g] = cov

    # --- tranche: the latest among contributing intervals --------------------------------------
    if "tranche" in intervals.columns and rows.size:
        tranche = intervals["tranche"].astype(str).to_numpy(dtype=object)[rows]
        rank, labels = _tranche_keys(tranche, tranche_order)
        n_lab = len(labels)
        key = rank[piece_iv] + n_lab * sampled.any(axis=1)
        best = np.full(n_total, -1, dtype=np.int64)
        np.maximum.at(best, piece_comp, key)
        comp_tranche = np.array([*labels, ""], dtype=object)[
            np.where(best < 0, n_lab, best % n_lab)
        ]
    else:
        comp_tranche = np.full(n_total, "", dtype=object)

    has_data = total > 0
    src = first_row[comp_run]
    out = pd.DataFrame(
        {
            "hole_id": hole_vals[src],
            "from": comp_from,
            "to": comp_to,
            "length": comp_to - comp_from,
            "domain": dom[src],
            "tranche": comp_tranche,
        }
    )
    for g in grades:
        out[g] = out_grades[g]
    for g in grades:
        out[f"covered_{g}"] = out_cov[g]
    out = out.loc[has_data].reset_index(drop=True)
    out["domain"] = out["domain"].astype(str)
    out["tranche"] = out["tranche"].astype(str)
    if not return_dropped:
        return out
    dr = np.flatnonzero(dropping)
    dropped = pd.DataFrame(
        {
            "hole_id": hole_vals[first_row[dr]],
            "domain": pd.Series(dom[first_row[dr]], dtype=object).astype(str),
            "from": last_to[dr],
            "to": run_end[dr],
            "length": run_end[dr] - last_to[dr],
        }
    )
    return out, dropped


def drop_empty_composites(
    comps: pd.DataFrame, grades: list[str], report, unit: str = "length units"
) -> pd.DataFrame:
    """Leave out composites with no sampled length for any grade (one summary line per domain)."""
    covered = comps[[f"covered_{g}" for g in grades]].to_numpy(float)
    empty = ~(covered > 0).any(axis=1)
    if empty.any():
        for dom, n in comps.loc[empty, "domain"].astype(str).value_counts().sort_index().items():
            length = float(comps.loc[empty & (comps["domain"] == dom).to_numpy(), "length"].sum())
            report.add(
                "composites.csv",
                None,
                None,
                "empty_composite",
                f"{n} composites in domain {dom} ({length:g} {unit}) hold no sampled assay",
                "left out of composites.csv",
            )
    return comps.loc[~empty].reset_index(drop=True)


def drop_coincident(comps: pd.DataFrame, report) -> pd.DataFrame:
    """Leave out composites or samples lying exactly where an earlier one lies.

    Two samples at one point make the kriging system singular. For composites the one of the
    hole whose id sorts first is kept (so the choice does not depend on file order), with one
    report line per pair of holes; for positioned samples (no ``from`` column) the row that comes
    first in the file is kept, with one report line per sample left out (file and line).
    """
    if "from" not in comps.columns:
        return _drop_coincident_samples(comps, report)
    order = np.lexsort((comps["from"].to_numpy(float), comps["hole_id"].astype(str).to_numpy()))
    ranked = comps.iloc[order]
    key = ["x", "y", "z", "domain"]
    dup_sorted = ranked.duplicated(key, keep="first").to_numpy()
    if not dup_sorted.any():
        return comps
    dup = np.zeros(len(comps), dtype=bool)
    dup[order] = dup_sorted
    first = ranked.loc[~dup_sorted, [*key, "hole_id"]]
    keyed = comps.loc[dup].merge(
        first,
        on=key,
        suffixes=("", "_kept"),
    )
    for (hole, kept), group in keyed.groupby(["hole_id", "hole_id_kept"], sort=True):
        report.add(
            "composites.csv",
            None,
            hole,
            "coincident_composite",
            f"{len(group)} composites of hole {hole} lie exactly where composites of hole {kept} are "
            f"(from {group['from'].min():g} to {group['to'].max():g}): a twinned or duplicated hole",
            f"left out (hole {kept} kept)",
        )
    return comps.loc[~dup].reset_index(drop=True)


def _drop_coincident_samples(samples: pd.DataFrame, report) -> pd.DataFrame:
    """Positioned samples: keep the first row (file order) at each position and domain."""
    key = ["x", "y", "z", "domain"]
    dup = samples.duplicated(key, keep="first").to_numpy()
    if not dup.any():
        return samples
    lines = samples["_line"] if "_line" in samples.columns else pd.Series(
        np.arange(2, len(samples) + 2), index=samples.index
    )
    first = samples.loc[~dup, key].assign(_kept=lines[~dup].to_numpy())
    left = samples.loc[dup].assign(_row=lines[dup].to_numpy()).merge(first, on=key, how="left")
    file = samples["_file"].iloc[0] if "_file" in samples.columns else ""
    for rec in left.to_dict("records"):
        hole = rec.get("hole_id") or ""
        report.add(
            rec.get("_file", file),
            rec["_row"],
            hole,
            "coincident_sample",
            f"sample at x {rec['x']:g}, y {rec['y']:g}, z {rec['z']:g} lies exactly where the sample "
            f"of line {rec['_kept']} is",
            f"left out (line {rec['_kept']} kept)",
        )
    return samples.loc[~dup].reset_index(drop=True)
