"""The one orchestrator: which stage runs when, and what gets written where.

Stages (SPEC section 4), in order: ``data`` (load, validate, desurvey, flag domains),
``composites``, ``variograms``, ``estimate``, ``report``. Each stage is a function of the typed
config and the previous stages' results; only this module and ``estimator.io`` touch disk.
"""

from __future__ import annotations

import logging
import platform
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from estimator import __version__
from estimator.config import RunConfig
from estimator.datareport import DataReport
from estimator.errors import DataError, EstimationWarning
from estimator.io import output

log = logging.getLogger(__name__)

STAGES = ("data", "composites", "variograms", "estimate", "report")
#: What each stage does, in the geologist's words (progress messages).
STAGE_WORDS = {
    "data": "Reading, validating and desurveying the data; flagging domains",
    "composites": "Compositing within domains; capping",
    "variograms": "Variography",
    "estimate": "Building the block model and estimating blocks",
    "report": "Grade-tonnage report",
}
#: The config sections each stage reads (besides its inputs from earlier stages): what an
#: incremental update compares to decide which stages must run again.
STAGE_SECTIONS = {
    "data": ("data", "grades", "domains"),
    "composites": ("composites", "capping"),
    "variograms": ("variography",),
    "estimate": ("block_model", "estimation", "classification", "compute"),
    "report": ("report",),
}


@dataclass
class RunState:
    """What the stages have produced so far (plain values, no hidden globals)."""

    config: RunConfig
    out: Path
    report: DataReport = field(default_factory=DataReport)
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    progress: bool = False


# ---------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------
def stage_data(state: RunState) -> None:
    """Load and validate the tables, desurvey them and flag each interval's domain."""
    from estimator.domains import flag_domains, wireframe_domains
    from estimator.drillholes.desurvey import desurvey
    from estimator.io.drillholes import read_drillholes, read_samples
    from estimator.io.wireframe import load_wireframe

    cfg = state.config
    report = state.report
    wireframes = {}
    for d in cfg.domains:
        if d.wireframe is not None:
            wireframes[d.name] = load_wireframe(d.wireframe, report=report)
    state.results["wireframes"] = wireframes

    if not cfg.data.drillholes:
        samples = read_samples(cfg.data, cfg.grades, report)
        xyz = samples[["x", "y", "z"]].to_numpy(float)
        samples["domain"] = (
            wireframe_domains(cfg.domains, wireframes, xyz) if cfg.domains else "all"
        )
        state.results["samples"] = samples
        state.counts.update(samples=len(samples), holes=int(samples["hole_id"].nunique()))
        return

    holes = read_drillholes(cfg.data, cfg.grades, report)
    assays = holes.assays
    mids = 0.5 * (assays["from"].to_numpy(float) + assays["to"].to_numpy(float))
    xyz = desurvey(holes.collars, holes.surveys, assays["hole_id"].to_numpy(), mids)
    if cfg.domains:
        wf_domain = wireframe_domains(cfg.domains, wireframes, xyz) if wireframes else None
        code_to_domain = {c: d.name for d in cfg.domains for c in d.zone_codes}
        intervals = flag_domains(assays, holes.zones, code_to_domain, wf_domain, report)
    else:
        intervals = assays.assign(domain="all")
    state.results["drillholes"] = holes
    state.results["intervals"] = intervals
    state.counts.update(
        holes=len(holes.collars),
        survey_rows=len(holes.surveys),
        assay_rows=len(assays),
        intervals_by_domain=_value_counts(intervals["domain"]),
    )


def stage_composites(state: RunState) -> None:
    """Composite within each domain, place composites by desurvey, apply caps."""
    from estimator.capping import apply_caps
    from estimator.compositing import composite, drop_coincident, drop_empty_composites
    from estimator.drillholes.desurvey import desurvey

    cfg = state.config
    report = state.report
    if "samples" in state.results:
        comps = state.results["samples"]
        outside = (comps["domain"] == "").to_numpy()
        if outside.any():
            report.add(
                comps["_file"].iloc[0] if "_file" in comps else "",
                None,
                None,
                "outside_domains",
                f"{int(outside.sum())} samples lie outside every domain's wireframe",
                "not estimated (left out of composites.csv)",
            )
        comps = comps.loc[~outside].reset_index(drop=True)
    else:
        holes = state.results["drillholes"]
        intervals = state.results["intervals"]
        c = cfg.composites
        if c is None:
            msg = "composites: the section is missing; give at least composites.length"
            raise DataError(msg)
        tranche_order = [a.tranche or a.path.stem for a in cfg.data.assays]
        comps = composite(
            intervals,
            cfg.grades,
            c.length,
            min_length=c.min_length,
            residual=c.residual,
            tranche_order=tranche_order,
        )
        comps = drop_empty_composites(
            comps, cfg.grades, report, cfg.data.length_unit or "length units"
        )
        mids = 0.5 * (comps["from"].to_numpy(float) + comps["to"].to_numpy(float))
        xyz = desurvey(holes.collars, holes.surveys, comps["hole_id"].to_numpy(), mids)
        comps.insert(4, "x", xyz[:, 0])
        comps.insert(5, "y", xyz[:, 1])
        comps.insert(6, "z", xyz[:, 2])
    comps = drop_coincident(comps, report)
    comps = apply_caps(comps, cfg.capping, report)
    state.results["composites"] = comps
    state.counts["composites"] = len(comps)
    state.counts["composites_by_domain"] = _value_counts(comps["domain"])
    state.files["composites"] = str(output.write_csv(state.out / "composites.csv", comps))


