"""The one orchestrator: which stage runs when, what it reads, and what is reused.

Stages (SPEC section 4), in order: ``data`` (load, validate, desurvey, flag domains),
``composites``, ``variograms``, ``estimate``, ``report``. :data:`STAGE_TABLE` declares, for each,
the config keys it reads (hashed), the artefacts of earlier stages it takes and the artefacts it
makes; the stage functions (:mod:`estimator.stages`) see nothing else. This module alone decides
the order, loads and persists artefacts through :mod:`estimator.io`, and records in ``run.json``
each stage's input hash (declared config keys with input files by content, upstream artefact
hashes, estimator version) and its files' SHA-256. A stage whose input hash is unchanged and
whose files are intact is reused from the run folder, not recomputed.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from estimator import __version__
from estimator.config import RunConfig, check_scheduler
from estimator.datareport import DataReport
from estimator.errors import DataError
from estimator.interrupt import check as check_interrupt
from estimator.io import artefacts as art
from estimator.io import output
from estimator.provenance import config_document, input_hash, project, what_changed
from estimator.stages import (
    ConfigView,
    Inputs,
    StageContext,
    stage_composites,
    stage_data,
    stage_estimate,
    stage_report,
    stage_validation,
    stage_variograms,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One stage: its function and what it depends on.

    ``config``: config key paths whose values decide its result (hashed; ``a.b[*].c`` for a field
    of every list item); ``reads``: sections it reads that do not change its result (``name``
    titles, ``compute`` only decides where it runs); ``inputs``: artefacts of earlier stages;
    ``outputs``: artefacts it makes.
    """

    name: str
    func: Callable[[StageContext], dict]
    words: str
    config: tuple[str, ...]
    reads: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    needs: str | None = None  # a config section without which the stage does not run

    @property
    def sections(self) -> set[str]:
        """Top-level config sections the stage may read."""
        return {p.split(".")[0].removesuffix("[*]") for p in (*self.config, *self.reads)}


STAGE_TABLE = (
    Stage(
        "data", stage_data, "Reading, validating and desurveying the data; flagging domains",
        config=("data", "grades", "domains[*].name", "domains[*].wireframe", "domains[*].zone_code"),
        outputs=("holes", "intervals", "samples"),
    ),
    Stage(
        "composites", stage_composites, "Compositing within domains; capping",
        config=("composites", "capping", "capping_analysis", "declustering", "grades",
                "data.assays", "data.length_unit", "data.grade_unit"),
        inputs=("holes", "intervals", "samples"),
        outputs=("composites", "composite_analysis", "declustering_weights"),
    ),
    Stage(
        "variograms", stage_variograms, "Variography",
        config=("variography", "grades", "domains[*].name", "data.length_unit"),
        reads=("name",),
        inputs=("composites",),
        outputs=("models", "variogram_table", "variogram_plots"),
        needs="estimation",
    ),
    Stage(
        "estimate", stage_estimate, "Building the block model and estimating blocks",
        config=(
            "block_model", "estimation", "classification", "grades", "domains[*].name",
            "domains[*].wireframe", "domains[*].blocks", "data.topography", "data.length_unit",
            "data.grade_unit", "data.assays[*].tranche", "data.assays[*].path", "data.samples",
            "output.format", "output.netcdf_max_blocks",
        ),
        reads=("name", "compute"),
        inputs=("composites", "models", "intervals", "samples"),
        outputs=("blockmodel",),
        needs="estimation",
    ),
    Stage(
        "validation", stage_validation, "Validation pack",
        config=(
            "validation", "estimation", "grades", "domains[*].name", "domains[*].density",
            "data.grade_unit", "data.length_unit", "classification.classes[*].name",
        ),
        inputs=("blockmodel", "composites", "models", "declustering_weights"),
        outputs=("validation_pack",),
        needs="estimation",
    ),
    Stage(
        "report", stage_report, "Grade-tonnage report",
        config=(
            "report", "grades", "domains[*].name", "domains[*].density", "data.grade_unit",
            "classification.classes[*].name",
        ),
        reads=("name",),
        inputs=("blockmodel",),
        outputs=("grade_tonnage", "grade_tonnage_plot", "resource_statement"),
        needs="estimation",
    ),
)  # fmt: skip
STAGES = tuple(s.name for s in STAGE_TABLE)


def stage_table_markdown() -> str:
    """The stage table as docs/DESIGN.md shows it (a test keeps the two the same)."""
    lines = [
        "| stage | config keys (hashed) | also reads | inputs | outputs |",
        "|---|---|---|---|---|",
    ]
    for s in STAGE_TABLE:
        cells = [s.config, s.reads, s.inputs, s.outputs]
        text = [", ".join(f"`{c}`" for c in cell) or "-" for cell in cells]
        lines.append(f"| `{s.name}` | " + " | ".join(text) + " |")
    return "\n".join(lines)
