"""``estimator update``: reuse what a new tranche cannot change, equal a full run bit for bit,
and never trust a previous run that is missing, damaged or foreign."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from estimator.cli import main
from test_stages import BASE, _data


def _write(folder: Path, raw: dict, name: str) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def tranches(tmp_path):
    """The test_stages data: ``first.yaml`` (tranche t1) and ``both.yaml`` (t1 then t2)."""
    _data(tmp_path)
    both = yaml.safe_load(yaml.safe_dump(BASE))
    first = yaml.safe_load(yaml.safe_dump(BASE))
    first["data"]["assays"] = first["data"]["assays"][:1]
    first["intercepts"] = both["intercepts"] = {"cutoff": 1.0, "min_length": 2.0}
    return _write(tmp_path, first, "first.yaml"), _write(tmp_path, both, "both.yaml")


def _values(run: Path) -> dict:
    with xr.open_dataset(run / "blockmodel.nc") as ds:
        return {name: ds[name].values.copy() for name in ds.data_vars}


def _same_model(a: Path, b: Path) -> None:
    va, vb = _values(a), _values(b)
    assert set(va) == set(vb)
    for name in va:
        np.testing.assert_array_equal(va[name], vb[name], err_msg=name)


def test_update_after_a_new_tranche_equals_a_full_run(tranches, tmp_path):
    first, both = tranches
    assert main(["run", str(first), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert main(["update", str(both), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert main(["run", str(both), "--out", str(tmp_path / "full"), "--quiet"]) == 0
    _same_model(tmp_path / "run", tmp_path / "full")
    for name in ("composites.csv", "grade_tonnage.csv", "variograms.yaml"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["update"]["previous_usable"] is True
    assert meta["update"]["newest_tranche"] == "t2"
    assert [t["name"] for t in meta["tranches"]] == ["t1", "t2"]
    assert all(f in meta["inputs"] for f in (t["file"] for t in meta["tranches"]))
    assert meta["update"]["previous_run_json_sha256"]
    # provenance per block: the newest tranche's samples and their share of the weight
    with xr.open_dataset(tmp_path / "run" / "blockmodel.nc") as ds:
        latest = ds["au_latest_tranche"].values
        n_new = ds["au_newest_n"].values
        w_new = ds["au_newest_weight"].values
        n_all = ds["au_n"].values
        assert ds["au_latest_tranche"].attrs["tranche_names"] == ["t1", "t2"]
    estimated = n_all > 0
    assert np.all((n_new <= n_all)[estimated])
    assert np.all((latest == 2) == (n_new > 0))  # a block uses t2 samples iff its latest is t2
    assert np.all(w_new[(n_new == 0) & estimated] == 0)
    assert np.any(n_new > 0) and np.any(estimated & (n_new == 0))
    # the previous run is kept whole, and the release lists the new tranche's holes
    assert (tmp_path / "run" / "previous" / "run.json").is_file()
    assert (tmp_path / "run" / "release" / "intercepts.csv").is_file()
    assert "release/intercepts.csv" in meta["outputs"]
    # the folder still verifies: report accepts it
    assert main(["report", str(tmp_path / "run"), "--quiet"]) == 0
    # a diff asked into the update's own diff/ (or into the run folder) is refused
    run = tmp_path / "run"
    for out in (run / "diff", run):
        assert main(["diff", str(run / "previous"), str(run), "--out", str(out), "--quiet"]) == 2
    assert main(["report", str(run), "--quiet"]) == 0  # still intact


def test_update_of_an_unchanged_config_recomputes_nothing(tranches, tmp_path):
    _, both = tranches
    assert main(["run", str(both), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert main(["update", str(both), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert {s["status"] for s in meta["stages"].values()} == {"reused"}


@pytest.mark.parametrize("damage", ["missing", "truncated_blockmodel", "foreign_run_json"])
def test_a_bad_previous_run_gives_a_full_run_never_wrong_numbers(tranches, tmp_path, capsys,
                                                                 damage):  # fmt: skip
    first, both = tranches
    run = tmp_path / "run"
    assert main(["run", str(first), "--out", str(run), "--quiet"]) == 0
    if damage == "missing":
        shutil.rmtree(run)
    elif damage == "truncated_blockmodel":
        bm = run / "blockmodel.nc"
        bm.write_bytes(bm.read_bytes()[:5000])
    else:
        meta = json.loads((run / "run.json").read_text())
        meta["stages"]["estimate"]["input_hash"] = "0" * 64
        meta["outputs"]["blockmodel.nc"] = "f" * 64
        (run / "run.json").write_text(json.dumps(meta))
    assert main(["update", str(both), "--out", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "the previous run cannot be used" in err
    meta = json.loads((run / "run.json").read_text())
    assert {s["status"] for s in meta["stages"].values()} == {"computed"}
    assert meta["update"]["previous_usable"] is False
    assert main(["run", str(both), "--out", str(tmp_path / "full"), "--quiet"]) == 0
    _same_model(run, tmp_path / "full")


def test_update_from_another_run_folder(tranches, tmp_path):
    first, both = tranches
    assert main(["run", str(first), "--out", str(tmp_path / "june"), "--quiet"]) == 0
    june = {p.name: p.read_bytes() for p in (tmp_path / "june").iterdir() if p.is_file()}
    assert main(["update", str(both), "--from", str(tmp_path / "june"), "--out",
                 str(tmp_path / "sept"), "--quiet"]) == 0  # fmt: skip
    # the June run is untouched; the September one is complete on its own
    assert {p.name: p.read_bytes() for p in (tmp_path / "june").iterdir() if p.is_file()} == june
    assert main(["report", str(tmp_path / "sept"), "--quiet"]) == 0
    assert main(["run", str(both), "--out", str(tmp_path / "full"), "--quiet"]) == 0
    _same_model(tmp_path / "sept", tmp_path / "full")
