"""Estimate a block model chunk by chunk into a chunked store, never whole in memory.

A :class:`ChunkPlan` holds everything one chunk needs (grid, domains, topography, samples,
models, passes, classes, chunk size). :func:`estimate_to_store` makes one task per chunk of the
``compute.chunks`` grid that may touch a domain; each task

1. computes the chunk's fractions in every domain (:func:`~estimator.blockmodel.fractions.
   domain_fractions` on the chunk's window: sub-cell centres from global indices, so the same
   bits as the whole-grid computation; the first domain in config order wins),
2. krigs every grade of every domain for the blocks with ``fraction > 0`` from the samples
   within the search reach of the chunk (as :func:`estimator.kriging.parallel.plan_chunks`),
3. adds the flags, ``pass = -1`` outside the domain, ``dist`` in data units and the classes,
   exactly as :func:`estimator.estimation.estimate_stage` does on the whole model,
4. writes its arrays into the store itself, then records its completion (SHA-256 of the
   data and the summary counts), and returns only the small summary.

The summaries are summed in the fixed chunk order into the counts ``estimate_stage`` returns.
The stored model equals ``estimate_stage``'s, bit for bit, for every variable and block, on
every scheduler and chunking: a block's kriging depends only on its target, the
discretisation and the samples within its search ellipsoid (kept in their original order).

**Resume**: the store records the caller's ``plan_id`` (a hash of every input). A rerun with
the same id keeps each chunk whose completion record exists and whose stored data still hash to
it, and computes the rest; another id starts a fresh store.

**Schedulers**: ``synchronous``, ``threads``, ``processes`` (local pools; a process receives
the plan once, when it starts), ``cluster`` (a ``dask.distributed`` LocalCluster started here on
127.0.0.1 without dashboard, ``num_workers`` processes of one thread), an open
``distributed.Client`` or a scheduler address (``tcp://``, ``tls://`` with ``security``). With
dask.distributed the plan is scattered once to every worker, workers write their chunks
themselves (the store must be on a file system they share) and the client gathers only the
summaries.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from estimator.blockmodel.fractions import SampleIndex, Surface, domain_fractions
from estimator.blockmodel.grid import (
    GRADE_VARIABLES,
    MAX_TRANCHES,
    PROVENANCE_VARIABLES,
    BlockGrid,
)
from estimator.errors import DataError
from estimator.kriging.parallel import (
    FLAG_BITS,
    LOCAL_SCHEDULERS,
    OUTPUT_SUFFIX,
    _clean_samples,
    _per,
    block_flags,
    block_provenance,
    connect,
    kept_samples,
    search_reach,
    warn_failures,
)

if TYPE_CHECKING:
    from estimator.kriging.updates import Previous, _Update

log = logging.getLogger(__name__)

__all__ = [
    "ChunkPlan",
    "ClassRule",
    "DomainSpec",
    "Mesh",
    "NearestSample",
    "SampleSet",
    "compute_chunk",
    "estimate_to_store",
    "run_chunk",
    "tranche_names",
]

Index = tuple[int, int, int]


# ---------------------------------------------------------------------------------------
# the plan
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mesh:
    """A closed wireframe: ``vertices (n, 3)`` world coordinates, ``faces (m, 3)``."""

    vertices: np.ndarray
    faces: np.ndarray


@dataclass(frozen=True)
class NearestSample:
    """The ``nearest_sample`` block rule of a domain without wireframe."""

    max_distance: float


@dataclass(frozen=True)
class DomainSpec:
    """One domain: a wireframe, a block rule, or neither (the whole grid)."""

    name: str
    wireframe: Mesh | None = None
    blocks: NearestSample | None = None


@dataclass(frozen=True)
class SampleSet:
    """The samples of one domain and grade, cleaned for the kernel (no missing value)."""

    xyz: np.ndarray  # (m, 3) float64
    values: np.ndarray  # (m,) float64
    holes: np.ndarray  # (m,) int64 hole codes
    #: (lowest, highest) value, for the range flags (NaN, NaN without samples)
    value_range: tuple[float, float]
    #: [lowest, highest] finite composite value, or None (``counts["composite_range"]``)
    composite_range: list[float] | None
    #: (m,) uint8 tranche codes (0 none, k the k-th of ``ChunkPlan.tranche_names``)
    tranches: np.ndarray | None = None


@dataclass(frozen=True)
class ClassRule:
    """One resource class: a block takes the first class whose every condition it meets."""

    name: str
    max_pass: int | None = None
    min_slope: float | None = None
    min_samples: int | None = None
    min_holes: int | None = None
    max_dist: float | None = None
    max_search_dist: float | None = None


@dataclass(frozen=True)
class ChunkPlan:
    """Everything a chunk task needs; pickled once per worker.

    Build it with :meth:`from_config`. ``samples``, ``models`` and ``sk_mean`` are keyed by
    ``(domain, grade)``; ``passes`` are absolute (scaled) search passes; ``chunks`` is
    ``compute.chunks`` ``(cx, cy, cz)``. ``tranche_names`` are the tranches in
    ``data.assays`` order (the last is the newest); ``hole_names[code]`` is the hole of a
    sample's hole code (``"\\x00"`` for a positioned sample without hole id, a hole of its
    own), used to compare the samples of two plans.
    """

    grid: BlockGrid
    subcells: tuple[int, int, int]
    domains: tuple[DomainSpec, ...]
    grades: tuple[str, ...]
    samples: Mapping[tuple[str, str], SampleSet]
    models: Mapping[tuple[str, str], Any]
    passes: tuple[Any, ...]
    chunks: tuple[int, int, int]
    topography: Surface | None = None
    rule_points: np.ndarray | None = None
    rule_labels: np.ndarray | None = None
    method: str = "ok"
    discretisation: tuple[int, int, int] = (3, 3, 3)
    sk_mean: Mapping[tuple[str, str], float | None] = field(default_factory=dict)
    idw_power: float = 2.0
    class_grade: str | None = None
    class_rules: tuple[ClassRule, ...] = ()
    length_unit: str | None = None
    grade_unit: str | None = None
    tranche_names: tuple[str, ...] = ()
    hole_names: np.ndarray | None = None

    # a per-process cache of derived objects (k-d tree, offsets); never pickled
    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_cache", None)
        return state

    @classmethod
    def from_config(
        cls,
        cfg,
        composites,
        models: Mapping,
        wireframes: Mapping,
        *,
        topography: Surface | None = None,
        domain_points: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> ChunkPlan:
        """The plan of ``estimate_stage``'s inputs (same arguments, same meaning).

        Each composite's tranche (column ``tranche``) is coded by its position in
        ``data.assays`` (:func:`tranche_names`); positioned samples form one tranche named by
        their file.

        Raises
        ------
        DataError
            When a domain and grade has no variogram model, or a composite's tranche is not
            one of ``data.assays``.
        """
        from estimator.estimation import _hole_codes, grid_from_config, search_passes

        names = cfg.domain_names
        missing = [(d, g) for d in names for g in cfg.grades if g not in models.get(d, {})]
        if missing:
            text = ", ".join(f"{d}.{g}" for d, g in missing)
            msg = (
                f"variography: no variogram model for {text}; give "
                "variography.<domain>.<grade>.model"
            )
            raise DataError(msg)
        domains = []
        for name in names:
            dom = cfg.domain(name)
            wf = wireframes.get(name)
            rule = getattr(dom, "blocks", None) if dom is not None else None
            domains.append(
                DomainSpec(
                    name,
                    Mesh(np.asarray(wf.vertices, float), np.asarray(wf.faces, np.int64))
                    if wf is not None else None,
                    NearestSample(float(rule.max_distance)) if rule is not None else None,
                )
            )  # fmt: skip
        codes = _hole_codes(composites)
        hole_names = _hole_keys(composites, codes)
        tranches = tranche_names(cfg)
        tranche_codes = _tranche_codes(composites, tranches, bool(cfg.data.assays))
        xyz_all = composites[["x", "y", "z"]].to_numpy(float)
        est = cfg.estimation
        samples, plan_models, means = {}, {}, {}
        for d in names:
            sel = (composites["domain"] == d).to_numpy()
            if not sel.any():
                log.warning("domain %s has no composites: its blocks stay unestimated", d)
            for g in cfg.grades:
                raw = composites.loc[sel, g].to_numpy(float)
                xyz, vals, holes = _clean_samples(xyz_all[sel], raw, codes[sel])
                kept = tranche_codes[sel][kept_samples(xyz_all[sel], raw)]
                finite = raw[np.isfinite(raw)]
                samples[(d, g)] = SampleSet(
                    xyz, vals, holes,
                    (float(vals.min()), float(vals.max())) if vals.size else (np.nan, np.nan),
                    [float(finite.min()), float(finite.max())] if finite.size else None,
                    np.ascontiguousarray(kept, dtype=np.uint8),
                )  # fmt: skip
                plan_models[(d, g)] = models[d][g]
                means[(d, g)] = (
                    _per(est.sk_mean, d, g, "sk_mean") if est.method == "sk" else None
                )
        rules = any(d.blocks is not None for d in domains)
        points = labels = None
        if rules and domain_points is not None:
            points = np.asarray(domain_points[0], dtype=float).reshape(-1, 3)
            labels = np.asarray(domain_points[1]).astype(str)
        classes = cfg.classification
        return cls(
            grid=grid_from_config(cfg),
            subcells=tuple(int(k) for k in cfg.block_model.subcells),
            domains=tuple(domains),
            grades=tuple(cfg.grades),
            samples=samples,
            models=plan_models,
            passes=tuple(search_passes(cfg)),
            chunks=tuple(int(c) for c in cfg.compute.chunks),
            topography=topography,
            rule_points=points,
            rule_labels=labels,
            method=est.method,
            discretisation=tuple(int(k) for k in est.discretisation),
            sk_mean=means,
            idw_power=float(est.idw_power),
            class_grade=(classes.grade or cfg.grades[0]).lower() if classes else None,
            class_rules=tuple(
                ClassRule(r.name, r.max_pass, r.min_slope, r.min_samples, r.min_holes,
                          r.max_dist, r.max_search_dist)
                for r in classes.classes
            ) if classes else (),
            length_unit=cfg.data.length_unit,
            grade_unit=cfg.data.grade_unit,
            tranche_names=tuple(tranches),
            hole_names=hole_names,
        )  # fmt: skip

    # -- layout and chunks ---------------------------------------------------------------
    def layout(self):
        """The :class:`~estimator.io.blockstore.StoreLayout` of the store this plan fills."""
        from estimator.io.blockstore import StoreLayout

        return StoreLayout(
            grid=self.grid,
            domains=tuple(d.name for d in self.domains),
            grades=self.grades,
            chunks=self.chunks,
            classes=tuple(r.name for r in self.class_rules) if self.class_grade else None,
            length_unit=self.length_unit,
            grade_unit=self.grade_unit,
            method=self.method,
            tranches=self.tranche_names,
        )

    def touched_chunks(self) -> list[Index]:
        """Chunks that may hold a block of some domain, in the fixed chunk order.

        Conservative box tests: a wireframe's box in the grid frame; a ``nearest_sample``
        rule's own samples grown by its ``max_distance``; a domain with neither covers the
        whole grid. Topography only removes volume, so it is not tested.
        """
        layout = self.layout()
        shape = layout.n_chunks  # (z, y, x)
        cx, cy, cz = self.chunks
        csize = np.array([cx, cy, cz])
        size = np.array(self.grid.block_size)
        nblocks = np.array(self.grid.shape)
        diff = np.zeros(tuple(s + 1 for s in shape), dtype=np.int64)

        def mark(lo_b, hi_b):
            """Mark the chunks of block index boxes [lo_b, hi_b) (rows of (x, y, z))."""
            lo_b = np.clip(lo_b, 0, nblocks)
            hi_b = np.clip(hi_b, 0, nblocks)
            ok = np.all(hi_b > lo_b, axis=1)
            lo_c = (lo_b[ok] // csize)[:, ::-1]
            hi_c = ((hi_b[ok] - 1) // csize + 1)[:, ::-1]
            for corner in range(8):
                pick = [(corner >> a) & 1 for a in range(3)]
                idx = tuple(np.where(pick[a], hi_c[:, a], lo_c[:, a]) for a in range(3))
                np.add.at(diff, idx, (-1) ** sum(pick))

        def grid_frame(points):
            u, v = self.grid.from_world(points[:, 0], points[:, 1])
            return np.column_stack([u, v, points[:, 2]]) - np.array(self.grid.origin)

        pad = 1e-6 * float(size.max()) + 1e-9 * float(np.abs(self.grid.origin).max())
        for d in self.domains:
            if d.blocks is not None:
                if self.rule_points is None or self.rule_labels is None:
                    continue
                own = self.rule_points[self.rule_labels == d.name]
                if own.size == 0:
                    continue
                r = d.blocks.max_distance + pad
                g = grid_frame(own)
                mark(np.floor((g - r) / size).astype(np.int64),
                     np.floor((g + r) / size).astype(np.int64) + 1)  # fmt: skip
            elif d.wireframe is not None:
                faces = np.asarray(d.wireframe.faces)
                if faces.size == 0:
                    continue
                g = grid_frame(np.asarray(d.wireframe.vertices)[np.unique(faces)])
                lo, hi = g.min(axis=0) - pad, g.max(axis=0) + pad
                mark(np.floor(lo / size).astype(np.int64)[None],
                     (np.floor(hi / size) + 1).astype(np.int64)[None])  # fmt: skip
            else:
                mark(np.zeros((1, 3), np.int64), nblocks[None])
        for axis in range(3):
            diff = np.cumsum(diff, axis=axis)
        touched = diff[: shape[0], : shape[1], : shape[2]] > 0
        return [idx for idx in layout.indices() if touched[idx]]


def tranche_names(cfg) -> list[str]:
    """The tranches of a config, oldest first: ``data.assays`` order (a file's ``tranche``, or
    its name without extension), a name listed twice counting at its last place; positioned
    samples (``data.samples``) are one tranche named by their file."""
    if cfg.data.assays:
        listed = [str(a.tranche or Path(a.path).stem) for a in cfg.data.assays]
        names = list(reversed(dict.fromkeys(reversed(listed))))
    else:
        names = [Path(cfg.data.samples).stem if cfg.data.samples else "samples"]
    if len(names) > MAX_TRANCHES:
        msg = (
            f"data.assays: {len(names)} tranches; the block model records at most "
            f"{MAX_TRANCHES} (merge older tranches into one file)"
        )
        raise DataError(msg)
    return names


def _tranche_codes(composites, names: Sequence[str], from_assays: bool) -> np.ndarray:
    """Code of each composite's tranche: k for the k-th of ``names``, 0 for none (``""``)."""
    n = len(composites)
    if not from_assays:
        return np.ones(n, dtype=np.uint8)
    if "tranche" not in composites:
        msg = "composites: no tranche column (composites.csv of an older estimator?); rerun"
        raise DataError(msg)
    text = composites["tranche"].astype(str).str.strip().to_numpy().astype(str)
    lookup = {"": 0, "nan": 0, **{t: k for k, t in enumerate(names, start=1)}}
    unknown = sorted(set(np.unique(text).tolist()) - set(lookup))
    if unknown:
        msg = (
            f"composites: tranche {unknown[0]!r} is not one of data.assays ({', '.join(names)}); "
            "give every assay file a tranche in data.assays"
        )
        raise DataError(msg)
    codes = np.zeros(n, dtype=np.uint8)
    for name, code in lookup.items():
        codes[text == name] = code
    return codes


