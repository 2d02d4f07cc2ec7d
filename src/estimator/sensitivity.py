"""Sensitivity studies: the base config and its named variants, run as one study.

:func:`study` runs the base (keeping its kriging weights), then each variant of the config's
``sensitivity`` section (:func:`estimator.config.variant_configs`) with :func:`estimator.pipeline.run`
into ``<run>/sensitivity/<name>/``, each reusing what the base computed (see the README,
*Exports and sensitivity studies*), and writes the combined table, plot and record.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from estimator.config import RunConfig
from estimator.io import artefacts as art
from estimator.io import output
from estimator.pipeline import RunState, run

log = logging.getLogger(__name__)

__all__ = ["MAX_WEIGHTS_BYTES", "sensitivity_headline", "study"]


def study(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    reuse: bool = True,
) -> tuple[RunState, dict[str, RunState], pd.DataFrame]:
    """A sensitivity study: the base config, then each ``sensitivity`` variant.

    The base runs into its folder and keeps its kriging weights (``sensitivity/.weights-<the
    estimate's input hash>``); each variant runs into ``sensitivity/<name>/``, reusing every
    stage of the base whose inputs it does not change (a cut-off variant only reports again)
    and, when only sample values differ (top-cuts, below-detection rules), applying the base's
    weights to its values instead of kriging: the same numbers, bit for bit, as a separate run.
    ``sensitivity/sensitivity.csv`` holds every variant's grade-tonnage table, with a plot.
    Returns ``(base state, {variant: state}, combined table)``.
    """
    from estimator.config import variant_configs

    folder = Path(out) if out is not None else Path(cfg.output.path)
    variants = variant_configs(cfg)
    study_dir = folder / "sensitivity"
    size = _weights_bytes(cfg)
    keep = size <= MAX_WEIGHTS_BYTES
    if not keep:
        log.warning(
            "sensitivity: the kriging weights of this model would take %.1f GB on disk (over "
            "%.0f GB): not kept; variants that change only values are estimated instead",
            size / 1e9, MAX_WEIGHTS_BYTES / 1e9,
        )  # fmt: skip
    t0 = time.perf_counter()
    base = run(cfg, out=folder, scheduler=scheduler, progress=progress, reuse=reuse,
               weights={"keep": _weights_dir(study_dir, cfg, folder)} if keep else None)  # fmt: skip
    times = {"base": time.perf_counter() - t0}
    weights_dir = _weights_dir(study_dir, cfg, folder, base)
    states = {}
    for name, vcfg in variants:
        log.info("Sensitivity variant %s", name)
        t1 = time.perf_counter()
        states[name] = run(
            vcfg, out=study_dir / name, scheduler=scheduler, progress=progress, reuse=True,
            source=folder, incremental=True, weights={"from": weights_dir},
        )  # fmt: skip
        times[name] = time.perf_counter() - t1
    from estimator.kriging.updates import clear_previous_cache

    clear_previous_cache()
    table = _sensitivity_table(folder, base, states)
    how = {
        name: {
            "estimate": st.stages.get("estimate", {}).get("status"),
            "reweighted": bool((st.counts.get("update") or {}).get("reweighted")),
            "stages_computed": [k for k, v in st.stages.items() if v["status"] == "computed"],
            "seconds": round(times[name], 3),
        }
        for name, st in states.items()
    }  # fmt: skip
    output.write_csv(study_dir / "sensitivity.csv", table)
    output.write_json(study_dir / "study.json", {
        "base": str(folder), "seconds": {k: round(v, 3) for k, v in times.items()},
        "variants": how, "weights": str(weights_dir),
    })  # fmt: skip
    fig = _plot_sensitivity(table, cfg)
    if fig is not None:
        output.save_figure(study_dir / "sensitivity.png", fig)
    return base, states, table


#: A study keeps the base's kriging weights only below this size on disk.
MAX_WEIGHTS_BYTES = 8e9


def _weights_bytes(cfg: RunConfig) -> float:
    """The most the kept weights can take: blocks x domains x grades x samples x 16 bytes."""
    if cfg.block_model is None or cfg.estimation is None:
        return 0.0
    blocks = float(np.prod(cfg.block_model.shape)) * max(1, len(cfg.domains)) * len(cfg.grades)
    samples = max(p["max_samples"] for p in cfg.estimation.resolved_passes())
    return blocks * samples * 16.0


def _weights_dir(study_dir: Path, cfg: RunConfig, folder: Path, state=None) -> Path:
    """Where the base's kriging weights are kept: by the estimate stage's input hash (known
    after the run; before it, a folder for this run to write)."""
    if state is not None:
        h = state.stages.get("estimate", {}).get("input_hash", "")
        done = study_dir / f".weights-{h[:16]}"
        pending = study_dir / ".weights-new"
        if pending.is_dir():  # the base estimated again: its weights are the new ones
            if done.exists():
                output.remove_folder(done)
            output.move_folder(pending, done)
        return done
    study_dir.mkdir(parents=True, exist_ok=True)
    pending = study_dir / ".weights-new"
    if pending.exists():
        output.remove_folder(pending)
    return pending


def _sensitivity_table(folder: Path, base: RunState, states: dict) -> pd.DataFrame:
    parts = []
    for name, where in [("base", folder), *((n, folder / "sensitivity" / n) for n in states)]:
        path = where / "grade_tonnage.csv"
        if not path.is_file():
            continue
        t = art.load_grade_tonnage(path)
        t.insert(0, "variant", name)
        parts.append(t)
    cols = ["variant", "domain", "class", "cutoff", "tonnes", "grade", "metal"]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    rest = [c for c in table.columns if c not in cols]
    return table[cols + rest]


def sensitivity_headline(table: pd.DataFrame) -> pd.DataFrame:
    """Per variant and cut-off, all domains and classes together: the ``total`` rows, or the
    one domain's when the model has a single domain."""
    sub = table[table["class"] == "all"]
    if (sub["domain"] == "total").any():
        return sub[sub["domain"] == "total"]
    if sub["domain"].nunique() <= 1:
        return sub
    t = sub.assign(tg=sub["tonnes"] * sub["grade"].fillna(0.0))
    out = t.groupby(["variant", "cutoff"], as_index=False, sort=False)[["tonnes", "tg", "metal"]].sum()
    out["grade"] = out["tg"] / out["tonnes"].where(out["tonnes"] > 0)
    return out.drop(columns="tg").assign(domain="total", **{"class": "all"})


def _plot_sensitivity(table: pd.DataFrame, cfg: RunConfig):
    """Tonnes and grade against cut-off, one line per variant (all domains, all classes)."""
    import matplotlib.pyplot as plt

    sub = sensitivity_headline(table)
    if sub.empty:
        return None
    gu = cfg.data.grade_unit or "grade units"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, part in sub.groupby("variant", sort=False):
        part = part.sort_values("cutoff")
        ax1.plot(part["cutoff"], part["tonnes"] / 1e6, marker="o", label=name)
        ax2.plot(part["cutoff"], part["grade"], marker="o", label=name)
    ax1.set(xlabel=f"cut-off ({gu})", ylabel="tonnes (Mt)", title="Tonnes above cut-off")
    ax2.set(xlabel=f"cut-off ({gu})", ylabel=f"grade ({gu})", title="Grade above cut-off")
    ax1.legend(fontsize=8)
    fig.suptitle(f"{cfg.name}: sensitivity study")
    fig.tight_layout()
    return fig
