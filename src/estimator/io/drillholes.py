"""Read drillhole tables and positioned samples (SPEC section 2).

CSV files are read as text (UTF-8, a byte-order mark tolerated), their columns matched to
canonical names (case-insensitive, with aliases and ``data.columns``), and handed to
:mod:`estimator.drillholes.validate`, which parses values and reports every problem.
Only fatal problems raise :class:`~estimator.errors.DataError`: a file that is not UTF-8 text
(binary, UTF-16, NUL bytes), separated by ``;`` or tabs, with an unclosed quote, or with a row
whose number of fields differs from the header's (its values would land under the wrong
columns). Empty trailing fields (a delimiter at the end of every row, with or without one on
the header) are not values and are read in place.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from estimator.drillholes import validate as v
from estimator.drillholes.tables import Drillholes
from estimator.errors import ConfigError, DataError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from estimator.datareport import DataReport

__all__ = [
    "ASSAY_COLUMNS",
    "COLLAR_COLUMNS",
    "SAMPLE_COLUMNS",
    "SURVEY_COLUMNS",
    "ZONE_COLUMNS",
    "find_columns",
    "read_drillholes",
    "read_gslib",
    "read_samples",
]

_HOLE = ("BHID", "HOLEID", "HOLE_ID", "HOLE", "DHID")
_FROM_TO = {"from": ("FROM", "FROM_M", "DEPTH_FROM"), "to": ("TO", "TO_M", "DEPTH_TO")}

#: Canonical column -> accepted names (matched case-insensitively), per table.
COLLAR_COLUMNS = {
    "hole_id": _HOLE,
    "x": ("X", "EAST", "EASTING", "XCOLLAR"),
    "y": ("Y", "NORTH", "NORTHING", "YCOLLAR"),
    "z": ("Z", "ELEV", "ELEVATION", "RL", "ZCOLLAR"),
    "depth": ("DEPTH", "LENGTH", "EOH", "MAX_DEPTH", "TD"),
}
# Inclination (0 = horizontal vs 0 = vertical, depending on the software) is a different
# convention from dip, so it is deliberately not an alias: map it explicitly if it is a dip.
SURVEY_COLUMNS = {
    "hole_id": _HOLE,
    "depth": ("DEPTH", "AT", "DISTANCE"),
    "azimuth": ("AZ", "AZM", "AZIMUTH", "BRG", "BEARING"),
    "dip": ("DIP",),
}
ASSAY_COLUMNS = {"hole_id": _HOLE, **_FROM_TO}
ZONE_COLUMNS = {"hole_id": _HOLE, **_FROM_TO, "zone": ("ZONE", "DOMAIN", "CODE")}
# Point data sets often carry an ``elev`` covariate (meuse: height above the river), so the
# short form is not a sample elevation alias; map it with data.columns.z if it is one.
SAMPLE_COLUMNS = {
    "hole_id": _HOLE,
    "x": ("X", "EAST", "EASTING", "XLOCATION"),
    "y": ("Y", "NORTH", "NORTHING", "YLOCATION"),
    "z": ("Z", "ELEVATION", "RL", "ZLOCATION"),
    "zone": ("ZONE",),
}


def find_columns(
    header: Iterable[str],
    canonical: Mapping[str, Sequence[str]],
    mapping: Mapping[str, str] | None,
    file: str,
    *,
    optional: Iterable[str] = (),
    table: str | None = None,
) -> dict[str, str | None]:
    """Match a file's columns to canonical names.

    For each canonical name the file column is, in order of preference: the one named by
    ``mapping["<table>.<name>"]``, then ``mapping[name]``, then the canonical name itself,
    then the first alias present. Matching is case-insensitive and ignores surrounding blanks.

    Parameters
    ----------
    header : iterable of str
        The file's column names.
    canonical : mapping of str to sequence of str
        Canonical name -> aliases (e.g. :data:`COLLAR_COLUMNS`).
    mapping : mapping of str to str or None
        ``data.columns``: canonical name (optionally ``table.name``) -> file column name.
    file : str
        File name, for messages.
    optional : iterable of str, optional
        Canonical names that may be absent (returned as ``None``).
    table : str, optional
        Table name (``collars``, ``surveys``, ``assays``, ``zones``, ``samples``) for the
        qualified ``mapping`` keys.

    Returns
    -------
    dict
        Canonical name -> file column name (``None`` for an absent optional column).

    Raises
    ------
    DataError
        When a required column is absent; the message lists what was looked for.
    """
    header = [str(h) for h in header]
    by_upper: dict[str, str] = {}
    for h in header:
        key = h.strip().upper()
        if key in by_upper:
            msg = (
                f"{file}: column {h!r} appears twice in the header (as {by_upper[key]!r} and {h!r}); "
                "rename one so that each column has one meaning"
            )
            raise DataError(msg)
        by_upper[key] = h
    _add_first_words(by_upper, header)
    mapping = mapping or {}
    optional = set(optional)
    found: dict[str, str | None] = {}
    for name, aliases in canonical.items():
        keys = (f"{table}.{name}", name) if table else (name,)
        mapped_keys = [k for k in keys if k in mapping]
        if mapped_keys:
            key = mapped_keys[0]
            col = str(mapping[key])
            if col.strip().upper() not in by_upper:
                msg = (
                    f"{file}: data.columns.{key} is {col!r}, but there is no such column "
                    f"(columns are {', '.join(header)})"
                )
                raise DataError(msg)
            found[name] = by_upper[col.strip().upper()]
            continue
        wanted = [name, *aliases]
        hits = list(
            dict.fromkeys(
                by_upper[w.strip().upper()] for w in wanted if w.strip().upper() in by_upper
            )
        )
        if len(hits) > 1:
            msg = (
                f"{file}: columns {', '.join(hits)} could each be {name!r}; say which one with "
                f"data.columns.{name}"
            )
            raise DataError(msg)
        hit = hits[0] if hits else None
        if hit is None and name not in optional:
            looked = ", ".join(dict.fromkeys(w.upper() for w in wanted))
            msg = (
                f"{file}: no column for {name!r} (looked for {looked}; columns are "
                f"{', '.join(header)}). Map it with data.columns.{name}"
            )
            raise DataError(msg)
        found[name] = hit
    return found


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _check_path(path, key: str) -> Path:
    if path is None:
        msg = f"data.{key} is not set"
        raise DataError(msg)
    path = Path(path)
    if path.is_dir():
        msg = f"data.{key}: {str(path)!r} is a folder, not a file: give the file inside it"
        raise DataError(msg)
    if not path.is_file():
        msg = f"data.{key}: file {str(path)!r} does not exist"
        raise DataError(msg)
    return path


def _line_at(text: str, pos: int) -> int:
    """1-based line of character ``pos`` (CR LF, LF and a lone CR each end a line)."""
    head = text[:pos]
    return head.count("\n") + head.count("\r") - head.count("\r\n") + 1


def _read_text(path: Path) -> str:
    """A table file as text: UTF-8 (a byte-order mark tolerated), never binary."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        msg = f"{path.name}: cannot be read ({err.strerror or err})"
        raise DataError(msg) from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        msg = f"{path.name}: UTF-16 text (Excel's 'Unicode text'); save it as CSV UTF-8"
        raise DataError(msg)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        msg = (
            f"{path.name}: not UTF-8 text ({err.reason} at byte {err.start}, line {line}); "
            "a binary file, or text in another encoding: save it as CSV UTF-8"
        )
        raise DataError(msg) from None
    nul = text.find("\x00")
    if nul >= 0:
        msg = (
            f"{path.name}, line {_line_at(text, nul)}: a NUL character (byte 0) in the text: "
            "a binary file or a damaged export, not a CSV table"
        )
        raise DataError(msg)
    # A byte-order mark inside the text (files joined end to end) is invisible; it would make
    # "\ufeffA" a hole of its own or a number unreadable, so it goes.
    return text.replace("\ufeff", "")


