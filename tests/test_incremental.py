"""Tranche updates (kriging/updates.py, ``estimate_to_store(previous=...)``): bit for bit a full run.

A deposit is estimated from a first tranche of holes; a second tranche changes the samples in
one of many ways (new holes at one end, infill in a gap that moves blocks to an earlier pass,
a hole drilled deeper that displaces its own samples under ``max_per_hole``, samples
re-interpreted into another domain, a hole removed, re-assays, a cap that moves, holes listed
in another order, nearest-sample domains whose fractions change). The update, starting from
the first run's store (or its NetCDF) and cut into other chunks, must equal a full estimate of
the new inputs for every variable of every block, provenance included, and re-estimate only a
fraction of the blocks when the change is local. Anything else that changed means a full
estimate, with the reason.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from estimator.config import parse_config
from estimator.errors import EstimationWarning
from estimator.io.blockstore import PLAN_ATTR, open_block_model, to_netcdf
from estimator.kriging.chunked import ChunkPlan, estimate_to_store
from estimator.kriging.updates import (
    _FIELD_WORDS,
    _NOT_NUMBERS,
    _SAMPLE_FIELDS,
    Previous,
    _changed_samples,
    _increasing,
    can_reuse,
    plan_digest,
)
from estimator.variography.models import Structure, VariogramModel
from test_chunked import box

T0, T1, T2, T3 = "2009-11-02", "2011-06-28", "2011-09-14", "2012-01-20"
MODEL = VariogramModel(
    0.1,
    (
        Structure("spherical", 0.55, (50.0, 35.0, 12.0), (30.0, -10.0, 0.0)),
        Structure("spherical", 0.35, (140.0, 90.0, 30.0), (30.0, -10.0, 0.0)),
    ),
)
PASSES = [
    {"ranges": [40, 28, 10], "angles": [30, -10, 0], "min_samples": 6, "max_samples": 10,
     "max_per_hole": 3},
    {"scale": 2.0, "min_samples": 3, "max_samples": 10,
     "octants": {"max_per_octant": 3, "min_octants": 2}},
]  # fmt: skip
CLASSES = {"classes": [{"name": "indicated", "max_pass": 1, "min_holes": 3},
                       {"name": "inferred", "max_pass": 2}]}  # fmt: skip
ORIGIN, SIZE, SHAPE = (1000.0, 5000.0, 200.0), (10.0, 10.0, 5.0), (18, 12, 6)
CENTRE = (1085.0, 5060.0)
GAP = np.array([1045.0, 5030.0])  # no hole of the first tranche within 28 m of here


def config(tranches=(T1,), chunks=(9, 6, 3), *, rules=False, passes=PASSES, **extra):
    domains = [
        {"name": "main", "wireframe": "main.obj", "density": 2.9},
        {"name": "west", "wireframe": "west.obj", "density": 2.7},
    ]
    if rules:
        domains.insert(0, {"name": "lens", "zone_code": "L",
                           "blocks": {"rule": "nearest_sample", "max_distance": 9.0}})  # fmt: skip
    raw = {
        "name": "tranches",
        "data": {"collars": "c.csv", "surveys": "s.csv", "zones": "z.csv",
                 "assays": [{"path": f"{t}.csv", "tranche": t} for t in tranches],
                 "grade_unit": "g/t", "length_unit": "m"},
        "grades": ["pd", "pt"],
        "domains": domains,
        "block_model": {"origin": list(ORIGIN), "block_size": list(SIZE), "shape": list(SHAPE),
                        "rotation": 15.0, "subcells": [2, 2, 2]},
        "estimation": {"passes": passes},
        "classification": CLASSES,
        "compute": {"scheduler": "synchronous", "chunks": list(chunks)},
    } | extra  # fmt: skip
    return parse_config(raw, check_files=False)


WIRES = {
    "main": box((CENTRE[0] - 50, CENTRE[1] - 45, 203.0), (CENTRE[0] + 75, CENTRE[1] + 50, 229.0)),
    "west": box((CENTRE[0] - 95, CENTRE[1] - 70, 210.0), (CENTRE[0] - 20, CENTRE[1] + 10, 235.0)),
}
MODELS = {d: {"pd": MODEL, "pt": MODEL} for d in ("lens", "main", "west")}


def drill(rng, collars, names, tranche, per_hole=14, top=232.0):
    """Composites of straight, slightly inclined holes (2 m), two grades (pt partly missing)."""
    frames = []
    for name, (x, y) in zip(names, collars, strict=True):
        depth = np.arange(per_hole) * 2.0 + 1.0
        pd_ = rng.lognormal(0.0, 0.8, per_hole)
        pt = 0.3 * pd_ + rng.lognormal(-1.0, 0.5, per_hole)
        pt[rng.uniform(size=per_hole) < 0.1] = np.nan
        frames.append(pd.DataFrame({
            "hole_id": name, "from": depth - 1.0, "to": depth + 1.0,
            "x": x + 0.12 * depth, "y": y - 0.05 * depth, "z": top - depth,
            "tranche": tranche, "pd": pd_, "pt": pt,
        }))  # fmt: skip
    return with_domains(pd.concat(frames, ignore_index=True))


def with_domains(comps):
    x, y, z = (comps[c].to_numpy() for c in "xyz")
    main = (abs(x - CENTRE[0] - 12) < 62) & (abs(y - CENTRE[1] - 2) < 47) & (z > 203) & (z < 229)
    west = (x < CENTRE[0] - 20) & (y < CENTRE[1] + 10) & (z > 210)
    comps["domain"] = np.where(main, "main", np.where(west, "west", ""))
    return comps


def base_composites(seed=0):
    rng = np.random.default_rng(seed)
    collars = np.array(CENTRE) + rng.uniform(-100, 85, size=(80, 2))
    collars = collars[np.hypot(*(collars - GAP).T) > 28][:40]
    names = [f"DH{k:03d}" for k in range(len(collars))]
    return drill(rng, collars, names, T1)


def estimated(comps):
    """The composites an estimate sees: inside a domain."""
    return comps[comps["domain"] != ""].reset_index(drop=True)


def make_plan(cfg, comps, *, rules=False, logged=None):
    """The plan of ``comps``; with ``rules`` the domain points are the composites' places and
    labels plus the ``logged`` ones (intervals logged in a zone, without assays)."""
    points = None
    if rules:
        points = (comps[["x", "y", "z"]].to_numpy(), comps["domain"].to_numpy(dtype=object))
        if logged is not None:
            points = (np.vstack([points[0], logged[0]]),
                      np.concatenate([points[1], logged[1]]))  # fmt: skip
    inside = estimated(comps)
    return ChunkPlan.from_config(cfg, inside, MODELS, WIRES, domain_points=points)


def run(plan, path, previous=None, **kwargs):
    kwargs.setdefault("scheduler", "synchronous")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        store, counts = estimate_to_store(plan, path, "id", previous=previous, **kwargs)
    return store.path, counts


def assert_identical(path, reference):
    """Every variable of every block, bit for bit (NaN where NaN), and the same attributes."""
    a = open_block_model(path).compute()
    b = open_block_model(reference).compute()
    assert set(a.variables) == set(b.variables)
    assert a.attrs == b.attrs
    for name in b.variables:
        npt.assert_array_equal(a[name].values, b[name].values, err_msg=name, strict=True)
        assert a[name].attrs == b[name].attrs, name


def assert_same_counts(counts, reference):
    keep = lambda c: {k: v for k, v in c.items() if k not in ("chunks", "update")}  # noqa: E731
    a, b = keep(counts), keep(reference)
    assert a.keys() == b.keys()
    for key in a:
        if key == "volume_by_domain":  # sums over chunks: equal to rounding
            for d in a[key]:
                assert a[key][d] == pytest.approx(b[key][d], rel=1e-12, abs=1e-9)
        else:
            assert a[key] == b[key], key


def estimated_share(counts):
    blocks = counts["update"]["blocks"]
    est = sum(v["estimated"] for per in blocks.values() for v in per.values())
    copied = sum(v["copied"] for per in blocks.values() for v in per.values())
    return est / (est + copied)


# ---------------------------------------------------------------------------------------
# the second tranches
# ---------------------------------------------------------------------------------------
def extension(comps, rng):
    """New holes drilled past the east end of the deposit."""
    collars = np.column_stack([rng.uniform(1150, 1175, 5), rng.uniform(5040, 5090, 5)])
    new = drill(rng, collars, [f"EX{k}" for k in range(5)], T2)
    return pd.concat([comps, new], ignore_index=True), (T1, T2)


def infill(comps, rng):
    """Holes in the gap: blocks move from pass 2 (or none) to pass 1; samples displaced."""
    collars = GAP + rng.uniform(-12, 12, size=(4, 2))
    new = drill(rng, collars, ["IN1", "IN2", "AA0", "IN3"], T2)  # AA0 sorts first
    return pd.concat([new, comps], ignore_index=True), (T1, T2)


def deepen(comps, rng):
    """An existing hole re-entered and assayed deeper; another one infilled along its trace:
    max_per_hole keeps only its closest samples, so its earlier ones are displaced."""
    first = comps[comps["hole_id"] == "DH005"]
    x, y = first["x"].iloc[0] - 0.12, first["y"].iloc[0] + 0.05
    deeper = drill(rng, [(x, y)], ["DH005"], T2, per_hole=18)
    deeper = deeper.iloc[14:]
    half = comps[comps["hole_id"] == "DH010"].copy()
    half[["x", "y", "z"]] += [0.4, 0.3, -1.0]
    half["tranche"] = T2
    half[["pd", "pt"]] = rng.lognormal(0.5, 0.5, size=(len(half), 2))
    at = int(np.flatnonzero(comps["hole_id"] == "DH010")[-1]) + 1
    out = pd.concat([comps.iloc[:at], with_domains(half), comps.iloc[at:]], ignore_index=True)
    at = int(np.flatnonzero(out["hole_id"] == "DH005")[-1]) + 1
    return pd.concat([out.iloc[:at], deeper, out.iloc[at:]], ignore_index=True), (T1, T2)


def domain_move(comps, rng):
    """Samples re-interpreted from main into west (and some out of every domain)."""
    out = comps.copy()
    near = (out["domain"] == "main") & (out["x"] < CENTRE[0] - 30)
    moved = np.flatnonzero(near.to_numpy())[:12]
    out.loc[moved[:8], "domain"] = "west"
    out.loc[moved[8:], "domain"] = ""
    return out, (T1,)


def remove_hole(comps, rng):
    """The hole with the most samples in the main domain, deleted."""
    hole = comps.loc[comps["domain"] == "main", "hole_id"].value_counts().index[0]
    return comps[comps["hole_id"] != hole].reset_index(drop=True), (T1,)


def reassay(comps, rng):
    """One hole's samples re-assayed in the second tranche: new values, same places."""
    out = comps.copy()
    rows = out["hole_id"] == "DH003"
    out.loc[rows, "pd"] = rng.lognormal(0.2, 0.8, int(rows.sum()))
    out.loc[rows, "tranche"] = T2
    return out, (T1, T2)


