"""Tests of estimator.io.drillholes: reading files, column matching, fatal errors, real data."""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import numpy.testing as npt
import pytest

from estimator.datareport import DataReport
from estimator.errors import ConfigError, DataError
from estimator.io.drillholes import (
    COLLAR_COLUMNS,
    find_columns,
    read_drillholes,
    read_gslib,
    read_samples,
)

DATA = Path(__file__).parent / "data"

COLLARS = "HOLE_ID,X,Y,Z,DEPTH\nA,0,0,100,50\nB,10,0,100,50\n"
SURVEYS = "HOLE_ID,DEPTH,AZIMUTH,DIP\nA,0,0,-90\nB,0,90,-60\n"
ASSAYS = "HOLE_ID,FROM,TO,CU\nA,0,1,0.5\nA,1,2,0.7\nB,0,1,1.2\n"


def make_data(tmp_path, collars=COLLARS, surveys=SURVEYS, assays=ASSAYS, **kw):
    """Write the given CSV texts and return a ``data`` section for them (None: not given)."""

    def put(name, text):
        if text is None:
            return None
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    if isinstance(assays, str):
        assays = [("assays.csv", assays, None)]
    entries = [SimpleNamespace(path=put(n, t), tranche=tr) for n, t, tr in assays]
    fields = {
        "collars": put("collars.csv", collars),
        "surveys": put("surveys.csv", surveys),
        "assays": entries,
        "zones": put("zones.csv", kw.pop("zones", None)),
        "samples": put("samples.csv", kw.pop("samples", None)),
        "dip": "negative_down",
        "columns": {},
        "below_detection": "half",
        "unsampled": "nan",
        "sentinels": [-99.0, -999.0],
    }
    fields.update(kw)
    return SimpleNamespace(**fields)


def read(data, grades=("cu",)):
    report = DataReport()
    return read_drillholes(data, list(grades), report), report.to_frame()


def test_minimal_tables(tmp_path):
    dh, rep = read(make_data(tmp_path))
    assert len(rep) == 0
    assert dh.grades == ("cu",)
    assert dh.zones is None
    assert list(dh.collars.columns) == ["hole_id", "x", "y", "z", "depth", "_file", "_line"]
    assert list(dh.surveys.columns) == ["hole_id", "depth", "azimuth", "dip", "_file", "_line"]
    assert list(dh.assays.columns) == ["hole_id", "from", "to", "tranche", "cu", "_file", "_line"]
    assert dh.assays["tranche"].unique().tolist() == ["assays"]  # file stem by default
    assert dh.assays["_line"].tolist() == [2, 3, 4]
    assert dh.assays["_file"].unique().tolist() == ["assays.csv"]
    assert dh.collars["depth"].tolist() == [50.0, 50.0]
    for df in (dh.collars, dh.surveys, dh.assays):
        assert df["hole_id"].map(type).eq(str).all()


def test_bom_aliases_and_case(tmp_path):
    data = make_data(
        tmp_path,
        collars="bhid,East,NORTH,rl\nA,0,0,100\n",
        surveys="HoleId,Distance,Bearing,Dip\nA,0,0,-90\n",
        assays="dhid,From_m,To_m,Cu\nA,0,1,0.5\n",
    )
    Path(data.collars).write_text("\ufeffbhid,East,NORTH,rl\nA,0,0,100\n", encoding="utf-8")
    dh, rep = read(data)
    assert len(rep) == 0
    assert dh.collars[["hole_id", "x", "z"]].values.tolist() == [["A", 0.0, 100.0]]
    assert np.isnan(dh.collars["depth"].iloc[0])
    assert dh.assays["cu"].tolist() == [0.5]


def test_columns_mapping(tmp_path):
    data = make_data(
        tmp_path,
        collars="DDH,E,N,ELEV,LEN\nA,0,0,100,30\n",
        surveys="DDH,DEPTH,AZ,DIP\nA,0,0,-90\n",
        assays="DDH,FROM,TO,PD_PPM\nA,0,1,1500\n",
        columns={"hole_id": "DDH", "x": "e", "y": "N", "collars.depth": "LEN", "pd": "PD_PPM"},
    )
    dh, _ = read(data, ["PD"])
    assert dh.grades == ("pd",)
    assert dh.assays["pd"].tolist() == [1500.0]
    assert dh.collars["depth"].tolist() == [30.0]


