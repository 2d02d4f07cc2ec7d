"""Cell declustering (GSLIB declus): cluster.dat reference, a loop transliteration, designs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import numpy.testing as npt
import pytest

from estimator import declustering as dc
from estimator.declustering import cell_declustering, declustering_sweep, plot_declustering
from estimator.errors import DataError

CLUSTER = Path(__file__).parent / "data" / "gslib" / "cluster.dat"


def load_cluster():
    data = np.loadtxt(CLUSTER, skiprows=7)  # title, nvar = 5, five names
    return data[:, :2], data[:, 2]


def declus_loops(xyz, values, sizes, yanis, zanis, noff, minimise=True):
    """A line-by-line transliteration of declus.for's main loop (scalar Python, dict counts)."""
    n = len(values)
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    naive = sum(values) / n
    best, vrop, wtopt = 0.0, naive, [1.0] * n
    means = [naive]
    for xcs in sizes:
        cs = (xcs, xcs * yanis, xcs * zanis)
        fac = [min(cs[d] / noff, 0.5 * (hi[d] - lo[d])) for d in range(3)]
        wt = [0.0] * n
        for kp in range(noff):
            o = [lo[d] - 0.01 - kp * fac[d] for d in range(3)]
            index = [tuple(int((xyz[i, d] - o[d]) / cs[d]) for d in range(3)) for i in range(n)]
            cellwt = {}
            for c in index:
                cellwt[c] = cellwt.get(c, 0.0) + 1.0
            sumw = 1.0 / sum(1.0 / cellwt[c] for c in index)
            for i, c in enumerate(index):
                wt[i] += (1.0 / cellwt[c]) * sumw
        vrcr = sum(w * v for w, v in zip(wt, values, strict=True)) / sum(wt)
        means.append(vrcr)
        if (minimise and vrcr < vrop) or (not minimise and vrcr > vrop) or len(sizes) == 1:
            best, vrop, wtopt = xcs, vrcr, wt
    facto = n / sum(wtopt)
    return np.array(means), best, vrop, np.array(wtopt) * facto


def test_cluster_dat_matches_gslib_declus():
    """declus.par (GSLIB 2.905 makepar): 24 1.0 25.0, 5 offsets, minimum: 2.524 at size 5."""
    xy, v = load_cluster()
    res = declustering_sweep(xy, v, min_size=1.0, max_size=25.0, n_sizes=24, n_offsets=5)
    assert res.best_size == 5.0
    assert abs(res.best_mean - 2.524) < 0.0005
    npt.assert_allclose(res.sizes, np.arange(26.0))  # size 0 = naive mean, as in declus.sum
    assert abs(res.means[0] - 4.350) < 0.0005  # GSLIB's naive mean of cluster.dat
    assert res.naive_mean == res.means[0]
    npt.assert_allclose(res.weights.sum(), 140.0, rtol=1e-12)
    assert res.n == 140 and res.n_missing == 0


def test_cluster_dat_equals_loop_transliteration():
    xy, v = load_cluster()
    xyz = np.column_stack([xy, np.zeros(len(v))])
    sizes = np.arange(1.0, 26.0)
    means, best, best_mean, wts = declus_loops(xyz, v, sizes, 1.0, 1.0, 5)
    res = cell_declustering(xy, v, cell_sizes=sizes, n_offsets=5)
    npt.assert_allclose(res.means, means, rtol=1e-12)
    assert res.best_size == best
    npt.assert_allclose(res.best_mean, best_mean, rtol=1e-12)
    npt.assert_allclose(res.weights, wts, rtol=1e-12)


@pytest.mark.parametrize("dense", [True, False], ids=["bincount", "unique"])
def test_3d_anisotropic_equals_loop_transliteration(monkeypatch, dense):
    if not dense:
        monkeypatch.setattr(dc, "_DENSE_CELL_LIMIT", 0)
    rng = np.random.default_rng(3)
    xyz = np.vstack([rng.uniform([0, 0, 0], [200, 100, 50], (150, 3)),
                     rng.normal([20, 20, 10], 3, (100, 3))])  # fmt: skip
    v = rng.lognormal(0, 1, len(xyz)) + 3.0 * (np.arange(len(xyz)) >= 150)
    sizes = [5.0, 12.5, 20.0, 40.0]
    means, best, best_mean, wts = declus_loops(xyz, v, sizes, 0.5, 0.25, 4, minimise=False)
    res = cell_declustering(xyz, v, cell_sizes=sizes, anisotropy=(0.5, 0.25), n_offsets=4,
                            minimise=False)  # fmt: skip
    npt.assert_allclose(res.means, means, rtol=1e-12)
    assert res.best_size == best
    npt.assert_allclose(res.weights, wts, rtol=1e-12)
    npt.assert_allclose(res.best_mean, best_mean, rtol=1e-12)
    assert res.best_mean == res.means.max()


def test_regular_grid_gives_equal_weights_and_the_naive_mean():
    g = np.arange(5.0, 100.0, 10.0)
    x, y = np.meshgrid(g, g)
    xy = np.column_stack([x.ravel(), y.ravel()])
    v = np.random.default_rng(0).lognormal(0, 1, len(xy))
    res = cell_declustering(xy, v, cell_sizes=[10.0], n_offsets=5)
    npt.assert_allclose(res.weights, 1.0, rtol=1e-12)
    npt.assert_allclose(res.best_mean, v.mean(), rtol=1e-12)
    # a single size is taken whatever its mean (declus, ncell = 1)
    sweep = declustering_sweep(xy, v, min_size=10.0, max_size=10.0, n_sizes=1, n_offsets=5)
    assert sweep.best_size == 10.0


