"""Benchmark of :func:`estimator.kriging.estimate.estimate_blocks` on the standard case.

Standard case (the issue's target): 18,000 composites along 600 synthetic drillholes in a
3-D box, lognormal values; 100,000 blocks (80 x 50 x 25 blocks of 10 x 10 x 5); ordinary
kriging with up to 24 samples, 3 x 3 x 3 discretisation, nugget + two anisotropic spherical
structures; two passes. Prints blocks per second on one thread, with two threads (two halves
of the blocks, ``ThreadPoolExecutor``; the kernels release the GIL) and with ``parallel=True``,
the CPU time of each (on a shared machine, wall time alone misleads), and the peak resident
memory.

With ``--profile``, also splits the single-thread CPU time between the neighbour search
(``find_neighbours``, ``build_index``) and the kriging kernel (covariances, Cholesky,
solve), median of five runs.

Run: ``python benchmarks/bench_kernel.py [--blocks N] [--limits] [--profile]``.
"""

from __future__ import annotations

import argparse
import resource
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from estimator.kriging import _kernels
from estimator.kriging import estimate as _estimate
from estimator.kriging.estimate import SearchPass, estimate_blocks
from estimator.variography.models import Structure, VariogramModel

BOX = np.array([800.0, 500.0, 125.0])
BLOCK = np.array([10.0, 10.0, 5.0])


def standard_case(n_blocks=100_000, n_holes=600, per_hole=30, seed=42):
    """Targets, offsets, samples, values, hole ids of the standard case."""
    rng = np.random.default_rng(seed)
    # hole intercepts: straight holes dipping 50-70 degrees, 2 m composites
    azimuth = np.deg2rad(rng.uniform(0, 360, n_holes))
    dip = np.deg2rad(rng.uniform(50, 70, n_holes))
    direction = np.column_stack(
        [np.sin(azimuth) * np.cos(dip), np.cos(azimuth) * np.cos(dip), -np.sin(dip)]
    )
    start = rng.uniform([0, 0, 60], BOX, (n_holes, 3))
    along = 1.0 + 2.0 * np.arange(per_hole)
    samples = (start[:, None, :] + along[None, :, None] * direction[:, None, :]).reshape(-1, 3)
    values = rng.lognormal(0.0, 1.0, len(samples))
    holes = np.repeat(np.arange(n_holes, dtype=np.int64), per_hole)
    shape = np.round(BOX / BLOCK).astype(int)
    axes = [(np.arange(s) + 0.5) * b for s, b in zip(shape, BLOCK, strict=True)]
    grid = np.array(np.meshgrid(*axes, indexing="ij")).reshape(3, -1).T
    targets = grid[:n_blocks] if n_blocks <= len(grid) else rng.uniform(0, BOX, (n_blocks, 3))
    disc = [(np.arange(3) + 0.5) / 3 * b - b / 2 for b in BLOCK]
    offsets = np.array(np.meshgrid(*disc, indexing="ij")).reshape(3, -1).T
    return targets, offsets, samples, values, holes


MODEL = VariogramModel(
    0.2,
    (
        Structure("spherical", 0.5, (60, 40, 15), (30, -20, 0)),
        Structure("spherical", 0.3, (150, 100, 40), (30, -20, 0)),
    ),
)


def passes(limits: bool):
    """Two passes; with ``limits``, pass 1 takes 4 per hole, 6 per octant, 2 octants minimum."""
    extra = {"max_per_hole": 4, "max_per_octant": 6, "min_octants": 2} if limits else {}
    return (
        SearchPass((80, 50, 20), (30, -20, 0), 8, 24, **extra),
        SearchPass((160, 100, 40), (30, -20, 0), 4, 24),
    )


def profile(targets, common, repeat=5):
    """Print the single-thread CPU time of the search, the kriging kernel and the rest."""
    spent = {"search": 0.0, "kriging": 0.0}

    def timed(name, func):
        def wrapper(*args, **kwargs):
            cpu = time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                spent[name] += time.thread_time() - cpu

        return wrapper

    saved = (_estimate.find_neighbours, _estimate.build_index, _kernels.krige_serial)
    _estimate.find_neighbours = timed("search", saved[0])
    _estimate.build_index = timed("search", saved[1])
    _kernels.krige_serial = timed("kriging", saved[2])
    rows = []
    try:
        for _ in range(repeat):
            spent.update(search=0.0, kriging=0.0)
            cpu = time.thread_time()
            estimate_blocks(targets, *common)
            total = time.thread_time() - cpu
            rows.append((total, spent["search"], spent["kriging"]))
    finally:
        _estimate.find_neighbours, _estimate.build_index, _kernels.krige_serial = saved
    total, search, kriging = np.median(np.array(rows), axis=0)
    n = len(targets)
    print(
        f"profile (1 thread, CPU, median of {repeat}): total {total:.3f} s = search "
        f"{search:.3f} s ({n / search:,.0f} blocks/s) + kriging {kriging:.3f} s "
        f"({n / kriging:,.0f} blocks/s) + rest {total - search - kriging:.3f} s"
    )


def main():
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--limits", action="store_true", help="max 4 per hole, octants")
    parser.add_argument("--profile", action="store_true", help="CPU split search / kriging")
    args = parser.parse_args()
    targets, offsets, samples, values, holes = standard_case(args.blocks)
    plan = passes(args.limits)
    common = (offsets, samples, values, holes, MODEL, plan)
    estimate_blocks(targets[:200], *common)  # compile / load the cached kernels
    estimate_blocks(targets[:200], *common, parallel=True)
    n = len(targets)
    print(f"{len(samples)} samples, {n} blocks, OK max 24, 3x3x3, limits={args.limits}")

    def timed(label, run):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{label}: {n / wall:8.0f} blocks/s  (wall {wall:.2f} s, CPU {cpu:.2f} s)")
        return result

    one = timed("1 thread ", lambda: estimate_blocks(targets, *common))
    halves = np.array_split(np.arange(n), 2)
    with ThreadPoolExecutor(2) as pool:
        parts = timed(
            "2 threads",
            lambda: list(pool.map(lambda rows: estimate_blocks(targets[rows], *common), halves)),
        )
    joined = np.concatenate([p["estimate"] for p in parts])
    assert np.array_equal(joined, one["estimate"], equal_nan=True), "chunking changed results"
    par = timed("parallel ", lambda: estimate_blocks(targets, *common, parallel=True))
    assert np.array_equal(par["estimate"], one["estimate"], equal_nan=True)

    if args.profile:
        profile(targets, common)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = np.bincount(one["pass"], minlength=len(plan) + 1)
    print(f"blocks per pass (0 = none): {counts.tolist()}, failures: {one['failures']}")
    print(f"mean samples used: {one['n'][one['pass'] > 0].mean():.1f}")
    print(f"peak memory (max RSS): {peak:.0f} MB")


if __name__ == "__main__":
    main()