def cap_moves(comps, rng):
    """A percentile cap whose value moved: every value above it changes (and the range)."""
    out = comps.copy()
    cap = float(np.quantile(out["pd"], 0.9))
    out.loc[out["pd"] > cap, "pd"] = cap
    return out, (T1,)


def reordered(comps, rng):
    """The same samples, holes listed in another order (ties in distance may change hands)."""
    holes = comps["hole_id"].unique()
    order = {h: k for k, h in enumerate(rng.permutation(holes))}
    key = comps["hole_id"].map(order)
    return comps.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True), (T1,)


def historic(comps, rng):
    """Holes of an older campaign, found in the archive: a tranche listed before the first
    (every tranche code of the first run is renumbered, the newest tranche is the same)."""
    collars = np.column_stack([rng.uniform(1000, 1030, 3), rng.uniform(4990, 5020, 3)])
    old = drill(rng, collars, ["H1", "H2", "H3"], T0)
    return pd.concat([old, comps], ignore_index=True), (T0, T1)


SCENARIOS = {
    "extension": extension, "infill": infill, "deepen": deepen, "domain_move": domain_move,
    "remove_hole": remove_hole, "reassay": reassay, "cap_moves": cap_moves,
    "reordered": reordered, "historic": historic,
}  # fmt: skip


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """The first tranche, estimated in full (chunks 9 x 6 x 3)."""
    comps = base_composites()
    plan = make_plan(config(), comps)
    path, counts = run(plan, tmp_path_factory.mktemp("first") / "blockmodel.zarr")
    return SimpleNamespace(comps=comps, plan=plan, path=path, counts=counts)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_update_equals_full_estimate(first, tmp_path, name):
    number = list(SCENARIOS).index(name)
    rng = np.random.default_rng(number)
    comps, tranches = SCENARIOS[name](first.comps, rng)
    full_plan = make_plan(config(tranches, chunks=(18, 12, 6)), comps)
    full, counts = run(full_plan, tmp_path / "full.zarr")
    # the first run's chunks (unchanged chunks copied file by file) or others (read by window)
    chunks = (9, 6, 3) if number % 2 == 0 else (6, 4, 6)
    plan = make_plan(config(tranches, chunks=chunks), comps)
    assert can_reuse(Previous(first.plan, first.path), plan)[0]
    path, got = run(plan, tmp_path / "update.zarr", Previous(first.plan, first.path))
    assert got["update"]["reused"], got["update"]["reason"]
    assert_identical(path, full)
    assert_same_counts(got, counts)
    share = estimated_share(got)
    assert 0 < share < 1
    if name == "extension":
        assert share < 0.4, share  # a local change re-estimates a part of the model
        assert got["update"]["chunks"]["copied_whole"] > 0

    # the scenario does what it says
    old = open_block_model(first.path).compute()
    new = open_block_model(full).compute()
    changed = ~np.isclose(old["pd"].values, new["pd"].values, equal_nan=True, rtol=0, atol=0)
    assert changed.any() or name == "reordered"
    if name == "infill":
        moved = (old["pd_pass"].values != 1) & (new["pd_pass"].values == 1)
        assert moved.sum() > 10
    if name == "cap_moves":
        assert got["composite_range"] != first.counts["composite_range"]
    if len(tranches) == 2:
        used = new["pd_newest_n"].values > 0
        assert used.any() and (new["pd_latest_tranche"].values[used] == 2).all()
        old_only = (new["pd_pass"].values > 0) & ~used
        assert (new["pd_latest_tranche"].values[old_only] == 1).all()
        assert (new["pd_newest_weight"].values[old_only] == 0.0).all()
    if name == "historic":
        codes = new["pd_latest_tranche"].values
        assert set(np.unique(codes)) == {0, 1, 2}
        assert (new["pd_newest_n"].values[codes == 1] == 0).all()
    assert np.isnan(new["pd_newest_weight"].values[new["pd_pass"].values <= 0]).all()


