"""The chunked engine (kriging/chunked.py) against today's in-memory estimate, bit for bit.

The reference is :func:`estimator.estimation.estimate_stage` (one in-memory model, synchronous).
Every variable of every block read back from the store must be identical (NaN where NaN), and
the counts must agree; the provenance variables, which only the store has, are checked
against a block-by-block computation from one whole-domain kernel call with weights. All this
holds on several problems (rotated grid, overlapping wireframes, topography,
nearest-sample rule domains, several grades, classification, OK / SK / IDW), chunkings and
schedulers. The builders here are also used by tests/test_resume.py and test_blockstore.py.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from estimator.blockmodel.fractions import Surface
from estimator.blockmodel.grid import PROVENANCE_VARIABLES
from estimator.config import parse_config
from estimator.errors import DataError, EstimationWarning
from estimator.io.blockstore import PLAN_ATTR, decode_classes, open_block_model, verify_store
from estimator.kriging.chunked import ChunkPlan, compute_chunk, estimate_to_store
from estimator.variography.models import Structure, VariogramModel
from helpers import box_mesh


# ---------------------------------------------------------------------------------------
# problems
# ---------------------------------------------------------------------------------------
def box(lo, hi):
    v, f = box_mesh(lo, hi)
    return SimpleNamespace(vertices=v, faces=f)


def surface(z_of, lo, hi, n=6):
    xs = np.linspace(lo[0], hi[0], n + 1)
    ys = np.linspace(lo[1], hi[1], n + 1)
    gx, gy = np.meshgrid(xs, ys)
    v = np.stack([gx.ravel(), gy.ravel(), z_of(gx.ravel(), gy.ravel())], axis=1)
    faces = []
    for j in range(n):
        for i in range(n):
            a = j * (n + 1) + i
            faces += [[a, a + 1, a + n + 2], [a, a + n + 2, a + n + 1]]
    return Surface(v, np.array(faces))


MODEL = VariogramModel(
    0.15,
    (
        Structure("spherical", 0.5, (60.0, 40.0, 15.0), (30.0, -10.0, 0.0)),
        Structure("spherical", 0.35, (150.0, 90.0, 30.0), (30.0, -10.0, 0.0)),
    ),
)
PASSES = [
    {"ranges": [50, 35, 12], "angles": [30, -10, 0], "min_samples": 6, "max_samples": 16,
     "max_per_hole": 4},
    {"scale": 2.0, "min_samples": 3, "max_samples": 16,
     "octants": {"max_per_octant": 4, "min_octants": 2}},
]  # fmt: skip
CLASSES = {
    "classes": [
        {"name": "measured", "max_pass": 1, "min_slope": 0.6, "min_holes": 3},
        {"name": "indicated", "max_pass": 1},
        {"name": "inferred", "max_pass": 2},
    ]
}


def _holes(rng, centre, n_holes=40, per_hole=15, spread=110.0, top=232.0):
    collars = np.asarray(centre) + rng.uniform(-spread, spread, size=(n_holes, 2))
    xyz, holes = [], []
    for h, (x, y) in enumerate(collars):
        depth = np.arange(per_hole) * 2.0
        xyz.append(np.column_stack([x + 0.1 * depth, y - 0.05 * depth, top - depth]))
        holes += [f"DH{h:03d}"] * per_hole
    xyz = np.vstack(xyz)
    pd_ = rng.lognormal(0.0, 0.8, len(xyz))
    pt = 0.3 * pd_ + rng.lognormal(-1.0, 0.5, len(xyz))
    pt[rng.uniform(size=len(xyz)) < 0.1] = np.nan
    return pd.DataFrame(
        {"hole_id": holes, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "pd": pd_, "pt": pt}
    )


def case_wireframes(seed=0, chunks=(5, 4, 3)):
    """Rotated grid, two overlapping wireframes + one outside, topography, 2 grades, classes."""
    rng = np.random.default_rng(seed)
    origin, size, shape = (1000.0, 5000.0, 200.0), (10.0, 10.0, 5.0), (16, 12, 6)
    raw = {
        "name": "wire",
        "data": {"samples": "s.csv", "grade_unit": "g/t", "length_unit": "m"},
        "grades": ["pd", "pt"],
        "domains": [
            {"name": "main", "wireframe": "main.obj", "density": 2.9},
            {"name": "west", "wireframe": "west.obj", "density": 2.7},
            {"name": "far", "wireframe": "far.obj"},
        ],
        "block_model": {"origin": list(origin), "block_size": list(size), "shape": list(shape),
                        "rotation": 25.0, "subcells": [2, 3, 2]},
        "estimation": {"passes": PASSES},
        "classification": CLASSES,
        "compute": {"scheduler": "synchronous", "chunks": list(chunks)},
    }  # fmt: skip
    cfg = parse_config(raw, check_files=False)
    from estimator.blockmodel.grid import BlockGrid

    grid = BlockGrid(origin, size, shape, 25.0)
    centre = grid.to_world(1080.0, 5060.0)
    comps = _holes(rng, np.array(centre))
    cx, cy = float(centre[0]), float(centre[1])
    wires = {
        "main": box((cx - 55, cy - 40, 203.0), (cx + 47, cy + 52, 229.0)),
        "west": box((cx - 90, cy - 70, 210.0), (cx - 10, cy + 10, 235.0)),
        "far": box((cx + 5000, cy, 200.0), (cx + 5100, cy + 100, 230.0)),
    }
    comps["domain"] = np.where(comps["x"] > cx - 50, "main", "west")
    topo = surface(lambda x, y: 222.0 + 0.08 * (x - cx) - 0.05 * (y - cy),
                   (cx - 300, cy - 300), (cx + 200, cy + 300), n=7)  # fmt: skip
    models = {d: {"pd": MODEL, "pt": MODEL} for d in ("main", "west", "far")}
    return SimpleNamespace(
        cfg=cfg, composites=comps, models=models, wireframes=wires, topography=topo,
        domain_points=None,
    )  # fmt: skip


def case_rules(seed=1, chunks=(4, 5, 2), method="sk"):
    """Unrotated grid, two nearest_sample rule domains and a wireframe, one grade."""
    rng = np.random.default_rng(seed)
    origin, size, shape = (0.0, 0.0, 100.0), (8.0, 8.0, 4.0), (14, 11, 7)
    raw = {
        "name": "rules",
        "data": {"samples": "s.csv"},
        "grades": ["au"],
        "domains": [
            {"name": "lens", "zone_code": "L", "blocks": {"rule": "nearest_sample",
                                                          "max_distance": 14.0}},
            {"name": "box", "wireframe": "box.obj", "density": 2.6},
            {"name": "halo", "zone_code": "H", "blocks": {"rule": "nearest_sample",
                                                          "max_distance": 9.0}},
        ],
        "block_model": {"origin": list(origin), "block_size": list(size), "shape": list(shape),
                        "subcells": [2, 2, 3]},
        "estimation": {"method": method, "passes": PASSES,
                       "sk_mean": {"lens": 1.2, "box": {"au": 0.9}, "halo": 1.0}},
        "classification": {"classes": [{"name": "ind", "max_pass": 1, "min_samples": 8}]},
        "compute": {"scheduler": "synchronous", "chunks": list(chunks)},
    }  # fmt: skip
    cfg = parse_config(raw, check_files=False)
    comps = _holes(rng, (56.0, 44.0), n_holes=30, per_hole=12, spread=50.0, top=125.0)
    comps = comps.rename(columns={"pd": "au"}).drop(columns="pt")
    r = np.hypot(comps["x"] - 56.0, comps["y"] - 44.0)
    comps["domain"] = np.where(r < 20, "lens", np.where(r < 32, "halo", ""))
    comps.loc[comps["z"] < 108, "domain"] = ""
    in_box = comps["x"].between(70, 110) & comps["y"].between(10, 40) & (comps["z"] < 118)
    comps.loc[in_box, "domain"] = "box"
    wires = {"box": box((70.0, 10.0, 100.0), (110.0, 40.0, 118.0))}
    labels = comps["domain"].to_numpy().astype(object)
    points = comps[["x", "y", "z"]].to_numpy()
    models = {d: {"au": MODEL} for d in ("lens", "box", "halo")}
    inside = comps["domain"] != ""
    return SimpleNamespace(
        cfg=cfg, composites=comps[inside].reset_index(drop=True), models=models,
        wireframes=wires, topography=None, domain_points=(points, labels),
    )  # fmt: skip


def case_whole(seed=2, chunks=(3, 3, 3), method="idw"):
    """No domains (the whole grid is ``all``), topography, a grade with no model issues."""
    rng = np.random.default_rng(seed)
    raw = {
        "name": "whole",
        "data": {"samples": "s.csv"},
        "grades": ["cu"],
        "block_model": {"origin": [0.0, 0.0, 0.0], "block_size": [10.0, 10.0, 5.0],
                        "shape": [8, 7, 5], "rotation": -40.0, "subcells": [2, 2, 2]},
        "estimation": {"method": method, "discretisation": [2, 2, 1], "passes": PASSES},
        "compute": {"scheduler": "synchronous", "chunks": list(chunks)},
    }  # fmt: skip
    cfg = parse_config(raw, check_files=False)
    comps = _holes(rng, (10.0, 0.0), n_holes=20, per_hole=10, spread=40.0, top=24.0)
    comps = comps.rename(columns={"pd": "cu"}).drop(columns="pt")
    comps["domain"] = "all"
    topo = surface(lambda x, y: 15.0 + 0.05 * x, (-150, -150), (150, 60), n=5)
    return SimpleNamespace(
        cfg=cfg, composites=comps, models={"all": {"cu": MODEL}}, wireframes={},
        topography=topo, domain_points=None,
    )  # fmt: skip


CASES = {"wireframes": case_wireframes, "rules": case_rules, "whole": case_whole}


def reference(case):
    """Today's in-memory estimate (synchronous)."""
    import warnings

    from estimator.errors import EstimationWarning
    from estimator.estimation import estimate_stage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        return estimate_stage(
            case.cfg, case.composites, case.models, case.wireframes,
            topography=case.topography, domain_points=case.domain_points, scheduler="synchronous",
        )  # fmt: skip


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def make_plan(case, chunks=None):
    plan = ChunkPlan.from_config(
        case.cfg, case.composites, case.models, case.wireframes,
        topography=case.topography, domain_points=case.domain_points,
    )  # fmt: skip
    if chunks is not None:
        from dataclasses import replace

        plan = replace(plan, chunks=tuple(chunks))
    return plan


