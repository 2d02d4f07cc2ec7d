"""Moving-neighbourhood block estimation: ordinary and simple kriging, inverse distance,
nearest neighbour (SPEC section 6; DESIGN "Kriging contract").

Definitions, for a block ``V`` discretised by ``k`` points ``x_V + offsets``:

* ``Cbar_iV`` = mean covariance between sample ``i`` and the discretisation points (the
  nugget counts only where a sample coincides with a discretisation point).
* ``BV`` = mean covariance between discretisation points with the nugget left out; with
  ``k = 1`` (point support) ``BV = C(0)``, nugget included, as GSLIB kt3d.
* Ordinary kriging: ``sum_j l_j C_ij + mu = Cbar_iV``, ``sum_j l_j = 1``;
  ``KV = BV - sum_i l_i Cbar_iV - mu``; slope of regression
  ``(BV - KV - mu) / (BV - KV - 2 mu)``; kriging efficiency ``KE = (BV - KV) / BV``.
* Simple kriging with the declared mean ``m``: ``sum_j l_j C_ij = Cbar_iV``;
  ``Z* = m + sum_i l_i (z_i - m)``; ``KV = BV - sum_i l_i Cbar_iV``; slope 1; same KE.
* Inverse distance: weights ``1 / d_i^p`` with ``d_i`` the sample's scaled search distance
  (search ellipsoid of the pass) from the block *centre*; samples at distance 0 share all
  the weight. Nearest neighbour: the value of the closest sample in the same metric.
  Both give NaN ``kv``, ``slope``, ``ke``; nearest neighbour reports ``n = holes = 1`` and
  the distance of that sample.

Numerics: the sample covariance matrix, normalised by ``C(0)``, is factorised by Cholesky
(in numba, per block); ordinary kriging's Lagrange part follows from the Schur complement
(``a = C^-1 Cbar``, ``b = C^-1 1``, ``mu = (1'a - 1) / 1'b``, ``l = a - mu b``), which solves
exactly the system above. A Cholesky pivot <= ``_kernels.PIVOT_TOL`` (1e-12, relative to
``C(0)``) marks the system singular (duplicate samples without nugget, for instance).
Sample-to-sample and sample-to-block vectors are formed from world coordinate differences
before the anisotropy matrices are applied, so large (UTM) coordinates lose no precision.

Passes: a block is estimated by the first pass whose neighbourhood satisfies it (see
:mod:`estimator.kriging.search`); later passes only see blocks earlier passes left empty.
Failures are counted, never raised: ``too_few`` = blocks no pass could estimate (outputs
NaN, ``n = holes = 0``, ``pass = 0``); ``singular`` = blocks whose kriging system was
singular in the pass that selected them (not retried by later passes; estimate, ``kv``,
``slope``, ``ke`` NaN and ``pass = 0``, but ``n``, ``holes`` and ``dist`` describe the
neighbourhood that failed). The caller emits one ``EstimationWarning`` from the counts.
Per block, ``status`` says which: ``_kernels.STATUS_OK`` (0, estimated),
``STATUS_SINGULAR`` (1) or ``STATUS_TOO_FEW`` (2).

Conditioning: ``min_pivot`` is the smallest Cholesky pivot ``L_jj^2`` of the block's
normalised covariance matrix (OK and SK); the 2-norm condition number is at least
``1 / min_pivot``. Below ``_kernels.ILL_CONDITIONED_PIVOT`` (1e-5) the system is
ill-conditioned: the weights hinge on the fifth digit of the variogram (in practice a
gaussian structure without nugget on closely spaced samples; the reasoning and measurements
are at the constant). A nugget of a fraction ``f`` of the sill keeps ``min_pivot >= f``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from estimator.kriging import _kernels
from estimator.kriging.search import (
    QUERY_BATCH,
    Neighbours,
    SearchPass,
    build_index,
    find_neighbours,
    transform,
)
from estimator.variography.models import ZERO_DISTANCE_SQ, VariogramModel

__all__ = ["METHODS", "SearchPass", "block_covariance", "estimate_blocks"]

METHODS = ("ok", "sk", "idw", "nn")


def block_covariance(model: VariogramModel, offsets: np.ndarray) -> float:
    """Block variance ``BV`` of a block discretised by ``offsets`` (see module docstring).

    Parameters
    ----------
    model : VariogramModel
    offsets : numpy.ndarray, shape (k, 3)

    Returns
    -------
    float
        Mean structure covariance between the discretisation points (nugget left out), or
        ``C(0)`` (nugget included) when ``k = 1``.
    """
    offsets = np.asarray(offsets, dtype=float).reshape(-1, 3)
    if offsets.shape[0] == 1:
        return float(model.sill)
    d = offsets[:, None, :] - offsets[None, :, :]
    return float(sum(np.mean(s.covariance(d)) for s in model.structures))


def _check(targets, offsets, samples, values, hole_ids, model, passes, method, sk_mean, idw_power):
    targets = np.ascontiguousarray(targets, dtype=float)
    offsets = np.ascontiguousarray(offsets, dtype=float)
    samples = np.ascontiguousarray(samples, dtype=float)
    values = np.ascontiguousarray(values, dtype=float)
    hole_ids = np.ascontiguousarray(hole_ids)
    if targets.ndim != 2 or targets.shape[1] != 3:
        raise ValueError(f"targets must have shape (n, 3), got {targets.shape}")
    if offsets.ndim != 2 or offsets.shape[1] != 3 or offsets.shape[0] == 0:
        raise ValueError(f"offsets must have shape (k, 3) with k >= 1, got {offsets.shape}")
    if samples.ndim != 2 or samples.shape[1] != 3:
        raise ValueError(f"samples must have shape (m, 3), got {samples.shape}")
    m = samples.shape[0]
    if values.shape != (m,) or hole_ids.shape != (m,):
        msg = f"values and hole_ids must have shape ({m},), got {values.shape} and {hole_ids.shape}"
        raise ValueError(msg)
    if not np.issubdtype(hole_ids.dtype, np.integer):
        raise ValueError(f"hole_ids must be integers, got dtype {hole_ids.dtype}")
    for name, arr in (("targets", targets), ("offsets", offsets), ("samples", samples)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contain NaN or infinite coordinates")
    if not np.all(np.isfinite(values)):
        raise ValueError("values contain NaN or infinite numbers; remove missing grades first")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    passes = tuple(passes)
    if not passes or not all(isinstance(p, SearchPass) for p in passes):
        raise ValueError("passes must be a non-empty sequence of SearchPass")
    if model is None:
        if method in ("ok", "sk"):
            raise ValueError(f"method {method!r} needs a variogram model")
        model = VariogramModel(0.0)
    if method in ("ok", "sk") and not model.sill > 0:
        raise ValueError(f"kriging needs a model with a positive sill, got {model.sill}")
    if method == "sk" and (sk_mean is None or not np.isfinite(sk_mean)):
        raise ValueError("simple kriging needs a finite sk_mean")
    if method == "idw" and not (np.isfinite(idw_power) and idw_power > 0):
        raise ValueError(f"idw_power must be positive, got {idw_power!r}")
    return targets, offsets, samples, values, hole_ids.astype(np.int64), model, passes


def estimate_blocks(
    targets: np.ndarray,
    offsets: np.ndarray,
    samples: np.ndarray,
    values: np.ndarray,
    hole_ids: np.ndarray,
    model: VariogramModel | None,
    passes: Sequence[SearchPass],
    method: str = "ok",
    sk_mean: float | None = None,
    idw_power: float = 2.0,
    *,
    parallel: bool = False,
    return_weights: bool = False,
) -> dict:
    """Estimate blocks (or points) from samples with a multi-pass moving neighbourhood.

    Parameters
    ----------
    targets : numpy.ndarray, shape (n, 3)
        World coordinates of the block centres.
    offsets : numpy.ndarray, shape (k, 3)
        World-frame discretisation offsets from the centre; ``k = 1`` (zero offset) gives
        point support.
    samples : numpy.ndarray, shape (m, 3)
        Sample (composite) coordinates.
    values : numpy.ndarray, shape (m,)
        Sample values, no NaN (the caller removes missing grades).
    hole_ids : numpy.ndarray, shape (m,), int
        Hole of each sample, for ``max_per_hole`` and the ``holes`` count.
    model : VariogramModel or None
        Covariance model (used by ``ok`` and ``sk``; may be None for ``idw`` and ``nn``).
    passes : sequence of SearchPass
        Search passes, in order, with absolute ranges.
    method : {"ok", "sk", "idw", "nn"}
        Ordinary kriging, simple kriging, inverse distance, nearest neighbour.
    sk_mean : float, optional
        Declared mean for simple kriging.
    idw_power : float
        Inverse-distance power.
    parallel : bool
        Use every core for this call (numba ``prange``). Leave False when
        the caller already runs calls side by side (dask): the kernels release the GIL.
    return_weights : bool
        Also return ``weights`` and ``indices`` (shape ``(n, max_samples)``, NaN / -1
        padded, closest sample first) and ``lagrange`` (``mu``, OK only).

    Returns
    -------
    dict
        ``estimate, kv, slope, ke, dist`` (float, shape (n,)), ``n, holes, pass`` (int64,
        shape (n,), pass 1-based, 0 = not estimated), ``status`` (int64, shape (n,): 0
        estimated, 1 singular system in the pass that selected the block, 2 too few samples
        in every pass), ``min_pivot`` (float, shape (n,): smallest Cholesky pivot of the
        normalised covariance matrix for OK and SK; for a singular block the pivot that
        stopped the factorisation, <= ``_kernels.PIVOT_TOL`` (0 or slightly negative through
        rounding, NaN if the matrix held NaN); NaN for IDW, NN and blocks never selected)
        and ``failures`` = ``{"singular": int, "too_few": int}`` (the counts of status 1
        and 2). Definitions in the module docstring.

    Notes
    -----
    A block's results depend only on its target, the offsets and the samples given (and
    their order, for exact distance ties), so any chunking of the blocks gives bit-identical
    results.
    """
    targets, offsets, samples, values, hole_ids, model, passes = _check(
        targets, offsets, samples, values, hole_ids, model, passes, method, sk_mean, idw_power
    )
    n = targets.shape[0]
    out = {
        "estimate": np.full(n, np.nan),
        "kv": np.full(n, np.nan),
        "slope": np.full(n, np.nan),
        "ke": np.full(n, np.nan),
        "n": np.zeros(n, dtype=np.int64),
        "holes": np.zeros(n, dtype=np.int64),
        "dist": np.full(n, np.nan),
        "pass": np.zeros(n, dtype=np.int64),
        "min_pivot": np.full(n, np.nan),
    }
    status = np.zeros(n, dtype=np.int64)
    maxs = max(p.max_samples for p in passes)
    if return_weights:
        weights = np.full((n, maxs), np.nan)
        indices = np.full((n, maxs), -1, dtype=np.int64)
        lagrange = np.full(n, np.nan)
    else:
        weights, indices, lagrange = np.empty((1, 1)), None, np.empty(1)

    codes, sills, mats = model.packed()
    ns = codes.shape[0]
    wofs = np.empty((ns, offsets.shape[0], 3))
    for q in range(ns):
        wofs[q] = transform(offsets, mats[q])
    kernel_args = {
        "offsets": offsets,
        # coincidence means a squared distance <= ZERO_DISTANCE_SQ, so per axis <= its root
        "ofs_reach": np.abs(offsets).max(axis=0) + 2.0 * np.sqrt(ZERO_DISTANCE_SQ),
        "wofs": wofs,
        "codes": codes,
        "sills": sills,
        "mats": np.ascontiguousarray(mats),
        "nugget": float(model.nugget),
        "c0": float(model.sill) if model.sill > 0 else 1.0,
        "bv": block_covariance(model, offsets) if model.sill > 0 else 1.0,
        "method": _kernels.METHOD_CODES[method],
        "sk_mean": float(sk_mean) if sk_mean is not None else 0.0,
        "idw_power": float(idw_power),
    }
    remaining = np.arange(n)
    for number, spass in enumerate(passes, start=1):
        if remaining.size == 0 or samples.shape[0] == 0:
            break
        index = build_index(samples, spass)
        left = []
        for start in range(0, remaining.size, QUERY_BATCH):
            rows = remaining[start : start + QUERY_BATCH]
            nb = find_neighbours(
                targets[rows], samples, hole_ids, spass, index=index, parallel=parallel
            )
            left.append(rows[~nb.ok])
            blocks = rows[nb.ok]
            _estimate_batch(
                blocks, nb, targets, samples, values, kernel_args, out, status,
                (weights, lagrange, return_weights), parallel,
            )  # fmt: skip
            out["pass"][blocks] = np.where(status[blocks] == _kernels.STATUS_OK, number, 0)
            if return_weights:
                indices[blocks, : spass.max_samples] = nb.indices[nb.ok]
        remaining = np.concatenate(left) if left else remaining[:0]

    if method == "nn":
        est = out["pass"] > 0
        out["n"][est] = 1
        out["holes"][est] = 1
        if return_weights:
            indices[:, 1:] = -1
    status[remaining] = _kernels.STATUS_TOO_FEW
    out["status"] = status
    out["failures"] = {
        "singular": int(np.count_nonzero(status == _kernels.STATUS_SINGULAR)),
        "too_few": int(remaining.size),
    }
    if return_weights:
        out["weights"] = weights
        out["indices"] = indices
        if method == "ok":
            out["lagrange"] = lagrange
    return out


def _estimate_batch(
    blocks, nb: Neighbours, targets, samples, values, kargs, out, status, wts, parallel
):
    """Run the estimation kernel on the blocks of one batch that satisfied the pass."""
    weights, lagrange, want = wts
    ok = nb.ok
    sel = np.ascontiguousarray(nb.indices[ok])
    sdist = np.ascontiguousarray(nb.distances[ok])
    count = np.ascontiguousarray(nb.count[ok])
    out["n"][blocks] = count
    out["holes"][blocks] = nb.holes[ok]
    if blocks.size == 0:
        return
    kernel = _kernels.krige_parallel if parallel else _kernels.krige_serial
    kernel(
        blocks,
        targets,
        kargs["offsets"],
        kargs["ofs_reach"],
        kargs["wofs"],
        samples,
        values,
        sel,
        sdist,
        count,
        kargs["codes"],
        kargs["sills"],
        kargs["mats"],
        kargs["nugget"],
        kargs["c0"],
        kargs["bv"],
        kargs["method"],
        kargs["sk_mean"],
        kargs["idw_power"],
        out["estimate"],
        out["kv"],
        out["slope"],
        out["ke"],
        out["dist"],
        status,
        out["min_pivot"],
        want,
        weights,
        lagrange,
    )
