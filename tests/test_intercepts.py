"""Tests for significant intercepts and their press-release rendering."""

from __future__ import annotations

import re

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from estimator.config import InterceptsConfig
from estimator.errors import DataError
from estimator.intercepts import (
    INTERCEPT_COLUMNS,
    describe_rules,
    find_intercepts,
    format_intercepts,
    holes_in_tranche,
)

NAN = float("nan")


def _r4(x):
    """The table's grades are given to 4 significant digits."""
    return [float(f"{v:.4g}") for v in np.atleast_1d(x)]


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
    assert t["grade"].tolist() == _r4((2 + 0.5 + 3) / 3) == [1.833]
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
    assert t["grade"].tolist() == _r4((10 + 0.2 + 10) / 7)


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
    assert longest["length"] == best[0]
    assert longest["grade"] == _r4(best[1])[0]
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
    assert t["grade"].tolist() == _r4([1.2, 8.3 / 7])
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
    # Z 0-1 is at 6 g/t all through: its "including" 0-1 would repeat it and is not listed
    assert t["hole_id"].tolist() == ["Z", "Z", "B", "B"]
    assert t["kind"].tolist() == ["interval", "interval", "interval", "including"]
    assert _spans(t) == [[0, 1], [4, 6], [0, 2], [0, 1]]


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
    # 12.55 m prints whole, as the release prints lengths ("59 metres")
    assert lines[8].split() == ["11-733", "13", "metres", "4.4", "-"]
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


# --- release conventions (issue 7 point 11) ------------------------------------------------------


def test_including_that_spans_its_whole_interval_is_not_listed():
    # 0-3 at 6 g/t: the whole intercept is above the "including" grade
    t = find_intercepts(_hole([6.0, 7.0, 6.0]), "pd", 1.0, 1.0, 1.0, including=5.0)
    assert t["kind"].tolist() == ["interval"]
    # a part of it is still listed, even one starting or ending with the interval
    t = find_intercepts(_hole([6.0, 7.0, 2.0]), "pd", 1.0, 1.0, 1.0, including=5.0)
    assert _spans(t) == [[0, 3], [0, 2]]
    assert t["kind"].tolist() == ["interval", "including"]


def test_zone_ties_go_to_the_shallower_zone():
    # 2 m of offset above 2 m of cowboy: offset, not the first name in alphabetical order
    a = _hole([2.0] * 2, lengths=[2, 2], zones=["offset", "cowboy"])
    assert find_intercepts(a, "pd", 1.0, 1.0, 1.0)["zone"].tolist() == ["offset"]
    # 0.3 m of cowboy above 0.1 + 0.2 m of offset: a tie, though 0.1 + 0.2 > 0.3 in floats
    a = _hole([2.0] * 3, lengths=[0.3, 0.1, 0.2], zones=["cowboy", "offset", "offset"])
    assert find_intercepts(a, "pd", 1.0, 0.1, 1.0)["zone"].tolist() == ["cowboy"]
    # a zone split in two pieces still adds up; its first piece sets its depth
    a = _hole([2.0] * 4, zones=["outlaw", "offset", "outlaw", "offset"])
    assert find_intercepts(a, "pd", 1.0, 1.0, 1.0)["zone"].tolist() == ["outlaw"]
    # each row one label, the majority, whatever the mix
    a = _hole([2.0] * 6, zones=["outlaw", "offset", "offset", "cowboy", "offset", ""])
    assert find_intercepts(a, "pd", 1.0, 1.0, 1.0)["zone"].tolist() == ["offset"]


def _two_tranches():
    """A: begun in the June tranche, completed in September; B: June only; C: September only."""
    a = pd.concat(
        [
            _hole([5.0, 5.0], hole="A"),
            _hole([5.0, 5.0], hole="A", start=2.0),
            _hole([3.0, 3.0, 3.0], hole="B"),
            _hole([4.0, 0.1, 4.0], hole="C"),
        ],
        ignore_index=True,
    )
    a["tranche"] = ["2011-06-28"] * 2 + ["2011-09-14"] * 2 + ["2011-06-28"] * 3 + ["2011-09-14"] * 3
    return a


def test_holes_in_tranche_are_the_holes_with_any_of_its_assays():
    a = _two_tranches()
    assert holes_in_tranche(a, "2011-09-14") == ["A", "C"]
    assert holes_in_tranche(a, "2011-06-28") == ["A", "B"]
    t = find_intercepts(a, "pd", 1.0, 2.0, 1.0, holes=holes_in_tranche(a, "2011-09-14"))
    # A is listed with all of its assays, the June ones included
    assert t["hole_id"].tolist() == ["A", "C"]
    assert _spans(t) == [[0, 4], [0, 3]]
    npt.assert_allclose(t["grade"], [5.0, 2.7])
    # the filter changes nothing for the holes it keeps
    full = find_intercepts(a, "pd", 1.0, 2.0, 1.0)
    assert full["hole_id"].tolist() == ["A", "B", "C"]
    pd.testing.assert_frame_equal(full[full["hole_id"] != "B"].reset_index(drop=True), t)


def test_tranche_and_hole_filters_say_what_is_wrong():
    a = _two_tranches()
    with pytest.raises(DataError, match=r"no assays from tranche '2011-12-01'.*2011-06-28, 2011-09"):
        holes_in_tranche(a, "2011-12-01")
    with pytest.raises(DataError, match="no tranche column"):
        holes_in_tranche(a.drop(columns="tranche"), "2011-09-14")
    with pytest.raises(DataError, match="holes without assays: X, Y"):
        find_intercepts(a, "pd", 1.0, 1.0, 1.0, holes=["A", "Y", "X"])
    assert len(find_intercepts(a, "pd", 1.0, 1.0, 1.0, holes=[])) == 0


