"""Runs that write a Zarr block model: chunk by chunk, verified, reported by streaming, and
resumed after a kill, through ``estimator run`` itself."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from estimator.cli import main
from estimator.io.blockstore import open_block_model


def _config(folder: Path, n=4000, shape=(60, 60, 12), fmt="zarr", name="z") -> Path:
    rng = np.random.default_rng(3)
    pts = pd.DataFrame({"x": rng.uniform(0, 300, n), "y": rng.uniform(0, 300, n),
                        "z": rng.uniform(-60, 0, n), "au": rng.lognormal(0, 0.5, n)})  # fmt: skip
    pts.to_csv(folder / "points.csv", index=False)
    cfg = {
        "name": name,
        "data": {"samples": "points.csv", "length_unit": "m", "grade_unit": "g/t"},
        "grades": ["au"],
        "variography": {"all": {"au": {"model": {"nugget": 0.1, "structures": [
            {"type": "spherical", "sill": 0.2, "ranges": [120, 80, 30]}]}}}},
        "block_model": {"origin": [0, 0, -60], "block_size": [5, 5, 5], "shape": list(shape)},
        "estimation": {"passes": [{"ranges": [80, 60, 20], "min_samples": 4, "max_samples": 24}]},
        "classification": {"classes": [{"name": "indicated", "min_samples": 20}]},
        "report": {"cutoffs": [0, 1, 2]},
        "compute": {"scheduler": "threads", "chunks": [10, 10, 6], "workers": 2},
        "output": {"path": "run", "format": fmt},
    }  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_zarr_run_reports_by_streaming_and_equals_netcdf(tmp_path):
    cfg = _config(tmp_path, n=800, shape=(20, 20, 6))
    assert main(["run", str(cfg), "--quiet"]) == 0
    run = tmp_path / "run"
    meta = json.loads((run / "run.json").read_text())
    assert "blockmodel.zarr" in meta["outputs"] and not (run / "blockmodel.nc").exists()
    other = tmp_path / "nc"
    other.mkdir()
    cfg_nc = _config(other, n=800, shape=(20, 20, 6), fmt="netcdf")
    assert main(["run", str(cfg_nc), "--quiet"]) == 0
    z = open_block_model(run / "blockmodel.zarr", decode=True).load()
    with xr.open_dataset(other / "run" / "blockmodel.nc") as n:
        for name in ("fraction", "au", "au_kv", "au_pass", "au_flag", "class"):
            np.testing.assert_array_equal(z[name].values, n[name].values, err_msg=name)
    gz = pd.read_csv(run / "grade_tonnage.csv")
    gn = pd.read_csv(other / "run" / "grade_tonnage.csv")
    np.testing.assert_allclose(gz["tonnes"], gn["tonnes"], rtol=1e-12)
    np.testing.assert_allclose(gz["grade"], gn["grade"], rtol=1e-12)
    # a re-report streams the store; a damaged chunk is refused
    assert main(["report", str(run), "--cutoffs", "0.5", "--quiet"]) == 0
    for array in ("au", "x"):  # a data chunk (checked by its record), a coordinate
        chunk = next(p for p in (run / "blockmodel.zarr" / array).rglob("*") if p.is_file()
                     and "c" in p.relative_to(run / "blockmodel.zarr").parts)  # fmt: skip
        chunk.write_bytes(chunk.read_bytes()[::-1])
        assert main(["report", str(run), "--quiet"]) == 2
        # and the next run recomputes the estimate instead of trusting it
        assert main(["run", str(cfg), "--quiet"]) == 0
        meta = json.loads((run / "run.json").read_text())
        assert meta["stages"]["estimate"]["status"] == "computed"
        assert main(["report", str(run), "--quiet"]) == 0


@pytest.mark.slow
def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    cfg = _config(tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "estimator.cli", "run", str(cfg), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    deadline = time.time() + 120
    records = []
    try:
        while time.time() < deadline and proc.poll() is None:
            records = list((tmp_path / "run").glob(".partial-estimate-*/blockmodel.zarr/.chunks/*"))
            if len(records) >= 5:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = len(list((tmp_path / "run").glob(".partial-estimate-*/blockmodel.zarr/.chunks/*")))
    assert done_before >= 5
    assert not (tmp_path / "run" / "run.json").exists()  # nothing published
    # rerun: the recorded chunks are kept, the rest computed
    assert main(["run", str(cfg)]) == 0
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["stages"]["estimate"]["status"] == "computed"
    assert not list((tmp_path / "run").glob(".partial-*"))
    # equal, bit for bit, to an uninterrupted run
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    cfg2 = _config(fresh)
    assert main(["run", str(cfg2), "--quiet"]) == 0
    a = open_block_model(tmp_path / "run" / "blockmodel.zarr").load()
    b = open_block_model(fresh / "run" / "blockmodel.zarr").load()
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
