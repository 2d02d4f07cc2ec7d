"""Tests of the anisotropic multi-criterion neighbourhood search."""

from __future__ import annotations

import numpy as np
import pytest

from estimator.kriging.search import SearchPass, find_neighbours, transform
from kriging_reference import search_distances, select


def _dense_holes(rng, n_holes=40, per_hole=40):
    """Many closely spaced samples per hole, so hole limits need re-queries."""
    collars = rng.uniform(0, 60, (n_holes, 3))
    t = np.arange(per_hole) * 0.5
    xyz = collars[:, None, :] + t[None, :, None] * np.array([0.1, 0.2, -1.0])
    return xyz.reshape(-1, 3), np.repeat(np.arange(n_holes), per_hole)


@pytest.mark.parametrize(
    "spass",
    [
        SearchPass((40, 30, 20), (30, -20, 10), 3, 12, max_per_hole=1),
        SearchPass(
            (40, 30, 20), (200, 45, -30), 4, 16, max_per_hole=2, max_per_octant=2, min_octants=3
        ),
        SearchPass((25, 25, 25), (0, 0, 0), 1, 8, max_per_octant=1),
        SearchPass((30, 20, 10), (60, 0, 0), 5, 20),
    ],
)
def test_neighbours_match_reference(spass):
    rng = np.random.default_rng(0)
    xyz, holes = _dense_holes(rng)
    targets = rng.uniform(0, 60, (120, 3))
    nb = find_neighbours(targets, xyz, holes, spass)
    for b, t in enumerate(targets):
        chosen, d, ok = select(t, xyz, holes, spass)
        n = len(chosen)
        assert nb.count[b] == n
        np.testing.assert_array_equal(nb.indices[b, :n], chosen)
        assert (nb.indices[b, n:] == -1).all()
        np.testing.assert_allclose(nb.distances[b, :n], d, rtol=1e-13)
        assert nb.ok[b] == ok
        assert nb.holes[b] == len(set(holes[chosen].tolist()))
        if spass.max_per_hole:
            assert np.bincount(holes[chosen]).max(initial=0) <= spass.max_per_hole
    assert nb.ok.any()
    assert (nb.count == spass.max_samples).any()


def test_hole_limit_beyond_the_closest_candidates():
    # one hole of 200 samples close to the target, then other holes further away: the
    # greedy pass has to go far down the sorted candidates (past 3 * max_samples)
    near = np.column_stack([np.zeros(200), np.zeros(200), -np.arange(200) * 0.01])
    far = np.array([[5.0 + i, 0.0, 0.0] for i in range(5)])
    xyz = np.vstack([near, far])
    holes = np.r_[np.zeros(200, int), np.arange(1, 6)]
    spass = SearchPass((50, 50, 50), (0, 0, 0), 1, 4, max_per_hole=1)
    nb = find_neighbours(np.zeros((1, 3)), xyz, holes, spass)
    np.testing.assert_array_equal(nb.indices[0], [0, 200, 201, 202])


def test_octants_are_in_the_ellipsoid_frame():
    # major axis at azimuth 90 (east), semi-major north, minor up (GSLIB setrot)
    spass = SearchPass((10, 5, 2), (90, 0, 0), 1, 8)
    u = transform(np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, -1.0]]), spass.matrix)
    np.testing.assert_allclose(u, [[0.3, 0, 0], [0, 0.4, 0], [0, 0, -0.5]], atol=1e-15)
    # one sample per octant of the rotated frame: max_per_octant=1 keeps all eight
    corners = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], float)
    xyz = np.vstack([corners * [1.0, 1.0, 0.5], corners * [1.1, 1.1, 0.55]])
    nb = find_neighbours(
        np.zeros((1, 3)),
        xyz,
        np.arange(16),
        SearchPass((10, 5, 2), (90, 0, 0), 1, 16, max_per_octant=1),
    )
    assert nb.count[0] == 8
    assert nb.octants[0] == 8
    np.testing.assert_array_equal(np.sort(nb.indices[0, :8]), np.arange(8))