def test_clustered_high_grade_corner_lowers_the_mean():
    rng = np.random.default_rng(1)
    g = np.arange(5.0, 200.0, 10.0)
    x, y = np.meshgrid(g, g)
    grid = np.column_stack([x.ravel(), y.ravel()])
    cluster = rng.uniform(0, 20, (200, 2))  # infill in the high-grade corner
    xy = np.vstack([grid, cluster])
    v = np.where(np.hypot(xy[:, 0], xy[:, 1]) < 30, 10.0, 1.0) * rng.lognormal(0, 0.3, len(xy))
    res = declustering_sweep(xy, v, min_size=2.0, max_size=50.0, n_sizes=24, n_offsets=8)
    assert res.best_mean < 0.6 * res.naive_mean
    assert 5.0 <= res.best_size <= 30.0
    # close to the mean of the regular grid alone, which is unbiased
    assert abs(res.best_mean - v[: len(grid)].mean()) < 0.15 * v[: len(grid)].mean()
    npt.assert_allclose(res.weights.sum(), len(v), rtol=1e-12)
    assert res.weights[len(grid):].mean() < res.weights[: len(grid)].mean()


def test_missing_grades_get_nan_weights_and_are_counted():
    xy, v = load_cluster()
    v2 = v.copy()
    v2[[3, 50]] = np.nan
    res = cell_declustering(xy, v2, cell_sizes=[5.0], n_offsets=5)
    ref = cell_declustering(np.delete(xy, [3, 50], axis=0), np.delete(v, [3, 50]),
                            cell_sizes=[5.0], n_offsets=5)  # fmt: skip
    assert res.n_missing == 2 and res.n == 138
    assert np.isnan(res.weights[[3, 50]]).all()
    npt.assert_allclose(np.delete(res.weights, [3, 50]), ref.weights, rtol=1e-12)
    npt.assert_allclose(np.nansum(res.weights), 138.0, rtol=1e-12)


def test_sweep_of_100k_samples_runs():
    rng = np.random.default_rng(2)
    xyz = rng.uniform(0, 1000, (100_000, 3))
    res = declustering_sweep(xyz, rng.lognormal(size=100_000), min_size=10.0, max_size=250.0,
                             n_sizes=24, n_offsets=8)  # fmt: skip
    assert res.sizes.size == 26 and np.isfinite(res.means).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xyz": np.zeros((3, 4))}, "coordinates must be a table of x, y (and z) columns"),
        ({"values": [1.0, 2.0]}, "2 grade values for 3 sample locations"),
        ({"xyz": [[0, 0], [np.nan, 1], [2, 2]]}, "sample 1 (and 0 more) has no usable location"),
        ({"values": [1.0, np.nan, np.nan]}, "needs at least 2 samples with a grade; got 1"),
        ({"cell_sizes": [5.0, -1.0]}, "cell size -1.0 must be a positive number"),
        ({"cell_sizes": []}, "no cell sizes given"),
        ({"anisotropy": (1.0, 0.0)}, "z cell anisotropy must be a positive number"),
        ({"anisotropy": 2.0}, "anisotropy must be two numbers (yanis, zanis); got 2.0"),
        ({"n_offsets": 0}, "number of origin offsets must be a whole number >= 1; got 0"),
    ],
    ids=["shape", "lengths", "nan-xyz", "too-few", "size", "no-size", "anis", "anis2", "offsets"],
)
def test_bad_input_is_a_data_error(kwargs, message):
    args = {"xyz": [[0, 0], [1, 1], [2, 2]], "values": [1.0, 2.0, 3.0], "cell_sizes": [1.0]}
    args.update(kwargs)
    with pytest.raises(DataError, match=re.escape(message)):
        cell_declustering(args.pop("xyz"), args.pop("values"), **args)


def test_bad_sweep_is_a_data_error():
    xy, v = load_cluster()
    with pytest.raises(DataError, match=re.escape("largest cell size 1 is smaller than")):
        declustering_sweep(xy, v, min_size=5.0, max_size=1.0, n_sizes=4)
    with pytest.raises(DataError, match="number of cell sizes must be a whole number"):
        declustering_sweep(xy, v, min_size=5.0, max_size=10.0, n_sizes=0)


def test_plot_marks_the_chosen_size():
    xy, v = load_cluster()
    res = declustering_sweep(xy, v, min_size=1.0, max_size=25.0, n_sizes=24, n_offsets=5)
    fig = plot_declustering(res, unit="%", length_unit="m")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "cell size (m)" and ax.get_ylabel() == "declustered mean (%)"
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(lab.startswith("chosen: size 5,") for lab in labels)
    assert any(lab.startswith("naive mean") for lab in labels)


def test_offsets_are_clamped_to_half_the_extent():
    """declus shifts by min(cell / noff, half the data extent): matters for cells near it."""
    rng = np.random.default_rng(4)
    xyz = np.column_stack([rng.uniform(0, 10, 60), rng.uniform(0, 40, 60), np.zeros(60)])
    v = rng.lognormal(0, 1, 60)
    sizes = [12.0, 16.0]
    means, _, _, wts = declus_loops(xyz, v, sizes, 1.0, 1.0, 2, minimise=False)
    res = cell_declustering(xyz[:, :2], v, cell_sizes=sizes, n_offsets=2, minimise=False)
    npt.assert_allclose(res.means, means, rtol=1e-12)
    npt.assert_allclose(res.weights, wts, rtol=1e-12)
