"""Capping analysis: table against direct numpy, Parrish deciles by hand, log-probability break."""

from __future__ import annotations

import re

import numpy as np
import numpy.testing as npt
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from estimator.capping import cap_value
from estimator.capping_analysis import (
    capping_analysis,
    capping_table,
    cv_target_cap,
    decile_analysis,
    log_probability_break,
    plot_log_probability,
)
from estimator.errors import DataError


def mixture(seed, mu2=3.5, s2=0.3, n1=1900, n2=100):
    rng = np.random.default_rng(seed)
    a, b = rng.lognormal(0.0, 0.5, n1), rng.lognormal(mu2, s2, n2)
    x = np.concatenate([a, b])
    rng.shuffle(x)
    return x, a, b


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_table_equals_direct_numpy(weighted):
    x, _, _ = mixture(0)
    rng = np.random.default_rng(5)
    w = rng.uniform(0.5, 2.0, x.size) if weighted else None
    table = capping_table(x, w, cv_target=1.2, configured=25.0)
    ww = np.ones_like(x) if w is None else w
    for row in table.itertuples():
        if np.isnan(row.cap):
            continue
        c = np.minimum(x, row.cap)
        mean = np.average(c, weights=ww)
        cv = np.sqrt(np.average((c - mean) ** 2, weights=ww)) / mean
        m0 = np.average(x, weights=ww)
        npt.assert_allclose(row.mean_after, mean, rtol=1e-12)
        npt.assert_allclose(row.cv_after, cv, rtol=1e-12)
        npt.assert_allclose(row.mean_before, m0, rtol=1e-12)
        npt.assert_allclose(
            row.metal_removed_pct,
            100 * np.sum(ww * np.maximum(x - row.cap, 0)) / np.sum(ww * x),
            rtol=1e-12,
        )
        assert row.n_capped == int((x > row.cap).sum())
    if not weighted:  # unweighted: the formulas of the issue, without any weight
        npt.assert_allclose(table["cv_before"], np.std(x) / np.mean(x), rtol=1e-12)
        r = table.set_index("rule").loc["p99"]
        npt.assert_allclose(
            r.metal_removed_pct, 100 * np.sum(np.maximum(x - r.cap, 0)) / np.sum(x), rtol=1e-12
        )


def test_percentiles_and_configured_rule_match_the_pipeline_cap():
    x, _, _ = mixture(1)
    res = capping_analysis(x, configured="p99.5")
    for p, c in res.percentiles.items():
        npt.assert_allclose(c, np.percentile(x, p), rtol=1e-12)
    assert res.configured == cap_value(x, "p99.5")
    assert list(res.table["rule"][:6]) == ["p90", "p95", "p97.5", "p99", "p99.5", "p99.9"]
    assert res.table["rule"].iloc[-1] == "configured"


def test_decile_rule_on_a_hand_built_sample():
    # 100 samples: metal 90 + 16 + 20 + 60 = 186; top percentile 32.3 %, 99th 10.75 %, 98th 1.1 %
    v = np.array([1.0] * 90 + [2.0] * 8 + [20.0, 60.0])
    d = decile_analysis(np.random.default_rng(0).permutation(v))
    npt.assert_allclose(d.deciles["metal_pct"].iloc[-1], 100 * 96 / 186, rtol=1e-12)
    npt.assert_allclose(d.top_decile["metal_pct"].iloc[-1], 100 * 60 / 186, rtol=1e-12)
    assert d.warranted and d.cap == 2.0
    assert "below the 99th percentile" in d.reason


def test_decile_rule_fires_on_the_top_decile_alone():
    # top decile 63 / 153 = 41.2 % (> 40 %), top percentile 9 / 153 = 5.9 % (<= 10 %)
    v = np.array([1.0] * 90 + [6.0] * 9 + [9.0])
    d = decile_analysis(v)
    assert d.warranted and d.cap == 6.0


def test_decile_rule_no_cap_for_an_even_sample():
    d = decile_analysis(np.linspace(1.0, 2.0, 200))
    assert not d.warranted and d.cap is None
    res = capping_analysis(np.linspace(1.0, 2.0, 200))
    row = res.table.set_index("rule").loc["decile"]
    assert np.isnan(row.cap) and row.n_capped == 0 and "no cap indicated" in row.note


