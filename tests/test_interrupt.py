"""Ctrl-C stops a run during the estimate, every time, even when Python swallows it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import yaml

from estimator import interrupt
from estimator.kriging.parallel import _compute


def test_a_swallowed_ctrl_c_still_stops_the_task_loop():
    """A KeyboardInterrupt raised in a weakref callback is printed and lost; the recorded
    request makes the next task raise it again."""
    tasks = [dask.delayed(time.sleep)(0.01) for _ in range(50)]
    interrupt._requested.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            _compute(tasks, "threads", False, None)
    finally:
        interrupt._requested.clear()
    assert len(_compute(tasks[:2], "threads", False, None)) == 2


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_ctrl_c_during_the_estimate_stops_the_run(tmp_path, scheduler):
    rng = np.random.default_rng(0)
    n = 3000
    pd.DataFrame(
        {"x": rng.uniform(0, 1000, n), "y": rng.uniform(0, 1000, n), "z": rng.uniform(-100, 0, n),
         "au": rng.lognormal(0, 0.5, n)}
    ).to_csv(tmp_path / "points.csv", index=False)  # fmt: skip
    cfg = {
        "name": "big",
        "data": {"samples": "points.csv"},
        "grades": ["au"],
        "variography": {"all": {"au": {"model": {"nugget": 0.1, "structures": [
            {"type": "spherical", "sill": 0.2, "ranges": [300, 300, 100]}]}}}},
        "block_model": {"origin": [0, 0, -100], "block_size": [5, 5, 5], "shape": [200, 200, 20]},
        "estimation": {"passes": [{"ranges": [200, 200, 80], "min_samples": 4,
                                   "max_samples": 32}]},
        "compute": {"scheduler": scheduler, "chunks": [20, 20, 20], "workers": 2},
        "output": "run",
    }  # fmt: skip
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "estimator.cli", "run", str(path)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "estimating" in line:
                break
        time.sleep(1.0)
        assert proc.poll() is None, "".join(lines)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130, "".join(lines)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and meta["error"] == "interrupted"
    assert not list(Path(tmp_path / "run").glob(".staging-*"))
