"""A run folder always describes its own block model: other commands write their own files,
a killed or failed rerun never mixes two runs, and user mistakes are exit 2 before any work."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from estimator import pipeline
from estimator.cli import main
from estimator.io.output import file_sha256


def _points(folder: Path, seed=7) -> None:
    rng = np.random.default_rng(seed)
    holes = np.repeat([f"H{i:02d}" for i in range(20)], 10)
    pts = pd.DataFrame(
        {
            "BHID": holes,
            "X": np.repeat(rng.uniform(0, 100, 20), 10),
            "Y": np.repeat(rng.uniform(0, 100, 20), 10),
            "Z": np.tile(-np.arange(10) * 2.0 - 1.0, 20),
            "AU": np.round(rng.lognormal(0, 0.5, 200), 3),
        }
    )
    pts.to_csv(folder / "points.csv", index=False)


def _config(folder: Path, **extra) -> Path:
    _points(folder)
    cfg = {
        "name": "points",
        "data": {"samples": "points.csv", "length_unit": "m", "grade_unit": "g/t"},
        "grades": ["au"],
        "variography": {"all": {"au": {"model": {"nugget": 0.05, "structures": [
            {"type": "spherical", "sill": 0.2, "ranges": [60, 60, 20]}]}}}},
        "block_model": {"origin": [0, 0, -20], "block_size": [10, 10, 5], "shape": [10, 10, 4]},
        "estimation": {"passes": [{"ranges": [60, 60, 20], "min_samples": 2, "max_samples": 12}]},
        "report": {"cutoffs": [0, 1]},
        "compute": {"scheduler": "synchronous"},
        "output": "run",
    }  # fmt: skip
    cfg.update(extra)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def finished(tmp_path):
    """A finished run: (config path, run folder, {file: sha256})."""
    cfg = _config(tmp_path)
    assert main(["run", str(cfg), "--quiet"]) == 0
    run = tmp_path / "run"
    return cfg, run, _hashes(run)


def _hashes(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_run_json_records_every_output_with_its_hash(finished):
    _, run, hashes = finished
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "finished" and meta["command"] == "run"
    assert meta["outputs"] == {k: v for k, v in hashes.items() if k != "run.json"}
    assert not list(run.glob(".*"))  # no staging folder, lock or temporary file left


def test_check_and_intercepts_never_touch_the_run(finished, capsys):
    cfg, run, hashes = finished
    assert main(["check", str(cfg)]) == 0
    assert (run / "check" / "data_report.csv").is_file()
    after = {k: v for k, v in _hashes(run).items() if not k.startswith("check/")}
    assert after == hashes
    assert "data_report.csv" in capsys.readouterr().out


def test_intercepts_write_their_own_folder(tmp_path, capsys):
    demo = Path(__file__).resolve().parents[1] / "configs" / "demo"
    for p in demo.iterdir():
        if p.is_file():
            shutil.copy(p, tmp_path / p.name)
    raw = yaml.safe_load((tmp_path / "demo.yaml").read_text())
    raw["output"] = "run"
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(raw))
    cfg = tmp_path / "demo.yaml"
    assert main(["run", str(cfg), "--until", "composites", "--quiet"]) == 0
    run = tmp_path / "run"
    hashes = _hashes(run)
    assert main(["intercepts", str(cfg), "--tranche", "2011-09-14"]) == 0
    assert (run / "intercepts" / "intercepts.csv").is_file()
    assert (run / "intercepts" / "data_report.csv").is_file()
    assert {k: v for k, v in _hashes(run).items() if not k.startswith("intercepts/")} == hashes
    out = capsys.readouterr().out
    assert "2011-09-14" in out


def test_check_refuses_to_write_into_a_run_folder(finished, capsys):
    cfg, run, hashes = finished
    assert main(["check", str(cfg), "--out", str(run), "--quiet"]) == 2
    assert "is the folder of an estimator run" in capsys.readouterr().err
    assert _hashes(run) == hashes


def test_report_cutoffs_are_kept_side_by_side(finished, capsys):
    _, run, hashes = finished
    assert main(["report", str(run), "--cutoffs", "0", "0.5", "--quiet"]) == 0
    assert main(["report", str(run), "--cutoffs", "2", "1", "--quiet"]) == 0
    a = pd.read_csv(run / "reports" / "cutoffs-0_0.5" / "grade_tonnage.csv")
    b = pd.read_csv(run / "reports" / "cutoffs-1_2" / "grade_tonnage.csv")
    assert sorted(set(a["cutoff"])) == [0.0, 0.5]
    assert sorted(set(b["cutoff"])) == [1.0, 2.0]
    assert (run / "reports" / "cutoffs-1_2" / "plots" / "grade_tonnage.png").is_file()
    after = {k: v for k, v in _hashes(run).items() if not k.startswith("reports/")}
    assert after == hashes  # the run's own grade_tonnage.csv and plot are unchanged
    out = capsys.readouterr().out
    assert "cutoffs-1_2" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cutoffs", "abc"], "'abc' is not a number"),
        (["--cutoffs", "-1"], "a cut-off is a grade of zero or more"),
        (["--cutoffs", "nan"], "a cut-off is a grade of zero or more"),
    ],
    ids=["text", "negative", "nan"],
)
def test_report_bad_cutoffs_exit_2_naming_the_argument(finished, capsys, args, message):
    _, run, _ = finished
    with pytest.raises(SystemExit) as info:
        main(["report", str(run), *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--cutoffs" in err and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate_blockmodel", "not the file this run wrote"),
        ("foreign_blockmodel", "not the file this run wrote"),
        ("empty_run_json", "(run.json) is empty"),
        ("truncated_run_json", "not valid JSON"),
        ("new_composites", "not the file this run wrote"),
    ],
)
def test_report_refuses_a_folder_whose_files_disagree(finished, tmp_path, capsys, damage, message):
    _, run, _ = finished
    bm = run / "blockmodel.nc"
    if damage == "truncate_blockmodel":
        bm.write_bytes(bm.read_bytes()[:1000])
    elif damage == "foreign_blockmodel":
        other = tmp_path / "other"
        other.mkdir()
        cfg = _config(other, block_model={"origin": [0, 0, -20], "block_size": [5, 5, 5],
                                          "shape": [20, 20, 4]})  # fmt: skip
        assert main(["run", str(cfg), "--quiet"]) == 0
        shutil.copy(other / "run" / "blockmodel.nc", bm)
    elif damage == "empty_run_json":
        (run / "run.json").write_text("")
    elif damage == "truncated_run_json":
        text = (run / "run.json").read_text()
        (run / "run.json").write_text(text[: len(text) // 2])
    elif damage == "new_composites":
        (run / "composites.csv").write_text("hole_id,x\n")
    assert main(["report", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_failed_rerun_leaves_the_finished_run_untouched(finished, monkeypatch, capsys):
    cfg, run, hashes = finished

    def boom(ctx):
        raise KeyboardInterrupt

    table = tuple(
        dataclasses.replace(s, func=boom) if s.name == "estimate" else s
        for s in pipeline.STAGE_TABLE
    )
    monkeypatch.setattr(pipeline, "STAGE_TABLE", table)
    assert main(["run", str(cfg), "--quiet", "--recompute"]) == 130
    now = _hashes(run)
    assert {k: v for k, v in now.items() if not k.startswith("failed/")} == hashes
    failed = json.loads((run / "failed" / "run.json").read_text())
    assert failed["status"] == "failed" and failed["error"] == "interrupted"
    assert (run / "failed" / "composites.csv").is_file()
    monkeypatch.undo()
    assert main(["report", str(run), "--quiet"]) == 0  # the finished run still reports
    # the next successful run replaces everything, failed/ and reports/ included
    assert main(["run", str(cfg), "--quiet"]) == 0
    assert not (run / "failed").exists() and not (run / "reports").exists()


def test_rerun_until_composites_removes_the_old_block_model(finished, capsys):
    cfg, run, _ = finished
    assert main(["run", str(cfg), "--until", "composites", "--quiet"]) == 0
    assert not (run / "blockmodel.nc").exists()
    assert not (run / "grade_tonnage.csv").exists()
    assert main(["report", str(run), "--quiet"]) == 2
    assert "has no block model" in capsys.readouterr().err


def test_leftover_temporary_files_are_removed(finished):
    cfg, run, _ = finished
    (run / ".blockmodel.nc.abc123.tmp").write_bytes(b"half")
    (run / ".staging-20200101T000000-deadbeef").mkdir()
    assert main(["run", str(cfg), "--quiet"]) == 0
    assert not list(run.glob(".*"))


def test_a_live_lock_refuses_a_second_run(finished, capsys):
    cfg, run, hashes = finished
    (run / ".estimator.lock").write_text(
        json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "started": "now"})
    )
    assert main(["run", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"process {os.getpid()}" in err
    (run / ".estimator.lock").unlink()
    assert _hashes(run) == hashes


def test_a_stale_lock_is_taken_over(finished):
    cfg, run, _ = finished
    (run / ".estimator.lock").write_text(
        json.dumps({"pid": 2**22 + 12345, "host": os.uname().nodename, "started": "then"})
    )
    assert main(["run", str(cfg), "--quiet"]) == 0
    assert not (run / ".estimator.lock").exists()


@pytest.mark.parametrize("where", ["file", "under_file", "unwritable"])
def test_bad_output_folder_exits_2_before_any_work(tmp_path, capsys, monkeypatch, where):
    cfg = _config(tmp_path)
    target = tmp_path / "taken"
    target.write_text("not a folder")
    out = {"file": target, "under_file": target / "run", "unwritable": tmp_path / "ro" / "run"}[
        where
    ]
    if where == "unwritable":
        (tmp_path / "ro").mkdir(mode=0o500)
        # root may write anywhere: make the permission check answer as for a normal user
        monkeypatch.setattr("estimator.io.output.os.access", lambda p, mode: False)
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "Traceback" not in err
    assert target.read_text() == "not a folder"


def test_output_holding_an_input_is_refused(tmp_path, capsys):
    cfg = _config(tmp_path)
    raw = yaml.safe_load(cfg.read_text())
    shutil.copy(tmp_path / "points.csv", tmp_path / "composites.csv")
    raw["data"]["samples"] = "composites.csv"
    raw["output"] = "."
    cfg.write_text(yaml.safe_dump(raw))
    before = (tmp_path / "composites.csv").read_bytes()
    assert main(["run", str(cfg), "--quiet"]) == 2
    assert "that the run would overwrite" in capsys.readouterr().err
    assert (tmp_path / "composites.csv").read_bytes() == before


def test_bogus_scheduler_exits_2_before_any_stage(tmp_path, capsys):
    cfg = _config(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["run", str(cfg), "--scheduler", "bogus"])
    assert info.value.code == 2
    assert "--scheduler" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_unreachable_scheduler_exits_2_before_any_stage(tmp_path, capsys):
    cfg = _config(tmp_path, compute={"scheduler": "threads", "connect_timeout": 1})
    assert main(["run", str(cfg), "--scheduler", "tcp://127.0.0.1:9", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:9" in err
    assert not (tmp_path / "run").exists()


def test_quiet_prints_warnings_only(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["run", str(cfg), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "done in" not in err and "Reading" not in err
    assert "no wireframe, block rule or topography" in err  # a warning still shows
    assert main(["run", str(cfg), "--out", str(tmp_path / "loud")]) == 0
    out, err = capsys.readouterr()
    assert "Resource, au" in out and "done in" in err


def test_first_run_says_it_compiles(tmp_path, capsys, monkeypatch):
    cfg = _config(tmp_path)
    monkeypatch.setattr("estimator.cli._numba_cache_is_cold", lambda: True)
    assert main(["run", str(cfg), "--until", "data"]) == 0
    assert "compiling the numerical kernels" in capsys.readouterr().err
    monkeypatch.setattr("estimator.cli._numba_cache_is_cold", lambda: False)
    assert main(["run", str(cfg), "--until", "data"]) == 0
    assert "compiling" not in capsys.readouterr().err


def test_variography_shows_progress_per_model(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["run", str(cfg), "--until", "variograms"]) == 0
    err = capsys.readouterr().err
    assert "all au (1 of 1)" in err


def test_batch_runs_every_config_and_names_the_failed_one(tmp_path, capsys):
    good = _config(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    second = _config(other, name="second")
    bad = tmp_path / "bad.yaml"
    raw = yaml.safe_load(good.read_text())
    raw["estimation"]["passes"][0]["max_samples"] = 0
    raw["output"] = "bad-run"
    bad.write_text(yaml.safe_dump(raw))
    rc = main(["run", str(good), str(bad), str(second), "--quiet"])
    assert rc == 2
    out = capsys.readouterr().out
    assert "3 configs: 2 done, 1 failed" in out
    assert f"FAILED {bad}" in out
    assert (tmp_path / "run" / "blockmodel.nc").is_file()
    assert (other / "run" / "blockmodel.nc").is_file()  # the run after the failed one ran
    assert not (tmp_path / "bad-run").exists()


def test_batch_refuses_one_out_for_many(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["run", str(cfg), str(cfg), "--out", str(tmp_path / "x")]) == 2
    assert "--out names one run folder" in capsys.readouterr().err