def _csv_records(text: str, name: str) -> tuple[list[list[str]], list[int]]:
    """Records of a CSV text and the line each starts on (quoted fields may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[list[str]] = []
    lines: list[int] = []
    done = 0
    try:
        if '"' not in text:  # no quoted field: one record per line (blank lines give [])
            records = list(reader)
            return records, list(range(1, len(records) + 1))
        for rec in reader:
            records.append(rec)
            lines.append(done + 1)
            done = reader.line_num
    except csv.Error as err:
        line = (reader.line_num if '"' not in text else done + 1) or 1
        if "field larger" in str(err) and '"' not in text:
            why = f"a value longer than {csv.field_size_limit()} characters"
        elif "end of data" in str(err) or "field larger" in str(err):
            why = (
                'a quote (") opens a field that is never closed: the rest of the file would '
                "be read as one value"
            )
        else:
            why = f'{err} (a quote inside a quoted value must be doubled: "")'
        msg = f"{name}, line {line}: cannot be read as CSV: {why}"
        raise DataError(msg) from None
    return records, lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _blank(rec: Sequence[str]) -> bool:
    return all(not f.strip() for f in rec)


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV as text: every value a ``str`` ("" when empty), plus ``_line`` and ``_file``.

    Every row must have as many fields as the header: a row with more or fewer is a
    :class:`DataError` naming the first such line, because its values would land under the
    wrong columns. Extra fields that are empty on a row (a trailing delimiter, with or
    without one on the header) are not values and are ignored; so are columns whose header
    name is empty (no column can be mapped to them). Blank lines are skipped; ``_line`` is the
    line in the file where each row starts.
    """
    text = _read_text(path)
    records, lines = _csv_records(text, path.name)
    first = next((i for i, rec in enumerate(records) if not _blank(rec)), None)
    if first is None:
        msg = f"{path.name}: the file is empty (expected a header line and rows)"
        raise DataError(msg)
    header = [h.strip() for h in records[first]]
    header_line = lines[first]
    if len(header) == 1:
        for delim, word in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if delim in header[0]:
                msg = (
                    f"{path.name}: the header {header[0]!r} is one column: the file is separated "
                    f"by {word}, not commas; save it as comma-separated CSV"
                )
                raise DataError(msg)
    while len(header) > 1 and header[-1] == "":
        header.pop()  # a trailing delimiter on the header
    width = len(header)
    rows, numbers = [], []
    bad: list[tuple[int, int]] = []
    for rec, line in zip(records[first + 1 :], lines[first + 1 :], strict=True):
        if len(rec) == width and rec[0].strip():  # the common case: nothing to check
            rows.append(rec)
            numbers.append(line)
            continue
        if _blank(rec):
            continue
        if len(rec) > width:
            if not _blank(rec[width:]):
                bad.append((line, len(rec)))
                continue
            rec = rec[:width]
        elif len(rec) < width:
            bad.append((line, len(rec)))
            continue
        rows.append(rec)
        numbers.append(line)
    if bad:
        line, found = bad[0]
        more = f" ({_count(len(bad) - 1, 'more line')} like it)" if len(bad) > 1 else ""
        msg = (
            f"{path.name}, line {line}: {_count(found, 'field')} but the header (line "
            f"{header_line}) has {width}{more}: the values would land under the wrong columns; "
            "check for a missing or extra delimiter (a ',' inside a value must be quoted)"
        )
        raise DataError(msg)
    seen: dict[str, str] = {}
    for name in header:
        key = name.upper()
        if not key:
            continue
        if key in seen:
            msg = (
                f"{path.name}: column {name!r} appears twice in the header (as {seen[key]!r} and "
                f"{name!r}); rename one so that each column has one meaning"
            )
            raise DataError(msg)
        seen[key] = name
    named = [k for k, h in enumerate(header) if h]
    columns = [header[k] for k in named]
    values = rows if len(named) == width else [[rec[k] for k in named] for rec in rows]
    df = pd.DataFrame(values, columns=columns, dtype=str)
    if not rows:
        df = pd.DataFrame({c: pd.Series(dtype=str) for c in columns})
    df["_line"] = np.asarray(numbers, dtype="int64")
    df["_file"] = path.name
    return df


