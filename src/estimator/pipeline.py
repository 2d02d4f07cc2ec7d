"""The one orchestrator: which stage runs when, and what gets written where.

Stages (SPEC section 4), in order: ``data`` (load, validate, desurvey, flag domains),
``composites``, ``variograms``, ``estimate``, ``report``. Each stage is a function of the typed
config and the previous stages' results; only this module and ``estimator.io`` touch disk.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from estimator import __version__
from estimator.config import RunConfig, check_scheduler
from estimator.datareport import DataReport
from estimator.errors import DataError, EstimationWarning
from estimator.interrupt import check as check_interrupt
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
#: Everything a run writes in its folder (relative paths); only these are ever replaced.
RUN_FILES = (
    "run.json",
    "data_report.csv",
    "composites.csv",
    "variograms.yaml",
    "variograms_experimental.csv",
    "blockmodel.nc",
    "grade_tonnage.csv",
    "plots",
    "reports",
    "failed",
)


@dataclass
class RunState:
    """What the stages have produced so far (plain values, no hidden globals).

    ``out`` is where the stages write (a staging folder inside the run folder until the run
    finishes); ``folder`` is the run folder; ``files`` maps output keys to paths relative to it.
    """

    config: RunConfig
    out: Path
    folder: Path | None = None
    report: DataReport = field(default_factory=DataReport)
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    progress: bool = False
    client: Any = None
    notes: list[str] = field(default_factory=list)
    run_id: str = ""

    def __post_init__(self):
        if self.folder is None:
            self.folder = self.out

    def note(self, text: str) -> None:
        """A warning for the geologist: logged now and repeated in run.json."""
        log.warning(text)
        self.notes.append(text)

    def write(self, key: str, name: str) -> Path:
        """Where to write output ``key`` (``name`` relative to the run folder)."""
        self.files[key] = name
        return self.out / name


def _unit(cfg: RunConfig) -> str:
    return cfg.data.length_unit or "data units"


# ---------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------
def stage_data(state: RunState) -> None:
    """Load and validate the tables, desurvey them and flag each interval's domain."""
    from estimator.domains import flag_domains, sample_domains, wireframe_domains
    from estimator.drillholes.desurvey import desurvey
    from estimator.io.drillholes import read_drillholes, read_samples
    from estimator.io.topography import load_topography
    from estimator.io.wireframe import load_wireframe

    cfg = state.config
    report = state.report
    wireframes = {}
    for d in cfg.domains:
        if d.wireframe is not None:
            wireframes[d.name] = load_wireframe(d.wireframe, report=report)
    state.results["wireframes"] = wireframes
    topography = None
    if cfg.data.topography is not None:
        topography = load_topography(cfg.data.topography, report=report)
    state.results["topography"] = topography

    code_to_domain = {c: d.name for d in cfg.domains for c in d.zone_codes}
    if not cfg.data.drillholes:
        samples = read_samples(cfg.data, cfg.grades, report)
        xyz = samples[["x", "y", "z"]].to_numpy(float)
        if cfg.domains:
            wf = wireframe_domains(cfg.domains, wireframes, xyz)
            samples["domain"] = sample_domains(samples, code_to_domain, wf, report)
        else:
            samples["domain"] = "all"
        state.results["samples"] = samples
        state.results["domain_points"] = (xyz, samples["domain"].to_numpy(dtype=object))
        state.counts.update(samples=len(samples), holes=int(samples["hole_id"].nunique()))
        _check_placement(state, xyz, samples["domain"].to_numpy(dtype=object), None)
        return

    holes = read_drillholes(cfg.data, cfg.grades, report)
    assays = holes.assays
    mids = 0.5 * (assays["from"].to_numpy(float) + assays["to"].to_numpy(float))
    xyz = desurvey(holes.collars, holes.surveys, assays["hole_id"].to_numpy(), mids)
    if cfg.domains:
        wf_domain = wireframe_domains(cfg.domains, wireframes, xyz) if wireframes else None
        intervals = flag_domains(assays, holes.zones, code_to_domain, wf_domain, report)
    else:
        intervals = assays.assign(domain="all")
    _check_dip_convention(state, holes, code_to_domain, wireframes)
    mids = 0.5 * (intervals["from"].to_numpy(float) + intervals["to"].to_numpy(float))
    ixyz = desurvey(holes.collars, holes.surveys, intervals["hole_id"].to_numpy(), mids)
    state.results["drillholes"] = holes
    state.results["intervals"] = intervals
    state.results["domain_points"] = (ixyz, intervals["domain"].to_numpy(dtype=object))
    state.counts.update(
        holes=len(holes.collars),
        survey_rows=len(holes.surveys),
        assay_rows=len(assays),
        intervals_by_domain=_value_counts(intervals["domain"]),
    )
    _check_placement(
        state, ixyz, intervals["domain"].to_numpy(dtype=object), intervals["hole_id"].to_numpy()
    )


