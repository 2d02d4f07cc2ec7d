"""Composites left out before estimation: each is counted in the data report."""

import numpy as np
import pandas as pd

from estimator.compositing import drop_coincident, drop_empty_composites
from estimator.datareport import DataReport


def frame(holes, xyz, domain="ore"):
    n = len(holes)
    return pd.DataFrame(
        {
            "hole_id": holes,
            "from": np.arange(n, dtype=float),
            "to": np.arange(n, dtype=float) + 1,
            "x": [p[0] for p in xyz],
            "y": [p[1] for p in xyz],
            "z": [p[2] for p in xyz],
            "domain": domain,
            "pd": np.arange(n, dtype=float),
        }
    )


def test_coincident_composites_keep_the_first_hole_by_name_whatever_the_order():
    xyz = [(0, 0, 0), (0, 0, -1), (0, 0, 0), (0, 0, -1), (5, 0, 0)]
    comps = frame(["B", "B", "A", "A", "C"], xyz)
    for order in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0]):
        report = DataReport()
        out = drop_coincident(comps.iloc[order].reset_index(drop=True), report)
        assert sorted(out["hole_id"]) == ["A", "A", "C"]
        assert report.counts() == {"coincident_composite": 1}
        assert report.rows[0]["hole"] == "B"
        assert "hole A kept" in report.rows[0]["action"]


def test_no_coincident_composites_returns_input():
    comps = frame(["A", "B"], [(0, 0, 0), (0, 0, 1e-9)])
    report = DataReport()
    assert drop_coincident(comps, report) is comps
    assert len(report) == 0


def test_empty_composites_are_counted_per_domain():
    comps = pd.DataFrame(
        {
            "hole_id": ["a", "a", "b"],
            "length": [2.0, 2.0, 3.0],
            "domain": ["ore", "ore", "waste"],
            "pd": [np.nan, 1.0, np.nan],
            "covered_pd": [0.0, 2.0, 0.0],
        }
    )
    report = DataReport()
    out = drop_empty_composites(comps, ["pd"], report)
    assert len(out) == 1
    assert report.counts() == {"empty_composite": 2}
    assert "1 composites in domain ore (2 length units)" in report.rows[0]["what"]
