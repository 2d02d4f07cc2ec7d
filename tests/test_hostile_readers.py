"""Hostile inputs (issue 7 point 12): every reader ends in values, a report row or a DataError.

The readers are called the way the pipeline calls them: ``read_drillholes(cfg.data,
cfg.grades, report)`` and ``read_samples(...)`` with a validated config, and
``load_wireframe(path, report=...)``. Each case names what it must give; the seeded fuzz test
at the end mutates valid files and only checks that nothing but DataError comes out.
"""

from __future__ import annotations

import re
import struct

import numpy as np
import numpy.testing as npt
import pytest

from estimator.config import parse_config
from estimator.datareport import DataReport
from estimator.errors import ConfigError, DataError
from estimator.io.drillholes import read_drillholes, read_gslib, read_samples
from estimator.io.wireframe import load_wireframe

COLLARS = "HOLE_ID,X,Y,Z,DEPTH\nA,0,0,100,50\nB,10,0,100,50\n"
SURVEYS = "HOLE_ID,DEPTH,AZIMUTH,DIP\nA,0,0,-90\nB,0,90,-60\n"
ASSAYS = "HOLE_ID,FROM,TO,PD\nA,0,1,0.5\nA,1,2,0.7\nB,0,1,1.2\n"
ZONES = "HOLE_ID,FROM,TO,ZONE\nA,0,2,OFFSET\nB,0,1,OFFSET\n"
GSLIB = "title\n4\nx\ny\nz\npd\n0 0 0 1.0\n1 0 0 2.0\n"


def drillholes(tmp_path, **texts):
    """Write the tables (text or bytes; None leaves one out) and read them as the pipeline does."""
    files = {"collars": COLLARS, "surveys": SURVEYS, "assays": ASSAYS, "zones": ZONES}
    files.update(texts)
    data = {}
    for key, content in files.items():
        if content is None:
            continue
        path = tmp_path / f"{key}.csv"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        data[key] = str(path)
    cfg = parse_config({"name": "t", "data": data, "grades": ["pd"]}, tmp_path)
    report = DataReport()
    return read_drillholes(cfg.data, cfg.grades, report), report