def _hole_keys(composites, codes: np.ndarray) -> np.ndarray:
    """The hole of each hole code, ``"\\x00"`` for a sample without hole id (a hole of its own)."""
    raw = composites["hole_id"].astype(str).str.strip().to_numpy().astype(str)
    blank = np.isin(np.char.lower(raw), ["", "nan", "none"])
    keys = raw.astype(object)
    keys[blank] = "\x00"  # kept as a Python string (NumPy text would drop a trailing NUL)
    out = np.empty(int(codes.max()) + 1 if codes.size else 0, dtype=object)
    out[codes] = keys
    return out


# ---------------------------------------------------------------------------------------
# derived objects, built once per process
# ---------------------------------------------------------------------------------------
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Derived:
    layout: Any
    wireframes: dict
    sample_index: SampleIndex | None
    offsets: np.ndarray
    reach: float
    majors: np.ndarray


def _derived(plan: ChunkPlan) -> _Derived:
    cached = plan.__dict__.get("_cache")
    if cached is not None:
        return cached
    with _CACHE_LOCK:
        cached = plan.__dict__.get("_cache")
        if cached is None:
            rules = any(d.blocks is not None for d in plan.domains)
            cached = _Derived(
                layout=plan.layout(),
                wireframes={d.name: d.wireframe for d in plan.domains if d.wireframe is not None},
                sample_index=SampleIndex.build(plan.rule_points, plan.rule_labels)
                if rules else None,
                offsets=plan.grid.discretisation_offsets(plan.discretisation),
                reach=search_reach(plan.passes, plan.grid),
                majors=pass_majors(plan.passes),
            )  # fmt: skip
            plan.__dict__["_cache"] = cached
    return cached


