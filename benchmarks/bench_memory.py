"""Peak memory of a chunked estimate: a model that never has to fit in memory.

A synthetic deposit (a tabular ore body as a closed wireframe, vertical drillholes on a
regular pattern, lognormal grades) is estimated by ordinary kriging into a Zarr store. The
default problem has 20,000,000 blocks and 200,000 composites. Two modes:

* **run** (default): the deposit is written as a positioned-samples CSV, an OBJ wireframe and a
  config (explicit variogram model, ``output: {path: run, format: zarr}``, ``compute``) in a
  folder, and a whole ``python -m estimator.cli run CONFIG --quiet`` is timed as a subprocess
  (every import and stage included). Printed: the wall and CPU time (the run and every worker it
  waited for), grid blocks/s and kriged blocks/s over the whole run and over the estimate stage
  (``run.json``'s ``timings_s``), and the peak memory of the whole process tree (the run and every
  worker process it starts), sampled from /proc every 0.1 s: the sum of RSS (shared pages counted
  once per process: an upper bound) and the sum of PSS (shared pages split between processes).
* **engine** (``--engine``): ``estimator.kriging.chunked.estimate_to_store`` is called in this
  process, then the streaming grade-tonnage; the tree is this process and its workers.

    python benchmarks/bench_memory.py                           # whole run, 2 worker processes
    python benchmarks/bench_memory.py --scheduler threads       # one process, 2 threads
    python benchmarks/bench_memory.py --scheduler cluster       # LocalCluster of 2 workers
    python benchmarks/bench_memory.py --engine                  # the engine alone
    python benchmarks/bench_memory.py --shape 200 200 50 --holes 40 40   # a quick look

This is a benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
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
def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (one scan of /proc)."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(entry))
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(kids.get(p, ()))
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


def _pss(pid: int) -> int:
    """Proportional set size of a process in bytes (0 when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeMemory:
    """Samples the summed RSS (and PSS) of a process and all its descendants.

    ``root``: the process whose tree is sampled (default: this one); it may be set after the
    sampler started (a subprocess started later).
    """

    def __init__(self, interval: float = 0.1, root: int | None = None, pss: bool = False):
        self.interval = interval
        self.root = root
        self.pss = pss
        self.peak = 0
        self.peak_pss = 0
        self.peak_procs = 0
        self.hwm: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            root = os.getpid() if self.root is None else self.root
            total = total_pss = 0
            pids = _tree(root)
            for pid in pids:
                total += _status(pid, "VmRSS")
                if self.pss:
                    total_pss += _pss(pid)
                self.hwm[pid] = max(self.hwm.get(pid, 0), _status(pid, "VmHWM"))
            self.peak = max(self.peak, total)
            self.peak_pss = max(self.peak_pss, total_pss)
            self.peak_procs = max(self.peak_procs, len(pids))
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


STRUCTURES = ((0.5, (120.0, 120.0, 25.0)), (0.3, (400.0, 300.0, 60.0)))
NUGGET = 0.2


def make_deposit(shape, holes, per_hole, chunks, scheduler, block=(5.0, 5.0, 5.0), seed=0):
    """The synthetic deposit: raw config (a dict), composites, and the ore body's corners."""
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
    return raw, comps, (lo, hi)


def make_problem(shape, holes, per_hole, chunks, scheduler, block=(5.0, 5.0, 5.0), seed=0):
    """Config, composites, models and wireframe of the synthetic deposit (for the engine)."""
    from estimator.config import parse_config
    from estimator.variography.models import Structure, VariogramModel

    raw, comps, (lo, hi) = make_deposit(shape, holes, per_hole, chunks, scheduler, block, seed)
    cfg = parse_config(raw, check_files=False)
    model = VariogramModel(
        NUGGET, tuple(Structure("spherical", s, r, (0.0, 0.0, 0.0)) for s, r in STRUCTURES)
    )
    return cfg, comps, {"ore": {"au": model}}, {"ore": _box(lo, hi)}


def write_run(folder: Path, raw: dict, comps: pd.DataFrame, box, workers: int | None) -> Path:
    """Samples CSV, OBJ wireframe and ``run.yaml`` (explicit model, Zarr output) in ``folder``."""
    import yaml

    from estimator.io.wireframe import write_obj

    comps[["hole_id", "x", "y", "z", "au"]].to_csv(folder / "samples.csv", index=False)
    body = _box(*box)
    write_obj(folder / "ore.obj", body.vertices, body.faces)
    raw = dict(raw)
    raw["data"] = {**raw["data"], "samples": "samples.csv"}
    model = {
        "nugget": NUGGET,
        "structures": [{"type": "spherical", "sill": s, "ranges": list(r), "angles": [0, 0, 0]}
                       for s, r in STRUCTURES],
    }  # fmt: skip
    raw["variography"] = {"ore": {"au": {"model": model}}}
    raw["output"] = {"path": "run", "format": "zarr"}
    raw["compute"] = {**raw["compute"], **({"workers": workers} if workers else {})}
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _kriged(counts: dict) -> int:
    return sum(
        sum(v for k, v in g.items() if k.isdigit())
        for per in counts["estimated_by_pass"].values() for g in per.values()
    )  # fmt: skip


def time_run(config: Path) -> dict:
    """One whole ``estimator run`` into a fresh run folder, as a subprocess: wall and CPU time,
    peak memory of its process tree, ``run.json``'s timings and counts (``None`` on failure)."""
    import json
    import subprocess

    folder = config.parent
    shutil.rmtree(folder / "run", ignore_errors=True)  # a finished run would be reused
    cmd = [sys.executable, "-m", "estimator.cli", "run", str(config), "--quiet"]
    load = os.getloadavg()[0]
    with open(folder / "stdout.txt", "w") as out, open(folder / "stderr.txt", "w") as err:
        cpu0 = _children_cpu()
        t0 = time.perf_counter()
        src = str(Path(__file__).resolve().parents[1] / "src")  # this checkout's estimator
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (src, os.environ.get("PYTHONPATH")) if p)}  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=folder, stdout=out, stderr=err, env=env)
        with TreeMemory(root=proc.pid, pss=True) as mem:
            code = proc.wait()
        wall = time.perf_counter() - t0
        cpu = _children_cpu() - cpu0  # every descendant that was waited for
    if code != 0:
        print(f"{' '.join(cmd)} failed ({code}):")
        print((folder / "stdout.txt").read_text()[-4000:])
        print((folder / "stderr.txt").read_text()[-4000:])
        return None
    doc = json.loads((folder / "run" / "run.json").read_text())
    reused = [n for n, st in doc.get("stages", {}).items() if st.get("status") == "reused"]
    if reused:
        raise RuntimeError(f"stages {', '.join(reused)} were reused: the timing would be wrong")
    return {"cmd": cmd, "wall": wall, "cpu": cpu, "load": load, "mem": mem, "pid": proc.pid,
            "counts": doc["counts"], "timings": doc["timings_s"]}  # fmt: skip


