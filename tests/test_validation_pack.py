"""The validation pack: hand-built block models with known answers, direct NumPy recomputations,
cross-validation calibrated on Gaussian fields of a known model, and a run of the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest
import xarray as xr

from estimator.blockmodel.grid import BlockGrid, make_block_model
from estimator.errors import ConfigError, DataError
from estimator.kriging.search import SearchPass
from estimator.validation import cross_validate
from estimator.validation_pack import (
    _nearest,
    cross_validation,
    extrapolation_by_class,
    global_bias,
    nearest_neighbour,
    plan_section,
    plot_swaths,
    swaths,
    validation_pack,
)
from estimator.variography.models import Structure, VariogramModel

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo"


def line_model() -> tuple[xr.Dataset, pd.DataFrame]:
    """Four 10 m blocks along x (centres 5, 15, 25, 35), domains a and b; answers by hand."""
    ds = make_block_model(BlockGrid((0, 0, 0), (10, 10, 10), (4, 1, 1)), ["a", "b"], ["au"])
    frac = np.array([[1.0, 0.5, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]).reshape(2, 1, 1, 4)
    est = np.array([[2.0, 4.0, np.nan, 9.0], [np.nan, np.nan, np.nan, 7.0]]).reshape(2, 1, 1, 4)
    ds["fraction"] = (ds["fraction"].dims, frac)
    ds["au"] = (ds["au"].dims, est, {"units": "g/t"})
    comps = pd.DataFrame(
        {
            "hole_id": ["H1", "H2", "H3", "H4", "H5"],
            "x": [10.0, 0.0, 25.0, 15.5, 5.0],
            "y": 5.0,
            "z": 5.0,
            "domain": ["a", "a", "a", "b", "a"],
            "au": [5.0, 1.0, 3.0, 100.0, np.nan],
        }
    )
    return ds, comps


# -- nearest neighbour and global bias ---------------------------------------------------------
def test_nearest_neighbour_by_hand():
    ds, comps = line_model()
    nn = nearest_neighbour(ds, comps, "au").values[:, 0, 0, :]
    # block 5: rows 0 (x=10) and 1 (x=0) both 5 m away -> the first row (5), not the NaN at x=5;
    # block 15: row 0 (5 m; b's composite at 0.5 m belongs to another domain); block 25: row 2;
    # block 35 is outside a. Domain b: its only composite, wherever the block.
    npt.assert_array_equal(nn[0], [5.0, 5.0, 3.0, np.nan])
    npt.assert_array_equal(nn[1], [np.nan, np.nan, np.nan, 100.0])


def test_nearest_ties_go_to_the_first_row_even_past_k():
    # 12 points on a circle around the target, all at the same distance (exact in binary:
    # (+-3, +-4) and (+-5, 0), (0, +-5) are all 5 away); k=8 sees only some of them
    pts = np.array(
        [[3, 4], [4, 3], [-3, 4], [-4, 3], [3, -4], [4, -3], [-3, -4], [-4, -3],
         [5, 0], [0, 5], [-5, 0], [0, -5]], dtype=float
    )  # fmt: skip
    pts = np.column_stack([pts, np.zeros(12)])
    order = np.random.default_rng(3).permutation(12)
    assert _nearest(pts[order], np.zeros((1, 3)), k=8)[0] == 0
    assert _nearest(pts[order], np.zeros((1, 3)), k=4)[0] == 0
    # and a strictly nearer point wins whatever its row
    more = np.vstack([pts, [[0.0, 0.0, 4.9]]])
    assert _nearest(more, np.zeros((1, 3)))[0] == 12


def test_global_bias_by_hand():
    ds, comps = line_model()
    table = global_bias(ds, comps, "au", weights=[1.0, 2.0, 1.0, 1.0, 1.0], density={"a": 2.0, "b": 3.0})
    a = table.set_index("domain").loc["a"]
    # estimated blocks of a: 5 (1000 m3) and 15 (500 m3); block 25 is inside but not estimated
    assert (a["composites"], a["blocks"], a["blocks_not_estimated"]) == (3, 2, 1)
    npt.assert_allclose([a["volume"], a["tonnes"]], [1500.0, 3000.0])
    npt.assert_allclose(a["composite_mean"], (5 + 1 + 3) / 3)
    npt.assert_allclose(a["declustered_mean"], (5 + 2 * 1 + 3) / 4)
    npt.assert_allclose(a["estimate_mean"], (2 * 1000 + 4 * 500) / 1500)
    npt.assert_allclose(a["nn_mean"], 5.0)
    npt.assert_allclose(a["bias_declustered_pct"], 100 * (8 / 3 - 2.5) / 2.5)
    npt.assert_allclose(a["bias_nn_pct"], 100 * (8 / 3 - 5) / 5)
    b = table.set_index("domain").loc["b"]
    npt.assert_allclose([b["estimate_mean"], b["nn_mean"], b["tonnes"]], [7.0, 100.0, 3000.0])
    # without weights the declustered mean is the plain mean; without density no tonnes
    plain = global_bias(ds, comps, "au").set_index("domain").loc["a"]
    assert plain["declustered_mean"] == plain["composite_mean"] and np.isnan(plain["tonnes"])


def test_global_bias_weights_column_and_bad_input():
    ds, comps = line_model()
    comps["w"] = [1.0, 2.0, 1.0, 1.0, 1.0]
    by_name = global_bias(ds, comps, "au", weights="w")
    npt.assert_allclose(by_name["declustered_mean"].iloc[0], 2.5)
    with pytest.raises(DataError, match=r"weights: 2 values for 5 composites"):
        global_bias(ds, comps, "au", weights=[1.0, 2.0])
    with pytest.raises(DataError, match=r"1 of 5 missing or negative \(first: row 1, hole H2, value -1.0\)"):
        global_bias(ds, comps, "au", weights=[1.0, -1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ConfigError, match=r"no value for domain 'b'"):
        global_bias(ds, comps, "au", density={"a": 2.7})
    with pytest.raises(DataError, match=r"no variable 'ag'"):
        global_bias(ds, comps, "ag")
    with pytest.raises(DataError, match=r"no column \['au'\]"):
        global_bias(ds, comps.drop(columns="au"), "au")
    with pytest.raises(DataError, match=r"no domain column, and the block model has 2 domains"):
        global_bias(ds, comps.drop(columns="domain"), "au")
    one = ds.drop_attrs()
    with pytest.raises(DataError, match=r"one block along y and no block_size attribute"):
        global_bias(one, comps, "au")


# -- swaths -------------------------------------------------------------------------------------
def random_model(seed=0, rotation=0.0):
    """Two domains, random fractions (a third of them 0), estimates with holes, composites."""
    rng = np.random.default_rng(seed)
    grid = BlockGrid((100.0, 200.0, 50.0), (10.0, 8.0, 5.0), (6, 5, 4), rotation)
    ds = make_block_model(grid, ["a", "b"], ["au"])
    shape = ds["fraction"].shape
    frac = rng.uniform(0, 1, shape) * (rng.uniform(size=shape) > 0.33)
    est = np.where(rng.uniform(size=shape) > 0.2, rng.lognormal(0, 0.5, shape), np.nan)
    dist = np.where(np.isfinite(est), rng.uniform(5, 80, shape), np.nan)
    ds["fraction"] = (ds["fraction"].dims, frac)
    ds["au"] = (ds["au"].dims, est)
    ds["au_dist"] = (ds["au_dist"].dims, dist)
    n = 80
    local = rng.uniform([100, 200, 50], [160, 240, 70], (n, 3))
    wx, wy = grid.to_world(local[:, 0], local[:, 1])
    comps = pd.DataFrame(
        {
            "hole_id": rng.integers(0, 10, n).astype(str),
            "x": wx,
            "y": wy,
            "z": local[:, 2],
            "domain": rng.choice(["a", "b", ""], n),
            "au": np.where(rng.uniform(size=n) > 0.1, rng.lognormal(0, 0.5, n), np.nan),
        }
    )
    return ds, comps, grid, local, rng.uniform(0.5, 2.0, n)


@pytest.mark.parametrize("rotation", [0.0, 35.0])
@pytest.mark.parametrize(("axis", "width"), [("x", 25.0), ("y", 8.0), ("z", 7.5)])
def test_swaths_equal_direct_numpy(axis, width, rotation):
    ds, comps, grid, local, w = random_model(1, rotation)
    dens = {"a": 2.5, "b": 3.0}
    table = swaths(ds, comps, "au", axis=axis, width=width, weights=w, density=dens)
    nn = nearest_neighbour(ds, comps, "au").values
    a = "xyz".index(axis)
    centre = np.meshgrid(*grid.centres_local()[::-1], indexing="ij")[::-1][a]  # (z, y, x)
    lo = grid.origin[a]
    for i, d in enumerate(["a", "b"]):
        frac, est = ds["fraction"].values[i], ds["au"].values[i]
        rows = table[table["domain"] == d]
        comp_in = (comps["domain"] == d).to_numpy() & comps["au"].notna().to_numpy()
        for _, r in rows.iterrows():
            assert r["from"] == pytest.approx(lo + r["swath"] * width)
            blk = (frac > 0) & np.isfinite(est) & (centre >= r["from"]) & (centre < r["to"])
            wt = frac[blk] * 400.0 * dens[d]
            assert r["blocks"] == blk.sum()
            npt.assert_allclose(r["tonnes"], wt.sum())
            if blk.any():
                npt.assert_allclose(r["estimate_mean"], np.average(est[blk], weights=wt))
                npt.assert_allclose(r["nn_mean"], np.average(nn[i][blk], weights=wt))
            c = comp_in & (local[:, a] >= r["from"]) & (local[:, a] < r["to"])
            assert r["composites"] == c.sum()
            if c.any():
                npt.assert_allclose(r["composite_mean"], comps["au"][c].mean())
                npt.assert_allclose(r["declustered_mean"], np.average(comps["au"][c], weights=w[c]))
        # every estimated block and every composite of the domain is in exactly one swath
        assert rows["blocks"].sum() == ((frac > 0) & np.isfinite(est)).sum()
        assert rows["composites"].sum() == comp_in.sum()
    fig = plot_swaths(table, "a")
    assert fig.axes[0].get_xlabel() == f"{'grid ' if rotation else ''}{axis} swath centre (data units)"


def test_swaths_bad_arguments():
    ds, comps, *_ = random_model()
    with pytest.raises(ConfigError, match=r"axis 'east'; expected one of x, y, z"):
        swaths(ds, comps, "au", axis="east", width=10)
    with pytest.raises(ConfigError, match=r"width -5.0 along x; expected a positive length"):
        swaths(ds, comps, "au", axis="x", width=-5)


def test_rotated_model_nearest_neighbour_in_world_coordinates():
    ds, _, grid, _, _ = random_model(2, rotation=30.0)
    # one composite at the world centre of every block of domain a: NN reproduces them exactly
    iz, iy, ix = np.nonzero(ds["fraction"].values[0] > 0)
    xyz = grid.block_centres(iz, iy, ix)
    grades = np.arange(iz.size, dtype=float)
    comps = pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "domain": "a", "au": grades})
    nn = nearest_neighbour(ds, comps, "au").values[0]
    npt.assert_array_equal(nn[iz, iy, ix], grades)
    # and along every grid axis each swath of one block holds one composite per block
    for axis, width in (("x", 10.0), ("y", 8.0), ("z", 5.0)):
        t = swaths(ds, comps, "au", axis=axis, width=width)
        t = t[t["domain"] == "a"]
        inside = (ds["fraction"].values[0] > 0).sum(axis=tuple(i for i in range(3) if i != "zyx".index(axis)))
        npt.assert_array_equal(t["composites"], inside[inside > 0])
    # a rotated model that cannot be placed in the world is refused
    bare = ds.drop_vars(["x_world", "y_world"])
    bare.attrs.pop("origin")
    with pytest.raises(DataError, match=r"rotated by 30 degrees but it has neither x_world"):
        nearest_neighbour(bare, comps, "au")


# -- distance to the data by class --------------------------------------------------------------
def test_extrapolation_by_class_equals_direct_quantiles():
    ds, _, _, _, _ = random_model(3)
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 3, ds["fraction"].shape).astype(np.uint8)
    names = ["measured", "indicated"]
    ds["class"] = (ds["fraction"].dims, codes, {"flag_values": [0, 1, 2], "class_names": names,
                                                "flag_meanings": "unclassified measured indicated"})  # fmt: skip
    table = extrapolation_by_class(ds, "au")
    assert table["class"].tolist()[:4] == ["measured", "indicated", "unclassified", "all"]
    for i, d in enumerate(["a", "b"]):
        frac, dist = ds["fraction"].values[i], ds["au_dist"].values[i]
        ok = (frac > 0) & np.isfinite(dist)
        for code, label in ((1, "measured"), (2, "indicated"), (0, "unclassified"), (None, "all")):
            sel = ok if code is None else ok & (codes[i] == code)
            r = table[(table["domain"] == d) & (table["class"] == label)].iloc[0]
            assert r["blocks"] == sel.sum()
            npt.assert_allclose(r["volume"], frac[sel].sum() * 400.0)
            npt.assert_allclose(r["dist_max"], dist[sel].max())
            npt.assert_allclose(r["dist_p90"], np.quantile(dist[sel], 0.9))
    # the same classes as text labels (an in-memory model) give the same rows (sorted by name,
    # as text labels carry no order)
    text = ds.assign({"class": (ds["class"].dims, np.array(["", *names], dtype=object)[codes])})
    got = extrapolation_by_class(text, "au")
    assert got["class"].tolist()[:4] == ["indicated", "measured", "unclassified", "all"]
    key = ["domain", "class"]
    pd.testing.assert_frame_equal(
        got.sort_values(key, ignore_index=True), table.sort_values(key, ignore_index=True)
    )
    # codes with only CF flag_meanings (no class_names) are decoded too
    cf = ds.copy()
    cf["class"].attrs.pop("class_names")
    pd.testing.assert_frame_equal(extrapolation_by_class(cf, "au"), table)
    bad = ds.copy()
    bad["class"] = bad["class"] + np.uint8(1)
    with pytest.raises(DataError, match=r"class code 3 but only 2 class names"):
        extrapolation_by_class(bad, "au")
    # no class variable: one row per domain, over every estimated block
    plain = extrapolation_by_class(ds.drop_vars("class"), "au")
    assert plain["class"].tolist() == ["all", "all"]


# -- cross-validation ---------------------------------------------------------------------------
MODEL = VariogramModel(0.1, (Structure("spherical", 0.9, (60.0, 60.0, 60.0)),))
PASSES = [SearchPass((80.0, 80.0, 80.0), min_samples=4, max_samples=16)]


def gaussian_field(seed, n=400):
    """Exact Gaussian realisation of MODEL at n random points (Cholesky), mean 3."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(0, 1, (n, 3)) * [200.0, 200.0, 20.0]
    c = MODEL.covariance((xyz[:, None] - xyz[None]).reshape(-1, 3)).reshape(n, n)
    values = 3.0 + np.linalg.cholesky(c + 1e-10 * np.eye(n)) @ rng.standard_normal(n)
    return pd.DataFrame(
        {"hole_id": np.arange(n).astype(str), "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
         "au": values}
    )  # fmt: skip


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_leave_one_out_ordinary_kriging_is_unbiased_on_its_own_model(seed):
    """Kriging with the model the data were drawn from: no global or conditional bias.

    Tolerances, from 40 seeds of this very set-up (400 points, model and search as here):
    |mean error| / sd was at most 0.013 (sd 0.005), so 0.1 sd is ~20 sd of margin; the slope of
    true on estimate was 1.008 +- 0.022 (range 0.93..1.05), so 0.8..1.2 is ~9 sd; the variance
    of the standardised errors 1.006 +- 0.087, so 0.7..1.3 is ~3.5 sd. The last one fails when
    the sample itself is used (kv = 0: no standardised errors) or the kriging variance is wrong.
    """
    comps = gaussian_field(seed)
    table, s = cross_validation(comps, "au", MODEL, PASSES, leave="one")
    assert s["n"] == 400 and s["n_missing"] == 0
    assert abs(s["mean_error"]) < 0.1 * s["true_sd"]
    assert 0.8 < s["slope"] < 1.2
    assert 0.7 < s["var_std_error"] < 1.3
    # the sample was not its own neighbour: its error is never zero, and no worse than nugget
    assert (table["error"].abs() > 0).all() and s["mse"] > MODEL.nugget
    npt.assert_allclose(s["mse"], np.mean(table["error"] ** 2))
    assert s["by_domain"]["all"]["n"] == 400


