"""Leave-one-hole-out cross-validation: calibration on a known model, a hand-checkable case."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from estimator.kriging.estimate import SearchPass, estimate_blocks
from estimator.validation import cross_validate, hole_folds, summary
from estimator.variography.models import Structure, VariogramModel

ANGLES = (30.0, 0.0, 0.0)
TRUE = VariogramModel(0.1, (Structure("spherical", 0.9, (100.0, 60.0, 20.0), ANGLES),))
PASS = [SearchPass(ranges=(120.0, 80.0, 40.0), angles=ANGLES, min_samples=2, max_samples=16)]


def holes(nx=6, ny=6, spacing=15.0, n=15, step=2.0):
    """Vertical holes on a jittered grid (no ties in search distance): positions and hole ids."""
    cx, cy = np.meshgrid(np.arange(nx) * spacing, np.arange(ny) * spacing)
    jitter = np.random.default_rng(7).uniform(-3.0, 3.0, (2, ny, nx))
    cx, cy = cx + jitter[0], cy + jitter[1]
    z = -(np.arange(n) + 0.5) * step
    xyz = np.stack(
        [np.repeat(cx.ravel(), n), np.repeat(cy.ravel(), n), np.tile(z, nx * ny)], axis=1
    )
    xyz[:, 2] += np.random.default_rng(8).uniform(-0.3, 0.3, len(xyz))
    return xyz, np.repeat([f"DH{i:03d}" for i in range(nx * ny)], n)


def gaussian_fields(xyz, model, n_real, seed=0):
    """Exact Gaussian realisations of ``model`` (Cholesky of the covariance), mean 5."""
    d = xyz[:, None, :] - xyz[None, :, :]
    c = model.covariance(d.reshape(-1, 3)).reshape(len(xyz), len(xyz))
    low = np.linalg.cholesky(c + 1e-9 * np.eye(len(xyz)))
    return 5.0 + low @ np.random.default_rng(seed).standard_normal((len(xyz), n_real))


@pytest.fixture(scope="module")
def case():
    xyz, hid = holes()
    return xyz, hid, gaussian_fields(xyz, TRUE, 3)


def test_true_model_is_calibrated_and_beats_wrong_models(case):
    xyz, hid, fields = case
    short = VariogramModel(0.1, (Structure("spherical", 0.9, (10.0, 6.0, 2.0), ANGLES),))
    nugget = VariogramModel(1.0, (Structure("spherical", 1e-9, (1.0, 1.0, 1.0), ANGLES),))
    stats = {"true": [], "short": [], "nugget": []}
    for v in fields.T:
        for name, m in (("true", TRUE), ("short", short), ("nugget", nugget)):
            stats[name].append(summary(cross_validate(xyz, v, hid, m, PASS, folds=6)))
    var_std = np.mean([s["var_std_error"] for s in stats["true"]])
    assert 0.7 < var_std < 1.4, var_std
    assert abs(np.mean([s["mean_std_error"] for s in stats["true"]])) < 0.3
    rmse = {k: np.mean([s["rmse"] for s in v]) for k, v in stats.items()}
    assert rmse["true"] < 0.95 * rmse["short"] and rmse["true"] < 0.95 * rmse["nugget"], rmse
    assert all(s["n_missing"] == 0 for s in stats["true"])


def test_two_holes_each_from_the_other(case):
    xyz, hid, fields = case
    sel = np.isin(hid, ["DH000", "DH001"])
    p, h, v = xyz[sel], hid[sel], fields[sel, 0]
    df = cross_validate(p, v, h, TRUE, PASS)
    assert list(df["hole_id"]) == list(h)
    for a, b in (("DH000", "DH001"), ("DH001", "DH000")):
        ta, sb = h == a, h == b
        ref = estimate_blocks(
            p[ta], np.zeros((1, 3)), p[sb], v[sb], np.zeros(sb.sum(), np.int64), TRUE, PASS, "ok"
        )
        npt.assert_allclose(df.loc[ta, "estimate"], ref["estimate"], rtol=1e-12)
        npt.assert_allclose(df.loc[ta, "kv"], ref["kv"], rtol=1e-12)
        npt.assert_allclose(df.loc[ta, "error"], ref["estimate"] - v[ta], rtol=1e-12)
    # Two folds of two holes is the same split.
    npt.assert_array_equal(cross_validate(p, v, h, TRUE, PASS, folds=2)["estimate"], df["estimate"])


def test_deterministic_and_row_order_free(case):
    xyz, hid, fields = case
    v = fields[:, 1].copy()
    v[::17] = np.nan
    a = cross_validate(xyz, v, hid, TRUE, PASS, folds=5)
    b = cross_validate(xyz, v, hid, TRUE, PASS, folds=5)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == np.isfinite(v).sum()
    perm = np.random.default_rng(3).permutation(len(v))
    c = cross_validate(xyz[perm], v[perm], hid[perm], TRUE, PASS, folds=5)
    c = c.sort_values(["x", "y", "z"]).reset_index(drop=True)
    a = a.sort_values(["x", "y", "z"]).reset_index(drop=True)
    npt.assert_allclose(c["estimate"], a["estimate"], rtol=1e-9)
    npt.assert_array_equal(c["fold"], a["fold"])


def test_summary_by_hand():
    df = pd.DataFrame(
        {
            "true": [1.0, 2.0, 3.0, 4.0],
            "estimate": [1.5, 2.0, 2.5, np.nan],
            "kv": [0.25, 1.0, 0.25, 1.0],
        }
    )
    df["error"] = df["estimate"] - df["true"]
    df["std_error"] = df["error"] / np.sqrt(df["kv"])
    s = summary(df)
    assert s["n"] == 3 and s["n_missing"] == 1
    npt.assert_allclose(s["mean_error"], 0.0, atol=1e-15)
    npt.assert_allclose(s["rmse"], np.sqrt(0.5 / 3))
    npt.assert_allclose(s["slope"], 2.0)  # cov(t, e) = 1/3, var(e) = 1/6
    npt.assert_allclose(s["correlation"], 1.0)
    npt.assert_allclose(s["var_std_error"], 2.0 / 3.0)


def test_hole_folds():
    assert hole_folds(["b", "a", "c", "a"]).tolist() == [1, 0, 2, 0]
    assert hole_folds([3, 1, 2], folds=2).tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="folds"):
        hole_folds(["a"], folds=1)