def samples(tmp_path, content, name="samples.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    cfg = parse_config({"name": "t", "data": {"samples": str(path)}, "grades": ["pd"]}, tmp_path)
    report = DataReport()
    return read_samples(cfg.data, cfg.grades, report), report


# ---------------------------------------------------------------------------------------------
# Drillhole tables: errors
# ---------------------------------------------------------------------------------------------

GARBAGE = np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes()


@pytest.mark.parametrize(
    ("table", "content", "message"),
    [
        ("collars", GARBAGE, "collars.csv: not UTF-8 text (invalid start byte at byte 1, line 1)"),
        ("assays", ASSAYS.encode("utf-16"), "assays.csv: UTF-16 text (Excel's 'Unicode text'); save it as CSV UTF-8"),
        ("assays", ASSAYS.replace("0.7", "0\x00.7"), "assays.csv, line 3: a NUL character (byte 0) in the text"),
        ("collars", COLLARS.replace(",", ";"), "collars.csv: the header 'HOLE_ID;X;Y;Z;DEPTH' is one column: the file is separated by semicolons, not commas"),
        ("surveys", SURVEYS.replace(",", "\t"), "surveys.csv: the header 'HOLE_ID\\tDEPTH\\tAZIMUTH\\tDIP' is one column: the file is separated by tabs"),
        ("assays", 'HOLE_ID,FROM,TO,PD\nA,0,1,"0.5\nA,1,2,0.7\nB,0,1,1.2\n', 'assays.csv, line 2: cannot be read as CSV: a quote (") opens a field that is never closed'),
        ("zones", 'HOLE_ID,FROM,TO,ZONE\nA,0,2,"OFF"SET\n', "zones.csv, line 2: cannot be read as CSV: ',' expected after '\"'"),
        ("collars", "HOLE_ID,X,Y,Z,DEPTH\n", "collars.csv: a header but no rows: no collar to read"),
        ("collars", "", "collars.csv: the file is empty (expected a header line and rows)"),
        ("collars", "\n\n,,,\n", "collars.csv: the file is empty"),
        ("assays", "HOLE_ID,FROM,TO,PD\n", "no assay interval left after validation"),
        ("collars", "HOLE_ID,X,Y,Z,DEPTH\nA,0,0,100\nB,10,0,100,50\n", "collars.csv, line 2: 4 fields but the header (line 1) has 5"),
        ("surveys", "HOLE_ID,DEPTH,AZIMUTH,DIP\nA,0,0,-90\nB,0,90,-60,12\n", "surveys.csv, line 3: 5 fields but the header (line 1) has 4"),
        ("collars", "HOLE_ID,X,Y,Z,DEPTH,DEPTH\nA,0,0,100,50,50\n", "collars.csv: column 'DEPTH' appears twice in the header"),
        ("assays", ASSAYS + "B,1,2," + "9" * 200_000 + "\n", "assays.csv, line 5: cannot be read as CSV: a value longer than 131072 characters"),
    ],
    ids=[
        "binary-garbage", "utf16", "nul-byte", "semicolons", "tabs", "unbalanced-quote",
        "text-after-quote", "header-only-collars", "empty", "blank-lines-only",
        "header-only-assays", "short-row", "long-row", "duplicate-column", "huge-value",
    ],
)  # fmt: skip
def test_unreadable_tables_are_data_errors(tmp_path, table, content, message):
    with pytest.raises(DataError, match=re.escape(message)):
        drillholes(tmp_path, **{table: content})


# ---------------------------------------------------------------------------------------------
# Drillhole tables: read correctly, or reported row by row
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        lambda t: t.replace("\n", "\r\n"),
        lambda t: t.replace("\n", "\r"),
        lambda t: "\ufeff" + t,
        lambda t: t.replace("\n", ",\n"),
        lambda t: t.replace("\n", "\n\n"),
    ],
    ids=["crlf", "cr", "bom", "trailing-commas", "blank-lines"],
)
def test_line_endings_marks_and_trailing_commas_read_the_same(tmp_path, transform):
    tables = {"collars": COLLARS, "surveys": SURVEYS, "assays": ASSAYS, "zones": ZONES}
    ref, ref_report = drillholes(tmp_path)
    dh, report = drillholes(tmp_path, **{k: transform(t) for k, t in tables.items()})
    assert len(report) == len(ref_report) == 0
    for name in ("collars", "surveys", "assays", "zones"):
        got, want = getattr(dh, name), getattr(ref, name)
        cols = [c for c in want.columns if c != "_line"]
        assert got[cols].equals(want[cols]), name


def test_a_byte_order_mark_inside_the_file_is_dropped(tmp_path):
    # Two exports joined end to end: the second one's BOM must not make hole "\ufeffB".
    dh, report = drillholes(tmp_path, assays=ASSAYS + "\ufeffB,1,2,0.3\n")
    assert dh.assays["hole_id"].tolist() == ["A", "A", "B", "B"]
    assert len(report) == 0


def test_a_repeated_header_line_is_reported(tmp_path):
    dh, report = drillholes(tmp_path, assays=ASSAYS + "HOLE_ID,FROM,TO,PD\nB,1,2,0.3\n")
    assert len(dh.assays) == 4
    rows = report.to_frame()
    assert rows[["line", "hole", "code"]].values.tolist() == [[5, "HOLE_ID", "bad_value"]]
    assert rows["what"].iloc[0] == "interval from is 'FROM', not a number"


def test_quoted_fields_and_line_numbers(tmp_path):
    zones = 'HOLE_ID,FROM,TO,ZONE\nA,0,2,"OFFSET, upper"\n"B",0,1,"two\nlines"\n"B",1,2,OFFSET\n'
    dh, _ = drillholes(tmp_path, zones=zones)
    assert dh.zones["zone"].tolist() == ["OFFSET, upper", "two\nlines", "OFFSET"]
    assert dh.zones["_line"].tolist() == [2, 3, 5]


