"""What changed between two finished runs, and which new holes drove it (``estimator diff``).

:func:`diff_runs` compares run A (before) with run B (after), block by block, on the same grid
and domains, and writes into its output folder:

* ``diff.csv``: every block whose fraction, estimate (any grade) or class changed, with the
  values before and after (changes rounded to 15 significant digits of the values compared,
  so no floating-point noise is written).
* ``diff_summary.csv``: tonnes, grade and metal per domain, class and cut-off (B's report
  cut-offs, B's report grade) before, after and the change; each run's own densities, units
  and classes (the rows equal each run's ``grade_tonnage.csv`` at the same cut-offs).
* ``class_migration.csv``: tonnes (no cut-off) moving from each class of A to each class of B
  per domain. Besides the classes: ``unclassified`` (estimated, no class rule met), ``not
  estimated`` (inside the domain, no estimate), ``not classified`` (a run without
  classification) and ``outside domain`` (block volume gained or lost by the domain). The
  rows from a class sum to A's tonnes in it, the rows to a class to B's.
* ``holes_driving_change.csv``: per grade, the metal change (no cut-off: every estimated block,
  negative estimates included) attributed to the new and changed holes. A block's change is
  split into a grade part ``tonnes_B x (grade_B - grade_A) x metal factor`` (all of B's metal
  for a block A did not estimate) and a tonnage part (fraction or density changed). The
  grade part goes to the new or changed composites B's kriging used for the block, in
  proportion to their absolute kriging weights (the blocks are re-kriged with B's plan, and the
  estimates must equal B's stored ones, bit for bit); a block whose neighbourhood holds no new
  or changed composite (a removed sample, a cap change elsewhere, a moved pass) and every
  tonnage part go to ``other changes``. The rows of a grade sum to its total metal change.
* ``plots/diff_plan.png``, ``plots/diff_section.png`` (:mod:`estimator.diffing_plots`) and
  ``diff.json`` (counts, the runs compared, the holes, the top holes, notes).

Memory is bounded by a window of blocks: both models are read window by window (the chunks of
a Zarr store), in the same windows.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from estimator.errors import DataError
from estimator.io import output

log = logging.getLogger(__name__)

__all__ = ["DiffResult", "diff_runs"]

#: Pseudo-classes of the class migration.
UNCLASSIFIED, NOT_ESTIMATED, NOT_CLASSIFIED, OUTSIDE = (
    "unclassified", "not estimated", "not classified", "outside domain",
)  # fmt: skip
#: ``hole_id`` of the attribution rows that no new or changed sample explains.
OTHER = "other changes"
#: ``diff.csv`` rows kept in memory for :class:`DiffResult` (the file holds them all).
MAX_ROWS_IN_MEMORY = 1_000_000
#: Significant digits kept in changes (a double carries 15 to 17).
DIGITS = 15


@dataclass
class DiffResult:
    """What :func:`diff_runs` found and wrote.

    Attributes
    ----------
    changes : pandas.DataFrame or None
        ``diff.csv`` (None when it has more than :data:`MAX_ROWS_IN_MEMORY` rows: read the file).
    summary, migration, holes : pandas.DataFrame
        ``diff_summary.csv``, ``class_migration.csv``, ``holes_driving_change.csv``.
    counts : dict
        Blocks compared, changed and unchanged, in total and per domain.
    text : str
        A short summary for the terminal.
    notes : list of str
        What could not be done, and why.
    out : Path
        The folder written.
    files : dict
        Output key -> relative path.
    """

    changes: pd.DataFrame | None
    summary: pd.DataFrame
    migration: pd.DataFrame
    holes: pd.DataFrame
    counts: dict
    text: str
    notes: list[str] = field(default_factory=list)
    out: Path = Path()
    files: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# the two runs
# ---------------------------------------------------------------------------------------
@dataclass
class _Run:
    label: str  # "A" or "B"
    folder: Path
    meta: dict
    cfg: Any
    ds: Any  # the block model as loaded
    grid: Any
    density: Any  # {domain: t per cubic unit} or the name of a density variable
    factor: float
    metal_unit: str
    classes: list[str] | None  # class names in rule order, None without classification
    est_grade: str  # the grade deciding "estimated" in the class migration

    @property
    def files(self) -> list[str]:
        return list(self.meta["outputs"])


def _open_run(folder: Path, label: str, notes: list[str]) -> _Run:
    from estimator.config import parse_config
    from estimator.estimation import grid_from_config
    from estimator.pipeline import load, verify_run_folder
    from estimator.reporting import metal_factor_for

    folder = Path(folder)
    meta = verify_run_folder(folder)
    cfg = parse_config(meta["config"], source=f"{folder / 'run.json'}", check_files=False)
    ds = load("blockmodel", list(meta["outputs"]), folder)
    density: Any
    if "density" in ds and {"x", "y", "z"} & set(ds["density"].dims):
        density = "density"
    else:
        from estimator.reporting import density_of

        density = density_of(cfg, [str(d) for d in ds["domain"].values],
                             lambda text: notes.append(f"run {label}: {text}"))  # fmt: skip
    factor, unit = metal_factor_for(cfg.data.grade_unit)
    has_class = cfg.classification is not None and "class" in ds
    classes = [c.name for c in cfg.classification.classes] if has_class else None
    report_grade = (cfg.report.grade or cfg.grades[0]).lower()
    est_grade = (cfg.classification.grade or cfg.grades[0]).lower() if has_class else report_grade
    return _Run(label, folder, meta, cfg, ds, grid_from_config(cfg), density, factor, unit,
                classes, est_grade)  # fmt: skip


def _check_same_blocks(a: _Run, b: _Run) -> list[str]:
    """DataError naming what differs when the runs do not share grid and domains; the domain
    names in B's order otherwise."""
    problems = []
    for key in ("origin", "block_size", "shape", "rotation"):
        va, vb = getattr(a.grid, key), getattr(b.grid, key)
        if np.ravel(va).tolist() != np.ravel(vb).tolist():
            problems.append(f"block_model.{key} is {_show(va)} in A and {_show(vb)} in B")
    da = [str(d) for d in a.ds["domain"].values]
    db = [str(d) for d in b.ds["domain"].values]
    if set(da) != set(db):
        only_a = [d for d in da if d not in db]
        only_b = [d for d in db if d not in da]
        words = []
        if only_a:
            words.append(f"{', '.join(only_a)} only in A")
        if only_b:
            words.append(f"{', '.join(only_b)} only in B")
        problems.append(f"the domains differ ({'; '.join(words)})")
    if problems:
        msg = (
            f"cannot compare run A ({a.folder}) with run B ({b.folder}): "
            + "; ".join(problems)
            + ". A diff compares the same blocks of the same domains: run one config again "
            "with the other's block_model and domains"
        )
        raise DataError(msg)
    for run in (a, b):
        sizes = tuple(run.ds.sizes[d] for d in ("x", "y", "z"))
        if sizes != tuple(run.grid.shape):
            msg = (
                f"run {run.label} ({run.folder}): the block model holds {sizes} blocks (x, y, z) "
                f"but its config says block_model.shape {list(run.grid.shape)}; run it again"
            )
            raise DataError(msg)
    return db