def main_run(args) -> int:
    """The whole ``estimator run`` as a subprocess; the peak memory of its process tree."""
    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="bench-memory-")
        folder = Path(tmp)
    else:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        raw, comps, box = make_deposit(
            tuple(args.shape), tuple(args.holes), args.per_hole, tuple(args.chunks),
            args.scheduler,
        )  # fmt: skip
        config = write_run(folder, raw, comps, box, args.workers)
        t_write = time.perf_counter() - t0
        runs = []
        n_blocks = int(np.prod(args.shape))
        for i in range(args.repeat):
            r = time_run(config)
            if r is None:
                return 1
            runs.append(r)
            print(f"run {i + 1}: {r['wall']:6.1f} s wall, {r['cpu']:6.1f} s CPU, estimate stage "
                  f"{r['timings'].get('estimate', float('nan')):5.1f} s, peak {gib(r['mem'].peak)} "
                  f"RSS / {gib(r['mem'].peak_pss)} PSS, load average {r['load']:.2f} at the "
                  "start", flush=True)  # fmt: skip
        run = sorted(runs, key=lambda r: r["wall"])[(len(runs) - 1) // 2]  # the median run
        peak = max(r["mem"].peak for r in runs)
        peak_pss = max(r["mem"].peak_pss for r in runs)
        mem, counts, timings, wall = run["mem"], run["counts"], run["timings"], run["wall"]
        inside = sum(counts["blocks_in_domains"].values())
        kriged = _kriged(counts)
        store = folder / "run" / "blockmodel.zarr"
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        print(f"blocks {n_blocks:,} ({args.shape[0]} x {args.shape[1]} x {args.shape[2]}), "
              f"samples {len(comps):,} ({counts['composites_by_domain'].get('ore', 0):,} "
              "composites in the ore body by its wireframe: samples on its faces are outside), "
              f"chunks {tuple(args.chunks)}; {inside:,} blocks in the domain, {kriged:,} "
              "kriged")  # fmt: skip
        print(f"scheduler {args.scheduler}, workers {args.workers or 'default'}, "
              f"{os.cpu_count()} cores; inputs written in {t_write:.1f} s")
        print(f"command: {' '.join(run['cmd'][1:])}  (in {folder})")
        what = f"median of {len(runs)}" if len(runs) > 1 else "1 run"
        print(f"whole run ({what}) {wall:8.1f} s wall, {run['cpu']:8.1f} s CPU "
              f"(run and its workers)   {n_blocks / wall:12,.0f} grid blocks/s   "
              f"{kriged / wall:10,.0f} kriged blocks/s")  # fmt: skip
        for name, sec in timings.items():
            rate = ""
            if name == "estimate" and sec > 0:
                rate = (f"   {n_blocks / sec:12,.0f} grid blocks/s   {kriged / sec:10,.0f} "
                        "kriged blocks/s")  # fmt: skip
            print(f"  stage {name:<19}{sec:8.1f} s{rate}")
        print(f"  rest (start-up, run.json, exit){wall - sum(timings.values()):8.1f} s")
        print(f"store on disk              {gib(size)}")
        print(f"peak memory, process tree  {gib(peak)} sum of RSS, {gib(peak_pss)} sum of PSS "
              f"(highest of {len(runs)} runs; up to {mem.peak_procs} processes, sampled every "
              f"{mem.interval} s); limit 4 GiB: {'met' if peak < 4 * 2**30 else 'EXCEEDED'}")
        hwm = sorted(mem.hwm.items(), key=lambda kv: -kv[1])
        print("high-water marks           "
              + ", ".join(f"{'run' if p == run['pid'] else 'pid ' + str(p)} {gib(v)}"
                          for p, v in hwm[:8]))  # fmt: skip
        gt = pd.read_csv(folder / "run" / "grade_tonnage.csv")
        if "class" in gt.columns:
            gt = gt[gt["class"] == "all"]
        print(gt.to_string(index=False))
        return 0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
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
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes or threads (compute.workers; default 2)")
    parser.add_argument("--out", default=None,
                        help="folder for the inputs and the run (run mode) or the store (engine "
                             "mode); default: a temporary one, removed")
    parser.add_argument("--repeat", type=int, default=1,
                        help="whole runs (run mode); the median is shown, the highest peak")
    parser.add_argument("--engine", action="store_true",
                        help="call the chunked engine in this process instead of a whole run")
    args = parser.parse_args(argv)  # fmt: skip
    if not args.engine:
        return main_run(args)

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
        estimated = _kriged(counts)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