def run_store(plan, path, plan_id="plan-1", **kwargs):
    kwargs.setdefault("scheduler", "synchronous")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        return estimate_to_store(plan, path, plan_id, **kwargs)


def read_model(path):
    """The whole stored model, classes decoded, as estimate_stage returns it."""
    return decode_classes(open_block_model(path).compute())


def provenance_names(ds):
    grades = [str(n)[: -len("_pass")] for n in ds.data_vars if str(n).endswith("_pass")]
    return {f"{g}{s}" for g in grades for s in PROVENANCE_VARIABLES}


def assert_same_model(ds, ref):
    """Every variable of ``ref`` identical in ``ds``; ``ds`` has the provenance ones besides."""
    extra = provenance_names(ref) - set(ref.variables)
    assert set(ds.variables) == set(ref.variables) | extra
    assert {k: v for k, v in ds.attrs.items() if k != PLAN_ATTR} == ref.attrs
    for name in ref.variables:
        a, b = ds[name], ref[name]
        assert a.dims == b.dims, name
        assert a.attrs == b.attrs, name
        if name != "class":
            assert a.dtype == b.dtype, name
        # identical values; NaN where NaN (assert_array_equal treats NaNs as equal)
        npt.assert_array_equal(a.values, b.values, err_msg=name, strict=name != "class")


