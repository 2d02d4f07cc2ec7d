"""Unit tests of the row-level checks in estimator.drillholes.validate (no files)."""

from __future__ import annotations

import re

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from estimator.datareport import DataReport
from estimator.drillholes import validate as v
from estimator.errors import DataError


def table(rows, columns, file="t.csv"):
    """Text table with ``_file`` and ``_line`` (first data row on line 2)."""
    df = pd.DataFrame([[str(c) for c in r] for r in rows], columns=columns, dtype=str)
    df["_file"] = file
    df["_line"] = np.arange(2, len(df) + 2, dtype="int64")
    return df


def grades_table(values):
    return table([("H1", s) for s in values], ["hole_id", "g"])


# ---------------------------------------------------------------------------------------------
# Grades
# ---------------------------------------------------------------------------------------------


def test_parse_grade_plain_numbers_report_nothing():
    report = DataReport()
    out = v.parse_grade(
        grades_table(["1.5", " 2 ", "0", "1e-3"]), "g", "cu", v.ValueRules(), report
    )
    npt.assert_array_equal(out, [1.5, 2.0, 0.0, 0.001])
    assert len(report) == 0


def test_parse_grade_not_sampled_forms():
    report = DataReport()
    df = grades_table(["", "", "NS", "ns", "-", "-99", "-999.0", "3"])
    out = v.parse_grade(df, "g", "cu", v.ValueRules(), report, source="CU")
    assert np.isnan(out[:7]).all()
    assert out[7] == 3.0
    rep = report.to_frame()
    assert (rep["code"] == "not_sampled").all()
    # Two empty cells -> one summary row without a line; each explicit code one row.
    summary = rep[rep["line"].isna()]
    assert len(summary) == 1
    assert summary["what"].iloc[0] == "2 empty values of cu (column CU, not sampled)"
    assert rep["line"].dropna().tolist() == [4, 5, 6, 7, 8]
    assert rep["what"].iloc[1] == "cu is 'NS'"
    assert set(rep["action"]) == {"set to NaN (not sampled)"}


def test_parse_grade_unsampled_zero():
    report = DataReport()
    out = v.parse_grade(
        grades_table(["", "NS", "-99", "abc"]), "g", "cu", v.ValueRules(unsampled="zero"), report
    )
    npt.assert_array_equal(out[:3], [0.0, 0.0, 0.0])
    assert np.isnan(out[3])  # bad text stays NaN: it is not "not sampled"
    assert "set to 0 (data.unsampled: zero)" in report.to_frame()["action"].tolist()


def test_parse_grade_custom_sentinels():
    report = DataReport()
    rules = v.ValueRules(sentinels=(-1.0,))
    out = v.parse_grade(grades_table(["-1", "-99"]), "g", "cu", rules, report)
    assert np.isnan(out).all()
    assert report.counts() == {"not_sampled": 1, "negative_grade": 1}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("half", 0.005), ("zero", 0.0), ("limit", 0.01)],
    ids=["half", "zero", "limit"],
)
def test_parse_grade_below_detection(mode, expected):
    report = DataReport()
    out = v.parse_grade(
        grades_table(["<0.01", "< 0.01"]), "g", "cu", v.ValueRules(below_detection=mode), report
    )
    npt.assert_allclose(out, [expected, expected], rtol=1e-12)
    rep = report.to_frame()
    assert rep["code"].tolist() == [f"below_detection_{mode}"] * 2
    assert rep["what"].iloc[0] == "cu is '<0.01' (below detection)"
    assert rep["action"].iloc[0] == f"set to {expected:.10g} (data.below_detection: {mode})"
    assert rep["line"].tolist() == [2, 3]


def test_parse_grade_above_detection_limit():
    report = DataReport()
    out = v.parse_grade(grades_table([">50"]), "g", "au", v.ValueRules(), report)
    assert out[0] == 50.0
    assert report.counts() == {"above_detection": 1}


