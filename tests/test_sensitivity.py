"""Sensitivity studies: every variant equals a separate run of its merged config, bit for bit;
top-cut variants reuse the base run's kriging weights (no kriging), cut-off variants only
report again, and a variant with another search is estimated."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from estimator.cli import main
from estimator.config import load_config, variant_configs
from test_update_random import _world

CAPS = (2.0, 3.0, 4.0, 5.0, 6.0)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    first, _ = _world(folder, "extension", 21)
    assays = pd.read_csv(folder / "a1.csv")  # a check-assay column beside the grade
    assays["au_check"] = np.round(assays["au"] * 1.1 + 0.05, 3)
    assays.to_csv(folder / "a1.csv", index=False)
    raw = yaml.safe_load(first.read_text())
    raw["sensitivity"] = [
        *({"name": f"cap{c:g}", "capping": {"ore": {"au": c}}} for c in CAPS),
        {"name": "check", "data": {"columns": {"au": "au_check"}}},  # another grade column
        {"name": "cutoffs", "report": {"cutoffs": [0, 0.5, 1, 1.5, 2, 3]}},
        {"name": "wide", "estimation": {"passes": [
            {"ranges": [45, 30, 12], "angles": [20, 0, 0], "min_samples": 4, "max_samples": 10}]}},
    ]  # fmt: skip
    raw["output"] = "study"
    cfg = folder / "study.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["run", str(cfg), "--quiet"]) == 0
    return folder, cfg


def _model(run: Path) -> dict:
    """Every variable of a run's block model (a variant's is a Zarr store)."""
    if (run / "blockmodel.zarr").is_dir():
        from estimator.io.blockstore import decode_classes, open_block_model

        ds = decode_classes(open_block_model(run / "blockmodel.zarr").compute())
        return {n: ds[n].values.copy() for n in ds.data_vars}
    with xr.open_dataset(run / "blockmodel.nc") as ds:
        return {n: ds[n].values.copy() for n in ds.data_vars}


def test_each_variant_equals_its_own_run(study, tmp_path):
    folder, cfg = study
    meta = json.loads((folder / "study" / "sensitivity" / "study.json").read_text())
    for name, vcfg in variant_configs(load_config(cfg)):
        raw = vcfg.model_dump(mode="json", exclude={"sensitivity", "source"})
        raw["output"] = {**raw["output"], "path": str(tmp_path / name)}  # a Zarr store too
        single = tmp_path / f"{name}.yaml"
        single.write_text(yaml.safe_dump(raw, sort_keys=False))
        assert main(["run", str(single), "--quiet"]) == 0
        got = folder / "study" / "sensitivity" / name
        a, b = _model(got), _model(tmp_path / name)
        assert set(a) == set(b)
        for var in a:
            np.testing.assert_array_equal(a[var], b[var], err_msg=f"{name}: {var}")
        assert (got / "grade_tonnage.csv").read_bytes() == (
            tmp_path / name / "grade_tonnage.csv").read_bytes()  # fmt: skip
        how = meta["variants"][name]
        if name.startswith("cap") or name == "check":
            assert how["reweighted"] is True, name  # the base's weights, no kriging
        elif name == "cutoffs":  # never krige again: the composites are the base's
            assert how["estimate"] == "reused"
            assert "variograms" not in how["stages_computed"]
        else:
            assert how["estimate"] == "computed" and not how["reweighted"]


def test_the_combined_table_and_plot(study):
    folder, _ = study
    table = pd.read_csv(folder / "study" / "sensitivity" / "sensitivity.csv")
    assert list(table.columns[:7]) == ["variant", "domain", "class", "cutoff", "tonnes",
                                       "grade", "metal"]  # fmt: skip
    assert set(table["variant"]) == {"base", "cutoffs", "wide", "check",
                                     *(f"cap{c:g}" for c in CAPS)}  # fmt: skip
    total = table[(table["domain"] == "total") & (table["class"] == "all")
                  & (table["cutoff"] == 0)].set_index("variant")  # fmt: skip
    # lower caps, less metal (same tonnes at cut-off 0)
    metal = [total.loc[f"cap{c:g}", "metal"] for c in CAPS]
    assert all(np.diff(metal) >= 0) and metal[0] < metal[-1]
    assert (folder / "study" / "sensitivity" / "sensitivity.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("variant", "words"),
    [
        ({"capping": {"ore": {"au": 1}}}, "a variant is a mapping with a name"),
        ({"name": "base", "report": {"cutoffs": [1]}}, "not 'base'"),
        ({"name": "x", "output": "elsewhere"}, "output cannot change in a variant"),
        ({"name": "x"}, "changes nothing"),
        ({"name": "x", "capping": {"ore": {"au": -2}}}, "sensitivity[0] (x)"),
    ],
)
def test_a_wrong_variant_is_refused_at_load(tmp_path, capsys, variant, words):
    first, _ = _world(tmp_path, "extension", 3)
    raw = yaml.safe_load(first.read_text())
    raw["sensitivity"] = [variant]
    first.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["check", str(first)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_the_headline_rows_of_a_study():
    from estimator.sensitivity import sensitivity_headline

    one = pd.DataFrame({"variant": ["base", "cap"], "domain": ["all", "all"],
                        "class": ["all", "all"], "cutoff": [0.0, 0.0],
                        "tonnes": [10.0, 10.0], "grade": [2.0, 1.5], "metal": [1.0, 0.75]})  # fmt: skip
    assert sensitivity_headline(one)["grade"].tolist() == [2.0, 1.5]
    two = pd.DataFrame({"variant": ["base", "base"], "domain": ["a", "b"], "class": ["all"] * 2,
                        "cutoff": [0.0, 0.0], "tonnes": [10.0, 30.0], "grade": [2.0, 1.0],
                        "metal": [1.0, 1.5]})  # fmt: skip
    row = sensitivity_headline(two).iloc[0]
    assert row["tonnes"] == 40.0 and row["grade"] == pytest.approx(50.0 / 40.0)
    assert row["metal"] == 2.5
