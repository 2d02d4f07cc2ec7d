"""Memory and time of the streaming CSV / Parquet exports of a large chunked block model.

Builds a Zarr store (:mod:`estimator.io.blockstore`) of ``--blocks`` grid blocks (default
20,000,000: 400 x 250 x 200, one domain) with random estimates and an ellipsoidal domain
(fraction 1 inside, sub-unit on a shell, 0 outside: about a third of the blocks), then exports
it as csv and parquet, each in a fresh subprocess, and reports the wall time and the peak
resident memory of that process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``).

Run: ``python benchmarks/bench_export.py [--blocks N] [--folder DIR] [--chunk-blocks N]``.
asv-style entry points (``ExportSuite.time_*``, ``peakmem_*``) use a small store.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from estimator.blockmodel.grid import BlockGrid
from estimator.io.blockstore import StoreLayout, create_store


def build_store(path: Path, n_blocks: int, seed: int = 0) -> StoreLayout:
    """A store of about ``n_blocks`` blocks (shape ratio 8:5:4), one domain, chunks 100x50x20."""
    scale = (n_blocks / 160.0) ** (1.0 / 3.0)
    shape = (max(1, round(8 * scale)), max(1, round(5 * scale)), max(1, round(4 * scale)))
    grid = BlockGrid((0.0, 0.0, 0.0), (5.0, 5.0, 5.0), shape, rotation=20.0)
    layout = StoreLayout(grid, ("ore",), ("au",), (100, 50, 20), classes=("ind", "inf"))
    store = create_store(path, layout, "bench")
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    xc, yc, zc = (np.arange(n) + 0.5 for n in (nx, ny, nz))
    for index in layout.indices():
        zs, ys, xs = layout.window(index)
        z, y, x = np.meshgrid(zc[zs] / nz, yc[ys] / ny, xc[xs] / nx, indexing="ij")
        r = np.sqrt(((x - 0.5) / 0.45) ** 2 + ((y - 0.5) / 0.45) ** 2 + ((z - 0.5) / 0.45) ** 2)
        frac = np.clip((1.05 - r) / 0.1, 0.0, 1.0)[None]
        if not (frac > 0).any():
            continue  # outside the domain: fill values, nothing written
        arrays = layout.empty_chunk(index)
        inside = frac > 0
        shp = frac.shape
        arrays["fraction"] = frac
        arrays["au"] = np.where(inside, rng.lognormal(0, 1, shp), np.nan)
        for name in ("au_kv", "au_slope", "au_ke", "au_dist", "au_newest_weight"):
            arrays[name] = np.where(inside, rng.uniform(0, 1, shp), np.nan)
        for name in ("au_n", "au_holes", "au_newest_n"):
            arrays[name] = np.where(inside, rng.integers(1, 30, shp), 0).astype(np.int32)
        arrays["au_pass"] = np.where(inside, 1, -1).astype(np.int32)
        arrays["class"] = np.where(inside, rng.integers(0, 3, shp), 0).astype(np.uint8)
        store.record_chunk(index, store.write_chunk(index, arrays), {})
    return layout


_CHILD = """
import json, resource, sys, time
from estimator.io.blockstore import open_block_model
from estimator.io.exports import export_blockmodel
store, fmt, out, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t = time.perf_counter()
ds = open_block_model(store)
export_blockmodel(ds, None, fmt, out, density={"ore": 2.7}, chunk_blocks=chunk)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(store: Path, fmt: str, out: Path, chunk_blocks: int) -> dict:
    """Export in a fresh process; its wall time and peak RSS (MB)."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(store), fmt, str(out), str(chunk_blocks)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["bytes"] = out.stat().st_size
    return result


class ExportSuite:
    """asv-style: a small store, csv and parquet."""

    def setup(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.store = Path(self.tmp.name) / "bm.zarr"
        build_store(self.store, 200_000)

    def teardown(self):
        self.tmp.cleanup()

    def _export(self, fmt):
        from estimator.io.blockstore import open_block_model
        from estimator.io.exports import export_blockmodel

        out = Path(self.tmp.name) / f"bm.{fmt}"
        export_blockmodel(open_block_model(self.store), None, fmt, out, overwrite=True)

    def time_csv(self):
        self._export("csv")

    def time_parquet(self):
        self._export("parquet")

    def peakmem_csv(self):
        self._export("csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20_000_000)
    parser.add_argument("--chunk-blocks", type=int, default=1_000_000)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        folder = Path(tmp)
        store = folder / "bm.zarr"
        t = time.perf_counter()
        layout = build_store(store, args.blocks)
        n = layout.grid.n_blocks
        print(f"store: {layout.grid.shape} = {n:,} blocks, built in {time.perf_counter() - t:.1f} s")
        for fmt in ("csv", "parquet"):
            r = measure(store, fmt, folder / f"bm.{fmt}", args.chunk_blocks)
            print(
                f"{fmt:8s} {r['seconds']:7.1f} s  peak RSS {r['peak_rss_mb']:7.0f} MB  "
                f"file {r['bytes'] / 1e6:8.1f} MB  ({n / r['seconds'] / 1e6:.2f} M blocks/s)"
            )


if __name__ == "__main__":
    main()