def assert_same_counts(counts, ref):
    counts = {k: v for k, v in counts.items() if k != "chunks"}
    assert counts.keys() == ref.keys()

    def same(a, b, where):
        if isinstance(a, dict):
            assert a.keys() == b.keys(), where
            for k in a:
                same(a[k], b[k], f"{where}.{k}")
        elif isinstance(a, float) and b is not None:
            # volumes are sums over chunks: equal to rounding
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9), (where, a, b)
        else:
            assert a == b, (where, a, b)

    same(counts, ref, "counts")


@pytest.fixture(scope="module")
def references():
    out = {}
    for name, build in CASES.items():
        case = build()
        out[name] = (case, *reference(case))
    return out


# ---------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------
def expected_provenance(plan, fraction):
    """The provenance variables block by block, from one kernel call per domain and grade."""
    from estimator.kriging.estimate import estimate_blocks

    offsets = plan.grid.discretisation_offsets(plan.discretisation)
    newest = len(plan.tranche_names)
    out = {}
    for g in plan.grades:
        latest = np.zeros(fraction.shape, np.uint8)
        count = np.zeros(fraction.shape, np.int32)
        weight = np.full(fraction.shape, np.nan)
        for i, dom in enumerate(plan.domains):
            iz, iy, ix = np.nonzero(fraction[i] > 0)
            if iz.size == 0:
                continue
            s = plan.samples[(dom.name, g)]
            res = estimate_blocks(
                plan.grid.block_centres(iz, iy, ix), offsets, s.xyz, s.values, s.holes,
                plan.models[(dom.name, g)], plan.passes, plan.method,
                plan.sk_mean.get((dom.name, g)), plan.idw_power, return_weights=True,
            )  # fmt: skip
            for b in range(iz.size):
                if res["pass"][b] <= 0:
                    continue
                pairs = zip(res["indices"][b], res["weights"][b], strict=True)
                used = [(int(k), float(w)) for k, w in pairs if k >= 0 and np.isfinite(w)]
                codes = [int(s.tranches[k]) for k, _ in used]
                where = (i, iz[b], iy[b], ix[b])
                latest[where] = max(codes, default=0)
                total = 0.0
                for (_, w), c in zip(used, codes, strict=True):
                    if c == newest:
                        count[where] += 1
                        total += w
                weight[where] = total
        out |= {f"{g}_latest_tranche": latest, f"{g}_newest_n": count,
                f"{g}_newest_weight": weight}  # fmt: skip
    return out