def test_find_columns_message():
    expected = (
        "collars.csv: no column for 'hole_id' (looked for HOLE_ID, BHID, HOLEID, HOLE, DHID; "
        "columns are A, B, C). Map it with data.columns.hole_id"
    )
    with pytest.raises(DataError, match=re.escape(expected)):
        find_columns(["A", "B", "C"], COLLAR_COLUMNS, {}, "collars.csv", optional=("depth",))


def test_missing_required_column(tmp_path):
    data = make_data(tmp_path, surveys="HOLE_ID,DEPTH,AZIMUTH,INCL\nA,0,0,-90\n")
    with pytest.raises(
        DataError, match=re.escape("surveys.csv: no column for 'dip' (looked for DIP;")
    ):
        read(data)


def test_missing_file_and_no_collars(tmp_path):
    data = make_data(tmp_path)
    data.surveys = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"data\.surveys: file '.*nope\.csv' does not exist"):
        read(data)
    data = make_data(tmp_path, collars=None)
    with pytest.raises(DataError, match=re.escape("data.collars is not set")):
        read(data)


def test_unknown_grade(tmp_path):
    with pytest.raises(DataError, match=re.escape("grade 'au' is in no assay file (assays.csv)")):
        read(make_data(tmp_path), ["cu", "au"])


def test_positive_down_conversion(tmp_path):
    data = make_data(
        tmp_path, surveys="HOLE_ID,AT,AZ,DIP\nA,0,0,90\nB,0,90,60\n", dip="positive_down"
    )
    dh, _ = read(data)
    assert dh.surveys["dip"].tolist() == [-90.0, -60.0]


@pytest.mark.parametrize(
    ("dip", "surveys", "expected"),
    [
        (
            "negative_down",
            "HOLE_ID,AT,AZ,DIP\nA,0,0,60\nB,0,0,70\n",
            "dips in surveys.csv are all positive (e.g. 60 at line 2) but data.dip is "
            "negative_down; set data.dip: positive_down",
        ),
        (
            "positive_down",
            "HOLE_ID,AT,AZ,DIP\nA,0,0,-60\nB,0,0,-70\n",
            "dips in surveys.csv are all negative (e.g. -60 at line 2) but data.dip is "
            "positive_down; set data.dip: negative_down",
        ),
    ],
    ids=["negative_down", "positive_down"],
)
def test_dip_contradiction(tmp_path, dip, surveys, expected):
    with pytest.raises(DataError, match=re.escape(expected)):
        read(make_data(tmp_path, surveys=surveys, dip=dip))


def test_value_rules_end_to_end(tmp_path):
    assays = "HOLE_ID,FROM,TO,CU\nA,0,1,\nA,1,2,NS\nA,2,3,-\nA,3,4,-99\nA,4,5,<0.02\nA,5,6,abc\nA,6,7,-1\nB,0,1,\n"
    dh, rep = read(make_data(tmp_path, assays=assays))
    cu = dh.assays["cu"].to_numpy()
    npt.assert_allclose(cu[4], 0.01, rtol=1e-12)
    assert np.isnan(np.delete(cu, 4)).all()
    assert rep["code"].value_counts().to_dict() == {
        "not_sampled": 4,
        "below_detection_half": 1,
        "bad_value": 1,
        "negative_grade": 1,
    }
    summary = rep[rep["line"].isna()].iloc[0]
    assert summary["what"] == "2 empty values of cu (column CU, not sampled)"
    assert summary["file"] == "assays.csv"