def test_unchanged_inputs_copy_every_block(first, tmp_path):
    plan = replace(first.plan, chunks=(6, 6, 6))
    path, got = run(plan, tmp_path / "same.zarr", Previous(first.plan, first.path))
    assert_identical(path, first.path)
    assert got["update"]["chunks"]["estimated"] == 0
    assert estimated_share(got) == 0


def test_chained_updates_from_netcdf_and_threads(first, tmp_path):
    """First -> +extension (from the store) -> +infill as a third tranche (from the NetCDF
    of the update, read whole), on threads; each equals its full estimate."""
    rng = np.random.default_rng(7)
    comps2, _ = extension(first.comps, rng)
    plan2 = make_plan(config((T1, T2), chunks=(6, 12, 2)), comps2)
    path2, _ = run(plan2, tmp_path / "u2.zarr", Previous(first.plan, first.path))
    collars = GAP + rng.uniform(-10, 10, size=(3, 2))
    comps3 = pd.concat([comps2, drill(rng, collars, ["N1", "N2", "N3"], T3)], ignore_index=True)
    plan3 = make_plan(config((T1, T2, T3), chunks=(9, 4, 6)), comps3)
    nc = to_netcdf(path2, tmp_path / "blockmodel.nc")
    path3, got = run(plan3, tmp_path / "u3.zarr", Previous(plan2, nc), scheduler="threads",
                     num_workers=2)  # fmt: skip
    assert got["update"]["reused"], got["update"]["reason"]
    full, counts = run(make_plan(config((T1, T2, T3)), comps3), tmp_path / "full.zarr")
    assert_identical(path3, full)
    assert_same_counts(got, counts)
    new = open_block_model(full).compute()
    tranche = new["pd_latest_tranche"]
    assert set(np.unique(tranche.values)) == {0, 1, 2, 3}
    assert tranche.attrs["tranche_names"] == [T1, T2, T3]
    assert tranche.attrs["flag_meanings"] == f"none {T1} {T2} {T3}"
    # the NetCDF file of the update (path given) serves as well
    path4, got = run(plan3, tmp_path / "u4.zarr", Previous(plan2, tmp_path / "blockmodel.nc"))
    assert got["update"]["reused"]
    assert_identical(path4, full)


