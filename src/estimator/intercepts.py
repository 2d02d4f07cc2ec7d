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
   higher-grade sub-intervals, listed right after their intercept. An "including" that spans
   its whole intercept (the same from and to) would only repeat it and is not listed.
6. **Zone** of an intercept: one label per row, the value of ``zone_column`` (the domain)
   holding the most of its length (ties: the zone met first down the hole), ``""`` meaning
   outside every zone (gaps between samples count there); ``""`` when there is no such column.

Lengths are core lengths along the hole, in the data's unit, not true widths.

Precision
---------
The table (``intercepts.csv``) gives ``from``, ``to`` and ``length`` to 0.01 of the data's unit
(``length`` is exactly ``to - from`` at that precision) and ``grade`` to 4 significant digits,
so no floating-point noise such as ``190.90000000000003`` is written. The printed table follows
the seed release (North American Palladium, Lac des Iles, 14 Sept 2011: "59 metres", "6.1"):
lengths to the whole unit, except lengths under 10 units to 0.1 unit so that a 4.5 m interval
is not printed as 4 or 5 m; grades to 0.1, except grades under 1 to 0.01 (0.45 % Cu is not
printed 0.5). Half-way values round up, as a reader rounds, and the printed figures are
rounded from the table's, so the text agrees with ``intercepts.csv``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd

from estimator.errors import DataError

__all__ = [
    "INTERCEPT_COLUMNS",
    "describe_rules",
    "find_intercepts",
    "format_intercepts",
    "holes_in_tranche",
]

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
    """The zone holding the most of samples i..j (inclusive); ties: the shallower."""
    totals: dict[str, float] = {}  # insertion order = depth order of each zone's first sample
    for z, ln in zip(zone[i : j + 1], length[i : j + 1], strict=True):
        totals[z] = totals.get(z, 0.0) + ln
    most = max(totals.values())
    slack = 1e-9 * float(length[i : j + 1].sum())  # 1.5 + 1.5 against 3.0 is a tie
    return next(z for z, total in totals.items() if total >= most - slack)


def holes_in_tranche(assays: pd.DataFrame, tranche: str) -> list[str]:
    """The holes of a tranche: every hole with at least one assay row from it.

    A hole partly assayed in an earlier tranche and completed in this one (hole 11-501 of the
    seed release: partial results on 28 June, complete on 14 September) belongs to both, and
    its intercepts are computed from all of its assays, whatever their tranche, since an
    intercept may join samples of both. Pass the result as ``holes`` to
    :func:`find_intercepts` to list only this tranche's holes.

    Parameters
    ----------
    assays : pandas.DataFrame
        ``hole_id`` and ``tranche`` columns (the data stage's intervals).
    tranche : str
        The tranche's name as in ``data.assays`` (a release date such as ``"2011-09-14"``,
        or the file's stem when the config names none).

    Returns
    -------
    list of str
        Hole ids in the order they first appear in ``assays``.

    Raises
    ------
    estimator.errors.DataError
        If the assays have no ``tranche`` column or no row from ``tranche``; the message lists
        the tranches there are.

    Examples
    --------
    >>> a = pd.DataFrame({"hole_id": ["A", "A", "B", "C"],
    ...                   "tranche": ["2011-06-28", "2011-09-14", "2011-06-28", "2011-09-14"]})
    >>> holes_in_tranche(a, "2011-09-14")
    ['A', 'C']
    """
    if "tranche" not in assays.columns:
        msg = f"tranche {tranche!r}: the assays have no tranche column (data.assays)"
        raise DataError(msg)
    names = assays["tranche"]
    mine = assays.loc[(names.astype(str) == str(tranche)).to_numpy() & names.notna().to_numpy()]
    mine = mine["hole_id"]
    if mine.empty:
        known = ", ".join(str(t) for t in pd.unique(names.dropna())) or "none"
        msg = f"no assays from tranche {tranche!r}; the tranches are: {known}"
        raise DataError(msg)
    return [str(h) for h in pd.unique(mine)]


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
    holes: Iterable[str] | None = None,
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
    holes : iterable of str, optional
        Only these holes (e.g. :func:`holes_in_tranche`), each with all of its assays;
        ``None`` (default) for every hole.

    Returns
    -------
    pandas.DataFrame
        ``hole_id, from, to, length, grade, zone, kind`` with ``kind`` ``"interval"`` or
        ``"including"``; holes in first-appearance order, intervals by depth, each
        interval's "including" rows right after it. ``from``, ``to`` and ``length`` are
        rounded to 0.01 of the data's unit (``length == to - from`` at that precision) and
        ``grade`` to 4 significant digits; the search itself runs on the unrounded values.

    Raises
    ------
    ValueError
        If ``grade`` is not a column, or a length or dilution is negative.
    estimator.errors.DataError
        If ``holes`` names a hole that has no assays.

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
    [[0.0, 3.0, 1.833]]
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

    if holes is not None:
        wanted = [str(h) for h in holes]
        ids = assays["hole_id"].astype(str)
        missing = sorted(set(wanted) - set(ids))
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if missing[5:] else "")
            msg = f"intercepts asked for holes without assays: {shown}"
            raise DataError(msg)
        assays = assays.loc[ids.isin(wanted).to_numpy()]

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
            rows += [
                _row(hole, frm, to, metal, zone, length, p, q, "including")
                for p, q in subs
                if (p, q) != (i, j)  # the whole intercept again: not an "including"
            ]
    return pd.DataFrame(rows, columns=list(INTERCEPT_COLUMNS))


