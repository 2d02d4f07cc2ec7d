"""The stages of a run (SPEC section 4), as functions of declared inputs.

Each stage takes a :class:`StageContext`: a view of the config sections it declares (reading
another raises), its input artefacts from earlier stages, and a data report, counts and notes of
its own; it returns its output artefacts as plain objects. It touches no file: the orchestrator
(:mod:`estimator.pipeline`) loads and persists artefacts through :mod:`estimator.io`.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from estimator import __version__
from estimator.datareport import DataReport
from estimator.errors import DataError, EstimationWarning

log = logging.getLogger(__name__)


class ConfigView:
    """The config as a stage may read it: only the top-level sections it declares.

    Reading any other section raises :class:`AttributeError` naming the stage, so a stage
    cannot depend on a section its declaration (and so its input hash) leaves out.
    """

    _METHODS: ClassVar[dict[str, str]] = {"domain_names": "domains", "domain": "domains"}

    def __init__(self, cfg, sections, stage: str):
        object.__setattr__(self, "_cfg", cfg)
        object.__setattr__(self, "_allowed", frozenset(sections))
        object.__setattr__(self, "_stage", stage)

    def __getattr__(self, name: str):
        need = self._METHODS.get(name, name)
        if need not in self._allowed:
            msg = (
                f"stage {self._stage!r} reads config section {need!r} but does not declare it "
                f"(declared: {', '.join(sorted(self._allowed))})"
            )
            raise AttributeError(msg)
        return getattr(self._cfg, name)

    def __setattr__(self, name, value):
        raise AttributeError("the config is read-only")


class Inputs(Mapping):
    """Input artefacts, each loaded on first use (a reused stage's files are read only if a
    later stage needs them)."""

    def __init__(self, loaders: Mapping[str, Callable[[], Any]]):
        self._loaders = dict(loaders)
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name):
        if name not in self._cache:
            self._cache[name] = self._loaders[name]()
        return self._cache[name]

    def __iter__(self):
        return iter(self._loaders)

    def __len__(self):
        return len(self._loaders)


@dataclass
class StageContext:
    """What a stage gets: its config view, inputs and the places to report what it finds."""

    config: Any
    inputs: Mapping[str, Any]
    resources: Mapping[str, Any] = field(default_factory=dict)
    report: DataReport = field(default_factory=DataReport)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    progress: bool = False
    client: Any = None
    work: Path | None = None
    input_hash: str = ""

    def note(self, text: str) -> None:
        """A warning for the geologist: logged now, kept in run.json."""
        log.warning(text)
        self.notes.append(text)

    def get(self, name: str, default=None):
        """An input artefact, or ``default`` when the run has none of that name."""
        return self.inputs.get(name, default)


def _unit(cfg) -> str:
    return cfg.data.length_unit or "data units"


# ---------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------
def stage_data(ctx: StageContext) -> dict:
    """Load and validate the tables, desurvey them and flag each interval's domain."""
    from estimator.domains import flag_domains, sample_domains, wireframe_domains
    from estimator.drillholes.desurvey import desurvey
    from estimator.io.drillholes import read_drillholes, read_samples

    cfg = ctx.config
    report = ctx.report
    wireframes = ctx.resources["wireframes"]

    code_to_domain = {c: d.name for d in cfg.domains for c in d.zone_codes}
    if not cfg.data.drillholes:
        samples = read_samples(cfg.data, cfg.grades, report)
        xyz = samples[["x", "y", "z"]].to_numpy(float)
        if cfg.domains:
            wf = wireframe_domains(cfg.domains, wireframes, xyz)
            samples["domain"] = sample_domains(samples, code_to_domain, wf, report)
        else:
            samples["domain"] = "all"
        ctx.counts.update(samples=len(samples), holes=int(samples["hole_id"].nunique()))
        _check_placement(ctx, xyz, None)
        return {"samples": samples}

    holes = read_drillholes(cfg.data, cfg.grades, report)
    assays = holes.assays
    mids = 0.5 * (assays["from"].to_numpy(float) + assays["to"].to_numpy(float))
    xyz = desurvey(holes.collars, holes.surveys, assays["hole_id"].to_numpy(), mids)
    if cfg.domains:
        wf_domain = wireframe_domains(cfg.domains, wireframes, xyz) if wireframes else None
        intervals = flag_domains(assays, holes.zones, code_to_domain, wf_domain, report)
    else:
        intervals = assays.assign(domain="all")
    _check_dip_convention(ctx, holes, code_to_domain, wireframes)
    mids = 0.5 * (intervals["from"].to_numpy(float) + intervals["to"].to_numpy(float))
    ixyz = desurvey(holes.collars, holes.surveys, intervals["hole_id"].to_numpy(), mids)
    intervals = intervals.assign(x=ixyz[:, 0], y=ixyz[:, 1], z=ixyz[:, 2])
    ctx.counts.update(
        holes=len(holes.collars),
        survey_rows=len(holes.surveys),
        assay_rows=len(assays),
        intervals_by_domain=_value_counts(intervals["domain"]),
    )
    _check_placement(ctx, ixyz, intervals["hole_id"].to_numpy())
    return {"holes": holes, "intervals": intervals}


