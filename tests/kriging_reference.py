"""Plain per-block NumPy reference of :func:`estimator.kriging.estimate.estimate_blocks`.

One block at a time, no k-d tree, no tricks: straightforward loops, the model's own
``covariance`` and ``np.linalg.solve``. Used by the tests as the oracle for the kernels.
"""

from __future__ import annotations

import math

import numpy as np

#: Condition number above which the reference calls a system singular.
SINGULAR_COND = 1e13


def search_distances(target, samples, matrix):
    """Scaled offsets ``u`` (m, 3) and distances of the samples from one target.

    Computed element by element in the kernel's order (world differences first, then
    ``matrix`` row by row, then the norm), so the distances are the kernel's to the bit.
    """
    dx = samples[:, 0] - target[0]
    dy = samples[:, 1] - target[1]
    dz = samples[:, 2] - target[2]
    u = np.column_stack([a[0] * dx + a[1] * dy + a[2] * dz for a in matrix])
    return u, np.sqrt(u[:, 0] * u[:, 0] + u[:, 1] * u[:, 1] + u[:, 2] * u[:, 2])


def select(target, samples, hole_ids, spass):
    """Selected sample rows and their scaled distances for one target and one pass.

    Brute force over every sample: sort by (distance, row), then take greedily under the
    hole and octant limits (the rule of :mod:`estimator.kriging.search`).
    """
    u, d = search_distances(target, samples, spass.matrix)
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


# ---------------------------------------------------------------------------------------
# the kernel's arithmetic, in textbook order
# ---------------------------------------------------------------------------------------
def _rho(code, h2):
    """Unit-sill correlation, as the kernel (codes as ``TYPE_CODES``), in Python floats."""
    if code == 0:
        if h2 >= 1.0:
            return 0.0
        h = math.sqrt(h2)
        return 1.0 - h * (1.5 - 0.5 * h * h)
    if code == 1:
        return math.exp(-3.0 * math.sqrt(h2))
    return math.exp(-3.0 * h2)


def plain_krige_one(target, offsets, xs, zs, model, method, sk_mean=0.0):
    """The kernel's kriging of one block, one operation at a time, in Python floats.

    Every sum runs in its textbook order: covariances structure by structure (then the
    discretisation point, then the nugget), the Cholesky factor ``L_ij = (a_ij - sum_k
    L_ik L_jk) / L_jj`` row by row, forward then back substitution for ``C^-1 Cbar`` and
    ``C^-1 1``. Python floats round as float64 and never fuse a multiply and an add, so
    this gives the kernel's results to the bit when the kernel keeps the same order.

    Returns ``(estimate, kv, slope, ke, weights, mu, min_pivot, status)`` (status 0 or 1).
    """
    from estimator.kriging import _kernels
    from estimator.kriging.estimate import block_covariance
    from estimator.kriging.search import transform
    from estimator.variography.models import ZERO_DISTANCE_SQ

    codes, sills, mats = model.packed()
    codes, sills = codes.tolist(), sills.tolist()
    ns, n, k = len(codes), len(xs), len(offsets)
    nugget, c0 = float(model.nugget), float(model.sill)
    bv = block_covariance(model, offsets)
    wofs = [transform(offsets, mats[q]).tolist() for q in range(ns)]
    ofs = offsets.tolist()
    rel = [[float(xs[j, a] - target[a]) for a in range(3)] for j in range(n)]
    rs = [
        [[m[r][0] * e[0] + m[r][1] * e[1] + m[r][2] * e[2] for r in range(3)] for e in rel]
        for m in mats.tolist()
    ]

    def sq(a, b):
        e0, e1, e2 = a[0] - b[0], a[1] - b[1], a[2] - b[2]
        return e0 * e0 + e1 * e1 + e2 * e2

    inv_c0 = 1.0 / c0
    cbar = []
    for j in range(n):
        acc = 0.0
        for q in range(ns):
            for p in range(k):
                acc += sills[q] * _rho(codes[q], sq(rs[q][j], wofs[q][p]))
        if nugget > 0.0:
            for p in range(k):
                if sq(rel[j], ofs[p]) <= ZERO_DISTANCE_SQ:
                    acc += nugget
        cbar.append(acc / k)
    a = [[0.0] * n for _ in range(n)]
    for i in range(n):
        a[i][i] = 1.0
        for j in range(i):
            acc = 0.0
            for q in range(ns):
                acc += sills[q] * _rho(codes[q], sq(rs[q][i], rs[q][j]))
            if nugget > 0.0 and sq(rel[i], rel[j]) <= ZERO_DISTANCE_SQ:
                acc += nugget
            a[i][j] = acc * inv_c0
    dmin = math.inf
    for j in range(n):
        acc = a[j][j]
        for q in range(j):
            acc -= a[j][q] * a[j][q]
        if not acc > _kernels.PIVOT_TOL:
            return np.nan, np.nan, np.nan, np.nan, None, np.nan, acc, 1
        dmin = min(dmin, acc)
        d = math.sqrt(acc)
        a[j][j] = d
        for i in range(j + 1, n):
            acc = a[i][j]
            for q in range(j):
                acc -= a[i][q] * a[j][q]
            a[i][j] = acc / d

    def solve(b):
        for i in range(n):
            acc = b[i]
            for q in range(i):
                acc -= a[i][q] * b[q]
            b[i] = acc / a[i][i]
        for i in range(n - 1, -1, -1):
            acc = b[i]
            for q in range(i + 1, n):
                acc -= a[q][i] * b[q]
            b[i] = acc / a[i][i]
        return b

    lam = solve([c * inv_c0 for c in cbar])
    zs = zs.tolist()
    if method == "ok":
        ones = solve([1.0] * n)
        mu_n = (sum_in_order(lam) - 1.0) / sum_in_order(ones)
        lam = [lam[j] - mu_n * ones[j] for j in range(n)]
        est = sum_in_order([lam[j] * zs[j] for j in range(n)])
        mu = mu_n * c0
        kv = bv - sum_in_order([lam[j] * cbar[j] for j in range(n)]) - mu
        slope = (bv - kv - mu) / (bv - kv - 2.0 * mu)
    else:
        est = sum_in_order([lam[j] * (zs[j] - sk_mean) for j in range(n)]) + sk_mean
        mu = np.nan
        kv = bv - sum_in_order([lam[j] * cbar[j] for j in range(n)])
        slope = 1.0
    return est, kv, slope, (bv - kv) / bv, np.array(lam), mu, dmin, 0


def sum_in_order(terms):
    """``((0 + t0) + t1) + ...``: a sum in the given order (``sum`` of floats is that)."""
    acc = 0.0
    for t in terms:
        acc += t
    return acc