def test_range_flags_follow_the_value_range(tmp_path):
    """A gaussian model without nugget gives estimates outside their samples' range; an
    outlier far below the grid (out of every block's reach) widens the domain's range in the
    first tranche and is withdrawn in the second: the range flags of blocks that nothing
    else changed must be those of a full run."""
    gaussian = VariogramModel(0.0, (Structure("gaussian", 1.0, (60.0, 45.0, 20.0), (30, -10, 0)),))
    models = {d: {"pd": gaussian, "pt": MODEL} for d in ("main", "west")}
    comps = estimated(base_composites(5))
    far = comps.iloc[:2].copy()
    far[["x", "y", "z"]] = [[CENTRE[0], CENTRE[1], 60.0], [CENTRE[0] + 5, CENTRE[1], 58.0]]
    far[["hole_id", "domain", "pd"]] = [["FAR", "main", 1e-4], ["FAR", "main", 60.0]]
    first = pd.concat([comps, far], ignore_index=True)

    def plan_of(c, chunks=(9, 6, 3)):
        return ChunkPlan.from_config(config(chunks=chunks), c, models, WIRES)

    plan1 = plan_of(first)
    path1, counts1 = run(plan1, tmp_path / "first.zarr")
    plan2 = plan_of(comps, (6, 4, 6))
    path2, got = run(plan2, tmp_path / "update.zarr", Previous(plan1, path1))
    full, counts = run(plan_of(comps, (18, 12, 6)), tmp_path / "full.zarr")
    assert_identical(path2, full)
    assert_same_counts(got, counts)
    assert estimated_share(got) == 0  # no block within reach of the outlier: all copied
    flags1, flags2 = counts1["flags"]["main"]["pd"], counts["flags"]["main"]["pd"]
    assert flags1["ill_conditioned"] == flags2["ill_conditioned"] > 0
    assert flags2["above_range"] + flags2["below_range"] > flags1["above_range"] + flags1[
        "below_range"]  # fmt: skip


