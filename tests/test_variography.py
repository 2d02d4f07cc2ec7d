"""Experimental variograms and direction finding: checked against a plain pair loop and GSTools."""

from __future__ import annotations

import math

import gstools as gs
import numpy as np
import numpy.testing as npt
import pytest

from estimator.variography.directions import axes_to_gslib_angles, fan_directions
from estimator.variography.experimental import (
    OMNI,
    Direction,
    direction_vector,
    downhole_variogram,
    experimental_variogram,
    normal_scores,
    variogram_map,
)
from estimator.variography.models import rotation_matrix


# -- brute force reference, written plainly ------------------------------------------------
def accepts(d, dx, dy, dz):
    """GSLIB gamv direction tests for one separation vector."""
    if d is OMNI:
        return True
    h = math.sqrt(dx * dx + dy * dy + dz * dz)
    az, dip = math.radians(d.azimuth), math.radians(d.dip)
    uvx, uvy, uvh, uvz = math.sin(az), math.cos(az), math.cos(dip), math.sin(dip)
    atol = d.tolerance
    dtol = atol if d.dip_tolerance is None else d.dip_tolerance
    dxy2 = dx * dx + dy * dy
    if dxy2 <= 1e-20:
        dxy, dcazm = 0.0, 1.0
    else:
        dxy = math.sqrt(dxy2)
        dcazm = (dx * uvx + dy * uvy) / dxy
    if atol < 90 and abs(dcazm) < math.cos(math.radians(atol)):
        return False
    if abs(uvx * dy - uvy * dx) > d.bandwidth_h:
        return False
    if dcazm < 0:
        dxy = -dxy
    if dtol < 90 and abs((dxy * uvh + dz * uvz) / h) < math.cos(math.radians(dtol)):
        return False
    return abs(uvh * dz - uvz * dxy) <= d.bandwidth_v


def brute(xyz, v, d, lag, n_lags, ltol, measure, along=None, holes=None):
    """gamma and pair counts per lag by testing every pair (i < j)."""
    u = direction_vector(d.azimuth, d.dip) if d is not None else None
    out = []
    for k in range(1, n_lags + 1):
        pairs = []
        for i in range(len(v)):
            for j in range(i + 1, len(v)):
                if holes is not None:
                    if holes[i] != holes[j]:
                        continue
                    h = abs(along[j] - along[i])
                else:
                    dvec = xyz[j] - xyz[i]
                    h = math.sqrt(float(dvec @ dvec))
                if h * h <= 1e-20 or abs(h - k * lag) > ltol:
                    continue
                if holes is None and not accepts(d, *(xyz[j] - xyz[i])):
                    continue
                a, b = v[i], v[j]
                if measure == "pairwise_relative" and abs(a + b) <= 1e-12:
                    continue
                if holes is not None or d is OMNI:
                    heads = None
                else:
                    heads = (b, a) if (xyz[j] - xyz[i]) @ u >= 0 else (a, b)
                pairs.append((a, b, heads))
        n = len(pairs)
        if n == 0:
            out.append((np.nan, 0))
            continue
        a = np.array([p[0] for p in pairs])
        b = np.array([p[1] for p in pairs])
        if measure == "semivariogram":
            g = np.sum((a - b) ** 2) / (2 * n)
        elif measure == "pairwise_relative":
            g = np.sum((a - b) ** 2 / ((a + b) / 2) ** 2) / (2 * n)
        else:
            if pairs[0][2] is None:  # symmetric: both orders
                hd, tl = np.r_[a, b], np.r_[b, a]
            else:
                hd = np.array([p[2][0] for p in pairs])
                tl = np.array([p[2][1] for p in pairs])
            rho = np.mean(hd * tl) - hd.mean() * tl.mean()
            rho /= math.sqrt(hd.var() * tl.var())
            g = 1.0 - rho
        out.append((g, n))
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


DIRS = [
    OMNI,
    Direction(30.0, -20.0, tolerance=22.5),
    Direction(120.0, 0.0, tolerance=30.0, dip_tolerance=15.0, bandwidth_h=12.0, bandwidth_v=6.0),
    Direction(0.0, -90.0, tolerance=90.0, dip_tolerance=25.0, bandwidth_v=20.0),
    Direction(250.0, -55.0, tolerance=15.0, bandwidth_h=8.0),
]


@pytest.fixture(scope="module")
def cloud():
    rng = np.random.default_rng(0)
    xyz = rng.uniform(0.0, 60.0, (150, 3)) * [1.0, 1.0, 0.5]
    v = rng.lognormal(0.0, 0.7, 150)
    return xyz, v