def test_interval_problems_and_no_collar(tmp_path):
    assays = (
        "HOLE_ID,FROM,TO,CU\n"
        "A,0,2,1\n"
        "A,1,3,1\n"  # overlaps line 2
        "A,5,5,1\n"  # from == to
        "A,60,61,1\n"  # past the collar depth (50)
        "Z,0,1,1\nZ,1,2,1\n"  # no collar
    )
    dh, rep = read(make_data(tmp_path, assays=assays))
    assert dh.assays[["hole_id", "from", "_line"]].values.tolist() == [
        ["A", 0.0, 2],
        ["A", 60.0, 5],
    ]
    got = rep[["line", "hole", "code"]].values.tolist()
    assert [4, "A", "from_not_less_than_to"] in got
    assert [6, "Z", "no_collar"] in got
    assert [3, "A", "overlapping_interval"] in got
    assert [5, "A", "interval_past_end_of_hole"] in got
    assert rep["what"][rep["code"] == "no_collar"].tolist() == [
        "2 rows (from line 6) for hole Z with no collar"
    ]


def test_collar_and_survey_problems(tmp_path):
    collars = "HOLE_ID,X,Y,Z,DEPTH\nA,0,0,100,50\nA,5,5,5,5\nB,,0,100,50\nC,1,1,1,40\n"
    surveys = (
        "HOLE_ID,DEPTH,AZIMUTH,DIP\n"
        "A,0,360,-90\n"
        "A,0,10,-80\n"  # duplicate depth
        "A,20,400,-80\n"  # azimuth out of range
        "A,30,10,-95\n"  # dip out of range
        "A,80,10,-80\n"  # past end of hole (50)
        "B,0,0,-90\n"  # collar left out
        "Q,0,0,-90\n"  # no collar
    )
    assays = "HOLE_ID,FROM,TO,CU\nA,0,1,1\nB,0,1,1\n"
    dh, rep = read(make_data(tmp_path, collars=collars, surveys=surveys, assays=assays))
    assert dh.collars["hole_id"].tolist() == ["A", "C"]
    assert dh.surveys[["hole_id", "depth", "azimuth", "dip"]].values.tolist() == [
        ["A", 0.0, 0.0, -90.0],
        ["C", 0.0, 0.0, -90.0],
    ]
    assert dh.surveys["_line"].tolist() == [2, 0]  # C's survey is the assumed vertical one
    got = rep[["file", "line", "hole", "code"]].values.tolist()
    for row in [
        ["collars.csv", 3, "A", "duplicate_collar"],
        ["collars.csv", 4, "B", "missing_coordinate"],
        ["surveys.csv", 3, "A", "duplicate_survey_depth"],
        ["surveys.csv", 4, "A", "azimuth_out_of_range"],
        ["surveys.csv", 5, "A", "dip_out_of_range"],
        ["surveys.csv", 6, "A", "survey_past_end_of_hole"],
        ["surveys.csv", 7, "B", "no_collar"],
        ["surveys.csv", 8, "Q", "no_collar"],
        ["assays.csv", 3, "B", "no_collar"],
        ["collars.csv", 5, "C", "no_survey"],
    ]:
        assert row in got
    assert len(got) == 10
    why = rep.loc[(rep["hole"] == "B") & (rep["file"] == "assays.csv"), "what"].iloc[0]
    assert why == "1 rows (from line 3) for hole B whose collar was left out"


def test_no_survey_table(tmp_path):
    dh, rep = read(make_data(tmp_path, surveys=None))
    assert dh.surveys["dip"].tolist() == [-90.0, -90.0]
    assert rep["code"].tolist() == ["no_survey"]
    assert rep["what"].iloc[0] == "no survey table (data.surveys); 2 holes"


def test_tranches(tmp_path):
    old = "HOLE_ID,FROM,TO,CU,NI\nA,0,1,0.5,0.1\nA,1,2,0.7,0.2\n"
    new = "HOLE_ID,FROM,TO,CU\nA,1,2,0.9\nB,0,1,1.1\n"
    data = make_data(tmp_path, assays=[("old.csv", old, "2019"), ("new.csv", new, None)])
    dh, rep = read(data, ["cu", "ni"])
    got = dh.assays[["hole_id", "from", "tranche", "cu"]].values.tolist()
    assert got == [["A", 0.0, "2019", 0.5], ["A", 1.0, "new", 0.9], ["B", 0.0, "new", 1.1]]
    assert np.isnan(dh.assays["ni"].iloc[1])
    assert rep["code"].tolist() == ["not_sampled", "superseded_by_tranche"]
    assert rep["what"].iloc[0] == "no column for ni (tranche new); 2 rows"
    assert rep[["file", "line"]].iloc[1].tolist() == ["old.csv", 3]


