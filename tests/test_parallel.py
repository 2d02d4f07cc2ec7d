"""Tests for estimator.kriging.parallel: dask results equal the eager kernel, bit for bit.

The eager reference is one direct call of ``estimate_blocks`` over every block of a domain with
every sample. Each scheduler (synchronous, threads, processes, an in-process and a multi-process
``distributed.LocalCluster``, and a real ``dask scheduler`` + ``dask worker`` pair started from
the command line) and each chunking must reproduce it exactly (``assert_array_equal``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import numpy.testing as npt
import pytest

from estimator.blockmodel.grid import BlockGrid, make_block_model
from estimator.errors import EstimationWarning
from estimator.kriging.estimate import SearchPass, estimate_blocks
from estimator.kriging.parallel import (
    OUTPUT_SUFFIX,
    chunk_slices,
    estimate_block_model,
    plan_chunks,
    search_reach,
)
from estimator.variography.models import Structure, VariogramModel

GRID = BlockGrid((1000.0, 5000.0, 200.0), (10.0, 10.0, 5.0), (16, 12, 6), rotation=25.0)
DOMAINS = ["main", "west", "empty"]
GRADES = ["pd", "pt"]
MODEL = VariogramModel(
    0.15,
    (
        Structure("spherical", 0.5, (60.0, 40.0, 15.0), (30.0, -10.0, 0.0)),
        Structure("spherical", 0.35, (150.0, 90.0, 30.0), (30.0, -10.0, 0.0)),
    ),
)
PASSES = (
    SearchPass((50.0, 35.0, 12.0), (30.0, -10.0, 0.0), min_samples=6, max_samples=16, max_per_hole=4),
    SearchPass((100.0, 70.0, 24.0), (30.0, -10.0, 0.0), min_samples=3, max_samples=16,
               max_per_octant=4, min_octants=2),
)  # fmt: skip
CHUNKS = (5, 4, 3)


def _drillholes(rng, n_holes=40, per_hole=15):
    """Vertical-ish synthetic holes around the grid; string hole ids, lognormal grades."""
    centre = np.array(GRID.to_world(1080.0, 5060.0))
    collars = centre + rng.uniform(-110, 110, size=(n_holes, 2))
    xyz, holes = [], []
    for h, (x, y) in enumerate(collars):
        depth = np.arange(per_hole) * 2.0
        xyz.append(np.column_stack([x + 0.1 * depth, y - 0.05 * depth, 232.0 - depth]))
        holes += [f"DH{h:03d}"] * per_hole
    xyz = np.vstack(xyz)
    pd_ = rng.lognormal(0.0, 0.8, len(xyz))
    pt = 0.3 * pd_ + rng.lognormal(-1.0, 0.5, len(xyz))
    pt[rng.uniform(size=len(xyz)) < 0.1] = np.nan  # missing assays are dropped
    return xyz, {"pd": pd_, "pt": pt}, np.array(holes)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    xyz, grades, holes = _drillholes(rng)
    ds = make_block_model(GRID, DOMAINS, GRADES)
    nx, ny, nz = GRID.shape
    frac = np.zeros((len(DOMAINS), nz, ny, nx))
    frac[0, :, :, 4:] = rng.uniform(0.05, 1.0, size=(nz, ny, nx - 4))
    frac[0, :, :, 4:][rng.uniform(size=(nz, ny, nx - 4)) < 0.2] = 0.0
    frac[1, 1:5, 2:10, 0:6] = 1.0
    ds["fraction"].values[:] = frac
    west = xyz[:, 0] < np.median(xyz[:, 0])
    comps = {
        "main": {g: (xyz, v, holes) for g, v in grades.items()},
        "west": {"pd": (xyz[west], grades["pd"][west], holes[west])},
    }
    return ds, comps


def _eager(ds, comps, method="ok", sk_mean=None):
    """One direct estimate_blocks call per domain and grade over all its blocks."""
    out = {}
    offsets = GRID.discretisation_offsets((3, 3, 3))
    for di, domain in enumerate(DOMAINS):
        if domain not in comps:
            continue
        iz, iy, ix = np.nonzero(ds["fraction"].values[di] > 0)
        targets = GRID.block_centres(iz, iy, ix)
        for grade, (xyz, values, holes) in comps[domain].items():
            keep = np.isfinite(values)
            _, codes = np.unique(holes.astype(str), return_inverse=True)
            res = estimate_blocks(
                targets, offsets, xyz[keep], values[keep], codes[keep], MODEL, PASSES,
                method=method, sk_mean=sk_mean,
            )  # fmt: skip
            out[(di, grade)] = ((iz, iy, ix), res)
    return out


@pytest.fixture(scope="module")
def eager(problem):
    return _eager(*problem)


def _assert_equal_to_eager(result, ds, eager):
    for (di, grade), (idx, res) in eager.items():
        for key, suffix in OUTPUT_SUFFIX.items():
            if key not in res:  # "flag" is added per chunk (tests/test_flags.py)
                continue
            var = result[f"{grade}{suffix}"].values[di]
            npt.assert_array_equal(var[idx], res[key], err_msg=f"{DOMAINS[di]} {grade}{suffix}")
            outside = np.ones(var.shape, bool)
            outside[idx] = False
            npt.assert_array_equal(var[outside], ds[f"{grade}{suffix}"].values[di][outside])
    # Domains and grades without composites are left as they were.
    npt.assert_array_equal(result["pt"].values[1], ds["pt"].values[1])
    npt.assert_array_equal(result["fraction"].values, ds["fraction"].values)
    assert np.isnan(result["pd"].values[2]).all()


def _run(problem, scheduler, chunks=CHUNKS, **kwargs):
    ds, comps = problem
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        return estimate_block_model(
            ds, GRID, comps, MODEL, {"main": PASSES, "west": PASSES}, method=kwargs.pop("method", "ok"),
            discretisation=(3, 3, 3), scheduler=scheduler, chunks=chunks, **kwargs,
        )  # fmt: skip


def test_reference_is_meaningful(problem, eager):
    (_, res) = eager[(0, "pd")]
    assert np.isfinite(res["estimate"]).mean() > 0.9
    assert set(np.unique(res["pass"])) >= {1, 2}
    assert (res["n"] > 0).any()


@pytest.mark.parametrize("scheduler", ["synchronous", "threads", "processes"])
def test_local_schedulers_equal_eager(problem, eager, scheduler):
    result, failures = _run(problem, scheduler)
    _assert_equal_to_eager(result, problem[0], eager)
    assert set(failures) == {"main", "west"}
    for (di, grade), (_, res) in eager.items():
        assert failures[DOMAINS[di]][grade] == res["failures"]


@pytest.mark.parametrize("chunks", [(1, 1, 100), (3, 5, 2), (7, 12, 1), (100, 100, 100), None])
def test_chunkings_equal_eager(problem, eager, chunks):
    result, _ = _run(problem, "threads", chunks=chunks)
    _assert_equal_to_eager(result, problem[0], eager)


@pytest.mark.parametrize("method", ["sk", "idw", "nn"])
def test_other_methods_equal_eager(problem, method):
    ds, comps = problem
    expected = _eager(ds, comps, method=method, sk_mean=1.3)
    result, _ = _run(problem, "threads", method=method, sk_mean={"main": 1.3, "west": {"pd": 1.3}})
    _assert_equal_to_eager(result, ds, expected)


def test_dask_backed_block_model(problem, eager):
    ds, comps = problem
    chunked = ds.chunk({"domain": 1, "z": 2, "y": 5, "x": 7})
    result, _ = _run((chunked, comps), "synchronous")
    _assert_equal_to_eager(result, ds, eager)


@pytest.mark.parametrize("processes", [False, True], ids=["inprocess", "processes"])
def test_local_cluster_equals_eager(problem, eager, processes):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=processes, dashboard_address=None,
            host="127.0.0.1" if processes else None,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):  # fmt: skip
        by_address, _ = _run(problem, cluster.scheduler_address)
        by_client, _ = _run(problem, client, progress=True)
    _assert_equal_to_eager(by_address, problem[0], eager)
    _assert_equal_to_eager(by_client, problem[0], eager)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """A real ``dask scheduler`` and ``dask worker`` on localhost, started from the CLI."""
    pytest.importorskip("distributed.cli.dask_scheduler", reason="dask scheduler CLI unavailable")
    pytest.importorskip("distributed.cli.dask_worker", reason="dask worker CLI unavailable")
    tmp = tmp_path_factory.mktemp("dask-cli")
    sched_file = tmp / "scheduler.json"
    logs = [open(tmp / "scheduler.log", "wb"), open(tmp / "worker.log", "wb")]  # noqa: SIM115
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                 "--port", str(_free_port()), "--no-dashboard", "--scheduler-file", str(sched_file)],
                stdout=logs[0], stderr=subprocess.STDOUT, cwd=tmp,
            )
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            if procs[0].poll() is not None or time.monotonic() > deadline:
                pytest.skip(
                    f"dask scheduler did not start: {Path(tmp / 'scheduler.log').read_text()[-500:]}"
                )
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                 "--nworkers", "1", "--nthreads", "2", "--no-dashboard", "--no-nanny",
                 "--local-directory", str(tmp)],
                stdout=logs[1], stderr=subprocess.STDOUT, cwd=tmp,
            )
        )  # fmt: skip
        from distributed import Client

        with Client(address, set_as_default=False, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for f in logs:
            f.close()


def test_cli_scheduler_address_equals_eager(problem, eager, cli_cluster):
    assert cli_cluster.startswith("tcp://127.0.0.1:")
    result, _ = _run(problem, cli_cluster, chunks=(8, 6, 3))
    _assert_equal_to_eager(result, problem[0], eager)


def test_failures_warn_once(problem):
    ds, comps = problem
    far = {
        "main": {
            "pd": (
                comps["main"]["pd"][0] + [1e4, 0, 0],
                comps["main"]["pd"][1],
                comps["main"]["pd"][2],
            )
        }
    }
    with pytest.warns(EstimationWarning, match=r"\d+ blocks not estimated") as record:
        result, failures = estimate_block_model(
            ds, GRID, far, MODEL, PASSES, scheduler="synchronous", chunks=CHUNKS
        )
    assert len([w for w in record if issubclass(w.category, EstimationWarning)]) == 1
    assert failures["main"]["pd"]["too_few"] == int((ds["fraction"].values[0] > 0).sum())
    assert np.isnan(result["pd"].values).all()
    assert (result["pd_pass"].values == 0).all()


def test_progress_bar(problem, capsys):
    _run(problem, "synchronous", chunks=(16, 12, 6), progress=True)
    assert "100%" in capsys.readouterr().err


def test_bad_inputs(problem):
    ds, comps = problem
    with pytest.raises(KeyError, match="not in the block model"):
        estimate_block_model(
            ds, GRID, {"nowhere": comps["west"]}, MODEL, PASSES, scheduler="synchronous"
        )
    with pytest.raises(ValueError, match=r"compute\.scheduler"):
        estimate_block_model(ds, GRID, comps, MODEL, PASSES, scheduler="cluster", chunks=CHUNKS)
    with pytest.raises(KeyError, match="no search passes for domain 'west'"):
        estimate_block_model(ds, GRID, comps, MODEL, {"main": PASSES}, scheduler="synchronous")
    other = BlockGrid(GRID.origin, GRID.block_size, (3, 3, 3))
    with pytest.raises(ValueError, match="do not match the grid shape"):
        estimate_block_model(ds, other, comps, MODEL, PASSES, scheduler="synchronous")


def test_chunk_planning():
    slices = chunk_slices((5, 7, 9), (4, 3, 2))  # chunks given as (x, y, z)
    covered = np.zeros((5, 7, 9), int)
    for s in slices:
        covered[s] += 1
    assert (covered == 1).all()
    assert slices[0] == (slice(0, 2), slice(0, 3), slice(0, 4))
    assert len(slices) == 3 * 3 * 3

    grid = BlockGrid((0.0, 0.0, 0.0), (10.0, 10.0, 10.0), (20, 1, 1))
    reach = search_reach(PASSES, grid)
    assert reach == 100.0 + grid.half_diagonal
    frac = np.ones((1, 1, 20))
    frac[0, 0, 5:10] = 0.0  # a chunk with no block in the domain is skipped
    samples = np.array([[5.0, 5.0, 5.0], [195.0, 5.0, 5.0], [70.0, 5.0, 5.0]])
    tasks = plan_chunks(frac, grid, samples, 40.0, (5, 1, 1))
    assert [t.flat.tolist() for t in tasks] == [
        [0, 1, 2, 3, 4],
        [10, 11, 12, 13, 14],
        [15, 16, 17, 18, 19],
    ]
    # Each chunk gets the samples within its blocks' centre span +- reach, in original order.
    assert [t.sample_index.tolist() for t in tasks] == [[0, 2], [2], [1]]


def test_connect_cluster_starts_a_loopback_cluster_that_closing_stops():
    from estimator.kriging.parallel import connect

    client = connect("cluster", workers=1)
    try:
        info = client.scheduler_info()
        assert info["address"].startswith("tcp://127.0.0.1:")
        # its only HTTP server (health and metrics; no dashboard) listens on loopback too
        hosts = client.run_on_scheduler(
            lambda dask_scheduler: sorted(
                {s.getsockname()[0] for s in dask_scheduler.http_server._sockets.values()}
            )
        )
        assert hosts == ["127.0.0.1"]
        (address, worker), *others = info["workers"].items()
        assert not others
        assert address.startswith("tcp://127.0.0.1:") and worker["nthreads"] == 1
        cluster = client.cluster
    finally:
        client.close()
    assert cluster.status.name == "closed"
    assert connect("threads") is None and connect("synchronous") is None


def test_security_from_config(tmp_path):
    from types import SimpleNamespace

    from estimator.kriging.parallel import security_from_config

    files = {}
    for name in ("ca.pem", "cert.pem", "key.pem"):
        files[name] = tmp_path / name
        files[name].write_text("-----BEGIN CERTIFICATE-----\n")
    sec = security_from_config(
        SimpleNamespace(ca_file=files["ca.pem"], cert_file=files["cert.pem"], key_file=None)
    )
    assert sec.tls_ca_file == str(files["ca.pem"])
    assert sec.tls_client_cert == str(files["cert.pem"]) and sec.tls_client_key is None
    assert sec.require_encryption
    assert security_from_config(sec) is sec and security_from_config(None) is None