STAGE_WORDS = {s.name: s.words for s in STAGE_TABLE}
#: What ``estimator update`` adds to a run folder (replaced by the next run or update).
UPDATE_FILES = ("previous", "diff", "release")
#: Everything a run writes in its folder (relative paths); only these are ever replaced.
RUN_FILES = (
    "run.json",
    "data_report.csv",
    "composites.csv",
    "variograms.yaml",
    "variograms_experimental.csv",
    "blockmodel.nc",
    "blockmodel.zarr",
    "grade_tonnage.csv",
    "resource_statement.csv",
    "resource_statement.md",
    "report.html",
    "analysis",
    "validation",
    "exports",
    "plots",
    "artefacts",
    "reports",
    "failed",
    *UPDATE_FILES,
)


# ---------------------------------------------------------------------------------------
# artefacts on disk
# ---------------------------------------------------------------------------------------
def _table(name: str) -> tuple[str, str]:
    """A table artefact's CSV and its dtypes sidecar (relative paths)."""
    return name, f"artefacts/{Path(name).name}.dtypes.json"


#: Artefacts that are sets of files: ``{relative path: table, figure or text}``.
FILE_SETS = ("composite_analysis", "validation_pack", "resource_statement")


def persist(
    name: str, obj: Any, folder: Path, cfg: RunConfig, memo: dict | None = None
) -> list[str]:
    """Write artefact ``name`` under ``folder``; return the relative paths written.

    ``memo`` receives the artefact as later stages of this run should see it when writing it
    already gave it in that form (the NetCDF block model: the Dataset just written).
    """
    written: list[str] = []

    def table(rel, frame):
        csv, side = _table(rel)
        art.save_table(folder / csv, frame, sidecar=folder / side)
        written.extend([csv, side])

    if obj is None:
        return written
    if name == "holes":
        table("artefacts/collars.csv", obj.collars)
        table("artefacts/surveys.csv", obj.surveys)
    elif name in ("intervals", "samples"):
        table(f"artefacts/{name}.csv", obj)
    elif name == "composites":
        table("composites.csv", obj)
    elif name == "models":
        header = (
            "# Variogram models: paste under the config's `variography:` key.\n"
            "# ranges = [major, semi-major, minor]; angles = GSLIB [ang1, ang2, ang3] (degrees).\n"
        )
        art.write_models(folder / "variograms.yaml", obj, header)
        written.append("variograms.yaml")
    elif name == "variogram_table":
        output.write_csv(folder / "variograms_experimental.csv", obj)
        written.append("variograms_experimental.csv")
    elif name == "variogram_plots":
        for key, fig in obj.items():
            output.save_figure(folder / f"plots/variogram_{key}.png", fig)
            written.append(f"plots/variogram_{key}.png")
    elif name == "blockmodel":
        from estimator.io import blockstore

        if cfg.block_model_format() == "zarr":
            output.move_folder(obj, folder / "blockmodel.zarr")
            written.append("blockmodel.zarr")
        else:
            ds = blockstore.to_netcdf(obj, folder / "blockmodel.nc")
            written.append("blockmodel.nc")
            if memo is not None:
                memo[name] = ds
        output.remove_folder(Path(obj).parent)
    elif name == "declustering_weights":
        table("analysis/declustering_weights.csv", obj)
    elif name in FILE_SETS:  # {relative path: table, figure or text}
        for rel in sorted(obj):
            item = obj[rel]
            if isinstance(item, pd.DataFrame):
                output.write_csv(folder / rel, item)
            elif isinstance(item, str):
                output.write_text(folder / rel, item)
            else:
                output.save_figure(folder / rel, item)
            written.append(rel)
    elif name == "grade_tonnage":
        output.write_csv(folder / "grade_tonnage.csv", obj)
        written.append("grade_tonnage.csv")
    elif name == "grade_tonnage_plot":
        output.save_figure(folder / "plots/grade_tonnage.png", obj)
        written.append("plots/grade_tonnage.png")
    else:  # pragma: no cover - a stage returned an artefact nobody declared
        msg = f"no way to persist artefact {name!r}"
        raise ValueError(msg)
    return written


def load(name: str, files: list[str], folder: Path) -> Any:
    """Read artefact ``name`` back from its files (``files`` as :func:`persist` listed them)."""
    from estimator.drillholes.tables import Drillholes

    def table(rel):
        csv, side = _table(rel)
        return art.load_table(folder / csv, sidecar=folder / side)

    if name == "holes":
        return Drillholes(
            collars=table("artefacts/collars.csv"),
            surveys=table("artefacts/surveys.csv"),
            assays=None,
            zones=None,
            grades=(),
        )
    if name in ("intervals", "samples"):
        return table(f"artefacts/{name}.csv")
    if name == "composites":
        return table("composites.csv")
    if name == "models":
        return art.load_models(folder / "variograms.yaml")
    if name == "declustering_weights":
        return table("analysis/declustering_weights.csv")
    if name == "blockmodel":
        if (folder / "blockmodel.zarr").is_dir() and "blockmodel.nc" not in files:
            from estimator.io.blockstore import open_block_model

            return open_block_model(folder / "blockmodel.zarr")
        return art.open_blockmodel(folder / "blockmodel.nc")
    msg = f"artefact {name!r} is not read back by later stages"
    raise ValueError(msg)


