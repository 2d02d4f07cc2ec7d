"""Walker Lake: block estimates of V against the exhaustive truth, fitted model beside the others.

The 470 clustered samples of ``tests/data/walker-lake/walker.dat`` (Isaaks & Srivastava 1989,
via pygslib) go through the Python API as positioned samples (``data.samples``, no hole ids):
:func:`~estimator.io.drillholes.read_samples`, then the variography stage fits a model (no
explicit model in the config). Every method then estimates the same blocks (default 10 x 10 m,
aligned on the exhaustive grid: X, Y = 1..10, 11..20, ...) with the same search (a circle of
100 m, 1 to 16 samples, no octants), and is scored against the block means of the exhaustive V
(78,000 points on a 1 m grid; U comes before V in that file):

* ``OK fitted``: ordinary block kriging with the automatically fitted model, the block
  discretised by its 1 m exhaustive points (10 x 10);
* ``OK published``: the same with the model Isaaks & Srivastava fit to these samples
  (*An Introduction to Applied Geostatistics*, 1989, chapter 16): nugget 22,000, spherical
  40,000 with ranges 30 m (N14W) x 25 m, spherical 45,000 with ranges 150 m (N14W) x 50 m;
* ``NN polygonal``: the nearest sample to each 1 m point, averaged over the block (the
  declustering-by-polygons estimate);
* ``NN centre``: the nearest sample to the block centre;
* ``ID2 points``: inverse distance squared at each 1 m point, averaged over the block;
* ``ID2 centre``: inverse distance squared from the block centre (the usual block IDW).

Scores: RMSE and mean absolute error against the block truth, slope of the regression of the
truth on the estimate (1 = conditionally unbiased), correlation, and global bias (mean estimate
minus mean truth, in ppm and in % of the truth mean). Run::

    python benchmarks/walker_lake.py [--block 10] [--radius 100] [--max-samples 16]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from estimator.config import parse_config
from estimator.datareport import DataReport
from estimator.errors import EstimationWarning
from estimator.io.drillholes import read_samples
from estimator.kriging.estimate import SearchPass, estimate_blocks
from estimator.variography.models import Structure, VariogramModel
from estimator.variography.stage import variography_stage

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "walker-lake"
NX, NY = 260, 300  # exhaustive grid, X and Y = 1 .. NX, 1 .. NY

#: Isaaks & Srivastava (1989), chapter 16: the model of V (major axis N14W = azimuth 346).
PUBLISHED = VariogramModel(
    22000.0,
    (
        Structure("spherical", 40000.0, (30.0, 25.0, 25.0), (346.0, 0.0, 0.0)),
        Structure("spherical", 45000.0, (150.0, 50.0, 50.0), (346.0, 0.0, 0.0)),
    ),
)


def load(data: Path = DATA):
    """(config, samples DataFrame as the variography stage gets it, exhaustive V (NY, NX))."""
    raw = {
        "name": "walker-lake",
        "data": {
            "samples": "walker.dat",
            "columns": {
                "x": "Xlocation in meter",
                "y": "Ylocation in meter",
                "v": "V variable, concentration in ppm",
            },
            "length_unit": "m",
            "grade_unit": "ppm",
        },
        "grades": ["v"],
    }
    cfg = parse_config(raw, base=data)
    samples = read_samples(cfg.data, cfg.grades, DataReport())
    samples["domain"] = "all"
    exhaustive = pd.read_csv(data / "Exhaustive_set.csv")
    v = exhaustive["V"].to_numpy(float).reshape(NY, NX)  # X fastest
    return cfg, samples, v


def blocks(v: np.ndarray, size: int):
    """Block centres (n, 3), 1 m discretisation offsets (size^2, 3) and block means of ``v``."""
    ny, nx = v.shape[0] // size, v.shape[1] // size
    truth = v[: ny * size, : nx * size].reshape(ny, size, nx, size).mean(axis=(1, 3)).ravel()
    cx = 1.0 + (np.arange(nx) * size) + 0.5 * (size - 1)
    cy = 1.0 + (np.arange(ny) * size) + 0.5 * (size - 1)
    gx, gy = np.meshgrid(cx, cy)
    centres = np.c_[gx.ravel(), gy.ravel(), np.zeros(gx.size)]
    o = np.arange(size) - 0.5 * (size - 1)
    ox, oy = np.meshgrid(o, o)
    offsets = np.c_[ox.ravel(), oy.ravel(), np.zeros(ox.size)]
    return centres, offsets, truth


def score(estimate: np.ndarray, truth: np.ndarray) -> dict:
    """RMSE, MAE, slope of truth on estimate, correlation, global bias (ppm and %)."""
    ok = np.isfinite(estimate)
    e, t = estimate[ok], truth[ok]
    return {
        "blocks": int(ok.sum()),
        "mean": float(e.mean()),
        "rmse": float(np.sqrt(np.mean((e - t) ** 2))),
        "mae": float(np.mean(np.abs(e - t))),
        "slope": float(np.polyfit(e, t, 1)[0]),
        "corr": float(np.corrcoef(e, t)[0, 1]),
        "bias": float(e.mean() - t.mean()),
        "bias_pct": float(100.0 * (e.mean() / t.mean() - 1.0)),
    }


def compare(size: int = 10, radius: float = 100.0, max_samples: int = 16) -> tuple:
    """The comparison table (one row per method) and the fitted model."""
    cfg, samples, v = load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        t0 = time.perf_counter()
        models, _, _, notes = variography_stage(cfg, samples, plots=False)
        fit_s = time.perf_counter() - t0
    fitted = models["all"]["v"]
    xyz = samples[["x", "y", "z"]].to_numpy(float)
    val = samples["v"].to_numpy(float)
    holes = np.arange(len(val), dtype=np.int64)
    centres, offsets, truth = blocks(v, size)
    points = (centres[:, None, :] + offsets[None]).reshape(-1, 3)
    passes = [SearchPass(ranges=(radius,) * 3, angles=(0.0, 0.0, 0.0), min_samples=1,
                         max_samples=max_samples)]  # fmt: skip
    centre = np.zeros((1, 3))

    def run(targets, ofs, model, method):
        return estimate_blocks(targets, ofs, xyz, val, holes, model, passes, method)["estimate"]

    def per_point(method):
        return run(points, centre, None, method).reshape(len(centres), -1).mean(axis=1)

    rows = {
        "OK fitted": run(centres, offsets, fitted, "ok"),
        "OK published": run(centres, offsets, PUBLISHED, "ok"),
        "NN polygonal": per_point("nn"),
        "NN centre": run(centres, centre, None, "nn"),
        "ID2 points": per_point("idw"),
        "ID2 centre": run(centres, centre, None, "idw"),
    }
    table = pd.DataFrame({k: score(e, truth) for k, e in rows.items()}).T
    table.index.name = "method"
    info = {"fit_s": fit_s, "notes": notes, "truth_mean": float(truth.mean()), "n": len(val)}
    return table, fitted, info


def main(argv=None) -> pd.DataFrame:
    """Print the table (returned too) and the fitted model."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block", type=int, default=10, help="block size, m (divides 260 and 300)")
    ap.add_argument("--radius", type=float, default=100.0, help="search radius, m")
    ap.add_argument("--max-samples", type=int, default=16)
    args = ap.parse_args(argv)
    table, fitted, info = compare(args.block, args.radius, args.max_samples)
    print(
        f"Walker Lake V: {info['n']} samples, {int(table['blocks'].iloc[0])} blocks of "
        f"{args.block} x {args.block} m (truth mean {info['truth_mean']:.2f} ppm); search: "
        f"circle of {args.radius:g} m, 1 to {args.max_samples} samples"
    )
    with pd.option_context("display.width", 160):
        print(table.drop(columns="blocks").round(3).to_string())
    nn = table.loc["NN polygonal", "rmse"]
    print(f"\nOK fitted RMSE / NN polygonal RMSE = {table.loc['OK fitted', 'rmse'] / nn:.3f}")
    print(f"fitted in {info['fit_s']:.1f} s: {fitted.to_dict()}")
    for note in info["notes"]:
        print("note:", note)
    return table


if __name__ == "__main__":
    main()