def test_zones(tmp_path):
    zones = "HOLE_ID,FROM,TO,CODE\nA,0,1, OX \nA,1,2,SUL\nA,1.5,3,SUL\nZ,0,1,OX\n"
    dh, rep = read(make_data(tmp_path, zones=zones))
    assert dh.zones[["hole_id", "zone", "_line"]].values.tolist() == [
        ["A", "OX", 2],
        ["A", "SUL", 3],
    ]
    assert sorted(rep["code"]) == ["no_collar", "overlapping_interval"]
    assert set(rep["file"]) == {"zones.csv"}


def test_blank_lines_keep_line_numbers(tmp_path):
    assays = "HOLE_ID,FROM,TO,CU\nA,0,1,0.5\n\nA,1,2,abc\n,,,\n"
    dh, rep = read(make_data(tmp_path, assays=assays))
    assert dh.assays["_line"].tolist()[:2] == [2, 4]
    assert rep[["line", "code"]].values.tolist() == [[4, "bad_value"]]


def test_nothing_left(tmp_path):
    with pytest.raises(DataError, match=re.escape("no usable collar left after validation")):
        read(make_data(tmp_path, collars="HOLE_ID,X,Y,Z\nA,,0,0\n"))
    with pytest.raises(DataError, match=re.escape("no assay interval left after validation")):
        read(make_data(tmp_path, assays="HOLE_ID,FROM,TO,CU\nZ,0,1,1\n"))
    with pytest.raises(DataError, match=re.escape("no sampled value of 'cu' left")):
        read(make_data(tmp_path, assays="HOLE_ID,FROM,TO,CU\nA,0,1,NS\n"))


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match=re.escape("collars.csv: the file is empty")):
        read(make_data(tmp_path, collars=""))


def test_implausible_grades_are_left_out(tmp_path):
    # Issue 7.12: "inf" and "1e300" were kept, so a domain reported 3.6e297 g/t.
    assays = "HOLE_ID,FROM,TO,CU\nA,0,1,inf\nA,1,2,1e300\nB,0,1,1.2\nB,1,2,150\n"
    dh, rep = read(make_data(tmp_path, assays=assays, grade_unit="%"))
    cu = dh.assays["cu"].to_numpy()
    assert np.isnan(cu[[0, 1, 3]]).all() and cu[2] == 1.2
    assert rep[["line", "hole", "code"]].values.tolist() == [
        [2, "A", "implausible_grade"],
        [3, "A", "implausible_grade"],
        [5, "B", "implausible_grade"],
    ]
    assert rep["what"].iloc[2] == (
        "cu is '150', above the plausible maximum 100 (the default with data.grade_unit is "
        "'%'; set data.max_grade to change it)"
    )
    # a per-grade limit from the config
    dh, rep = read(make_data(tmp_path, assays=assays, max_grade={"CU": 2.0}))
    assert np.isnan(dh.assays["cu"]).sum() == 3 and dh.assays["cu"].iloc[2] == 1.2
    assert rep["what"].iloc[2].endswith("above the plausible maximum 2 (data.max_grade.cu)")


def test_max_grade_for_an_unknown_grade_is_a_config_error(tmp_path):
    msg = "data.max_grade.au: no such grade (grades are cu)"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        read(make_data(tmp_path, max_grade={"au": 50.0}))


def test_non_finite_collar_survey_and_interval_numbers(tmp_path):
    collars = "HOLE_ID,X,Y,Z,DEPTH\nA,inf,0,100,50\nB,10,0,100,50\n"
    surveys = "HOLE_ID,DEPTH,AZIMUTH,DIP\nA,0,0,-90\nB,0,90,-60\nB,1e400,90,-60\n"
    assays = "HOLE_ID,FROM,TO,CU\nA,0,1,0.5\nB,0,inf,0.7\nB,1,2,1.2\n"
    dh, rep = read(make_data(tmp_path, collars=collars, surveys=surveys, assays=assays))
    assert dh.collars["hole_id"].tolist() == ["B"]
    assert dh.surveys["depth"].tolist() == [0.0]
    assert dh.assays[["from", "to"]].values.tolist() == [[1.0, 2.0]]
    got = rep[["file", "line", "hole", "code"]].values.tolist()
    assert ["collars.csv", 2, "A", "missing_coordinate"] in got
    assert ["surveys.csv", 4, "B", "bad_value"] in got
    assert ["assays.csv", 3, "B", "bad_value"] in got
    assert rep["what"][rep["file"] == "collars.csv"].iloc[0] == (
        "collar x is 'inf', not a finite number"
    )


