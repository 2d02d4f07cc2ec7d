"""Stages declare what they read, and the run reuses what did not change.

Each config key is changed in turn: the test asserts exactly which stages run again, and that
the reused run's outputs equal those of a fresh run of the changed config. A stage reading a
key it does not declare would show up here as a reused stage with a stale output, so the
declarations cannot drift from the code.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from estimator.cli import main
from estimator.config import parse_config
from estimator.io.wireframe import write_obj
from estimator.pipeline import STAGE_TABLE, STAGES
from estimator.stages import ConfigView
from helpers import box_mesh

ALL = set(STAGES)
AFTER_DATA = ALL - {"data"}
ESTIMATE_REPORT = {"estimate", "validation", "report"}


def _data(folder: Path) -> None:
    rng = np.random.default_rng(5)
    n, per = 10, 12
    hx, hy = rng.uniform(5, 55, n), rng.uniform(5, 55, n)
    pd.DataFrame({"hole_id": [f"H{i}" for i in range(n)], "x": hx, "y": hy, "z": 0.0,
                  "depth": per * 2.0}).to_csv(folder / "collars.csv", index=False)  # fmt: skip
    pd.DataFrame({"hole_id": [f"H{i}" for i in range(n)], "depth": 0.0,
                  "azimuth": rng.uniform(0, 360, n), "dip": -80.0}).to_csv(
        folder / "surveys.csv", index=False)  # fmt: skip
    rows = []
    for i in range(n):
        for k in range(per):
            rows.append([f"H{i}", 2.0 * k, 2.0 * k + 2, f"{rng.lognormal(0, 0.5):.3f}"])
    rows[5][3] = "<0.01"
    assays = pd.DataFrame(rows, columns=["hole_id", "from", "to", "au"])
    assays.iloc[: len(rows) // 2].to_csv(folder / "a1.csv", index=False)
    assays.iloc[len(rows) // 2 :].to_csv(folder / "a2.csv", index=False)
    zones = [[f"H{i}", 0.0, 8.0, "CAP"] for i in range(n)]
    zones += [[f"H{i}", 8.0, 24.0, "ORE"] for i in range(n)]
    pd.DataFrame(zones, columns=["hole_id", "from", "to", "zone"]).to_csv(
        folder / "zones.csv", index=False
    )
    write_obj(folder / "ore.obj", *box_mesh((0, 0, -30), (60, 60, -6)))
    write_obj(folder / "ore2.obj", *box_mesh((0, 0, -28), (60, 60, -6)))
    v = np.array([[-50, -50, -3.0], [150, -50, -3.0], [150, 150, -1.0], [-50, 150, -1.0]])
    write_obj(folder / "topo.obj", v, np.array([[0, 1, 2], [0, 2, 3]]))


BASE = {
    "name": "reuse",
    "data": {
        "collars": "collars.csv", "surveys": "surveys.csv", "zones": "zones.csv",
        "assays": [{"path": "a1.csv", "tranche": "t1"}, {"path": "a2.csv", "tranche": "t2"}],
        "length_unit": "m", "grade_unit": "g/t",
    },
    "grades": ["au"],
    "domains": [
        {"name": "ore", "wireframe": "ore.obj", "zone_code": "ORE", "density": 2.7},
        {"name": "cap", "zone_code": "CAP", "density": 2.2,
         "blocks": {"rule": "nearest_sample", "max_distance": 6.0}},
    ],
    "composites": {"length": 4.0},
    "capping": {"ore": {"au": 3.0}},
    "variography": {d: {"au": {"model": {"nugget": 0.05, "structures": [
        {"type": "spherical", "sill": 0.2, "ranges": [40, 30, 10], "angles": [30, 0, 0]}]}}}
        for d in ("ore", "cap")},
    "block_model": {"origin": [0, 0, -30], "block_size": [5, 5, 4], "shape": [12, 12, 8],
                    "subcells": [2, 2, 2]},
    "estimation": {"passes": [{"ranges": [40, 30, 10], "angles": [30, 0, 0], "min_samples": 2,
                               "max_samples": 12}]},
    "classification": {"classes": [{"name": "indicated", "min_samples": 8},
                                   {"name": "inferred", "max_pass": 1}]},
    "report": {"cutoffs": [0, 1]},
    "compute": {"scheduler": "synchronous", "chunks": [6, 6, 4]},
    "output": "run",
}  # fmt: skip


def _set(raw: dict, path: str, value):
    keys = path.split(".")
    node = raw
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


#: (key, new value, the stages that must run again)
CHANGES = [
    ("name", "renamed", set()),
    ("compute.chunks", [5, 7, 3], set()),
    ("compute.scheduler", "threads", set()),
    ("intercepts", {"cutoff": 1.0, "min_length": 2.0}, set()),
    ("report.cutoffs", [0, 0.5, 1, 2], {"report"}),
    ("domains.0.density", 2.8, {"validation", "report"}),
    ("classification.classes.0.min_samples", 6, ESTIMATE_REPORT),
    ("estimation.passes.0.max_samples", 10, ESTIMATE_REPORT),
    ("block_model.subcells", [3, 3, 2], ESTIMATE_REPORT),
    ("domains.1.blocks.max_distance", 8.0, ESTIMATE_REPORT),
    ("variography.ore.au.model.nugget", 0.08, {"variograms", *ESTIMATE_REPORT}),
    ("composites.length", 3.0, AFTER_DATA),
    ("capping.ore.au", 1.5, AFTER_DATA),
    ("capping.ore.au", 2.9, {"composites"}),  # no composite between 2.9 and 3: nothing changes
    ("data.below_detection", "zero", ALL),
    ("data.dip", "negative_down", set()),  # the default, written out: the same config value
    ("data.topography", "topo.obj", {"data", *ESTIMATE_REPORT}),
    # logged zones win over the wireframe, so the composites do not change: what follows them
    # is reused, but the block model clips to the new wireframe
    ("domains.0.wireframe", "ore2.obj", {"data", *ESTIMATE_REPORT}),
    ("data.assays.1.tranche", "t3", ALL),
]


def _run(cfg_path: Path, out: Path) -> dict:
    assert main(["run", str(cfg_path), "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "run.json").read_text())


def _write(folder: Path, raw: dict, name="config.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reuse")
    _data(folder)
    meta = _run(_write(folder, BASE), folder / "base")
    assert {s: v["status"] for s, v in meta["stages"].items()} == dict.fromkeys(STAGES, "computed")
    return folder


def _outputs_equal(a: Path, b: Path) -> None:
    for name in ("composites.csv", "variograms.yaml", "grade_tonnage.csv", "data_report.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    with xr.open_dataset(a / "blockmodel.nc") as x, xr.open_dataset(b / "blockmodel.nc") as y:
        xr.testing.assert_identical(x.drop_attrs(), y.drop_attrs())


def test_an_unchanged_config_recomputes_nothing(base, tmp_path):
    shutil.copytree(base / "base", tmp_path / "run")
    meta = _run(_write(base, BASE, "same.yaml"), tmp_path / "run")
    assert {v["status"] for v in meta["stages"].values()} == {"reused"}
    _outputs_equal(tmp_path / "run", base / "base")


@pytest.mark.slow
@pytest.mark.parametrize(("key", "value", "rerun"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_key_reruns_exactly_the_stages_that_read_it(base, tmp_path, key, value, rerun):
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    _set(raw, key, value)
    cfg = _write(base, raw, f"changed-{key}.yaml")
    shutil.copytree(base / "base", tmp_path / "run")
    meta = _run(cfg, tmp_path / "run")
    computed = {s for s, v in meta["stages"].items() if v["status"] == "computed"}
    assert computed == rerun, {s: v["why"] for s, v in meta["stages"].items()}
    # and what was reused is what a fresh run of the changed config makes
    fresh = _run(cfg, tmp_path / "fresh")
    assert {v["status"] for v in fresh["stages"].values()} == {"computed"}
    _outputs_equal(tmp_path / "run", tmp_path / "fresh")


def test_why_a_stage_reran_is_recorded(base, tmp_path):
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    raw["report"]["cutoffs"] = [0, 3]
    shutil.copytree(base / "base", tmp_path / "run")
    meta = _run(_write(base, raw, "why.yaml"), tmp_path / "run")
    assert meta["stages"]["report"]["why"] == "config report"
    assert meta["stages"]["estimate"]["why"] == "unchanged"


def test_a_changed_or_foreign_artefact_is_recomputed_not_trusted(base, tmp_path):
    shutil.copytree(base / "base", tmp_path / "run")
    comps = tmp_path / "run" / "composites.csv"
    comps.write_text(comps.read_text().replace("H1,", "H9,", 1))
    meta = _run(_write(base, BASE, "same2.yaml"), tmp_path / "run")
    status = {s: v["status"] for s, v in meta["stages"].items()}
    assert status["composites"] == "computed"
    assert "changed" in meta["stages"]["composites"]["why"]
    # the recomputed composites are the same as before: later stages are reused
    assert status["variograms"] == status["estimate"] == "reused"
    _outputs_equal(tmp_path / "run", base / "base")


def test_every_stage_declares_what_it_reads():
    """A stage reading an undeclared section fails at once (ConfigView)."""
    cfg = parse_config({"name": "t", "data": {"samples": "x.csv"}, "grades": ["au"]},
                       check_files=False)  # fmt: skip
    view = ConfigView(cfg, {"report"}, "report")
    assert view.report.cutoffs == [0.0]
    with pytest.raises(AttributeError, match="stage 'report' reads config section 'estimation'"):
        _ = view.estimation
    with pytest.raises(AttributeError, match="'domains'"):
        view.domain_names  # noqa: B018
    for stage in STAGE_TABLE:
        assert stage.sections <= set(type(cfg).model_fields)


def test_design_doc_shows_the_stage_table():
    from estimator.pipeline import stage_table_markdown

    text = (Path(__file__).resolve().parents[1] / "docs" / "DESIGN.md").read_text()
    start = text.index("<!-- stage-table -->") + len("<!-- stage-table -->")
    end = text.index("<!-- /stage-table -->")
    assert text[start:end].strip() == stage_table_markdown()
