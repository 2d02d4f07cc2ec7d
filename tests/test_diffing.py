"""The diff of two runs (``estimator diff``): every number checked against the block models.

Run A holds a first tranche of holes; run B both tranches (two new holes, one extended hole,
and a new hole inside the wireframe but beyond the search reach of every block). The grid is
rotated, A is written as NetCDF and B as a Zarr store read window by window.
"""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from estimator.cli import main
from estimator.config import parse_config
from estimator.diffing import OTHER, diff_runs, drop_noise
from estimator.errors import DataError
from estimator.io.wireframe import write_obj
from helpers import box_mesh

GRADE_FACTOR = 1 / 31.1034768  # g/t -> troy ounces
NEW_NEAR = ["H8", "H9"]
EXTENDED = "H3"
FAR = "H10"


def _data(folder: Path) -> None:
    rng = np.random.default_rng(11)
    n, per = 11, 12
    hx, hy = rng.uniform(12, 58, n), rng.uniform(2, 40, n)
    hx[10], hy[10] = 260.0, 20.0  # inside the wireframe, far beyond the block model's reach
    ids = [f"H{i}" for i in range(n)]
    pd.DataFrame({"hole_id": ids, "x": hx, "y": hy, "z": 0.0, "depth": per * 2.0}).to_csv(
        folder / "collars.csv", index=False)  # fmt: skip
    pd.DataFrame({"hole_id": ids, "depth": 0.0, "azimuth": rng.uniform(0, 360, n),
                  "dip": -80.0}).to_csv(folder / "surveys.csv", index=False)  # fmt: skip
    rows = [[f"H{i}", 2.0 * k, 2.0 * k + 2, round(float(rng.lognormal(0, 0.5)), 3)]
            for i in range(n) for k in range(per)]  # fmt: skip
    assays = pd.DataFrame(rows, columns=["hole_id", "from", "to", "au"])
    late = assays["hole_id"].isin([*NEW_NEAR, FAR]) | (
        (assays["hole_id"] == EXTENDED) & (assays["from"] >= 14))  # fmt: skip
    assays[~late].to_csv(folder / "a1.csv", index=False)
    assays[late].to_csv(folder / "a2.csv", index=False)
    zones = [[h, 0.0, 8.0, "CAP"] for h in ids] + [[h, 8.0, 24.0, "ORE"] for h in ids]
    pd.DataFrame(zones, columns=["hole_id", "from", "to", "zone"]).to_csv(
        folder / "zones.csv", index=False)  # fmt: skip
    write_obj(folder / "ore.obj", *box_mesh((-20, -30, -30), (300, 80, -6)))


MODEL = {"nugget": 0.05, "structures": [
    {"type": "spherical", "sill": 0.2, "ranges": [40, 30, 10], "angles": [30, 0, 0]}]}  # fmt: skip
BEFORE = {
    "name": "tranche-1",
    "data": {
        "collars": "collars.csv", "surveys": "surveys.csv", "zones": "zones.csv",
        "assays": [{"path": "a1.csv", "tranche": "t1"}], "length_unit": "m", "grade_unit": "g/t",
    },
    "grades": ["au"],
    "domains": [
        {"name": "ore", "wireframe": "ore.obj", "zone_code": "ORE", "density": 2.7},
        {"name": "cap", "zone_code": "CAP", "density": 2.2,
         "blocks": {"rule": "nearest_sample", "max_distance": 8.0}},
    ],
    "composites": {"length": 4.0},
    "variography": {d: {"au": {"model": MODEL}} for d in ("ore", "cap")},
    "block_model": {"origin": [0, 0, -30], "block_size": [5, 5, 4], "shape": [12, 10, 8],
                    "rotation": 15.0, "subcells": [2, 2, 2]},
    "estimation": {"passes": [
        {"ranges": [30, 25, 10], "angles": [30, 0, 0], "min_samples": 3, "max_samples": 10,
         "max_per_hole": 3},
        {"scale": 1.5, "min_samples": 2, "max_samples": 12}]},
    "classification": {"classes": [{"name": "indicated", "min_samples": 8, "max_pass": 1},
                                   {"name": "inferred", "max_pass": 2}]},
    "report": {"cutoffs": [0, 1]},
    "compute": {"scheduler": "synchronous", "chunks": [5, 4, 3]},
    "output": {"path": "run", "format": "netcdf"},
}  # fmt: skip