@pytest.mark.parametrize("measure", ["semivariogram", "correlogram", "pairwise_relative"])
@pytest.mark.parametrize("ltol", [None, 8.0], ids=["half-lag", "overlapping"])
def test_directional_equals_brute_force(cloud, measure, ltol):
    xyz, v = cloud
    lag, n_lags = 6.0, 7
    df = experimental_variogram(
        xyz, v, lag=lag, n_lags=n_lags, directions=DIRS, lag_tol=ltol, measure=measure
    )
    for d in DIRS:
        g, n = brute(xyz, v, d, lag, n_lags, lag / 2 if ltol is None else ltol, measure)
        t = df[df["direction"] == d.label]
        npt.assert_array_equal(t["n_pairs"].to_numpy(), n)
        npt.assert_allclose(t["gamma"].to_numpy(), g, rtol=1e-12, atol=1e-12)
        assert n.sum() > 20  # the set is dense enough to test something


def test_frame_equals_brute_force_in_rotated_coordinates(cloud):
    xyz, v = cloud
    frame = (35.0, -25.0, 15.0)
    d = Direction(0.0, 0.0, tolerance=20.0, bandwidth_v=5.0, name="major")
    df = experimental_variogram(xyz, v, lag=6.0, n_lags=6, directions=[d], frame=frame)
    rot = xyz @ rotation_matrix(frame)[[1, 0, 2]].T
    g, n = brute(rot, v, d, 6.0, 6, 3.0, "semivariogram")
    npt.assert_array_equal(df["n_pairs"].to_numpy(), n)
    npt.assert_allclose(df["gamma"].to_numpy(), g, rtol=1e-12)
    npt.assert_allclose(
        direction_vector(df["azimuth"].iloc[0], df["dip"].iloc[0]),
        rotation_matrix(frame)[0],
        atol=1e-12,
    )


def test_downhole_equals_brute_force(cloud):
    xyz, v = cloud
    holes = np.repeat(np.arange(15), 10)
    depth = np.tile(np.arange(10) * 2.5, 15) + np.repeat(np.linspace(0, 1, 15), 10)
    df = downhole_variogram(v, holes, lag=2.5, n_lags=5, depths=depth)
    g, n = brute(xyz, v, None, 2.5, 5, 1.25, "semivariogram", along=depth, holes=holes)
    npt.assert_array_equal(df["n_pairs"].to_numpy(), n)
    npt.assert_allclose(df["gamma"].to_numpy(), g, rtol=1e-12)


def test_downhole_along_hole_from_xyz_and_shuffled_holes():
    rng = np.random.default_rng(3)
    u = direction_vector(60.0, -70.0)
    s = np.arange(20) * 2.0
    xyz = np.concatenate([[10.0 * k, 0, 0] + s[:, None] * u for k in range(5)])
    holes = np.repeat(np.array(["a", "b", "c", "d", "e"]), 20)
    v = rng.normal(size=100)
    a = downhole_variogram(v, holes, lag=2.0, n_lags=4, xyz=xyz)
    b = downhole_variogram(v, holes, lag=2.0, n_lags=4, depths=np.tile(s, 5))
    npt.assert_allclose(a["gamma"], b["gamma"], rtol=1e-12)
    npt.assert_array_equal(a["n_pairs"], [95, 90, 85, 80])
    npt.assert_allclose([a["azimuth"].iloc[0], a["dip"].iloc[0]], [60.0, -70.0], atol=1e-9)


def test_omni_matches_gstools(cloud):
    xyz, v = cloud
    lag, n = 6.0, 7
    df = experimental_variogram(xyz, v, lag=lag, n_lags=n)
    edges = lag * (np.arange(n + 1) + 0.5)
    _, g, c = gs.vario_estimate(xyz.T, v, edges, return_counts=True)
    npt.assert_array_equal(df["n_pairs"], c)
    npt.assert_allclose(df["gamma"], g, rtol=1e-12)


def test_vertical_direction_matches_gstools_cone(cloud):
    # gamv with azimuth tolerance 90 about the vertical = a cone of half-angle dip_tolerance,
    # vertical bandwidth = distance from the axis: GSTools' angles_tol and bandwidth.
    xyz, v = cloud
    d = Direction(0.0, -90.0, tolerance=90.0, dip_tolerance=30.0, bandwidth_v=10.0)
    lag, n = 6.0, 5
    df = experimental_variogram(xyz, v, lag=lag, n_lags=n, directions=[d])
    edges = lag * (np.arange(n + 1) + 0.5)
    _, g, c = gs.vario_estimate(
        xyz.T,
        v,
        edges,
        direction=[[0.0, 0.0, 1.0]],
        angles_tol=np.deg2rad(30.0),
        bandwidth=10.0,
        return_counts=True,
    )
    npt.assert_array_equal(df["n_pairs"], np.ravel(c))
    npt.assert_allclose(df["gamma"], np.ravel(g), rtol=1e-12)