def stage_variograms(state: RunState) -> None:
    """Use explicit models from the config or fit them; write variograms.yaml and plots."""
    from estimator.variography.stage import variography_stage

    cfg = state.config
    comps = state.results["composites"]
    models, tables, figures, notes = variography_stage(cfg, comps)
    state.results["models"] = models
    for note in notes:
        log.warning(note)
    state.counts["variogram_notes"] = notes
    doc = {dom: {g: {"model": m.to_dict()} for g, m in per.items()} for dom, per in models.items()}
    header = (
        f"# Variogram models of run {cfg.name}: paste under the config's `variography:` key.\n"
        "# ranges = [major, semi-major, minor]; angles = GSLIB [ang1, ang2, ang3] (degrees).\n"
    )
    state.files["variograms"] = str(output.write_yaml(state.out / "variograms.yaml", doc, header))
    if tables:
        table = pd.concat(tables, ignore_index=True)
        output.write_csv(state.out / "variograms_experimental.csv", table)
    for name, fig in figures.items():
        output.save_figure(state.out / "plots" / f"variogram_{name}.png", fig)


def stage_estimate(state: RunState) -> None:
    """Build the block model, clip it by each wireframe and krige every grade."""
    from estimator.estimation import estimate_stage

    cfg = state.config
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EstimationWarning)
        ds, counts = estimate_stage(
            cfg,
            state.results["composites"],
            state.results.get("models", {}),
            state.results.get("wireframes", {}),
            progress=state.progress,
        )
    for w in caught:
        log.warning(str(w.message))
    state.results["blockmodel"] = ds
    state.counts.update(counts)
    unit = state.config.data.length_unit or "length units"
    for dom, per_grade in counts["estimated_by_pass"].items():
        for grade, c in per_grade.items():
            if c["not_estimated"]:
                state.report.add(
                    "blockmodel.nc",
                    None,
                    None,
                    "unestimated_blocks",
                    f"{c['not_estimated']} blocks of domain {dom} ({c['not_estimated_volume']:g} cubic "
                    f"{unit} inside its wireframe) have no {grade} estimate: too few composites "
                    "within every search pass",
                    "left NaN: not in grade_tonnage.csv",
                )
    state.files["blockmodel"] = str(output.write_netcdf(state.out / "blockmodel.nc", ds))


def stage_report(state: RunState) -> None:
    """Grade-tonnage tables at the configured cut-offs (+ plot)."""
    from estimator.reporting import report_stage

    ds = state.results["blockmodel"]
    table, fig = report_stage(state.config, ds)
    state.results["grade_tonnage"] = table
    state.files["grade_tonnage"] = str(output.write_csv(state.out / "grade_tonnage.csv", table))
    if fig is not None:
        output.save_figure(state.out / "plots" / "grade_tonnage.png", fig)


STAGE_FUNCS = {
    "data": stage_data,
    "composites": stage_composites,
    "variograms": stage_variograms,
    "estimate": stage_estimate,
    "report": stage_report,
}


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------
def _value_counts(series: pd.Series) -> dict[str, int]:
    vc = series.astype(str).value_counts(sort=False)
    return {str(k): int(v) for k, v in sorted(vc.items())}


def input_files(cfg: RunConfig) -> list[Path]:
    """Every input file the config names (for hashing into run.json)."""
    d = cfg.data
    files = [p for p in (d.collars, d.surveys, d.zones, d.samples) if p is not None]
    files += [a.path for a in d.assays]
    files += [dom.wireframe for dom in cfg.domains if dom.wireframe is not None]
    if cfg.source is not None:
        files.insert(0, cfg.source)
    return files


def write_data_report(state: RunState) -> pd.DataFrame:
    """Write data_report.csv and return it."""
    frame = state.report.to_frame()
    state.files["data_report"] = str(output.write_csv(state.out / "data_report.csv", frame))
    return frame


def write_run_json(state: RunState, until: str) -> None:
    """run.json: resolved config, input hashes, versions, timings, counts."""
    import dask
    import numba
    import scipy
    import xarray

    cfg = state.config
    doc = {
        "name": cfg.name,
        "estimator_version": __version__,
        "finished_stage": until,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": cfg.model_dump(mode="json"),
        "inputs": {str(p): output.file_sha256(p) for p in input_files(cfg)},
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pandas": pd.__version__,
            "xarray": xarray.__version__,
            "dask": dask.__version__,
            "numba": numba.__version__,
        },
        "timings_s": {k: round(v, 3) for k, v in state.timings.items()},
        "counts": state.counts,
        "data_report": state.report.counts(),
        "files": state.files,
    }
    output.write_json(state.out / "run.json", doc)


