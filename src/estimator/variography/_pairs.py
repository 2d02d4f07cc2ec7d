"""Pair kernels of the experimental variograms (numba): the private engine of
:mod:`estimator.variography.experimental`, whose module notes define every number computed here.

Pairs are found by streaming over a hashed grid of cells, chunk by chunk, so memory is O(n) for
any number of pairs and sums do not depend on the number of threads.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from estimator.variography.models import ZERO_DISTANCE_SQ

#: Accumulator layout per (direction, lag): n, sum h, sum g, head, tail, head^2, tail^2, head*tail.
NACC = 8
_N_CHUNKS = 64


# -- kernels ---------------------------------------------------------------------------------
@numba.njit(cache=True, inline="always")
def _accumulate(acc, k, h, a, b, measure, head_is_b, symmetric):
    """Add one pair (values ``a``, ``b``) at distance ``h`` to ``acc[k]``."""
    if measure == 2:  # pairwise relative
        s = a + b
        if abs(s) <= 1e-12:
            return
        g = 2.0 * (a - b) * (a - b) / (s * s)
    else:
        g = 0.5 * (a - b) * (a - b)
    acc[k, 0] += 1.0
    acc[k, 1] += h
    acc[k, 2] += g
    if measure == 1:
        if symmetric:
            m = 0.5 * (a + b)
            q = 0.5 * (a * a + b * b)
            acc[k, 3] += m
            acc[k, 4] += m
            acc[k, 5] += q
            acc[k, 6] += q
        else:
            hd, tl = (b, a) if head_is_b else (a, b)
            acc[k, 3] += hd
            acc[k, 4] += tl
            acc[k, 5] += hd * hd
            acc[k, 6] += tl * tl
        acc[k, 7] += a * b


@numba.njit(cache=True, inline="always")
def _bin_pair(acc, h, a, b, lag, ltol, n_lags, measure, head_is_b, symmetric):
    k0 = max(1, math.floor((h - ltol) / lag))
    k1 = min(n_lags, math.floor((h + ltol) / lag) + 1)
    for k in range(k0, k1 + 1):
        if abs(h - k * lag) <= ltol:
            _accumulate(acc, k - 1, h, a, b, measure, head_is_b, symmetric)


@numba.njit(cache=True, inline="always")
def _accepts(dx, dy, dz, dxy2, h, dirs, idir):
    """The ``gamv`` direction tests of one pair for direction ``idir`` (see the module notes)."""
    if dirs[idir, 8] > 0.5:
        return True
    uvx, uvy, uvh, uvz = dirs[idir, 0], dirs[idir, 1], dirs[idir, 2], dirs[idir, 3]
    if dxy2 <= ZERO_DISTANCE_SQ:
        dxy = 0.0
        dcazm = 1.0
    else:
        dxy = math.sqrt(dxy2)
        dcazm = (dx * uvx + dy * uvy) / dxy
    if abs(dcazm) < dirs[idir, 4]:
        return False
    if abs(uvx * dy - uvy * dx) > dirs[idir, 6]:
        return False
    if dcazm < 0.0:
        dxy = -dxy
    if abs((dxy * uvh + dz * uvz) / h) < dirs[idir, 5]:
        return False
    return abs(uvh * dz - uvz * dxy) <= dirs[idir, 7]


@numba.njit(cache=True, inline="always")
def _pair_directional(dx, dy, dz, a, b, dirs, lag, ltol, n_lags, r2max, measure, acc):
    dxy2 = dx * dx + dy * dy
    h2 = dxy2 + dz * dz
    if h2 <= ZERO_DISTANCE_SQ or h2 > r2max:
        return
    h = math.sqrt(h2)
    for idir in range(dirs.shape[0]):
        if not _accepts(dx, dy, dz, dxy2, h, dirs, idir):
            continue
        head_is_b = dx * dirs[idir, 9] + dy * dirs[idir, 10] + dz * dirs[idir, 11] >= 0.0
        _bin_pair(acc[idir], h, a, b, lag, ltol, n_lags, measure, head_is_b, dirs[idir, 8] > 0.5)


@numba.njit(cache=True, inline="always")
def _uniform(p, q):
    """A fixed pseudo-random number in [0, 1) for the pair ``(p, q)`` (splitmix64 of the pair)."""
    z = np.uint64(p) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(q) + np.uint64(0x632BE59BD9B4E019)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, inline="always")
def _pair_sample(dx, dy, dz, p, q, dirs, lag, ltol, n_lags, r2max, prob, vbuf, vcnt):
    """Keep the separation vector of pair ``(p, q)`` in each of its bins with that bin's ``prob``."""
    dxy2 = dx * dx + dy * dy
    h2 = dxy2 + dz * dz
    if h2 <= ZERO_DISTANCE_SQ or h2 > r2max:
        return
    h = math.sqrt(h2)
    u = _uniform(p, q)
    cap = vbuf.shape[2]
    for idir in range(dirs.shape[0]):
        if not _accepts(dx, dy, dz, dxy2, h, dirs, idir):
            continue
        k0 = max(1, math.floor((h - ltol) / lag))
        k1 = min(n_lags, math.floor((h + ltol) / lag) + 1)
        for k in range(k0, k1 + 1):
            if abs(h - k * lag) > ltol or u >= prob[idir, k - 1]:
                continue
            m = vcnt[idir, k - 1]
            if m < cap:
                vbuf[idir, k - 1, m, 0] = dx
                vbuf[idir, k - 1, m, 1] = dy
                vbuf[idir, k - 1, m, 2] = dz
                vcnt[idir, k - 1] = m + 1