def test_leave_one_out_nearest_neighbour_by_brute_force():
    comps = gaussian_field(5, n=60)
    table, _ = cross_validation(comps, "au", None, PASSES, method="nn", leave="one")
    xyz, v = comps[["x", "y", "z"]].to_numpy(), comps["au"].to_numpy()
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=2)
    np.fill_diagonal(d, np.inf)
    d[d > 80.0] = np.inf  # outside the search ellipsoid
    want = np.where(np.isfinite(d.min(1)), v[np.argmin(d, axis=1)], np.nan)
    npt.assert_allclose(table["estimate"], want)


def test_leave_one_hole_out_is_validation_cross_validate_per_domain():
    rng = np.random.default_rng(21)
    holes = np.repeat(np.arange(30), 8)
    collar = rng.uniform(0, 150, (30, 2))
    xyz = np.column_stack([collar[holes], -2.0 * np.tile(np.arange(8), 30)])
    comps = pd.DataFrame({"hole_id": holes.astype(str), "x": xyz[:, 0], "y": xyz[:, 1],
                          "z": xyz[:, 2], "domain": np.where(collar[holes, 0] < 75, "w", "e"),
                          "au": rng.lognormal(0, 0.5, 240)})  # fmt: skip
    models = {"w": {"au": MODEL}, "e": {"au": MODEL}}
    table, s = cross_validation(comps, "au", models, PASSES, leave="hole")
    for d in ("w", "e"):
        sel = comps["domain"] == d
        ref = cross_validate(comps.loc[sel, ["x", "y", "z"]], comps.loc[sel, "au"],
                             comps.loc[sel, "hole_id"], MODEL, PASSES)  # fmt: skip
        got = table[table["domain"] == d].drop(columns="domain").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, ref)
        assert s["by_domain"][d]["n"] + s["by_domain"][d]["n_missing"] == sel.sum()
    # leaving one sample out lets the rest of its own hole inform it: other estimates
    one, s1 = cross_validation(comps, "au", models, PASSES, leave="one")
    assert s1["n"] == 240 and s1["leave"] == "one"
    assert not np.allclose(one["estimate"], table["estimate"], equal_nan=True)
    with pytest.raises(ConfigError, match=r"no variogram model for domain 'e', grade 'au'"):
        cross_validation(comps, "au", {"w": {"au": MODEL}}, PASSES)
    with pytest.raises(ConfigError, match=r"leave='all'; expected 'one' or 'hole'"):
        cross_validation(comps, "au", models, PASSES, leave="all")