def test_huge_and_non_finite_numbers(tmp_path):
    collars = "HOLE_ID,X,Y,Z,DEPTH\nA,1e300,0,100,50\nB,10,0,100,50\nC,0,nan,0,50\n"
    assays = "HOLE_ID,FROM,TO,PD\nA,0,1,0.5\nB,0,1,1e300\nB,1,2,inf\nB,2,3,1e400\nB,3,4,2\nC,0,1,1\n"
    dh, report = drillholes(tmp_path, collars=collars, assays=assays, zones=None)
    assert dh.collars["hole_id"].tolist() == ["B"]
    pd_ = dh.assays["pd"].to_numpy()
    assert np.isnan(pd_[:3]).all() and pd_[3] == 2.0
    rows = report.to_frame()
    assert rows["code"].value_counts().to_dict() == {
        "missing_coordinate": 2,
        "no_collar": 3,
        "implausible_grade": 3,
    }
    what = rows.set_index(["file", "line"])["what"]
    assert what[("collars.csv", 2)] == "collar x is '1e300', beyond ±1e12 (not a plausible value)"
    assert what[("assays.csv", 4)] == "pd is 'inf', not a finite number"


def test_negative_zero(tmp_path):
    collars = "HOLE_ID,X,Y,Z,DEPTH\nA,-0,-0.0,100,50\nB,10,0,100,50\n"
    assays = "HOLE_ID,FROM,TO,PD\nA,-0,1,-0\nA,1,2,0.7\nB,0,1,1.2\n"
    dh, report = drillholes(tmp_path, collars=collars, assays=assays)
    assert len(report) == 0
    values = [dh.collars["x"].iloc[0], dh.collars["y"].iloc[0], dh.assays["from"].iloc[0]]
    values.append(dh.assays["pd"].iloc[0])
    assert values == [0.0] * 4
    assert not np.signbit(values).any()  # written back as 0, not -0


# ---------------------------------------------------------------------------------------------
# Positioned samples: CSV and GSLIB
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("s.dat", "t\n4\nx\ny\nx\npd\n0 0 0 1\n", "s.dat: column 'x' appears twice in the header"),
        ("s.dat", "t\n9\nx\ny\nz\npd\n0 0 0 1\n", "s.dat, line 2: declares 9 variables but the file ends after 5 name lines"),
        ("s.dat", "t\n6\nx\ny\nz\npd\n0 0 0 1\n1 0 0 2\n3 3 3 3\n", "s.dat, line 7: expected the name of variable 5 of 6 (line 2), got '0 0 0 1', which looks like a row of values"),
        ("s.dat", "t\n3\nx\ny\nz\npd\n0 0 0 1\n1 0 0 2\n", "s.dat, line 6: 1 value but line 2 declares 3 variables (x, y, z) (2 more lines like it)"),
        ("s.dat", "t\n1000000000\nx\n", "s.dat, line 2: declares 1000000000 variables but the file ends after 1 name line"),
        ("s.dat", "t\n0\n0 0 0\n", "s.dat, line 2: a GSLIB file needs at least one variable, got 0"),
        ("s.dat", "t\n4\nx\ny\nz\npd\n0 0 0 1\n1 0 0\n", "s.dat, line 8: 3 values but line 2 declares 4 variables"),
        ("s.dat", "t\n4\nx\ny\nz\npd\n", "s.dat: a header but no rows: no sample to read"),
        ("s.csv", "X,Y,Z,PD\n", "s.csv: a header but no rows: no sample to read"),
        ("s.csv", b"\x00\x01\x02\xff\xfe garbage\n", "s.csv: not UTF-8 text"),
        ("s.csv", "X,Y,Z,PD\n0,0,0,1,\n1,0,0,2,3\n", "s.csv, line 3: 5 fields but the header (line 1) has 4"),
    ],
    ids=[
        "gslib-duplicate-names", "gslib-count-too-big", "gslib-count-eats-rows",
        "gslib-count-too-small", "gslib-count-absurd", "gslib-count-zero", "gslib-short-row",
        "gslib-header-only", "csv-header-only", "csv-garbage", "csv-ragged",
    ],
)  # fmt: skip
def test_unreadable_samples_are_data_errors(tmp_path, name, content, message):
    with pytest.raises(DataError, match=re.escape(message)):
        samples(tmp_path, content, name)


