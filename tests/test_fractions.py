"""Domain fractions: topography, nearest-sample block rules and wireframes, against brute force
over every sub-cell centre (an independent, plain implementation)."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import cKDTree

from estimator.blockmodel.fractions import (
    SampleIndex,
    Surface,
    domain_fractions,
    surface_elevation_at,
    surface_elevation_columns,
    topography_totals,
)
from estimator.blockmodel.grid import BlockGrid
from estimator.geometry.mesh import points_inside
from helpers import box_mesh


def plane(z_of, lo=(-1000, -1000), hi=(1000, 1000), n=1):
    """A planar (or any z(x, y)) surface as a triangulated n x n grid of quads."""
    xs = np.linspace(lo[0], hi[0], n + 1)
    ys = np.linspace(lo[1], hi[1], n + 1)
    gx, gy = np.meshgrid(xs, ys)
    v = np.stack([gx.ravel(), gy.ravel(), z_of(gx.ravel(), gy.ravel())], axis=1)
    faces = []
    for j in range(n):
        for i in range(n):
            a = j * (n + 1) + i
            faces += [[a, a + 1, a + n + 2], [a, a + n + 2, a + n + 1]]
    return Surface(v, np.array(faces))


def all_subcells(grid, sub):
    """World centres of every sub-cell, shape (nz, ny, nx, per, 3)."""
    nx, ny, nz = grid.shape
    su, sv, sw = sub
    dx, dy, dz = grid.block_size
    u = grid.origin[0] + (np.arange(nx * su) + 0.5) * dx / su
    v = grid.origin[1] + (np.arange(ny * sv) + 0.5) * dy / sv
    w = grid.origin[2] + (np.arange(nz * sw) + 0.5) * dz / sw
    W, V, U = np.meshgrid(w, v, u, indexing="ij")
    x, y = grid.to_world(U, V)
    pts = np.stack([x, y, W], axis=-1)  # (nz*sw, ny*sv, nx*su, 3)
    pts = pts.reshape(nz, sw, ny, sv, nx, su, 3).transpose(0, 2, 4, 1, 3, 5, 6)
    return pts.reshape(nz, ny, nx, sw * sv * su, 3)


def test_flat_topography_counts_subcell_levels():
    grid = BlockGrid((0, 0, 0), (10, 10, 10), (3, 2, 4))
    vol = domain_fractions(grid, (2, 2, 4), [], {}, topography=plane(lambda x, y: 0 * x + 12.3))
    f = vol.fractions[0]
    # levels at 1.25, 3.75, ..., 11.25 (5 of them) lie below 12.3
    np.testing.assert_array_equal(f[0], 1.0)
    np.testing.assert_array_equal(f[1], 0.25)
    np.testing.assert_array_equal(f[2:], 0.0)
    assert vol.uncovered_area == 0.0
    assert vol.above_topography == pytest.approx((0.75 + 2) * 1000 * 6)


@pytest.mark.parametrize("rotation", [0.0, 33.0])
def test_undulating_topography_equals_brute_force(rotation):
    rng = np.random.default_rng(1)
    grid = BlockGrid((100, 200, 0), (7, 5, 4), (9, 11, 8), rotation)
    sub = (3, 2, 2)

    def z_of(x, y):
        return 18 + 6 * np.sin((x - 100) / 23) + 4 * np.cos((y - 200) / 17) + 0 * rng.normal()

    surf = plane(z_of, lo=(50, 150), hi=(250, 330), n=24)
    f = domain_fractions(grid, sub, [], {}, topography=surf).fractions[0]
    pts = all_subcells(grid, sub)
    interp = LinearNDInterpolator(surf.vertices[:, :2], surf.vertices[:, 2])
    ztop = interp(pts[..., 0], pts[..., 1])
    expected = (pts[..., 2] < ztop).mean(axis=-1)
    # exact on sub-cell centres, except where one lies on a triangle edge (none do here)
    np.testing.assert_array_equal(f, expected)
    assert 0 < f.mean() < 1


def test_uncovered_columns_keep_their_volume_and_are_measured():
    grid = BlockGrid((0, 0, 0), (10, 10, 10), (4, 1, 2))
    # the surface covers x < 20 only, at z = 5
    surf = plane(lambda x, y: 0 * x + 5.0, lo=(-10, -10), hi=(20, 20))
    vol = domain_fractions(grid, (2, 2, 2), [], {}, topography=surf)
    f = vol.fractions[0]
    np.testing.assert_array_equal(f[:, 0, :2], [[0.5, 0.5], [0.0, 0.0]])
    np.testing.assert_array_equal(f[:, 0, 2:], 1.0)
    assert vol.uncovered_area == pytest.approx(20 * 10)


def test_surface_columns_take_the_highest_triangle():
    grid = BlockGrid((0, 0, 0), (10, 10, 10), (1, 1, 1))
    low = plane(lambda x, y: 0 * x + 2.0)
    high = plane(lambda x, y: 0 * x + 7.0)
    both = Surface(
        np.vstack([low.vertices, high.vertices]),
        np.vstack([low.faces, high.faces + len(low.vertices)]),
    )
    z = surface_elevation_columns(both, grid, (2, 2, 1))
    np.testing.assert_array_equal(z, 7.0)


def box(lo, hi):
    v, f = box_mesh(lo, hi)
    return SimpleNamespace(vertices=v, faces=f)  # what the fractions use of a Wireframe


def test_wireframe_clipped_by_topography_equals_brute_force():
    grid = BlockGrid((0, 0, 0), (10, 10, 10), (6, 6, 6), 20.0)
    sub = (2, 2, 3)
    wf = box((12.0, 8.0, 7.0), (47.0, 41.0, 53.0))
    surf = plane(lambda x, y: 20 + 0.4 * x - 0.2 * y, lo=(-50, -50), hi=(150, 150), n=7)
    dom = SimpleNamespace(name="ore", blocks=None)
    f = domain_fractions(grid, sub, [dom], {"ore": wf}, topography=surf).fractions[0]
    pts = all_subcells(grid, sub)
    flat = pts.reshape(-1, 3)
    inside = points_inside(wf.vertices, wf.faces, flat).reshape(pts.shape[:-1])
    ztop = 20 + 0.4 * pts[..., 0] - 0.2 * pts[..., 1]
    expected = (inside & (pts[..., 2] < ztop)).mean(axis=-1)
    np.testing.assert_allclose(f, expected, rtol=0, atol=1e-12)
    assert (f > 0).any() and (expected < inside.mean(axis=-1)).any()


def test_nearest_sample_rule_equals_brute_force():
    rng = np.random.default_rng(3)
    grid = BlockGrid((0, 0, 0), (5, 5, 5), (12, 10, 6), 15.0)
    sub = (2, 2, 2)
    pts = rng.uniform([0, 0, 0], [55, 50, 30], (300, 3))
    labels = np.where(pts[:, 0] < 20, "ox", np.where(pts[:, 1] < 25, "su", ""))
    doms = [
        SimpleNamespace(name="ox", blocks=SimpleNamespace(max_distance=6.0)),
        SimpleNamespace(name="su", blocks=SimpleNamespace(max_distance=4.0)),
    ]
    surf = plane(lambda x, y: 0 * x + 24.0)
    fr = domain_fractions(grid, sub, doms, {}, points=pts, labels=labels, topography=surf)
    centres = all_subcells(grid, sub)
    d, i = cKDTree(pts).query(centres.reshape(-1, 3))
    lab = labels[i].reshape(centres.shape[:-1])
    d = d.reshape(centres.shape[:-1])
    below = centres[..., 2] < 24.0
    np.testing.assert_array_equal(fr.fractions[0], ((lab == "ox") & (d <= 6) & below).mean(-1))
    np.testing.assert_array_equal(fr.fractions[1], ((lab == "su") & (d <= 4) & below).mean(-1))
    assert fr.fractions[0].sum() > 0 and fr.fractions[1].sum() > 0
    assert (fr.fractions.sum(axis=0) <= 1).all()


def test_first_domain_wins_where_they_overlap():
    grid = BlockGrid((0, 0, 0), (10, 10, 10), (4, 4, 4))
    a = box((0.0, 0.0, 0.0), (25.0, 40.0, 40.0))
    b = box((15.0, 0.0, 0.0), (40.0, 40.0, 40.0))
    doms = [SimpleNamespace(name="a", blocks=None), SimpleNamespace(name="b", blocks=None)]
    f = domain_fractions(grid, (2, 2, 2), doms, {"a": a, "b": b}).fractions
    np.testing.assert_allclose(f.sum(axis=0), 1.0)
    np.testing.assert_allclose(f[0][0, 0], [1, 1, 0.5, 0])
    np.testing.assert_allclose(f[1][0, 0], [0, 0, 0.5, 1])


def test_surface_elevation_at_points_equals_linear_interpolation():
    rng = np.random.default_rng(5)
    surf = plane(lambda x, y: 50 + 0.1 * x + 3 * np.sin(y / 9), lo=(0, 0), hi=(100, 80), n=13)
    x = rng.uniform(-10, 110, 2000)
    y = rng.uniform(-10, 90, 2000)
    z = surface_elevation_at(surf, x, y)
    expected = LinearNDInterpolator(surf.vertices[:, :2], surf.vertices[:, 2])(x, y)
    inside = np.isfinite(expected)
    np.testing.assert_allclose(z[inside], expected[inside], rtol=0, atol=1e-9)
    assert np.isneginf(z[~inside]).all()
    assert inside.sum() > 1000 and (~inside).sum() > 100


def _tiles(shape_xyz, step_xyz):
    nx, ny, nz = shape_xyz
    cx, cy, cz = step_xyz
    return [
        (slice(z, min(z + cz, nz)), slice(y, min(y + cy, ny)), slice(x, min(x + cx, nx)))
        for z in range(0, nz, cz)
        for y in range(0, ny, cy)
        for x in range(0, nx, cx)
    ]


@pytest.mark.parametrize("step", [(1, 1, 1), (4, 3, 2), (5, 10, 6)], ids=str)
def test_windows_tile_the_whole_grid_bit_for_bit(step):
    """Each window gets the whole-grid values, to the bit: wireframes, a nearest-sample rule
    and an undulating topography on a rotated grid (sub-cell centres from global indices)."""
    rng = np.random.default_rng(7)
    grid = BlockGrid((1000.5, 2000.25, 100.0), (5, 4, 3), (9, 10, 6), 27.0)
    sub = (2, 3, 2)
    pts = np.column_stack([
        *grid.to_world(rng.uniform(1000, 1045, 400), rng.uniform(2000, 2040, 400)),
        rng.uniform(100, 118, 400),
    ])  # fmt: skip
    labels = np.where(pts[:, 2] < 108, "low", "")
    x0, y0 = grid.to_world(1010.0, 2008.0)
    doms = [
        SimpleNamespace(name="ore", blocks=None),
        SimpleNamespace(name="low", blocks=SimpleNamespace(max_distance=5.0)),
        SimpleNamespace(name="rest", blocks=None),
    ]
    wires = {
        "ore": box((x0, y0, 103.0), (x0 + 21.3, y0 + 17.1, 114.2)),
        "rest": box((x0 - 30, y0 - 30, 95.0), (x0 + 60, y0 + 60, 125.0)),
    }
    surf = plane(lambda x, y: 112 + 3 * np.sin(x / 7) - 2 * np.cos(y / 5),
                 lo=(900, 1900), hi=(1100, 2100), n=17)  # fmt: skip
    kw = {"points": pts, "labels": labels, "topography": surf}
    whole = domain_fractions(grid, sub, doms, wires, **kw).fractions
    assert (whole > 0).any(axis=(1, 2, 3)).all() and (whole < 1).any()
    index = SampleIndex.build(pts, labels)
    for window in _tiles(grid.shape, step):
        part = domain_fractions(grid, sub, doms, wires, topography=surf, window=window,
                                sample_index=index, parallel=False).fractions  # fmt: skip
        np.testing.assert_array_equal(part, whole[(slice(None), *window)], strict=True)
        cols = surface_elevation_columns(surf, grid, sub, window)
        full = surface_elevation_columns(surf, grid, sub)
        ys, xs = window[1], window[2]
        np.testing.assert_array_equal(
            cols, full[ys.start * sub[1] : ys.stop * sub[1], xs.start * sub[0] : xs.stop * sub[0]]
        )


@pytest.mark.parametrize("columns", [(1, 1), (4, 3), (100, 100)], ids=str)
def test_topography_totals_equal_the_whole_grid_figures(columns):
    grid = BlockGrid((100, 200, 0), (7, 5, 4), (9, 11, 8), 33.0)
    surf = plane(lambda x, y: 18 + 6 * np.sin((x - 100) / 23) + 4 * np.cos((y - 200) / 17),
                 lo=(50, 150), hi=(135, 330), n=24)  # fmt: skip
    vol = domain_fractions(grid, (3, 2, 2), [], {}, topography=surf)
    above, uncovered = topography_totals(surf, grid, (3, 2, 2), columns)
    assert above == vol.above_topography and uncovered == vol.uncovered_area
    assert above > 0 and uncovered > 0