def test_parse_grade_bad_and_negative():
    report = DataReport()
    out = v.parse_grade(
        grades_table(["abc", "-0.5", "<x", "<-1"]), "g", "cu", v.ValueRules(), report
    )
    assert np.isnan(out).all()
    rep = report.to_frame()
    assert rep["code"].tolist() == ["bad_value", "bad_value", "bad_value", "negative_grade"]
    assert rep["what"].tolist()[0] == "cu is 'abc', not a number"
    assert rep["what"].tolist()[3] == "cu is -0.5"
    assert rep["line"].tolist() == [2, 4, 5, 3]


def test_parse_grade_implausible_values_are_left_out():
    # No data.max_grade and no unit: the default limit is 1e6 (ppm or g/t: the whole rock).
    report = DataReport()
    cells = ["inf", "1e300", "1e400", "-inf", "Infinity", "2000000", "999999", ">5e6", "<4e6", "nan"]
    out = v.parse_grade(grades_table(cells), "g", "pd", v.ValueRules(), report)
    assert np.isnan(out[:6]).all()
    assert out[6] == 999999.0
    assert np.isnan(out[7:]).all()
    rep = report.to_frame()
    assert rep["code"].tolist() == ["bad_value"] + ["implausible_grade"] * 8
    assert rep["line"].tolist() == [11, 2, 4, 5, 6, 3, 7, 9, 10]
    what = dict(zip(rep["line"], rep["what"], strict=True))
    assert what[2] == "pd is 'inf', not a finite number"
    assert what[4] == "pd is '1e400', not a finite number"
    assert what[5] == "pd is '-inf', not a finite number"
    assert what[3] == (
        "pd is '1e300', above the plausible maximum 1000000 (the default with no "
        "data.grade_unit; set data.max_grade to change it)"
    )
    assert what[10].startswith("pd is '<4e6', above the plausible maximum 1000000")
    assert set(rep["action"][rep["code"] == "implausible_grade"]) == {"set to NaN (left out)"}


@pytest.mark.parametrize(
    ("rules", "cells", "kept", "whence"),
    [
        (v.ValueRules(grade_unit="%"), ["99.9", "100", "100.5"], 2, "the default with "
         "data.grade_unit is '%'; set data.max_grade to change it"),
        (v.ValueRules(grade_unit="ppb"), ["5e8", "2e9"], 1, "the default with data.grade_unit "
         "is 'ppb'; set data.max_grade to change it"),
        (v.ValueRules(grade_unit="g/t", max_grade=50.0), ["50", "50.01"], 1, "data.max_grade"),
        (v.ValueRules(max_grade={"PD": 30.0, "cu": 5.0}), ["29", "31"], 1, "data.max_grade.pd"),
        (v.ValueRules(grade_unit="%", max_grade={"cu": 5.0}), ["99", "101"], 1, "the default "
         "with data.grade_unit is '%'; set data.max_grade to change it"),
    ],
    ids=["percent-default", "ppb-default", "one-limit", "per-grade", "grade-not-listed"],
)
def test_parse_grade_max_grade_rules(rules, cells, kept, whence):
    report = DataReport()
    out = v.parse_grade(grades_table(cells), "g", "pd", rules, report)
    assert np.isfinite(out[:kept]).all() and np.isnan(out[kept:]).all()
    assert report.counts() == {"implausible_grade": len(cells) - kept}
    assert report.rows[0]["what"].endswith(f"({whence})")


def test_parse_grade_implausible_even_when_unsampled_means_zero():
    report = DataReport()
    out = v.parse_grade(grades_table(["", "1e300"]), "g", "pd", v.ValueRules(unsampled="zero"), report)
    assert out[0] == 0.0 and np.isnan(out[1])
    assert report.counts() == {"not_sampled": 1, "implausible_grade": 1}


def test_default_max_grade():
    assert v.default_max_grade("%") == 100.0
    assert v.default_max_grade(" Wt% ") == 100.0
    assert v.default_max_grade("ppb") == 1e9
    assert v.default_max_grade("g/t") == v.default_max_grade(None) == 1e6


# ---------------------------------------------------------------------------------------------
# Collars and surveys
# ---------------------------------------------------------------------------------------------


