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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--discretisation", type=int, default=3)
    parser.add_argument("--max-samples", type=int, default=24)
    args = parser.parse_args(argv)
    from estimator.config import load_config, variant_configs
    from estimator.pipeline import run, study

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
        same = True
        for name in separate:
            a = xr.open_dataset(folder / "study" / "sensitivity" / name / "blockmodel.nc")
            b = xr.open_dataset(folder / "separate" / name / "blockmodel.nc")
            for var in a.data_vars:
                x, y = a[var].values, b[var].values
                same &= bool(np.array_equal(x, y, equal_nan=x.dtype.kind == "f"))
            a.close()
            b.close()
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
