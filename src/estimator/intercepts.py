"""Significant intercepts: the press-release table, computed by declared rules.

The rules, as a geologist reads them (SPEC section 6)
-----------------------------------------------------
For each hole, samples are taken in depth order. A sample is **above cut-off** when its grade
is at least ``cutoff``; an **unsampled** sample (NaN grade) counts as below cut-off at zero
grade (dilution), and so does any gap between samples (core not in the assay table).

1. **Dilution breaks.** A run of consecutive below-cut-off samples (gaps included) whose
   total length exceeds ``max_dilution`` can never be inside an intercept: it cuts the hole
   into separate stretches. Shorter below-cut-off runs may be included as internal dilution.
2. **Candidates.** Within a stretch, a candidate runs from an above-cut-off sample to an
   above-cut-off sample at or below it (so it starts and ends on samples at or above cut-off;
   trailing dilution is trimmed). Its length is ``to - from`` and its grade the length-
   weighted mean over that whole length, unsampled parts and gaps at zero.
3. **Valid** candidates have a grade of at least ``cutoff`` and a length of at least
   ``min_length``.
4. **Greedy, longest first.** The longest valid candidate of the stretch is kept (ties: the
   higher grade, then the shallower). The samples it uses are taken out, and the same search
   is repeated on the parts of the stretch above and below it, until no valid candidate is
   left. Intercepts therefore never overlap, and a second intercept in the same hole ("And")
   is what is left after the longer one was taken.
5. **Including.** Inside each intercept, the same procedure with ``including`` as cut-off,
   the same ``max_dilution`` and ``including_min_length`` (default 0: any length) gives the
   higher-grade sub-intervals, listed right after their intercept.
6. **Zone** of an intercept: the value of ``zone_column`` (the domain) covering the longest
   part of it, ``""`` meaning outside every zone; ``""`` when there is no such column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["INTERCEPT_COLUMNS", "find_intercepts", "format_intercepts"]

INTERCEPT_COLUMNS = ("hole_id", "from", "to", "length", "grade", "zone", "kind")


def _with_gaps(frm, to, grade, zone):
    """Insert unsampled pseudo-samples for gaps between consecutive samples."""
    gap = np.flatnonzero(frm[1:] > to[:-1])
    if gap.size == 0:
        return frm, to, grade, zone
    ins = gap + 1
    frm2 = np.insert(frm, ins, to[gap])
    to2 = np.insert(to, ins, frm[ins])
    grade2 = np.insert(grade, ins, np.nan)
    zone2 = np.insert(zone.astype(object), ins, "")
    return frm2, to2, grade2, zone2


def _stretches(length: np.ndarray, above: np.ndarray, max_dilution: float) -> list[tuple[int, int]]:
    """Index ranges [a, b) of samples not cut by a below-cut-off run longer than max_dilution."""
    n = above.size
    breaker = np.zeros(n, dtype=bool)
    i = 0
    while i < n:
        if above[i]:
            i += 1
            continue
        j = i
        while j < n and not above[j]:
            j += 1
        if length[i:j].sum() > max_dilution:
            breaker[i:j] = True
        i = j
    out, start = [], None
    for k in range(n + 1):
        inside = k < n and not breaker[k]
        if inside and start is None:
            start = k
        elif not inside and start is not None:
            out.append((start, k))
            start = None
    return out


_CHUNK = 512  # start samples per block of the pair search (bounds memory to CHUNK x n)


def _best(frm, to, metal, above, a, b, cutoff, min_length):
    """Longest valid candidate within samples [a, b): (i, j) inclusive, or None."""
    idx = np.flatnonzero(above[a:b]) + a
    if idx.size == 0:
        return None
    cum = np.concatenate(([0.0], np.cumsum(metal[a:b])))
    best, best_key = None, None
    for c in range(0, idx.size, _CHUNK):
        i, j = np.meshgrid(idx[c : c + _CHUNK], idx, indexing="ij")
        length = to[j] - frm[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            grade = (cum[j - a + 1] - cum[i - a]) / length
        # a tiny relative slack so that a run exactly at cut-off is not lost to rounding
        ok = (j >= i) & (grade >= cutoff * (1 - 1e-12)) & (length >= min_length * (1 - 1e-12))
        if not ok.any():
            continue
        # longest, then highest grade, then shallowest
        k = np.lexsort((frm[i][ok], -grade[ok], -length[ok]))[0]
        key = (-length[ok][k], -grade[ok][k], frm[i][ok][k])
        if best_key is None or key < best_key:
            best, best_key = (int(i[ok][k]), int(j[ok][k])), key
    return best


def _greedy(frm, to, metal, above, a, b, cutoff, min_length) -> list[tuple[int, int]]:
    found, todo = [], [(a, b)]
    while todo:
        lo, hi = todo.pop()
        hit = _best(frm, to, metal, above, lo, hi, cutoff, min_length)
        if hit is None:
            continue
        found.append(hit)
        todo += [(lo, hit[0]), (hit[1] + 1, hi)]
    return sorted(found)


def _search(frm, to, grade, cutoff, min_length, max_dilution, a=0, b=None):
    b = frm.size if b is None else b
    length = to - frm
    above = np.zeros(frm.size, dtype=bool)
    above[a:b] = np.nan_to_num(grade[a:b], nan=-np.inf) >= cutoff
    metal = np.nan_to_num(grade, nan=0.0) * length
    hits = []
    for sa, sb in _stretches(length[a:b], above[a:b], max_dilution):
        hits += _greedy(frm, to, metal, above, a + sa, a + sb, cutoff, min_length)
    return hits, metal


def _zone_of(zone, length, i, j) -> str:
    totals: dict[str, float] = {}
    for z, ln in zip(zone[i : j + 1], length[i : j + 1], strict=True):
        totals[z] = totals.get(z, 0.0) + ln
    # largest length; ties to the first in name order
    return min(totals.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def find_intercepts(
    assays: pd.DataFrame,
    grade: str,
    cutoff: float,
    min_length: float,
    max_dilution: float,
    including: float | None = None,
    zone_column: str = "domain",
    *,
    including_min_length: float = 0.0,
) -> pd.DataFrame:
    """Significant intercepts (and their "including" sub-intervals) per hole.

    Parameters
    ----------
    assays : pandas.DataFrame
        ``hole_id, from, to, <grade>`` and optionally ``zone_column`` (depths in the data's
        units; grade NaN = unsampled, counted as zero-grade dilution).
    grade : str
        Grade column.
    cutoff : float
        Lowest length-weighted grade of an intercept (grade units).
    min_length : float
        Shortest intercept (units of the data).
    max_dilution : float
        Longest run of consecutive below-cut-off samples allowed inside an intercept.
    including : float, optional
        Higher cut-off for "including" sub-intervals; ``None`` for none.
    zone_column : str
        Column naming each sample's zone or domain (``""`` = none).
    including_min_length : float
        Shortest "including" sub-interval; default 0 (any length).

    Returns
    -------
    pandas.DataFrame
        ``hole_id, from, to, length, grade, zone, kind`` with ``kind`` ``"interval"`` or
        ``"including"``; holes in first-appearance order, intervals by depth, each
        interval's "including" rows right after it.

    Raises
    ------
    ValueError
        If ``grade`` is not a column, or a length or dilution is negative.

    Notes
    -----
    The rules are spelled out in this module's docstring. Finding the longest valid
    candidate looks at every pair of above-cut-off samples of a stretch (vectorised), which is
    instant for any real hole.

    Examples
    --------
    >>> a = pd.DataFrame({"hole_id": "A", "from": [0.0, 1, 2, 3], "to": [1.0, 2, 3, 4],
    ...                   "pd": [2.0, 0.5, 3.0, 0.1]})
    >>> find_intercepts(a, "pd", 1.0, 2.0, 1.0)[["from", "to", "grade"]].to_numpy().tolist()
    [[0.0, 3.0, 1.8333333333333333]]
    """
    if grade not in assays.columns:
        msg = f"no grade column {grade!r} in the assays (columns: {list(assays.columns)})"
        raise ValueError(msg)
    for name, value in (
        ("min_length", min_length),
        ("max_dilution", max_dilution),
        ("including_min_length", including_min_length),
    ):
        if not value >= 0:
            msg = f"intercept {name} must be zero or positive, got {value!r}"
            raise ValueError(msg)

    rows = []
    codes, uniques = pd.factorize(assays["hole_id"], sort=False)
    has_zone = zone_column in assays.columns
    for code, hole in enumerate(uniques):
        h = assays.loc[codes == code]
        order = np.lexsort((h["to"].to_numpy(dtype=float), h["from"].to_numpy(dtype=float)))
        frm = h["from"].to_numpy(dtype=float)[order]
        to = h["to"].to_numpy(dtype=float)[order]
        g = h[grade].to_numpy(dtype=float)[order]
        if has_zone:
            zone = h[zone_column].fillna("").astype(str).to_numpy(dtype=object)[order]
        else:
            zone = np.full(frm.size, "", dtype=object)
        frm, to, g, zone = _with_gaps(frm, to, g, zone)
        length = to - frm
        hits, metal = _search(frm, to, g, cutoff, min_length, max_dilution)
        for i, j in hits:
            rows.append(_row(hole, frm, to, metal, zone, length, i, j, "interval"))
            if including is None:
                continue
            subs, _ = _search(frm, to, g, including, including_min_length, max_dilution, i, j + 1)
            rows += [_row(hole, frm, to, metal, zone, length, p, q, "including") for p, q in subs]
    return pd.DataFrame(rows, columns=list(INTERCEPT_COLUMNS))


def _row(hole, frm, to, metal, zone, length, i, j, kind) -> dict:
    ln = to[j] - frm[i]
    return {
        "hole_id": hole,
        "from": frm[i],
        "to": to[j],
        "length": ln,
        "grade": metal[i : j + 1].sum() / ln,
        "zone": _zone_of(zone, length, i, j),
        "kind": kind,
    }


def _fmt_length(value: float) -> str:
    one = f"{value:.1f}"
    return one[:-2] if one.endswith(".0") else one


def format_intercepts(
    table: pd.DataFrame, grade_label: str = "g/t Pd", unit: str = "m", zone_suffix: str = " Zone"
) -> str:
    """Render an intercept table the way press releases print it.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`find_intercepts`.
    grade_label : str
        Grade unit and element for the header, e.g. ``"g/t Pd"``.
    unit : str
        Length unit of the data: ``"m"`` prints "metres", ``"ft"`` "feet", anything else as
        given.
    zone_suffix : str
        Appended to the title-cased zone name (``"offset"`` -> ``"Offset Zone"``) unless the
        name already ends with it; an empty zone prints as ``-``.

    Returns
    -------
    str
        Fixed-width text: a header, then one block per hole separated by dashed lines; the
        first interval shows the hole id, later ones "And", sub-intervals "Including".
        Lengths to 0 or 1 decimal, grades to 1 decimal.

    Examples
    --------
    >>> t = pd.DataFrame({"hole_id": ["11-729", "11-729"], "from": [10.0, 20.0],
    ...                   "to": [69.0, 29.0], "length": [59.0, 9.0], "grade": [6.08, 8.8],
    ...                   "zone": ["offset", "offset"], "kind": ["interval", "including"]})
    >>> print(format_intercepts(t))
    -----------------------------------------------------------------
    Hole        Length of Intersection   Grade (g/t Pd)      Location
    -----------------------------------------------------------------
    11-729                   59 metres              6.1   Offset Zone
    Including                 9 metres              8.8   Offset Zone
    -----------------------------------------------------------------
    """
    word = {"m": "metres", "ft": "feet"}.get(unit, unit)

    def location(zone: str) -> str:
        if not zone:
            return "-"
        name = zone.replace("_", " ").title()
        return name if name.lower().endswith(zone_suffix.strip().lower()) else name + zone_suffix

    body = []
    for hole, h in table.groupby("hole_id", sort=False):
        lines, first = [], True
        for r in h.itertuples(index=False):
            if r.kind == "including":
                label = "Including"
            else:
                label, first = (str(hole) if first else "And"), False
            lines.append(
                (label, f"{_fmt_length(r.length)} {word}", f"{r.grade:.1f}", location(r.zone))
            )
        body.append(lines)
    header = ("Hole", "Length of Intersection", f"Grade ({grade_label})", "Location")
    cells = [header] + [row for block in body for row in block]
    w = [max(len(c[k]) for c in cells) for k in range(4)]
    w[0] = max(w[0], 9)

    def fmt(c):
        return (f"{c[0]:<{w[0]}}   {c[1]:>{w[1]}}   {c[2]:>{w[2]}}   {c[3]:>{w[3]}}").rstrip()

    rule = "-" * (sum(w) + 9)
    out = [rule, fmt(header), rule]
    for block in body:
        out += [fmt(c) for c in block]
        out.append(rule)
    return "\n".join(out)