@numba.njit(cache=True, inline="always")
def _pair_map(dx, dy, dz, a, b, cell, nmap, r2max, measure, acc):
    h2 = dx * dx + dy * dy + dz * dz
    if h2 <= ZERO_DISTANCE_SQ or h2 > r2max:
        return
    # d and -d are the same pair: keep the half with dz > 0 (ties broken on dy, then dx).
    if dz < 0.0 or (dz == 0.0 and (dy < 0.0 or (dy == 0.0 and dx < 0.0))):
        dx, dy, dz = -dx, -dy, -dz
    ix = math.floor(dx / cell + 0.5) + nmap
    iy = math.floor(dy / cell + 0.5) + nmap
    iz = math.floor(dz / cell + 0.5)
    w = 2 * nmap + 1
    k = (iz * w + iy) * w + ix
    if measure == 2:
        s = a + b
        if abs(s) <= 1e-12:
            return
        g = 2.0 * (a - b) * (a - b) / (s * s)
    else:
        g = 0.5 * (a - b) * (a - b)
    acc[k, 0] += 1.0
    acc[k, 1] += dx
    acc[k, 2] += dy
    acc[k, 3] += dz
    acc[k, 4] += g


def _make_pairs_kernel(loop_range):
    """The pair loop over chunks, with ``loop_range`` = ``range`` (serial) or ``numba.prange``.

    Written once, compiled twice. Two ``njit(cache=True)`` wrappers of one Python function share
    one cache index (numba issue #6845: the key is the function's name and source, not its
    compile flags), so the serial and parallel variants could load each other's machine code.
    Each call of this factory makes a distinct closure, and numba's cache key includes the
    closure's contents, which keeps the two entries apart (as :mod:`estimator.kriging._kernels`).
    """

    def kernel(
        x, y, z, v, keys, starts, counts, ijk, dims, reach, bounds, mode, dirs, par, out, samp
    ):
        """Visit every pair within reach once, chunk by chunk (``out[chunk]`` per chunk).

        ``mode`` 0: directional accumulators; 1: variogram map; 2: sample of separation vectors
        per direction and lag, ``samp = (prob (ndir, n_lags), vbuf (nch, ndir, n_lags, cap, 3),
        vcnt (nch, ndir, n_lags))``.
        """
        prob, vbuf, vcnt = samp
        lag, ltol, r2max, cell = par[0], par[1], par[2], par[3]
        n_lags, measure, nmap = int(par[4]), int(par[5]), int(par[6])
        nkeys = keys.shape[0]
        for ch in loop_range(bounds.shape[0] - 1):
            acc = out[ch]
            for c in range(bounds[ch], bounds[ch + 1]):
                ci, cj, ck = ijk[c, 0], ijk[c, 1], ijk[c, 2]
                for di in range(-reach, reach + 1):
                    ni = ci + di
                    if ni < 0 or ni >= dims[0]:
                        continue
                    for dj in range(-reach, reach + 1):
                        nj = cj + dj
                        if nj < 0 or nj >= dims[1]:
                            continue
                        for dk in range(-reach, reach + 1):
                            nk = ck + dk
                            if nk < 0 or nk >= dims[2]:
                                continue
                            key = (ni * dims[1] + nj) * dims[2] + nk
                            if key < keys[c]:
                                continue
                            c2 = np.searchsorted(keys, key)
                            if c2 >= nkeys or keys[c2] != key:
                                continue
                            for p in range(starts[c], starts[c] + counts[c]):
                                q0 = p + 1 if c2 == c else starts[c2]
                                for q in range(q0, starts[c2] + counts[c2]):
                                    dx, dy, dz = x[q] - x[p], y[q] - y[p], z[q] - z[p]
                                    if mode == 0:
                                        _pair_directional(
                                            dx,
                                            dy,
                                            dz,
                                            v[p],
                                            v[q],
                                            dirs,
                                            lag,
                                            ltol,
                                            n_lags,
                                            r2max,
                                            measure,
                                            acc,
                                        )
                                    elif mode == 1:
                                        _pair_map(
                                            dx,
                                            dy,
                                            dz,
                                            v[p],
                                            v[q],
                                            cell,
                                            nmap,
                                            r2max,
                                            measure,
                                            acc[0],
                                        )
                                    else:
                                        _pair_sample(
                                            dx,
                                            dy,
                                            dz,
                                            p,
                                            q,
                                            dirs,
                                            lag,
                                            ltol,
                                            n_lags,
                                            r2max,
                                            prob,
                                            vbuf[ch],
                                            vcnt[ch],
                                        )

    return kernel