def assert_provenance(ds, plan):
    expected = expected_provenance(plan, ds["fraction"].values)
    for name, values in expected.items():
        npt.assert_array_equal(ds[name].values, values, err_msg=name, strict=True)


def test_problems_are_meaningful(references):
    for name, (case, ref, _) in references.items():
        grade = case.cfg.grades[0]
        passes = ref[f"{grade}_pass"].values
        assert set(np.unique(passes)) >= {-1, 1}, name
        assert (passes == 2).any() or name == "rules"
    _, ref, counts = references["wireframes"]
    assert counts["above_topography"] > 0
    assert counts["blocks_in_domains"] == {"main": 484, "west": 65, "far": 0}
    assert set(np.unique(ref["class"].values)) == {"", "measured", "indicated", "inferred"}
    assert references["rules"][2]["blocks_in_domains"]["box"] > 0
    assert references["whole"][2]["topography_uncovered_area"] > 0


CHUNKINGS = {
    "wireframes": [(5, 4, 3), (16, 12, 6), (7, 12, 1)],
    "rules": [(4, 5, 2), (7, 3, 7), (14, 11, 1)],
    "whole": [(3, 3, 3), (2, 7, 1)],
}


@pytest.mark.parametrize(
    ("name", "chunks"),
    [(n, c) for n, cs in CHUNKINGS.items() for c in cs],
    ids=[f"{n}-{'x'.join(map(str, c))}" for n, cs in CHUNKINGS.items() for c in cs],
)
def test_equals_in_memory_estimate(references, tmp_path, name, chunks):
    case, ref, counts = references[name]
    plan = make_plan(case, chunks)
    store, got = run_store(plan, tmp_path / "blockmodel.zarr")
    ds = read_model(store.path)
    assert_same_model(ds, ref)
    assert_same_counts(got, counts)
    assert got["chunks"]["computed"] == got["chunks"]["planned"]
    if chunks == CHUNKINGS[name][0]:
        assert_provenance(ds, plan)


def with_tranches(case, names, seed=0):
    """The case read from assay files of tranches ``names``; each hole from one of them and
    a few composites of each hole from the newest (re-assays)."""
    from estimator.config import AssayFile

    rng = np.random.default_rng(seed)
    assays = [AssayFile.model_construct(path=Path(f"{t}.csv"), tranche=t) for t in names]
    data = case.cfg.data.model_copy(update={"assays": assays, "samples": None})
    comps = case.composites.copy()
    holes = comps["hole_id"].unique()
    pick = dict(zip(holes, rng.integers(0, len(names), holes.size), strict=True))
    comps["tranche"] = [names[pick[h]] for h in comps["hole_id"]]
    comps.loc[rng.uniform(size=len(comps)) < 0.05, "tranche"] = names[-1]
    return SimpleNamespace(**{**vars(case), "composites": comps,
                              "cfg": case.cfg.model_copy(update={"data": data})})  # fmt: skip


