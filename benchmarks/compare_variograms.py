"""Explicit (config) vs fitted variogram models, judged by leave-one-hole-out cross-validation.

For each config, domain and grade: composites are made in memory (stages ``data`` and
``composites``, written to a temporary folder), a model is fitted by the variography stage on a
copy of the config without explicit models, and both models are cross-validated at point
support with the config's first search pass (:func:`estimator.validation.cross_validate`),
leaving holes out (positioned samples without hole ids: each sample is its own hole).

Usage::

    python benchmarks/compare_variograms.py [CONFIG ...] [--folds 10] [--extra models.yaml]

``--extra`` adds candidate models, ``{config name: {domain: {grade: {model: ...}}}}`` (the
``variograms.yaml`` format under the config's ``name``), cross-validated the same way.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from estimator.config import load_config
from estimator.errors import EstimationWarning
from estimator.estimation import search_passes
from estimator.pipeline import RunState, stage_composites, stage_data
from estimator.validation import cross_validate, summary
from estimator.variography.models import VariogramModel
from estimator.variography.stage import hole_codes, variography_stage

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT / "configs" / "demo" / "demo.yaml", ROOT / "configs" / "babbitt.yaml"]


def composites_of(cfg) -> pd.DataFrame:
    """Composites of a config, built in a temporary run folder."""
    with tempfile.TemporaryDirectory() as tmp:
        state = RunState(config=cfg, out=Path(tmp))
        stage_data(state)
        stage_composites(state)
        return state.results["composites"]


def compare(path: Path, folds: int | None, extra: dict) -> list[dict]:
    """Rows of the comparison table for one config."""
    cfg = load_config(path)
    comps = composites_of(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        fitted, _, _, _ = variography_stage(
            cfg.model_copy(update={"variography": {}}), comps, plots=False
        )
    spass = search_passes(cfg)[:1]
    rows = []
    for dom in cfg.domain_names:
        sub = comps[comps["domain"] == dom]
        for grade in cfg.grades:
            ok = np.isfinite(sub[grade].to_numpy(float))
            xyz = sub.loc[ok, ["x", "y", "z"]].to_numpy(float)
            v = sub.loc[ok, grade].to_numpy(float)
            # Positioned samples without hole ids: each its own hole (as the stage takes them).
            holes = hole_codes(sub.loc[ok, "hole_id"])
            entry = cfg.variography.get(dom, {}).get(grade)
            models = {"explicit": entry.model.to_model()} if entry and entry.model else {}
            models["fitted"] = fitted[dom][grade]
            for name, d in extra.get(cfg.name, {}).get(dom, {}).get(grade, {}).items():
                models[name] = VariogramModel.from_dict(d)
            row = {"config": cfg.name, "domain": dom, "grade": grade, "n": len(v)}
            row["var"] = float(v.var()) if len(v) else np.nan
            for name, m in models.items():
                t0 = time.perf_counter()
                s = summary(cross_validate(xyz, v, holes, m, spass, folds=folds))
                row[f"{name}_sill"] = m.sill
                for k in ("rmse", "mean_error", "slope", "correlation", "var_std_error"):
                    row[f"{name}_{k}"] = s[k]
                row[f"{name}_s"] = time.perf_counter() - t0
            if "explicit_rmse" in row:
                row["rmse_ratio"] = row["fitted_rmse"] / row["explicit_rmse"]
            st = fitted[dom][grade].structures
            row["fitted_angles"] = tuple(round(a, 1) for a in st[0].angles) if st else None
            row["fitted_model"] = fitted[dom][grade].to_dict()
            rows.append(row)
    return rows


def main(argv=None) -> pd.DataFrame:
    """Run the comparison and print the table (returned too)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--folds", type=int, default=10, help="hole folds (0: one per hole)")
    ap.add_argument("--extra", type=Path, help="YAML of candidate models to cross-validate too")
    args = ap.parse_args(argv)
    extra = {}
    if args.extra:
        raw = yaml.safe_load(args.extra.read_text()) or {}
        for c, doms in raw.items():
            for d, per in doms.items():
                for g, cands in per.items():
                    extra.setdefault(c, {}).setdefault(d, {})[g] = {
                        n: spec.get("model", spec) for n, spec in cands.items()
                    }
    rows = []
    for path in args.configs:
        rows += compare(path, args.folds or None, extra)
    df = pd.DataFrame(rows)
    cols = [c for c in df.columns if c != "fitted_model"]
    with pd.option_context("display.width", 250, "display.max_columns", 60):
        print(df[cols].round(4).to_string(index=False))
    for r in rows:
        print(f"\n# fitted {r['config']} {r['domain']} {r['grade']}")
        print(yaml.safe_dump({"model": r["fitted_model"]}, sort_keys=False, width=200).rstrip())
    return df


if __name__ == "__main__":
    main()
