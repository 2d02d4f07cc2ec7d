"""Experimental variograms for 50,000 composites: ours against GSTools' ``vario_estimate``.

Work: three directional variograms (major, semi-major, minor of a rotated frame; 22.5 degree
tolerance, no bandwidth) with 15 lags of 10 m, plus the down-hole variogram (10 lags of 2 m).
GSTools does the same directions as cones about the three axis vectors (``angles_tol``) on the
same bin edges, and the down-hole one hole at a time. Run ``python benchmarks/bench_variogram.py
[n_composites]`` to print the figures; the class follows asv conventions.
"""

from __future__ import annotations

import itertools
import sys
import time

import numpy as np

from estimator.variography.experimental import (
    Direction,
    direction_vector,
    downhole_variogram,
    experimental_variogram,
)
from estimator.variography.models import rotation_matrix

ANGLES = (40.0, -15.0, 20.0)
LAG, N_LAGS = 10.0, 15
DIRS = [
    Direction(0.0, 0.0, name="major"),
    Direction(90.0, 0.0, name="semi-major"),
    Direction(0.0, -90.0, tolerance=90.0, dip_tolerance=22.5, name="minor"),
]


def make_composites(n: int, seed: int = 0):
    """``n`` composites, 50 per hole (2 m), holes on a 20 m grid, random azimuth, dip -45..-80."""
    rng = np.random.default_rng(seed)
    nh = max(n // 50, 1)
    side = int(np.ceil(np.sqrt(nh)))
    cx, cy = np.meshgrid(np.arange(side) * 20.0, np.arange(side) * 20.0)
    collars = np.c_[cx.ravel(), cy.ravel(), np.zeros(cx.size)][:nh]
    u = direction_vector(rng.uniform(0, 360, nh), rng.uniform(-80, -45, nh))
    d = (np.arange(50) + 0.5) * 2.0
    xyz = (collars[:, None, :] + d[None, :, None] * u[:, None, :]).reshape(-1, 3)[:n]
    hid = np.repeat(np.arange(nh), 50)[:n]
    v = np.sin(xyz[:, 0] / 37.0) + np.cos(xyz[:, 1] / 23.0) + 0.3 * rng.standard_normal(len(xyz))
    return xyz, v, hid, np.tile(d, nh)[:n]


def ours(xyz, v, hid, depth):
    experimental_variogram(xyz, v, lag=LAG, n_lags=N_LAGS, directions=DIRS, frame=ANGLES)
    downhole_variogram(v, hid, lag=2.0, n_lags=10, depths=depth)


def gstools(xyz, v, hid, depth):
    import gstools as gs

    edges = LAG * (np.arange(N_LAGS + 1) + 0.5)
    axes = rotation_matrix(ANGLES)
    gs.vario_estimate(xyz.T, v, edges, direction=list(axes), angles_tol=np.deg2rad(22.5))
    dh_edges = 2.0 * (np.arange(11) + 0.5)
    starts = np.flatnonzero(np.r_[True, hid[1:] != hid[:-1], True])
    for a, b in itertools.pairwise(starts):
        gs.vario_estimate(depth[a:b][None, :], v[a:b], dh_edges)


class TimeVariogram:
    """asv: experimental variograms (3 directions + down-hole)."""

    params = (5_000, 50_000)
    param_names = ("n_composites",)

    def setup(self, n):
        self.data = make_composites(n)
        ours(*make_composites(500))  # compile the kernels outside the timing

    def time_ours(self, n):
        ours(*self.data)

    def time_gstools(self, n):
        gstools(*self.data)


def main(n: int = 50_000) -> None:
    """Print wall times of both implementations (best of 2 for ours, 1 run of GSTools)."""
    ours(*make_composites(500))
    data = make_composites(n)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        ours(*data)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    d = experimental_variogram(
        data[0], data[1], lag=LAG, n_lags=N_LAGS, directions=DIRS, frame=ANGLES
    )
    t_dir = time.perf_counter() - t
    t = time.perf_counter()
    gstools(*data)
    t_gs = time.perf_counter() - t
    print(f"n composites           : {len(data[1])}")
    print(
        f"pairs counted          : {int(d['n_pairs'].sum())} (3 directions, up to {N_LAGS * LAG + LAG / 2:g} m)"
    )
    print(f"estimator (3 dir + dh) : {min(times):8.2f} s   (directional only {t_dir:.2f} s)")
    print(f"gstools vario_estimate : {t_gs:8.2f} s")
    print(f"speed-up               : {t_gs / min(times):8.1f} x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