def test_provenance_with_tranches(tmp_path):
    names = ["2011-06-28", "phase 2", "2012-01-20"]
    case = with_tranches(case_wireframes(), names)
    plan = make_plan(case, (8, 6, 3))
    assert plan.tranche_names == tuple(names)
    for (d, g), s in plan.samples.items():  # codes follow data.assays order
        rows = case.composites[(case.composites["domain"] == d) & case.composites[g].notna()]
        expected = [names.index(t) + 1 for t in rows["tranche"]]
        npt.assert_array_equal(s.tranches, expected, err_msg=f"{d}.{g}")
    store, _ = run_store(plan, tmp_path / "bm.zarr")
    ds = read_model(store.path)
    assert_same_model(ds, reference(case)[0])
    assert_provenance(ds, plan)
    latest = ds["pd_latest_tranche"]
    assert set(np.unique(latest.values)) == {0, 1, 2, 3}
    assert latest.attrs["flag_meanings"] == "none 2011-06-28 phase_2 2012-01-20"
    assert latest.attrs["tranche_names"] == names
    assert ds["pd_newest_n"].attrs["tranche"] == "2012-01-20"
    share = ds["pd_newest_weight"].values
    estimated = ds["pd_pass"].values > 0
    assert np.isnan(share[~estimated]).all() and np.isfinite(share[estimated]).all()
    assert ((share[estimated] == 0) == (ds["pd_newest_n"].values[estimated] == 0)).mean() > 0.99
    # a composite of a tranche that data.assays does not list
    bad = SimpleNamespace(**{**vars(case), "composites": case.composites.assign(tranche="old")})
    with pytest.raises(DataError, match=r"composites: tranche 'old' is not one of data\.assays"):
        make_plan(bad)


@pytest.mark.parametrize("method", ["nn"])
def test_other_methods_equal_in_memory_estimate(tmp_path, method):
    case = case_rules(method=method)
    ref, counts = reference(case)
    plan = make_plan(case)
    store, got = run_store(plan, tmp_path / "bm.zarr")
    ds = read_model(store.path)
    assert_same_model(ds, ref)
    assert_same_counts(got, counts)
    assert_provenance(ds, plan)
    assert (ds["au_newest_n"].values == (ds["au_pass"].values > 0)).all()  # one sample used


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_local_schedulers(references, tmp_path, scheduler):
    case, ref, counts = references["wireframes"]
    store, got = run_store(
        make_plan(case), tmp_path / "bm.zarr", scheduler=scheduler, num_workers=2
    )
    assert_same_model(read_model(store.path), ref)
    assert_same_counts(got, counts)


