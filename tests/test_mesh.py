"""Wireframe topology, volume and the exact inside test against analytic solids."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import numpy as np
import numpy.testing as npt
import pytest
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation

from estimator.datareport import DataReport
from estimator.errors import DataError
from estimator.geometry import _kernels
from estimator.geometry.mesh import (
    build_wireframe,
    check_closed,
    fill_holes,
    mesh_volume,
    points_inside,
    split_bodies,
)

MPZ = Path(__file__).parent / "data" / "babbitt" / "Mpz.stl"
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") == "1"

# ---------------------------------------------------------------------------------------
# Analytic solids
# ---------------------------------------------------------------------------------------


def box_mesh(lo=(0, 0, 0), hi=(1, 1, 1), n=1):
    """Axis-aligned box, each face split into n x n squares, wound outward."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    ticks = [lo[k] + (hi[k] - lo[k]) * (np.arange(n + 1) / n) for k in range(3)]
    corners, tris = [], []
    for k in range(3):
        for side in (0, 1):
            a1, a2 = ((k + 1) % 3, (k + 2) % 3) if side else ((k + 2) % 3, (k + 1) % 3)
            base = len(corners)
            for i in range(n + 1):
                for j in range(n + 1):
                    p = np.empty(3)
                    p[k] = hi[k] if side else lo[k]
                    p[a1], p[a2] = ticks[a1][i], ticks[a2][j]
                    corners.append(p)
            idx = base + np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
            for i in range(n):
                for j in range(n):
                    p00, p10, p11, p01 = idx[i, j], idx[i + 1, j], idx[i + 1, j + 1], idx[i, j + 1]
                    tris += [(p00, p10, p11), (p00, p11, p01)]
    verts, inverse = np.unique(np.array(corners), axis=0, return_inverse=True)
    return verts, inverse.ravel()[np.array(tris)]


def icosphere(r=1.0, levels=3, centre=(0, 0, 0)):
    """Subdivided icosahedron with its vertices on the sphere, wound outward."""
    t = (1 + 5**0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t)]
    v += [(0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4)]
    f += [(11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8)]
    f += [(3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, float) / np.linalg.norm(p) for p in v]
    faces = f
    for _ in range(levels):
        cache, new = {}, []

        def mid(i, j, cache=cache):
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = verts[i] + verts[j]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts) * r + np.asarray(centre, float), np.array(faces, dtype=np.int64)


def octahedron():
    v = np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    f = [(0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 0, 4), (1, 0, 5), (2, 1, 5), (3, 2, 5), (0, 3, 5)]
    return v, np.array(f)


def test_solids_are_wound_outward():
    # independent of mesh_volume: every normal points away from the solid's centre
    for v, f in (box_mesh(n=3), icosphere(levels=2), octahedron()):
        n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        centroid = v[f].mean(axis=1) - v.mean(axis=0)
        assert (np.einsum("ij,ij->i", n, centroid) > 0).all()


# ---------------------------------------------------------------------------------------
# Volume
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 4], ids=["12-triangles", "subdivided"])
def test_box_volume(n):
    v, f = box_mesh((1, 2, 3), (4, 7, 5), n)
    npt.assert_allclose(mesh_volume(v, f), 3 * 5 * 2, rtol=1e-12)
    npt.assert_allclose(mesh_volume(v, f[:, ::-1]), -30, rtol=1e-12)


def test_volume_keeps_precision_at_mine_grid_coordinates():
    v, f = box_mesh((0, 0, 0), (10, 20, 5), 2)
    shifted = v + np.array([2_300_000.0, 5_400_000.0, 1200.0])
    npt.assert_allclose(mesh_volume(shifted, f), 1000.0, rtol=1e-12)


def test_sphere_volume_is_the_polyhedron_volume_and_converges():
    errors = []
    for levels in (1, 2, 3, 4, 5):
        v, f = icosphere(2.0, levels)
        vol = mesh_volume(v, f)
        npt.assert_allclose(vol, ConvexHull(v).volume, rtol=1e-10)
        errors.append(abs(vol / (4 / 3 * np.pi * 8) - 1))
    assert all(b < a / 3 for a, b in itertools.pairwise(errors))  # O(h^2)
    assert errors[-1] < 1e-3