def _check_dip_convention(state: RunState, holes, code_to_domain, wireframes) -> None:
    """Warn when the other dip convention puts the samples where the wireframes or zones are."""
    try:
        from estimator.drillholes.dipcheck import dip_convention_fit
    except ImportError:  # pragma: no cover - the module ships with estimator
        return
    cfg = state.config
    if cfg.data.surveys is None or not (wireframes or code_to_domain):
        return
    text = dip_convention_fit(
        holes.collars, holes.surveys, holes.assays, holes.zones, code_to_domain, wireframes,
        cfg.data.dip, grade=cfg.grades[0],
    )  # fmt: skip
    if text:
        state.report.add(
            Path(cfg.data.surveys).name, None, "", "dip_convention_suspect", text,
            "kept as configured (data.dip): check it",
        )  # fmt: skip
        state.note(text)


def _check_placement(state: RunState, xyz, domain, hole) -> None:
    """Samples against wireframes and topography: nothing inside a wireframe, samples above
    the ground surface."""
    from estimator.blockmodel.fractions import surface_elevation_at

    cfg = state.config
    unit = _unit(cfg)
    from estimator.geometry.mesh import points_inside

    for d in cfg.domains:
        wf = state.results["wireframes"].get(d.name)
        if wf is None or points_inside(wf.vertices, wf.faces, xyz).any():
            continue
        lo, hi = xyz.min(axis=0), xyz.max(axis=0)
        box = ", ".join(f"{a} {b[0]:.6g}..{b[1]:.6g}" for a, b in zip("xyz", wf.bounds.T, strict=True))
        data = ", ".join(f"{a} {p:.6g}..{q:.6g}" for a, p, q in zip("xyz", lo, hi, strict=True))
        text = (
            f"domain {d.name}: no sample lies inside its wireframe {Path(d.wireframe).name} "
            f"({box}; the samples span {data}, {unit}): a wireframe in another coordinate system, "
            "or in other units?"
        )
        state.report.add(Path(d.wireframe).name, None, "", "wireframe_without_samples", text,
                         "its blocks will not be estimated")  # fmt: skip
        state.note(text)
    surface = state.results.get("topography")
    if surface is None:
        return
    top = surface_elevation_at(surface, xyz[:, 0], xyz[:, 1])
    above = np.isfinite(top) & (xyz[:, 2] > top)
    if not above.any():
        return
    if hole is None:
        holes_txt = ""
    else:
        names = pd.Series(hole[above]).astype(str).value_counts().sort_index()
        holes_txt = " (holes " + ", ".join(f"{h}: {n}" for h, n in list(names.items())[:10])
        holes_txt += ", ..." if len(names) > 10 else ""
        holes_txt += ")"
    text = (
        f"{int(above.sum())} samples lie above the topography {surface.source} by up to "
        f"{float((xyz[above, 2] - top[above]).max()):.4g} {unit}{holes_txt}: check the collar "
        "elevations or the surface"
    )
    state.report.add(surface.source, None, "", "above_topography", text,
                     "kept (samples are data; only block volume is clipped)")  # fmt: skip
    state.note(text)


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
        comps = drop_empty_composites(comps, cfg.grades, report, _unit(cfg))
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
    output.write_csv(state.write("composites", "composites.csv"), _public(comps))


def _public(frame: pd.DataFrame) -> pd.DataFrame:
    """A table without the internal ``_file`` / ``_line`` bookkeeping columns."""
    return frame.drop(columns=[c for c in frame.columns if str(c).startswith("_")])


