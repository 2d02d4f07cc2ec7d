"""The analyses a reviewer checks beside the estimate: capping and declustering of the composites
(run with the composites stage), the validation pack (after the estimate) and the resource
statement (with the report). Pure functions: tables and figures in, tables and figures out;
the pipeline writes them (``analysis/``, ``validation/``, ``plots/``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from estimator.errors import DataError

#: Columns of ``analysis/declustering.csv``.
DECLUSTERING_COLUMNS = ["domain", "grade", "cell_size", "declustered_mean", "chosen", "naive_mean",
                        "composites"]  # fmt: skip


def capping_tables(
    raw: pd.DataFrame,
    grades: Sequence[str],
    capping: Mapping[str, Mapping[str, Any]],
    *,
    percentiles: Sequence[float],
    cv_target: float | None,
    unit: str = "",
    note: Callable[[str], None] | None = None,
    plots: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Capping analysis of the uncapped composites per domain and grade (length-weighted).

    Returns ``(table, figures)``: every candidate cap with its effect (``domain``, ``grade``
    columns first; the configured cap is the row ``configured``), and a log-probability plot
    per domain and grade (``capping_<domain>_<grade>``) with the configured cap drawn (or,
    without one, the candidates only). A domain and grade whose grades cannot be analysed
    (none, all zero) is told to ``note`` and left out.
    """
    from estimator.capping_analysis import capping_analysis, plot_log_probability

    parts, figures = [], {}
    for dom in sorted(d for d in raw["domain"].astype(str).unique() if d):
        sel = raw[raw["domain"].astype(str) == dom]
        for g in grades:
            values = sel[g].to_numpy(float)
            weights = sel["length"].to_numpy(float) if "length" in sel else None
            if weights is not None:
                keep = np.isfinite(values)
                values, weights = values[keep], weights[keep]
            configured = capping.get(dom, {}).get(g)
            try:
                res = capping_analysis(values, weights, percentiles=percentiles,
                                       cv_target=cv_target, configured=configured)  # fmt: skip
            except DataError as err:
                if note is not None:
                    note(f"capping analysis of {g} in domain {dom} not made: {err}")
                continue
            table = res.table.copy()
            table.insert(0, "grade", g)
            table.insert(0, "domain", dom)
            parts.append(table)
            if not plots:
                continue
            cands = {"decile": res.decile, "log-probability break": res.log_probability_break}
            if cv_target is not None:
                cands["CV target"] = res.cv_target
            figures[f"capping_{dom}_{g}"] = plot_log_probability(
                values, cap=res.configured, candidates=cands,
                title=f"{dom} {g}: log-probability", unit=unit,
            )  # fmt: skip
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return table, figures