# ---------------------------------------------------------------------------------------
# one chunk
# ---------------------------------------------------------------------------------------
def compute_chunk(
    plan: ChunkPlan, index: Sequence[int], keep: dict | None = None
) -> tuple[dict, dict]:
    """Estimate one chunk (no I/O). With ``keep`` (a dict), each domain and grade's kriging
    weights are put in it: ``keep[(domain index, grade)] = (flat block positions in the
    chunk, sample rows, weights)``, for :func:`estimate_to_store`'s ``keep_weights``.

    Returns
    -------
    arrays : dict
        ``{variable: (n_domains, wz, wy, wx) array}`` for every variable of the store layout.
    summary : dict
        JSON-able counts of the chunk (see :func:`combine_summaries`).
    """
    der = _derived(plan)
    layout = der.layout
    window = layout.window(index)
    zs, ys, xs = window
    frac = domain_fractions(
        plan.grid, plan.subcells, plan.domains, der.wireframes,
        topography=plan.topography, window=window, sample_index=der.sample_index,
        parallel=False,
    ).fractions  # fmt: skip
    shape = frac.shape
    arrays: dict[str, np.ndarray] = {"fraction": frac}
    for g in plan.grades:
        for suffix, (dtype, fill) in (GRADE_VARIABLES | PROVENANCE_VARIABLES).items():
            arrays[f"{g}{suffix}"] = np.full(shape, fill, dtype=dtype)
    failures = {}
    for i, dom in enumerate(plan.domains):
        inside = frac[i] > 0
        if not inside.any():
            continue
        iz, iy, ix = np.nonzero(inside)
        flat = np.flatnonzero(inside)
        targets = plan.grid.block_centres(iz + zs.start, iy + ys.start, ix + xs.start)
        for g in plan.grades:
            res = _krige(plan, der, dom.name, g, targets, keep_weights=keep is not None)
            if keep is not None:
                keep[(i, g)] = (flat, res.pop("_indices"), res.pop("_weights"))
            for key, values in res.items():
                if key != "failures":
                    arrays[f"{g}{key}"][i].reshape(-1)[flat] = values
            failures[(dom.name, g)] = res["failures"]
    for g in plan.grades:
        # as estimate_stage: pass -1 outside the domain
        arrays[f"{g}_pass"][frac <= 0] = -1
    if plan.class_grade is not None:
        arrays["class"] = _class_codes(plan, arrays, layout.class_dtype)
    return arrays, _summary(plan, arrays, failures)