def _show(value) -> str:
    vals = np.ravel(value).tolist()
    return str(vals) if len(vals) > 1 else f"{vals[0]:g}"


# ---------------------------------------------------------------------------------------
# reading windows
# ---------------------------------------------------------------------------------------
def _windows(a: _Run, b: _Run) -> list[dict]:
    """Windows of blocks read at once: the chunks of B's store (or A's), else windows of B's
    ``compute.chunks`` (a NetCDF model is in memory, its temporaries need not be)."""
    from estimator.reporting import chunk_windows

    for run in (b, a):
        if run.ds["fraction"].chunks is not None:
            return chunk_windows(run.ds)
    cx, cy, cz = (int(c) for c in b.cfg.compute.chunks)
    return chunk_windows(b.ds, {"x": cx, "y": cy, "z": cz})


def _read(run: _Run, names: list[str], domains: list[str], window: dict) -> dict:
    """The variables ``names`` of a window as ``(domain, z, y, x)`` arrays (B's domain order)."""
    have = [n for n in names if n in run.ds]
    sub = run.ds[have].isel(window)
    if run.ds["fraction"].chunks is not None:
        sub = sub.compute(scheduler="synchronous")
    sub = sub.sel(domain=domains)
    out = {}
    for name in have:
        var = sub[name]
        if "domain" not in var.dims:
            var = var.expand_dims(domain=domains)
        out[name] = np.asarray(var.transpose("domain", "z", "y", "x").values)
        out[f"{name}.attrs"] = dict(var.attrs)
    return out


def _labels(arrays: dict) -> np.ndarray:
    from estimator.reporting import _class_labels

    return _class_labels(arrays["class"], arrays["class.attrs"]).astype(str)


def _density_vars(run: _Run) -> list[str]:
    """The block-model variables a run's tonnes read (a density variable or estimate)."""
    if isinstance(run.density, str):
        return [run.density]
    return sorted({v[0] for v in run.density.values() if isinstance(v, tuple)})


def _tonnes(run: _Run, arrays: dict, domains: list[str]) -> np.ndarray:
    frac = arrays["fraction"].astype(float)
    if isinstance(run.density, str):
        dens = arrays[run.density].astype(float)
    else:
        dens = np.ones(frac.shape)
        for i, d in enumerate(domains):
            value = run.density.get(d, 1.0)
            if isinstance(value, tuple):  # a density estimated like a grade, with its default
                est = arrays[value[0]][i].astype(float)
                dens[i] = np.where(np.isfinite(est), est, value[1])
            else:
                dens[i] = value
    return frac * run.grid.block_volume * dens


