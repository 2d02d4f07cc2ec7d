"""Tests for downhole compositing (SPEC section 6)."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from estimator.compositing import composite

NAN = float("nan")


def _iv(rows, hole="A", tranche="t1"):
    """rows: (from, to, domain, pd)."""
    df = pd.DataFrame(rows, columns=["from", "to", "domain", "pd"])
    df.insert(0, "hole_id", hole)
    df["tranche"] = tranche
    return df


def _ft(out):
    return out[["from", "to"]].to_numpy().tolist()


# --- hand-computed means ------------------------------------------------------------------------


def test_length_weighted_means_by_hand():
    iv = _iv([(0, 1, "A", 1.0), (1, 3, "A", 2.0), (3, 4, "A", 4.0)])
    out = composite(iv, ["pd"], 2.0)
    assert _ft(out) == [[0, 2], [2, 4]]
    npt.assert_allclose(out["pd"], [(1 * 1 + 1 * 2) / 2, (1 * 2 + 1 * 4) / 2], rtol=1e-15)
    npt.assert_allclose(out["covered_pd"], [2.0, 2.0])
    npt.assert_allclose(out["length"], [2.0, 2.0])
    assert list(out.columns) == [
        "hole_id", "from", "to", "length", "domain", "tranche", "pd", "covered_pd",
    ]  # fmt: skip


def test_gap_within_a_domain_reduces_covered_length():
    iv = _iv([(0, 1, "A", 2.0), (2, 4, "A", 5.0)])  # gap 1-2 in the same domain
    out = composite(iv, ["pd"], 2.0)
    assert _ft(out) == [[0, 2], [2, 4]]
    npt.assert_allclose(out["pd"], [2.0, 5.0])
    npt.assert_allclose(out["covered_pd"], [1.0, 2.0])


def test_composite_wholly_in_a_gap_is_not_output():
    iv = _iv([(0, 1, "A", 2.0), (6, 7, "A", 3.0)])
    out = composite(iv, ["pd"], 2.0)
    assert _ft(out) == [[0, 2], [6, 7]]


def test_missing_grades_are_not_zeros():
    iv = _iv([(0, 2, "A", NAN), (2, 3, "A", 4.0), (3, 4, "A", 2.0)])
    out = composite(iv, ["pd"], 4.0)
    npt.assert_allclose(out["pd"], [3.0])
    npt.assert_allclose(out["covered_pd"], [2.0])
    none = composite(_iv([(0, 2, "A", NAN)]), ["pd"], 2.0)
    assert np.isnan(none["pd"].iloc[0])
    assert none["covered_pd"].iloc[0] == 0.0


FIVE = [(i, i + 1, "A", float(i + 1)) for i in range(5)]  # 0-5 m, grades 1..5


def test_residual_merged_into_previous_composite():
    out = composite(_iv(FIVE), ["pd"], 2.0, min_length=1.5)
    assert _ft(out) == [[0, 2], [2, 5]]
    npt.assert_allclose(out["pd"], [1.5, 4.0])
    npt.assert_allclose(out["length"], [2.0, 3.0])


def test_residual_dropped_and_returned():
    out, dropped = composite(
        _iv(FIVE), ["pd"], 2.0, min_length=1.5, residual="drop", return_dropped=True
    )
    assert _ft(out) == [[0, 2], [2, 4]]
    npt.assert_allclose(out["pd"], [1.5, 3.5])
    assert dropped.to_dict("records") == [
        {"hole_id": "A", "domain": "A", "from": 4.0, "to": 5.0, "length": 1.0}
    ]
    _, none = composite(_iv(FIVE), ["pd"], 2.0, min_length=1.5, return_dropped=True)
    assert len(none) == 0


def test_residual_at_least_min_length_is_its_own_composite():
    out = composite(_iv(FIVE), ["pd"], 2.0)  # default min_length = 1.0
    assert _ft(out) == [[0, 2], [2, 4], [4, 5]]
    npt.assert_allclose(out["pd"], [1.5, 3.5, 5.0])


def test_exact_multiple_has_no_residual_despite_rounding():
    iv = _iv([(0.0, 0.1, "A", 1.0), (0.1, 0.3, "A", 2.0)])
    out = composite(iv, ["pd"], 0.1)
    assert len(out) == 3
    assert out["to"].iloc[-1] == 0.3


@pytest.mark.parametrize("residual", ["merge", "drop"])
def test_run_shorter_than_min_length_stays_one_composite(residual):
    iv = _iv([(0, 0.5, "A", 2.0), (0.5, 10, "B", 1.0)])
    out = composite(iv, ["pd"], 2.0, residual=residual)
    a = out[out["domain"] == "A"]
    assert _ft(a) == [[0, 0.5]]
    npt.assert_allclose(a["pd"], [2.0])


def test_domain_boundary_restarts_compositing():
    iv = _iv([(0, 3, "A", 1.0), (3, 6, "B", 2.0)])
    out = composite(iv, ["pd"], 2.0)
    assert _ft(out) == [[0, 2], [2, 3], [3, 5], [5, 6]]
    assert out["domain"].tolist() == ["A", "A", "B", "B"]
    npt.assert_allclose(out["pd"], [1.0, 1.0, 2.0, 2.0])


def test_gap_before_a_different_domain_restarts_at_its_first_sample():
    iv = _iv([(0, 3, "A", 1.0), (4, 7, "B", 2.0)])
    out = composite(iv, ["pd"], 2.0)
    assert _ft(out) == [[0, 2], [2, 3], [4, 6], [6, 7]]


def test_unflagged_stretch_ends_a_run_and_is_not_composited():
    iv = _iv([(0, 2, "A", 1.0), (2, 3, "", 9.0), (3, 5, "A", 3.0)])
    out = composite(iv, ["pd"], 2.0)
    assert _ft(out) == [[0, 2], [3, 5]]
    npt.assert_allclose(out["pd"], [1.0, 3.0])
    both = composite(iv, ["pd"], 2.0, include_unflagged=True)
    assert _ft(both) == [[0, 2], [2, 3], [3, 5]]
    assert both["domain"].tolist() == ["A", "", "A"]


def test_no_domain_column_with_include_unflagged():
    iv = _iv(FIVE).drop(columns="domain")
    out = composite(iv, ["pd"], 5.0, include_unflagged=True)
    npt.assert_allclose(out["pd"], [3.0])
    assert out["domain"].tolist() == [""]
    with pytest.raises(ValueError, match="lack column"):
        composite(iv, ["pd"], 5.0)


def test_holes_keep_their_order_and_rows_may_come_unsorted():
    a = _iv([(2, 4, "A", 3.0), (0, 2, "A", 1.0)], hole="Z")
    b = _iv([(0, 2, "A", 5.0)], hole="B")
    out = composite(pd.concat([a, b]), ["pd"], 2.0)
    assert out["hole_id"].tolist() == ["Z", "Z", "B"]
    npt.assert_allclose(out["pd"], [1.0, 3.0, 5.0])


def test_multiple_grades_at_once():
    iv = _iv([(0, 1, "A", 1.0), (1, 2, "A", NAN), (2, 4, "A", 4.0)])
    iv["cu"] = [NAN, 0.5, 0.25]
    out = composite(iv, ["pd", "cu"], 4.0)
    npt.assert_allclose(out[["pd", "cu"]].to_numpy(), [[(1 + 8) / 3, (0.5 + 0.5) / 3]])
    npt.assert_allclose(out[["covered_pd", "covered_cu"]].to_numpy(), [[3.0, 3.0]])
    assert list(out.columns)[-4:] == ["pd", "cu", "covered_pd", "covered_cu"]


def test_tranche_is_the_latest_contributing():
    iv = pd.concat(
        [
            _iv([(0, 1, "A", 1.0)], tranche="2011-06-28"),
            _iv([(1, 2, "A", 2.0)], tranche="2011-09-14"),
            _iv([(2, 3, "A", 3.0)], tranche="2011-06-28"),
            _iv([(3, 4, "A", NAN)], tranche="2011-09-14"),  # unsampled: does not contribute
            _iv([(4, 6, "A", NAN)], tranche="2012-01-01"),  # none sampled: all overlapping count
        ]
    )
    out = composite(iv, ["pd"], 2.0)
    assert out["tranche"].tolist() == ["2011-09-14", "2011-06-28", "2012-01-01"]
    ordered = composite(iv, ["pd"], 2.0, tranche_order=["2012-01-01", "2011-09-14", "2011-06-28"])
    assert ordered["tranche"].tolist() == ["2011-06-28", "2011-06-28", "2012-01-01"]


def test_constant_grade_composites_to_itself():
    rng = np.random.default_rng(0)
    n = 300
    lengths = rng.uniform(0.2, 3.0, n)
    gaps = np.where(rng.random(n) < 0.2, rng.uniform(0, 2, n), 0.0)
    frm = np.cumsum(lengths + gaps) - lengths
    iv = pd.DataFrame(
        {
            "hole_id": np.repeat(["A", "B", "C"], 100),
            "from": frm,
            "to": frm + lengths,
            "domain": rng.choice(["x", "y"], n),
            "pd": np.where(rng.random(n) < 0.1, NAN, 3.7),
        }
    )
    out = composite(iv, ["pd"], 2.5)
    sampled = out["covered_pd"] > 0
    npt.assert_allclose(out.loc[sampled, "pd"], 3.7, rtol=1e-14)
    assert out.loc[~sampled, "pd"].isna().all()


def test_empty_after_filtering():
    out = composite(_iv([(0, 1, "", 1.0)]), ["pd"], 2.0)
    assert len(out) == 0
    assert "covered_pd" in out.columns


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"length": 0.0}, "positive"),
        ({"length": 2.0, "min_length": -1.0}, "min_length"),
        ({"length": 2.0, "residual": "keep"}, "residual"),
    ],
    ids=["length", "min_length", "residual"],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        composite(_iv(FIVE), ["pd"], **kwargs)


def test_negative_interval_is_rejected():
    with pytest.raises(ValueError, match="to < from in hole A: 2-1"):
        composite(_iv([(2, 1, "A", 1.0)]), ["pd"], 2.0)


# --- conservation property ----------------------------------------------------------------------


@st.composite
def _holes(draw):
    rows = []
    for h in range(draw(st.integers(1, 3))):
        depth = draw(st.floats(0, 5))
        for _ in range(draw(st.integers(1, 12))):
            depth += draw(st.sampled_from([0.0, 0.0, 0.0, draw(st.floats(0.01, 3))]))  # gaps
            ln = draw(st.floats(0.05, 4))
            dom = draw(st.sampled_from(["A", "A", "B", ""]))
            g1 = draw(st.one_of(st.just(NAN), st.floats(0, 50)))
            g2 = draw(st.one_of(st.just(NAN), st.floats(0, 5)))
            rows.append((f"H{h}", depth, depth + ln, dom, g1, g2))
            depth += ln
    return pd.DataFrame(rows, columns=["hole_id", "from", "to", "domain", "pd", "cu"])


@settings(deadline=None, max_examples=100)
@given(
    iv=_holes(),
    length=st.floats(0.3, 6),
    min_frac=st.floats(0, 1),
    residual=st.sampled_from(["merge", "drop"]),
)
def test_metal_is_conserved_within_each_domain(iv, length, min_frac, residual):
    out, dropped = composite(
        iv,
        ["pd", "cu"],
        length,
        min_length=min_frac * length,
        residual=residual,
        return_dropped=True,
    )
    assert (out["to"] > out["from"]).all()
    for g in ("pd", "cu"):
        ok = iv[g].notna() & (iv["domain"] != "")
        ln = iv["to"] - iv["from"]
        before = (iv[g] * ln)[ok].groupby(iv["domain"][ok]).sum()
        cov_before = ln[ok].groupby(iv["domain"][ok]).sum()
        okc = out[f"covered_{g}"] > 0
        after = (out[g] * out[f"covered_{g}"])[okc].groupby(out["domain"][okc]).sum()
        cov_after = out[f"covered_{g}"].groupby(out["domain"]).sum()
        if residual == "merge":
            assert len(dropped) == 0
            pd.testing.assert_series_equal(
                after.reindex(before.index, fill_value=0.0),
                before,
                check_names=False,
                check_dtype=False,
                rtol=1e-9,
            )
            pd.testing.assert_series_equal(
                cov_after.reindex(cov_before.index, fill_value=0.0),
                cov_before,
                check_names=False,
                check_dtype=False,
                rtol=1e-9,
            )
        else:  # dropping only ever loses metal
            assert (after.reindex(before.index, fill_value=0.0) <= before * (1 + 1e-9) + 1e-9).all()
    # composites never straddle a domain boundary and never overlap
    for _, c in out.groupby("hole_id"):
        assert (c["from"].to_numpy()[1:] >= c["to"].to_numpy()[:-1] - 1e-9).all()
