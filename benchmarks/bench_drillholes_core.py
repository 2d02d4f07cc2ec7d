"""Benchmarks: desurvey, compositing and intercepts on the real Babbitt drillholes.

asv-style (``setup`` + ``time_*``); run directly for a quick timing:
``python benchmarks/bench_drillholes_core.py [DATA_DIR]``. Babbitt (pygslib, MIT) is in feet,
with ``DIP`` positive down; it is read here with plain pandas (the benchmark does not depend on
the reader).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from estimator.compositing import composite
from estimator.drillholes.desurvey import desurvey
from estimator.intercepts import find_intercepts

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "babbitt"


def load_babbitt(folder: Path = DATA):
    """Collars, surveys (dip negative down) and assays (domain "all") in canonical columns."""
    collars = pd.read_csv(folder / "collar_BABBITT.csv").rename(
        columns={"BHID": "hole_id", "XCOLLAR": "x", "YCOLLAR": "y", "ZCOLLAR": "z"}
    )
    surveys = pd.read_csv(folder / "survey_BABBITT.csv").rename(
        columns={"BHID": "hole_id", "AT": "depth", "AZ": "azimuth", "DIP": "dip"}
    )
    surveys["dip"] = -surveys["dip"]  # the file is positive down
    assays = pd.read_csv(folder / "assay_BABBITT.csv").rename(
        columns={"BHID": "hole_id", "FROM": "from", "TO": "to"}
    )
    assays.columns = [c.lower() for c in assays.columns]
    for frame in (collars, surveys, assays):
        frame["hole_id"] = frame["hole_id"].astype(str)
    assays["domain"] = "all"
    assays["tranche"] = "babbitt"
    return collars, surveys, assays


class DrillholesCore:
    """Desurvey of every assay mid-point, 10 ft composites, and intercepts."""

    def setup(self):
        self.collars, self.surveys, self.assays = load_babbitt()
        self.mid = 0.5 * (self.assays["from"] + self.assays["to"]).to_numpy()
        self.comps = composite(self.assays, ["cu", "ni"], 10.0)

    def time_desurvey_assay_midpoints(self):
        desurvey(self.collars, self.surveys, self.assays["hole_id"], self.mid)

    def time_composite_10ft(self):
        composite(self.assays, ["cu", "ni", "s", "fe"], 10.0)

    def time_desurvey_composites(self):
        mid = 0.5 * (self.comps["from"] + self.comps["to"])
        desurvey(self.collars, self.surveys, self.comps["hole_id"], mid)

    def time_intercepts(self):
        find_intercepts(self.assays, "cu", 0.3, 30.0, 10.0, including=0.6)


def _best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        DATA = Path(sys.argv[1])
    bench = DrillholesCore()
    bench.setup()
    print(
        f"Babbitt: {len(bench.collars)} collars, {len(bench.surveys)} survey rows, "
        f"{len(bench.assays)} assay intervals, {len(bench.comps)} composites (10 ft)"
    )
    for name in sorted(n for n in dir(bench) if n.startswith("time_")):
        t = _best_of(getattr(bench, name))
        print(f"{name:32s} {t * 1e3:8.1f} ms")
    xyz = desurvey(bench.collars, bench.surveys, bench.assays["hole_id"], bench.mid)
    print("all mid-points finite:", bool(np.isfinite(xyz).all()))
