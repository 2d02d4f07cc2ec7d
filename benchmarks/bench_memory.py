"""Peak memory of a chunked estimate: a model that never has to fit in memory.

A synthetic deposit (a tabular ore body as a closed wireframe, vertical drillholes on a
regular pattern, lognormal grades) is estimated by ordinary kriging into a Zarr store with
``estimator.kriging.chunked.estimate_to_store``, then reported by the streaming grade-tonnage.
The default problem has 20,000,000 blocks and 200,000 composites. Printed: the time and
blocks per second of each step, and the peak memory of the whole process tree (this process
and every worker process it starts), sampled from /proc every 0.1 s, with each process's own
high-water mark (VmHWM).

    python benchmarks/bench_memory.py                       # 2 worker processes
    python benchmarks/bench_memory.py --scheduler threads   # one process, 2 threads
    python benchmarks/bench_memory.py --shape 200 200 50 --holes 40 40   # a quick look

This is a benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


# ---------------------------------------------------------------------------------------
# memory of the process tree
# ---------------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(_children(p))
    return seen


def _status(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` field in bytes (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeMemory:
    """Samples the summed RSS of this process and all its descendants."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.peak = 0
        self.hwm: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            total = 0
            for pid in _tree(os.getpid()):
                total += _status(pid, "VmRSS")
                self.hwm[pid] = max(self.hwm.get(pid, 0), _status(pid, "VmHWM"))
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


# ---------------------------------------------------------------------------------------
# the synthetic deposit
# ---------------------------------------------------------------------------------------
def _box(lo, hi):
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    v = np.array(
        [[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0],
         [x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]], dtype=float
    )  # fmt: skip
    f = np.array(
        [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
         [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]]
    )  # fmt: skip
    return SimpleNamespace(vertices=v, faces=f)


