"""Compiled kernels for the moving-neighbourhood search and block kriging.

Kernels take clean NumPy arrays and preallocated outputs and return nothing else (STYLE
section 5); the checks live in :mod:`estimator.kriging.search` and
:mod:`estimator.kriging.estimate`. Every kernel is compiled with ``nogil=True`` (so threads
run them side by side), ``cache=True`` and without ``fastmath`` (bit-reproducible results).

Each block is computed by the same sequence of floating-point operations whatever block
chunk it belongs to and whichever loop variant (serial or ``prange``) runs it, so results
do not depend on chunking or on the number of threads.

Each loop is written once and compiled twice (STYLE section 5): a serial variant and a
``parallel=True`` variant (``prange`` over tasks of blocks). The loop is built by a factory
whose closure holds ``range`` or ``prange``: numba's cache key includes the closure's
contents (not the compile flags), so this keeps the two variants' cache entries apart.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from estimator.variography.models import ZERO_DISTANCE_SQ

#: Blocks handled by one task of the loops (work buffers are allocated once per task).
TASK_SIZE = 128
#: Target groups (index cells) handled by one task of the selection loop.
SELECT_TASK_SIZE = 64

#: Method codes understood by :func:`krige_serial` / :func:`krige_parallel`.
METHOD_CODES = {"ok": 0, "sk": 1, "idw": 2, "nn": 3}

#: A Cholesky pivot of the covariance matrix normalised by C(0) (unit diagonal) at or below
#: this means the kriging system is singular.
PIVOT_TOL = 1e-12

#: A kriged block whose smallest Cholesky pivot (``min_pivot``) is below this has an
#: ill-conditioned kriging system. The pivots ``d_j = L_jj^2`` of the covariance matrix
#: normalised to a unit diagonal satisfy ``lambda_min <= d_j <= 1 <= lambda_max``, so the
#: condition number is at least ``1 / min_pivot`` (measured: typically 30 to 1600 times
#: that): below 1e-5 the error bounds lose at least 5 of 16 digits, and the weights hinge on
#: the fifth digit of the variogram. A nugget of a fraction ``f`` of the sill keeps every
#: pivot >= ``f`` (samples at distinct places), so only a (nearly) nugget-free model can be
#: flagged.
#: Measured (OK, 10 x 10 x 5 blocks, 24 samples, 2 m and 0.5 m down-hole composites, 3050
#: blocks checked against a 60-digit mpmath solve of the same system): a gaussian model
#: without nugget gives pivots from 1e-12 to 0.2; its 509 blocks below 1e-5 have sums of
#: |weights| of median 290-870, 91 % of them move by over 1 % of the mean grade when the
#: ranges change by 0.1 %, and float64 errors reach 8e5 times the mean grade (every block off
#: by over 1e-6 of the mean grade is below 2.4e-6). Spherical and exponential models without
#: nugget (ranges 150-1000 m) stay above 8e-4 with sums of |weights| <= 2.6 and float64 errors
#: <= 3e-12; a 0.01 % nugget stays above its bound 1e-4. Between 1e-5 and 1e-3 nearly
#: nugget-free gaussian blocks still carry large weights (sum of |weights| median 10-60): the
#: out-of-range and negative-estimate checks catch those, not this one.
ILL_CONDITIONED_PIVOT = 1e-5

#: Per-block status codes (``estimate_blocks``'s ``status``): estimated; kriging system singular
#: in the pass that selected the block; too few samples in every pass (never selected).
STATUS_OK = 0
STATUS_SINGULAR = 1
STATUS_TOO_FEW = 2

_JIT = {"nogil": True, "cache": True, "fastmath": False, "error_model": "numpy"}


# -- neighbour selection -----------------------------------------------------------------
@njit(**_JIT)
def _before(d, s, d2, s2):
    """Whether candidate ``(d, s)`` comes before ``(d2, s2)``: by distance, then index."""
    return d < d2 or (d == d2 and s < s2)


@njit(**_JIT)
def _group_candidates(gc, origin, cell, shape, start, order, usorted, samples, reach, cs, cu, cx):
    """Every sample within ``reach`` of the box of cell ``gc``; return their count.

    ``gc`` holds the integer cell coordinates of a group of targets (it may lie outside the
    grid); the samples found cover every target inside that cell. Their indices, scaled and
    world coordinates are copied to ``cs``, ``cu`` and ``cx`` (contiguous for the targets).
    """
    r2 = reach * reach
    blo = np.empty(3)
    bhi = np.empty(3)
    lo = np.empty(3, dtype=np.int64)
    hi = np.empty(3, dtype=np.int64)
    for a in range(3):
        blo[a] = origin[a] + gc[a] * cell
        bhi[a] = blo[a] + cell
        lo[a] = max(0, int(np.floor((blo[a] - reach - origin[a]) / cell)))
        hi[a] = min(shape[a] - 1, int(np.floor((bhi[a] + reach - origin[a]) / cell)))
        if lo[a] > hi[a]:
            return 0
    nc = 0
    for i in range(lo[0], hi[0] + 1):
        # gap between the group's box and cell i along axis 0
        g0 = max(0.0, origin[0] + i * cell - bhi[0], blo[0] - origin[0] - (i + 1) * cell)
        for j in range(lo[1], hi[1] + 1):
            g1 = max(0.0, origin[1] + j * cell - bhi[1], blo[1] - origin[1] - (j + 1) * cell)
            if g0 * g0 + g1 * g1 > r2:
                continue
            base = (i * shape[1] + j) * shape[2]
            for k in range(lo[2], hi[2] + 1):
                g2 = max(0.0, origin[2] + k * cell - bhi[2], blo[2] - origin[2] - (k + 1) * cell)
                if g0 * g0 + g1 * g1 + g2 * g2 > r2:
                    continue
                c = base + k
                for p in range(start[c], start[c + 1]):
                    e0 = max(0.0, blo[0] - usorted[p, 0], usorted[p, 0] - bhi[0])
                    e1 = max(0.0, blo[1] - usorted[p, 1], usorted[p, 1] - bhi[1])
                    e2 = max(0.0, blo[2] - usorted[p, 2], usorted[p, 2] - bhi[2])
                    if e0 * e0 + e1 * e1 + e2 * e2 <= r2:
                        s = order[p]
                        cs[nc] = s
                        for a in range(3):
                            cu[nc, a] = usorted[p, a]
                            cx[nc, a] = samples[s, a]
                        nc += 1
    return nc


@njit(**_JIT)
def _gather(t, ut, amat, cs, cu, cx, ncand, reach, wd, wi, wo):
    """Every sample within scaled distance 1 of target ``t`` (unsorted); return their count.

    A candidate passes the cheap scaled-space test ``|u_s - u_t| <= reach`` and then the
    exact test on world coordinate differences (distance <= 1).
    """
    r2 = reach * reach
    t0, t1, t2 = t[0], t[1], t[2]
    v0, v1, v2 = ut[0], ut[1], ut[2]
    nc = 0
    for c in range(ncand):
        e0 = cu[c, 0] - v0
        e1 = cu[c, 1] - v1
        e2 = cu[c, 2] - v2
        if e0 * e0 + e1 * e1 + e2 * e2 > r2:
            continue
        dx = cx[c, 0] - t0
        dy = cx[c, 1] - t1
        dz = cx[c, 2] - t2
        u0 = amat[0, 0] * dx + amat[0, 1] * dy + amat[0, 2] * dz
        u1 = amat[1, 0] * dx + amat[1, 1] * dy + amat[1, 2] * dz
        u2 = amat[2, 0] * dx + amat[2, 1] * dy + amat[2, 2] * dz
        d = np.sqrt(u0 * u0 + u1 * u1 + u2 * u2)
        if d > 1.0:
            continue
        o = 0
        if u0 >= 0.0:
            o += 1
        if u1 >= 0.0:
            o += 2
        if u2 >= 0.0:
            o += 4
        wd[nc] = d
        wi[nc] = cs[c]
        wo[nc] = o
        nc += 1
    return nc


@njit(**_JIT)
def _smallest_first(wd, wi, wo, nc, keep):
    """Move the ``keep`` first candidates by (distance, index) to the front, sorted."""
    filled = 0
    for c in range(nc):
        d, s, o = wd[c], wi[c], wo[c]
        if filled == keep and not _before(d, s, wd[keep - 1], wi[keep - 1]):
            continue
        pos = filled if filled < keep else keep - 1
        while pos > 0 and _before(d, s, wd[pos - 1], wi[pos - 1]):
            # the slot at pos is free (or holds the dropped last one); c >= pos always
            wd[pos] = wd[pos - 1]
            wi[pos] = wi[pos - 1]
            wo[pos] = wo[pos - 1]
            pos -= 1
        wd[pos] = d
        wi[pos] = s
        wo[pos] = o
        if filled < keep:
            filled += 1
    return filled


@njit(**_JIT)
def _sort_all(wd, wi, wo, nc):
    """Sort the ``nc`` candidates by (distance, index) in place."""
    perm = np.argsort(wd[:nc], kind="mergesort")
    d = wd[:nc][perm]
    s = wi[:nc][perm]
    o = wo[:nc][perm]
    # within runs of equal distance, order by sample index (insertion sort: runs are short)
    for c in range(1, nc):
        pos = c
        while pos > 0 and d[pos - 1] == d[c] and s[pos - 1] > s[c]:
            pos -= 1
        if pos < c:
            si, oi = s[c], o[c]
            for q in range(c, pos, -1):
                s[q] = s[q - 1]
                o[q] = o[q - 1]
            s[pos] = si
            o[pos] = oi
    wd[:nc] = d
    wi[:nc] = s
    wo[:nc] = o


@njit(**_JIT)
def _greedy(
    wd, wi, wo, nc, hole_ids, max_samples, max_per_hole, max_per_octant, sel, sdist, octcount
):
    """Take sorted candidates in order under the hole and octant limits; return the count."""
    octcount[:] = 0
    n = 0
    for c in range(nc):
        if n == max_samples:
            break
        s = wi[c]
        o = wo[c]
        if max_per_octant > 0 and octcount[o] >= max_per_octant:
            continue
        if max_per_hole > 0:
            h = hole_ids[s]
            same = 0
            for j in range(n):
                if hole_ids[sel[j]] == h:
                    same += 1
            if same >= max_per_hole:
                continue
        sel[n] = s
        sdist[n] = wd[c]
        octcount[o] += 1
        n += 1
    return n


@njit(**_JIT)
def _select_one(
    t,
    ut,
    hole_ids,
    amat,
    cs,
    cu,
    cx,
    ncand,
    reach,
    limits,
    sel,
    sdist,
    wd,
    wi,
    wo,
    octcount,
):
    """Select the neighbours of one target; return ``(n, n_holes, n_octants)``."""
    max_samples, max_per_hole, max_per_octant = limits[0], limits[1], limits[2]
    nc = _gather(t, ut, amat, cs, cu, cx, ncand, reach, wd, wi, wo)
    limited = max_per_hole > 0 or max_per_octant > 0
    keep = min(nc, 3 * max_samples if limited else max_samples)
    if keep > 0:
        _smallest_first(wd, wi, wo, nc, keep)
    n = _greedy(
        wd, wi, wo, keep, hole_ids, max_samples, max_per_hole, max_per_octant, sel, sdist, octcount
    )
    if n < max_samples and keep < nc:
        # the limits skipped too many of the closest: sort every candidate and start again
        _gather(t, ut, amat, cs, cu, cx, ncand, reach, wd, wi, wo)
        _sort_all(wd, wi, wo, nc)
        n = _greedy(
            wd,
            wi,
            wo,
            nc,
            hole_ids,
            max_samples,
            max_per_hole,
            max_per_octant,
            sel,
            sdist,
            octcount,
        )
    noct = 0
    for o in range(8):
        if octcount[o] > 0:
            noct += 1
    nholes = 0
    for j in range(n):
        h = hole_ids[sel[j]]
        first = True
        for i in range(j):
            if hole_ids[sel[i]] == h:
                first = False
                break
        if first:
            nholes += 1
    return n, nholes, noct


def _make_select_loop(loop_range):
    """The loop over tasks, with ``loop_range`` = ``range`` (serial) or ``prange``."""

    def loop(
        targets, scaled, groups, gstart, gcell, samples, hole_ids, amat, index, reach, limits,
        sel, sdist, count, holes, octants,
    ):  # fmt: skip
        """Targets ``groups[gstart[g]:gstart[g + 1]]`` share the index cell ``gcell[g]``."""
        origin, cell, shape, start, order, usorted = index
        m = samples.shape[0]
        ngroups = gcell.shape[0]
        ntasks = (ngroups + SELECT_TASK_SIZE - 1) // SELECT_TASK_SIZE
        for task in loop_range(ntasks):
            cs = np.empty(m, dtype=np.int64)
            cu = np.empty((m, 3))
            cx = np.empty((m, 3))
            wd = np.empty(m)
            wi = np.empty(m, dtype=np.int64)
            wo = np.empty(m, dtype=np.int64)
            octcount = np.zeros(8, dtype=np.int64)
            for g in range(task * SELECT_TASK_SIZE, min(ngroups, (task + 1) * SELECT_TASK_SIZE)):
                ncand = _group_candidates(
                    gcell[g], origin, cell, shape, start, order, usorted, samples, reach, cs, cu, cx
                )
                for q in range(gstart[g], gstart[g + 1]):
                    b = groups[q]
                    n, nh, no = _select_one(
                        targets[b], scaled[b], hole_ids, amat, cs, cu, cx, ncand, reach, limits,
                        sel[b], sdist[b], wd, wi, wo, octcount,
                    )  # fmt: skip
                    count[b] = n
                    holes[b] = nh
                    octants[b] = no

    return loop


select_serial = njit(**_JIT)(_make_select_loop(range))
select_parallel = njit(parallel=True, **_JIT)(_make_select_loop(prange))


# -- covariance and linear algebra -------------------------------------------------------
@njit(**_JIT)
def _rho(code, h2):
    """Unit-sill correlation at squared scaled distance ``h2`` (codes as ``TYPE_CODES``)."""
    if code == 0:
        if h2 >= 1.0:
            return 0.0
        h = np.sqrt(h2)
        return 1.0 - h * (1.5 - 0.5 * h * h)
    if code == 1:
        return np.exp(-3.0 * np.sqrt(h2))
    return np.exp(-3.0 * h2)


@njit(**_JIT)
def _cholesky(a, n):
    """Cholesky factor ``L`` of ``a[:n, :n]`` in place (lower triangle); return the min pivot.

    Only the lower triangle of ``a`` is read. The pivots are ``d_j = a_jj - sum_k L_jk^2 =
    L_jj^2``. A pivot at or below ``PIVOT_TOL`` (the matrix is normalised to a unit diagonal)
    means singular: the factorisation stops there and returns that pivot (NaN if the matrix
    holds NaN), so the system is singular exactly when the result is not ``> PIVOT_TOL``.
    Otherwise the result is the smallest pivot, ``min_j d_j``, a conditioning measure (see
    ``ILL_CONDITIONED_PIVOT``).
    """
    dmin = np.inf
    for j in range(n):
        acc = a[j, j]
        for k in range(j):
            acc -= a[j, k] * a[j, k]
        if not acc > PIVOT_TOL:  # also catches NaN
            return acc
        dmin = min(dmin, acc)
        d = np.sqrt(acc)
        a[j, j] = d
        for i in range(j + 1, n):
            acc = a[i, j]
            for k in range(j):
                acc -= a[i, k] * a[j, k]
            a[i, j] = acc / d
    return dmin


@njit(**_JIT)
def _cholesky_solve(a, n, b):
    """Solve ``L L^T x = b[:n]`` in place, ``L`` from :func:`_cholesky`."""
    for i in range(n):
        acc = b[i]
        for k in range(i):
            acc -= a[i, k] * b[k]
        b[i] = acc / a[i, i]
    for i in range(n - 1, -1, -1):
        acc = b[i]
        for k in range(i + 1, n):
            acc -= a[k, i] * b[k]
        b[i] = acc / a[i, i]


# -- one block ---------------------------------------------------------------------------
@njit(**_JIT)
def _krige_one(
    t,
    offsets,
    ofs_reach,
    wofs,
    samples,
    values,
    sel,
    sdist,
    n,
    codes,
    sills,
    mats,
    nugget,
    c0,
    bv,
    method,
    sk_mean,
    idw_power,
    rel,
    rs,
    mat,
    rhs,
    cbar,
    aux,
):
    """Estimate one block; return ``(estimate, kv, slope, ke, mu, min_pivot, status)``.

    ``ofs_reach[a]`` bounds ``|offsets[:, a]|`` (plus a margin): a sample farther than that
    from the centre along any axis coincides with no discretisation point (no nugget).

    ``min_pivot`` is the result of :func:`_cholesky` (OK, SK: the smallest pivot, or the
    pivot that stopped a singular factorisation); NaN for IDW and NN.

    The weights are left in ``rhs[:n]`` (OK, SK, IDW; NN: ``rhs[0] = 1``).
    """
    nan = np.nan
    if method == 3:  # nearest neighbour: the closest selected sample
        rhs[0] = 1.0
        return values[sel[0]], nan, nan, nan, nan, nan, STATUS_OK
    if method == 2:  # inverse distance from the block centre, search-space distance
        nzero = 0
        for j in range(n):
            if sdist[j] == 0.0:
                nzero += 1
        wsum = 0.0
        for j in range(n):
            if nzero > 0:
                w = 1.0 if sdist[j] == 0.0 else 0.0
            else:
                w = 1.0 / sdist[j] ** idw_power
            rhs[j] = w
            wsum += w
        est = 0.0
        for j in range(n):
            rhs[j] = rhs[j] / wsum
            est += rhs[j] * values[sel[j]]
        return est, nan, nan, nan, nan, nan, STATUS_OK

    ns = codes.shape[0]
    k = offsets.shape[0]
    t0, t1, t2 = t[0], t[1], t[2]
    for j in range(n):
        s = sel[j]
        dx = samples[s, 0] - t0
        dy = samples[s, 1] - t1
        dz = samples[s, 2] - t2
        rel[j, 0] = dx
        rel[j, 1] = dy
        rel[j, 2] = dz
        for q in range(ns):
            a = mats[q]
            rs[q, j, 0] = a[0, 0] * dx + a[0, 1] * dy + a[0, 2] * dz
            rs[q, j, 1] = a[1, 0] * dx + a[1, 1] * dy + a[1, 2] * dz
            rs[q, j, 2] = a[2, 0] * dx + a[2, 1] * dy + a[2, 2] * dz
    inv_c0 = 1.0 / c0
    # right-hand side: mean covariance between the sample and the discretisation points
    for j in range(n):
        acc = 0.0
        for q in range(ns):
            sq = sills[q]
            code = codes[q]
            for p in range(k):
                e0 = rs[q, j, 0] - wofs[q, p, 0]
                e1 = rs[q, j, 1] - wofs[q, p, 1]
                e2 = rs[q, j, 2] - wofs[q, p, 2]
                acc += sq * _rho(code, e0 * e0 + e1 * e1 + e2 * e2)
        if (
            nugget > 0.0
            and abs(rel[j, 0]) <= ofs_reach[0]
            and abs(rel[j, 1]) <= ofs_reach[1]
            and abs(rel[j, 2]) <= ofs_reach[2]
        ):
            for p in range(k):
                e0 = rel[j, 0] - offsets[p, 0]
                e1 = rel[j, 1] - offsets[p, 1]
                e2 = rel[j, 2] - offsets[p, 2]
                if e0 * e0 + e1 * e1 + e2 * e2 <= ZERO_DISTANCE_SQ:
                    acc += nugget
        cbar[j] = acc / k
        rhs[j] = cbar[j] * inv_c0
    # left-hand side: sample-to-sample covariances, normalised by C(0)
    for i in range(n):
        mat[i, i] = 1.0
        for j in range(i):
            acc = 0.0
            for q in range(ns):
                e0 = rs[q, i, 0] - rs[q, j, 0]
                e1 = rs[q, i, 1] - rs[q, j, 1]
                e2 = rs[q, i, 2] - rs[q, j, 2]
                acc += sills[q] * _rho(codes[q], e0 * e0 + e1 * e1 + e2 * e2)
            if nugget > 0.0:
                e0 = rel[i, 0] - rel[j, 0]
                e1 = rel[i, 1] - rel[j, 1]
                e2 = rel[i, 2] - rel[j, 2]
                if e0 * e0 + e1 * e1 + e2 * e2 <= ZERO_DISTANCE_SQ:
                    acc += nugget
            mat[i, j] = acc * inv_c0
    # covariance matrix C (normalised, SPD) by Cholesky; OK through the Schur complement:
    # a = C^-1 Cbar, b = C^-1 1, mu = (1'a - 1) / 1'b, l = a - mu b (so that C l + mu 1 = Cbar
    # and sum l = 1, the system of SPEC section 6)
    min_pivot = _cholesky(mat, n)
    if not min_pivot > PIVOT_TOL:
        return nan, nan, nan, nan, nan, min_pivot, STATUS_SINGULAR
    _cholesky_solve(mat, n, rhs)
    mu_n = 0.0
    if method == 0:
        for j in range(n):
            aux[j] = 1.0
        _cholesky_solve(mat, n, aux)
        sa = 0.0
        sb = 0.0
        for j in range(n):
            sa += rhs[j]
            sb += aux[j]
        mu_n = (sa - 1.0) / sb
        for j in range(n):
            rhs[j] -= mu_n * aux[j]
    sumlc = 0.0
    for j in range(n):
        sumlc += rhs[j] * cbar[j]
    if method == 0:
        est = 0.0
        for j in range(n):
            est += rhs[j] * values[sel[j]]
        mu = mu_n * c0
        kv = bv - sumlc - mu
        slope = (bv - kv - mu) / (bv - kv - 2.0 * mu)
    else:
        est = 0.0
        for j in range(n):
            est += rhs[j] * (values[sel[j]] - sk_mean)
        est += sk_mean
        mu = nan
        kv = bv - sumlc
        slope = 1.0
    ke = (bv - kv) / bv
    return est, kv, slope, ke, mu, min_pivot, STATUS_OK


def _make_krige_loop(loop_range):
    """The loop over tasks, with ``loop_range`` = ``range`` (serial) or ``prange``."""

    def loop(
        blocks,
        targets,
        offsets,
        ofs_reach,
        wofs,
        samples,
        values,
        sel,
        sdist,
        count,
        codes,
        sills,
        mats,
        nugget,
        c0,
        bv,
        method,
        sk_mean,
        idw_power,
        est,
        kv,
        slope,
        ke,
        status,
        min_pivot,
        want_weights,
        weights,
        lagrange,
    ):
        nb = blocks.shape[0]
        maxs = sel.shape[1]
        ns = codes.shape[0]
        ntasks = (nb + TASK_SIZE - 1) // TASK_SIZE
        for task in loop_range(ntasks):
            rel = np.empty((maxs, 3))
            rs = np.empty((ns, maxs, 3))
            mat = np.empty((maxs, maxs))
            rhs = np.empty(maxs + 1)
            cbar = np.empty(maxs)
            aux = np.empty(maxs)
            for i in range(task * TASK_SIZE, min(nb, (task + 1) * TASK_SIZE)):
                b = blocks[i]
                n = count[i]
                e, v, s, f, mu, piv, st = _krige_one(
                    targets[b],
                    offsets,
                    ofs_reach,
                    wofs,
                    samples,
                    values,
                    sel[i],
                    sdist[i],
                    n,
                    codes,
                    sills,
                    mats,
                    nugget,
                    c0,
                    bv,
                    method,
                    sk_mean,
                    idw_power,
                    rel,
                    rs,
                    mat,
                    rhs,
                    cbar,
                    aux,
                )
                est[b] = e
                kv[b] = v
                slope[b] = s
                ke[b] = f
                status[b] = st
                min_pivot[b] = piv
                if want_weights:
                    lagrange[b] = mu
                    if st == STATUS_OK:
                        nw = 1 if method == 3 else n
                        for j in range(nw):
                            weights[b, j] = rhs[j]

    return loop


krige_serial = njit(**_JIT)(_make_krige_loop(range))
krige_parallel = njit(parallel=True, **_JIT)(_make_krige_loop(prange))