def _krige(
    plan: ChunkPlan, der: _Derived, domain: str, grade: str, targets, keep_weights: bool = False
) -> dict:
    """Every variable of one domain and grade at ``targets``, keyed by suffix.

    The kernel runs on the samples within the search reach of the targets, by batches of
    ``QUERY_BATCH`` blocks (a block's results do not depend on its batch), with its weights:
    the provenance variables come from the samples used. ``_dist`` is in data units, along
    the major axis of the pass that estimated the block (``estimate_stage``'s convention).
    ``"failures"`` holds the kernel's counts.
    """
    from estimator.kriging import _kernels
    from estimator.kriging.estimate import estimate_blocks
    from estimator.kriging.search import QUERY_BATCH

    s = plan.samples[(domain, grade)]
    lo = targets.min(axis=0) - der.reach
    hi = targets.max(axis=0) + der.reach
    rows = np.flatnonzero(np.all((s.xyz >= lo) & (s.xyz <= hi), axis=1))
    xyz, values, holes = s.xyz[rows], s.values[rows], s.holes[rows]
    codes = s.tranches[rows] if s.tranches is not None else np.zeros(rows.size, np.uint8)
    newest = len(plan.tranche_names)
    n = targets.shape[0]
    out: dict[str, Any] = {}
    failures = {"singular": 0, "too_few": 0}
    for start in range(0, n, QUERY_BATCH):
        part = slice(start, min(n, start + QUERY_BATCH))
        res = estimate_blocks(
            targets[part], der.offsets, xyz, values, holes, plan.models[(domain, grade)],
            plan.passes, method=plan.method, sk_mean=plan.sk_mean.get((domain, grade)),
            idw_power=plan.idw_power, return_weights=True,
        )  # fmt: skip
        res["flag"] = block_flags(res, s.value_range, _kernels.ILL_CONDITIONED_PIVOT)
        got = {suffix: res[key] for key, suffix in OUTPUT_SUFFIX.items()}
        got["_dist"] = res["dist"] * der.majors[np.clip(res["pass"], 0, len(der.majors) - 1)]
        latest, newest_n, newest_weight = block_provenance(res, codes, newest)
        got |= {"_latest_tranche": latest, "_newest_n": newest_n,
                "_newest_weight": newest_weight}  # fmt: skip
        for key, values in got.items():
            if key not in out:
                dtype = (GRADE_VARIABLES | PROVENANCE_VARIABLES)[key][0]
                out[key] = np.empty(n, dtype=dtype)
            out[key][part] = values
        if keep_weights:  # sample rows of the grade's SampleSet, -1 where none
            ix = res["indices"]
            glob = np.where(ix >= 0, rows[np.clip(ix, 0, None)], -1) if rows.size else ix
            if "_indices" not in out:
                out["_indices"] = np.full((n, ix.shape[1]), -1, dtype=np.int64)
                out["_weights"] = np.full((n, ix.shape[1]), np.nan)
            out["_indices"][part] = glob
            out["_weights"][part] = res["weights"]
        for key in failures:
            failures[key] += int(res["failures"][key])
    out["failures"] = failures
    return out