def _sig(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits (the float nearest the decimal)."""
    return float(f"{value:.{digits}g}")


def _row(hole, frm, to, metal, zone, length, i, j, kind) -> dict:
    ln = to[j] - frm[i]
    top, bottom = round(float(frm[i]), 2), round(float(to[j]), 2)
    return {
        "hole_id": hole,
        "from": top,
        "to": bottom,
        "length": round(bottom - top, 2),
        "grade": _sig(float(metal[i : j + 1].sum() / ln)),
        "zone": _zone_of(zone, length, i, j),
        "kind": kind,
    }


_HALF_UP = {"0": Decimal("1"), "1": Decimal("0.1"), "2": Decimal("0.01")}


def _decimal(value: float, places: str) -> Decimal:
    return Decimal(repr(float(value))).quantize(_HALF_UP[places], rounding=ROUND_HALF_UP)


def _fmt_length(value: float) -> str:
    """Whole units as the release prints them ("59"); under 10 units to 0.1 ("4.5", "3")."""
    tenth = _decimal(value, "1")
    if abs(tenth) >= 10:
        return str(_decimal(value, "0"))
    text = str(tenth)
    return text[:-2] if text.endswith(".0") else text


def _fmt_grade(value: float) -> str:
    """To 0.1 as the release prints them ("6.1"); under 1 to 0.01 ("0.45")."""
    return str(_decimal(value, "2" if abs(value) < 0.995 else "1"))


def _num(value: float, grade: bool = False) -> str:
    """A rule's value as written in the config: 3 -> "3", 0.25 -> "0.25"; grades "1.0"."""
    value = float(value)
    if grade and value == int(value):
        return f"{value:.1f}"
    return f"{value:g}"


def _rule(rules: Any, name: str, default: Any = None) -> Any:
    if isinstance(rules, Mapping):
        return rules.get(name, default)
    return getattr(rules, name, default)


def describe_rules(
    rules: Any, grade_label: str = "g/t Pd", unit: str = "m", tranche: str | None = None
) -> list[str]:
    """The rules of an intercept table in a geologist's words, one sentence per item.

    Parameters
    ----------
    rules : mapping or object
        ``cutoff``, ``min_length``, ``max_dilution`` and optionally ``including`` and
        ``including_min_length``, as keys or attributes (the config's ``intercepts``
        section can be passed as it is).
    grade_label : str
        Grade unit and element, e.g. ``"g/t Pd"``.
    unit : str
        Length unit of the data (``"m"``, ``"ft"`` or anything else, printed as given).
    tranche : str, optional
        The tranche whose holes the table lists (see :func:`holes_in_tranche`).

    Returns
    -------
    list of str
        The notes printed under the table by :func:`format_intercepts`.

    Raises
    ------
    ValueError
        If ``cutoff``, ``min_length`` or ``max_dilution`` is missing.

    Examples
    --------
    >>> describe_rules({"cutoff": 1.0, "min_length": 3, "max_dilution": 3})[0]
    'Intercepts: at least 1.0 g/t Pd (length-weighted) over at least 3 metres of core, with at \
most 3 metres of consecutive core below cut-off inside; unsampled core and gaps between samples \
count as zero grade.'
    """
    word = {"m": "metres", "ft": "feet"}.get(unit, unit)
    values = {k: _rule(rules, k) for k in ("cutoff", "min_length", "max_dilution")}
    missing = [k for k, v in values.items() if v is None]
    if missing:
        msg = f"intercept rules: no {', '.join(missing)} (give cutoff, min_length, max_dilution)"
        raise ValueError(msg)
    g = f"{_num(values['cutoff'], grade=True)} {grade_label}"
    notes = [
        f"Intercepts: at least {g} (length-weighted) over at least "
        f"{_num(values['min_length'])} {word} of core, with at most "
        f"{_num(values['max_dilution'])} {word} of consecutive core below cut-off inside; "
        "unsampled core and gaps between samples count as zero grade."
    ]
    including = _rule(rules, "including")
    if including is not None:
        shortest = float(_rule(rules, "including_min_length", 0.0) or 0.0)
        over = f" over at least {_num(shortest)} {word}" if shortest > 0 else ""
        notes.append(
            f"Including: the parts of an intercept at {_num(including, grade=True)} "
            f"{grade_label} or more{over}, by the same rules; one spanning its whole "
            "intercept is not listed."
        )
    notes += [
        "Location: the zone holding the most of the row's length (ties: the shallower); "
        "- outside every zone.",
        f"Lengths ({word}) are core lengths along the hole, not true widths. Lengths are "
        "printed whole (to 0.1 under 10), grades to 0.1 (to 0.01 under 1).",
    ]
    if tranche is not None:
        notes.append(_tranche_note(tranche))
    return notes


def _tranche_note(tranche: str) -> str:
    return (
        f"Holes with assays from tranche {tranche}; each hole's intercepts use all of its "
        "assays, whatever their tranche."
    )


def format_intercepts(
    table: pd.DataFrame,
    grade_label: str = "g/t Pd",
    unit: str = "m",
    zone_suffix: str = " Zone",
    *,
    rules: Any = None,
    tranche: str | None = None,
) -> str:
    """Render an intercept table the way press releases print it, its rules underneath.

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
    rules : mapping or object, optional
        The rules the table was computed with (see :func:`describe_rules`); when given they
        are stated under the table.
    tranche : str, optional
        The tranche whose holes the table lists, stated under the table with the rules.

    Returns
    -------
    str
        Fixed-width text: a header, then one block per hole separated by dashed lines; the
        first interval shows the hole id, later ones "And", sub-intervals "Including".
        Lengths as the seed release prints them: whole units ("59 metres"), under 10 units to
        0.1 ("4.5 metres", "3 metres"); grades to 0.1, under 1 to 0.01; half-way rounds up.

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
            zone = "" if pd.isna(r.zone) else str(r.zone)
            lines.append(
                (label, f"{_fmt_length(r.length)} {word}", _fmt_grade(r.grade), location(zone))
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
    if not body:
        out += ["No intercept meets the rules.", rule]
    for block in body:
        out += [fmt(c) for c in block]
        out.append(rule)
    if rules is not None:
        notes = describe_rules(rules, grade_label, unit, tranche)
    else:
        notes = [] if tranche is None else [_tranche_note(tranche)]
    for note in notes:
        out += textwrap.wrap(note, width=len(rule), subsequent_indent="  ")
    return "\n".join(out)
