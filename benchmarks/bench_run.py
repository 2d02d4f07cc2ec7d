"""Whole-run benchmark (issue 8, point 7): a whole ``estimator run`` beside a batched-NumPy
block-kriging baseline run in this process on the same samples and blocks.

The case: 18,000 samples along 300 straight inclined holes (60 samples each, 4 m apart,
lognormal grades from an anisotropic Gaussian field); 400,000 blocks of 5 x 5 x 5 m
(100 x 80 x 50) in one domain (no wireframe: the whole grid, domain ``all``); ordinary kriging
with at most 24 samples in one search pass, 3 x 3 x 3 discretisation; an explicit model,
nugget + two anisotropic sphericals. The samples are a positioned-samples CSV
(``--input samples``, default) or collars / surveys / assays composited at 4 m
(``--input drillholes``: the data and composites stages then have real work).

* **run**: ``python -m estimator.cli run CONFIG --quiet`` as a subprocess into a fresh run
  folder (nothing reused), every import included (a new interpreter each time; the operating
  system's file cache is warm), after one untimed run that fills numba's cache. The breakdown
  is start-up (interpreter plus ``estimator.cli`` imports, timed apart), each stage from
  ``run.json``'s ``timings_s`` (a stage's time includes its lazy imports and writing its
  artefacts), and the rest (config, orchestration, run.json, publishing, interpreter exit). A
  separate ``-X importtime`` run lists what the whole run imports.
* **baseline**: in this process, on the same samples and block centres: a ``cKDTree`` query of
  the 24 nearest in the search ellipsoid's scaled space (``distance_upper_bound = 1``), the
  ``(n, 25, 25)`` OK systems and right-hand sides with the 27-point block covariance, one
  batched ``np.linalg.solve`` per batch of blocks. Its covariance is written here
  independently of estimator (rotation checked against SPEC section 6's test vector).
* ``--repeat`` rounds of one run and one baseline, alternating (a busy machine slows both
  alike); the best of each is kept and the ratio is baseline / run.
* **agreement**: the baseline's estimates and kriging variances against the run's block model,
  on every block whose neighbourhood is unambiguous (no distance tie at the 24th / 25th
  sample, no sample within 1e-9 of the ellipsoid's surface).

Run::

    python benchmarks/bench_run.py                    # the standard case
    python benchmarks/bench_run.py --input drillholes
    python benchmarks/bench_run.py --blocks 50000     # a quick look (grid shrunk in z)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEED = 20110914
N_HOLES, PER_HOLE, SPACING = 300, 60, 4.0
SHAPE = (100, 80, 50)  # nx, ny, nz: 400,000 blocks
BLOCK = 5.0
ANGLES = (30.0, -20.0, 0.0)
NUGGET = 0.2
STRUCTURES = ((0.5, (80.0, 50.0, 20.0)), (0.3, (200.0, 125.0, 50.0)))
SEARCH = (150.0, 100.0, 40.0)
MIN_SAMPLES, MAX_SAMPLES = 4, 24
DISC = (3, 3, 3)
BATCH = 8192


# ---------------------------------------------------------------------------------------
# the case
# ---------------------------------------------------------------------------------------
def rotation(angles) -> np.ndarray:
    """GSLIB setrot rows (major, semi-major, minor axes), written here from the GSLIB book."""
    a1, a2, a3 = (float(a) for a in angles)
    alpha = np.deg2rad(90.0 - a1 if 0.0 <= a1 < 270.0 else 450.0 - a1)
    beta, theta = np.deg2rad(-a2), np.deg2rad(a3)
    ca, sa, cb, sb, ct, st = (np.cos(alpha), np.sin(alpha), np.cos(beta), np.sin(beta),
                              np.cos(theta), np.sin(theta))  # fmt: skip
    return np.array(
        [
            [cb * ca, cb * sa, -sb],
            [-ct * sa + st * sb * ca, ct * ca + st * sb * sa, st * cb],
            [st * sa + ct * sb * ca, -st * ca + ct * sb * sa, ct * cb],
        ]
    )


# SPEC section 6: ang1 = 30, ang2 = -20 puts the major axis at (0.4698, 0.8138, -0.3420)
assert np.allclose(rotation((30, -20, 0))[0], (0.4698, 0.8138, -0.3420), atol=5e-5)


def make_case(shape=SHAPE, seed=SEED) -> dict:
    """Hole collars and directions, sample positions and grades, block centres."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    extent = np.array([nx, ny, nz]) * BLOCK
    # collars on a jittered 20 x 15 grid over the model, at its top; holes dip 55-75 degrees
    gx, gy = np.meshgrid(np.linspace(0.05, 0.95, 20), np.linspace(0.05, 0.95, 15))
    collars = np.column_stack([gx.ravel() * extent[0], gy.ravel() * extent[1]])
    collars = collars + rng.normal(0.0, 5.0, collars.shape)
    collars = np.column_stack([collars, np.full(N_HOLES, extent[2])])
    azimuth = rng.uniform(100.0, 140.0, N_HOLES)
    dip = -rng.uniform(55.0, 75.0, N_HOLES)
    az, dp = np.deg2rad(azimuth), np.deg2rad(-dip)
    direction = np.column_stack([np.sin(az) * np.cos(dp), np.cos(az) * np.cos(dp), -np.sin(dp)])
    depth = (np.arange(PER_HOLE) + 0.5) * SPACING
    xyz = (collars[:, None, :] + depth[None, :, None] * direction[:, None, :]).reshape(-1, 3)
    holes = np.repeat(np.arange(N_HOLES), PER_HOLE)
    # lognormal grades from a Gaussian field with the model's anisotropy (random Fourier features)
    k = 400
    freq = rng.normal(size=(k, 3)) / (0.35 * np.array(STRUCTURES[1][1]))
    phase = rng.uniform(0.0, 2.0 * np.pi, k)
    field = np.sqrt(2.0 / k) * np.cos((xyz @ rotation(ANGLES).T) @ freq.T + phase).sum(axis=1)
    gauss = np.sqrt(0.8) * field + np.sqrt(0.2) * rng.normal(size=len(xyz))
    grade = np.round(np.exp(0.5 + 0.9 * gauss), 3)
    axes = [(np.arange(n) + 0.5) * BLOCK for n in shape]
    zc, yc, xc = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")  # x fastest (GSLIB)
    targets = np.column_stack([xc.ravel(), yc.ravel(), zc.ravel()])
    return {
        "collars": collars, "azimuth": azimuth, "dip": dip, "depth": depth, "xyz": xyz,
        "holes": holes, "grade": grade, "targets": targets, "shape": shape,
    }  # fmt: skip