def declustering_tables(
    comps: pd.DataFrame,
    grade: str,
    settings,
    *,
    unit: str = "",
    length_unit: str = "",
    note: Callable[[str], None] | None = None,
    plots: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Cell declustering (GSLIB ``declus``) of each domain's composites on ``grade``.

    ``settings`` is ``declustering`` of the config: ``min_size``/``max_size`` (default: 1/50
    and 1/2 of the domain's largest horizontal extent), ``n_sizes``, ``anisotropy`` (y and z
    cell sizes as ratios of the x size), ``offsets``. Returns ``(sweep, weights, figures)``:
    the declustered mean per cell size per domain (the chosen size marked), the weight of
    every composite (``weight``: mean 1 within its domain; NaN where ``grade`` is missing), and
    a plot per domain (``declustering_<domain>_<grade>``).
    """
    from estimator.declustering import declustering_sweep, plot_declustering

    rows, figures = [], {}
    weights = np.full(len(comps), np.nan)
    domains = comps["domain"].astype(str).to_numpy()
    for dom in sorted(d for d in np.unique(domains) if d):
        idx = np.flatnonzero(domains == dom)
        xyz = comps[["x", "y", "z"]].to_numpy(float)[idx]
        values = comps[grade].to_numpy(float)[idx]
        ok = np.isfinite(values)
        extent = float(np.ptp(xyz[ok, :2], axis=0).max()) if ok.sum() > 1 else 0.0
        if ok.sum() < 2 or extent <= 0:
            weights[idx[ok]] = 1.0
            if note is not None:
                note(f"declustering of domain {dom} not made: fewer than 2 composites with "
                     f"{grade}, or all at one place (weights 1)")  # fmt: skip
            continue
        lo = settings.min_size or extent / 50.0
        hi = settings.max_size or extent / 2.0
        if hi <= lo:
            hi = lo * 2.0
        res = declustering_sweep(
            xyz, values, min_size=lo, max_size=hi, n_sizes=settings.n_sizes,
            anisotropy=tuple(settings.anisotropy), n_offsets=settings.offsets,
        )  # fmt: skip
        weights[idx] = res.weights
        for size, mean in zip(res.sizes, res.means, strict=True):
            rows.append([dom, grade, float(size), float(mean), bool(size == res.best_size),
                         res.naive_mean, res.n])  # fmt: skip
        if plots:
            fig = plot_declustering(res, unit, length_unit=length_unit)
            ax = fig.axes[0]
            ax.set_title(f"{dom} {grade}: {ax.get_title()}")
            figures[f"declustering_{dom}_{grade}"] = fig
    sweep = pd.DataFrame(rows, columns=DECLUSTERING_COLUMNS)
    out = comps[["hole_id", "from", "to", "domain"]].copy() if "from" in comps else (
        comps[[c for c in ("hole_id", "x", "y", "z", "domain") if c in comps]].copy())  # fmt: skip
    out["weight"] = weights
    return sweep, out, figures


def significant(value: float, figures: int) -> float:
    """``value`` rounded to ``figures`` significant figures (0 and NaN as they are).

    >>> significant(4.8765, 2), significant(0.012345, 2), significant(1234.5, 3)
    (4.9, 0.012, 1230.0)
    """
    if not np.isfinite(value) or value == 0:
        return float(value)
    digits = figures - 1 - math.floor(math.log10(abs(value)))
    return float(round(value, digits))


def resource_statement(table: pd.DataFrame, settings, classes: Sequence[str] | None,
                       grade: str, grade_unit: str | None) -> tuple[pd.DataFrame, str]:  # fmt: skip
    """The resource statement at ``settings.cutoff`` from a grade-tonnage table.

    Rows per domain and class (classes in the config's order, then the unclassified and the
    total), tonnes rounded to ``tonnes_round``, grade to ``grade_figures`` significant
    figures, metal to ``metal_round``; totals are summed before rounding (so rounded rows may
    not add up to the rounded total, as the statement says). Returns ``(table, text)``: the
    text is a Markdown statement with the placeholders a Qualified Person fills in, marked
    ``[QP: ...]``.
    """
    cut = float(settings.cutoff)
    rows = table[np.isclose(table["cutoff"].astype(float), cut)]
    if not len(rows):
        msg = f"report.statement.cutoff: {cut:g} is not one of report.cutoffs"
        raise DataError(msg)
    wanted = list(classes) if classes else ["all"]
    rows = rows.rename(columns={"class": "cls"})
    rows = rows[rows["cls"].astype(str).isin(wanted)]
    out = []
    domains = list(dict.fromkeys(rows["domain"].astype(str)))
    domains = [d for d in domains if d != "total"] + (["total"] if "total" in domains else [])
    for dom in domains:
        part = rows[rows["domain"].astype(str) == dom]
        for cls in wanted:
            r = part[part["cls"].astype(str) == cls]
            if len(r):
                out.append((dom, cls, float(r["tonnes"].iloc[0]), float(r["grade"].iloc[0]),
                            float(r["metal"].iloc[0])))  # fmt: skip
        if classes and len(part):  # every class of the domain together, before rounding
            t = float(part["tonnes"].sum())
            m = float(part["metal"].sum())
            tg = float((part["tonnes"] * part["grade"].fillna(0.0)).sum())
            out.append((dom, "all classes", t, tg / t if t > 0 else np.nan, m))
    frame = pd.DataFrame(out, columns=["domain", "class", "tonnes", "grade", "metal"])
    t_round, m_round, fig = settings.tonnes_round, settings.metal_round, settings.grade_figures
    metal_unit = str(table["metal_unit"].iloc[0]) if "metal_unit" in table else ""
    result = pd.DataFrame({
        "domain": frame["domain"].to_numpy(),
        "class": frame["class"].to_numpy(),
        "cutoff": cut,
        "tonnes": [round(t / t_round) * t_round for t in frame["tonnes"]],
        "grade": [significant(g, fig) for g in frame["grade"]],
        "metal": [round(m / m_round) * m_round if np.isfinite(m) else m for m in frame["metal"]],
        "tonnes_unit": "t", "grade_unit": grade_unit or "", "metal_unit": metal_unit,
    })  # fmt: skip
    result = result[result["tonnes"] > 0].reset_index(drop=True)
    text = _statement_text(result, settings, grade, grade_unit, metal_unit)
    return result, text


def _statement_text(table, settings, grade, grade_unit, metal_unit) -> str:
    gu = grade_unit or "grade units"
    lines = [
        "# Mineral resource statement",
        "",
        "Effective date: [QP: effective date of the estimate]",
        "",
        f"Reported above a cut-off of {settings.cutoff:g} {gu} {grade}.",
        "Cut-off basis: [QP: metal price, metallurgical recovery, mining and processing costs "
        "that support this cut-off]",
        "",
        "Reasonable prospects for eventual economic extraction: [QP: the constraint applied, "
        "for example an optimised pit shell or mineable stope shapes]",
        "",
        f"| domain | class | tonnes (t) | {grade} ({gu}) | metal ({metal_unit}) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in table.rename(columns={"class": "cls"}).itertuples(index=False):
        grade_text = f"{r.grade:g}" if np.isfinite(r.grade) else "-"
        metal_text = f"{r.metal:,.0f}" if np.isfinite(r.metal) else "-"
        lines.append(f"| {r.domain} | {r.cls} | {r.tonnes:,.0f} | {grade_text} | {metal_text} |")
    lines += [
        "",
        f"Tonnes are rounded to the nearest {settings.tonnes_round:,g} t, grades to "
        f"{settings.grade_figures} significant figures and metal to the nearest "
        f"{settings.metal_round:,g} {metal_unit}; totals are summed before rounding, so rows "
        "may not add up to them.",
        "",
        "Mineral resources that are not mineral reserves do not have demonstrated economic "
        "viability. Qualified Person: [QP: name, professional designation, relationship to "
        "the issuer]",
        "",
    ]
    return "\n".join(lines)
