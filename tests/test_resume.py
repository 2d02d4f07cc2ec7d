"""Resume: a chunked estimate killed midway restarts where it stopped, bit for bit.

A subprocess running the engine is killed with SIGKILL after some chunks are recorded (and a
torn chunk file is left behind); the rerun keeps exactly the recorded chunks, computes the rest
and ends with the store of an uninterrupted run. Changed or removed chunk files are recomputed;
another plan id starts afresh.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import numpy.testing as npt
import pytest

from estimator.io.blockstore import RECORDS, open_block_model
from test_chunked import case_wireframes, make_plan, run_store

TESTS = Path(__file__).parent
CHUNKS = (6, 5, 3)


@pytest.fixture(scope="module")
def plan():
    return make_plan(case_wireframes(), CHUNKS)


@pytest.fixture(scope="module")
def uninterrupted(plan, tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "blockmodel.zarr"
    store, counts = run_store(plan, path, "plan-A")
    return store, counts


def _records(path: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((path / RECORDS).glob("*.json"))}


def assert_same_store(a: Path, b: Path):
    da, db = open_block_model(a).compute(), open_block_model(b).compute()
    assert set(da.variables) == set(db.variables)
    for name in da.variables:
        npt.assert_array_equal(da[name].values, db[name].values, err_msg=name, strict=True)
    ra, rb = _records(a), _records(b)
    assert ra.keys() == rb.keys()
    for key in ra:
        assert ra[key]["sha256"] == rb[key]["sha256"], key
        assert ra[key]["summary"] == rb[key]["summary"], key


def _computed(plan, path, plan_id="plan-A", **kwargs):
    done = []
    _, counts = run_store(
        plan, path, plan_id, on_chunk=lambda index, summary: done.append(index), **kwargs
    )
    return done, counts


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_chunked import case_wireframes, make_plan, run_store

    def on_chunk(index, summary):
        on_chunk.n += 1
        if on_chunk.n == {kill_after}:
            os.kill(os.getpid(), signal.SIGKILL)  # as a crash or `kill -9`: no clean-up at all
    on_chunk.n = 0
    run_store(make_plan(case_wireframes(), {chunks!r}), {path!r}, "plan-A", on_chunk=on_chunk)
    """
)


def test_killed_run_resumes_bit_for_bit(plan, uninterrupted, tmp_path):
    path = tmp_path / "blockmodel.zarr"
    kill_after = 4
    script = SCRIPT.format(tests=str(TESTS), kill_after=kill_after, chunks=CHUNKS, path=str(path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    planned = plan.touched_chunks()
    recorded = sorted(_records(path))
    assert len(recorded) == kill_after < len(planned)
    before = {p.name: p.stat().st_mtime_ns for p in (path / RECORDS).glob("*.json")}
    # a chunk whose data were being written when the process died: a torn file, no record
    torn_index = planned[kill_after]
    k, j, i = torn_index
    torn = path / "pd" / "c" / "0" / str(k) / str(j) / str(i)
    torn.parent.mkdir(parents=True, exist_ok=True)
    torn.write_bytes(os.urandom(37))

    done, counts = _computed(plan, path)
    assert counts["chunks"] == {"planned": len(planned), "computed": len(planned) - kill_after,
                                "reused": kill_after}  # fmt: skip
    kept = {idx for idx in planned if f"z{idx[0]}_y{idx[1]}_x{idx[2]}.json" in before}
    assert sorted(done) == sorted(set(planned) - kept)  # only the missing chunks
    assert torn_index in done
    for name, mtime in before.items():  # kept records untouched
        assert (path / RECORDS / name).stat().st_mtime_ns == mtime
    assert_same_store(path, uninterrupted[0].path)
    full = {k: v for k, v in uninterrupted[1].items() if k != "chunks"}
    assert {k: v for k, v in counts.items() if k != "chunks"} == full


def test_interrupted_threads_run_resumes(plan, uninterrupted, tmp_path):
    path = tmp_path / "blockmodel.zarr"

    def stop(index, summary):
        raise KeyboardInterrupt  # Ctrl-C after the first finished chunk

    with pytest.raises(KeyboardInterrupt):
        run_store(plan, path, "plan-A", scheduler="threads", num_workers=2, on_chunk=stop)
    n = len(_records(path))
    assert 1 <= n < len(plan.touched_chunks())
    done, counts = _computed(plan, path, scheduler="threads", num_workers=2)
    assert counts["chunks"]["reused"] == n and len(done) == len(plan.touched_chunks()) - n
    assert_same_store(path, uninterrupted[0].path)


def _copy_store(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_changed_or_removed_chunk_files_are_recomputed(plan, uninterrupted, tmp_path):
    path = _copy_store(uninterrupted[0].path, tmp_path / "blockmodel.zarr")
    files = sorted(f for f in (path / "pt_kv" / "c").rglob("*") if f.is_file())
    changed, removed = files[0], files[-1]
    raw = bytearray(changed.read_bytes())
    raw[-5] ^= 0x5A  # one byte changed
    changed.write_bytes(bytes(raw))
    removed.unlink()
    hit = {tuple(int(p) for p in f.relative_to(path / "pt_kv" / "c").parts[1:])
           for f in (changed, removed)}  # fmt: skip
    done, counts = _computed(plan, path)
    assert set(done) == hit and counts["chunks"]["computed"] == len(hit)
    assert_same_store(path, uninterrupted[0].path)


def test_another_plan_id_starts_afresh(plan, uninterrupted, tmp_path):
    path = _copy_store(uninterrupted[0].path, tmp_path / "blockmodel.zarr")
    (path / "pd" / "c").rename(path / "pd-stale")  # would be kept under the old id
    done, counts = _computed(plan, path, plan_id="plan-B")
    assert counts["chunks"]["reused"] == 0 and len(done) == len(plan.touched_chunks())
    assert {r["plan_id"] for r in _records(path).values()} == {"plan-B"}
    assert not (path / "pd-stale").exists()
    a, b = open_block_model(path).compute(), open_block_model(uninterrupted[0].path).compute()
    for name in a.data_vars:
        npt.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert np.isfinite(a["pd"].values).any()