def write_case(case: dict, folder: Path, kind: str) -> Path:
    """The input files and ``run.yaml`` (explicit model, one pass) in ``folder``."""
    import pandas as pd

    names = np.array([f"DH{h:03d}" for h in range(N_HOLES)])
    if kind == "samples":
        xyz = case["xyz"]
        frame = pd.DataFrame(
            {"hole_id": names[case["holes"]], "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
        )
        frame["au"] = case["grade"]
        frame.to_csv(folder / "samples.csv", index=False)
        data = "data: {samples: samples.csv, length_unit: m, grade_unit: g/t}\n"
    else:
        c = case["collars"]
        end = PER_HOLE * SPACING
        pd.DataFrame(
            {"hole_id": names, "x": c[:, 0], "y": c[:, 1], "z": c[:, 2], "depth": end}
        ).to_csv(folder / "collars.csv", index=False)
        pd.DataFrame(
            {"hole_id": names, "depth": 0.0, "azimuth": case["azimuth"], "dip": case["dip"]}
        ).to_csv(folder / "surveys.csv", index=False)
        top = np.tile(case["depth"] - SPACING / 2, N_HOLES)
        pd.DataFrame(
            {"hole_id": names[case["holes"]], "from": top, "to": top + SPACING, "au": case["grade"]}
        ).to_csv(folder / "assays.csv", index=False)
        data = (
            "data: {collars: collars.csv, surveys: surveys.csv, assays: assays.csv,\n"
            "       length_unit: m, grade_unit: g/t}\n"
            f"composites: {{length: {SPACING}, min_length: {SPACING / 2}}}\n"
        )
    structures = "".join(
        f"        - {{type: spherical, sill: {s}, ranges: {list(r)}, angles: {list(ANGLES)}}}\n"
        for s, r in STRUCTURES
    )
    nx, ny, nz = case["shape"]
    text = (
        "name: bench-run\n"
        + data
        + "grades: [au]\n"
        "variography:\n"
        "  all:\n"
        "    au:\n"
        "      model:\n"
        f"        nugget: {NUGGET}\n"
        "        structures:\n"
        + structures
        + f"block_model: {{origin: [0, 0, 0], block_size: [{BLOCK}, {BLOCK}, {BLOCK}], "
        f"shape: [{nx}, {ny}, {nz}]}}\n"
        "estimation:\n"
        "  method: ok\n"
        f"  discretisation: {list(DISC)}\n"
        "  passes:\n"
        f"  - {{ranges: {list(SEARCH)}, angles: {list(ANGLES)}, min_samples: {MIN_SAMPLES}, "
        f"max_samples: {MAX_SAMPLES}}}\n"
        "report: {cutoffs: [0, 1, 2, 3, 4, 5]}\n"
        "compute: {scheduler: threads}\n"
        "output: run\n"
    )
    path = folder / "run.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------
# the run, as a geologist starts it
# ---------------------------------------------------------------------------------------
def _command(*args: str) -> list[str]:
    return [sys.executable, *args]


def time_command(cmd: list[str], cwd: Path) -> float:
    """Wall time of a subprocess (its output kept for the error message)."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        msg = f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        raise RuntimeError(msg)
    return wall


def run_once(config: Path) -> dict:
    """One whole run into a fresh run folder: wall time and ``run.json``'s stage timings.

    The run folder is removed first: a rerun into a finished folder reuses every stage whose
    inputs did not change, and this benchmark times the work itself.
    """
    cwd = config.parent
    shutil.rmtree(cwd / "run", ignore_errors=True)
    wall = time_command(_command("-m", "estimator.cli", "run", str(config), "--quiet"), cwd)
    doc = json.loads((cwd / "run" / "run.json").read_text())
    reused = [n for n, st in doc.get("stages", {}).items() if st.get("status") == "reused"]
    if reused:
        msg = f"stages {', '.join(reused)} were reused, not run: the timing would be wrong"
        raise RuntimeError(msg)
    return {"wall": wall, "timings": doc["timings_s"]}


def start_up(config: Path, repeat: int) -> dict:
    """Best-of-``repeat`` wall times of the interpreter plus ``import estimator.cli``, of
    ``estimator --help`` and of ``estimator check``."""
    cwd = config.parent
    commands = {
        "startup": _command("-c", "import estimator.cli"),
        "help": _command("-m", "estimator.cli", "--help"),
        "check": _command("-m", "estimator.cli", "check", str(config), "--quiet"),
    }
    return {k: min(time_command(c, cwd) for _ in range(repeat)) for k, c in commands.items()}


def import_profile(config: Path, top: int = 12) -> tuple[float, list[tuple[float, str]]]:
    """Seconds a whole run spends importing (``-X importtime``: every module's own time) and
    the ``top`` heaviest top-level packages (their modules' own times summed)."""
    shutil.rmtree(config.parent / "run", ignore_errors=True)
    cmd = _command("-X", "importtime", "-m", "estimator.cli", "run", str(config), "--quiet")
    done = subprocess.run(cmd, cwd=config.parent, capture_output=True, text=True, check=True)
    per: dict[str, float] = {}
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if m:  # each module's own time, summed per top-level package
            root = m.group(3).split(".")[0]
            per[root] = per.get(root, 0.0) + int(m.group(1)) * 1e-6
    ranked = sorted(((t, name) for name, t in per.items()), reverse=True)
    return sum(per.values()), ranked[:top]


# ---------------------------------------------------------------------------------------
# the baseline: batched NumPy block kriging
# ---------------------------------------------------------------------------------------
def _spherical(h2: np.ndarray) -> np.ndarray:
    """Unit spherical covariance from squared scaled distances (in place: ``h2`` is reused)."""
    h = np.sqrt(h2, out=h2)
    np.minimum(h, 1.0, out=h)  # 1 - h (1.5 - 0.5 h^2) is exactly 0 at h = 1
    return 1.0 - h * (1.5 - 0.5 * h * h)


def _squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances between ``a[..., :, None]`` and ``b[..., None, :]`` (shapes (..., 3)),
    component by component (a reduction over an axis of 3 is slow in NumPy)."""
    out = None
    for c in range(3):
        d = a[..., :, None, c] - b[..., None, :, c]
        d *= d
        out = d if out is None else np.add(out, d, out=out)
    return out


def baseline(case: dict, batch: int = BATCH) -> dict:
    """OK of every block: cKDTree search, (n, 25, 25) systems, batched solves."""
    from scipy.spatial import cKDTree

    xyz, values, targets = case["xyz"], case["grade"], case["targets"]
    search = rotation(ANGLES) / np.array(SEARCH)[:, None]
    mats = [rotation(ANGLES) / np.array(r)[:, None] for _, r in STRUCTURES]
    sills = [s for s, _ in STRUCTURES]
    axes = [((np.arange(k) + 0.5) / k - 0.5) * BLOCK for k in DISC]
    oz, oy, ox = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    offsets = np.column_stack([ox.ravel(), oy.ravel(), oz.ravel()])
    disc = [offsets @ m.T for m in mats]  # discretisation points in each structure's space
    # block variance: mean structure covariance between discretisation points, no nugget
    bv = sum(s * _spherical(_squared(d, d)).mean() for s, d in zip(sills, disc, strict=True))
    k = MAX_SAMPLES
    n = len(targets)
    out = {"estimate": np.full(n, np.nan), "kv": np.full(n, np.nan), "n": np.zeros(n, int),
           "unambiguous": np.zeros(n, bool)}  # fmt: skip
    t0 = time.perf_counter()
    tree = cKDTree(xyz @ search.T)
    for lo in range(0, n, batch):
        t = targets[lo : lo + batch]
        dist, idx = tree.query(t @ search.T, k=k + 1, distance_upper_bound=1.0 + 1e-9)
        found = idx < len(xyz)
        idx = np.where(found, idx, 0)[:, :k]
        # distances re-measured from world differences: the run's own membership rule
        rel = xyz[idx] - t[:, None, :]  # (b, k, 3)
        exact = np.sqrt(np.einsum("bki,bki->bk", rel @ search.T, rel @ search.T))
        use = found[:, :k] & (exact <= 1.0)
        count = use.sum(axis=1)
        sure = np.abs(dist - 1.0).min(axis=1) > 1e-9  # nobody on the ellipsoid's surface
        with np.errstate(invalid="ignore"):  # inf - inf where fewer than 25 were found
            sure &= ~found[:, k] | (dist[:, k] - dist[:, k - 1] > 1e-9)  # no tie at 24 / 25
        # sample-sample and sample-block covariances (world differences, then each structure)
        cov = np.zeros((len(t), k, k))
        cbar = np.zeros((len(t), k))
        for s, m, d in zip(sills, mats, disc, strict=True):
            r = rel @ m.T
            cov += s * _spherical(_squared(r, r))
            cbar += s * _spherical(_squared(r, d[None])).mean(axis=-1)
        # the nugget, where a sample sits on a discretisation point (inside the block)
        near = np.einsum("bki,bki->bk", rel, rel) <= 0.75 * BLOCK**2 + 1e-9
        if near.any():
            on = _squared(rel[near][:, None], offsets[None])[:, 0] <= 1e-20
            cbar[near] += NUGGET * on.mean(axis=-1)
        cov += NUGGET * np.eye(k)
        # unused slots: an identity row and column and a zero right-hand side (weight 0)
        pad = ~use
        cov[pad] = 0.0
        cov.transpose(0, 2, 1)[pad] = 0.0
        cov[:, np.arange(k), np.arange(k)] += pad
        cbar[pad] = 0.0
        lhs = np.zeros((len(t), k + 1, k + 1))
        lhs[:, :k, :k] = cov
        lhs[:, :k, k] = use
        lhs[:, k, :k] = use
        lhs[count == 0, k, k] = 1.0  # no sample at all: any regular system (left NaN below)
        rhs = np.concatenate([cbar, np.ones((len(t), 1))], axis=1)
        w = np.linalg.solve(lhs, rhs[..., None])[..., 0]
        ok = count >= MIN_SAMPLES
        est = np.einsum("bk,bk->b", w[:, :k], values[idx])
        kv = bv - np.einsum("bk,bk->b", w[:, :k], cbar) - w[:, k]
        sl = slice(lo, lo + len(t))
        out["estimate"][sl] = np.where(ok, est, np.nan)
        out["kv"][sl] = np.where(ok, kv, np.nan)
        out["n"][sl] = np.where(ok, count, 0)
        out["unambiguous"][sl] = sure
    out["wall"] = time.perf_counter() - t0
    return out


def read_block_model(run: Path) -> dict:
    """Estimates, kriging variances and sample counts of domain ``all``, x fastest."""
    import xarray as xr

    path = run / "blockmodel.nc"
    if not path.exists():
        path = run / "blockmodel.zarr"
    opener = xr.open_zarr if path.suffix == ".zarr" else xr.open_dataset
    with opener(path) as ds:
        return {v: ds[name].values[0].ravel() for v, name in
                (("estimate", "au"), ("kv", "au_kv"), ("n", "au_n"))}  # fmt: skip


def compare(base: dict, run: dict) -> dict:
    """Largest differences on the blocks whose neighbourhood is unambiguous."""
    sure = base["unambiguous"]
    both = np.isfinite(base["estimate"]) & np.isfinite(run["estimate"])
    same_nan = np.array_equal(np.isnan(base["estimate"]), np.isnan(run["estimate"]))
    sel = sure & both
    scale = np.nanmax(np.abs(base["estimate"]))
    return {
        "compared": int(sel.sum()),
        "blocks": len(sure),
        "estimated": int(both.sum()),
        "same_unestimated": bool(same_nan),
        "same_n": bool(np.array_equal(base["n"][sel], run["n"][sel].astype(int))),
        "max_abs_estimate": float(np.max(np.abs(base["estimate"][sel] - run["estimate"][sel]))),
        "max_rel_estimate": float(
            np.max(np.abs(base["estimate"][sel] - run["estimate"][sel])) / scale
        ),
        "max_abs_kv": float(np.max(np.abs(base["kv"][sel] - run["kv"][sel]))),
    }


# ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Build the case, time the run and the baseline, check them, print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", choices=("samples", "drillholes"), default="samples")
    p.add_argument("--blocks", type=int, default=int(np.prod(SHAPE)),
                   help="blocks (the grid is cut in z; default 400,000)")  # fmt: skip
    p.add_argument("--repeat", type=int, default=2, help="timed runs and baselines, best kept (default 2)")
    p.add_argument("--keep", type=Path, help="write the case and the run here (kept)")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    nz = max(1, min(SHAPE[2], round(args.blocks / (SHAPE[0] * SHAPE[1]))))
    shape = (SHAPE[0], SHAPE[1], nz)
    case = make_case(shape)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        config = write_case(case, folder, args.input)
        run_once(config)  # compiles the kernels or loads numba's cache: not timed
        model = read_block_model(folder / "run")
        # the run and the baseline alternate, so that a busy machine slows both alike
        run = base = None
        for _ in range(args.repeat):
            r = run_once(config)
            run = r if run is None or r["wall"] < run["wall"] else run
            b = baseline(case)
            base = b if base is None or b["wall"] < base["wall"] else base
        run |= start_up(config, args.repeat)
        imports, heavy = import_profile(config)
    agree = compare(base, model)
    n = len(case["targets"])
    stages = run["timings"]
    rest = run["wall"] - run["startup"] - sum(stages.values())
    print(f"case: {len(case['xyz']):,} samples in {N_HOLES} holes ({args.input}), {n:,} blocks of "
          f"{BLOCK:g} m, OK max {MAX_SAMPLES}, {'x'.join(map(str, DISC))} discretisation, "
          f"nugget + 2 anisotropic sphericals; {os.cpu_count()} CPUs, load average "
          f"{load:.1f} at the start")  # fmt: skip
    print(f"estimator run (subprocess, best of {args.repeat}): {run['wall']:6.2f} s")
    print(f"  start-up (python -c 'import estimator.cli'): {run['startup']:6.2f} s")
    for name, sec in stages.items():
        extra = f"  ({n / sec:,.0f} blocks/s)" if name == "estimate" and sec > 0 else ""
        print(f"  stage {name:<12}{sec:6.2f} s{extra}")
    print(f"  rest (orchestration, run.json, publish): {rest:6.2f} s")
    print(f"  imports during the run (-X importtime, all modules): {imports:6.2f} s")
    for sec, name in heavy:
        print(f"    {name:<24}{sec:6.3f} s")
    print(f"estimator --help: {run['help']:.2f} s; estimator check: {run['check']:.2f} s")
    print(f"baseline kriging (batched NumPy, this process, best of {args.repeat}): "
          f"{base['wall']:6.2f} s "
          f"({n / base['wall']:,.0f} blocks/s)")  # fmt: skip
    print(f"ratio baseline / whole run: {base['wall'] / run['wall']:.2f} (goal >= 4)")
    print(f"agreement on {agree['compared']:,} of {agree['blocks']:,} blocks (unambiguous "
          f"neighbourhoods; {agree['estimated']:,} estimated by both): max |diff| estimate "
          f"{agree['max_abs_estimate']:.2e} ({agree['max_rel_estimate']:.1e} of the highest), "
          f"kriging variance {agree['max_abs_kv']:.2e}; same samples counts {agree['same_n']}; "
          f"same unestimated blocks {agree['same_unestimated']}")  # fmt: skip
    return 0 if agree["max_rel_estimate"] < 1e-9 and agree["same_unestimated"] else 1


if __name__ == "__main__":
    sys.exit(main())