def test_gslib_non_finite_values(tmp_path):
    content = "t\n4\nx\ny\nz\npd\nnan 0 0 1\n0 inf 0 1\n1 1 1 1e400\n2 2 2 3\n"
    df, report = samples(tmp_path, content, "s.dat")
    assert df["x"].tolist() == [1.0, 2.0]
    assert np.isnan(df["pd"].iloc[0]) and df["pd"].iloc[1] == 3.0
    rows = report.to_frame()
    assert rows[["line", "code"]].values.tolist() == [
        [7, "missing_coordinate"],
        [8, "missing_coordinate"],
        [9, "implausible_grade"],
    ]


def test_read_gslib_duplicate_names(tmp_path):
    (tmp_path / "d.dat").write_text("t\n2\nx\nX\n1 2\n")
    with pytest.raises(DataError, match=re.escape("d.dat: column 'X' appears twice")):
        read_gslib(tmp_path / "d.dat")


def test_max_grade_names_a_grade(tmp_path):
    (tmp_path / "s.csv").write_text("X,Y,PD\n0,0,1\n")
    raw = {"samples": str(tmp_path / "s.csv"), "max_grade": {"au": 10}}
    # refused when the config loads, before any file is read
    with pytest.raises(ConfigError, match=re.escape("data.max_grade.au: no such grade")):
        parse_config({"name": "t", "data": raw, "grades": ["pd"]}, tmp_path)


# ---------------------------------------------------------------------------------------------
# Wireframes
# ---------------------------------------------------------------------------------------------

CUBE_V = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float)
CUBE_F = np.array(
    [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
     [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
)  # fmt: skip


def obj(v, f, base=1):
    return "".join(f"v {a} {b} {c}\n" for a, b, c in v) + "".join(
        f"f {a + base} {b + base} {c + base}\n" for a, b, c in f
    )


def stl_binary(corners, count=None):
    out = b"binary".ljust(80, b" ") + struct.pack("<I", len(corners) if count is None else count)
    for c in np.asarray(corners, dtype="<f4"):
        out += b"\0" * 12 + c.tobytes() + b"\0\0"
    return out


def ply_ascii(v, f):
    head = (
        f"ply\nformat ascii 1.0\nelement vertex {len(v)}\nproperty float x\nproperty float y\n"
        f"property float z\nelement face {len(f)}\nproperty list uchar int vertex_indices\n"
        "end_header\n"
    )
    return head + obj(v, []).replace("v ", "") + "".join(f"3 {a} {b} {c}\n" for a, b, c in f)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.stl", stl_binary(CUBE_V[CUBE_F])[:-30], "t.stl: not an STL file: expected ASCII STL starting with 'solid' or binary with 84 + 50 x 12 = 684 bytes, got 654 bytes"),
        ("c.stl", stl_binary(CUBE_V[CUBE_F], count=2**31), "binary with 84 + 50 x 2147483648 = 107374182484 bytes, got 684 bytes"),
        ("z.stl", stl_binary(CUBE_V[CUBE_F][:0]), "z.stl: no triangles in the file"),
        ("p.ply", ply_ascii(CUBE_V, np.vstack([CUBE_F, [[0, 1, 8]]])).replace("face 12", "face 13"), "p.ply, line 30: vertex index outside 0..7"),
        ("e.obj", "", "e.obj: no triangles in the file"),
        ("v.obj", obj(CUBE_V, []), "v.obj: no triangles in the file"),
        ("d.obj", obj(CUBE_V, [[0, 0, 1], [1, 1, 2]]), "d.obj: no closed body in the wireframe (every triangle uses a vertex twice)"),
        ("h.obj", obj(CUBE_V * [1, 1, 1e300], CUBE_F), "h.obj: vertex 2 is (0, 0, 1e+300), beyond ±1e+12 data units"),
        ("i.obj", obj(CUBE_V, CUBE_F).replace("v 0.0 0.0 0.0", "v inf 0 0"), "i.obj: vertex 1 has a coordinate that is not a finite number"),
        ("g.obj", GARBAGE, "g.obj: no triangles in the file"),
    ],
    ids=[
        "stl-truncated", "stl-count-lies", "stl-empty", "ply-index-past-vertices",
        "obj-empty", "obj-no-faces", "obj-degenerate-only", "obj-huge", "obj-inf", "obj-garbage",
    ],
)  # fmt: skip
def test_unreadable_wireframes_are_data_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=re.escape(message)):
        load_wireframe(path, report=DataReport())