def _read_gslib_text(path: Path) -> pd.DataFrame:
    """A GSLIB (Geo-EAS) file as text columns, with ``_file`` and ``_line``.

    Line 1 is a title, line 2 the number of variables ``n``, then ``n`` name lines, then rows
    of ``n`` values each. A row with another number of values is a :class:`DataError` (the
    count on line 2 and the rows disagree, so values would land under the wrong names).
    """
    lines = _read_text(path).splitlines()
    try:
        ncol = int(lines[1].split()[0])
    except (IndexError, ValueError):
        msg = f"{path.name}: not a GSLIB file (line 2 should be the number of columns)"
        raise DataError(msg) from None
    if ncol < 1:
        msg = f"{path.name}, line 2: a GSLIB file needs at least one variable, got {ncol}"
        raise DataError(msg)
    if len(lines) < 2 + ncol:
        msg = (
            f"{path.name}, line 2: declares {ncol} variables but the file ends after "
            f"{_count(max(len(lines) - 2, 0), 'name line')}; check the number on line 2"
        )
        raise DataError(msg)
    names = [lines[2 + i].strip() for i in range(ncol)]
    for i, name in enumerate(names):
        tokens = name.split()
        if len(tokens) > 1 and np.isfinite(v.to_numbers(pd.Series(tokens))).all():
            msg = (
                f"{path.name}, line {3 + i}: expected the name of variable {i + 1} of {ncol} "
                f"(line 2), got {name!r}, which looks like a row of values; check the number "
                "on line 2"
            )
            raise DataError(msg)
    seen: dict[str, str] = {}
    for name in names:
        if name.upper() in seen:
            msg = (
                f"{path.name}: column {name!r} appears twice in the header (as "
                f"{seen[name.upper()]!r} and {name!r}); rename one so that each column has one "
                "meaning"
            )
            raise DataError(msg)
        seen[name.upper()] = name
    first = 2 + ncol
    rows, numbers, bad = [], [], []
    for k, text in enumerate(lines[first:]):
        parts = text.split()
        if not parts:
            continue
        if len(parts) != ncol:
            bad.append((first + k + 1, len(parts)))
            continue
        rows.append(parts)
        numbers.append(first + k + 1)
    if bad:
        line, found = bad[0]
        more = f" ({_count(len(bad) - 1, 'more line')} like it)" if len(bad) > 1 else ""
        msg = (
            f"{path.name}, line {line}: {_count(found, 'value')} but line 2 declares {ncol} "
            "variables "
            f"({', '.join(names)}){more}: the values would land under the wrong names; check "
            "the number on line 2 and the name lines"
        )
        raise DataError(msg)
    df = pd.DataFrame(rows, columns=names, dtype=str)
    if not rows:
        df = pd.DataFrame({c: pd.Series(dtype=str) for c in names})
    df["_line"] = np.asarray(numbers, dtype="int64")
    df["_file"] = path.name
    return df