# -- plan and section ---------------------------------------------------------------------------
@pytest.mark.parametrize("rotation", [0.0, 35.0])
def test_plan_section_draws_the_composites_near_each_plane(rotation):
    ds, comps, _, local, _ = random_model(6, rotation)
    fig = plan_section(ds, comps, "au", z=62.0, y=215.0)
    plan, section = fig.axes[:2]
    # z = 62 snaps to the layer centred at 62.5 (60..65); y = 215 to the row at 212 (208..216)
    assert plan.get_title() == "Plan at z = 62.5 data units"
    frame = "grid " if rotation else ""
    assert section.get_title() == f"Section at {frame}y = 212 data units"
    ok = comps["au"].notna().to_numpy()
    n_plan = plan.collections[-1].get_offsets().shape[0]
    n_sec = section.collections[-1].get_offsets().shape[0]
    assert n_plan == (ok & (np.abs(local[:, 2] - 62.5) <= 2.5)).sum() > 0
    assert n_sec == (ok & (np.abs(local[:, 1] - 212.0) <= 4.0)).sum() > 0
    # the block colours are the fraction-weighted mean estimate of the layer
    f, e = ds["fraction"].values[:, 2], ds["au"].values[:, 2]
    w = np.where((f > 0) & np.isfinite(e), f, 0)
    with np.errstate(invalid="ignore"):
        want = np.sum(w * np.nan_to_num(e), axis=0) / w.sum(axis=0)
    got = plan.collections[0].get_array()
    npt.assert_allclose(np.ma.filled(got, np.nan).reshape(want.shape), want)
    with pytest.raises(DataError, match=r"z = 500 is outside the block model \(50 to 70\)"):
        plan_section(ds, comps, "au", z=500.0)


