"""A run from Python: the same stages as ``estimator run``, results as Python objects.

>>> import estimator
>>> cfg = estimator.parse_config({"name": "t", "data": {"samples": "pts.csv"}, "grades": ["au"]},
...                              check_files=False)
>>> cfg.domain_names
['all']
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Run", "run"]


@dataclass
class Run:
    """What a run made.

    Attributes
    ----------
    folder : pathlib.Path or None
        The run folder (None for a run kept in memory).
    config : RunConfig
        The configuration run.
    stages : dict
        Per stage: ``status`` (computed or reused), ``why``, hashes and files.
    counts, warnings, data_report
        As in ``run.json`` and ``data_report.csv``.
    composites, models, grade_tonnage
        The composites table, ``{domain: {grade: VariogramModel}}`` and the grade-tonnage
        table (None for stages not run).
    """

    folder: Path | None
    config: Any
    stages: dict
    counts: dict
    warnings: list[str]
    data_report: Any
    composites: Any = None
    models: Any = None
    grade_tonnage: Any = None
    _blockmodel: Any = field(default=None, repr=False)

    @property
    def blockmodel(self):
        """The block model as an xarray Dataset (read from the run folder on first use)."""
        if self._blockmodel is None and self.folder is not None:
            from estimator.pipeline import load

            if (self.folder / "blockmodel.nc").exists():
                self._blockmodel = load("blockmodel", [], self.folder)
        return self._blockmodel


def _as_config(config):
    from estimator.config import RunConfig, load_config, parse_config

    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return parse_config(config, base=Path.cwd())
    return load_config(config)


def run(
    config,
    out: str | Path | None = None,
    *,
    in_memory: bool = False,
    until: str = "report",
    scheduler: str | None = None,
    progress: bool = False,
    recompute: bool = False,
) -> Run:
    """Run a configuration and return its results.

    Parameters
    ----------
    config : path, dict or RunConfig
        A YAML file, a mapping of the same sections (relative paths against the current
        folder), or a loaded config.
    out : path, optional
        Run folder (default: the config's ``output.path``); unchanged stages of a previous
        run there are reused.
    in_memory : bool
        Run in a temporary folder, keep the results in memory and delete the folder.
    until, scheduler, progress, recompute
        As the command line's ``--until``, ``--scheduler``, progress bars and ``--recompute``.

    Returns
    -------
    Run
    """
    from estimator.pipeline import load
    from estimator.pipeline import run as run_pipeline

    cfg = _as_config(config)
    tmp = Path(tempfile.mkdtemp(prefix="estimator-")) if in_memory else None
    try:
        state = run_pipeline(
            cfg,
            until=until,
            out=tmp / "run" if tmp is not None else out,
            scheduler=scheduler,
            progress=progress,
            reuse=not recompute,
        )
        folder = state.folder
        result = Run(
            folder=None if in_memory else folder,
            config=cfg,
            stages=state.stages,
            counts=state.counts,
            warnings=list(state.notes),
            data_report=state.report.to_frame(),
        )
        if (folder / "composites.csv").exists():
            result.composites = load("composites", [], folder)
        if (folder / "variograms.yaml").exists():
            result.models = load("models", [], folder)
        result.grade_tonnage = state.results.get("grade_tonnage")
        if in_memory and (folder / "blockmodel.nc").exists():
            result._blockmodel = load("blockmodel", [], folder)
        return result
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