def stage_variograms(state: RunState) -> None:
    """Use explicit models from the config or fit them; write variograms.yaml and plots."""
    from estimator.variography.stage import variography_stage

    cfg = state.config
    comps = state.results["composites"]
    models, tables, figures, notes = variography_stage(cfg, comps, progress=state.progress)
    state.results["models"] = models
    for note in notes:
        state.note(note)
    state.counts["variogram_notes"] = notes
    doc = {dom: {g: {"model": m.to_dict()} for g, m in per.items()} for dom, per in models.items()}
    header = (
        f"# Variogram models of run {cfg.name}: paste under the config's `variography:` key.\n"
        "# ranges = [major, semi-major, minor]; angles = GSLIB [ang1, ang2, ang3] (degrees).\n"
    )
    output.write_yaml(state.write("variograms", "variograms.yaml"), doc, header)
    if tables:
        table = pd.concat(tables, ignore_index=True)
        output.write_csv(state.write("variograms_experimental", "variograms_experimental.csv"), table)
    for name, fig in figures.items():
        output.save_figure(state.write(f"plot_variogram_{name}", f"plots/variogram_{name}.png"), fig)


#: Flag counts -> (report code, what it means and its likely cause, what was done).
FLAG_WORDS = {
    "too_few": (
        "unestimated_too_few_samples",
        "have no {grade} estimate: fewer than min_samples composites lie within every search "
        "pass (blocks far from the drilling)",
        "left NaN (flag 32): not in grade_tonnage.csv; widen the last pass to reach them",
    ),
    "singular": (
        "unestimated_singular_system",
        "have no {grade} estimate: their kriging system is singular (composites at the same "
        "place, or a model without nugget on duplicated samples)",
        "left NaN (flag 16): not in grade_tonnage.csv",
    ),
    "ill_conditioned": (
        "ill_conditioned_system",
        "were kriged from ill-conditioned systems (a Cholesky pivot below {pivot:g} of the sill: "
        "about {digits} of 16 digits lost); the likely cause is a variogram too smooth at short "
        "distance (a gaussian structure without nugget) or samples almost on top of each other",
        "kept, flagged (8); add a nugget or use a spherical structure",
    ),
    "negative": (
        "negative_estimate",
        "have a negative {grade} estimate (lowest {lowest:.4g}): negative kriging weights, "
        "usually composites screened by closer ones along a hole; with little nugget and many "
        "samples per hole they grow",
        "kept, flagged (1): below every cut-off; consider max_per_hole or fewer samples",
    ),
    "above_range": (
        "estimate_above_composites",
        "have a {grade} estimate above the highest composite of the domain ({high:.4g} > "
        "{top:.4g}): negative weights on low-grade composites",
        "kept, flagged (2)",
    ),
    "below_range": (
        "estimate_below_composites",
        "have a {grade} estimate below the lowest composite of the domain ({low:.4g} < "
        "{bottom:.4g}) but not negative: negative weights on high-grade composites",
        "kept, flagged (4)",
    ),
}