def _check_dip_convention(ctx: StageContext, holes, code_to_domain, wireframes) -> None:
    """Warn when the other dip convention puts the samples where the wireframes or zones are."""
    try:
        from estimator.drillholes.dipcheck import dip_convention_fit
    except ImportError:  # pragma: no cover - the module ships with estimator
        return
    cfg = ctx.config
    if cfg.data.surveys is None or not (wireframes or code_to_domain):
        return
    text = dip_convention_fit(
        holes.collars, holes.surveys, holes.assays, holes.zones, code_to_domain, wireframes,
        cfg.data.dip, grade=cfg.grades[0],
    )  # fmt: skip
    if text:
        ctx.report.add(
            Path(cfg.data.surveys).name, None, "", "dip_convention_suspect", text,
            "kept as configured (data.dip): check it",
        )  # fmt: skip
        ctx.note(text)


def _check_placement(ctx: StageContext, xyz, hole) -> None:
    """Samples against wireframes and topography: nothing inside a wireframe, samples above
    the ground surface."""
    from estimator.blockmodel.fractions import surface_elevation_at

    cfg = ctx.config
    unit = _unit(cfg)
    from estimator.geometry.mesh import points_inside

    for d in cfg.domains:
        wf = ctx.resources["wireframes"].get(d.name)
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
        ctx.report.add(Path(d.wireframe).name, None, "", "wireframe_without_samples", text,
                         "its blocks will not be estimated")  # fmt: skip
        ctx.note(text)
    surface = ctx.resources["topography"]
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
    ctx.report.add(surface.source, None, "", "above_topography", text,
                     "kept (samples are data; only block volume is clipped)")  # fmt: skip
    ctx.note(text)


def stage_composites(ctx: StageContext) -> dict:
    """Composite within each domain, place composites by desurvey, apply caps."""
    from estimator.capping import apply_caps
    from estimator.compositing import composite, drop_coincident, drop_empty_composites
    from estimator.drillholes.desurvey import desurvey

    cfg = ctx.config
    report = ctx.report
    if ctx.get("samples") is not None:
        comps = ctx.inputs["samples"]
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
        holes = ctx.inputs["holes"]
        intervals = ctx.inputs["intervals"]
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
    raw = comps
    comps = apply_caps(comps, cfg.capping, report)
    ctx.counts["composites"] = len(comps)
    ctx.counts["composites_by_domain"] = _value_counts(comps["domain"])
    files, weights = _composite_analysis(ctx, raw, comps)
    return {"composites": _public(comps), "composite_analysis": files,
            "declustering_weights": weights}  # fmt: skip