def make_problem(shape, holes, per_hole, chunks, scheduler, block=(5.0, 5.0, 5.0), seed=0):
    """Config, composites, models and wireframe of the synthetic deposit."""
    from estimator.config import parse_config
    from estimator.variography.models import Structure, VariogramModel

    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    dx, dy, dz = block
    ex, ey, ez = nx * dx, ny * dy, nz * dz
    lo = np.array([0.04 * ex, 0.05 * ey, 0.35 * ez])
    hi = np.array([0.96 * ex, 0.95 * ey, 0.65 * ez])
    hx, hy = holes
    # vertical holes on a jittered pattern, sampled every 2.5 m through the body and around it
    gx, gy = np.meshgrid((np.arange(hx) + 0.5) * ex / hx, (np.arange(hy) + 0.5) * ey / hy)
    collars = np.column_stack([gx.ravel(), gy.ravel()]) + rng.normal(0, 3, (hx * hy, 2))
    step = 2.5
    top = hi[2] + 0.5 * per_hole * step - 0.5 * (hi[2] - lo[2])
    depth = np.arange(per_hole) * step
    n = len(collars) * per_hole
    xyz = np.empty((n, 3))
    xyz[:, 0] = np.repeat(collars[:, 0], per_hole)
    xyz[:, 1] = np.repeat(collars[:, 1], per_hole)
    xyz[:, 2] = np.tile(top - depth, len(collars))
    inside = np.all((xyz >= lo) & (xyz <= hi), axis=1)
    # a smooth trend plus noise, lognormal
    trend = np.sin(xyz[:, 0] / 300.0) + np.cos(xyz[:, 1] / 220.0)
    grade = np.exp(0.4 * trend + rng.normal(0, 0.6, n))
    comps = pd.DataFrame(
        {
            "hole_id": np.repeat([f"H{i:05d}" for i in range(len(collars))], per_hole),
            "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
            "domain": np.where(inside, "ore", ""),
            "au": grade,
        }
    )  # fmt: skip
    raw = {
        "name": "bench-memory",
        "data": {"samples": "s.csv", "grade_unit": "g/t", "length_unit": "m"},
        "grades": ["au"],
        "domains": [{"name": "ore", "wireframe": "ore.obj", "density": 2.8}],
        "block_model": {"origin": [0.0, 0.0, 0.0], "block_size": list(block),
                        "shape": list(shape), "subcells": [2, 2, 2]},
        "estimation": {
            "method": "ok", "discretisation": [2, 2, 2],
            "passes": [
                {"ranges": [90, 90, 20], "angles": [0, 0, 0], "min_samples": 4,
                 "max_samples": 12, "max_per_hole": 3},
                {"scale": 2.0, "min_samples": 2, "max_samples": 12},
            ],
        },
        "classification": {"classes": [{"name": "indicated", "max_pass": 1},
                                       {"name": "inferred", "max_pass": 2}]},
        "report": {"cutoffs": [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]},
        "compute": {"scheduler": scheduler, "chunks": list(chunks)},
    }  # fmt: skip
    cfg = parse_config(raw, check_files=False)
    model = VariogramModel(
        0.2,
        (
            Structure("spherical", 0.5, (120.0, 120.0, 25.0), (0.0, 0.0, 0.0)),
            Structure("spherical", 0.3, (400.0, 300.0, 60.0), (0.0, 0.0, 0.0)),
        ),
    )
    return cfg, comps, {"ore": {"au": model}}, {"ore": _box(lo, hi)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[500, 400, 100],
                        help="blocks along x, y, z (default 500 400 100 = 20 M)")
    parser.add_argument("--holes", type=int, nargs=2, default=[50, 40],
                        help="holes along x and y (default 50 x 40 = 2,000)")
    parser.add_argument("--per-hole", type=int, default=100,
                        help="composites per hole (default 100: 200,000 composites)")
    parser.add_argument("--chunks", type=int, nargs=3, default=[64, 64, 32])
    parser.add_argument("--scheduler", default="processes",
                        help="synchronous, threads, processes (default) or cluster")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="store folder (default: a temporary one)")
    args = parser.parse_args(argv)  # fmt: skip

    from estimator.errors import EstimationWarning
    from estimator.io.blockstore import open_block_model
    from estimator.kriging.chunked import ChunkPlan, estimate_to_store
    from estimator.reporting import report_stage

    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="bench-memory-")
        out = Path(tmp) / "blockmodel.zarr"
    else:
        out = Path(args.out)
    try:
        with TreeMemory() as mem:
            t0 = time.perf_counter()
            cfg, comps, models, wires = make_problem(
                tuple(args.shape), tuple(args.holes), args.per_hole, tuple(args.chunks),
                args.scheduler,
            )  # fmt: skip
            plan = ChunkPlan.from_config(cfg, comps, models, wires)
            t1 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EstimationWarning)
                _, counts = estimate_to_store(
                    plan, out, "bench", scheduler=args.scheduler, num_workers=args.workers,
                    progress=sys.stderr.isatty(),
                )  # fmt: skip
            t2 = time.perf_counter()
            after_estimate = mem.peak
            table, _ = report_stage(cfg, open_block_model(out))
            t3 = time.perf_counter()
        n_blocks = int(np.prod(args.shape))
        inside = sum(counts["blocks_in_domains"].values())
        estimated = sum(
            sum(v for k, v in g.items() if k.isdigit())
            for per in counts["estimated_by_pass"].values() for g in per.values()
        )  # fmt: skip
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        print(f"blocks {n_blocks:,} ({args.shape[0]} x {args.shape[1]} x {args.shape[2]}), "
              f"composites {len(comps):,}, chunks {tuple(args.chunks)} "
              f"({counts['chunks']['planned']} of {int(np.prod(plan.layout().n_chunks))} "
              "touch the ore body)")
        print(f"scheduler {args.scheduler}, {args.workers} workers, {os.cpu_count()} cores")
        print(f"set-up (data, plan)        {t1 - t0:8.1f} s")
        print(f"estimate into Zarr         {t2 - t1:8.1f} s   {n_blocks / (t2 - t1):12,.0f} "
              f"grid blocks/s   {inside:,} blocks in the domain, {estimated:,} kriged: "
              f"{estimated / (t2 - t1):,.0f} kriged blocks/s")
        print(f"streaming grade-tonnage    {t3 - t2:8.1f} s   {n_blocks / (t3 - t2):12,.0f} "
              "grid blocks/s")
        print(f"store on disk              {gib(size)}")
        print(f"peak memory, process tree  {gib(mem.peak)} (sum of RSS of every process, "
              f"sampled every {mem.interval} s); {gib(after_estimate)} up to the end of the "
              "estimate")
        own = _status(os.getpid(), "VmHWM")
        others = sorted((v for p, v in mem.hwm.items() if p != os.getpid()), reverse=True)
        print(f"high-water marks           main {gib(own)}; workers "
              + (", ".join(gib(v) for v in others[:8]) or "none"))
        print(table[table["class"] == "all"].to_string(index=False))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