def test_a_folder_is_not_a_data_file(tmp_path):
    (tmp_path / "collars").mkdir()
    data = make_data(tmp_path)
    data.collars = tmp_path / "collars"
    msg = f"data.collars: '{tmp_path / 'collars'}' is a folder, not a file: give the file inside it"
    with pytest.raises(DataError, match=re.escape(msg)):
        read(data)


@pytest.mark.parametrize(
    "collars",
    [
        "HOLE_ID,X,Y,Z,DEPTH\nA,0,5,100,50,\nB,10,6,100,40,\n",  # rows only
        "HOLE_ID,X,Y,Z,DEPTH,\nA,0,5,100,50,\nB,10,6,100,40,\n",  # header and rows
        "HOLE_ID,X,Y,Z,DEPTH,\nA,0,5,100,50\nB,10,6,100,40\n",  # header only
        "HOLE_ID,X,Y,Z,DEPTH\r\nA,0,5,100,50,,\r\nB,10,6,100,40,\r\n",  # CRLF, ragged empties
    ],
    ids=["rows", "header-and-rows", "header", "crlf-ragged-empty"],
)
def test_trailing_delimiters_are_read_in_place(tmp_path, collars):
    # pandas shifts every column when the rows have one field more than the header.
    dh, rep = read(make_data(tmp_path, collars=collars))
    assert len(rep) == 0
    assert dh.collars[["hole_id", "x", "y", "z", "depth"]].values.tolist() == [
        ["A", 0.0, 5.0, 100.0, 50.0],
        ["B", 10.0, 6.0, 100.0, 40.0],
    ]
    assert dh.collars["_line"].tolist() == [2, 3]


@pytest.mark.parametrize(
    ("collars", "message"),
    [
        (
            "HOLE_ID,X,Y,Z,DEPTH\nA,0,0,100\nB,10,0,100,50\n",
            "collars.csv, line 2: 4 fields but the header (line 1) has 5: the values would "
            "land under the wrong columns; check for a missing or extra delimiter (a ',' inside "
            "a value must be quoted)",
        ),
        (
            "HOLE_ID,X,Y,Z,DEPTH\nA,0,0,100,50\n\nB,1,0,0,100,50\nC,1,0,0,100,50\n",
            "collars.csv, line 4: 6 fields but the header (line 1) has 5 (1 more line like it)",
        ),
        (
            "HOLE_ID,X,Y,Z\nA,1,0,100,50,\n",
            "collars.csv, line 2: 6 fields but the header (line 1) has 4",
        ),
    ],
    ids=["short", "long", "value-past-header"],
)
def test_ragged_rows_are_refused(tmp_path, collars, message):
    with pytest.raises(DataError, match=re.escape(message)):
        read(make_data(tmp_path, collars=collars))


def test_header_only_tables(tmp_path):
    with pytest.raises(DataError, match=re.escape("collars.csv: a header but no rows")):
        read(make_data(tmp_path, collars="HOLE_ID,X,Y,Z\n"))
    dh, rep = read(
        make_data(tmp_path, surveys="HOLE_ID,DEPTH,AZIMUTH,DIP\n", zones="HOLE_ID,FROM,TO,ZONE\n")
    )
    assert dh.zones.empty
    assert rep[["file", "code"]].values.tolist()[:2] == [
        ["surveys.csv", "empty_file"],
        ["zones.csv", "empty_file"],
    ]


# ---------------------------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------------------------


