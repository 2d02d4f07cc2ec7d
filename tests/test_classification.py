"""Resource classes: the first rule a block meets, on the first grade's kriging outputs."""

import numpy as np
import xarray as xr

from estimator.config import parse_config
from estimator.estimation import classify


def test_first_matching_rule_wins_and_unestimated_blocks_stay_unclassified():
    raw = {
        "name": "t",
        "data": {"samples": "s.csv"},
        "grades": ["pd"],
        "block_model": {"origin": [0, 0, 0], "block_size": [1, 1, 1], "shape": [5, 1, 1]},
        "estimation": {"passes": [{"ranges": [10, 10, 10]}, {"scale": 2.0}]},
        "classification": {
            "classes": [
                {"name": "measured", "max_pass": 1, "min_slope": 0.8, "min_holes": 3},
                {"name": "indicated", "max_pass": 1, "min_slope": 0.5},
                {"name": "inferred", "max_pass": 2},
            ]
        },
    }
    cfg = parse_config(raw, check_files=False)
    dims = ("domain", "z", "y", "x")

    def var(values):
        return (dims, np.array(values, dtype=float).reshape(1, 1, 1, 5))

    ds = xr.Dataset(
        {
            "pd": var([1.0, 2.0, 3.0, 4.0, np.nan]),
            "pd_pass": var([1, 1, 1, 2, 0]),
            "pd_slope": var([0.9, 0.9, 0.6, 0.95, np.nan]),
            "pd_holes": var([3, 2, 5, 6, 0]),
            "pd_n": var([20, 20, 20, 20, 0]),
            "pd_dist": var([0.3, 0.3, 0.3, 0.3, np.nan]),
        }
    )
    out = classify(ds, cfg)
    assert out["class"].values.ravel().tolist() == [
        "measured",
        "indicated",
        "indicated",
        "inferred",
        "",
    ]