def test_serial_parallel_and_order_invariance(cloud):
    xyz, v = cloud
    a = experimental_variogram(xyz, v, lag=5.0, n_lags=8, directions=DIRS, parallel=True)
    b = experimental_variogram(xyz, v, lag=5.0, n_lags=8, directions=DIRS, parallel=False)
    npt.assert_array_equal(a["gamma"], b["gamma"])
    p = np.random.default_rng(1).permutation(len(v))
    c = experimental_variogram(xyz[p], v[p], lag=5.0, n_lags=8, directions=DIRS)
    npt.assert_array_equal(a["n_pairs"], c["n_pairs"])
    npt.assert_allclose(a["gamma"], c["gamma"], rtol=1e-12)


def test_nan_values_dropped_and_empty_lags_are_nan():
    xyz = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]])
    v = np.array([1.0, np.nan, 3.0, 4.0])
    df = experimental_variogram(xyz, v, lag=1.0, n_lags=4)
    npt.assert_array_equal(df["n_pairs"], [1, 1, 1, 0])
    npt.assert_allclose(df["gamma"].to_numpy()[:3], [0.5, 2.0, 4.5])
    assert np.isnan(df["gamma"].iloc[3])


def test_variogram_map_counts_every_pair_once(cloud):
    xyz, v = cloud
    vm = variogram_map(xyz, v, cell=5.0, n_cells=6)
    d = xyz[None, :, :] - xyz[:, None, :]
    h = np.linalg.norm(d, axis=2)
    iu = np.triu_indices(len(v), 1)
    ok = h[iu] <= 30.0
    assert vm["n_pairs"].sum() == ok.sum()
    g = 0.5 * (v[iu[0]] - v[iu[1]]) ** 2
    npt.assert_allclose((vm["gamma"] * vm["n_pairs"]).sum(), g[ok].sum(), rtol=1e-12)
    assert (vm["dz"] >= 0).all()


def test_normal_scores():
    ns = normal_scores([5.0, 1.0, 3.0, 3.0])
    npt.assert_allclose(ns[0], -ns[1])
    assert ns[2] == ns[3] == 0.0


def test_input_errors():
    with pytest.raises(ValueError, match="measure 'madogram'"):
        experimental_variogram(np.zeros((3, 3)), np.zeros(3), lag=1.0, n_lags=2, measure="madogram")
    with pytest.raises(ValueError, match="shape"):
        experimental_variogram(np.zeros((3, 2)), np.zeros(3), lag=1.0, n_lags=2)
    with pytest.raises(ValueError, match="lag must be > 0"):
        experimental_variogram(np.zeros((3, 3)), np.zeros(3), lag=0.0, n_lags=2)


# -- directions ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_axes_to_gslib_angles_round_trip(seed):
    rng = np.random.default_rng(seed)
    angles = (rng.uniform(0, 360), rng.uniform(-89, 89), rng.uniform(-180, 180))
    r = rotation_matrix(angles)
    sign = rng.choice([-1.0, 1.0], 2)
    got = axes_to_gslib_angles(sign[0] * r[0], sign[1] * r[1] + 0.3 * r[0])
    r2 = rotation_matrix(got)
    for i in range(3):
        assert abs(abs(r2[i] @ r[i]) - 1.0) < 1e-10
    assert -90.0 <= got[1] <= 0.0
    assert 0.0 <= got[0] < 360.0


def test_axes_to_gslib_angles_spec_example():
    r = rotation_matrix([30.0, -20.0, 0.0])
    npt.assert_allclose(axes_to_gslib_angles(r[0], r[1]), (30.0, -20.0, 0.0), atol=1e-9)
    with pytest.raises(ValueError, match="parallel"):
        axes_to_gslib_angles([1, 0, 0], [2, 0, 0])


def test_fan_covers_the_hemisphere_once():
    fan = fan_directions(30.0)
    assert len(fan) == 6 + 12 * 2 + 1
    v = np.array([d.vector for d in fan])
    assert (v[:, 2] <= 1e-12).all()


# -- compiled kernels ------------------------------------------------------------------------
def test_serial_and_parallel_pair_kernels_are_cached_apart():
    """numba's cache index keys a function by its bytecode (and closure), not by its compile
    flags (numba #6845): one function compiled serial and parallel, both ``cache=True``, would
    share cache entries and each variant could load the other's machine code. The pair loop is
    built by a factory, one closure per variant, so the keys differ."""
    from estimator.variography import _pairs

    serial, parallel = _pairs._pairs_serial, _pairs._pairs_parallel
    if not hasattr(serial, "_cache"):
        pytest.skip("numba JIT disabled")
    assert serial.py_func is not parallel.py_func
    codegen = serial.targetctx.codegen()
    assert serial._cache._index_key((), codegen) != parallel._cache._index_key((), codegen)


def test_serial_and_parallel_variogram_maps_agree(cloud):
    xyz, v = cloud
    a, b = (variogram_map(xyz, v, cell=6.0, n_cells=5, parallel=p) for p in (False, True))
    assert len(a) > 50 and a.equals(b)