def test_update_on_processes_and_a_cluster(first, tmp_path):
    """The update travels to worker processes and dask workers (pickled once per worker)."""
    distributed = pytest.importorskip("distributed")
    comps, tranches = infill(first.comps, np.random.default_rng(3))
    full, _ = run(make_plan(config(tranches), comps), tmp_path / "full.zarr")
    plan = make_plan(config(tranches, chunks=(6, 4, 6)), comps)
    previous = Previous(first.plan, first.path)
    path, got = run(plan, tmp_path / "processes.zarr", previous, scheduler="processes",
                    num_workers=2)  # fmt: skip
    assert got["update"]["reused"]
    assert_identical(path, full)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        path, got = run(plan, tmp_path / "cluster.zarr", previous, scheduler=client)
    assert got["update"]["reused"]
    assert_identical(path, full)


def test_an_interrupted_update_resumes(first, tmp_path):
    comps, tranches = extension(first.comps, np.random.default_rng(4))
    plan = make_plan(config(tranches, chunks=(6, 4, 3)), comps)
    previous = Previous(first.plan, first.path)
    seen = []

    def stop(index, summary):
        seen.append(index)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(plan, tmp_path / "update.zarr", previous, on_chunk=stop)
    path, got = run(plan, tmp_path / "update.zarr", previous)
    assert got["chunks"]["reused"] == 5
    full, counts = run(make_plan(config(tranches), comps), tmp_path / "full.zarr")
    assert_identical(path, full)
    assert_same_counts(got, counts)
    _, once = run(plan, tmp_path / "again.zarr", previous)
    assert got["update"]["blocks"] == once["update"]["blocks"]


@pytest.mark.parametrize("what", ["holes", "logged"])
def test_rule_domain_fractions_change(tmp_path, what):
    """Nearest-sample domain: new holes (or only intervals logged in its zone, without
    assays: no kriging sample changes) change which sub-cells it holds."""
    rng = np.random.default_rng(11)
    comps = base_composites(3)
    lens = (np.hypot(comps["x"] - 1060, comps["y"] - 5050) < 30) & (comps["z"] > 214)
    comps.loc[lens, "domain"] = "lens"
    comps2, tranches, logged = comps, (T1,), None
    if what == "holes":
        collars = np.array([1062.0, 5052.0]) + rng.uniform(-15, 15, size=(3, 2))
        new = drill(rng, collars, ["L1", "L2", "L3"], T2)
        new.loc[new["z"] > 214, "domain"] = "lens"
        comps2, tranches = pd.concat([comps, new], ignore_index=True), (T1, T2)
    else:
        z = np.arange(216.0, 230.0, 2.0)
        logged = (np.column_stack([np.full(z.size, 1093.0), np.full(z.size, 5052.0), z]),
                  np.full(z.size, "lens", dtype=object))  # fmt: skip
    plan1 = make_plan(config(rules=True), comps, rules=True)
    path1, _ = run(plan1, tmp_path / "first.zarr")
    # logged: the first run's chunks, copied file by file where nothing can change
    cfg = config(tranches, chunks=(6, 4, 6) if what == "holes" else (9, 6, 3), rules=True)
    plan2 = make_plan(cfg, comps2, rules=True, logged=logged)
    path2, got = run(plan2, tmp_path / "update.zarr", Previous(plan1, path1))
    assert got["update"]["reused"], got["update"]["reason"]
    full_plan = make_plan(config(tranches, rules=True), comps2, rules=True, logged=logged)
    full, counts = run(full_plan, tmp_path / "full.zarr")
    assert_identical(path2, full)
    assert_same_counts(got, counts)
    if what == "logged":
        assert 0 < estimated_share(got) < 0.1
    old = open_block_model(path1).compute()["fraction"].values
    now = open_block_model(full).compute()["fraction"].values
    assert ((old[0] > 0) != (now[0] > 0)).any()  # blocks entered (or left) the lens
    assert (old[1:] != now[1:]).any()  # and the domains after it lost them