def _after(raw: dict) -> dict:
    out = json.loads(json.dumps(raw))
    out["name"] = "tranche-2"
    out["data"]["assays"].append({"path": "a2.csv", "tranche": "t2"})
    out["output"]["format"] = "zarr"
    return out


def _run(folder: Path, raw: dict, name: str) -> Path:
    cfg = folder / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["run", str(cfg), "--out", str(folder / name), "--quiet"]) == 0
    return folder / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diff")
    _data(folder)
    a = _run(folder, BEFORE, "before")
    b = _run(folder, _after(BEFORE), "after")
    result = diff_runs(a, b, folder / "diff")
    return folder, a, b, result


def _model(run: Path) -> xr.Dataset:
    """The block model loaded whole, classes as labels ("" = unclassified)."""
    from estimator.io.blockstore import open_block_model

    if (run / "blockmodel.zarr").is_dir():
        return open_block_model(run / "blockmodel.zarr", decode=True).load()
    with xr.open_dataset(run / "blockmodel.nc") as ds:
        return ds.load()


def _same(x, y):
    return (x == y) | (np.isnan(x) & np.isnan(y))


def _tonnes(ds: xr.Dataset) -> np.ndarray:
    dens = np.array([2.7, 2.2])[:, None, None, None]
    return ds["fraction"].sel(domain=["ore", "cap"]).values * 100.0 * dens


def test_the_changed_blocks_are_exactly_those_whose_values_differ(runs):
    folder, a, b, result = runs
    da, db = _model(a), _model(b)
    doms = ["ore", "cap"]
    fa, fb = (d["fraction"].sel(domain=doms).values for d in (da, db))
    ga, gb = (d["au"].sel(domain=doms).values for d in (da, db))
    ca, cb = (d["class"].sel(domain=doms).values.astype(str) for d in (da, db))
    inside = (fa > 0) | (fb > 0)
    changed = inside & ((fa != fb) | ~_same(ga, gb) | (ca != cb))
    assert 0 < changed.sum() < inside.sum()
    dom, k, j, i = np.nonzero(changed)
    expected = {(doms[d], int(ii), int(jj), int(kk))
                for d, kk, jj, ii in zip(dom, k, j, i, strict=True)}  # fmt: skip
    table = pd.read_csv(folder / "diff" / "diff.csv", keep_default_na=False,
                        na_values={c: [""] for c in ("au_before", "au_after", "au_change")})
    got = set(zip(table["domain"], table["i"], table["j"], table["k"], strict=True))
    assert got == expected and len(table) == len(expected)
    assert result.counts["changed"] == len(expected)
    assert result.counts["blocks_compared"] == int(inside.sum())
    for name, d in zip(doms, range(2), strict=True):
        assert result.counts["by_domain"][name]["changed"] == int(changed[d].sum())
    # values before and after, world coordinates of the rotated grid, class labels
    t = table.set_index(["domain", "k", "j", "i"])
    for d, kk, jj, ii in list(zip(dom, k, j, i, strict=True))[::7]:
        row = t.loc[(doms[d], kk, jj, ii)]
        assert _same(row["au_before"], ga[d, kk, jj, ii]) and _same(row["au_after"],
                                                                    gb[d, kk, jj, ii])
        assert row["x"] == pytest.approx(float(db["x_world"].values[jj, ii]), abs=1e-9)
        assert row["y"] == pytest.approx(float(db["y_world"].values[jj, ii]), abs=1e-9)
        assert row["z"] == float(db["z"].values[kk])
        assert row["class_before"] == ca[d, kk, jj, ii] and row["class_after"] == cb[d, kk, jj, ii]
        assert row["fraction_after"] == fb[d, kk, jj, ii]
    # the change carries no floating-point noise: at most 15 significant digits
    both = table.dropna(subset=["au_before", "au_after"])
    diff = both["au_after"] - both["au_before"]
    scale = np.maximum(both["au_after"].abs(), both["au_before"].abs())
    assert np.all(np.abs(both["au_change"] - diff) <= 1e-14 * scale)
    text = (folder / "diff" / "diff.csv").read_text().splitlines()
    col = text[0].split(",").index("au_change")
    for line in text[1:]:
        value = line.split(",")[col]
        if value:
            digits = value.lstrip("-").replace(".", "").split("e")[0].lstrip("0")
            assert len(digits) <= 15, value