# -- the demo -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_run():
    """The bundled demo on 10 m blocks with two classes, run in memory (a few seconds)."""
    import yaml

    import estimator

    if not (DEMO / "demo.yaml").exists():
        pytest.skip("configs/demo is not in this checkout")
    raw = yaml.safe_load((DEMO / "demo.yaml").read_text())
    for key in ("collars", "surveys", "zones"):
        raw["data"][key] = str(DEMO / raw["data"][key])
    for entry in raw["data"]["assays"]:
        entry["path"] = str(DEMO / entry["path"])
    for dom in raw["domains"]:
        dom["wireframe"] = str(DEMO / dom["wireframe"])
    raw["block_model"].update(block_size=[10.0, 10.0, 10.0], shape=[33, 43, 52], subcells=[2, 2, 2])
    raw["estimation"]["discretisation"] = [2, 2, 2]
    raw["classification"] = {"classes": [{"name": "indicated", "max_pass": 1, "min_slope": 0.5},
                                         {"name": "inferred", "max_pass": 2}]}  # fmt: skip
    raw["compute"] = {"scheduler": "synchronous"}
    raw.pop("output", None)
    return raw, estimator.run(raw, in_memory=True)


def test_demo_validation_pack(demo_run, tmp_path):
    from estimator.config import parse_config
    from estimator.estimation import search_passes

    raw, run = demo_run
    cfg = parse_config(raw, check_files=False)
    ds, comps = run.blockmodel, run.composites
    density = {d.name: d.density for d in cfg.domains}
    pack = validation_pack(ds, comps, "pd", run.models, search_passes(cfg), density=density)
    bias = pack.global_bias.set_index("domain")
    assert list(bias.index) == cfg.domain_names
    # kriging and nearest neighbour agree within 10 % on every well-drilled lens
    well = bias[bias["composites"] >= 100]
    assert len(well) >= 3 and (well["bias_nn_pct"].abs() < 10).all(), well
    npt.assert_allclose(bias["tonnes"], [bias.loc[d, "volume"] * density[d] for d in bias.index])
    for axis in "xyz":
        sw = pack.swaths[pack.swaths["axis"] == axis]
        npt.assert_allclose(sw.groupby("domain")["tonnes"].sum()[bias.index], bias["tonnes"])
    s = pack.cross_validation_summary
    assert s["leave"] == "hole" and s["n"] > 2000 and abs(s["mean_error"]) < 0.1 * s["true_sd"]
    # classes follow the passes: indicated blocks (pass 1, major range 80 m) are within 80 m
    # of their data on average, inferred ones (pass 2) within 160 m
    dist = pack.extrapolation
    assert {"indicated", "inferred", "all"} <= set(dist["class"])
    assert (dist.loc[dist["class"] == "indicated", "dist_max"] <= 80.0 + 1e-9).all()
    assert (dist.loc[dist["class"] == "inferred", "dist_max"] <= 160.0 + 1e-9).all()
    assert set(pack.figures) >= {"plan_section", "swaths_offset"}
    for name, fig in pack.figures.items():
        fig.savefig(tmp_path / f"{name}.png", dpi=50)
    assert set(pack.tables()) == {f"validation_{k}_pd" for k in ("bias", "swaths", "cross", "distance")}