def test_far_chunks_are_copied_file_by_file(tmp_path, monkeypatch):
    """A long deposit, a hole added at its east end: the chunks out of its reach are copied
    from the previous store file by file, then checked against their records and carried
    over (the newest tranche is a new one: their newest-tranche counts become 0); a copied
    chunk that does not match its record is estimated in full."""
    import shutil

    from estimator.io.blockstore import BlockStore

    def cfg(tranches):
        raw = {
            "name": "long",
            "data": {"collars": "c.csv", "surveys": "s.csv",
                     "assays": [{"path": f"{t}.csv", "tranche": t} for t in tranches]},
            "grades": ["au"],
            "block_model": {"origin": [0, 0, 0], "block_size": [10, 10, 10],
                            "shape": [40, 3, 2]},
            "estimation": {"passes": [{"ranges": [30, 30, 12], "min_samples": 2,
                                       "max_samples": 8, "max_per_hole": 3}]},
            "classification": {"classes": [{"name": "indicated", "max_pass": 1,
                                             "min_holes": 2}]},
            "compute": {"scheduler": "synchronous", "chunks": [5, 3, 2]},
        }  # fmt: skip
        return parse_config(raw, check_files=False)

    rng = np.random.default_rng(2)
    z = np.arange(1.0, 20.0, 2.0)
    holes = [(f"H{k:02d}", 5.0 + 20 * k, T1) for k in range(19)] + [("E1", 392.0, T2)]
    comps = pd.concat([
        pd.DataFrame({"hole_id": h, "x": x, "y": 15.0, "z": z, "tranche": t, "domain": "all",
                      "au": rng.lognormal(0, 0.5, z.size)})
        for h, x, t in holes
    ], ignore_index=True)  # fmt: skip
    models = {"all": {"au": MODEL}}
    first = comps[comps["tranche"] == T1].reset_index(drop=True)
    plan1 = ChunkPlan.from_config(cfg((T1,)), first, models, {})
    path1, _ = run(plan1, tmp_path / "first.zarr")
    plan2 = ChunkPlan.from_config(cfg((T1, T2)), comps, models, {})
    full, counts = run(plan2, tmp_path / "full.zarr")
    copies = []
    original = BlockStore.copy_chunk

    def spy(self, source, index):
        copies.append(tuple(index))
        return original(self, source, index)

    monkeypatch.setattr(BlockStore, "copy_chunk", spy)
    path2, got = run(plan2, tmp_path / "update.zarr", Previous(plan1, path1))
    assert_identical(path2, full)
    assert_same_counts(got, counts)
    assert len(copies) >= 4 and got["update"]["chunks"]["copied_whole"] >= len(copies)
    assert (open_block_model(path1)["au_newest_n"].values > 0).any()  # carried over to 0
    # the au file of a copied chunk swapped for its neighbour's: estimated in full
    chunk_files = path1 / "au" / "c" / "0" / "0" / "0"
    shutil.copyfile(chunk_files / "1", chunk_files / "0")
    path3, got = run(plan2, tmp_path / "damaged.zarr", Previous(plan1, path1))
    assert got["update"]["chunks"]["previous_damaged"] == 1
    assert_identical(path3, full)


def test_ties_in_distance_follow_the_sample_order(tmp_path):
    """Two samples equally far from a block, room for one: the earlier in the table wins.
    Listing them the other way round must re-estimate that block, though nothing else
    changed (a multiset comparison alone would copy it)."""
    raw = {
        "name": "ties", "data": {"samples": "points.csv"}, "grades": ["au"],
        "block_model": {"origin": [0, 0, 0], "block_size": [10, 10, 10], "shape": [4, 1, 1]},
        "estimation": {"discretisation": [1, 1, 1],
                       "passes": [{"ranges": [12, 12, 12], "min_samples": 1, "max_samples": 1}]},
        "compute": {"scheduler": "synchronous", "chunks": [4, 1, 1]},
    }  # fmt: skip
    cfg = parse_config(raw, check_files=False)
    comps = pd.DataFrame({"hole_id": ["A", "B", "C"], "x": [10.0, 20.0, 38.0],
                          "y": [5.0] * 3, "z": [5.0] * 3, "au": [1.0, 2.0, 4.0],
                          "domain": "all"})  # fmt: skip
    models = {"all": {"au": MODEL}}
    plan1 = ChunkPlan.from_config(cfg, comps, models, {})
    path1, _ = run(plan1, tmp_path / "first.zarr")
    swapped = comps.iloc[[1, 0, 2]].reset_index(drop=True)
    plan2 = ChunkPlan.from_config(cfg, swapped, models, {})
    path2, got = run(plan2, tmp_path / "update.zarr", Previous(plan1, path1))
    full, _ = run(plan2, tmp_path / "full.zarr")
    assert_identical(path2, full)
    first = open_block_model(path1).compute()["au"].values.ravel()
    npt.assert_array_equal(first, [1.0, 1.0, 2.0, 4.0])
    npt.assert_array_equal(open_block_model(full).compute()["au"].values.ravel(),
                           [1.0, 2.0, 2.0, 4.0])  # fmt: skip
    # one of the two counts as moved (the other keeps its order): the blocks it can reach
    assert got["update"]["blocks"]["all"]["au"] == {"estimated": 2, "copied": 2}