def run(
    cfg: RunConfig,
    *,
    until: str = "report",
    out: str | Path | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> RunState:
    """Run the stages in order up to and including ``until``; write every output.

    Parameters
    ----------
    cfg : RunConfig
        The validated configuration.
    until : str
        Last stage to run, one of :data:`STAGES` (``"data"`` is what ``estimator check`` runs).
    out : path, optional
        Run folder (default: ``cfg.output``).
    scheduler : str, optional
        Overrides ``compute.scheduler``.
    progress : bool
        Show progress bars (the CLI turns them on for terminals).
    """
    if until not in STAGES:
        msg = f"--until: unknown stage {until!r}; expected one of {', '.join(STAGES)}"
        raise DataError(msg)
    if scheduler is not None:
        compute = cfg.compute.model_copy(update={"scheduler": scheduler})
        cfg = cfg.model_copy(update={"compute": compute})
    state = RunState(
        config=cfg, out=Path(out) if out is not None else cfg.output, progress=progress
    )
    state.out.mkdir(parents=True, exist_ok=True)
    last = STAGES.index(until)
    needs = {"variograms": "estimation", "estimate": "estimation", "report": "estimation"}
    done = "data"
    try:
        for name in STAGES[: last + 1]:
            section = needs.get(name)
            if section and getattr(cfg, section) is None:
                log.info("stage %s skipped: no %s section in the config", name, section)
                break
            log.info("%s ...", STAGE_WORDS[name])
            t0 = time.perf_counter()
            STAGE_FUNCS[name](state)
            state.timings[name] = time.perf_counter() - t0
            log.info("  done in %.2f s", state.timings[name])
            done = name
    finally:
        write_data_report(state)
    write_run_json(state, done)
    return state


# ---------------------------------------------------------------------------------------
# other commands
# ---------------------------------------------------------------------------------------
def run_intercepts(cfg: RunConfig, *, out: str | Path | None = None):
    """``estimator intercepts``: the data stage, then the significant-intercept table.

    Returns
    -------
    table : pandas.DataFrame
        ``hole_id, from, to, length, grade, zone, kind``.
    text : str
        The press-release table.
    path : Path
        Where ``intercepts.csv`` was written.
    """
    from estimator.intercepts import find_intercepts, format_intercepts

    if cfg.intercepts is None:
        msg = "intercepts: the section is missing (cutoff, min_length, max_dilution, including)"
        raise DataError(msg)
    if not cfg.data.drillholes:
        msg = (
            "intercepts need drillholes (data.collars, data.surveys, data.assays), not data.samples"
        )
        raise DataError(msg)
    rules = cfg.intercepts
    grade = (rules.grade or cfg.grades[0]).lower()
    state = RunState(config=cfg, out=Path(out) if out is not None else cfg.output)
    state.out.mkdir(parents=True, exist_ok=True)
    try:
        stage_data(state)
    finally:
        write_data_report(state)
    table = find_intercepts(
        state.results["intervals"],
        grade,
        cutoff=rules.cutoff,
        min_length=rules.min_length,
        max_dilution=rules.max_dilution,
        including=rules.including,
        including_min_length=rules.including_min_length,
    )
    unit = cfg.data.length_unit or "data units"
    label = f"{cfg.data.grade_unit} {grade.capitalize()}" if cfg.data.grade_unit else grade
    text = format_intercepts(table, grade_label=label, unit=unit)
    path = output.write_csv(state.out / "intercepts.csv", table)
    output.write_text(state.out / "intercepts.txt", text + "\n")
    return table, text, path


def rereport(run_dir: Path, cutoffs: list[float] | None = None):
    """``estimator report``: grade-tonnage of an existing block model (no re-kriging)."""
    import json

    import xarray as xr

    from estimator.config import parse_config
    from estimator.reporting import report_stage

    meta_path = run_dir / "run.json"
    bm_path = run_dir / "blockmodel.nc"
    for p in (meta_path, bm_path):
        if not p.is_file():
            msg = f"{p}: not found; is {run_dir} the folder of a finished `estimator run`?"
            raise DataError(msg)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    raw = meta["config"]
    if cutoffs is not None:
        raw.setdefault("report", {})["cutoffs"] = cutoffs
    cfg = parse_config(raw, source=str(meta_path), check_files=False)
    with xr.open_dataset(bm_path, engine="h5netcdf") as ds:
        table, fig = report_stage(cfg, ds.load())
    path = output.write_csv(run_dir / "grade_tonnage.csv", table)
    if fig is not None:
        output.save_figure(run_dir / "plots" / "grade_tonnage.png", fig)
    return table, path