def _class_codes(plan: ChunkPlan, arrays: dict, dtype) -> np.ndarray:
    """``estimation.classify`` as codes: k for the k-th rule a block meets first, 0 none."""
    g = plan.class_grade
    est = arrays[g]
    out = np.zeros(est.shape, dtype=dtype)
    free = np.isfinite(est)
    for k, rule in enumerate(plan.class_rules, start=1):
        ok = free.copy()
        if rule.max_pass is not None:
            ok &= arrays[f"{g}_pass"] <= rule.max_pass
        if rule.min_slope is not None:
            ok &= arrays[f"{g}_slope"] >= rule.min_slope
        if rule.min_samples is not None:
            ok &= arrays[f"{g}_n"] >= rule.min_samples
        if rule.min_holes is not None:
            ok &= arrays[f"{g}_holes"] >= rule.min_holes
        if rule.max_dist is not None:
            ok &= arrays[f"{g}_dist"] <= rule.max_dist
        if rule.max_search_dist is not None:
            ok &= search_units(arrays[f"{g}_dist"], arrays[f"{g}_pass"], plan.passes) <= (
                rule.max_search_dist
            )
        out[ok] = k
        free &= ~ok
    return out


def smooth_store(store, plan: ChunkPlan, min_blocks: int) -> dict:
    """Smooth the classes of a finished store (:func:`~estimator.blockmodel.classes.smooth_classes`).

    The classes are recomputed from the rules chunk by chunk first, so the result does not
    depend on an earlier smoothing (an interrupted one, or the previous model of an update);
    chunks whose classes change are rewritten and their completion records renewed.
    """
    from estimator.blockmodel.classes import smooth_classes

    layout = store.layout
    names = [v[0] for v in layout.variables()]
    g = plan.class_grade
    needed = [g, *(f"{g}{s}" for s in ("_pass", "_slope", "_n", "_holes", "_dist"))]
    nz, ny, nx = plan.grid.shape[2], plan.grid.shape[1], plan.grid.shape[0]
    raw = np.zeros((len(plan.domains), nz, ny, nx), dtype=layout.class_dtype)
    indices = [i for i in layout.indices() if store.record(i) is not None]
    for index in indices:  # chunks never written hold no estimate: class 0
        arrays = store.read_chunk(index, needed)
        raw[(slice(None), *layout.window(index))] = _class_codes(plan, arrays, layout.class_dtype)
    smoothed, counts = smooth_classes(raw, min_blocks)
    for index in indices:
        window = (slice(None), *layout.window(index))
        if np.array_equal(store.read_chunk(index, ["class"])["class"], smoothed[window]):
            continue
        arrays = store.read_chunk(index, names)
        arrays["class"] = np.ascontiguousarray(smoothed[window])
        sha = store.write_chunk(index, arrays, names=["class"])
        record = store.record(index) or {}
        store.record_chunk(index, sha, record.get("summary", {}))
    return {"min_blocks": int(min_blocks), **counts}


def pass_majors(passes: Sequence) -> np.ndarray:
    """Major range of each search pass by pass number (index 0, no pass: NaN)."""
    return np.array([np.nan] + [float(max(p.ranges)) for p in passes])