# ---------------------------------------------------------------------------------------
# anything else: a full estimate, with the reason
# ---------------------------------------------------------------------------------------
def _other_model():
    return VariogramModel(0.2, (Structure("spherical", 0.8, (60.0, 40.0, 12.0), (30, -10, 0)),))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: replace(p, models={**p.models, ("main", "pt"): _other_model()}),
         "the variogram models changed"),
        (lambda p: replace(p, passes=p.passes[:1]), "the search passes"),
        (lambda p: replace(p, grid=replace(p.grid, rotation=10.0)), "the block grid"),
        (lambda p: replace(p, discretisation=(2, 2, 2)), "estimation.discretisation changed"),
        (lambda p: replace(p, class_rules=p.class_rules[:1]), "the classification rules"),
        (lambda p: replace(p, domains=p.domains[::-1]), "the domains"),
    ],
    ids=["model", "passes", "grid", "discretisation", "classes", "domains"],
)
def test_other_changes_are_refused(first, change, reason):
    ok, why = can_reuse(Previous(first.plan, first.path), change(first.plan))
    assert not ok and reason in why, why


def test_tranches_listed_in_another_order_are_refused(first):
    old = replace(first.plan, tranche_names=(T1, T2))
    ok, why = can_reuse(Previous(old, first.path), replace(first.plan, tranche_names=(T2, T1)))
    assert not ok and "the order of the tranches in data.assays changed" in why
    # an earlier tranche inserted before the others keeps the order: no reason to refuse
    ok, why = can_reuse(Previous(first.plan, first.path),
                        replace(first.plan, tranche_names=("2010-01-01", T1)))  # fmt: skip
    assert ok, why


def test_newest_tranche_removed_is_refused(first, tmp_path):
    plan2 = make_plan(config((T1, T2)), pd.concat([first.comps.assign(tranche=T2)]))
    path2, _ = run(plan2, tmp_path / "two.zarr")
    ok, why = can_reuse(Previous(plan2, path2), first.plan)
    assert not ok and f"the newest tranche is now {T1!r}, an earlier one" in why


def test_foreign_damaged_or_missing_previous_model_gives_a_full_estimate(first, tmp_path):
    import shutil

    rng = np.random.default_rng(5)
    comps, tranches = extension(first.comps, rng)
    plan = make_plan(config(tranches), comps)
    full, _ = run(plan, tmp_path / "full.zarr")
    # foreign: another run's plan (here: the plan of the full run, not of the first one)
    ok, why = can_reuse(Previous(plan, first.path), plan)
    assert not ok and "estimate_plan_sha256 attribute is not the digest" in why
    # missing
    ok, why = can_reuse(Previous(first.plan, tmp_path / "nowhere.zarr"), plan)
    assert not ok and "nowhere.zarr does not exist" in why
    # damaged: the pd file of the first chunk replaced by the second chunk's (a file that
    # decodes, with other numbers) and pt's file of the last chunk cut short
    copy = tmp_path / "copy.zarr"
    shutil.copytree(first.path, copy)
    a, b = (copy / "pd" / "c" / "0" / "0" / "0" / "0", copy / "pd" / "c" / "0" / "0" / "0" / "1")
    shutil.copyfile(b, a)
    victim = max((p for p in (copy / "pt" / "c").rglob("*") if p.is_file()), key=str)
    victim.write_bytes(victim.read_bytes()[:20])
    ok, why = can_reuse(Previous(first.plan, copy), plan)  # verify: every chunk read back
    assert not ok and "have no completion record or no longer match it" in why
    # the update checks each previous chunk it reads, and estimates over a damaged one in full
    path, got = run(plan, tmp_path / "update.zarr", Previous(first.plan, copy))
    assert got["update"]["reused"]
    assert got["update"]["chunks"]["previous_damaged"] == 2
    assert "did not match their completion records" in got["update"]["reason"]
    assert_identical(path, full)
    # a completion record removed: the same
    (copy / ".chunks" / "z1_y0_x0.json").unlink()
    path, got = run(plan, tmp_path / "update2.zarr", Previous(first.plan, copy))
    assert got["update"]["chunks"]["previous_damaged"] == 3
    assert_identical(path, full)
    # never the store being written
    ok, why = can_reuse(Previous(first.plan, first.path), plan)
    assert ok
    _, got = run(first.plan, first.path, Previous(first.plan, first.path))
    assert not got["update"]["reused"] and "is the store being written" in got["update"]["reason"]