def test_samples_csv(tmp_path):
    samples = "X,Y,Z,HOLE,CU\n0,0,0,A,1.0\n1,,0,A,2.0\n2,2,2,,<0.1\n"
    data = make_data(tmp_path, samples=samples)
    report = DataReport()
    df = read_samples(data, ["cu"], report)
    assert list(df.columns) == ["x", "y", "z", "hole_id", "zone", "cu", "_file", "_line"]
    assert df["hole_id"].tolist() == ["A", ""]
    npt.assert_allclose(df["cu"], [1.0, 0.05], rtol=1e-12)
    rep = report.to_frame()
    assert rep[["line", "code"]].values.tolist() == [
        [3, "missing_coordinate"],
        [4, "below_detection_half"],
    ]
    with pytest.raises(DataError, match=re.escape("samples.csv: no column for grade 'au'")):
        read_samples(data, ["au"], DataReport())


def test_samples_implausible_grades_and_coordinates(tmp_path):
    samples = "X,Y,Z,CU\n0,0,0,1e300\n1,0,inf,2.0\n2,0,0,3.0\n1e13,0,0,1\n"
    data = make_data(tmp_path, samples=samples)
    report = DataReport()
    df = read_samples(data, ["cu"], report)
    assert df["x"].tolist() == [0.0, 2.0]
    assert np.isnan(df["cu"].iloc[0]) and df["cu"].iloc[1] == 3.0
    rep = report.to_frame()
    assert rep[["line", "code"]].values.tolist() == [
        [5, "missing_coordinate"],
        [3, "missing_coordinate"],
        [2, "implausible_grade"],
    ]
    assert rep["what"].iloc[1] == "sample z is 'inf', not a finite number"


def test_meuse_samples_2d():
    data = SimpleNamespace(
        samples=DATA / "meuse" / "meuse.csv",
        columns={},
        below_detection="half",
        unsampled="nan",
        sentinels=[-99.0],
    )
    report = DataReport()
    df = read_samples(data, ["zinc", "cadmium"], report)
    assert len(df) == 155
    assert (df["z"] == 0.0).all()
    assert (df["hole_id"] == "").all()
    assert df["zinc"].iloc[0] == 1022.0
    rep = report.to_frame()
    assert rep["code"].tolist() == ["no_elevation"]
    assert rep["action"].iloc[0] == "z set to 0 for every sample"


def test_cluster_gslib():
    path = DATA / "gslib" / "cluster.dat"
    raw = read_gslib(path)
    assert list(raw.columns) == [
        "Xlocation",
        "Ylocation",
        "Primary",
        "Secondary",
        "Declustering Weight",
        "_line",
    ]
    assert len(raw) == 140
    assert raw["_line"].iloc[0] == 8
    data = SimpleNamespace(
        samples=path, columns={}, below_detection="half", unsampled="nan", sentinels=[-99.0]
    )
    df = read_samples(data, ["primary"], DataReport())
    npt.assert_allclose(df["primary"].mean(), 4.350, atol=5e-4)  # README: naive mean 4.350


# ---------------------------------------------------------------------------------------------
# Real drillholes
# ---------------------------------------------------------------------------------------------


def babbitt():
    d = DATA / "babbitt"
    return SimpleNamespace(
        collars=d / "collar_BABBITT.csv",
        surveys=d / "survey_BABBITT.csv",
        assays=[SimpleNamespace(path=d / "assay_BABBITT.csv", tranche=None)],
        zones=None,
        samples=None,
        dip="positive_down",
        columns={},
        below_detection="half",
        unsampled="nan",
        sentinels=[-99.0, -999.0],
    )


def test_babbitt_loads():
    report = DataReport()
    start = time.perf_counter()
    dh = read_drillholes(babbitt(), ["cu", "ni", "s", "fe"], report)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"Babbitt took {elapsed:.2f} s"
    assert (len(dh.collars), len(dh.surveys), len(dh.assays)) == (399, 2628, 35616)
    assert dh.collars["depth"].isna().all()  # no depth column
    assert (dh.surveys["dip"] < 0).all()  # positive-down file, negative down inside
    assert dh.surveys["dip"].min() == -90.0
    assert dh.surveys["dip"].max() == -32.0
    assert dh.assays["hole_id"].iloc[0] == "34873"  # numeric-looking id stays text
    counts = dh.assays[["cu", "ni", "s", "fe"]].notna().sum().tolist()
    assert counts == [35616 - 11931, 35616 - 12177, 35616 - 12071, 24]
    # The only problems: empty grade cells (one summary row per grade) and 70 placeholder
    # survey rows at depth 90000 ft, past the deepest sample (kept: same angles as at 0).
    assert report.counts() == {"not_sampled": 4, "survey_past_end_of_hole": 70}
    rep = report.to_frame()
    assert rep.loc[rep["code"] == "not_sampled", "what"].tolist()[0] == (
        "11931 empty values of cu (column CU, not sampled)"
    )
    past = rep[rep["code"] == "survey_past_end_of_hole"].iloc[0]
    assert (past["line"], past["hole"]) == (13, "B1-006")
    assert past["what"] == (
        "survey at depth 90000 is past the deepest interval (700); the collar gives no end-of-hole depth"
    )