# ---------------------------------------------------------------------------------------
# Topology
# ---------------------------------------------------------------------------------------


def test_check_closed_on_closed_solids():
    for v, f in (box_mesh(n=2), icosphere(levels=2), octahedron()):
        assert check_closed(f, v) == (True, [])


def test_open_surface_is_detected():
    v, f = box_mesh()
    closed, problems = check_closed(f[1:], v)
    assert not closed
    assert problems[0].startswith("3 edges belong to one triangle only (holes in the surface)")


def test_inconsistent_winding_is_detected():
    v, f = box_mesh()
    f = f.copy()
    f[0] = f[0, ::-1]
    closed, problems = check_closed(f, v)
    assert not closed
    assert len(problems) == 1
    assert re.match(
        r"3 edges are traversed twice in the same direction \(inconsistent winding\)", problems[0]
    )


def test_non_manifold_and_repeated_vertices_are_detected():
    v, f = box_mesh()
    closed, problems = check_closed(np.vstack([f, f[:1], [[0, 0, 1]]]), v)
    assert not closed
    text = " | ".join(problems)
    assert "1 triangles use the same vertex twice" in text
    assert "edges are shared by more than two triangles (non-manifold)" in text


def test_zero_area_triangles_are_listed_but_do_not_open_the_surface():
    v, f = box_mesh()
    line = np.array([[5, 0, 0], [6, 0, 0], [7, 0, 0]], float)  # three collinear points
    v = np.vstack([v, line])
    g = np.vstack([f, [[8, 9, 10], [8, 10, 9]]])  # a double-sided zero-area triangle
    closed, problems = check_closed(g, v)
    assert closed
    assert problems == ["2 triangles have zero area"]


def test_split_bodies_two_disjoint_cubes():
    v1, f1 = box_mesh((0, 0, 0), (1, 1, 1))
    v2, f2 = box_mesh((3, 0, 0), (4, 1, 1), 2)
    v = np.vstack([v1, v2])
    f = np.vstack([f2 + len(v1), f1])
    bodies = split_bodies(f)
    assert [len(b) for b in bodies] == [len(f2), len(f1)]
    npt.assert_array_equal(bodies[0], np.arange(len(f2)))
    assert all(check_closed(f[b], v)[0] for b in bodies)


def test_split_bodies_cuts_non_manifold_edges():
    # two cubes touching along one edge: the shared edge belongs to four triangles
    v1, f1 = box_mesh((0, 0, 0), (1, 1, 1))
    v2, f2 = box_mesh((1, 1, 0), (2, 2, 1))
    verts, inverse = np.unique(np.vstack([v1, v2]), axis=0, return_inverse=True)
    f = inverse.ravel()[np.vstack([f1, f2 + len(v1)])]
    assert not check_closed(f)[0]
    bodies = split_bodies(f)
    assert sorted(len(b) for b in bodies) == [12, 12]
    assert all(check_closed(f[b])[0] for b in bodies)
    npt.assert_allclose([mesh_volume(verts, f[b]) for b in bodies], [1, 1], rtol=1e-12)


def test_fill_holes_restores_a_missing_triangle():
    v, f = box_mesh(n=2)
    filled, loops = fill_holes(f[1:], max_edges=3)
    assert len(loops) == 1
    assert sorted(filled[-1]) == sorted(f[0])
    assert check_closed(filled)[0]
    npt.assert_allclose(mesh_volume(v, filled), 1.0, rtol=1e-12)
    # a four-edge hole is left alone at the default size, closed when allowed
    assert fill_holes(f[2:])[1] == []
    assert check_closed(fill_holes(f[2:], max_edges=4)[0])[0]


# ---------------------------------------------------------------------------------------
# Inside test
# ---------------------------------------------------------------------------------------


