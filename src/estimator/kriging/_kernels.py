"""Compiled kernels for the moving-neighbourhood search and block kriging.

Kernels take clean NumPy arrays and preallocated outputs and return nothing else (STYLE
section 5); the checks live in :mod:`estimator.kriging.search` and
:mod:`estimator.kriging.estimate`. Every kernel is compiled with ``nogil=True`` (so threads
run them side by side), ``cache=True`` and without ``fastmath`` (bit-reproducible results).

Each block is computed by the same sequence of floating-point operations whatever block
chunk it belongs to and whichever loop variant (serial or ``prange``) runs it, so results
do not depend on chunking or on the number of threads. Speed comes from doing less and
from doing several independent operations at once (vector instructions, interleaved sums),
never from reordering a sum: every number is the one the plain loops give, to the bit
(``tests/kriging_reference.py`` holds those plain loops, and the tests compare).

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
#: The vectorised loops of the kriging kernel start at a multiple of this (a vector of
#: float64 in an AVX-512 register), at or before the first element they need.
LANES = 8
#: Target groups (index cells) handled by one task of the selection loop.
SELECT_TASK_SIZE = 64
#: Shells of distance from a group's centre by which its candidates are ordered.
NSHELL = 64
#: Most buckets of distance by which the candidates of a target are sorted under limits.
NBUCKET = 256

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
def _shell_order(ncand, cs, cu, cx, centre, ps, pu, px, shell, sstart):
    """Order a group's candidates by shells of distance from ``centre``; return the width.

    Candidate ``c`` at scaled distance ``rho_c = |cu_c - centre|`` goes to shell
    ``min(NSHELL - 1, floor(rho_c / width))`` (``width = max rho / NSHELL``); ``ps``, ``pu``
    and ``px`` receive the candidates shell by shell (in their order within a shell), shell
    ``h`` from ``sstart[h]`` to ``sstart[h + 1]``. A candidate of shell ``h`` has
    ``rho >= h * width`` (up to rounding, which the caller's margin covers).
    """
    rmax = 0.0
    for c in range(ncand):
        e0 = cu[c, 0] - centre[0]
        e1 = cu[c, 1] - centre[1]
        e2 = cu[c, 2] - centre[2]
        r = np.sqrt(e0 * e0 + e1 * e1 + e2 * e2)
        px[c, 0] = r  # scratch: the distances, before px is filled
        rmax = max(rmax, r)
    width = rmax / NSHELL if rmax > 0.0 else 1.0
    sstart[:] = 0
    for c in range(ncand):
        h = min(NSHELL - 1, int(px[c, 0] / width))
        shell[c] = h
        sstart[h + 1] += 1
    for h in range(NSHELL):
        sstart[h + 1] += sstart[h]
    for c in range(ncand):
        h = shell[c]
        shell[c] = sstart[h]
        sstart[h] += 1
    for h in range(NSHELL, 0, -1):
        sstart[h] = sstart[h - 1]
    sstart[0] = 0
    for c in range(ncand):
        q = shell[c]
        ps[q] = cs[c]
        for a in range(3):
            pu[q, a] = cu[c, a]
            px[q, a] = cx[c, a]
    return width


@njit(**_JIT)
def _measure(c, t, ut, amat, pu, px, lim2):
    """Search distance and octant of candidate ``c`` from target ``t``; distance 2 if out.

    The candidate is out when its distance in absolute scaled coordinates ``|pu_c - ut|``
    exceeds ``sqrt(lim2)`` (a cheap test: ``lim2 = REACH^2`` keeps every sample that can
    be in range) or when its distance measured from world coordinate differences exceeds 1.
    """
    e0 = pu[c, 0] - ut[0]
    e1 = pu[c, 1] - ut[1]
    e2 = pu[c, 2] - ut[2]
    if e0 * e0 + e1 * e1 + e2 * e2 > lim2:
        return 2.0, 0
    dx = px[c, 0] - t[0]
    dy = px[c, 1] - t[1]
    dz = px[c, 2] - t[2]
    u0 = amat[0, 0] * dx + amat[0, 1] * dy + amat[0, 2] * dz
    u1 = amat[1, 0] * dx + amat[1, 1] * dy + amat[1, 2] * dz
    u2 = amat[2, 0] * dx + amat[2, 1] * dy + amat[2, 2] * dz
    d = np.sqrt(u0 * u0 + u1 * u1 + u2 * u2)
    if d > 1.0:
        return 2.0, 0
    o = 0
    if u0 >= 0.0:
        o += 1
    if u1 >= 0.0:
        o += 2
    if u2 >= 0.0:
        o += 4
    return d, o


@njit(**_JIT)
def _slack(ut, centre, margin):
    """``|ut - centre| + margin``: how much nearer than its shell a candidate may be."""
    e0 = ut[0] - centre[0]
    e1 = ut[1] - centre[1]
    e2 = ut[2] - centre[2]
    return np.sqrt(e0 * e0 + e1 * e1 + e2 * e2) + margin


@njit(**_JIT)
def _closest_by_shells(
    t, ut, amat, ps, pu, px, sstart, width, centre, reach, margin, keep, wd, wi, wo
):
    """The ``keep`` first candidates by (distance, index), sorted; return how many.

    Candidates are the samples within distance 1 of ``t`` (:func:`_measure`); fewer than
    ``keep`` are returned only when that is all of them.

    The candidates come shell by shell (:func:`_shell_order`). With ``slack = |ut -
    centre| + margin`` (the margin covers the rounding of absolute scaled coordinates), a
    candidate of shell ``h`` is at distance at least ``h * width - slack`` (triangle
    inequality in scaled space), and a candidate ``c`` at least ``|pu_c - ut| - margin``.
    So once ``h * width - slack`` exceeds the ``keep``-th distance found (or 1 before
    ``keep`` are found) no later candidate can enter, and a candidate farther than that in
    absolute scaled coordinates by more than ``margin`` is not measured: the result is that
    of sorting every candidate, whatever was skipped.
    """
    slack = _slack(ut, centre, margin)
    r2 = reach * reach
    limit = 1.0
    lim2 = min(r2, (limit + margin) * (limit + margin))
    filled = 0
    for h in range(NSHELL):
        if h * width - slack > limit:
            break
        for c in range(sstart[h], sstart[h + 1]):
            d, o = _measure(c, t, ut, amat, pu, px, lim2)
            if d > 1.0:
                continue
            s = ps[c]
            if filled == keep:
                if not _before(d, s, wd[keep - 1], wi[keep - 1]):
                    continue
                pos = keep - 1
            else:
                pos = filled
                filled += 1
            while pos > 0 and _before(d, s, wd[pos - 1], wi[pos - 1]):
                wd[pos] = wd[pos - 1]
                wi[pos] = wi[pos - 1]
                wo[pos] = wo[pos - 1]
                pos -= 1
            wd[pos] = d
            wi[pos] = s
            wo[pos] = o
            if filled == keep:
                limit = wd[keep - 1]
                lim2 = min(r2, (limit + margin) * (limit + margin))
    return filled


@njit(**_JIT)
def _gather_by_shells(t, ut, amat, ps, pu, px, sstart, width, centre, reach, margin, wd, wi, wo):
    """Every candidate (:func:`_measure`), unsorted; return their count.

    The shells beyond distance 1 (see :func:`_closest_by_shells`) are skipped.
    """
    slack = _slack(ut, centre, margin)
    r2 = reach * reach
    nc = 0
    for h in range(NSHELL):
        if h * width - slack > 1.0:
            break
        for c in range(sstart[h], sstart[h + 1]):
            d, o = _measure(c, t, ut, amat, pu, px, r2)
            if d > 1.0:
                continue
            wd[nc] = d
            wi[nc] = ps[c]
            wo[nc] = o
            nc += 1
    return nc


@njit(**_JIT)
def _greedy_by_buckets(
    wd, wi, wo, nc, hole_ids, limits, bd, bi, bo, bstart, sel, sdist, selh, octcount
):  # fmt: skip
    """Greedy selection over the ``nc`` candidates in ``wd``, ``wi``, ``wo``; the count.

    The candidates are taken in (distance, index) order; one is skipped when its hole
    already has ``max_per_hole`` selected samples or its octant ``max_per_octant``, until
    ``max_samples`` are selected (``sel``, ``sdist``; ``selh`` their holes). The sort is
    lazy: the candidates are spread into buckets of distance (``floor(d * nb)`` grows with
    ``d``, so each bucket comes wholly before the next) and a bucket is sorted (insertion
    sort by (distance, index)) only when the selection reaches it.
    """
    max_samples, max_per_hole, max_per_octant = limits[0], limits[1], limits[2]
    octcount[:] = 0
    nb = min(max(nc, 1), bstart.shape[0] - 1)
    bstart[: nb + 1] = 0
    for c in range(nc):
        bstart[min(nb - 1, int(wd[c] * nb)) + 1] += 1
    for k in range(nb):
        bstart[k + 1] += bstart[k]
    for c in range(nc):
        k = min(nb - 1, int(wd[c] * nb))
        q = bstart[k]
        bd[q] = wd[c]
        bi[q] = wi[c]
        bo[q] = wo[c]
        bstart[k] = q + 1
    # bstart[k] is now the end of bucket k (and the start of bucket k + 1)
    n = 0
    lo = 0
    for k in range(nb):
        hi = bstart[k]
        for c in range(lo + 1, hi):
            d, s, o = bd[c], bi[c], bo[c]
            pos = c
            while pos > lo and _before(d, s, bd[pos - 1], bi[pos - 1]):
                bd[pos] = bd[pos - 1]
                bi[pos] = bi[pos - 1]
                bo[pos] = bo[pos - 1]
                pos -= 1
            bd[pos] = d
            bi[pos] = s
            bo[pos] = o
        for c in range(lo, hi):
            o = bo[c]
            if max_per_octant > 0 and octcount[o] >= max_per_octant:
                continue
            s = bi[c]
            if max_per_hole > 0:
                h = hole_ids[s]
                same = 0
                for j in range(n):
                    if selh[j] == h:
                        same += 1
                if same >= max_per_hole:
                    continue
            sel[n] = s
            sdist[n] = bd[c]
            selh[n] = hole_ids[s]
            octcount[o] += 1
            n += 1
            if n == max_samples:
                return n
        lo = hi
    return n


@njit(**_JIT)
def _select_one(
    t,
    ut,
    hole_ids,
    amat,
    ps,
    pu,
    px,
    sstart,
    width,
    centre,
    reach,
    margin,
    limits,
    sel,
    sdist,
    work,
    iwork,
    selh,
    bstart,
    octcount,
):
    """Select the neighbours of one target; return ``(n, n_holes, n_octants)``.

    The rule of :mod:`estimator.kriging.search`: without limits, the closest
    ``max_samples`` (:func:`_closest_by_shells`); with limits, every candidate
    (:func:`_gather_by_shells`) through :func:`_greedy_by_buckets`. ``work`` (2, m) and
    ``iwork`` (4, m) are work space.
    """
    max_samples, max_per_hole, max_per_octant = limits[0], limits[1], limits[2]
    wd, bd = work[0], work[1]
    wi, wo, bi, bo = iwork[0], iwork[1], iwork[2], iwork[3]
    if max_per_hole > 0 or max_per_octant > 0:
        nc = _gather_by_shells(
            t, ut, amat, ps, pu, px, sstart, width, centre, reach, margin, wd, wi, wo
        )
        n = _greedy_by_buckets(
            wd, wi, wo, nc, hole_ids, limits, bd, bi, bo, bstart, sel, sdist, selh, octcount
        )
    else:
        n = _closest_by_shells(
            t, ut, amat, ps, pu, px, sstart, width, centre, reach, margin, max_samples, wd, wi, wo
        )
        octcount[:] = 0
        for j in range(n):
            sel[j] = wi[j]
            sdist[j] = wd[j]
            octcount[wo[j]] += 1
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
        targets, scaled, groups, gstart, gcell, samples, hole_ids, amat, index, reach, margin,
        limits, sel, sdist, count, holes, octants,
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
            ps = np.empty(m, dtype=np.int64)
            pu = np.empty((m, 3))
            px = np.empty((m, 3))
            shell = np.empty(m, dtype=np.int64)
            sstart = np.empty(NSHELL + 1, dtype=np.int64)
            centre = np.empty(3)
            work = np.empty((2, m))
            iwork = np.empty((4, m), dtype=np.int64)
            selh = np.empty(limits[0], dtype=np.int64)
            bstart = np.empty(NBUCKET + 1, dtype=np.int64)
            octcount = np.zeros(8, dtype=np.int64)
            for g in range(task * SELECT_TASK_SIZE, min(ngroups, (task + 1) * SELECT_TASK_SIZE)):
                ncand = _group_candidates(
                    gcell[g], origin, cell, shape, start, order, usorted, samples, reach, cs, cu, cx
                )
                for a in range(3):
                    centre[a] = origin[a] + (gcell[g, a] + 0.5) * cell
                width = _shell_order(ncand, cs, cu, cx, centre, ps, pu, px, shell, sstart)
                for q in range(gstart[g], gstart[g + 1]):
                    b = groups[q]
                    n, nh, no = _select_one(
                        targets[b], scaled[b], hole_ids, amat, ps, pu, px, sstart, width, centre,
                        reach, margin, limits, sel[b], sdist[b], work, iwork, selh, bstart,
                        octcount,
                    )  # fmt: skip
                    count[b] = n
                    holes[b] = nh
                    octants[b] = no

    return loop


select_serial = njit(**_JIT)(_make_select_loop(range))
select_parallel = njit(parallel=True, **_JIT)(_make_select_loop(prange))


# -- covariance and linear algebra -------------------------------------------------------
# The loops below are laid out so that LLVM vectorises the spherical covariances (several
# samples per instruction) and so that the sums of the Cholesky factor and of the back
# substitution run several at a time, without changing any result: each number is computed
# by exactly the operations, in exactly the order, of the plain per-element formula (no
# reassociation, no fused multiply-add: ``fastmath`` is off), only several side by side.
# Exponential and gaussian structures keep scalar loops whose innermost loop is a sum, so
# that ``exp`` is never vectorised (a vector ``exp``, such as SVML's, may round differently
# from the scalar one).
@njit(**_JIT)
def _unsigned(i):
    """Index ``i >= 0`` as unsigned: numba then drops the negative-index test (no vectors)."""
    return np.uint64(i)


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
def _spherical_to_points(r, n, pts, sill, acc):
    """``acc[j] += sill * rho(|r[:, j] - pts[p]|)`` for ``j < n``, point ``p`` after point.

    Spherical structure; ``r`` (3, >= n) holds the samples' scaled offsets column-wise.
    The branch of :func:`_rho` is a select here (the square root of ``h2 >= 1`` is computed
    and discarded), so that the loop over samples vectorises.
    """
    for p in range(pts.shape[0]):
        w0, w1, w2 = pts[p, 0], pts[p, 1], pts[p, 2]
        for j in range(n):
            e0 = r[0, j] - w0
            e1 = r[1, j] - w1
            e2 = r[2, j] - w2
            h2 = e0 * e0 + e1 * e1 + e2 * e2
            h = np.sqrt(h2)
            rho = 1.0 - h * (1.5 - 0.5 * h * h)
            acc[j] += sill * (0.0 if h2 >= 1.0 else rho)


@njit(**_JIT)
def _spherical_row(r, j, start, n, sill, acc, first):
    """``acc[i] += sill * rho(|r[:, i] - r[:, j]|)`` for ``start <= i < n`` (spherical).

    As :func:`_spherical_to_points`; ``first``: ``acc[i] = 0.0 + ...`` (a sum's first term).
    ``i < j`` gives ``C_ji`` again (a difference changes only its sign), ``i = j`` gives
    ``sill``.
    """
    r0, r1, r2 = r[0, j], r[1, j], r[2, j]
    for ii in range(n - start):
        i = _unsigned(ii + start)
        e0 = r[0, i] - r0
        e1 = r[1, i] - r1
        e2 = r[2, i] - r2
        h2 = e0 * e0 + e1 * e1 + e2 * e2
        h = np.sqrt(h2)
        rho = 1.0 - h * (1.5 - 0.5 * h * h)
        acc[i] = (0.0 if first else acc[i]) + sill * (0.0 if h2 >= 1.0 else rho)


@njit(**_JIT)
def _cholesky(u, n, ncols):
    """Cholesky factor of an ``n x n`` matrix held by rows of its upper triangle; min pivot.

    On entry ``u[j, i]`` (``j < i < n``) holds ``a_ij = a_ji`` of the symmetric matrix ``a``
    normalised to a unit diagonal (the diagonal and the lower triangle of ``u`` are not
    read) and ``u[:n, n:ncols]`` right-hand sides ``b``. On return ``u[j, i] = L_ij``
    (``j <= i < n``: the factor, transposed) and ``u[:n, n:ncols]`` holds the solutions
    ``y`` of ``L y = b``: forward substitution is the factorisation of the matrix bordered
    by ``b^T``, the same operations in the same order.

    The pivots are ``d_j = a_jj - sum_k L_jk^2 = L_jj^2``. A pivot at or below
    ``PIVOT_TOL`` means singular: the factorisation stops there and returns that pivot (NaN
    if the matrix holds NaN), so the system is singular exactly when the result is not
    ``> PIVOT_TOL``. Otherwise the result is the smallest pivot, ``min_j d_j``, a
    conditioning measure (see ``ILL_CONDITIONED_PIVOT``).

    Each ``L_ij = (a_ij - sum_k L_ik L_jk) / L_jj`` is summed over ``k`` in order; four
    ``i`` at a time, so that four independent sums overlap in the processor.
    """
    dmin = np.inf
    for j in range(n):
        pivot = 1.0
        for k in range(j):
            pivot -= u[k, j] * u[k, j]
        if not pivot > PIVOT_TOL:  # also catches NaN
            return pivot
        dmin = min(dmin, pivot)
        d = np.sqrt(pivot)
        u[j, j] = d
        i = j + 1
        while i + 4 <= ncols:
            a0 = u[j, i]
            a1 = u[j, i + 1]
            a2 = u[j, i + 2]
            a3 = u[j, i + 3]
            for k in range(j):
                f = u[k, j]
                a0 -= u[k, i] * f
                a1 -= u[k, i + 1] * f
                a2 -= u[k, i + 2] * f
                a3 -= u[k, i + 3] * f
            u[j, i] = a0 / d
            u[j, i + 1] = a1 / d
            u[j, i + 2] = a2 / d
            u[j, i + 3] = a3 / d
            i += 4
        while i < ncols:
            a0 = u[j, i]
            for k in range(j):
                a0 -= u[k, i] * u[k, j]
            u[j, i] = a0 / d
            i += 1
    return dmin


@njit(**_JIT)
def _back_substitute(u, n, x, y):
    """Overwrite ``x[:n]`` and ``y[:n]`` by the solutions of ``L^T z = x`` and ``L^T z = y``.

    ``L^T`` from :func:`_cholesky`; the two substitutions run side by side.
    """
    for i in range(n - 1, -1, -1):
        ax = x[i]
        ay = y[i]
        for k in range(i + 1, n):
            f = u[i, k]
            ax -= f * x[k]
            ay -= f * y[k]
        x[i] = ax / u[i, i]
        y[i] = ay / u[i, i]


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

    Work arrays: ``rel`` (3, maxs) and ``rs`` (ns, 3, maxs) hold sample offsets column-wise
    (world, and scaled per structure); ``mat`` (maxs, maxs + 2) the matrix and forward
    solutions (:func:`_cholesky`); ``cbar`` (maxs), ``rhs`` and ``aux`` (maxs + 2).

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
    spherical = True
    for q in range(ns):
        if codes[q] != 0:
            spherical = False
    t0, t1, t2 = t[0], t[1], t[2]
    for j in range(n):
        s = sel[j]
        dx = samples[s, 0] - t0
        dy = samples[s, 1] - t1
        dz = samples[s, 2] - t2
        rel[0, j] = dx
        rel[1, j] = dy
        rel[2, j] = dz
        for q in range(ns):
            a = mats[q]
            rs[q, 0, j] = a[0, 0] * dx + a[0, 1] * dy + a[0, 2] * dz
            rs[q, 1, j] = a[1, 0] * dx + a[1, 1] * dy + a[1, 2] * dz
            rs[q, 2, j] = a[2, 0] * dx + a[2, 1] * dy + a[2, 2] * dz
    inv_c0 = 1.0 / c0
    # right-hand side: mean covariance between the sample and the discretisation points,
    # summed structure by structure, point by point (then the nugget)
    for j in range(n):
        cbar[j] = 0.0
    for q in range(ns):
        if codes[q] == 0:
            _spherical_to_points(rs[q], n, wofs[q], sills[q], cbar)
        else:
            sq = sills[q]
            code = codes[q]
            for j in range(n):
                acc = cbar[j]
                for p in range(k):
                    e0 = rs[q, 0, j] - wofs[q, p, 0]
                    e1 = rs[q, 1, j] - wofs[q, p, 1]
                    e2 = rs[q, 2, j] - wofs[q, p, 2]
                    acc += sq * _rho(code, e0 * e0 + e1 * e1 + e2 * e2)
                cbar[j] = acc
    ncols = n + 2 if method == 0 else n + 1
    for j in range(n):
        acc = cbar[j]
        if (
            nugget > 0.0
            and abs(rel[0, j]) <= ofs_reach[0]
            and abs(rel[1, j]) <= ofs_reach[1]
            and abs(rel[2, j]) <= ofs_reach[2]
        ):
            for p in range(k):
                e0 = rel[0, j] - offsets[p, 0]
                e1 = rel[1, j] - offsets[p, 1]
                e2 = rel[2, j] - offsets[p, 2]
                if e0 * e0 + e1 * e1 + e2 * e2 <= ZERO_DISTANCE_SQ:
                    acc += nugget
        cbar[j] = acc / k
    # left-hand side: sample-to-sample covariances C_ij (i > j), normalised by C(0), in
    # row j of the upper triangle; the vectorised loops start LANES-aligned at or before
    # j + 1, so row j also gets values left of the diagonal, which nothing reads
    for j in range(n):
        start = (j + 1) - (j + 1) % LANES
        if spherical:
            for q in range(ns):
                _spherical_row(rs[q], j, start, n, sills[q], aux, q == 0)
        else:
            for i in range(j + 1, n):
                acc = 0.0
                for q in range(ns):
                    e0 = rs[q, 0, i] - rs[q, 0, j]
                    e1 = rs[q, 1, i] - rs[q, 1, j]
                    e2 = rs[q, 2, i] - rs[q, 2, j]
                    acc += sills[q] * _rho(codes[q], e0 * e0 + e1 * e1 + e2 * e2)
                aux[i] = acc
        r0, r1, r2 = rel[0, j], rel[1, j], rel[2, j]
        for ii in range(n - start):
            i = _unsigned(ii + start)
            v = aux[i]
            if nugget > 0.0:
                e0 = rel[0, i] - r0
                e1 = rel[1, i] - r1
                e2 = rel[2, i] - r2
                v = v + nugget if e0 * e0 + e1 * e1 + e2 * e2 <= ZERO_DISTANCE_SQ else v
            mat[j, i] = v * inv_c0
    for j in range(n):
        mat[j, n] = cbar[j] * inv_c0
        mat[j, n + 1] = 1.0
    # covariance matrix C (normalised, SPD) by Cholesky; OK through the Schur complement:
    # a = C^-1 Cbar, b = C^-1 1, mu = (1'a - 1) / 1'b, l = a - mu b (so that C l + mu 1 = Cbar
    # and sum l = 1, the system of SPEC section 6)
    min_pivot = _cholesky(mat, n, ncols)
    if not min_pivot > PIVOT_TOL:
        return nan, nan, nan, nan, nan, min_pivot, STATUS_SINGULAR
    for j in range(n):
        rhs[j] = mat[j, n]
        aux[j] = mat[j, n + 1]
    _back_substitute(mat, n, rhs, aux)
    mu_n = 0.0
    if method == 0:
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
        dist,
        status,
        min_pivot,
        want_weights,
        weights,
        lagrange,
    ):
        """Blocks ``blocks[i]`` with the neighbourhoods ``sel[i, :count[i]]``.

        ``dist`` receives the mean search distance of the samples, summed in selection
        order (NN: the distance of the one sample used).
        """
        nb = blocks.shape[0]
        maxs = sel.shape[1]
        ns = codes.shape[0]
        ntasks = (nb + TASK_SIZE - 1) // TASK_SIZE
        for task in loop_range(ntasks):
            rel = np.zeros((3, maxs))
            rs = np.zeros((ns, 3, maxs))
            mat = np.zeros((maxs, maxs + 2))
            rhs = np.zeros(maxs + 2)
            cbar = np.zeros(maxs)
            aux = np.zeros(maxs + 2)
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
                if method == 3:
                    dist[b] = sdist[i, 0]
                else:
                    total = 0.0
                    for j in range(n):
                        total += sdist[i, j]
                    dist[b] = total / max(n, 1)
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