# ---------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------
@dataclass
class RunState:
    """What a run did: per stage its status and why, counts, notes, timings and files."""

    config: RunConfig
    folder: Path
    out: Path
    run_id: str = ""
    report: DataReport = field(default_factory=DataReport)
    stages: dict[str, dict] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # output key -> relative path
    outputs: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    results: dict[str, Any] = field(default_factory=dict)
    progress: bool = False
    client: Any = None
    source: Path | None = None  # the run whose stages could be reused
    origin: dict | None = None  # its run.json

    def note(self, text: str) -> None:
        """A warning for the geologist: logged now and repeated in run.json."""
        log.warning(text)
        self.notes.append(text)


class _FileHashes:
    """SHA-256 of input files, each read once per run."""

    def __init__(self):
        self._cache: dict[str, str] = {}

    def __call__(self, path) -> str:
        key = str(path)
        if key not in self._cache:
            p = Path(path)
            self._cache[key] = output.file_sha256(p) if p.is_file() else "missing"
        return self._cache[key]


def _resources(cfg: RunConfig, report: DataReport, cache: dict) -> dict:
    """Input files the stages use besides tables: wireframes and the topography, loaded once a
    run (their report rows go to the data stage, which checks them)."""
    from estimator.io.wireframe import load_wireframe

    if "wireframes" not in cache:
        cache["wireframes"] = {
            d.name: load_wireframe(d.wireframe, report=report)
            for d in cfg.domains
            if d.wireframe is not None
        }
        cache["topography"] = None
        if cfg.data.topography is not None:
            from estimator.io.topography import load_topography

            cache["topography"] = load_topography(cfg.data.topography, report=report)
        cache["config_sha256"] = output.file_sha256(cfg.source) if cfg.source else ""
    return cache


def _key_files(keys: list[str]) -> list[str]:
    return [k for k in keys if not k.startswith("artefacts/")]