_pairs_serial = numba.njit(cache=True)(_make_pairs_kernel(range))
_pairs_parallel = numba.njit(cache=True, parallel=True)(_make_pairs_kernel(numba.prange))


@numba.njit(cache=True)
def downhole_kernel(s, v, hole_start, lag, ltol, n_lags, measure, acc):
    """Pairs within each hole (``s`` sorted within each hole), by along-hole distance."""
    rmax = n_lags * lag + ltol
    for hh in range(hole_start.shape[0] - 1):
        for p in range(hole_start[hh], hole_start[hh + 1]):
            for q in range(p + 1, hole_start[hh + 1]):
                h = s[q] - s[p]
                if h > rmax:
                    break
                if h * h <= ZERO_DISTANCE_SQ:
                    continue
                _bin_pair(acc, h, v[p], v[q], lag, ltol, n_lags, measure, True, True)


def direction_table(directions) -> np.ndarray:
    """``(ndir, 12)``: uvx uvy uvh uvz cos(atol) cos(dtol) bandh bandv omni ux uy uz."""
    rows = []
    for d in directions:
        az, dp = math.radians(d.azimuth), math.radians(d.dip)
        atol = d.tolerance
        dtol = atol if d.dip_tolerance is None else d.dip_tolerance
        omni = (
            atol >= 90.0
            and dtol >= 90.0
            and math.isinf(d.bandwidth_h)
            and math.isinf(d.bandwidth_v)
        )
        cs_a = -1.0 if atol >= 90.0 else math.cos(math.radians(atol))
        cs_d = -1.0 if dtol >= 90.0 else math.cos(math.radians(dtol))
        u = (math.cos(dp) * math.sin(az), math.cos(dp) * math.cos(az), math.sin(dp))
        rows.append(
            [
                math.sin(az),
                math.cos(az),
                math.cos(dp),
                math.sin(dp),
                cs_a,
                cs_d,
                d.bandwidth_h,
                d.bandwidth_v,
                float(omni),
                u[0],
                u[1],
                u[2],
            ]
        )
    return np.array(rows, dtype=float).reshape(-1, 12)


