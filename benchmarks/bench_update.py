"""Tranche-update benchmark (issue 9): a full estimate against an update of the previous model.

Two cases, each estimated through the chunked engine (``estimate_to_store``) on the same
scheduler:

* **demo**: the bundled Lac des Iles-style data set (``configs/demo``). The previous run uses
  the first assay file only (tranche 2011-06-28); the new one both (2011-09-14 added). The
  composites and models come from the real stages (``estimator.api.run`` up to
  ``variograms``), the wireframes from their files.
* **extension**: a synthetic deposit 150 m wide and deep, long along x (``--blocks`` blocks of
  5 m), drilled on a 25 m pattern over 85 % of its strike (first tranche); the second
  tranche is an extension drilled from 85 to 97 % of it (the east end). One domain (the
  whole grid), ordinary kriging, two passes along strike (70 x 45 x 18 m, then twice that
  with octants), at most 24 samples and 6 per hole, chunks of 40 x 30 x 30 blocks.

For each case: the previous model is estimated in full (timed, for reference); then
``--repeat`` rounds of a full estimate of the new inputs and of the update from the previous
store, alternating (a busy machine slows both alike), each into a fresh store; the best time
of each is kept. The update must give the same store as the full estimate, bit for bit: the
SHA-256 of every chunk (as recorded in the completion records) is compared. Printed: blocks
re-estimated / blocks in the domains (summed over grades), chunks copied whole, the times and
the speed-up (full / update).

Run::

    python benchmarks/bench_update.py                      # both cases, threads, every core
    python benchmarks/bench_update.py --case extension --blocks 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo"


# ---------------------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------------------
def demo_plans(chunks=None):
    """Plans of the demo with its first assay file, and with both."""
    import yaml

    from estimator import api
    from estimator.config import parse_config
    from estimator.io.wireframe import load_wireframe
    from estimator.kriging.chunked import ChunkPlan

    raw = yaml.safe_load((DEMO / "demo.yaml").read_text())
    if chunks:
        raw["compute"] = {**raw.get("compute", {}), "chunks": list(chunks)}
    first = dict(raw, data={**raw["data"], "assays": raw["data"]["assays"][:1]})
    plans = []
    for doc in (first, raw):
        cfg = parse_config(doc, base=DEMO)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = api.run(cfg, in_memory=True, until="variograms")
        wires = {d.name: load_wireframe(d.wireframe) for d in cfg.domains if d.wireframe}
        plans.append(ChunkPlan.from_config(cfg, run.composites, run.models, wires))
    return plans


def extension_plans(blocks=400_000, seed=20110914):
    """A deposit drilled over 3/4 of its strike, then an extension past the east end."""
    from estimator.config import parse_config
    from estimator.kriging.chunked import ChunkPlan
    from estimator.variography.models import Structure, VariogramModel

    rng = np.random.default_rng(seed)
    size = 5.0
    ny, nz = 30, 30
    nx = max(8, round(blocks / (ny * nz)))
    length = nx * size
    # holes on a 25 m pattern over x < 0.85 L (first), then 0.85 L .. 0.97 L (extension)
    xs = np.arange(12.5, length, 25.0)
    ys = np.arange(12.5, ny * size, 25.0)
    gx, gy = (g.ravel() for g in np.meshgrid(xs, ys))
    gx, gy = gx + rng.uniform(-4, 4, gx.size), gy + rng.uniform(-4, 4, gy.size)
    first = gx < 0.85 * length
    later = (gx >= 0.85 * length) & (gx < 0.97 * length)
    per = 36
    depth = np.arange(per) * 4.0 + 2.0
    rows = []
    for k, (x, y) in enumerate(zip(gx, gy, strict=True)):
        if not (first[k] or later[k]):
            continue
        z = nz * size - depth
        x0 = x + 0.15 * depth
        trend = 1.0 + 0.5 * np.sin(x0 / 60.0) + 0.3 * np.cos(y / 45.0)
        au = trend * rng.lognormal(0.0, 0.6, per)
        rows.append(pd.DataFrame({
            "hole_id": f"DH{k:04d}", "x": x0, "y": y + 0.05 * depth, "z": z, "au": au,
            "tranche": "2011-06-28" if first[k] else "2011-09-14", "domain": "all",
        }))  # fmt: skip
    comps = pd.concat(rows, ignore_index=True)
    model = VariogramModel(
        0.2,
        (
            Structure("spherical", 0.5, (80.0, 50.0, 20.0), (90.0, 0.0, 0.0)),
            Structure("spherical", 0.3, (200.0, 120.0, 50.0), (90.0, 0.0, 0.0)),
        ),
    )

    def plan(tranches, frame):
        raw = {
            "name": "extension",
            "data": {"collars": "c.csv", "surveys": "s.csv",
                     "assays": [{"path": f"{t}.csv", "tranche": t} for t in tranches]},
            "grades": ["au"],
            "block_model": {"origin": [0, 0, 0], "block_size": [size] * 3,
                            "shape": [nx, ny, nz], "subcells": [1, 1, 1]},
            "estimation": {"passes": [
                {"ranges": [70, 45, 18], "angles": [90, 0, 0], "min_samples": 8,
                 "max_samples": 24, "max_per_hole": 6},
                {"scale": 2.0, "min_samples": 4, "max_samples": 24,
                 "octants": {"max_per_octant": 6, "min_octants": 2}},
            ]},
            "compute": {"chunks": [40, 30, 30]},
        }  # fmt: skip
        cfg = parse_config(raw, check_files=False)
        return ChunkPlan.from_config(cfg, frame, {"all": {"au": model}}, {})

    old = comps[comps["tranche"] == "2011-06-28"].reset_index(drop=True)
    return plan(["2011-06-28"], old), plan(["2011-06-28", "2011-09-14"], comps)


# ---------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------
def _estimate(plan, path, previous=None, **kwargs):
    from estimator.errors import EstimationWarning
    from estimator.kriging.chunked import estimate_to_store

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        t0 = time.perf_counter()
        store, counts = estimate_to_store(plan, path, path.name, previous=previous, **kwargs)
        return time.perf_counter() - t0, store, counts


def _chunk_hashes(store) -> dict:
    records = sorted((store.path / ".chunks").glob("*.json"))
    return {p.name: json.loads(p.read_text())["sha256"] for p in records}


def compare(name, old_plan, new_plan, repeat, scheduler, workers, folder: Path) -> dict:
    from estimator.kriging.updates import Previous

    kwargs = {"scheduler": scheduler, "num_workers": workers}
    t_prev, prev, _ = _estimate(old_plan, folder / "previous.zarr", **kwargs)
    full_times, update_times = [], []
    for r in range(repeat):
        t, full, _ = _estimate(new_plan, folder / f"full{r}.zarr", **kwargs)
        full_times.append(t)
        t, upd, counts = _estimate(new_plan, folder / f"update{r}.zarr",
                                   Previous(old_plan, prev.path), **kwargs)  # fmt: skip
        update_times.append(t)
        if _chunk_hashes(upd) != _chunk_hashes(full):
            msg = f"{name}: the update differs from the full estimate"
            raise AssertionError(msg)
        shutil.rmtree(full.path)
        if r < repeat - 1:
            shutil.rmtree(upd.path)
    info = counts["update"]
    if not info["reused"]:
        msg = f"{name}: no update: {info['reason']}"
        raise AssertionError(msg)
    est = sum(v["estimated"] for per in info["blocks"].values() for v in per.values())
    copied = sum(v["copied"] for per in info["blocks"].values() for v in per.values())
    out = {
        "case": name,
        "grid_blocks": new_plan.grid.n_blocks,
        "blocks_in_domains_x_grades": est + copied,
        "re_estimated": est,
        "share": est / max(est + copied, 1),
        "chunks_copied_whole": info["chunks"]["copied_whole"],
        "chunks_updated": info["chunks"]["estimated"],
        "previous_s": t_prev,
        "full_s": min(full_times),
        "update_s": min(update_times),
    }
    out["speedup"] = out["full_s"] / out["update_s"]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=["demo", "extension", "both"], default="both")
    parser.add_argument("--blocks", type=int, default=400_000, help="extension case grid size")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--scheduler", default="threads")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    workers = args.workers or os.cpu_count() or 1
    cases = ["demo", "extension"] if args.case == "both" else [args.case]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-update-") as tmp:
        for name in cases:
            t0 = time.perf_counter()
            plans = demo_plans() if name == "demo" else extension_plans(args.blocks)
            prep = time.perf_counter() - t0
            folder = Path(tmp) / name
            folder.mkdir()
            res = compare(name, *plans, args.repeat, args.scheduler, workers, folder)
            res["prepare_s"] = prep
            results.append(res)
            print(
                f"{name:10s} grid {res['grid_blocks']:,} blocks; re-estimated "
                f"{res['re_estimated']:,} of {res['blocks_in_domains_x_grades']:,} "
                f"({100 * res['share']:.1f} %), chunks copied whole "
                f"{res['chunks_copied_whole']} of "
                f"{res['chunks_copied_whole'] + res['chunks_updated']}; full "
                f"{res['full_s']:.2f} s, update {res['update_s']:.2f} s: "
                f"{res['speedup']:.1f}x (previous run {res['previous_s']:.2f} s; "
                f"{args.scheduler}, {workers} workers; bit-identical)",
                flush=True,
            )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