def _same(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Equal values, NaN equal to NaN."""
    if x.dtype.kind == "f" or y.dtype.kind == "f":
        return (x == y) | (np.isnan(x) & np.isnan(y))
    return x == y


def drop_noise(change: np.ndarray, *operands: np.ndarray) -> np.ndarray:
    """``change`` rounded to :data:`DIGITS` significant digits of the largest operand.

    The difference of two doubles carries rounding noise in the last bits of the operands
    (``1.4 - 1.1 = 0.2999999999999998``); rounding at the operands' 15th digit removes it and
    keeps every digit the values carry.

    Examples
    --------
    >>> float(drop_noise(np.array([1.4 - 1.1]), np.array([1.4]))[0])
    0.3
    """
    change = np.asarray(change, dtype=float)
    scale = np.zeros(change.shape)
    for op in operands:
        scale = np.fmax(scale, np.abs(np.asarray(op, dtype=float)))
    out = change.copy()
    ok = np.isfinite(change) & (scale > 0)
    if not ok.any():
        return out
    decimals = (DIGITS - 1 - np.floor(np.log10(scale[ok]))).astype(int)
    vals = out[ok]
    for d in np.unique(decimals):
        sel = decimals == d
        if d > 300 or d < -300:
            continue
        vals[sel] = np.round(vals[sel], int(d))
    out[ok] = vals
    return out


# ---------------------------------------------------------------------------------------
# composites: what is new
# ---------------------------------------------------------------------------------------
KEYS = ["hole_id", "from", "to", "domain", "x", "y", "z"]


def _new_composites(ca: pd.DataFrame, cb: pd.DataFrame, grades: list[str]) -> dict:
    """Per grade, a boolean array over B's composites: new or changed (not in A as they are)."""
    out = {}
    for g in grades:
        cols = [c for c in KEYS if c in cb.columns and c in ca.columns] + [g]
        if g not in ca.columns:
            out[g] = np.ones(len(cb), dtype=bool)
            continue
        left = cb[cols].astype({"hole_id": str, "domain": str}).reset_index(drop=True)
        right = ca[cols].astype({"hole_id": str, "domain": str}).drop_duplicates()
        merged = left.merge(right, on=cols, how="left", indicator=True, sort=False)
        # a left merge keeps the left rows in order, once each (right has no duplicates)
        out[g] = (merged["_merge"] == "left_only").to_numpy()
    return out


def _hole_names(comps: pd.DataFrame) -> np.ndarray:
    """Hole names; a positioned sample without hole id is a hole of its own, named by place."""
    names = comps["hole_id"].astype(str).str.strip().to_numpy().astype(object)
    blank = np.isin(np.char.lower(names.astype(str)), ["", "nan", "none", "<na>"])
    if blank.any():
        xyz = comps.loc[blank, ["x", "y", "z"]].to_numpy(float)
        names[blank] = [f"sample at ({x:g}, {y:g}, {z:g})" for x, y, z in xyz]
    return names.astype(str)


def _hole_status(ca: pd.DataFrame, cb: pd.DataFrame, new: dict) -> dict[str, str]:
    """``{hole: "new" | "changed"}`` for B's holes absent from A or with new composites."""
    ha, hb = set(_hole_names(ca)), _hole_names(cb)
    status: dict[str, str] = {}
    any_new = np.zeros(len(cb), dtype=bool)
    for flags in new.values():
        any_new |= flags
    for hole in dict.fromkeys(hb):
        if hole not in ha:
            status[hole] = "new"
    for hole in dict.fromkeys(hb[any_new]):
        status.setdefault(hole, "changed")
    return status


# ---------------------------------------------------------------------------------------
# attribution
# ---------------------------------------------------------------------------------------
class _Attribution:
    """B's kriging plan, re-run on changed blocks to split their change among the samples."""

    def __init__(self, b: _Run, comps: pd.DataFrame, new: dict, grades: list[str]):
        from estimator.kriging.chunked import ChunkPlan
        from estimator.kriging.parallel import search_reach
        from estimator.pipeline import load

        models = load("models", b.files, b.folder)
        # the kriging of a block depends on its centre, the discretisation, the samples, the
        # models and the passes; the fractions (wireframes, topography, block rules) are read
        # from B's stored model, so the plan is built without them
        self.plan = ChunkPlan.from_config(b.cfg, comps, models, {})
        self.offsets = self.plan.grid.discretisation_offsets(self.plan.discretisation)
        self.reach = search_reach(self.plan.passes, self.plan.grid)
        names = _hole_names(comps)
        self.codes, self.holes = pd.factorize(names, sort=True)
        self.rows: dict[tuple[str, str], np.ndarray] = {}
        xyz_ok = np.all(np.isfinite(comps[["x", "y", "z"]].to_numpy(float)), axis=1)
        dom = comps["domain"].astype(str).to_numpy()
        for d in (s.name for s in self.plan.domains):
            for g in grades:
                keep = (dom == d) & np.isfinite(comps[g].to_numpy(float)) & xyz_ok
                rows = np.flatnonzero(keep)
                if rows.size != self.plan.samples[(d, g)].values.size:  # pragma: no cover
                    msg = (
                        f"the composites of run B do not match its kriging samples ({d}, {g}): "
                        f"{rows.size} rows against {self.plan.samples[(d, g)].values.size}"
                    )
                    raise DataError(msg)
                self.rows[(d, g)] = rows
        self.new = new
        nh = len(self.holes)
        self.metal = {g: np.zeros(nh) for g in grades}
        self.blocks = {g: np.zeros(nh, dtype=np.int64) for g in grades}
        self.other = dict.fromkeys(grades, 0.0)
        self.checked = 0

    def add(self, domain: str, g: str, ijk: np.ndarray, stored: np.ndarray, part: np.ndarray):
        """Re-krige blocks ``ijk`` (rows of global ``(iz, iy, ix)``) of ``domain`` for grade
        ``g``; split ``part`` (their metal change from the grade) among the new samples."""
        from estimator.kriging.estimate import estimate_blocks

        plan = self.plan
        s = plan.samples[(domain, g)]
        targets = plan.grid.block_centres(ijk[:, 0], ijk[:, 1], ijk[:, 2])
        lo, hi = targets.min(axis=0) - self.reach, targets.max(axis=0) + self.reach
        sub = np.flatnonzero(np.all((s.xyz >= lo) & (s.xyz <= hi), axis=1))
        res = estimate_blocks(
            targets, self.offsets, s.xyz[sub], s.values[sub], s.holes[sub],
            plan.models[(domain, g)], plan.passes, plan.method,
            plan.sk_mean.get((domain, g)), plan.idw_power, return_weights=True,
        )  # fmt: skip
        if not np.array_equal(res["estimate"], stored, equal_nan=True):
            bad = np.flatnonzero(~_same(res["estimate"], stored))[0]
            k, j, i = ijk[bad]
            msg = (
                f"re-kriging block (i={i}, j={j}, k={k}) of domain {domain} with run B's plan "
                f"gives {g} = {res['estimate'][bad]!r}, not the {stored[bad]!r} B stored: the "
                "hole attribution is left out (please report this as a bug)"
            )
            raise _Mismatch(msg)
        self.checked += len(ijk)
        idx, w = res["indices"], np.abs(res["weights"])
        valid = idx >= 0
        comp_row = np.where(valid, self.rows[(domain, g)][sub][np.where(valid, idx, 0)], -1)
        is_new = valid & self.new[g][np.where(valid, comp_row, 0)] & np.isfinite(w)
        w_new = np.where(is_new, w, 0.0)
        total = w_new.sum(axis=1)
        explained = total > 0
        self.other[g] += float(np.sum(part[~explained]))
        b, j = np.nonzero(is_new & explained[:, None] & (w_new > 0))
        hole = self.codes[comp_row[b, j]]
        share = part[b] * w_new[b, j] / total[b]
        self.metal[g] += np.bincount(hole, weights=share, minlength=len(self.holes))
        pairs = np.unique(np.column_stack([b, hole]), axis=0)
        self.blocks[g] += np.bincount(pairs[:, 1], minlength=len(self.holes)) if len(pairs) else 0


class _Mismatch(Exception):
    """Re-kriged estimates differ from the stored ones."""


# ---------------------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------------------
#: The files a diff writes, by key.
DIFF_FILES = {
    "diff": "diff.csv", "diff_summary": "diff_summary.csv",
    "class_migration": "class_migration.csv",
    "holes_driving_change": "holes_driving_change.csv",
    "plot_diff_plan": "plots/diff_plan.png", "plot_diff_section": "plots/diff_section.png",
    "diff_json": "diff.json",
}  # fmt: skip


def diff_runs(run_a: Path, run_b: Path, out: Path, *, progress: bool = False) -> DiffResult:
    """Compare finished run A (before) with run B (after) and write the diff into ``out``.

    Parameters
    ----------
    run_a, run_b : path
        Folders of finished runs (``verify_run_folder`` checks every file's hash).
    out : path
        Folder for ``diff.csv``, ``diff_summary.csv``, ``class_migration.csv``,
        ``holes_driving_change.csv``, ``diff.json`` and ``plots/diff_*.png``.
    progress : bool
        Show a progress bar over the windows of blocks.

    Returns
    -------
    DiffResult

    Raises
    ------
    DataError
        A folder is not a finished, intact run, or the runs do not share the grid (origin,
        block size, shape, rotation) and domains.
    """
    from estimator import diffing_plots as dp
    from estimator.pipeline import load

    notes: list[str] = []
    pair = _Pair(_open_run(Path(run_a), "A", notes), _open_run(Path(run_b), "B", notes), notes)
    a, b, grades, first = pair.a, pair.b, pair.grades, pair.first
    out = output.check_output_folder(Path(out), what="diff folder")
    ca = load("composites", a.files, a.folder)
    cb = load("composites", b.files, b.folder).reset_index(drop=True)
    new = _new_composites(ca, cb, grades)
    status = _hole_status(ca, cb, new)
    try:
        att: _Attribution | None = _Attribution(b, cb, new, grades)
    except DataError as err:
        att = None
        notes.append(f"no hole attribution: {err}")
    comp = _Comparison(pair, att)
    windows = _windows(a, b)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(windows), desc="diff", unit="window", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    kept: list[pd.DataFrame] = []
    n_rows = 0
    with output.atomic_path(out / "diff.csv") as tmp:
        for window in windows:
            rows = comp.add(window)
            if bar is not None:
                bar.update(1)
            if rows is not None:
                rows.to_csv(tmp, mode="a", header=not n_rows, index=False, lineterminator="\n")
                n_rows += len(rows)
                if n_rows <= MAX_ROWS_IN_MEMORY:
                    kept.append(rows)
        if not n_rows:  # no block changed: the header alone
            pd.DataFrame(columns=_columns(grades)).to_csv(tmp, index=False, lineterminator="\n")
    if bar is not None:
        bar.close()
    changes = None
    if n_rows <= MAX_ROWS_IN_MEMORY:
        changes = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(
            columns=_columns(grades))  # fmt: skip
    else:
        notes.append(f"{n_rows:,} changed blocks: diff.csv is not held in memory, read the file")
    att = comp.attribution
    if att is None:
        notes.append("the metal change is not attributed to holes (see the notes above)")

    totals = {g: math.fsum(v) for g, v in comp.metal.items()}
    summary = _summary(a, b, pair.report_grade, list(b.cfg.report.cutoffs))
    migration = _migration_table(comp.migration, pair.domains)
    holes = _holes_table(att, status, grades, totals, b.metal_unit)
    files = DIFF_FILES
    output.write_csv(out / files["diff_summary"], summary)
    output.write_csv(out / files["class_migration"], migration)
    output.write_csv(out / files["holes_driving_change"], holes)
    section = dp.write_plots(
        out, b.grid, comp.plan, comp.centre, windows,
        lambda w: pair.change(w, first), first,
        (b.cfg.data.grade_unit, b.cfg.data.length_unit),
        dp.hole_traces(cb, list(status), _collars(b)),
    )  # fmt: skip
    counts = comp.counts()
    top = holes[(holes["grade"] == first) & (holes["hole_id"] != OTHER)].head(10)
    doc = {
        "command": "diff",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": {"before": _run_doc(a), "after": _run_doc(b)},
        "grades": grades,
        "report_grade": pair.report_grade,
        "cutoffs": list(b.cfg.report.cutoffs),
        "counts": counts,
        "metal_change": totals,
        "metal_unit": b.metal_unit,
        "holes": {
            "new": sorted(h for h, s in status.items() if s == "new"),
            "changed": sorted(h for h, s in status.items() if s == "changed"),
            "removed": sorted(set(_hole_names(ca)) - set(_hole_names(cb))),
        },
        "attribution": {
            "done": att is not None,
            "blocks_rekriged": att.checked if att is not None else 0,
        },
        "top_holes": top.to_dict(orient="records"),
        "section": section,
        "notes": notes,
        "files": files,
    }
    output.write_json(out / "diff.json", _clean_json(doc))
    text = _text(a, b, counts, summary, holes, first, notes)
    for note in notes:
        log.warning(note)
    return DiffResult(changes, summary, migration, holes, counts, text, notes, out, files)


class _Pair:
    """The two runs, checked to share grid and domains, and what is compared."""

    def __init__(self, a: _Run, b: _Run, notes: list[str]):
        self.a, self.b, self.notes = a, b, notes
        self.domains = _check_same_blocks(a, b)
        self.grades = [g for g in b.cfg.grades if g in a.ds and g in b.ds]
        if not self.grades:
            msg = f"runs A ({a.folder}) and B ({b.folder}) estimate no grade in common"
            raise DataError(msg)
        notes += [f"grade {g} is not estimated in run A: left out of the diff"
                  for g in b.cfg.grades if g not in self.grades]  # fmt: skip
        self.report_grade = (b.cfg.report.grade or b.cfg.grades[0]).lower()
        self.first = self.report_grade if self.report_grade in self.grades else self.grades[0]
        if a.cfg.data.grade_unit != b.cfg.data.grade_unit:
            notes.append(
                f"the grade unit differs: {a.cfg.data.grade_unit!r} in A, "
                f"{b.cfg.data.grade_unit!r} in B; each run's metal is in its own unit"
            )
        if a.classes is None and b.classes is not None:
            notes.append("run A has no classification: its blocks count as 'not classified'")
        self.names = {}
        for run in (a, b):
            names = ["fraction", "class", *[v for g in self.grades for v in (g, f"{g}_pass")]]
            self.names[run.label] = names + [v for v in _density_vars(run) if v not in names]

    def read(self, window: dict) -> tuple[dict, dict]:
        """Both runs' arrays of a window."""
        return tuple(_read(r, self.names[r.label], self.domains, window) for r in (self.a, self.b))

    def change(self, window: dict, grade: str):
        """B's tonnes, the change of ``grade`` and the inside mask of a window (for the plots)."""
        wa = _read(self.a, ["fraction", grade], self.domains, window)
        density = [v for v in _density_vars(self.b) if v != grade]
        wb = _read(self.b, ["fraction", grade, *density], self.domains, window)
        inside = (wa["fraction"] > 0) | (wb["fraction"] > 0)
        return _tonnes(self.b, wb, self.domains), wb[grade] - wa[grade], inside


class _Comparison:
    """What the windows add up to: counts, metal, class migration, attribution, the plan."""

    def __init__(self, pair: _Pair, attribution: _Attribution | None):
        from estimator.diffing_plots import PlanAccumulator

        self.pair = pair
        self.attribution = attribution
        self.plan = PlanAccumulator(pair.b.grid)
        self.centre = np.zeros(4)  # |metal change|-weighted sums of x, y, z and the weight
        self.metal: dict[str, list[float]] = {g: [] for g in pair.grades}
        self.migration: dict[tuple[str, str, str], float] = {}
        self.compared = dict.fromkeys(pair.domains, 0)
        self.changed = dict.fromkeys(pair.domains, 0)
        self.by_grade = dict.fromkeys(pair.grades, 0)

    def counts(self) -> dict:
        n, c = sum(self.compared.values()), sum(self.changed.values())
        return {
            "blocks_compared": n, "changed": c, "unchanged": n - c,
            "by_domain": {d: {"compared": self.compared[d], "changed": self.changed[d],
                              "unchanged": self.compared[d] - self.changed[d]}
                          for d in self.pair.domains},
            "estimate_changed_by_grade": self.by_grade,
        }  # fmt: skip

    def add(self, window: dict) -> pd.DataFrame | None:
        """Compare one window; its ``diff.csv`` rows (None when no block changed)."""
        p = self.pair
        a, b, domains = p.a, p.b, p.domains
        wa, wb = p.read(window)
        inside = (wa["fraction"] > 0) | (wb["fraction"] > 0)
        if not inside.any():
            return None
        ta, tb = _tonnes(a, wa, domains), _tonnes(b, wb, domains)
        la = _labels(wa) if a.classes is not None else None
        lb = _labels(wb) if b.classes is not None else None
        changed = inside & ~_same(wa["fraction"], wb["fraction"])
        if la is not None and lb is not None:
            changed |= inside & (la != lb)
        for g in p.grades:
            ga, gb = wa[g].astype(float), wb[g].astype(float)
            est_changed = inside & ~_same(ga, gb)
            changed |= est_changed
            self.by_grade[g] += int(est_changed.sum())
            ma = np.where(np.isfinite(ga), ta * ga * a.factor, 0.0)
            mb = np.where(np.isfinite(gb), tb * gb * b.factor, 0.0)
            dm = np.where(inside, mb - ma, 0.0)
            self.metal[g].append(math.fsum(dm[inside].tolist()))
            # the grade part of the change: B's tonnes x (after - before); the rest is tonnage
            kept = np.where(np.isfinite(ga), tb * ga * a.factor, 0.0)
            part = np.where(inside & np.isfinite(gb), mb - kept, 0.0)
            if g == p.first:
                self.plan.add(window, tb, gb - ga, inside)
                w = np.abs(dm)
                for ax, pts in enumerate(_centres(b.grid, window)):
                    self.centre[ax] += float(np.sum(w * pts[None]))
                self.centre[3] += float(w.sum())
            self._attribute(window, g, est_changed & np.isfinite(gb) & (wb["fraction"] > 0),
                            gb, dm, part, inside)  # fmt: skip
        _migrate(self.migration, domains, inside, ta, tb, wa, wb, a, b, la, lb)
        for di, d in enumerate(domains):
            self.compared[d] += int(inside[di].sum())
            self.changed[d] += int(changed[di].sum())
        if not changed.any():
            return None
        return _rows(changed, window, domains, p.grades, wa, wb, ta, tb, la, lb, a, b)

    def _attribute(self, window, g, todo, gb, dm, part, inside) -> None:
        """Re-krige the blocks whose estimate changed and split their grade part among the new
        samples; every other part of the change (tonnage, estimates lost) is "other"."""
        att = self.attribution
        if att is None:
            return
        z0, y0, x0 = (window[k].start for k in ("z", "y", "x"))
        try:
            for di, d in enumerate(self.pair.domains):
                kz, jy, ix = np.nonzero(todo[di])
                if kz.size:
                    ijk = np.column_stack([kz + z0, jy + y0, ix + x0])
                    att.add(d, g, ijk, gb[di][todo[di]], part[di][todo[di]])
        except _Mismatch as err:
            self.attribution = None
            self.pair.notes.append(str(err))
            return
        rest = np.where(todo, dm - part, dm)
        att.other[g] += math.fsum(rest[inside].tolist())


def _centres(grid, window: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World x, y, z of a window's block centres, each shaped ``(wz, wy, wx)``."""
    xc, yc, zc = grid.centres_local()
    xs, ys, zs = xc[window["x"]], yc[window["y"]], zc[window["z"]]
    wx, wy = grid.to_world(xs[None, :], ys[:, None])
    shape = (len(zs), len(ys), len(xs))
    return (np.broadcast_to(wx[None], shape), np.broadcast_to(wy[None], shape),
            np.broadcast_to(zs[:, None, None], shape))  # fmt: skip


def _collars(run: _Run) -> pd.DataFrame | None:
    from estimator.pipeline import load

    if "artefacts/collars.csv" not in run.meta["outputs"]:
        return None
    try:
        return load("holes", run.files, run.folder).collars
    except Exception:  # pragma: no cover - the drawing falls back to the composites
        return None


def _migrate(acc, domains, inside, ta, tb, wa, wb, a, b, la, lb) -> None:
    """Add a window's tonnes moving between classes (see the module docstring)."""

    def classes(run, arrays, labels, tonnes):
        est = np.isfinite(arrays[run.est_grade].astype(float)) if run.est_grade in arrays else (
            np.zeros(tonnes.shape, bool))  # fmt: skip
        if labels is None:
            lab = np.where(est, NOT_CLASSIFIED, NOT_ESTIMATED).astype(object)
        else:
            lab = np.where(labels == "", UNCLASSIFIED, labels).astype(object)
            lab[~est] = NOT_ESTIMATED
        lab[arrays["fraction"] <= 0] = OUTSIDE
        return lab

    ka, kb = classes(a, wa, la, ta), classes(b, wb, lb, tb)
    for di, d in enumerate(domains):
        sel = inside[di]
        x, y = ta[di][sel], tb[di][sel]
        fa, fb = ka[di][sel], kb[di][sel]
        both = np.minimum(x, y)
        parts = [(fa, fb, both), (np.full(fa.shape, OUTSIDE, object), fb, y - both),
                 (fa, np.full(fb.shape, OUTSIDE, object), x - both)]  # fmt: skip
        for src, dst, t in parts:
            keep = t > 0
            if not keep.any():
                continue
            frame = pd.DataFrame({"s": src[keep], "d": dst[keep], "t": t[keep]})
            for (s, e), v in frame.groupby(["s", "d"], sort=False)["t"].sum().items():
                acc[(d, s, e)] = acc.get((d, s, e), 0.0) + float(v)


def _columns(grades: list[str]) -> list[str]:
    """The columns of ``diff.csv``."""
    cols = ["domain", "i", "j", "k", "x", "y", "z", "fraction_before", "fraction_after",
            "tonnes_before", "tonnes_after"]  # fmt: skip
    for g in grades:
        cols += [f"{g}_{s}" for s in ("before", "after", "change", "pass_before", "pass_after",
                                      "metal_change")]  # fmt: skip
    return [*cols, "class_before", "class_after"]


def _rows(changed, window, domains, grades, wa, wb, ta, tb, la, lb, a, b) -> pd.DataFrame:
    """The ``diff.csv`` rows of one window (blocks ``changed``)."""
    di, kz, jy, ix = np.nonzero(changed)
    z0, y0, x0 = (window[k].start for k in ("z", "y", "x"))
    pts = b.grid.block_centres(kz + z0, jy + y0, ix + x0)
    at = (di, kz, jy, ix)
    cols: dict[str, Any] = {
        "domain": np.array(domains, dtype=object)[di], "i": ix + x0, "j": jy + y0, "k": kz + z0,
        "x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2],
        "fraction_before": wa["fraction"][at], "fraction_after": wb["fraction"][at],
        "tonnes_before": ta[at], "tonnes_after": tb[at],
    }  # fmt: skip
    for g in grades:
        before, after = wa[g][at].astype(float), wb[g][at].astype(float)
        ma = np.where(np.isfinite(before), ta[at] * before * a.factor, 0.0)
        mb = np.where(np.isfinite(after), tb[at] * after * b.factor, 0.0)
        cols[f"{g}_before"], cols[f"{g}_after"] = before, after
        cols[f"{g}_change"] = drop_noise(after - before, before, after)
        cols[f"{g}_pass_before"] = wa[f"{g}_pass"][at]
        cols[f"{g}_pass_after"] = wb[f"{g}_pass"][at]
        cols[f"{g}_metal_change"] = drop_noise(mb - ma, ma, mb)
    none = np.full(len(di), "", dtype=object)
    cols["class_before"] = la[at] if la is not None else none
    cols["class_after"] = lb[at] if lb is not None else none
    rank = {d: n for n, d in enumerate(domains)}
    frame = pd.DataFrame(cols)[_columns(grades)]
    return frame.sort_values(["domain", "k", "j", "i"], kind="stable",
                             key=lambda s: s.map(rank) if s.name == "domain" else s)


def _tonnage(run: _Run, grade: str, cutoffs: list[float]) -> pd.DataFrame:
    """Grade-tonnage of one run as its report stage makes it, at the given cut-offs."""
    from estimator.reporting import COLUMNS, grade_tonnage, grade_tonnage_chunked

    if grade not in run.ds:
        return pd.DataFrame(columns=COLUMNS)
    chunked = run.ds["fraction"].chunks is not None
    fn = grade_tonnage_chunked if chunked else grade_tonnage
    dx, dy, dz = run.grid.block_size
    table = fn(run.ds, grade, sorted(set(cutoffs)), run.density, dx * dy * dz,
               classes=run.classes, grade_unit=run.cfg.data.grade_unit)  # fmt: skip
    return _with_totals(table)


def _with_totals(table: pd.DataFrame) -> pd.DataFrame:
    from estimator.reporting import TOTAL, add_totals

    if table.empty or table["domain"].nunique() >= 2:
        return add_totals(table)
    return pd.concat([table, table.assign(domain=TOTAL)], ignore_index=True)


def _summary(a: _Run, b: _Run, grade: str, cutoffs: list[float]) -> pd.DataFrame:
    """``diff_summary.csv``: each run's grade-tonnage at B's cut-offs, side by side."""
    ta, tb = _tonnage(a, grade, cutoffs), _tonnage(b, grade, cutoffs)
    keys = ["domain", "class", "cutoff"]
    merged = tb.merge(ta, on=keys, how="outer", suffixes=("_after", "_before"), sort=False)
    order = {k: n for n, k in enumerate(map(tuple, tb[keys].to_numpy().tolist()))}
    merged["_order"] = [order.get(k, len(order)) for k in map(tuple, merged[keys].to_numpy())]
    merged = merged.sort_values("_order", kind="stable").drop(columns="_order")
    out = merged[keys].copy()
    for col in ("tonnes", "grade", "metal"):
        before = merged[f"{col}_before"].to_numpy(float)
        after = merged[f"{col}_after"].to_numpy(float)
        out[f"{col}_before"], out[f"{col}_after"] = before, after
        out[f"{col}_change"] = drop_noise(after - before, before, after)
    out["tonnes_unit"] = "t"
    out["grade_unit"] = b.cfg.data.grade_unit or "not set (data.grade_unit)"
    out["metal_unit"] = b.metal_unit
    return out.reset_index(drop=True)


def _migration_table(acc: dict, domains: list[str]) -> pd.DataFrame:
    from estimator.reporting import TOTAL

    rows = [{"domain": d, "class_before": s, "class_after": e, "tonnes": t}
            for (d, s, e), t in acc.items()]  # fmt: skip
    table = pd.DataFrame(rows, columns=["domain", "class_before", "class_after", "tonnes"])
    if len(table):
        total = table.groupby(["class_before", "class_after"], sort=False, as_index=False)[
            "tonnes"].sum().assign(domain=TOTAL)  # fmt: skip
        table = pd.concat([table, total[table.columns]], ignore_index=True)
        rank = {d: n for n, d in enumerate([*domains, TOTAL])}
        table = table.sort_values(
            ["domain", "class_before", "class_after"], kind="stable",
            key=lambda s: s.map(rank) if s.name == "domain" else s,
        ).reset_index(drop=True)  # fmt: skip
    table["tonnes_unit"] = "t"
    return table


def _holes_table(att, status, grades, totals, unit) -> pd.DataFrame:
    cols = ["grade", "rank", "hole_id", "status", "blocks_influenced", "metal_change", "share",
            "metal_unit"]  # fmt: skip
    rows = []
    for g in grades:
        total = totals[g]
        per = []
        for hole, st in status.items():
            if att is None:
                per.append((hole, st, 0, np.nan))
                continue
            k = int(np.searchsorted(att.holes, hole))
            per.append((hole, st, int(att.blocks[g][k]), float(att.metal[g][k])))
        per.sort(key=lambda r: (-abs(r[3]) if np.isfinite(r[3]) else 0.0, r[0]))
        for rank, (hole, st, n, metal) in enumerate(per, start=1):
            rows.append([g, rank, hole, st, n, metal, metal / total if total else np.nan, unit])
        other = att.other[g] if att is not None else np.nan
        rows.append([g, None, OTHER, "other", None, other, other / total if total else np.nan,
                     unit])  # fmt: skip
    table = pd.DataFrame(rows, columns=cols)
    table["rank"] = table["rank"].astype("Int64")
    table["blocks_influenced"] = table["blocks_influenced"].astype("Int64")
    return table


def _run_doc(run: _Run) -> dict:
    outputs = run.meta["outputs"]
    return {
        "folder": str(run.folder.resolve()),
        "name": run.meta.get("name"),
        "run_id": run.meta.get("run_id"),
        "created": run.meta.get("created"),
        "blockmodel_sha256": outputs.get("blockmodel.zarr", outputs.get("blockmodel.nc")),
    }


def _clean_json(value):
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if value is pd.NA:
        return None
    return value


def _text(a, b, counts, summary, holes, grade, notes) -> str:
    """The terminal summary: changes per domain at B's first cut-off and the top 5 holes."""
    gu = b.cfg.data.grade_unit or "grade units"
    mu = b.metal_unit
    lines = [
        f"Diff {a.meta.get('name')} ({a.meta.get('run_id')}) -> {b.meta.get('name')} "
        f"({b.meta.get('run_id')})",
        f"Blocks compared: {counts['blocks_compared']:,}; changed: {counts['changed']:,}; "
        f"unchanged: {counts['unchanged']:,}",
    ]
    cut = float(b.cfg.report.cutoffs[0])
    sub = summary[(summary["class"] == "all") & (summary["cutoff"] == cut)]
    lines.append(f"At cut-off {cut:g} {gu} ({grade}), all classes: change (before -> after)")
    for r in sub.itertuples(index=False):
        lines.append(
            f"  {r.domain:<10} tonnes {_signed(r.tonnes_change)} t ({_num(r.tonnes_before)} -> "
            f"{_num(r.tonnes_after)}); grade {_signed(r.grade_change, 3)} {gu}; "
            f"metal {_signed(r.metal_change)} {mu}"
        )
    top = holes[(holes["grade"] == grade) & (holes["hole_id"] != OTHER)]
    top = top[top["metal_change"].fillna(0) != 0].head(5)
    if len(top):
        lines.append(f"Holes driving the change ({grade} metal, no cut-off):")
        for r in top.itertuples(index=False):
            share = f"{100 * r.share:.0f} %" if pd.notna(r.share) else "-"
            lines.append(f"  {r.rank}. {r.hole_id} ({r.status}): {_signed(r.metal_change)} {mu}, "
                         f"{share} of the change, {r.blocks_influenced} blocks")  # fmt: skip
    elif counts["changed"]:
        lines.append("No new or changed hole explains the change (see holes_driving_change.csv)")
    lines += [f"Note: {n}" for n in notes]
    return "\n".join(lines)


def _num(v, digits=0) -> str:
    return "-" if not np.isfinite(v) else f"{v:,.{digits}f}"


def _signed(v, digits=0) -> str:
    return "-" if not np.isfinite(v) else f"{v:+,.{digits}f}"