def test_distributed_in_process_cluster(references, tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    case, ref, counts = references["rules"]
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        seen = []
        store, got = run_store(
            make_plan(case), tmp_path / "a.zarr", scheduler=client, progress=True,
            on_chunk=lambda index, summary: seen.append(client.who_has()),
        )  # fmt: skip
        # one copy of the plan on each worker (scattered once, broadcast), whatever the task
        plans = {k: tuple(sorted(v)) for who in seen for k, v in who.items() if "ChunkPlan" in k}
        assert len(plans) == 1
        assert len(next(iter(plans.values()))) == 2
        # and the run leaves nothing behind on the cluster
        deadline = time.monotonic() + 10
        while client.who_has() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not client.who_has()
        by_address, _ = run_store(
            make_plan(case, (7, 3, 7)), tmp_path / "b.zarr", scheduler=cluster.scheduler_address
        )
    assert "100%" in capsys.readouterr().err
    assert_same_model(read_model(store.path), ref)
    assert_same_model(read_model(by_address.path), ref)
    assert_same_counts(got, counts)


def test_only_chunks_touching_a_domain_are_planned_and_stored(references, tmp_path):
    case, ref, _ = references["rules"]
    plan = make_plan(case, (3, 3, 2))
    planned = plan.touched_chunks()
    store, _ = run_store(plan, tmp_path / "bm.zarr")
    layout = plan.layout()
    assert 0 < len(planned) < len(layout.indices())
    assert store.recorded() == planned
    # a chunk holds blocks of a domain exactly when Zarr stored a fraction chunk for it
    holding = {}
    for idx in layout.indices():
        frac = ref["fraction"].values[(slice(None), *layout.window(idx))]
        for d in np.flatnonzero((frac > 0).any(axis=(1, 2, 3))):
            holding[(int(d), *idx)] = True
    assert {k[1:] for k in holding} <= set(planned)
    base = store.path / "fraction" / "c"
    stored = {tuple(int(p) for p in f.relative_to(base).parts) for f in base.rglob("*")
              if f.is_file()}  # fmt: skip
    assert stored == set(holding)


def test_a_domain_outside_the_grid_plans_nothing(references):
    from dataclasses import replace

    case = references["wireframes"][0]
    plan = make_plan(case, (4, 4, 2))
    assert plan.domains[2].name == "far"
    assert replace(plan, domains=plan.domains[2:]).touched_chunks() == []
    assert len(replace(plan, domains=plan.domains[1:2]).touched_chunks()) < 36


def test_rule_domains_plan_only_chunks_near_their_samples(references):
    case, ref, _ = references["rules"]
    plan = make_plan(case, (2, 2, 1))
    planned = set(plan.touched_chunks())
    layout = plan.layout()
    holding = {
        idx for idx in layout.indices()
        if (ref["fraction"].values[(slice(None), *layout.window(idx))] > 0).any()
    }  # fmt: skip
    assert holding <= planned
    assert len(planned) < len(layout.indices())


def test_compute_chunk_is_pure(references):
    case, ref, _ = references["wireframes"]
    plan = make_plan(case)
    index = plan.touched_chunks()[3]
    a, sa = compute_chunk(plan, index)
    b, sb = compute_chunk(plan, index)
    assert sa == sb
    window = plan.layout().window(index)
    for name, arr in a.items():
        npt.assert_array_equal(arr, b[name])
        if name != "class" and name in ref:
            npt.assert_array_equal(arr, ref[name].values[(slice(None), *window)])


def test_missing_model_is_refused(references):
    case = references["wireframes"][0]
    models = {"main": {"pd": MODEL, "pt": MODEL}, "west": {"pd": MODEL}}
    with pytest.raises(DataError, match=r"no variogram model for west\.pt, far\.pd, far\.pt"):
        ChunkPlan.from_config(case.cfg, case.composites, models, case.wireframes)


def test_failures_warned_once(references, tmp_path):
    case = references["whole"][0]
    with pytest.warns(EstimationWarning, match=r"^13 blocks not estimated") as record:
        estimate_to_store(make_plan(case), tmp_path / "bm.zarr", "p", scheduler="synchronous")
    assert len([w for w in record if issubclass(w.category, EstimationWarning)]) == 1


def test_bad_scheduler(references, tmp_path):
    case = references["whole"][0]
    with pytest.raises(ValueError, match=r"compute\.scheduler: expected threads"):
        estimate_to_store(make_plan(case), tmp_path / "bm.zarr", "p", scheduler="fast")


def _tls_files(folder):
    """A throw-away CA and a certificate for 127.0.0.1 signed by it (openssl)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not available to make test certificates")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=estimator-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "node.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return SimpleNamespace(
        ca_file=folder / "ca.pem", cert_file=folder / "node.pem", key_file=folder / "node.key"
    )


def test_tls_scheduler_address(references, tmp_path):
    distributed = pytest.importorskip("distributed")
    files = _tls_files(tmp_path)
    server = distributed.Security(
        tls_ca_file=str(files.ca_file), tls_scheduler_cert=str(files.cert_file),
        tls_scheduler_key=str(files.key_file), tls_worker_cert=str(files.cert_file),
        tls_worker_key=str(files.key_file), tls_client_cert=str(files.cert_file),
        tls_client_key=str(files.key_file), require_encryption=True,
    )  # fmt: skip
    case, ref, _ = references["whole"]
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tls://",
        host="127.0.0.1", security=server, dashboard_address=None,
    ) as cluster:  # fmt: skip
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        store, _ = run_store(make_plan(case), tmp_path / "bm.zarr", scheduler=address,
                             security=files)  # fmt: skip
        with pytest.raises(DataError, match=r"cannot reach the dask scheduler at tls://"):
            run_store(make_plan(case), tmp_path / "no.zarr", scheduler=address,
                      connect_timeout=2)  # no certificates: refused  # fmt: skip
    assert_same_model(read_model(store.path), ref)


def test_smoothing_and_search_units_equal_in_memory_estimate(tmp_path):
    from estimator.kriging.chunked import smooth_store

    case = case_rules()
    cls = {"classes": [{"name": "ind", "max_pass": 1, "min_samples": 8, "max_search_dist": 0.6},
                       {"name": "inf", "max_pass": 2}], "smoothing": {"min_blocks": 4}}  # fmt: skip
    cfg = case.cfg.model_copy(update={"classification": type(case.cfg.classification)(**cls)})
    case = SimpleNamespace(**{**vars(case), "cfg": cfg})
    ref, _ = reference(case)
    plan = make_plan(case)
    store, _ = run_store(plan, tmp_path / "bm.zarr")
    counts = smooth_store(store, plan, 4)
    assert counts["blocks"] > 0
    ds = read_model(store.path)
    np.testing.assert_array_equal(ds["class"].values, ref["class"].values)
    assert smooth_store(store, plan, 4) == counts  # from the rules again: the same result
    assert not verify_store(store.path)