def search_units(dist: np.ndarray, passes: np.ndarray, search: Sequence) -> np.ndarray:
    """``<g>_dist`` (data units along the major axis of the pass's ellipsoid) in units of the
    search ellipsoid of the pass that estimated the block (1 = its edge); NaN where no pass
    did."""
    majors = pass_majors(search)
    which = np.clip(np.nan_to_num(np.asarray(passes, dtype=float)), 0, len(majors) - 1)
    return np.asarray(dist, dtype=float) / majors[which.astype(np.int64)]


def _summary(plan: ChunkPlan, arrays: dict, failures: dict) -> dict:
    """The chunk's counts, per domain with blocks in the chunk (JSON-able)."""
    frac = arrays["fraction"]
    out = {}
    n_pass = len(plan.passes)
    for i, dom in enumerate(plan.domains):
        inside = frac[i] > 0
        n_inside = int(inside.sum())
        if not n_inside:
            continue
        per_grade = {}
        for g in plan.grades:
            p = arrays[f"{g}_pass"][i]
            missing = inside & (p == 0)
            flag = arrays[f"{g}_flag"][i][inside]
            est = arrays[g][i][inside]
            finite = np.isfinite(est).any()
            fails = failures.get((dom.name, g), {})
            per_grade[g] = {
                "pass": [int((p == k).sum()) for k in range(1, n_pass + 1)],
                "not_estimated": int(missing.sum()),
                "not_estimated_volume": float(frac[i][missing].sum()),
                "flags": [int(np.count_nonzero(flag & bit)) for bit in FLAG_BITS.values()],
                "lowest": float(np.nanmin(est)) if finite else None,
                "highest": float(np.nanmax(est)) if finite else None,
                "singular": int(fails.get("singular", 0)),
                "too_few": int(fails.get("too_few", 0)),
            }
        out[dom.name] = {"blocks": n_inside, "volume": float(frac[i].sum()), "grades": per_grade}
    return {"domains": out}


def combine_summaries(
    plan: ChunkPlan, summaries: Sequence[Mapping], topography: tuple[float, float] = (0.0, 0.0)
) -> dict:
    """Sum chunk summaries (in the fixed chunk order) into ``estimate_stage``'s counts.

    Integer counts and the lowest / highest estimates are exact; volumes are exactly rounded
    sums (``math.fsum``) of the chunks' sums, so they equal the whole-model sums to about one
    unit in the last place whatever the chunking.
    """
    bv = plan.grid.block_volume
    names = [d.name for d in plan.domains]
    n_pass = len(plan.passes)
    counts: dict[str, Any] = {
        "blocks": int(plan.grid.n_blocks),
        "blocks_in_domains": {},
        "volume_by_domain": {},
        "estimated_by_pass": {},
        "failures": {},
        "flags": {},
        "composite_range": {},
        "above_topography": float(topography[0]),
        "topography_uncovered_area": float(topography[1]),
    }
    for d in names:
        parts = [s["domains"][d] for s in summaries if d in s["domains"]]
        counts["blocks_in_domains"][d] = sum(p["blocks"] for p in parts)
        counts["volume_by_domain"][d] = float(math.fsum(p["volume"] for p in parts) * bv)
        for g in plan.grades:
            gs = [p["grades"][g] for p in parts]
            by_pass = {str(k): sum(x["pass"][k - 1] for x in gs) for k in range(1, n_pass + 1)}
            counts["estimated_by_pass"].setdefault(d, {})[g] = by_pass | {
                "not_estimated": sum(x["not_estimated"] for x in gs),
                "not_estimated_volume": float(
                    math.fsum(x["not_estimated_volume"] for x in gs) * bv
                ),
            }
            counts["failures"].setdefault(d, {})[g] = {
                "singular": sum(x["singular"] for x in gs),
                "too_few": sum(x["too_few"] for x in gs),
            }
            lows = [x["lowest"] for x in gs if x["lowest"] is not None]
            highs = [x["highest"] for x in gs if x["highest"] is not None]
            counts["flags"].setdefault(d, {})[g] = {
                name: sum(x["flags"][b] for x in gs) for b, name in enumerate(FLAG_BITS)
            } | {
                "lowest_estimate": min(lows) if lows else None,
                "highest_estimate": max(highs) if highs else None,
            }
            counts["composite_range"].setdefault(d, {})[g] = plan.samples[(d, g)].composite_range
    return counts


# ---------------------------------------------------------------------------------------
# tasks: compute, write, record
# ---------------------------------------------------------------------------------------
_STORES: dict[tuple[str, str], Any] = {}
_STORES_LOCK = threading.Lock()


def _attached(plan: ChunkPlan, path: str, plan_id: str):
    from estimator.io.blockstore import BlockStore

    layout = _derived(plan).layout
    key = (path, plan_id, layout)  # a store remade under the same id has another layout
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = BlockStore.attach(path, layout, plan_id)
            _STORES.clear()  # one run at a time per process: drop stores of earlier runs
            _STORES[key] = store
    return store


