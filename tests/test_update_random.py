"""``estimator update`` on random tranches equals a full run of the same inputs, bit for bit.

Each case drills a random deposit, runs the first state of the data, updates with the second
and compares the update with a full run of the second: every variable of the block model
(estimates, passes, flags, classes, provenance) and the grade-tonnage table. The cases are
the ways a tranche can change a block: new holes at one end (most blocks are copied), infill
that displaces neighbours under ``max_samples``, ``max_per_hole`` and octant rules and moves
blocks to another pass, a removed hole, re-assays, a percentile cap whose value moves, and a
re-logged interval that moves samples (and rule-defined blocks) to another domain. Each case
asserts that the update really took the incremental path (no silent fallback to a full run).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from estimator.cli import main
from estimator.io.wireframe import write_obj
from helpers import box_mesh

LENGTH = 200.0  # along x: the deposit's strike


def _holes(rng, n, x_lo, x_hi, prefix):
    return pd.DataFrame({
        "hole_id": [f"{prefix}{i:02d}" for i in range(n)],
        "x": rng.uniform(x_lo, x_hi, n), "y": rng.uniform(5, 75, n), "z": 0.0, "depth": 40.0,
    })  # fmt: skip


def _assays(rng, collars, high=False):
    rows = []
    for h in collars["hole_id"]:
        for k in range(20):
            g = rng.lognormal(1.0 if high else 0.0, 0.8)
            rows.append([h, 2.0 * k, 2.0 * k + 2, round(float(g), 3)])
    return pd.DataFrame(rows, columns=["hole_id", "from", "to", "au"])


def _zones(collars, relog=()):
    rows = []
    for h in collars["hole_id"]:
        if h in relog:  # the cap is logged deeper: samples 10-16 m move to another domain
            rows += [[h, 0.0, 16.0, "CAP"], [h, 16.0, 40.0, "ORE"]]
        else:
            rows += [[h, 0.0, 10.0, "CAP"], [h, 10.0, 40.0, "ORE"]]
    return pd.DataFrame(rows, columns=["hole_id", "from", "to", "zone"])


def _config(folder: Path, name: str, assays, zones="zones.csv", **over) -> Path:
    raw = {
        "name": name,
        "data": {
            "collars": "collars.csv", "surveys": "surveys.csv", "zones": zones,
            "assays": [{"path": p, "tranche": t} for p, t in assays],
            "length_unit": "m", "grade_unit": "g/t",
        },
        "grades": ["au"],
        "domains": [
            {"name": "ore", "wireframe": "ore.obj", "zone_code": "ORE", "density": 2.7},
            {"name": "cap", "zone_code": "CAP", "density": 2.2,
             "blocks": {"rule": "nearest_sample", "max_distance": 12.0}},
        ],
        "composites": {"length": 2.0},
        "capping": {"ore": {"au": 8.0}},
        "variography": {d: {"au": {"model": {"nugget": 0.1, "structures": [
            {"type": "spherical", "sill": 0.9, "ranges": [40, 25, 12], "angles": [20, 0, 0]}]}}}
            for d in ("ore", "cap")},
        "block_model": {"origin": [0, 0, -40], "block_size": [5, 5, 5], "shape": [40, 16, 8],
                        "subcells": [2, 2, 2]},
        "estimation": {"passes": [
            {"ranges": [30, 20, 8], "angles": [20, 0, 0], "min_samples": 6, "max_samples": 8,
             "max_per_hole": 2, "octants": {"max_per_octant": 2, "min_octants": 2}},
            {"scale": 2.0, "min_samples": 2, "max_samples": 12, "max_per_hole": 3},
        ]},
        "classification": {"classes": [{"name": "indicated", "max_pass": 1, "min_samples": 8},
                                       {"name": "inferred", "max_pass": 2}]},
        "report": {"cutoffs": [0, 1, 2]},
        "compute": {"scheduler": "synchronous", "chunks": [10, 8, 4]},
        "output": "run",
        # not under test here: the review pack's slow parts
        "validation": {"enabled": False},
        "capping_analysis": {"plots": False},
        "declustering": {"plots": False},
    }  # fmt: skip
    for key, value in over.items():
        node = raw
        *path, last = key.split(".")
        for k in path:
            node = node[k]
        node[last] = value
    out = folder / f"{name}.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def _world(folder: Path, case: str, seed: int) -> tuple[Path, Path]:
    """The first and second config of ``case`` in ``folder``."""
    rng = np.random.default_rng(seed)
    old = _holes(rng, 24, 5, LENGTH - 45, "A")
    new = {
        "extension": lambda: _holes(rng, 4, LENGTH - 30, LENGTH - 5, "X"),
        "infill": lambda: _holes(rng, 6, 20, LENGTH - 60, "B"),
        "percentile_cap": lambda: _holes(rng, 3, 60, 120, "C"),
    }.get(case, lambda: old.iloc[:0])()
    collars = pd.concat([old, new], ignore_index=True)
    collars.to_csv(folder / "collars.csv", index=False)
    pd.DataFrame({"hole_id": collars["hole_id"], "depth": 0.0,
                  "azimuth": rng.uniform(0, 360, len(collars)),
                  "dip": -85.0}).to_csv(folder / "surveys.csv", index=False)  # fmt: skip
    write_obj(folder / "ore.obj", *box_mesh((0, 0, -40), (LENGTH, 80, -8)))
    a1 = _assays(rng, old)
    a1.to_csv(folder / "a1.csv", index=False)
    _zones(collars).to_csv(folder / "zones.csv", index=False)
    cap = {"capping": {"ore": {"au": "p95"}}} if case == "percentile_cap" else {}
    first = _config(folder, "first", [("a1.csv", "t1")], **cap)
    if case in ("extension", "infill", "percentile_cap"):
        _assays(rng, new, high=case == "percentile_cap").to_csv(folder / "a2.csv", index=False)
        return first, _config(folder, "second", [("a1.csv", "t1"), ("a2.csv", "t2")], **cap)
    if case == "remove_hole":
        a1[a1["hole_id"] != "A07"].to_csv(folder / "a1b.csv", index=False)
    elif case == "reassay":
        changed = a1.copy()
        rows = rng.choice(len(changed), 12, replace=False)
        changed.loc[rows, "au"] = np.round(changed.loc[rows, "au"] * 1.5 + 0.1, 3)
        changed.to_csv(folder / "a1b.csv", index=False)
    elif case == "relog":
        a1.to_csv(folder / "a1b.csv", index=False)
        _zones(collars, relog=("A03", "A11")).to_csv(folder / "zones2.csv", index=False)
        return first, _config(folder, "second", [("a1b.csv", "t1")], zones="zones2.csv")
    return first, _config(folder, "second", [("a1b.csv", "t1")])


def _model(run: Path) -> dict:
    with xr.open_dataset(run / "blockmodel.nc") as ds:
        return {name: ds[name].values.copy() for name in ds.data_vars}


CASES = ["extension", "infill", "remove_hole", "reassay", "percentile_cap", "relog"]


@pytest.mark.parametrize(("case", "seed"), [(c, 11 + i) for i, c in enumerate(CASES)])
def test_update_equals_a_full_run(tmp_path, case, seed):
    first, second = _world(tmp_path, case, seed)
    run, full = tmp_path / "run", tmp_path / "full"
    assert main(["run", str(first), "--out", str(run), "--quiet"]) == 0
    assert main(["update", str(second), "--out", str(run), "--quiet"]) == 0
    assert main(["run", str(second), "--out", str(full), "--quiet"]) == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["stages"]["estimate"]["status"] == "computed"
    upd = meta["counts"]["update"]
    assert upd["reused"] is True, upd["reason"]
    blocks = [v for per in upd["blocks"].values() for v in per.values()]
    estimated = sum(v["estimated"] for v in blocks)
    copied = sum(v["copied"] for v in blocks)
    assert estimated > 0
    if case == "extension":  # new holes at one end: most of the deposit is copied
        assert copied > estimated
    a, b = _model(run), _model(full)
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=f"{case}: {name}")
    assert (run / "grade_tonnage.csv").read_bytes() == (full / "grade_tonnage.csv").read_bytes()
    before = _model(run / "previous")
    if case == "infill":  # new samples move blocks to another pass
        assert np.any(before["au_pass"] != a["au_pass"])
    if case == "relog":  # composites moved to another domain
        was = pd.read_csv(run / "previous" / "composites.csv")["domain"].value_counts()
        now = pd.read_csv(run / "composites.csv")["domain"].value_counts()
        assert now["cap"] > was["cap"]
    if case == "percentile_cap":  # the cap's value moved: composites of the old holes changed
        before = pd.read_csv(run / "previous" / "composites.csv")
        after = pd.read_csv(run / "composites.csv")
        old = after[after["hole_id"].str.startswith("A")].reset_index(drop=True)
        assert not np.allclose(before["au"], old["au"], equal_nan=True)


def test_update_with_a_zarr_block_model_equals_a_full_run(tmp_path):
    first, second = _world(tmp_path, "infill", 3)
    for path in (first, second):  # the same configs, written as chunked stores
        raw = yaml.safe_load(path.read_text())
        raw["output"] = {"path": "run", "format": "zarr"}
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    run, full = tmp_path / "run", tmp_path / "full"
    assert main(["run", str(first), "--out", str(run), "--quiet"]) == 0
    assert main(["update", str(second), "--out", str(run), "--quiet", "--scheduler",
                 "threads"]) == 0  # fmt: skip
    assert main(["run", str(second), "--out", str(full), "--quiet"]) == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["counts"]["update"]["reused"] is True
    with xr.open_zarr(run / "blockmodel.zarr") as a, xr.open_zarr(full / "blockmodel.zarr") as b:
        assert set(a.data_vars) == set(b.data_vars)
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_a_changed_search_is_a_full_estimate_and_says_why(tmp_path, capsys):
    first, _ = _world(tmp_path, "extension", 5)
    raw = yaml.safe_load(first.read_text())
    raw["estimation"]["passes"][0]["max_samples"] = 10
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(raw, sort_keys=False))
    run = tmp_path / "run"
    assert main(["run", str(first), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["update", str(changed), "--out", str(run)]) == 0
    meta = json.loads((run / "run.json").read_text())
    upd = meta["counts"]["update"]
    assert upd["reused"] is False
    assert "search passes" in upd["reason"]
    assert "every block estimated" in capsys.readouterr().out