def test_ties_are_broken_by_sample_index():
    xyz = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0], [0.5, 0, 0]])
    nb = find_neighbours(
        np.zeros((1, 3)), xyz, np.arange(5), SearchPass((10, 10, 10), (0, 0, 0), 1, 3)
    )
    np.testing.assert_array_equal(nb.indices[0], [4, 0, 1])


def test_ties_are_broken_by_sample_index_with_hole_limits():
    # same, under a hole limit (the sorted path of the kernel): a near hole, then four
    # equidistant samples
    near = np.column_stack([np.zeros(50), np.zeros(50), -np.arange(50) * 0.01])
    ring = np.array([[0, -2.0, 0], [2.0, 0, 0], [0, 2.0, 0], [-2.0, 0, 0]])
    xyz = np.vstack([ring, near])
    holes = np.r_[1, 2, 3, 4, np.zeros(50, int)]
    spass = SearchPass((10, 10, 10), (0, 0, 0), 1, 4, max_per_hole=1)
    nb = find_neighbours(np.zeros((1, 3)), xyz, holes, spass)
    np.testing.assert_array_equal(nb.indices[0], [4, 0, 1, 2])


def test_min_octants_and_min_samples():
    xyz = np.array([[1.0, 1, 1], [2.0, 1, 1], [3.0, 1, 1]])
    spass = SearchPass((10, 10, 10), (0, 0, 0), 2, 8, min_octants=2)
    nb = find_neighbours(np.zeros((1, 3)), xyz, np.arange(3), spass)
    assert nb.count[0] == 3
    assert nb.octants[0] == 1
    assert not nb.ok[0]
    nb = find_neighbours(
        np.zeros((1, 3)), xyz[:1], np.arange(1), SearchPass((10, 10, 10), min_samples=2)
    )
    assert not nb.ok[0]


def test_outside_ellipsoid_is_excluded():
    spass = SearchPass((10, 5, 2), (0, 0, 0), 1, 8)  # major axis north
    xyz = np.array(
        [[0.0, 9.9, 0.0], [0.0, 10.1, 0.0], [4.9, 0.0, 0.0], [5.1, 0.0, 0.0], [0, 0, 2.1]]
    )
    nb = find_neighbours(np.zeros((1, 3)), xyz, np.arange(5), spass)
    np.testing.assert_array_equal(nb.indices[0, :2], [2, 0])
    assert nb.count[0] == 2


def test_no_samples():
    nb = find_neighbours(
        np.zeros((3, 3)), np.empty((0, 3)), np.empty(0, int), SearchPass((1, 1, 1))
    )
    assert not nb.ok.any()
    assert (nb.count == 0).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ranges": (10, 0, 5)}, "ranges"),
        ({"ranges": (10, 5, 5), "min_samples": 5, "max_samples": 4}, "min_samples"),
        ({"ranges": (10, 5, 5), "min_samples": 0}, "min_samples"),
        ({"ranges": (10, 5, 5), "max_per_hole": -1}, "max_per_hole"),
        ({"ranges": (10, 5, 5), "min_octants": 9}, "min_octants"),
    ],
)
def test_search_pass_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchPass(**kwargs)


def test_grid_index_finds_what_a_kd_tree_finds():
    # every sample in range, for targets inside and far outside the data, against cKDTree
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(7)
    xyz = rng.uniform(0, 100, (3000, 3)) * [1.0, 1.0, 0.3]
    targets = np.vstack([rng.uniform(-30, 130, (300, 3)), [[1e4, 0, 0], [-500, 50, 10]]])
    spass = SearchPass((35, 15, 6), (123, -37, 71), 1, len(xyz))
    nb = find_neighbours(targets, xyz, np.zeros(len(xyz), int), spass)
    tree = cKDTree(transform(xyz, spass.matrix))
    found = tree.query_ball_point(transform(targets, spass.matrix), r=1.0)
    for b, expected in enumerate(found):
        assert sorted(nb.indices[b, : nb.count[b]].tolist()) == sorted(expected)
    assert nb.count.max() > 20
    assert nb.count[-2:].tolist() == [0, 0]


