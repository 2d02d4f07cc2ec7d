"""Row-level checks on drillhole tables: parse, report and repair (SPEC section 2).

Every function here takes tables with canonical column names whose values are still the
file's text (``str``), plus ``_file`` (file name) and ``_line`` (1-based line, header = 1),
and returns typed tables. Each problem found is one row in the :class:`DataReport`, except
plain empty grade cells, which are counted in one summary row per file and grade. No I/O:
:mod:`estimator.io.drillholes` reads the files and calls these in order.

Report codes: ``missing_hole_id``, ``missing_coordinate``, ``bad_value``, ``duplicate_collar``,
``not_sampled``, ``below_detection_half``, ``below_detection_zero``, ``below_detection_limit``,
``above_detection``, ``negative_grade``, ``from_not_less_than_to``, ``overlapping_interval``,
``superseded_by_tranche``, ``no_collar``, ``no_survey``, ``duplicate_survey_depth``,
``azimuth_out_of_range``, ``dip_out_of_range``, ``survey_past_end_of_hole``,
``interval_past_end_of_hole``, ``implausible_grade`` (a grade that is not a finite number or
is above ``data.max_grade``: set to NaN); and, from :mod:`estimator.io.drillholes`,
``empty_file`` (a table with a header but no rows) and ``no_elevation`` (samples without z).

Numbers that are not finite (``inf``, ``1e400``, ``nan``) or beyond ``MAX_NUMBER`` are never
kept: a coordinate makes the hole or sample ``missing_coordinate``, a depth, angle or interval
end is a ``bad_value`` (row left out).

Wireframe codes (:func:`estimator.geometry.mesh.build_wireframe`): ``wireframe_open_body``,
``wireframe_hole_filled``, ``wireframe_flipped_body``, ``wireframe_degenerate_triangle``,
``wireframe_repeated_triangle`` (a triangle repeated with the same winding: left out) and
``wireframe_overlapping_bodies`` (bodies that intersect, a body nested in another but wound
the same way, or a copy of another body, which is left out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from estimator.errors import DataError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from estimator.datareport import DataReport

#: Depth tolerance (data units) for end-of-hole and overlap comparisons.
TOLERANCE = 1e-6
#: Angles within this many degrees outside their range are float noise, snapped back in.
ANGLE_TOLERANCE = 1e-3
#: Share of non-zero dips with the "wrong" sign above which the dip convention is an error.
DIP_CONTRADICTION_SHARE = 0.9
#: Explicit not-sampled codes (compared upper case, after stripping blanks).
NOT_SAMPLED_CODES = ("NS", "-")
#: Coordinates and depths beyond this many data units are export errors, not positions: float64
#: keeps only 1e-4 of a unit there and squared distances would overflow past 1e154.
MAX_NUMBER = 1e12
#: Default plausible maximum grade (``data.max_grade`` unset): 100 % of the rock in the unit.
PERCENT_UNITS = ("%", "pct", "percent", "wt%", "wt.%")
PPB_UNITS = ("ppb",)


def default_max_grade(grade_unit: str | None) -> float:
    """Default ``data.max_grade``: 100 for ``%``, 1e9 for ``ppb``, otherwise 1e6 (ppm, g/t).

    Each is the whole rock (100 %) in that unit, so only impossible values are refused.
    """
    unit = (grade_unit or "").strip().lower().replace(" ", "")
    if unit in PERCENT_UNITS:
        return 100.0
    if unit in PPB_UNITS:
        return 1e9
    return 1e6


@dataclass(frozen=True)
class ValueRules:
    """How grade text becomes numbers (``data.below_detection``, ``unsampled``, ``sentinels``,
    ``max_grade`` and ``grade_unit``).

    ``max_grade`` is one limit for every grade, ``{grade: limit}`` (lower-case grade names;
    grades not listed take the default) or ``None`` (the default of :func:`default_max_grade`).
    """

    below_detection: str = "half"
    unsampled: str = "nan"
    sentinels: tuple[float, ...] = field(default=(-99.0, -999.0))
    max_grade: float | dict[str, float] | None = None
    grade_unit: str | None = None

    def grade_limit(self, grade: str) -> tuple[float, str]:
        """The plausible maximum of ``grade`` and where it comes from (for messages)."""
        limit = self.max_grade
        if isinstance(limit, dict):
            by_name = {str(k).strip().lower(): v for k, v in limit.items()}
            if grade.lower() in by_name:
                return float(by_name[grade.lower()]), f"data.max_grade.{grade}"
            limit = None
        if limit is not None:
            return float(limit), "data.max_grade"
        value = default_max_grade(self.grade_unit)
        unit = "no data.grade_unit"
        if self.grade_unit:
            unit = f"data.grade_unit is {self.grade_unit!r}"
        return value, f"the default with {unit}; set data.max_grade to change it"


def fmt(value) -> str:
    """Format a number for a report message (``2517.4``, ``90000``, ``2296021.09``)."""
    return f"{float(value):.10g}"


def to_numbers(raw: pd.Series) -> np.ndarray:
    """Parse text to float64; empty or unparseable text gives NaN, ``-0`` gives 0."""
    values = pd.to_numeric(raw.astype(str).str.strip(), errors="coerce").to_numpy(dtype=float)
    return values + 0.0  # -0.0 + 0.0 is 0.0, so "-0" is written back as 0


def implausible(values: np.ndarray) -> np.ndarray:
    """Numbers that cannot be a coordinate or depth: not finite, or beyond ``MAX_NUMBER``."""
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(values) | (np.abs(values) > MAX_NUMBER)


def why_not_number(text: str, value: float) -> str:
    """Why a parsed cell is refused: ``'x', not a number`` / ``not a finite number`` / too big."""
    if np.isnan(value):
        return f"{text!r}, not a number"
    if not np.isfinite(value):
        return f"{text!r}, not a finite number"
    limit = f"{MAX_NUMBER:.0e}".replace("e+", "e")
    return f"{text!r}, beyond ±{limit} (not a plausible value)"


def _rows(df: pd.DataFrame, mask) -> pd.DataFrame:
    return df.loc[np.asarray(mask, dtype=bool)]


def _add_each(report: DataReport, rows: pd.DataFrame, code: str, what, action) -> None:
    """One report row per row of ``rows``; ``what``/``action`` are str or ``f(row) -> str``."""
    for rec in rows.to_dict("records"):
        report.add(
            rec["_file"],
            rec["_line"],
            rec.get("hole_id"),
            code,
            what(rec) if callable(what) else what,
            action(rec) if callable(action) else action,
        )


def _drop_bad_numbers(
    df: pd.DataFrame, columns: Iterable[str], report: DataReport, what_of: str
) -> pd.DataFrame:
    """Parse ``columns`` to float; rows with empty, unparseable, non-finite or implausibly
    large numbers (see :func:`implausible`) are left out."""
    df = df.copy()
    bad = np.zeros(len(df), dtype=bool)
    for col in columns:
        values = to_numbers(df[col])
        wrong = implausible(values)
        this = wrong & ~bad
        if this.any():
            _add_each(
                report,
                _rows(df, this).assign(_v=values[this]),
                "bad_value",
                lambda r, c=col: f"{what_of} {c} is {why_not_number(r[c].strip(), r['_v'])}",
                "row left out",
            )
        bad |= wrong
        df[col] = values
    return df.loc[~bad]


def _drop_missing_holes(df: pd.DataFrame, report: DataReport) -> pd.DataFrame:
    df = df.copy()
    df["hole_id"] = df["hole_id"].astype(str).str.strip()
    empty = (df["hole_id"] == "").to_numpy()
    if empty.any():
        _add_each(report, _rows(df, empty), "missing_hole_id", "no hole id", "row left out")
    return df.loc[~empty]


# ---------------------------------------------------------------------------------------------
# Collars
# ---------------------------------------------------------------------------------------------


def clean_collars(df: pd.DataFrame, report: DataReport) -> tuple[pd.DataFrame, set[str]]:
    """Parse and check a collar table.

    Parameters
    ----------
    df : pandas.DataFrame
        ``hole_id, x, y, z`` and optionally ``depth`` as text, with ``_file, _line``.
    report : DataReport
        Receives ``missing_hole_id``, ``missing_coordinate``, ``bad_value`` (depth) and
        ``duplicate_collar`` rows.

    Returns
    -------
    collars : pandas.DataFrame
        ``hole_id, x, y, z, depth, _file, _line``; ``depth`` NaN where not given.
    left_out : set of str
        Hole ids whose only collar rows were left out (so their other rows say why).
    """
    df = _drop_missing_holes(df, report)
    if "depth" not in df:
        df["depth"] = ""
    missing = np.zeros(len(df), dtype=bool)
    for col in ("x", "y", "z"):
        values = to_numbers(df[col])
        wrong = implausible(values)
        this = wrong & ~missing
        if this.any():
            _add_each(
                report,
                _rows(df, this).assign(_v=values[this]),
                "missing_coordinate",
                lambda r, c=col: (
                    f"collar {c} is {r[c].strip()!r}"
                    if np.isnan(r["_v"])
                    else f"collar {c} is {why_not_number(r[c].strip(), r['_v'])}"
                ),
                "hole left out",
            )
        missing |= wrong
        df[col] = values
    depth_text = df["depth"].astype(str).str.strip()
    depth = to_numbers(depth_text)
    with np.errstate(invalid="ignore"):
        bad_depth = (depth_text != "").to_numpy() & ~((depth > 0) & ~implausible(depth))
    if bad_depth.any():
        _add_each(
            report,
            _rows(df, bad_depth & ~missing),
            "bad_value",
            lambda r: f"collar depth is {r['depth'].strip()!r}, not a positive finite number",
            "depth taken as unknown",
        )
    df["depth"] = np.where(bad_depth, np.nan, depth)
    left_out_ids = set(df.loc[missing, "hole_id"])
    df = df.loc[~missing]
    dup = df.duplicated("hole_id", keep="first").to_numpy()
    if dup.any():
        first = df.drop_duplicates("hole_id").set_index("hole_id")["_line"]
        _add_each(
            report,
            _rows(df, dup),
            "duplicate_collar",
            lambda r: (
                f"hole {r['hole_id']} again (x {fmt(r['x'])}, y {fmt(r['y'])}, z {fmt(r['z'])}); "
                f"first at line {first[r['hole_id']]}"
            ),
            "row left out (first collar kept)",
        )
    df = df.loc[~dup]
    left_out_ids -= set(df["hole_id"])
    out = df[["hole_id", "x", "y", "z", "depth", "_file", "_line"]]
    return out.sort_values(["hole_id", "_line"], kind="stable").reset_index(drop=True), left_out_ids


# ---------------------------------------------------------------------------------------------
# Surveys
# ---------------------------------------------------------------------------------------------


def check_dip_convention(dips: np.ndarray, lines: np.ndarray, file: str, dip: str) -> None:
    """Raise :class:`DataError` when a file's dips contradict ``data.dip``.

    With ``negative_down`` a file whose non-zero dips are all (or at least
    ``DIP_CONTRADICTION_SHARE`` of them) positive is an error, and the other way round.
    """
    ok = np.isfinite(dips) & (dips != 0)
    wrong = (dips > 0) if dip == "negative_down" else (dips < 0)
    wrong &= ok
    n_ok, n_wrong = int(ok.sum()), int(wrong.sum())
    if n_ok == 0 or n_wrong < DIP_CONTRADICTION_SHARE * n_ok:
        return
    sign = "positive" if dip == "negative_down" else "negative"
    other = "positive_down" if dip == "negative_down" else "negative_down"
    share = "all" if n_wrong == n_ok else f"nearly all ({n_wrong} of {n_ok})"
    i = int(np.flatnonzero(wrong)[0])
    msg = (
        f"dips in {file} are {share} {sign} (e.g. {fmt(dips[i])} at line {int(lines[i])}) "
        f"but data.dip is {dip}; set data.dip: {other}"
    )
    raise DataError(msg)


def clean_surveys(df: pd.DataFrame, dip: str, report: DataReport) -> pd.DataFrame:
    """Parse and check a survey table; dips come back negative down, azimuths in [0, 360).

    Parameters
    ----------
    df : pandas.DataFrame
        ``hole_id, depth, azimuth, dip`` as text, with ``_file, _line``.
    dip : {"negative_down", "positive_down"}
        The file's dip convention (``data.dip``); positive-down dips are negated.
    report : DataReport
        Receives ``missing_hole_id``, ``bad_value``, ``azimuth_out_of_range``,
        ``dip_out_of_range`` and ``duplicate_survey_depth`` rows.

    Returns
    -------
    pandas.DataFrame
        ``hole_id, depth, azimuth, dip, _file, _line`` sorted by hole and depth.

    Raises
    ------
    DataError
        When the dips contradict ``dip`` (see :func:`check_dip_convention`).
    """
    df = _drop_missing_holes(df, report)
    if len(df):
        file = str(df["_file"].iloc[0])
        check_dip_convention(to_numbers(df["dip"]), df["_line"].to_numpy(), file, dip)
    df = _drop_bad_numbers(df, ("depth", "azimuth", "dip"), report, "survey")
    # Exported angles often carry float noise (90.000002); snap it to the range end.
    az, dp = df["azimuth"].to_numpy(), df["dip"].to_numpy()
    df["azimuth"] = np.where(np.abs(az) < ANGLE_TOLERANCE, 0.0, az)
    df["azimuth"] = np.where(np.abs(az - 360.0) < ANGLE_TOLERANCE, 360.0, df["azimuth"])
    df["dip"] = np.where(np.abs(np.abs(dp) - 90.0) < ANGLE_TOLERANCE, np.sign(dp) * 90.0, dp)
    az_bad = ((df["azimuth"] < 0) | (df["azimuth"] > 360)).to_numpy()
    dip_bad = ((df["dip"] < -90) | (df["dip"] > 90)).to_numpy()
    depth_bad = (df["depth"] < 0).to_numpy()
    _add_each(
        report,
        _rows(df, az_bad),
        "azimuth_out_of_range",
        lambda r: f"azimuth {fmt(r['azimuth'])} at depth {fmt(r['depth'])} is outside [0, 360]",
        "row left out",
    )
    _add_each(
        report,
        _rows(df, dip_bad & ~az_bad),
        "dip_out_of_range",
        lambda r: f"dip {fmt(r['dip'])} at depth {fmt(r['depth'])} is outside [-90, 90]",
        "row left out",
    )
    _add_each(
        report,
        _rows(df, depth_bad & ~az_bad & ~dip_bad),
        "bad_value",
        lambda r: f"survey depth {fmt(r['depth'])} is negative",
        "row left out",
    )
    df = df.loc[~(az_bad | dip_bad | depth_bad)].copy()
    df["azimuth"] = np.where(df["azimuth"] == 360.0, 0.0, df["azimuth"])
    if dip == "positive_down":
        df["dip"] = -df["dip"]
    df = df.sort_values(["hole_id", "depth", "_line"], kind="stable")
    dup = df.duplicated(["hole_id", "depth"], keep="first").to_numpy()
    _add_each(
        report,
        _rows(df, dup),
        "duplicate_survey_depth",
        lambda r: f"second survey at depth {fmt(r['depth'])}",
        "row left out (first kept)",
    )
    df = df.loc[~dup]
    return df[["hole_id", "depth", "azimuth", "dip", "_file", "_line"]].reset_index(drop=True)


def add_missing_surveys(
    surveys: pd.DataFrame, collars: pd.DataFrame, report: DataReport, *, table_given: bool = True
) -> pd.DataFrame:
    """Give every collar without survey rows one vertical survey (depth 0, azimuth 0, dip -90).

    The added rows have ``_file = ""`` and ``_line = 0`` (no line in any file). Without a
    survey table (``table_given=False``) one summary ``no_survey`` row is written instead of
    one per hole.
    """
    missing = collars.loc[~collars["hole_id"].isin(surveys["hole_id"])]
    if missing.empty:
        return surveys
    action = "assumed vertical (dip -90, azimuth 0)"
    if table_given:
        for rec in missing.to_dict("records"):
            report.add(
                rec["_file"], rec["_line"], rec["hole_id"], "no_survey", "no survey rows", action
            )
    else:
        report.add(
            "",
            None,
            "",
            "no_survey",
            f"no survey table (data.surveys); {len(missing)} holes",
            action,
        )
    added = pd.DataFrame(
        {
            "hole_id": missing["hole_id"].to_numpy(),
            "depth": 0.0,
            "azimuth": 0.0,
            "dip": -90.0,
            "_file": "",
            "_line": 0,
        }
    )
    frames = [f for f in (surveys, added) if len(f)]
    out = pd.concat(frames, ignore_index=True)
    out["_line"] = out["_line"].astype("int64")
    return out.sort_values(["hole_id", "depth"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Grades
# ---------------------------------------------------------------------------------------------


def parse_grade(
    df: pd.DataFrame,
    column: str,
    grade: str,
    rules: ValueRules,
    report: DataReport,
    *,
    source: str | None = None,
) -> np.ndarray:
    """Apply the value rules of SPEC section 2 to one grade column of text.

    Empty cells, ``NS``, ``-`` and the sentinels are not sampled (NaN, or 0 with
    ``rules.unsampled == "zero"``); ``<0.01`` is below detection (half the limit, zero or the
    limit); ``>50`` is above the upper limit (set to the limit); other text is ``bad_value``
    (NaN) and negative numbers ``negative_grade`` (NaN). Numbers that are not finite (``inf``,
    ``1e400``) or above ``rules.grade_limit(grade)`` (``data.max_grade``) are
    ``implausible_grade`` (NaN), detection limits included. Plain empty cells give one summary
    row per file and grade; every other case one row per cell.

    Parameters
    ----------
    df : pandas.DataFrame
        Table with the text column ``column`` and ``hole_id, _file, _line``.
    column : str
        Column of ``df`` holding the grade text.
    grade : str
        Grade name used in messages.
    rules : ValueRules
        The value rules from the ``data`` config section.
    report : DataReport
        Receives the rows.
    source : str, optional
        The column's name in the file, for messages (default ``column``).

    Returns
    -------
    numpy.ndarray
        float64 grades.
    """
    text = df[column].astype(str).str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float) + 0.0  # -0 is 0
    out = values.copy()

    def emit(mask, code, what, action):
        if mask.any():
            rows = df.loc[mask, ["hole_id", "_file", "_line"]]
            _add_each(report, rows.assign(_t=text[mask], _v=out[mask]), code, what, action)

    zero = rules.unsampled == "zero"
    not_sampled = "set to 0 (data.unsampled: zero)" if zero else "set to NaN (not sampled)"
    empty = (text == "").to_numpy()
    explicit = text.str.upper().isin(NOT_SAMPLED_CODES).to_numpy().copy()
    explicit |= np.isin(values, np.asarray(rules.sentinels, dtype=float))
    unsampled = empty | explicit
    out[unsampled] = 0.0 if zero else np.nan
    if empty.any():
        what = (
            f"{int(empty.sum())} empty values of {grade} (column {source or column}, not sampled)"
        )
        file = df["_file"].iloc[0]
        report.add(file, None, "", "not_sampled", what, not_sampled)
    emit(explicit, "not_sampled", lambda r: f"{grade} is {r['_t']!r}", not_sampled)

    rest = np.isnan(values) & ~unsampled
    below, above = np.zeros_like(rest), np.zeros_like(rest)
    number = values.copy()  # the number each cell states (the limit for "<0.01" and ">50")
    if rest.any():
        # Detection limits: "<0.01" (below) and ">50" (above the upper limit).
        parts = text[rest].str.extract(r"^([<>])\s*([0-9.eE+-]+)$")
        limit = pd.to_numeric(parts[1], errors="coerce").to_numpy(dtype=float)
        below[rest] = (parts[0] == "<").to_numpy() & (limit > 0)
        above[rest] = (parts[0] == ">").to_numpy() & (limit > 0)
        full = np.full(len(out), np.nan)
        full[rest] = limit
        factor = {"half": 0.5, "zero": 0.0, "limit": 1.0}[rules.below_detection]
        with np.errstate(invalid="ignore"):
            out[below] = full[below] * factor
        out[above] = full[above]
        number[below | above] = full[below | above]
    bad = rest & ~below & ~above
    negative = ~unsampled & (values < 0) & np.isfinite(values)
    # Implausible: a number that is not finite (inf, 1e400) or above data.max_grade. It is an
    # export or typing error, never a grade: left out rather than averaged into a domain.
    max_grade, whence = rules.grade_limit(grade)
    wrong = ~unsampled & ~bad & ~negative & (np.isinf(number) | (number > max_grade))
    below &= ~wrong
    above &= ~wrong
    mode = rules.below_detection
    emit(
        below,
        f"below_detection_{mode}",
        lambda r: f"{grade} is {r['_t']!r} (below detection)",
        lambda r: f"set to {fmt(r['_v'])} (data.below_detection: {mode})",
    )
    emit(
        above,
        "above_detection",
        lambda r: f"{grade} is {r['_t']!r} (above the upper detection limit)",
        lambda r: f"set to {fmt(r['_v'])} (the limit)",
    )
    emit(bad, "bad_value", lambda r: f"{grade} is {r['_t']!r}, not a number", "set to NaN")
    out[negative] = np.nan
    emit(negative, "negative_grade", lambda r: f"{grade} is {r['_t']}", "set to NaN")
    infinite = np.isinf(number)
    emit(
        wrong & infinite,
        "implausible_grade",
        lambda r: f"{grade} is {r['_t']!r}, not a finite number",
        "set to NaN (left out)",
    )
    emit(
        wrong & ~infinite,
        "implausible_grade",
        lambda r: (
            f"{grade} is {r['_t']!r}, above the plausible maximum {fmt(max_grade)} ({whence})"
        ),
        "set to NaN (left out)",
    )
    out[wrong] = np.nan
    return out


# ---------------------------------------------------------------------------------------------
# Intervals (assays and zones)
# ---------------------------------------------------------------------------------------------


def clean_intervals(df: pd.DataFrame, report: DataReport) -> pd.DataFrame:
    """Parse ``from, to`` and leave out rows without a hole id, bad numbers or ``from >= to``."""
    df = _drop_missing_holes(df, report)
    df = _drop_bad_numbers(df, ("from", "to"), report, "interval")
    bad = (df["from"] >= df["to"]).to_numpy()
    _add_each(
        report,
        _rows(df, bad),
        "from_not_less_than_to",
        lambda r: f"from {fmt(r['from'])} is not less than to {fmt(r['to'])}",
        "row left out",
    )
    return df.loc[~bad]


def supersede_tranches(df: pd.DataFrame, report: DataReport) -> pd.DataFrame:
    """Where the same ``(hole_id, from, to)`` is in several tranches keep the latest one.

    ``df`` carries ``_order``, the position of its tranche in ``data.assays`` (later wins).
    Repeats within one tranche are left to :func:`drop_overlaps`.
    """
    key = ["hole_id", "from", "to"]
    latest = df.groupby(key, sort=False)["_order"].transform("max").to_numpy()
    superseded = df["_order"].to_numpy() < latest
    if not superseded.any():
        return df
    winners = (
        df.loc[df["_order"].to_numpy() == latest]
        .sort_values("_line", kind="stable")
        .drop_duplicates(key)
        .set_index(key)[["tranche", "_file", "_line"]]
    )
    cand = _rows(df, superseded)
    win = winners.reindex(pd.MultiIndex.from_frame(cand[key]))
    rows = cand.assign(
        _t=win["tranche"].to_numpy(), _f=win["_file"].to_numpy(), _l=win["_line"].to_numpy()
    )
    _add_each(
        report,
        rows,
        "superseded_by_tranche",
        lambda r: (
            f"interval {fmt(r['from'])}-{fmt(r['to'])} of tranche {r['tranche']} is also in "
            f"tranche {r['_t']} ({r['_f']} line {r['_l']})"
        ),
        "row left out (later tranche kept)",
    )
    return df.loc[~superseded]


def drop_overlaps(df: pd.DataFrame, report: DataReport) -> pd.DataFrame:
    """Sort by hole and ``from``; a row starting before the end of an earlier kept row is left out.

    Vectorised test for which holes overlap at all; only those holes are walked row by row.
    """
    df = df.sort_values(["hole_id", "from", "_line"], kind="stable").reset_index(drop=True)
    if df.empty:
        return df
    prev_end = df.groupby("hole_id", sort=False)["to"].cummax().groupby(df["hole_id"]).shift()
    suspect = (df["from"] < prev_end - TOLERANCE).to_numpy()
    if not suspect.any():
        return df
    drop = np.zeros(len(df), dtype=bool)
    holes = set(df.loc[suspect, "hole_id"])
    frm, to = df["from"].to_numpy(), df["to"].to_numpy()
    lines = df["_line"].to_numpy()
    for hole in holes:
        end, end_line = -np.inf, None
        for i in np.flatnonzero((df["hole_id"] == hole).to_numpy()):
            if frm[i] < end - TOLERANCE:
                drop[i] = True
                rec = df.iloc[i]
                report.add(
                    rec["_file"], lines[i], hole, "overlapping_interval",
                    f"interval {fmt(frm[i])}-{fmt(to[i])} overlaps the one ending at {fmt(end)} "
                    f"(line {end_line})",
                    "row left out",
                )  # fmt: skip
            elif to[i] > end:
                end, end_line = to[i], lines[i]
    return df.loc[~drop].reset_index(drop=True)


def keep_collared(
    df: pd.DataFrame, collars: pd.DataFrame, report: DataReport, left_out: set[str] | None = None
) -> pd.DataFrame:
    """Leave out rows of holes without a collar: one ``no_collar`` row per hole and file."""
    known = df["hole_id"].isin(collars["hole_id"]).to_numpy()
    if known.all():
        return df
    orphans = df.loc[~known]
    summary = orphans.groupby(["_file", "hole_id"], sort=False)["_line"].agg(["min", "size"])
    for (file, hole), (first, n) in summary.iterrows():
        why = "whose collar was left out" if left_out and hole in left_out else "with no collar"
        report.add(
            file, first, hole, "no_collar",
            f"{n} rows (from line {first}) for hole {hole} {why}", "rows left out",
        )  # fmt: skip
    return df.loc[known]


def check_end_of_hole(
    collars: pd.DataFrame,
    surveys: pd.DataFrame,
    intervals: list[pd.DataFrame],
    report: DataReport,
) -> pd.DataFrame:
    """Report surveys and intervals past the end of hole; return the surveys kept.

    With a collar depth, surveys past it are left out (``survey_past_end_of_hole``) and intervals
    ending past it are reported and kept (``interval_past_end_of_hole``: the sample exists,
    so the collar depth is the likelier error). Without a collar depth, surveys deeper than the
    deepest interval are reported and kept.
    """
    eoh = collars.set_index("hole_id")["depth"]
    known = surveys["hole_id"].map(eoh).to_numpy(dtype=float)
    past = (surveys["depth"].to_numpy() > known + TOLERANCE) & ~np.isnan(known)
    rows = _rows(surveys, past).assign(_eoh=known[past])
    _add_each(
        report,
        rows,
        "survey_past_end_of_hole",
        lambda r: f"survey at depth {fmt(r['depth'])} is past the end of hole ({fmt(r['_eoh'])})",
        "row left out",
    )
    ends = [t.groupby("hole_id")["to"].max() for t in intervals if len(t)]
    deepest = pd.concat(ends).groupby(level=0).max() if ends else pd.Series(dtype=float)
    logged = surveys["hole_id"].map(deepest).to_numpy(dtype=float)
    beyond = (surveys["depth"].to_numpy() > logged + TOLERANCE) & np.isnan(known)
    beyond &= (surveys["_line"] > 0).to_numpy()
    rows = _rows(surveys, beyond).assign(_eoh=logged[beyond])
    _add_each(
        report,
        rows,
        "survey_past_end_of_hole",
        lambda r: (
            f"survey at depth {fmt(r['depth'])} is past the deepest interval ({fmt(r['_eoh'])}); "
            "the collar gives no end-of-hole depth"
        ),
        "row kept",
    )
    for table in intervals:
        depth = table["hole_id"].map(eoh).to_numpy(dtype=float)
        after = table["to"].to_numpy() > depth + TOLERANCE
        rows = _rows(table, after).assign(_eoh=depth[after])
        _add_each(
            report,
            rows,
            "interval_past_end_of_hole",
            lambda r: (
                f"interval {fmt(r['from'])}-{fmt(r['to'])} ends past the end of hole "
                f"({fmt(r['_eoh'])})"
            ),
            "row kept (check the collar depth)",
        )
    return surveys.loc[~past].reset_index(drop=True)
