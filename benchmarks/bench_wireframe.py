"""Benchmark of wireframe reading, checking, the inside test and block fractions on Babbitt.

Case: Babbitt's mineralised-zone wireframe ``Mpz.stl`` (binary STL, 63,749 triangles, feet).
Prints the time to read it, split it into bodies and check closure, to build the checked
wireframe, to classify one million random points of its bounding box (the first call, which
includes loading or compiling the numba kernels, is timed apart), and to compute block
fractions on 50 x 50 x 20 ft blocks, with the fraction-sum volume against the mesh volume.

Run: ``python benchmarks/bench_wireframe.py [--points N] [--serial] [--path FILE]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from estimator.blockmodel.clip import block_fractions
from estimator.datareport import DataReport
from estimator.geometry.mesh import build_wireframe, check_closed, points_inside, split_bodies
from estimator.io.wireframe import read_mesh

MPZ = Path(__file__).resolve().parents[1] / "tests" / "data" / "babbitt" / "Mpz.stl"


def _timed(label, func, *args, **kwargs):
    t0 = time.perf_counter()
    out = func(*args, **kwargs)
    print(f"{label:<46s} {time.perf_counter() - t0:8.3f} s")
    return out


def main(argv=None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=MPZ)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--serial", action="store_true", help="numba kernels without threads")
    args = parser.parse_args(argv)
    parallel = not args.serial

    v, f = _timed("read_mesh", read_mesh, args.path)
    print(f"  {len(f):,} triangles, {len(v):,} distinct vertices")
    bodies = _timed("split_bodies", split_bodies, f)
    print(f"  bodies: {[len(b) for b in bodies]} triangles")
    _timed("check_closed (every body)", lambda: [check_closed(f[b], v) for b in bodies])
    report = DataReport()
    wf = _timed("build_wireframe", build_wireframe, v, f, str(args.path.name), report)
    for row in report.rows:
        print(f"  report: {row['code']}: {row['what']} -> {row['action']}")
    print(f"  volume {wf.volume:.6e} cubic units, {wf.n_bodies} closed body(ies)")

    rng = np.random.default_rng(0)
    lo, hi = wf.bounds
    p = rng.uniform(lo, hi, (args.points, 3))
    _timed("points_inside, first call (compile/load)", points_inside, wf.vertices, wf.faces, p[:10])
    inside = _timed(
        f"points_inside, {args.points:,} points",
        points_inside,
        wf.vertices,
        wf.faces,
        p,
        parallel=parallel,
    )
    mc = inside.mean() * np.prod(hi - lo)
    print(f"  Monte Carlo volume {mc:.6e} ({(mc / wf.volume - 1) * 100:+.3f} % of the mesh volume)")

    size = np.array([50.0, 50.0, 20.0])
    origin = np.floor(lo / size) * size - size
    shape = (np.ceil((hi - origin) / size) + 1).astype(int)
    _timed(
        "block_fractions, first call (compile/load)",
        block_fractions,
        wf.vertices,
        wf.faces,
        origin,
        size,
        (2, 2, 2),
    )
    for sub in ((4, 4, 4), (8, 8, 8)):
        frac = _timed(
            f"block_fractions {tuple(shape.tolist())} blocks, sub {sub}",
            block_fractions,
            wf.vertices,
            wf.faces,
            origin,
            size,
            shape,
            0.0,
            sub,
            parallel=parallel,
        )
        vol = frac.sum() * size.prod()
        print(
            f"  fraction-sum volume {vol:.6e} ({(vol / wf.volume - 1) * 100:+.4f} % of the mesh), "
            f"{np.count_nonzero(frac):,} blocks touched"
        )


if __name__ == "__main__":
    main()