def _composite_analysis(ctx: StageContext, raw: pd.DataFrame, comps: pd.DataFrame):
    """Capping analysis of the uncapped composites and cell declustering of the capped ones:
    ``analysis/*.csv`` and ``plots/capping_*``, ``plots/declustering_*``, and the weights."""
    from estimator.analysis import capping_tables, declustering_tables

    cfg = ctx.config
    unit = cfg.data.grade_unit or ""
    files: dict[str, Any] = {}
    if not len(comps):
        return files, None
    table, figures = capping_tables(
        raw, cfg.grades, cfg.capping, percentiles=cfg.capping_analysis.percentiles,
        cv_target=cfg.capping_analysis.cv_target, unit=unit, note=ctx.note,
        plots=cfg.capping_analysis.plots,
    )  # fmt: skip
    if len(table):
        files["analysis/capping.csv"] = table
    if cfg.capping_analysis.plots:
        files |= {f"plots/{k}.png": fig for k, fig in figures.items()}
    grade = (cfg.declustering.grade or cfg.grades[0]).lower()
    sweep, weights, figures = declustering_tables(
        comps, grade, cfg.declustering, unit=unit, length_unit=cfg.data.length_unit or "",
        note=ctx.note, plots=cfg.declustering.plots,
    )  # fmt: skip
    files["analysis/declustering.csv"] = sweep
    if cfg.declustering.plots:
        files |= {f"plots/{k}.png": fig for k, fig in figures.items()}
    chosen = sweep[sweep["chosen"]]
    ctx.counts["declustering"] = {
        r.domain: {"cell_size": r.cell_size, "declustered_mean": r.declustered_mean,
                   "naive_mean": r.naive_mean}
        for r in chosen.itertuples(index=False)
    }  # fmt: skip
    return files, weights


def _public(frame: pd.DataFrame) -> pd.DataFrame:
    """A table without the internal ``_file`` / ``_line`` bookkeeping columns."""
    return frame.drop(columns=[c for c in frame.columns if str(c).startswith("_")])


def stage_variograms(ctx: StageContext) -> dict:
    """Use explicit models from the config or fit them; write variograms.yaml and plots."""
    from estimator.variography.stage import variography_stage

    cfg = ctx.config
    comps = ctx.inputs["composites"]
    models, tables, figures, notes = variography_stage(cfg, comps, progress=ctx.progress)
    for note in notes:
        ctx.note(note)
    ctx.counts["variogram_notes"] = notes
    table = pd.concat(tables, ignore_index=True) if tables else None
    return {"models": models, "variogram_table": table, "variogram_plots": figures}


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