def stage_estimate(state: RunState) -> None:
    """Build the block model, clip it by each wireframe and krige every grade."""
    from estimator.estimation import estimate_stage
    from estimator.kriging import _kernels

    cfg = state.config
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EstimationWarning)
        ds, counts = estimate_stage(
            cfg,
            state.results["composites"],
            state.results.get("models", {}),
            state.results.get("wireframes", {}),
            topography=state.results.get("topography"),
            domain_points=state.results.get("domain_points"),
            scheduler=state.client,
            progress=state.progress,
        )
    for w in caught:
        log.warning(str(w.message))
    state.results["blockmodel"] = ds
    state.counts.update(counts)
    unit = _unit(cfg)
    vol = counts["volume_by_domain"]
    cube = f"cubic {unit}" if cfg.data.length_unit else "cubic data units"
    for dom, v in vol.items():
        log.info("  domain %-10s %12s %s in %s blocks", dom, f"{v:,.0f}", cube,
                 f"{counts['blocks_in_domains'][dom]:,}")  # fmt: skip
        if v == 0:
            state.note(f"domain {dom} holds no block volume: its wireframe or rule lies outside "
                       "the block model (block_model.origin, shape)")  # fmt: skip
    has_rule = any(d.wireframe is not None or d.blocks is not None for d in cfg.domains)
    if not has_rule and cfg.data.topography is None:
        state.note(
            f"no wireframe, block rule or topography: the whole grid is estimated, "
            f"{sum(vol.values()):,.0f} {cube} in {counts['blocks']:,} blocks, including any volume "
            "above the ground surface (give data.topography or domains with wireframes)"
        )
    if counts.get("topography_uncovered_area", 0) > 0:
        state.note(
            f"the topography {Path(cfg.data.topography).name} does not cover "
            f"{counts['topography_uncovered_area']:,.0f} square {unit} of the block model: no "
            "volume is removed there"
        )
    pivot = _kernels.ILL_CONDITIONED_PIVOT
    digits = max(0, round(-np.log10(pivot)))
    for dom, per_grade in counts["flags"].items():
        for grade, flags in per_grade.items():
            rng = counts["composite_range"][dom][grade] or [np.nan, np.nan]
            for key, (code, what, action) in FLAG_WORDS.items():
                n = flags.get(key, 0)
                if not n:
                    continue
                text = f"{n} blocks of domain {dom} " + what.format(
                    grade=grade, pivot=pivot, digits=digits,
                    lowest=flags["lowest_estimate"] or np.nan,
                    high=flags["highest_estimate"] or np.nan, top=rng[1],
                    low=flags["lowest_estimate"] or np.nan, bottom=rng[0],
                )  # fmt: skip
                state.report.add("blockmodel.nc", None, None, code, text, action)
                state.note(text)
    path = state.write("blockmodel", "blockmodel.nc")
    ds = ds.assign_attrs(
        title=f"estimator block model of run {cfg.name}",
        run_name=cfg.name,
        estimator_version=__version__,
        config_sha256=output.file_sha256(cfg.source) if cfg.source else "",
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        Conventions="CF-1.8",
        source="estimator (ordinary/simple kriging, IDW or NN of composites)",
    )
    output.write_netcdf(path, ds)


def stage_report(state: RunState) -> None:
    """Grade-tonnage tables at the configured cut-offs (+ plot)."""
    from estimator.reporting import report_stage

    ds = state.results["blockmodel"]
    table, fig = report_stage(state.config, ds)
    state.results["grade_tonnage"] = table
    output.write_csv(state.write("grade_tonnage", "grade_tonnage.csv"), table)
    if fig is not None:
        output.save_figure(state.write("plot_grade_tonnage", "plots/grade_tonnage.png"), fig)


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
    files = [p for p in (d.collars, d.surveys, d.zones, d.samples, d.topography) if p is not None]
    files += [a.path for a in d.assays]
    files += [dom.wireframe for dom in cfg.domains if dom.wireframe is not None]
    if cfg.source is not None:
        files.insert(0, cfg.source)
    return files


def write_data_report(state: RunState) -> pd.DataFrame:
    """Write data_report.csv and return it."""
    frame = state.report.to_frame()
    output.write_csv(state.write("data_report", "data_report.csv"), frame)
    return frame


def _versions() -> dict[str, str]:
    import dask
    import numba
    import scipy
    import xarray

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "xarray": xarray.__version__,
        "dask": dask.__version__,
        "numba": numba.__version__,
    }


def write_run_json(state: RunState, until: str, *, command="run", status="finished", error=None):
    """run.json: resolved config, input hashes, versions, timings, counts, and the SHA-256 of
    every file this run wrote (so a folder mixing files of two runs is recognised)."""
    cfg = state.config
    written = {}
    for rel in output.list_files(state.out):
        if rel == "run.json":
            continue
        written[rel] = output.file_sha256(state.out / rel)
    doc = {
        "name": cfg.name,
        "command": command,
        "status": status,
        "run_id": state.run_id,
        "estimator_version": __version__,
        "finished_stage": until,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": cfg.model_dump(mode="json"),
        "inputs": {str(p): output.file_sha256(p) for p in input_files(cfg) if Path(p).is_file()},
        "versions": _versions(),
        "timings_s": {k: round(v, 3) for k, v in state.timings.items()},
        "counts": state.counts,
        "data_report": state.report.counts(),
        "warnings": state.notes,
        "files": state.files,
        "outputs": written,
    }
    if error is not None:
        doc["error"] = error
    output.write_json(state.out / "run.json", doc)