def _lattice(shift=(0.0, 0.0, 0.0)):
    """Samples on a 1 m lattice (rows shuffled, holes along z) and targets on and between
    its nodes: many exactly equal distances, ties broken by row."""
    rng = np.random.default_rng(3)
    g = np.arange(12.0)
    xyz = np.array(np.meshgrid(g, g, g[:8], indexing="ij")).reshape(3, -1).T
    perm = rng.permutation(len(xyz))
    holes = (np.arange(len(xyz)) // 8)[perm]
    targets = rng.integers(-2, 26, (300, 3)) * 0.5
    return xyz[perm] + shift, holes, targets + shift


def _scattered(shift=(0.0, 0.0, 0.0)):
    """Clustered samples with exact duplicates (other holes), targets inside and around."""
    rng = np.random.default_rng(4)
    centres = rng.uniform(0, 12, (6, 3))
    xyz = (centres[:, None, :] + rng.normal(0, 1.5, (6, 120, 3))).reshape(-1, 3)
    xyz = np.vstack([xyz, xyz[::7]])
    holes = np.r_[rng.integers(0, 40, 720), rng.integers(40, 60, len(xyz) - 720)]
    targets = np.vstack([rng.uniform(-3, 15, (250, 3)), xyz[:40]])
    return xyz + shift, holes, targets + shift


UTM = (512_345.0, 7_123_456.0, 1_234.0)
SEARCHES = [
    SearchPass((3, 3, 3), (0, 0, 0), 1, 10),
    SearchPass((4.7, 3.1, 1.9), (30, -20, 10), 1, 24),
    SearchPass((3, 3, 3), (0, 0, 0), 1, 12, max_per_hole=2),
    SearchPass((5.3, 2.9, 2.2), (117, 41, -33), 2, 16, max_per_hole=3, max_per_octant=3),
    SearchPass((3.3, 3.3, 1.7), (0, 0, 0), 1, 8, max_per_octant=1, min_octants=6),
    SearchPass((400, 300, 200), (0, 0, 0), 1, 30, max_per_hole=1),  # every sample in range
]


@pytest.mark.parametrize("spass", SEARCHES, ids=["iso", "aniso", "hole", "both", "oct", "all"])
@pytest.mark.parametrize(
    "case",
    [(_lattice, (0, 0, 0)), (_lattice, UTM), (_scattered, (0, 0, 0)), (_scattered, UTM)],
    ids=["lattice", "lattice-utm", "scattered", "scattered-utm"],
)
def test_selection_is_bit_identical_to_brute_force(case, spass):
    # The kernel measures only the candidates that its shells and bounds cannot rule out;
    # brute force measures every sample with the same arithmetic, sorts by (distance, row)
    # and takes greedily. Lattices give exact ties at the last place taken; at UTM-sized
    # coordinates the kernel's bounds, measured in absolute scaled coordinates, round.
    make, shift = case
    xyz, holes, targets = make(np.array(shift))
    nb = find_neighbours(targets, xyz, holes, spass)
    ties = 0
    for b, t in enumerate(targets):
        chosen, d, ok = select(t, xyz, holes, spass)
        n = len(chosen)
        assert nb.count[b] == n
        np.testing.assert_array_equal(nb.indices[b, :n], chosen)
        assert nb.distances[b, :n].tobytes() == d.tobytes()
        assert (nb.indices[b, n:] == -1).all()
        assert nb.ok[b] == ok
        assert nb.holes[b] == len(set(holes[chosen].tolist()))
        u, _ = search_distances(t, xyz[chosen], spass.matrix)
        octants = set(((u[:, 0] >= 0) + 2 * (u[:, 1] >= 0) + 4 * (u[:, 2] >= 0)).tolist())
        assert nb.octants[b] == len(octants)
        ties += n > 0 and np.count_nonzero(search_distances(t, xyz, spass.matrix)[1] == d[-1]) > 1
    assert nb.count.max() > 1
    if make is _lattice and spass.angles == (0.0, 0.0, 0.0) and spass.max_samples < 30:
        assert ties > len(targets) // 4  # ties at the last place are common