def test_clean_collars_duplicates_and_missing():
    report = DataReport()
    df = table(
        [("A", 1, 2, 3), ("B", "", 2, 3), ("A", 9, 9, 9), (" ", 1, 1, 1), ("C", 1, 1, "x")],
        ["hole_id", "x", "y", "z"],
    )
    collars, left_out = v.clean_collars(df, report)
    assert collars["hole_id"].tolist() == ["A"]
    assert collars["x"].iloc[0] == 1.0
    assert np.isnan(collars["depth"].iloc[0])
    assert left_out == {"B", "C"}
    rep = report.to_frame()
    assert rep["code"].tolist() == [
        "missing_hole_id",
        "missing_coordinate",
        "missing_coordinate",
        "duplicate_collar",
    ]
    dup = rep.iloc[3]
    assert (dup["line"], dup["hole"]) == (4, "A")
    assert dup["what"] == "hole A again (x 9, y 9, z 9); first at line 2"
    assert rep.iloc[1]["what"] == "collar x is ''"


def test_clean_collars_non_finite_and_huge_coordinates():
    report = DataReport()
    df = table(
        [("A", "inf", 2, 3, 50), ("B", 1, "nan", 3, 50), ("C", 1, 2, "1e400", 50),
         ("D", "-1e13", 2, 3, 50), ("E", 1, 2, 3, "inf"), ("F", "-0", "-0.0", 3, 50)],
        ["hole_id", "x", "y", "z", "depth"],
    )  # fmt: skip
    collars, left_out = v.clean_collars(df, report)
    assert collars["hole_id"].tolist() == ["E", "F"]
    assert np.isnan(collars["depth"].iloc[0])
    assert collars["x"].iloc[1] == 0.0
    assert left_out == {"A", "B", "C", "D"}
    rep = report.to_frame()
    assert rep[["line", "hole", "code"]].values.tolist() == [
        [2, "A", "missing_coordinate"],
        [5, "D", "missing_coordinate"],
        [3, "B", "missing_coordinate"],
        [4, "C", "missing_coordinate"],
        [6, "E", "bad_value"],
    ]
    assert rep["what"].tolist() == [
        "collar x is 'inf', not a finite number",
        "collar x is '-1e13', beyond ±1e12 (not a plausible value)",
        "collar y is 'nan'",
        "collar z is '1e400', not a finite number",
        "collar depth is 'inf', not a positive finite number",
    ]
    assert rep["action"].tolist() == ["hole left out"] * 4 + ["depth taken as unknown"]


def test_clean_surveys_non_finite_numbers_are_bad_values():
    report = DataReport()
    df = table(
        [("A", 0, 10, -60), ("A", "inf", 10, -60), ("A", 20, "inf", -60), ("A", 30, 10, "-inf"),
         ("A", 40, 10, "nan"), ("A", "1e300", 10, -60)],
        ["hole_id", "depth", "azimuth", "dip"],
    )  # fmt: skip
    out = v.clean_surveys(df, "negative_down", report)
    assert out["depth"].tolist() == [0.0]
    rep = report.to_frame()
    assert (rep["code"] == "bad_value").all()
    assert rep["line"].tolist() == [3, 7, 4, 5, 6]
    assert rep["what"].tolist() == [
        "survey depth is 'inf', not a finite number",
        "survey depth is '1e300', beyond ±1e12 (not a plausible value)",
        "survey azimuth is 'inf', not a finite number",
        "survey dip is '-inf', not a finite number",
        "survey dip is 'nan', not a number",
    ]


def test_dip_convention_ignores_non_finite_dips():
    # 9 of 10 positive if inf counted; the one real dip is negative: no contradiction
    dips = np.array([-60.0] + [np.inf] * 9 + [np.nan])
    v.check_dip_convention(dips, np.arange(2, 13), "s.csv", "negative_down")  # no error


@pytest.mark.parametrize(
    ("dip", "dips", "word"),
    [
        ("negative_down", [60, 45, 90], "all positive (e.g. 60 at line 2)"),
        ("positive_down", [-60, -45, -90], "all negative (e.g. -60 at line 2)"),
    ],
    ids=["positive-in-negative_down", "negative-in-positive_down"],
)
def test_dip_contradiction(dip, dips, word):
    other = "positive_down" if dip == "negative_down" else "negative_down"
    expected = f"dips in s.csv are {word} but data.dip is {dip}; set data.dip: {other}"
    with pytest.raises(DataError, match=re.escape(expected)):
        v.check_dip_convention(np.asarray(dips, float), np.array([2, 3, 4]), "s.csv", dip)


