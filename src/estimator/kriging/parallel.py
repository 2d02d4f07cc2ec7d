"""Block-model estimation over dask: chunk the grid, ship each chunk only its samples, compute once.

The eager kernel :func:`estimator.kriging.estimate.estimate_blocks` is the product; this module
is the optional outer layer (STYLE section 6). Each domain's blocks with ``fraction > 0`` are cut
into chunks of ``compute.chunks`` blocks (index ranges along x, y and z); each chunk becomes one
``dask.delayed`` call of the kernel with

* the world centres of its blocks (from :meth:`BlockGrid.block_centres`, the one function that
  makes targets, so a block's coordinates are the same bits in every chunking), and
* only the composites inside the chunk's bounding box grown by the search *reach*: the largest
  range of any pass (passes arrive already scaled, so this is at least the last pass's major
  range) used as a sphere radius, plus the block half-diagonal.

Because a block's result depends only on its own target, the discretisation offsets and the
samples within its search ellipsoid (kept in their original relative order), the assembled model
is identical, bit for bit, to one eager call over all blocks, whatever the chunking or the
scheduler: ``"synchronous"``, ``"threads"``, ``"processes"`` or a ``dask.distributed``
scheduler address such as ``"tcp://10.0.0.5:8786"``.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from estimator.blockmodel.grid import DIMS, GRADE_VARIABLES, BlockGrid
from estimator.errors import EstimationWarning

log = logging.getLogger(__name__)

#: Kernel output key -> block-model variable suffix (SPEC section 5).
OUTPUT_SUFFIX = {
    "estimate": "",
    "kv": "_kv",
    "slope": "_slope",
    "ke": "_ke",
    "n": "_n",
    "holes": "_holes",
    "dist": "_dist",
    "pass": "_pass",
    "flag": "_flag",
}

#: Bits of the per-block flag variable ``<grade>_flag`` (CF ``flag_masks``), in order.
FLAG_BITS = {
    "negative": 1,  # estimate below 0
    "above_range": 2,  # estimate above the highest composite of the domain
    "below_range": 4,  # estimate below the lowest composite of the domain (and not negative)
    "ill_conditioned": 8,  # kriged from an ill-conditioned system (see _kernels)
    "singular": 16,  # not estimated: singular kriging system
    "too_few": 32,  # not estimated: too few samples within every pass
}
LOCAL_SCHEDULERS = ("synchronous", "threads", "processes")


@dataclass(frozen=True)
class ChunkTask:
    """One unit of work: the blocks of one chunk of one domain, for one grade."""

    domain: str
    grade: str
    flat: np.ndarray  # (n,) int64 C-order indices into the domain's (nz, ny, nx) grid
    targets: np.ndarray  # (n, 3) world block centres
    sample_index: np.ndarray  # (m,) int64 rows of the grade's samples within reach


# ---------------------------------------------------------------------------------------
# input preparation
# ---------------------------------------------------------------------------------------
def _per(mapping: Any, domain: str, grade: str, what: str) -> Any:
    """Look up a per-domain (optionally per-grade) setting; plain values apply everywhere."""
    if not isinstance(mapping, Mapping):
        return mapping
    if (domain, grade) in mapping:
        return mapping[(domain, grade)]
    if domain not in mapping:
        msg = f"no {what} for domain {domain!r} (have {', '.join(map(str, mapping))})"
        raise KeyError(msg)
    value = mapping[domain]
    if isinstance(value, Mapping):
        if grade not in value:
            msg = f"no {what} for grade {grade!r} of domain {domain!r}"
            raise KeyError(msg)
        return value[grade]
    return value


def _clean_samples(xyz, values, hole_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 C arrays, integer hole codes, rows with a missing grade or position removed."""
    xyz = np.ascontiguousarray(np.asarray(xyz, dtype=np.float64).reshape(-1, 3))
    values = np.ascontiguousarray(np.asarray(values, dtype=np.float64).ravel())
    hole_ids = np.asarray(hole_ids).ravel()
    if not (len(xyz) == len(values) == len(hole_ids)):
        msg = f"samples: xyz, values and hole_ids differ in length ({len(xyz)}, {len(values)}, {len(hole_ids)})"
        raise ValueError(msg)
    if hole_ids.dtype.kind not in "iu":
        # np.unique sorts, so the codes are a deterministic function of the names.
        _, hole_ids = np.unique(hole_ids.astype(str), return_inverse=True)
    hole_ids = np.ascontiguousarray(hole_ids, dtype=np.int64)
    keep = kept_samples(xyz, values)
    if not keep.all():
        xyz, values, hole_ids = xyz[keep], values[keep], hole_ids[keep]
    return xyz, values, hole_ids