def with_scheduler(cfg: RunConfig, scheduler: str | None) -> RunConfig:
    """``cfg`` with ``compute.scheduler`` replaced by a checked ``--scheduler`` value."""
    if scheduler is None:
        return cfg
    value = check_scheduler(scheduler, key="--scheduler")
    compute = cfg.compute.model_copy(update={"scheduler": value})
    return cfg.model_copy(update={"compute": compute})


def run(
    cfg: RunConfig,
    *,
    until: str = "report",
    out: str | Path | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> RunState:
    """Run the stages in order up to and including ``until``; write every output.

    Everything that can be checked is checked before the first stage: the output folder, that
    no input would be overwritten, that no other run writes there, and the scheduler (a
    ``tcp://`` address is connected now). The stages write into a staging folder inside the run
    folder; when the run finishes its files replace those of the previous run all at once, so a
    killed or failed run never leaves a folder that mixes two runs. A run that fails in a folder
    holding a finished run leaves that run untouched and puts what it wrote under ``failed/``.

    Parameters
    ----------
    cfg : RunConfig
        The validated configuration.
    until : str
        Last stage to run, one of :data:`STAGES`.
    out : path, optional
        Run folder (default: ``cfg.output.path``).
    scheduler : str, optional
        Overrides ``compute.scheduler``.
    progress : bool
        Show progress bars (the CLI turns them on for terminals).
    """
    from estimator.kriging.parallel import connect

    if until not in STAGES:
        msg = f"--until: unknown stage {until!r}; expected one of {', '.join(STAGES)}"
        raise DataError(msg)
    cfg = with_scheduler(cfg, scheduler)
    folder = Path(out) if out is not None else Path(cfg.output.path)
    what = "--out" if out is not None else "output"
    output.check_output_folder(folder, what=what)
    output.check_no_input_overwritten(folder, input_files(cfg), RUN_FILES, what=what)
    client = (
        connect(cfg.compute.scheduler, cfg.compute.connect_timeout)
        if cfg.estimation is not None and STAGES.index(until) >= STAGES.index("estimate")
        else None
    )
    with contextlib.ExitStack() as stack:
        if client is not None:
            stack.callback(client.close)
        stack.enter_context(output.folder_lock(folder))
        gone = output.remove_leftovers(folder)
        if gone:
            log.info("removed %d temporary file(s) left by an interrupted run", len(gone))
        previous = _previous_run(folder)
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        staging = output.make_staging(folder, run_id)
        state = RunState(
            config=cfg, out=staging, folder=folder, progress=progress, client=client,
            run_id=run_id,
        )  # fmt: skip
        last = STAGES.index(until)
        needs = {"variograms": "estimation", "estimate": "estimation", "report": "estimation"}
        done = None
        try:
            for name in STAGES[: last + 1]:
                section = needs.get(name)
                if section and getattr(cfg, section) is None:
                    log.info("stage %s skipped: no %s section in the config", name, section)
                    break
                log.info("%s ...", STAGE_WORDS[name])
                t0 = time.perf_counter()
                STAGE_FUNCS[name](state)
                check_interrupt()
                state.timings[name] = time.perf_counter() - t0
                log.info("  done in %.2f s", state.timings[name])
                done = name
        except BaseException as err:
            _finish_failed(state, folder, previous, done, err)
            raise
        write_data_report(state)
        write_run_json(state, done or "data")
        replaced = previous["outputs"] if previous else _ours(folder)
        output.publish(staging, folder, remove=[*replaced, "reports", "failed"])
    return state


def _ours(folder: Path) -> list[str]:
    """Run outputs present in ``folder`` (by name), for a folder without a readable run.json."""
    return [n for n in RUN_FILES if (folder / n).exists()]


def _previous_run(folder: Path) -> dict | None:
    """The finished run recorded in ``folder/run.json``, or None."""
    path = folder / "run.json"
    if not path.is_file():
        return None
    try:
        doc = output.read_json(path, "run record")
    except DataError:
        return None
    if doc.get("command", "run") != "run" or doc.get("status", "finished") != "finished":
        return None
    doc.setdefault("outputs", {})
    doc["outputs"] = [*doc["outputs"], "run.json"]
    return doc


def _finish_failed(state: RunState, folder: Path, previous, done, err) -> None:
    """Keep what a failed run wrote (its data report first) without touching a finished run."""
    import shutil

    reason = "interrupted" if isinstance(err, KeyboardInterrupt) else f"{type(err).__name__}: {err}"
    try:
        write_data_report(state)
        write_run_json(state, done or "none", status="failed", error=reason)
        if previous is None:
            output.publish(state.out, folder, remove=[n for n in _ours(folder) if n != "run.json"])
            return
        target = folder / "failed"
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        state.out.rename(target)
        log.warning(
            "the run failed; the finished run in %s is untouched, and what this run wrote "
            "(its data report first) is in %s", folder, target,
        )  # fmt: skip
        state.out = target
    except Exception:  # never hide the original error behind one of ours
        log.exception("could not save the outputs of the failed run")


@contextlib.contextmanager
def _side_folder(folder: Path, what: str, inputs, names):
    """A folder for a command that is not the run (check, intercepts, report)."""
    output.check_output_folder(folder, what=what)
    output.check_no_input_overwritten(folder, inputs, names, what=what)
    meta = folder / "run.json"
    if meta.is_file():
        try:
            doc = output.read_json(meta, "run record")
        except DataError:
            doc = {}
        if doc.get("command", "run") == "run":
            msg = (
                f"{what}: {folder} is the folder of an estimator run; this command writes its "
                "own files and never over a run's: give another folder"
            )
            raise DataError(msg)
    with output.folder_lock(folder):
        output.remove_leftovers(folder)
        yield folder


# ---------------------------------------------------------------------------------------
# other commands
# ---------------------------------------------------------------------------------------
def run_check(cfg: RunConfig, *, out: str | Path | None = None, progress=False) -> RunState:
    """``estimator check``: the data stage; writes the data report in its own folder
    (default ``<output>/check``), never in the run's."""
    folder = Path(out) if out is not None else Path(cfg.output.path) / "check"
    names = ("data_report.csv", "run.json")
    with _side_folder(folder, "--out" if out else "check folder", input_files(cfg), names):
        state = RunState(config=cfg, out=folder, progress=progress)
        try:
            stage_data(state)
        finally:
            write_data_report(state)
        write_run_json(state, "data", command="check")
    return state


def run_intercepts(
    cfg: RunConfig, *, out: str | Path | None = None, tranche: str | None = None
):
    """``estimator intercepts``: the data stage, then the significant-intercept table, in its own
    folder (default ``<output>/intercepts``).

    Returns
    -------
    table : pandas.DataFrame
        ``hole_id, from, to, length, grade, zone, kind``.
    text : str
        The press-release table, its rules underneath.
    path : Path
        Where ``intercepts.csv`` was written.
    """
    from estimator.intercepts import find_intercepts, format_intercepts, holes_in_tranche

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
    folder = Path(out) if out is not None else Path(cfg.output.path) / "intercepts"
    names = ("intercepts.csv", "intercepts.txt", "data_report.csv", "run.json")
    with _side_folder(folder, "--out" if out else "intercepts folder", input_files(cfg), names):
        state = RunState(config=cfg, out=folder)
        try:
            stage_data(state)
        finally:
            write_data_report(state)
        intervals = state.results["intervals"]
        holes = holes_in_tranche(intervals, tranche) if tranche is not None else None
        table = find_intercepts(
            intervals,
            grade,
            cutoff=rules.cutoff,
            min_length=rules.min_length,
            max_dilution=rules.max_dilution,
            including=rules.including,
            including_min_length=rules.including_min_length,
            holes=holes,
        )
        unit = cfg.data.length_unit or "data units"
        label = f"{cfg.data.grade_unit} {grade.capitalize()}" if cfg.data.grade_unit else grade
        text = format_intercepts(table, grade_label=label, unit=unit, rules=rules, tranche=tranche)
        path = output.write_csv(state.write("intercepts", "intercepts.csv"), table)
        output.write_text(state.write("intercepts_text", "intercepts.txt"), text + "\n")
        write_run_json(state, "data", command="intercepts")
    return table, text, path


def verify_run_folder(run_dir: Path) -> dict:
    """The run.json of a finished run whose files are all the ones it wrote; else a DataError."""
    meta_path = run_dir / "run.json"
    if not run_dir.is_dir():
        msg = f"{run_dir}: no such run folder"
        raise DataError(msg)
    if not meta_path.is_file():
        msg = f"{meta_path}: not found; is {run_dir} the folder of a finished `estimator run`?"
        raise DataError(msg)
    meta = output.read_json(meta_path, "run record (run.json)")
    if meta.get("command", "run") != "run":
        msg = f"{run_dir}: run.json was written by `estimator {meta['command']}`, not by a run"
        raise DataError(msg)
    if "outputs" not in meta or "config" not in meta:
        msg = (
            f"{meta_path}: no list of the run's files and their hashes (written by an older "
            "estimator, or not by estimator): run the config again"
        )
        raise DataError(msg)
    if meta.get("status") != "finished":
        msg = (
            f"{run_dir}: the last run in this folder did not finish ({meta.get('status')}: "
            f"{meta.get('error', 'no reason recorded')}); run it again"
        )
        raise DataError(msg)
    if "blockmodel.nc" not in meta["outputs"]:
        msg = (
            f"{run_dir}: this run stopped at stage {meta.get('finished_stage')!r}: it has no block "
            "model to report"
        )
        raise DataError(msg)
    for rel, digest in meta["outputs"].items():
        path = run_dir / rel
        if not path.is_file():
            msg = f"{path}: missing; the run folder is incomplete: run the config again"
            raise DataError(msg)
        if output.file_sha256(path) != digest:
            msg = (
                f"{path}: not the file this run wrote (its SHA-256 differs from run.json): the "
                "folder mixes files of different runs, or the file was changed or truncated; "
                "run the config again"
            )
            raise DataError(msg)
    return meta


def report_label(cutoffs: list[float] | None) -> str:
    """Folder name of a re-report: ``cutoffs-0_0.5_1`` (``cutoffs-config`` without --cutoffs)."""
    if cutoffs is None:
        return "cutoffs-config"
    return "cutoffs-" + "_".join(f"{c:g}" for c in sorted(set(cutoffs)))


def rereport(run_dir: Path, cutoffs: list[float] | None = None, out: str | Path | None = None):
    """``estimator report``: grade-tonnage of an existing block model (no re-kriging).

    Written beside the run's own report, never over it: ``RUN_DIR/reports/cutoffs-.../`` (or
    ``--out``), so the tables of a cut-off study stay side by side.

    Returns
    -------
    table : pandas.DataFrame
    path : Path
        The ``grade_tonnage.csv`` written.
    """
    import xarray as xr

    from estimator.config import parse_config
    from estimator.reporting import report_stage

    run_dir = Path(run_dir)
    meta = verify_run_folder(run_dir)
    raw = dict(meta["config"])
    if cutoffs is not None:
        raw["report"] = {**(raw.get("report") or {}), "cutoffs": list(cutoffs)}
    cfg = parse_config(raw, source=f"{run_dir / 'run.json'}", check_files=False)
    folder = Path(out) if out is not None else run_dir / "reports" / report_label(cutoffs)
    if folder.resolve() == run_dir.resolve():
        msg = f"--out: {folder} is the run folder itself; a re-report is written beside it"
        raise DataError(msg)
    bm_path = run_dir / "blockmodel.nc"
    try:
        with xr.open_dataset(bm_path, engine="h5netcdf") as ds:
            ds = ds.load()
    except Exception as err:
        msg = f"{bm_path}: cannot be read as a block model ({type(err).__name__}: {err})"
        raise DataError(msg) from None
    table, fig = report_stage(cfg, ds)
    names = ("grade_tonnage.csv", "report.json", "plots")
    with _side_folder(folder, "--out" if out else "report folder", [], names):
        path = output.write_csv(folder / "grade_tonnage.csv", table)
        if fig is not None:
            output.save_figure(folder / "plots" / "grade_tonnage.png", fig)
        output.write_json(
            folder / "report.json",
            {
                "command": "report",
                "run": str(run_dir.resolve()),
                "run_id": meta.get("run_id"),
                "blockmodel_sha256": meta["outputs"]["blockmodel.nc"],
                "cutoffs": cfg.report.cutoffs,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
    return table, path