# ---------------------------------------------------------------------------------------
# the pieces
# ---------------------------------------------------------------------------------------
def test_every_plan_field_is_classified():
    """A new plan field must be declared: compared (full estimate), sample-like or neither."""
    from dataclasses import fields

    names = {f.name for f in fields(ChunkPlan)}
    declared = set(_FIELD_WORDS) | set(_SAMPLE_FIELDS) | set(_NOT_NUMBERS)
    assert names == declared
    assert not (set(_FIELD_WORDS) & set(_SAMPLE_FIELDS))


def test_plan_digest_sees_every_number_but_not_chunks(first):
    plan = first.plan
    digest = plan_digest(plan)
    assert plan_digest(replace(plan, chunks=(1, 1, 1), length_unit="ft")) == digest
    assert open_block_model(first.path).attrs[PLAN_ATTR] == digest
    s = plan.samples[("main", "pd")]
    values = s.values.copy()
    values[3] = np.nextafter(values[3], np.inf)  # one unit in the last place
    other = {**plan.samples, ("main", "pd"): replace(s, values=values)}
    assert plan_digest(replace(plan, samples=other)) != digest
    assert plan_digest(replace(plan, idw_power=2.0 + 1e-15)) != digest


def test_changed_samples_are_a_multiset_difference_in_order(first):
    plan = first.plan
    key = ("main", "pd")
    s = plan.samples[key]
    m = len(s.values)

    def with_rows(order, **cols):
        fields = {"xyz": s.xyz[order], "values": s.values[order], "holes": s.holes[order],
                  "tranches": s.tranches[order]} | cols  # fmt: skip
        return replace(plan, samples={**plan.samples, key: replace(s, **fields)})

    same = with_rows(np.arange(m))
    pos, added, removed = _changed_samples(plan, same, key)
    assert (pos.shape, added, removed) == ((0, 3), 0, 0)
    # two samples swapped: both count as changed (their order decides distance ties)
    swap = np.arange(m)
    swap[[4, 9]] = swap[[9, 4]]
    pos, added, removed = _changed_samples(plan, with_rows(swap), key)
    assert (added, removed) == (2, 2)
    assert {tuple(p) for p in pos} == {tuple(s.xyz[4]), tuple(s.xyz[9])}
    # a sample dropped and one re-assayed (its tranche too)
    keep = np.delete(np.arange(m), 20)
    values = s.values[keep].copy()
    values[30] += 1.0
    pos, added, removed = _changed_samples(plan, with_rows(keep, values=values), key)
    assert (added, removed) == (1, 2)
    npt.assert_array_equal(pos, np.vstack([s.xyz[[20, 31]], s.xyz[[31]]]))
    tranches = s.tranches.copy()
    tranches[0] = 0
    assert _changed_samples(plan, with_rows(np.arange(m), tranches=tranches), key)[1:] == (1, 1)
    # hole codes renumbered (a new hole sorting first) are the same holes
    names = np.array(["AAA", *plan.hole_names], dtype=object)
    renamed = replace(with_rows(np.arange(m), holes=s.holes + 1), hole_names=names)
    assert _changed_samples(plan, renamed, key)[1:] == (0, 0)


def test_increasing_keeps_a_longest_increasing_subsequence():
    rng = np.random.default_rng(0)
    for _ in range(50):
        seq = rng.permutation(40)[: rng.integers(1, 40)]
        keep = _increasing(seq)
        assert np.all(np.diff(seq[keep]) > 0)
        # the length of the longest one, by dynamic programming
        best = [1] * len(seq)
        for i in range(len(seq)):
            for j in range(i):
                if seq[j] < seq[i]:
                    best[i] = max(best[i], best[j] + 1)
        assert keep.sum() == max(best)
