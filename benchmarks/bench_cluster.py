"""Throughput of the chunked estimate on a dask.distributed LocalCluster: 1 and 2 workers.

The synthetic deposit of ``bench_memory.py`` (smaller by default) is estimated into a Zarr
store on a LocalCluster of 1, then 2 worker processes of one thread each (loopback only, no
dashboard). Each cluster first runs a small warm-up estimate, so process start-up, imports and
loading the compiled kernels are not timed. Printed: seconds and kriged blocks per second for
each, and the speed-up ratio (2 workers / 1 worker; 2.0 is perfect scaling).

    python benchmarks/bench_cluster.py
    python benchmarks/bench_cluster.py --shape 400 320 60 --workers 1 2

"Workers busy" is the workers' CPU time over workers x wall time: well under 100 % means the
machine's cores were shared with other work (the load average says so), which caps the ratio.

This is a benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory import make_problem


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(client, plan, out: Path) -> tuple[float, dict]:
    from estimator.errors import EstimationWarning
    from estimator.kriging.chunked import estimate_to_store

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        _, counts = estimate_to_store(plan, out, f"bench-{out.name}", scheduler=client)
    return time.perf_counter() - t0, counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[400, 300, 60])
    parser.add_argument("--holes", type=int, nargs=2, default=[30, 24])
    parser.add_argument("--per-hole", type=int, default=60)
    parser.add_argument("--chunks", type=int, nargs=3, default=[48, 48, 30])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)  # fmt: skip

    from distributed import Client, LocalCluster

    from estimator.kriging.chunked import ChunkPlan

    cfg, comps, models, wires = make_problem(
        tuple(args.shape), tuple(args.holes), args.per_hole, tuple(args.chunks), "cluster"
    )
    plan = ChunkPlan.from_config(cfg, comps, models, wires)
    small = make_problem((64, 64, 20), (8, 8), 30, (16, 16, 10), "cluster")
    warm = ChunkPlan.from_config(*small)
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    results = {}
    try:
        for n in args.workers:
            with (
                LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                             host="127.0.0.1", dashboard_address=None) as cluster,
                Client(cluster, set_as_default=False) as client,
            ):  # fmt: skip
                run(client, warm, tmp / f"warm{n}.zarr")
                cpu0 = sum(client.run(_cpu_seconds).values())
                main0 = _cpu_seconds()
                load0 = os.getloadavg()[0]
                seconds, counts = run(client, plan, tmp / f"run{n}.zarr")
                cpu = sum(client.run(_cpu_seconds).values()) - cpu0
                main = _cpu_seconds() - main0
            kriged = sum(
                sum(v for k, v in g.items() if k.isdigit())
                for per in counts["estimated_by_pass"].values() for g in per.values()
            )  # fmt: skip
            results[n] = seconds
            print(f"{n} worker(s): {seconds:7.1f} s  {kriged / seconds:10,.0f} kriged blocks/s  "
                  f"({kriged:,} blocks, {counts['chunks']['planned']} chunks); workers busy "
                  f"{cpu / (n * seconds):.0%} of their wall time (CPU {cpu:.1f} s); client and "
                  f"scheduler CPU {main:.1f} s; load average before {load0:.2f}", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"grid {args.shape}, {len(comps):,} composites, chunks {tuple(args.chunks)}, "
          f"{os.cpu_count()} cores")  # fmt: skip
    if 1 in results and len(results) > 1:
        for n, s in results.items():
            if n != 1:
                print(f"speed-up with {n} workers: {results[1] / s:.2f} (ideal {n})")


if __name__ == "__main__":
    main()
