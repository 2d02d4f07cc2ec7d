"""The library API: what a geologist calls from a notebook, checked against independent values."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import estimator


def test_every_public_name_resolves():
    for name in estimator.__all__:
        assert getattr(estimator, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = estimator.nope


def test_import_is_light():
    """``import estimator`` loads none of the heavy libraries (they load on first use)."""
    code = (
        "import sys, estimator; "
        "print(sorted(m for m in ('numba', 'xarray', 'dask', 'matplotlib', 'scipy', 'pandas') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_notebook_session_with_plain_arrays():
    """Desurvey, composite, variogram, fit, krige and report, each with plain tables/arrays."""
    rng = np.random.default_rng(1)
    # a vertical hole: desurvey puts a depth straight below the collar
    collars = pd.DataFrame({"hole_id": ["A"], "x": [100.0], "y": [200.0], "z": [50.0]})
    surveys = pd.DataFrame({"hole_id": ["A"], "depth": [0.0], "azimuth": [0.0], "dip": [-90.0]})
    xyz = estimator.desurvey(collars, surveys, np.array(["A"]), np.array([12.5]))
    np.testing.assert_allclose(xyz, [[100.0, 200.0, 37.5]], atol=1e-9)
    # compositing a constant grade gives the constant, length-weighted
    intervals = pd.DataFrame({"hole_id": "A", "from": [0.0, 1.0, 3.0], "to": [1.0, 3.0, 4.0],
                              "domain": "ore", "au": [2.0, 2.0, 2.0]})  # fmt: skip
    comps = estimator.composite(intervals, ["au"], 2.0)
    assert comps["au"].tolist() == [2.0, 2.0] and comps["length"].sum() == 4.0
    # variogram of a smooth field, fitted, then kriged at the samples: exact interpolation
    pts = rng.uniform(0, 100, (400, 3)) * [1, 1, 0]
    values = np.sin(pts[:, 0] / 15) + 0.1 * rng.normal(size=400)
    table = estimator.experimental_variogram(pts, values, lag=5.0, n_lags=10)
    assert {"lag", "gamma", "n_pairs"} <= set(table.columns)
    model, _, _ = estimator.fit_variogram(pts, values, None, {"n_structures": 1})
    assert model.sill > 0
    passes = [estimator.SearchPass(ranges=(60, 60, 60), min_samples=1, max_samples=16)]
    out = estimator.estimate_blocks(
        pts[:5], np.zeros((1, 3)), pts, values, np.arange(400), model, passes
    )
    if model.nugget == 0:
        np.testing.assert_allclose(out["estimate"], values[:5], atol=1e-8)
    assert np.isfinite(out["estimate"]).all()
    # grade-tonnage by hand on a two-block model
    grid = estimator.BlockGrid((0, 0, 0), (10, 10, 10), (2, 1, 1))
    ds = estimator.make_block_model(grid, ["ore"], ["au"])
    ds["fraction"].values[:] = 1.0
    ds["au"].values[0, 0, 0] = [1.0, 3.0]
    gt = estimator.grade_tonnage(ds, "au", [0, 2], 2.5, grid.block_volume, metal_factor=1.0)
    assert gt["tonnes"].tolist() == [5000.0, 2500.0]
    assert gt["grade"].tolist() == [2.0, 3.0]


def _points_config(folder: Path) -> dict:
    rng = np.random.default_rng(7)
    pd.DataFrame({"hole_id": np.repeat([f"H{i}" for i in range(20)], 10),
                  "x": np.repeat(rng.uniform(0, 100, 20), 10),
                  "y": np.repeat(rng.uniform(0, 100, 20), 10),
                  "z": np.tile(-np.arange(10) * 2.0 - 1.0, 20),
                  "au": np.round(rng.lognormal(0, 0.5, 200), 3)}).to_csv(
        folder / "points.csv", index=False)  # fmt: skip
    return {
        "name": "api",
        "data": {"samples": str(folder / "points.csv"), "grade_unit": "g/t"},
        "grades": ["au"],
        "variography": {"all": {"au": {"model": {"nugget": 0.05, "structures": [
            {"type": "spherical", "sill": 0.2, "ranges": [60, 60, 20]}]}}}},
        "block_model": {"origin": [0, 0, -20], "block_size": [10, 10, 5], "shape": [10, 10, 4]},
        "estimation": {"passes": [{"ranges": [60, 60, 20], "min_samples": 2, "max_samples": 12}]},
        "report": {"cutoffs": [0, 1]},
        "compute": {"scheduler": "synchronous"},
        "output": str(folder / "run"),
    }  # fmt: skip


def test_run_in_memory_equals_the_command_line_run(tmp_path):
    raw = _points_config(tmp_path)
    mem = estimator.run(raw, in_memory=True)
    assert mem.folder is None
    assert not (tmp_path / "run").exists()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    from estimator.cli import main

    assert main(["run", str(cfg), "--quiet"]) == 0
    cli = pd.read_csv(tmp_path / "run" / "grade_tonnage.csv")
    pd.testing.assert_frame_equal(mem.grade_tonnage.reset_index(drop=True), cli,
                                  check_dtype=False)  # fmt: skip
    assert mem.blockmodel["au"].shape == (1, 4, 10, 10)
    assert set(mem.models) == {"all"} and len(mem.composites) == 200


def test_run_to_a_folder_reuses_the_next_time(tmp_path):
    raw = _points_config(tmp_path)
    first = estimator.run(raw)
    assert first.folder == tmp_path / "run"
    again = estimator.run(estimator.parse_config(raw))
    assert {s["status"] for s in again.stages.values()} == {"reused"}
    assert np.isfinite(again.blockmodel["au"].values).sum() > 0


def test_all_lists_every_lazy_name():
    errors = {"ConfigError", "DataError", "EstimationWarning", "EstimatorError", "__version__"}
    assert set(estimator.__all__) == set(estimator._LAZY) | errors
