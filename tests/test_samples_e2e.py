"""End-to-end runs on positioned samples (SPEC section 2 "samples"): Meuse, GSLIB cluster.dat and
a points CSV with hole ids, through ``estimator run``, not only ``check``."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from estimator.cli import main

DATA = Path(__file__).resolve().parent / "data"


def _write(tmp_path, cfg) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_meuse_block_kriging_equals_gstat(tmp_path):
    """gstat's own regression test (tests/blockkr.R, blockkr.Rout.save in r-spatial/gstat):

    krige(zinc ~ 1, meuse, new.locs, vgm(1.34e5, "Sph", 800, nug = 2.42e4), block = c(40, 40),
          nmax = 40, set = list(nblockdiscr = 4))
    -> (181170, 333250): var1.pred 268.7324, var1.var 19568.76

    A 40 x 40 block discretised 4 x 4 has the offsets -15, -5, 5, 15 of that test, and gstat's
    block variance leaves the nugget out for distinct discretisation points, as SPEC section 6.
    """
    cfg = {
        "name": "meuse",
        "data": {"samples": str(DATA / "meuse" / "meuse.csv"), "length_unit": "m",
                 "grade_unit": "ppm"},
        "grades": ["zinc"],
        "variography": {"all": {"zinc": {"model": {"nugget": 24200, "structures": [
            {"type": "spherical", "sill": 134000, "ranges": [800, 800, 800]}]}}}},
        # block centre at (181170, 333250), z = 0 (the data are 2-D: z is 0)
        "block_model": {"origin": [181150, 333230, -0.5], "block_size": [40, 40, 1],
                        "shape": [1, 1, 1]},
        "estimation": {"method": "ok", "discretisation": [4, 4, 1],
                       "passes": [{"ranges": [1e5, 1e5, 1e5], "min_samples": 1,
                                   "max_samples": 40}]},
        "report": {"cutoffs": [0]},
        "output": str(tmp_path / "run"),
    }  # fmt: skip
    assert main(["run", str(_write(tmp_path, cfg)), "--quiet"]) == 0
    with xr.open_dataset(tmp_path / "run" / "blockmodel.nc", engine="h5netcdf") as ds:
        est = float(ds["zinc"].values.ravel()[0])
        kv = float(ds["zinc_kv"].values.ravel()[0])
        n = int(ds["zinc_n"].values.ravel()[0])
    assert n == 40
    assert est == pytest.approx(268.7324, abs=5e-5)
    assert kv == pytest.approx(19568.76, abs=5e-3)


def test_gslib_cluster_dat_runs_end_to_end(tmp_path):
    cfg = {
        "name": "cluster",
        "data": {"samples": str(DATA / "gslib" / "cluster.dat")},
        "grades": ["primary"],
        "variography": {"all": {"primary": {"model": {"nugget": 10.0, "structures": [
            {"type": "spherical", "sill": 40.0, "ranges": [15, 15, 15]}]}}}},
        "block_model": {"origin": [0, 0, -0.5], "block_size": [5, 5, 1], "shape": [10, 10, 1]},
        "estimation": {"method": "ok", "discretisation": [2, 2, 1],
                       "passes": [{"ranges": [25, 25, 10], "min_samples": 2,
                                   "max_samples": 16}]},
        "report": {"cutoffs": [0, 1, 2]},
        "output": str(tmp_path / "run"),
    }  # fmt: skip
    assert main(["run", str(_write(tmp_path, cfg)), "--quiet"]) == 0
    out = tmp_path / "run"
    comps = pd.read_csv(out / "composites.csv")
    assert len(comps) == 140
    with xr.open_dataset(out / "blockmodel.nc", engine="h5netcdf") as ds:
        est = ds["primary"].values.ravel()
    assert np.isfinite(est).sum() > 50
    # ordinary-kriging estimates are weighted means: inside the data's range here
    values = comps["primary"].to_numpy()
    ok = np.isfinite(est)
    assert est[ok].min() >= values.min() - 1.0 and est[ok].max() <= values.max()
    gt = pd.read_csv(out / "grade_tonnage.csv")
    assert (gt["tonnes"] > 0).any()
    meta = json.loads((out / "run.json").read_text())
    assert meta["finished_stage"] == "report"


def test_points_csv_with_hole_ids_runs_and_reports_coincident(tmp_path):
    rng = np.random.default_rng(7)
    n = 200
    holes = np.repeat([f"H{i:02d}" for i in range(20)], 10)
    x = np.repeat(rng.uniform(0, 100, 20), 10)
    y = np.repeat(rng.uniform(0, 100, 20), 10)
    z = np.tile(-np.arange(10) * 2.0 - 1.0, 20)
    au = np.round(rng.lognormal(0, 0.5, n), 3)
    pts = pd.DataFrame({"BHID": holes, "X": x, "Y": y, "Z": z, "AU": au})
    # a twinned sample: same place, another hole, later in the file
    twin = pts.iloc[[5]].assign(BHID="H99", AU=9.0)
    pts = pd.concat([pts, twin], ignore_index=True)
    pts.to_csv(tmp_path / "points.csv", index=False)
    cfg = {
        "name": "points",
        "data": {"samples": "points.csv", "length_unit": "m", "grade_unit": "g/t"},
        "grades": ["au"],
        "variography": {"all": {"au": {"model": {"nugget": 0.05, "structures": [
            {"type": "spherical", "sill": 0.2, "ranges": [60, 60, 20]}]}}}},
        "block_model": {"origin": [0, 0, -20], "block_size": [10, 10, 5], "shape": [10, 10, 4]},
        "estimation": {"passes": [{"ranges": [60, 60, 20], "min_samples": 2, "max_samples": 12,
                                   "max_per_hole": 3}]},
        "output": "run",
    }  # fmt: skip
    assert main(["run", str(_write(tmp_path, cfg)), "--quiet"]) == 0
    out = tmp_path / "run"
    comps = pd.read_csv(out / "composites.csv")
    assert len(comps) == n  # the twin is left out
    assert "H99" not in set(comps["hole_id"])
    report = pd.read_csv(out / "data_report.csv", dtype={"line": "Int64"})
    row = report[report["code"] == "coincident_sample"]
    assert len(row) == 1
    assert row["line"].iloc[0] == n + 2  # header is line 1, the twin is the last row
    assert row["hole"].iloc[0] == "H99"
    assert "line 7" in row["action"].iloc[0]  # the kept sample: row 5 -> line 7
    with xr.open_dataset(out / "blockmodel.nc", engine="h5netcdf") as ds:
        assert np.isfinite(ds["au"].values).sum() > 100


def test_points_with_logged_zones_and_a_block_rule(tmp_path):
    """Positioned samples carry a logged zone code (column ZONE); domains without a wireframe
    take their samples by code and their blocks by the nearest-sample rule."""
    rng = np.random.default_rng(3)
    n = 400
    x, y = rng.uniform(0, 100, n), rng.uniform(0, 100, n)
    zone = np.where(x < 50, "OX", np.where(y < 50, "SU", "WASTE"))
    pts = pd.DataFrame({"X": x, "Y": y, "Z": 0.0, "ZONE": zone, "CU": rng.lognormal(0, 0.4, n)})
    pts.to_csv(tmp_path / "points.csv", index=False)
    model = {"nugget": 0.05, "structures": [{"type": "spherical", "sill": 0.2,
                                             "ranges": [40, 40, 40]}]}  # fmt: skip
    cfg = {
        "name": "zones",
        "data": {"samples": "points.csv", "length_unit": "m", "grade_unit": "%"},
        "grades": ["cu"],
        "domains": [
            {"name": "ox", "zone_code": "OX", "density": 2.5,
             "blocks": {"rule": "nearest_sample", "max_distance": 10}},
            {"name": "su", "zone_code": "SU", "density": 2.8,
             "blocks": {"rule": "nearest_sample", "max_distance": 10}},
        ],
        "variography": {"ox": {"cu": {"model": model}}, "su": {"cu": {"model": model}}},
        "block_model": {"origin": [0, 0, -0.5], "block_size": [5, 5, 1], "shape": [20, 20, 1],
                        "subcells": [2, 2, 1]},
        "estimation": {"passes": [{"ranges": [40, 40, 40], "min_samples": 3, "max_samples": 12}]},
        "output": "run",
    }  # fmt: skip
    assert main(["run", str(_write(tmp_path, cfg)), "--quiet"]) == 0
    comps = pd.read_csv(tmp_path / "run" / "composites.csv")
    assert set(comps["domain"]) == {"ox", "su"}
    assert (comps["domain"] == "ox").sum() == (zone == "OX").sum()
    report = pd.read_csv(tmp_path / "run" / "data_report.csv")
    assert "zone_code_unmapped" in set(report["code"])  # WASTE
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    vol = meta["counts"]["volume_by_domain"]
    # half the area is OX (x < 50) and a quarter SU: blocks follow the nearest sample's zone
    assert vol["ox"] == pytest.approx(0.5 * 100 * 100, rel=0.1)
    assert vol["su"] == pytest.approx(0.25 * 100 * 100, rel=0.15)


def test_walker_lake_gslib_file_as_a_new_user_writes_it(tmp_path):
    """GSLIB names columns in words ("Xlocation in meter", "V variable, concentration in ppm"):
    the first word finds them; U's 1e31 is GSLIB's missing-value code, not a grade."""
    cfg = {
        "name": "walker",
        "data": {"samples": str(DATA / "walker-lake" / "walker.dat"), "length_unit": "m",
                 "grade_unit": "ppm"},
        "grades": ["v", "u"],
        "block_model": {"origin": [0, 0, -0.5], "block_size": [10, 10, 1], "shape": [26, 30, 1]},
        "estimation": {"passes": [{"ranges": [100, 100, 10], "min_samples": 1,
                                   "max_samples": 16}]},
        "output": str(tmp_path / "run"),
    }  # fmt: skip
    assert main(["run", str(_write(tmp_path, cfg)), "--quiet"]) == 0
    comps = pd.read_csv(tmp_path / "run" / "composites.csv")
    assert len(comps) == 470
    assert comps["u"].isna().sum() == 195 and comps["u"].max() < 1e5
    report = pd.read_csv(tmp_path / "run" / "data_report.csv")
    row = report[report["code"] == "gslib_missing_code"]
    assert len(row) == 1 and "195 values of u" in row["what"].iloc[0]
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert not any("minor" in w for w in meta["warnings"])  # 2-D data: nothing to say
