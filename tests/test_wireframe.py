"""Reading and writing wireframes: OBJ, STL (ASCII, binary), PLY (ASCII, binary)."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import numpy.testing as npt
import pytest

from estimator.datareport import DataReport
from estimator.errors import DataError
from estimator.geometry.mesh import check_closed, mesh_volume
from estimator.io.wireframe import load_wireframe, read_mesh, write_obj

MPZ = Path(__file__).parent / "data" / "babbitt" / "Mpz.stl"

# a unit cube at mine-grid coordinates with -0.0 among the coordinates
CUBE_V = np.array(
    [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
    dtype=np.float64,
) * [2.5, 2.5, 2.5] + [1000.125, 2000.25, -0.0]
CUBE_QUADS = [(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]
CUBE_F = np.array([(q[0], q[k], q[k + 1]) for q in CUBE_QUADS for k in (1, 2)], dtype=np.int64)


def _same_mesh(v1, f1, v2, f2):
    """Same triangles (as coordinate triples, in order), whatever the vertex numbering."""
    npt.assert_array_equal(v1[f1], v2[f2])


# ---------------------------------------------------------------------------------------
# Tiny writers for the formats estimator only reads
# ---------------------------------------------------------------------------------------


def write_stl_ascii(path, v, f):
    lines = ["solid cube"]
    for tri in f:
        lines += ["  facet normal 0 0 0", "    outer loop"]
        lines += [f"      vertex {x!r} {y!r} {z!r}" for x, y, z in v[tri].tolist()]
        lines += ["    endloop", "  endfacet"]
    path.write_text("\n".join([*lines, "endsolid cube"]) + "\n")


def write_stl_binary(path, corners, header=b"binary cube"):
    out = header.ljust(80, b" ") + struct.pack("<I", len(corners))
    for tri in corners:
        out += struct.pack("<3f", 0, 0, 0) + tri.astype("<f4").tobytes() + b"\0\0"
    path.write_bytes(out)


def write_ply(path, v, polys, fmt="ascii", vtype="double", count="uchar", index="int"):
    codes = {"double": "d", "float": "f", "uchar": "B", "char": "b", "int": "i", "uint": "I", "ushort": "H"}
    head = [
        "ply",
        f"format {fmt} 1.0",
        "comment written by the tests",
        f"element vertex {len(v)}",
        f"property {vtype} x",
        f"property {vtype} y",
        f"property {vtype} z",
        "property uchar red",
        f"element face {len(polys)}",
        f"property list {count} {index} vertex_indices",
        "property float quality",
        "element edge 1",
        "property int vertex1",
        "property int vertex2",
        "end_header",
    ]
    text = "\n".join(head) + "\n"
    if fmt == "ascii":
        rows = [f"{x!r} {y!r} {z!r} 255" for x, y, z in v.tolist()]
        rows += [" ".join(map(str, [len(p), *p])) + " 0.5" for p in polys]
        path.write_text(text + "\n".join([*rows, "0 1"]) + "\n")
        return
    e = "<" if fmt == "binary_little_endian" else ">"
    out = text.encode()
    for x, y, z in v:
        out += struct.pack(f"{e}3{codes[vtype]}B", x, y, z, 255)
    for p in polys:
        out += struct.pack(f"{e}{codes[count]}{len(p)}{codes[index]}f", len(p), *p, 0.5)
    path.write_bytes(out + struct.pack(f"{e}2i", 0, 1))


# ---------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------


def test_obj_round_trip_is_exact(tmp_path):
    v = CUBE_V + np.random.default_rng(0).normal(0, 1e-7, CUBE_V.shape)
    write_obj(tmp_path / "cube.obj", v, CUBE_F)
    v2, f2 = read_mesh(tmp_path / "cube.obj")
    npt.assert_array_equal(v2, v)
    npt.assert_array_equal(f2, CUBE_F)
    assert [p.name for p in tmp_path.iterdir()] == ["cube.obj"]  # no temporary file left
    write_obj(tmp_path / "cube.obj", v[:3], [[0, 1, 2]])  # overwrite in place
    assert read_mesh(tmp_path / "cube.obj")[1].tolist() == [[0, 1, 2]]


def test_obj_polygons_texture_normal_forms_and_negative_indices(tmp_path):
    text = """# cube as quads
