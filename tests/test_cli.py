"""End-to-end: the console commands on the bundled demo and the real Babbitt data."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from estimator.cli import main
from estimator.demo import make_demo

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo" / "demo.yaml"
BABBITT = ROOT / "configs" / "babbitt.yaml"


def test_check_demo_reports_every_seeded_error(tmp_path, capsys):
    assert main(["check", str(DEMO), "--out", str(tmp_path)]) == 0
    report = pd.read_csv(tmp_path / "data_report.csv", dtype={"line": "Int64"})
    for err in make_demo().errors:
        rows = report[(report["file"] == err.file) & (report["code"] == err.code)]
        if err.code == "no_collar":
            # one line per hole and file, with the row count
            assert (rows["hole"] == err.hole).any(), err
        else:
            assert ((rows["line"] == err.line) & (rows["hole"] == err.hole)).any(), err
    out = capsys.readouterr().out
    assert "Config" in out
    assert "Data report:" in out


def test_run_until_composites_demo(tmp_path):
    assert main(["run", str(DEMO), "--until", "composites", "--out", str(tmp_path), "--quiet"]) == 0
    comps = pd.read_csv(tmp_path / "composites.csv")
    assert list(comps.columns[:9]) == [
        "hole_id",
        "from",
        "to",
        "length",
        "x",
        "y",
        "z",
        "domain",
        "tranche",
    ]
    assert set(comps["domain"]) <= {"offset", "cowboy", "outlaw", "sheriff", "roby"}
    assert set(comps["tranche"]) == {"2011-06-28", "2011-09-14"}
    # composites never cross a domain boundary and are 2 m (merged residuals up to < 3 m)
    assert comps["length"].max() < 3.0
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["finished_stage"] == "composites"
    assert meta["counts"]["composites"] == len(comps)
    assert (
        len(meta["inputs"]) == 1 + 2 + 3 + 5
    )  # config, collars/surveys/zones, 2 assay files, 5 wireframes


@pytest.mark.slow
def test_babbitt_full_run(tmp_path):
    assert main(["run", str(BABBITT), "--out", str(tmp_path), "--quiet"]) == 0
    report = pd.read_csv(tmp_path / "data_report.csv")
    assert (report["code"] == "wireframe_open_body").sum() == 3  # Mpz.stl's three slivers
    assert (report["code"] == "wireframe_hole_filled").sum() == 1  # and one missing triangle
    assert (report["code"] == "survey_past_end_of_hole").sum() == 70
    # B1-100A/B and B1-184/B are the same holes twice: the second is reported, not kriged twice
    coincident = report[report["code"] == "coincident_composite"]
    assert set(coincident["hole"]) == {"B1-100B", "B1-184B"}
    comps = pd.read_csv(tmp_path / "composites.csv")
    assert set(comps["domain"]) == {"mpz"}
    # 10 ft composites in feet: nothing converted to metres
    assert comps["length"].median() == 10.0
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["counts"]["failures"]["mpz"]["cu"]["singular"] == 0
    # tonnage at cut-off 0 by hand from the block model: fraction x volume x density
    import xarray as xr

    with xr.open_dataset(tmp_path / "blockmodel.nc") as ds:
        est = ds["cu"].values[0]
        frac = ds["fraction"].values[0]
        ok = np.isfinite(est) & (
            est >= 0.0
        )  # SPEC: blocks at or above the cut-off (OK can go negative)
        tonnes = float((frac[ok] * 100.0 * 100.0 * 50.0 * 0.0793).sum())
        grade = float((frac[ok] * est[ok]).sum() / frac[ok].sum())
        # nearly every block inside the wireframe is estimated (142 of ~48,000 blocks at the far
        # edges of Mpz.stl have too few composites within both passes)
        assert np.isfinite(est).sum() >= 0.99 * (frac > 0).sum()
    gt = pd.read_csv(tmp_path / "grade_tonnage.csv")
    row = gt[(gt["domain"] == "mpz") & (gt["cutoff"] == 0.0) & (gt["class"] == "all")].iloc[0]
    np.testing.assert_allclose(row["tonnes"], tonnes, rtol=1e-12)
    np.testing.assert_allclose(row["grade"], grade, rtol=1e-12)


def test_bad_config_exits_2_with_key_path(tmp_path, capsys):
    raw = yaml.safe_load(DEMO.read_text())
    raw["estimation"]["passes"][0]["max_samples"] = 4
    raw["data"]["collars"] = "nowhere.csv"
    for p in DEMO.parent.iterdir():
        if p.is_file():  # not the runs/ folder the README's demo command writes
            shutil.copy(p, tmp_path / p.name)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert main(["check", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "data.collars: file not found" in err
    assert "estimation.passes[0]: min_samples (8) must not exceed max_samples (4)" in err


def test_missing_column_exits_2_naming_the_file(tmp_path, capsys):
    for p in DEMO.parent.iterdir():
        if p.is_file():
            shutil.copy(p, tmp_path / p.name)
    collars = pd.read_csv(tmp_path / "collars.csv").rename(columns={"hole_id": "ddh_name"})
    collars.to_csv(tmp_path / "collars.csv", index=False)
    assert main(["check", str(tmp_path / "demo.yaml"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "collars.csv" in err
    assert "hole_id" in err


def test_intercepts_demo_reads_like_a_release(tmp_path, capsys):
    assert main(["intercepts", str(DEMO), "--out", str(tmp_path), "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "intercepts.csv")
    assert list(table.columns) == ["hole_id", "from", "to", "length", "grade", "zone", "kind"]
    offset = table[(table["zone"] == "offset") & (table["kind"] == "interval")]
    # the seed release: tens of metres at 4-6 g/t Pd in the Offset Zone, richer "including" runs
    assert 20.0 <= offset["length"].median() <= 60.0
    assert 4.0 <= offset["grade"].median() <= 6.0
    including = table[(table["zone"] == "offset") & (table["kind"] == "including")]
    assert (including["grade"] >= 5.0).all()
    assert (including["length"] >= 2.0).all()  # intercepts.including_min_length of the demo
    out = capsys.readouterr().out
    assert "Including" in out
    assert "Offset Zone" in out


def test_fitted_variograms_paste_back_into_the_config(tmp_path):
    """Without an explicit model the stage fits one; variograms.yaml pastes back as config."""
    for p in DEMO.parent.iterdir():
        if p.is_file():
            shutil.copy(p, tmp_path / p.name)
    raw = yaml.safe_load(DEMO.read_text())
    del raw["variography"]["outlaw"]  # fit this one
    cfg_path = tmp_path / "fit.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["run", str(cfg_path), "--until", "variograms", "--out", str(out), "--quiet"]) == 0
    fitted = yaml.safe_load((out / "variograms.yaml").read_text())
    assert set(fitted) == {"offset", "cowboy", "outlaw", "sheriff", "roby"}
    # explicit models are written back unchanged
    assert fitted["offset"]["pd"]["model"] == raw["variography"]["offset"]["pd"]["model"]
    model = fitted["outlaw"]["pd"]["model"]
    assert model["nugget"] >= 0
    assert 1 <= len(model["structures"]) <= 3
    assert (out / "plots" / "variogram_outlaw_pd.png").is_file()
    table = pd.read_csv(out / "variograms_experimental.csv")
    assert set(table[table["domain"] == "outlaw"]["source"]) == {"fitted"}
    # explicit models get no experimental variograms or plots unless experimental.plot asks
    assert set(table["domain"]) == {"outlaw"}
    assert not (out / "plots" / "variogram_offset_pd.png").exists()
    # rounded as a geologist writes it: 4 significant digits, angles to 0.1 degree
    assert all(len(f"{s['sill']:.10g}".replace(".", "").lstrip("0")) <= 4 for s in model["structures"])
    # paste the whole file back: the same models, now explicit, are used and written again
    raw["variography"] = fitted
    cfg_path.write_text(yaml.safe_dump(raw))
    again = tmp_path / "again"
    assert main(["run", str(cfg_path), "--until", "variograms", "--out", str(again), "--quiet"]) == 0
    assert yaml.safe_load((again / "variograms.yaml").read_text()) == fitted
    assert not (again / "variograms_experimental.csv").exists()
