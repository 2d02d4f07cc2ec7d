"""Re-reporting benchmark (issue 10): grade-tonnage of a 1,000,000-block model at 40 cut-offs.

A model of ``--blocks`` blocks (one domain, classes, a lognormal grade, sub-unit fractions) is
reported at ``--cutoffs`` cut-offs in memory (``grade_tonnage``) and chunk by chunk from a
lazily opened Zarr store (``grade_tonnage_chunked``, what ``estimator report`` does on a large
run); the two tables are checked equal, and against a direct NumPy sum at every cut-off.

Run::

    python benchmarks/bench_report.py                       # 1,000,000 blocks, 40 cut-offs
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr


def model(blocks: int, seed: int = 1) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    nz = 50
    ny = 100
    nx = max(1, blocks // (nz * ny))
    shape = (1, nz, ny, nx)
    dims = ("domain", "z", "y", "x")
    frac = np.where(rng.uniform(size=shape) < 0.8, rng.uniform(0.2, 1.0, shape), 0.0)
    grade = rng.lognormal(0.5, 0.9, shape)
    grade[frac == 0] = np.nan
    cls = rng.choice(np.array([0, 1, 2, 3], dtype=np.uint8), size=shape, p=[0.1, 0.2, 0.3, 0.4])
    ds = xr.Dataset(
        {"fraction": (dims, frac), "pd": (dims, grade),
         "class": (dims, cls, {"flag_values": [0, 1, 2, 3],
                               "flag_meanings": "unclassified measured indicated inferred"})},
        coords={"domain": ["ore"], "z": np.arange(nz) * 5.0, "y": np.arange(ny) * 5.0,
                "x": np.arange(nx) * 5.0},
    )  # fmt: skip
    return ds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=1_000_000)
    parser.add_argument("--cutoffs", type=int, default=40)
    args = parser.parse_args(argv)
    from estimator.reporting import grade_tonnage, grade_tonnage_chunked

    ds = model(args.blocks)
    cutoffs = list(np.linspace(0.0, 8.0, args.cutoffs))
    classes = {0: "", 1: "measured", 2: "indicated", 3: "inferred"}
    t0 = time.perf_counter()
    table = grade_tonnage(ds, "pd", cutoffs, {"ore": 2.8}, 125.0, classes=classes)
    t_mem = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bm.zarr"
        ds.chunk({"z": 10}).to_zarr(path)
        lazy = xr.open_zarr(path)
        t0 = time.perf_counter()
        chunked = grade_tonnage_chunked(lazy, "pd", cutoffs, {"ore": 2.8}, 125.0, classes=classes)
        t_chunk = time.perf_counter() - t0
    frac, grade = ds["fraction"].values[0], ds["pd"].values[0]
    worst = 0.0
    for cut in cutoffs:
        keep = (frac > 0) & (grade >= cut)
        t = (frac * 125.0 * 2.8)[keep].sum()
        got = table[(table["class"] == "all") & np.isclose(table["cutoff"], cut)]["tonnes"].iloc[0]
        worst = max(worst, abs(got - t) / t if t else abs(got))
    same = np.allclose(table["tonnes"], chunked["tonnes"], rtol=1e-12)
    print(json.dumps({
        "blocks": int(frac.size), "cutoffs": len(cutoffs), "rows": len(table),
        "in_memory_s": round(t_mem, 3), "chunked_from_zarr_s": round(t_chunk, 3),
        "max_rel_error_vs_numpy": worst, "chunked_equals_in_memory": bool(same),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