def test_inside_cube_with_rays_through_edges_and_vertices():
    # vertices every 0.25, so lattice points sit under vertices and shared (diagonal) edges
    v, f = box_mesh((0, 0, 0), (1, 1, 1), n=4)
    g = np.arange(-0.25, 1.3, 0.125)
    p = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    strictly_in = ((p > 0) & (p < 1)).all(axis=1)
    on_surface = ((p >= 0) & (p <= 1)).all(axis=1) & ~strictly_in
    got = points_inside(v, f, p)
    npt.assert_array_equal(got[~on_surface], strictly_in[~on_surface])
    npt.assert_array_equal(_kernels.inside_numpy(v, f, p), got)


def test_inside_octahedron_apex_and_silhouette():
    v, f = octahedron()
    p = np.array(
        [
            [0, 0, 0],  # ray through the apex vertex shared by 4 triangles
            [0, 0, -0.5],  # ... and starting below the bottom apex
            [0.5, 0, 0.2],  # ray through an upper edge
            [0.25, 0.25, -0.3],  # ray through the upper face shared edge projection
            [1, 0, -3],  # ray through the equator vertex (a fold): outside
            [0.7, 0.3, -3],  # ray along the silhouette edge: outside
            [0.7, 0.3, 3],
            [-0.5, 0, 0.49],
            [-0.5, 0, 0.51],
        ]
    )
    truth = np.abs(p).sum(axis=1) < 1
    npt.assert_array_equal(points_inside(v, f, p), truth)
    npt.assert_array_equal(_kernels.inside_numpy(v, f, p), truth)


def test_inside_sphere_against_halfspaces():
    v, f = icosphere(3.0, 3, centre=(10, -5, 2))
    hull = ConvexHull(v)
    rng = np.random.default_rng(0)
    centre = np.array([10.0, -5.0, 2.0])
    p = rng.uniform(-3.5, 3.5, (20000, 3)) + centre
    signed = p @ hull.equations[:, :3].T + hull.equations[:, 3]
    away = np.abs(signed).min(axis=1) > 1e-9
    truth = (signed < 0).all(axis=1)
    got = points_inside(v, f, p)
    npt.assert_array_equal(got[away], truth[away])
    # away from the surface the polyhedron agrees with |p - c| < r
    r = np.linalg.norm(p - centre, axis=1)
    r_in = np.abs(hull.equations[:, 3]).min()
    npt.assert_array_equal(got[r < r_in - 1e-9], True)
    npt.assert_array_equal(got[r > 3.0], False)


def test_inside_rotated_box():
    v, f = box_mesh((-2, -1, -0.5), (2, 1, 0.5), n=3)
    rot = Rotation.from_euler("zyx", [33, 21, -12], degrees=True)
    shift = np.array([500.0, 200.0, 50.0])
    world = rot.apply(v) + shift
    rng = np.random.default_rng(1)
    p = rng.uniform(-2.5, 2.5, (20000, 3)) + shift
    local = rot.inv().apply(p - shift)
    margin = np.min(np.abs(np.abs(local) - [2, 1, 0.5]), axis=1)
    truth = (np.abs(local) < [2, 1, 0.5]).all(axis=1)
    got = points_inside(world, f, p)
    npt.assert_array_equal(got[margin > 1e-9], truth[margin > 1e-9])
    npt.assert_allclose(mesh_volume(world, f), 8.0, rtol=1e-12)


def test_numba_agrees_with_numpy_reference_and_serial_with_parallel():
    v, f = icosphere(1.0, 2)
    rng = np.random.default_rng(2)
    # random points plus points on vertical lines through every vertex
    p = np.vstack([rng.uniform(-1.2, 1.2, (3000, 3)), v * [1, 1, 0.5], v * [1, 1, -2]])
    ref = _kernels.inside_numpy(v, f, p)
    npt.assert_array_equal(points_inside(v, f, p), ref)
    npt.assert_array_equal(points_inside(v, f, p, parallel=False), ref)
    assert ref[-len(v) :].sum() == 0  # below the sphere, through every vertex