def run_chunk(
    plan: ChunkPlan, path: str, plan_id: str, index: Sequence[int], update: _Update | None = None
) -> tuple:
    """The task: estimate chunk ``index`` (in full, or as an update of a previous model),
    write it into the store at ``path``, record it.

    Returns ``(index, summary)``; nothing else leaves the worker.
    """
    from estimator.kriging.updates import (
        _copy_whole,
        _KeepWeights,
        compute_reweight_chunk,
        compute_update_chunk,
        save_weights,
    )

    index = tuple(int(v) for v in index)
    store = _attached(plan, path, plan_id)
    keep = update.folder if isinstance(update, _KeepWeights) else None
    if keep is not None:
        update = None
    copied = None
    if update is not None and update.weights is None:
        copied = _copy_whole(plan, update, store, index)
    if copied is not None:
        sha, summary = copied
    else:
        if update is None:
            kept: dict | None = {} if keep is not None else None
            arrays, summary = compute_chunk(plan, index, kept)
            if keep is not None:
                save_weights(keep, index, kept)
        elif update.weights is not None:
            arrays, summary = compute_reweight_chunk(plan, update, index)
        else:
            arrays, summary = compute_update_chunk(plan, update, index)
        sha = store.write_chunk(index, arrays)
    store.record_chunk(index, sha, summary)
    return index, summary


_WORKER: dict[str, Any] = {}


def _init_process(plan: ChunkPlan, update: _Update | None = None) -> None:
    _WORKER["plan"] = plan
    _WORKER["update"] = update


def _process_task(path: str, plan_id: str, index: Index) -> tuple:
    return run_chunk(_WORKER["plan"], path, plan_id, index, _WORKER.get("update"))


# ---------------------------------------------------------------------------------------
# schedulers
# ---------------------------------------------------------------------------------------
def _run_local(plan, path, plan_id, todo, scheduler, num_workers, update) -> Iterator[tuple]:
    """Results of the tasks on a local pool, as they complete."""
    if scheduler == "synchronous":
        for index in todo:
            yield run_chunk(plan, path, plan_id, index, update)
        return
    import concurrent.futures as cf
    import multiprocessing
    import os

    workers = int(num_workers) if num_workers else (os.cpu_count() or 1)
    if scheduler == "threads":
        pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="estimate")
        futures = [pool.submit(run_chunk, plan, path, plan_id, i, update) for i in todo]
    else:
        pool = cf.ProcessPoolExecutor(
            max_workers=min(workers, max(1, len(todo))),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_process,
            initargs=(plan, update),
        )
        futures = [pool.submit(_process_task, path, plan_id, i) for i in todo]
    finished = False
    try:
        for fut in cf.as_completed(futures):
            yield fut.result()
        finished = True
    finally:
        if not finished:
            for fut in futures:
                fut.cancel()
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()  # our own worker processes: a killed task is not recorded
        pool.shutdown(wait=True, cancel_futures=True)


def _client(scheduler, num_workers, security, timeout):
    """``(client, owned)`` for ``cluster``, an address or an open client."""
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler, False
    if isinstance(scheduler, str) and (scheduler == "cluster" or "://" in scheduler):
        return connect(scheduler, timeout, security=security, workers=num_workers), True
    msg = (
        "compute.scheduler: expected threads, processes, synchronous, cluster or a scheduler "
        f"address like tcp://host:8786, got {scheduler!r}"
    )
    raise ValueError(msg)


def _run_distributed(plan, path, plan_id, todo, client, update) -> Iterator[tuple]:
    """Results of the tasks on a dask.distributed cluster, as they complete."""
    from distributed import as_completed

    shared = client.scatter(plan, broadcast=True, hash=False)
    extra = [] if update is None else [client.scatter(update, broadcast=True, hash=False)]
    token = uuid.uuid4().hex[:8]
    futures = [
        client.submit(
            run_chunk, shared, path, plan_id, index, *extra, pure=False,
            key=f"estimate-chunk-{token}-{index[0]}-{index[1]}-{index[2]}",
        )
        for index in todo
    ]
    finished = False
    try:
        for fut in as_completed(futures, loop=client.loop):
            result = fut.result()
            fut.release()
            yield result
        finished = True
    finally:
        if not finished:
            client.cancel(futures)
        client.cancel([shared, *extra])