mtllib cube.mtl
o cube
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
vt 0 0
vn 0 0 1
v 0 0 1   # trailing comment
v 1 0 1
v 1 1 1
v 0 1 1
g sides
usemtl rock
f 1/1 4/1 3/1 2/1
f 5/1/1 6/1/1 7//1 8//1
f -8 -7 -3 -4
f 2 3 7 6
f 3 4 8 7
s off
f 4 1 5 8
"""
    (tmp_path / "cube.obj").write_text(text)
    v, f = read_mesh(tmp_path / "cube.obj")
    assert v.shape == (8, 3)
    assert f.shape == (12, 3)
    assert f[4].tolist() == [0, 1, 5]  # from the negative indices -8 -7 -3
    assert check_closed(f, v) == (True, [])
    npt.assert_allclose(mesh_volume(v, f), 1.0, rtol=1e-12)


def test_stl_ascii_merges_corners(tmp_path):
    write_stl_ascii(tmp_path / "cube.stl", CUBE_V, CUBE_F)
    v, f = read_mesh(tmp_path / "cube.stl")
    assert v.shape == (8, 3)
    _same_mesh(v, f, CUBE_V + 0.0, CUBE_F)
    assert check_closed(f, v)[0]


@pytest.mark.parametrize("header", [b"binary cube", b"solid cube"], ids=["plain", "solid-header"])
def test_stl_binary_is_detected_by_size(tmp_path, header):
    write_stl_binary(tmp_path / "cube.STL", CUBE_V[CUBE_F], header)
    v, f = read_mesh(tmp_path / "cube.STL")
    assert v.shape == (8, 3)
    _same_mesh(v, f, CUBE_V.astype(np.float32).astype(np.float64), CUBE_F)
    npt.assert_allclose(mesh_volume(v, f), 2.5**3, rtol=1e-12)


def test_stl_negative_zero_is_merged(tmp_path):
    corners = (CUBE_V - CUBE_V.min(axis=0))[CUBE_F]
    half = corners[::2]  # a view: every other triangle writes -0.0 for 0.0
    half[half == 0] = -0.0
    assert np.signbit(corners).any()
    write_stl_binary(tmp_path / "z.stl", corners)
    v, f = read_mesh(tmp_path / "z.stl")
    assert len(v) == 8
    assert check_closed(f)[0]


@pytest.mark.parametrize(
    ("fmt", "vtype", "count", "index"),
    [
        ("ascii", "double", "uchar", "int"),
        ("binary_little_endian", "float", "uchar", "int"),
        ("binary_big_endian", "double", "int", "uint"),
        ("binary_little_endian", "double", "ushort", "int"),
    ],
    ids=["ascii", "le-float", "be-double", "le-ushort-counts"],
)
def test_ply_round_trip_with_quads(tmp_path, fmt, vtype, count, index):
    write_ply(tmp_path / "cube.ply", CUBE_V, CUBE_QUADS, fmt, vtype, count, index)
    v, f = read_mesh(tmp_path / "cube.ply")
    expected = CUBE_V.astype(np.float32).astype(np.float64) if vtype == "float" else CUBE_V
    npt.assert_array_equal(v, expected)
    npt.assert_array_equal(f, CUBE_F)


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian"])
def test_ply_triangles_and_mixed_polygons(tmp_path, fmt):
    write_ply(tmp_path / "t.ply", CUBE_V, CUBE_F.tolist(), fmt)  # all triangles: fast path
    npt.assert_array_equal(read_mesh(tmp_path / "t.ply")[1], CUBE_F)
    mixed = [CUBE_QUADS[0], *[tuple(t) for t in CUBE_F[2:]]]  # one quad, then triangles
    write_ply(tmp_path / "m.ply", CUBE_V, mixed, fmt)
    npt.assert_array_equal(read_mesh(tmp_path / "m.ply")[1], CUBE_F)


# ---------------------------------------------------------------------------------------
# Errors name the file, the line and what was expected
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n", "a.obj, line 4: face vertex '4' is not an index between 1 and 3"),
        ("b.obj", "v 0 0\n", "b.obj, line 1: expected 'v x y z' with 3 numbers, got 'v 0 0'"),
        ("c.obj", "v 0 0 0\nv 1 0 0\nf 1 2\n", "c.obj, line 3: a face needs at least 3 vertices"),
        ("d.obj", "v 0 0 0\n", "d.obj: no triangles in the file"),
        ("e.obj", "v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "e.obj: vertex 1 has a coordinate that is not a finite number"),
        ("a.stl", "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 zero\n", "a.stl, line 5: expected 'vertex x y z' with 3 numbers"),
        ("b.stl", "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nendloop\nendfacet\n", "b.stl, line 6: facet starting at line 2 has 1 vertices, expected 3"),
        ("c.stl", "solid x\nfacet normal 0 0 1\nvertex 0 0 0\n", "c.stl, line 2: facet not closed by 'endfacet'"),
        ("d.stl", "hello" * 30, "d.stl: not an STL file: expected ASCII STL starting with 'solid' or binary with 84 + 50 x"),
        ("a.ply", "ply\nformat ascii 1.0\nelement vertex 1\n", "a.ply: not a PLY file: expected 'ply' on line 1 and an 'end_header' line"),
        ("b.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1\n3 0 1 2\n", "b.ply, line 12: expected a 'vertex' record (x, y, z), got '0 1'"),
        ("c.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n", "c.ply, line 13: vertex index outside 0..2"),
        ("d.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n", "d.ply: PLY vertex element needs properties x, y, z, got ['x', 'y']"),
        ("e.ply", "ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n\0\0\0\0", "e.ply: PLY file ends inside the 'vertex' element (expected 3 records)"),
        ("f.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty quad x\nend_header\n", "f.ply, line 4: unknown PLY property type 'quad'"),
        ("g.ply", "ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\nend_header\n", "g.ply: PLY header declares no 'face' element"),
        ("a.dxf", "0\nSECTION\n", "a.dxf: unknown wireframe format '.dxf'; expected .obj, .stl or .ply"),
        ("f.obj", "v 0 0 0\nv 1e300 0 0\nv 0 1 0\nf 1 2 3\n", "f.obj: vertex 2 is (1e+300, 0, 0), beyond ±1e+12 data units: not a plausible coordinate"),
        ("h.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty \nend_header\n", "h.ply, line 4: unexpected PLY header line 'property'"),
        ("i.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nelement face 1\nproperty list float int vertex_indices\nend_header\n", "i.ply, line 6: a PLY list count must be an integer type, got 'float'"),
    ],
)  # fmt: skip
def test_read_errors(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=re.escape(message)):
        read_mesh(tmp_path / name)


def test_truncated_binary_stl(tmp_path):
    write_stl_binary(tmp_path / "t.stl", CUBE_V[CUBE_F])
    raw = (tmp_path / "t.stl").read_bytes()
    (tmp_path / "t.stl").write_bytes(raw[:-10])
    msg = "t.stl: not an STL file: expected ASCII STL starting with 'solid' or binary with 84 + 50 x 12 = 684 bytes, got 674 bytes"
    with pytest.raises(DataError, match=re.escape(msg)):
        read_mesh(tmp_path / "t.stl")


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian"])
def test_ply_negative_list_count(tmp_path, fmt):
    # a signed count of -1 made numpy read the rest of the file (or fail on a negative shape)
    polys = [[0, 1, 2]] * 3
    write_ply(tmp_path / "n.ply", CUBE_V, polys, fmt=fmt, count="char")
    raw = bytearray((tmp_path / "n.ply").read_bytes())
    at = raw.index(b"end_header\n") + len(b"end_header\n") + len(CUBE_V) * 25
    assert raw[at] == 3
    raw[at] = 0xFF  # -1 as a signed char: the first face's count
    (tmp_path / "n.ply").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=re.escape("n.ply: PLY 'face' record 1 has a list of -1 items")):
        read_mesh(tmp_path / "n.ply")
    raw[at] = 3
    raw[at + 17] = 0xFF  # the second face's count (1 + 3 x 4 + 4 bytes per face)
    (tmp_path / "n.ply").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=re.escape("n.ply: PLY 'face' record 2 has a list of -1 items")):
        read_mesh(tmp_path / "n.ply")


def test_ply_float_indices_must_be_whole(tmp_path):
    write_ply(tmp_path / "w.ply", CUBE_V, CUBE_QUADS, fmt="binary_little_endian", index="float")
    _same_mesh(*read_mesh(tmp_path / "w.ply"), CUBE_V, CUBE_F)
    write_ply(tmp_path / "f.ply", CUBE_V, [[0, 1, 2.5], *CUBE_QUADS], fmt="binary_little_endian", index="float")
    with pytest.raises(DataError, match=re.escape("f.ply, face 1: vertex indices must be whole numbers")):
        read_mesh(tmp_path / "f.ply")


def test_a_folder_is_not_a_wireframe(tmp_path):
    (tmp_path / "zone.obj").mkdir()
    msg = f"{tmp_path / 'zone.obj'}: is a folder, not a wireframe file"
    with pytest.raises(DataError, match=re.escape(msg)):
        load_wireframe(tmp_path / "zone.obj", DataReport())


def test_stl_body_written_twice(tmp_path):
    # STL merges corners, so a body written twice has every edge on four triangles: nothing
    # was closed. The repeats are dropped and reported.
    write_stl_binary(tmp_path / "twice.stl", np.vstack([CUBE_V[CUBE_F], CUBE_V[CUBE_F]]))
    report = DataReport()
    wf = load_wireframe(tmp_path / "twice.stl", report)
    assert wf.n_bodies == 1
    npt.assert_allclose(wf.volume, 2.5**3, rtol=1e-12)
    assert report.counts() == {"wireframe_repeated_triangle": 1}
    assert report.rows[0]["what"].startswith("12 triangles repeat earlier ones")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=re.escape("nope.obj: cannot read the wireframe")):
        read_mesh(tmp_path / "nope.obj")


# ---------------------------------------------------------------------------------------
# load_wireframe
# ---------------------------------------------------------------------------------------


def test_load_wireframe_reports_open_bodies(tmp_path):
    v = np.vstack([CUBE_V, CUBE_V + np.array([10.0, 0, 0])])
    f = np.vstack([CUBE_F, CUBE_F[2:] + 8])  # second cube misses its bottom (a 4-edge hole)
    write_obj(tmp_path / "two.obj", v, f)
    report = DataReport()
    wf = load_wireframe(tmp_path / "two.obj", report)
    assert wf.n_bodies == 1
    npt.assert_allclose(wf.volume, 2.5**3, rtol=1e-12)
    rows = report.to_frame()
    assert rows["code"].tolist() == ["wireframe_open_body"]
    assert rows["file"][0] == str(tmp_path / "two.obj")
    assert "4 edges belong to one triangle only (holes in the surface)" in rows["what"][0]
    write_obj(tmp_path / "open.obj", v[8:], CUBE_F[2:])
    with pytest.raises(DataError, match="no closed body in the wireframe"):
        load_wireframe(tmp_path / "open.obj")


def test_load_babbitt_mpz():
    report = DataReport()
    wf = load_wireframe(MPZ, report)
    assert wf.n_bodies == 1
    assert wf.faces.shape == (63_744, 3)  # 63,749 - 3 fins of 2 triangles + 1 filled hole
    assert check_closed(wf.faces, wf.vertices)[0]
    assert report.counts() == {"wireframe_hole_filled": 1, "wireframe_open_body": 3}
    npt.assert_allclose(wf.volume, mesh_volume(wf.vertices, wf.faces), rtol=1e-12)
    npt.assert_allclose(wf.volume, 6.26254e10, rtol=1e-5)  # cubic feet
    npt.assert_allclose(wf.bounds[0], [2289334.0, 415146.0, -645.833069], rtol=1e-9)
    npt.assert_allclose(wf.bounds[1], [2302998.25, 424122.0, 1690.0], rtol=1e-9)