def test_obj_negative_indices_are_relative(tmp_path):
    # "f -8 -7 -5" counts back from the last vertex read: the same cube as "f 1 2 4".
    (tmp_path / "r.obj").write_text(obj(CUBE_V, CUBE_F, base=-8))
    report = DataReport()
    wf = load_wireframe(tmp_path / "r.obj", report=report)
    npt.assert_allclose(wf.volume, 1.0, rtol=1e-12)
    assert len(report) == 0


def test_overlapping_bodies_in_one_file_are_reported(tmp_path):
    v = np.vstack([CUBE_V, CUBE_V + 0.5])
    f = np.vstack([CUBE_F, CUBE_F + 8])
    (tmp_path / "two.obj").write_text(obj(v, f))
    report = DataReport()
    load_wireframe(tmp_path / "two.obj", report=report)
    rows = report.to_frame()
    assert rows["code"].tolist() == ["wireframe_overlapping_bodies"]
    assert rows["file"].iloc[0] == str(tmp_path / "two.obj")


# ---------------------------------------------------------------------------------------------
# Fuzz: mutated valid files give values or a DataError, nothing else
# ---------------------------------------------------------------------------------------------

_TOKENS = [
    b",", b'"', b"\n", b"\r\n", b"\x00", b"\xef\xbb\xbf", b"inf", b"nan", b"1e400", b"-0",
    b";", b"\t", b"-", b"<", b">", b"\xff", b"NS", b"1e300", b"/", b"#", b"f", b"v", b"-1",
    b"99999999999",
]  # fmt: skip


def _mutate(raw: bytes, rng) -> bytes:
    b = bytearray(raw)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(0, max(len(b), 1)))
        op = int(rng.integers(0, 4))
        if op == 0 and b:
            b[i] = int(rng.integers(0, 256))
        elif op == 1:
            b[i:i] = _TOKENS[int(rng.integers(len(_TOKENS)))]
        elif op == 2:
            del b[i : i + int(rng.integers(1, 8))]
        else:
            del b[i:]
    return bytes(b)


def _ply_binary():
    head = (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 8\nproperty float x\n"
        b"property float y\nproperty float z\nelement face 12\n"
        b"property list uchar int vertex_indices\nend_header\n"
    )
    faces = b"".join(b"\x03" + t.astype("<i4").tobytes() for t in CUBE_F)
    return head + CUBE_V.astype("<f4").tobytes() + faces


FUZZ = {
    "collars": (lambda t, c: drillholes(t, collars=c), COLLARS.encode()),
    "surveys": (lambda t, c: drillholes(t, surveys=c), SURVEYS.encode()),
    "assays": (lambda t, c: drillholes(t, assays=c), ASSAYS.encode()),
    "zones": (lambda t, c: drillholes(t, zones=c), ZONES.encode()),
    "samples": (lambda t, c: samples(t, c), b"X,Y,Z,PD\n0,0,0,1.0\n1,0,0,2.0\n"),
    "gslib": (lambda t, c: samples(t, c, "s.dat"), GSLIB.encode()),
    "obj": (lambda t, c: _wireframe(t, "m.obj", c), obj(CUBE_V, CUBE_F).encode()),
    "stl": (lambda t, c: _wireframe(t, "m.stl", c), stl_binary(CUBE_V[CUBE_F])),
    "ply-ascii": (lambda t, c: _wireframe(t, "m.ply", c), ply_ascii(CUBE_V, CUBE_F).encode()),
    "ply-binary": (lambda t, c: _wireframe(t, "m.ply", c), _ply_binary()),
}


def _wireframe(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    return load_wireframe(tmp_path / name, report=DataReport())


@pytest.mark.parametrize("kind", list(FUZZ))
def test_fuzzed_files_give_values_or_a_data_error(tmp_path, kind):
    read, valid = FUZZ[kind]
    read(tmp_path, valid)  # the unmutated file reads
    rng = np.random.default_rng(sorted(FUZZ).index(kind))
    outcomes = {"read": 0, "DataError": 0}
    for k in range(40):
        case = tmp_path / str(k)
        case.mkdir()
        try:
            read(case, _mutate(valid, rng))
            outcomes["read"] += 1
        except DataError:
            outcomes["DataError"] += 1
    assert sum(outcomes.values()) == 40