def test_inside_edge_cases():
    v, f = box_mesh()
    got = points_inside(v, f, [[np.nan, 0.5, 0.5], [0.5, 0.5, 0.5]])
    npt.assert_array_equal(got, [False, True])
    assert points_inside(v, f[:0], [[0.5, 0.5, 0.5]]).tolist() == [False]
    assert points_inside(v, f, np.empty((0, 3))).shape == (0,)
    with pytest.raises(ValueError, match="faces must be an"):
        points_inside(v, f.astype(float), [[0, 0, 0]])
    with pytest.raises(ValueError, match="faces refer to vertices outside"):
        points_inside(v, f + 100, [[0, 0, 0]])


# ---------------------------------------------------------------------------------------
# build_wireframe
# ---------------------------------------------------------------------------------------


def _merge(*meshes):
    verts, faces, n = [], [], 0
    for v, f in meshes:
        verts.append(v)
        faces.append(f + n)
        n += len(v)
    return np.vstack(verts), np.vstack(faces)


def test_build_wireframe_keeps_closed_bodies_and_reports_the_rest():
    cube = box_mesh((0, 0, 0), (1, 1, 1))
    inward = box_mesh((5, 0, 0), (7, 1, 1))
    inward = (inward[0], inward[1][:, ::-1])
    sheet = box_mesh((10, 0, 0), (11, 1, 1), 2)
    sheet = (sheet[0], sheet[1][:8])  # one side of a box: open
    v, f = _merge(cube, inward, sheet)
    report = DataReport()
    wf = build_wireframe(v, f, "zone.obj", report)
    assert wf.n_bodies == 2
    npt.assert_allclose(wf.volume, 3.0, rtol=1e-12)
    npt.assert_allclose(mesh_volume(wf.vertices, wf.faces), 3.0, rtol=1e-12)
    npt.assert_array_equal(wf.bounds, [[0, 0, 0], [7, 1, 1]])
    assert check_closed(wf.faces)[0]
    rows = report.to_frame()
    assert rows["code"].tolist() == ["wireframe_open_body", "wireframe_flipped_body"]
    assert (rows["file"] == "zone.obj").all()
    assert rows["what"][0].startswith(
        "body 3 (8 triangles, centre (10.0, 0.5, 0.5)) is not closed:"
    )
    assert rows["action"].tolist() == ["body left out", "winding reversed"]


def test_build_wireframe_nested_body_wound_inward_is_a_deliberate_void():
    inner = box_mesh((1, 1, 1), (2, 2, 2))
    v, f = _merge(box_mesh((0, 0, 0), (4, 4, 4)), (inner[0], inner[1][:, ::-1]))
    report = DataReport()
    wf = build_wireframe(v, f, "shell.stl", report)
    npt.assert_allclose(wf.volume, 63.0, rtol=1e-12)
    assert len(report) == 0
    npt.assert_array_equal(
        points_inside(wf.vertices, wf.faces, [[1.5, 1.5, 1.5], [3, 3, 3]]), [False, True]
    )


def test_build_wireframe_nested_body_wound_like_its_container_is_an_overlap():
    # Both bodies wound outward: one is wholly inside the other, which the parity inside
    # test turns into a void. Not a deliberate void (that would be wound inward): reported.
    v, f = _merge(box_mesh((0, 0, 0), (4, 4, 4)), box_mesh((1, 1, 1), (2, 2, 2)))
    report = DataReport()
    wf = build_wireframe(v, f, "shell.stl", report)
    npt.assert_allclose(wf.volume, 63.0, rtol=1e-12)
    assert report.counts() == {"wireframe_overlapping_bodies": 1}
    row = report.rows[0]
    assert row["file"] == "shell.stl"
    assert row["what"] == (
        "body 2 (12 triangles, centre (1.5, 1.5, 1.5)), volume 1, lies wholly inside body 1 "
        "(12 triangles, centre (2.0, 2.0, 2.0)), volume 64, and is wound the same way: two "
        "overlapping bodies, not a deliberate void (a void is wound opposite to the body "
        "around it)"
    )
    assert row["action"].startswith("kept; the inside test treats it as a void")
    npt.assert_array_equal(
        points_inside(wf.vertices, wf.faces, [[1.5, 1.5, 1.5], [3, 3, 3]]), [False, True]
    )