def test_dip_convention_allows_a_few_up_holes():
    dips = np.array([-60.0] * 9 + [30.0])
    v.check_dip_convention(dips, np.arange(2, 12), "s.csv", "negative_down")  # no error


def test_dip_nearly_all_contradict():
    dips = np.array([60.0] * 19 + [-30.0])
    with pytest.raises(DataError, match=re.escape("are nearly all (19 of 20) positive")):
        v.check_dip_convention(dips, np.arange(2, 22), "s.csv", "negative_down")


def test_clean_surveys_ranges_and_conversion():
    report = DataReport()
    df = table(
        [
            ("A", 0, 360, 60),
            ("A", 50, 400, 60),
            ("A", 60, 10, 95),
            ("A", 100, 10, 90.000002),
            ("A", 100, 20, 70),
            ("A", "x", 10, 60),
        ],
        ["hole_id", "depth", "azimuth", "dip"],
    )
    out = v.clean_surveys(df, "positive_down", report)
    assert out["depth"].tolist() == [0.0, 100.0]
    assert out["azimuth"].tolist() == [0.0, 10.0]  # 360 -> 0
    assert out["dip"].tolist() == [-60.0, -90.0]  # positive down -> negative down; noise snapped
    rep = report.to_frame()
    assert rep["code"].tolist() == [
        "bad_value",
        "azimuth_out_of_range",
        "dip_out_of_range",
        "duplicate_survey_depth",
    ]
    assert rep["what"].iloc[1] == "azimuth 400 at depth 50 is outside [0, 360]"
    assert rep["what"].iloc[2] == "dip 95 at depth 60 is outside [-90, 90]"
    assert rep["line"].tolist() == [7, 3, 4, 6]


def test_add_missing_surveys_vertical():
    report = DataReport()
    collars = pd.DataFrame({"hole_id": ["A", "B"], "_file": "c.csv", "_line": [2, 3]})
    surveys = pd.DataFrame(
        {
            "hole_id": ["A"],
            "depth": [0.0],
            "azimuth": [10.0],
            "dip": [-60.0],
            "_file": "s.csv",
            "_line": [2],
        }
    )
    out = v.add_missing_surveys(surveys, collars, report)
    row = out[out["hole_id"] == "B"].iloc[0]
    assert (row["depth"], row["azimuth"], row["dip"], row["_line"]) == (0.0, 0.0, -90.0, 0)
    rep = report.to_frame()
    assert rep[["line", "hole", "code"]].values.tolist() == [[3, "B", "no_survey"]]
    assert rep["action"].iloc[0] == "assumed vertical (dip -90, azimuth 0)"


# ---------------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------------


def intervals(rows, file="a.csv"):
    df = pd.DataFrame(rows, columns=["hole_id", "from", "to"])
    df["_file"] = file
    df["_line"] = np.arange(2, len(df) + 2, dtype="int64")
    return df


def test_clean_intervals_from_not_less_than_to():
    report = DataReport()
    df = table([("A", 0, 1), ("A", 2, 2), ("A", 5, 3), ("A", "", 4)], ["hole_id", "from", "to"])
    out = v.clean_intervals(df, report)
    assert out["from"].tolist() == [0.0]
    rep = report.to_frame()
    assert rep["code"].tolist() == ["bad_value", "from_not_less_than_to", "from_not_less_than_to"]
    assert rep["what"].iloc[2] == "from 5 is not less than to 3"