def test_noise_is_dropped_but_not_the_digits_the_values_carry():
    assert drop_noise(np.array([1.4 - 1.1]), np.array([1.4]))[0] == 0.3
    a, b = 1.2345678901234567, 1.2345678901234
    assert drop_noise(np.array([a - b]), np.array([a]))[0] == pytest.approx(a - b, rel=1e-2)
    assert np.isnan(drop_noise(np.array([np.nan]), np.array([1.0]))[0])


def test_tonnages_before_and_after_are_each_runs_own_report(runs):
    _, a, b, result = runs
    summary = result.summary
    keys = ["domain", "class", "cutoff"]
    for run, when in ((a, "before"), (b, "after")):
        own = pd.read_csv(run / "grade_tonnage.csv", keep_default_na=False,
                          na_values={"grade": [""]})  # fmt: skip
        merged = own.merge(summary, on=keys, how="outer", validate="one_to_one")
        assert len(merged) == len(own) == len(summary)
        for col in ("tonnes", "grade", "metal"):
            np.testing.assert_allclose(merged[f"{col}_{when}"], merged[col], rtol=1e-12)
    change = summary["metal_after"] - summary["metal_before"]
    np.testing.assert_allclose(summary["metal_change"], change, rtol=1e-12, atol=1e-9)
    assert {"total"} <= set(summary["domain"]) and set(summary["cutoff"]) == {0.0, 1.0}
    assert (summary["metal_unit"] == "oz").all()


def test_class_migration_sums_to_each_runs_class_tonnes(runs):
    _, a, b, result = runs
    mig = result.migration
    mig = mig[mig["domain"] != "total"]
    for run, side in ((a, "class_before"), (b, "class_after")):
        ds = _model(run)
        tonnes = _tonnes(ds)
        labels = ds["class"].sel(domain=["ore", "cap"]).values.astype(str)
        est = np.isfinite(ds["au"].sel(domain=["ore", "cap"]).values)
        for d, dom in enumerate(["ore", "cap"]):
            sums = mig[mig["domain"] == dom].groupby(side)["tonnes"].sum()
            for name in ("indicated", "inferred"):
                want = tonnes[d][(labels[d] == name) & est[d]].sum()
                assert sums.get(name, 0.0) == pytest.approx(want, rel=1e-12)
            want = tonnes[d][(labels[d] == "") & est[d]].sum()
            assert sums.get("unclassified", 0.0) == pytest.approx(want, rel=1e-12, abs=1e-9)
            want = tonnes[d][~est[d]].sum()
            assert sums.get("not estimated", 0.0) == pytest.approx(want, rel=1e-12, abs=1e-9)
    assert ((mig["class_before"] == "inferred") & (mig["class_after"] == "indicated")).any()


def _metal(ds):
    g = ds["au"].sel(domain=["ore", "cap"]).values
    return np.where(np.isfinite(g), _tonnes(ds) * g * GRADE_FACTOR, 0.0), g