def _is_gslib(path: Path) -> bool:
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        head = [f.readline() for _ in range(2)]
    return len(head) == 2 and "," not in head[0] and head[1].strip().isdigit()


def read_gslib(path) -> pd.DataFrame:
    """Read a GSLIB-format file: a title line, the number of columns, one name per line, values.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    pandas.DataFrame
        One float column per name (as spelt in the file; unparseable values NaN), plus ``_line``
        (1-based line in the file). Missing-value codes such as -999 are kept as they are.
    """
    df = _read_gslib_text(_check_path(path, "samples"))
    for col in df.columns[:-2]:
        df[col] = v.to_numbers(df[col])
    return df.drop(columns="_file")


def _select(raw: pd.DataFrame, cols: Mapping[str, str | None]) -> pd.DataFrame:
    """Canonical-named text columns (absent optional ones left out) plus ``_file, _line``."""
    out = pd.DataFrame({name: raw[col] for name, col in cols.items() if col is not None})
    out["_file"] = raw["_file"]
    out["_line"] = raw["_line"]
    return out


#: GSLIB programs treat values at or above this (1e21, 1e31, ...) as missing.
GSLIB_MISSING = 1e21


def _gslib_missing(raw: pd.DataFrame, gcols: Mapping[str, str], name: str, report) -> pd.DataFrame:
    """Grades at or above :data:`GSLIB_MISSING` in a GSLIB file are its missing-value code."""
    raw = raw.copy()
    for g, col in gcols.items():
        values = v.to_numbers(raw[col])
        code = np.isfinite(values) & (np.abs(values) >= GSLIB_MISSING)
        if code.any():
            report.add(
                name, None, "", "gslib_missing_code",
                f"{int(code.sum())} values of {g} (column {col!r}) are {v.fmt(values[code][0])} "
                f"or another number of {GSLIB_MISSING:g} or more: GSLIB's missing-value code",
                "not sampled (NaN)",
            )  # fmt: skip
            raw.loc[code, col] = ""
    return raw