@pytest.mark.parametrize("seed", range(5))
def test_break_is_the_top_of_the_lower_population(seed):
    x, a, _ = mixture(seed)  # 95 % LN(0, 0.5) and 5 % LN(3.5, 0.3): a clear gap
    assert log_probability_break(x) == a.max()


@pytest.mark.parametrize("seed", range(3))
def test_break_in_an_overlapping_mixture_is_near_the_mixing_quantile(seed):
    x, _, _ = mixture(seed, mu2=2.5, s2=0.5)

    def cdf(g):  # the mixture's own CDF; the populations part at F = 0.95
        return 0.95 * norm.cdf(np.log(g) / 0.5) + 0.05 * norm.cdf((np.log(g) - 2.5) / 0.5) - 0.95

    q95 = brentq(cdf, 0.1, 100.0)
    # sampling noise of 100 high samples: within 15 % of the theoretical boundary
    assert abs(log_probability_break(x) - q95) < 0.15 * q95


def test_break_needs_enough_samples():
    assert log_probability_break([1.0, 2.0, 3.0, 4.0]) is None


def test_cv_target_cap_is_the_highest_cap_meeting_the_target():
    x, _, _ = mixture(2)
    c = cv_target_cap(x, target=1.0)
    capped = np.minimum(x, c)
    npt.assert_allclose(np.std(capped) / np.mean(capped), 1.0, rtol=1e-9)
    up = np.minimum(x, c * 1.01)
    assert np.std(up) / np.mean(up) > 1.0
    # already below the target: nothing capped
    assert cv_target_cap(np.linspace(1, 2, 50), target=1.0) == 2.0
    # half the grades zero: the CV cannot go below 1
    assert cv_target_cap([0.0] * 5 + [1.0, 2.0, 3.0, 4.0, 5.0], target=0.5) is None
    res = capping_analysis(x, cv_target=1.0)
    assert res.cv_target == c
    assert capping_analysis(x).cv_target is None


def test_missing_values_are_ignored_and_counted():
    x, _, _ = mixture(3)
    res = capping_analysis(np.concatenate([x, [np.nan] * 7]), configured=20.0)
    ref = capping_analysis(x, configured=20.0)
    assert res.n_missing == 7 and res.n == x.size
    assert res.table.drop(columns="note").equals(ref.table.drop(columns="note"))


@pytest.mark.parametrize(
    ("values", "weights", "kwargs", "message"),
    [
        ([], None, {}, "no grades given"),
        ([np.nan, np.nan], None, {}, "all 2 grades are missing (NaN)"),
        ([1.0, 2.0, 3.0], [1.0, -1.0, 1.0], {}, "sample 1 has weight -1.0"),
        ([1.0, 2.0, 3.0], [1.0, 1.0], {}, "2 weights for 3 grades"),
        ([1.0, -2.0, 3.0], None, {}, "sample 1 has a negative grade (-2)"),
        ([0.0, 0.0], None, {}, "every grade is 0"),
        ([1.0, 2.0], None, {"configured": "top"}, "configured cap 'top' is not understood"),
        ([1.0, 2.0], None, {"percentiles": (101,)}, "percentile 101 is outside 0-100"),
        ([1.0, 2.0], None, {"cv_target": -1}, "the target CV must be > 0; got -1"),
    ],
    ids=["empty", "all-nan", "neg-weight", "weight-length", "neg-grade", "zeros", "rule", "pct",
         "cv"],
)
def test_bad_input_is_a_data_error(values, weights, kwargs, message):
    with pytest.raises(DataError, match=re.escape(message)):
        capping_analysis(values, weights, **kwargs)


def test_plot_draws_the_cap_and_marks_candidates():
    x, _, _ = mixture(4)
    res = capping_analysis(x, configured=20.0)
    fig = plot_log_probability(x, cap=20.0, candidates=res.candidates, title="Offset pd",
                               unit="g/t")  # fmt: skip
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_ylabel() == "grade (g/t)" and "normal scale" in ax.get_xlabel()
    labels = [line.get_label() for line in ax.get_lines()]
    assert "cap 20 g/t" in labels
    assert sum(lab.split(":")[0] in res.candidates for lab in labels) == len(res.candidates)
