"""The run folder's self-contained report page, ``report.html`` (SPEC section 5).

``render_report(run_dir)`` reads only the run folder (``run.json`` and the files under it) and
returns one HTML page: inline CSS, images embedded as base64 ``data:`` URIs, no script and no
link to anything outside the page, so it can be mailed or archived as one file and opened
offline. Each section is shown when its files exist; a missing one says "not produced by this
run". ``write_report(run_dir)`` writes the page atomically as ``report.html``.

Sections: header (run, version, inputs, tranches, warnings), data report, composite statistics,
capping, declustering, variograms, estimation parameters, validation, classification,
grade-tonnage, resource statement and, after ``estimator update``, the diff.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from estimator.errors import DataError

__all__ = ["render_report", "write_report"]

#: File name of the page in the run folder.
REPORT_NAME = "report.html"
#: Longest table shown whole; longer ones show their first rows and say how many are left out.
MAX_ROWS = 60
#: The eight bytes every PNG file starts with.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Said of a section whose files this run did not write.
NOT_PRODUCED = "not produced by this run"
#: Columns that are names, ids or line numbers even when they hold digits: never formatted as
#: quantities (no thousands separator).
_LABEL_COLUMNS = {
    "hole", "hole_id", "bhid", "line", "run_id", "rank", "i", "j", "k", "tranche", "pass",
    "order", "structure",
}  # fmt: skip
#: A QP placeholder in the resource statement's notes: ``[QP: ...]``, ``<QP ...>``, ``{{...}}``,
#: ``TBD`` or ``TODO``.
_PLACEHOLDER = re.compile(
    r"\[[^\]\n]*\b(?:QP|TBD|TODO)\b[^\]\n]*\]|<[^>\n]*\bQP\b[^>\n]*>|\{\{[^}\n]*\}\}|\bTBD\b|"
    r"\bTODO\b",
    re.IGNORECASE,
)


# -------------------------------------------------------------------------------------------
# public API
# -------------------------------------------------------------------------------------------
def render_report(run_dir: str | Path) -> str:
    """The report page of a run folder, as HTML text.

    Parameters
    ----------
    run_dir : str or Path
        A run folder (the one holding ``run.json``).

    Returns
    -------
    str
        A complete, self-contained HTML document.

    Raises
    ------
    DataError
        When the folder does not exist or its ``run.json`` is missing, empty or not JSON.
    """
    run = _Run.open(run_dir)
    sections = [build(run) for build in _SECTIONS]
    return _page(run, sections)


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Render the report page and write it atomically.

    Parameters
    ----------
    run_dir : str or Path
        The run folder.
    out : str or Path, optional
        Where to write the page (default ``run_dir/report.html``).

    Returns
    -------
    Path
        The file written.
    """
    from estimator.io.output import write_text

    text = render_report(run_dir)
    target = Path(out) if out is not None else Path(run_dir) / REPORT_NAME
    return write_text(target, text)


