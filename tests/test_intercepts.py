"""Tests for significant intercepts and their press-release rendering."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from estimator.intercepts import INTERCEPT_COLUMNS, find_intercepts, format_intercepts

NAN = float("nan")


def _hole(grades, hole="A", lengths=None, start=0.0, zones=None):
    lengths = np.ones(len(grades)) if lengths is None else np.asarray(lengths, dtype=float)
    frm = start + np.concatenate(([0.0], np.cumsum(lengths)[:-1]))
    df = pd.DataFrame({"hole_id": hole, "from": frm, "to": frm + lengths, "pd": grades})
    df["domain"] = "offset" if zones is None else zones
    return df


def _spans(t, kind=None):
    t = t if kind is None else t[t["kind"] == kind]
    return t[["from", "to"]].to_numpy().tolist()


def test_trailing_dilution_is_trimmed_and_grade_is_length_weighted():
    a = _hole([2.0, 0.5, 3.0, 0.1])
    t = find_intercepts(a, "pd", 1.0, 2.0, 1.0)
    assert list(t.columns) == list(INTERCEPT_COLUMNS)
    assert _spans(t) == [[0, 3]]
    npt.assert_allclose(t["grade"], [(2 + 0.5 + 3) / 3], rtol=1e-15)
    npt.assert_allclose(t["length"], [3.0])
    assert t["kind"].tolist() == ["interval"]
    assert t["zone"].tolist() == ["offset"]


def test_long_dilution_breaks_the_interval():
    # 3 m below cut-off (three samples) between two 2 m runs at 5 g/t
    a = _hole([5.0, 0.0, 0.2, NAN, 5.0], lengths=[2, 1, 1, 1, 2])
    t = find_intercepts(a, "pd", 1.0, 2.0, max_dilution=2.0)
    assert _spans(t) == [[0, 2], [5, 7]]
    npt.assert_allclose(t["grade"], [5.0, 5.0])


def test_short_dilution_is_kept_and_counted_at_its_grade():
    a = _hole([5.0, 0.0, 0.2, NAN, 5.0], lengths=[2, 1, 1, 1, 2])
    t = find_intercepts(a, "pd", 1.0, 2.0, max_dilution=3.0)  # exactly 3 m: allowed
    assert _spans(t) == [[0, 7]]
    npt.assert_allclose(t["grade"], [(10 + 0.2 + 10) / 7])


def test_min_length():
    a = _hole([0.1, 10.0, 0.1])
    assert len(find_intercepts(a, "pd", 1.0, 2.0, 1.0)) == 0
    t = find_intercepts(a, "pd", 1.0, 1.0, 1.0)
    assert _spans(t) == [[1, 2]]


def test_unsampled_counts_as_zero_grade_dilution():
    a = _hole([3.0, NAN, 3.0])
    t = find_intercepts(a, "pd", 1.0, 1.0, 1.0)
    assert _spans(t) == [[0, 3]]
    npt.assert_allclose(t["grade"], [2.0])  # not 3.0: the unsampled metre is at zero


def test_gap_between_samples_counts_as_dilution():
    a = pd.concat([_hole([3.0]), _hole([3.0], start=2.0)])  # gap 1-2
    t = find_intercepts(a, "pd", 1.0, 1.0, 1.0)
    assert _spans(t) == [[0, 3]]
    npt.assert_allclose(t["grade"], [2.0])
    t = find_intercepts(a, "pd", 1.0, 1.0, 0.5)
    assert _spans(t) == [[0, 1], [2, 3]]


def test_second_interval_when_joining_would_fall_below_cutoff():
    # 1.5 and 1.2 g/t metres, 2 m of zero between: joined grade 0.675 < 1
    a = _hole([1.5, 0.0, 0.0, 1.2])
    t = find_intercepts(a, "pd", 1.0, 1.0, 2.0)
    assert _spans(t) == [[0, 1], [3, 4]]
    npt.assert_allclose(t["grade"], [1.5, 1.2])


def _brute_force_longest(g, cutoff, min_length, max_dilution):
    """Longest valid (length, grade) by checking every pair of 1 m samples directly."""
    best = None
    for i in range(len(g)):
        for j in range(i, len(g)):
            if not (g[i] >= cutoff and g[j] >= cutoff):
                continue
            run, worst = 0, 0
            for v in g[i : j + 1]:
                run = run + 1 if not v >= cutoff else 0  # NaN is below cut-off
                worst = max(worst, run)
            grade = np.nansum(g[i : j + 1]) / (j + 1 - i)
            if worst <= max_dilution and grade >= cutoff and j + 1 - i >= min_length:
                cand = (j + 1 - i, grade)
                best = cand if best is None or cand[0] > best[0] else best
    return best


@pytest.mark.parametrize("seed", range(20))
def test_longest_interval_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    g = rng.lognormal(-0.5, 1.0, 40)
    g[rng.random(40) < 0.1] = NAN
    cutoff, min_length, max_dil = 1.0, float(rng.integers(1, 4)), float(rng.integers(0, 4))
    t = find_intercepts(_hole(g), "pd", cutoff, min_length, max_dil)
    best = _brute_force_longest(g, cutoff, min_length, max_dil)
    if best is None:
        assert len(t) == 0
        return
    longest = t.loc[t["length"].idxmax()]
    npt.assert_allclose([longest["length"], longest["grade"]], best, rtol=1e-12)
    assert (t["grade"] >= cutoff).all()
    assert (t["length"] >= min_length).all()
    # intercepts never overlap and start and end on samples at or above cut-off
    assert (t["from"].to_numpy()[1:] >= t["to"].to_numpy()[:-1]).all()
    assert (g[t["from"].astype(int)] >= cutoff).all()
    assert (g[t["to"].astype(int) - 1] >= cutoff).all()


def test_longest_first_greedy_then_the_rest():
    g = [1.2, 0.0, 0.0, 3.0, 0.0, 3.0, 0.2, 0.1, 0.0, 2.0]
    # the longest valid run is 3-10 (8.3 / 7 = 1.19 g/t, its 3 m of dilution allowed);
    # 0-10 would be 9.5 / 10 < 1; what is left above it, 0-1, is a second interval
    t = find_intercepts(_hole(g), "pd", 1.0, 1.0, 3.0)
    assert _spans(t) == [[0, 1], [3, 10]]
    npt.assert_allclose(t["grade"], [1.2, 8.3 / 7])
    # with 2 m dilution allowed, the 3 m at 0.2, 0.1, 0.0 breaks 3-10: 0-6 (7.2 / 6) and 9-10
    t = find_intercepts(_hole(g), "pd", 1.0, 1.0, 2.0)
    assert _spans(t) == [[0, 6], [9, 10]]
    npt.assert_allclose(t["grade"], [7.2 / 6, 2.0])


def test_including_runs():
    g = [2.0, 2.0, 8.0, 9.0, 2.0, 2.0, 10.0, 2.0, 2.0, 2.0]
    t = find_intercepts(_hole(g), "pd", 1.0, 2.0, 0.0, including=5.0)
    assert t["kind"].tolist() == ["interval", "including", "including"]
    assert _spans(t) == [[0, 10], [2, 4], [6, 7]]
    npt.assert_allclose(t["grade"], [4.1, 8.5, 10.0])
    # with 2 m of dilution allowed under the higher cut-off they join: 31 / 5 = 6.2 >= 5
    t = find_intercepts(_hole(g), "pd", 1.0, 2.0, 2.0, including=5.0)
    assert _spans(t, "including") == [[2, 7]]
    npt.assert_allclose(t["grade"].iloc[1], 6.2)
    # a minimum length for "including" rows
    t = find_intercepts(_hole(g), "pd", 1.0, 2.0, 0.0, including=5.0, including_min_length=2.0)
    assert _spans(t, "including") == [[2, 4]]


def test_including_rows_follow_their_interval_and_holes_keep_order():
    a = pd.concat(
        [
            _hole([6.0, 0.0, 0.0, 0.0, 2.0, 2.0], hole="Z"),
            _hole([7.0, 1.0], hole="B"),
        ]
    )
    t = find_intercepts(a, "pd", 1.0, 1.0, 1.0, including=5.0)
    assert t["hole_id"].tolist() == ["Z", "Z", "Z", "B", "B"]
    assert t["kind"].tolist() == ["interval", "including", "interval", "interval", "including"]
    assert _spans(t) == [[0, 1], [0, 1], [4, 6], [0, 2], [0, 1]]


def test_zone_is_the_majority_by_length():
    a = _hole([2.0, 2.0, 2.0, 2.0], lengths=[1, 1, 1, 2], zones=["cowboy"] * 3 + ["offset"])
    t = find_intercepts(a, "pd", 1.0, 1.0, 1.0)
    assert t["zone"].tolist() == ["cowboy"]
    a = _hole([2.0, 2.0], lengths=[1, 2], zones=["", "offset"])
    assert find_intercepts(a, "pd", 1.0, 1.0, 1.0)["zone"].tolist() == ["offset"]
    a = a.drop(columns="domain")
    assert find_intercepts(a, "pd", 1.0, 1.0, 1.0)["zone"].tolist() == [""]


def test_nothing_found_gives_an_empty_table_with_the_columns():
    t = find_intercepts(_hole([0.1, NAN]), "pd", 1.0, 1.0, 1.0)
    assert len(t) == 0
    assert list(t.columns) == list(INTERCEPT_COLUMNS)


def test_bad_arguments():
    with pytest.raises(ValueError, match="no grade column 'au'"):
        find_intercepts(_hole([1.0]), "au", 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="max_dilution must be zero or positive, got -1"):
        find_intercepts(_hole([1.0]), "pd", 1.0, 1.0, -1.0)


def test_unsorted_rows():
    a = _hole([5.0, 0.0, 5.0]).iloc[[2, 0, 1]]
    t = find_intercepts(a, "pd", 1.0, 1.0, 1.0)
    assert _spans(t) == [[0, 3]]


# --- press-release rendering ---------------------------------------------------------------------

TABLE = pd.DataFrame(
    {
        "hole_id": ["11-729"] * 4 + ["11-733"],
        "from": [10.0, 20.0, 100.0, 101.0, 5.0],
        "to": [69.0, 29.0, 115.0, 104.0, 17.55],
        "length": [59.0, 9.0, 15.0, 3.0, 12.55],
        "grade": [6.08, 8.8, 3.26, 7.0, 4.44],
        "zone": ["offset", "offset", "cowboy", "cowboy", ""],
        "kind": ["interval", "including", "interval", "including", "interval"],
    }
)


def test_format_like_a_press_release():
    text = format_intercepts(TABLE)
    lines = text.splitlines()
    rule = lines[0]
    assert set(rule) == {"-"}
    assert lines[1].split() == [
        "Hole",
        "Length",
        "of",
        "Intersection",
        "Grade",
        "(g/t",
        "Pd)",
        "Location",
    ]
    assert [ln.split() for ln in lines[3:7]] == [
        ["11-729", "59", "metres", "6.1", "Offset", "Zone"],
        ["Including", "9", "metres", "8.8", "Offset", "Zone"],
        ["And", "15", "metres", "3.3", "Cowboy", "Zone"],
        ["Including", "3", "metres", "7.0", "Cowboy", "Zone"],
    ]
    assert lines[7] == rule
    assert lines[8].split() == ["11-733", "12.6", "metres", "4.4", "-"]
    assert lines[9] == rule
    assert len(lines) == 10
    # right-aligned columns: every data line ends at the same width
    assert len({len(ln) for ln in lines[3:7]}) == 1


def test_format_units_and_labels():
    text = format_intercepts(TABLE.iloc[:1], grade_label="% Cu", unit="ft")
    assert "Grade (% Cu)" in text
    assert "59 feet" in text
    z = TABLE.iloc[:1].assign(zone="offset zone")
    assert "Offset Zone" in format_intercepts(z) and "Zone Zone" not in format_intercepts(z)
