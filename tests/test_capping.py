import numpy as np
import numpy.testing as npt

from estimator.capping import cap_value, cap_values


def test_fixed_cap_leaves_nan_and_low_values():
    v = np.array([1.0, 50.0, np.nan, 30.0, 31.0])
    capped, cap = cap_values(v, 30.0)
    assert cap == 30.0
    npt.assert_array_equal(capped, [1.0, 30.0, np.nan, 30.0, 30.0])


def test_percentile_rule_by_hand():
    # 11 values 0..10: the 90th percentile with linear interpolation is 9.0 exactly
    v = np.arange(11.0)
    assert cap_value(v, "p90") == 9.0
    # 99.5th of 0..10: rank 0.995 * 10 = 9.95 -> 9.95
    npt.assert_allclose(cap_value(v, "p99.5"), 9.95, rtol=1e-15)
    capped, _ = cap_values(v, "p90")
    assert capped.max() == 9.0
    assert (capped == 9.0).sum() == 2


def test_apply_caps_reports_each_capped_composite_and_never_nan():
    import pandas as pd

    from estimator.capping import apply_caps
    from estimator.datareport import DataReport

    comps = pd.DataFrame(
        {
            "hole_id": ["a", "a", "b", "c"],
            "from": [0.0, 2.0, 0.0, 0.0],
            "to": [2.0, 4.0, 2.0, 2.0],
            "domain": ["ore", "ore", "ore", "waste"],
            "pd": [40.0, np.nan, 10.0, 99.0],
        }
    )
    report = DataReport()
    out = apply_caps(comps, {"ore": {"pd": 30.0}}, report)
    npt.assert_array_equal(out["pd"], [30.0, np.nan, 10.0, 99.0])  # waste is not capped
    assert report.counts() == {"capped": 1}
    assert report.rows[0]["hole"] == "a"
    assert "40" in report.rows[0]["what"]
    npt.assert_array_equal(comps["pd"], [40.0, np.nan, 10.0, 99.0])  # input untouched