def run(
    cfg: RunConfig,
    *,
    until: str = "report",
    out: str | Path | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    reuse: bool = True,
    client: Any = None,
    source: str | Path | None = None,
    keep_previous: bool = False,
    incremental: bool = False,
    weights: dict | None = None,
) -> RunState:
    """Run the stages in order up to and including ``until``; write every output.

    Everything that can be checked is checked before the first stage: the output folder, that
    no input would be overwritten, that no other run writes there, and the scheduler (a
    ``tcp://`` address is connected now). A stage whose input hash equals the one the folder's
    finished run recorded, and whose files are intact, is reused; the others run and write into
    a staging folder, published when the run finishes, so a killed or failed run never leaves a
    folder that mixes two runs. A run that fails in a folder holding a finished run leaves that
    run untouched and puts what it wrote under ``failed/``.

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
    reuse : bool
        Reuse unchanged stages of the folder's previous run (default); False recomputes all.
    client : distributed.Client, optional
        A client already connected (a batch of runs shares one); overrides the scheduler.
    source : path, optional
        The finished run whose stages may be reused (default: the run folder itself); reused
        files from another folder are copied.
    keep_previous : bool
        Keep the run folder's previous run, complete, in ``previous/`` (hard links where the
        files did not change), for ``estimator update``'s diff.
    weights : dict, optional
        Kriging weights of a sensitivity study: ``{"keep": folder}`` (the base run keeps its
        weights there) or ``{"from": folder}`` (a variant applies the base's weights, kept in
        ``folder``, when only sample values differ; the base is ``source``).
    incremental : bool
        Re-estimate only the blocks a change of samples can reach (``estimator update``).
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
    own = client is None
    if own:
        client = (
            connect(
                cfg.compute.scheduler,
                cfg.compute.connect_timeout,
                security=cfg.compute.security,
                workers=cfg.compute.workers,
            )
            if cfg.estimation is not None and STAGES.index(until) >= STAGES.index("estimate")
            else None
        )
    with contextlib.ExitStack() as stack:
        if client is not None and own:
            stack.callback(client.close)
        stack.enter_context(output.folder_lock(folder))
        gone = output.remove_leftovers(folder)
        if gone:
            log.info("removed %d temporary file(s) left by an interrupted run", len(gone))
        source = Path(source) if source is not None else folder
        previous = _previous_run(folder)
        origin = previous if source == folder else _previous_run(source)
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        staging = output.make_staging(folder, run_id)
        state = RunState(
            config=cfg, folder=folder, out=staging, run_id=run_id, progress=progress,
            client=client,
        )  # fmt: skip
        state.source = source
        state.origin = origin
        done = None
        try:
            done = _run_stages(state, origin if reuse else None, until, source, incremental,
                               weights)  # fmt: skip
        except BaseException as err:
            _finish_failed(state, folder, previous, done, err)
            raise
        write_data_report(state)
        write_run_json(state, done or "data")
        exported = _write_exports(state, done)
        if exported:
            write_run_json(state, done or "data")
        if _write_page(state.out):
            state.outputs["report.html"] = output.file_sha256(state.out / "report.html")
            state.files["report"] = "report.html"
            write_run_json(state, done or "data")
        old = list(previous["outputs"]) if previous else _ours(folder)
        keep = set(state.outputs)
        snapshot = None
        if keep_previous and previous is not None:
            snapshot = output.snapshot(folder, [*previous["outputs"]], folder / ".previous.tmp")
        output.publish(
            staging,
            folder,
            remove=[n for n in old if n not in keep] + ["reports", "failed", *UPDATE_FILES],
        )
        if snapshot is not None:
            output.move_folder(snapshot, folder / "previous")
        output.remove_partials(folder)
    return state


def _run_stages(
    state: RunState,
    previous: dict | None,
    until: str,
    source: Path | None = None,
    incremental: bool = False,
    weights: dict | None = None,
) -> str | None:
    """Decide, stage by stage, to reuse or to run; return the last stage done.

    ``previous`` is the run.json of the finished run in ``source`` (default: the run folder);
    files of stages reused from another folder are copied into this run.
    """
    source = state.folder if source is None else source
    cfg = state.config
    hashes = _FileHashes()
    doc = config_document(cfg, hashes)
    artefact_hash: dict[str, str] = {}
    artefact_files: dict[str, tuple[Path, list[str]]] = {}  # name -> (folder, files)
    memo: dict[str, Any] = {}  # artefacts of this run already in memory as they were written
    resources: dict = {}
    prev_stages = (previous or {}).get("stages", {})
    prev_outputs = (previous or {}).get("outputs", {})
    done = None
    for stage in STAGE_TABLE[: STAGES.index(until) + 1]:
        if stage.needs and getattr(cfg, stage.needs) is None:
            log.info("stage %s skipped: no %s section in the config", stage.name, stage.needs)
            break
        upstream = {a: artefact_hash[a] for a in stage.inputs if a in artefact_hash}
        h_in, components = input_hash(
            stage.name, project(doc, stage.config), upstream, __version__
        )
        prev = prev_stages.get(stage.name)
        t0 = time.perf_counter()
        reused = False
        if prev is not None and prev.get("input_hash") == h_in:
            ok = all(
                f in prev_outputs and intact(source / f, prev_outputs[f])
                for f in prev.get("files", [])
            )
            if ok:
                reused = True
                why = "unchanged"
            else:
                why = "its files in the run folder changed or are missing"
        else:
            why = what_changed(prev.get("components") if prev else None, components)
        if reused:
            log.info("%s: reused (%s)", stage.words, why)
            record = art.read_stage_record(source / f"artefacts/{stage.name}.json")
            where = state.folder
            if source != state.folder:  # bring the reused files into this run folder
                for f in prev["files"]:
                    output.copy_path(source / f, state.out / f)
                where = state.out
            for name, h in prev["artefacts"].items():
                artefact_hash[name] = h
                artefact_files[name] = (where, prev["artefact_files"][name])
            for f in prev["files"]:
                state.outputs[f] = prev_outputs[f]
            for note in record.get("notes", []):
                state.note(note)
            state.report.rows.extend(record.get("report", []))
            state.counts.update(record.get("counts", {}))
            state.files.update(prev.get("keys", {}))
        else:
            log.info("%s ... (%s)", stage.words, why)
            report = DataReport()
            loaders = {
                a: (
                    (lambda a=a: memo[a])
                    if a in memo
                    else (lambda a=a: load(a, artefact_files[a][1], artefact_files[a][0]))
                )
                for a in stage.inputs
                if a in artefact_files
            }
            work = state.folder / f"{output.PARTIAL_PREFIX}{stage.name}-{h_in[:16]}"
            stage_resources = _resources(
                cfg, report if stage.name == "data" else DataReport(), resources
            )
            if stage.name == "estimate" and incremental and previous is not None:
                stage_resources = {
                    **stage_resources,
                    "previous_estimate": lambda: _previous_estimate(
                        previous, source, resources
                    ),
                }
            if stage.name == "estimate" and weights:
                stage_resources = {**stage_resources, "weights": weights}
            ctx = StageContext(
                config=ConfigView(cfg, stage.sections, stage.name),
                inputs=Inputs(loaders),
                resources=stage_resources,
                report=report,
                progress=state.progress,
                client=state.client,
                work=work,
                input_hash=h_in,
            )
            produced = stage.func(ctx)
            check_interrupt()
            files, keys = [], {}
            record_art, record_files = {}, {}
            for name in stage.outputs:
                obj = produced.get(name)
                written = persist(name, obj, state.out, cfg, memo)
                if not written:
                    continue
                digests = {f: digest(state.out / f) for f in written}
                state.outputs.update(digests)
                files.extend(written)
                record_files[name] = written
                record_art[name] = art.combine_hashes(digests)
                artefact_hash[name] = record_art[name]
                artefact_files[name] = (state.out, written)
                for f in _key_files(written):
                    keys[_key_of(name, f)] = f
            rec_path = f"artefacts/{stage.name}.json"
            art.write_stage_record(
                state.out / rec_path,
                {"report": report.rows, "counts": ctx.counts, "notes": ctx.notes},
            )
            state.outputs[rec_path] = output.file_sha256(state.out / rec_path)
            files.append(rec_path)
            state.notes.extend(ctx.notes)
            state.report.rows.extend(report.rows)
            state.counts.update(ctx.counts)
            state.files.update(keys)
            prev = {
                "input_hash": h_in,
                "components": components,
                "artefacts": record_art,
                "artefact_files": record_files,
                "files": files,
                "keys": keys,
            }
        state.timings[stage.name] = time.perf_counter() - t0
        state.stages[stage.name] = {
            "status": "reused" if reused else "computed",
            "why": why,
            "input_hash": h_in,
            "components": components,
            "artefacts": prev["artefacts"],
            "artefact_files": prev["artefact_files"],
            "files": prev["files"],
            "keys": prev.get("keys", {}),
            "seconds": round(state.timings[stage.name], 3),
        }
        if not reused:
            log.info("  done in %.2f s", state.timings[stage.name])
        done = stage.name
    if "grade_tonnage" in artefact_files:
        folder, files = artefact_files["grade_tonnage"]
        state.results["grade_tonnage"] = art.load_grade_tonnage(folder / "grade_tonnage.csv")
    return done


def _previous_estimate(previous: dict, source: Path, resources: dict) -> tuple[Any, str | None]:
    """The previous run's block model and the plan that made it, for an update of the
    estimate stage: ``(Previous, None)``, or ``(None, why not)``.

    The plan is rebuilt from the previous run's own config and artefacts (composites,
    variogram models, logged intervals) with this run's wireframes and topography; the block
    model records the digest of the plan it was made from, and an update goes ahead only
    when the two agree and the new plan differs in nothing but its samples
    (:func:`estimator.kriging.updates.can_reuse`), so a previous run made from other inputs
    can only cost time, never give other numbers.
    """
    from pydantic import ValidationError

    from estimator.kriging.chunked import ChunkPlan
    from estimator.kriging.updates import Previous
    from estimator.stages import domain_points

    stages = previous.get("stages", {})
    if "estimate" not in stages:
        return None, "the previous run has no block model"
    files: dict[str, list[str]] = {}
    for rec in stages.values():
        files.update(rec.get("artefact_files", {}))
    try:
        old_cfg = RunConfig.model_validate(previous["config"])
        composites = load("composites", files["composites"], source)
        models = load("models", files["models"], source)
        name = "intervals" if "intervals" in files else "samples"
        points = load(name, files[name], source) if name in files else None
        plan = ChunkPlan.from_config(
            old_cfg, composites, models, resources["wireframes"],
            topography=resources["topography"], domain_points=domain_points(points),
        )  # fmt: skip
    except (ValidationError, DataError, KeyError, ValueError, OSError) as err:
        return None, f"the previous run's estimation plan cannot be rebuilt ({err})"
    model = source / files["blockmodel"][0]
    return Previous(plan, model), None


def digest(path: Path) -> str:
    """SHA-256 of an output: a file's bytes, or a block-model store's content."""
    if path.is_dir():
        from estimator.io.blockstore import store_digest

        return store_digest(path)
    return output.file_sha256(path)


def intact(path: Path, expected: str) -> bool:
    """Whether an output is still what the run wrote (a store's chunks are read back)."""
    if not path.exists():
        return False
    if path.is_dir():
        from estimator.io.blockstore import store_digest, verify_store

        try:
            return store_digest(path) == expected and not verify_store(path)
        except DataError:
            return False
    return output.file_sha256(path) == expected


def _key_of(artefact: str, rel: str) -> str:
    """The output key under which the CLI lists a file."""
    if rel.startswith("plots/"):
        return "plot_" + Path(rel).stem
    return {"variogram_table": "variograms_experimental", "models": "variograms"}.get(
        artefact, artefact
    )


def input_files(cfg: RunConfig) -> list[Path]:
    """Every input file the config names (for hashing into run.json)."""
    d = cfg.data
    files = [p for p in (d.collars, d.surveys, d.zones, d.samples, d.topography) if p is not None]
    files += [a.path for a in d.assays]
    files += [dom.wireframe for dom in cfg.domains if dom.wireframe is not None]
    if cfg.source is not None:
        files.insert(0, cfg.source)
    return files


def write_data_report(state) -> pd.DataFrame:
    """Write data_report.csv and return it."""
    frame = state.report.to_frame()
    output.write_csv(state.out / "data_report.csv", frame)
    state.files["data_report"] = "data_report.csv"
    state.outputs["data_report.csv"] = output.file_sha256(state.out / "data_report.csv")
    return frame


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "pandas", "xarray", "dask", "numba", "zarr"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover
            out[name] = "not installed"
    return out


def write_run_json(state, until: str, *, command="run", status="finished", error=None):
    """run.json: resolved config, input hashes, versions, timings, counts, per stage what was
    reused or computed and why, and the SHA-256 of every file of the run."""
    cfg = state.config
    outputs = dict(getattr(state, "outputs", {}) or {})
    if not outputs:  # commands without stages: every file they wrote
        outputs = {
            rel: output.file_sha256(state.out / rel)
            for rel in output.list_files(state.out)
            if rel != "run.json"
        }
    doc = {
        "name": cfg.name,
        "command": command,
        "status": status,
        "run_id": getattr(state, "run_id", ""),
        "estimator_version": __version__,
        "finished_stage": until,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": cfg.model_dump(mode="json"),
        "inputs": {str(p): output.file_sha256(p) for p in input_files(cfg) if Path(p).is_file()},
        "tranches": [
            {"name": str(a.tranche or Path(a.path).stem), "file": str(a.path)}
            for a in cfg.data.assays
        ],
        "versions": _versions(),
        "timings_s": {k: round(v, 3) for k, v in getattr(state, "timings", {}).items()},
        "stages": getattr(state, "stages", {}),
        "counts": state.counts,
        "data_report": state.report.counts(),
        "warnings": state.notes,
        "files": state.files,
        "outputs": outputs,
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
    doc["outputs"] = {**doc["outputs"], "run.json": ""}
    return doc


def _finish_failed(state: RunState, folder: Path, previous, done, err) -> None:
    """Keep what a failed run wrote (its data report first) without touching a finished run."""
    import shutil

    reason = "interrupted" if isinstance(err, KeyboardInterrupt) else f"{type(err).__name__}: {err}"
    try:
        state.outputs = {}
        write_data_report(state)
        state.outputs = {}
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


def check_side_folder(folder: Path, what: str, names, inputs=()) -> Path:
    """Refuse a folder for a command that is not the run (check, intercepts, report, diff,
    export) when it is a run folder, or when one of the files ``names`` it writes there is a
    file a run folder above it lists as its own (``diff/`` of an update, say)."""
    folder = Path(folder)
    output.check_output_folder(folder, what=what)
    output.check_no_input_overwritten(folder, inputs, names, what=what)
    for top in (folder, *folder.resolve().parents):
        meta = top / "run.json"
        if not meta.is_file():
            continue
        try:
            doc = output.read_json(meta, "run record")
        except DataError:
            doc = {}
        if doc.get("command", "run") != "run":
            continue
        if top == folder:
            msg = (
                f"{what}: {folder} is the folder of an estimator run; this command writes its "
                "own files and never over a run's: give another folder"
            )
            raise DataError(msg)
        rel = folder.resolve().relative_to(top.resolve())
        theirs = [n for n in names if (rel / n).as_posix() in doc.get("outputs", {})]
        if theirs:
            msg = (
                f"{what}: {folder / theirs[0]} is a file of the run in {top} (listed in its "
                "run.json); this command never writes over a run's files: give another folder"
            )
            raise DataError(msg)
        break
    return folder


@contextlib.contextmanager
def _side_folder(folder: Path, what: str, inputs, names):
    """A folder for a command that is not the run (check, intercepts, report)."""
    check_side_folder(folder, what, names, inputs)
    with output.folder_lock(folder):
        output.remove_leftovers(folder)
        yield folder


# ---------------------------------------------------------------------------------------
# other commands
# ---------------------------------------------------------------------------------------
def _data_only(cfg: RunConfig, folder: Path, progress: bool = False) -> tuple[RunState, dict]:
    """The data stage alone, for the commands that are not a run; its report in ``state``."""
    state = RunState(config=cfg, folder=folder, out=folder, progress=progress)
    stage = STAGE_TABLE[0]
    ctx = StageContext(
        config=ConfigView(cfg, stage.sections, stage.name),
        inputs=Inputs({}),
        resources={},
        report=state.report,
        progress=progress,
    )
    try:
        ctx.resources = _resources(cfg, state.report, {})
        produced = stage.func(ctx)
    finally:
        state.notes.extend(ctx.notes)
        state.counts.update(ctx.counts)
        write_data_report(state)
        state.outputs = {}
    return state, produced


def run_check(cfg: RunConfig, *, out: str | Path | None = None, progress=False) -> RunState:
    """``estimator check``: the data stage; writes the data report in its own folder
    (default ``<output>/check``), never in the run's."""
    folder = Path(out) if out is not None else Path(cfg.output.path) / "check"
    names = ("data_report.csv", "run.json")
    with _side_folder(folder, "--out" if out else "check folder", input_files(cfg), names):
        state, _ = _data_only(cfg, folder, progress)
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
        state, produced = _data_only(cfg, folder)
        intervals = produced["intervals"]
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
        path = output.write_csv(folder / "intercepts.csv", table)
        output.write_text(folder / "intercepts.txt", text + "\n")
        state.files.update(intercepts="intercepts.csv", intercepts_text="intercepts.txt")
        write_run_json(state, "data", command="intercepts")
    return table, text, path


# ---------------------------------------------------------------------------------------
# estimator update
# ---------------------------------------------------------------------------------------
def newest_tranche(cfg: RunConfig) -> str | None:
    """The tranche of the last assay file in ``data.assays`` (the newest), or None."""
    if not cfg.data.assays:
        return None
    last = cfg.data.assays[-1]
    return last.tranche or last.path.stem


def _usable_previous(source: Path) -> tuple[dict | None, str]:
    """The finished run in ``source`` when every file it lists is intact, else why not."""
    if not (source / "run.json").is_file():
        return None, f"no run.json in {source}"
    try:
        meta = output.read_json(source / "run.json", "run record (run.json)")
    except DataError as err:
        return None, str(err)
    if meta.get("command", "run") != "run" or meta.get("status") != "finished":
        return None, f"the run in {source} did not finish ({meta.get('status')})"
    if "outputs" not in meta or "stages" not in meta:
        return None, f"{source}/run.json was written by an older estimator (no stage records)"
    for rel, expected in meta["outputs"].items():
        if not intact(source / rel, expected):
            return None, f"{source / rel} is not the file that run wrote (changed, truncated or missing)"
    return meta, ""


def update(
    cfg: RunConfig,
    *,
    source: str | Path | None = None,
    out: str | Path | None = None,
    until: str = "report",
    scheduler: str | None = None,
    progress: bool = False,
) -> RunState:
    """``estimator update``: run the config again, reusing what a new tranche cannot change.

    Stages whose inputs did not change are reused from the previous run (``source``, default
    the run folder); when only samples changed, only the blocks they can reach are
    re-estimated. Then the change is explained (``diff/``, against the previous run, kept whole
    in ``previous/`` when it was in the same folder) and the significant intercepts of the newest
    tranche's holes are written (``release/``). A previous run that is missing, damaged or
    foreign is said so and every stage runs: the numbers are never those of a mixed run.
    """
    folder = Path(out) if out is not None else Path(cfg.output.path)
    src = Path(source) if source is not None else folder
    previous, why = _usable_previous(src)
    if previous is None:
        log.warning("update: the previous run cannot be used (%s); every stage runs", why)
    state = run(
        cfg,
        until=until,
        out=folder,
        scheduler=scheduler,
        progress=progress,
        reuse=previous is not None,
        source=src if previous is not None else None,
        keep_previous=previous is not None and src.resolve() == folder.resolve(),
        incremental=previous is not None,
    )
    info: dict[str, Any] = {
        "from": str(src.resolve()),
        "previous_usable": previous is not None,
        "why_not": why or None,
        "previous_run_id": (previous or {}).get("run_id"),
        "previous_run_json_sha256": output.file_sha256(src / "run.json")
        if previous is not None and src.resolve() != folder.resolve()
        else (output.file_sha256(folder / "previous" / "run.json")
              if (folder / "previous" / "run.json").is_file() else None),
        "newest_tranche": newest_tranche(cfg),
    }  # fmt: skip
    extra: list[str] = []
    if previous is not None and "report" in state.stages:
        before = folder / "previous" if (folder / "previous" / "run.json").is_file() else src
        try:
            from estimator.diffing import diff_runs
        except ImportError:  # pragma: no cover - shipped with estimator
            diff_runs = None
        if diff_runs is not None:
            result = diff_runs(before, folder, folder / "diff", progress=progress)
            info["diff"] = getattr(result, "counts", {})
            state.results["diff"] = result
            extra.append("diff")
    release = _release_table(cfg, state, folder)
    if release is not None:
        info["release"] = release
        extra.append("release")
    _record_update(folder, info, extra)
    _refresh_page(folder)
    state.results["update"] = info
    return state


def _release_table(cfg: RunConfig, state: RunState, folder: Path) -> str | None:
    """The significant intercepts of the newest tranche's holes, in ``release/``."""
    from estimator.intercepts import find_intercepts, format_intercepts, holes_in_tranche

    tranche = newest_tranche(cfg)
    if cfg.intercepts is None or not cfg.data.drillholes or tranche is None:
        return None
    files = state.stages.get("data", {}).get("artefact_files", {}).get("intervals")
    if not files:
        return None
    intervals = load("intervals", files, folder)
    rules = cfg.intercepts
    grade = (rules.grade or cfg.grades[0]).lower()
    table = find_intercepts(
        intervals, grade, cutoff=rules.cutoff, min_length=rules.min_length,
        max_dilution=rules.max_dilution, including=rules.including,
        including_min_length=rules.including_min_length,
        holes=holes_in_tranche(intervals, tranche),
    )  # fmt: skip
    unit = cfg.data.length_unit or "data units"
    label = f"{cfg.data.grade_unit} {grade.capitalize()}" if cfg.data.grade_unit else grade
    text = format_intercepts(table, grade_label=label, unit=unit, rules=rules, tranche=tranche)
    output.write_csv(folder / "release" / "intercepts.csv", table)
    output.write_text(folder / "release" / "intercepts.txt", text + "\n")
    state.results["release"] = (table, text)
    return "release/intercepts.csv"


def _write_exports(state: RunState, done: str | None) -> list[str]:
    """``output.exports`` of a run with a block model, into ``exports/`` of the staging folder;
    recorded with the run's files."""
    from estimator.io.exports import export_run

    specs = state.config.output.exports
    if not specs or done is None or STAGES.index(done) < STAGES.index("estimate"):
        return []
    written = []
    for spec in specs:
        log.info("Exporting the block model: %s%s", spec.format,
                 f" ({spec.profile})" if spec.profile else "")  # fmt: skip
        for path in export_run(state.out, spec.format, profile=spec.profile, overwrite=True,
                               fallback=state.folder):  # reused stages' files stay there
            rel = path.relative_to(state.out).as_posix()
            state.outputs[rel] = output.file_sha256(path)
            written.append(rel)
    state.files["exports"] = "exports"
    return written


def _write_page(folder: Path) -> bool:
    """Write ``report.html`` of the run in ``folder``; a page that cannot be made is said so
    and never costs the run."""
    from estimator.io.report_html import write_report

    try:
        write_report(folder)
    except (DataError, OSError, ValueError, KeyError, TypeError) as err:
        log.warning("report.html not written: %s", err)
        return False
    return True


def _refresh_page(folder: Path) -> None:
    """Render ``report.html`` again (after an update wrote diff/ and release/) and record it."""
    if _write_page(folder):
        meta = output.read_json(folder / "run.json", "run record (run.json)")
        meta["outputs"]["report.html"] = output.file_sha256(folder / "report.html")
        meta.setdefault("files", {})["report"] = "report.html"
        output.write_json(folder / "run.json", meta)


def _record_update(folder: Path, info: dict, extra: list[str]) -> None:
    """Add the update's record and its files (diff, release) to run.json."""
    meta = output.read_json(folder / "run.json", "run record (run.json)")
    meta["command"] = "run"
    meta["update"] = info
    for name in extra:
        for rel in output.list_files(folder / name):
            meta["outputs"][f"{name}/{rel}"] = output.file_sha256(folder / name / rel)
    output.write_json(folder / "run.json", meta)


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
    if not {"blockmodel.nc", "blockmodel.zarr"} & set(meta["outputs"]):
        msg = (
            f"{run_dir}: this run stopped at stage {meta.get('finished_stage')!r}: it has no block "
            "model to report"
        )
        raise DataError(msg)
    for rel, expected in meta["outputs"].items():
        path = run_dir / rel
        if not path.exists():
            msg = f"{path}: missing; the run folder is incomplete: run the config again"
            raise DataError(msg)
        if not intact(path, expected):
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
    from estimator.config import parse_config

    run_dir = Path(run_dir)
    meta = verify_run_folder(run_dir)
    raw = dict(meta["config"])
    if cutoffs is not None:
        # a re-report is a grade-tonnage table: the run's statement (at its own cut-off) is not
        # part of it
        raw["report"] = {**(raw.get("report") or {}), "cutoffs": list(cutoffs), "statement": None}
    cfg = parse_config(raw, source=f"{run_dir / 'run.json'}", check_files=False)
    folder = Path(out) if out is not None else run_dir / "reports" / report_label(cutoffs)
    if folder.resolve() == run_dir.resolve():
        msg = f"--out: {folder} is the run folder itself; a re-report is written beside it"
        raise DataError(msg)
    stage = STAGE_TABLE[STAGES.index("report")]
    ctx = StageContext(
        config=ConfigView(cfg, stage.sections, stage.name),
        inputs=Inputs({"blockmodel": lambda: load("blockmodel", list(meta["outputs"]), run_dir)}),
    )
    produced = stage.func(ctx)
    table, fig = produced["grade_tonnage"], produced["grade_tonnage_plot"]
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
                "blockmodel_sha256": meta["outputs"].get(
                    "blockmodel.zarr", meta["outputs"].get("blockmodel.nc")
                ),
                "cutoffs": cfg.report.cutoffs,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
    return table, path