def _add_first_words(by_upper: dict[str, str], header: Sequence[str]) -> None:
    """Let a column also be found by the first word of a descriptive name.

    GSLIB files name columns in words (``Xlocation in meter``, ``V variable, concentration in
    ppm``); their first word (``XLOCATION``, ``V``) matches when it is the first word of no
    other column and not itself a column name.
    """
    words: dict[str, list[str]] = {}
    for h in header:
        parts = h.strip().replace(",", " ").split()
        if len(parts) > 1:
            words.setdefault(parts[0].upper(), []).append(h)
    for word, cols in words.items():
        if len(cols) == 1 and word not in by_upper:
            by_upper[word] = cols[0]


def _grade_columns(header, grades: Sequence[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """Grade name -> file column for the grades this file has (case-insensitive)."""
    by_upper: dict[str, str] = {}
    for h in header:
        by_upper.setdefault(str(h).strip().upper(), h)
    _add_first_words(by_upper, [str(h) for h in header])
    found = {}
    for g in grades:
        for w in (mapping.get(g), g):
            if w is not None and w.strip().upper() in by_upper:
                found[g] = by_upper[w.strip().upper()]
                break
    return found


def _rules(data, grades: Sequence[str] | None = None) -> v.ValueRules:
    """The value rules of ``data``; ``data.max_grade`` keys are checked against ``grades``."""
    max_grade = getattr(data, "max_grade", None)
    if isinstance(max_grade, dict):
        max_grade = {str(k).strip().lower(): float(x) for k, x in max_grade.items()}
        unknown = [k for k in max_grade if grades is not None and k not in grades]
        if unknown:
            msg = (
                f"data.max_grade.{unknown[0]}: no such grade (grades are {', '.join(grades)})"
            )
            raise ConfigError(msg)
    elif max_grade is not None:
        max_grade = float(max_grade)
    return v.ValueRules(
        below_detection=getattr(data, "below_detection", "half"),
        unsampled=getattr(data, "unsampled", "nan"),
        sentinels=tuple(float(s) for s in getattr(data, "sentinels", (-99.0, -999.0))),
        max_grade=max_grade,
        grade_unit=getattr(data, "grade_unit", None),
    )


# ---------------------------------------------------------------------------------------------
# Drillholes
# ---------------------------------------------------------------------------------------------


def _read_assays(data, grades, rules, report) -> pd.DataFrame:
    mapping = data.columns or {}
    entries = list(data.assays or [])
    if not entries:
        msg = "data.assays is empty: drillholes need at least one assay file"
        raise DataError(msg)
    frames, seen = [], set()
    for order, entry in enumerate(entries):
        path = _check_path(getattr(entry, "path", entry), "assays")
        tranche = getattr(entry, "tranche", None) or path.stem
        raw = _read_csv(path)
        if raw.empty:
            report.add(
                path.name, None, "", "empty_file",
                f"assay file of tranche {tranche} has a header but no rows",
                "nothing read from it",
            )  # fmt: skip
        cols = find_columns(raw.columns[:-2], ASSAY_COLUMNS, mapping, path.name, table="assays")
        gcols = _grade_columns(raw.columns[:-2], grades, mapping)
        seen.update(gcols)
        df = _select(raw, cols)
        for g, c in gcols.items():
            df[f"_g_{g}"] = raw[c]
        df = v.clean_intervals(df, report)
        for g in grades:
            if g in gcols:
                df[g] = v.parse_grade(df, f"_g_{g}", g, rules, report, source=gcols[g])
            else:
                df[g] = np.nan
                report.add(
                    path.name, None, "", "not_sampled",
                    f"no column for {g} (tranche {tranche}); {len(df)} rows",
                    "set to NaN (not sampled)",
                )  # fmt: skip
        df["tranche"] = tranche
        df["_order"] = order
        frames.append(df[["hole_id", "from", "to", "tranche", *grades, "_file", "_line", "_order"]])
    missing = [g for g in grades if g not in seen]
    if missing:
        files = ", ".join(Path(getattr(e, "path", e)).name for e in entries)
        msg = (
            f"grade {', '.join(map(repr, missing))} is in no assay file ({files}); "
            f"check the grades list or map it with data.columns.{missing[0]}"
        )
        raise DataError(msg)
    assays = pd.concat(frames, ignore_index=True)
    if len(frames) > 1:
        assays = v.supersede_tranches(assays, report)
    return assays.drop(columns="_order")


def read_drillholes(data, grades: Sequence[str], report: DataReport) -> Drillholes:
    """Read, check and repair the collar, survey, assay and zone tables.

    Parameters
    ----------
    data : object
        The ``data`` config section: ``collars``, ``surveys``, ``assays`` (objects with ``path``
        and ``tranche``), ``zones``, ``dip``, ``columns``, ``below_detection``, ``unsampled``
        and ``sentinels`` (see SPEC section 2). Paths are already absolute.
    grades : sequence of str
        Grade names to read (matched case-insensitively or through ``data.columns``).
    report : DataReport
        Receives one row per problem (codes in :mod:`estimator.drillholes.validate`).

    Returns
    -------
    Drillholes
        Validated tables: dips negative down, azimuths in [0, 360), sorted by hole and depth,
        ``_file``/``_line`` on every row. Collars without survey rows get one vertical survey
        row (``_file = ""``, ``_line = 0``).

    Raises
    ------
    DataError
        A missing collar table or file (or a folder given as one), an unreadable or ragged
        table (see the module docstring), a required column absent, a grade in no assay file,
        dips that contradict ``data.dip``, or nothing (or no value of a grade) left.
    ConfigError
        ``data.max_grade`` names a grade that is not in ``grades``.
    """
    grades = [g.lower() for g in grades]
    mapping = data.columns or {}
    rules = _rules(data, grades)
    if data.collars is None:
        msg = "data.collars is not set: drillholes need a collar table (or give data.samples)"
        raise DataError(msg)
    path = _check_path(data.collars, "collars")
    raw = _read_csv(path)
    if raw.empty:
        msg = f"{path.name}: a header but no rows: no collar to read"
        raise DataError(msg)
    cols = find_columns(
        raw.columns[:-2], COLLAR_COLUMNS, mapping, path.name, optional=("depth",), table="collars"
    )
    collars, left_out = v.clean_collars(_select(raw, cols), report)
    if collars.empty:
        msg = f"{path.name}: no usable collar left after validation (see the data report)"
        raise DataError(msg)

    dip = getattr(data, "dip", "negative_down")
    if data.surveys is not None:
        path = _check_path(data.surveys, "surveys")
        raw = _read_csv(path)
        if raw.empty:
            report.add(
                path.name, None, "", "empty_file", "survey file has a header but no rows",
                "every hole taken as vertical",
            )  # fmt: skip
        cols = find_columns(raw.columns[:-2], SURVEY_COLUMNS, mapping, path.name, table="surveys")
        surveys = v.keep_collared(
            v.clean_surveys(_select(raw, cols), dip, report), collars, report, left_out
        )
    else:
        surveys = pd.DataFrame(
            {"hole_id": pd.Series(dtype=str), "depth": pd.Series(dtype=float),
             "azimuth": pd.Series(dtype=float), "dip": pd.Series(dtype=float),
             "_file": pd.Series(dtype=str), "_line": pd.Series(dtype="int64")}
        )  # fmt: skip

    assays = v.keep_collared(_read_assays(data, grades, rules, report), collars, report, left_out)
    assays = v.drop_overlaps(assays, report)

    zones = None
    if getattr(data, "zones", None) is not None:
        path = _check_path(data.zones, "zones")
        raw = _read_csv(path)
        if raw.empty:
            report.add(
                path.name, None, "", "empty_file", "zone file has a header but no rows",
                "no logged zones",
            )  # fmt: skip
        cols = find_columns(raw.columns[:-2], ZONE_COLUMNS, mapping, path.name, table="zones")
        zones = v.clean_intervals(_select(raw, cols), report)
        zones["zone"] = zones["zone"].astype(str).str.strip()
        zones = v.drop_overlaps(v.keep_collared(zones, collars, report, left_out), report)
        zones = zones[["hole_id", "from", "to", "zone", "_file", "_line"]]

    surveys = v.check_end_of_hole(
        collars, surveys, [assays] + ([zones] if zones is not None else []), report
    )
    surveys = v.add_missing_surveys(surveys, collars, report, table_given=data.surveys is not None)

    if assays.empty:
        msg = "no assay interval left after validation (see the data report)"
        raise DataError(msg)
    for g in grades:
        if not np.isfinite(assays[g].to_numpy()).any():
            msg = f"no sampled value of {g!r} left in the assays after validation"
            raise DataError(msg)
    return Drillholes(
        collars=collars,
        surveys=surveys.reset_index(drop=True),
        assays=assays.reset_index(drop=True),
        zones=None if zones is None else zones.reset_index(drop=True),
        grades=tuple(grades),
    )


# ---------------------------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------------------------


def read_samples(data, grades: Sequence[str], report: DataReport) -> pd.DataFrame:
    """Read positioned samples (``data.samples``): CSV, or GSLIB format.

    Parameters
    ----------
    data : object
        The ``data`` config section (``samples``, ``columns`` and the value rules).
    grades : sequence of str
        Grade names to read.
    report : DataReport
        Receives value-rule rows (``implausible_grade`` included), ``missing_coordinate``
        (empty, unparseable, non-finite or beyond ``validate.MAX_NUMBER``: row left out) and
        ``no_elevation`` (one row when the file has no z column: 2-D data, z set to 0).

    Returns
    -------
    pandas.DataFrame
        ``x, y, z, hole_id, zone, <grades>, _file, _line`` in file order; ``hole_id`` and
        ``zone`` (a logged zone code, column ``ZONE`` or ``data.columns.zone``) are ``""``
        when the file has none.

    Raises
    ------
    DataError
        Missing file (or a folder), an unreadable or ragged table (a GSLIB file whose rows do
        not have the number of values its line 2 declares), no x or y column, a grade not in
        the file, or no row left.
    ConfigError
        ``data.max_grade`` names a grade that is not in ``grades``.
    """
    grades = [g.lower() for g in grades]
    rules = _rules(data, grades)
    path = _check_path(data.samples, "samples")
    gslib = _is_gslib(path)
    raw = _read_gslib_text(path) if gslib else _read_csv(path)
    if raw.empty:
        msg = f"{path.name}: a header but no rows: no sample to read"
        raise DataError(msg)
    header = raw.columns[:-2]
    mapping = data.columns or {}
    cols = find_columns(
        header, SAMPLE_COLUMNS, mapping, path.name, optional=("hole_id", "z", "zone"),
        table="samples",
    )
    gcols = _grade_columns(header, grades, mapping)
    missing = [g for g in grades if g not in gcols]
    if missing:
        msg = (
            f"{path.name}: no column for grade {', '.join(map(repr, missing))} (columns are "
            f"{', '.join(header)}). Map it with data.columns.{missing[0]}"
        )
        raise DataError(msg)
    if gslib:
        raw = _gslib_missing(raw, gcols, path.name, report)
    df = _select(raw, cols)
    df["hole_id"] = df["hole_id"].astype(str).str.strip() if "hole_id" in df else ""
    df["zone"] = df["zone"].astype(str).str.strip() if "zone" in df else ""
    if "z" not in df:
        looked = ", ".join(SAMPLE_COLUMNS["z"])
        report.add(
            path.name, None, "", "no_elevation",
            f"no elevation column (looked for {looked}): 2-D data",
            "z set to 0 for every sample",
        )  # fmt: skip
        df["z"] = "0"
    keep = np.ones(len(df), dtype=bool)
    for c in ("x", "y", "z"):
        values = v.to_numbers(df[c])
        wrong = v.implausible(values)
        this = wrong & keep
        v._add_each(
            report, df.loc[this].assign(_v=values[this]), "missing_coordinate",
            lambda r, c=c: (
                f"sample {c} is {r[c].strip()!r}" if np.isnan(r["_v"])
                else f"sample {c} is {v.why_not_number(r[c].strip(), r['_v'])}"
            ),
            "row left out",
        )  # fmt: skip
        keep &= ~wrong
        df[c] = values
    df = df.loc[keep]
    for g in grades:
        graw = df.assign(_g=raw.loc[keep, gcols[g]])
        df[g] = v.parse_grade(graw, "_g", g, rules, report, source=gcols[g])
    df = df[["x", "y", "z", "hole_id", "zone", *grades, "_file", "_line"]]
    if df.empty:
        msg = f"{path.name}: no sample left after validation (see the data report)"
        raise DataError(msg)
    return df.reset_index(drop=True)