def test_the_hole_attribution_sums_to_the_metal_change_and_follows_the_weights(runs):
    """A second implementation: every changed block re-kriged from all of B's samples, the new
    composites found by comparing rows, each block's grade change split by weight."""
    from estimator.estimation import _hole_codes, grid_from_config, search_passes
    from estimator.kriging.estimate import estimate_blocks
    from estimator.pipeline import load

    folder, a, b, result = runs
    da, db = _model(a), _model(b)
    (ma, ga), (mb, gb) = _metal(da), _metal(db)
    holes = result.holes
    total = float(np.sum(mb - ma))
    assert holes["metal_change"].sum() == pytest.approx(total, rel=1e-9)
    assert json.loads((folder / "diff" / "diff.json").read_text())["metal_change"]["au"] == (
        pytest.approx(total, rel=1e-12))  # fmt: skip

    meta = json.loads((b / "run.json").read_text())
    cfg = parse_config(meta["config"], check_files=False)
    ca = load("composites", [], a)
    cb = load("composites", [], b)
    cols = ["hole_id", "from", "to", "domain", "x", "y", "z", "au"]
    old = set(map(tuple, ca[cols].to_numpy().tolist()))
    new = np.array([tuple(r) not in old for r in cb[cols].to_numpy().tolist()])
    assert set(cb["hole_id"][new]) == {*NEW_NEAR, EXTENDED, FAR}
    models = load("models", list(meta["outputs"]), b)
    grid = grid_from_config(cfg)
    offsets = grid.discretisation_offsets(cfg.estimation.discretisation)
    codes = _hole_codes(cb)
    tb = _tonnes(db)
    expected: dict[str, float] = {}
    other = float(np.sum(mb - ma))
    rekriged = 0
    for d, dom in enumerate(["ore", "cap"]):
        todo = np.isfinite(gb[d]) & ~_same(ga[d], gb[d])
        k, j, i = np.nonzero(todo)
        rows = np.flatnonzero((cb["domain"] == dom).to_numpy() & np.isfinite(cb["au"]))
        res = estimate_blocks(
            grid.block_centres(k, j, i), offsets, cb[["x", "y", "z"]].to_numpy()[rows],
            cb["au"].to_numpy()[rows], codes[rows], models[dom]["au"], search_passes(cfg),
            return_weights=True,
        )  # fmt: skip
        np.testing.assert_array_equal(res["estimate"], gb[d][todo])  # re-kriged = stored
        rekriged += todo.sum()
        before = np.where(np.isfinite(ga[d][todo]), ga[d][todo], 0.0)
        part = tb[d][todo] * (gb[d][todo] - before) * GRADE_FACTOR
        for n in range(len(k)):
            idx = res["indices"][n]
            w = np.abs(res["weights"][n][idx >= 0])
            comp = rows[idx[idx >= 0]]
            sel = new[comp]
            if not sel.any():
                continue
            other -= part[n]
            for c, weight in zip(comp[sel], w[sel], strict=True):
                hole = cb["hole_id"].iloc[c]
                expected[hole] = expected.get(hole, 0.0) + part[n] * weight / w[sel].sum()
    doc = json.loads((folder / "diff" / "diff.json").read_text())
    assert doc["attribution"] == {"done": True, "blocks_rekriged": int(rekriged)}
    got = holes.set_index("hole_id")["metal_change"]
    for hole, value in expected.items():
        assert got[hole] == pytest.approx(value, rel=1e-9)
    assert got[OTHER] == pytest.approx(other, rel=1e-9, abs=1e-6)
    assert abs(sum(expected.values())) > 1.0
    # the far hole is new, and explains nothing
    far = holes.set_index("hole_id").loc[FAR]
    assert far["status"] == "new" and far["metal_change"] == 0 and far["blocks_influenced"] == 0
    assert holes.set_index("hole_id").loc[EXTENDED, "status"] == "changed"
    # ranked by absolute metal change
    ranked = holes[holes["hole_id"] != OTHER]
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert np.all(np.diff(ranked["metal_change"].abs().to_numpy()) <= 0)
    top = holes[holes["hole_id"] != OTHER].iloc[0]["hole_id"]
    assert top in result.text and "Holes driving the change" in result.text