def test_build_wireframe_island_in_a_void_keeps_alternating_windings_quiet():
    shell = box_mesh((0, 0, 0), (6, 6, 6))
    void = box_mesh((1, 1, 1), (5, 5, 5))
    island = box_mesh((2, 2, 2), (3, 3, 3))
    v, f = _merge(shell, (void[0], void[1][:, ::-1]), island)
    report = DataReport()
    wf = build_wireframe(v, f, "pod.obj", report)
    assert len(report) == 0
    npt.assert_allclose(wf.volume, 216.0 - 64.0 + 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    ("second", "where"),
    [
        (box_mesh((0.5, 0.5, 0.5), (1.5, 1.5, 1.5)), "corner"),
        # a bar through the box: no vertex of either body lies inside the other
        (box_mesh((-1, 0.25, 0.25), (2, 0.75, 0.75)), "bar"),
        (icosphere(0.6, 2, (1.0, 0.5, 0.5)), "sphere"),
    ],
    ids=["corner-overlap", "bar-through", "sphere"],
)
def test_build_wireframe_reports_intersecting_bodies(second, where):
    v, f = _merge(box_mesh((0, 0, 0), (1, 1, 1)), second)
    report = DataReport()
    wf = build_wireframe(v, f, "two.obj", report)
    assert wf.n_bodies == 2
    assert report.counts() == {"wireframe_overlapping_bodies": 1}
    what = report.rows[0]["what"]
    assert what.startswith("body 1 (12 triangles, centre (0.5, 0.5, 0.5)), volume 1, and body 2")
    assert "intersect (their surfaces cross near (" in what
    assert report.rows[0]["action"].startswith("both kept; the inside test counts surface")


@pytest.mark.parametrize(
    "second",
    [
        box_mesh((0, 0, 1), (1, 1, 2)),  # on top: a shared face
        box_mesh((1, 1, 0), (2, 2, 1)),  # a shared edge
        box_mesh((1, 1, 1), (2, 2, 2)),  # a shared corner
        box_mesh((0.25, 0.25, 1), (0.75, 0.75, 2)),  # standing on the top face
        box_mesh((3, 0, 0), (4, 1, 1)),  # apart
    ],
    ids=["face", "edge", "corner", "standing", "apart"],
)
def test_build_wireframe_touching_bodies_are_not_overlaps(second):
    v, f = _merge(box_mesh((0, 0, 0), (1, 1, 1)), second)
    report = DataReport()
    wf = build_wireframe(v, f, "two.obj", report)
    assert wf.n_bodies == 2
    assert len(report) == 0
    npt.assert_allclose(wf.volume, 1.0 + abs(mesh_volume(*second)), rtol=1e-12)


def test_build_wireframe_drops_a_copy_of_a_body():
    v, f = _merge(box_mesh((0, 0, 0), (2, 1, 1)), box_mesh((0, 0, 0), (2, 1, 1)))
    report = DataReport()
    wf = build_wireframe(v, f, "twice.obj", report)
    assert wf.n_bodies == 1
    npt.assert_allclose(wf.volume, 2.0, rtol=1e-12)
    assert report.counts() == {"wireframe_overlapping_bodies": 1}
    assert report.rows[0]["what"].startswith("body 2 (12 triangles, centre (1.0, 0.5, 0.5)) is a copy")
    assert points_inside(wf.vertices, wf.faces, [[1.0, 0.5, 0.5]]).tolist() == [True]


def test_candidate_pairs_sweep_agrees_with_all_pairs():
    from estimator.geometry.mesh import _candidate_pairs

    rng = np.random.default_rng(1)
    lo = rng.uniform(0, 10, (200, 3))
    hi = lo + rng.uniform(0, 2, (200, 3))
    meet = ((lo[:, None, :] <= hi[None, :, :]) & (lo[None, :, :] <= hi[:, None, :])).all(axis=2)
    i, j = np.nonzero(np.triu(meet, k=1))
    want = sorted(zip(i.tolist(), j.tolist(), strict=True))
    assert len(want) > 50
    assert _candidate_pairs([np.array([a, b]) for a, b in zip(lo, hi, strict=True)]) == want


