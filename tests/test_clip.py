"""Block volume fractions inside a wireframe, on plain and rotated grids."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.testing as npt
import pytest

from estimator.blockmodel.clip import block_fractions, grid_to_world, world_to_grid
from estimator.blockmodel.grid import BlockGrid
from estimator.geometry.mesh import mesh_volume, points_inside
from test_mesh import box_mesh, icosphere

MPZ = Path(__file__).parent / "data" / "babbitt" / "Mpz.stl"
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") == "1"


def subcell_centres(origin, size, shape, rotation, sub):
    """World coordinates of every sub-cell centre, shape (nz, ny, nx, sw, sv, su, 3)."""
    (nx, ny, nz), (su, sv, sw) = shape, sub
    du = (np.arange(nx * su) + 0.5) * (size[0] / su)
    dv = (np.arange(ny * sv) + 0.5) * (size[1] / sv)
    dw = (np.arange(nz * sw) + 0.5) * (size[2] / sw)
    w, v, u = np.meshgrid(dw, dv, du, indexing="ij")
    x, y = grid_to_world(origin[0] + u, origin[1] + v, origin, rotation)
    p = np.stack([x, y, origin[2] + w], axis=-1)
    return p.reshape(nz, sw, ny, sv, nx, su, 3).transpose(0, 2, 4, 1, 3, 5, 6)


# ---------------------------------------------------------------------------------------
# Grid frame
# ---------------------------------------------------------------------------------------


def test_grid_to_world_rotation_is_clockwise():
    # 90 degrees clockwise: the grid's x-axis points south, its y-axis east
    x, y = grid_to_world([101.0, 100.0], [200.0, 201.0], (100.0, 200.0, 0.0), 90.0)
    npt.assert_allclose(x, [100.0, 101.0], atol=1e-12)
    npt.assert_allclose(y, [199.0, 200.0], atol=1e-12)
    # 30 degrees: the x-axis points at azimuth 120
    x, y = grid_to_world(1.0, 0.0, (0.0, 0.0), 30.0)
    npt.assert_allclose(np.rad2deg(np.arctan2(x, y)), 120.0)


def test_grid_to_world_round_trip_and_agrees_with_block_grid():
    rng = np.random.default_rng(0)
    u, v = rng.uniform(0, 500, (2, 100)) + np.array([[1000.0], [5000.0]])
    origin = (1000.0, 5000.0, 10.0)
    grid = BlockGrid(origin, (5, 5, 5), (100, 100, 10), rotation=37.5)
    x, y = grid_to_world(u, v, origin, 37.5)
    xb, yb = grid.to_world(u, v)
    npt.assert_allclose(x, xb, rtol=1e-15)
    npt.assert_allclose(y, yb, rtol=1e-15)
    npt.assert_allclose(np.hypot(x - 1000, y - 5000), np.hypot(u - 1000, v - 5000), rtol=1e-12)
    uu, vv = world_to_grid(x, y, origin, 37.5)
    npt.assert_allclose(uu, u, rtol=1e-13)
    npt.assert_allclose(vv, v, rtol=1e-13)


# ---------------------------------------------------------------------------------------
# Fractions
# ---------------------------------------------------------------------------------------


def test_box_on_block_boundaries_gives_exact_zeros_and_ones():
    v, f = box_mesh((10, 20, -2), (30, 50, 6), n=2)
    frac = block_fractions(v, f, (0, 0, -4), (5, 5, 2), (10, 12, 8))
    expected = np.zeros((8, 12, 10))
    expected[1:5, 4:10, 2:6] = 1.0
    npt.assert_array_equal(frac, expected)
    assert frac.sum() * 50 == 20 * 30 * 8


def test_box_through_sub_cells_gives_exact_fractions():
    # faces at a quarter of a block: 1 of 4 sub-cells along x, 3 of 4 along z
    v, f = box_mesh((3.75, 0, 0), (10, 10, 7.5), n=1)
    frac = block_fractions(v, f, (0, 0, 0), (5, 5, 10), (3, 3, 1), subcells=(4, 4, 4))
    npt.assert_array_equal(frac[0, :2], [[0.25 * 0.75, 0.75, 0], [0.25 * 0.75, 0.75, 0]])
    npt.assert_array_equal(frac[0, 2], 0)


@pytest.mark.parametrize("subcells", [(4, 4, 4), (3, 5, 2)], ids=["4x4x4", "3x5x2"])
def test_fractions_are_the_share_of_sub_cell_centres_inside(subcells):
    v, f = icosphere(9.0, 3, centre=(31.0, 17.0, 8.0))
    origin, size, shape = (0.0, 0.0, -5.0), (5.0, 4.0, 3.0), (12, 10, 8)
    for rotation in (0.0, 30.0):
        frac = block_fractions(v, f, origin, size, shape, rotation, subcells)
        p = subcell_centres(origin, size, shape, rotation, subcells)
        inside = points_inside(v, f, p.reshape(-1, 3)).reshape(p.shape[:-1])
        npt.assert_array_equal(frac, inside.mean(axis=(3, 4, 5)))


def test_sphere_fraction_volume_within_half_a_percent():
    r = 25.0
    v, f = icosphere(r, 5, centre=(103.0, 211.0, 47.0))
    exact = 4 / 3 * np.pi * r**3
    frac = block_fractions(v, f, (60.0, 170.0, 0.0), (5.0, 5.0, 5.0), (20, 20, 20))
    vol = frac.sum() * 125.0
    assert abs(vol / exact - 1) < 0.005
    assert abs(vol / mesh_volume(v, f) - 1) < 0.005
    assert ((frac >= 0) & (frac <= 1)).all()


def test_rotated_box_aligned_with_a_rotated_grid():
    origin, rotation = (1000.0, 2000.0, 100.0), 30.0
    v, f = box_mesh((1010.0, 2005.0, 104.0), (1030.0, 2025.0, 110.0), n=2)  # grid frame
    x, y = grid_to_world(v[:, 0], v[:, 1], origin, rotation)
    world = np.column_stack([x, y, v[:, 2]])
    frac = block_fractions(world, f, origin, (5.0, 5.0, 2.0), (8, 6, 6), rotation)
    expected = np.zeros((6, 6, 8))
    expected[2:5, 1:5, 2:6] = 1.0
    npt.assert_array_equal(frac, expected)
    # the same box on an unrotated grid is cut obliquely: fractions, same volume roughly
    plain = block_fractions(world, f, (970.0, 1970.0, 100.0), (5.0, 5.0, 2.0), (16, 16, 6))
    assert ((plain > 0) & (plain < 1)).any()
    npt.assert_allclose(plain.sum() * 50, 20 * 20 * 6, rtol=0.01)


def test_mesh_partly_or_wholly_outside_the_grid():
    v, f = box_mesh((-5, -5, -5), (5, 5, 5))
    frac = block_fractions(v, f, (0, 0, 0), (1, 1, 1), (10, 10, 10))
    expected = np.zeros((10, 10, 10))
    expected[:5, :5, :5] = 1
    npt.assert_array_equal(frac, expected)
    far = block_fractions(v + 100.0, f, (0, 0, 0), (1, 1, 1), (10, 10, 10))
    npt.assert_array_equal(far, 0)
    npt.assert_array_equal(block_fractions(v, f[:0], (0, 0, 0), (1, 1, 1), (2, 2, 2)), 0)


def test_serial_equals_parallel():
    v, f = icosphere(7.0, 3, centre=(10.0, 10.0, 10.0))
    args = (v, f, (0.0, 0.0, 0.0), (2.0, 2.0, 2.0), (10, 10, 10), 15.0, (4, 4, 4))
    npt.assert_array_equal(block_fractions(*args, parallel=False), block_fractions(*args))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block_size": (5, 0, 5)}, "block_size must be 3 positive numbers, got (5, 0, 5)"),
        ({"shape": (2, 2)}, "shape must be 3 positive integers, got (2, 2)"),
        ({"subcells": (4, 0, 4)}, "subcells must be 3 positive integers, got (4, 0, 4)"),
        ({"subcells": (4, 2.5, 4)}, "subcells must be 3 positive integers, got (4, 2.5, 4)"),
    ],
)
def test_bad_arguments(kwargs, message):
    v, f = box_mesh()
    args = {"origin": (0, 0, 0), "block_size": (1, 1, 1), "shape": (2, 2, 2)} | kwargs
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        block_fractions(v, f, **args)


@pytest.mark.skipif(NO_JIT, reason="63,749 triangles and 6 million blocks: too slow without numba")
def test_babbitt_fraction_volume_matches_the_wireframe():
    from estimator.io.wireframe import load_wireframe

    wf = load_wireframe(MPZ)
    size = np.array([50.0, 50.0, 20.0])  # feet
    origin = np.floor(wf.bounds[0] / size) * size - size
    shape = (np.ceil((wf.bounds[1] - origin) / size) + 1).astype(int)
    frac = block_fractions(wf.vertices, wf.faces, origin, size, shape, 0.0, (4, 4, 4))
    assert abs(frac.sum() * size.prod() / wf.volume - 1) < 0.005
    # a grid rotated 20 degrees clockwise whose minimum corner is the body's, in that frame
    u, v = world_to_grid(wf.vertices[:, 0], wf.vertices[:, 1], (0.0, 0.0), 20.0)
    x0, y0 = grid_to_world(u.min(), v.min(), (0.0, 0.0), 20.0)
    corner = (float(x0), float(y0), origin[2])
    extent = np.array([np.ptp(u), np.ptp(v), np.ptp(wf.vertices[:, 2])])
    shape = (np.ceil(extent / size) + 2).astype(int)
    rotated = block_fractions(wf.vertices, wf.faces, corner, size, shape, 20.0, (4, 4, 4))
    assert abs(rotated.sum() * size.prod() / wf.volume - 1) < 0.005


def test_windows_equal_the_whole_grid_bit_for_bit():
    v, f = icosphere(7.3, 3, centre=(10.2, 9.7, 10.4))
    args = (v, f, (0.0, 0.0, 0.0), (2.0, 1.5, 2.5), (10, 13, 9), 21.0, (3, 2, 4))
    whole = block_fractions(*args)
    assert 0 < whole.mean() < 1
    for window in [
        (slice(0, 9), slice(0, 13), slice(0, 10)),
        (slice(2, 5), slice(3, 11), slice(4, 10)),
        (slice(8, 9), slice(12, 13), slice(0, 1)),
        (slice(0, 9), slice(0, 1), slice(5, 6)),
    ]:
        part = block_fractions(*args, window=window, parallel=False)
        npt.assert_array_equal(part, whole[window], strict=True)
    with pytest.raises(ValueError, match="not a non-empty range of blocks"):
        block_fractions(*args, window=(slice(0, 9, 2), slice(0, 13), slice(0, 10)))
    with pytest.raises(ValueError, match="not a non-empty range of blocks"):
        block_fractions(*args, window=(slice(3, 3), slice(0, 13), slice(0, 10)))
