"""Numbers nobody flagged: negative, out-of-range and ill-conditioned estimates, and the real
reason a block was not estimated, counted in run.json, the data report and the block model;
and a block model that explains itself (units, long names, global attributes, pass codes)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from estimator.cli import main
from estimator.io.output import file_sha256
from estimator.io.wireframe import write_obj
from estimator.kriging.parallel import FLAG_BITS, block_flags
from helpers import box_mesh


def _holes(folder: Path, seed=11, spacing=2.0) -> None:
    rng = np.random.default_rng(seed)
    n_holes, per = 16, 25
    x = np.repeat(rng.uniform(10, 90, n_holes), per)
    y = np.repeat(rng.uniform(10, 90, n_holes), per)
    z = np.tile(-np.arange(per) * spacing - 1.0, n_holes)
    au = np.round(np.exp(rng.normal(0, 0.6, n_holes * per) + 0.002 * x), 4)
    pd.DataFrame(
        {"hole_id": np.repeat([f"D{i:02d}" for i in range(n_holes)], per), "x": x, "y": y,
         "z": z, "au": au}
    ).to_csv(folder / "points.csv", index=False)  # fmt: skip


def _cfg(folder: Path, model: dict, **extra) -> Path:
    cfg = {
        "name": "flags",
        "data": {"samples": "points.csv", "length_unit": "m", "grade_unit": "g/t"},
        "grades": ["au"],
        "variography": {"all": {"au": {"model": model}}},
        "block_model": {"origin": [0, 0, -50], "block_size": [10, 10, 5], "shape": [10, 10, 10]},
        "estimation": {"passes": [{"ranges": [80, 80, 30], "min_samples": 4, "max_samples": 24}]},
        "report": {"cutoffs": [0, 1]},
        "compute": {"scheduler": "synchronous"},
        "output": "run",
    }
    cfg.update(extra)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


GAUSSIAN = {"nugget": 0.0, "structures": [{"type": "gaussian", "sill": 1.0, "ranges": [120, 120, 60]}]}
SPHERICAL = {"nugget": 0.1, "structures": [{"type": "spherical", "sill": 0.4, "ranges": [80, 80, 40]}]}


def test_gaussian_without_nugget_is_flagged_everywhere(tmp_path, capsys):
    _holes(tmp_path)
    assert main(["run", str(_cfg(tmp_path, GAUSSIAN))]) == 0
    err = capsys.readouterr().err
    assert "gaussian structure with no nugget" in err  # warned at load
    assert "ill-conditioned" in err  # and counted on the terminal
    run = tmp_path / "run"
    meta = json.loads((run / "run.json").read_text())
    flags = meta["counts"]["flags"]["all"]["au"]
    with xr.open_dataset(run / "blockmodel.nc", engine="h5netcdf") as ds:
        flag = ds["au_flag"].values[0]
        est = ds["au"].values[0]
    for name, bit in FLAG_BITS.items():
        assert flags[name] == int(np.count_nonzero(flag & bit)), name
    assert flags["ill_conditioned"] > 0
    assert flags["negative"] == int((est < 0).sum()) > 0
    report = pd.read_csv(run / "data_report.csv")
    codes = set(report["code"])
    assert {"ill_conditioned_system", "negative_estimate"} <= codes
    row = report[report["code"] == "ill_conditioned_system"].iloc[0]
    assert "gaussian" in row["what"] and "nugget" in row["what"]
    assert any("ill-conditioned" in w for w in meta["warnings"])


def test_spherical_with_nugget_has_no_conditioning_flag(tmp_path):
    _holes(tmp_path)
    assert main(["run", str(_cfg(tmp_path, SPHERICAL)), "--quiet"]) == 0
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    flags = meta["counts"]["flags"]["all"]["au"]
    assert flags["ill_conditioned"] == 0


def test_the_data_report_names_why_blocks_were_not_estimated(tmp_path):
    _holes(tmp_path)
    pts = pd.read_csv(tmp_path / "points.csv")
    # two samples 1e-12 m apart: distinct rows, but one point for the covariance (coincident
    # within 1e-10), so without nugget the systems that hold both are singular
    twin = pts.iloc[[0]].assign(hole_id="TWIN", x=pts["x"].iloc[0] + 1e-12)
    pd.concat([pts, twin]).to_csv(tmp_path / "points.csv", index=False, float_format="%.15f")
    model = {"nugget": 0.0, "structures": [{"type": "spherical", "sill": 1.0,
                                            "ranges": [80, 80, 40]}]}  # fmt: skip
    cfg = _cfg(tmp_path, model, estimation={"passes": [
        {"ranges": [40, 40, 15], "min_samples": 6, "max_samples": 24}]})  # fmt: skip
    assert main(["run", str(cfg), "--quiet"]) == 0
    run = tmp_path / "run"
    report = pd.read_csv(run / "data_report.csv")
    meta = json.loads((run / "run.json").read_text())
    flags = meta["counts"]["flags"]["all"]["au"]
    assert flags["singular"] > 0 and flags["too_few"] > 0
    singular = report[report["code"] == "unestimated_singular_system"]
    too_few = report[report["code"] == "unestimated_too_few_samples"]
    assert f"{flags['singular']} blocks" in singular["what"].iloc[0]
    assert f"{flags['too_few']} blocks" in too_few["what"].iloc[0]
    assert meta["counts"]["failures"]["all"]["au"] == {
        "singular": flags["singular"],
        "too_few": flags["too_few"],
    }


def test_block_flags_bits():
    res = {
        "estimate": np.array([-1.0, 5.0, 0.5, 2.0, np.nan, np.nan, 2.0]),
        "status": np.array([0, 0, 0, 0, 1, 2, 0]),
        "min_pivot": np.array([0.5, 0.5, 0.5, 1e-7, 1e-13, np.nan, np.nan]),
    }
    flags = block_flags(res, (1.0, 4.0), 1e-5)
    assert flags.tolist() == [1, 2, 4, 8, 16, 32, 0]
    assert flags.dtype == np.uint8


def _box_obj(path: Path, lo, hi) -> None:
    write_obj(path, *box_mesh(lo, hi))


def test_block_model_explains_itself(tmp_path):
    _holes(tmp_path)
    _box_obj(tmp_path / "ore.obj", (0, 0, -40), (60, 100, 0))
    cfg = _cfg(
        tmp_path,
        SPHERICAL,
        domains=[{"name": "ore", "wireframe": "ore.obj", "density": 2.7}],
        variography={"ore": {"au": {"model": SPHERICAL}}},
        estimation={"passes": [{"ranges": [30, 30, 10], "min_samples": 4, "max_samples": 12}]},
    )
    assert main(["run", str(cfg), "--quiet"]) == 0
    with xr.open_dataset(tmp_path / "run" / "blockmodel.nc", engine="h5netcdf") as ds:
        assert ds["au"].attrs["units"] == "g/t"
        assert "ordinary kriging" in ds["au"].attrs["long_name"]
        assert ds["au_kv"].attrs["units"] == "(g/t)^2"
        assert ds["au_dist"].attrs["units"] == "m"
        assert ds["au_slope"].attrs["units"] == "1"
        for c in ("x", "y", "z"):
            assert ds[c].attrs["units"] == "m"
        for name in ds.data_vars:
            assert "long_name" in ds[name].attrs, name
        assert ds["au_flag"].attrs["flag_meanings"].split() == list(FLAG_BITS)
        assert "density" not in ds  # a constant per domain: the report takes it from the config
        assert ds.attrs["run_name"] == "flags"
        assert ds.attrs["config_sha256"] == file_sha256(cfg)
        assert ds.attrs["estimator_version"]
        assert ds.attrs["created"]
        assert ds.attrs["Conventions"].startswith("CF-")
        frac = ds["fraction"].values[0]
        p = ds["au_pass"].values[0]
        est = ds["au"].values[0]
    # pass -1 outside the domain, 0 inside but not estimated, k the pass
    assert (p[frac == 0] == -1).all()
    assert (p[frac > 0] >= 0).all()
    assert ((p == 0) == ((frac > 0) & np.isnan(est))).all()
    assert (p == 0).any() and (p == 1).any()


def test_distance_is_in_data_units(tmp_path):
    """One sample straight above a point block: the mean distance is that height in metres."""
    pd.DataFrame({"x": [5.0], "y": [5.0], "z": [12.0], "au": [1.0]}).to_csv(
        tmp_path / "points.csv", index=False
    )
    cfg = _cfg(
        tmp_path, SPHERICAL,
        block_model={"origin": [0, 0, 0], "block_size": [10, 10, 4], "shape": [1, 1, 1]},
        estimation={"discretisation": [1, 1, 1], "passes": [
            {"ranges": [50, 50, 20], "min_samples": 1, "max_samples": 4}]},
    )  # fmt: skip
    assert main(["run", str(cfg), "--quiet"]) == 0
    with xr.open_dataset(tmp_path / "run" / "blockmodel.nc", engine="h5netcdf") as ds:
        dist = float(ds["au_dist"].values.ravel()[0])
    # 10 m above the block centre along the minor (vertical) axis: 10 / 20 of the ellipsoid,
    # which along the major axis is 0.5 x 50 m = 25 m
    assert dist == pytest.approx(25.0, rel=1e-12)