def test_the_table_has_no_floating_point_noise():
    # 0.7 m samples from 190.2 m: summed depths come out as 190.89999999999998 and so on
    g = [0.1, 1.1, 1.3, 1.2, 1.7, 1.1, 1.3, 1.5, 0.1, 0.1]
    a = _hole(g, lengths=[0.7] * 10, start=190.2)
    assert a["from"].iloc[1] != 190.9 and a["to"].iloc[7] != 195.8  # the input is noisy
    t = find_intercepts(a, "pd", 1.0, 1.0, 1.0)
    assert t[["from", "to", "length"]].to_numpy().tolist() == [[190.9, 195.8, 4.9]]
    exact = sum(g[1:8]) / 7  # 1.3142857...
    assert t["grade"].tolist() == [1.314] == _r4(exact)
    csv = t.to_csv(index=False)
    assert csv.splitlines()[1] == "A,190.9,195.8,4.9,1.314,offset,interval"
    # random depths: every value at its stated precision, length exactly to - from
    rng = np.random.default_rng(7)
    a = _hole(rng.lognormal(0.5, 1.0, 200), lengths=rng.uniform(0.3, 2.0, 200), start=12.345)
    t = find_intercepts(a, "pd", 1.0, 2.0, 2.0, including=5.0)
    assert len(t) > 5
    for col in ("from", "to", "length"):
        assert (t[col] == t[col].round(2)).all()
    assert (t["length"] == (t["to"] - t["from"]).round(2)).all()
    assert t["grade"].tolist() == _r4(t["grade"])
    assert not re.search(r"\d\.\d{5,}", t.to_csv(index=False))


def test_printed_like_the_release_whole_metres_and_half_up():
    t = TABLE.iloc[:1].assign(length=12.5, grade=6.05)
    row = format_intercepts(t).splitlines()[3].split()
    assert row[1:4] == ["13", "metres", "6.1"]  # half-way rounds up, as a reader rounds
    # under 10 units: to 0.1, so a 4.5 m interval is not printed as 4 or 5 m; ".0" dropped
    for length, shown in ((4.5, "4.5"), (4.45, "4.5"), (9.0, "9"), (9.96, "10"), (10.4, "10")):
        assert format_intercepts(TABLE.iloc[:1].assign(length=length)).splitlines()[3].split()[
            1
        ] == shown, length
    # grades under 1 keep two decimals (0.45 % Cu is not 0.5 % Cu)
    for grade, shown in ((0.45, "0.45"), (0.125, "0.13"), (0.996, "1.0"), (12.25, "12.3")):
        t = TABLE.iloc[:1].assign(grade=grade)
        assert format_intercepts(t, grade_label="% Cu").splitlines()[3].split()[3] == shown, grade


RULES = {"cutoff": 1.0, "min_length": 3.0, "max_dilution": 3.0, "including": 5.0,
         "including_min_length": 2.0}  # fmt: skip


def test_rules_are_stated_under_the_table():
    text = format_intercepts(TABLE, rules=RULES)
    lines = text.splitlines()
    table = format_intercepts(TABLE).splitlines()
    assert lines[: len(table)] == table  # the table itself is unchanged
    width = len(lines[0])
    assert all(len(ln) <= width for ln in lines)
    notes = " ".join(ln.strip() for ln in lines[len(table) :])
    for words in (
        "at least 1.0 g/t Pd (length-weighted) over at least 3 metres of core",
        "at most 3 metres of consecutive core below cut-off",
        "unsampled core and gaps between samples count as zero grade",
        "Including: the parts of an intercept at 5.0 g/t Pd or more over at least 2 metres",
        "one spanning its whole intercept is not listed",
        "the zone holding the most of the row's length (ties: the shallower)",
        "Lengths (metres) are core lengths along the hole, not true widths",
        "printed whole (to 0.1 under 10), grades to 0.1 (to 0.01 under 1)",
    ):
        assert words in notes, words
    assert "tranche" not in notes


def test_rules_in_the_data_units_from_the_config_section():
    cfg = InterceptsConfig(cutoff=0.25, min_length=10, max_dilution=6)
    notes = describe_rules(cfg, grade_label="% Cu", unit="ft", tranche="2011-09-14")
    text = " ".join(notes)
    assert "at least 0.25 % Cu (length-weighted) over at least 10 feet of core" in text
    assert "at most 6 feet of consecutive core" in text
    assert "Including" not in text  # no "including" grade configured
    assert "Holes with assays from tranche 2011-09-14" in text
    assert "Lengths (feet) are core lengths" in text
    text = format_intercepts(TABLE, unit="ft", rules=cfg, tranche="2011-09-14")
    assert "tranche 2011-09-14" in " ".join(text.split())
    with pytest.raises(ValueError, match="no max_dilution"):
        describe_rules({"cutoff": 1.0, "min_length": 2.0})


def test_an_empty_table_says_so():
    t = find_intercepts(_hole([0.1, NAN]), "pd", 1.0, 1.0, 1.0)
    lines = format_intercepts(t, rules=RULES).splitlines()
    assert lines[3] == "No intercept meets the rules."
    assert lines[4] == lines[0]
