"""``estimator export`` and ``output.exports`` on a run folder: files read back by their own
readers hold the block model's values, they are listed in run.json, and wrong arguments are
refused (exit 2) without touching what exists."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from estimator.cli import main
from estimator.pipeline import verify_run_folder
from helpers import coarse_demo

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    cfg, _ = coarse_demo(folder, "x.yaml", output={
        "path": "run", "exports": [{"format": "csv", "profile": "datamine"}, {"format": "parquet"}]})
    assert main(["run", str(cfg), "--quiet"]) == 0
    # run again: every stage reused, the exports written again from the reused block model
    assert main(["run", str(cfg), "--quiet"]) == 0
    meta = json.loads((folder / "run" / "run.json").read_text())
    assert {s["status"] for s in meta["stages"].values()} == {"reused"}
    return folder / "run"


def test_configured_exports_are_written_and_recorded(run):
    meta = json.loads((run / "run.json").read_text())
    names = {"exports/blockmodel_datamine.csv", "exports/blockmodel.parquet"}
    assert names <= set(meta["outputs"])
    verify_run_folder(run)
    ds = xr.open_dataset(run / "blockmodel.nc")
    table = pd.read_csv(run / "exports" / "blockmodel_datamine.csv")
    inside = int((ds["fraction"].values > 0).sum())
    assert len(table) == inside  # one row per block and domain inside
    est = ds["pd"].values[ds["fraction"].values > 0]
    assert np.nansum(table["PD"] if "PD" in table else table["pd"]) == pytest.approx(
        np.nansum(est), rel=1e-12)
    import pyarrow.parquet as pq

    parquet = pq.read_table(run / "exports" / "blockmodel.parquet").to_pandas()
    assert len(parquet) == inside
    assert b"estimator" in pq.read_metadata(run / "exports" / "blockmodel.parquet").metadata


def test_export_command(run, tmp_path, capsys):
    out = tmp_path / "bm.omf"
    assert main(["export", str(run), "--format", "omf", "--out", str(out), "--quiet"]) == 0
    import omf

    project = omf.OMFReader(str(out)).get_project()
    assert any(isinstance(e, omf.VolumeElement) for e in project.elements)
    # the same path again: refused, the file kept
    before = out.read_bytes()
    assert main(["export", str(run), "--format", "omf", "--out", str(out)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    # a profile on a format without columns, a folder that is no run
    assert main(["export", str(run), "--format", "vtk", "--profile", "vulcan"]) == 2
    assert "profile" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--format", "csv"]) == 2
    assert "run.json" in capsys.readouterr().err
    # a file the run lists as its own (output.exports) is never replaced, --overwrite or not
    own = run / "exports" / "blockmodel_datamine.csv"
    before = own.read_bytes()
    assert main(["export", str(run), "--format", "csv", "--profile", "datamine",
                 "--overwrite"]) == 2  # fmt: skip
    assert "is a file of the run" in capsys.readouterr().err
    assert own.read_bytes() == before
    verify_run_folder(run)


def test_a_wrong_export_in_the_config_is_refused(tmp_path, capsys):
    raw = yaml.safe_load((DEMO / "demo.yaml").read_text())
    raw["output"] = {"path": "run", "exports": [{"format": "omf", "profile": "datamine"}]}
    for f in DEMO.iterdir():
        if f.is_file() and f.suffix != ".yaml":
            shutil.copy(f, tmp_path / f.name)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["check", str(cfg)]) == 2
    assert "profile 'datamine' applies to csv and parquet" in capsys.readouterr().err
