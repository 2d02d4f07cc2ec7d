"""Tests of the block-kriging engine against a per-block reference, GSTools and a textbook case."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from estimator.kriging import _kernels
from estimator.kriging.estimate import SearchPass, block_covariance, estimate_blocks
from estimator.variography.models import Structure, VariogramModel
from kriging_reference import plain_krige_one, reference_estimate

FLOAT_KEYS = ("estimate", "kv", "slope", "ke", "dist")
INT_KEYS = ("n", "holes", "pass", "status")


def discretisation(size, counts):
    """Offsets of a regular discretisation of a block of ``size`` with ``counts`` points."""
    axes = [(np.arange(c) + 0.5) / c * s - s / 2 for s, c in zip(size, counts, strict=True)]
    return np.array(np.meshgrid(*axes, indexing="ij")).reshape(3, -1).T


def drillholes(rng, n_holes, per_hole, box=100.0):
    """Samples along straight random holes in a cube: (coords, values, hole_ids)."""
    collars = rng.uniform(0, box, (n_holes, 3))
    collars[:, 2] = box
    dirs = rng.normal(size=(n_holes, 3))
    dirs[:, 2] = -np.abs(dirs[:, 2]) - 1.0
    dirs /= np.linalg.norm(dirs, axis=1)[:, None]
    depth = rng.uniform(1, 2, (n_holes, per_hole)).cumsum(axis=1) * 2.0
    xyz = (collars[:, None, :] + depth[..., None] * dirs[:, None, :]).reshape(-1, 3)
    values = rng.lognormal(0.0, 1.0, len(xyz))
    holes = np.repeat(np.arange(n_holes), per_hole) * 7 + 3  # arbitrary ids
    return xyz, values, holes


MODELS = {
    "sph2": VariogramModel(
        0.15,
        (
            Structure("spherical", 0.5, (40, 25, 10), (30, -20, 0)),
            Structure("spherical", 0.35, (90, 60, 30), (120, 10, 35)),
        ),
    ),
    "mixed3": VariogramModel(
        0.1,
        (
            Structure("exponential", 0.4, (50, 30, 20), (300, -45, 10)),
            Structure("spherical", 0.3, (35, 35, 12), (0, 0, 0)),
            Structure("gaussian", 0.2, (80, 40, 40), (75, 30, -20)),
        ),
    ),
    "sph_no_nugget": VariogramModel(
        0.0, (Structure("spherical", 2.0, (60, 45, 20), (10, -60, 5)),)
    ),
}

PASSES = {
    "octants": (
        SearchPass(
            (30, 20, 8), (30, -20, 0), 6, 16, max_per_hole=3, max_per_octant=3, min_octants=3
        ),
        SearchPass((60, 40, 16), (30, -20, 0), 4, 20, max_per_hole=4),
        SearchPass((120, 80, 32), (30, -20, 0), 1, 12),
    ),
    "holes": (
        SearchPass((25, 25, 10), (100, 0, 0), 5, 12, max_per_hole=2),
        SearchPass((70, 50, 25), (100, 15, 0), 2, 24),
    ),
    "single": (SearchPass((50, 40, 30), (0, 0, 0), 3, 10),),
}


def compare(fast, ref, rtol=1e-10):
    """Assert the kernel and the reference agree (floats to rtol, integers exactly)."""
    for key in INT_KEYS:
        np.testing.assert_array_equal(fast[key], ref[key], err_msg=key)
    np.testing.assert_array_equal(fast["indices"], ref["indices"])
    assert fast["failures"] == ref["failures"]
    for key in (*FLOAT_KEYS, "weights"):
        np.testing.assert_allclose(fast[key], ref[key], rtol=rtol, atol=rtol, err_msg=key)
    # min_pivot: the same pivots from NumPy's Cholesky where estimated; a singular block
    # reports the pivot that stopped the factorisation (the reference may not have one)
    done = fast["status"] == _kernels.STATUS_OK
    np.testing.assert_allclose(fast["min_pivot"][done], ref["min_pivot"][done], rtol=rtol)
    assert np.all(fast["min_pivot"][fast["status"] == 1] <= _kernels.PIVOT_TOL)
    assert np.isnan(fast["min_pivot"][fast["status"] == 2]).all()


@pytest.mark.parametrize(
    ("model", "passes", "method", "support", "seed"),
    [
        ("sph2", "octants", "ok", "block", 1),
        ("sph2", "holes", "ok", "point", 2),
        ("mixed3", "octants", "ok", "point", 3),
        ("mixed3", "holes", "sk", "block", 4),
        ("sph_no_nugget", "single", "ok", "block", 5),
        ("sph_no_nugget", "octants", "sk", "point", 6),
        ("sph2", "octants", "idw", "block", 7),
        ("mixed3", "holes", "nn", "block", 8),
    ],
)
def test_kernel_matches_reference(model, passes, method, support, seed):
    rng = np.random.default_rng(seed)
    xyz, values, holes = drillholes(rng, 40, 12)
    targets = rng.uniform(-20, 120, (150, 3))
    offsets = discretisation((10, 8, 5), (3, 3, 2)) if support == "block" else np.zeros((1, 3))
    kwargs = {"method": method, "sk_mean": 1.5, "idw_power": 2.5}
    fast = estimate_blocks(
        targets,
        offsets,
        xyz,
        values,
        holes,
        MODELS[model],
        PASSES[passes],
        return_weights=True,
        **kwargs,
    )
    ref = reference_estimate(
        targets, offsets, xyz, values, holes, MODELS[model], PASSES[passes], **kwargs
    )
    compare(fast, ref)
    if method == "ok":
        np.testing.assert_allclose(fast["lagrange"], ref["lagrange"], rtol=1e-10, atol=1e-10)
    assert np.count_nonzero(fast["pass"] == 0) < len(targets)  # the case estimates something


@pytest.mark.parametrize(
    ("model", "method", "support", "maxs", "seed"),
    [
        ("sph2", "ok", "block", 24, 1),  # the vectorised (all spherical) path
        ("sph2", "sk", "point", 13, 2),
        ("sph_no_nugget", "ok", "block", 9, 3),
        ("mixed3", "ok", "block", 24, 4),  # exponential and gaussian: the scalar path
        ("gauss_no_nugget", "sk", "block", 17, 5),
        ("dup", "ok", "point", 24, 6),  # duplicated samples: singular systems
    ],
)
def test_kernel_is_bit_identical_to_the_textbook_order(model, method, support, maxs, seed):
    # The kernel computes covariances several samples at a time and the Cholesky factor
    # several columns at a time; each number must still come from the same operations in
    # the same order as the plain loops, so every output is equal to the bit.
    if model in ("mixed3", "gauss_no_nugget") and numba.config.DISABLE_JIT:
        pytest.skip("uncompiled, np.exp is NumPy's, which may differ from libm's in the last bit")
    rng = np.random.default_rng(seed)
    xyz, values, holes = drillholes(rng, 30, 12)
    targets = rng.uniform(-10, 110, (50, 3))
    if model == "dup":
        xyz = np.vstack([xyz, xyz[:60:5]])
        values, holes = np.r_[values, values[:60:5]], np.r_[holes, holes[:60:5] + 1]
        targets[:12] = xyz[:60:5] + 0.5
        model = VariogramModel(0.0, (Structure("spherical", 1.0, (40, 30, 15), (20, 0, 0)),))
    elif model == "gauss_no_nugget":
        model = VariogramModel(0.0, (Structure("gaussian", 1.0, (50, 30, 12), (20, 0, 0)),))
    else:
        model = MODELS[model]
    offsets = discretisation((10, 8, 5), (3, 3, 3)) if support == "block" else np.zeros((1, 3))
    spass = SearchPass((70, 50, 30), (30, -20, 0), 3, maxs)
    out = estimate_blocks(
        targets, offsets, xyz, values, holes, model, [spass], method, sk_mean=1.5,
        return_weights=True,
    )  # fmt: skip
    statuses = set()
    for b in np.flatnonzero(out["n"] > 0):
        idx = out["indices"][b, : out["n"][b]]
        est, kv, slope, ke, lam, mu, piv, status = plain_krige_one(
            targets[b], offsets, xyz[idx], values[idx], model, method, 1.5
        )
        assert out["status"][b] == status
        assert out["min_pivot"][b].tobytes() == np.float64(piv).tobytes()
        got = [out[k][b] for k in ("estimate", "kv", "slope", "ke")]
        assert np.array(got).tobytes() == np.array([est, kv, slope, ke]).tobytes()
        if status == 0:
            assert out["weights"][b, : len(idx)].tobytes() == lam.tobytes()
            if method == "ok":
                assert out["lagrange"][b].tobytes() == np.float64(mu).tobytes()
        statuses.add(status)
    assert statuses == ({0, 1} if len(xyz) > 360 else {0})  # 360 = 30 holes of 12


def test_chunking_and_parallel_are_bit_identical():
    rng = np.random.default_rng(11)
    xyz, values, holes = drillholes(rng, 60, 15)
    targets = rng.uniform(0, 100, (3000, 3))
    offsets = discretisation((5, 5, 5), (3, 3, 3))
    args = (offsets, xyz, values, holes, MODELS["sph2"], PASSES["octants"])
    whole = estimate_blocks(targets, *args)
    parts = [estimate_blocks(t, *args) for t in np.array_split(targets, [7, 1500, 1501])]
    par = estimate_blocks(targets, *args, parallel=True)
    for key in (*FLOAT_KEYS, *INT_KEYS, "min_pivot"):
        joined = np.concatenate([p[key] for p in parts])
        np.testing.assert_array_equal(joined, whole[key], err_msg=key)
        np.testing.assert_array_equal(par[key], whole[key], err_msg=key)
    assert par["failures"] == whole["failures"]


def test_point_ok_with_global_search_equals_gstools():
    # GSTools Spherical: len_scale is the range of the main axis (x after rotation); anis =
    # [semi-major / major, minor / major]. We test an axis-aligned anisotropic model (major
    # along x = east: ang1 = 90), where the two angle conventions agree without conversion.
    # GSTools' default (exact=False, cond_err="nugget") puts C(0) with the nugget on the
    # diagonal and leaves the nugget out of the right-hand side, which is our point kriging
    # at targets that are not sample locations. Its variance is sill - sum l c - mu, as ours.
    gs = pytest.importorskip("gstools")
    rng = np.random.default_rng(5)
    xyz = rng.uniform(0, 100, (60, 3))
    values = rng.normal(3.0, 1.0, 60)
    targets = rng.uniform(0, 100, (40, 3))
    ranges = (80.0, 50.0, 20.0)
    model = VariogramModel(0.3, (Structure("spherical", 1.2, ranges, (90, 0, 0)),))
    everything = SearchPass((1e4, 1e4, 1e4), (0, 0, 0), 1, len(xyz))
    out = estimate_blocks(
        targets, np.zeros((1, 3)), xyz, values, np.arange(60), model, [everything], "ok"
    )
    gmodel = gs.Spherical(
        dim=3,
        var=1.2,
        len_scale=ranges[0],
        nugget=0.3,
        anis=[ranges[1] / ranges[0], ranges[2] / ranges[0]],
    )
    krig = gs.krige.Ordinary(gmodel, xyz.T, values, exact=False, pseudo_inv=False)
    field, var = krig(targets.T, return_var=True)
    np.testing.assert_allclose(out["estimate"], field, rtol=1e-8)
    np.testing.assert_allclose(out["kv"], var, rtol=1e-8)


def test_isaaks_srivastava_chapter_12():
    # C(h) = 10 exp(-0.3 h): exponential, sill 10, practical range 10, no nugget; 2-D (z = 0)
    data = np.array(
        [
            [61, 139, 477],
            [63, 140, 696],
            [64, 129, 227],
            [68, 128, 646],
            [71, 140, 606],
            [73, 141, 791],
            [75, 128, 783],
        ],
        dtype=float,
    )
    xyz = np.column_stack([data[:, :2], np.zeros(7)])
    model = VariogramModel(0.0, (Structure("exponential", 10.0, (10, 10, 10)),))
    spass = SearchPass((100, 100, 100), (0, 0, 0), 1, 7)
    out = estimate_blocks(
        np.array([[65.0, 137.0, 0.0]]), np.zeros((1, 3)), xyz, data[:, 2], np.arange(7), model, [spass],
        return_weights=True,
    )  # fmt: skip
    weights = np.empty(7)
    weights[out["indices"][0]] = out["weights"][0]
    np.testing.assert_allclose(
        weights, [0.173, 0.318, 0.129, 0.086, 0.151, 0.057, 0.086], atol=6e-4
    )
    assert out["estimate"][0] == pytest.approx(592.7, abs=0.05)
    assert out["kv"][0] == pytest.approx(8.96, abs=0.005)


def _case(seed=3, n_targets=200):
    rng = np.random.default_rng(seed)
    xyz, values, holes = drillholes(rng, 30, 10)
    return rng, xyz, values, holes, rng.uniform(0, 100, (n_targets, 3))


def test_exact_at_data_points_and_weights_sum_to_one():
    _, xyz, values, holes, _ = _case()
    model = MODELS["sph_no_nugget"]
    out = estimate_blocks(
        xyz[::7], np.zeros((1, 3)), xyz, values, holes, model, PASSES["single"], return_weights=True
    )
    np.testing.assert_allclose(out["estimate"], values[::7], rtol=1e-12)
    np.testing.assert_allclose(out["kv"], 0.0, atol=1e-10)
    np.testing.assert_allclose(np.nansum(out["weights"], axis=1), 1.0, rtol=1e-12)
    _, xyz, values, holes, targets = _case(seed=4)
    out = estimate_blocks(
        targets, discretisation((6, 6, 3), (3, 3, 3)), xyz, values, holes, MODELS["sph2"],
        PASSES["octants"], return_weights=True,
    )  # fmt: skip
    done = out["pass"] > 0
    assert done.any()
    np.testing.assert_allclose(np.nansum(out["weights"][done], axis=1), 1.0, rtol=1e-12)
    # slope of regression, exactly as SPEC writes it
    bv = block_covariance(MODELS["sph2"], discretisation((6, 6, 3), (3, 3, 3)))
    kv, mu = out["kv"][done], out["lagrange"][done]
    np.testing.assert_allclose(out["slope"][done], (bv - kv - mu) / (bv - kv - 2 * mu), rtol=1e-14)


def test_translation_invariance():
    # Not bit-exact: the shifted coordinates are themselves rounded (about 1e-16 of 5e6),
    # which moves sample-to-block differences by ~1e-10 of a metre.
    _, xyz, values, holes, targets = _case()
    offsets = discretisation((6, 6, 3), (3, 3, 3))
    args = (values, holes, MODELS["mixed3"], PASSES["octants"])
    shift = np.array([512_345.0, 5_432_100.0, 1_200.0])
    a = estimate_blocks(targets, offsets, xyz, *args)
    b = estimate_blocks(targets + shift, offsets, xyz + shift, *args)
    for key in INT_KEYS:
        np.testing.assert_array_equal(a[key], b[key])
    for key in FLOAT_KEYS:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-9, err_msg=key)


def test_sample_permutation_invariance():
    # Random coordinates: every distance is distinct, so the selection order does not
    # depend on sample order; the systems are built in distance order, so results are exact.
    rng, xyz, values, holes, targets = _case()
    offsets = discretisation((6, 6, 3), (3, 3, 3))
    perm = rng.permutation(len(xyz))
    a = estimate_blocks(targets, offsets, xyz, values, holes, MODELS["sph2"], PASSES["holes"])
    b = estimate_blocks(
        targets, offsets, xyz[perm], values[perm], holes[perm], MODELS["sph2"], PASSES["holes"]
    )
    for key in (*FLOAT_KEYS, *INT_KEYS):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_singular_systems_are_counted_not_raised():
    rng = np.random.default_rng(9)
    xyz = rng.uniform(0, 50, (20, 3))
    xyz = np.vstack([xyz, xyz[:3]])  # three duplicated locations, zero nugget
    values = rng.normal(size=23)
    model = VariogramModel(0.0, (Structure("spherical", 1.0, (80, 80, 80)),))
    targets = np.vstack([xyz[0] + 0.5, [1000.0, 1000.0, 1000.0]])
    out = estimate_blocks(
        targets,
        np.zeros((1, 3)),
        xyz,
        values,
        np.arange(23),
        model,
        [SearchPass((200,) * 3, (0, 0, 0), 1, 23)],
    )
    assert out["failures"] == {"singular": 1, "too_few": 1}
    assert np.isnan(out["estimate"]).all()
    np.testing.assert_array_equal(out["pass"], [0, 0])
    assert out["n"][0] == 23


def test_simple_kriging_far_from_data_returns_the_mean():
    xyz = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    model = VariogramModel(0.1, (Structure("spherical", 0.9, (10, 10, 10)),))
    out = estimate_blocks(
        np.array([[50.0, 0.0, 0.0]]), np.zeros((1, 3)), xyz, np.array([5.0, 7.0]), np.zeros(2, int),
        model, [SearchPass((100, 100, 100), (0, 0, 0), 1, 2)], "sk", sk_mean=2.0,
    )  # fmt: skip
    assert out["estimate"][0] == pytest.approx(2.0)
    assert out["kv"][0] == pytest.approx(1.0)
    assert out["ke"][0] == pytest.approx(0.0, abs=1e-15)
    assert out["slope"][0] == 1.0


def test_block_covariance_point_and_block():
    model = MODELS["sph2"]
    assert block_covariance(model, np.zeros((1, 3))) == pytest.approx(model.sill)
    bv = block_covariance(model, discretisation((10, 10, 5), (3, 3, 3)))
    assert 0 < bv < model.sill - model.nugget


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "ck"}, "method"),
        ({"method": "sk"}, "sk_mean"),
        ({"method": "idw", "idw_power": -1.0}, "idw_power"),
    ],
)
def test_bad_arguments(kwargs, message):
    xyz = np.zeros((2, 3))
    with pytest.raises(ValueError, match=message):
        estimate_blocks(
            xyz, np.zeros((1, 3)), xyz, np.ones(2), np.zeros(2, int), MODELS["sph2"],
            [SearchPass((10, 10, 10))], **kwargs,
        )  # fmt: skip


def test_nan_values_rejected():
    xyz = np.zeros((2, 3))
    with pytest.raises(ValueError, match="NaN"):
        estimate_blocks(
            xyz, np.zeros((1, 3)), xyz, np.array([1.0, np.nan]), np.zeros(2, int), MODELS["sph2"],
            [SearchPass((10, 10, 10))],
        )  # fmt: skip


def test_idw_and_nn_need_no_model():
    xyz = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    values = np.array([1.0, 4.0, 10.0])
    spass = SearchPass((10, 10, 10), (0, 0, 0), 1, 3)
    target = np.array([[1.0, 0.0, 0.0]])
    idw = estimate_blocks(target, np.zeros((1, 3)), xyz, values, np.arange(3), None, [spass], "idw")
    w = 1.0 / np.array([1.0, 4.0, 2.0])  # squared distances
    assert idw["estimate"][0] == pytest.approx(w @ values / w.sum(), rel=1e-14)
    assert np.isnan(idw["kv"][0])
    assert np.isnan(idw["slope"][0])
    nn = estimate_blocks(target, np.zeros((1, 3)), xyz, values, np.arange(3), None, [spass], "nn")
    assert nn["estimate"][0] == 1.0
    assert (nn["n"][0], nn["holes"][0], nn["dist"][0]) == (1, 1, pytest.approx(0.1))
    with pytest.raises(ValueError, match="model"):
        estimate_blocks(target, np.zeros((1, 3)), xyz, values, np.arange(3), None, [spass], "ok")


def test_nugget_counts_at_a_coincident_discretisation_point():
    # point support at a sample: the nugget enters the right-hand side (GSLIB), so OK
    # returns the sample value with zero variance even with a nugget
    _, xyz, values, holes, _ = _case()
    model = MODELS["sph2"]
    out = estimate_blocks(xyz[::9], np.zeros((1, 3)), xyz, values, holes, model, PASSES["single"])
    np.testing.assert_allclose(out["estimate"], values[::9], rtol=1e-12)
    np.testing.assert_allclose(out["kv"], 0.0, atol=1e-12)
    # a block whose discretisation point falls on a sample: same as the reference
    offsets = discretisation((6, 6, 3), (3, 3, 3))
    targets = xyz[::9] - offsets[4]
    fast = estimate_blocks(
        targets, offsets, xyz, values, holes, model, PASSES["single"], return_weights=True
    )
    ref = reference_estimate(targets, offsets, xyz, values, holes, model, PASSES["single"])
    compare(fast, ref)


def test_slope_and_kv_from_the_weights_independently():
    """Slope = Cov(Z_V, Z*) / Var(Z*) and KV = Var(Z_V - Z*), rebuilt from the weights alone.

    Cov(Z_V, Z*) = sum l_i Cbar_iV and Var(Z*) = l' C l, with C and Cbar evaluated here from the
    model (not from the kernel's own kv and mu), on blocks that include some with mu > 0.
    """
    _, xyz, values, holes, targets = _case(seed=4)
    model = MODELS["sph2"]
    offsets = discretisation((6, 6, 3), (3, 3, 3))
    out = estimate_blocks(
        targets, offsets, xyz, values, holes, model, PASSES["octants"], return_weights=True
    )
    bv = block_covariance(model, offsets)
    done = np.flatnonzero(out["pass"] > 0)
    assert (out["lagrange"][done] > 0).any()
    assert (out["lagrange"][done] < 0).any()
    for b in done:
        idx = out["indices"][b][out["indices"][b] >= 0]
        lam = out["weights"][b][: len(idx)]
        pts = xyz[idx]
        c = model.covariance(pts[:, None, :] - pts[None, :, :])
        cbar = model.covariance(pts[:, None, :] - (targets[b] + offsets)[None, :, :]).mean(axis=1)
        cov, var = lam @ cbar, lam @ c @ lam
        # atol: blocks beyond every range have Cov = 0 exactly here, ~1e-16 after the solve
        np.testing.assert_allclose(out["slope"][b], cov / var, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(out["kv"][b], bv - 2 * cov + var, rtol=1e-9, atol=1e-12)


def test_block_estimate_is_the_mean_of_point_estimates():
    """With one neighbourhood for all (every sample), OK is linear in its right-hand side: the
    block estimate equals the mean of the point estimates at the discretisation points."""
    _, xyz, values, holes, targets = _case(seed=7, n_targets=20)
    everything = (SearchPass((1e4, 1e4, 1e4), (0, 0, 0), 1, len(values)),)
    model = MODELS["mixed3"]
    offsets = discretisation((10, 8, 4), (3, 3, 2))
    block = estimate_blocks(targets, offsets, xyz, values, holes, model, everything)["estimate"]
    pts = (targets[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
    point = estimate_blocks(pts, np.zeros((1, 3)), xyz, values, holes, model, everything)
    np.testing.assert_allclose(
        block, point["estimate"].reshape(len(targets), -1).mean(axis=1), rtol=1e-10
    )