# ---------------------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------------------
def estimate_to_store(
    plan: ChunkPlan,
    path: str | Path,
    plan_id: str,
    *,
    scheduler: Any = "threads",
    num_workers: int | None = None,
    security: Any = None,
    connect_timeout: float = 10.0,
    progress: bool | None = False,
    attrs: Mapping | None = None,
    on_chunk: Callable[[Index, dict], None] | None = None,
    previous: Previous | None = None,
    keep_weights: str | Path | None = None,
    weights_from: tuple[Previous, str | Path] | None = None,
):
    """Estimate the block model of ``plan`` into the chunked store at ``path``.

    Parameters
    ----------
    plan : ChunkPlan
    path : path
        The store (``<run folder>/blockmodel.zarr``); created, reused or replaced (see
        :func:`estimator.io.blockstore.open_store`).
    plan_id : str
        The caller's hash of every input of the estimate; a rerun with the same id keeps the
        chunks already done (verified against their hashes), another id starts afresh.
    scheduler : str or distributed.Client
        ``synchronous``, ``threads``, ``processes``, ``cluster``, a scheduler address
        (``tcp://host:port``, ``tls://host:port``) or an open client.
    num_workers : int, optional
        Threads or processes of the local pools, processes of ``cluster`` (default: cores).
    security : SecurityConfig or distributed.Security, optional
        TLS files for a ``tls://`` address (``compute.security``).
    connect_timeout : float
        Seconds to wait for a scheduler address.
    progress : bool or None
        Progress bar on stderr (None: when stderr is a terminal).
    attrs : mapping, optional
        Global attributes of the store.
    on_chunk : callable, optional
        Called in this process as ``on_chunk(index, summary)`` after each chunk computed here.
    previous : Previous, optional
        The run to update. When :func:`can_reuse` holds, each chunk re-estimates only the
        blocks a changed sample (or a changed fraction) can reach and copies the others from
        the previous model (read by window: its chunking may differ); the store equals a full
        estimate of ``plan``, bit for bit. Otherwise the reason is logged and every block is
        estimated. ``path`` must not be the previous store.

    Returns
    -------
    store : BlockStore
    counts : dict
        ``estimate_stage``'s counts (:func:`combine_summaries`) plus ``chunks``: ``planned``,
        ``computed`` and ``reused``; with ``previous`` also ``update``: ``reused`` (bool),
        ``reason``, ``blocks`` (``{domain: {grade: {"estimated": n, "copied": n}}}``) and
        ``chunks`` (``copied_whole``, ``estimated``, ``previous_damaged``: chunks estimated in
        full because a previous chunk under them did not match its completion record). Failures are warned about once
        (:class:`~estimator.errors.EstimationWarning`), as ``estimate_stage`` does.
    """
    from estimator.blockmodel.fractions import topography_totals
    from estimator.interrupt import check
    from estimator.io.blockstore import PLAN_ATTR, open_store
    from estimator.kriging.updates import (
        _KeepWeights,
        _prepare_update,
        _reweight_update,
        _untouched,
        _Update,
        _update_counts,
        plan_digest,
    )

    if progress is None:
        progress = sys.stderr.isatty()
    path = Path(path).absolute()
    update = update_info = None
    if weights_from is not None:
        update, update_info = _reweight_update(plan, *weights_from, path, num_workers)
        if update is None:
            previous = weights_from[0]  # not value-only: an update of the base model
    if keep_weights is not None:
        folder = Path(keep_weights).absolute()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plan.json").write_text(json.dumps({"plan": plan_digest(plan)}))
        update = _KeepWeights(str(folder))
    elif update is not None:
        previous = None
    if previous is not None:
        ok, reason, update = _prepare_update(
            previous, plan, verify=False, target=path, num_workers=num_workers
        )  # fmt: skip
        log.info("update: %s%s", "" if ok else "every block is estimated: ", reason)
        update_info = {"reused": ok, "reason": reason}
    attrs = {**(attrs or {}), PLAN_ATTR: plan_digest(plan)}
    store, reused = open_store(path, _derived(plan).layout, plan_id, attrs)
    indices = plan.touched_chunks()
    summaries: dict[Index, dict] = {}
    todo = []
    for index in indices:
        record = store.verified_record(index) if reused else None
        if record is not None:
            summaries[index] = record["summary"]
        else:
            store.clear_record(index)
            todo.append(index)
    if isinstance(update, _Update) and update.weights is None:
        # the chunks an update estimates first, those it copies after: a better balance
        # between workers (the results do not depend on the order)
        todo.sort(key=lambda index: _untouched(plan, update, index))
    log.info(
        "estimating %d of %d chunks (%d kept from an earlier run) on %s",
        len(todo), len(indices), len(indices) - len(todo), scheduler,
    )  # fmt: skip
    if todo:
        _run(plan, str(path), plan_id, todo, scheduler, num_workers, security, connect_timeout,
             bool(progress), on_chunk, summaries, check, update)  # fmt: skip
    topo = (0.0, 0.0)
    if plan.topography is not None:
        topo = topography_totals(plan.topography, plan.grid, plan.subcells, plan.chunks[:2])
    counts = combine_summaries(plan, [summaries[i] for i in indices], topo)
    counts["chunks"] = {
        "planned": len(indices), "computed": len(todo), "reused": len(indices) - len(todo),
    }  # fmt: skip
    if update_info is not None:
        counts["update"] = update_info | _update_counts(plan, [summaries[i] for i in indices])
        if counts["update"]["chunks"]["previous_damaged"]:
            counts["update"]["reason"] += (
                f"; {counts['update']['chunks']['previous_damaged']} chunk(s) estimated in "
                "full: the previous chunks under them did not match their completion records"
            )
    warn_failures(counts["failures"])
    return store, counts


def _run(plan, path, plan_id, todo, scheduler, num_workers, security, timeout, progress,
         on_chunk, summaries, check, update=None):  # fmt: skip
    """Run the tasks on the scheduler, collecting summaries; Ctrl-C checked after each."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="estimate", unit="chunk", file=sys.stderr)
    client = owned = None
    try:
        if isinstance(scheduler, str) and scheduler in LOCAL_SCHEDULERS:
            results = _run_local(plan, path, plan_id, todo, scheduler, num_workers, update)
        else:
            client, owned = _client(scheduler, num_workers, security, timeout)
            results = _run_distributed(plan, path, plan_id, todo, client, update)
        try:
            for index, summary in results:
                summaries[tuple(index)] = summary
                if bar is not None:
                    bar.update(1)
                if on_chunk is not None:
                    on_chunk(tuple(index), summary)
                check()
        finally:
            results.close()
    finally:
        if bar is not None:
            bar.close()
        if owned:
            client.close()
