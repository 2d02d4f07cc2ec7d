"""Plain per-block NumPy reference of :func:`estimator.kriging.estimate.estimate_blocks`.

One block at a time, no k-d tree, no tricks: straightforward loops, the model's own
``covariance`` and ``np.linalg.solve``. Used by the tests as the oracle for the kernels.
"""

from __future__ import annotations

import numpy as np

#: Condition number above which the reference calls a system singular.
SINGULAR_COND = 1e13


def select(target, samples, hole_ids, spass):
    """Selected sample rows and their scaled distances for one target and one pass."""
    u = (samples - target) @ spass.matrix.T
    d = np.sqrt(np.sum(u * u, axis=1))
    octant = (u[:, 0] >= 0) * 1 + (u[:, 1] >= 0) * 2 + (u[:, 2] >= 0) * 4
    order = np.lexsort((np.arange(len(samples)), d))  # by distance, then index
    chosen = []
    per_octant = np.zeros(8, dtype=int)
    for s in order:
        if d[s] > 1.0 or len(chosen) == spass.max_samples:
            break
        if spass.max_per_octant and per_octant[octant[s]] >= spass.max_per_octant:
            continue
        if (
            spass.max_per_hole
            and sum(hole_ids[c] == hole_ids[s] for c in chosen) >= spass.max_per_hole
        ):
            continue
        chosen.append(s)
        per_octant[octant[s]] += 1
    chosen = np.array(chosen, dtype=int)
    ok = len(chosen) >= spass.min_samples and np.count_nonzero(per_octant) >= spass.min_octants
    return chosen, d[chosen], ok


def block_variance(model, offsets):
    """BV: mean structure covariance between discretisation points, or C(0) for a point."""
    if len(offsets) == 1:
        return model.sill
    d = offsets[:, None, :] - offsets[None, :, :]
    return sum(s.covariance(d).mean() for s in model.structures)


def min_pivot(cmat, c0):
    """Smallest Cholesky pivot ``L_jj^2`` of ``cmat / c0`` (unit diagonal); NaN if not SPD."""
    try:
        chol = np.linalg.cholesky(cmat / c0)
    except np.linalg.LinAlgError:
        return np.nan
    return float(np.min(np.diag(chol) ** 2))


def krige_one(target, offsets, xs, zs, model, method, sk_mean):
    """Kriging of one block from its selected samples.

    Returns ``(estimate, kv, slope, ke, weights, mu, min_pivot)``, or ``(None, min_pivot)``
    when the system is singular.
    """
    n = len(xs)
    pts = target + offsets
    cbar = np.array([model.covariance(xs[i] - pts).mean() for i in range(n)])
    cmat = np.array([[model.covariance(xs[i] - xs[j]) for j in range(n)] for i in range(n)])
    pivot = min_pivot(cmat, model.sill)
    bv = block_variance(model, offsets)
    if method == "ok":
        a = np.ones((n + 1, n + 1))
        a[:n, :n] = cmat
        a[n, n] = 0.0
        b = np.append(cbar, 1.0)
    else:
        a, b = cmat, cbar
    if np.linalg.cond(a) > SINGULAR_COND:
        return None, pivot
    x = np.linalg.solve(a, b)
    lam = x[:n]
    if method == "ok":
        mu = x[n]
        est = lam @ zs
        kv = bv - lam @ cbar - mu
        slope = (bv - kv - mu) / (bv - kv - 2 * mu)
    else:
        mu = np.nan
        est = sk_mean + lam @ (zs - sk_mean)
        kv = bv - lam @ cbar
        slope = 1.0
    return est, kv, slope, (bv - kv) / bv, lam, mu, pivot


def reference_estimate(
    targets,
    offsets,
    samples,
    values,
    hole_ids,
    model,
    passes,
    method="ok",
    sk_mean=None,
    idw_power=2.0,
):
    """Same outputs as ``estimate_blocks(..., return_weights=True)``, computed block by block.

    ``status`` is 0 (estimated), 1 (singular) or 2 (too few samples in every pass);
    ``min_pivot`` is NaN for IDW, NN and blocks never selected, and may be NaN (matrix not
    positive definite) for singular blocks.
    """
    n = len(targets)
    maxs = max(p.max_samples for p in passes)
    out = {
        k: np.full(n, np.nan)
        for k in ("estimate", "kv", "slope", "ke", "dist", "lagrange", "min_pivot")
    }
    for k in ("n", "holes", "pass", "status"):
        out[k] = np.zeros(n, dtype=int)
    out["weights"] = np.full((n, maxs), np.nan)
    out["indices"] = np.full((n, maxs), -1)
    failures = {"singular": 0, "too_few": 0}
    for b, t in enumerate(targets):
        number, chosen, d = 0, None, None
        for i, spass in enumerate(passes, start=1):
            chosen, d, ok = select(t, samples, hole_ids, spass)
            if ok:
                number = i
                break
        if number == 0:
            failures["too_few"] += 1
            out["status"][b] = 2
            continue
        nsel = len(chosen)
        out["n"][b] = nsel
        out["holes"][b] = len(set(hole_ids[chosen].tolist()))
        out["dist"][b] = d.mean()
        out["indices"][b, :nsel] = chosen
        zs = values[chosen]
        if method == "nn":
            out["estimate"][b] = zs[0]
            out["n"][b] = out["holes"][b] = 1
            out["dist"][b] = d[0]
            out["weights"][b, 0] = 1.0
            out["indices"][b, 1:] = -1
            out["pass"][b] = number
            continue
        if method == "idw":
            w = (d == 0).astype(float) if np.any(d == 0) else 1.0 / d**idw_power
            w = w / w.sum()
            out["estimate"][b] = w @ zs
            out["weights"][b, :nsel] = w
            out["pass"][b] = number
            continue
        res = krige_one(t, offsets, samples[chosen], zs, model, method, sk_mean)
        out["min_pivot"][b] = res[-1]
        if res[0] is None:
            failures["singular"] += 1
            out["status"][b] = 1
            continue
        est, kv, slope, ke, lam, mu, _ = res
        out["estimate"][b], out["kv"][b], out["slope"][b], out["ke"][b] = est, kv, slope, ke
        out["weights"][b, :nsel] = lam
        out["lagrange"][b] = mu
        out["pass"][b] = number
    out["failures"] = failures
    return out