def test_clean_intervals_non_finite_ends():
    report = DataReport()
    df = table([("A", 0, "inf"), ("A", "-inf", 1), ("A", 1, "1e400"), ("A", "-0", 2)], ["hole_id", "from", "to"])
    out = v.clean_intervals(df, report)
    assert out[["from", "to"]].values.tolist() == [[0.0, 2.0]]
    rep = report.to_frame()
    assert rep[["line", "code"]].values.tolist() == [[3, "bad_value"], [2, "bad_value"], [4, "bad_value"]]
    assert rep["what"].iloc[0] == "interval from is '-inf', not a finite number"
    assert rep["what"].iloc[1] == "interval to is 'inf', not a finite number"


def test_drop_overlaps_greedy():
    # B overlaps A and is left out; C overlaps only B, so it is kept.
    report = DataReport()
    df = intervals([("H", 0.0, 10.0), ("H", 5.0, 20.0), ("H", 12.0, 15.0), ("K", 0.0, 1.0)])
    out = v.drop_overlaps(df, report)
    assert out[["from", "to"]].values.tolist() == [[0, 10], [12, 15], [0, 1]]
    rep = report.to_frame()
    assert rep[["line", "hole", "code"]].values.tolist() == [[3, "H", "overlapping_interval"]]
    assert rep["what"].iloc[0] == "interval 5-20 overlaps the one ending at 10 (line 2)"


def test_drop_overlaps_touching_is_fine():
    report = DataReport()
    out = v.drop_overlaps(intervals([("H", 1.0, 2.0), ("H", 0.0, 1.0)]), report)
    assert out["from"].tolist() == [0.0, 1.0]
    assert len(report) == 0


def test_supersede_tranches():
    report = DataReport()
    a = intervals([("H", 0.0, 1.0), ("H", 1.0, 2.0)], "old.csv").assign(tranche="2019", _order=0)
    b = intervals([("H", 1.0, 2.0)], "new.csv").assign(tranche="2020", _order=1)
    out = v.supersede_tranches(pd.concat([a, b], ignore_index=True), report)
    assert sorted(zip(out["from"], out["tranche"], strict=True)) == [(0.0, "2019"), (1.0, "2020")]
    rep = report.to_frame()
    assert rep[["file", "line", "code"]].values.tolist() == [
        ["old.csv", 3, "superseded_by_tranche"]
    ]
    assert (
        rep["what"].iloc[0]
        == "interval 1-2 of tranche 2019 is also in tranche 2020 (new.csv line 2)"
    )


def test_keep_collared_one_row_per_hole():
    report = DataReport()
    collars = pd.DataFrame({"hole_id": ["A"]})
    df = intervals([("A", 0, 1), ("Z", 0, 1), ("Z", 1, 2), ("Z", 2, 3), ("Y", 0, 1)])
    out = v.keep_collared(df, collars, report, left_out={"Y"})
    assert out["hole_id"].tolist() == ["A"]
    rep = report.to_frame()
    assert rep[["line", "hole", "code"]].values.tolist() == [
        [3, "Z", "no_collar"],
        [6, "Y", "no_collar"],
    ]
    assert rep["what"].tolist() == [
        "3 rows (from line 3) for hole Z with no collar",
        "1 rows (from line 6) for hole Y whose collar was left out",
    ]


def test_check_end_of_hole():
    report = DataReport()
    collars = pd.DataFrame({"hole_id": ["A", "B"], "depth": [100.0, np.nan]})
    surveys = pd.DataFrame(
        {
            "hole_id": ["A", "A", "B", "B"],
            "depth": [0.0, 150.0, 0.0, 500.0],
            "azimuth": 0.0,
            "dip": -90.0,
            "_file": "s.csv",
            "_line": [2, 3, 4, 5],
        }
    )
    assays = intervals([("A", 90.0, 110.0), ("B", 0.0, 50.0)])
    kept = v.check_end_of_hole(collars, surveys, [assays], report)
    assert kept["depth"].tolist() == [0.0, 0.0, 500.0]
    rep = report.to_frame()
    assert rep["code"].tolist() == [
        "survey_past_end_of_hole",
        "survey_past_end_of_hole",
        "interval_past_end_of_hole",
    ]
    assert rep["action"].tolist() == [
        "row left out",
        "row kept",
        "row kept (check the collar depth)",
    ]
    assert rep["what"].iloc[0] == "survey at depth 150 is past the end of hole (100)"
