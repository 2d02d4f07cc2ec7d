"""Variography on real clustered 2-D data: Walker Lake V, scored against its exhaustive truth.

The 470 samples (``tests/data/walker-lake/walker.dat``, Isaaks & Srivastava 1989) are read as
positioned samples without hole ids and fitted by the variography stage with default settings;
the model's block estimates are scored against block means of the 78,000-point exhaustive V.
``benchmarks/walker_lake.py`` prints the full comparison (published model, inverse distance).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from estimator.config import parse_config
from estimator.datareport import DataReport
from estimator.errors import EstimationWarning
from estimator.io.drillholes import read_samples
from estimator.kriging.estimate import SearchPass, estimate_blocks
from estimator.variography.models import rotation_matrix
from estimator.variography.stage import variography_stage

DATA = Path(__file__).parent / "data" / "walker-lake"
BLOCK = 10  # block size, m: 26 x 30 blocks of 100 exhaustive points each


@pytest.fixture(scope="module")
def walker():
    """Config, samples as the stage gets them, fitted model and tables, block truth."""
    raw = {
        "name": "walker-lake",
        "data": {
            "samples": "walker.dat",
            "columns": {
                "x": "Xlocation in meter",
                "y": "Ylocation in meter",
                "v": "V variable, concentration in ppm",
            },
        },
        "grades": ["v"],
    }
    cfg = parse_config(raw, base=DATA)
    samples = read_samples(cfg.data, cfg.grades, DataReport())
    samples["domain"] = "all"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        models, tables, _, _ = variography_stage(cfg, samples, plots=False)
    v = pd.read_csv(DATA / "Exhaustive_set.csv")["V"].to_numpy(float).reshape(300, 260)
    truth = v.reshape(300 // BLOCK, BLOCK, 260 // BLOCK, BLOCK).mean(axis=(1, 3)).ravel()
    c = 0.5 + np.arange(0, 260, BLOCK) + 0.5 * BLOCK, 0.5 + np.arange(0, 300, BLOCK) + 0.5 * BLOCK
    gx, gy = np.meshgrid(*c)
    centres = np.c_[gx.ravel(), gy.ravel(), np.zeros(gx.size)]
    o = np.arange(BLOCK) - 0.5 * (BLOCK - 1)
    ox, oy = np.meshgrid(o, o)
    offsets = np.c_[ox.ravel(), oy.ravel(), np.zeros(ox.size)]  # the 1 m exhaustive points
    return samples, models["all"]["v"], tables[0], centres, offsets, truth


def test_walker_lake_no_downhole_floor_and_short_lags(walker):
    """No holes: no down-hole variogram; the lag is the closest sample spacing (median nearest
    neighbour 6 m; it was 15.5 m, half the diagonal over 12) and the nugget stays below the first
    omnidirectional lag (40,470 at 7 m; fitted 19,580). Before: nugget 45,690, half the variance,
    floored at a "down-hole" variogram of the samples in file order."""
    samples, model, table, *_ = walker
    xyz = samples[["x", "y", "z"]].to_numpy(float)
    assert "downhole" not in set(table["direction"])
    nn = cKDTree(xyz).query(xyz, k=2)[0][:, 1]
    assert table["lag"].min() == pytest.approx(np.median(nn))
    omni = table[(table["direction"] == "omni") & (table["n_pairs"] >= 30)]
    assert model.nugget < omni["gamma"].iloc[0], (model, omni.head(3))
    for st in model.structures:
        assert st.ranges[0] >= st.ranges[1] >= st.ranges[2], st.ranges
        assert abs(rotation_matrix(st.angles)[2, 2]) == pytest.approx(1.0)  # minor axis vertical


def test_walker_lake_fitted_model_beats_nearest_neighbour(walker):
    """Block RMSE of ordinary kriging with the fitted model at least 5 % below nearest neighbour.

    10 x 10 m blocks (780) against block means of the exhaustive V; both methods use the same
    search (a 100 m circle, 1 to 16 samples). OK: block kriging, discretised by the block's 100
    exhaustive points; NN: the nearest sample to each of those points, averaged (polygonal). Seen:
    OK 96.5 (slope of truth on estimate 1.01, bias +3.9 %), NN 109.0 (0.86, -0.7 %): 11.5 %
    below; the published model (Isaaks & Srivastava) gives 92.0. Before: 106.1 (2.7 % below).
    The 5 % margin holds whatever the lag (5-10 m: 96.6-99.6), with 2 or 3 structures (96.5,
    96.8) and on random 90 % subsets of the samples (96.5-100.4): always 7.9 % or more below NN.
    """
    samples, model, _, centres, offsets, truth = walker
    xyz = samples[["x", "y", "z"]].to_numpy(float)
    v = samples["v"].to_numpy(float)
    holes = np.arange(len(v), dtype=np.int64)
    passes = [SearchPass(ranges=(100.0,) * 3, angles=(0.0, 0.0, 0.0), min_samples=1,
                         max_samples=16)]  # fmt: skip
    ok = estimate_blocks(centres, offsets, xyz, v, holes, model, passes, "ok")["estimate"]
    points = (centres[:, None, :] + offsets[None]).reshape(-1, 3)
    nn = estimate_blocks(points, np.zeros((1, 3)), xyz, v, holes, None, passes, "nn")["estimate"]
    nn = nn.reshape(len(centres), -1).mean(axis=1)
    assert np.isfinite(ok).all() and np.isfinite(nn).all()

    def rmse(e):
        return float(np.sqrt(np.mean((e - truth) ** 2)))

    assert rmse(ok) < 0.95 * rmse(nn), (rmse(ok), rmse(nn), model)
    slope = np.polyfit(ok, truth, 1)[0]
    assert 0.9 < slope < 1.1, slope