def stage_estimate(ctx: StageContext) -> dict:
    """Build the block model, clip it by each wireframe and krige every grade."""
    from estimator.kriging import _kernels
    from estimator.kriging.chunked import ChunkPlan, estimate_to_store

    cfg = ctx.config
    points = ctx.get("intervals")
    if points is None:
        points = ctx.get("samples")
    plan = ChunkPlan.from_config(
        cfg,
        ctx.inputs["composites"],
        ctx.inputs["models"],
        ctx.resources["wireframes"],
        topography=ctx.resources["topography"],
        domain_points=domain_points(points),
    )
    previous, why_not = None, None
    if ctx.resources.get("previous_estimate") is not None:
        previous, why_not = ctx.resources["previous_estimate"]()
    weights = ctx.resources.get("weights") or {}
    if previous is not None and weights.get("from"):
        kept = Path(weights["from"]) / "base.zarr"
        if kept.is_dir():  # the base's own store, read chunk by chunk (no NetCDF read)
            previous = type(previous)(previous.plan, kept)
    attrs = {
        "title": f"estimator block model of run {cfg.name}",
        "run_name": cfg.name,
        "estimator_version": __version__,
        "config_sha256": ctx.resources.get("config_sha256", ""),
        "estimate_input_sha256": ctx.input_hash,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "Conventions": "CF-1.8",
        "source": "estimator (ordinary/simple kriging, IDW or NN of composites)",
    }
    store_path = ctx.work / "blockmodel.zarr"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EstimationWarning)
        store, counts = estimate_to_store(
            plan,
            store_path,
            ctx.input_hash,
            scheduler=ctx.client if ctx.client is not None else cfg.compute.scheduler,
            num_workers=cfg.compute.workers,
            security=cfg.compute.security,
            connect_timeout=cfg.compute.connect_timeout,
            progress=ctx.progress,
            attrs=attrs,
            previous=previous if not weights.get("from") else None,
            keep_weights=weights.get("keep"),
            weights_from=(previous, weights["from"]) if previous and weights.get("from") else None,
        )
    for w in caught:
        log.warning(str(w.message))
    smoothing = cfg.classification.smoothing if cfg.classification is not None else None
    if smoothing is not None and plan.class_grade is not None:
        from estimator.kriging.chunked import smooth_store

        counts["class_smoothing"] = smooth_store(store, plan, smoothing.min_blocks)
        log.info("  classes smoothed: %d isolated group(s) of fewer than %d blocks, %d blocks "
                 "changed class", counts["class_smoothing"]["groups"], smoothing.min_blocks,
                 counts["class_smoothing"]["blocks"])  # fmt: skip
    if weights.get("keep"):  # a study's base: its variants read this store beside the weights
        from estimator.io.output import copy_path, remove_folder

        kept = Path(weights["keep"]) / "base.zarr"
        remove_folder(kept)
        copy_path(store_path, kept)
    if why_not is not None:
        counts["update"] = {"reused": False, "reason": why_not}
    _log_update(counts.get("update"))
    chunks = counts.pop("chunks", {})
    if chunks.get("reused"):
        log.info("  %d of %d chunks kept from an interrupted run", chunks["reused"],
                 chunks["planned"])  # fmt: skip
    ctx.counts.update(counts)
    unit = _unit(cfg)
    vol = counts["volume_by_domain"]
    cube = f"cubic {unit}" if cfg.data.length_unit else "cubic data units"
    for dom, v in vol.items():
        log.info("  domain %-10s %12s %s in %s blocks", dom, f"{v:,.0f}", cube,
                 f"{counts['blocks_in_domains'][dom]:,}")  # fmt: skip
        if v == 0:
            ctx.note(f"domain {dom} holds no block volume: its wireframe or rule lies outside "
                       "the block model (block_model.origin, shape)")  # fmt: skip
    has_rule = any(d.wireframe is not None or d.blocks is not None for d in cfg.domains)
    if not has_rule and cfg.data.topography is None:
        ctx.note(
            f"no wireframe, block rule or topography: the whole grid is estimated, "
            f"{sum(vol.values()):,.0f} {cube} in {counts['blocks']:,} blocks, including any volume "
            "above the ground surface (give data.topography or domains with wireframes)"
        )
    if counts.get("topography_uncovered_area", 0) > 0:
        ctx.note(
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
                ctx.report.add("blockmodel", None, None, code, text, action)
                ctx.note(text)
    return {"blockmodel": store_path}


def stage_validation(ctx: StageContext) -> dict:
    """The validation pack of every grade: bias against the declustered composites and a
    nearest-neighbour model, swaths, cross-validation, plan and section, distances by class."""
    from estimator.estimation import search_passes
    from estimator.kriging.parallel import _per
    from estimator.validation_pack import validation_pack

    cfg = ctx.config
    settings = cfg.validation
    if not settings.enabled:
        log.info("  validation pack not made (validation.enabled: false)")
        return {"validation_pack": None}
    ds = ctx.inputs["blockmodel"]
    n_blocks = int(np.prod([ds.sizes[d] for d in ("domain", "z", "y", "x")]))
    if n_blocks > settings.max_blocks:
        ctx.note(
            f"validation pack not made: the block model has {n_blocks:,} blocks x domains, above "
            f"validation.max_blocks ({settings.max_blocks:,}); raise it to validate in memory"
        )
        return {"validation_pack": None}
    ds = ds.load()
    comps = ctx.inputs["composites"]
    weights_table = ctx.get("declustering_weights")
    weights = None
    if weights_table is not None and len(weights_table) == len(comps):
        weights = weights_table["weight"].to_numpy(float)
        weights = np.where(np.isfinite(weights), weights, 1.0)
    passes = search_passes(cfg)
    # constant densities give tonnes per swath; a density estimated like a grade is left out
    density = ({d.name: d.density for d in cfg.domains}
               if cfg.domains and all(isinstance(d.density, float) for d in cfg.domains)
               else None)  # fmt: skip
    files: dict[str, Any] = {}
    summaries = []
    for g in cfg.grades:
        sk_mean = (
            {d: _per(cfg.estimation.sk_mean, d, g, "sk_mean") for d in cfg.domain_names}
            if cfg.estimation.method == "sk" else None
        )  # as the estimate: simple kriging's mean per domain and grade
        pack = validation_pack(
            ds, comps, g, ctx.inputs["models"], passes, weights=weights, density=density,
            swath_widths=settings.swath_width, method=cfg.estimation.method,
            leave="hole" if settings.cross_validation == "none" else settings.cross_validation,
            sk_mean=sk_mean,
            cross_validate=settings.cross_validation != "none",
        )  # fmt: skip
        files |= {f"validation/{k}.csv": t for k, t in pack.tables().items()}
        for k, fig in pack.figures.items():
            name = k.replace("swaths_", "swath_") if k.startswith("swaths_") else k
            files[f"plots/{name}_{g}.png"] = fig
        if pack.cross_validation_summary:
            row = {k: v for k, v in pack.cross_validation_summary.items() if not isinstance(v, dict)}
            summaries.append({"grade": g, "leave": settings.cross_validation, **row})
        bias = pack.global_bias
        ctx.counts.setdefault("validation", {})[g] = {
            str(r["domain"]): {k: (float(r[k]) if np.isfinite(r[k]) else None)
                               for k in r.index if "bias" in str(k)}
            for _, r in bias.iterrows()
        }  # fmt: skip
    if summaries:
        files["validation/cross_validation_summary.csv"] = pd.DataFrame(summaries)
    return {"validation_pack": files}


def domain_points(points: pd.DataFrame | None):
    """``(xyz, domain)`` of the logged intervals or samples, for block rules (or None)."""
    if points is None:
        return None
    return points[["x", "y", "z"]].to_numpy(float), points["domain"].to_numpy(dtype=object)


def _log_update(info: dict | None) -> None:
    """Say what an update of the block model kept and why."""
    if not info:
        return
    if not info.get("reused"):
        log.info("  every block estimated: %s", info.get("reason"))
        return
    if info.get("reweighted"):
        n = sum(v["copied"] for per in info["blocks"].values() for v in per.values())
        log.info("  %s block estimates recomputed from the base run's kriging weights, no "
                 "kriging (%s)", f"{n:,}", info.get("reason"))  # fmt: skip
        return
    est = sum(v["estimated"] for per in info["blocks"].values() for v in per.values())
    kept = sum(v["copied"] for per in info["blocks"].values() for v in per.values())
    total = est + kept
    log.info(
        "  update: %s of %s block estimates redone (%.1f%%), %s kept from the previous run; %s",
        f"{est:,}", f"{total:,}", 100.0 * est / total if total else 0.0, f"{kept:,}",
        info.get("reason"),
    )  # fmt: skip


def stage_report(ctx: StageContext) -> dict:
    """Grade-tonnage tables at the configured cut-offs (+ plot)."""
    from estimator.reporting import report_stage

    cfg = ctx.config
    ds = ctx.inputs["blockmodel"]
    table, fig = report_stage(cfg, ds)
    statement = None
    if cfg.report.statement is not None:
        from estimator.analysis import resource_statement

        classes = [c.name for c in cfg.classification.classes] if cfg.classification else None
        grade = (cfg.report.grade or cfg.grades[0]).lower()
        frame, text = resource_statement(table, cfg.report.statement, classes, grade,
                                         cfg.data.grade_unit)  # fmt: skip
        statement = {"resource_statement.csv": frame, "resource_statement.md": text}
    return {"grade_tonnage": table, "grade_tonnage_plot": fig, "resource_statement": statement}


def _value_counts(series: pd.Series) -> dict[str, int]:
    vc = series.astype(str).value_counts(sort=False)
    return {str(k): int(v) for k, v in sorted(vc.items())}