def kept_samples(xyz: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows :func:`_clean_samples` keeps: a finite value and a finite position."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    values = np.asarray(values, dtype=np.float64).ravel()
    return np.isfinite(values) & np.all(np.isfinite(xyz), axis=1)


def search_reach(passes: Sequence[Any], grid: BlockGrid) -> float:
    """Conservative radius around a block centre beyond which no sample can be used.

    Parameters
    ----------
    passes : sequence of SearchPass
        Search passes with absolute (already scaled) ranges.
    grid : BlockGrid
        Grid, for the block half-diagonal.

    Returns
    -------
    float
        Largest range of any pass plus the block half-diagonal (data units).
    """
    largest = max(float(np.max(p.ranges)) for p in passes)
    return largest + grid.half_diagonal


def chunk_slices(shape_zyx: tuple[int, int, int], chunks: Sequence[int]) -> list[tuple[slice, ...]]:
    """Index ranges ``(z, y, x)`` covering a grid of ``shape_zyx`` in ``compute.chunks`` pieces.

    Parameters
    ----------
    shape_zyx : tuple of 3 ints
        ``(nz, ny, nx)``.
    chunks : sequence of 3 ints
        ``compute.chunks`` as ``(cx, cy, cz)`` (the config's x, y, z order).

    Returns
    -------
    list of tuple of slice
        One ``(z, y, x)`` slice triple per chunk, z slowest.
    """
    cx, cy, cz = (int(c) for c in chunks)
    if min(cx, cy, cz) < 1:
        msg = f"compute.chunks must be three positive integers (x, y, z), got {chunks!r}"
        raise ValueError(msg)
    nz, ny, nx = shape_zyx
    return [
        (slice(z, min(z + cz, nz)), slice(y, min(y + cy, ny)), slice(x, min(x + cx, nx)))
        for z in range(0, nz, cz)
        for y in range(0, ny, cy)
        for x in range(0, nx, cx)
    ]


def plan_chunks(
    fraction: np.ndarray,
    grid: BlockGrid,
    samples: np.ndarray,
    reach: float,
    chunks: Sequence[int],
    domain: str = "",
    grade: str = "",
) -> list[ChunkTask]:
    """Cut one domain's blocks with ``fraction > 0`` into chunks and find each chunk's samples.

    Parameters
    ----------
    fraction : numpy.ndarray, shape (nz, ny, nx)
        The domain's block fractions.
    grid : BlockGrid
        Grid geometry.
    samples : numpy.ndarray, shape (m, 3)
        Sample positions (world).
    reach : float
        Search reach from :func:`search_reach`.
    chunks : sequence of 3 ints
        ``compute.chunks`` ``(cx, cy, cz)``.
    domain, grade : str
        Labels carried by the tasks.

    Returns
    -------
    list of ChunkTask
        Chunks with at least one block, in grid order.
    """
    tasks = []
    for zs, ys, xs in chunk_slices(fraction.shape, chunks):
        iz, iy, ix = np.nonzero(fraction[zs, ys, xs] > 0)
        if iz.size == 0:
            continue
        iz, iy, ix = iz + zs.start, iy + ys.start, ix + xs.start
        flat = np.ravel_multi_index((iz, iy, ix), fraction.shape).astype(np.int64)
        targets = grid.block_centres(iz, iy, ix)
        lo = targets.min(axis=0) - reach
        hi = targets.max(axis=0) + reach
        inside = np.all((samples >= lo) & (samples <= hi), axis=1)
        tasks.append(ChunkTask(domain, grade, flat, targets, np.flatnonzero(inside)))
    return tasks


# ---------------------------------------------------------------------------------------
# the task
# ---------------------------------------------------------------------------------------
def _estimate_chunk(
    targets, offsets, samples, values, hole_ids, model, passes, method, sk_mean, idw_power,
    value_range=(np.nan, np.nan),
):  # fmt: skip
    """Run the eager kernel on one chunk (one dask task) and add the per-block flags.

    ``value_range`` is the (lowest, highest) composite value of the domain: estimates outside
    it are flagged.
    """
    from estimator.kriging import _kernels
    from estimator.kriging.estimate import estimate_blocks

    res = estimate_blocks(
        targets,
        offsets,
        samples,
        values,
        hole_ids,
        model,
        passes,
        method=method,
        sk_mean=sk_mean,
        idw_power=idw_power,
    )
    res["flag"] = block_flags(res, value_range, _kernels.ILL_CONDITIONED_PIVOT)
    return res


def block_flags(res: Mapping[str, np.ndarray], value_range, ill_pivot: float) -> np.ndarray:
    """The ``FLAG_BITS`` of each block of one kernel result (uint8)."""
    est = res["estimate"]
    flag = range_flags(est, value_range)
    with np.errstate(invalid="ignore"):
        pivot = res.get("min_pivot")
        if pivot is not None:
            flag[np.isfinite(est) & (pivot < ill_pivot)] |= FLAG_BITS["ill_conditioned"]
    status = res.get("status")
    if status is not None:
        flag[status == 1] |= FLAG_BITS["singular"]
        flag[status == 2] |= FLAG_BITS["too_few"]
    return flag


#: The flag bits that depend on the domain's composite values (:func:`range_flags`).
RANGE_BITS = FLAG_BITS["negative"] | FLAG_BITS["above_range"] | FLAG_BITS["below_range"]


def range_flags(estimate: np.ndarray, value_range) -> np.ndarray:
    """The bits ``negative``, ``above_range`` and ``below_range`` of each estimate (uint8).

    ``value_range`` is the (lowest, highest) composite value of the domain (NaN: no test).
    """
    est = np.asarray(estimate)
    lo, hi = (float(v) for v in value_range)
    flag = np.zeros(est.shape, dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        flag[est < 0] |= FLAG_BITS["negative"]
        if np.isfinite(hi):
            flag[est > hi] |= FLAG_BITS["above_range"]
        if np.isfinite(lo):
            flag[(est < lo) & (est >= 0)] |= FLAG_BITS["below_range"]
    return flag


def block_provenance(
    res: Mapping[str, np.ndarray], tranches: np.ndarray, newest: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which tranches informed each block, from a kernel result with weights.

    Parameters
    ----------
    res : mapping
        :func:`~estimator.kriging.estimate.estimate_blocks` output with ``return_weights``
        (``weights``, ``indices``, ``pass``).
    tranches : numpy.ndarray, shape (m,), uint8
        Tranche code of each sample given to the kernel (0 none, k the k-th tranche).
    newest : int
        Code of the newest tranche.

    Returns
    -------
    latest : numpy.ndarray of uint8
        Highest tranche code among the samples used (those with a weight; 0 = none).
    newest_n : numpy.ndarray of int64
        Samples used from the newest tranche.
    newest_weight : numpy.ndarray of float64
        Sum of their weights, added in selection order (closest first); NaN where the block
        was not estimated (``pass`` 0).
    """
    idx = np.asarray(res["indices"])
    w = np.asarray(res["weights"])
    estimated = np.asarray(res["pass"]) > 0
    # the kernel gives a weight to the samples used by an estimated block only (NaN elsewhere)
    used = np.isfinite(w) & (idx >= 0) & estimated[:, None]
    tranches = np.asarray(tranches, dtype=np.uint8)
    codes = tranches.take(idx, mode="clip") if tranches.size else np.zeros(idx.shape, np.uint8)
    codes[~used] = 0
    latest = codes.max(axis=1, initial=0).astype(np.uint8)
    is_new = codes == newest if newest > 0 else np.zeros(idx.shape, dtype=bool)
    columns = np.ascontiguousarray(np.where(is_new, w, 0.0).T)
    total = np.zeros(idx.shape[0])
    for column in columns:  # one column at a time: the same sum in any batch
        total += column
    total[~estimated] = np.nan
    return latest, is_new.sum(axis=1), total


def _compute(delayed_tasks: list, scheduler: Any, progress: bool, num_workers: int | None) -> list:
    """Compute every delayed task once, on the requested scheduler, in task order.

    Ctrl-C is checked after every task (:func:`estimator.interrupt.check`), so a run stops
    within one chunk even when Python swallowed the KeyboardInterrupt.
    """
    import dask
    from dask.callbacks import Callback

    from estimator.interrupt import check

    if isinstance(scheduler, str) and scheduler in LOCAL_SCHEDULERS:
        kwargs = {"scheduler": scheduler}
        if num_workers is not None and scheduler != "synchronous":
            kwargs["num_workers"] = int(num_workers)
        if progress:
            from dask.diagnostics import ProgressBar

            bar = ProgressBar(dt=0.5, out=sys.stderr)
        else:
            bar = nullcontext()
        watch = Callback(pretask=lambda *a: check(), posttask=lambda *a: check())
        with bar, watch:
            return list(dask.compute(*delayed_tasks, **kwargs))

    from distributed import Client, as_completed

    if isinstance(scheduler, Client):
        client, own = scheduler, False
    elif isinstance(scheduler, str) and "://" in scheduler:
        client, own = Client(scheduler, set_as_default=False), True
    else:
        msg = (
            "compute.scheduler: expected threads, processes, synchronous or a scheduler address "
            f"like tcp://host:8786, got {scheduler!r}"
        )
        raise ValueError(msg)
    futures = []
    try:
        futures = client.compute(delayed_tasks)
        done = as_completed(futures, loop=client.loop)
        if progress:
            from tqdm.auto import tqdm

            done = tqdm(done, total=len(futures), desc="estimate", file=sys.stderr)
        for _ in done:
            check()
        return client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        if own:
            client.close()


def security_from_config(security: Any):
    """``compute.security`` (``ca_file``, ``cert_file``, ``key_file``) as dask's ``Security``.

    ``None`` stays ``None``; a ``distributed.Security`` is returned as it is. The client
    authenticates with the certificate and checks the scheduler's against the CA
    (``require_encryption``: a ``tls://`` address only).
    """
    if security is None:
        return None
    from distributed import Security

    if isinstance(security, Security):
        return security
    key = getattr(security, "key_file", None)
    return Security(
        tls_ca_file=str(security.ca_file),
        tls_client_cert=str(security.cert_file),
        tls_client_key=str(key) if key else None,
        require_encryption=True,
    )


def connect(
    scheduler: Any, timeout: float = 10.0, *, security: Any = None, workers: int | None = None
):
    """Open a dask.distributed client (None for the local schedulers).

    Parameters
    ----------
    scheduler : str
        A scheduler address (``tcp://host:port``, ``tls://host:port``), or ``cluster``: a
        LocalCluster of ``workers`` processes (default: one per core) of one thread each,
        listening on 127.0.0.1 only, without dashboard; closing the client stops it.
    timeout : float
        Seconds to wait for the scheduler.
    security : SecurityConfig or distributed.Security, optional
        TLS files for a ``tls://`` address (``compute.security``).
    workers : int, optional
        Worker processes of ``cluster``.

    Raises
    ------
    DataError
        When the scheduler cannot be reached within ``timeout`` seconds: the message names the
        address and says how to start one.
    """
    from estimator.errors import DataError

    if not isinstance(scheduler, str) or scheduler in LOCAL_SCHEDULERS:
        return None
    from distributed import Client

    if scheduler == "cluster":
        import os

        n = int(workers) if workers else (os.cpu_count() or 1)
        # Client() without an address starts a LocalCluster that closing the client stops
        return Client(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, set_as_default=False,
        )  # fmt: skip
    try:
        return Client(
            scheduler, timeout=timeout, security=security_from_config(security),
            set_as_default=False,
        )  # fmt: skip
    except Exception as err:  # OSError, TimeoutError, ValueError (bad address), ...
        msg = (
            f"compute.scheduler: cannot reach the dask scheduler at {scheduler} within "
            f"{timeout:g} s ({type(err).__name__}: {err}); start one with `dask scheduler` and "
            "`dask worker <address>` (README: Running on a dask cluster), or check the address"
        )
        raise DataError(msg) from None


# ---------------------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------------------
def estimate_block_model(
    ds: xr.Dataset,
    grid: BlockGrid,
    composites_by_domain: Mapping[str, Mapping[str, tuple]],
    model_by_domain_grade: Any,
    passes_by_domain: Any,
    method: str = "ok",
    discretisation: Sequence[int] = (3, 3, 3),
    scheduler: Any = "threads",
    chunks: Sequence[int] | None = (64, 64, 32),
    progress: bool | None = False,
    sk_mean: Any = None,
    idw_power: float = 2.0,
    num_workers: int | None = None,
) -> tuple[xr.Dataset, dict[str, dict[str, dict[str, int]]]]:
    """Estimate every grade of every domain into the block model, chunk by chunk on dask.

    Parameters
    ----------
    ds : xarray.Dataset
        Block model from :func:`estimator.blockmodel.grid.make_block_model`, with ``fraction``
        filled in; blocks with ``fraction > 0`` in a domain are estimated for that domain.
    grid : BlockGrid
        The grid ``ds`` was made from.
    composites_by_domain : mapping
        ``{domain: {grade: (xyz (m, 3), values (m,), hole_ids (m,))}}`` in world coordinates.
        Rows with a missing (NaN) grade are dropped here; string hole ids are coded to integers.
        Domains absent from the mapping are left as they are in ``ds``.
    model_by_domain_grade : mapping or VariogramModel
        ``{domain: {grade: VariogramModel}}``, ``{(domain, grade): model}``,
        ``{domain: model}`` or one model for everything.
    passes_by_domain : mapping or sequence of SearchPass
        Passes (absolute ranges, already scaled), looked up like the models.
    method : {"ok", "sk", "idw", "nn"}
        Estimator.
    discretisation : sequence of 3 ints
        Discretisation points per block along the grid's x, y, z (``(1, 1, 1)`` = point).
    scheduler : str or distributed.Client
        ``"synchronous"``, ``"threads"``, ``"processes"``, a scheduler address
        (``"tcp://host:port"``; a client is opened and closed here) or an open client.
    chunks : sequence of 3 ints or None
        ``compute.chunks``: blocks per task along x, y, z (None: one task per domain and grade).
    progress : bool or None
        Show a progress bar on stderr; ``None`` shows one when stderr is a terminal.
    sk_mean : float or mapping, optional
        Simple-kriging mean, looked up like the models.
    idw_power : float
        Inverse-distance power.
    num_workers : int, optional
        Worker threads or processes for the local schedulers (default: one per core).

    Returns
    -------
    ds : xarray.Dataset
        A copy of ``ds`` (NumPy-backed) with the grade variables of SPEC section 5 filled in.
    failures : dict
        ``{domain: {grade: {"singular": int, "too_few": int}}}`` summed over chunks; one
        :class:`~estimator.errors.EstimationWarning` reports the totals when any is non-zero.
    """
    import dask

    if progress is None:
        progress = sys.stderr.isatty()
    domains = [str(d) for d in ds["domain"].values]
    offsets = grid.discretisation_offsets(discretisation)
    nz, ny, nx = ds.sizes["z"], ds.sizes["y"], ds.sizes["x"]
    if (nx, ny, nz) != grid.shape:
        msg = (
            f"block model sizes (x, y, z) = {(nx, ny, nz)} do not match the grid shape {grid.shape}"
        )
        raise ValueError(msg)
    if chunks is None:
        chunks = grid.shape

    tasks: list[ChunkTask] = []
    delayed_tasks = []
    grades: list[str] = []
    for domain, per_grade in composites_by_domain.items():
        if domain not in domains:
            msg = f"composites given for domain {domain!r}, which is not in the block model ({', '.join(domains)})"
            raise KeyError(msg)
        fraction = np.asarray(ds["fraction"].sel(domain=domain).values)
        for grade, (xyz, values, holes) in per_grade.items():
            if grade not in grades:
                grades.append(grade)
            samples, vals, hole_ids = _clean_samples(xyz, values, holes)
            model = _per(model_by_domain_grade, domain, grade, "variogram model")
            passes = tuple(_per(passes_by_domain, domain, grade, "search passes"))
            mean = _per(sk_mean, domain, grade, "sk_mean") if method == "sk" else None
            reach = search_reach(passes, grid)
            vrange = (float(vals.min()), float(vals.max())) if vals.size else (np.nan, np.nan)
            for task in plan_chunks(fraction, grid, samples, reach, chunks, domain, grade):
                rows = task.sample_index
                tasks.append(task)
                delayed_tasks.append(
                    dask.delayed(_estimate_chunk, pure=True)(
                        task.targets,
                        offsets,
                        samples[rows],
                        vals[rows],
                        hole_ids[rows],
                        model,
                        passes,
                        method,
                        mean,
                        idw_power,
                        vrange,
                    )
                )
    log.info("estimating %d chunks on %s", len(delayed_tasks), scheduler)
    with warnings.catch_warnings():
        # Failures are summed over all chunks and reported once below, not once per chunk.
        # (Entered once, in the calling thread: catch_warnings is not thread-safe.)
        warnings.simplefilter("ignore", EstimationWarning)
        results = (
            _compute(delayed_tasks, scheduler, bool(progress), num_workers) if delayed_tasks else []
        )
    out, failures = _assemble(ds, domains, grades, tasks, results, composites_by_domain)
    warn_failures(failures)
    return out, failures


def warn_failures(failures: Mapping) -> None:
    """One :class:`EstimationWarning` with the totals of ``{domain: {grade: {kind: n}}}``."""
    totals = {
        k: sum(f[k] for per in failures.values() for f in per.values())
        for k in ("singular", "too_few")
    }
    if any(totals.values()):
        msg = (
            f"{totals['too_few']} blocks not estimated (too few samples in every pass) and "
            f"{totals['singular']} singular kriging systems, over all domains and grades"
        )
        warnings.warn(msg, EstimationWarning, stacklevel=3)


def _assemble(ds, domains, grades, tasks, results, composites_by_domain):
    """Scatter the chunk results into full (domain, z, y, x) arrays; sum the failure counts."""
    shape = tuple(ds.sizes[d] for d in DIMS)
    arrays: dict[str, np.ndarray] = {}
    for grade in grades:
        for suffix, (dtype, fill) in GRADE_VARIABLES.items():
            name = f"{grade}{suffix}"
            if name in ds:
                arrays[name] = np.array(ds[name].values, dtype=dtype)  # a copy, computed if dask
            else:
                arrays[name] = np.full(shape, fill, dtype=dtype)
    failures = {
        domain: {grade: {"singular": 0, "too_few": 0} for grade in per_grade}
        for domain, per_grade in composites_by_domain.items()
    }
    index = {d: i for i, d in enumerate(domains)}
    for task, res in zip(tasks, results, strict=True):
        di = index[task.domain]
        for key, suffix in OUTPUT_SUFFIX.items():
            flat_view = arrays[f"{task.grade}{suffix}"][di].reshape(-1)
            flat_view[task.flat] = res[key]
        for key, count in res.get("failures", {}).items():
            counts = failures[task.domain][task.grade]
            counts[key] = counts.get(key, 0) + int(count)
    out = ds.copy()
    for name, arr in arrays.items():
        attrs = ds[name].attrs if name in ds else {}
        out[name] = xr.Variable(DIMS, arr, attrs=attrs)
    if "fraction" in out:
        out["fraction"] = xr.Variable(
            DIMS, np.asarray(ds["fraction"].values), attrs=ds["fraction"].attrs
        )
    return out, failures