def test_porphyry_loads():
    d = DATA / "porphyry-cu"
    data = SimpleNamespace(
        collars=d / "collar.csv",
        surveys=d / "survey.csv",
        assays=[SimpleNamespace(path=d / "assay.csv", tranche="2021")],
        zones=d / "litho.csv",
        samples=None,
        dip="positive_down",
        columns={"zone": "LITH"},
        below_detection="half",
        unsampled="nan",
        sentinels=[-99.0, -999.0],
    )
    report = DataReport()
    dh = read_drillholes(data, ["cu"], report)
    assert len(dh.collars) == 126
    assert len(dh.assays) == 1136
    assert sorted(dh.zones["zone"].unique()) == ["GnP", "MzP", "TnP"]
    # Dips of 90.000002 (export noise) are snapped to 90, not reported.
    assert len(report) == 0
    assert dh.surveys["dip"].min() == -90.0


def test_review_findings_duplicate_header_missing_mapping_ambiguous_alias_empty_tranche(tmp_path):
    """Header mistakes are errors (exit 2), never a silent choice; an empty tranche is reported."""
    from types import SimpleNamespace

    import pytest

    from estimator.datareport import DataReport
    from estimator.errors import DataError
    from estimator.io.drillholes import find_columns, read_drillholes

    with pytest.raises(DataError, match=r"a\.csv: column 'Pd' appears twice in the header"):
        find_columns(["hole_id", "pd", "Pd"], {"hole_id": ("BHID",)}, {}, "a.csv")
    with pytest.raises(
        DataError, match=r"c\.csv: data\.columns\.x is 'EASTING_X', but there is no such column"
    ):
        find_columns(["hole_id", "x"], {"x": ("EAST",)}, {"x": "EASTING_X"}, "c.csv")
    with pytest.raises(
        DataError,
        match=r"c\.csv: columns X, EAST could each be 'x'; say which one with data\.columns\.x",
    ):
        find_columns(["X", "EAST"], {"x": ("EAST",)}, {}, "c.csv")

    (tmp_path / "c.csv").write_text("hole_id,x,y,z\nA,0,0,0\n")
    (tmp_path / "s.csv").write_text("hole_id,depth,azimuth,dip\nA,0,0,-90\n")
    (tmp_path / "a1.csv").write_text("hole_id,from,to,pd\nA,0,1,1.5\n")
    (tmp_path / "a2.csv").write_text("hole_id,from,to,pd\n")
    (tmp_path / "dup.csv").write_text("hole_id,from,to,pd,pd\nA,0,1,1.5,2\n")
    data = SimpleNamespace(
        collars=tmp_path / "c.csv", surveys=tmp_path / "s.csv", zones=None, samples=None,
        assays=[SimpleNamespace(path=tmp_path / "a1.csv", tranche="t1"),
                SimpleNamespace(path=tmp_path / "a2.csv", tranche="t2")],
        dip="negative_down", columns={}, below_detection="half", unsampled="nan",
        sentinels=[-99.0, -999.0],
    )  # fmt: skip
    report = DataReport()
    holes = read_drillholes(data, ["pd"], report)
    assert len(holes.assays) == 1
    assert report.counts().get("empty_file") == 1
    data.assays = [SimpleNamespace(path=tmp_path / "dup.csv", tranche="t")]
    with pytest.raises(DataError, match=r"dup\.csv: column 'pd' appears twice in the header"):
        read_drillholes(data, ["pd"], DataReport())