def run_pairs(xyz, values, rmax, mode, dirs, par, n_out, parallel, sample=None):
    """Hash points into cells of ``rmax / 2`` and run the pair kernel; returns summed accumulators.

    With ``sample = (prob, cap)`` (mode 2) returns ``(vbuf, vcnt)`` stacked over the chunks.
    """
    n = xyz.shape[0]
    if n < 2:
        if sample is not None:
            nd, nl = sample[0].shape
            return np.zeros((0, nd, nl, sample[1], 3)), np.zeros((0, nd, nl), np.int64)
        return np.zeros(n_out)
    cell = max(rmax / 2.0, 1e-9)
    lo = xyz.min(axis=0)
    ijk = np.floor((xyz - lo) / cell).astype(np.int64)
    dims = ijk.max(axis=0) + 1
    if float(np.prod(dims.astype(float))) > 2.0**62:
        msg = "lag too small for the extent of the data (cell index overflow)"
        raise ValueError(msg)
    key = (ijk[:, 0] * dims[1] + ijk[:, 1]) * dims[2] + ijk[:, 2]
    order = np.argsort(key, kind="stable")
    keys, starts, counts = np.unique(key[order], return_index=True, return_counts=True)
    cell_ijk = ijk[order][starts]
    # Chunks of cells with about equal numbers of points; fixed count -> thread-independent sums.
    nch = min(_N_CHUNKS, keys.size)
    cum = np.cumsum(counts)
    bounds = np.searchsorted(cum, np.linspace(0, n, nch + 1)[1:-1], side="left") + 1
    bounds = np.unique(np.concatenate([[0], np.minimum(bounds, keys.size), [keys.size]]))
    out = np.zeros((bounds.size - 1, *n_out))
    if sample is None:
        samp = (np.zeros((1, 1)), np.zeros((1, 1, 1, 1, 3)), np.zeros((1, 1, 1), np.int64))
    else:
        nd, nl = sample[0].shape
        samp = (
            np.ascontiguousarray(sample[0], dtype=float),
            np.zeros((bounds.size - 1, nd, nl, sample[1], 3)),
            np.zeros((bounds.size - 1, nd, nl), np.int64),
        )
    s = xyz[order]
    kernel = _pairs_parallel if parallel else _pairs_serial
    kernel(
        np.ascontiguousarray(s[:, 0]),
        np.ascontiguousarray(s[:, 1]),
        np.ascontiguousarray(s[:, 2]),
        np.ascontiguousarray(values[order]),
        keys,
        starts.astype(np.int64),
        counts.astype(np.int64),
        np.ascontiguousarray(cell_ijk),
        dims,
        math.ceil(rmax / cell),
        bounds.astype(np.int64),
        mode,
        dirs,
        np.asarray(par, dtype=float),
        out,
        samp,
    )
    if sample is not None:
        return samp[1], samp[2]
    return out.sum(axis=0)


def finish(acc, measure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn accumulators ``(..., 8)`` into (gamma, mean distance, n_pairs)."""
    n = acc[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = acc[..., 1] / n
        if measure == "correlogram":
            mh, mt = acc[..., 3] / n, acc[..., 4] / n
            vh = np.maximum(acc[..., 5] / n - mh * mh, 0.0)
            vt = np.maximum(acc[..., 6] / n - mt * mt, 0.0)
            rho = (acc[..., 7] / n - mh * mt) / np.sqrt(vh * vt)
            gamma = 1.0 - rho
        else:
            gamma = acc[..., 2] / n
    gamma = np.where(np.isfinite(gamma) & (n > 0), gamma, np.nan)
    dist = np.where(n > 0, dist, np.nan)
    return gamma, dist, n.astype(np.int64)