def test_crossing_kernel_agrees_with_moller_trumbore():
    rng = np.random.default_rng(5)
    v = rng.uniform(-1, 1, (60, 3))
    faces = rng.integers(0, 30, (40, 3))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    s0, s1 = np.arange(30, 60, dtype=np.int64), np.roll(np.arange(30, 60, dtype=np.int64), 7)
    ref = _kernels.crossings_numpy(v, s0, s1, faces)
    assert 0 < ref.sum() < ref.size  # some cross, some do not
    vx, vy, vz = (np.ascontiguousarray(v[:, k]) for k in range(3))
    for k in range(len(s0)):
        for t in range(len(faces)):
            a, b, c = faces[t]
            got = _kernels.segment_crosses_triangle(*v[s0[k]], *v[s1[k]], *v[a], *v[b], *v[c])
            assert got == ref[k, t], (k, t)
        index = _kernels.xy_index(vx, vy, np.ascontiguousarray(faces))
        hit, tri = _kernels.first_crossing(s0[k : k + 1], s1[k : k + 1], vx, vy, vz, faces, *index)
        assert (hit >= 0) == ref[k].any()
        if hit >= 0:
            assert ref[k, tri]


def test_build_wireframe_fills_a_missing_triangle_and_drops_fins():
    v, f = box_mesh((0, 0, 0), (2, 2, 2), 2)
    fin_tip = len(v)
    v = np.vstack([v, [[1, -1, 2]]])
    a, b = f[0, 0], f[0, 1]
    f = np.vstack([f[1:], [[a, b, fin_tip], [b, a, fin_tip]]])  # hole + double-sided fin
    report = DataReport()
    wf = build_wireframe(v, f, "m.stl", report)
    npt.assert_allclose(wf.volume, 8.0, rtol=1e-12)
    assert report.counts() == {"wireframe_hole_filled": 1, "wireframe_open_body": 1}
    assert "has a hole bounded by 3 edges" in report.rows[0]["what"]
    assert "encloses no volume" in report.rows[1]["what"]


def test_build_wireframe_fails_when_nothing_is_closed():
    v, f = box_mesh()
    report = DataReport()
    msg = "open.obj: no closed body in the wireframe (body 1 (8 triangles"
    with pytest.raises(DataError, match=re.escape(msg)):
        build_wireframe(v, f[4:], "open.obj", report, max_hole_edges=0)
    assert report.counts() == {"wireframe_open_body": 1}


@pytest.mark.skipif(NO_JIT, reason="63,749 triangles: too slow without numba")
def test_babbitt_mpz_inside_agrees_with_reference_and_monte_carlo():
    from estimator.io.wireframe import read_mesh

    v, f = read_mesh(MPZ)
    wf = build_wireframe(v, f, "Mpz.stl")
    rng = np.random.default_rng(3)
    lo, hi = wf.bounds
    p = rng.uniform(lo, hi, (400_000, 3))
    got = points_inside(wf.vertices, wf.faces, p)
    npt.assert_array_equal(_kernels.inside_numpy(wf.vertices, wf.faces, p[:150]), got[:150])
    frac = got.mean()
    sigma = np.sqrt(frac * (1 - frac) / len(p))
    assert abs(frac * np.prod(hi - lo) / wf.volume - 1) < 4 * sigma / frac


def test_wireframe_modules_import_without_scipy_sparse_or_numba():
    """A run without wireframes pays for neither: both load when a mesh is first checked."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import estimator.geometry.mesh, estimator.io.wireframe\n"
        "print(sorted(m for m in ('scipy.sparse', 'numba') if m in sys.modules))\n"
        "from estimator.geometry.mesh import points_inside, split_bodies\n"
        "split_bodies([[0, 1, 2]])\n"
        "points_inside([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]], [[0, 0, 1]])\n"
        "print(sorted(m for m in ('scipy.sparse', 'numba') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "['numba', 'scipy.sparse']"], done.stderr