def test_a_mismatch_between_rekriged_and_stored_estimates_stops_the_attribution(
    runs, tmp_path, monkeypatch
):
    import estimator.kriging.estimate as est

    _, a, b, _ = runs
    real = est.estimate_blocks

    def off(*args, **kwargs):
        res = real(*args, **kwargs)
        res["estimate"] = res["estimate"] + 1e-9
        return res

    monkeypatch.setattr(est, "estimate_blocks", off)
    result = diff_runs(a, b, tmp_path / "diff")
    assert any("re-kriging block" in n and "bug" in n for n in result.notes)
    assert result.holes["metal_change"].isna().all()
    assert json.loads((tmp_path / "diff" / "diff.json").read_text())["attribution"]["done"] is False


def test_the_files_and_the_summary(runs):
    folder, _, _, result = runs
    out = folder / "diff"
    for name in ("diff.csv", "diff_summary.csv", "class_migration.csv",
                 "holes_driving_change.csv", "diff.json", "plots/diff_plan.png",
                 "plots/diff_section.png"):  # fmt: skip
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0
    doc = json.loads((out / "diff.json").read_text())
    assert doc["runs"]["before"]["run_id"] != doc["runs"]["after"]["run_id"]
    after = json.loads((folder / "after" / "run.json").read_text())
    assert doc["runs"]["after"]["blockmodel_sha256"] == after["outputs"]["blockmodel.zarr"]
    assert doc["holes"]["new"] == sorted([*NEW_NEAR, FAR])
    assert doc["holes"]["changed"] == [EXTENDED]
    assert doc["top_holes"][0]["hole_id"] == result.holes.iloc[0]["hole_id"]
    assert "At cut-off 0 g/t (au)" in result.text and "ore" in result.text
    assert not [f for f in out.rglob("*") if f.name.startswith(".")]  # no temporary file left


def test_a_run_compared_with_itself_has_no_change(runs, tmp_path):
    _, _, b, _ = runs
    result = diff_runs(b, b, tmp_path / "same")
    assert result.counts["changed"] == 0 and result.counts["blocks_compared"] > 0
    assert result.changes.empty
    assert pd.read_csv(tmp_path / "same" / "diff.csv").empty
    assert (result.summary[["tonnes_change", "grade_change", "metal_change"]].fillna(0) == 0).all(
        axis=None)  # fmt: skip
    mig = result.migration
    assert (mig["class_before"] == mig["class_after"]).all()
    assert result.holes["hole_id"].tolist() == [OTHER]
    assert result.holes["metal_change"].tolist() == [0.0]


def test_a_change_of_class_rules_alone_changes_classes_and_no_hole_explains_it(runs, tmp_path):
    folder, _, b, _ = runs
    raw = _after(BEFORE)
    raw["classification"]["classes"][0]["min_samples"] = 6
    c = _run(folder, raw, "after-reclassified")
    result = diff_runs(b, c, tmp_path / "diff")
    db, dc = _model(b), _model(c)
    changed = (db["class"].values.astype(str) != dc["class"].values.astype(str))
    assert changed.sum() > 0
    assert result.counts["changed"] == int(changed.sum())
    assert (result.changes["au_change"] == 0).all()
    assert (result.changes["class_before"] != result.changes["class_after"]).all()
    assert result.holes["hole_id"].tolist() == [OTHER]  # the same composites: no hole to blame
    mig = result.migration
    moved = mig[(mig["domain"] != "total") & (mig["class_before"] != mig["class_after"])]
    assert set(moved["class_before"]) == {"inferred"} and set(moved["class_after"]) == {
        "indicated"}  # fmt: skip
    assert (result.summary["metal_change"].fillna(0)[result.summary["class"] == "all"] == 0).all()


