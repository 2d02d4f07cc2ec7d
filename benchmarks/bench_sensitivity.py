"""Sensitivity-study benchmark (issue 11): a top-cut sweep of 5 levels as one study against 5
separate runs, on the same machine in the same process.

The study runs the base config (keeping its kriging weights) and 5 variants that change only the
caps: each variant reuses the base's data stage, recomputes composites, variograms, validation
and report, and applies the kept weights to its capped values instead of kriging. The separate
runs are the 5 merged configs, each run from scratch into a fresh folder. The study's block
models are checked equal to the separate runs', bit for bit. Printed: the wall time of each
and the ratio, and the estimate stage alone (where the weights are reused).

Run::

    python benchmarks/bench_sensitivity.py                 # the demo, 5 caps
    python benchmarks/bench_sensitivity.py --discretisation 4 --max-samples 40   # heavier kriging
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo"
CAPS = (10.0, 15.0, 20.0, 25.0, 40.0)


def _config(folder: Path, disc: int, max_samples: int) -> Path:
    raw = yaml.safe_load((DEMO / "demo.yaml").read_text())
    raw["estimation"]["discretisation"] = [disc] * 3
    for p in raw["estimation"]["passes"]:
        p["max_samples"] = max_samples
    raw["sensitivity"] = [
        {"name": f"cap{c:g}", "capping": {d: {"pd": c} for d in ("offset", "cowboy", "outlaw")}}
        for c in CAPS
    ]
    raw["output"] = str(folder / "study")
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _open(run: Path) -> xr.Dataset:
    """A run's block model in memory (a variant that estimated writes a Zarr store)."""
    if (run / "blockmodel.zarr").is_dir():
        from estimator.io.blockstore import decode_classes, open_block_model

        return decode_classes(open_block_model(run / "blockmodel.zarr").compute())
    with xr.open_dataset(run / "blockmodel.nc") as ds:
        return ds.load()


def engine(blocks: int, repeat_caps=CAPS) -> dict:
    """The estimate engine alone on ``bench_update``'s synthetic deposit: 5 top-cut variants
    estimated in full against applying the base's kept weights (threads, every core)."""
    import sys
    from dataclasses import replace

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_update import _chunk_hashes, _estimate, extension_plans

    from estimator.kriging.updates import Previous

    _, plan = extension_plans(blocks)
    out = {"blocks": plan.grid.n_blocks}
    with tempfile.TemporaryDirectory(prefix="bench-sens-engine-") as tmp:
        folder = Path(tmp)
        t_base, base, _ = _estimate(plan, folder / "base.zarr", keep_weights=folder / "w")
        t_plain, _, _ = _estimate(plan, folder / "plain.zarr")
        out["base_keeping_weights_s"] = round(t_base, 2)
        out["base_plain_s"] = round(t_plain, 2)
        full_s = reweight_s = 0.0
        same = True
        for cap in repeat_caps:
            caps = {k: replace(s, values=np.minimum(s.values, cap / 5.0))
                    for k, s in plan.samples.items()}  # fmt: skip
            caps = {k: replace(s, value_range=(float(s.values.min()), float(s.values.max())))
                    for k, s in caps.items()}  # fmt: skip
            variant = replace(plan, samples=caps)
            t, full, _ = _estimate(variant, folder / f"full{cap:g}.zarr")
            full_s += t
            t, rw, counts = _estimate(variant, folder / f"rw{cap:g}.zarr",
                                      weights_from=(Previous(plan, base.path), folder / "w"))
            reweight_s += t
            same &= _chunk_hashes(full) == _chunk_hashes(rw) and bool(
                counts["update"].get("reweighted"))
        out |= {"five_full_estimates_s": round(full_s, 2),
                "five_reweighted_s": round(reweight_s, 2),
                "ratio": round(full_s / reweight_s, 2), "bit_identical": same}  # fmt: skip
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--discretisation", type=int, default=3)
    parser.add_argument("--max-samples", type=int, default=24)
    parser.add_argument("--engine-blocks", type=int, default=0,
                        help="also time the engine alone on a synthetic model of this size")
    args = parser.parse_args(argv)
    if args.engine_blocks:
        print(json.dumps({"engine": engine(args.engine_blocks)}, indent=1), flush=True)
    from estimator.config import load_config, variant_configs
    from estimator.pipeline import run
    from estimator.sensitivity import study

    with tempfile.TemporaryDirectory(prefix="bench-sens-") as tmp:
        folder = Path(tmp)
        for f in DEMO.iterdir():
            if f.is_file() and f.suffix != ".yaml":
                shutil.copy(f, folder / f.name)
        cfg = load_config(_config(folder, args.discretisation, args.max_samples))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            base, states, _ = study(cfg)
            t_study = time.perf_counter() - t0
            separate = {}
            t_sep = 0.0
            for name, vcfg in variant_configs(cfg):
                t1 = time.perf_counter()
                separate[name] = run(vcfg, out=folder / "separate" / name)
                t_sep += time.perf_counter() - t1
            # as a user would without a study: the base config with the caps changed, run in full
            t_user = 0.0
            for c in CAPS:
                caps = {**cfg.capping, **{d: {"pd": c} for d in ("offset", "cowboy", "outlaw")}}
                ucfg = cfg.model_copy(update={"capping": caps, "sensitivity": []})
                t1 = time.perf_counter()
                run(ucfg, out=folder / "user" / f"cap{c:g}")
                t_user += time.perf_counter() - t1
        same = True
        for name in separate:
            a = _open(folder / "study" / "sensitivity" / name)
            b = _open(folder / "separate" / name)
            for var in a.data_vars:
                x, y = a[var].values, b[var].values
                same &= bool(np.array_equal(x, y, equal_nan=x.dtype.kind == "f"))
        est_variants = sum(s.timings["estimate"] for s in states.values())
        est_separate = sum(s.timings["estimate"] for s in separate.values())
        out = {
            "blocks": int(np.prod(cfg.block_model.shape)),
            "discretisation": args.discretisation,
            "max_samples": args.max_samples,
            "study_s": round(t_study, 2),
            "base_in_study_s": round(sum(base.timings.values()), 2),
            "five_separate_runs_s": round(t_sep, 2),
            "ratio_separate_over_study": round(t_sep / t_study, 2),
            "five_full_runs_as_a_user_s": round(t_user, 2),
            "ratio_user_runs_over_study": round(t_user / t_study, 2),
            "variants_only_s": round(t_study - sum(base.timings.values()), 2),
            "estimate_stage_5_variants_s": round(est_variants, 2),
            "estimate_stage_5_separate_s": round(est_separate, 2),
            "estimate_ratio": round(est_separate / est_variants, 2),
            "reweighted": [bool((s.counts.get("update") or {}).get("reweighted"))
                           for s in states.values()],
            "bit_identical": same,
        }
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