# -------------------------------------------------------------------------------------------
# the run folder (read only; nothing outside it)
# -------------------------------------------------------------------------------------------
@dataclass
class _Run:
    folder: Path
    meta: dict
    notes: list[str]

    @classmethod
    def open(cls, run_dir: str | Path) -> _Run:
        from estimator.io.output import read_json

        folder = Path(run_dir)
        if not folder.is_dir():
            msg = f"{folder}: not a run folder (no such folder); give the folder holding run.json"
            raise DataError(msg)
        meta = read_json(folder / "run.json", what="run record (run.json)")
        return cls(folder.resolve(), meta, [])

    # -- files ---------------------------------------------------------------------------
    def file(self, rel: str) -> Path | None:
        """``rel`` under the run folder when it is a regular file inside it, else None."""
        path = (self.folder / rel).resolve()
        if not path.is_relative_to(self.folder) or not path.is_file():
            return None
        return path

    def glob(self, pattern: str) -> list[Path]:
        """Files of the run folder matching ``pattern`` (sorted, inside the folder only)."""
        out = []
        for p in sorted(self.folder.glob(pattern)):
            q = p.resolve()
            if q.is_relative_to(self.folder) and q.is_file():
                out.append(p)
        return out

    def rel(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    def csv(self, rel: str | Path) -> pd.DataFrame | None:
        """A CSV of the run folder, or None (missing); an unreadable one is noted, not raised."""
        path = self.file(rel) if isinstance(rel, str) else rel
        if path is None:
            return None
        try:
            return pd.read_csv(path, encoding="utf-8-sig", keep_default_na=True)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
            self.notes.append(f"{self.rel(path)} could not be read as CSV ({err}); left out")
            return None

    # -- config --------------------------------------------------------------------------
    @property
    def config(self) -> dict:
        cfg = self.meta.get("config")
        return cfg if isinstance(cfg, dict) else {}

    def cfg(self, *keys: str, default: Any = None) -> Any:
        node: Any = self.config
        for key in keys:
            if not isinstance(node, dict) or node.get(key) is None:
                return default
            node = node[key]
        return node

    @property
    def length_unit(self) -> str:
        return str(self.cfg("data", "length_unit", default="") or "")

    @property
    def grade_unit(self) -> str:
        return str(self.cfg("data", "grade_unit", default="") or "")

    @property
    def grades(self) -> list[str]:
        g = self.cfg("grades", default=[])
        return [str(x) for x in g] if isinstance(g, list) else []


@dataclass
class _Section:
    anchor: str
    title: str
    body: str
    produced: bool


# -------------------------------------------------------------------------------------------
# HTML helpers
# -------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _unit(text: str) -> str:
    return f" ({text})" if text else ""


def _missing(what: str) -> str:
    return f'<p class="missing">{_e(what)}: {NOT_PRODUCED}.</p>'


def _fmt_number(value: float, decimals: int) -> str:
    if decimals <= 0:
        return f"{value:,.0f}"
    return f"{value:,.{decimals}f}"


def _decimals(values: np.ndarray) -> int:
    """Decimals for a column of floats: by its largest magnitude (0 from 10,000, 1 from 100,
    2 from 1, else 3), more where its smallest non-zero value would lose its second significant
    digit (a nugget of 0.0019 next to sills of 0.07), at most 6."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 2
    if np.all(finite == np.round(finite)):
        return 0
    top = float(np.max(np.abs(finite)))
    base = 0 if top >= 10_000 else 1 if top >= 100 else 2 if top >= 1 else 3
    nonzero = np.abs(finite[finite != 0])
    smallest = float(nonzero.min())
    need = -math.floor(math.log10(smallest)) + 1 if smallest < 1 else 0
    return int(min(max(base, need), 6))


def _is_label(column: str) -> bool:
    low = column.lower()
    return low in _LABEL_COLUMNS or low.endswith(("_id", "hole", "_file"))


def _table(
    frame: pd.DataFrame,
    units: Mapping[str, str] | None = None,
    caption: str = "",
    decimals: Mapping[str, int] | None = None,
    max_rows: int = MAX_ROWS,
    source: str = "",
) -> str:
    """An HTML table: numbers right-aligned with thousands separators, units in the headers.

    A column ``<c>_unit`` holding one value is folded into the header of ``<c>``.
    """
    frame = frame.copy()
    units = dict(units or {})
    decimals = dict(decimals or {})
    for col in [c for c in frame.columns if str(c).endswith("_unit")]:
        base = str(col)[: -len("_unit")]
        vals = frame[col].dropna().astype(str).unique()
        targets = [base] if base in frame.columns else [
            str(c) for c in frame.columns if str(c).startswith(base + "_") and c != col
        ]
        if targets and len(vals) <= 1:
            for target in targets:
                if len(vals) == 1:
                    units.setdefault(target, vals[0])
            frame = frame.drop(columns=col)
    if frame.columns.empty:
        return '<p class="missing">(an empty table)</p>'
    n_total = len(frame)
    shown = frame.iloc[:max_rows]
    head = "".join(
        f'<th class="{_col_class(frame, c)}">{_e(c)}{_e(_unit(units.get(str(c), "")))}</th>'
        for c in frame.columns
    )
    cells: list[list[str]] = [[] for _ in range(len(shown))]
    for c in frame.columns:
        col = shown[c]
        if _col_class(frame, c) == "num":
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            d = decimals.get(str(c), _decimals(pd.to_numeric(frame[c], errors="coerce").to_numpy(
                dtype=float)))
            for i, v in enumerate(values):
                text = _fmt_number(v, d) if math.isfinite(v) else "–"
                cells[i].append(f'<td class="num">{text}</td>')
        else:
            for i, v in enumerate(col.tolist()):
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    text = ""
                elif isinstance(v, float):
                    text = _plain(v)
                else:
                    text = v
                cells[i].append(f"<td>{_e(text)}</td>")
    rows = "".join(f"<tr>{''.join(r)}</tr>" for r in cells)
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    foot = ""
    if n_total > len(shown):
        where = f" (all of them in {source})" if source else ""
        foot = (
            f'<p class="note">First {len(shown):,} of {n_total:,} rows shown{_e(where)}.</p>'
        )
    if not len(shown):
        rows = f'<tr><td colspan="{len(frame.columns)}" class="note">no rows</td></tr>'
    return (
        f'<div class="tablewrap"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>{foot}"
    )


def _col_class(frame: pd.DataFrame, column: Any) -> str:
    series = frame[column]
    if _is_label(str(column)):
        return "txt"
    if pd.api.types.is_bool_dtype(series):
        return "txt"
    if pd.api.types.is_numeric_dtype(series):
        return "num"
    return "txt"


def _image(run: _Run, path: Path) -> str:
    """An embedded PNG (``data:`` URI) with its file name as caption; non-PNG files are noted."""
    data = path.read_bytes()
    rel = run.rel(path)
    if not data.startswith(PNG_SIGNATURE):
        return f'<p class="warn">{_e(rel)} is not a PNG image; left out.</p>'
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img src="{uri}" alt="{_e(rel)}"><figcaption>{_e(rel)}</figcaption></figure>'
    )


def _images(run: _Run, paths: Iterable[Path]) -> str:
    parts = [_image(run, p) for p in paths]
    return f'<div class="figures">{"".join(parts)}</div>' if parts else ""


def _dl(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in items)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _num(value: Any) -> str:
    """A config number as written (no trailing .0 on whole numbers), thousands separated."""
    if isinstance(value, bool) or value is None:
        return _e(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return _e(value)


def _triple(values: Any, unit: str = "") -> str:
    if not isinstance(values, (list, tuple)):
        return "–"
    return " × ".join(_num(v) for v in values) + _e(f" {unit}" if unit else "")


# -------------------------------------------------------------------------------------------
# sections
# -------------------------------------------------------------------------------------------
def _header(run: _Run) -> _Section:
    m = run.meta
    cfg_path = next((p for p in m.get("inputs", {}) if str(p).lower().endswith((".yaml", ".yml"))),
                    None)  # fmt: skip
    items = [
        ("Run name", _e(m.get("name", run.cfg("name", default="–")))),
        ("Run id", f"<code>{_e(m.get('run_id', '–'))}</code>"),
        ("Command", _e(m.get("command", "run"))),
        ("Status", _e(m.get("status", "–"))),
        ("Created", _e(m.get("created", "–"))),
        ("Estimator version", _e(m.get("estimator_version", "–"))),
        ("Config", _e(Path(cfg_path).name if cfg_path else "–")),
        ("Run folder", f"<code>{_e(run.folder)}</code>"),
        ("Grades", _e(", ".join(run.grades) or "–")),
        ("Units", _e(f"lengths {run.length_unit or 'not given'}, grades "
                     f"{run.grade_unit or 'not given'}")),
    ]  # fmt: skip
    if m.get("finished_stage"):
        items.append(("Last stage", _e(m["finished_stage"])))
    body = [_dl(items)]
    inputs = m.get("inputs") or {}
    if isinstance(inputs, dict) and inputs:
        frame = pd.DataFrame(
            [{"file": Path(str(p)).name, "sha256": str(h)[:12], "folder": str(Path(str(p)).parent)}
             for p, h in inputs.items()]
        )  # fmt: skip
        body.append("<h3>Input files (SHA-256, first 12 characters)</h3>")
        body.append(_table(frame))
    tranches = m.get("tranches") or []
    body.append("<h3>Tranches</h3>")
    if tranches:
        rows = [
            {"tranche": t.get("name", ""), "file": Path(str(t.get("file", ""))).name}
            if isinstance(t, dict) else {"tranche": str(t), "file": ""}
            for t in tranches
        ]  # fmt: skip
        body.append(_table(pd.DataFrame(rows)))
    else:
        body.append('<p class="note">One set of assays (no tranches declared).</p>')
    body.append("<h3>Warnings</h3>")
    warnings = m.get("warnings") or []
    if warnings:
        body.append(
            '<ul class="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>"
        )
    else:
        body.append('<p class="note">None.</p>')
    counts = m.get("counts") or {}
    facts = [
        (label, _num(counts[key]))
        for key, label in (("holes", "Holes"), ("assay_rows", "Assay rows"),
                           ("composites", "Composites"), ("blocks", "Blocks in the grid"))
        if isinstance(counts.get(key), (int, float))
    ]  # fmt: skip
    if facts:
        body.append("<h3>Counts</h3>" + _dl(facts))
    return _Section("run", "Run", "".join(body), True)


def _data_report(run: _Run) -> _Section:
    frame = run.csv("data_report.csv")
    if frame is None:
        return _Section("data-report", "Data report", _missing("data_report.csv"), False)
    if frame.empty or "code" not in frame.columns:
        body = '<p class="note">No data problem was found (data_report.csv has no rows).</p>'
        return _Section("data-report", "Data report", body, True)
    frame = frame.fillna("")
    rows = []
    for code, group in frame.groupby("code", sort=False):
        first = group.iloc[0]
        where = ", ".join(
            f"{k} {_plain(first[k])}" for k in ("file", "line", "hole")
            if k in group and first[k] != ""
        )
        rows.append(
            {
                "code": code,
                "count": len(group),
                "example": f"{first.get('what', '')}" + (f" [{where}]" if where else ""),
                "action": first.get("action", ""),
            }
        )
    table = pd.DataFrame(rows).sort_values(["count", "code"], ascending=[False, True])
    body = (
        f'<p>{len(frame):,} rows in <code>data_report.csv</code>, {len(table):,} kinds; one '
        "example of each (the file lists every row with file, line and hole).</p>"
        + _table(table, max_rows=500)
    )
    return _Section("data-report", "Data report", body, True)


def _composite_stats(run: _Run) -> _Section:
    frame = run.csv("composites.csv")
    if frame is None:
        return _Section("composites", "Composite statistics", _missing("composites.csv"), False)
    grades = [g for g in run.grades if g in frame.columns]
    if not grades:
        grades = [c for c in frame.columns if c.lower() not in {
            "hole_id", "from", "to", "length", "x", "y", "z", "domain", "tranche"}
            and not c.startswith("covered_") and pd.api.types.is_numeric_dtype(frame[c])]  # fmt: skip
    table = composite_statistics(frame, grades)
    gu, lu = run.grade_unit, run.length_unit
    units = {c: gu for c in ("mean", "sd", "min", "q25", "median", "q75", "max")}
    units["length"] = lu
    comp = run.cfg("composites") or {}
    rule = ""
    if comp.get("length"):
        rule = (
            f"Composited to {_num(comp['length'])} {_e(lu)} within each domain"
            + (f", residuals under {_num(comp['min_length'])} {_e(lu)} "
               f"{'dropped' if comp.get('residual') == 'drop' else 'merged'}"
               if comp.get("min_length") else "")
            + ". "
        )  # fmt: skip
    body = (
        f"<p>{rule}Statistics of the composites with a value (not length-weighted; CV = sd / "
        "mean, sd with n - 1). Capped values as used for estimation.</p>"
        + _table(table, units=units, decimals={"cv": 2})
    )
    return _Section("composites", "Composite statistics", body, True)


def composite_statistics(frame: pd.DataFrame, grades: list[str]) -> pd.DataFrame:
    """Count, mean, sd, CV, min, quartiles and max per domain and grade, plus an all-domain row.

    Parameters
    ----------
    frame : DataFrame
        ``composites.csv`` (``domain``, ``length`` and the grade columns).
    grades : list of str
        The grade columns.

    Returns
    -------
    DataFrame
        ``domain, grade, count, length, mean, sd, cv, min, q25, median, q75, max``.
    """
    if "domain" in frame.columns:
        domains = [str(d) for d in pd.unique(frame["domain"].fillna("").astype(str))]
    else:
        domains = []
    groups: list[tuple[str, pd.DataFrame]] = [
        (d or "(no domain)", frame[frame["domain"].fillna("").astype(str) == d]) for d in domains
    ]
    if len(groups) != 1:
        groups.append(("all domains", frame))
    rows = []
    for grade in grades:
        for name, part in groups:
            v = pd.to_numeric(part[grade], errors="coerce")
            keep = v.notna()
            x = v[keep].to_numpy(dtype=float)
            length = (
                float(pd.to_numeric(part.loc[keep, "length"], errors="coerce").sum())
                if "length" in part else float("nan")
            )  # fmt: skip
            n = x.size
            mean = float(x.mean()) if n else float("nan")
            sd = float(x.std(ddof=1)) if n > 1 else float("nan")
            q = np.quantile(x, [0.25, 0.5, 0.75]) if n else [float("nan")] * 3
            rows.append(
                {
                    "domain": name, "grade": grade, "count": n, "length": length,
                    "mean": mean, "sd": sd, "cv": sd / mean if n > 1 and mean else float("nan"),
                    "min": float(x.min()) if n else float("nan"), "q25": float(q[0]),
                    "median": float(q[1]), "q75": float(q[2]),
                    "max": float(x.max()) if n else float("nan"),
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def _capping(run: _Run) -> _Section:
    rules = run.cfg("capping") or {}
    table = run.csv("analysis/capping.csv")
    plots = run.glob("plots/capping_*.png")
    body = []
    if rules:
        gu = run.grade_unit
        items = []
        for dom, per in rules.items():
            for grade, rule in (per or {}).items():
                text = (
                    f"{_e(rule)} (percentile of the domain's composites)"
                    if isinstance(rule, str) else f"{_num(rule)} {_e(gu)}"
                )
                items.append((f"{dom} {grade}", text))
        body.append("<p>Top-cuts in the config (a value is capped to the top-cut):</p>")
        body.append(_dl(items))
    if table is None and not plots:
        body.append(_missing("Capping analysis (analysis/capping.csv, plots/capping_*.png)"))
        return _Section("capping", "Capping", "".join(body), False)
    if table is not None:
        shown = table.drop(columns=["note"], errors="ignore")  # long words: in the CSV
        body.append(_table(shown, units=_guess_units(run, shown), source="analysis/capping.csv"))
        if "note" in table:
            body.append("<p class=\"note\">How each rule chose its cap (<code>note</code> in "
                        "analysis/capping.csv): the percentiles are of the uncapped composites; "
                        "<i>decile</i>: Parrish's decile analysis (top decile over 40 % or top "
                        "percentile over 10 % of the metal); <i>log_probability_break</i>: where "
                        "the log-probability curve breaks; <i>configured</i>: the config's cap."
                        "</p>")
    body.append(_images(run, plots))
    return _Section("capping", "Capping", "".join(body), True)


def _declustering(run: _Run) -> _Section:
    table = run.csv("analysis/declustering.csv")
    plots = run.glob("plots/declustering_*.png")
    if table is None and not plots:
        body = _missing("Declustering (analysis/declustering.csv, plots/declustering_*.png)")
        return _Section("declustering", "Declustering", body, False)
    body = ""
    if table is not None:
        if "chosen" in table:  # the cell size kept per domain; the sweep is in the CSV and plot
            chosen = table[table["chosen"].astype(str).str.lower() == "true"]
            body += ("<p>GSLIB cell declustering: the cell size giving the lowest declustered "
                     "mean per domain (size 0: no size beat the naive mean; every size tried "
                     "is in analysis/declustering.csv and on the plots).</p>")
            table = chosen.drop(columns=["chosen"])
        body += _table(table, units=_guess_units(run, table), source="analysis/declustering.csv")
    body += _images(run, plots)
    return _Section("declustering", "Declustering", body, True)


def _variograms(run: _Run) -> _Section:
    path = run.file("variograms.yaml")
    plots = run.glob("plots/variogram_*.png")
    if path is None and not plots:
        return _Section("variograms", "Variograms", _missing("variograms.yaml"), False)
    body = []
    explicit = set()
    for dom, per in (run.cfg("variography") or {}).items():
        for grade, entry in (per or {}).items():
            if isinstance(entry, dict) and entry.get("model"):
                explicit.add((str(dom), str(grade)))
    if path is not None:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            doc = None
            body.append(f'<p class="warn">variograms.yaml could not be read ({_e(err)}).</p>')
        if isinstance(doc, dict):
            table = variogram_table(doc, explicit)
            lu = run.length_unit
            units = {"major": lu, "semi-major": lu, "minor": lu, "ang1": "°", "ang2": "°",
                     "ang3": "°"}  # fmt: skip
            gu = run.grade_unit
            if gu:
                units.update({"nugget": f"({gu})²", "sill": f"({gu})²"})
            body.append(
                "<p>Nested models, one row per structure. Ranges are [major, semi-major, minor]; "
                "angles are GSLIB ang1 (azimuth of the major axis, clockwise from north), ang2 "
                "(its dip, negative down), ang3 (rotation about it). Spherical, and exponential "
                "and gaussian with practical range. <code>variograms.yaml</code> pastes back "
                "into the config.</p>"
            )
            body.append(_table(table, units=units, decimals={"ang1": 1, "ang2": 1, "ang3": 1}))
    notes = (run.meta.get("counts") or {}).get("variogram_notes") or []
    if notes:
        body.append('<ul class="warnings">' + "".join(f"<li>{_e(n)}</li>" for n in notes)
                    + "</ul>")  # fmt: skip
    if plots:
        body.append(_images(run, plots))
    else:
        body.append(
            '<p class="note">No variogram plots: explicit models are used as given (set '
            "variography.&lt;domain&gt;.&lt;grade&gt;.experimental.plot: true to plot them).</p>"
        )
    return _Section("variograms", "Variograms", "".join(body), True)


def variogram_table(doc: Mapping, explicit: set[tuple[str, str]] = frozenset()) -> pd.DataFrame:
    """One row per structure of every model in a ``variograms.yaml`` document."""
    rows = []
    for dom, per in doc.items():
        if not isinstance(per, dict):
            continue
        for grade, entry in per.items():
            model = entry.get("model") if isinstance(entry, dict) else None
            if not isinstance(model, dict):
                continue
            structures = model.get("structures") or []
            total = float(model.get("nugget", 0.0) or 0.0) + sum(
                float(s.get("sill", 0.0) or 0.0) for s in structures if isinstance(s, dict)
            )
            source = "config" if (str(dom), str(grade)) in explicit else "fitted"
            for k, st in enumerate(structures, start=1):
                ranges = list(st.get("ranges") or [math.nan] * 3) + [math.nan] * 3
                angles = list(st.get("angles") or [0.0] * 3) + [0.0] * 3
                rows.append(
                    {
                        "domain": dom, "grade": grade, "source": source,
                        "nugget": float(model.get("nugget", 0.0) or 0.0) if k == 1 else math.nan,
                        "structure": k, "type": st.get("type", ""),
                        "sill": float(st.get("sill", math.nan)),
                        "major": float(ranges[0]), "semi-major": float(ranges[1]),
                        "minor": float(ranges[2]), "ang1": float(angles[0]),
                        "ang2": float(angles[1]), "ang3": float(angles[2]),
                        "total sill": total if k == 1 else math.nan,
                    }
                )  # fmt: skip
    return pd.DataFrame(rows)


def resolve_passes(passes: list[dict]) -> list[dict]:
    """Search passes with absolute ranges and angles (``scale`` times the previous ellipsoid)."""
    out = []
    ranges: list[float] = []
    angles: list[float] = [0.0, 0.0, 0.0]
    for p in passes:
        if p.get("ranges"):
            ranges = [float(r) for r in p["ranges"]]
        elif p.get("scale") and ranges:
            ranges = [r * float(p["scale"]) for r in ranges]
        if p.get("angles"):
            angles = [float(a) for a in p["angles"]]
        out.append({**p, "ranges": list(ranges), "angles": list(angles)})
    return out


def _estimation(run: _Run) -> _Section:
    est = run.cfg("estimation")
    grid = run.cfg("block_model")
    if not est and not grid:
        body = _missing("Estimation (no estimation or block_model section in the config)")
        return _Section("estimation", "Estimation parameters", body, False)
    lu = run.length_unit
    body = []
    if grid:
        shape = grid.get("shape") or []
        n = int(np.prod(shape)) if shape else 0
        items = [
            ("Origin (minimum corner x, y, z)", _triple(grid.get("origin"), lu)),
            ("Block size (x, y, z)", _triple(grid.get("block_size"), lu)),
            ("Blocks (x, y, z)", _triple(shape) + (f" = {n:,} blocks" if n else "")),
            ("Rotation", f"{_num(grid.get('rotation', 0.0))}° clockwise about z"),
            ("Sub-cells per block (volume fractions)", _triple(grid.get("subcells"))),
        ]
        body.append("<h3>Block model</h3>" + _dl(items))
    if est:
        method = {"ok": "ordinary kriging", "sk": "simple kriging",
                  "idw": "inverse distance", "nn": "nearest neighbour"}  # fmt: skip
        items = [
            ("Method", _e(method.get(est.get("method"), est.get("method")))),
            ("Discretisation (points per block x, y, z)", _triple(est.get("discretisation"))),
        ]
        if est.get("method") == "sk":
            items.append(("Simple kriging mean", _e(est.get("sk_mean"))))
        if est.get("method") == "idw":
            items.append(("Inverse distance power", _num(est.get("idw_power"))))
        body.append("<h3>Estimator</h3>" + _dl(items))
        passes = resolve_passes([p for p in est.get("passes") or [] if isinstance(p, dict)])
        rows = []
        for k, p in enumerate(passes, start=1):
            oct_ = p.get("octants") or {}
            rows.append(
                {
                    "pass": str(k),
                    "as written": f"scale {_num(p['scale'])} × pass {k - 1}" if p.get("scale")
                    else "ellipsoid",
                    "major": p["ranges"][0] if p["ranges"] else math.nan,
                    "semi-major": p["ranges"][1] if p["ranges"] else math.nan,
                    "minor": p["ranges"][2] if p["ranges"] else math.nan,
                    "ang1": p["angles"][0], "ang2": p["angles"][1], "ang3": p["angles"][2],
                    "min samples": p.get("min_samples", 1),
                    "max samples": p.get("max_samples", 24),
                    "max per hole": str(p.get("max_per_hole") or "no limit"),
                    "octants": (f"max {oct_.get('max_per_octant')} per octant, at least "
                                f"{oct_.get('min_octants', 0)} octants") if oct_ else "not used",
                }
            )  # fmt: skip
        units = {"major": lu, "semi-major": lu, "minor": lu, "ang1": "°", "ang2": "°", "ang3": "°"}
        body.append(
            "<h3>Search passes</h3><p>A block is estimated by the first pass whose neighbourhood "
            "satisfies it; later passes see only the blocks earlier ones left empty.</p>"
            + _table(pd.DataFrame(rows), units=units,
                     decimals={"ang1": 1, "ang2": 1, "ang3": 1})
        )  # fmt: skip
    by_pass = (run.meta.get("counts") or {}).get("estimated_by_pass") or {}
    if by_pass:
        rows = []
        for dom, per in by_pass.items():
            for grade, c in (per or {}).items():
                row = {"domain": dom, "grade": grade}
                for key, val in c.items():
                    if str(key).isdigit():
                        row[f"pass {key}"] = val
                row["not estimated"] = c.get("not_estimated", 0)
                rows.append(row)
        frame = pd.DataFrame(rows).fillna(0)
        body.append("<h3>Blocks estimated per pass</h3>" + _table(frame))
    flags = (run.meta.get("counts") or {}).get("flags") or {}
    rows = []
    for dom, per in flags.items():
        for grade, f in (per or {}).items():
            rows.append({"domain": dom, "grade": grade,
                         **{k: v for k, v in f.items() if isinstance(v, (int, float))}})  # fmt: skip
    if rows:
        gu = run.grade_unit
        body.append(
            "<h3>Flagged blocks</h3>"
            + _table(pd.DataFrame(rows),
                     units={"lowest_estimate": gu, "highest_estimate": gu})
        )  # fmt: skip
    return _Section("estimation", "Estimation parameters", "".join(body), True)


def _validation(run: _Run) -> _Section:
    summary = run.file("validation/cross_validation_summary.csv")
    tables = [p for p in run.glob("validation/*.csv") if p != summary]
    plots = run.glob("plots/swath_*.png") + run.glob("plots/plan_section_*.png")
    if summary is None and not tables and not plots:
        body = _missing("Validation pack (validation/*.csv, plots/swath_*.png, "
                        "plots/plan_section_*.png)")  # fmt: skip
        return _Section("validation", "Validation", body, False)
    body = []
    # one row per composite: summarised above, kept in its CSV, not shown on the page
    per_sample = [p for p in tables
                  if p.stem.startswith(("validation_cross_", "validation_swaths_"))]
    for path in ([summary] if summary else []) + [p for p in tables if p not in per_sample]:
        frame = run.csv(path)
        if frame is None:
            continue
        title = path.stem.replace("_", " ").capitalize()
        body.append(f"<h3>{_e(title)}</h3>")
        body.append(_table(frame, units=_guess_units(run, frame), source=run.rel(path)))
    if per_sample:
        names = ", ".join(_e(run.rel(p)) for p in per_sample)
        body.append(f"<p class=\"note\">The error of every composite and the numbers behind "
                    f"the swath plots: {names}.</p>")
    body.append(_images(run, plots))
    return _Section("validation", "Validation", "".join(body), True)


def class_rule_words(rule: Mapping, length_unit: str = "") -> str:
    """A classification rule's conditions in words, e.g. "pass <= 1 and at least 8 samples".

    >>> class_rule_words({"name": "indicated", "max_pass": 1, "min_samples": 8, "min_slope": 0.5})
    'pass <= 1 and at least 8 samples and slope of regression >= 0.5'
    """
    parts = []
    if rule.get("max_pass") is not None:
        parts.append(f"pass <= {_plain(rule['max_pass'])}")
    if rule.get("min_samples") is not None:
        parts.append(f"at least {_plain(rule['min_samples'])} samples")
    if rule.get("min_holes") is not None:
        parts.append(f"at least {_plain(rule['min_holes'])} holes")
    if rule.get("min_slope") is not None:
        parts.append(f"slope of regression >= {_plain(rule['min_slope'])}")
    if rule.get("max_dist") is not None:
        unit = f" {length_unit}" if length_unit else ""
        parts.append(f"mean anisotropic distance <= {_plain(rule['max_dist'])}{unit}")
    return " and ".join(parts) if parts else "every estimated block"


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _classification(run: _Run) -> _Section:
    cls_cfg = run.cfg("classification")
    if not cls_cfg:
        body = _missing("Classification (no classification section in the config)")
        return _Section("classification", "Classification", body, False)
    grade = cls_cfg.get("grade") or (run.grades[0] if run.grades else "")
    rows = [
        {"order": str(k), "class": r.get("name", ""),
         "condition": class_rule_words(r, run.length_unit)}
        for k, r in enumerate(cls_cfg.get("classes") or [], start=1)
    ]  # fmt: skip
    body = [
        f"<p>Applied to the {_e(grade)} estimate of each block: a block takes the first class "
        "whose every condition it meets; estimated blocks meeting none are not classified. "
        "Pass, samples, holes, slope of regression and distance are the block's own "
        f"(<code>{_e(grade)}_pass</code>, <code>_n</code>, <code>_holes</code>, "
        "<code>_slope</code>, <code>_dist</code>).</p>",
        _table(pd.DataFrame(rows)),
    ]
    gt = run.csv("grade_tonnage.csv")
    if gt is not None and {"class", "cutoff", "tonnes"} <= set(gt.columns):
        lowest = gt["cutoff"].min()
        part = gt[(gt["cutoff"] == lowest) & (gt["class"].astype(str) != "all")]
        if "domain" in part.columns and (part["domain"] == "total").any():
            part = part[part["domain"] == "total"]
        keep = [c for c in ("domain", "class", "tonnes", "grade", "metal", "tonnes_unit",
                            "grade_unit", "metal_unit") if c in part.columns]  # fmt: skip
        body.append(
            f"<h3>Tonnes per class (cut-off {_num(float(lowest))} {_e(run.grade_unit)})</h3>"
            + _table(part[keep].reset_index(drop=True), decimals={"tonnes": 0, "metal": 0})
        )  # fmt: skip
    else:
        body.append(_missing("Tonnes per class (grade_tonnage.csv)"))
    return _Section("classification", "Classification", "".join(body), True)


def _grade_tonnage(run: _Run) -> _Section:
    gt = run.csv("grade_tonnage.csv")
    plots = run.glob("plots/grade_tonnage*.png")
    if gt is None and not plots:
        return _Section("grade-tonnage", "Grade-tonnage", _missing("grade_tonnage.csv"), False)
    body = []
    if gt is not None:
        dens = {d.get("name"): d.get("density") for d in run.cfg("domains", default=[]) or []
                if isinstance(d, dict)}  # fmt: skip
        if any(v is not None for v in dens.values()):
            lu = run.length_unit
            body.append(
                "<p>Tonnes = fraction × block volume × density, over blocks at or above the "
                "cut-off. Density per domain: "
                + ", ".join(f"{_e(d)} {_num(v)} t/{_e(lu or 'unit')}³" for d, v in dens.items()
                            if v is not None)
                + ".</p>"
            )  # fmt: skip
        if "class" in gt.columns:
            classes = list(pd.unique(gt["class"].astype(str)))
            classes.sort(key=lambda c: (c != "all",))
            for c in classes:
                part = gt[gt["class"].astype(str) == c].drop(columns="class")
                title = "All classes" if c == "all" else f"Class {c}"
                body.append(f"<h3>{_e(title)}</h3>")
                body.append(_per_domain(part))
        else:
            body.append(_table(gt, decimals={"tonnes": 0, "metal": 0}))
    body.append(_images(run, plots))
    return _Section("grade-tonnage", "Grade-tonnage", "".join(body), True)


def _per_domain(part: pd.DataFrame) -> str:
    """One small grade-tonnage table per domain (the total first), side by side."""
    dec = {"tonnes": 0, "metal": 0}
    if "domain" not in part.columns:
        return _table(part.reset_index(drop=True), decimals=dec)
    domains = list(pd.unique(part["domain"].astype(str)))
    domains.sort(key=lambda d: d != "total")
    tables = [
        _table(part[part["domain"].astype(str) == d].drop(columns="domain").reset_index(drop=True),
               caption="all domains" if d == "total" else d, decimals=dec)
        for d in domains
    ]  # fmt: skip
    return f'<div class="tables">{"".join(tables)}</div>'


def _resource_statement(run: _Run) -> _Section:
    table = run.csv("resource_statement.csv")
    notes = [
        p for p in (run.file(n) for n in ("resource_statement.md", "resource_statement.txt",
                                          "resource_statement_notes.txt",
                                          "resource_statement_notes.md"))
        if p is not None
    ]  # fmt: skip
    if table is None and not notes:
        body = _missing("Resource statement (resource_statement.csv)")
        return _Section("resource-statement", "Resource statement", body, False)
    body = []
    if table is not None:
        body.append(_table(table, decimals={"tonnes": 0, "metal": 0}, max_rows=500))
    n_placeholders = 0
    for path in notes:
        text = path.read_text(encoding="utf-8", errors="replace")
        marked, n = _mark_placeholders(text)
        n_placeholders += n
        body.append(f'<h3>Notes ({_e(run.rel(path))})</h3><pre class="notes">{marked}</pre>')
    if n_placeholders:
        body.insert(
            0,
            f'<p class="warn">{n_placeholders} placeholder(s) below, marked '
            '<mark class="qp">like this</mark>, must be completed by the Qualified Person '
            "before this statement is published.</p>",
        )
    return _Section("resource-statement", "Resource statement", "".join(body), True)


def _mark_placeholders(text: str) -> tuple[str, int]:
    out, last, n = [], 0, 0
    for m in _PLACEHOLDER.finditer(text):
        out.append(_e(text[last : m.start()]))
        out.append(f'<mark class="qp">{_e(m.group(0))}</mark>')
        last = m.end()
        n += 1
    out.append(_e(text[last:]))
    return "".join(out), n


def _diff(run: _Run) -> _Section:
    files = {
        "diff_summary": run.file("diff/diff_summary.csv"),
        "class_migration": run.file("diff/class_migration.csv"),
        "holes_driving_change": run.file("diff/holes_driving_change.csv"),
    }
    plots = run.glob("diff/*.png") + run.glob("diff/plots/*.png")
    release = run.file("release/intercepts.txt")
    if not any(files.values()) and not plots:
        body = _missing("Diff after an update (diff/)")
        return _Section("diff", "Change since the previous run", body, False)
    body = []
    upd = run.meta.get("update") or {}
    if isinstance(upd, dict) and upd:
        items = [
            ("Previous run", f"<code>{_e(upd.get('previous_run_id', '–'))}</code>"),
            ("Newest tranche", _e(upd.get("newest_tranche", "–"))),
        ]
        d = upd.get("diff") or {}
        if d:
            items.append(("Blocks changed", f"{_num(d.get('changed', 0))} of "
                          f"{_num(d.get('blocks_compared', 0))} compared"))  # fmt: skip
        reason = ((run.meta.get("counts") or {}).get("update") or {}).get("reason")
        if reason:
            items.append(("What was re-estimated", _e(reason)))
        body.append(_dl(items))
    titles = {
        "diff_summary": "Tonnes, grade and metal before and after",
        "class_migration": "Class migration (tonnes, no cut-off)",
        "holes_driving_change": "Holes driving the change",
    }
    for key, path in files.items():
        if path is None:
            continue
        frame = run.csv(path)
        if frame is None:
            continue
        rows = 25
        if key == "diff_summary":
            # every class together, every cut-off, the total first (per class: in the file)
            if "class" in frame.columns and (frame["class"].astype(str) == "all").any():
                frame = frame[frame["class"].astype(str) == "all"].drop(columns="class")
            if "domain" in frame.columns:
                frame = frame.sort_values("domain", key=lambda d: d.astype(str) != "total",
                                          kind="stable")  # fmt: skip
            rows = 200
        dec = {c: 0 for c in frame.columns if str(c).startswith(("tonnes", "metal"))}
        dec.update({"share": 3})
        body.append(f"<h3>{_e(titles[key])}</h3>")
        body.append(_table(frame.reset_index(drop=True), decimals=dec, max_rows=rows,
                           source=run.rel(path)))  # fmt: skip
    body.append(_images(run, plots))
    if release is not None:
        text = release.read_text(encoding="utf-8", errors="replace")
        body.append(
            "<h3>Release table of the newest tranche (release/intercepts.txt)</h3>"
            f'<pre class="notes">{_e(text)}</pre>'
        )
    return _Section("diff", "Change since the previous run", "".join(body), True)


_SECTIONS: list[Callable[[_Run], _Section]] = [
    _header, _data_report, _composite_stats, _capping, _declustering, _variograms, _estimation,
    _validation, _classification, _grade_tonnage, _resource_statement, _diff,
]  # fmt: skip

_LENGTH_COLS = re.compile(
    r"^(from|to|length|x|y|z|dist|distance|cell_size|cell|cell_x|cell_y|cell_z|"
    r".*_dist|.*_distance|.*_range|range_.*|dist_.*|easting|northing|elevation|swath_.*|bin_.*|"
    r"centre|center)$",
    re.IGNORECASE,
)
_GRADE_STATS = (
    "mean", "sd", "std", "min", "max", "median", "q25", "q75", "cap", "cap_value", "top_cut",
    "topcut", "cutoff", "cut_off", "bias", "rmse", "mae", "error", "estimate", "true", "value",
    "declustered_mean", "naive_mean", "capped_mean", "uncapped_mean",
)  # fmt: skip


def _guess_units(run: _Run, frame: pd.DataFrame) -> dict[str, str]:
    """Units for the columns of a table written by another stage, by their names."""
    lu, gu = run.length_unit, run.grade_unit
    grades = {g.lower() for g in run.grades}
    out = {}
    for col in frame.columns:
        low = str(col).lower()
        if _is_label(low) or str(col).endswith("_unit"):
            continue
        stem = low
        for g in grades:
            if low.startswith(g + "_"):
                stem = low[len(g) + 1 :]
        if "std_error" in low or low in ("slope", "correlation", "kv", "ke", "n", "fold"):
            continue  # ratios and counts: no unit
        if lu and _LENGTH_COLS.match(low):
            out[str(col)] = lu
        elif low.endswith("_pct") or low.startswith("pct_"):
            out[str(col)] = "%"
        elif lu and low == "volume":
            out[str(col)] = f"{lu}³"
        elif gu and low == "mse":
            out[str(col)] = f"({gu})²"
        elif gu and (low in grades or stem in _GRADE_STATS or re.fullmatch(r"p\d+(\.\d+)?", stem)
                     or low.endswith(("_mean", "_error")) or low in ("mean_error", "true_sd")):
            out[str(col)] = gu
        elif low in ("tonnes",) or low.startswith("tonnes_"):
            out[str(col)] = "t"
    return out


# -------------------------------------------------------------------------------------------
# the page
# -------------------------------------------------------------------------------------------
_CSS = """
:root { --ink: #1d2433; --muted: #667085; --line: #d0d5dd; --band: #f5f7fa; --accent: #1f5f8b; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       color: var(--ink); margin: 0 auto; max-width: 1180px; padding: 24px 32px 64px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-top: 8px; border-top: 2px solid var(--accent); }
h3 { font-size: 15px; margin: 20px 0 6px; }
.sub { color: var(--muted); margin: 0 0 16px; }
nav.toc { background: var(--band); border: 1px solid var(--line); padding: 10px 18px; }
nav.toc ol { margin: 4px 0; padding-left: 22px; columns: 2; }
nav.toc .absent { color: var(--muted); }
a { color: var(--accent); }
.tablewrap { overflow-x: auto; margin: 6px 0 10px; }
table { border-collapse: collapse; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid var(--line); padding: 3px 8px; vertical-align: top; }
thead th { background: var(--band); text-align: left; white-space: nowrap; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
table.kv th { text-align: left; background: var(--band); font-weight: 600; width: 16em; }
.missing { color: var(--muted); font-style: italic; }
.note { color: var(--muted); }
.warn { color: #9a3412; background: #fff7ed; border-left: 4px solid #f97316; padding: 6px 10px; }
ul.warnings li { color: #9a3412; }
mark.qp { background: #fde68a; color: #7c2d12; font-weight: 700; padding: 0 2px; }
pre.notes { background: var(--band); border: 1px solid var(--line); padding: 10px;
            white-space: pre-wrap; font-size: 12.5px; }
.tables { display: flex; flex-wrap: wrap; gap: 4px 18px; align-items: flex-start; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 6px 0; border: 1px solid var(--line); padding: 6px; background: #fff; }
figure img { display: block; max-width: 100%; height: auto; max-height: 560px; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
code { font-size: 12.5px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
@media print { nav.toc { display: none; } h2 { break-before: page; } }
"""


def _page(run: _Run, sections: list[_Section]) -> str:
    name = run.meta.get("name") or run.cfg("name", default="run")
    toc = "".join(
        f'<li><a href="#{s.anchor}">{_e(s.title)}</a>'
        + ("" if s.produced else f' <span class="absent">({NOT_PRODUCED})</span>')
        + "</li>"
        for s in sections
    )
    body = "".join(
        f'<section id="{s.anchor}"><h2>{k}. {_e(s.title)}</h2>{s.body}</section>'
        for k, s in enumerate(sections, start=1)
    )
    notes = ""
    if run.notes:
        notes = '<p class="warn">' + "<br>".join(_e(n) for n in run.notes) + "</p>"
    buf = io.StringIO()
    buf.write("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
    buf.write('<meta name="viewport" content="width=device-width, initial-scale=1">\n')
    buf.write(f"<title>{_e(name)}: resource estimate report</title>\n")
    buf.write(f"<style>{_CSS}</style>\n</head>\n<body>\n")
    buf.write(f"<h1>{_e(name)}: resource estimate report</h1>\n")
    buf.write(
        f'<p class="sub">Run {_e(run.meta.get("run_id", "–"))}, created '
        f"{_e(run.meta.get('created', '–'))}, estimator {_e(run.meta.get('estimator_version', '–'))}"
        ". Every figure on this page comes from the files of the run folder.</p>\n"
    )
    buf.write(f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>\n')
    buf.write(notes)
    buf.write(body)
    buf.write(
        f"<footer>Written by estimator {_e(run.meta.get('estimator_version', ''))} from "
        f"{_e(run.folder)}.</footer>\n</body>\n</html>\n"
    )
    return buf.getvalue()