def test_without_classification_and_other_cutoffs_before(runs, tmp_path):
    folder, _, b, _ = runs
    raw = json.loads(json.dumps(BEFORE))
    del raw["classification"]
    raw["report"]["cutoffs"] = [0.5, 2.0]
    a = _run(folder, raw, "before-unclassified")
    result = diff_runs(a, b, tmp_path / "diff")
    summary = result.summary
    assert set(summary["cutoff"]) == {0.0, 1.0}  # B's cut-offs
    classed = summary[summary["class"] != "all"]
    assert len(classed) and classed["tonnes_before"].isna().all()
    assert classed["tonnes_after"].notna().all()
    # before: run A's tonnage at B's cut-offs, by hand
    ds = _model(a)
    g = ds["au"].sel(domain=["ore", "cap"]).values
    t = _tonnes(ds)
    for cut in (0.0, 1.0):
        row = summary[(summary["domain"] == "total") & (summary["class"] == "all")
                      & (summary["cutoff"] == cut)].iloc[0]  # fmt: skip
        sel = np.isfinite(g) & (g >= cut) & (t > 0)
        assert row["tonnes_before"] == pytest.approx(t[sel].sum(), rel=1e-12)
        assert row["metal_before"] == pytest.approx((t * g)[sel].sum() * GRADE_FACTOR, rel=1e-12)
    mig = result.migration
    mig = mig[mig["domain"] != "total"]
    est = np.isfinite(g)
    assert mig.loc[mig["class_before"] == "not classified", "tonnes"].sum() == pytest.approx(
        t[est].sum(), rel=1e-12)  # fmt: skip
    assert any("no classification" in n for n in result.notes)


def test_runs_on_other_grids_are_refused(runs, tmp_path):
    _, a, b, _ = runs
    other = tmp_path / "other"
    shutil.copytree(a, other)
    meta = json.loads((other / "run.json").read_text())
    meta["config"]["block_model"]["shape"] = [12, 10, 9]
    meta["config"]["block_model"]["rotation"] = 20.0
    (other / "run.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"block_model\.shape is \[12, 10, 9\] in A and "
                       r"\[12, 10, 8\] in B; block_model\.rotation is 20 in A and 15 in B"):
        diff_runs(other, b, tmp_path / "diff")
    assert not (tmp_path / "diff").exists()


def test_runs_with_other_domains_are_refused(runs, tmp_path):
    _, a, b, _ = runs
    other = tmp_path / "other"
    shutil.copytree(a, other)
    nc = other / "blockmodel.nc"
    with xr.open_dataset(nc) as ds:
        renamed = ds.load().assign_coords(domain=["ore", "roby"])
    nc.unlink()
    renamed.to_netcdf(nc, engine="h5netcdf")
    meta = json.loads((other / "run.json").read_text())
    from estimator.io.output import file_sha256

    meta["outputs"]["blockmodel.nc"] = file_sha256(nc)
    (other / "run.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"the domains differ \(roby only in A; cap only in B\)"):
        diff_runs(other, b, tmp_path / "diff")


def test_a_damaged_run_is_refused(runs, tmp_path):
    _, a, b, _ = runs
    other = tmp_path / "other"
    shutil.copytree(a, other)
    (other / "composites.csv").write_text("hole_id\n")
    with pytest.raises(DataError, match=r"composites\.csv"):
        diff_runs(other, b, tmp_path / "diff")


def test_section_azimuth_reads_west_to_east_or_south_to_north():
    from estimator.diffing_plots import mean_azimuth

    def trace(az):
        a = math.radians(az)
        return np.array([[0, 0, 0], [10 * math.sin(a), 10 * math.cos(a), -10]])

    assert mean_azimuth({"a": trace(100), "b": trace(280)}) == pytest.approx(100)
    north = mean_azimuth({"a": trace(170), "b": trace(190)})
    assert min(north, 360 - north) < 1e-9
    assert mean_azimuth({"a": trace(200)}) == pytest.approx(20)
    assert mean_azimuth({"a": np.array([[0, 0, 0], [0, 0, -10.0]])}) is None
