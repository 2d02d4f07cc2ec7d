"""Updates of a chunked block model: what a new tranche (or a sensitivity variant) can change.

:func:`~estimator.kriging.chunked.estimate_to_store` estimates a plan in full; given the run it
starts from (:class:`Previous`), the tasks here let it redo only what can differ:

* **a new tranche** (:func:`compute_update_chunk`): a block is re-estimated when an added,
  removed or changed sample lies inside the search ellipsoid of a pass the block depends on
  (passes 1 to p for a block pass p estimated, every pass for a block none estimated), which
  covers displacement under ``max_samples``, ``max_per_hole`` and octants and a change of pass;
  every other block is copied (whole chunks file by file, :func:`_copy_whole`), its tranche codes
  renumbered and its range flags recomputed. The result equals a full estimate bit for bit.
* **only sample values changed** (:func:`value_only`, :func:`compute_reweight_chunk`): the
  kriging weights a base estimate kept (:func:`save_weights`) are applied to the new values
  (:func:`apply_weights`, the kernel's own summation order), no kriging.

:func:`plan_digest` names the numbers of a plan; a store records it, so a previous model is only
used with the plan that made it (:func:`can_reuse`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from estimator.blockmodel.fractions import Surface, domain_fractions
from estimator.blockmodel.grid import GRADE_VARIABLES, PROVENANCE_VARIABLES, BlockGrid
from estimator.errors import DataError
from estimator.kriging.chunked import (
    _CACHE_LOCK,
    ChunkPlan,
    Index,
    SampleSet,
    _class_codes,
    _derived,
    _krige,
    _summary,
    compute_chunk,
)
from estimator.kriging.parallel import FLAG_BITS, RANGE_BITS, range_flags

log = logging.getLogger(__name__)

__all__ = [
    "Previous",
    "apply_weights",
    "can_reuse",
    "compute_reweight_chunk",
    "compute_update_chunk",
    "plan_digest",
    "save_weights",
    "value_only",
]


#: Plan fields that change no number of the model (the chunking; units are attributes).
_NOT_NUMBERS = ("chunks", "length_unit", "grade_unit")
#: Plan fields an update may differ in: the samples and what is derived from them.
_SAMPLE_FIELDS = ("samples", "rule_points", "rule_labels", "tranche_names", "hole_names")
#: Every other field, in a geologist's words: any difference means a full estimate.
_FIELD_WORDS = {
    "grid": "the block grid (block_model origin, block_size, shape or rotation)",
    "subcells": "block_model.subcells",
    "domains": "the domains (names, order, wireframes or block rules)",
    "grades": "the grades",
    "models": "the variogram models",
    "passes": "the search passes (estimation.passes)",
    "topography": "the topography",
    "method": "estimation.method",
    "discretisation": "estimation.discretisation",
    "sk_mean": "estimation.sk_mean",
    "idw_power": "estimation.idw_power",
    "class_grade": "the classification grade",
    "class_rules": "the classification rules",
}


def _feed(h, obj) -> None:
    """Feed ``obj`` into the hash ``h`` unambiguously (type tags, lengths, exact float bits)."""
    if obj is None:
        h.update(b"N")
    elif isinstance(obj, (bool, np.bool_)):
        h.update(b"B1" if obj else b"B0")
    elif isinstance(obj, (int, np.integer)):
        h.update(b"I%d;" % int(obj))
    elif isinstance(obj, (float, np.floating)):
        h.update(b"F" + struct.pack("<d", float(obj)))
    elif isinstance(obj, str):
        raw = obj.encode("utf-8", "surrogatepass")
        h.update(b"S%d:" % len(raw) + raw)
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind in "OUS":
            _feed(h, tuple(str(v) for v in obj.ravel().tolist()))
            return
        a = np.ascontiguousarray(obj)
        h.update(b"A" + a.dtype.str.encode() + repr(a.shape).encode())
        h.update(a.tobytes())
    elif is_dataclass(obj):
        h.update(b"D" + type(obj).__name__.encode() + b"{")
        for f in fields(obj):
            if isinstance(obj, Surface) and f.name == "source":
                continue  # the file's name, not its triangles
            h.update(f.name.encode() + b"=")
            _feed(h, getattr(obj, f.name))
        h.update(b"}")
    elif isinstance(obj, Mapping):
        h.update(b"M%d{" % len(obj))
        for key in sorted(obj, key=repr):
            _feed(h, key)
            _feed(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, (tuple, list)):
        h.update(b"T%d(" % len(obj))
        for v in obj:
            _feed(h, v)
        h.update(b")")
    else:
        _feed(h, repr(obj))


def _digest(obj) -> str:
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def plan_digest(plan: ChunkPlan) -> str:
    """SHA-256 of every input of the numbers of ``plan`` (all but its chunks and units), and
    of the estimator version that computes them.

    Written in the store's attributes (``estimate_plan_sha256``, kept by the NetCDF
    conversion), so an update can check that a previous model was made from the plan it is
    told about, by this version.
    """
    from estimator import __version__

    h = hashlib.sha256(b"estimator-plan-1\0" + __version__.encode() + b"\0")
    for f in fields(plan):
        if f.name not in _NOT_NUMBERS:
            h.update(f.name.encode() + b"\0")
            _feed(h, getattr(plan, f.name))
    return h.hexdigest()


@dataclass(frozen=True)
class Previous:
    """The run an update starts from.

    Parameters
    ----------
    plan : ChunkPlan
        Its plan, rebuilt with :meth:`ChunkPlan.from_config` from that run's own config,
        composites, models, wireframes, topography and domain points.
    model : path or xarray.Dataset
        Its block model: a ``blockmodel.zarr`` store, a ``blockmodel.nc`` file, or that file
        read whole (:func:`estimator.io.artefacts.open_blockmodel`). It must carry the
        ``estimate_plan_sha256`` of ``plan`` (checked), and a store's chunks must still match
        their completion records (checked; a NetCDF file is trusted as read, so check it
        against the run's recorded hash first).
    """

    plan: ChunkPlan
    model: Any


def can_reuse(previous: Previous, plan: ChunkPlan, *, verify: bool = True) -> tuple[bool, str]:
    """Whether ``plan`` can be estimated by updating ``previous`` block by block, and why.

    True only when the plans differ in nothing but their samples, tranches and rule points
    (chunks and units may differ too), the tranches keep their order (a new tranche may be
    added), and the previous model was made from ``previous.plan`` by this estimator version.
    With ``verify`` every chunk of a previous store is also read back against its completion
    record (:func:`estimate_to_store` does not wait for this: each task checks the previous
    chunks it reads, and estimates its chunk in full when one does not match). The reason
    says what changed, in the config's words, or what the update will redo.
    """
    ok, reason, _ = _prepare_update(previous, plan, verify=verify)
    return ok, reason


@dataclass(frozen=True)
class _Update:
    """What an update task needs besides the plan; pickled once per worker."""

    #: ``("store", path, layout, plan_id, {chunk: sha256 recorded}, {chunk with no good
    #: record that the previous plan touched})`` or ``("arrays", {name: (domain, z, y, x)})``
    source: tuple
    #: per (domain, grade): positions (k, 3) of every sample added, removed or changed
    changed: Mapping[tuple[str, str], np.ndarray]
    #: (domain, grade) whose composite value range changed (range flags recomputed)
    ranges: frozenset
    #: old and new rule points together when they differ (fractions recomputed near them)
    rule_points: np.ndarray | None
    #: old tranche code -> new code
    tranche_map: np.ndarray
    #: the newest tranche is a new one: unchanged blocks used none of its samples
    reset_newest: bool
    #: a folder of kept kriging weights: only sample values changed, estimates are the
    #: weights applied to the new values (:func:`compute_reweight_chunk`)
    weights: str | None = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_cache", None)
        return state

    def cache(self) -> dict:
        with _CACHE_LOCK:
            return self.__dict__.setdefault("_cache", {"lock": threading.Lock()})

    def near(
        self, key: tuple[str, str], targets: np.ndarray, plan: ChunkPlan, passes: np.ndarray
    ) -> np.ndarray:
        """Which targets a changed sample of ``key`` can change.

        A block that pass ``p`` estimated (``passes``, as stored) depends only on the
        candidates of passes 1 to ``p`` (the earlier ones fell short, pass ``p`` chose its
        neighbourhood); a block no pass estimated, on those of every pass. A changed sample
        outside those ellipsoids around the block is none of its candidates, so it cannot
        change it. Distances are measured in each pass's scaled space from coordinates
        relative to the grid origin, with a margin (1e-6 of the ellipsoid) far above their
        rounding.
        """
        from scipy.spatial import cKDTree

        from estimator.kriging.search import transform

        origin = np.asarray(plan.grid.origin)
        cache = self.cache()
        hit = np.zeros(targets.shape[0], dtype=bool)
        for k, spass in enumerate(plan.passes):
            ask = ~hit & ((passes > k) | (passes <= 0))  # pass k + 1 matters to the block
            if not ask.any():
                break
            with cache["lock"]:
                tree = cache.get((key, k))
                if tree is None:
                    scaled = transform(self.changed[key] - origin, spass.matrix)
                    tree = cache[(key, k)] = cKDTree(scaled)
            scaled = transform(targets[ask] - origin, spass.matrix)
            dist, _ = tree.query(scaled, k=1, distance_upper_bound=1.0 + 1e-6)
            hit[np.flatnonzero(ask)[np.isfinite(dist)]] = True
        return hit

    def read(self, layout, window) -> dict | None:
        """The previous model's arrays over ``window`` (every variable of ``layout``), or None
        when a previous chunk it overlaps does not match its completion record.

        Each previous chunk overlapping the window is read whole and hashed against its
        record; chunks without record that the previous plan did not touch hold fill values.
        """
        names = [v[0] for v in layout.variables()]
        if self.source[0] == "arrays":
            return {n: self.source[1][n][(slice(None), *window)].copy() for n in names}
        from estimator.io.blockstore import BlockStore, chunk_sha256

        _, path, old, plan_id, records, bad = self.source
        cache = self.cache()
        with cache["lock"]:
            store = cache.get("store")
            if store is None:
                store = cache["store"] = BlockStore(path, old, plan_id)
        lo = [w.start for w in window]
        hi = [w.stop for w in window]
        cz, cy, cx = old.chunks[2], old.chunks[1], old.chunks[0]
        out = {
            n: np.full((len(old.domains), *(b - a for a, b in zip(lo, hi, strict=True))), fill,
                       dtype=dt)
            for n, dt, fill in old.variables()
        }  # fmt: skip
        for k in range(lo[0] // cz, (hi[0] - 1) // cz + 1):
            for j in range(lo[1] // cy, (hi[1] - 1) // cy + 1):
                for i in range(lo[2] // cx, (hi[2] - 1) // cx + 1):
                    index = (k, j, i)
                    if index in bad:
                        return None
                    if index not in records:
                        continue  # never written: fill values
                    try:
                        data = store.read_chunk(index, names)
                        ok = chunk_sha256(data, names) == records[index]
                    except Exception:  # a damaged chunk file fails to decode
                        ok = False
                    if not ok:
                        return None
                    src = old.window(index)
                    a = [max(s.start, w.start) for s, w in zip(src, window, strict=True)]
                    b = [min(s.stop, w.stop) for s, w in zip(src, window, strict=True)]
                    into = (slice(None), *(slice(x - w.start, y - w.start)
                                           for x, y, w in zip(a, b, window, strict=True)))
                    frm = (slice(None), *(slice(x - s.start, y - s.start)
                                          for x, y, s in zip(a, b, src, strict=True)))
                    for n in names:
                        out[n][into] = data[n][frm]
        return out


def _prepare_update(
    previous: Previous,
    plan: ChunkPlan,
    *,
    verify: bool = True,
    target: Path | None = None,
    num_workers: int | None = None,
) -> tuple[bool, str, _Update | None]:
    """:func:`can_reuse` and, when it holds, what the update tasks need."""
    old = previous.plan
    if not isinstance(old, ChunkPlan):
        return False, "the previous run's plan was not given", None
    for name, words in _FIELD_WORDS.items():
        if _digest(getattr(old, name)) != _digest(getattr(plan, name)):
            return False, f"{words} changed", None
    why, tranche_map, reset = _tranche_change(old.tranche_names, plan.tranche_names)
    if why:
        return False, why, None
    try:
        source = _previous_source(previous, verify, target, num_workers)
    except DataError as err:
        return False, f"the previous block model cannot be used: {err}", None
    changed, ranges, added, removed = {}, set(), 0, 0
    for key, new in plan.samples.items():
        positions, n_add, n_rem = _changed_samples(old, plan, key)
        added, removed = added + n_add, removed + n_rem
        if positions.size:
            changed[key] = positions
        if not np.array_equal(old.samples[key].value_range, new.value_range, equal_nan=True):
            ranges.add(key)
    rule_points = None
    if _digest((old.rule_points, old.rule_labels)) != _digest((plan.rule_points, plan.rule_labels)):
        parts = [p for p in (old.rule_points, plan.rule_points) if p is not None]
        rule_points = np.vstack(parts) if parts else np.zeros((0, 3))
    update = _Update(
        source=source, changed=changed, ranges=frozenset(ranges), rule_points=rule_points,
        tranche_map=tranche_map, reset_newest=reset,
    )  # fmt: skip
    reason = (
        f"only the samples changed: {added} added and {removed} removed or changed (counted "
        "per domain and grade); only the blocks within the search reach of those are "
        "re-estimated"
    )
    if rule_points is not None:
        reason += ", and those whose domain fractions changed"
    return True, reason, update


def _tranche_change(old: Sequence[str], new: Sequence[str]) -> tuple[str, np.ndarray, bool]:
    """``(why not, old code -> new code, reset_newest)`` between two tranche lists."""
    old, new = [str(t) for t in old], [str(t) for t in new]
    tmap = np.zeros(len(old) + 1, dtype=np.uint8)
    common = set(old) & set(new)
    if [t for t in old if t in common] != [t for t in new if t in common]:
        return "the order of the tranches in data.assays changed", tmap, False
    for k, t in enumerate(old, start=1):
        tmap[k] = new.index(t) + 1 if t in common else 0
    if not old or not new or old[-1] == new[-1]:
        return "", tmap, False
    if new[-1] in common:
        why = (
            f"the newest tranche is now {new[-1]!r}, an earlier one (the last of data.assays "
            "was removed): the newest-tranche counts of every block change"
        )
        return why, tmap, False
    return "", tmap, True


#: The last NetCDF previous model read, by (path, mtime, size, plan digest).
_NETCDF_CACHE: dict[tuple, tuple] = {}


def clear_previous_cache() -> None:
    """Forget the NetCDF previous model kept in memory (after a study)."""
    with _CACHE_LOCK:
        _NETCDF_CACHE.clear()


def _previous_source(previous: Previous, verify: bool, target, num_workers) -> tuple:
    """Where the update reads the previous values from, once checked (DataError if not)."""
    import xarray as xr

    from estimator.io import blockstore as bs

    expected = plan_digest(previous.plan)
    layout = previous.plan.layout()
    model = previous.model
    if isinstance(model, (str, Path)) and Path(model).is_file():
        # a NetCDF model read whole, once per process (a study's variants share their base)
        st = Path(model).stat()
        key = (str(Path(model).resolve()), st.st_mtime_ns, st.st_size, expected)
        with _CACHE_LOCK:
            hit = _NETCDF_CACHE.get(key)
        if hit is not None:
            return hit
        from estimator.io.artefacts import open_blockmodel

        ds = open_blockmodel(model)
        if ds.attrs.get(bs.PLAN_ATTR) != expected:
            msg = (
                f"its {bs.PLAN_ATTR} attribute is not the digest of the previous plan given "
                "(another run, or inputs that changed since it was made)"
            )
            raise DataError(msg)
        source = ("arrays", bs.model_arrays(ds, layout))
        with _CACHE_LOCK:
            _NETCDF_CACHE.clear()
            _NETCDF_CACHE[key] = source
        return source
    if isinstance(model, xr.Dataset):
        if model.attrs.get(bs.PLAN_ATTR) != expected:
            msg = (
                f"its {bs.PLAN_ATTR} attribute is not the digest of the previous plan given "
                "(another run, or inputs that changed since it was made)"
            )
            raise DataError(msg)
        return ("arrays", bs.model_arrays(model, layout))
    if not isinstance(model, (str, Path)):
        msg = f"expected a store path, a NetCDF path or a Dataset, got {type(model).__name__}"
        raise DataError(msg)
    path = Path(model).absolute()
    if not path.is_dir():
        msg = f"{path} does not exist"
        raise DataError(msg)
    if target is not None and path.resolve() == Path(target).resolve():
        msg = f"{path} is the store being written"
        raise DataError(msg)
    stored, plan_id = bs.layout_of(path)
    if bs.store_attributes(path).get(bs.PLAN_ATTR) != expected:
        msg = (
            f"{path.name}: its {bs.PLAN_ATTR} attribute is not the digest of the previous plan "
            "given (another run, or inputs that changed since it was made)"
        )
        raise DataError(msg)
    same = replace(stored, chunks=layout.chunks, length_unit=None, grade_unit=None)
    if same != replace(layout, length_unit=None, grade_unit=None):
        msg = f"{path.name}: its layout (grid, domains, grades, classes, tranches) differs"
        raise DataError(msg)
    missing = [n for n, *_ in stored.variables() if not (path / n / "zarr.json").is_file()]
    if missing:
        msg = f"{path.name}: no variable {missing[0]} (made by an older estimator?)"
        raise DataError(msg)
    store = bs.BlockStore(path, stored, plan_id)
    records = {}
    for index in store.recorded():
        record = store.record(index)
        if (record and record.get("plan_id") == plan_id
                and record.get("chunk") == list(index)):  # fmt: skip
            records[index] = record.get("sha256")
    touched = replace(previous.plan, chunks=stored.chunks).touched_chunks()
    bad = frozenset(i for i in touched if i not in records)
    if verify:
        bad |= frozenset(_unverified(store, list(records), num_workers))
    if bad:
        k, j, i = sorted(bad)[0]
        why = (
            f"{path.name}: {len(bad)} chunk(s) (the first z{k}_y{j}_x{i}) have no completion "
            "record or no longer match it (changed, damaged or never finished)"
        )
        if verify:
            raise DataError(why)
        log.warning("%s: the chunks over them are estimated in full", why)
    return ("store", str(path), stored, plan_id, records, bad)


def _unverified(store, indices, num_workers) -> list[Index]:
    """The chunks of ``indices`` whose stored data do not hash to their record."""
    import concurrent.futures as cf
    import os

    workers = int(num_workers) if num_workers else (os.cpu_count() or 1)
    with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        ok = list(pool.map(lambda i: store.verified_record(i) is not None, indices))
    return [i for i, good in zip(indices, ok, strict=True) if not good]


def _sample_keys(plan: ChunkPlan, s: SampleSet) -> tuple[np.ndarray, list, list]:
    """Per sample: x, y, z, value bits, and its hole and tranche names (for comparisons)."""
    bits = np.column_stack([s.xyz, s.values]).view(np.int64) if len(s.values) else (
        np.zeros((0, 4), np.int64))  # fmt: skip
    names = plan.hole_names
    holes = (names[s.holes] if names is not None else s.holes.astype(str)).tolist()
    labels = ["", *plan.tranche_names]
    codes = s.tranches if s.tranches is not None else np.zeros(len(s.values), np.uint8)
    tranches = [labels[c] for c in codes.tolist()]
    return bits, holes, tranches


def _changed_samples(old: ChunkPlan, new: ChunkPlan, key) -> tuple[np.ndarray, int, int]:
    """Positions of the samples of ``key`` added, removed or changed, and how many of each.

    A sample is its (x, y, z, value, hole, tranche); the two sets are compared as multisets.
    Unchanged samples must also keep their relative order (ties in search distance go to the
    earlier sample): those that do not are counted as changed too (removed and added).
    """
    a, b = old.samples[key], new.samples[key]
    ba, ha, ta = _sample_keys(old, a)
    bb, hb, tb = _sample_keys(new, b)
    ma, mb = len(ha), len(hb)
    if not ma or not mb:
        pos = np.vstack([a.xyz, b.xyz]).reshape(-1, 3)
        return pos, mb, ma
    _, hole = np.unique(np.array(ha + hb, dtype=object), return_inverse=True)
    _, tranche = np.unique(np.array(ta + tb, dtype=object), return_inverse=True)
    rows = np.ascontiguousarray(
        np.column_stack([np.vstack([ba, bb]), hole.ravel(), tranche.ravel()]).astype(np.int64)
    )
    _, group = np.unique(rows.view(np.dtype((np.void, rows.shape[1] * 8))).ravel(),
                         return_inverse=True)  # fmt: skip
    group = group.ravel().astype(np.int64)
    # the k-th copy of a sample in the old set matches the k-th copy in the new set
    rank = np.empty(ma + mb, dtype=np.int64)
    for part in (slice(0, ma), slice(ma, ma + mb)):
        g = group[part]
        order = np.argsort(g, kind="stable")
        sorted_g = g[order]
        first = np.searchsorted(sorted_g, sorted_g, side="left")
        r = np.empty_like(order)
        r[order] = np.arange(order.size) - first
        rank[part] = r
    scale = ma + mb + 1
    ka, kb = group[:ma] * scale + rank[:ma], group[ma:] * scale + rank[ma:]
    _, ia, ib = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
    order = np.argsort(ia)
    ia, ib = ia[order], ib[order]
    keep = _increasing(ib)
    stay_a = np.zeros(ma, dtype=bool)
    stay_b = np.zeros(mb, dtype=bool)
    stay_a[ia[keep]] = True
    stay_b[ib[keep]] = True
    pos = np.vstack([a.xyz[~stay_a], b.xyz[~stay_b]])
    return pos, int((~stay_b).sum()), int((~stay_a).sum())


def _increasing(seq: np.ndarray) -> np.ndarray:
    """A longest strictly increasing subsequence of ``seq`` (a mask), O(n log n)."""
    import bisect

    seq = np.asarray(seq)
    keep = np.ones(seq.size, dtype=bool)
    if seq.size < 2 or np.all(np.diff(seq) > 0):
        return keep
    tails, tail_at, back = [], [], np.full(seq.size, -1, dtype=np.int64)
    for i, v in enumerate(seq.tolist()):
        k = bisect.bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_at.append(i)
        else:
            tails[k] = v
            tail_at[k] = i
        back[i] = tail_at[k - 1] if k else -1
    keep[:] = False
    i = tail_at[-1]
    while i >= 0:
        keep[i] = True
        i = back[i]
    return keep


def _window_box(grid: BlockGrid, window) -> tuple[np.ndarray, np.ndarray]:
    """World bounding box of the block centres of ``window``."""
    zs, ys, xs = window
    corners = [(z, y, x) for z in (zs.start, zs.stop - 1) for y in (ys.start, ys.stop - 1)
               for x in (xs.start, xs.stop - 1)]  # fmt: skip
    iz, iy, ix = (np.array(c) for c in zip(*corners, strict=True))
    centres = grid.block_centres(iz, iy, ix)
    return centres.min(axis=0), centres.max(axis=0)


def _any_within(points: np.ndarray, box, reach: float) -> bool:
    lo, hi = box
    return bool(np.any(np.all((points >= lo - reach) & (points <= hi + reach), axis=1)))


#: The flag bits kept from the previous model when the value range changed.
_KEEP_BITS = np.uint8(0xFF ^ RANGE_BITS)


def compute_update_chunk(plan: ChunkPlan, update: _Update, index: Sequence[int]) -> tuple:
    """One chunk of an update (no I/O besides reading the previous model).

    The previous values over the chunk's window are read; where the rule points changed near
    the chunk, its fractions are recomputed. Per domain and grade, the blocks inside the
    domain that a changed sample can change (:meth:`_Update.near`: inside the ellipsoid of a
    pass the block depends on), or that were outside it before, are estimated afresh; blocks now outside take the fill values; every other block
    keeps its previous values, with its tranche codes renumbered, its newest-tranche counts
    set to 0 when the newest tranche is a new one, and its range flags recomputed when the
    domain's composite value range changed. Classes are recomputed from the result.

    Returns ``(arrays, summary)`` as :func:`compute_chunk`; the summary's ``update`` holds
    per domain and grade ``[blocks estimated, blocks copied]``.
    """
    der = _derived(plan)
    layout = der.layout
    window = layout.window(index)
    zs, ys, xs = window
    arrays = _previous_arrays(plan, update, layout, window)
    if arrays is None:  # a previous chunk does not match its record: this one in full
        arrays, summary = compute_chunk(plan, index)
        summary["update"] = {
            d: {g: [part["blocks"], 0] for g in plan.grades}
            for d, part in summary["domains"].items()
        }
        summary["previous_damaged"] = True
        return arrays, summary
    old_frac = arrays["fraction"]
    frac = old_frac
    box = _window_box(plan.grid, window)
    if update.rule_points is not None and update.rule_points.size:
        rule = max(d.blocks.max_distance for d in plan.domains if d.blocks is not None)
        if _any_within(update.rule_points, box, rule + 2 * plan.grid.half_diagonal):
            frac = domain_fractions(
                plan.grid, plan.subcells, plan.domains, der.wireframes,
                topography=plan.topography, window=window, sample_index=der.sample_index,
                parallel=False,
            ).fractions  # fmt: skip
            arrays["fraction"] = frac
    done: dict[str, dict[str, list[int]]] = {}
    every = GRADE_VARIABLES | PROVENANCE_VARIABLES
    for i, dom in enumerate(plan.domains):
        inside = frac[i] > 0
        gone = (old_frac[i] > 0) & ~inside
        if gone.any():
            for g in plan.grades:
                for suffix, (_, fill) in every.items():
                    arrays[f"{g}{suffix}"][i][gone] = -1 if suffix == "_pass" else fill
        if not inside.any():
            continue
        flat = np.flatnonzero(inside)
        fresh = ~(old_frac[i].reshape(-1)[flat] > 0)
        targets = None
        done[dom.name] = {}
        for g in plan.grades:
            redo = fresh.copy()
            moved = update.changed.get((dom.name, g))
            if moved is not None and _any_within(moved, box, der.reach):
                if targets is None:
                    iz, iy, ix = np.unravel_index(flat, inside.shape)
                    targets = plan.grid.block_centres(iz + zs.start, iy + ys.start, ix + xs.start)
                passes = arrays[f"{g}_pass"][i].reshape(-1)[flat]
                redo |= update.near((dom.name, g), targets, plan, passes)
            if redo.any():
                if targets is None:
                    iz, iy, ix = np.unravel_index(flat, inside.shape)
                    targets = plan.grid.block_centres(iz + zs.start, iy + ys.start, ix + xs.start)
                res = _krige(plan, der, dom.name, g, targets[redo])
                sel = flat[redo]
                for key, values in res.items():
                    if key != "failures":
                        arrays[f"{g}{key}"][i].reshape(-1)[sel] = values
            n_redo = int(redo.sum())
            done[dom.name][g] = [n_redo, int(redo.size) - n_redo]
    if plan.class_grade is not None:
        arrays["class"] = _class_codes(plan, arrays, layout.class_dtype)
    summary = _summary(plan, arrays, _flag_failures(plan, arrays))
    summary["update"] = done
    return arrays, summary


def _reweight_update(plan, base: Previous, folder, target, num_workers):
    """``(update in weights mode, counts)`` when ``plan`` is ``base.plan`` with other sample
    values and ``folder`` holds the base's weights; else ``(None, None)`` (logged)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "plan.json").read_text())
    except (OSError, ValueError):
        log.info("no kept kriging weights in %s: the blocks are estimated", folder)
        return None, None
    if manifest.get("plan") != plan_digest(base.plan):
        log.info("the kriging weights in %s are another model's: the blocks are estimated", folder)
        return None, None
    ok, why = value_only(base.plan, plan)
    if not ok:
        log.info("kriging weights not reused (%s)", why)
        return None, None
    ok, reason, update = _prepare_update(base, plan, verify=False, target=target,
                                         num_workers=num_workers)  # fmt: skip
    if not ok:
        log.info("kriging weights not reused (%s)", reason)
        return None, None
    return replace(update, weights=str(folder.absolute())), {"reused": True, "reason": why,
                                                            "reweighted": True}  # fmt: skip


def _weights_file(folder, index) -> Path:
    k, j, i = (int(v) for v in index)
    return Path(folder) / f"z{k}_y{j}_x{i}.npz"


def save_weights(folder, index, keep: Mapping) -> None:
    """Write the kept weights of chunk ``index`` (:func:`compute_chunk`'s ``keep``), atomically."""
    data = {}
    for (i, g), (flat, rows, weights) in keep.items():
        data[f"{i}|{g}|flat"] = flat
        data[f"{i}|{g}|rows"] = rows
        data[f"{i}|{g}|weights"] = weights
    path = _weights_file(folder, index)
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(path)


def apply_weights(weights: np.ndarray, rows: np.ndarray, values: np.ndarray,
                  sk_mean: float | None = None) -> np.ndarray:  # fmt: skip
    """Estimates from kept kriging weights and new sample values, bit for bit the kernel's.

    The kernel sums ``weight x value`` (simple kriging: ``weight x (value - mean)``, then adds
    the mean) over the selected samples in selection order, from 0, in float64 without fused
    multiply-adds; this does the same, column by column. Blocks without weights give NaN.
    """
    n, width = rows.shape
    acc = np.zeros(n)
    used = np.zeros(n, dtype=bool)
    for j in range(width):
        ok = rows[:, j] >= 0
        if not ok.any():
            continue
        v = values[rows[ok, j]]
        if sk_mean is not None:
            v = v - sk_mean
        acc[ok] += weights[ok, j] * v
        used |= ok
    if sk_mean is not None:
        acc[used] += sk_mean
    acc[~used] = np.nan
    return acc


def compute_reweight_chunk(plan: ChunkPlan, update: _Update, index: Sequence[int]) -> tuple:
    """One chunk of a model whose samples changed only in value: the previous (base) model's
    arrays over the chunk with every estimate recomputed from the kept weights and the new
    values, range flags and classes recomputed (no kriging). Returns ``(arrays, summary)``.
    """
    der = _derived(plan)
    layout = der.layout
    window = layout.window(index)
    arrays = update.read(layout, window)
    path = _weights_file(update.weights, index)
    if arrays is None or not path.is_file():  # no base chunk or no weights: krige it
        arrays, summary = compute_chunk(plan, index)
        summary["update"] = {d: {g: [p["blocks"], 0] for g in plan.grades}
                             for d, p in summary["domains"].items()}  # fmt: skip
        return arrays, summary
    done: dict[str, dict[str, list[int]]] = {}
    with np.load(path) as data:
        for i, dom in enumerate(plan.domains):
            for g in plan.grades:
                key = f"{i}|{g}|flat"
                if key not in data:
                    continue
                flat, rows, w = data[key], data[f"{i}|{g}|rows"], data[f"{i}|{g}|weights"]
                s = plan.samples[(dom.name, g)]
                method_sk = plan.method == "sk"
                est = apply_weights(w, rows, s.values,
                                    plan.sk_mean.get((dom.name, g)) if method_sk else None)
                grid = arrays[g][i].reshape(-1)
                before = grid[flat]
                grid[flat] = np.where(np.isfinite(before), est, before)
                flag = arrays[f"{g}_flag"][i]
                flag[...] = (flag & _KEEP_BITS) | np.where(
                    arrays["fraction"][i] > 0, range_flags(arrays[g][i], s.value_range), 0
                ).astype(np.uint8)
                done.setdefault(dom.name, {})[g] = [0, int(flat.size)]
    if plan.class_grade is not None:
        arrays["class"] = _class_codes(plan, arrays, layout.class_dtype)
    summary = _summary(plan, arrays, _flag_failures(plan, arrays))
    summary["update"] = done
    summary["reweighted"] = True
    return arrays, summary


def value_only(base: ChunkPlan, plan: ChunkPlan) -> tuple[bool, str]:
    """Whether ``plan`` differs from ``base`` in nothing but sample values (the same samples
    at the same places, holes and tranches), so the base's kriging weights hold; and why not."""
    for name, words in _FIELD_WORDS.items():
        if _digest(getattr(base, name)) != _digest(getattr(plan, name)):
            return False, f"{words} changed"
    if _digest((base.tranche_names, base.hole_names, base.rule_points, base.rule_labels)) != (
        _digest((plan.tranche_names, plan.hole_names, plan.rule_points, plan.rule_labels))
    ):
        return False, "the samples' holes, tranches or logged domains changed"
    for key, s in plan.samples.items():
        b = base.samples.get(key)
        if b is None or b.xyz.shape != s.xyz.shape or not np.array_equal(b.xyz, s.xyz):
            return False, f"the samples of {key[0]} {key[1]} moved, or some were added or removed"
        if not np.array_equal(b.holes, s.holes) or not np.array_equal(
            b.tranches if b.tranches is not None else [], s.tranches if s.tranches is not None else []
        ):
            return False, f"the holes or tranches of the samples of {key[0]} {key[1]} changed"
    return True, "only sample values changed: the kept kriging weights are applied to them"


def _previous_arrays(plan: ChunkPlan, update: _Update, layout, window) -> dict | None:
    """The previous values over ``window``, carried over (:func:`_carry_over`); None when a
    previous chunk there does not match its record."""
    arrays = update.read(layout, window)
    return None if arrays is None else _carry_over(plan, update, arrays)


def _carry_over(plan: ChunkPlan, update: _Update, arrays: dict) -> dict:
    """Previous values with tranche codes, newest-tranche counts and range flags as a full
    run of ``plan`` gives them for blocks it does not re-estimate (in place)."""
    for g in plan.grades:
        latest = f"{g}_latest_tranche"
        arrays[latest] = update.tranche_map[arrays[latest]]
        if update.reset_newest:
            estimated = arrays[f"{g}_pass"] > 0
            arrays[f"{g}_newest_n"][estimated] = 0
            arrays[f"{g}_newest_weight"][estimated] = 0.0
    names = [d.name for d in plan.domains]
    for d, g in update.ranges:
        i = names.index(d)
        flag = arrays[f"{g}_flag"]
        flag[i] = (flag[i] & _KEEP_BITS) | range_flags(arrays[g][i], plan.samples[(d, g)].value_range)
    return arrays


def _untouched(plan: ChunkPlan, update: _Update, index: Index) -> bool:
    """Whether no block of chunk ``index`` can change (a conservative box test): no changed
    sample within the search reach of the chunk, no changed rule point near it."""
    der = _derived(plan)
    box = _window_box(plan.grid, der.layout.window(index))
    if any(_any_within(p, box, der.reach) for p in update.changed.values()):
        return False
    if update.rule_points is not None and update.rule_points.size:
        rule = max(d.blocks.max_distance for d in plan.domains if d.blocks is not None)
        if _any_within(update.rule_points, box, rule + 2 * plan.grid.half_diagonal):
            return False
    return True


def _copy_whole(plan: ChunkPlan, update: _Update, store, index: Index) -> tuple | None:
    """Chunk ``index`` copied from the previous store file by file, then checked and carried
    over: ``(sha256, summary)``, or None when this cannot be done (other chunking, a block
    that can change, a previous chunk that does not match its record): then the chunk goes
    the usual way, which rewrites every variable."""
    from estimator.io.blockstore import BlockStore, chunk_sha256

    if update.source[0] != "store":
        return None
    _, path, old, plan_id, records, bad = update.source
    if old.chunks != plan.chunks or index in bad or index not in records:
        return None
    if not _untouched(plan, update, index):
        return None
    cache = update.cache()
    with cache["lock"]:
        source = cache.get("store")
        if source is None:
            source = cache["store"] = BlockStore(path, old, plan_id)
    if not store.copy_chunk(source, index):
        return None
    names = [v[0] for v in store.layout.variables()]
    try:
        arrays = store.read_chunk(index, names)
        same = chunk_sha256(arrays, names) == records[index]
    except Exception:  # a damaged chunk file fails to decode
        same = False
    if not same:
        return None
    before = {n: arrays[n].copy() for n in names if not n.startswith("fraction")}
    _carry_over(plan, update, arrays)
    if plan.class_grade is not None:
        arrays["class"] = _class_codes(plan, arrays, store.layout.class_dtype)
    changed = [n for n in before if not np.array_equal(before[n], arrays[n], equal_nan=True)]
    sha = store.write_chunk(index, arrays, names=changed)
    summary = _summary(plan, arrays, _flag_failures(plan, arrays))
    summary["update"] = {
        d: {g: [0, part["blocks"]] for g in plan.grades} for d, part in summary["domains"].items()
    }
    return sha, summary


def _flag_failures(plan: ChunkPlan, arrays: dict) -> dict:
    """The kernel's failure counts of a chunk, read back from its flags (bits 16 and 32)."""
    frac = arrays["fraction"]
    out = {}
    for i, dom in enumerate(plan.domains):
        inside = frac[i] > 0
        for g in plan.grades:
            flag = arrays[f"{g}_flag"][i][inside]
            out[(dom.name, g)] = {
                "singular": int(np.count_nonzero(flag & FLAG_BITS["singular"])),
                "too_few": int(np.count_nonzero(flag & FLAG_BITS["too_few"])),
            }
    return out


def _update_counts(plan: ChunkPlan, summaries: Sequence[Mapping]) -> dict:
    """Blocks estimated and copied per domain and grade, chunks copied whole or updated."""
    blocks = {d.name: {g: {"estimated": 0, "copied": 0} for g in plan.grades}
              for d in plan.domains}  # fmt: skip
    whole = updated = damaged = 0
    for s in summaries:
        damaged += bool(s.get("previous_damaged"))
        done = s.get("update")
        if done is None:  # computed in full (kept from an interrupted run, or no update)
            for d, part in s["domains"].items():
                for g in plan.grades:
                    blocks[d][g]["estimated"] += part["blocks"]
            updated += 1
            continue
        redone = 0
        for d, per in done.items():
            for g, (n_est, n_copy) in per.items():
                blocks[d][g]["estimated"] += n_est
                blocks[d][g]["copied"] += n_copy
                redone += n_est
        whole += redone == 0
        updated += redone > 0
    chunks = {"copied_whole": whole, "estimated": updated, "previous_damaged": damaged}
    return {"blocks": blocks, "chunks": chunks}


@dataclass(frozen=True)
class _KeepWeights:
    """Task mode of a full estimate that also writes each chunk's kriging weights."""

    folder: str
